"""The progress line's ETA: what is left, from what the run has spent so far."""

from __future__ import annotations

import pytest

from qmix.logging import capped_updates_left, eta_seconds
from qmix.policy.exploration import LinearSchedule


def test_without_a_known_update_count_the_eta_is_time_per_step_times_steps_left() -> None:
    eta = eta_seconds(100.0, 60.0, 1_000, 50, 9_000, None)
    assert eta == pytest.approx(900.0)


def test_a_known_update_count_scales_updates_and_steps_apart() -> None:
    """40 s of 100 outside updates over 1,000 steps: 0.04 s a step; 60 s over 300 updates:
    0.2 s an update; 9,000 steps and 4,000 updates left: 360 + 800 s."""
    eta = eta_seconds(100.0, 60.0, 1_000, 300, 9_000, 4_000.0)
    assert eta == pytest.approx(0.04 * 9_000 + 0.2 * 4_000)


def test_a_rising_update_rate_is_foreseen() -> None:
    """A run whose rate ramps from 0.05 to 0.25 over its 200k steps, timed exactly at 10%:
    the ETA equals the time the rest takes when an update and a step cost what they did; the
    time per step so far (the old ETA) would be more than 25% short."""
    rate, total, at = LinearSchedule(0.05, 0.25, 200_000), 200_000, 20_000
    per_step, per_update = 0.001, 0.006
    updates_done, updates_left = rate.total(0, at), rate.total(at, total)
    learn = per_update * updates_done
    elapsed = per_step * at + learn
    truth = per_step * (total - at) + per_update * updates_left
    eta = eta_seconds(elapsed, learn, at, round(updates_done), total - at, updates_left)
    assert eta == pytest.approx(truth, rel=0.01)
    assert eta_seconds(elapsed, learn, at, 1, total - at, None) < 0.75 * truth


def test_nothing_done_yet_gives_no_estimate() -> None:
    assert eta_seconds(5.0, 0.0, 0, 0, 1_000, 10.0) == 0.0


def test_a_capped_rate_is_estimated_between_its_bounds() -> None:
    """Rate 0.08 so far, cap 0.15, 180k steps left: half-way between keeping 0.08 (14.4k
    updates) and the cap from now on (27k): 20.7k. A rate above the cap counts as the cap."""
    assert capped_updates_left(0.08, 0.15, 180_000) == pytest.approx(20_700.0)
    assert capped_updates_left(0.3, 0.15, 1_000) == pytest.approx(150.0)
    assert capped_updates_left(0.08, 0.15, 0) == 0.0
