"""Built-in tasks: dynamics of the two-step game, true values, and the contract over every task."""

from __future__ import annotations

import numpy as np
import pytest

from qmix.envs.checker import EnvCheckError, check_env
from qmix.envs.matrix import make_penalty_game, make_two_step
from qmix.envs.registry import ENVS, make_env
from qmix.types import EnvInfo, StepResult
from tests.conftest import CountdownEnv

BUILT_IN = sorted(
    name for name, spec in ENVS.items() if spec.factory.startswith("qmix.envs.matrix")
)


@pytest.mark.parametrize("task", BUILT_IN)
def test_every_built_in_task_passes_the_contract(task: str) -> None:
    info = check_env(make_env(task))
    assert info.n_agents >= 2


def test_two_step_dynamics() -> None:
    env = make_two_step()
    assert env.env_info() == EnvInfo(
        n_agents=2, n_actions=2, obs_dim=3, state_dim=3, episode_limit=2
    )
    for first, second, expected_state, reward in [
        ((0, 1), (1, 0), "2A", 7.0),
        ((0, 0), (1, 1), "2A", 7.0),
        ((1, 0), (0, 0), "2B", 0.0),
        ((1, 1), (1, 0), "2B", 1.0),
        ((1, 0), (1, 1), "2B", 8.0),
    ]:
        env.reset()
        assert env.state().tolist() == [1, 0, 0]
        assert env.step(np.array(first)) == StepResult(0.0, False, False)
        assert env.state()[env.states.index(expected_state)] == 1
        assert (env.observations() == env.state()).all()
        result = env.step(np.array(second))
        assert result.reward == reward and result.terminated and not result.truncated
        assert env.state().sum() == 0


def test_two_step_optimal_values_match_the_paper() -> None:
    tables = make_two_step().optimal_q_tables(gamma=0.99)
    assert np.allclose(tables["1"], [[6.93, 6.93], [7.92, 7.92]])
    assert np.allclose(tables["2A"], 7.0)
    assert np.allclose(tables["2B"], [[0, 1], [1, 8]])


def test_matrix_games_and_arguments() -> None:
    assert make_env("qtran_matrix").payoffs["s"].max() == 8  # type: ignore[attr-defined]
    assert make_env("penalty", {"k": -50}).payoffs["s"][0, 0] == -50  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="k must be <= 0"):
        make_penalty_game(5)
    with pytest.raises(ValueError, match="rejected env_args"):
        make_env("climbing", {"size": 3})
    with pytest.raises(ValueError, match="expected 2 actions"):
        make_two_step().step(np.array([0, 1, 1]))


def test_unknown_and_user_tasks() -> None:
    with pytest.raises(ValueError, match="unknown environment 'nope'"):
        make_env("nope")
    with pytest.raises(ValueError, match="cannot import module"):
        make_env("no_such_module_xyz:make")
    with pytest.raises(ValueError, match="has no 'missing'"):
        make_env("qmix.envs.matrix:missing")
    assert check_env(make_env("tests.conftest:CountdownEnv")).n_actions == 3


class _BrokenMask(CountdownEnv):
    def avail_actions(self) -> np.ndarray:
        return np.zeros((2, 3), dtype=bool)


class _WrongShape(CountdownEnv):
    def observations(self) -> np.ndarray:
        return np.zeros((2, 5), dtype=np.float32)


class _Unseeded(CountdownEnv):
    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.length = int(np.random.randint(1, 4))

    def state(self) -> np.ndarray:
        return np.array([self.t, self.length, np.random.rand()], dtype=np.float32)


@pytest.mark.parametrize(
    "env, message",
    [
        (_BrokenMask(), "no available action"),
        (_WrongShape(), r"observations\(\) must have shape \[2, 2\]"),
        (_Unseeded(), "not reproducible"),
    ],
)
def test_checker_says_what_is_wrong(env: CountdownEnv, message: str) -> None:
    with pytest.raises(EnvCheckError, match=message):
        check_env(env)
