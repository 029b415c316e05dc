"""Statistics over seeds, computed by rliable (Agarwal et al., "Deep Reinforcement Learning at
the Edge of the Statistical Precipice", NeurIPS 2021): interquartile means, stratified
bootstrap confidence intervals and the probability of improvement.

rliable is an optional dependency (the ``stats`` extra, also pulled in by ``plots``); it is
imported inside the functions that need it, and a missing install says which extra to add.
Importing this module needs numpy only.

Scores follow rliable's layout: ``[K, T]``, K runs (seeds) of T tasks; a stratified bootstrap
resamples the K runs of each task with replacement, task by task, and never mixes tasks.

Reproducibility: rliable's stratified bootstrap draws its indices from NumPy's *global* RNG
(its ``random_state`` argument does not reach the draws), so every function here seeds that
RNG for the duration of the call (:func:`_global_numpy_seed`) and restores it afterwards: the
same scores always give the same interval, and the caller's random stream is left untouched.
(So two threads must not draw intervals at the same time: they would share that RNG.)
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

#: Bootstrap resamples used for every interval (rliable's default is 50,000: slower, and
#: with 3-5 seeds the resampled statistic takes few distinct values anyway).
BOOTSTRAP_RESAMPLES = 2000
#: Seed of the bootstrap's draws: the same scores always give the same interval.
BOOTSTRAP_SEED = 0
#: What to install when rliable is missing.
INSTALL_HINT = "pip install 'qmix[stats]' (rliable)"


def _rliable(module: str) -> Any:
    """rliable's ``library`` (bootstrap; imports arch, ~2 s) or ``metrics`` (scipy only), or an
    ImportError naming the extra."""
    try:
        return importlib.import_module(f"rliable.{module}")
    except ImportError as err:
        raise ImportError(f"these statistics need rliable: {INSTALL_HINT} ({err})") from None


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's global RNG inside the block and put its earlier state back after it."""
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(saved)


def _check_finite(data: np.ndarray, what: str) -> None:
    if data.size == 0:
        raise ValueError(f"{what} needs at least one value")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{what} needs finite values (no NaN or inf)")


def _check_interval(confidence: float, resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")


def _interval(
    scores: np.ndarray | list[np.ndarray],
    func: Callable[..., np.ndarray],
    confidence: float,
    resamples: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rliable's percentile interval of ``func`` over a stratified bootstrap of ``scores``.

    Returns ``(point, low, high)``, each shaped like ``func``'s output.
    """
    library = _rliable("library")
    with _global_numpy_seed(seed):
        points, intervals = library.get_interval_estimates(
            {"x": scores},
            func,
            method="percentile",
            reps=resamples,
            confidence_interval_size=confidence,
        )
    point = np.asarray(points["x"], dtype=float)
    low, high = np.asarray(intervals["x"], dtype=float)  # [2, ...]: lower row, upper row
    # Rounding in the resampled statistics must not push the interval off the point.
    return point, np.minimum(low, point), np.maximum(high, point)


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of the values (rliable's
    ``aggregate_iqm``, i.e. ``scipy.stats.trim_mean(x, 0.25)`` over every value).

    The ``floor(n / 4)`` lowest and ``floor(n / 4)`` highest values are dropped and the rest
    averaged; with fewer than 4 values nothing is dropped (plain mean). Robust to a few
    outliers, unlike the mean, and less noisy than the median.

    Args:
        values: scores of any shape (flattened).

    Raises:
        ValueError: no values, or non-finite values.
        ImportError: rliable is not installed.
    """
    flat = np.asarray(values, dtype=float).ravel()
    _check_finite(flat, "iqm")
    metrics = _rliable("metrics")
    return float(metrics.aggregate_iqm(flat))


def bootstrap_mean_ci(
    samples: np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 (seeds) with a percentile-bootstrap confidence interval (rliable).

    Each resample draws K seeds with replacement and takes their mean; the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of the ``resamples``
    means, at every column (grid point) of a ``[K, G]`` input. Read as a stratified bootstrap
    with the G columns as strata: each column's interval is that of the column alone. With one
    seed the interval collapses to the mean (and rliable is not needed). With few seeds (3-5) a
    percentile bootstrap is too narrow on average: read it as a description of the seeds at
    hand, not a guarantee.

    Args:
        samples: ``[K]`` or ``[K, G]`` values, K seeds.
        confidence: coverage of the interval, in (0, 1).
        resamples: number of bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        ``(mean, low, high)``, each ``[G]`` (or ``[]``-shaped 0-d arrays for ``[K]`` input).

    Raises:
        ValueError: no samples, more than two dimensions, non-finite values, or a bad
            ``confidence`` / ``resamples``.
    """
    data = np.asarray(samples, dtype=float)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise ValueError(f"expected samples of shape [K] or [K, G] with K >= 1, got {data.shape}")
    _check_finite(data, "bootstrap_mean_ci")
    _check_interval(confidence, resamples)
    k = data.shape[0]
    flat = data.reshape(k, -1)  # [K, G]: seeds x grid points (rliable's runs x tasks)
    if k == 1:
        mean = flat[0]
        low = high = mean.copy()
    else:
        mean, low, high = _interval(flat, lambda s: s.mean(axis=0), confidence, resamples, seed)
    shape = data.shape[1:]
    return mean.reshape(shape), low.reshape(shape), high.reshape(shape)


def iqm_curve_ci(
    samples: np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM over seeds at every grid point of ``[K, G]`` curves, with a percentile-bootstrap
    interval at each point (rliable; the seeds of each point resampled with replacement).

    Returns:
        ``(iqm, low, high)``, each ``[G]``; with one seed the curve itself and no width.

    Raises:
        ValueError: not ``[K, G]`` with K >= 1, non-finite values, or a bad ``confidence`` /
            ``resamples``.
    """
    data = np.asarray(samples, dtype=float)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"expected curves of shape [K, G] with K >= 1, got {data.shape}")
    _check_finite(data, "iqm_curve_ci")
    _check_interval(confidence, resamples)
    if data.shape[0] == 1:
        return data[0].copy(), data[0].copy(), data[0].copy()
    _rliable("metrics")
    from scipy.stats import trim_mean  # rliable's IQM, column by column

    return _interval(data, lambda s: trim_mean(s, 0.25, axis=0), confidence, resamples, seed)


def iqm_ci(
    scores: np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """IQM of a ``[K, T]`` score matrix over all its runs and tasks, with a stratified
    bootstrap interval (rliable's ``get_interval_estimates`` with ``aggregate_iqm``).

    Scores of different tasks are pooled as they are: put them on one scale first (e.g. a win
    rate or a return in [0, 1]). A ``[K]`` vector is one task.

    Returns:
        ``(iqm, low, high)``.

    Raises:
        ValueError: no scores, non-finite scores, more than two dimensions, or a bad
            ``confidence`` / ``resamples``.
    """
    data = np.asarray(scores, dtype=float)
    if data.ndim == 1:
        data = data[:, None]  # [K, 1]
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"expected scores of shape [K] or [K, T] with K >= 1, got {data.shape}")
    _check_finite(data, "iqm_ci")
    _check_interval(confidence, resamples)
    metrics = _rliable("metrics")
    point, low, high = _interval(
        data, lambda s: np.array([metrics.aggregate_iqm(s)]), confidence, resamples, seed
    )
    return float(point[0]), float(low[0]), float(high[0])


def probability_of_improvement(
    x: np.ndarray,
    y: np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """P(X > Y): the chance that a run of X scores higher than a run of Y on the same task
    (ties count half; Mann-Whitney U over all run pairs), averaged over tasks, with a
    stratified bootstrap interval that resamples X's and Y's runs independently (rliable).

    Scale-free: each task compares runs of that task only, so tasks need no common scale.

    Args:
        x, y: ``[Kx, T]`` and ``[Ky, T]`` scores (or ``[Kx]`` and ``[Ky]`` for one task).

    Returns:
        ``(probability, low, high)``; 0.5 means neither is better.

    Raises:
        ValueError: shapes that do not share T tasks, no runs, non-finite scores, or a bad
            ``confidence`` / ``resamples``.
    """
    xs, ys = (np.asarray(a, dtype=float) for a in (x, y))
    xs, ys = (a[:, None] if a.ndim == 1 else a for a in (xs, ys))
    if xs.ndim != 2 or ys.ndim != 2 or xs.shape[1] != ys.shape[1] or 0 in xs.shape + ys.shape:
        raise ValueError(
            f"expected scores [Kx, T] and [Ky, T] with the same T tasks, got {xs.shape}, {ys.shape}"
        )
    _check_finite(xs, "probability_of_improvement")
    _check_finite(ys, "probability_of_improvement")
    _check_interval(confidence, resamples)
    metrics = _rliable("metrics")
    point, low, high = _interval(
        [xs, ys],
        lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
        confidence,
        resamples,
        seed,
    )
    return float(point[0]), float(low[0]), float(high[0])
