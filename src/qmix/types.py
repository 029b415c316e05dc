"""Shared value types and the shape-letter glossary.

Shape letters used in every docstring and comment of this package:

- ``B`` episodes in a batch (or parallel environments while collecting)
- ``T`` transitions (an episode of ``T`` transitions has ``T + 1`` observation slots)
- ``N`` agents, ``A`` actions per agent
- ``O`` observation dim, ``S`` state dim (``S'`` the mixer-input dim), ``I`` agent-input dim
- ``H`` agent hidden dim, ``E`` mixing embed dim

Per-step scalars are ``[B, T]``, never ``[B, T, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EnvInfo:
    """Static description of a multi-agent task.

    Attributes:
        n_agents: number of agents ``N``.
        n_actions: number of discrete actions ``A`` per agent (padded to the largest).
        obs_dim: per-agent observation size ``O`` (padded to the largest).
        state_dim: global state size ``S``.
        episode_limit: the most transitions an episode can have (its time limit).
    """

    n_agents: int
    n_actions: int
    obs_dim: int
    state_dim: int
    episode_limit: int

    def __post_init__(self) -> None:
        for name in ("n_agents", "n_actions", "obs_dim", "state_dim", "episode_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EnvInfo.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class StepResult:
    """What one joint step returns.

    Attributes:
        reward: team reward (one scalar shared by all agents).
        terminated: the episode reached a true terminal state (no bootstrapping past it).
        truncated: the episode was cut by a time limit (bootstrapping continues past it).
        info: extra task information, e.g. ``{"battle_won": True}``.
    """

    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)
