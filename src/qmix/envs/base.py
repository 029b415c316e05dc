"""The MultiAgentEnv protocol: one episode at a time, PyMARL-style.

Adapters translate external APIs into this protocol. The adapter decides what is a true
terminal state and what is a time limit (DESIGN.md section 3): a time limit is reported as
``truncated``, never as ``terminated``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from qmix.types import AgentWeights, EnvInfo, StepResult


@runtime_checkable
class MultiAgentEnv(Protocol):
    """A cooperative task with a shared team reward.

    Arrays are numpy: ``observations() -> [N, O] float32``, ``state() -> [S] float32``,
    ``avail_actions() -> [N, A] bool`` (at least one action available per agent).
    """

    def env_info(self) -> EnvInfo:
        """Sizes of the task; constant over the env's life."""
        ...

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; the same seed gives the same episode under the same actions."""
        ...

    def observations(self) -> np.ndarray:
        """Per-agent observations of the current step, ``[N, O]``."""
        ...

    def state(self) -> np.ndarray:
        """Global state of the current step, ``[S]``."""
        ...

    def avail_actions(self) -> np.ndarray:
        """Which actions each agent may take now, ``[N, A]`` bool."""
        ...

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply the joint action ``actions [N]`` (int) and return the team's result."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


@dataclass(frozen=True)
class VectorStep:
    """What one batched step returns; entries of inactive environments are ignored.

    Attributes:
        reward: ``[B]`` float32 team rewards.
        terminated: ``[B]`` bool, true terminal states.
        truncated: ``[B]`` bool, time limits.
        infos: ``B`` dicts (empty for inactive environments), e.g. ``{"battle_won": True}``.
    """

    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: list[dict[str, Any]]


class VectorEnv(Protocol):
    """``B`` environments of one task stepped together; arrays carry a leading ``B``.

    Contract:

    - ``reset(seeds, mask)`` starts a new episode in every environment ``i`` with ``mask[i]``,
      seeded with ``seeds[i]``; the others are left untouched.
    - ``step(actions, active)`` advances the environments with ``active[i]``; the others may
      be stepped or not (their results are ignored) but must stay finite.
    - There is **no auto-reset**: after an episode ends, ``observations()``, ``states()`` and
      ``avail_actions()`` describe the state after its last transition (needed to bootstrap a
      truncated episode) until the runner resets that environment.
    """

    num_envs: int

    def env_info(self) -> EnvInfo:
        """Sizes of the task (shared by every environment)."""
        ...

    def reset(self, seeds: Sequence[int], mask: np.ndarray) -> None:
        """Reset the environments selected by ``mask [B]``, environment ``i`` with ``seeds[i]``."""
        ...

    def observations(self) -> np.ndarray:
        """``[B, N, O]`` float32."""
        ...

    def states(self) -> np.ndarray:
        """``[B, S]`` float32."""
        ...

    def avail_actions(self) -> np.ndarray:
        """``[B, N, A]`` bool."""
        ...

    def step(self, actions: np.ndarray, active: np.ndarray) -> VectorStep:
        """Step the active environments with ``actions [B, N]`` (int)."""
        ...

    def close(self) -> None:
        """Release every environment (and worker processes)."""
        ...


@runtime_checkable
class AgentActingVectorEnv(VectorEnv, Protocol):
    """A :class:`VectorEnv` that can run the agents' acting step itself (a JAX simulator
    compiling the policy into its step). The runner then hands it the weights once per call
    instead of choosing every action in PyTorch; the environment owns the acting state
    (hidden states, previous actions) and zeroes it when an episode starts."""

    def load_agents(self, weights: AgentWeights, seed: int) -> None:
        """Act with these weights from now on; ``seed`` seeds the exploration draws."""
        ...

    def reset_act_step(
        self, seeds: Sequence[int], mask: np.ndarray, epsilon: float, active: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], VectorStep]:
        """``reset(seeds, mask)`` (zeroing the acting state of those envs), then
        epsilon-greedy joint actions ``[B, N]`` for every env and the step of the ``active``
        ones with them. Returns the actions, the views acted on (obs, state, avail, after the
        resets) and the step."""
        ...
