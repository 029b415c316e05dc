"""COMA's centralised critic (Foerster et al. 2018): ``Q(s, u)`` for each agent's own actions.

For agent ``a`` at slot ``t`` the critic sees the state, the agent's observation, the other
agents' actions (one-hot, the agent's own block zeroed), every agent's previous action
(one-hot, zeros at ``t = 0``) and the agent's one-hot index, and outputs one value per action
of agent ``a``: ``Q(s_t, (u_t^{-a}, u))`` for every ``u``. One forward pass therefore gives
the counterfactual values the baseline marginalises over. The layout follows PyMARL's
``COMACritic``: three layers, ReLU, ``critic_hidden_dim`` wide.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def critic_input_dim(state_dim: int, obs_dim: int, n_agents: int, n_actions: int) -> int:
    """``I_c = S + O + 2 N A + N``: state, observation, others' actions, last actions, id."""
    return state_dim + obs_dim + 2 * n_agents * n_actions + n_agents


def critic_inputs(
    state: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, n_actions: int
) -> torch.Tensor:
    """The critic's inputs at every slot.

    Args:
        state: ``[B, T, S]``.
        obs: ``[B, T, N, O]``.
        actions: ``[B, T, N]`` the joint action taken at each slot (``u_t``).
        n_actions: ``A``.

    Returns:
        ``[B, T, N, I_c]``: state, own observation, ``u_t^{-a}`` (own block zeroed),
        ``u_{t-1}`` (zeros at slot 0), one-hot agent index.
    """
    b, t, n = actions.shape
    joint = F.one_hot(actions, n_actions).to(obs.dtype).reshape(b, t, 1, n * n_actions)
    joint = joint.expand(b, t, n, n * n_actions)  # [B, T, N, N*A]
    eye = torch.eye(n, device=obs.device, dtype=obs.dtype)  # [N, N]
    others = (1.0 - eye).repeat_interleave(n_actions, dim=1)  # [N, N*A]: 0 on own block
    last = torch.cat([torch.zeros_like(joint[:, :1]), joint[:, :-1]], dim=1)  # [B, T, N, N*A]
    parts = [
        state.unsqueeze(2).expand(b, t, n, state.shape[-1]),  # [B, T, N, S]
        obs,  # [B, T, N, O]
        joint * others,  # [B, T, N, N*A]
        last,  # [B, T, N, N*A]
        eye.expand(b, t, n, n),  # [B, T, N, N]
    ]
    return torch.cat(parts, dim=-1)


class COMACritic(nn.Module):
    """``[..., I_c] -> [..., A]``: Linear-ReLU-Linear-ReLU-Linear.

    Args:
        input_dim: ``I_c`` (:func:`critic_input_dim`).
        n_actions: ``A``.
        hidden_dim: width of both hidden layers (PyMARL: 128).
    """

    def __init__(self, input_dim: int, n_actions: int, hidden_dim: int = 128) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.fc3 = nn.Linear(hidden_dim, n_actions)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Values of each of the agent's actions, the others' fixed: ``[..., A]``."""
        if inputs.shape[-1] != self.input_dim:
            raise ValueError(f"expected critic inputs [..., {self.input_dim}], got {inputs.shape}")
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(inputs)))))
