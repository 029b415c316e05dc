"""EpisodeBatch: whole episodes in preallocated ``[B, T + 1, ...]`` tensors.

Alignment (DESIGN.md section 3), written once here:

- slot ``t`` holds what the agents saw before acting at ``t`` -- ``obs[:, t]``, ``state[:, t]``,
  ``avail_actions[:, t]`` -- valid for ``t <= T_ep`` (slot ``T_ep`` is the observation after
  the last transition, needed to bootstrap a truncated episode);
- and what followed -- ``actions[:, t]``, ``reward[:, t]``, ``terminated[:, t]``,
  ``truncated[:, t]``, ``filled[:, t]`` -- valid for ``t < T_ep``.

Bootstrapping at ``t`` uses slot ``t + 1`` unless ``terminated[:, t]``.
:meth:`EpisodeBatch.transition_mask` is the one place the loss mask is derived.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from qmix.types import EnvInfo


@dataclass
class EpisodeBatch:
    """A batch of ``B`` episodes padded to ``T`` transitions.

    Attributes:
        obs: ``[B, T+1, N, O]`` float32 observations.
        state: ``[B, T+1, S]`` float32 global states.
        avail_actions: ``[B, T+1, N, A]`` bool action masks.
        actions: ``[B, T, N]`` int64 joint actions.
        reward: ``[B, T]`` float32 team rewards.
        terminated: ``[B, T]`` bool, true terminal after transition t.
        truncated: ``[B, T]`` bool, time limit hit after transition t.
        filled: ``[B, T]`` bool, transition t is real (not padding).
    """

    obs: torch.Tensor
    state: torch.Tensor
    avail_actions: torch.Tensor
    actions: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    filled: torch.Tensor

    @classmethod
    def zeros(cls, batch_size: int, info: EnvInfo, max_steps: int | None = None) -> EpisodeBatch:
        """Allocate an all-padding batch of ``batch_size`` episodes of at most ``max_steps``."""
        b, t = batch_size, max_steps if max_steps is not None else info.episode_limit
        n, a = info.n_agents, info.n_actions
        return cls(
            obs=torch.zeros(b, t + 1, n, info.obs_dim),
            state=torch.zeros(b, t + 1, info.state_dim),
            avail_actions=torch.zeros(b, t + 1, n, a, dtype=torch.bool),
            actions=torch.zeros(b, t, n, dtype=torch.long),
            reward=torch.zeros(b, t),
            terminated=torch.zeros(b, t, dtype=torch.bool),
            truncated=torch.zeros(b, t, dtype=torch.bool),
            filled=torch.zeros(b, t, dtype=torch.bool),
        )

    @staticmethod
    def nbytes_per_episode(info: EnvInfo, max_steps: int | None = None) -> int:
        """Memory one episode of :meth:`zeros` takes, in bytes (float32, int64 and bool)."""
        t = max_steps if max_steps is not None else info.episode_limit
        n, a = info.n_agents, info.n_actions
        slots = (t + 1) * (4 * n * info.obs_dim + 4 * info.state_dim + n * a)
        return slots + t * (8 * n + 4 + 3)

    def for_learning(
        self, reward_scale: float = 1.0, time_limit_terminal: bool = False
    ) -> EpisodeBatch:
        """The batch as a learner is to see it: rewards times ``reward_scale``, and with
        ``time_limit_terminal`` every truncation also a terminal (no bootstrapping there).
        Returns ``self`` when nothing changes."""
        if reward_scale == 1.0 and not time_limit_terminal:
            return self
        terminated = self.terminated | self.truncated if time_limit_terminal else self.terminated
        return replace(self, reward=self.reward * reward_scale, terminated=terminated)

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.reward.shape[0])

    @property
    def max_steps(self) -> int:
        """``T``: padded number of transitions."""
        return int(self.reward.shape[1])

    def episode_lengths(self) -> torch.Tensor:
        """Number of real transitions per episode, ``[B]``."""
        return self.filled.sum(dim=1)

    def transition_mask(self) -> torch.Tensor:
        """``[B, T]`` float: 1 for real transitions, 0 for padding. The loss mask."""
        return self.filled.float()

    def slot_mask(self) -> torch.Tensor:
        """``[B, T+1]`` bool: the real slots (``t <= T_ep``: slot 0, and the slot after every
        real transition), where the networks need values; the rest is padding."""
        return torch.cat([torch.ones_like(self.filled[:, :1]), self.filled], dim=1)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Field name -> tensor."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def index(self, rows: torch.Tensor | slice) -> EpisodeBatch:
        """Select episodes (rows of the batch dimension)."""
        return EpisodeBatch(**{k: v[rows] for k, v in self.tensors().items()})

    def truncate_time(self, max_steps: int) -> EpisodeBatch:
        """Keep the first ``max_steps`` transitions (and ``max_steps + 1`` observation slots)."""
        out = {}
        for name, value in self.tensors().items():
            per_slot = name in ("obs", "state", "avail_actions")
            out[name] = value[:, : max_steps + 1] if per_slot else value[:, :max_steps]
        return EpisodeBatch(**out)

    def to(self, device: torch.device | str) -> EpisodeBatch:
        """Move every tensor to ``device``."""
        return EpisodeBatch(**{k: v.to(device) for k, v in self.tensors().items()})
