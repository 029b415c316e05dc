"""VectorEnv implementations. In-process: a list of environments stepped in a loop."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qmix.envs.base import MultiAgentEnv
from qmix.types import EnvInfo, StepResult


class InProcessVectorEnv:
    """``B`` environments in this process; best for cheap tasks (matrix games, LBF).

    Args:
        make: builds one environment.
        num_envs: ``B``.
    """

    def __init__(self, make: Callable[[], MultiAgentEnv], num_envs: int) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.envs = [make() for _ in range(num_envs)]
        self.num_envs = num_envs
        self._info = self.envs[0].env_info()
        self._obs = np.zeros((num_envs, self._info.n_agents, self._info.obs_dim), np.float32)
        self._state = np.zeros((num_envs, self._info.state_dim), np.float32)
        self._avail = np.ones((num_envs, self._info.n_agents, self._info.n_actions), bool)

    def env_info(self) -> EnvInfo:
        """Sizes of the task."""
        return self._info

    def _read(self, i: int) -> None:
        env = self.envs[i]
        self._obs[i] = env.observations()
        self._state[i] = env.state()
        self._avail[i] = env.avail_actions()

    def reset(self, seeds: list[int]) -> None:
        """Reset environment ``i`` with ``seeds[i]``."""
        for i, env in enumerate(self.envs):
            env.reset(seed=seeds[i])
            self._read(i)

    def observations(self) -> np.ndarray:
        """``[B, N, O]``."""
        return self._obs

    def states(self) -> np.ndarray:
        """``[B, S]``."""
        return self._state

    def avail_actions(self) -> np.ndarray:
        """``[B, N, A]``."""
        return self._avail

    def step(self, actions: np.ndarray, active: np.ndarray) -> list[StepResult | None]:
        """Step the active environments with ``actions [B, N]``."""
        results: list[StepResult | None] = []
        for i, env in enumerate(self.envs):
            if not active[i]:
                results.append(None)
                continue
            results.append(env.step(actions[i]))
            self._read(i)
        return results

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()
