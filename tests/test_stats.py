"""qmix.stats: rliable's statistics, checked against the numbers our own code gave before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qmix.compare import curve_stats, group_runs, load_runs, summary_rows
from qmix.stats import bootstrap_mean_ci, iqm, iqm_ci, iqm_curve_ci, probability_of_improvement

RECORDED = Path(__file__).resolve().parents[1] / "benchmarks" / "recorded"

# What `qmix summary` and `qmix plot` gave on two committed records with the hand-written
# percentile bootstrap and IQM they used before rliable (commit c58e75c): the IQM column, and the
# mean curve with its 95% band at six grid points.
BEFORE: dict[str, dict[str, Any]] = {
    "qmix_lbf_8x8_2p_2f_coop.json": {
        "iqm": 0.9703125,
        "final": 0.953125,
        "steps": [10000.0, 121109.0, 222777.0, 314587.0, 405337.0, 500022.0],
        "mean": [0.0, 0.2039, 0.4882, 0.8332, 0.9061, 0.9539],
        "low": [0.0, 0.1886, 0.3281, 0.7054, 0.7969, 0.9219],
        "high": [0.0, 0.2188, 0.6339, 0.9844, 0.9994, 1.0],
    },
    "qmix_mpe_simple_spread.json": {
        "iqm": -42.33958861721433,
        "final": -41.09210441137353,
        "steps": [10000.0, 200000.0, 400000.0, 600000.0, 800000.0, 1000000.0],
        "mean": [-130.8624, -59.5571, -53.9879, -51.7955, -46.7145, -41.0921],
        "low": [-160.4296, -64.7335, -57.0951, -54.6538, -48.7852, -41.9827],
        "high": [-92.5288, -56.64, -51.8136, -50.1516, -44.0909, -39.7403],
    },
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_summary_and_bands_keep_the_numbers_of_the_hand_written_statistics(name: str) -> None:
    before = BEFORE[name]
    runs = load_runs([RECORDED / name])
    (row,) = summary_rows(runs)
    assert row["iqm"] == pytest.approx(before["iqm"], rel=1e-12)  # the same trimming rule
    assert row["final"] == pytest.approx(before["final"], rel=1e-12)
    (group,) = group_runs(runs).values()
    curve = curve_stats(group)
    at = np.searchsorted(curve.steps, before["steps"])
    np.testing.assert_array_equal(curve.steps[at], before["steps"])
    np.testing.assert_allclose(curve.mean[at], before["mean"], atol=1e-4)
    # 3 seeds: a resampled mean takes 10 values, so both bootstraps' percentiles land on the
    # same few values; what differs is the draw (another RNG), within Monte Carlo error.
    scale = float(np.ptp(curve.mean)) or 1.0
    np.testing.assert_allclose(curve.low[at], before["low"], atol=0.01 * scale)
    np.testing.assert_allclose(curve.high[at], before["high"], atol=0.01 * scale)


def test_bootstrap_band_matches_an_exact_percentile_bootstrap_and_leaves_the_rng_alone() -> None:
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(5, 7))  # [K, G]
    # The exact bootstrap distribution of a mean of 5: all 5^5 ordered draws.
    idx = np.stack(np.meshgrid(*[np.arange(5)] * 5, indexing="ij"), -1).reshape(-1, 5)
    exact = samples[idx].mean(axis=1)  # [3125, G]
    want_low, want_high = np.percentile(exact, [2.5, 97.5], axis=0)
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    mean, low, high = bootstrap_mean_ci(samples, resamples=4000)
    assert np.random.random() == before  # the caller's global stream is restored
    width = want_high - want_low
    np.testing.assert_allclose(mean, samples.mean(axis=0))
    np.testing.assert_allclose(low, want_low, atol=0.08 * width.max())
    np.testing.assert_allclose(high, want_high, atol=0.08 * width.max())


def test_iqm_ci_brackets_the_iqm_and_is_reproducible() -> None:
    scores = np.random.default_rng(0).uniform(size=(10, 3))  # [K, T]
    point, low, high = iqm_ci(scores)
    assert point == pytest.approx(iqm(scores))
    assert low < point < high
    assert iqm_ci(scores) == (point, low, high)
    same = np.full((5, 2), 0.7)
    assert iqm_ci(same) == pytest.approx((0.7, 0.7, 0.7))


def test_probability_of_improvement_orders_runs() -> None:
    def poi(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        return probability_of_improvement(x, y, resamples=200)  # Mann-Whitney per draw: slow

    low = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    high = low + 1.0
    assert poi(high, low)[0] == 1.0
    assert poi(low, high)[0] == 0.0
    assert poi(low, low)[0] == 0.5  # identical runs: a tie
    # One overlap of 25 pairs: x = [0.1..0.5], y = [0.45, 9, 9, 9, 9] -> P(x > y) = 1/25.
    y = np.array([0.45, 9.0, 9.0, 9.0, 9.0])
    p, lo, hi = poi(low, y)
    assert p == pytest.approx(1 / 25)
    assert lo <= p <= hi
    # Two tasks: the mean of the per-task probabilities (scale-free).
    two_x = np.stack([high, 1000 * low], axis=1)  # [5, 2]
    two_y = np.stack([low, 1000 * high], axis=1)
    assert poi(two_x, two_y)[0] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda: iqm(np.array([])),
        lambda: iqm(np.array([1.0, np.nan])),
        lambda: iqm_ci(np.zeros((0, 2))),
        lambda: iqm_ci(np.zeros((2, 2, 2))),
        lambda: iqm_ci(np.ones(4), confidence=1.0),
        lambda: probability_of_improvement(np.ones((3, 2)), np.ones((3, 1))),
        lambda: probability_of_improvement(np.ones(3), np.array([1.0, np.inf])),
        lambda: bootstrap_mean_ci(np.ones(3), resamples=0),
    ],
)
def test_bad_scores_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_a_command_without_its_extra_says_which_to_install() -> None:
    from qmix.cli import _require

    _require("summary", {"numpy": "stats"})  # installed: nothing to say
    with pytest.raises(ValueError, match=r"qmix summary needs no_such_module_q: pip install "):
        _require("summary", {"no_such_module_q": "stats"})


def test_iqm_curve_ci_trims_each_grid_point_on_its_own() -> None:
    curves = np.array([[0.0, 10.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [100.0, 0.0]])  # [5, 2]
    mid, low, high = iqm_curve_ci(curves)
    np.testing.assert_allclose(mid, [2.0, 2.0])  # the middle three of each column
    assert np.all(low <= mid) and np.all(mid <= high)
    one = iqm_curve_ci(curves[:1])
    np.testing.assert_array_equal(one[0], curves[0])
    np.testing.assert_array_equal(one[1], one[2])
