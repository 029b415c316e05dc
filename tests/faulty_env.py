"""A small task that breaks on purpose, for the error-path tests (issue 13).

``tests.faulty_env:make`` is a ``module:factory`` path the registry, the trainer and the CLI
accept, e.g. ``qmix train qmix tests.faulty_env:make env_args.fault=nan_obs``.

Faults (``fault=``), each from step ``at_step`` of every episode (counted from 1) unless said:

- ``none``: a well-behaved task;
- ``nan_obs``, ``inf_obs``: agent 1's observation holds NaN / inf;
- ``nan_state``: the state holds NaN;
- ``nan_reward``, ``inf_reward``: the step's reward is NaN / inf;
- ``raise_step``: ``step()`` raises ``ValueError("injected fault")``;
- ``raise_reset``: ``reset()`` raises ``ValueError("injected fault")`` (always);
- ``raise_init``: the factory raises ``RuntimeError("injected fault")``;
- ``hang_step``: ``step()`` sleeps for an hour;
- ``crash_step``: ``step()`` ends the process with ``os._exit(3)`` (as a segfault would);
- ``obs_shape``: ``observations()`` returns ``[1, O]`` instead of ``[N, O]``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from qmix.types import EnvInfo, StepResult

FAULTS = (
    "none",
    "nan_obs",
    "inf_obs",
    "nan_state",
    "nan_reward",
    "inf_reward",
    "raise_step",
    "raise_reset",
    "raise_init",
    "hang_step",
    "crash_step",
    "obs_shape",
)


class FaultyEnv:
    """Two agents, three actions, ``O = 4``, ``S = 5``, episodes of 10 steps (time limit).

    Observations and state count the steps; the reward is 1 per step. From step ``at_step``
    of an episode on (``t >= at_step`` after the step), ``fault`` shows.
    """

    n_agents, n_actions, obs_dim, state_dim, limit = 2, 3, 4, 5, 10

    def __init__(self, fault: str = "none", at_step: int = 3) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use one of {', '.join(FAULTS)}")
        self.fault = fault
        self.at_step = at_step
        self.t = 0

    def env_info(self) -> EnvInfo:
        return EnvInfo(
            n_agents=self.n_agents,
            n_actions=self.n_actions,
            obs_dim=self.obs_dim,
            state_dim=self.state_dim,
            episode_limit=self.limit,
        )

    def _faulty(self, fault: str) -> bool:
        return self.fault == fault and self.t >= self.at_step

    def reset(self, seed: int | None = None) -> None:
        if self.fault == "raise_reset":
            raise ValueError("injected fault")
        self.t = 0

    def observations(self) -> np.ndarray:
        obs = np.full((self.n_agents, self.obs_dim), float(self.t), np.float32)  # [N, O]
        obs[:, 0] = np.arange(self.n_agents)
        if self._faulty("nan_obs"):
            obs[1, 2] = np.nan
        if self._faulty("inf_obs"):
            obs[1, 2] = np.inf
        if self._faulty("obs_shape"):
            return obs[:1]  # [1, O]: would broadcast into an [N, O] buffer
        return obs

    def state(self) -> np.ndarray:
        state = np.full(self.state_dim, float(self.t), np.float32)  # [S]
        if self._faulty("nan_state"):
            state[3] = np.nan
        return state

    def avail_actions(self) -> np.ndarray:
        return np.ones((self.n_agents, self.n_actions), bool)  # [N, A]

    def step(self, actions: np.ndarray) -> StepResult:
        if self.t + 1 >= self.at_step:  # the faults of step() itself
            if self.fault == "raise_step":
                raise ValueError("injected fault")
            if self.fault == "hang_step":
                time.sleep(3600)
            if self.fault == "crash_step":
                os._exit(3)
        self.t += 1
        reward = 1.0
        if self._faulty("nan_reward"):
            reward = float("nan")
        if self._faulty("inf_reward"):
            reward = float("inf")
        return StepResult(reward=reward, terminated=False, truncated=self.t >= self.limit)

    def close(self) -> None:
        pass


def make(fault: str = "none", at_step: int = 3, **kwargs: Any) -> FaultyEnv:
    """Build a :class:`FaultyEnv`; ``fault="raise_init"`` raises here instead."""
    if fault == "raise_init":
        raise RuntimeError("injected fault")
    return FaultyEnv(fault, at_step)
