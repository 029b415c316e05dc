"""SMAC adapter, tested against a stand-in: StarCraft II cannot run here.

``StandInSMAC`` below is NOT StarCraft II. It is a tiny scripted battle that follows SMAC's
documented API (``oxwhirl/smac`` ``StarCraft2Env``) exactly where the adapter depends on it:
``get_env_info()`` keys, ``reset()`` returning ``(obs, state)``, ``get_obs()`` as a list of
float32 arrays (zeros for dead agents), ``get_avail_actions()`` as 0/1 lists (a dead agent has
only the no-op action 0, a live one never has it), ``step(actions) -> (reward, terminated,
info)`` with ``info["battle_won"]`` and, at the time limit, ``terminated=True`` plus
``info["episode_limit"] = True`` only when built with ``continuing_episode=True``, a seed
taken at construction only, and SMAC's assertion that every action is available.
"""

from __future__ import annotations

import importlib.abc
import sys
import types
from typing import Any

import numpy as np
import pytest

from qmix.envs.checker import check_env
from qmix.envs.smac import SMACAdapter, make_smac, make_smacv2

STOP, ATTACK_0 = 1, 6  # SMAC's action layout: no-op, stop, 4 moves, then one attack per enemy


class StandInSMAC:
    """Stand-in for ``smac.env.StarCraft2Env`` (see the module docstring); not StarCraft II.

    Args:
        map_name: accepted and ignored (3 allies against 3 enemies).
        seed: seeds the enemy fire, at construction only (as SMAC's SC2 game seed).
        continuing_episode: as SMAC: flag the time limit in ``info["episode_limit"]``.
        episode_limit: the map's time limit in steps.
        enemy_hit: chance per step that each live ally loses ``enemy_damage`` health.
        enemy_damage: health an ally loses per hit (1.0 kills).
        attack_damage: health an enemy loses per ally attacking it.
    """

    n_agents = 3
    n_enemies = 3

    def __init__(
        self,
        map_name: str = "3m",
        seed: int | None = None,
        continuing_episode: bool = False,
        episode_limit: int = 6,
        enemy_hit: float = 0.3,
        enemy_damage: float = 0.5,
        attack_damage: float = 0.4,
    ) -> None:
        self.map_name = map_name
        self.continuing_episode = continuing_episode
        self.episode_limit = episode_limit
        self.enemy_hit, self.enemy_damage, self.attack_damage = (
            enemy_hit,
            enemy_damage,
            attack_damage,
        )
        self.n_actions = 6 + self.n_enemies
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self.raw_steps: list[tuple[float, bool, dict[str, Any]]] = []  # what SMAC returned
        self.kill_next: set[int] = set()  # test hook: these allies die during the next step
        self.closed = False
        self._start()

    def _start(self) -> None:
        self._steps = 0
        self.ally_health = np.ones(self.n_agents)
        self.enemy_health = np.ones(self.n_enemies)

    def get_env_info(self) -> dict[str, Any]:
        return {
            "state_shape": self.get_state_size(),
            "obs_shape": self.get_obs_size(),
            "n_actions": self.n_actions,
            "n_agents": self.n_agents,
            "episode_limit": self.episode_limit,
        }

    def get_obs_size(self) -> int:
        return 2 + self.n_enemies

    def get_state_size(self) -> int:
        return self.n_agents + self.n_enemies + 1

    def reset(self) -> tuple[list[np.ndarray], np.ndarray]:
        self._start()
        return self.get_obs(), self.get_state()

    def get_obs_agent(self, agent_id: int) -> np.ndarray:
        obs = np.zeros(self.get_obs_size(), dtype=np.float32)
        if self.ally_health[agent_id] > 0:  # a dead agent sees all zeros, as in SMAC
            obs[0] = self.ally_health[agent_id]
            obs[1] = agent_id / self.n_agents
            obs[2:] = self.enemy_health
        return obs

    def get_obs(self) -> list[np.ndarray]:
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_state(self) -> np.ndarray:
        state = np.append(self.ally_health, self.enemy_health)
        return np.append(state, self._steps / self.episode_limit).astype(np.float32)

    def get_avail_agent_actions(self, agent_id: int) -> list[int]:
        if self.ally_health[agent_id] <= 0:
            return [1] + [0] * (self.n_actions - 1)  # only no-op allowed
        avail = [0, 1, 1, 1, 1, 1]  # no no-op when alive; stop and moves
        return avail + [int(h > 0) for h in self.enemy_health]

    def get_avail_actions(self) -> list[list[int]]:
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def step(self, actions: list[int]) -> tuple[float, bool, dict[str, Any]]:
        for a_id, action in enumerate(actions):
            assert self.get_avail_agent_actions(a_id)[action] == 1, "unavailable action"
        before = self.enemy_health.sum()
        for action in actions:
            if action >= 6:
                target = action - 6
                self.enemy_health[target] = max(0.0, self.enemy_health[target] - self.attack_damage)
        hits = self._rng.random(self.n_agents) < self.enemy_hit
        alive = self.ally_health > 0
        self.ally_health[hits & alive] = np.maximum(
            0.0, self.ally_health[hits & alive] - self.enemy_damage
        )
        self.ally_health[list(self.kill_next)] = 0.0
        self.kill_next = set()
        self._steps += 1
        reward = float(before - self.enemy_health.sum())
        terminated = False
        info: dict[str, Any] = {"battle_won": False}
        if not (self.enemy_health > 0).any():
            terminated, info["battle_won"] = True, True
            reward += 2.0
        elif not (self.ally_health > 0).any():
            terminated = True
        elif self._steps >= self.episode_limit:
            terminated = True
            if self.continuing_episode:
                info["episode_limit"] = True
        self.raw_steps.append((reward, terminated, dict(info)))
        return reward, terminated, info

    def render(self) -> str:
        return "stand-in"

    def close(self) -> None:
        self.closed = True


def _play(env: SMACAdapter, action_of: Any) -> list[Any]:
    """Play one episode choosing ``action_of(avail_row)`` per agent; return the results."""
    env.reset()
    results = []
    for _ in range(env.env_info().episode_limit):
        actions = np.array([action_of(row) for row in env.avail_actions()])
        results.append(env.step(actions))
        if results[-1].terminated or results[-1].truncated:
            break
    return results


def _stop_or_noop(row: np.ndarray) -> int:
    return STOP if row[STOP] else 0


def _first_attack_or_noop(row: np.ndarray) -> int:
    targets = np.flatnonzero(row[ATTACK_0:])
    return ATTACK_0 + int(targets[0]) if targets.size and row[STOP] else int(np.argmax(row))


@pytest.mark.parametrize("continuing_episode", [True, False])
def test_contract_checker_passes(continuing_episode: bool) -> None:
    env = SMACAdapter(StandInSMAC(seed=0, continuing_episode=continuing_episode))
    info = check_env(env, episodes=6)
    assert (info.n_agents, info.n_actions, info.obs_dim, info.state_dim) == (3, 9, 5, 7)
    assert info.episode_limit == 6


@pytest.mark.parametrize("continuing_episode", [True, False])
def test_time_limit_becomes_truncated(continuing_episode: bool) -> None:
    raw = StandInSMAC(continuing_episode=continuing_episode, episode_limit=4, enemy_hit=0.0)
    env = SMACAdapter(raw)
    results = _play(env, _stop_or_noop)
    assert len(results) == 4
    assert [r.truncated for r in results] == [False, False, False, True]
    assert not any(r.terminated for r in results)
    assert raw.raw_steps[-1][1] is True  # SMAC itself said terminated
    assert ("episode_limit" in results[-1].info) == continuing_episode
    assert env.observations().shape == (3, 5)  # final arrays stay readable for bootstrapping
    assert env.state()[-1] == 1.0  # ... and describe the state after the last step


@pytest.mark.parametrize("continuing_episode", [True, False])
def test_win_is_terminated_and_battle_won_passes_through(continuing_episode: bool) -> None:
    # 3 allies x 0.4 damage on one enemy at a time: a win on step 3 (below the limit of 6),
    # and with episode_limit=3 the win lands on the time-limit step and still wins.
    for limit in (6, 3):
        raw = StandInSMAC(continuing_episode=continuing_episode, episode_limit=limit, enemy_hit=0.0)
        results = _play(SMACAdapter(raw), _first_attack_or_noop)
        last = results[-1]
        assert len(results) == 3
        assert (last.terminated, last.truncated) == (True, False)
        assert last.info["battle_won"] is True
        assert last.reward > 2.0


def test_defeat_is_terminated_not_won() -> None:
    raw = StandInSMAC(enemy_hit=1.0, enemy_damage=1.0, episode_limit=6)
    results = _play(SMACAdapter(raw), _stop_or_noop)
    assert len(results) == 1
    assert (results[0].terminated, results[0].truncated) == (True, False)
    assert results[0].info["battle_won"] is False


def test_masks_are_bool_and_dead_agents_only_have_noop() -> None:
    raw = StandInSMAC(enemy_hit=0.0)
    env = SMACAdapter(raw)
    env.reset()
    avail = env.avail_actions()
    assert avail.dtype == np.bool_ and avail.shape == (3, 9)
    assert not avail[:, 0].any() and avail[:, STOP].all()  # the living cannot no-op
    raw.kill_next = {1}  # agent 1 dies during the next step
    env.step(np.array([STOP, STOP, STOP]))
    avail = env.avail_actions()
    assert avail[1].tolist() == [True] + [False] * 8
    assert avail[[0, 2], STOP].all() and not avail[[0, 2], 0].any()
    assert (env.observations()[1] == 0).all() and env.observations().dtype == np.float32
    env.step(np.array([STOP, 0, STOP]))  # the dead agent's no-op is accepted by SMAC


def test_reset_seed_is_ignored_and_construction_seed_is_kept() -> None:
    env = SMACAdapter(StandInSMAC(seed=5))
    env.reset(seed=1)
    first = env.observations().copy(), env.state().copy()
    env.reset(seed=2)
    assert np.array_equal(first[0], env.observations()) and np.array_equal(first[1], env.state())
    assert env.env._seed == 5


def test_adapter_rejects_non_smac_objects_and_forwards_render_close() -> None:
    class NoInfo:
        def get_env_info(self) -> dict[str, Any]:
            return {"n_agents": 2}

    with pytest.raises(ValueError, match="lacks n_actions, obs_shape"):
        SMACAdapter(NoInfo())
    env = SMACAdapter(StandInSMAC())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([STOP, STOP, STOP]))
    assert env.render() == "stand-in"
    env.close()
    assert env.env.closed


class _Blocker(importlib.abc.MetaPathFinder):
    """Makes the named top-level packages look uninstalled, whatever this machine has."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def _block_imports(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for module in list(sys.modules):
        if module.split(".")[0] in names:
            monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(sys, "meta_path", [_Blocker(names), *sys.meta_path])


def test_make_smac_without_starcraft_smac_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _block_imports(monkeypatch, "smac", "smacv2")  # not installed (they are not, here)
    with pytest.raises(ValueError, match=r"oxwhirl/smac\.git.*SC2PATH") as err:
        make_smac("3m")
    assert "\n" not in str(err.value) and "not installed" in str(err.value)

    smac3 = types.ModuleType("smac")  # PyPI 'smac' is SMAC3: a package without smac.env
    smac3.__path__ = []
    monkeypatch.setitem(sys.modules, "smac", smac3)
    with pytest.raises(ValueError, match=r"SMAC3.*oxwhirl/smac") as err:
        make_smac("3m")
    assert "\n" not in str(err.value)

    with pytest.raises(ValueError, match=r"SMACv2 is not installed.*oxwhirl/smacv2\.git"):
        make_smacv2(capability_config={})


def test_make_smac_builds_the_adapter_with_the_seed_and_time_limit_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = types.ModuleType("smac")
    package.__path__ = []
    env_module = types.ModuleType("smac.env")
    env_module.StarCraft2Env = StandInSMAC  # type: ignore[attr-defined]
    maps = types.ModuleType("smac.env.starcraft2.maps.smac_maps")
    maps.get_smac_map_registry = lambda: {"3m": {}, "8m": {}}  # type: ignore[attr-defined]
    for name, module in (
        ("smac", package),
        ("smac.env", env_module),
        ("smac.env.starcraft2.maps.smac_maps", maps),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    env = make_smac("3m", seed=7, episode_limit=4, enemy_hit=0.0)
    assert isinstance(env, SMACAdapter)
    assert env.env._seed == 7 and env.env.continuing_episode is True
    assert _play(env, _stop_or_noop)[-1].truncated
    with pytest.raises(ValueError, match=r"unknown SMAC map '3x'.*3m, 8m"):
        make_smac("3x")
    with pytest.raises(ValueError, match="version must be 1"):
        make_smac("3m", version=3)
