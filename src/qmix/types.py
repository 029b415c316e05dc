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

import numpy as np


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


@dataclass(frozen=True)
class AgentWeights:
    """The acting agents' network as plain arrays, for simulators that act for themselves.

    A snapshot of :class:`qmix.networks.agents.AgentNetwork` plus the controller's input
    options, taken by :meth:`qmix.policy.controller.AgentController.agent_weights`. Every array
    has a leading core axis ``C`` (1 when agents share parameters, else ``N``), in PyTorch's
    layout (``out x in`` matrices; GRU gates in the order reset, update, new):

    - ``fc1_w [C, H, I]``, ``fc1_b [C, H]``;
    - recurrent agents only: ``gru_w_ih [C, 3H, H]``, ``gru_w_hh [C, 3H, H]``,
      ``gru_b_ih [C, 3H]``, ``gru_b_hh [C, 3H]``;
    - ``fc2_w [C, A, H]``, ``fc2_b [C, A]``.

    Attributes:
        arrays: the weights above, float32 numpy.
        recurrent: GRU agents (else feed-forward, with an empty hidden state).
        last_action: the input holds the one-hot previous action after the observation.
        agent_id: the input ends with the one-hot agent index.
        selector: how the outputs become actions (:mod:`qmix.policy.selectors`):
            ``epsilon_greedy`` (Q-values) or ``softmax`` (policy logits, with an epsilon
            floor). A simulator that cannot act with it must refuse it (``selectors``).
    """

    arrays: dict[str, np.ndarray]
    recurrent: bool
    last_action: bool
    agent_id: bool
    selector: str = "epsilon_greedy"
