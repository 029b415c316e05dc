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

# benchmarks/learn.py: one seed, resumable, and what its rows say
from learn import eta_error, first_row_at, run_seed, wall_at
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
    "mpe_fix": Study(
        question="With the horizon bounded (the drift study's finding), which settings keep "
        "QMIX's greedy return on MPE simple_spread at its best, and how high is it? A screen "
        "at 300k steps; the chosen fix is then run to 1M steps (`--set total_env_steps=1000000"
        " --variants ...`).",
        algo="qmix",
        task="mpe_simple_spread",
        overrides=("total_env_steps=300000",),
        variants={
            "terminal_limit": ("time_limit=terminal",),
            "terminal_gamma_0.9": ("time_limit=terminal", "gamma=0.9"),
            # the LBF family's learner (Adam, TD(lambda) 0.6, soft targets) once bounded
            "terminal_adam_lambda": (
                "time_limit=terminal",
                "optimizer=adam",
                "td_lambda=0.6",
                "target_update=soft",
                "target_tau=0.01",
            ),
        },
        references="random actions -80.2, standing still -74.7 (100 episodes each: "
        "`benchmarks/reference_policies.py mpe_simple_spread`)",
    ),
    "demo_speed": Study(
        question="Which settings bring QMIX on LBF 8x8-2p-2f-coop (`make demo`) to a greedy "
        "test return of 0.95 in the least wall time on this 2-core machine? One change per "
        "variant from the preset.",
        algo="qmix",
        task="lbf_8x8_2p_2f_coop",
        overrides=("total_env_steps=400000",),
        variants={
            "preset": (),
            "lr_1e-3": ("lr=0.001",),
            "updates_16": ("updates_per_collect=16",),
            "batch_64_updates_16": ("batch_size_episodes=64", "updates_per_collect=16"),
            "tau_0.05": ("target_tau=0.05",),
            "lambda_0.8": ("td_lambda=0.8",),
        },
        references="the greedy return is the fraction of the food's value collected; "
        "1 is every food",
    ),
    "demo_combo": Study(
        question="demo_speed found faster soft targets (tau 0.05), a longer TD(lambda) (0.8) and "
        "a larger learning rate (1e-3) each reach a test return of 0.95 in fewer env steps; "
        "do they add up?",
        algo="qmix",
        task="lbf_8x8_2p_2f_coop",
        overrides=("total_env_steps=400000",),
        variants={
            "tau_0.05": ("target_tau=0.05",),
            "tau_0.05_lr_1e-3": ("target_tau=0.05", "lr=0.001"),
            "tau_0.05_lambda_0.8": ("target_tau=0.05", "td_lambda=0.8"),
            "all_three": ("target_tau=0.05", "td_lambda=0.8", "lr=0.001"),
            # the same number of updates over the run as tau_0.05 (about 0.12 per env step at
            # 340k steps), at a fixed rate: more early, fewer once episodes shorten
            "tau_0.05_per_step_0.12": ("target_tau=0.05", "updates_per_env_step=0.12"),
        },
        references="the greedy return is the fraction of the food's value collected; "
        "1 is every food",
    ),
    "demo_rate": Study(
        question="With demo_combo's fastest settings (tau 0.05, lambda 0.8, lr 1e-3), does a "
        "fixed update rate per env step (a time per step that stays the same, so an honest ETA) "
        "learn as fast as updates per episode, if the rate is high enough?",
        algo="qmix",
        task="lbf_8x8_2p_2f_coop",
        overrides=(
            "total_env_steps=250000",
            "target_tau=0.05",
            "td_lambda=0.8",
            "lr=0.001",
        ),
        variants={
            "per_episode": (),
            "rate_0.15": ("updates_per_env_step=0.15",),
            "rate_0.2": ("updates_per_env_step=0.2",),
            # about the per-episode rate once the task is solved (episodes of ~12 steps)
            "rate_0.3": ("updates_per_env_step=0.3",),
        },
        references="the greedy return is the fraction of the food's value collected; "
        "1 is every food",
    ),
    # -- family presets on tasks they were not tuned on (issue 16): the task named by the
    # family ("qmix train qmix lbf env_args.key=..."), one variant per task of the family
    "lbf_family": Study(
        question="Does the LBF family preset (GRU agents) learn LBF tasks it was not tuned on: "
        "partial sight (-2s) and a larger field with three players and three foods?",
        algo="qmix",
        task="lbf",
        overrides=("total_env_steps=1000000",),
        variants={
            "8x8-2p-2f-coop": ("env_args.key=Foraging-8x8-2p-2f-coop-v3",),
            "2s-8x8-2p-2f-coop": ("env_args.key=Foraging-2s-8x8-2p-2f-coop-v3",),
            "10x10-3p-3f": ("env_args.key=Foraging-10x10-3p-3f-v3",),
        },
        references="the greedy return is the fraction of the food's value collected",
    ),
    "mpe_family": Study(
        question="Does the MPE family preset learn the cooperative MPE scenarios it was not "
        "tuned on?",
        algo="qmix",
        task="mpe",
        overrides=("total_env_steps=500000",),
        variants={
            "simple_spread": ("env_args.scenario=simple_spread_v3",),
            "simple_reference": ("env_args.scenario=simple_reference_v3",),
            "simple_speaker_listener": ("env_args.scenario=simple_speaker_listener_v4",),
        },
        references="returns are the team's summed rewards (`benchmarks/reference_policies.py`"
        " gives random and still policies per scenario)",
    ),
    "smax_family": Study(
        question="Does the SMAX family preset learn a map it was not tuned on (2s3z: two "
        "unit types)?",
        algo="qmix",
        task="smax",
        overrides=("total_env_steps=1000000",),
        variants={
            "3m": ("env_args.map_name=3m",),
            "2s3z": ("env_args.map_name=2s3z",),
        },
        references="a win rate is the fraction of the greedy test battles won",
    ),
    "vmas_family": Study(
        question="Does the VMAS family preset (tuned on no task) learn cooperative VMAS "
        "scenarios with discrete actions?",
        algo="qmix",
        task="vmas",
        overrides=("total_env_steps=500000",),
        variants={
            "balance": ("env_args.scenario=balance",),
            "navigation": ("env_args.scenario=navigation",),
        },
        references="returns are the mean over agents of VMAS's per-agent rewards, summed over "
        "the 100-step episode",
    ),
    "smax_speed": Study(
        question="Can QMIX on SMAX 3m hold a test win rate of 0.9 from 1M env steps or earlier, "
        "in half the preset's wall time? Fewer, larger updates (PyMARL2's batch of 128) cost "
        "less per env step; do they learn as well per step?",
        algo="qmix",
        task="smax_3m",
        overrides=("total_env_steps=1000000",),
        variants={
            "preset": (),
            "batch_128_updates_4": ("batch_size_episodes=128", "updates_per_collect=4"),
            "batch_128_updates_4_lr_1e-3": (
                "batch_size_episodes=128",
                "updates_per_collect=4",
                "lr=0.001",
            ),
            "batch_64_updates_8": ("batch_size_episodes=64", "updates_per_collect=8"),
            # what sped up LBF's demo (demo_combo): a longer TD(lambda), a larger step
            "lambda_0.8": ("td_lambda=0.8",),
            "lambda_0.8_lr_1e-3": ("td_lambda=0.8", "lr=0.001"),
            # the cheaper updates with what fixed LBF's greedy agents (demo_gamma) or sped it up
            "batch_128_updates_4_gamma_0.95": (
                "batch_size_episodes=128",
                "updates_per_collect=4",
                "gamma=0.95",
            ),
            "batch_128_updates_4_lambda_0.8": (
                "batch_size_episodes=128",
                "updates_per_collect=4",
                "td_lambda=0.8",
            ),
        },
        references="a win rate is the fraction of the 128 greedy test battles won",
    ),
}


def summarise(
    runs: dict[int, list[dict[str, Any]]], metric: str, threshold: float | None = None
) -> dict[str, float]:
    """Over the seeds of one variant: mean best and final test metric, seeds within 5% of
    their best at the end, mean of each seed's largest and final ``q_taken_mean``; with a
    ``threshold``, the seeds whose test metric reached it and the median env steps and wall
    seconds to the first test that did (over those seeds)."""
    best, final, held, q_max, q_final, steps_to, wall_to = [], [], 0, [], [], [], []
    for rows in runs.values():
        tests = [r for r in rows if metric in r]
        scores = [r[metric] for r in tests]
        qs = [r["q_taken_mean"] for r in rows if "q_taken_mean" in r]
        best.append(max(scores))
        final.append(scores[-1])
        held += int(scores[-1] >= max(scores) - 0.05 * abs(max(scores)))
        q_max.append(max(qs))
        q_final.append(qs[-1])
        first = first_row_at(tests, metric, threshold) if threshold is not None else None
        if first is not None:
            steps_to.append(first["env_steps"])
            wall_to.append(wall_at(rows, first))
    return {
        "best": float(np.mean(best)),
        "final": float(np.mean(final)),
        "final_min": float(np.min(final)),
        "held": held,
        "q_max": float(np.mean(q_max)),
        "q_final": float(np.mean(q_final)),
        "reached": len(steps_to),
        "steps_to": float(np.median(steps_to)) if steps_to else float("nan"),
        "wall_to": float(np.median(wall_to)) if wall_to else float("nan"),
    }


def _fmt(x: float) -> str:
    """A score at the precision its scale needs: -135.3, 0.953."""
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", default=None, help="a comma-separated subset")
    parser.add_argument("--metric", default="test_return")
    parser.add_argument(
        "--threshold", type=float, default=None, help="also report the time to this score"
    )
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
        + (["--threshold", str(args.threshold)] if args.threshold is not None else [])
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
        "within 5% of their best | max Q_tot (taken) | final Q_tot | wall per run (s) | "
        "ETA error at 10% |"
        + (
            f" seeds reaching {args.threshold:g} | median env steps to it | median wall (s) to it |"
            if args.threshold is not None
            else ""
        ),
        "|---" * (10 if args.threshold is None else 13) + "|",
    ]
    for variant in names:
        s = summarise(by_variant[variant], args.metric, args.threshold)
        overrides = " ".join(study.variants[variant]) or "(the preset)"
        to = ""
        if args.threshold is not None:
            steps, wall = (
                (f"{s['steps_to']:,.0f}", f"{s['wall_to']:.0f}") if s["reached"] else ("—", "—")
            )
            to = f" {s['reached']} / {len(args.seeds)} | {steps} | {wall} |"
        lines.append(
            f"| {variant} | `{overrides}` | {_fmt(s['best'])} | {_fmt(s['final'])} | "
            f"{_fmt(s['final_min'])} | {s['held']} / {len(args.seeds)} | {s['q_max']:.1f} | "
            f"{s['q_final']:.1f} | {np.median(walls[variant]):.0f} | "
            f"{np.median([eta_error(rows) for rows in by_variant[variant].values()]):+.0%} |{to}"
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
