"""The agent controller: builds agent inputs and owns the hidden state while acting.

Agent input at slot ``t`` (``[..., I]``): the observation, then optionally the one-hot of the
agent's previous action (zeros at ``t = 0``), then optionally the one-hot agent index --
PyMARL's ``obs_last_action`` / ``obs_agent_id``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from qmix.networks.agents import AgentNetwork
from qmix.policy.selectors import ActionSelector, EpsilonGreedy
from qmix.types import AgentWeights


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
        selector: turns the agents' outputs into actions (epsilon-greedy by default; a
            policy-gradient learner samples its policy, :mod:`qmix.policy.selectors`).
    """

    def __init__(
        self,
        agent: AgentNetwork,
        n_actions: int,
        last_action: bool,
        agent_id: bool,
        selector: ActionSelector | None = None,
    ) -> None:
        self.agent = agent
        self.selector: ActionSelector = selector or EpsilonGreedy()
        self.n_agents = agent.n_agents
        self.n_actions = n_actions
        self.last_action = last_action
        self.agent_id = agent_id
        self._eye_cache: torch.Tensor | None = None
        self.hidden: torch.Tensor  # [B, N, H] while acting
        self.prev_onehot: np.ndarray  # [B, N, A] one-hot previous actions while acting
        self._ids: np.ndarray  # [B, N, N] one-hot agent ids while acting
        self._action_eye = np.eye(n_actions, dtype=np.float32)  # row a: one-hot of action a
        self.init_hidden(1)

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
    # Acting takes and returns the environments' numpy arrays and builds the one-step inputs in
    # numpy: at B of 1 to 32 the per-call overhead of small torch ops, not arithmetic, is what
    # a step costs (benchmarks/throughput.py).
    @torch.inference_mode()
    def init_hidden(self, batch_size: int) -> None:
        """Start ``batch_size`` new episodes: zero hidden state, no previous action."""
        self.hidden = self.agent.initial_hidden(batch_size, self.device)  # [B, N, H]
        self.prev_onehot = np.zeros((batch_size, self.n_agents, self.n_actions), np.float32)
        self._ids = np.broadcast_to(
            np.eye(self.n_agents, dtype=np.float32), (batch_size, self.n_agents, self.n_agents)
        )  # [B, N, N]

    @torch.inference_mode()
    def reset_rows(self, mask: np.ndarray) -> None:
        """Start new episodes in the environments selected by ``mask [B]`` (bool)."""
        self.hidden[torch.from_numpy(mask).to(self.hidden.device)] = 0.0
        self.prev_onehot[mask] = 0.0

    def acting_inputs(self, obs: np.ndarray) -> np.ndarray:
        """One step's inputs ``[B, N, I]`` from ``obs [B, N, O]``, laid out as ``build_inputs``."""
        parts = [obs.astype(np.float32, copy=False)]
        if self.last_action:
            parts.append(self.prev_onehot)
        if self.agent_id:
            parts.append(self._ids)
        return np.concatenate(parts, axis=-1)

    @torch.inference_mode()
    def step_q(self, obs: np.ndarray) -> np.ndarray:
        """Q-values for one step ``obs [B, N, O] -> [B, N, A]``; advances the hidden state."""
        # the hidden state's device, not self.device: that walks the module tree every call
        inputs = torch.from_numpy(self.acting_inputs(obs)).to(self.hidden.device)  # [B, N, I]
        q, self.hidden = self.agent.step(inputs, self.hidden)  # [B, N, A], [B, N, H]
        return q.cpu().numpy()

    def select_actions(
        self,
        obs: np.ndarray,
        avail: np.ndarray,
        epsilon: float | None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Joint actions ``[B, N]`` for ``obs [B, N, O]`` and ``avail [B, N, A]``, by the
        selector (``epsilon`` ``None``: greedy)."""
        outputs = self.step_q(obs)  # [B, N, A]: Q-values or policy logits
        actions = self.selector.select(outputs, avail, epsilon, generator)  # [B, N]
        self.prev_onehot = self._action_eye[actions]  # [B, N, A]
        return actions

    def agent_weights(self) -> AgentWeights:
        """The online agent network's current weights and the input options, as numpy, for an
        environment that acts for the agents (:class:`qmix.envs.base.AgentActingVectorEnv`)."""
        cores = list(self.agent.cores)
        recurrent = self.agent.hidden_dim > 0

        def stack(name: str) -> np.ndarray:
            """``[C, ...]``: the parameter ``name`` of every core."""
            return np.stack([core.get_parameter(name).detach().cpu().numpy() for core in cores])

        names = {"fc1_w": "fc1.weight", "fc1_b": "fc1.bias"}
        if recurrent:
            names |= {
                "gru_w_ih": "rnn.weight_ih_l0",
                "gru_w_hh": "rnn.weight_hh_l0",
                "gru_b_ih": "rnn.bias_ih_l0",
                "gru_b_hh": "rnn.bias_hh_l0",
            }
        names |= {"fc2_w": "fc2.weight", "fc2_b": "fc2.bias"}
        arrays = {key: stack(name) for key, name in names.items()}
        return AgentWeights(arrays, recurrent, self.last_action, self.agent_id, self.selector.name)
