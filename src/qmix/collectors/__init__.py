"""Collectors: whatever plays episodes for the trainer (issue 14, section 1).

The trainer depends on the :class:`Collector` protocol only. :class:`~qmix.runner.EpisodeRunner`
is the single-process collector; a distributed one (Ray rollout actors, a later issue) is meant
to be the second, so the protocol says nothing of processes, environments or devices: it takes
seeds and an exploration rate and gives back whole episodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from qmix.data.episode_batch import EpisodeBatch
    from qmix.runner import RolloutStats


@runtime_checkable
class Collector(Protocol):
    """Plays episodes with the current policy; never trains.

    ``epsilon`` is the exploration rate of the agents' action selector; ``None`` plays
    greedily (tests, evaluation). Every method returns the episodes ``[K, T+1, ...]`` (padded
    to the episode limit, ordered by when they started) and their
    :class:`~qmix.runner.RolloutStats`.
    """

    @property
    def in_flight(self) -> int:
        """Episodes started by :meth:`collect` and not yet returned."""
        ...

    def collect(
        self,
        count: int,
        seeds: Iterator[int],
        epsilon: float | None,
        generator: torch.Generator | None = None,
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """At least ``count`` finished episodes; unfinished ones carry on into the next call.

        ``seeds`` is the same iterator on every call (episodes start from it in order)."""
        ...

    def drain(
        self, epsilon: float | None, generator: torch.Generator | None = None
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Finish the episodes :meth:`collect` left running, starting none."""
        ...

    def run(
        self, seeds: list[int], epsilon: float | None, generator: torch.Generator | None = None
    ) -> tuple[EpisodeBatch, RolloutStats]:
        """Exactly one episode per seed, in seed order (tests and evaluation)."""
        ...
