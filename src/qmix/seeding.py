"""Episode seed streams, derived from counters: train, test and evaluation never share a seed.

Each episode's reset seed is a function of the run's seed, a stream number and the episode's
index in that stream, not the state of a running RNG: a resumed run replays the same seeds
from its counters alone, and changing how often a run tests does not change its training
episodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

TRAIN_STREAM, TEST_STREAM, EVAL_STREAM = 0, 1, 2


def episode_seed(seed: int, stream: int, index: int) -> int:
    """Reset seed of episode ``index`` of a stream (train, test or eval).

    Derived from counters, not from a running RNG, so a resumed run replays the same seeds.
    """
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def episode_seeds(seed: int, stream: int, first: int, count: int) -> list[int]:
    """Reset seeds for episodes ``first .. first + count - 1`` of a stream."""
    return [episode_seed(seed, stream, first + i) for i in range(count)]


def seed_stream(seed: int, stream: int, first: int) -> Iterator[int]:
    """Reset seeds for episodes ``first, first + 1, ...`` of a stream, without end."""
    return (episode_seed(seed, stream, i) for i in itertools.count(first))
