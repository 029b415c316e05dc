"""QLearner behaviour: targets frozen between updates, soft updates, IQL, mixer inputs."""

from __future__ import annotations

import pytest
import torch

from qmix.config import make_config
from qmix.data.episode_batch import EpisodeBatch
from qmix.envs.vector import InProcessVectorEnv
from qmix.learners import build_learner
from qmix.learners.q import QLearner
from qmix.networks.mixers import mixer_inputs
from qmix.runner import EpisodeRunner
from tests.conftest import CountdownEnv


def _batch(learner: QLearner, env_count: int = 4) -> EpisodeBatch:
    envs = InProcessVectorEnv(CountdownEnv, env_count)
    batch, _ = EpisodeRunner(envs, learner.controller).run(list(range(env_count)), epsilon=1.0)
    return batch


def _learner(algo: str = "qmix", **overrides: object) -> QLearner:
    cfg = make_config(algo, "two_step", {"agent": "rnn", "obs_last_action": True, **overrides})
    learner = build_learner(cfg, CountdownEnv().env_info())
    assert isinstance(learner, QLearner)
    return learner


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_targets_stay_frozen_between_hard_updates() -> None:
    torch.manual_seed(0)
    learner = _learner()
    batch = _batch(learner)
    target_before = _params(learner.target_agent) + _params(learner.target_mixer)  # type: ignore[arg-type]
    online_before = _params(learner.agent)
    for _ in range(3):
        learner.train(batch)
    target_after = _params(learner.target_agent) + _params(learner.target_mixer)  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(target_before, target_after, strict=True))
    assert not all(
        torch.equal(a, b) for a, b in zip(online_before, _params(learner.agent), strict=True)
    )
    learner.hard_update_targets()
    assert all(
        torch.equal(a, b)
        for a, b in zip(_params(learner.agent), _params(learner.target_agent), strict=True)
    )


def test_soft_update_moves_targets_by_tau() -> None:
    torch.manual_seed(0)
    learner = _learner(target_update="soft")
    learner.train(_batch(learner))
    online, target = _params(learner.agent), _params(learner.target_agent)
    learner.soft_update_targets(0.25)
    for o, t, new in zip(online, target, _params(learner.target_agent), strict=True):
        assert torch.allclose(new, 0.75 * t + 0.25 * o)


def test_iql_has_no_mixer_and_learns_per_agent() -> None:
    learner = _learner("iql")  # the preset with no mixer (a mixer override would mislabel it)
    assert learner.mixer is None and learner.target_mixer is None
    stats = learner.train(_batch(learner))
    assert stats["loss"] > 0


def test_loss_ignores_padded_slots() -> None:
    torch.manual_seed(0)
    learner = _learner()
    batch = _batch(learner)
    assert not batch.filled.all(), "the test needs episodes of different lengths"
    loss, _ = learner.loss(batch)
    pad = ~batch.filled  # [B, T]
    poisoned = EpisodeBatch(**{k: v.clone() for k, v in batch.tensors().items()})
    poisoned.reward[pad] = 1e6
    poisoned.actions[pad] = 2
    # observation slots strictly after the bootstrap slot T_ep are padding too
    lengths = batch.episode_lengths()
    for i, length in enumerate(lengths.tolist()):
        poisoned.obs[i, length + 1 :] = 123.0
        poisoned.state[i, length + 1 :] = -55.0
        poisoned.avail_actions[i, length + 1 :] = True
    loss2, _ = learner.loss(poisoned)
    assert torch.allclose(loss, loss2)


def test_mixer_input_choices() -> None:
    learner = _learner()
    batch = _batch(learner)
    assert torch.equal(mixer_inputs("state", batch.obs, batch.state), batch.state)
    concat = mixer_inputs("obs_concat", batch.obs, batch.state)  # [B, T+1, N*O]
    assert concat.shape == (*batch.obs.shape[:2], 4)
    assert torch.equal(concat[..., 2:], batch.obs[:, :, 1])
    obs_learner = _learner(mixer_input="obs_concat")
    assert obs_learner.mixer is not None and obs_learner.mixer.input_dim == 4
    obs_learner.train(batch)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_optimizers_and_gradient_clipping(optimizer: str) -> None:
    learner = _learner(optimizer=optimizer, grad_norm_clip=1e-3)
    stats = learner.train(_batch(learner))
    assert stats["grad_norm"] > 0  # the pre-clip norm is reported
    clipped = torch.cat([p.grad.reshape(-1) for p in learner.params if p.grad is not None])
    assert clipped.norm() <= 1e-3 * 1.01


def test_double_q_uses_online_network_for_selection() -> None:
    torch.manual_seed(0)
    plain, double = _learner(double_q=False), _learner(double_q=True)
    double.agent.load_state_dict(plain.agent.state_dict())
    double.mixer.load_state_dict(plain.mixer.state_dict())  # type: ignore[union-attr]
    # make the online and target networks disagree
    double.train(_batch(double))
    plain.agent.load_state_dict(double.agent.state_dict())
    plain.mixer.load_state_dict(double.mixer.state_dict())  # type: ignore[union-attr]
    plain.target_agent.load_state_dict(double.target_agent.state_dict())
    plain.target_mixer.load_state_dict(double.target_mixer.state_dict())  # type: ignore[union-attr]
    batch = _batch(double)
    _, parts_double = double.loss(batch)
    _, parts_plain = plain.loss(batch)
    mask = batch.transition_mask()
    # plain max >= double's target-of-online-argmax, for the same (monotonic) target mixer
    assert ((parts_plain["targets"] - parts_double["targets"]) * mask >= -1e-5).all()
    assert not torch.allclose(parts_plain["targets"] * mask, parts_double["targets"] * mask)


def test_per_agent_parameters_are_separate_networks() -> None:
    torch.manual_seed(0)
    learner = _learner(share_agent_params=False, obs_agent_id=False)
    assert len(learner.agent.cores) == 2
    same_input = torch.ones(1, 1, 2, learner.agent.input_dim)  # [B, T, N, I], identical per agent
    q, _ = learner.agent(same_input, learner.agent.initial_hidden(1))
    assert not torch.allclose(q[0, 0, 0], q[0, 0, 1])  # distinct weights, distinct values
    learner.train(_batch(learner))
    shared = _learner(obs_agent_id=False)
    q_shared, _ = shared.agent(same_input, shared.agent.initial_hidden(1))
    assert torch.allclose(q_shared[0, 0, 0], q_shared[0, 0, 1])


def test_td_lambda_changes_targets_only_through_later_steps() -> None:
    torch.manual_seed(0)
    one_step = _learner(td_lambda=0.0)
    lam = _learner(td_lambda=0.8)
    lam.agent.load_state_dict(one_step.agent.state_dict())
    lam.mixer.load_state_dict(one_step.mixer.state_dict())  # type: ignore[union-attr]
    lam.hard_update_targets()
    batch = _batch(one_step)
    _, a = one_step.loss(batch)
    _, b = lam.loss(batch)
    last = batch.episode_lengths() - 1  # the last real transition of each episode
    rows = torch.arange(batch.batch_size)
    # at an episode's last transition there is no later step: both are the one-step target
    assert torch.allclose(a["targets"][rows, last], b["targets"][rows, last])
    assert not torch.allclose(a["targets"] * a["mask"], b["targets"] * b["mask"])
