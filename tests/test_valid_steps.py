"""Networks on the real steps of a padded batch only (qmix.networks.steps): the same values and
gradients as on the whole batch, zeros at the padding, and the padding never computed."""

from __future__ import annotations

import pytest
import torch

from qmix.config import make_config
from qmix.data.episode_batch import EpisodeBatch
from qmix.envs.vector import InProcessVectorEnv
from qmix.learners import build_learner
from qmix.learners.q import QLearner
from qmix.networks.agents import AgentNetwork
from qmix.networks.mixers import QMixer, QTranJoint
from qmix.networks.steps import on_valid_steps
from qmix.runner import EpisodeRunner
from tests.conftest import CountdownEnv


def _valid(b: int = 5, t: int = 7, seed: int = 0) -> torch.Tensor:
    """``[B, T]`` prefixes of random lengths 1..T (one full), as episodes are."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    return torch.arange(t) < lengths[:, None]


def test_a_mixer_on_valid_steps_equals_the_whole_batch_there_with_zeros_elsewhere() -> None:
    torch.manual_seed(0)
    mixer = QMixer(n_agents=3, input_dim=4)
    valid = _valid()  # [5, 7]
    qs = torch.randn(5, 7, 3, requires_grad=True)
    state = torch.randn(5, 7, 4)
    packed = on_valid_steps(mixer, valid, qs, state)  # [5, 7]
    whole = mixer(qs, state)
    assert packed.shape == whole.shape
    assert torch.allclose(packed[valid], whole[valid], atol=1e-6)
    assert (packed[~valid] == 0).all()
    (grad_packed,) = torch.autograd.grad(packed.sum(), qs)
    (grad_whole,) = torch.autograd.grad((whole * valid).sum(), qs)
    assert torch.allclose(grad_packed, grad_whole, atol=1e-6)


def test_tuple_outputs_and_none_inputs_pass_through() -> None:
    torch.manual_seed(0)
    joint = QTranJoint(n_agents=2, n_actions=3, feature_dim=5, input_dim=4)
    valid = _valid(4, 6)
    features, state = torch.randn(4, 6, 2, 5), torch.randn(4, 6, 4)
    actions = torch.randint(0, 3, (4, 6, 2))
    q, v = on_valid_steps(joint, valid, features, actions, state)
    q_all, v_all = joint(features, actions, state)
    assert torch.allclose(q[valid], q_all[valid], atol=1e-6)
    assert torch.allclose(v[valid], v_all[valid], atol=1e-6)
    assert (q[~valid] == 0).all() and (v[~valid] == 0).all()

    def first_or_zero(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        assert y is None
        return x[..., 0]

    out = on_valid_steps(first_or_zero, valid, state, None)
    assert torch.equal(out[valid], state[..., 0][valid])


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("share", [True, False])
def test_agents_with_valid_slots_match_the_whole_sequence(recurrent: bool, share: bool) -> None:
    torch.manual_seed(0)
    agent = AgentNetwork(6, 4, n_agents=2, hidden_dim=8, recurrent=recurrent, share_params=share)
    valid = _valid(5, 9)
    inputs = torch.randn(5, 9, 2, 6)
    h0 = agent.initial_hidden(5)
    q, _ = agent(inputs, h0, valid)
    q_all, _ = agent(inputs, h0)
    assert torch.allclose(q[valid], q_all[valid], atol=1e-6)
    assert (q[~valid] == 0).all()
    f, _ = agent.features(inputs, h0, valid)
    f_all, _ = agent.features(inputs, h0)
    assert torch.allclose(f[valid], f_all[valid], atol=1e-6)
    assert (f[~valid] == 0).all()


def test_a_feed_forward_agent_computes_the_valid_slots_only() -> None:
    agent = AgentNetwork(6, 4, n_agents=2, hidden_dim=8, recurrent=False)
    rows: list[int] = []
    first_layer = agent.cores[0].fc1
    assert isinstance(first_layer, torch.nn.Linear)
    first_layer.register_forward_hook(lambda m, x, y: rows.append(x[0].shape[:-1].numel()))
    valid = _valid(5, 9)
    agent(torch.randn(5, 9, 2, 6), agent.initial_hidden(5), valid)
    assert rows == [int(valid.sum()) * 2], "one call, on the real slots of both agents only"


def _episodes(learner: QLearner, count: int = 6) -> EpisodeBatch:
    envs = InProcessVectorEnv(lambda: CountdownEnv(limit=4), count)
    batch, _ = EpisodeRunner(envs, learner.controller).run(list(range(count)), epsilon=1.0)
    return batch


@pytest.mark.parametrize("algo", ["qmix", "vdn", "iql", "qtran", "ow_qmix", "cw_qmix", "qplex"])
@pytest.mark.parametrize("agent", ["mlp", "rnn"])
def test_the_loss_of_a_padded_batch_is_the_step_weighted_mean_of_its_episodes(
    algo: str, agent: str
) -> None:
    """Every learner's loss is a mean over real steps: the batch's loss equals its episodes'
    losses, each computed alone with no padding at all, weighted by their lengths."""
    torch.manual_seed(0)
    cfg = make_config(algo, "two_step", {"agent": agent, "td_lambda": 0.6})
    learner = build_learner(cfg, CountdownEnv(limit=4).env_info())
    assert isinstance(learner, QLearner)
    batch = _episodes(learner)
    lengths = batch.episode_lengths()
    assert len(set(lengths.tolist())) > 1, "the test needs episodes of different lengths"
    loss, _ = learner.loss(batch)
    alone = [
        learner.loss(batch.index(slice(i, i + 1)).truncate_time(int(n)))[0] * n
        for i, n in enumerate(lengths)
    ]
    assert torch.allclose(loss, torch.stack(alone).sum() / lengths.sum(), atol=1e-5)
