"""PettingZoo adapter and MPE (mpe2): contract, padding, masks, time limits, seeds, team reward."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("mpe2")

from gymnasium import spaces

from qmix.envs.checker import check_env
from qmix.envs.pettingzoo import PettingZooEnv, make_mpe

SCENARIOS = ["simple_spread_v3", "simple_speaker_listener_v4"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_mpe_passes_the_contract(scenario: str) -> None:
    env = make_mpe(scenario, max_cycles=10)
    info = check_env(env)
    assert info.episode_limit == 10
    env.close()


def test_mpe_default_episode_limit_is_25_and_sizes() -> None:
    env = make_mpe("simple_spread_v3", N=4)
    info = env.env_info()
    assert (info.n_agents, info.n_actions, info.episode_limit) == (4, 5, 25)
    assert info.state_dim == info.n_agents * info.obs_dim  # homogeneous agents: no padding
    simulated = make_mpe("simple_spread_v3", N=4, state="simulator").env_info()
    assert simulated.state_dim == 4 * 4 + 4 * 2  # 4 agents' position and velocity, 4 landmarks


def test_speaker_listener_padding_and_masks() -> None:
    env = make_mpe("simple_speaker_listener_v4")
    info = env.env_info()
    assert env.agents == ["speaker_0", "listener_0"]
    assert (info.n_agents, info.n_actions, info.obs_dim, info.state_dim) == (2, 5, 11, 14)
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    for _ in range(info.episode_limit):
        obs, avail = env.observations(), env.avail_actions()
        assert (obs[0, 3:] == 0).all()  # speaker observes 3 values, the rest is padding
        assert avail.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
        actions = np.array([rng.integers(3), rng.integers(5)])
        result = env.step(actions)
        if result.truncated:
            break
    with pytest.raises(ValueError, match="available"):
        env.reset(seed=3)
        env.step(np.array([4, 0]))  # a padded action of the speaker


def test_mpe_state_is_the_simulators_positions_and_velocities() -> None:
    """simple_spread: every agent's absolute (x, y, vx, vy), then every landmark's (x, y), read
    from the world after each reset and step; the agents' observations are agent-centred
    (landmarks relative to themselves), so neither input is the other."""
    env = make_mpe("simple_spread_v3", state="simulator")
    world = env.env.unwrapped.world
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        env.reset(seed=seed)
        for _ in range(5):
            agents = [[*a.state.p_pos, *a.state.p_vel] for a in world.agents]
            landmarks = [list(lm.state.p_pos) for lm in world.landmarks]
            expected = np.array([x for row in agents + landmarks for x in row], dtype=np.float32)
            np.testing.assert_array_equal(env.state(), expected)
            env.step(rng.integers(5, size=3))
    assert (env.state()[2:4] != 0).any()  # velocities move once the agents do
    with pytest.raises(ValueError, match="state must be"):
        make_mpe("simple_spread_v3", state="world")


def test_mpe_observations_state_is_the_env_state() -> None:
    env = make_mpe("simple_speaker_listener_v4")  # state="observations", the default
    env.reset(seed=1)
    for _ in range(3):
        assert np.array_equal(env.state(), env.env.state())
        env.step(np.array([1, 2]))
    assert np.array_equal(env.state(), env.env.state())


def test_max_cycles_is_truncated_not_terminated() -> None:
    env = make_mpe("simple_spread_v3", max_cycles=7)
    env.reset(seed=0)
    results = [env.step(np.zeros(3, dtype=np.int64)) for _ in range(7)]
    assert not any(r.terminated or r.truncated for r in results[:-1])
    assert results[-1].truncated and not results[-1].terminated
    assert np.abs(env.observations()).sum() > 0  # the final slot keeps the real observations
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, dtype=np.int64))


def test_mpe_success_is_terminated() -> None:
    env = make_mpe("simple_spread_v3", terminate_on_success=True)
    env.reset(seed=0)
    first = env.step(np.zeros(3, dtype=np.int64))
    assert not (first.terminated or first.truncated)
    # Pretend every landmark got covered: mpe2 then sets terminations for all agents.
    env.env.unwrapped.scenario.is_terminal = lambda world: True
    result = env.step(np.zeros(3, dtype=np.int64))
    assert result.terminated and not result.truncated


def test_same_seed_same_episode() -> None:
    env = make_mpe("simple_spread_v3")
    actions = np.random.default_rng(0).integers(0, 5, size=(10, 3))

    def play(seed: int) -> tuple[np.ndarray, list[float]]:
        env.reset(seed=seed)
        obs, rewards = [env.observations()], []
        for a in actions:
            rewards.append(env.step(a).reward)
            obs.append(env.observations())
        return np.stack(obs), rewards

    first, again, other = play(5), play(5), play(6)
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    assert not np.array_equal(first[0][0], other[0][0])


def test_team_reward_is_the_sum_of_agent_rewards() -> None:
    env = make_mpe("simple_spread_v3", local_ratio=0.5)
    raw = env.env.unwrapped
    env.reset(seed=2)
    for a in np.random.default_rng(1).integers(0, 5, size=(5, 3)):
        result = env.step(a)
        agent_rewards = [raw.rewards[name] for name in env.agents]
        assert result.reward == pytest.approx(sum(agent_rewards))
        assert result.reward != pytest.approx(agent_rewards[0])  # not just one agent's


def test_unknown_scenario_and_continuous_actions_are_rejected() -> None:
    with pytest.raises(ValueError, match="simple_spread_v3"):
        make_mpe("simple_nope_v0")
    with pytest.raises(ValueError, match="discrete"):
        make_mpe("simple_spread_v3", continuous_actions=True)


class _ToyParallelEnv:
    """Two agents with different spaces; agent "b" dies after step 2, masks both ways, no state.

    Agent "a": dict observations with an action mask (action 2 never available), Discrete(3).
    Agent "b": Box(4) observations, Discrete(2) with its mask in info. Rewards a=1, b=2 per
    step. ``a_terminates_at`` ends "a" by termination at that step, else by truncation at 4.
    """

    def __init__(self, a_terminates_at: int | None = None) -> None:
        self.possible_agents = ["a", "b"]
        self.a_terminates_at = a_terminates_at
        self.agents: list[str] = []
        self.t = 0

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        box = spaces.Box(-10, 10, (2,) if agent == "a" else (4,))
        if agent == "a":
            return spaces.Dict({"observation": box, "action_mask": spaces.MultiBinary(3)})
        return box

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return spaces.Discrete(3 if agent == "a" else 2)

    def _obs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "a" in self.agents:
            mask = np.array([1, 1, 0], dtype=np.int8)
            out["a"] = {"observation": np.full(2, self.t + 1.0), "action_mask": mask}
        if "b" in self.agents:
            out["b"] = np.full(4, -(self.t + 1.0))
        return out

    def _infos(self) -> dict[str, Any]:
        return {"b": {"action_mask": np.array([0, 1])}} if "b" in self.agents else {}

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        self.agents, self.t = ["a", "b"], 0
        return self._obs(), self._infos()

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        assert set(actions) == set(self.agents)
        self.t += 1
        obs = self._obs()
        rewards = {"a": 1.0, "b": 2.0} if "b" in self.agents else {"a": 1.0}
        term = {agent: False for agent in self.agents}
        trunc = {agent: False for agent in self.agents}
        infos = self._infos()
        if "b" in self.agents and self.t == 2:
            term["b"] = True
        if self.t == self.a_terminates_at:
            term["a"] = True
        elif self.t == 4:
            trunc["a"] = True
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, infos

    def close(self) -> None:
        pass


def test_generic_adapter_masks_departures_and_padded_state() -> None:
    env = PettingZooEnv(_ToyParallelEnv(), episode_limit=10)
    info = env.env_info()
    assert (info.n_agents, info.n_actions, info.obs_dim, info.state_dim) == (2, 3, 4, 8)
    check_env(env)
    env.reset(seed=0)
    assert env.avail_actions().tolist() == [[True, True, False], [False, True, False]]
    assert env.observations().tolist() == [[1, 1, 0, 0], [-1, -1, -1, -1]]
    assert np.array_equal(env.state(), env.observations().reshape(-1))  # no state(): concat
    rewards = []
    for step in range(4):
        result = env.step(np.array([0, 1 if step < 2 else 0]))
        rewards.append(result.reward)
        if step == 1:  # b terminated mid-episode: zeros and only action 0 from now on
            assert not (result.terminated or result.truncated)
            assert env.observations().tolist() == [[3, 3, 0, 0], [0, 0, 0, 0]]
            assert env.avail_actions()[1].tolist() == [True, False, False]
    assert rewards == [3.0, 3.0, 1.0, 1.0]  # the sum over the agents still in play
    assert result.truncated and not result.terminated  # b's earlier death is not the end

    env = PettingZooEnv(_ToyParallelEnv(a_terminates_at=3), episode_limit=10)
    env.reset(seed=0)
    results = [env.step(np.array([0, 1 if step < 2 else 0])) for step in range(3)]
    assert results[-1].terminated and not results[-1].truncated


def test_generic_adapter_enforces_episode_limit_and_discrete_actions() -> None:
    env = PettingZooEnv(_ToyParallelEnv(), episode_limit=2)
    env.reset()
    assert not env.step(np.array([0, 1])).truncated
    result = env.step(np.array([0, 1]))
    assert result.truncated and not result.terminated
    with pytest.raises(ValueError, match="episode_limit"):
        PettingZooEnv(_ToyParallelEnv())

    class Continuous(_ToyParallelEnv):
        def action_space(self, agent: str) -> spaces.Space[Any]:
            return spaces.Box(0, 1, (2,))

    with pytest.raises(ValueError, match="Discrete"):
        PettingZooEnv(Continuous(), episode_limit=5)


def test_render_rgb_array_headless() -> None:
    env = make_mpe("simple_spread_v3")  # renders by default
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="rgb_array"):
        make_mpe("simple_spread_v3", render_mode=None).render()
