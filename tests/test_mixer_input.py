"""What the hypernetworks see (``mixer_input``): each variant's width and layout, for every
learner whose mixer is conditioned on it, and ``constant`` really ignoring everything."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from qmix.config import make_config
from qmix.data.episode_batch import EpisodeBatch
from qmix.envs.vector import InProcessVectorEnv
from qmix.learners import build_learner
from qmix.learners.q import QLearner
from qmix.networks.mixers import MIXER_INPUTS, mixer_input_dim, mixer_inputs
from qmix.runner import EpisodeRunner
from tests.conftest import CountdownEnv

# CountdownEnv: N = 2 agents, O = 2, S = 3
WIDTHS = {"state": 3, "obs_concat": 4, "state_obs": 7, "constant": 1}
# every learner whose mixing is conditioned on mixer_input
CONDITIONED = ["qmix", "ow_qmix", "cw_qmix", "qplex", "qtran"]


def _learner(algo: str, mixer_input: str) -> QLearner:
    cfg = make_config(algo, "two_step", {"agent": "rnn", "mixer_input": mixer_input})
    learner = build_learner(cfg, CountdownEnv().env_info())
    assert isinstance(learner, QLearner)
    return learner


def _conditioned(learner: QLearner) -> list[torch.nn.Module]:
    """The learner's networks that read mixer_input: its mixer, QTRAN's joint network,
    CW/OW-QMIX's central mixer."""
    names = ("mixer", "joint", "central_mixer")
    found = [getattr(learner, name, None) for name in names]
    return [module for module in found if isinstance(module, torch.nn.Module)]


def _batch(learner: QLearner) -> EpisodeBatch:
    envs = InProcessVectorEnv(CountdownEnv, 4)
    batch, _ = EpisodeRunner(envs, learner.controller).run([0, 1, 2, 3], epsilon=1.0)
    return batch


def test_each_input_has_its_width_and_layout() -> None:
    obs = torch.randn(5, 7, 2, 2)  # [B, T, N, O]
    state = torch.randn(5, 7, 3)  # [B, T, S]
    for kind in MIXER_INPUTS:
        out = mixer_inputs(kind, obs, state)
        assert out.shape == (5, 7, WIDTHS[kind]) and mixer_input_dim(kind, 3, 2, 2) == WIDTHS[kind]
    both = mixer_inputs("state_obs", obs, state)
    assert torch.equal(both[..., :3], state)  # the state first ...
    assert torch.equal(both[..., 3:5], obs[:, :, 0]) and torch.equal(both[..., 5:], obs[:, :, 1])
    assert torch.equal(mixer_inputs("constant", obs, state), torch.ones(5, 7, 1))


@pytest.mark.parametrize("algo", CONDITIONED)
@pytest.mark.parametrize("kind", MIXER_INPUTS)
def test_every_conditioned_mixer_trains_on_every_input(algo: str, kind: str) -> None:
    torch.manual_seed(0)
    learner = _learner(algo, kind)
    widths = [module.input_dim for module in _conditioned(learner)]
    assert widths and all(width == WIDTHS[kind] for width in widths)
    stats = learner.train(_batch(learner))
    assert torch.isfinite(torch.tensor(stats["loss"]))


@pytest.mark.parametrize("algo", CONDITIONED)
def test_what_the_mixer_does_not_see_cannot_change_the_loss(algo: str) -> None:
    """Noise in the state (which the agents do not see) changes the loss of ``state`` and
    ``state_obs`` only: ``obs_concat`` and ``constant`` never read it."""
    for kind in MIXER_INPUTS:
        torch.manual_seed(0)
        learner = _learner(algo, kind)
        batch = _batch(learner)
        loss, _ = learner.loss(batch)
        noised = dataclasses.replace(batch, state=batch.state + torch.randn_like(batch.state))
        loss_noised, _ = learner.loss(noised)
        sees_state = kind in ("state", "state_obs")
        assert bool(torch.isclose(loss, loss_noised)) != sees_state, kind


@pytest.mark.parametrize("algo", ["qmix", "ow_qmix", "vdn", "qplex"])
def test_a_qmix_mixer_reports_its_gain(algo: str) -> None:
    """``diagnostics``: ``mixer_gain``, the mean ``dQ_tot/dQ_a`` over the batch's real
    transitions (QMIX's mixer only), near 0 once the hidden layer is shut (the MPE finding)."""
    from qmix.learners.maths import masked_mean
    from qmix.learners.q import chosen_action_values
    from qmix.networks.mixers import QMixer

    torch.manual_seed(0)
    cfg = make_config(algo, "two_step", {"agent": "rnn"})
    learner = build_learner(cfg, CountdownEnv().env_info())
    assert isinstance(learner, QLearner)
    batch = _batch(learner)
    if not isinstance(learner.mixer, QMixer):
        assert learner.diagnostics(batch) == {}
        return
    with torch.no_grad():
        inputs = learner.controller.sequence_inputs(batch.obs, batch.actions)
        h0 = learner.agent.initial_hidden(batch.batch_size)
        q, _ = learner.agent(inputs, h0, batch.slot_mask())
        mix_in = mixer_inputs(cfg.mixer_input, batch.obs, batch.state)[:, :-1]
        gain, _ = learner.mixer.gains(chosen_action_values(q[:, :-1], batch.actions), mix_in)
    expected = masked_mean(gain, batch.transition_mask())
    assert learner.diagnostics(batch) == {"mixer_gain": pytest.approx(expected)}
    assert expected > 0.01
    with torch.no_grad():  # every hidden unit far below zero: ELU flat, no gain
        learner.mixer.hyper_b1.weight.zero_()
        learner.mixer.hyper_b1.bias.fill_(-100.0)
    assert learner.diagnostics(batch)["mixer_gain"] < 1e-6
