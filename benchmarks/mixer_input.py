"""Issue 17's study: what should the hypernetworks see? (the question of the user's notes)

Run (from the repository root)::

    .venv/bin/python benchmarks/mixer_input.py run [--tasks lbf_8x8,mpe_spread]
        [--algos qmix] [--jobs 2] [--out runs/mixer_input]
    .venv/bin/python benchmarks/mixer_input.py status
    .venv/bin/python benchmarks/mixer_input.py report
    .venv/bin/python benchmarks/mixer_input.py health [--tasks smax_2s3z] [--algos ow_qmix]
    .venv/bin/python benchmarks/mixer_input.py inputs [--tasks smax_3m,smax_2s3z]

``run`` trains every (task, algorithm, variant, seed) of the study that is not finished yet,
``--jobs`` at a time (one torch thread each), resuming each run from its checkpoint under
``--out``; a run that finishes has its test rows written at once to
``benchmarks/recorded/mixer_input/<task>/<algo>_<variant>.json`` (``{seed: rows}``), so the
study survives the loss of its run folders and regenerates from one command (the run's
training rows, the learner's health, go beside them under ``<task>/training/``; ``run`` adds
them to a seed recorded without them if its run folder is still there, unchanged): ``run``
ends with ``report``, which reads only the records and rewrites the figures under
``docs/images/`` and the tables of ``docs/mixer_input.md`` (between its report markers),
always for the whole study: ``--tasks`` and ``--algos`` choose what ``run`` trains, never what
the page shows.
Statistics by rliable (:mod:`qmix.stats`): per run, the *final* score (mean of the test
evaluations in the last 10% of the budget) and the *AUC* (the area under the test curve over
the budget, divided by its length: the mean score during training); per (task, algorithm,
variant), the IQM over seeds with a 95% stratified-bootstrap interval; and the probability that
a run of a variant beats a run of ``state`` on the final score. ``health`` prints, for each
recorded run with training rows, the largest rises of its TD loss, central loss (OW-QMIX) and
mixer gain (each against the 5 rows before) and the training return around the gain's: how a
collapse shows itself. ``inputs`` plays each task with random actions and prints what
``state`` and ``obs_concat`` look like as the hypernetworks' input (width, norm, how many
features are non-zero, how many never change). The
order puts QMIX on every task first (the notes' question is QMIX's), then QPLEX and OW-QMIX;
within one, seed by seed across the four variants, so a study stopped early stays balanced.

The variants (``mixer_input``): ``state`` (the simulator's global state: LBF and MPE through
their family presets' ``env_args.state: simulator``), ``obs_concat``, ``state_obs``, and
``constant`` (the control). Same budget for every variant of a task.

Compute plan (this 2-core machine; minutes per QMIX run alone, from the presets' records):

| task | budget | QMIX run | QMIX, 4 variants x 5 seeds | QPLEX, OW-QMIX: 4 x 3 each |
|---|---|---|---|---|
| lbf_8x8 (8x8-2p-2f-coop, demo preset) | 200k | ~5 min | ~110 min | ~4x, ~2x QMIX's run |
| smax_3m | 500k | ~9 min | ~170 min | ~1.6x, ~1.3x |
| lbf_2s_8x8 (sight 2, GRU agents) | 250k | ~18 min | ~360 min | ~2x, ~2x |
| mpe_spread (simple_spread) | 300k | ~11 min | ~210 min | ~2x, ~2x |
| smax_2s3z | 500k | ~12 min | ~240 min | ~1.6x, ~1.3x |

The QPLEX and OW-QMIX factors: an update's cost against QMIX's (``update_cost.py``, one
torch thread, 2026-12-07, beside two study runs: feed-forward agents on LBF 8x8, QPLEX 6.6x
and OW-QMIX 3.0x QMIX's 9.7 ms on batches of short episodes; GRU agents, the LBF family's,
2.0x and 2.1x of 69 ms) over a run where updates are about half the time (a QMIX lbf_8x8
run: 21,499 updates in 417 s); on SMAX, where collection dominates, the records' 1M-step runs
(``qplex_smax_3m_1M``, ``ow_qmix_smax_3m_1M``: 1,680-1,790 s and 1,230-1,370 s against
~1,050 s for QMIX). ``status`` prices a QPLEX or OW-QMIX run at these factors
(``Task.plan_cost``) times QMIX's recorded median on the task until one of its own runs there
is recorded, then at the median of its recorded ones.

QMIX alone is about 18 core-hours (9 hours on both cores); QPLEX about 30 core-hours and
OW-QMIX about 20 more: about 34 hours of both cores for the whole study, many sessions, which
is why every run resumes and every finished run is recorded at once. ``status`` prices what is
left from the runs recorded so far (their median minutes, two at a time beside other work):
after the first 16 runs (lbf_8x8, 7.0 minutes each, not 5) it said 61 core-hours, about 31
hours of both cores.
"""

from __future__ import annotations

import argparse
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# benchmarks/learn.py: one resumable seed
from learn import run_seed
from qmix.compare import align_curves, final_window, metric_label, rows_curve
from qmix.logging import METRICS_NAME, read_metrics
from qmix.stats import iqm_ci, iqm_curve_ci, probability_of_improvement

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "benchmarks" / "recorded" / "mixer_input"
VARIANTS = ("state", "obs_concat", "state_obs", "constant")
SEEDS = {"qmix": 5, "qplex": 3, "ow_qmix": 3}  # at least 5 for QMIX, 3 for the others
# what a test row keeps in the record (the curve, its score and when)
KEPT = ("env_steps", "test_return", "test_win_rate", "wall_seconds")
# what a training row keeps in the training record (the learner's health; the mixer's gain is
# absent for mixers without one, ``central_loss`` is OW-QMIX's)
TRAINING_KEPT = (
    "env_steps",
    "train_return",
    "loss",
    "grad_norm",
    "q_taken_mean",
    "target_mean",
    "mixer_gain",
    "central_loss",
    "buffer_episodes",
)
#: The final score of a run: the mean of its test evaluations in this last fraction of it.
FINAL_FRACTION = 0.1
#: ``inputs``: the steps of random play (of 8 environments) that its statistics are taken over.
INPUT_STEPS = 300
DOC = ROOT / "docs" / "mixer_input.md"
IMAGES = ROOT / "docs" / "images"
#: ``report`` rewrites what lies between these two lines of the page.
BEGIN, END = "<!-- mixer_input report: begin -->", "<!-- mixer_input report: end -->"


@dataclass(frozen=True)
class Task:
    """A task of the study: the preset (or family) named, its overrides and budget."""

    preset: str
    overrides: tuple[str, ...]
    budget: int
    plan_minutes: float  # the compute plan's minutes for one QMIX run (the docstring's table)
    plan_cost: dict[str, float]  # the plan's cost of a QPLEX and of an OW-QMIX run, QMIX's = 1
    metric: str = "test_return"
    bounded: bool = True  # scores in [0, 1] (LBF's return, a win rate): pooled across tasks


TASKS = {  # in the order they run: the cheaper, more telling contrasts first
    # the demo preset keeps the observations as its state; the study gives it the simulator's
    "lbf_8x8": Task(
        "lbf_8x8_2p_2f_coop", ("env_args.state=simulator",), 200_000, 5, {"qplex": 4, "ow_qmix": 2}
    ),
    "smax_3m": Task("smax_3m", (), 500_000, 9, {"qplex": 1.6, "ow_qmix": 1.3}, "test_win_rate"),
    "lbf_2s_8x8": Task(
        "lbf",
        ("env_args.key=Foraging-2s-8x8-2p-2f-coop-v3",),
        250_000,
        18,
        {"qplex": 2, "ow_qmix": 2},
    ),
    "mpe_spread": Task(
        "mpe_simple_spread", (), 300_000, 11, {"qplex": 2, "ow_qmix": 2}, bounded=False
    ),
    "smax_2s3z": Task(
        "smax",
        ("env_args.map_name=2s3z",),
        500_000,
        12,
        {"qplex": 1.6, "ow_qmix": 1.3},
        "test_win_rate",
    ),
}


@dataclass(frozen=True)
class Job:
    task: str
    algo: str
    variant: str
    seed: int

    def overrides(self) -> list[str]:
        """The run's overrides: the task's, its budget, the variant."""
        task = TASKS[self.task]
        return [*task.overrides, f"total_env_steps={task.budget}", f"mixer_input={self.variant}"]

    def record(self) -> Path:
        return RECORDED / self.task / f"{self.algo}_{self.variant}.json"

    def training_record(self) -> Path:
        return RECORDED / self.task / "training" / f"{self.algo}_{self.variant}.json"

    def run_dir(self, out: Path) -> Path:
        """Where :func:`run` trains this job (``learn.run_seed``'s name under its folder)."""
        name = f"{self.algo}_{TASKS[self.task].preset}_seed{self.seed}"
        return out / self.task / f"{self.algo}_{self.variant}" / name


def plan_cost(task: str, algo: str) -> float:
    """The plan's cost of one run of ``algo`` on ``task``, a QMIX run's = 1."""
    return 1.0 if algo == "qmix" else TASKS[task].plan_cost[algo]


def jobs(tasks: list[str], algos: list[str]) -> list[Job]:
    """Every run of the study, QMIX on every task first, then seed by seed across variants."""
    return [
        Job(task, algo, variant, seed)
        for algo in algos
        for task in tasks
        for seed in range(SEEDS[algo])
        for variant in VARIANTS
    ]


def seeds_of(path: Path) -> dict[str, Any]:
    """A record's rows by seed (empty if none yet)."""
    return json.loads(path.read_text()) if path.exists() else {}


def recorded(job: Job) -> dict[str, Any]:
    """The record's rows by seed (empty if none yet)."""
    return seeds_of(job.record())


def curve_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The test rows of a run, each with the kept fields only."""
    return [{k: r[k] for k in KEPT if k in r} for r in rows if "test_return" in r]


def training_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The training rows of a run (those with a loss), each with the kept fields only."""
    return [{k: r[k] for k in TRAINING_KEPT if k in r} for r in rows if "loss" in r]


_lock = threading.Lock()


def add_seed(path: Path, seed: int, rows: list[dict[str, Any]]) -> None:
    """Write one seed's rows into the record at ``path``, in seed order (hold ``_lock``)."""
    seeds = seeds_of(path)
    seeds[str(seed)] = rows
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = dict(sorted(seeds.items(), key=lambda kv: int(kv[0])))
    path.write_text(json.dumps(ordered, indent=0) + "\n")


def write_record(job: Job, rows: list[dict[str, Any]]) -> None:
    """Add one finished seed's test rows to its record and its training rows to its training
    record (under a lock: jobs run in threads)."""
    with _lock:
        add_seed(job.record(), job.seed, curve_rows(rows))
        if training := training_rows(rows):
            add_seed(job.training_record(), job.seed, training)


def add_training(job: Job, out: Path) -> bool:
    """Give a recorded seed without training rows those of its run folder, if the folder is
    still there and is the run recorded (the same test rows); whether it did."""
    seed, metrics, test = str(job.seed), job.run_dir(out) / METRICS_NAME, recorded(job)
    done = seed in seeds_of(job.training_record())
    if seed not in test or done or not metrics.exists():
        return False
    rows = read_metrics(job.run_dir(out))
    if curve_rows(rows) != test[seed]:
        return False  # another run's folder (restarted, or not finished): not this record's
    with _lock:
        add_seed(job.training_record(), job.seed, training_rows(rows))
    return True


def run(job: Job, out: Path) -> str:
    """Train (or resume) one run to its budget and record it; a line saying what happened."""
    if str(job.seed) in recorded(job):
        added = " (its training rows added from its run folder)" if add_training(job, out) else ""
        return f"{job}: recorded already{added}"
    result = run_seed(
        job.algo, TASKS[job.task].preset, job.seed, job.overrides(), job.run_dir(out).parent, True
    )
    last = max(r["env_steps"] for r in result["rows"])
    if last < TASKS[job.task].budget:
        raise RuntimeError(f"{job}: stopped at {last} env steps, short of its budget")
    write_record(job, result["rows"])
    return f"{job}: done in {result['wall']:.0f} s"


def attempt(job: Job, out: Path) -> tuple[str, bool]:
    """:func:`run`, its failure a line instead of a stop: the other runs go on."""
    try:
        return run(job, out), True
    except Exception as err:  # a failed run (diverged, env crashed): report it, keep going
        lines = str(err).strip().splitlines() or [type(err).__name__]
        tail = f" ... {lines[-1]}" if len(lines) > 1 else ""
        return f"{job}: FAILED: {lines[0]}{tail}", False


def recorded_minutes(task: str, algo: str) -> list[float]:
    """The training minutes of each recorded run of ``algo`` on ``task``."""
    return [
        max(r.get("wall_seconds", 0.0) for r in rows) / 60
        for job in jobs([task], [algo])
        if (rows := recorded(job).get(str(job.seed)))
    ]


def minutes_a_run(task: str, algo: str) -> tuple[float, str]:
    """What a run of ``algo`` on ``task`` costs, and where the figure comes from: the median of
    its recorded runs; while none is recorded, the plan's factor (:func:`plan_cost`) times
    QMIX's median on the task, or times the plan's minutes for QMIX while QMIX has none."""
    if walls := recorded_minutes(task, algo):
        return float(np.median(walls)), "median of recorded"
    if algo != "qmix" and (qmix := recorded_minutes(task, "qmix")):
        return float(np.median(qmix)) * plan_cost(task, algo), "plan x QMIX's median"
    return TASKS[task].plan_minutes * plan_cost(task, algo), "plan"


def status(tasks: list[str], algos: list[str]) -> str:
    """Runs recorded per task and algorithm, and the core-hours left, each run left priced by
    :func:`minutes_a_run`."""
    lines = [
        "| task | algorithm | recorded | minutes a run | core-hours left |",
        "|---|---|---:|---:|---:|",
    ]
    done_all = left_all = 0
    hours_left = 0.0
    for task in tasks:
        for algo in algos:
            done = len(recorded_minutes(task, algo))
            minutes, source = minutes_a_run(task, algo)
            left = len(jobs([task], [algo])) - done
            hours_left += left * minutes / 60
            done_all, left_all = done_all + done, left_all + left
            lines.append(
                f"| {task} | {algo} | {done} of {done + left} | {minutes:.1f} ({source}) "
                f"| {left * minutes / 60:.1f} |"
            )
    lines.append(
        f"\n{done_all} runs recorded under {RECORDED.relative_to(ROOT)}, {left_all} left: about "
        f"{hours_left:.1f} core-hours ({hours_left / 2:.1f} hours on two cores)"
    )
    return "\n".join(lines)


# ---- report: what the records say ------------------------------------------------------------

Seeds = dict[str, list[dict[str, Any]]]  # a record: {seed: test rows}


SCORES = ("final", "AUC")  # the columns of scores_of


@dataclass(frozen=True)
class Estimate:
    """One point with its 95% interval, for the figures: an IQM over seeds (``kind="iqm"``) or
    a probability of improvement over ``state`` (``kind="poi"``) of one score (``SCORES``)."""

    kind: str
    score: str
    task: str
    algo: str
    variant: str
    point: float
    low: float
    high: float


#: ``health`` looks for the largest rises from this fraction of the budget on (before it, the
#: values are still settling from their initial scale) ...
SETTLED_FRACTION = 0.2
#: ... each against the median of this many training rows before it (and compares the training
#: return over as many rows before and after it).
AROUND = 5


def largest_rise(rows: list[dict[str, Any]], key: str, budget: int) -> tuple[int, float] | None:
    """The training row, from :data:`SETTLED_FRACTION` of ``budget`` on, where ``key`` is the
    largest against its median over the :data:`AROUND` rows before it: its index in ``rows``
    and that ratio (None if no such row has the key)."""
    best: tuple[int, float] | None = None
    for i, row in enumerate(rows):
        before = [r[key] for r in rows[max(i - AROUND, 0) : i] if key in r]
        if key not in row or not before or row["env_steps"] < SETTLED_FRACTION * budget:
            continue
        ratio = row[key] / max(float(np.median(before)), 1e-12)
        if best is None or ratio > best[1]:
            best = (i, ratio)
    return best


def around(rows: list[dict[str, Any]], i: int, key: str) -> tuple[float, float]:
    """The mean of ``key`` over the :data:`AROUND` rows before row ``i`` and after it."""

    def mean(part: list[dict[str, Any]]) -> float:
        values = [r[key] for r in part if key in r]
        return float(np.mean(values)) if values else float("nan")

    return mean(rows[max(i - AROUND, 0) : i]), mean(rows[i + 1 : i + 1 + AROUND])


def health(tasks: list[str], algos: list[str]) -> str:
    """A table of the largest rises of the TD loss, the central loss and the mixer's gain of
    every recorded run with training rows, and the training return around the gain's."""
    lines = [
        f"Largest rise of the TD loss, of OW-QMIX's central loss and of the mixer's gain in"
        f" each run, from {SETTLED_FRACTION:.0%} of its budget on: a training row's value over"
        f" its median in the {AROUND} rows before (x), at env steps; and the mean training"
        f" return in the {AROUND} rows before and after the gain's rise.",
        "",
        "| task | algorithm | mixer input | seed | loss rise | at | central loss rise | at"
        " | gain rise | at | train return before, after |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for job in jobs(tasks, algos):
        rows = seeds_of(job.training_record()).get(str(job.seed))
        if not rows:
            continue
        cells = [job.task, job.algo, f"`{job.variant}`", str(job.seed)]
        for key in ("loss", "central_loss", "mixer_gain"):
            rise = largest_rise(rows, key, TASKS[job.task].budget)
            cells += [f"{rise[1]:.1f}", f"{rows[rise[0]]['env_steps']:,}"] if rise else ["–", "–"]
        if rise:  # the gain's
            cells.append("{:.2f}, {:.2f}".format(*around(rows, rise[0], "train_return")))
        else:
            cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    if len(lines) == 4:
        lines.append("\nNo training rows recorded for these tasks and algorithms.")
    return "\n".join(lines)


def input_stats(x: np.ndarray) -> dict[str, float]:
    """What a mixer input ``x [R, S']`` (R rows) looks like: its width, the median norm of a row,
    the median number of non-zero features in a row (the features an update of the
    hypernetworks' first layer moves the output by), the fraction of features that never
    change, and the largest magnitude."""
    return {
        "width": float(x.shape[1]),
        "row_norm": float(np.median(np.linalg.norm(x, axis=1))),
        "active": float(np.median((x != 0).sum(axis=1))),
        "constant": float(np.mean(x.std(axis=0) == 0)),
        "largest": float(np.abs(x).max()),
    }


def random_play(
    task: str, steps: int = INPUT_STEPS, envs: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """The states ``[R, S]`` and joint observations ``[R, N * O]`` of ``envs`` environments of
    ``task`` (its study settings) under uniformly random available actions for ``steps`` steps
    each, every finished episode reset (R = steps * envs); seeded, so the same every time."""
    from qmix.config import make_config
    from qmix.envs.registry import make_vector_env

    cfg = make_config("qmix", TASKS[task].preset, list(TASKS[task].overrides))
    env = make_vector_env(cfg.env, cfg.env_args, envs)
    rng, every = np.random.default_rng(0), np.ones(envs, dtype=bool)
    env.reset(list(range(envs)), every)
    states, observations = [], []
    try:
        for t in range(steps):
            states.append(np.asarray(env.states(), dtype=np.float64))
            observations.append(np.asarray(env.observations(), dtype=np.float64).reshape(envs, -1))
            avail = np.asarray(env.avail_actions(), dtype=np.float64)  # [B, N, A]
            pick = rng.random(avail.shape) * avail  # the largest of random keys among the allowed
            step = env.step(pick.argmax(axis=-1), every)
            done = np.asarray(step.terminated) | np.asarray(step.truncated)
            if done.any():
                env.reset([envs * (t + 1) + i for i in range(envs)], done)
    finally:
        env.close()
    return np.concatenate(states), np.concatenate(observations)


def inputs(tasks: list[str]) -> str:
    """A table of :func:`input_stats` of ``state`` and ``obs_concat`` (``state_obs`` is the two
    side by side; ``constant`` is a single 1) on each task, under random play."""
    lines = [
        f"The mixer's input under uniformly random actions ({INPUT_STEPS} steps of 8"
        " environments per task): its width, the median norm of a row, the median number of"
        " non-zero features in a row, the fraction of features that never change, the largest"
        " magnitude.",
        "",
        "| task | mixer input | width | row norm | non-zero a row | constant features | largest |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for task in tasks:
        for variant, x in zip(("state", "obs_concat"), random_play(task), strict=True):
            st = input_stats(x)
            lines.append(
                f"| {task} | `{variant}` | {st['width']:.0f} | {st['row_norm']:.2f}"
                f" | {st['active']:.0f} | {st['constant']:.2f} | {st['largest']:.2f} |"
            )
    return "\n".join(lines)


def run_scores(rows: list[dict[str, Any]], metric: str) -> tuple[float, float]:
    """A run's ``(final, auc)`` (see the module's docstring)."""
    steps, values = rows_curve(rows, metric)
    final = float(final_window(steps, values, FINAL_FRACTION).mean())
    if steps.size == 1:
        return final, float(values[0])
    auc = float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))
    return final, auc


def load_study(tasks: list[str], algos: list[str]) -> dict[tuple[str, str, str], Seeds]:
    """Every record of the study that has a seed: ``{(task, algo, variant): {seed: rows}}``."""
    out = {}
    for task in tasks:
        for algo in algos:
            for variant in VARIANTS:
                seeds = recorded(Job(task, algo, variant, 0))
                if seeds:
                    out[(task, algo, variant)] = seeds
    return out


def scores_of(seeds: Seeds, metric: str, only: set[str] | None = None) -> np.ndarray:
    """``[K, 2]``: each seed's (final, auc), in seed order (the seeds in ``only`` if given)."""
    keys = sorted((k for k in seeds if only is None or k in only), key=int)
    return np.array([run_scores(seeds[k], metric) for k in keys]).reshape(-1, 2)


def _ci(point: float, low: float, high: float) -> str:
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def task_table(
    study: dict[tuple[str, str, str], Seeds], task: str
) -> tuple[list[str], list[Estimate]]:
    """One task's Markdown table and its rows of numbers for the figures."""
    metric = TASKS[task].metric
    lines = [
        f"| algorithm | mixer input | seeds | IQM final {metric} [95% CI] | IQM AUC [95% CI] "
        f"| P(final > state's) [95% CI] | P(AUC > state's) [95% CI] |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    numbers: list[Estimate] = []
    for (t, algo, variant), seeds in study.items():
        if t != task:
            continue
        scores = scores_of(seeds, metric)  # [K, 2]: final, AUC
        cells = [algo, f"`{variant}`", str(len(scores))]
        for column, score in enumerate(SCORES):
            iqm = iqm_ci(scores[:, column])
            numbers.append(Estimate("iqm", score, task, algo, variant, *iqm))
            cells.append(_ci(*iqm))
        reference = study.get((task, algo, "state"))
        common = set(seeds) & set(reference or {})
        if variant == "state" or not reference or len(common) < 2:
            lines.append("| " + " | ".join([*cells, "–", "–"]) + " |")
            continue
        x = scores_of(seeds, metric, common)  # [K', 2]: the seeds both have
        y = scores_of(reference, metric, common)  # [K', 2]
        for column, score in enumerate(SCORES):
            poi = probability_of_improvement(x[:, column], y[:, column])
            numbers.append(Estimate("poi", score, task, algo, variant, *poi))
            fewer = f" ({len(common)} seeds)" if len(common) < len(seeds) else ""
            cells.append(_ci(*poi) + fewer)
        lines.append("| " + " | ".join(cells) + " |")
    return lines, numbers


def complete_tasks(
    study: dict[tuple[str, str, str], Seeds], algo: str, tasks: list[str]
) -> list[str]:
    """The tasks on which every variant of ``algo`` has all its seeds."""
    full = SEEDS[algo]
    return [t for t in tasks if all(len(study.get((t, algo, v), {})) == full for v in VARIANTS)]


def task_matrix(
    study: dict[tuple[str, str, str], Seeds], algo: str, variant: str, names: list[str]
) -> np.ndarray:
    """``[K, T, 2]``: each seed's (final, AUC) on each of the tasks ``names``."""
    per_task = [scores_of(study[(t, algo, variant)], TASKS[t].metric) for t in names]
    return np.stack(per_task, axis=1)


def aggregate_table(
    study: dict[tuple[str, str, str], Seeds], tasks: list[str], algos: list[str]
) -> tuple[list[str], list[Estimate]]:
    """Across tasks, per algorithm, over the tasks where every variant has all its seeds: the
    IQM of the runs of the tasks scored in [0, 1] pooled (a bootstrap stratified by task), and
    the probability of improvement over ``state`` averaged over the tasks (scale-free, so MPE's
    returns count too). Empty while no algorithm has two complete tasks."""
    notes: list[str] = []
    rows: list[str] = []
    numbers: list[Estimate] = []
    for algo in algos:
        complete = complete_tasks(study, algo, tasks)
        if len(complete) < 2:
            continue
        pooled = [t for t in complete if TASKS[t].bounded]
        notes.append(
            f"{algo}: IQM over {', '.join(pooled) or 'no task'} (scores in [0, 1]); "
            f"probabilities averaged over {', '.join(complete)}."
        )
        reference = task_matrix(study, algo, "state", complete)  # [K, T, 2]
        for variant in VARIANTS:
            cells = [algo, f"`{variant}`"]
            runs = task_matrix(study, algo, variant, complete)  # [K, T, 2]
            on_scale = runs[:, [complete.index(t) for t in pooled]]  # [K, T', 2]
            for column, score in enumerate(SCORES):
                if not pooled:
                    cells.append("–")
                    continue
                iqm = iqm_ci(on_scale[..., column])
                numbers.append(Estimate("iqm", score, "across tasks", algo, variant, *iqm))
                cells.append(_ci(*iqm))
            for column, score in enumerate(SCORES):
                if variant == "state":
                    cells.append("–")
                    continue
                poi = probability_of_improvement(runs[..., column], reference[..., column])
                numbers.append(Estimate("poi", score, "across tasks", algo, variant, *poi))
                cells.append(_ci(*poi))
            rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return [], numbers
    header = [
        "| algorithm | mixer input | IQM final [95% CI] | IQM AUC [95% CI] "
        "| P(final > state's) [95% CI] | P(AUC > state's) [95% CI] |",
        "|---|---|---:|---:|---:|---:|",
    ]
    return [*notes, "", *header, *rows], numbers


def plot_task(study: dict[tuple[str, str, str], Seeds], task: str, path: Path) -> Path:
    """One task's curves: a panel per algorithm, a line per variant (IQM over seeds, 95% CI)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    metric = TASKS[task].metric
    algos = [a for a in SEEDS if any((task, a, v) in study for v in VARIANTS)]
    fig = Figure(figsize=(5.0 * len(algos), 3.8), dpi=110, layout="constrained")
    axes = fig.subplots(1, len(algos), squeeze=False)[0]
    for ax, algo in zip(axes, algos, strict=True):
        for i, variant in enumerate(VARIANTS):
            seeds = study.get((task, algo, variant))
            if not seeds:
                continue
            curves = [rows_curve(rows, metric, f"seed {k}") for k, rows in seeds.items()]
            grid, values = align_curves(curves)  # [G], [K, G]
            mid, low, high = iqm_curve_ci(values)
            label = f"{variant} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})"
            ax.plot(grid, mid, color=f"C{i}", lw=1.6, label=label)
            ax.fill_between(grid, low, high, color=f"C{i}", alpha=0.15, lw=0)
        ax.set_title(f"{algo} on {task}")
        ax.set_xlabel("environment steps")
        ax.set_ylabel(metric_label(metric))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("IQM over seeds; band: 95% bootstrap CI (rliable)", fontsize=9)
    fig.savefig(path)
    return path


def plot_intervals(numbers: list[Estimate], kind: str, path: Path) -> Path:
    """Points with 95% CIs of one ``kind`` (``"iqm"`` or ``"poi"``): a row of panels per task,
    one panel per score (final, AUC), a line per algorithm and variant."""
    from matplotlib.figure import Figure

    chosen = [n for n in numbers if n.kind == kind]
    tasks = list(dict.fromkeys(n.task for n in chosen))
    per_panel = max(sum(n.task == t and n.score == SCORES[0] for n in chosen) for t in tasks)
    height = 0.8 + 0.28 * max(per_panel, 3)
    fig = Figure(figsize=(8.0, height * len(tasks)), dpi=110, layout="constrained")
    axes = fig.subplots(len(tasks), len(SCORES), squeeze=False)
    for row, task in enumerate(tasks):
        for ax, score in zip(axes[row], SCORES, strict=True):
            lines = [n for n in chosen if n.task == task and n.score == score]
            for y, n in enumerate(lines):
                colour = f"C{VARIANTS.index(n.variant)}"
                ax.plot([n.low, n.high], [y, y], color=colour, lw=5, alpha=0.45)
                ax.plot([n.point], [y], "|", color="k", ms=12)
            ax.set_yticks(range(len(lines)), [f"{n.algo} {n.variant}" for n in lines])
            ax.set_ylim(len(lines) - 0.5, -0.5)  # first line on top
            ax.grid(axis="x", alpha=0.3)
            if kind == "poi":
                ax.axvline(0.5, color="grey", ls="--", lw=1)
                ax.set_xlim(-0.03, 1.03)
                ax.set_title(f"{task}: P({score} > state's)", fontsize=9)
            else:
                label = metric_label(TASKS[task].metric) if task in TASKS else "score"
                ax.set_title(f"{task}: IQM {score} {label}", fontsize=9)
    fig.savefig(path)
    return path


def report(tasks: list[str], algos: list[str]) -> str:
    """Rewrite the figures and the page's tables from the records; the tables' Markdown."""
    study = load_study(tasks, algos)
    done = sum(len(seeds) for seeds in study.values())
    total = len(jobs(tasks, algos))
    lines = [
        f"*Written by `benchmarks/mixer_input.py report` from {done} of the study's {total} "
        "runs (`benchmarks/recorded/mixer_input/`).*",
        "",
    ]
    numbers: list[Estimate] = []
    IMAGES.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        if not any(key[0] == task for key in study):
            lines += [f"### {task}", "", "No run recorded yet.", ""]
            continue
        table, found = task_table(study, task)
        numbers += found
        image = plot_task(study, task, IMAGES / f"mixer_input_{task}.png")
        lines += [f"### {task}", "", *table, "", f"![{task}](images/{image.name})", ""]
    across, found = aggregate_table(study, tasks, algos)
    numbers += found
    across = across or ["Not yet: no algorithm has every variant's seeds on two tasks."]
    lines += ["### Across tasks", "", *across, ""]
    if any(n.kind == "iqm" for n in numbers):
        plot_intervals(numbers, "iqm", IMAGES / "mixer_input_iqm.png")
        lines += ["### Scores (IQM over seeds)", "", "![scores](images/mixer_input_iqm.png)", ""]
    if any(n.kind == "poi" for n in numbers):
        plot_intervals(numbers, "poi", IMAGES / "mixer_input_poi.png")
        lines += [
            "### Probability of improvement over `state`",
            "",
            "![probability of improvement](images/mixer_input_poi.png)",
            "",
        ]
    text = "\n".join(lines)
    if DOC.exists():
        page = DOC.read_text()
        if BEGIN not in page or END not in page:
            raise SystemExit(f"{DOC} has lost its report markers ({BEGIN} ... {END})")
        head, rest = page.split(BEGIN, 1)
        DOC.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["run", "status", "report", "health", "inputs"])
    chosen = (
        "what `run` trains, `status` prices, `health` reads and `inputs` plays; the page always"
        " reports the"
        " whole study"
    )
    parser.add_argument(
        "--tasks", default=",".join(TASKS), help=f"from {', '.join(TASKS)}: {chosen}"
    )
    parser.add_argument(
        "--algos", default=",".join(SEEDS), help=f"from {', '.join(SEEDS)}: {chosen}"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mixer_input")
    args = parser.parse_args(argv)
    tasks, algos = args.tasks.split(","), args.algos.split(",")
    unknown = [t for t in tasks if t not in TASKS] + [a for a in algos if a not in SEEDS]
    if unknown:
        parser.error(f"unknown tasks or algorithms: {unknown}")
    todo = jobs(tasks, algos)
    if args.command == "status":
        print(status(tasks, algos))
        return
    if args.command == "health":
        print(health(tasks, algos))
        return
    if args.command == "inputs":
        print(inputs(tasks))
        return
    # The page is the whole study's, whatever part of it this command runs: a report of a part
    # would drop every other task's tables from the page.
    whole = (list(TASKS), list(SEEDS))
    if args.command == "report":
        print(report(*whole))
        return
    failed = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for line, ok in pool.map(lambda job: attempt(job, args.out.resolve()), todo):
            print(line, flush=True)
            failed += [] if ok else [line]
    print(report(*whole))
    if failed:
        raise SystemExit(f"{len(failed)} runs failed (rerun to retry them):\n" + "\n".join(failed))


if __name__ == "__main__":
    main()
