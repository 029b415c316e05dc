"""Q-learning for the QMIX family: pure loss maths first, then :class:`QLearner`.

One learner serves QMIX, VDN and IQL; they differ only in the mixer (``qmix`` / ``vdn`` /
``None``). With no mixer (IQL) each agent gets its own TD target from the team reward.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from qmix.data.episode_batch import EpisodeBatch
from qmix.networks.mixers import Mixer, mixer_inputs
from qmix.policy.controller import AgentController

# -- pure maths --------------------------------------------------------------------------------


def chosen_action_values(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``Q_a(tau, u_a)`` of the taken actions.

    Args:
        q: ``[B, T, N, A]`` agent values.
        actions: ``[B, T, N]`` taken actions.

    Returns:
        ``[B, T, N]``.
    """
    return q.gather(dim=-1, index=actions.unsqueeze(-1)).squeeze(-1)


def greedy_target_values(
    target_q: torch.Tensor,
    avail: torch.Tensor,
    online_q: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-agent bootstrap values ``max_u Q_a(tau', u)`` over available actions.

    Args:
        target_q: ``[B, T, N, A]`` target-network values at the next slots.
        avail: ``[B, T, N, A]`` bool masks at the next slots.
        online_q: ``[B, T, N, A]`` online-network values; when given (double Q, van Hasselt
            et al. 2016) the action is chosen by the online network and valued by the target.

    Returns:
        ``[B, T, N]``; 0 where no action is available (padding slots), so it never turns into
        ``-inf`` or NaN downstream.
    """
    chooser = target_q if online_q is None else online_q
    best = chooser.masked_fill(~avail, float("-inf")).argmax(dim=-1)  # [B, T, N]
    values = target_q.gather(-1, best.unsqueeze(-1)).squeeze(-1)  # [B, T, N]
    return torch.where(avail.any(dim=-1), values, torch.zeros_like(values))


def td_lambda_targets(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    mask: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
    td_lambda: float,
) -> torch.Tensor:
    """TD(lambda) returns; ``td_lambda = 0`` is one-step TD.

    ``G_t = r_t + gamma (1 - term_t) [(1 - lambda) V_{t+1} + lambda G_{t+1}]``, where
    ``G_{t+1}`` is replaced by ``V_{t+1}`` when transition ``t+1`` is not real (the episode
    was truncated after ``t``, or the batch ends): a truncated episode bootstraps from its
    last observation, a terminated one does not bootstrap at all.

    Args:
        reward: ``[B, T]`` team rewards.
        terminated: ``[B, T]`` bool.
        mask: ``[B, T]`` float, 1 for real transitions.
        next_values: ``[B, T, ...]`` value of slot ``t + 1`` (target ``Q_tot``; per agent
            for IQL).
        gamma: discount.
        td_lambda: lambda in [0, 1].

    Returns:
        ``[B, T, ...]`` targets (only meaningful where ``mask`` is 1).
    """
    extra = next_values.dim() - reward.dim()
    shape = (*reward.shape, *([1] * extra))
    r = reward.reshape(shape)  # [B, T, 1...]
    cont = (1.0 - terminated.float()).reshape(shape)  # [B, T, 1...]
    real = mask.reshape(shape)  # [B, T, 1...]
    next_real = torch.cat([real[:, 1:], torch.zeros_like(real[:, :1])], dim=1)  # [B, T, 1...]
    # The recursion is linear, G_t = a_t + b_t G_{t+1}, so G_t = sum_{k>=t} W[t, k] a_k with
    # W[t, k] = b_t ... b_{k-1}: a few batched tensor ops instead of a Python loop over T.
    v = next_values
    a = r + gamma * cont * v * (1.0 - td_lambda * next_real)  # [B, T, ...]
    b = (gamma * td_lambda) * cont * next_real  # [B, T, 1...]
    b = b.expand_as(a)
    a_last, b_last = a.movedim(1, -1), b.movedim(1, -1)  # [B, ..., T]
    horizon = a_last.shape[-1]
    upper = torch.ones(horizon, horizon, dtype=torch.bool, device=a.device).triu()  # k >= t
    factors = torch.where(upper, b_last.unsqueeze(-2), torch.ones_like(b_last).unsqueeze(-2))
    running = factors.cumprod(dim=-1)  # [B, ..., T, T]: b_t ... b_j for j >= t
    weights = torch.cat([torch.ones_like(running[..., :1]), running[..., :-1]], dim=-1)
    weights = weights * upper  # [B, ..., T(t), T(k)]
    targets = (weights @ a_last.unsqueeze(-1)).squeeze(-1)  # [B, ..., T]
    return targets.movedim(-1, 1)


def masked_td_loss(chosen: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error over real transitions only.

    Args:
        chosen: ``[B, T]`` (or ``[B, T, N]`` for IQL) values of the taken actions.
        targets: same shape; treated as constants.
        mask: ``[B, T]`` float.

    Returns:
        scalar; padding never contributes, whatever its values.
    """
    extra = chosen.dim() - mask.dim()
    m = mask.reshape(*mask.shape, *([1] * extra)).expand_as(chosen)
    error = torch.where(m > 0, chosen - targets.detach(), torch.zeros_like(chosen))
    return (error**2).sum() / m.sum().clamp(min=1.0)


# -- the learner -------------------------------------------------------------------------------


class DivergenceError(RuntimeError):
    """An update's loss, gradient norm or chosen Q values are not finite (issue 13).

    Raised before the optimiser steps, so the weights are those before the failed update;
    the message is one line, e.g. ``loss is nan (gradient norm inf, mean Q nan)``.
    """


def _divergence_message(loss: float, grad_norm: float, q_mean: float) -> str:
    """``"loss is nan (gradient norm inf, mean Q nan)"``: the first non-finite value, then
    the others."""
    values = {"loss": loss, "gradient norm": grad_norm, "mean Q": q_mean}
    first = next(name for name, value in values.items() if not math.isfinite(value))
    others = ", ".join(f"{name} {value:.4g}" for name, value in values.items() if name != first)
    return f"{first} is {values[first]:.4g} ({others})"


@dataclass(frozen=True)
class LearnerStats:
    """Diagnostics of one update."""

    loss: float
    grad_norm: float
    q_taken_mean: float
    target_mean: float


class QLearner:
    """TD learning of agents (and mixer) with target networks.

    Args:
        controller: owns the online agent network and builds agent inputs.
        mixer: ``QMixer``, ``VDNMixer``, or ``None`` for IQL.
        mixer_input: ``state`` or ``obs_concat``.
        gamma: discount.
        td_lambda: 0 for one-step TD.
        double_q: choose target actions with the online network.
        optimizer: ``rmsprop`` (PyMARL: alpha 0.99, eps 1e-5) or ``adam``.
        lr, optim_alpha, optim_eps: optimiser settings.
        grad_norm_clip: max global gradient norm.
    """

    def __init__(
        self,
        controller: AgentController,
        mixer: Mixer | None,
        *,
        mixer_input: Literal["state", "obs_concat"] = "state",
        gamma: float = 0.99,
        td_lambda: float = 0.0,
        double_q: bool = True,
        optimizer: Literal["rmsprop", "adam"] = "rmsprop",
        lr: float = 5e-4,
        optim_alpha: float = 0.99,
        optim_eps: float = 1e-5,
        grad_norm_clip: float = 10.0,
    ) -> None:
        self.controller = controller
        self.agent = controller.agent
        self.mixer = mixer
        self.mixer_input = mixer_input
        self.gamma = gamma
        self.td_lambda = td_lambda
        self.double_q = double_q
        self.grad_norm_clip = grad_norm_clip
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
        self.target_mixer = None if mixer is None else copy.deepcopy(mixer).requires_grad_(False)
        self.params = [*self.agent.parameters(), *(mixer.parameters() if mixer else [])]
        self.optimiser: torch.optim.Optimizer
        if optimizer == "rmsprop":
            self.optimiser = torch.optim.RMSprop(
                self.params, lr=lr, alpha=optim_alpha, eps=optim_eps
            )
        elif optimizer == "adam":
            self.optimiser = torch.optim.Adam(self.params, lr=lr, eps=optim_eps)
        else:
            raise ValueError(f"unknown optimizer {optimizer!r}: use rmsprop or adam")

    def modules(self) -> dict[str, nn.Module]:
        """Every network the learner owns, by name (for checkpoints)."""
        out: dict[str, nn.Module] = {"agent": self.agent, "target_agent": self.target_agent}
        if self.mixer is not None and self.target_mixer is not None:
            out["mixer"] = self.mixer
            out["target_mixer"] = self.target_mixer
        return out

    def state_dict(self) -> dict[str, Any]:
        """Weights of every network and the optimiser's state (for checkpoints)."""
        nets = {name: module.state_dict() for name, module in self.modules().items()}
        return {"networks": nets, "optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, state: dict[str, Any], weights_only: bool = False) -> None:
        """Restore from :meth:`state_dict`; ``weights_only`` skips the optimiser.

        Raises:
            ValueError: the saved networks do not match these (another task or config).
        """
        nets = state["networks"]
        modules = self.modules()
        if set(nets) != set(modules):
            raise ValueError(f"saved networks {sorted(nets)} do not match {sorted(modules)}")
        for name, module in modules.items():
            try:
                module.load_state_dict(nets[name])
            except RuntimeError as err:
                first = str(err).strip().splitlines()[0]
                raise ValueError(f"saved {name} does not fit this config: {first}") from err
        if not weights_only:
            self.optimiser.load_state_dict(state["optimiser"])

    def loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """TD loss of a batch and tensors for diagnostics."""
        mask = batch.transition_mask()  # [B, T]
        inputs = self.controller.sequence_inputs(batch.obs, batch.actions)  # [B, T+1, N, I]
        h0 = self.agent.initial_hidden(batch.batch_size, inputs.device)  # [B, N, H]
        q, _ = self.agent(inputs, h0)  # [B, T+1, N, A]
        with torch.no_grad():
            target_q, _ = self.target_agent(inputs, h0)  # [B, T+1, N, A]
            next_values = greedy_target_values(
                target_q[:, 1:],
                batch.avail_actions[:, 1:],
                q[:, 1:].detach() if self.double_q else None,
            )  # [B, T, N]
        chosen = chosen_action_values(q[:, :-1], batch.actions)  # [B, T, N]
        if self.mixer is not None and self.target_mixer is not None:
            mix_in = mixer_inputs(self.mixer_input, batch.obs, batch.state)  # [B, T+1, S']
            chosen = self.mixer(chosen, mix_in[:, :-1])  # [B, T]
            with torch.no_grad():
                next_values = self.target_mixer(next_values, mix_in[:, 1:])  # [B, T]
        targets = td_lambda_targets(
            batch.reward, batch.terminated, mask, next_values, self.gamma, self.td_lambda
        )  # [B, T] (or [B, T, N] for IQL)
        loss = masked_td_loss(chosen, targets, mask)
        return loss, {"chosen": chosen.detach(), "targets": targets, "mask": mask}

    def train(self, batch: EpisodeBatch) -> LearnerStats:
        """One gradient step on ``batch``.

        Raises:
            DivergenceError: the loss, the gradient norm or the chosen Q values are not
                finite; raised before the optimiser steps, so no NaN step is applied.
        """
        loss, parts = self.loss(batch)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_norm_clip)
        mask = parts["mask"]
        denom = mask.sum().clamp(min=1.0)

        def masked_mean(x: torch.Tensor) -> float:
            x = x.mean(dim=-1) if x.dim() == 3 else x  # IQL: average over agents
            return float((x * mask).sum() / denom)

        stats = LearnerStats(
            loss=float(loss.detach()),
            grad_norm=float(grad_norm),
            # non-finite wherever any chosen value is, padding included (0 * nan is nan)
            q_taken_mean=masked_mean(parts["chosen"]),
            target_mean=masked_mean(parts["targets"]),
        )
        # Check before stepping: a NaN gradient would turn every weight into NaN at once, and
        # a checkpoint saved after it could never be resumed from (issue 13).
        if not (
            math.isfinite(stats.loss)
            and math.isfinite(stats.grad_norm)
            and math.isfinite(stats.q_taken_mean)
        ):
            raise DivergenceError(
                _divergence_message(stats.loss, stats.grad_norm, stats.q_taken_mean)
            )
        self.optimiser.step()
        return stats

    def hard_update_targets(self) -> None:
        """Copy the online networks into the target networks."""
        self.target_agent.load_state_dict(self.agent.state_dict())
        if self.mixer is not None and self.target_mixer is not None:
            self.target_mixer.load_state_dict(self.mixer.state_dict())

    @torch.no_grad()
    def soft_update_targets(self, tau: float) -> None:
        """Polyak averaging: ``target <- (1 - tau) target + tau online``."""
        pairs: list[tuple[nn.Module, nn.Module]] = [(self.target_agent, self.agent)]
        if self.mixer is not None and self.target_mixer is not None:
            pairs.append((self.target_mixer, self.mixer))
        for target, online in pairs:
            for t_param, param in zip(target.parameters(), online.parameters(), strict=True):
                t_param.lerp_(param, tau)
