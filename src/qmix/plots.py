"""Learning-curve plots (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qmix.compare import align_curves, rows_curve


def seed_mean_curve(
    runs: Sequence[list[dict[str, Any]]], metric: str = "test_return"
) -> tuple[np.ndarray, np.ndarray]:
    """The mean over seeds of ``metric``, each seed's evaluations interpolated onto one grid.

    Each seed's curve is :func:`qmix.compare.rows_curve` (a later row at the same env step
    replaces an earlier one); seeds evaluate at slightly different env steps, and
    :func:`qmix.compare.align_curves` puts them on the union of their steps inside the range all
    of them cover.

    Args:
        runs: one list of metric rows per seed (rows without ``metric`` are skipped).

    Returns:
        ``(grid [G], mean [G])``.

    Raises:
        ValueError: a seed has no ``metric`` row, or the seeds share no range of env steps.
    """
    curves = [rows_curve(rows, metric, source=f"run {i}") for i, rows in enumerate(runs)]
    grid, values = align_curves(curves)  # [G], [K, G]
    return grid, values.mean(axis=0)


def plot_curves(
    runs: Sequence[tuple[str, list[dict[str, Any]]]],
    path: Path,
    title: str = "",
    metric: str = "test_return",
    with_mean: bool = False,
) -> Path:
    """Draw ``metric`` against env steps for each ``(label, rows)`` and save a PNG.

    Training return (epsilon-greedy, last 100 episodes) is drawn thin and dashed behind the
    greedy test metric, so the two are never confused. ``with_mean`` adds the mean over the
    runs (:func:`seed_mean_curve`) as a thick black line, when there are at least two.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, (label, rows) in enumerate(runs):
        colour = f"C{i % 10}"
        test = [(r["env_steps"], r[metric]) for r in rows if metric in r]
        train = [(r["env_steps"], r["train_return"]) for r in rows if "train_return" in r]
        if train and metric == "test_return":
            xs, ys = zip(*train, strict=True)
            ax.plot(xs, ys, color=colour, lw=0.8, ls="--", alpha=0.5)
        if test:
            xs, ys = zip(*test, strict=True)
            ax.plot(xs, ys, color=colour, lw=1.8, label=label)
    if with_mean and len(runs) > 1:
        grid, mean = seed_mean_curve([rows for _, rows in runs], metric)
        ax.plot(grid, mean, color="black", lw=2.4, label=f"mean of {len(runs)}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(
        "team return per episode" if metric == "test_return" else metric.replace("_", " ")
    )
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    if metric == "test_return":
        ax.plot([], [], color="grey", lw=0.8, ls="--", label="training return (ε-greedy)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
