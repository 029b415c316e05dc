"""Compare runs across seeds: learning curves with bootstrap bands, and a summary table.

A *run directory* is a directory holding ``config.yaml`` (the resolved config; ``algo``, ``task``
and ``seed`` are read from it) and ``metrics.jsonl`` (one JSON row per line; a row that carries
the chosen metric, e.g. ``test_return``, is one greedy evaluation at its ``env_steps``).

A *record* is what ``benchmarks/learn.py`` keeps of a finished benchmark under
``benchmarks/recorded/``: ``NAME.json`` maps each seed to its metric rows, and ``NAME.md`` next
to it shows the resolved configuration of seed 0 in a ``yaml`` block (``algo`` and ``task`` are
read from it). A record counts as one run per seed (:func:`load_record`), so recorded curves can
be drawn beside fresh run directories of another algorithm.

Runs are grouped by (task, algorithm) -- optionally split further by config keys, see
:func:`load_runs` -- and each group's seeds are the samples for every statistic here:

- curves: each seed's evaluations are linearly interpolated onto one grid of env steps, the union
  of all the group's evaluation steps inside the range that *every* seed covers (see
  :func:`align_curves`); the band is a 95% percentile bootstrap over seeds, 2,000 resamples with
  a fixed seed, so the same runs always give the same picture (:func:`bootstrap_mean_ci`,
  computed by rliable: :mod:`qmix.stats`);
- summary: final and best evaluation per seed, averaged over seeds, and the interquartile mean of
  the late evaluations pooled over seeds (:func:`summary_table`).

matplotlib is imported only inside :func:`plot_comparison`, rliable only where a band or an IQM
is computed (the ``stats`` extra); importing this module needs numpy and PyYAML only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qmix.files import CONFIG_NAME, METRICS_NAME
from qmix.logging import read_metrics, row_kind

# rliable's statistics (the ``stats`` extra), re-exported: the bands and the IQM of this module
from qmix.stats import bootstrap_mean_ci as bootstrap_mean_ci
from qmix.stats import iqm as iqm

#: A record of ``benchmarks/learn.py``: ``NAME.json`` (rows per seed) beside ``NAME.md``.
RECORD_SUFFIX = ".json"
#: ``NAME_eval.json``: ``learn.py --eval-episodes`` scores per seed, not a record.
EVAL_RECORD_SUFFIX = "_eval.json"
#: The ``.md`` line that precedes the ``yaml`` block of the resolved configuration.
RECORD_CONFIG_HEADING = "Resolved configuration"
#: The IQM pools each seed's evaluations in this final fraction of its env steps.
IQM_FINAL_FRACTION = 0.1

_LABELS = {
    "test_return": "greedy test return",
    "test_win_rate": "test win rate",
    "test_length": "greedy test episode length",
    "train_return": "training return (ε-greedy)",
}


@dataclass(frozen=True)
class RunRecord:
    """One run directory, or one seed of a record, read once.

    Attributes:
        run_dir: the run directory, or the record's ``.json`` file (shared by its seeds).
        algo: ``algo`` from its ``config.yaml`` or the record's ``.md`` (e.g. ``"qmix"``).
        task: ``task`` from its ``config.yaml`` or the record's ``.md`` (e.g.
            ``"lbf_8x8_2p_2f_coop"``).
        seed: ``seed`` from its ``config.yaml``, or the record's key for this seed.
        rows: every row of its ``metrics.jsonl`` (or of the record's seed), in file order
            (train and test rows mixed).
        variant: for a record named other than ``<algo>_<task>``, the rest of its name (e.g.
            ``"3M"`` for ``qmix_smax_3m_3M``); then ``"key=value, ..."`` for the config keys the
            runs were split by (``load_runs(..., split_by=...)``); empty by default.
    """

    run_dir: Path
    algo: str
    task: str
    seed: int
    rows: tuple[Mapping[str, Any], ...]
    variant: str = ""

    @property
    def name(self) -> str:
        """The algorithm as shown in legends and tables: ``"qmix"`` or ``"qmix [k=v]"``."""
        return f"{self.algo} [{self.variant}]" if self.variant else self.algo


@dataclass(frozen=True)
class CurveStats:
    """A group's learning curve on its common grid.

    Attributes:
        steps: grid of env steps, ``[G]``, increasing.
        mean: mean over seeds at each grid point, ``[G]``.
        low: lower end of the bootstrap confidence band, ``[G]`` (equals ``mean`` for one seed).
        high: upper end of the band, ``[G]``.
        n_seeds: number of runs (seeds) in the group.
    """

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_seeds: int


# ---- finding and reading run directories ---------------------------------------------------


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a directory holding both ``config.yaml`` and ``metrics.jsonl``."""
    path = Path(path)
    return (path / CONFIG_NAME).is_file() and (path / METRICS_NAME).is_file()


def find_run_dirs(paths: Sequence[Path]) -> list[Path]:
    """Run directories named by ``paths``, expanding parent directories one level deep.

    A path that is a run directory is kept; otherwise its immediate subdirectories that are run
    directories are taken, in name order (so ``runs/`` works). Duplicates are dropped, first
    occurrence kept.

    Args:
        paths: run directories and/or directories that contain run directories.

    Returns:
        The run directories, in the order given.

    Raises:
        ValueError: no paths, a path that does not exist or is not a directory, or a directory
            that neither is nor contains a run directory.
    """
    if not paths:
        raise ValueError("no run directories given: pass run directories or a folder of them")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise ValueError(
                f"{path} is not a directory: pass run directories (or their parent), or records "
                f"NAME{RECORD_SUFFIX} of benchmarks/learn.py"
            )
        if is_run_dir(path):
            children = [path]
        else:
            children = sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p))
            if not children:
                raise ValueError(
                    f"{path} is not a run directory (no {CONFIG_NAME} + {METRICS_NAME}) and "
                    "holds none one level down: pass the run directories themselves"
                )
        for child in children:
            if child.resolve() not in {p.resolve() for p in found}:
                found.append(child)
    return found


def load_run(run_dir: Path, split_by: Sequence[str] = ()) -> RunRecord:
    """Read one run directory.

    Args:
        run_dir: a directory with ``config.yaml`` and ``metrics.jsonl``.
        split_by: config keys whose values become the run's ``variant`` (e.g. ``["mixer_input"]``
            to compare QMIX on the state with QMIX on the concatenated observations).

    Raises:
        ValueError: not a run directory, or its config lacks ``algo``, ``task``, ``seed`` or a
            ``split_by`` key.
    """
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise ValueError(
            f"{run_dir} is not a run directory: it needs {CONFIG_NAME} and {METRICS_NAME}"
        )
    try:
        config = yaml.safe_load((run_dir / CONFIG_NAME).read_text())
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0]
        path = run_dir / CONFIG_NAME
        raise ValueError(f"{path} is not valid YAML ({first}): restore it") from err
    if not isinstance(config, dict):
        raise ValueError(f"{run_dir / CONFIG_NAME} is not a YAML mapping")
    missing = [k for k in ("algo", "task", "seed", *split_by) if k not in config]
    if missing:
        raise ValueError(f"{run_dir / CONFIG_NAME} has no {', '.join(missing)}: is it a qmix run?")
    variant = ", ".join(f"{k}={config[k]}" for k in split_by)
    return RunRecord(
        run_dir=run_dir,
        algo=str(config["algo"]),
        task=str(config["task"]),
        seed=int(config["seed"]),
        rows=tuple(read_metrics(run_dir)),
        variant=variant,
    )


# ---- records of benchmarks/learn.py -------------------------------------------------------


def is_record_path(path: Path) -> bool:
    """Whether ``path`` names a record file: it ends in ``.json`` and is not a directory.

    Whether it exists or is a valid record (not an ``_eval.json``) is :func:`load_record`'s to
    say, so that a mistyped record gets a record's error message.
    """
    path = Path(path)
    return path.suffix == RECORD_SUFFIX and not path.is_dir()


def record_config(text: str, source: str = "the record's .md") -> dict[str, Any]:
    """The resolved configuration in a record's ``.md``.

    ``benchmarks/learn.py`` writes it after the line "Resolved configuration (seed 0 shown):"
    as a fenced ``yaml`` block; the first such block after that line is read (the first in the
    text if the line is missing).

    Args:
        text: the ``.md`` file's text.
        source: what the text came from, for error messages.

    Returns:
        The configuration mapping (``algo``, ``task``, ...).

    Raises:
        ValueError: no closed ``yaml`` block, invalid YAML, or not a mapping.
    """
    start = max(text.find(RECORD_CONFIG_HEADING), 0)
    fence = text.find("```yaml", start)
    if fence < 0:
        raise ValueError(f"{source} has no ```yaml block with the resolved configuration")
    body_start = text.find("\n", fence)
    end = text.find("```", body_start) if body_start >= 0 else -1
    if end < 0:
        raise ValueError(f"{source}: its ```yaml block is not closed by ```")
    try:
        config = yaml.safe_load(text[body_start:end])
    except yaml.YAMLError as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{source}: its ```yaml block is not valid YAML ({problem})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source}: its ```yaml block is not a YAML mapping")
    return config


def record_rows(data: Any, source: str = "the record") -> dict[int, tuple[dict[str, Any], ...]]:
    """Check a record's parsed ``.json`` and return its rows per seed.

    The same checks as :func:`qmix.logging.read_metrics` makes on a run's ``metrics.jsonl``:
    every row is a JSON object with numeric ``env_steps``, and within one seed each kind of row
    (:func:`qmix.logging.row_kind`: test rows, training rows) is at strictly increasing env
    steps -- a step that goes backwards or repeats means spliced or edited rows.

    Args:
        data: the parsed ``.json``: ``{"<seed>": [row, ...], ...}``.
        source: what the data came from, for error messages.

    Returns:
        ``{seed: rows}``, in the file's order.

    Raises:
        ValueError: not a non-empty mapping of integer seeds to non-empty lists of metric rows,
            or rows whose env steps do not increase.
    """
    if not isinstance(data, dict) or not data:
        raise ValueError(
            f"{source} is not a record: expected a JSON object of seed -> list of metric rows, "
            f"as benchmarks/learn.py writes"
        )
    out: dict[int, tuple[dict[str, Any], ...]] = {}
    for key, rows in data.items():
        try:
            seed = int(key)
        except ValueError:
            raise ValueError(f"{source}: key {key!r} is not a seed (an integer)") from None
        if seed in out:
            raise ValueError(f"{source}: seed {seed} appears twice")
        if not isinstance(rows, list) or not rows:
            raise ValueError(f"{source}: seed {key} is not a non-empty list of metric rows")
        last: dict[str, float] = {}  # kind -> env steps of its latest row
        for i, row in enumerate(rows):
            steps = row.get("env_steps") if isinstance(row, dict) else None
            if not isinstance(steps, (int, float)) or isinstance(steps, bool):
                raise ValueError(f"{source}: seed {key}, row {i + 1} is not a metrics row")
            kind = row_kind(row)
            if kind in last and steps <= last[kind]:
                raise ValueError(
                    f"{source}: seed {key}, row {i + 1} ({kind} row) is at {steps} env steps "
                    f"after a row at {last[kind]}: rows were spliced or edited; its figures "
                    "cannot be trusted"
                )
            last[kind] = steps
        out[seed] = tuple(rows)
    return out


def load_record(path: Path, split_by: Sequence[str] = ()) -> list[RunRecord]:
    """Read a record of ``benchmarks/learn.py``: one :class:`RunRecord` per seed.

    ``algo``, ``task`` and the ``split_by`` keys come from the resolved configuration in the
    ``.md`` of the same name (:func:`record_config`); the rows from the ``.json``
    (:func:`record_rows`). A record named other than ``<algo>_<task>`` (``learn.py --name``, a
    variant of a preset) gets the rest of its name as ``variant`` -- ``qmix_smax_3m_3M`` is
    shown as ``qmix [3M]`` -- so it does not merge with the preset's own record.

    Args:
        path: ``NAME.json``, e.g. ``benchmarks/recorded/qmix_lbf_8x8_2p_2f_coop.json``.
        split_by: config keys whose values are added to the ``variant`` (see :func:`load_run`).

    Returns:
        One record per seed, in the file's order; each has ``run_dir=path``.

    Raises:
        ValueError: an ``_eval.json`` (scores, not a record), a missing ``.json`` or ``.md``,
            invalid JSON, a ``.md`` without ``algo``, ``task`` or a ``split_by`` key, or rows
            that :func:`record_rows` refuses.
    """
    path = Path(path)
    if path.name.endswith(EVAL_RECORD_SUFFIX):
        base = path.name[: -len(EVAL_RECORD_SUFFIX)]
        raise ValueError(
            f"{path} holds evaluation scores (benchmarks/learn.py --eval-episodes), not learning "
            f"curves: pass the record {base}{RECORD_SUFFIX}"
        )
    if not path.is_file():
        raise ValueError(f"{path} does not exist: pass a record NAME{RECORD_SUFFIX} or run dirs")
    md = path.with_suffix(".md")
    if not md.is_file():
        raise ValueError(
            f"{path} has no {md.name} next to it: a record is the .json and .md that "
            "benchmarks/learn.py writes, and its algo and task are read from the .md"
        )
    config = record_config(md.read_text(), source=str(md))
    missing = [k for k in ("algo", "task", *split_by) if k not in config]
    if missing:
        raise ValueError(f"{md}: its configuration has no {', '.join(missing)}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg}, line {err.lineno})") from None
    algo, task = str(config["algo"]), str(config["task"])
    preset = f"{algo}_{task}"
    if path.stem == preset:
        name = ""
    elif path.stem.startswith(preset + "_"):
        name = path.stem[len(preset) + 1 :]
    else:
        name = path.stem
    variant = ", ".join([*([name] if name else []), *(f"{k}={config[k]}" for k in split_by)])
    return [
        RunRecord(run_dir=path, algo=algo, task=task, seed=seed, rows=rows, variant=variant)
        for seed, rows in record_rows(data, source=str(path)).items()
    ]


def load_runs(
    paths: Sequence[Path], split_by: Sequence[str] = (), until: int | None = None
) -> list[RunRecord]:
    """Read every run directory and record named by ``paths``.

    A path ending in ``.json`` is a record of ``benchmarks/learn.py`` (:func:`load_record`, one
    run per seed); any other is a run directory or a folder of them (:func:`find_run_dirs`).
    Order is kept and a path named twice is read once.

    Args:
        paths: run directories, directories that contain run directories, and/or records
            (``benchmarks/recorded/NAME.json``).
        split_by: config keys that split a (task, algorithm) group further (see :func:`load_run`).
        until: keep only the rows at or before this many env steps, to compare runs at a
            common budget (a longer run's first part is the run it would have been: nothing
            in training depends on the budget).

    Returns:
        One record per run directory and per seed of each record.

    Raises:
        ValueError: as :func:`find_run_dirs`, :func:`load_run` and :func:`load_record`; or two
            runs of the same task, algorithm (and variant) with the same seed -- counting one
            seed twice would make the bands falsely narrow, so pass only one of them.
    """
    if not paths:
        raise ValueError(
            "no run directories given: pass run directories, a folder of them, or records"
        )
    sources: list[Path] = []
    for raw in paths:
        path = Path(raw)
        for source in [path] if is_record_path(path) else find_run_dirs([path]):
            if source.resolve() not in {s.resolve() for s in sources}:
                sources.append(source)
    runs: list[RunRecord] = []
    for source in sources:
        if is_record_path(source):
            runs.extend(load_record(source, split_by))
        else:
            runs.append(load_run(source, split_by))
    seen: dict[tuple[str, str, int], Path] = {}
    for run in runs:
        key = (run.task, run.name, run.seed)
        if key in seen:
            raise ValueError(
                f"{seen[key]} and {run.run_dir} are both {run.name} on {run.task} with seed "
                f"{run.seed}: pass only one of them"
            )
        seen[key] = run.run_dir
    if until is not None:
        runs = [replace(r, rows=tuple(x for x in r.rows if x["env_steps"] <= until)) for r in runs]
    return runs


def group_runs(runs: Sequence[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    """Runs grouped by ``(task, name)``, keys sorted, each group sorted by seed."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for run in runs:
        groups.setdefault((run.task, run.name), []).append(run)
    return {key: sorted(groups[key], key=lambda r: r.seed) for key in sorted(groups)}


def metric_curve(run: RunRecord, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The evaluations of ``metric`` in one run, sorted by env steps (:func:`rows_curve`).

    Raises:
        ValueError: the run has no row with ``metric``.
    """
    record = run.run_dir.suffix == RECORD_SUFFIX  # one file holds all of a record's seeds
    source = f"{run.run_dir} (seed {run.seed})" if record else str(run.run_dir)
    return rows_curve(run.rows, metric, source=source)


def rows_curve(
    rows: Sequence[Mapping[str, Any]], metric: str, source: str = "the run"
) -> tuple[np.ndarray, np.ndarray]:
    """The evaluations of ``metric`` in metric rows, sorted by env steps.

    Rows without the metric (train rows for a test metric) or with a null value are skipped. If
    two rows share an env step (e.g. a resumed run), the later row wins.

    Args:
        rows: metric rows as in ``metrics.jsonl``.
        metric: e.g. ``"test_return"``.
        source: what the rows came from, for the error message.

    Returns:
        ``(steps [M], values [M])``, steps strictly increasing.

    Raises:
        ValueError: no row has ``metric``.
    """
    by_step: dict[float, float] = {}
    for row in rows:
        value = row.get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and "env_steps" in row:
            by_step[float(row["env_steps"])] = float(value)
    if not by_step:
        present = sorted({k for row in rows for k in row if k != "env_steps"})
        raise ValueError(
            f"{source} has no rows with {metric!r} (it has: {', '.join(present) or 'none'})"
            f"; choose another --metric or leave this run out"
        )
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps])


# ---- statistics ------------------------------------------------------------------------------


def align_curves(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Put several seeds' curves on one grid of env steps.

    Collection is episode-based, so seeds evaluate at slightly different env steps. The grid is
    the union of every seed's evaluation steps that lie inside the range all seeds cover
    (``[max of first steps, min of last steps]``); each seed is linearly interpolated onto it.
    Because every seed's curve is piecewise linear with its kinks at its own evaluation steps,
    the mean over seeds on this grid is exactly the mean of the piecewise-linear curves: no point
    is invented and none is dropped inside the common range. Nothing is extrapolated: where some
    seed has not been evaluated (a shorter or still-running seed) the group has no curve.

    Args:
        curves: one ``(steps [M_k], values [M_k])`` per seed, steps strictly increasing.

    Returns:
        ``(grid [G], values [K, G])`` for K seeds.

    Raises:
        ValueError: no curves, an empty curve, or seeds whose step ranges do not overlap.
    """
    if not curves:
        raise ValueError("no curves to align")
    if any(len(steps) == 0 for steps, _ in curves):
        raise ValueError("cannot align an empty curve")
    start = max(float(steps[0]) for steps, _ in curves)
    stop = min(float(steps[-1]) for steps, _ in curves)
    if start > stop:
        raise ValueError(
            f"the seeds share no range of env steps (one ends at {stop:g} before another starts "
            f"at {start:g}); compare runs that cover the same steps"
        )
    all_steps = np.concatenate([np.asarray(steps, dtype=float) for steps, _ in curves])
    grid = np.unique(all_steps[(all_steps >= start) & (all_steps <= stop)])
    values = np.stack(
        [np.interp(grid, np.asarray(s, dtype=float), np.asarray(v, dtype=float)) for s, v in curves]
    )
    return grid, values


def final_window(steps: np.ndarray, values: np.ndarray, fraction: float) -> np.ndarray:
    """Values evaluated in the last ``fraction`` of a run: ``steps >= (1 - fraction) * steps[-1]``.

    Env steps count from 0, so for a 500k-step run and ``fraction=0.1`` these are the evaluations
    at 450k steps and later. The last evaluation is always included.

    Args:
        steps: ``[M]`` env steps, increasing; values: ``[M]``.

    Returns:
        ``[M']`` values, ``M' >= 1``.
    """
    return values[steps >= (1.0 - fraction) * steps[-1]]


def curve_stats(group: Sequence[RunRecord], metric: str = "test_return") -> CurveStats:
    """Mean curve and bootstrap band of one group of seeds (see :func:`align_curves`).

    Raises:
        ValueError: a run without ``metric``, or seeds that share no range of env steps.
    """
    try:
        grid, values = align_curves([metric_curve(run, metric) for run in group])
    except ValueError as err:
        first = group[0]
        raise ValueError(f"{first.name} on {first.task}: {err}") from None
    mean, low, high = bootstrap_mean_ci(values)
    return CurveStats(steps=grid, mean=mean, low=low, high=high, n_seeds=len(group))


# ---- outputs --------------------------------------------------------------------------------


def metric_label(metric: str) -> str:
    """Axis label for a metric: ``"greedy test return"``, ``"test win rate"``, ..."""
    return _LABELS.get(metric, metric.replace("_", " "))


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def plot_comparison(runs: Sequence[RunRecord], path: Path, metric: str = "test_return") -> Path:
    """Draw each algorithm's mean ``metric`` over seeds against env steps, one panel per task.

    The line is the mean over seeds on the common grid of :func:`align_curves`; the shaded band
    is the 95% percentile-bootstrap interval of that mean (2,000 resamples, seed 0, rliable; see
    :func:`bootstrap_mean_ci`); a group with one seed gets its line only; a group whose seeds
    share a single evaluation step is a marker (with an error bar for several seeds). An
    algorithm keeps its colour across panels. Legends read ``"qmix (3 seeds)"``.

    Args:
        runs: runs to draw (e.g. from :func:`load_runs`).
        path: PNG to write; parent directories are created.
        metric: metrics.jsonl key to draw, e.g. ``"test_return"`` or ``"test_win_rate"``.

    Returns:
        ``path``.

    Raises:
        ValueError: no runs, a run without ``metric``, or seeds that share no range of steps.
    """
    from matplotlib.figure import Figure  # optional dependency: the ``plots`` extra
    from matplotlib.ticker import EngFormatter

    if not runs:
        raise ValueError("no runs to plot")
    groups = group_runs(runs)
    stats = {key: curve_stats(group, metric) for key, group in groups.items()}
    tasks = sorted({task for task, _ in groups})
    names = sorted({name for _, name in groups})
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}

    cols = min(len(tasks), 3)
    rows = math.ceil(len(tasks) / cols)
    # No pyplot: a bare Figure leaves matplotlib's global backend and figure list alone.
    fig = Figure(figsize=(5.6 * cols, 3.9 * rows), dpi=110, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, task in zip(axes, tasks, strict=False):
        for (group_task, name), curve in stats.items():
            if group_task != task:
                continue
            colour = colours[name]
            label = f"{name} ({_seeds(curve.n_seeds)})"
            marker = "o" if curve.steps.size == 1 else None  # a lone evaluation must show
            ax.plot(curve.steps, curve.mean, color=colour, lw=1.8, marker=marker, label=label)
            if curve.n_seeds > 1 and curve.steps.size == 1:  # a band of one point is invisible
                err = np.array([curve.mean - curve.low, curve.high - curve.mean])  # [2, 1]
                ax.errorbar(curve.steps, curve.mean, yerr=err, fmt="none", ecolor=colour, capsize=4)
            elif curve.n_seeds > 1:
                ax.fill_between(curve.steps, curve.low, curve.high, color=colour, alpha=0.2, lw=0)
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(metric_label(metric))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 500k, 1M
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    if any(curve.n_seeds > 1 for curve in stats.values()):
        fig.suptitle("mean over seeds; band: 95% bootstrap CI of the mean", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _fmt_steps(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    if x >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.0f}"


def summary_rows(runs: Sequence[RunRecord], metric: str = "test_return") -> list[dict[str, Any]]:
    """The numbers behind :func:`summary_table`, one dict per (task, algorithm).

    Keys: ``task``, ``algo`` (the group name), ``seeds``, ``final`` (mean over seeds of each
    seed's last evaluation), ``final_se`` (its standard error, ``std(ddof=1) / sqrt(K)``; 0 for
    one seed), ``max`` (mean over seeds of each seed's best evaluation), ``iqm`` (see
    :func:`summary_table`), ``first_step`` / ``last_step`` (range of the seeds' last evaluation
    steps).

    Raises:
        ValueError: no runs, or a run without ``metric``.
    """
    if not runs:
        raise ValueError("no runs to summarise")
    out: list[dict[str, Any]] = []
    for (task, name), group in group_runs(runs).items():
        curves = [metric_curve(run, metric) for run in group]
        finals = np.array([values[-1] for _, values in curves])  # [K]
        bests = np.array([values.max() for _, values in curves])  # [K]
        pooled = np.concatenate([final_window(s, v, IQM_FINAL_FRACTION) for s, v in curves])
        k = len(group)
        last_steps = [float(steps[-1]) for steps, _ in curves]
        out.append(
            {
                "task": task,
                "algo": name,
                "seeds": k,
                "final": float(finals.mean()),
                "final_se": float(finals.std(ddof=1) / math.sqrt(k)) if k > 1 else 0.0,
                "max": float(bests.mean()),
                "iqm": iqm(pooled),
                "first_step": min(last_steps),
                "last_step": max(last_steps),
            }
        )
    return out


def summary_table(runs: Sequence[RunRecord], metric: str = "test_return") -> str:
    """A Markdown table with one row per (task, algorithm), sorted by task then algorithm.

    Columns (K = number of seeds of the group; every number to 3 decimals):

    - ``seeds``: K.
    - ``final``: mean over seeds of each seed's last evaluation of ``metric``, ``± standard
      error`` (sample std with ddof=1 over sqrt K; omitted for one seed).
    - ``max``: mean over seeds of each seed's best evaluation (optimistic: a maximum of noisy
      evaluations is biased upwards).
    - ``IQM (last 10%)``: interquartile mean (:func:`iqm`) of one pool: every seed's evaluations
      at env steps >= 0.9 x that seed's last evaluation step (each evaluation is itself a mean
      over that test's episodes). Seeds with more evaluations in that window weigh more.
    - ``at env steps``: env steps of the last evaluation (a range when the seeds differ).

    Args:
        runs: the runs (e.g. from :func:`load_runs`).
        metric: metrics.jsonl key, e.g. ``"test_return"`` or ``"test_win_rate"``.

    Returns:
        The table, ending with a newline.

    Raises:
        ValueError: no runs, or a run without ``metric``.
    """
    header = (
        f"| task | algorithm | seeds | final {metric} (± s.e.) | max {metric} "
        f"| IQM {metric} (last 10%) | at env steps |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|"]
    for row in summary_rows(runs, metric):
        final = _fmt(row["final"])
        if row["seeds"] > 1:
            final += f" ± {_fmt(row['final_se'])}"
        first, last = _fmt_steps(row["first_step"]), _fmt_steps(row["last_step"])
        steps = first if first == last else f"{first}–{last}"
        cells = [row["task"], row["algo"], str(row["seeds"]), final]
        cells += [_fmt(row["max"]), _fmt(row["iqm"]), steps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
