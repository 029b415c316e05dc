"""Mixers: combine agent Qs ``[B, T, N]`` into ``Q_tot [B, T]`` given the mixer input.

The public :meth:`Mixer.forward` validates shapes; subclasses implement ``_mix`` only.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

MixerInput = Literal["state", "obs_concat", "state_obs", "constant"]
"""What the mixer is conditioned on: the env state, the agents' observations side by side (the
alternative the user's notes ask about), both, or a constant (the control: mixing weights that
depend on nothing)."""

MIXER_INPUTS: tuple[MixerInput, ...] = ("state", "obs_concat", "state_obs", "constant")


def mixer_input_dim(kind: MixerInput, state_dim: int, n_agents: int, obs_dim: int) -> int:
    """``S'``: the width of :func:`mixer_inputs` (``S``, ``N * O``, ``S + N * O`` or 1)."""
    widths = {
        "state": state_dim,
        "obs_concat": n_agents * obs_dim,
        "state_obs": state_dim + n_agents * obs_dim,
        "constant": 1,
    }
    return widths[kind]


def mixer_inputs(kind: MixerInput, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """The mixer's conditioning input, the one rule for every caller.

    Args:
        kind: ``state``, ``obs_concat``, ``state_obs`` or ``constant``.
        obs: ``[..., N, O]`` agent observations.
        state: ``[..., S]`` env states (same leading axes).

    Returns:
        ``[..., S']``: ``state`` itself; the observations concatenated (``S' = N * O``); the
        state followed by them (``S + N * O``); or ones (``S' = 1``), the same for every input,
        so that the hypernetworks' outputs are plain learned parameters.
    """
    if kind == "state":
        return state
    if kind == "constant":
        return state.new_ones(*state.shape[:-1], 1)
    joint = obs.reshape(*obs.shape[:-2], obs.shape[-2] * obs.shape[-1])  # [..., N * O]
    return joint if kind == "obs_concat" else torch.cat([state, joint], dim=-1)


class Mixer(nn.Module):
    """Base mixer: ``forward(agent_qs [B, T, N], mixer_input [B, T, S']) -> q_tot [B, T]``.

    Args:
        n_agents: ``N``.
        input_dim: ``S'``, the size of the mixer input (state or concatenated observations).
    """

    def __init__(self, n_agents: int, input_dim: int) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.input_dim = input_dim

    def forward(self, agent_qs: torch.Tensor, mixer_input: torch.Tensor) -> torch.Tensor:
        """Mix, after checking that the shapes agree."""
        if agent_qs.dim() != 3 or agent_qs.shape[-1] != self.n_agents:
            raise ValueError(
                f"expected agent_qs [B, T, {self.n_agents}], got {list(agent_qs.shape)}"
            )
        expected = [*agent_qs.shape[:2], self.input_dim]
        if list(mixer_input.shape) != expected:
            raise ValueError(f"expected mixer_input {expected}, got {list(mixer_input.shape)}")
        return self._mix(agent_qs, mixer_input)

    def _mix(self, agent_qs: torch.Tensor, mixer_input: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class VDNMixer(Mixer):
    """VDN (Sunehag et al. 2018): ``Q_tot = sum_a Q_a``; ignores the mixer input."""

    def _mix(self, agent_qs: torch.Tensor, mixer_input: torch.Tensor) -> torch.Tensor:
        return agent_qs.sum(dim=-1)  # [B, T]


def _hypernet(input_dim: int, output_dim: int, layers: int, hidden_dim: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(input_dim, output_dim)
    return nn.Sequential(
        nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, output_dim)
    )


def elu_slope(pre: torch.Tensor) -> torch.Tensor:
    """ELU's derivative at ``pre`` (any shape): 1 above zero, ``exp(pre)`` below."""
    return torch.where(pre > 0, torch.ones_like(pre), torch.exp(pre.clamp(max=0.0)))


class QMixer(Mixer):
    """QMIX's monotonic mixer (Rashid et al. 2018, section 4.1).

    ``Q_tot = w2 . elu(W1^T q + b1) + V(s)`` with ``W1 = |hyper_w1(s)| [N, E]``,
    ``w2 = |hyper_w2(s)| [E]``, ``b1 = hyper_b1(s) [E]`` and ``V(s)`` from a two-layer ReLU
    hypernetwork. The absolute values make every mixing weight non-negative, so
    ``dQ_tot / dQ_a >= 0``; biases and ``V`` may depend on ``s`` any way they like.

    Args:
        n_agents: ``N``.
        input_dim: ``S'``.
        embed_dim: mixing width ``E``.
        hypernet_layers: 1 (linear, as the paper) or 2 (Linear-ReLU-Linear, as PyMARL's option).
        hypernet_embed_dim: hidden width of 2-layer weight hypernetworks.
    """

    def __init__(
        self,
        n_agents: int,
        input_dim: int,
        embed_dim: int = 32,
        hypernet_layers: int = 1,
        hypernet_embed_dim: int = 64,
    ) -> None:
        super().__init__(n_agents, input_dim)
        if hypernet_layers not in (1, 2):
            raise ValueError(f"hypernet_layers must be 1 or 2, got {hypernet_layers}")
        self.embed_dim = embed_dim
        self.hyper_w1 = _hypernet(
            input_dim, n_agents * embed_dim, hypernet_layers, hypernet_embed_dim
        )
        self.hyper_w2 = _hypernet(input_dim, embed_dim, hypernet_layers, hypernet_embed_dim)
        self.hyper_b1 = nn.Linear(input_dim, embed_dim)
        self.hyper_v = nn.Sequential(
            nn.Linear(input_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1)
        )

    def _mix(self, agent_qs: torch.Tensor, mixer_input: torch.Tensor) -> torch.Tensor:
        b, t, _ = agent_qs.shape
        _, pre, w2, v = self._layers(agent_qs, mixer_input)
        return ((F.elu(pre) * w2).sum(dim=-1) + v).view(b, t)  # [B, T]

    def _layers(
        self, agent_qs: torch.Tensor, mixer_input: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``W1 [B*T, N, E]``, the hidden pre-activations ``W1^T q + b1 [B*T, E]``, ``w2
        [B*T, E]`` and ``V [B*T]`` of ``agent_qs [B, T, N]`` and ``mixer_input [B, T, S']``."""
        # Per step a [1, N] x [N, E] and a [1, E] x [E, 1] product: broadcast multiply-and-sum
        # costs less than torch.bmm over batched tiny matrices on a CPU (update_cost.py).
        b, t, n = agent_qs.shape
        s = mixer_input.reshape(b * t, self.input_dim)  # [B*T, S']
        q = agent_qs.reshape(b * t, n, 1)  # [B*T, N, 1]
        w1 = self.hyper_w1(s).abs().view(-1, n, self.embed_dim)  # [B*T, N, E]
        pre = (q * w1).sum(dim=1) + self.hyper_b1(s)  # [B*T, E]
        w2 = self.hyper_w2(s).abs()  # [B*T, E]
        v = self.hyper_v(s).squeeze(-1)  # [B*T]
        return w1, pre, w2, v

    def gains(
        self, agent_qs: torch.Tensor, mixer_input: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """How much ``Q_tot`` moves with each agent's Q, and the hidden layer's pre-activations.

        ``dQ_tot / dQ_a = sum_e W1[a, e] w2[e] elu'(h_e)`` with ``elu'(h) = 1`` for ``h > 0``
        and ``exp(h)`` below: non-negative (the monotonicity), and near zero when every hidden
        unit sits far below zero, where ELU is flat. Then the TD error reaches no agent: the
        mixer fits ``Q_tot`` through ``b1`` and ``V`` alone, whatever the actions.

        Args:
            agent_qs: ``[B, T, N]`` the agents' Qs.
            mixer_input: ``[B, T, S']``.

        Returns:
            ``[B, T, N]`` the gains ``dQ_tot / dQ_a`` and ``[B, T, E]`` the pre-activations ``h``.
        """
        b, t, n = agent_qs.shape
        w1, pre, w2, _ = self._layers(agent_qs, mixer_input)
        gain = (w1 * (w2 * elu_slope(pre)).unsqueeze(1)).sum(dim=-1)  # [B*T, N]
        return gain.view(b, t, n), pre.view(b, t, self.embed_dim)


class CentralMixer(Mixer):
    """Weighted QMIX's unrestricted central ``Q*`` (Rashid et al. 2020; the ``ff`` central mixer
    of their code): ``Q* = f([s, q]) + V(s)``, ``f`` three ReLU layers of width ``E*`` and a
    linear output, ``V`` one ReLU layer and a linear output. Nothing constrains its weights, so
    ``Q*`` can be any function of the joint action's agent values and the state.

    Args:
        n_agents: ``N``.
        input_dim: ``S'``.
        embed_dim: ``E*`` (their code: 256).
    """

    def __init__(self, n_agents: int, input_dim: int, embed_dim: int = 256) -> None:
        super().__init__(n_agents, input_dim)
        self.net = nn.Sequential(
            nn.Linear(input_dim + n_agents, embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, 1),
        )
        self.value = nn.Sequential(
            nn.Linear(input_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1)
        )

    def _mix(self, agent_qs: torch.Tensor, mixer_input: torch.Tensor) -> torch.Tensor:
        joint = torch.cat([mixer_input, agent_qs], dim=-1)  # [B, T, S' + N]
        return (self.net(joint) + self.value(mixer_input)).squeeze(-1)  # [B, T]


class QTranJoint(nn.Module):
    """QTRAN-base's joint networks (Son et al. 2019, "qtran_paper" architecture of PyMARL):
    ``Q_jt(s, u) = Q([s, sum_a e(f_a, onehot(u_a))])`` and ``V_jt(s)``.

    ``e`` encodes each agent's features (the agent network's layer under its output) with its
    action, two layers of width ``F + A``; ``Q`` and ``V`` are two ReLU layers of width ``E``
    and a linear output. Nothing constrains them.

    Args:
        n_agents, n_actions, feature_dim: ``N``, ``A``, ``F``.
        input_dim: ``S'`` (the state, or the concatenated observations).
        embed_dim: ``E`` (PyMARL: 64).
    """

    def __init__(
        self, n_agents: int, n_actions: int, feature_dim: int, input_dim: int, embed_dim: int = 64
    ) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.input_dim = input_dim
        width = feature_dim + n_actions
        self.encode = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.q = nn.Sequential(
            nn.Linear(input_dim + width, embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, 1),
        )
        self.v = nn.Sequential(
            nn.Linear(input_dim, embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, embed_dim),
            nn.ReLU(),
            nn.Linear(embed_dim, 1),
        )

    def forward(
        self, features: torch.Tensor, actions: torch.Tensor, mixer_input: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``features [B, T, N, F]``, ``actions [B, T, N]`` (indices), ``mixer_input [B, T, S']``
        -> ``Q_jt [B, T]``, ``V_jt [B, T]``."""
        onehot = F.one_hot(actions, self.n_actions).to(features.dtype)  # [B, T, N, A]
        encoded = self.encode(torch.cat([features, onehot], dim=-1)).sum(dim=2)  # [B, T, F+A]
        q = self.q(torch.cat([mixer_input, encoded], dim=-1)).squeeze(-1)  # [B, T]
        return q, self.v(mixer_input).squeeze(-1)  # [B, T], [B, T]


class HeadsMLP(nn.Module):
    """``K`` separate three-layer ReLU networks evaluated together: ``[..., D] -> [..., K, O]``.

    The same functions as ``K`` ``nn.Sequential`` MLPs (and initialised as ``nn.Linear``), with
    one batched matrix product per layer instead of ``3 K`` calls.
    """

    def __init__(self, heads: int, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        dims = [(in_dim, hidden), (hidden, hidden), (hidden, out_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in dims:
            bound = 1.0 / fan_in**0.5
            self.weights.append(
                nn.Parameter(torch.empty(heads, fan_in, fan_out).uniform_(-bound, bound))
            )
            self.biases.append(nn.Parameter(torch.empty(heads, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        h = x.reshape(-1, 1, x.shape[-1])  # [M, 1, D]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.einsum("mkd,kde->mke", h.expand(-1, w.shape[0], -1) if i == 0 else h, w) + b
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h.reshape(*lead, *h.shape[1:])  # [..., K, O]


class QPLEXMixer(Mixer):
    """QPLEX's duplex dueling mixer (Wang et al. 2021; the authors' ``DMAQer`` with
    ``DMAQ_SI_Weight``, ``is_minus_one``, ``weighted_head``, ``is_stop_gradient``).

    Each agent's values are transformed by the state: ``Q_i = w_i(s) Q_a + v_i(s)`` with
    ``w_i > 0`` (the same map for the greedy value, so ``A_i = Q_i - V_i``). Then
    ``Q_tot = sum_i Q_i + sum_i (lambda_i(s, u) - 1) A_i``, the advantages held constant, with
    ``lambda_i > 0`` a sum over ``K`` heads of ``|key_k(s)| sigmoid(agent_k(s)) sigmoid(action_k(s,
    u))``. At the agents' greedy joint action every ``A_i`` is 0 and elsewhere none is positive,
    so the greedy joint action of ``Q_tot`` is the agents' (IGM) for any weights.

    Args:
        n_agents, n_actions: ``N``, ``A``.
        input_dim: ``S'``.
        hypernet_embed_dim: width of the ``w`` and ``v`` networks (theirs: 64).
        heads, head_embed_dim: ``K`` and the width of the attention networks (theirs: 10, 64).
    """

    def __init__(
        self,
        n_agents: int,
        n_actions: int,
        input_dim: int,
        hypernet_embed_dim: int = 64,
        heads: int = 10,
        head_embed_dim: int = 64,
    ) -> None:
        super().__init__(n_agents, input_dim)
        self.n_actions = n_actions
        e = hypernet_embed_dim
        self.hyper_w = nn.Sequential(nn.Linear(input_dim, e), nn.ReLU(), nn.Linear(e, n_agents))
        self.hyper_v = nn.Sequential(nn.Linear(input_dim, e), nn.ReLU(), nn.Linear(e, n_agents))
        self.keys = HeadsMLP(heads, input_dim, head_embed_dim, 1)
        self.agents = HeadsMLP(heads, input_dim, head_embed_dim, n_agents)
        self.actions = HeadsMLP(heads, input_dim + n_agents * n_actions, head_embed_dim, n_agents)

    def weights(self, mixer_input: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``lambda(s, u) [B, T, N]``, positive."""
        onehot = F.one_hot(actions, self.n_actions).to(mixer_input.dtype)  # [B, T, N, A]
        joint = torch.cat([mixer_input, onehot.flatten(start_dim=-2)], dim=-1)  # [B, T, S'+NA]
        key = self.keys(mixer_input).abs() + 1e-10  # [B, T, K, 1]
        heads = key * torch.sigmoid(self.agents(mixer_input)) * torch.sigmoid(self.actions(joint))
        return heads.sum(dim=-2)  # [B, T, N]

    def forward(
        self,
        agent_qs: torch.Tensor,
        mixer_input: torch.Tensor,
        actions: torch.Tensor | None = None,
        max_qs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``agent_qs [B, T, N]`` of ``actions [B, T, N]``, the agents' greedy values
        ``max_qs [B, T, N]``, ``mixer_input [B, T, S']`` -> ``Q_tot [B, T]``. Without
        ``actions`` the values are the greedy ones: ``Q_tot = V_tot = sum_i Q_i``."""
        w = self.hyper_w(mixer_input).abs() + 1e-10  # [B, T, N]
        v = self.hyper_v(mixer_input)  # [B, T, N]
        q_i = w * agent_qs + v  # [B, T, N]
        if actions is None or max_qs is None:
            return q_i.sum(dim=-1)
        advantage = (q_i - (w * max_qs + v)).detach()  # [B, T, N], <= 0
        lam = self.weights(mixer_input, actions)  # [B, T, N]
        return q_i.sum(dim=-1) + (advantage * (lam - 1.0)).sum(dim=-1)  # [B, T]


def build_mixer(
    kind: str,
    n_agents: int,
    input_dim: int,
    embed_dim: int = 32,
    hypernet_layers: int = 1,
    hypernet_embed_dim: int = 64,
) -> Mixer | None:
    """Mixer by name: ``qmix``, ``vdn``, or ``none`` (IQL: returns None)."""
    if kind == "qmix":
        return QMixer(n_agents, input_dim, embed_dim, hypernet_layers, hypernet_embed_dim)
    if kind == "vdn":
        return VDNMixer(n_agents, input_dim)
    if kind == "none":
        return None
    raise ValueError(f"unknown mixer {kind!r}: use qmix, vdn or none")
