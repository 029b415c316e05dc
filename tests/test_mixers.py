"""Mixer invariants: QMIX monotonic in every agent's Q, VDN is the sum, shapes are checked."""

from __future__ import annotations

import pytest
import torch

from qmix.networks.mixers import QMixer, VDNMixer, build_mixer


@pytest.mark.parametrize("layers", [1, 2])
def test_qmix_is_monotonic_in_every_agent_q(layers: int) -> None:
    torch.manual_seed(0)
    n, s = 5, 7
    mixer = QMixer(n_agents=n, input_dim=s, embed_dim=16, hypernet_layers=layers)
    qs = (torch.randn(8, 30, n) * 10).requires_grad_(True)  # [B, T, N]
    states = torch.randn(8, 30, s) * 3  # [B, T, S]
    q_tot = mixer(qs, states)  # [B, T]
    (grad,) = torch.autograd.grad(q_tot.sum(), qs)
    assert (grad >= 0).all()
    # and strictly: raising any agent's Q never lowers Q_tot
    bumped = qs.detach().clone()
    bumped[..., 2] += 1.0
    assert (mixer(bumped, states) >= q_tot.detach() - 1e-6).all()


def test_qmix_depends_on_state_non_monotonically() -> None:
    """Only the Qs are constrained: Q_tot's gradient in the state has both signs."""
    torch.manual_seed(1)
    mixer = QMixer(n_agents=3, input_dim=4, embed_dim=8)
    qs = torch.randn(64, 1, 3)
    states = torch.randn(64, 1, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(mixer(qs, states).sum(), states)
    assert (grad > 0).any() and (grad < 0).any()


def test_vdn_equals_sum() -> None:
    qs = torch.randn(4, 6, 3)
    assert torch.allclose(VDNMixer(3, 5)(qs, torch.randn(4, 6, 5)), qs.sum(-1))


@pytest.mark.parametrize(
    "qs_shape, state_shape",
    [((4, 6, 2), (4, 6, 5)), ((4, 6, 3), (4, 6, 4)), ((4, 3), (4, 5)), ((4, 6, 3), (4, 5, 5))],
)
def test_mixers_reject_wrong_shapes(
    qs_shape: tuple[int, ...], state_shape: tuple[int, ...]
) -> None:
    for mixer in (QMixer(3, 5), VDNMixer(3, 5)):
        with pytest.raises(ValueError, match="expected"):
            mixer(torch.zeros(qs_shape), torch.zeros(state_shape))


def test_build_mixer_names() -> None:
    assert isinstance(build_mixer("qmix", 2, 3), QMixer)
    assert isinstance(build_mixer("vdn", 2, 3), VDNMixer)
    assert build_mixer("none", 2, 3) is None
    with pytest.raises(ValueError, match="unknown mixer"):
        build_mixer("qplex", 2, 3)


@pytest.mark.parametrize("layers", [1, 2])
def test_qmix_gains_are_the_gradient_of_q_tot(layers: int) -> None:
    torch.manual_seed(2)
    mixer = QMixer(n_agents=3, input_dim=4, embed_dim=8, hypernet_layers=layers)
    qs = (torch.randn(5, 7, 3) * 4).requires_grad_(True)  # [B, T, N]: units on both sides of 0
    states = torch.randn(5, 7, 4)  # [B, T, S]
    (grad,) = torch.autograd.grad(mixer(qs, states).sum(), qs)
    gains, pre = mixer.gains(qs.detach(), states)
    assert gains.shape == (5, 7, 3) and pre.shape == (5, 7, 8)
    assert (pre > 0).any() and (pre < 0).any()
    torch.testing.assert_close(gains, grad)
    assert (gains >= 0).all()


def test_qmix_gains_vanish_when_every_hidden_unit_is_saturated() -> None:
    """Very negative agent Qs push ELU's every input far below zero: no gradient reaches them."""
    torch.manual_seed(3)
    mixer = QMixer(n_agents=3, input_dim=4, embed_dim=8)
    gains, pre = mixer.gains(torch.full((2, 4, 3), -200.0), torch.randn(2, 4, 4))
    assert (pre < -5).all()
    assert gains.max() < 1e-2
