"""The agent controller: builds agent inputs and owns the hidden state while acting.

Agent input at slot ``t`` (``[..., I]``): the observation, then optionally the one-hot of the
agent's previous action (zeros at ``t = 0``), then optionally the one-hot agent index --
PyMARL's ``obs_last_action`` / ``obs_agent_id``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from qmix.networks.agents import AgentNetwork
from qmix.policy.exploration import epsilon_greedy


def agent_input_dim(
    obs_dim: int, n_actions: int, n_agents: int, last_action: bool, agent_id: bool
) -> int:
    """``I``: the agent-input size for these options."""
    return obs_dim + (n_actions if last_action else 0) + (n_agents if agent_id else 0)


class AgentController:
    """Decentralised acting: each agent's Q from its own input and hidden state.

    Args:
        agent: the (online) agent network.
        n_actions: ``A``.
        last_action: include the one-hot previous action in the inputs.
        agent_id: include the one-hot agent index in the inputs.
    """

    def __init__(
        self, agent: AgentNetwork, n_actions: int, last_action: bool, agent_id: bool
    ) -> None:
        self.agent = agent
        self.n_agents = agent.n_agents
        self.n_actions = n_actions
        self.last_action = last_action
        self.agent_id = agent_id
        self.hidden = agent.initial_hidden(1)  # [B, N, H]
        self.prev_onehot = torch.zeros(1, self.n_agents, n_actions)  # [B, N, A]
        self._eye_cache: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        """Device of the agent network."""
        return next(self.agent.parameters()).device

    def build_inputs(self, obs: torch.Tensor, prev_onehot: torch.Tensor) -> torch.Tensor:
        """Agent inputs: ``obs [B, T, N, O]``, ``prev_onehot [B, T, N, A]`` -> ``[B, T, N, I]``."""
        b, t, n, _ = obs.shape
        parts = [obs]
        if self.last_action:
            parts.append(prev_onehot.to(obs.dtype))
        if self.agent_id:
            parts.append(self._eye(n, obs).expand(b, t, n, n))
        return torch.cat(parts, dim=-1)

    def _eye(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """One-hot agent ids ``[N, N]``, built once (acting calls this every step)."""
        eye = self._eye_cache
        if eye is None or eye.device != like.device or eye.dtype != like.dtype:
            eye = self._eye_cache = torch.eye(n, device=like.device, dtype=like.dtype)
        return eye

    def sequence_inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Inputs for whole episodes.

        ``obs [B, T+1, N, O]`` and ``actions [B, T, N]`` give ``[B, T+1, N, I]``. Slot 0 has
        no previous action (zeros); slot ``t >= 1`` gets ``actions[:, t - 1]``.
        """
        b, _, n = actions.shape
        onehot = F.one_hot(actions, self.n_actions).to(obs.dtype)  # [B, T, N, A]
        first = obs.new_zeros(b, 1, n, self.n_actions)  # [B, 1, N, A]: no action before slot 0
        prev = torch.cat([first, onehot], dim=1)  # [B, T+1, N, A]
        return self.build_inputs(obs, prev)

    # -- acting ------------------------------------------------------------------------------
    def init_hidden(self, batch_size: int) -> None:
        """Start ``batch_size`` new episodes: zero hidden state, no previous action."""
        self.hidden = self.agent.initial_hidden(batch_size, self.device)
        self.prev_onehot = torch.zeros(
            batch_size, self.n_agents, self.n_actions, device=self.device
        )

    def reset_rows(self, mask: torch.Tensor) -> None:
        """Start new episodes in the environments selected by ``mask [B]`` (bool)."""
        self.hidden[mask] = 0.0
        self.prev_onehot[mask] = 0.0

    @torch.no_grad()
    def step_q(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values for one step ``obs [B, N, O] -> [B, N, A]``; advances the hidden state."""
        inputs = self.build_inputs(obs.unsqueeze(1), self.prev_onehot.unsqueeze(1))  # [B, 1, N, I]
        q, self.hidden = self.agent(inputs, self.hidden)  # [B, 1, N, A], [B, N, H]
        return q.squeeze(1)

    @torch.no_grad()
    def select_actions(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor,
        epsilon: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Epsilon-greedy joint actions ``[B, N]`` for ``obs [B, N, O]`` and ``avail [B, N, A]``."""
        q = self.step_q(obs)  # [B, N, A]
        actions = epsilon_greedy(q, avail, epsilon, generator)  # [B, N]
        self.prev_onehot = F.one_hot(actions, self.n_actions).float()
        return actions
