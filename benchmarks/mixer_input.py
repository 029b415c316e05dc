"""Issue 17's study: what should the hypernetworks see? (the question of the user's notes)

Run (from the repository root)::

    .venv/bin/python benchmarks/mixer_input.py run [--tasks lbf_8x8,mpe_spread]
        [--algos qmix] [--jobs 2] [--out runs/mixer_input]
    .venv/bin/python benchmarks/mixer_input.py status

``run`` trains every (task, algorithm, variant, seed) of the study that is not finished yet,
``--jobs`` at a time (one torch thread each), resuming each run from its checkpoint under
``--out``; a run that finishes has its test rows written at once to
``benchmarks/recorded/mixer_input/<task>/<algo>_<variant>.json`` (``{seed: rows}``), so the
study survives the loss of its run folders and regenerates from one command. The order puts
QMIX on every task first (the notes' question is QMIX's), then QPLEX and OW-QMIX; within one,
seed by seed across the four variants, so a study stopped early stays balanced.

The variants (``mixer_input``): ``state`` (the simulator's global state: LBF and MPE through
their family presets' ``env_args.state: simulator``), ``obs_concat``, ``state_obs``, and
``constant`` (the control). Same budget for every variant of a task.

Compute plan (this 2-core machine; minutes per QMIX run alone, from the presets' records):

| task | budget | QMIX run | QMIX, 4 variants x 5 seeds | QPLEX, OW-QMIX: 4 x 3 each |
|---|---|---|---|---|
| lbf_8x8 (8x8-2p-2f-coop, demo preset) | 200k | ~5 min | ~110 min | ~2x QMIX's cost |
| mpe_spread (simple_spread) | 300k | ~11 min | ~210 min | " |
| smax_3m | 500k | ~9 min | ~170 min | " |
| lbf_2s_8x8 (sight 2, GRU agents) | 250k | ~18 min | ~360 min | " |
| smax_2s3z | 500k | ~12 min | ~240 min | " |

QMIX alone is about 18 hours of one core (9 hours on both); with QPLEX and OW-QMIX the study
is about 26 hours of both cores: many sessions, which is why every run resumes and every
finished run is recorded at once.
"""

from __future__ import annotations

import argparse
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# benchmarks/learn.py: one resumable seed
from learn import run_seed

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "benchmarks" / "recorded" / "mixer_input"
VARIANTS = ("state", "obs_concat", "state_obs", "constant")
SEEDS = {"qmix": 5, "qplex": 3, "ow_qmix": 3}  # at least 5 for QMIX, 3 for the others
# what a test row keeps in the record (the curve, its score and when)
KEPT = ("env_steps", "test_return", "test_win_rate", "wall_seconds")


@dataclass(frozen=True)
class Task:
    """A task of the study: the preset (or family) named, its overrides and budget."""

    preset: str
    overrides: tuple[str, ...]
    budget: int
    metric: str = "test_return"


TASKS = {
    # the demo preset keeps the observations as its state; the study gives it the simulator's
    "lbf_8x8": Task("lbf_8x8_2p_2f_coop", ("env_args.state=simulator",), 200_000),
    "mpe_spread": Task("mpe_simple_spread", (), 300_000),
    "smax_3m": Task("smax_3m", (), 500_000, "test_win_rate"),
    "lbf_2s_8x8": Task("lbf", ("env_args.key=Foraging-2s-8x8-2p-2f-coop-v3",), 250_000),
    "smax_2s3z": Task("smax", ("env_args.map_name=2s3z",), 500_000, "test_win_rate"),
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


def jobs(tasks: list[str], algos: list[str]) -> list[Job]:
    """Every run of the study, QMIX on every task first, then seed by seed across variants."""
    return [
        Job(task, algo, variant, seed)
        for algo in algos
        for task in tasks
        for seed in range(SEEDS[algo])
        for variant in VARIANTS
    ]


def recorded(job: Job) -> dict[str, Any]:
    """The record's rows by seed (empty if none yet)."""
    path = job.record()
    return json.loads(path.read_text()) if path.exists() else {}


def curve_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The test rows of a run, each with the kept fields only."""
    return [{k: r[k] for k in KEPT if k in r} for r in rows if "test_return" in r]


_lock = threading.Lock()


def write_record(job: Job, rows: list[dict[str, Any]]) -> None:
    """Add one finished seed's test rows to its record (under a lock: jobs run in threads)."""
    with _lock:
        seeds = recorded(job)
        seeds[str(job.seed)] = curve_rows(rows)
        job.record().parent.mkdir(parents=True, exist_ok=True)
        ordered = dict(sorted(seeds.items(), key=lambda kv: int(kv[0])))
        job.record().write_text(json.dumps(ordered, indent=0) + "\n")


def run(job: Job, out: Path) -> str:
    """Train (or resume) one run to its budget and record it; a line saying what happened."""
    if str(job.seed) in recorded(job):
        return f"{job}: recorded already"
    folder = out / job.task / f"{job.algo}_{job.variant}"
    result = run_seed(job.algo, TASKS[job.task].preset, job.seed, job.overrides(), folder, True)
    last = max(r["env_steps"] for r in result["rows"])
    if last < TASKS[job.task].budget:
        raise RuntimeError(f"{job}: stopped at {last} env steps, short of its budget")
    write_record(job, result["rows"])
    return f"{job}: done in {result['wall']:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["run", "status"])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"from {', '.join(TASKS)}")
    parser.add_argument("--algos", default=",".join(SEEDS), help=f"from {', '.join(SEEDS)}")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mixer_input")
    args = parser.parse_args()
    tasks, algos = args.tasks.split(","), args.algos.split(",")
    unknown = [t for t in tasks if t not in TASKS] + [a for a in algos if a not in SEEDS]
    if unknown:
        parser.error(f"unknown tasks or algorithms: {unknown}")
    todo = jobs(tasks, algos)
    if args.command == "status":
        done = sum(str(job.seed) in recorded(job) for job in todo)
        print(f"{done} of {len(todo)} runs recorded under {RECORDED.relative_to(ROOT)}")
        return
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for line in pool.map(lambda job: run(job, args.out.resolve()), todo):
            print(line, flush=True)


if __name__ == "__main__":
    main()
