"""Subprocess workers: same results as in-process, and clear errors when a worker fails."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from qmix.envs.checker import check_vector_env
from qmix.envs.registry import make_vector_env
from qmix.envs.vector import EnvWorkerError, InProcessVectorEnv, SubprocessVectorEnv
from tests.conftest import CountdownEnv


def _play(envs, steps: int = 8) -> list[np.ndarray]:
    b = envs.num_envs
    everyone = np.ones(b, bool)
    envs.reset(list(range(b)), everyone)
    out = []
    for step in range(steps):
        actions = np.full((b, 2), step % 2)
        result = envs.step(actions, everyone)
        out += [envs.observations().copy(), envs.states().copy(), result.reward.copy()]
        done = result.terminated | result.truncated
        envs.reset([100 + step] * b, done)
    return out


def test_subprocess_matches_in_process() -> None:
    sub = SubprocessVectorEnv("tests.conftest:CountdownEnv", {}, num_envs=5, workers=2)
    try:
        local = InProcessVectorEnv(CountdownEnv, 5)
        for a, b in zip(_play(sub), _play(local), strict=True):
            assert np.array_equal(a, b)
        assert check_vector_env(sub).n_agents == 2
    finally:
        sub.close()


def test_make_vector_env_chooses_workers() -> None:
    envs = make_vector_env("two_step", {}, num_envs=3, workers=2)
    try:
        assert isinstance(envs, SubprocessVectorEnv)
        check_vector_env(envs)
    finally:
        envs.close()
    assert isinstance(make_vector_env("two_step", {}, 3, workers=0), InProcessVectorEnv)


class CrashingEnv(CountdownEnv):
    """Raises on its third step."""

    def step(self, actions: np.ndarray):
        if self.t == 2:
            raise RuntimeError("simulator exploded")
        return super().step(actions)


class DyingEnv(CountdownEnv):
    """The whole process disappears on the first step (as a segfault would)."""

    def step(self, actions: np.ndarray):
        os._exit(3)


class HangingEnv(CountdownEnv):
    """Never returns from step."""

    def step(self, actions: np.ndarray):
        time.sleep(3600)


@pytest.mark.parametrize(
    "factory, timeout, message",
    [
        (
            "tests.test_vector:CrashingEnv",
            60.0,
            "worker 0 failed: RuntimeError: simulator exploded",
        ),
        ("tests.test_vector:DyingEnv", 60.0, r"worker 0 died \(exit code 3\)"),
        ("tests.test_vector:HangingEnv", 2.0, "worker 0 did not answer within 2 s"),
    ],
)
def test_worker_failures_are_clear_errors_naming_the_task(
    factory: str, timeout: float, message: str
) -> None:
    envs = SubprocessVectorEnv(factory, {"limit": 5}, num_envs=2, workers=1, timeout=timeout)
    everyone = np.ones(2, bool)
    envs.reset([3, 3], everyone)
    start = time.monotonic()
    with pytest.raises(EnvWorkerError, match=message) as info:
        for _ in range(5):
            envs.step(np.zeros((2, 2), np.int64), everyone)
    assert factory in str(info.value)
    assert time.monotonic() - start < 10
    assert not envs._procs  # workers were stopped


def test_worker_that_fails_at_construction() -> None:
    with pytest.raises(EnvWorkerError, match=r"worker 0 failed: .*rejected env_args"):
        SubprocessVectorEnv("two_step", {"size": 3}, num_envs=1, workers=1)
