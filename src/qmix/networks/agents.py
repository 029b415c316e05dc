"""Agent Q networks: recurrent (Linear-ReLU-GRU-Linear) and feed-forward (Linear-ReLU-Linear).

One interface for both: ``forward(inputs [B, T, N, I], hidden [B, N, H]) -> (q [B, T, N, A],
hidden [B, N, H])``. Training runs the whole time axis in one call (``nn.GRU`` over the
sequence); acting runs ``T = 1`` with the carried hidden state: the same code path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from qmix.networks.steps import on_valid_steps


class _RNNCore(nn.Module):
    """Linear -> ReLU -> GRU -> Linear over ``[B', T, I]``."""

    def __init__(self, input_dim: int, hidden_dim: int, n_actions: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x [B', T, I], h [B', H]
        out, h_last = self.body(x, h)  # [B', T, H], [B', H]
        return self.fc2(out), h_last  # [B', T, A], [B', H]

    def body(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The features under the output layer (the GRU's outputs): ``[B', T, H]``, ``[B', H]``."""
        z = torch.relu(self.fc1(x))  # [B', T, H]
        # A deep copy (the target network) leaves cuDNN's weights in separate chunks, which it
        # would compact at every call, with a warning (seen on an H200); a no-op on the CPU.
        self.rnn.flatten_parameters()
        out, h_last = self.rnn(z, h.unsqueeze(0).contiguous())  # [B', T, H], [1, B', H]
        return out, h_last.squeeze(0)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step without the time axis (acting): ``x [B', I]``, ``h [B', H]``.

        The same weights and equations as :meth:`forward`, through ``gru_cell`` instead of the
        sequence kernel, which costs about half as much for a single step on a CPU.
        """
        w_ih, w_hh, b_ih, b_hh = self.rnn.all_weights[0]
        z = torch.relu(self.fc1(x))  # [B', H]
        h = torch.gru_cell(z, h, w_ih, w_hh, b_ih, b_hh)
        return self.fc2(h), h  # [B', A], [B', H]


class _MLPCore(nn.Module):
    """Linear -> ReLU -> Linear over ``[B', T, I]``; carries an empty hidden state."""

    def __init__(self, input_dim: int, hidden_dim: int, n_actions: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x [B', T, I], h [B', 0]
        return self.fc2(torch.relu(self.fc1(x))), h  # [B', T, A], [B', 0]

    def body(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The features under the output layer: ``[B', T, H]``, and ``h`` unchanged."""
        return torch.relu(self.fc1(x)), h

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step without the time axis: ``x [B', I]`` -> ``[B', A]``."""
        return self.fc2(torch.relu(self.fc1(x))), h  # [B', A], [B', 0]


class AgentNetwork(nn.Module):
    """Per-agent Q networks, shared across agents or one per agent.

    Args:
        input_dim: agent input size ``I`` (observation + optional one-hots).
        n_actions: ``A``.
        n_agents: ``N``.
        hidden_dim: ``H``.
        recurrent: GRU agent (True) or feed-forward (False).
        share_params: one network for all agents (the agent id in the input tells them apart).
    """

    def __init__(
        self,
        input_dim: int,
        n_actions: int,
        n_agents: int,
        hidden_dim: int = 64,
        recurrent: bool = True,
        share_params: bool = True,
    ) -> None:
        super().__init__()
        core = _RNNCore if recurrent else _MLPCore
        self.n_agents = n_agents
        self.input_dim = input_dim
        self.recurrent = recurrent
        self.hidden_dim = hidden_dim if recurrent else 0
        self.share_params = share_params
        count = 1 if share_params else n_agents
        self.cores = nn.ModuleList(core(input_dim, hidden_dim, n_actions) for _ in range(count))

    def initial_hidden(self, batch_size: int, device: torch.device | None = None) -> torch.Tensor:
        """Zero hidden state ``[B, N, H]`` (``H = 0`` for feed-forward agents)."""
        return torch.zeros(batch_size, self.n_agents, self.hidden_dim, device=device)

    def forward(
        self, inputs: torch.Tensor, hidden: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Q-values for every step of ``inputs``.

        Args:
            inputs: ``[B, T, N, I]``.
            hidden: ``[B, N, H]`` state before step 0.
            valid: ``[B, T]`` bool, the real steps of a padded batch (learners): ``q`` is 0
                elsewhere, and a feed-forward agent computes the real steps only
                (:func:`~qmix.networks.steps.on_valid_steps`). A recurrent agent runs the whole
                sequence all the same: a packed GRU costs twice as much on a CPU
                (benchmarks/recorded/update_cost.md).

        Returns:
            ``q [B, T, N, A]`` and the hidden state after the last step ``[B, N, H]``.
        """
        b, t, n, i = inputs.shape
        if n != self.n_agents or i != self.input_dim:
            expected = f"[B, T, {self.n_agents}, {self.input_dim}]"
            raise ValueError(f"expected inputs {expected}, got {list(inputs.shape)}")
        if valid is not None:
            return self._on_valid(self.forward, inputs, hidden, valid)
        if self.share_params:
            x = inputs.permute(0, 2, 1, 3).reshape(b * n, t, i)  # [B*N, T, I]
            q, h = self.cores[0](x, hidden.reshape(b * n, -1))  # [B*N, T, A], [B*N, H]
            q = q.reshape(b, n, t, -1).permute(0, 2, 1, 3)  # [B, T, N, A]
            return q, h.reshape(b, n, -1)
        outs = [core(inputs[:, :, a], hidden[:, a]) for a, core in enumerate(self.cores)]
        q = torch.stack([o[0] for o in outs], dim=2)  # [B, T, N, A]
        return q, torch.stack([o[1] for o in outs], dim=1)  # [B, N, H]

    def features(
        self, inputs: torch.Tensor, hidden: torch.Tensor, valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What :meth:`forward` computes under the output layer, for learners that read the
        agents' features (QTRAN): ``inputs [B, T, N, I]``, ``hidden [B, N, H]`` ->
        ``features [B, T, N, F]`` (``F = H``: the GRU's outputs, or the hidden layer of a
        feed-forward agent) and the hidden state after the last step ``[B, N, H]``.
        ``forward`` equals :meth:`head` of these features (tested); ``valid`` as in
        :meth:`forward`."""
        if valid is not None:
            return self._on_valid(self.features, inputs, hidden, valid)
        b, t, n, i = inputs.shape
        cores = cast(list[_RNNCore | _MLPCore], list(self.cores))
        if self.share_params:
            x = inputs.permute(0, 2, 1, 3).reshape(b * n, t, i)  # [B*N, T, I]
            f, h = cores[0].body(x, hidden.reshape(b * n, -1))  # [B*N, T, F], [B*N, H]
            return f.reshape(b, n, t, -1).permute(0, 2, 1, 3), h.reshape(b, n, -1)
        outs = [core.body(inputs[:, :, a], hidden[:, a]) for a, core in enumerate(cores)]
        f = torch.stack([o[0] for o in outs], dim=2)  # [B, T, N, F]
        return f, torch.stack([o[1] for o in outs], dim=1)  # [B, N, H]

    def _on_valid(
        self,
        method: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        inputs: torch.Tensor,
        hidden: torch.Tensor,
        valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``method`` (forward or features) with zeros where ``valid [B, T]`` is false; only the
        real steps computed where the agent is feed-forward."""
        if self.recurrent:
            out, h = method(inputs, hidden)  # [B, T, N, X], [B, N, H]
            return out.masked_fill(~valid[..., None, None], 0.0), h

        def feed_forward(x: torch.Tensor) -> torch.Tensor:  # nothing is carried: H = 0
            return method(x, self.initial_hidden(x.shape[0], x.device))[0]

        return on_valid_steps(feed_forward, valid, inputs), hidden

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The output layer: ``features [B, T, N, F]`` -> ``q [B, T, N, A]``."""
        cores = cast(list[_RNNCore | _MLPCore], list(self.cores))
        if self.share_params:
            return cores[0].fc2(features)
        return torch.stack([core.fc2(features[:, :, a]) for a, core in enumerate(cores)], dim=2)

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One acting step: ``inputs [B, N, I]``, ``hidden [B, N, H]`` -> ``q [B, N, A]``, hidden.

        Equal to ``forward`` on a length-1 sequence (tested), with fewer kernel calls.
        """
        b, n, i = inputs.shape
        cores = cast(list[_RNNCore | _MLPCore], list(self.cores))
        if self.share_params:
            q, h = cores[0].step(inputs.reshape(b * n, i), hidden.reshape(b * n, -1))
            return q.reshape(b, n, -1), h.reshape(b, n, -1)  # [B, N, A], [B, N, H]
        outs = [core.step(inputs[:, a], hidden[:, a]) for a, core in enumerate(cores)]
        q = torch.stack([o[0] for o in outs], dim=1)  # [B, N, A]
        return q, torch.stack([o[1] for o in outs], dim=1)  # [B, N, H]


def build_agent(
    kind: str,
    input_dim: int,
    n_actions: int,
    n_agents: int,
    hidden_dim: int,
    share_params: bool,
) -> AgentNetwork:
    """Agent network by name: ``rnn`` or ``mlp``."""
    if kind not in ("rnn", "mlp"):
        raise ValueError(f"unknown agent {kind!r}: use rnn or mlp")
    return AgentNetwork(input_dim, n_actions, n_agents, hidden_dim, kind == "rnn", share_params)
