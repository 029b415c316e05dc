"""A game that never ends by itself: reward 1 every step, every episode cut by its one-step
time limit (a truncation). Its values tell how a learner treats the time limit: bootstrapping
through it, Q = 1 / (1 - gamma); as a terminal, Q = 1."""

from __future__ import annotations

import numpy as np

from qmix.types import EnvInfo, StepResult


class RepeatedGame:
    """Two agents, two actions, one constant observation; see the module docstring."""

    def env_info(self) -> EnvInfo:
        return EnvInfo(n_agents=2, n_actions=2, obs_dim=1, state_dim=1, episode_limit=1)

    def reset(self, seed: int | None = None) -> None:
        del seed

    def observations(self) -> np.ndarray:
        return np.ones((2, 1), dtype=np.float32)

    def state(self) -> np.ndarray:
        return np.ones(1, dtype=np.float32)

    def avail_actions(self) -> np.ndarray:
        return np.ones((2, 2), dtype=bool)

    def step(self, actions: np.ndarray) -> StepResult:
        del actions
        return StepResult(reward=1.0, terminated=False, truncated=True)

    def close(self) -> None:
        pass


def make() -> RepeatedGame:
    return RepeatedGame()
