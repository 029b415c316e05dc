"""What every algorithm learns on the matrix games, over several seeds: one table per game.

Run (from the repository root)::

    .venv/bin/python benchmarks/matrix_games.py [--seeds 10] [--jobs 2]
        [--games qtran_matrix,climbing,penalty_0,penalty_-25,penalty_-100,two_step]
        [--algos iql,vdn,qmix,qtran,ow_qmix,cw_qmix,qplex,coma] [--out FILE.md]

Each algorithm runs with its own preset on the game's preset (uniform exploration for the Q
learners), seeds 0 .. N-1, one process per run (``--jobs`` at a time, one torch thread each).
Prints one Markdown table per game: per algorithm, the seeds whose greedy joint action earns
the optimum, the greedy returns, the median over seeds of the largest error of the learned
``Q_tot`` against the optimal values (over every state of the game), the median learned
``Q_tot`` of the start state, and the median time of one run. COMA learns a policy and
per-agent critic values, not a ``Q_tot``, so only its returns are shown; QTRAN's table is
``Q'``, the sum of the agents' values its optimality losses tie to the joint ``Q_jt``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qmix import make_config, train
from qmix.config import parse_override
from qmix.envs.matrix import TabularGame
from qmix.envs.registry import make_env

GAMES: dict[str, tuple[str, str, dict[str, float]]] = {
    "qtran_matrix": ("QTRAN's game", "qtran_matrix", {}),
    "climbing": ("Climbing game", "climbing", {}),
    "penalty_0": ("Penalty game, k = 0", "penalty", {"k": 0.0}),
    "penalty_-25": ("Penalty game, k = -25", "penalty", {"k": -25.0}),
    "penalty_-100": ("Penalty game, k = -100", "penalty", {"k": -100.0}),
    "two_step": ("The QMIX paper's two-step game", "two_step", {}),
}
ALGOS = ("iql", "vdn", "qmix", "qtran", "ow_qmix", "cw_qmix", "qplex", "coma")
NAMES = {
    "iql": "IQL",
    "vdn": "VDN",
    "qmix": "QMIX",
    "qtran": "QTRAN",
    "ow_qmix": "OW-QMIX",
    "cw_qmix": "CW-QMIX",
    "qplex": "QPLEX",
    "coma": "COMA",
}


@dataclass
class Outcome:
    """One run: its greedy return, learned and optimal tables (None for COMA), time."""

    greedy_return: float
    tables: dict[str, np.ndarray] | None  # per state, the learned Q_tot [A, A]
    optimal: dict[str, np.ndarray]  # per state, the optimal values [A, A]
    seconds: float


def run_one(algo: str, game: str, seed: int, extra: tuple[str, ...] = ()) -> Outcome:
    """Train ``algo`` on ``game`` with ``seed`` (and ``KEY=VALUE`` overrides ``extra``) in a
    fresh directory; what it learned."""
    _, task, env_args = GAMES[game]
    overrides: dict[str, Any] = dict(parse_override(item) for item in extra)
    overrides["seed"] = seed
    if env_args:
        overrides["env_args"] = env_args
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = train(make_config(algo, task, overrides), Path(tmp) / "run", progress=False)
    seconds = time.perf_counter() - start
    assert run.tables is not None
    states = run.tables["states"]
    return Outcome(
        greedy_return=float(run.tables["greedy"]["return"]),
        tables={s: np.asarray(v["q_tot"]) for s, v in states.items()} if states else None,
        optimal={s: np.asarray(v["true_q"]) for s, v in states.items()},
        seconds=seconds,
    )


def _fmt(x: float) -> str:
    text = f"{x:.1f}".replace("-", "−")
    return "0" if text in ("0.0", "−0.0") else text


def _table(matrix: np.ndarray) -> str:
    return "[" + ", ".join("[" + ", ".join(_fmt(v) for v in row) + "]" for row in matrix) + "]"


def game_table(game: str, outcomes: dict[str, list[Outcome]], optimum: float) -> str:
    """The Markdown table of one game: a row per algorithm."""
    title, _, _ = GAMES[game]
    optimal = next((r.optimal for runs in outcomes.values() for r in runs if r.optimal), {})
    start = next(iter(optimal), None)  # the start state comes first
    lines = [f"#### {title}", ""]
    if start is not None:
        lines += [f"Optimal values of the start state: {_table(optimal[start])}.", ""]
    lines += [f"Best return {optimum:g}.", ""]
    lines += [
        "| algorithm | optimum reached | greedy returns | max \\|Q_tot − Q*\\| "
        "(median over seeds) | median learned Q_tot (start state) | s / run |",
        "|---|---|---|---|---|---|",
    ]
    for algo, runs in outcomes.items():
        n = len(runs)
        hits = sum(np.isclose(r.greedy_return, optimum) for r in runs)
        counts = Counter(round(r.greedy_return, 2) for r in runs)
        returns = ", ".join(
            f"{v:g} ×{c}".replace("-", "−") for v, c in sorted(counts.items(), reverse=True)
        )
        tables = [r.tables for r in runs if r.tables is not None]
        if tables and start is not None:
            errors = [
                max(float(np.abs(r.tables[s] - r.optimal[s]).max()) for s in r.optimal)
                for r in runs
                if r.tables is not None
            ]
            median_table = np.median([t[start] for t in tables], axis=0)
            prefix = "Q' = " if algo == "qtran" else ""
            error = _fmt(float(np.median(errors)))
            error_cell = f"({prefix}{error})" if prefix else error
            table_cell = prefix + _table(median_table)
        else:
            error_cell = table_cell = "— (no Q_tot)"
        seconds = float(np.median([r.seconds for r in runs]))
        lines.append(
            f"| {NAMES.get(algo, algo)} | {hits} / {n} | {returns} | {error_cell} | "
            f"{table_cell} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def optimal_return(game: str) -> float:
    """The best return of a game's episode: its start state's best undiscounted value."""
    _, task, env_args = GAMES[game]
    env = make_env(task, dict(env_args))
    assert isinstance(env, TabularGame)
    return float(env.optimal_q_tables(1.0)[env.states[0]].max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0 .. N-1")
    parser.add_argument("--games", default=",".join(GAMES), help=f"from {', '.join(GAMES)}")
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run"
    )
    args = parser.parse_args()
    games, algos = args.games.split(","), args.algos.split(",")
    unknown = [g for g in games if g not in GAMES]
    if unknown:
        parser.error(f"unknown games {unknown}: choose from {', '.join(GAMES)}")
    jobs = [(a, g, s, tuple(args.set)) for g in games for a in algos for s in range(args.seeds)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(run_one, *zip(*jobs, strict=True)))
    wall = time.perf_counter() - start
    by_game: dict[str, dict[str, list[Outcome]]] = {g: {a: [] for a in algos} for g in games}
    for (algo, game, _, _), outcome in zip(jobs, results, strict=True):
        by_game[game][algo].append(outcome)
    sections = []
    for game in games:
        sections.append(game_table(game, by_game[game], optimal_return(game)))
    command = (
        f".venv/bin/python benchmarks/matrix_games.py --seeds {args.seeds} --jobs {args.jobs} "
        f"--games {args.games} --algos {args.algos}"
        + (f" --set {' '.join(args.set)}" if args.set else "")
    )
    footer = f"{len(jobs)} runs in {wall / 60:.1f} min on {args.jobs} processes (`{command}`)."
    text = "\n\n".join([*sections, footer]) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
