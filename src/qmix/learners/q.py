"""Q-learning for the QMIX family (learner ``q``): pure loss maths first, then :class:`QLearner`.

One learner serves QMIX, VDN and IQL; they differ only in the mixer (``qmix`` / ``vdn`` /
``None``). With no mixer (IQL) each agent gets its own TD target from the team reward.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import nn

from qmix.data.episode_batch import EpisodeBatch
from qmix.learners.maths import (
    check_finite,
    load_networks,
    make_optimiser,
    masked_mean,
    masked_td_loss,
    td_lambda_targets,
)
from qmix.networks.mixers import Mixer, MixerInput, QMixer, mixer_inputs
from qmix.networks.steps import on_valid_steps
from qmix.policy.controller import AgentController
from qmix.policy.exploration import LinearSchedule

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


# -- the learner -------------------------------------------------------------------------------


class QLearner:
    """TD learning of agents (and mixer) with target networks.

    Args:
        controller: owns the online agent network and builds agent inputs.
        mixer: ``QMixer``, ``VDNMixer``, or ``None`` for IQL.
        mixer_input: what the mixer is conditioned on (:data:`~qmix.networks.mixers.MixerInput`).
        gamma: discount.
        td_lambda: 0 for one-step TD.
        double_q: choose target actions with the online network.
        optimizer: ``rmsprop`` (PyMARL: alpha 0.99, eps 1e-5) or ``adam``.
        lr, optim_alpha, optim_eps: optimiser settings.
        grad_norm_clip: max global gradient norm.
        target_update: ``hard`` copies every ``target_update_interval_episodes`` episodes
            (:meth:`update_targets`), ``soft`` moves the targets by ``target_tau`` after
            every update.
        exploration: the epsilon-greedy schedule over environment steps.
    """

    on_policy = False  # learns from a replay buffer

    def __init__(
        self,
        controller: AgentController,
        mixer: Mixer | None,
        *,
        mixer_input: MixerInput = "state",
        gamma: float = 0.99,
        td_lambda: float = 0.0,
        double_q: bool = True,
        optimizer: Literal["rmsprop", "adam"] = "rmsprop",
        lr: float = 5e-4,
        optim_alpha: float = 0.99,
        optim_eps: float = 1e-5,
        grad_norm_clip: float = 10.0,
        target_update: Literal["hard", "soft"] = "hard",
        target_update_interval_episodes: int = 200,
        target_tau: float = 0.005,
        exploration: LinearSchedule | None = None,
    ) -> None:
        self.controller = controller
        self.agent = controller.agent
        self.mixer = mixer
        self.mixer_input = mixer_input
        self.gamma = gamma
        self.td_lambda = td_lambda
        self.double_q = double_q
        self.grad_norm_clip = grad_norm_clip
        self.target_update = target_update
        self.target_update_interval_episodes = target_update_interval_episodes
        self.target_tau = target_tau
        self.schedule = exploration or LinearSchedule(1.0, 0.05, 50_000)
        self.target_agent = copy.deepcopy(self.agent).requires_grad_(False)
        self.target_mixer = None if mixer is None else copy.deepcopy(mixer).requires_grad_(False)
        # (name, online, target) of every network with a target copy; one optimiser for all
        self.networks: list[tuple[str, nn.Module, nn.Module]] = [
            ("agent", self.agent, self.target_agent)
        ]
        if mixer is not None and self.target_mixer is not None:
            self.networks.append(("mixer", mixer, self.target_mixer))
        self._optimiser_settings = (optimizer, lr, optim_alpha, optim_eps)
        self.params: list[nn.Parameter] = []
        self.optimiser = self._make_optimiser()

    def _make_optimiser(self) -> torch.optim.Optimizer:
        """One optimiser over every online network of :attr:`networks`."""
        self.params = [p for _, online, _ in self.networks for p in online.parameters()]
        return make_optimiser(self.params, *self._optimiser_settings)

    def add_network(self, name: str, online: nn.Module) -> nn.Module:
        """Train ``online`` with the others (same loss, same optimiser) and give it a target
        copy, returned (a variant's extra networks: Weighted QMIX's central Q)."""
        target = copy.deepcopy(online).requires_grad_(False)
        self.networks.append((name, online, target))
        self.optimiser = self._make_optimiser()
        return target

    def scale_learning_rates(self, scale: float) -> None:
        """The optimiser's learning rate: ``scale`` times ``lr``."""
        for group in self.optimiser.param_groups:
            group["lr"] = self._optimiser_settings[1] * scale

    def exploration(self, env_steps: int) -> float:
        """Epsilon of the epsilon-greedy agents after ``env_steps`` environment steps."""
        return self.schedule.value(env_steps)

    def modules(self) -> dict[str, nn.Module]:
        """Every network the learner owns, by name (for checkpoints)."""
        out: dict[str, nn.Module] = {}
        for name, online, target in self.networks:
            out[name] = online
            out[f"target_{name}"] = target
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
        load_networks(self.modules(), state["networks"])
        if not weights_only:
            self.optimiser.load_state_dict(state["optimiser"])

    def loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """TD loss of a batch and tensors for diagnostics."""
        mask = batch.transition_mask()  # [B, T]
        slots, steps = batch.slot_mask(), batch.filled  # [B, T+1], [B, T]: real, not padding
        inputs = self.controller.sequence_inputs(batch.obs, batch.actions)  # [B, T+1, N, I]
        h0 = self.agent.initial_hidden(batch.batch_size, inputs.device)  # [B, N, H]
        q, _ = self.agent(inputs, h0, slots)  # [B, T+1, N, A]
        with torch.no_grad():
            target_q, _ = self.target_agent(inputs, h0, slots)  # [B, T+1, N, A]
            next_values = greedy_target_values(
                target_q[:, 1:],
                batch.avail_actions[:, 1:],
                q[:, 1:].detach() if self.double_q else None,
            )  # [B, T, N]
        chosen = chosen_action_values(q[:, :-1], batch.actions)  # [B, T, N]
        if self.mixer is not None and self.target_mixer is not None:
            mix_in = mixer_inputs(self.mixer_input, batch.obs, batch.state)  # [B, T+1, S']
            chosen = on_valid_steps(self.mixer, steps, chosen, mix_in[:, :-1])  # [B, T]
            with torch.no_grad():  # slot t + 1 is real where transition t is
                next_values = on_valid_steps(self.target_mixer, steps, next_values, mix_in[:, 1:])
        targets = td_lambda_targets(
            batch.reward, batch.terminated, mask, next_values, self.gamma, self.td_lambda
        )  # [B, T] (or [B, T, N] for IQL)
        loss = masked_td_loss(chosen, targets, mask)
        return loss, {"chosen": chosen.detach(), "targets": targets, "mask": mask}

    def train(self, batch: EpisodeBatch) -> dict[str, float]:
        """One gradient step on ``batch`` (then soft targets move, if soft).

        Returns:
            ``loss``, ``grad_norm``, ``q_taken_mean`` and ``target_mean`` of the update.

        Raises:
            DivergenceError: the loss, the gradient norm or the chosen Q values are not
                finite; raised before the optimiser steps, so no NaN step is applied.
        """
        loss, parts = self.loss(batch)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_norm_clip)
        mask = parts["mask"]
        stats = {
            "loss": float(loss.detach()),
            "grad_norm": float(grad_norm),
            # non-finite wherever any chosen value is, padding included (0 * nan is nan)
            "q_taken_mean": masked_mean(parts["chosen"], mask),
            "target_mean": masked_mean(parts["targets"], mask),
            **{name: float(value) for name, value in parts.items() if value.dim() == 0},
        }
        # Check before stepping: a NaN gradient would turn every weight into NaN at once, and
        # a checkpoint saved after it could never be resumed from (issue 13).
        check_finite(
            {
                "loss": stats["loss"],
                "gradient norm": stats["grad_norm"],
                "mean Q": stats["q_taken_mean"],
            }
        )
        self.optimiser.step()
        if self.target_update == "soft":
            self.soft_update_targets(self.target_tau)
        return stats

    @torch.no_grad()
    def diagnostics(self, batch: EpisodeBatch) -> dict[str, float]:
        """``mixer_gain`` for a QMIX mixer (QMIX, OW- and CW-QMIX): the mean ``dQ_tot / dQ_a``
        of the current networks over ``batch``'s real transitions and its agents
        (:meth:`~qmix.networks.mixers.QMixer.gains`). Near 0, the mixer's hidden layer is shut
        and the TD error no longer reaches the agents (docs/mixer_input.md, MPE). ``{}`` for
        other mixers."""
        if not isinstance(self.mixer, QMixer):
            return {}
        _, gain, _ = self.mixer_gains(batch)
        return {"mixer_gain": masked_mean(gain, batch.transition_mask())}

    @torch.no_grad()
    def mixer_gains(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The agents' Qs of the taken actions ``[B, T, N]`` and, through the QMIX mixer, their
        gains ``[B, T, N]`` and the hidden pre-activations ``[B, T, E]`` (padding included)."""
        assert isinstance(self.mixer, QMixer)
        inputs = self.controller.sequence_inputs(batch.obs, batch.actions)  # [B, T+1, N, I]
        h0 = self.agent.initial_hidden(batch.batch_size, inputs.device)  # [B, N, H]
        q, _ = self.agent(inputs, h0, batch.slot_mask())  # [B, T+1, N, A]
        chosen = chosen_action_values(q[:, :-1], batch.actions)  # [B, T, N]
        mix_in = mixer_inputs(self.mixer_input, batch.obs, batch.state)[:, :-1]  # [B, T, S']
        gain, pre = self.mixer.gains(chosen, mix_in)  # [B, T, N], [B, T, E]
        return chosen, gain, pre

    def update_targets(self, episodes: int, last_update: int) -> bool:
        """Hard copies every ``target_update_interval_episodes`` episodes: copy now if due,
        ``episodes`` having been played and the last copy made at ``last_update``."""
        due = episodes - last_update >= self.target_update_interval_episodes
        if self.target_update == "hard" and due:
            self.hard_update_targets()
            return True
        return False

    def hard_update_targets(self) -> None:
        """Copy the online networks into the target networks."""
        for _, online, target in self.networks:
            target.load_state_dict(online.state_dict())

    @torch.no_grad()
    def soft_update_targets(self, tau: float) -> None:
        """Polyak averaging: ``target <- (1 - tau) target + tau online`` (one fused call over
        every parameter, as a per-tensor ``lerp_``)."""
        targets: list[torch.Tensor] = [p for _, _, t in self.networks for p in t.parameters()]
        onlines: list[torch.Tensor] = [p for _, o, _ in self.networks for p in o.parameters()]
        torch._foreach_lerp_(targets, onlines, tau)
