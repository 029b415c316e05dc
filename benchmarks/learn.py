"""Learning benchmark: train one algorithm on one task over several seeds and record it.

Run, for example::

    .venv/bin/python benchmarks/learn.py qmix lbf_8x8_2p_2f_coop --seeds 0 1 2 --jobs 2 \\
        --threshold 0.9

Seeds run in parallel processes (``--jobs``, one torch thread each). Writes
``benchmarks/recorded/<name>.md`` (command, seeds, per-seed table, wall times),
``<name>.png`` (test return of every seed and their mean) and ``<name>.json`` (every metric
row), and prints the table. ``<name>`` is ``<algo>_<task>`` unless ``--name`` gives another, as
a variant of a preset should, so that it does not overwrite the preset's record.

Long studies: with ``--resume`` a seed whose run directory under ``--out`` already exists is
continued from its checkpoint (``qmix train --resume``, exact), or only read if it has
finished, so a study stopped at any point (a session's end, SIGKILL) picks up where it was.
Wall times are the runs' own training time (``wall_seconds``, summed over their processes).

Growing a record seed by seed: with ``--extend`` the seeds of the existing record ``<name>``
that are not in ``--seeds`` are kept, their rows (and ``--eval-episodes`` scores) read from
its ``.json`` (and ``_eval.json``), so a seed can be added after the other seeds' run
directories are gone. The record's resolved configuration must equal the new seeds' (all but
``seed`` and ``runs_dir``), or the record is refused: a variant gets its own ``--name``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qmix.checkpoint import BEST_MODEL_NAME, CHECKPOINT_NAME, load_checkpoint
from qmix.compare import record_config, record_rows
from qmix.config import ConfigError, config_changes, make_config
from qmix.logging import METRICS_NAME, read_metrics
from qmix.plots import plot_curves
from qmix.run import load

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "benchmarks" / "recorded"


def finished(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` has reached its budget (not yet if it has no metrics: a
    checkpoint can come before the first row)."""
    budget = yaml.safe_load((run_dir / "config.yaml").read_text())["total_env_steps"]
    if not (run_dir / METRICS_NAME).exists():
        return False
    return any(row["env_steps"] >= budget for row in read_metrics(run_dir))


def seed_command(
    algo: str, task: str, seed: int, overrides: list[str], run_dir: Path, resume: bool
) -> list[str] | None:
    """The ``qmix train`` command that brings ``run_dir`` to its budget (None: it is there)."""
    qmix = [sys.executable, "-m", "qmix", "train"]
    if resume and (run_dir / CHECKPOINT_NAME).exists():
        return None if finished(run_dir) else [*qmix, "--resume", str(run_dir), "--quiet"]
    if resume and (run_dir / "config.yaml").exists():  # stopped before its first checkpoint
        return [*qmix, "--restart", str(run_dir), "--quiet"]
    command = [*qmix, algo, task, f"seed={seed}", *overrides, "--run-dir", str(run_dir)]
    return [*command, "--quiet"]


def run_seed(
    algo: str, task: str, seed: int, overrides: list[str], out: Path, resume: bool = False
) -> dict:
    run_dir = out / f"{algo}_{task}_seed{seed}"
    command = seed_command(algo, task, seed, overrides, run_dir, resume)
    if command is not None:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"seed {seed} failed:\n{proc.stderr[-3000:]}")
    rows = read_metrics(run_dir)
    resumed = command is None or "--resume" in command
    return {
        "seed": seed,
        "wall": run_wall(rows),
        "rows": rows,
        "run_dir": run_dir,
        "resumed": resumed,
    }


def run_wall(rows: Sequence[dict]) -> float:
    """A run's training time: the largest ``wall_seconds`` of its rows."""
    return max(row["wall_seconds"] for row in rows if "wall_seconds" in row)


def evaluate_networks(run_dir: Path, episodes: int, metric: str) -> dict[str, float]:
    """Greedy score of the final and of the best-test networks on ``episodes`` fresh episodes
    (the evaluation seed stream, never used for training or for choosing the best networks)."""

    def score(best: bool) -> float:
        result = load(run_dir, best=best).evaluate(episodes=episodes)
        win_rate = result.win_rate
        return (
            win_rate if metric == "test_win_rate" and win_rate is not None else result.mean_return
        )

    chosen = load_checkpoint(run_dir / BEST_MODEL_NAME)["best"]
    return {"final": score(False), "best": score(True), "best_at": chosen["env_steps"]}


def recorded_seeds(
    record: Path, expected: dict[str, Any], exclude: list[int], with_eval: bool
) -> list[dict]:
    """The seeds of ``record`` (``NAME.json``) not in ``exclude``, as :func:`run_seed` results
    read from the record (``run_dir`` None); with ``with_eval`` their scores from
    ``NAME_eval.json``.

    Args:
        record: the record's ``.json`` (its ``.md`` beside it holds its configuration).
        expected: the resolved configuration of the seeds to add (``Config.to_dict()``).
        exclude: the seeds to add (their earlier rows, if any, are replaced).
        with_eval: also read the kept seeds' ``--eval-episodes`` scores.

    Raises:
        SystemExit: no such record, its configuration differs from ``expected`` in a key other
            than ``seed`` and ``runs_dir``, or ``with_eval`` and it has no scores for a kept seed.
    """
    md = record.with_suffix(".md")
    if not record.is_file() or not md.is_file():
        raise SystemExit(f"--extend: no record {record.stem} (.json and .md) in {record.parent}")
    recorded = record_config(md.read_text(), source=str(md))
    changed = set(config_changes(recorded, expected))  # every key but the budget
    if recorded.get("total_env_steps") != expected.get("total_env_steps"):
        changed.add("total_env_steps")
    differ = sorted(changed - {"seed", "runs_dir"})
    if differ:
        raise SystemExit(
            f"--extend: the record {record.stem} has other settings ({', '.join(differ)}); "
            "record these seeds under their own --name"
        )
    rows = record_rows(json.loads(record.read_text()), source=str(record))
    kept = [
        {
            "seed": seed,
            "wall": run_wall(seed_rows),
            "rows": list(seed_rows),
            "run_dir": None,
            "resumed": False,
        }
        for seed, seed_rows in rows.items()
        if seed not in exclude
    ]
    if with_eval:
        scores_path = record.with_name(f"{record.stem}_eval.json")
        scores = json.loads(scores_path.read_text()) if scores_path.is_file() else {}
        for r in kept:
            if str(r["seed"]) not in scores:
                raise SystemExit(f"--extend: {scores_path.name} has no scores for seed {r['seed']}")
            r["eval"] = scores[str(r["seed"])]
    return kept


def first_row_at(rows: list[dict], key: str, threshold: float) -> dict | None:
    """The first test row whose ``key`` reaches ``threshold``."""
    return next((row for row in rows if key in row and row[key] >= threshold), None)


def wall_at(rows: list[dict], row: dict) -> float:
    """Training time when ``row`` was written: its own ``wall_seconds``, or (records written
    before test rows had it) that of the first training row at or after its env steps."""
    if "wall_seconds" in row:
        return float(row["wall_seconds"])
    later = [
        r["wall_seconds"]
        for r in rows
        if "wall_seconds" in r and r["env_steps"] >= row["env_steps"]
    ]
    return float(later[0]) if later else float("nan")


def eta_error(rows: list[dict[str, Any]], at: float = 0.1) -> float:
    """How far off the progress line's ETA was at ``at`` of the run: the remaining time it
    showed (a training row's ``eta_seconds``; in runs older than that field, elapsed time over
    steps done times the steps left, as the line computed it then) against the remaining time
    the run took, as a fraction (-0.2: 20% too short)."""
    timed = [r for r in rows if "wall_seconds" in r]
    total_steps, total_wall = timed[-1]["env_steps"], timed[-1]["wall_seconds"]
    shown = [r for r in timed if "eta_seconds" in r] or timed
    row = next(r for r in shown if r["env_steps"] >= at * total_steps)
    steps, wall = row["env_steps"], row["wall_seconds"]
    predicted = row.get("eta_seconds", wall / steps * (total_steps - steps))
    return float(predicted / (total_wall - wall) - 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("algo")
    parser.add_argument("task")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--metric", default="test_return")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks")
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=0,
        help="after training, score the final and the best-test networks of each seed on this "
        "many fresh greedy episodes (qmix eval [--best] --episodes N)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue seeds whose run directories under --out exist (read finished ones)",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="record name under benchmarks/recorded (default <algo>_<task>; give variants "
        "their own, e.g. qmix_smax_3m_wide, so they do not overwrite the preset's record)",
    )
    parser.add_argument(
        "--extend",
        action="store_true",
        help="keep the existing record's other seeds (read from its .json, same settings "
        "required) and add --seeds to it",
    )
    args = parser.parse_args()
    name = args.name or f"{args.algo}_{args.task}"
    kept: list[dict] = []  # checked before any training: a refused record costs nothing
    if args.extend:
        try:
            expected = make_config(args.algo, args.task, args.overrides).to_dict()
        except ConfigError as err:
            raise SystemExit(f"learn.py: {err}") from None
        kept = recorded_seeds(
            RECORDED / f"{name}.json", expected, args.seeds, bool(args.eval_episodes)
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(
            pool.map(
                lambda s: run_seed(args.algo, args.task, s, args.overrides, args.out, args.resume),
                args.seeds,
            )
        )
    total_wall = time.perf_counter() - start  # of this invocation (less, if it resumed)
    if args.eval_episodes:
        for r in results:
            r["eval"] = evaluate_networks(r["run_dir"], args.eval_episodes, args.metric)
    config = (results[0]["run_dir"] / "config.yaml").read_text()
    results = sorted(kept + results, key=lambda r: r["seed"])
    lines = [
        f"# {args.algo} on {args.task}",
        "",
        "Command (from the repository root):",
        "",
        "```bash",
        shlex.join(
            [".venv/bin/python", "benchmarks/learn.py", args.algo, args.task, *args.overrides]
            + ["--seeds", *map(str, args.seeds), "--jobs", str(args.jobs)]
            + (["--threshold", str(args.threshold)] if args.threshold is not None else [])
            + (["--metric", args.metric] if args.metric != "test_return" else [])
            + (["--name", args.name] if args.name else [])
            + (["--eval-episodes", str(args.eval_episodes)] if args.eval_episodes else [])
            + (["--extend"] if args.extend else [])
        ),
        "```",
        "",
        f"Machine: 2 cores, no GPU; {args.jobs} seed{'s' if args.jobs != 1 else ''} at a time, "
        "one torch thread each.",
        "",
        *(
            [
                f"Seed{'s' if len(kept) > 1 else ''} "
                + ", ".join(str(r["seed"]) for r in kept)
                + f" {'are' if len(kept) > 1 else 'is'} read from this record's earlier version "
                "(--extend), of the same resolved configuration; the wall times of a record "
                "grown this way come from different occasions.",
                "",
            ]
            if kept
            else []
        ),
        f"| seed | final {args.metric} | best | env steps | "
        + (
            f"first step at >= {args.threshold} | wall time to it (s) | "
            if args.threshold is not None
            else ""
        )
        + (
            f"final networks, {args.eval_episodes} episodes | best-test networks (step), "
            f"{args.eval_episodes} episodes | "
            if args.eval_episodes
            else ""
        )
        + "wall time (s) |",
        "|---|---|---|---|"
        + ("---|---|" if args.threshold is not None else "")
        + ("---|---|" if args.eval_episodes else "")
        + "---|",
    ]
    finals = []
    for r in results:
        tests = [row[args.metric] for row in r["rows"] if args.metric in row]
        finals.append(tests[-1])
        steps = max(row["env_steps"] for row in r["rows"])
        cells = [str(r["seed"]), f"{tests[-1]:.3f}", f"{max(tests):.3f}", f"{steps:,}"]
        if args.threshold is not None:
            hit = first_row_at(r["rows"], args.metric, args.threshold)
            if hit is None:
                cells += ["not reached", "-"]
            else:
                cells += [f"{hit['env_steps']:,}", f"{wall_at(r['rows'], hit):.0f}"]
        if args.eval_episodes:
            ev = r["eval"]
            cells += [f"{ev['final']:.3f}", f"{ev['best']:.3f} ({ev['best_at']:,})"]
        cells.append(f"{r['wall']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Mean final {args.metric} over {len(finals)} seeds: **{np.mean(finals):.3f}** "
        f"(min {np.min(finals):.3f}); "
        + (
            "wall times are each seed's own training time (summed over its processes where it "
            "was stopped and resumed, exactly, or read back finished with --resume)."
            if kept or any(r["resumed"] for r in results)
            else f"total wall time {total_wall:.0f} s."
        ),
    ]
    if args.eval_episodes:
        final_nets = [r["eval"]["final"] for r in results]
        best_nets = [r["eval"]["best"] for r in results]
        lines += [
            "",
            f"Over {args.eval_episodes} fresh greedy episodes per seed (evaluation seeds, never "
            f"used in training or to choose the best networks): final networks "
            f"**{np.mean(final_nets):.3f}**, best-test networks **{np.mean(best_nets):.3f}** "
            f"(mean of {len(results)} seeds).",
        ]
    lines += [
        "",
        f"![curves]({name}.png)",
    ]
    lines += [
        "",
        f"Resolved configuration (seed {args.seeds[0]} shown):",
        "",
        "```yaml",
        config.strip(),
        "```",
        "",
    ]
    out_dir = RECORDED
    (out_dir / f"{name}.md").write_text("\n".join(lines))
    plot_curves(
        [(f"seed {r['seed']}", r["rows"]) for r in results],
        out_dir / f"{name}.png",
        f"{args.algo} on {args.task} ({len(results)} seeds)",
        metric=args.metric,
        with_mean=True,
    )
    (out_dir / f"{name}.json").write_text(json.dumps({str(r["seed"]): r["rows"] for r in results}))
    if args.eval_episodes:
        evals = {str(r["seed"]): r["eval"] for r in results}
        (out_dir / f"{name}_eval.json").write_text(json.dumps(evals, indent=1))
    print("\n".join(lines[:-8]))


if __name__ == "__main__":
    main()
