"""Exploration: a linear schedule (epsilon's, and the update rate's) and epsilon-greedy that
respects action masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LinearSchedule:
    """``start`` at step 0, linearly to ``finish`` at ``duration`` steps, constant after."""

    start: float
    finish: float
    duration: int

    def value(self, step: int) -> float:
        """The value after ``step`` environment steps (epsilon, an update rate, a learning-rate
        factor)."""
        fraction = min(max(step, 0) / max(self.duration, 1), 1.0)
        return self.start + fraction * (self.finish - self.start)

    def total(self, first: float, last: float) -> float:
        """The integral of :meth:`value` from step ``first`` to ``last`` (for an update rate:
        the updates owed for those steps)."""
        duration = max(self.duration, 1)

        def area(x: float) -> float:  # from 0 to x
            x = max(x, 0.0)
            ramp = min(x, duration)
            slope = (self.finish - self.start) / duration
            return self.start * ramp + slope * ramp * ramp / 2 + self.finish * (x - ramp)

        return area(last) - area(first)


def masked_argmax(q: np.ndarray, avail: np.ndarray) -> np.ndarray:
    """Greedy action among the available ones.

    Args:
        q: ``[..., A]`` values.
        avail: ``[..., A]`` bool; every row needs at least one available action.

    Returns:
        ``[...]`` int64 indices.
    """
    return np.where(avail, q, -np.inf).argmax(axis=-1)


def epsilon_greedy(
    q: np.ndarray,
    avail: np.ndarray,
    epsilon: float,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """With probability ``epsilon`` a uniform available action, else the greedy available one.

    Acting works on the environments' numpy arrays: for the small arrays of one step, numpy
    costs a few microseconds where torch's per-call overhead costs tens. The random numbers
    still come from the torch ``generator``, so one RNG drives exploration and replay sampling.

    Args:
        q: ``[B, N, A]`` agent Q-values.
        avail: ``[B, N, A]`` bool masks; each agent needs at least one available action.
        epsilon: exploration rate in [0, 1].
        generator: torch RNG for reproducible draws (CPU).

    Returns:
        ``[B, N]`` int64 actions, never an unavailable one.
    """
    if not avail.any(axis=-1).all():
        raise ValueError("every agent needs at least one available action")
    greedy = masked_argmax(q, avail)  # [B, N]
    if epsilon <= 0.0:
        return greedy
    b, n, a = avail.shape
    # One draw serves both choices: noise[..., 0] decides whether to explore; the argmax of
    # i.i.d. uniforms over the available actions is a uniformly random available action.
    noise = torch.rand(b, n, a + 1, generator=generator).numpy()  # [B, N, A+1]
    random_actions = masked_argmax(noise[..., 1:], avail)  # [B, N]
    return np.where(noise[..., 0] < epsilon, random_actions, greedy)
