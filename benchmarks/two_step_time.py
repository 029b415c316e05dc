"""Wall time of the two-step reproduction (QMIX and VDN presets), on one core.

Run: ``.venv/bin/python benchmarks/two_step_time.py [--repeats 3]``. Prints, per algorithm,
the median wall time over the repeats, the env steps per second, the greedy return and the
largest gap between the learned tables and the paper's (QMIX only).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from qmix import make_config, train

PAPER_QMIX = {"1": [[6.93, 6.93], [7.92, 7.92]], "2A": [[7.0] * 2] * 2, "2B": [[0, 1], [1, 8]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    totals = []
    for algo in ("qmix", "vdn"):
        times, returns, gaps = [], [], []
        for rep in range(args.repeats):
            cfg = make_config(algo, "two_step", {"seed": args.seed + rep})
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                run = train(cfg, run_dir=Path(tmp), progress=False)
                times.append(time.perf_counter() - start)
            assert run.tables is not None
            returns.append(run.tables["greedy"]["return"])
            states = run.tables["states"]
            gaps.append(
                max(
                    float(np.abs(np.array(states[s]["q_tot"]) - np.array(PAPER_QMIX[s])).max())
                    for s in states
                )
            )
        median = statistics.median(times)
        totals.append(median)
        gap = f" max |table - paper| {max(gaps):.3f}" if algo == "qmix" else ""
        print(
            f"{algo:5s} two_step: median {median:5.1f} s over {args.repeats} seeds "
            f"({cfg.total_env_steps / median:,.0f} env steps/s), greedy returns {returns}{gap}"
        )
    print(f"both algorithms: {sum(totals):.1f} s (sum of medians)")


if __name__ == "__main__":
    main()
