"""Why a QMIX mixer is unstable with some inputs (issue 17's findings: QMIX with MPE's
simulator state, OW-QMIX with SMAX 2s3z's observations).

Run (from the repository root)::

    .venv/bin/python benchmarks/mixer_saturation.py run [--task mpe_spread] [--algo qmix]
        [--seeds 0,1] [--variants state,obs_concat] [--steps 150000] [--set KEY=VALUE ...]
    .venv/bin/python benchmarks/mixer_saturation.py report [--task mpe_spread] [--algo qmix]

``run`` trains the study's run of ``--algo`` (QMIX, or OW-QMIX, whose learned mixer is QMIX's)
for each (seed, variant) of ``--task``
(``benchmarks/mixer_input.py``: the same preset, overrides and seed), for its first
``--steps`` env steps, and every 50th update measures the mixer on that update's own batch
before the update (:meth:`qmix.networks.mixers.QMixer.gains`): the gain ``dQ_tot / dQ_a``
of every agent at every real step (mean and 99th percentile), the mean ELU slope of the hidden
layer (1 where every unit is in its linear part, near 0 where every one is far below zero and
flat), the agents' mean Q, and after the update the TD loss, the gradient norm and the
agents' share of it (the norm of the agent network's gradient over the whole one's; OW-QMIX's
central ``Q*`` is outside both norms). It does
so by wrapping ``QLearner.train`` for the run's duration: the measurements draw no random
numbers and touch no weight, so the run is the study's run, and ``run`` checks it: its test
returns must equal those of the study's record of the same seed and variant, as far as it
goes (a mismatch is printed and kept in the record). Each run's rows go to
``benchmarks/recorded/mixer_saturation/<task>_<variant>_seed<k>.json`` (``<task>_<algo>_...``
for an algorithm other than QMIX); its run folder is temporary. Not resumable: a stopped run
starts again (about 5 minutes for 150k MPE steps, 11-21 for 500k of OW-QMIX on SMAX 2s3z).
``--set KEY=VALUE`` (repeatable) changes a setting to try a remedy: a run the study did not
make, recorded under a name that carries the change and drawn in a figure of its own beside
the study's run of the same variant and seed.

``report`` reads the records, prints per run the medians of the measurements over the first
100k env steps, when the hidden layer was shut (mean ELU slope below 0.05), and the test
scores (the task's test metric), and draws ``docs/images/mixer_saturation_<task>.png`` (and
``..._changed.png``; ``<task>_<algo>`` for an algorithm other than QMIX).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from mixer_input import TASKS, Job, recorded
from qmix.config import make_config
from qmix.data.episode_batch import EpisodeBatch
from qmix.learners.q import QLearner
from qmix.networks.mixers import QMixer, elu_slope
from qmix.trainer import train

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "benchmarks" / "recorded" / "mixer_saturation"
IMAGES = ROOT / "docs" / "images"
EVERY = 50  # measure every EVERY-th update
EARLY = 100_000  # report's medians: over the first EARLY env steps
SHUT = 0.05  # a hidden layer whose mean ELU slope is below this passes almost no gradient


def mixer_measures(learner: QLearner, batch: EpisodeBatch) -> dict[str, float]:
    """The mixer's gains and ELU slopes on ``batch``'s real steps, and the agents' mean Q."""
    if not isinstance(learner.mixer, QMixer):
        raise SystemExit(f"{type(learner.mixer).__name__} is not QMIX's mixer: nothing to measure")
    with torch.no_grad():
        chosen, gains, pre = learner.mixer_gains(batch)  # [B, T, N], [B, T, N], [B, T, E]
        real = batch.filled  # [B, T]
        gains, pre, chosen = gains[real], pre[real], chosen[real]  # [M, N], [M, E], [M, N]
        slope = elu_slope(pre)  # [M, E]
        return {
            "gain_mean": float(gains.mean()),
            "gain_p99": float(gains.quantile(0.99)),
            "elu_slope": float(slope.mean()),
            "agent_q_mean": float(chosen.mean()),
        }


def grad_norm(params: Iterator[torch.nn.Parameter]) -> float:
    """The norm of the gradients that ``params`` hold."""
    grads = [p.grad for p in params if p.grad is not None]
    return float(torch.sqrt(sum((g.pow(2).sum() for g in grads), torch.tensor(0.0))))


@contextmanager
def measured(rows: list[dict[str, Any]]) -> Iterator[None]:
    """Within: every ``EVERY``-th ``QLearner.train`` appends its measurements to ``rows``."""
    plain = QLearner.train

    def train_measured(learner: QLearner, batch: EpisodeBatch) -> dict[str, float]:
        count = getattr(learner, "_measured_updates", 0) + 1
        learner._measured_updates = count  # type: ignore[attr-defined]
        if count % EVERY:
            return plain(learner, batch)
        row: dict[str, Any] = {"update": count, **mixer_measures(learner, batch)}
        stats = plain(learner, batch)
        agents = grad_norm(learner.agent.parameters())  # clipped together: the ratio holds
        row.update(
            loss=stats["loss"],
            grad_norm=stats["grad_norm"],
            agent_grad_share=agents / max(grad_norm(iter(learner.params)), 1e-12),
        )
        rows.append(row)
        return stats

    with mock.patch.object(QLearner, "train", train_measured):
        yield


def stem(task: str, algo: str) -> str:
    """Records' and figures' name start: the task's, and the algorithm's unless QMIX."""
    return task if algo == "qmix" else f"{task}_{algo}"


def record_path(task: str, variant: str, seed: int, changes: list[str], algo: str = "qmix") -> Path:
    suffix = "".join(f"_{c.replace('=', '-')}" for c in changes)
    return RECORDED / f"{stem(task, algo)}_{variant}_seed{seed}{suffix}.json"


def run_one(
    task: str,
    variant: str,
    seed: int,
    steps: int,
    out: Path,
    changes: list[str],
    algo: str = "qmix",
) -> dict[str, Any]:
    """Train the study's run of (task, algo, variant, seed) for ``steps``, measured; with
    ``changes`` (``key=value`` overrides) a run the study did not make, to try a remedy."""
    job = Job(task, algo, variant, seed)
    overrides = [o for o in job.overrides() if not o.startswith("total_env_steps=")]
    more = [f"seed={seed}", f"total_env_steps={steps}", *changes]
    cfg = make_config(algo, TASKS[task].preset, [*overrides, *more])
    if cfg.mixer != "qmix":
        raise SystemExit(f"{algo}'s mixer is {cfg.mixer!r}, not QMIX's: nothing to measure")
    metric = TASKS[task].metric
    rows: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp, measured(rows):
        run = train(cfg, Path(tmp) / "run", progress=False)
    logged = [(r["updates"], r["env_steps"]) for r in run.metrics if "updates" in r]
    updates, env_steps = (np.array(x, dtype=float) for x in zip(*[(0, 0), *logged], strict=True))
    for row in rows:  # the env steps of each measured update, between the logged points
        row["env_steps"] = int(np.interp(row["update"], updates, env_steps))
    tests = [[r["env_steps"], r[metric]] for r in run.metrics if metric in r]
    study = {} if changes else {r["env_steps"]: r[metric] for r in recorded(job).get(str(seed), [])}
    mismatched = [s for s, score in tests if s in study and study[s] != score]
    return {
        "task": task,
        "algo": algo,
        "metric": metric,
        "variant": variant,
        "seed": seed,
        "changes": changes,
        "steps": steps,
        "every": EVERY,
        "tests": tests,
        "rows": rows,
        "study_steps_compared": sum(s in study for s, _ in tests),
        "study_mismatched_steps": mismatched,
    }


def label(rec: dict[str, Any]) -> str:
    """``variant seed k`` and the run's changes, if any."""
    return " ".join([rec["variant"], f"seed {rec['seed']}", *rec.get("changes", [])])


def report(task: str, algo: str = "qmix") -> None:
    """Print each record's early medians; draw the study's runs, and apart the changed runs
    beside the study's runs of the same variant and seed."""
    records = [
        rec
        for path in sorted(RECORDED.glob(f"{task}_*.json"))
        if (rec := json.loads(path.read_text())).get("algo", "qmix") == algo
    ]
    if not records:
        raise SystemExit(f"no records under {RECORDED} for {algo} on {task}: run `run` first")
    metric = records[0].get("metric", "test_return")
    keys = ("loss", "grad_norm", "agent_grad_share", "gain_mean", "elu_slope", "agent_q_mean")
    print(f"medians over the first {EARLY:,} env steps, by run; then its tests ({metric})")
    for rec in records:
        early = [r for r in rec["rows"] if r["env_steps"] <= EARLY]
        meds = ", ".join(f"{k} {np.median([r[k] for r in early]):.3g}" for k in keys)
        if rec.get("changes"):
            check = "changed: not a run of the study"
        elif rec["study_mismatched_steps"]:
            check = f"DIFFERS from the study's record at {rec['study_mismatched_steps']}"
        else:
            check = f"equal to the study's record at {rec['study_steps_compared']} test points"
        print(f"{label(rec)}: {meds}")
        shut = [r["env_steps"] for r in rec["rows"] if r["elu_slope"] < SHUT]
        if shut:
            print(
                f"    ELU slope below {SHUT} at {len(shut)} of {len(rec['rows'])} measured"
                f" updates, from {shut[0]:,} to {shut[-1]:,} env steps"
            )
        print(f"    tests {[round(r, 2) for _, r in rec['tests']]} ({check})")
    study = [r for r in records if not r.get("changes")]
    changed = [r for r in records if r.get("changes")]
    title = f"{algo.upper().replace('_', '-')} on {task}: the mixer's hidden layer"
    name = f"mixer_saturation_{stem(task, algo)}"
    if study:
        draw(study, IMAGES / f"{name}.png", f"{title} by mixer input", metric)
    if changed:
        pairs = {(r["variant"], r["seed"]) for r in changed}
        beside = [r for r in study if (r["variant"], r["seed"]) in pairs]
        draw([*beside, *changed], IMAGES / f"{name}_changed.png", title, metric)


def draw(records: list[dict[str, Any]], path: Path, title: str, metric: str) -> None:
    """Four panels against env steps, a line per record."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.5))
    panels = [
        ("tests", f"greedy {metric.removeprefix('test_').replace('_', ' ')} (tests)"),
        ("gain_mean", "mean gain dQ_tot/dQ_a (log)"),
        ("elu_slope", "mean ELU slope of the hidden layer"),
        ("agent_grad_share", "agents' share of the gradient norm"),
    ]
    axes = fig.subplots(2, 2, sharex=True).ravel()
    colours = {"state": "C0", "obs_concat": "C1", "state_obs": "C2", "constant": "C3"}
    others = iter(["C4", "C5", "C6", "C7", "C8", "C9"])
    colour = {
        label(r): colours[r["variant"]] if not r.get("changes") else next(others, "k")
        for r in records
    }
    styles = ["-", "--", ":", "-."]
    for ax, (key, name) in zip(axes, panels, strict=True):
        for rec in records:
            if key == "tests":
                x, y = zip(*rec["tests"], strict=True)
            else:
                x, y = zip(*[(r["env_steps"], r[key]) for r in rec["rows"]], strict=True)
            style = styles[rec["seed"] % 4]
            ax.plot(x, y, style, color=colour[label(rec)], lw=1.2, label=label(rec))
        ax.set_title(name, fontsize=10)
        if key == "gain_mean":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[2:]:
        ax.set_xlabel("env steps")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--task", default="mpe_spread", choices=list(TASKS))
    parser.add_argument("--algo", default="qmix", help="qmix, or ow_qmix (its mixer is QMIX's)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--variants", default="state,obs_concat")
    parser.add_argument("--steps", type=int, default=150_000)
    parser.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting changed from the study's (repeatable): a remedy to try, not a study run",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mixer_saturation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "run":
        RECORDED.mkdir(parents=True, exist_ok=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            for variant in args.variants.split(","):
                rec = run_one(
                    args.task, variant, seed, args.steps, args.out, args.changes, args.algo
                )
                path = record_path(args.task, variant, seed, args.changes, args.algo)
                path.write_text(json.dumps(rec, indent=0) + "\n")
                print(
                    f"{variant} seed {seed}: {len(rec['rows'])} measured updates -> {path}",
                    flush=True,
                )
    report(args.task, args.algo)


if __name__ == "__main__":
    main()
