"""Exploration never picks an unavailable action; the schedule is linear then flat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qmix.policy.exploration import LinearSchedule, epsilon_greedy, masked_argmax


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_epsilon_greedy_never_picks_unavailable(epsilon: float) -> None:
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(64, 5, 6, generator=gen) * 100  # [B, N, A]
    avail = torch.rand(64, 5, 6, generator=gen) < 0.3
    avail[..., 4] |= ~avail.any(-1)  # at least one available per agent
    q[..., 4] = 1e9  # the best action is often unavailable
    for _ in range(20):
        actions = epsilon_greedy(q.numpy(), avail.numpy(), epsilon, gen)
        assert np.take_along_axis(avail.numpy(), actions[..., None], -1).all()


def test_epsilon_one_covers_every_available_action_uniformly() -> None:
    gen = torch.Generator().manual_seed(0)
    avail = np.broadcast_to(np.array([True, False, True, True]), (4000, 1, 4))
    actions = epsilon_greedy(np.zeros((4000, 1, 4)), avail, 1.0, gen)
    counts = np.bincount(actions.reshape(-1), minlength=4) / 4000
    assert counts[1] == 0
    assert np.allclose(counts[[0, 2, 3]], 1 / 3, atol=0.04)


def test_greedy_is_masked_argmax() -> None:
    q = np.array([[[1.0, 5.0, 3.0]]])
    avail = np.array([[[True, False, True]]])
    assert epsilon_greedy(q, avail, 0.0).item() == 2
    assert masked_argmax(q, avail).item() == 2


def test_all_unavailable_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one available"):
        epsilon_greedy(np.zeros((1, 1, 2)), np.zeros((1, 1, 2), dtype=bool), 0.5)


def test_linear_schedule() -> None:
    s = LinearSchedule(1.0, 0.05, 100)
    assert s.value(0) == 1.0
    assert s.value(50) == pytest.approx(0.525)
    assert s.value(100) == pytest.approx(0.05)
    assert s.value(10_000) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("first", "last"), [(0, 100), (0, 40), (30, 70), (60, 250), (150, 400), (0, 0)]
)
def test_a_linear_schedules_total_is_the_sum_of_its_values(first: int, last: int) -> None:
    """``total(a, b)`` (the updates a ramped rate owes for steps a..b) is the integral of
    ``value``: the midpoint sum over unit steps equals it for a piecewise-linear schedule."""
    s = LinearSchedule(0.1, 0.5, 100)
    midpoints = sum(
        (s.value(x) + s.value(x + 1)) / 2 for x in range(first, last)
    )  # exact on each linear piece (the kink at 100 falls on a step boundary)
    assert s.total(first, last) == pytest.approx(midpoints)
    assert LinearSchedule(0.3, 0.3, 1).total(first, last) == pytest.approx(0.3 * (last - first))
