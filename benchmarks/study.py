"""Controlled studies: one algorithm on one task, one factor changed at a time, several seeds.

Run (from the repository root)::

    .venv/bin/python benchmarks/study.py mpe_drift [--seeds 0 1 2] [--jobs 2]
        [--variants baseline,terminal_limit] [--out runs/studies] [--resume]

Every (variant, seed) is one ``qmix train`` run under ``--out/<study>/<variant>/``, ``--jobs``
at a time (one torch thread each); with ``--resume`` a study stopped at any point continues
each run from its checkpoint, or reads it if it has finished. Writes
``benchmarks/recorded/<study>.md`` (the table and the exact commands), ``<study>.json``
(every metric row, ``{variant: {seed: rows}}``) and ``<study>.png`` (every variant's mean test
curve with its 95% bootstrap band), and prints the table.

Per variant the table gives the mean over seeds of the best and the final greedy test return,
how many seeds end within 5% of their best (no degradation), and the Q-values' drift: the
largest and the final ``q_taken_mean`` (mean Q_tot of the actions taken in a training batch).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from learn import run_seed  # benchmarks/learn.py: one seed, resumable
from qmix.compare import RunRecord, plot_comparison

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Study:
    """A task, an algorithm, shared overrides, and the variants: each a list of overrides."""

    question: str
    algo: str
    task: str
    overrides: tuple[str, ...]
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    references: str = ""  # what reference policies score, for the reader


STUDIES = {
    "mpe_drift": Study(
        question="Why does QMIX's Q_tot drift upwards on MPE simple_spread, every reward being "
        "negative, and its greedy return degrade after a peak near -56? One suspect per variant.",
        algo="qmix",
        task="mpe_simple_spread",
        overrides=("total_env_steps=300000",),
        variants={
            "baseline": (),
            # EPyMARL and JaxMARL end the episode at MPE's 25-step limit; we bootstrap through it
            "terminal_limit": ("time_limit=terminal",),
            # the team reward as the mean over the 3 agents (BenchMARL, XuanCe) instead of the sum
            "mean_reward": ("reward_scale=0.3333333333",),
            "reward_x0.1": ("reward_scale=0.1",),
            "gamma_0.9": ("gamma=0.9",),  # JaxMARL's gamma on MPE
            "lr_1e-4": ("lr=0.0001",),
        },
        references="random actions -80.2, standing still -74.7 (100 episodes each: "
        "`benchmarks/reference_policies.py mpe_simple_spread`)",
    ),
}


def summarise(runs: dict[int, list[dict[str, Any]]], metric: str) -> dict[str, float]:
    """Over the seeds of one variant: mean best and final test metric, seeds within 5% of
    their best at the end, mean of each seed's largest and final ``q_taken_mean``."""
    best, final, held, q_max, q_final = [], [], 0, [], []
    for rows in runs.values():
        tests = [r[metric] for r in rows if metric in r]
        qs = [r["q_taken_mean"] for r in rows if "q_taken_mean" in r]
        best.append(max(tests))
        final.append(tests[-1])
        held += int(tests[-1] >= max(tests) - 0.05 * abs(max(tests)))
        q_max.append(max(qs))
        q_final.append(qs[-1])
    return {
        "best": float(np.mean(best)),
        "final": float(np.mean(final)),
        "final_min": float(np.min(final)),
        "held": held,
        "q_max": float(np.mean(q_max)),
        "q_final": float(np.mean(q_final)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", default=None, help="a comma-separated subset")
    parser.add_argument("--metric", default="test_return")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="more shared overrides"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "studies")
    parser.add_argument("--resume", action="store_true", help="continue or read earlier runs")
    args = parser.parse_args()
    study = STUDIES[args.study]
    names = args.variants.split(",") if args.variants else list(study.variants)
    unknown = sorted(set(names) - set(study.variants))
    if unknown:
        parser.error(f"unknown variants {unknown}: {', '.join(study.variants)}")
    jobs = [(v, s) for s in args.seeds for v in names]  # seed-major: every variant early

    def one(job: tuple[str, int]) -> dict[str, Any]:
        variant, seed = job
        overrides = [*study.overrides, *args.set, *study.variants[variant]]
        out = args.out / args.study / variant
        return run_seed(study.algo, study.task, seed, overrides, out, args.resume)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one, jobs))
    by_variant: dict[str, dict[int, list[dict[str, Any]]]] = {v: {} for v in names}
    walls: dict[str, list[float]] = {v: [] for v in names}
    for (variant, seed), result in zip(jobs, results, strict=True):
        by_variant[variant][seed] = result["rows"]
        walls[variant].append(result["wall"])

    command = shlex.join(
        [".venv/bin/python", "benchmarks/study.py", args.study]
        + ["--seeds", *map(str, args.seeds), "--jobs", str(args.jobs)]
        + (["--variants", args.variants] if args.variants else [])
        + (["--set", *args.set] if args.set else [])
    )
    lines = [
        f"# Study `{args.study}`: {study.algo} on {study.task}",
        "",
        study.question,
        "",
        f"Command: `{command}` (shared overrides: `{' '.join([*study.overrides, *args.set])}`; "
        f"{len(args.seeds)} seeds; machine: 2 cores, {args.jobs} runs at a time).",
        "",
        *([f"For scale: {study.references}.", ""] if study.references else []),
        f"| variant | overrides | best {args.metric} | final | worst final | seeds ending "
        "within 5% of their best | max Q_tot (taken) | final Q_tot | wall per run (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in names:
        s = summarise(by_variant[variant], args.metric)
        overrides = " ".join(study.variants[variant]) or "(the preset)"
        lines.append(
            f"| {variant} | `{overrides}` | {s['best']:.1f} | {s['final']:.1f} | "
            f"{s['final_min']:.1f} | {s['held']} / {len(args.seeds)} | {s['q_max']:.1f} | "
            f"{s['q_final']:.1f} | {np.median(walls[variant]):.0f} |"
        )
    lines += ["", f"![curves]({args.study}.png)", ""]
    out_dir = ROOT / "benchmarks" / "recorded"
    (out_dir / f"{args.study}.md").write_text("\n".join(lines))
    (out_dir / f"{args.study}.json").write_text(
        json.dumps(
            {v: {str(s): rows for s, rows in runs.items()} for v, runs in by_variant.items()}
        )
    )
    records = [
        RunRecord(out_dir / f"{args.study}.json", study.algo, study.task, seed, tuple(rows), v)
        for v, runs in by_variant.items()
        for seed, rows in runs.items()
    ]
    plot_comparison(records, out_dir / f"{args.study}.png", metric=args.metric)
    print("\n".join(lines[:-3]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
