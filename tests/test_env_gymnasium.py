"""Gymnasium adapters (LBF, RWARE, any Tuple-space task): contract, time limits, masks, seeds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("lbforaging")

import gymnasium

from qmix.config import make_config
from qmix.envs.checker import check_env, check_vector_env
from qmix.envs.gymnasium import (
    GymnasiumMultiAgentEnv,
    LBFEnv,
    RWAREEnv,
    make_gymnasium,
    make_lbf,
    make_rware,
)
from qmix.envs.registry import make_env, make_vector_env
from qmix.types import EnvInfo

LBF_8X8 = "Foraging-8x8-2p-2f-coop-v3"
LBF_ONE_FOOD = "Foraging-8x8-2p-1f-coop-v3"
MOVES = {1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}  # LBF NORTH, SOUTH, WEST, EAST (row, col)
LOAD = 5


def raw_lbf(key: str) -> Any:
    """The unadapted gymnasium env, to compare against."""
    return gymnasium.make(key, disable_env_checker=True)


def forage(env: LBFEnv) -> np.ndarray:
    """Scripted LBF policy: each agent walks to its own cell next to the first food; all load.

    Returns:
        actions ``[N]``.
    """
    game = env._unwrapped
    food_row, food_col = (int(v[0]) for v in np.nonzero(game.field))
    cells = [
        (food_row + dr, food_col + dc)
        for dr, dc in MOVES.values()
        if 0 <= food_row + dr < game.rows and 0 <= food_col + dc < game.cols
    ]
    positions = [tuple(p.position) for p in game.players]
    targets: list[tuple[int, int]] = []
    for r, c in positions:
        free = [cell for cell in cells if cell not in targets]
        targets.append(min(free, key=lambda cell: abs(r - cell[0]) + abs(c - cell[1])))
    if positions == targets:
        return np.full(len(positions), LOAD)
    avail = env.avail_actions()
    actions = np.zeros(len(positions), dtype=np.int64)
    for i, ((r, c), (tr, tc)) in enumerate(zip(positions, targets, strict=True)):
        distance = abs(r - tr) + abs(c - tc)
        closer = [
            m
            for m, (dr, dc) in MOVES.items()
            if avail[i, m] and abs(r + dr - tr) + abs(c + dc - tc) < distance
        ]
        sidestep = [m for m in MOVES if avail[i, m]]
        if distance > 0:
            actions[i] = closer[0] if closer else sidestep[0]
    return actions


def random_available(avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random available action per agent, ``[N]``."""
    return np.array([rng.choice(np.flatnonzero(row)) for row in avail])


@pytest.mark.parametrize(
    ("make", "key", "expected"),
    [
        (make_lbf, LBF_8X8, EnvInfo(2, 6, 12, 24, 50)),
        (make_lbf, "Foraging-10x10-3p-3f-v3", EnvInfo(3, 6, 18, 54, 50)),
        (make_rware, "rware-tiny-2ag-v2", EnvInfo(2, 5, 71, 142, 500)),
    ],
)
def test_contract_and_sizes(make: Any, key: str, expected: EnvInfo) -> None:
    if key.startswith("rware"):
        pytest.importorskip("rware")
    env = make(key)
    assert check_env(env) == expected
    env.close()


def test_registry_builds_the_adapters() -> None:
    env = make_env("lbf", {"key": "Foraging-10x10-3p-3f-v3"})
    assert isinstance(env, LBFEnv)
    assert env.env_info().n_agents == 3
    # the adapter's reused buffers are safe behind the in-process vector env
    assert check_vector_env(make_vector_env("lbf", {}, num_envs=3)).episode_limit == 50


def test_lbf_time_limit_is_truncated_not_terminated() -> None:
    env, raw = make_lbf(LBF_8X8, normalize_obs=False), raw_lbf(LBF_8X8)
    env.reset(seed=0)
    raw.reset(seed=0)
    idle = np.zeros(2, dtype=np.int64)  # NONE: no food is ever collected
    for t in range(1, 51):
        result = env.step(idle)
        raw_obs, _, raw_terminated, raw_truncated, _ = raw.step([0, 0])
        assert result.terminated is False
        assert result.truncated is (t == 50)
        assert result.reward == 0.0
    # LBF itself reports the limit as terminated: the adapter had to translate it.
    assert raw_terminated and not raw_truncated
    assert env._unwrapped.field.any()
    # the arrays after the end describe the final state (read for bootstrapping)
    np.testing.assert_array_equal(env.observations(), np.stack(raw_obs))
    assert env.avail_actions().any(axis=1).all()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(idle)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lbf_all_food_collected_is_terminated(seed: int) -> None:
    env = make_lbf(LBF_ONE_FOOD)
    env.reset(seed=seed)
    team_return, steps = 0.0, 0
    for steps in range(1, 51):  # noqa: B007 (steps is read after the loop)
        result = env.step(forage(env))
        team_return += result.reward
        if result.terminated or result.truncated:
            break
    assert result.terminated and not result.truncated
    assert steps < 50
    assert not env._unwrapped.field.any()
    # normalised LBF rewards: collecting all the food pays the team exactly 1
    assert team_return == pytest.approx(1.0)


def test_team_reward_is_sum_of_agent_rewards_and_obs_match_raw_env() -> None:
    env, raw = make_lbf(LBF_ONE_FOOD, normalize_obs=False), raw_lbf(LBF_ONE_FOOD)
    env.reset(seed=3)
    raw_obs, _ = raw.reset(seed=3)
    np.testing.assert_array_equal(env.observations(), np.stack(raw_obs))
    paid = []
    for _ in range(50):
        actions = forage(env)
        result = env.step(actions)
        raw_obs, rewards, _, _, _ = raw.step(actions.tolist())
        np.testing.assert_array_equal(env.observations(), np.stack(raw_obs))
        np.testing.assert_array_equal(env.state(), np.concatenate(raw_obs))
        assert result.reward == pytest.approx(sum(rewards))
        paid.append(sum(rewards))
        if result.terminated or result.truncated:
            break
    assert max(paid) > 0  # the comparison covered a step that paid something


def _simulator_state(env: LBFEnv, cells: np.ndarray) -> np.ndarray:
    """LBF's state as documented, raw: players' (row, col, level), then the foods of ``cells``
    in that order, (-1, -1, 0) once eaten."""
    game = env._unwrapped
    players = [[*p.position, p.level] for p in game.players]
    foods = [[r, c, game.field[r, c]] if game.field[r, c] else [-1, -1, 0] for r, c in cells]
    return np.array(players + foods, dtype=np.float32).reshape(-1)


def test_lbf_state_is_every_player_and_food_of_the_simulator() -> None:
    """Raw (unscaled) so that the values can be read off the simulator: the food slots keep the
    order they had at reset, and a food eaten leaves (-1, -1, 0) in its own slot."""
    env = make_lbf(LBF_8X8, normalize_obs=False, state="simulator")
    env.reset(seed=3)
    cells = np.argwhere(env._unwrapped.field > 0)  # [F, 2], row by row
    assert len(cells) == 2
    np.testing.assert_array_equal(env.state(), _simulator_state(env, cells))
    rng = np.random.default_rng(0)
    eaten = False
    for _ in range(50):
        result = env.step(random_available(env.avail_actions(), rng) if eaten else forage(env))
        np.testing.assert_array_equal(env.state(), _simulator_state(env, cells))
        eaten = eaten or result.reward > 0
        if result.terminated or result.truncated:
            break
    assert eaten and (env.state()[6:] == -1).any()  # one slot marked eaten, in place


def test_lbf_state_is_scaled_like_the_observations_and_sees_what_agents_do_not() -> None:
    """With sight 2 on 8x8 an agent often sees no food at all; the state always holds both
    foods. Entries lie in [-1, 1], as the observations do."""
    env = make_lbf("Foraging-2s-8x8-2p-2f-coop-v3", state="simulator")
    rng = np.random.default_rng(1)
    unseen = 0
    for seed in range(5):
        env.reset(seed=seed)
        for _ in range(10):
            state, obs = env.state(), env.observations()
            assert np.abs(state).max() <= 1.0 and (state[6:9] >= 0).all()
            unseen += int((obs[:, 2] == 0).any())  # an agent whose first food slot is empty
            if env.step(random_available(env.avail_actions(), rng)).truncated:
                break
    assert unseen > 0
    # (row, col, level) of every player and food: 3 N + 3 F; the default, as before: N * O
    assert make_lbf("Foraging-10x10-3p-3f-v3", state="simulator").env_info().state_dim == 18
    assert make_lbf(LBF_8X8).env_info().state_dim == 24
    with pytest.raises(ValueError, match="state must be"):
        make_lbf(LBF_8X8, state="global")


def _rware_state(env: RWAREEnv) -> np.ndarray:
    """RWARE's state as documented, read off the simulator: robots, then shelves by id."""
    warehouse = env._unwrapped
    rows, cols = warehouse.grid_size
    robots = [
        [r.y / (rows - 1), r.x / (cols - 1), *np.eye(4)[r.dir.value], r.carrying_shelf is not None]
        for r in warehouse.agents
    ]
    shelves = sorted(warehouse.shelfs, key=lambda shelf: shelf.id)
    queue = warehouse.request_queue
    places = [[s.y / (rows - 1), s.x / (cols - 1), any(s is q for q in queue)] for s in shelves]
    return np.array([x for row in robots + places for x in row], dtype=np.float32)


def test_rware_state_is_every_robot_and_shelf_of_the_simulator() -> None:
    pytest.importorskip("rware")
    env = make_rware("rware-tiny-2ag-v2", state="simulator")
    env.reset(seed=0)
    shelves = len(env._unwrapped.shelfs)
    assert env.env_info().state_dim == 7 * 2 + 3 * shelves == env.state().size
    rng = np.random.default_rng(0)
    carried = False
    for _ in range(300):
        np.testing.assert_allclose(env.state(), _rware_state(env), atol=1e-6)
        carried = carried or any(r.carrying_shelf is not None for r in env._unwrapped.agents)
        env.step(rng.integers(0, 5, size=2))
    assert carried  # a robot carried a shelf: the flag and the moving shelf were compared
    state = env.state()
    assert state.min() >= 0.0 and state.max() <= 1.0
    assert state[14:].reshape(-1, 3)[:, 2].sum() == env._unwrapped.request_queue_size
    # the default, as before: the concatenated observations; the family preset's: the simulator
    assert make_rware("rware-tiny-2ag-v2").env_info().state_dim == 2 * 71
    assert make_config("qmix", "rware_tiny_2ag").env_args["state"] == "simulator"
    with pytest.raises(ValueError, match="state must be"):
        make_rware("rware-tiny-2ag-v2", state="global")


def test_lbf_masks_match_valid_actions() -> None:
    rng = np.random.default_rng(0)
    loads_seen = 0
    for key, scripted in [(LBF_ONE_FOOD, True), ("Foraging-10x10-3p-3f-v3", False)]:
        env = make_lbf(key)
        env.reset(seed=1)
        for _ in range(50):
            avail = env.avail_actions()
            # lbforaging's public joint list, projected per agent
            joint = env._unwrapped.get_valid_actions()
            for i in range(env.env_info().n_agents):
                expected = np.zeros(6, dtype=bool)
                expected[[a[i].value for a in joint]] = True
                np.testing.assert_array_equal(avail[i], expected)
            assert avail[:, 0].all()  # NONE is always there: no agent is ever stuck
            loads_seen += int(avail[:, LOAD].sum())
            result = env.step(forage(env) if scripted else random_available(avail, rng))
            if result.terminated or result.truncated:
                break
    assert loads_seen > 0  # LOAD is masked in and out, not constant


@pytest.mark.parametrize(
    ("make", "key"), [(make_lbf, "Foraging-10x10-3p-3f-v3"), (make_rware, "rware-tiny-2ag-v2")]
)
def test_same_seed_same_episode(make: Any, key: str) -> None:
    if key.startswith("rware"):
        pytest.importorskip("rware")
    env = make(key)

    def play(seed: int) -> np.ndarray:
        rng = np.random.default_rng(0)
        env.reset(seed=seed)
        frames = [env.observations().copy()]
        for _ in range(20):
            env.step(random_available(env.avail_actions(), rng))
            frames.append(env.observations().copy())
        return np.stack(frames)  # [T + 1, N, O]

    first = play(7)
    other = play(8)
    again = play(7)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[0], other[0])
    fresh = make(key)  # a new env agrees with one that has played before
    fresh.reset(seed=7)
    np.testing.assert_array_equal(fresh.observations(), first[0])


def test_rware_ends_are_truncations() -> None:
    pytest.importorskip("rware")
    ends: list[tuple[dict[str, Any], int]] = [
        ({"max_steps": 20}, 20),
        ({"max_inactivity_steps": 5}, 5),
    ]
    for kwargs, length in ends:
        env = make_rware("rware-tiny-2ag-v2", **kwargs)
        env.reset(seed=0)
        assert env.avail_actions().all()
        for t in range(1, length + 1):
            result = env.step(np.zeros(2, dtype=np.int64))  # NOOP: nothing is delivered
            assert result.terminated is False
            assert result.truncated is (t == length)
        assert np.isfinite(env.observations()).all()


def test_gymnasium_time_limit_wrapper_is_a_truncation() -> None:
    from gymnasium.wrappers import TimeLimit

    env = GymnasiumMultiAgentEnv(TimeLimit(raw_lbf(LBF_8X8), 5), episode_limit=50)
    env.reset(seed=0)
    flags = [env.step(np.zeros(2, dtype=np.int64)) for _ in range(5)]
    assert [(r.terminated, r.truncated) for r in flags] == [(False, False)] * 4 + [(False, True)]

    key = "lbforaging:" + LBF_8X8  # make_gymnasium imports the package that registers the id
    assert make_gymnasium(key, max_episode_steps=10).env_info().episode_limit == 10
    assert make_gymnasium(key, time_limit=7, max_episode_steps=10).env_info().episode_limit == 7
    with pytest.raises(ValueError, match="time_limit"):
        make_gymnasium(key)
    limited = make_gymnasium(key, time_limit=3)
    limited.reset(seed=0)
    ends = [limited.step(np.zeros(2, dtype=np.int64)).truncated for _ in range(3)]
    assert ends == [False, False, True]


def test_lbf_max_episode_steps_goes_to_lbf() -> None:
    env = make_lbf(LBF_8X8, max_episode_steps=4)
    assert env.env_info().episode_limit == 4
    assert env._unwrapped._max_episode_steps == 4  # not a gymnasium TimeLimit wrapper
    env.reset(seed=0)
    ends = [env.step(np.zeros(2, dtype=np.int64)) for _ in range(4)]
    assert [(r.terminated, r.truncated) for r in ends][-1] == (False, True)


class UnevenAgents(gymnasium.Env):
    """Two agents of different sizes: obs Box(3) and Box(2, 2); 2 and 4 actions."""

    def __init__(self) -> None:
        spaces = gymnasium.spaces
        self.observation_space = spaces.Tuple(
            (spaces.Box(-10, 10, (3,), np.float32), spaces.Box(-10, 10, (2, 2), np.float32))
        )
        self.action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(4)))
        self.t = 0

    def _obs(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.full(3, self.t + 1, np.float32),
            np.arange(4, dtype=np.float32).reshape(2, 2) - self.t,
        )

    def reset(self, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, actions: Any) -> Any:
        self.t += 1
        rewards = [float(actions[0]), 10.0 * actions[1]]
        return self._obs(), rewards, self.t == 2, False, {"t": self.t}


def test_uneven_agents_are_padded() -> None:
    env = GymnasiumMultiAgentEnv(UnevenAgents(), episode_limit=5)
    assert env.env_info() == EnvInfo(2, 4, 4, 8, 5)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.observations(), [[1, 1, 1, 0], [0, 1, 2, 3]])
    np.testing.assert_array_equal(env.state(), [1, 1, 1, 0, 0, 1, 2, 3])
    np.testing.assert_array_equal(env.avail_actions(), [[1, 1, 0, 0], [1, 1, 1, 1]])
    with pytest.raises(ValueError, match="n_actions"):
        env.step(np.array([2, 0]))  # agent 0 has only two actions
    first = env.step(np.array([1, 3]))
    assert (first.reward, first.terminated, first.truncated) == (31.0, False, False)
    assert first.info == {"t": 1}
    np.testing.assert_array_equal(env.observations(), [[2, 2, 2, 0], [-1, 0, 1, 2]])
    second = env.step(np.array([0, 0]))
    assert (second.terminated, second.truncated) == (True, False)  # generic: trusted
    assert check_env(env).n_actions == 4


def test_bad_task_names() -> None:
    with pytest.raises(ValueError, match="Foraging-8x8"):
        make_lbf("Foraging-99x99-2p-1f-v3")
    with pytest.raises(ValueError, match="LBF"):
        make_lbf("rware-tiny-2ag-v2")
    with pytest.raises(ValueError, match="Tuple"):
        make_gymnasium("CartPole-v1")


def test_render_rgb_frame() -> None:
    env = make_lbf(LBF_8X8)
    env.reset(seed=0)
    try:
        frame = env.render()
    except Exception as err:  # pyglet missing, or neither a display nor EGL
        pytest.skip(f"LBF rendering unavailable here: {err}")
    assert frame.dtype == np.uint8
    assert frame.ndim == 3 and frame.shape[2] == 3
    env.close()


def test_lbf_observations_are_scaled_by_their_bounds() -> None:
    env, raw = make_lbf(LBF_8X8), raw_lbf(LBF_8X8)
    high = np.stack([np.asarray(space.high) for space in raw.observation_space])  # [N, O]
    for seed in (0, 5):
        env.reset(seed=seed)
        raw_obs, _ = raw.reset(seed=seed)
        np.testing.assert_allclose(env.observations(), np.stack(raw_obs) / np.maximum(high, 1))
        assert np.abs(env.observations()).max() <= 1.0
        np.testing.assert_array_equal(env.state(), env.observations().reshape(-1))
