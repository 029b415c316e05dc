"""Shared fixtures: one torch thread (fastest here), a variable-length test task, and the
benchmark scripts as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from qmix.types import EnvInfo, StepResult

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module (the scripts are not a package), listed in
    ``sys.modules`` while it runs (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class CountdownEnv:
    """Test task with seed-dependent episode lengths and action masks.

    Two agents, three actions. The episode lasts ``1 + seed % 4`` steps and then terminates,
    unless that exceeds ``limit``, in which case it runs into the time limit (no terminal).
    Action 2 is unavailable to agent 1 on even steps. Reward = step index + 1.
    """

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self.t = 0
        self.length = 1

    def env_info(self) -> EnvInfo:
        return EnvInfo(n_agents=2, n_actions=3, obs_dim=2, state_dim=3, episode_limit=self.limit)

    def reset(self, seed: int | None = None) -> None:
        self.t = 0
        self.length = 1 + (seed or 0) % 4

    def observations(self) -> np.ndarray:
        return np.array([[self.t, 0.0], [self.t, 1.0]], dtype=np.float32)

    def state(self) -> np.ndarray:
        return np.array([self.t, self.length, 1.0], dtype=np.float32)

    def avail_actions(self) -> np.ndarray:
        avail = np.ones((2, 3), dtype=bool)
        if self.t % 2 == 0:
            avail[1, 2] = False
        return avail

    def step(self, actions: np.ndarray) -> StepResult:
        assert actions.shape == (2,)
        self.t += 1
        return StepResult(reward=float(self.t), terminated=self.t >= self.length, truncated=False)

    def close(self) -> None:
        pass


@pytest.fixture
def countdown_env() -> CountdownEnv:
    return CountdownEnv()
