"""Run output: metrics as JSON lines and TensorBoard events, run metadata, a progress line.

Metric names (docs/concepts.md): ``train_return`` is the mean team return of the last 100
epsilon-greedy training episodes; ``test_return`` the mean team return of ``test_episodes``
greedy episodes (epsilon 0). A team return is the sum of the shared team reward over one
episode. TensorBoard tags are ``train/<name>`` and ``test/<name>``, against env steps.
"""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from qmix.files import METRICS_NAME, atomic_write_text

# Not logged as scalars: the x axis and counters that are only bookkeeping.
_NOT_SCALARS = ("env_steps",)


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl``, mirrors numbers to TensorBoard.

    Args:
        path: the ``metrics.jsonl`` file.
        tensorboard_dir: write TensorBoard event files here (``None``: no TensorBoard).
        keep_rows: on resume, the first ``keep_rows`` rows of the existing file are kept; the
            rows written after the checkpoint are dropped (the resumed run writes them again).
        resume_step: on resume, the checkpoint's env steps: TensorBoard events after it are
            purged.
    """

    def __init__(
        self,
        path: Path,
        tensorboard_dir: Path | None = None,
        keep_rows: int | None = None,
        resume_step: int | None = None,
    ) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if keep_rows is not None and path.exists():  # a checkpoint may precede the first row
            self.rows = read_metrics(path.parent)[:keep_rows]
            atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in self.rows))
        self._tb: Any = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            # events after the checkpoint's step are written again: hide the old ones
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(str(tensorboard_dir), purge_step=purge)

    def write(self, row: dict[str, Any]) -> None:
        """Record one row (flushed at once, so a crash loses nothing written)."""
        self.rows.append(row)
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self._tb is not None:
            group = row_kind(row)
            step = int(row["env_steps"])
            for key, value in row.items():
                if key in _NOT_SCALARS or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{group}/{key}", value, step)
            self._tb.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


# Packages whose versions make a result reproducible (recorded when installed).
_PACKAGES = (
    "torch",
    "numpy",
    "gymnasium",
    "lbforaging",
    "rware",
    "pettingzoo",
    "mpe2",
    "jax",
    "jaxmarl",
    "vmas",
    "smac",
    "tensorboard",
)


def tell(message: str) -> None:
    """Write ``message`` to stderr. A reader that is gone (the parent process died: a broken
    pipe, a closed stream) is not an error: what the run was doing, such as saving its
    checkpoint on a stop signal, goes on."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


def run_metadata(seed: int) -> dict[str, Any]:
    """Versions, seed, git revision, command and host: what a reader needs to trust a run."""
    from qmix import __version__

    versions = {"qmix": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "seed": seed,
        "versions": versions,
        "git": _git_revision(),
        "command": sys.argv,
        "platform": platform.platform(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _git_revision() -> dict[str, Any] | None:
    """The checkout's commit and whether it had local changes (``None`` outside git)."""
    source = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of a run directory's ``metrics.jsonl``.

    A truncated last line (a run still writing, or killed mid-write) is ignored; a bad line
    anywhere else is an error. One run writes each kind of row (test rows, training rows) at
    strictly increasing env steps, so a row whose ``env_steps`` goes backwards or repeats
    means two writers or a spliced file, and is refused rather than averaged (issue 13).

    Raises:
        ValueError: a line other than the last is not a JSON object, or a row's env steps do
            not increase.
    """
    path = Path(run_dir) / METRICS_NAME
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows: list[dict[str, Any]] = []
    last: dict[str, float] = {}  # kind -> env steps of its latest row
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # partially written final row of a live or killed run
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("env_steps"), (int, float)):
            raise ValueError(f"{path}: line {i + 1} is not a metrics row (no env_steps)")
        kind = row_kind(row)
        if kind in last and row["env_steps"] <= last[kind]:
            raise ValueError(
                f"{path}: line {i + 1} ({kind} row) is at {row['env_steps']} env steps after "
                f"a row at {last[kind]}: two processes wrote to this run, or the file was "
                "edited; its figures cannot be trusted"
            )
        last[kind] = row["env_steps"]
        rows.append(row)
    return rows


def row_kind(row: dict[str, Any]) -> str:
    """``test`` for a greedy test row, ``train`` for a training log row."""
    return "test" if any(key.startswith("test_") for key in row) else "train"


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


CLOCK_KEYS = ("wall_seconds", "eta_seconds")
"""The metrics that depend on the clock: the only ones two runs of one config and seed differ in."""


def eta_seconds(
    elapsed: float,
    learn_seconds: float,
    steps_done: int,
    updates_done: int,
    steps_left: int,
    updates_left: float | None,
) -> float:
    """Seconds a run still needs, from what it spent so far.

    With ``updates_left`` known (a fixed or scheduled number of updates per env step), the time
    per update and the time per env step without updates are measured apart and each scaled by
    what is left of it, so an update rate that rises is foreseen. Without it (updates per
    collection, whose count follows the episodes' lengths), the time per env step so far times
    the steps left.

    Args:
        elapsed: seconds this process has run the loop.
        learn_seconds: seconds of ``elapsed`` spent in updates.
        steps_done, updates_done: env steps and updates this process made.
        steps_left: env steps to the budget.
        updates_left: updates still owed up to the budget, or None if not known in advance.
    """
    if steps_done <= 0:
        return 0.0
    if updates_left is None or updates_done <= 0:
        return elapsed / steps_done * steps_left
    per_step = (elapsed - learn_seconds) / steps_done
    return per_step * steps_left + learn_seconds / updates_done * updates_left


def capped_updates_left(rate_so_far: float, cap: float, steps_left: int) -> float:
    """The updates a capped per-episode rate still makes, as the progress line estimates them.

    Per-episode updates per env step rise as episodes shorten, up to the cap: at most ``cap``
    per step for the rest of the run, at least the rate so far (episodes shorten, never
    lengthen, as agents learn). The estimate is the rate rising evenly from where it is to the
    cap by the end: half-way between the two bounds.

    Args:
        rate_so_far: updates per env step so far (taken at most ``cap``).
        cap: ``updates_per_env_step_max``.
        steps_left: env steps to the budget.
    """
    return steps_left * (min(rate_so_far, cap) + cap) / 2


class Progress:
    """Progress line: env steps, episodes, returns, steps/s and ETA.

    On a terminal the line is rewritten in place; otherwise a plain line is printed each time.
    """

    def __init__(
        self,
        label: str,
        total_env_steps: int,
        stream: TextIO | None = None,
        first_step: int = 0,
    ) -> None:
        self.label = label
        self.total = total_env_steps
        self.first_step = first_step  # a resumed run's rate counts only this process's steps
        self.stream = stream if stream is not None else sys.stdout
        self.start = time.perf_counter()
        self.interactive = self.stream.isatty()

    def update(
        self,
        env_steps: int,
        episodes: int,
        fields: dict[str, float | None],
        eta: float | None = None,
    ) -> None:
        """Show the current figures (``None`` values are left out) and ``eta`` (seconds left;
        default: the time per env step so far times the steps left)."""
        elapsed = time.perf_counter() - self.start
        rate = (env_steps - self.first_step) / elapsed if elapsed > 0 else 0.0
        if eta is None:
            eta = (self.total - env_steps) / rate if rate > 0 else 0.0
        parts = [
            f"[{self.label}] steps {env_steps}/{self.total} ({100 * env_steps / self.total:.0f}%)",
            f"ep {episodes}",
            *(f"{key} {value:.3g}" for key, value in fields.items() if value is not None),
            f"{rate:.0f} steps/s",
            f"ETA {_clock(eta)}",
        ]
        line = " | ".join(parts)
        if self.interactive:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the in-place line."""
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
