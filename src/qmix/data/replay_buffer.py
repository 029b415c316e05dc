"""Replay buffer of whole episodes: a ring over preallocated tensors, uniform sampling."""

from __future__ import annotations

import torch

from qmix.data.episode_batch import EpisodeBatch
from qmix.types import EnvInfo


class ReplayBuffer:
    """Holds the last ``capacity`` episodes, each padded to the task's episode limit.

    Args:
        capacity: number of episodes kept; the oldest is overwritten first.
        info: task sizes, for preallocation.
    """

    def __init__(self, capacity: int, info: EnvInfo) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.storage = EpisodeBatch.zeros(capacity, info)  # [C, T+1, ...]
        self.next_index = 0  # ring position of the next insert
        self.size = 0  # episodes currently held

    def __len__(self) -> int:
        return self.size

    def insert(self, batch: EpisodeBatch) -> None:
        """Store every episode of ``batch`` (``[B, T', ...]`` with ``T' <= T``)."""
        b, t = batch.batch_size, batch.max_steps
        rows = (self.next_index + torch.arange(b)) % self.capacity  # [B]
        for name, dst in self.storage.tensors().items():
            src = getattr(batch, name)
            dst[rows] = 0  # clear the overwritten episodes' old tails
            width = t + 1 if name in ("obs", "state", "avail_actions") else t
            dst[rows, :width] = src
        self.next_index = int((self.next_index + b) % self.capacity)
        self.size = min(self.size + b, self.capacity)

    def can_sample(self, batch_size: int) -> bool:
        """Whether ``batch_size`` distinct episodes are held."""
        return self.size >= batch_size

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> EpisodeBatch:
        """Uniformly sample ``batch_size`` distinct episodes, trimmed to their longest."""
        if not self.can_sample(batch_size):
            raise ValueError(f"buffer holds {self.size} episodes, asked for {batch_size}")
        rows = torch.randperm(self.size, generator=generator)[:batch_size]  # [B]
        batch = self.storage.index(rows)
        longest = int(batch.episode_lengths().max())
        return batch.truncate_time(longest)

    def state_dict(self) -> dict[str, object]:
        """Everything needed to restore the buffer exactly: only the rows that hold episodes.

        Until the ring is full the episodes are rows ``0 .. size - 1``; once full, all rows.
        """
        return {
            "tensors": {k: v[: self.size].clone() for k, v in self.storage.tensors().items()},
            "next_index": self.next_index,
            "size": self.size,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore from :meth:`state_dict` into this buffer's preallocated storage.

        Raises:
            ValueError: the saved episodes do not fit this buffer (other task or capacity).
        """
        tensors = state["tensors"]
        size, next_index = state["size"], state["next_index"]
        if not (
            isinstance(tensors, dict) and isinstance(size, int) and isinstance(next_index, int)
        ):
            raise ValueError("replay buffer state is malformed")
        if size > self.capacity:
            raise ValueError(f"saved buffer holds {size} episodes, capacity is {self.capacity}")
        for name, dst in self.storage.tensors().items():
            src = tensors[name]
            if not isinstance(src, torch.Tensor) or src.shape[1:] != dst.shape[1:]:
                raise ValueError(f"saved buffer's {name!r} does not match this task's shapes")
            dst.zero_()
            dst[:size] = src
        self.size, self.next_index = size, next_index
