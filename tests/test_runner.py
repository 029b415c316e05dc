"""Runner: slot alignment, padding, masks, truncation at the time limit, batched acting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qmix.envs.base import VectorStep
from qmix.envs.vector import InProcessVectorEnv
from qmix.networks.agents import AgentNetwork
from qmix.policy.controller import AgentController, agent_input_dim
from qmix.runner import EpisodeRunner, SeedQueue
from tests.conftest import CountdownEnv


def _runner(num_envs: int, limit: int = 3, recurrent: bool = True) -> EpisodeRunner:
    torch.manual_seed(0)
    info = CountdownEnv(limit).env_info()
    dim = agent_input_dim(info.obs_dim, info.n_actions, info.n_agents, True, True)
    agent = AgentNetwork(dim, info.n_actions, info.n_agents, 16, recurrent)
    controller = AgentController(agent, info.n_actions, last_action=True, agent_id=True)
    return EpisodeRunner(InProcessVectorEnv(lambda: CountdownEnv(limit), num_envs), controller)


def test_episodes_of_different_lengths_are_padded_and_aligned() -> None:
    runner = _runner(4)
    batch, stats = runner.run(seeds=[0, 1, 2, 3], epsilon=1.0)  # lengths 1, 2, 3, 4->limit 3
    assert stats.lengths == [1, 2, 3, 3]
    assert batch.episode_lengths().tolist() == [1, 2, 3, 3]
    assert batch.filled.tolist() == [
        [True, False, False],
        [True, True, False],
        [True, True, True],
        [True, True, True],
    ]
    # rewards 1..T_ep, zero on padding
    assert batch.reward.tolist() == [[1, 0, 0], [1, 2, 0], [1, 2, 3], [1, 2, 3]]
    assert stats.returns == [1.0, 3.0, 6.0, 6.0]
    # slot t holds what was seen before acting at t, including the final slot T_ep
    for i, length in enumerate([1, 2, 3, 3]):
        assert batch.obs[i, : length + 1, 0, 0].tolist() == list(map(float, range(length + 1)))
        assert batch.avail_actions[i, : length + 1].any(-1).all()
        assert not batch.avail_actions[i, length + 1 :].any()
        assert batch.obs[i, length + 1 :].abs().sum() == 0


def test_time_limit_is_truncated_not_terminated() -> None:
    batch, _ = _runner(4).run(seeds=[0, 1, 2, 3], epsilon=1.0)
    assert batch.terminated.tolist() == [
        [True, False, False],
        [False, True, False],
        [False, False, True],
        [False, False, False],  # would have lasted 4 steps: cut by the limit of 3
    ]
    assert batch.truncated[3].tolist() == [False, False, True]
    assert not batch.truncated[:3].any()


def test_recorded_actions_are_available_ones() -> None:
    batch, _ = _runner(8).run(seeds=list(range(8)), epsilon=1.0)
    taken = batch.avail_actions[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    assert taken[batch.filled].all()


def test_batched_acting_matches_one_env_at_a_time() -> None:
    """B = 1 and B = 4 are the same code path and give the same greedy episodes."""
    many, _ = _runner(4).run(seeds=[0, 1, 2, 3], epsilon=0.0)
    for i in range(4):
        one, _ = _runner(1).run(seeds=[i], epsilon=0.0)
        assert torch.equal(one.actions[0], many.actions[i])
        assert torch.equal(one.obs[0], many.obs[i])


def test_training_inputs_reproduce_acting_q_values() -> None:
    """The controller's sequence inputs give the GRU the same history it saw while acting."""
    runner = _runner(2)
    controller = runner.controller
    batch, _ = runner.run(seeds=[2, 3], epsilon=1.0)
    controller.init_hidden(2)
    acting_q = []
    for t in range(3):
        acting_q.append(torch.from_numpy(controller.step_q(batch.obs[:, t].numpy())))
        controller.prev_onehot = np.eye(3, dtype=np.float32)[batch.actions[:, t].numpy()]
    inputs = controller.sequence_inputs(batch.obs, batch.actions)
    q, _ = controller.agent(inputs, controller.agent.initial_hidden(2))
    assert torch.allclose(torch.stack(acting_q, dim=1), q[:, :3], atol=1e-5)


def test_more_episodes_than_envs_refill_finished_envs() -> None:
    """K > B: finished environments restart with the next seed; rows follow seed order."""
    seeds = [3, 0, 1, 2, 0, 3, 1]
    many, stats = _runner(2).run(seeds=seeds, epsilon=0.0)
    assert stats.lengths == [3, 1, 2, 3, 1, 3, 2]  # 1 + seed % 4, capped by the limit 3
    for k, seed in enumerate(seeds):
        alone, _ = _runner(1).run(seeds=[seed], epsilon=0.0)
        # a refilled environment starts from a fresh hidden state: same greedy episode
        assert torch.equal(alone.actions[0], many.actions[k])
        assert torch.equal(alone.obs[0], many.obs[k])
        assert torch.equal(alone.filled[0], many.filled[k])


def test_collect_keeps_unfinished_episodes_running_and_returns_each_once() -> None:
    """collect stops after ``count`` finished episodes; drain returns the rest. Each episode
    is the one its seed gives when played alone (greedy), however the calls split it."""
    seeds = [3, 0, 1, 2, 0, 3, 1, 2, 2, 3]
    runner = _runner(3)
    supply = iter(seeds)
    first, first_stats = runner.collect(2, supply, epsilon=0.0)
    assert first.batch_size >= 2 and len(first_stats.returns) == first.batch_size
    assert runner.in_flight > 0  # the longer episodes are still running
    with pytest.raises(RuntimeError, match="drain"):
        runner.run([0], epsilon=0.0)
    second, second_stats = runner.collect(4, supply, epsilon=0.0)
    rest, rest_stats = runner.drain(epsilon=0.0)
    assert runner.in_flight == 0
    empty, empty_stats = runner.drain(epsilon=0.0)
    assert empty.batch_size == 0 and empty_stats.env_steps == 0
    # every seed supplied so far was started, finished and returned exactly once
    batches = [first, second, rest]
    returned = first_stats.seeds + second_stats.seeds + rest_stats.seeds
    assert sorted(returned) == sorted(seeds[: len(returned)]) and len(returned) >= 6
    actions = torch.cat([b.actions for b in batches])
    obs = torch.cat([b.obs for b in batches])
    for k, seed in enumerate(returned):
        alone, _ = _runner(1).run(seeds=[seed], epsilon=0.0)
        assert torch.equal(alone.actions[0], actions[k])
        assert torch.equal(alone.obs[0], obs[k])


def test_collect_keeps_every_environment_busy() -> None:
    """A finished environment restarts at once: with B = 2 and an endless supply, every
    batched step but the last steps two live episodes."""
    runner = _runner(2, limit=3)
    calls: list[int] = []
    step = runner.envs.step

    def counting_step(actions: np.ndarray, active: np.ndarray) -> VectorStep:
        calls.append(int(active.sum()))
        return step(actions, active)

    runner.envs.step = counting_step  # type: ignore[method-assign]
    batch, _ = runner.collect(20, iter(range(100)), epsilon=1.0)
    assert batch.batch_size >= 20
    assert all(live == 2 for live in calls)


def test_seed_queue_reads_ahead_and_loses_no_seed() -> None:
    queue = SeedQueue(iter(range(5)))
    assert queue.peek(3) == [0, 1, 2]
    assert queue.take(2) == [0, 1]  # the third stays for later
    assert queue.peek(10) == [2, 3, 4]  # as far as the iterator goes
    assert queue.take(3) == [2, 3, 4]
    assert queue.peek(1) == [] and queue.take(1) == []


def test_the_episode_runner_is_a_collector() -> None:
    """The trainer depends on the Collector protocol; EpisodeRunner is its first implementation."""
    from qmix.collectors import Collector

    runner: Collector = _runner(2)  # mypy checks the protocol's signatures
    assert isinstance(runner, Collector)
    batch, stats = runner.collect(2, iter(range(10)), 0.5, torch.Generator().manual_seed(0))
    assert batch.batch_size == len(stats.returns) >= 2
