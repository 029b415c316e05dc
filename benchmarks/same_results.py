"""Do two sets of fixed-seed runs give the same results? (the proof a refactor changed nothing)

Run the same commands on the code before and after a change, each into its own folder, e.g.
(``SRC`` the ``src`` folder of a checkout of each revision)::

    for t in two_step qtran_matrix; do
        PYTHONPATH=SRC python -m qmix train qmix $t --run-dir OUT/$t --quiet; done
    PYTHONPATH=SRC python -m qmix train qmix lbf_8x8_2p_2f_coop total_env_steps=20000 \\
        --run-dir OUT/lbf_8x8_2p_2f_coop --quiet
    PYTHONPATH=SRC python -m qmix train qmix smax_3m total_env_steps=20000 \\
        --run-dir OUT/smax_3m --quiet

then ``python benchmarks/same_results.py BEFORE_OUT AFTER_OUT``. It prints, per run directory
found in both, whether every metrics row (``wall_seconds`` aside) and every network tensor of
``model.pt`` and ``checkpoint.pt`` is identical, and exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from qmix.checkpoint import load_checkpoint
from qmix.files import CHECKPOINT_NAME, MODEL_NAME
from qmix.logging import CLOCK_KEYS, read_metrics


def _rows(run_dir: Path) -> list[dict[str, object]]:
    rows = read_metrics(run_dir)
    for row in rows:
        for key in CLOCK_KEYS:  # the only figures that depend on the clock
            row.pop(key, None)
    return rows


def _differing(before: Path, after: Path) -> list[str]:
    """``file:network.tensor`` of every tensor that is not bit-for-bit equal."""
    out = []
    for name in (MODEL_NAME, CHECKPOINT_NAME):
        ours = load_checkpoint(before / name)["learner"]["networks"]
        theirs = load_checkpoint(after / name)["learner"]["networks"]
        for net, state in ours.items():
            out += [
                f"{name}:{net}.{k}" for k, t in state.items() if not torch.equal(t, theirs[net][k])
            ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    same = True
    names = sorted(p.name for p in args.before.iterdir() if (args.after / p.name).is_dir())
    for name in names:
        before, after = args.before / name, args.after / name
        rows, differing = _rows(before) == _rows(after), _differing(before, after)
        tensors = sum(
            len(s) for s in load_checkpoint(before / MODEL_NAME)["learner"]["networks"].values()
        )
        print(
            f"{name}: {len(_rows(before))} metrics rows {'identical' if rows else 'DIFFER'}; "
            f"{tensors} network tensors per file, "
            f"{'all identical' if not differing else 'differing: ' + ', '.join(differing)}"
        )
        same = same and rows and not differing
    return 0 if same and names else 1


if __name__ == "__main__":
    sys.exit(main())
