"""Time to a solved task, for code revisions side by side in one run.

Run (from the repository root)::

    .venv/bin/python benchmarks/time_to_solve.py [--tasks lbf,smax,mpe] [--seeds 0 1 2]
        [--jobs 2] [--rev HEAD~1 --rev HEAD] [--set KEY=VALUE ...] [--out DIR] [--resume]
        [--record FILE.md]

For each task, QMIX with the task's preset trains on every seed, for every revision (``--rev``:
any git revision, checked out in a worktree under ``--out``; none: the working tree). The runs
are interleaved (task, seed, revision) so that the revisions share the machine alike; compare
them within one run, never across runs. Prints per task and revision:

- the seeds whose greedy test score reached the task's threshold, and the median env steps and
  wall seconds to the first test that did;
- from when the target is sustained: the first test from which every window of 10 consecutive
  tests, averaged over the seeds, stays at or above the threshold (env steps; median wall
  seconds of the seeds there); "—" if never;
- the mean final test score and the median wall time of a run;
- how far off the progress line's ETA was at 10% of the run: the remaining time it predicted
  against the time the run still took (-20%: a fifth too short);
- the machine's speed before and after the runs (seconds for 10^7 Python additions).

Thresholds: ``lbf`` (``make demo``: LBF 8x8-2p-2f-coop) a test return of 0.95; ``smax`` (SMAX
3m) a test win rate of 0.9; ``mpe`` (simple_spread) a test return of -56, today's peak. Wall
times are the runs' own training time. ``--resume`` continues every run from its checkpoint.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learn import eta_error, first_row_at, run_wall, seed_command, wall_at
from qmix.logging import read_metrics

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 10  # tests per window for "sustained"


@dataclass(frozen=True)
class Target:
    """What solving a task means: the algorithm and preset, the test metric, its threshold."""

    algo: str
    task: str
    metric: str
    threshold: float


TASKS = {
    "lbf": Target("qmix", "lbf_8x8_2p_2f_coop", "test_return", 0.95),
    "smax": Target("qmix", "smax_3m", "test_win_rate", 0.9),
    "mpe": Target("qmix", "mpe_simple_spread", "test_return", -56.0),
}


def sustained_from(
    runs: list[list[dict[str, Any]]], metric: str, threshold: float, window: int = WINDOW
) -> tuple[int, float] | None:
    """The first test from which every ``window`` consecutive tests, averaged over the seeds,
    reach ``threshold``: its (mean) env steps and the seeds' median wall seconds there; None if
    none does. Tests are matched by their order (every seed tests at the same interval)."""
    tests = [[row for row in rows if metric in row] for rows in runs]
    count = min(len(t) for t in tests)
    if count < window:
        return None
    mean = np.mean([[row[metric] for row in t[:count]] for t in tests], axis=0)  # [tests]
    windows = np.convolve(mean, np.ones(window) / window, mode="valid")  # [count - window + 1]
    failing = np.flatnonzero(windows < threshold - 1e-9)  # 0.9 averaged is 0.9, not below
    start = 0 if failing.size == 0 else int(failing[-1]) + 1
    if start >= windows.size:
        return None
    steps = int(np.mean([t[start]["env_steps"] for t in tests]))
    wall = float(np.median([wall_at(rows, t[start]) for rows, t in zip(runs, tests, strict=True)]))
    return steps, wall


def worktree(rev: str, out: Path) -> Path:
    """A checkout of ``rev`` under ``out`` (made once; reused by ``--resume``)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = out / f"rev-{sha}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True)
    return path


def run(
    source: Path, target: Target, seed: int, overrides: list[str], run_dir: Path, resume: bool
) -> list[dict[str, Any]]:
    """One seed with the code under ``source`` (its ``src`` first on the path); its rows."""
    command = seed_command(target.algo, target.task, seed, overrides, run_dir, resume)
    if command is not None:
        env = {**os.environ, "PYTHONPATH": str(source / "src")}
        proc = subprocess.run(command, capture_output=True, text=True, cwd=source, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{run_dir.name} failed:\n{proc.stderr[-3000:]}")
    return read_metrics(run_dir)


def table(target: Target, results: dict[str, list[list[dict[str, Any]]]], seeds: int) -> str:
    """The Markdown table of one task: a row per revision."""
    t = target.threshold
    lines = [
        f"#### {target.task}: {target.metric} >= {t:g}",
        "",
        f"| revision | seeds reaching {t:g} | median env steps to it | median wall (s) to it | "
        f"sustained from (env steps) | wall (s) there | mean final | wall per run (s) | "
        "ETA error at 10% (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rev, runs in results.items():
        firsts = [first_row_at(rows, target.metric, t) for rows in runs]
        reached = [(rows, row) for rows, row in zip(runs, firsts, strict=True) if row]
        steps = np.median([row["env_steps"] for _, row in reached]) if reached else None
        wall = np.median([wall_at(rows, row) for rows, row in reached]) if reached else None
        held = sustained_from(runs, target.metric, t)
        finals = [[r[target.metric] for r in rows if target.metric in r][-1] for rows in runs]
        total = np.median([run_wall(rows) for rows in runs])
        lines.append(
            f"| {rev} | {len(reached)} / {seeds} | "
            + (f"{steps:,.0f} | {wall:.0f} | " if reached else "— | — | ")
            + (f"{held[0]:,} | {held[1]:.0f} | " if held else "— | — | ")
            + f"{np.mean(finals):.3g} | {total:.0f} | "
            + f"{np.median([eta_error(rows) for rows in runs]):+.0%} |"
        )
    return "\n".join(lines)


def python_speed() -> float:
    """Seconds for 10^7 Python additions in this process: this machine's speed now (it varies
    from day to day by a third or more), printed beside wall times so that records made on
    different days can be told apart."""
    start, total = time.perf_counter(), 0
    for i in range(10**7):
        total += i
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="lbf", help=f"from {', '.join(TASKS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rev", action="append", default=[], help="a git revision (repeat)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "time_to_solve")
    parser.add_argument("--resume", action="store_true", help="continue or read earlier runs")
    parser.add_argument("--record", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown tasks {unknown}: choose from {', '.join(TASKS)}")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    checkouts = {rev: worktree(rev, args.out) for rev in args.rev}
    sources = {f"{rev} ({path.name[4:]})": path for rev, path in checkouts.items()}
    sources = sources or {"working tree": ROOT}
    jobs = [(task, seed, rev) for task in tasks for seed in args.seeds for rev in sources]

    def one(job: tuple[str, int, str]) -> list[dict[str, Any]]:
        task, seed, rev = job
        tag = sources[rev].name if args.rev else "working-tree"
        run_dir = args.out / "runs" / tag / f"{task}_seed{seed}"  # beside the checkouts
        return run(sources[rev], TASKS[task], seed, args.set, run_dir, args.resume)

    speed_before = python_speed()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(one, jobs))
    speed_after = python_speed()
    results: dict[str, dict[str, list[list[dict[str, Any]]]]] = {
        t: {r: [] for r in sources} for t in tasks
    }
    for (task, _, rev), run_rows in zip(jobs, rows, strict=True):
        results[task][rev].append(run_rows)
    command = shlex.join(
        [".venv/bin/python", "benchmarks/time_to_solve.py", "--tasks", args.tasks]
        + ["--seeds", *map(str, args.seeds), "--jobs", str(args.jobs)]
        + [x for rev in args.rev for x in ("--rev", rev)]
        + (["--set", *args.set] if args.set else [])
    )
    speed = (
        f"Machine speed: 10^7 Python additions took {speed_before:.2f} s before the runs and "
        f"{speed_after:.2f} s after (compare wall times across records only at similar speeds)."
    )
    tables = [table(TASKS[t], results[t], len(args.seeds)) for t in tasks]
    text = "\n\n".join([*tables, f"Command: `{command}`", speed])
    print(text)
    if args.record is not None:
        args.record.write_text(text + "\n")


if __name__ == "__main__":
    main()
