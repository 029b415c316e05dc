"""Acting inside SMAX's jitted step: the JAX agent equals the PyTorch agent, greedy episodes are
identical on both paths, exploration is seeded by the training RNG and never picks an
unavailable action."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("jaxmarl")

from qmix.envs import jax_agents
from qmix.envs.base import VectorEnv
from qmix.envs.smax import SMAXVectorEnv, make_smax
from qmix.networks.agents import AgentNetwork
from qmix.policy.controller import AgentController, agent_input_dim
from qmix.runner import EpisodeRunner


@pytest.mark.parametrize("recurrent", [True, False])
@pytest.mark.parametrize("shared", [True, False])
def test_jax_agent_step_equals_the_torch_agent(recurrent: bool, shared: bool) -> None:
    torch.manual_seed(0)
    b, n, i, a, h = 5, 3, 11, 6, 16
    agent = AgentNetwork(i, a, n, h, recurrent=recurrent, share_params=shared)
    weights = AgentController(agent, a, last_action=False, agent_id=False).agent_weights()
    inputs = torch.randn(b, n, i)  # [B, N, I]
    hidden = torch.randn(b, n, agent.hidden_dim)  # [B, N, H]
    with torch.no_grad():
        q_torch, h_torch = agent.step(inputs, hidden)  # [B, N, A], [B, N, H]
    flat, layout = jax_agents.flatten(weights)
    params = jax_agents.unflatten(flat, layout)
    q_jax, h_jax = jax_agents.q_step(params, inputs.numpy(), hidden.numpy(), recurrent)
    np.testing.assert_allclose(np.asarray(q_jax), q_torch.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(h_jax), h_torch.numpy(), rtol=1e-5, atol=1e-5)


_ENVS: dict[bool, VectorEnv] = {}  # one compiled SMAX per acting path, shared by the tests


def _runner(act_in_env: bool, recurrent: bool = True) -> EpisodeRunner:
    """A fresh agent (same initial weights every time) on a shared 3-env SMAX 3m."""
    envs = _ENVS.get(act_in_env)
    if envs is None:
        envs = _ENVS[act_in_env] = make_smax("3m", num_envs=3)
    return _fresh_agents(envs, act_in_env, recurrent)


def _fresh_agents(
    envs: VectorEnv, act_in_env: bool = True, recurrent: bool = True
) -> EpisodeRunner:
    """A runner on ``envs`` with a fresh agent, the same initial weights every time."""
    info = envs.env_info()
    torch.manual_seed(1)
    dim = agent_input_dim(info.obs_dim, info.n_actions, info.n_agents, True, True)
    agent = AgentNetwork(dim, info.n_actions, info.n_agents, 32, recurrent)
    controller = AgentController(agent, info.n_actions, last_action=True, agent_id=True)
    return EpisodeRunner(envs, controller, act_in_env=act_in_env)


@pytest.mark.parametrize("recurrent", [True, False])
def test_greedy_episodes_are_the_same_on_both_acting_paths(recurrent: bool) -> None:
    in_env, in_torch = _runner(True, recurrent=recurrent), _runner(False, recurrent=recurrent)
    assert in_env.acting_env is not None and in_torch.acting_env is None
    seeds = list(range(7))  # more episodes than environments: resets zero the acting state
    first, stats = in_env.run(seeds, 0.0)
    second, _ = in_torch.run(seeds, 0.0)
    for name in ("obs", "state", "avail_actions", "actions", "reward", "filled", "terminated"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert len(set(stats.lengths)) > 1  # episodes of different lengths were interleaved
    assert len(torch.unique(first.actions[first.filled])) > 2  # the greedy choice varies


def test_carried_over_episodes_keep_their_acting_state() -> None:
    """collect, collect, drain with the policy in SMAX plays each seed as it plays alone."""
    runner, alone = _runner(True), _runner(True)
    seeds = iter(range(100, 109))
    played = [runner.collect(2, seeds, 0.0) for _ in range(2)] + [runner.drain(0.0)]
    assert runner.in_flight == 0
    got = [seed for _, stats in played for seed in stats.seeds]
    collected = torch.cat([batch.actions for batch, _ in played])  # [K, T, N]
    assert len(got) >= 4 and sorted(got) == list(range(100, 100 + len(got)))
    reference, _ = alone.run(got, 0.0)  # each seed alone, in the same order
    assert torch.equal(collected, reference.actions)


_Stats = tuple[list[float], list[int], list[dict[str, Any]], list[int]]  # one call's stats
_VIEWS = ("env observations", "env states", "env avail_actions")
_FIELDS = (
    "obs",
    "state",
    "avail_actions",
    "actions",
    "reward",
    "filled",
    "terminated",
    "truncated",
)


def test_several_steps_per_call_play_as_one_step_per_call() -> None:
    """SMAX playing 32 steps per compiled call gives exactly what one step per call gives:
    episodes, seeds, returns, infos, exploration and the env's views after each call, through
    collect's stopping point, carry-over, an evaluation between collections (seeds read ahead
    are kept) and drains, with short episodes (limit 12) so that an env starts several
    episodes within one call."""

    def play(steps: int) -> tuple[list[tuple[torch.Tensor, ...]], list[_Stats], EpisodeRunner]:
        envs = SMAXVectorEnv("3m", num_envs=2, steps_per_call=steps, max_steps=12)
        runner = _fresh_agents(envs)
        gen = torch.Generator().manual_seed(3)
        seeds = iter(range(500, 10**6))
        calls = [
            lambda: runner.collect(3, seeds, 0.5, gen),
            lambda: runner.collect(2, seeds, 0.5, gen),
            lambda: runner.drain(0.5, gen),
            lambda: runner.run(list(range(7, 15)), 0.0),
            lambda: runner.collect(3, seeds, 0.5, gen),
            lambda: runner.drain(0.5, gen),
        ]
        batches: list[tuple[torch.Tensor, ...]] = []
        stats: list[_Stats] = []
        for call in calls:
            batch, stat = call()
            views = (envs.observations(), envs.states(), envs.avail_actions())  # after the call
            batches.append(
                tuple(getattr(batch, name) for name in _FIELDS)
                + tuple(torch.from_numpy(np.array(view)) for view in views)
            )
            stats.append((stat.returns, stat.lengths, stat.infos, stat.seeds))
        return batches, stats, runner

    one, one_stats, _ = play(1)
    many, many_stats, runner = play(32)
    assert many_stats == one_stats
    for ours, theirs in zip(many, one, strict=True):
        for name, x, y in zip((*_FIELDS, *_VIEWS), ours, theirs, strict=True):
            assert torch.equal(x, y), name
    train_seeds = [seed for i in (0, 1, 2, 4, 5) for seed in one_stats[i][3]]
    assert sorted(train_seeds) == list(range(500, 500 + len(train_seeds)))  # none skipped
    assert 12 in [length for stat in one_stats for length in stat[1]]  # the limit was hit
    assert runner._pool["obs"].shape[0] > 4  # an env started 3 episodes in one call
    assert runner.in_flight == 0


def test_exploration_picks_available_actions_and_follows_the_generator() -> None:
    runner = _runner(True)
    gen = torch.Generator().manual_seed(5)
    batch, _ = runner.run(list(range(6)), 1.0, gen)
    filled = batch.filled  # [K, T]
    chosen_avail = batch.avail_actions[:, :-1].gather(-1, batch.actions.unsqueeze(-1))[..., 0]
    assert bool(chosen_avail[filled].all())  # never an unavailable action
    # uniform over the available actions: alive agents with every move free pick each move
    moves = batch.actions[filled][batch.avail_actions[:, :-1][filled][..., :5].all(-1)]
    counts = torch.bincount(moves.flatten(), minlength=8).float()
    assert counts[:5].min() > 0
    # one draw from the training generator per call seeds the simulator's exploration
    expected = torch.Generator().manual_seed(5)
    torch.randint(0, 2**31 - 1, (1,), generator=expected)
    assert torch.equal(gen.get_state(), expected.get_state())
    again, _ = _runner(True).run(list(range(6)), 1.0, torch.Generator().manual_seed(5))
    other, _ = _runner(True).run(list(range(6)), 1.0, torch.Generator().manual_seed(6))
    assert torch.equal(again.actions, batch.actions)
    assert not torch.equal(other.actions, batch.actions)


def test_half_exploration_mixes_greedy_and_random_actions() -> None:
    seeds = list(range(16))
    greedy, _ = _runner(True).run(seeds, 0.0)
    mixed, _ = _runner(True).run(seeds, 0.5, torch.Generator().manual_seed(0))
    # the first step sees the same observations on both runs, so greedy actions agree there;
    # with epsilon 0.5 about half the agents explore and most of those pick another action
    same = (greedy.actions[:, 0] == mixed.actions[:, 0]).float().mean()  # over 48 agents
    assert 0.35 < float(same) < 0.85  # expected 0.5 + 0.5 / 5 (5 moves, no target in range)


def test_acting_needs_loaded_agents_and_arrays_of_b_envs() -> None:
    envs = SMAXVectorEnv("3m", num_envs=2)
    idle, start = np.zeros(2, bool), np.zeros(2, np.int64)
    with pytest.raises(RuntimeError, match="load_agents"):
        envs.play([0, 1], 2, 0.0, idle, start)
    runner = _runner(True)
    envs.load_agents(runner.controller.agent_weights(), 0)
    with pytest.raises(ValueError, match="active and t of shape"):
        envs.play([0, 1], 2, 0.0, np.zeros(3, bool), start)
    with pytest.raises(ValueError, match="steps_per_call"):
        SMAXVectorEnv("3m", num_envs=2, steps_per_call=0)
