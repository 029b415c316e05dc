"""VMAS adapter: contract, time limit vs scenario end, masked reset, seeding, reward, padding."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("vmas")

import torch

from qmix.envs.checker import check_vector_env
from qmix.envs.registry import make_vector_env
from qmix.envs.vmas import VMASVectorEnv, make_vmas

B = 4
ALL = np.ones(B, dtype=bool)
SEEDS = [11, 12, 13, 14]


def _stay(envs: VMASVectorEnv) -> np.ndarray:
    return np.zeros((envs.num_envs, envs.n_agents), dtype=np.int64)  # action 0 = stay


def _random(envs: VMASVectorEnv, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, envs.env_info().n_actions, (envs.num_envs, envs.n_agents))


@pytest.mark.parametrize("scenario", ["balance", "navigation"])
def test_contract_checker_passes(scenario: str) -> None:
    envs = make_vector_env("vmas", {"scenario": scenario, "max_steps": 6}, num_envs=B)
    info = check_vector_env(envs)
    assert info.episode_limit == 6
    assert info.state_dim == info.n_agents * info.obs_dim  # equal-sized agents here


def test_time_limit_is_truncated_not_terminated() -> None:
    envs = make_vmas("balance", num_envs=B, max_steps=3)
    envs.reset(SEEDS, ALL)
    for t in range(3):
        result = envs.step(_stay(envs), ALL)
        assert not result.terminated.any()
        assert result.truncated.all() == (t == 2)
        assert result.reward.dtype == np.float32 and result.terminated.dtype == np.bool_


def test_scenario_end_is_terminated_and_wins_over_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    envs = make_vmas("balance", num_envs=B, max_steps=2)
    envs.reset(SEEDS, ALL)
    ends = torch.tensor([False, True, False, True])
    monkeypatch.setattr(envs._env.scenario, "done", lambda: ends.clone())
    active = np.array([True, True, True, False])
    first = envs.step(_stay(envs), active)
    assert first.terminated.tolist() == [False, True, False, False]  # inactive env 3: nothing
    assert not first.truncated.any()
    second = envs.step(_stay(envs), active)  # the time limit: env 1 both ends, a true end wins
    assert second.terminated.tolist() == [False, True, False, False]
    assert second.truncated.tolist() == [True, False, True, False]


def test_masked_reset_and_inactive_envs_leave_others_untouched() -> None:
    envs = make_vmas("balance", num_envs=B, max_steps=50)
    rng = np.random.default_rng(0)
    envs.reset(SEEDS, ALL)
    for _ in range(3):
        envs.step(_random(envs, rng), ALL)
    obs, state = envs.observations().copy(), envs.states().copy()

    mask = np.array([False, True, False, False])
    envs.reset([0, 99, 0, 0], mask)
    keep = ~mask
    assert np.array_equal(envs.observations()[keep], obs[keep])
    assert np.array_equal(envs.states()[keep], state[keep])
    fresh = make_vmas("balance", num_envs=B, max_steps=50)
    fresh.reset([99] * B, ALL)
    assert np.array_equal(envs.observations()[1], fresh.observations()[1])

    # inactive envs keep their last arrays (no auto-reset) and report nothing
    obs, state = envs.observations().copy(), envs.states().copy()
    active = np.array([True, True, False, True])
    result = envs.step(_random(envs, rng), active)
    assert np.array_equal(envs.observations()[2], obs[2])
    assert np.array_equal(envs.states()[2], state[2])
    assert result.reward[2] == 0.0 and not result.terminated[2] and not result.truncated[2]
    assert not np.array_equal(envs.observations()[0], obs[0])  # active ones did move


def test_same_seeds_same_episode_and_seed_follows_the_env_not_the_slot() -> None:
    rng = np.random.default_rng(1)
    actions = [rng.integers(0, 9, (B, 3)) for _ in range(5)]
    runs = []
    for _ in range(2):
        envs = make_vmas("balance", num_envs=B, max_steps=50)
        envs.reset(SEEDS, ALL)
        trace = [envs.observations().copy()]
        for a in actions:
            trace.append(np.asarray(envs.step(a, ALL).reward).copy())
            trace.append(envs.observations().copy())
        runs.append(trace)
    assert all(np.array_equal(x, y) for x, y in zip(*runs, strict=True))
    assert not np.array_equal(runs[0][0][0], runs[0][0][1])  # different seeds differ

    swapped = make_vmas("balance", num_envs=B, max_steps=50)
    swapped.reset(SEEDS[::-1], ALL)
    assert np.array_equal(swapped.observations()[::-1], runs[0][0])


def test_env_reset_then_stepped_inactive_restarts_from_its_seed() -> None:
    rng = np.random.default_rng(2)
    a, b = make_vmas("balance", num_envs=B, max_steps=50), make_vmas("balance", B, 50)
    a.reset(SEEDS, ALL)
    b.reset(SEEDS, ALL)
    idle = np.array([False, True, True, True])
    for _ in range(3):  # env 0 sits reset but inactive while VMAS advances the batch
        a.step(_random(a, rng), idle)
    actions = _random(a, rng)
    ra, rb = a.step(actions, ALL), b.step(actions, ALL)
    assert ra.reward[0] == rb.reward[0]
    assert np.array_equal(a.observations()[0], b.observations()[0])


def test_team_reward_is_the_mean_and_keeps_a_shared_reward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    envs = make_vmas("balance", num_envs=B, max_steps=50)
    envs.reset(SEEDS, ALL)
    seen: list[list[torch.Tensor]] = []
    vmas_step = envs._env.step

    def spy(actions: list[torch.Tensor]) -> list[object]:
        out = vmas_step(actions)
        seen.append([r.clone() for r in out[1]])
        return out

    monkeypatch.setattr(envs._env, "step", spy)
    rng = np.random.default_rng(3)
    for _ in range(4):
        result = envs.step(_random(envs, rng), ALL)
        per_agent = torch.stack(seen[-1], dim=1).numpy()  # [B, N]
        assert np.allclose(per_agent, per_agent[:, :1])  # balance shares one reward ...
        assert np.allclose(result.reward, per_agent[:, 0])  # ... and the team gets exactly it


def test_heterogeneous_agents_are_padded_and_masked() -> None:
    envs = make_vmas("simple_speaker_listener", num_envs=2, max_steps=5)
    info = envs.env_info()
    n_actions, obs_dims = envs._n_actions.tolist(), envs._obs_dims
    assert n_actions[0] != n_actions[1] and obs_dims[0] != obs_dims[1]
    assert (info.n_actions, info.obs_dim, info.state_dim) == (
        max(n_actions),
        max(obs_dims),
        sum(obs_dims),
    )
    envs.reset([0, 1], np.ones(2, dtype=bool))
    avail = envs.avail_actions()
    for agent, (n, o) in enumerate(zip(n_actions, obs_dims, strict=True)):
        assert avail[:, agent, :n].all() and not avail[:, agent, n:].any()
        assert (envs.observations()[:, agent, o:] == 0).all()
    check_vector_env(envs)


def test_bad_arguments_are_one_line_value_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown VMAS scenario 'nope'.*balance"):
        make_vmas("nope")
    with pytest.raises(ValueError, match="sets continuous_actions itself"):
        make_vmas("balance", continuous_actions=True)
    envs = make_vmas("balance", num_envs=2, max_steps=5)
    envs.reset([0, 1], np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match=r"expected actions in \[0, 9\)"):
        envs.step(np.full((2, 3), 9), np.ones(2, dtype=bool))
    envs.step(np.full((2, 3), -1), np.zeros(2, dtype=bool))  # inactive actions are ignored
