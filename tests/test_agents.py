"""The acting step of an agent network is its sequence forward at T = 1."""

from __future__ import annotations

import pytest
import torch

from qmix.networks.agents import build_agent


@pytest.mark.parametrize("kind", ["rnn", "mlp"])
@pytest.mark.parametrize("share", [True, False])
def test_step_equals_forward_over_a_sequence(kind: str, share: bool) -> None:
    torch.manual_seed(0)
    agent = build_agent(
        kind, input_dim=7, n_actions=4, n_agents=3, hidden_dim=16, share_params=share
    )
    inputs = torch.randn(5, 6, 3, 7)  # [B, T, N, I]
    q_seq, h_seq = agent(inputs, agent.initial_hidden(5))  # [B, T, N, A]
    h = agent.initial_hidden(5)
    steps = []
    for t in range(6):
        q, h = agent.step(inputs[:, t], h)  # [B, N, A]
        steps.append(q)
    assert torch.allclose(torch.stack(steps, dim=1), q_seq, atol=1e-5)
    assert torch.allclose(h, h_seq, atol=1e-5)
