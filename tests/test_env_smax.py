"""SMAX adapter: VectorEnv contract, masked reset, truncation vs battle end, seeding."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jaxmarl")

from qmix.envs.base import VectorEnv
from qmix.envs.checker import check_vector_env
from qmix.envs.smax import make_smax

NO_OP = 4  # SMAX's "stop" action, always available
EAST = 1  # movement action 1 moves +x, towards the enemy's start


@pytest.fixture(scope="module")
def envs() -> VectorEnv:
    """Default 3m against the heuristic enemy; compiled once for the module."""
    return make_smax("3m", num_envs=4)


@pytest.fixture(scope="module")
def harmless() -> VectorEnv:
    """3m where the enemy never shoots and the time limit is short, for scripted episodes."""
    return make_smax("3m", num_envs=2, enemy_shoots=False, max_steps=20)


def random_actions(avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random available action per agent, ``[B, N]``."""
    return np.argmax(rng.random(avail.shape) * avail, axis=-1)


def test_contract_checker_passes(envs: VectorEnv) -> None:
    info = check_vector_env(envs, seed=3)
    # 3m: 3 allies, 5 moves + 3 targets, SMAX's world state has 12 features per unit.
    assert (info.n_agents, info.n_actions, info.state_dim, info.episode_limit) == (3, 8, 72, 100)


def test_masked_reset_leaves_other_envs_untouched(envs: VectorEnv) -> None:
    rng = np.random.default_rng(0)
    everyone = np.ones(4, dtype=bool)
    envs.reset([10, 11, 12, 13], everyone)
    fresh_obs = envs.observations().copy()
    for _ in range(3):
        envs.step(random_actions(envs.avail_actions(), rng), everyone)
    before = envs.observations().copy(), envs.states().copy(), envs.avail_actions().copy()
    mask = np.array([True, False, True, False])
    envs.reset([10, 99, 12, 99], mask)
    after = envs.observations(), envs.states(), envs.avail_actions()
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old[~mask], new[~mask])
    # The masked envs start again exactly as seeds 10 and 12 did.
    np.testing.assert_array_equal(after[0][mask], fresh_obs[mask])
    assert not np.array_equal(before[0][mask], after[0][mask])


def test_same_seeds_same_episode(envs: VectorEnv) -> None:
    everyone = np.ones(4, dtype=bool)

    def rollout(seeds: list[int]) -> list[np.ndarray]:
        rng = np.random.default_rng(1)
        envs.reset(seeds, everyone)
        seen = [envs.states().copy()]
        for _ in range(5):
            result = envs.step(random_actions(envs.avail_actions(), rng), everyone)
            seen += [envs.observations().copy(), result.reward.copy()]
        return seen

    first, again = rollout([1, 2, 3, 4]), rollout([1, 2, 3, 4])
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(rollout([5, 6, 7, 8])[0], first[0])


def test_battle_end_is_terminated_and_time_limit_is_truncated(harmless: VectorEnv) -> None:
    """Env 0 attacks (enemies never shoot) and wins; env 1 stands still until the limit."""
    limit = harmless.env_info().episode_limit
    assert limit == 20
    harmless.reset([0, 1], np.ones(2, dtype=bool))
    active = np.ones(2, dtype=bool)
    returns = np.zeros(2)
    ended_at = [-1, -1]
    final: tuple[np.ndarray, dict[str, bool]] | None = None
    for t in range(limit):
        avail = harmless.avail_actions()
        targets = avail[..., 5:]
        actions = np.where(targets.any(-1), 5 + np.argmax(targets, -1), EAST)
        actions[1] = NO_OP
        result = harmless.step(actions, active)
        returns += np.where(active, result.reward, 0.0)
        for i in np.flatnonzero(active & (result.terminated | result.truncated)):
            ended_at[i] = t + 1
            if i == 0:
                assert result.terminated[0] and not result.truncated[0]
                final = harmless.states()[0].copy(), result.infos[0]
            else:
                assert result.truncated[1] and not result.terminated[1]
                assert result.infos[1] == {"battle_won": False}
        if not active[0]:
            assert final is not None  # an inactive env keeps its final arrays
            np.testing.assert_array_equal(harmless.states()[0], final[0])
            assert result.infos[0] == {}
        active &= ~(result.terminated | result.truncated)
    assert final is not None and final[1] == {"battle_won": True}
    assert 0 < ended_at[0] < limit and ended_at[1] == limit
    # Team reward: all enemy health (normalised, 1 in total) plus won_battle_bonus (1).
    assert returns[0] == pytest.approx(2.0, abs=1e-4)
    assert returns[1] == 0.0


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown SMAX map_name"):
        make_smax("4m")
    with pytest.raises(ValueError, match="num_envs"):
        make_smax("3m", num_envs=0)


def test_world_state_is_normalised() -> None:
    envs = make_smax("3m", num_envs=2)
    raw = make_smax("3m", num_envs=2, normalize_state=False)
    mask = np.ones(2, bool)
    envs.reset([5, 6], mask)
    raw.reset([5, 6], mask)
    assert np.abs(raw.states()).max() > 2.0  # raw positions are in map units (0..32)
    assert envs.states().min() >= 0.0 and envs.states().max() <= 1.0
    rng = np.random.default_rng(0)
    for _ in range(60):  # idle units' cooldowns run negative in raw SMAX; ours stay in range
        avail = envs.avail_actions()
        actions = np.where(avail, rng.random(avail.shape), -1.0).argmax(-1)
        result = envs.step(actions, mask)
        assert envs.states().min() >= 0.0 and envs.states().max() <= 1.5
        done = result.terminated | result.truncated
        envs.reset([int(x) for x in rng.integers(0, 1000, 2)], done)
    envs.reset([5, 6], mask)
    scaled_positions = envs.states()[:, 1:3]
    np.testing.assert_allclose(scaled_positions, raw.states()[:, 1:3] / 32.0, rtol=1e-6)
