"""What QMIX, VDN, IQL (and COMA) learn on the one-step matrix games, over several seeds.

Run: ``.venv/bin/python benchmarks/matrix_games.py [--seeds 10] [--task qtran_matrix]
[--algos qmix,vdn,iql,coma]``. Prints, per algorithm, how many seeds reach the optimal joint
action, the greedy returns, and for the Q-learners the median over seeds of the learned Q_tot
table together with the largest gap to the payoff (COMA learns a policy and per-agent critic
values, no Q_tot table).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from qmix import make_config, train
from qmix.envs.registry import make_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--task", default="qtran_matrix")
    parser.add_argument("--algos", default="qmix,vdn,iql")
    args = parser.parse_args()
    payoff = make_env(args.task).payoffs["s"]  # type: ignore[attr-defined]
    print(f"{args.task}: payoff {payoff.tolist()}, optimum {payoff.max():g}")
    for algo in args.algos.split(","):
        tables, returns = [], []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                run = train(make_config(algo, args.task, {"seed": seed}), Path(tmp), progress=False)
            assert run.tables is not None
            if run.tables["states"]:
                tables.append(np.asarray(run.tables["states"]["s"]["q_tot"]))
            returns.append(run.tables["greedy"]["return"])
        hits = sum(r == payoff.max() for r in returns)
        line = f"{algo:5s} optimum reached on {hits}/{args.seeds} seeds; greedy returns "
        line += f"{dict(Counter(returns))}"
        if tables:
            gaps = [float(np.abs(t - payoff).max()) for t in tables]
            line += f"; max |Q_tot - payoff| min {min(gaps):.1f} median {np.median(gaps):.1f}"
        print(line)
        if tables:
            print("      median learned Q_tot:", np.round(np.median(tables, axis=0), 1).tolist())


if __name__ == "__main__":
    main()
