"""The MultiAgentEnv protocol: one episode at a time, PyMARL-style.

Adapters translate external APIs into this protocol. The adapter decides what is a true
terminal state and what is a time limit (DESIGN.md section 3): a time limit is reported as
``truncated``, never as ``terminated``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from qmix.types import EnvInfo, StepResult


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


class VectorEnv(Protocol):
    """``B`` environments of one task stepped together; arrays carry a leading ``B``.

    ``step`` advances only the environments marked ``active``; the others keep their last
    arrays (their episodes have ended and the runner pads them).
    """

    num_envs: int

    def env_info(self) -> EnvInfo:
        """Sizes of the task (shared by every environment)."""
        ...

    def reset(self, seeds: list[int]) -> None:
        """Start a new episode in every environment, environment ``i`` with ``seeds[i]``."""
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

    def step(self, actions: np.ndarray, active: np.ndarray) -> list[StepResult | None]:
        """Step the active environments with ``actions [B, N]``; ``None`` for inactive ones."""
        ...

    def close(self) -> None:
        """Release every environment."""
        ...
