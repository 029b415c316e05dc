"""COMA (Foerster et al. 2018), learner ``coma``: pure maths first, then :class:`COMALearner`.

Recurrent actors with shared parameters act on their own observation histories, sampling the
masked softmax of their logits with an epsilon floor (:func:`qmix.policy.selectors.policy_probs`).
A centralised critic (:class:`qmix.networks.critics.COMACritic`) gives, for each agent,
``Q(s, (u^{-a}, u))`` for every action ``u`` of that agent. The actor's advantage is the
counterfactual one: the taken action's value minus the policy-weighted value of the agent's
own actions, the others' held fixed. On-policy: each update uses the episodes just played,
once. The steps follow PyMARL's ``coma_learner``: the critic is trained first, one update per
time step from the last step to the first, towards TD(lambda) targets of a target critic;
then the actors take one step on the advantages the critic gave during its pass.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from qmix.data.episode_batch import EpisodeBatch
from qmix.learners.maths import (
    check_finite,
    load_networks,
    make_optimiser,
    masked_mean,
    td_lambda_targets,
)
from qmix.networks.critics import COMACritic, critic_inputs
from qmix.policy.controller import AgentController
from qmix.policy.exploration import LinearSchedule
from qmix.policy.selectors import policy_probs, sample_actions

# -- pure maths --------------------------------------------------------------------------------


def counterfactual_advantages(
    q: torch.Tensor, pi: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """COMA's advantage ``A_a = Q(s, u) - sum_u' pi_a(u') Q(s, (u^{-a}, u'))``.

    Args:
        q: ``[..., A]`` critic values of each of the agent's actions, the others' fixed.
        pi: ``[..., A]`` the agent's policy (0 on unavailable actions).
        actions: ``[...]`` the taken actions.

    Returns:
        ``[...]``.
    """
    taken = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    baseline = (pi * q).sum(dim=-1)
    return taken - baseline


def bootstrap_actions(
    actions: torch.Tensor, pi: torch.Tensor, filled: torch.Tensor
) -> torch.Tensor:
    """The joint action at every slot, ``[B, T+1, N]``: the taken ones, and a sample of the
    policy at the slot after each episode's last transition (PyMARL selects an action in the
    last stored state too), so a truncated episode's target values its last observation as
    the critic values any other. Slots past that are padding (action 0).

    Args:
        actions: ``[B, T, N]`` taken actions.
        pi: ``[B, T+1, N, A]`` policies at every slot.
        filled: ``[B, T]`` bool, real transitions.

    Uses the global torch RNG (saved in checkpoints), on the CPU.
    """
    b = actions.shape[0]
    lengths = filled.sum(dim=1)  # [B]
    rows = torch.arange(b, device=actions.device)
    last_pi = pi[rows, lengths].detach().cpu()  # [B, N, A]
    sampled = sample_actions(last_pi).to(actions.device)  # [B, N]
    out = torch.cat([actions, torch.zeros_like(actions[:, :1])], dim=1)  # [B, T+1, N]
    out[rows, lengths] = sampled
    return out


# -- the learner -------------------------------------------------------------------------------


class COMALearner:
    """Counterfactual multi-agent policy gradients.

    Args:
        controller: owns the actor network (logits out) and acts with
            :class:`~qmix.policy.selectors.SoftmaxPolicy`.
        critic: the centralised critic.
        gamma: discount.
        td_lambda: lambda of the critic's TD(lambda) targets (PyMARL: 0.8).
        optimizer, lr, critic_lr, optim_alpha, optim_eps: one optimiser for the actors (``lr``)
            and one for the critic (``critic_lr``), of the same kind.
        grad_norm_clip: max global gradient norm of each update.
        target_update_interval: critic updates between copies into the target critic.
        exploration: the schedule of the policy's epsilon floor over environment steps.
    """

    on_policy = True  # learns from the episodes just played, once

    def __init__(
        self,
        controller: AgentController,
        critic: COMACritic,
        *,
        gamma: float = 0.99,
        td_lambda: float = 0.8,
        optimizer: str = "rmsprop",
        lr: float = 5e-4,
        critic_lr: float = 5e-4,
        optim_alpha: float = 0.99,
        optim_eps: float = 1e-5,
        grad_norm_clip: float = 10.0,
        target_update_interval: int = 200,
        exploration: LinearSchedule | None = None,
    ) -> None:
        self.controller = controller
        self.agent = controller.agent
        self.critic = critic
        self.target_critic = copy.deepcopy(critic).requires_grad_(False)
        self.gamma = gamma
        self.td_lambda = td_lambda
        self.grad_norm_clip = grad_norm_clip
        self.target_update_interval = target_update_interval
        self.schedule = exploration or LinearSchedule(0.5, 0.01, 100_000)
        self.epsilon = self.schedule.value(0)  # the floor of the policy that collected
        self.agent_params = list(self.agent.parameters())
        self.critic_params = list(critic.parameters())
        self.agent_optimiser = make_optimiser(
            self.agent_params, optimizer, lr, optim_alpha, optim_eps
        )
        self.critic_optimiser = make_optimiser(
            self.critic_params, optimizer, critic_lr, optim_alpha, optim_eps
        )
        self.learning_rates = (lr, critic_lr)
        self.critic_updates = 0
        self.last_target_update = 0  # critic update of the last copy into the target

    def diagnostics(self, batch: EpisodeBatch) -> dict[str, float]:
        """None beyond :meth:`train`'s (COMA has no mixer)."""
        return {}

    def scale_learning_rates(self, scale: float) -> None:
        """The actors' and the critic's learning rates: ``scale`` times ``lr``, ``critic_lr``."""
        for optimiser, lr in zip(
            (self.agent_optimiser, self.critic_optimiser), self.learning_rates, strict=True
        ):
            for group in optimiser.param_groups:
                group["lr"] = lr * scale

    def exploration(self, env_steps: int) -> float:
        """The policy's epsilon floor after ``env_steps`` steps; the next :meth:`train`
        differentiates the policy with this floor, the one its episodes were played with."""
        self.epsilon = self.schedule.value(env_steps)
        return self.epsilon

    def update_targets(self, episodes: int, last_update: int) -> bool:
        """Never by episodes: the target critic is copied every ``target_update_interval``
        critic updates, counted in :meth:`train` (PyMARL counts them the same way)."""
        return False

    # -- checkpoints ---------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """Every network the learner owns, by name (for checkpoints)."""
        return {"agent": self.agent, "critic": self.critic, "target_critic": self.target_critic}

    def state_dict(self) -> dict[str, Any]:
        """Weights, both optimisers' states and the critic-update counters."""
        return {
            "networks": {name: module.state_dict() for name, module in self.modules().items()},
            "optimiser": {
                "agent": self.agent_optimiser.state_dict(),
                "critic": self.critic_optimiser.state_dict(),
            },
            "counters": {
                "critic_updates": self.critic_updates,
                "last_target_update": self.last_target_update,
            },
        }

    def load_state_dict(self, state: dict[str, Any], weights_only: bool = False) -> None:
        """Restore from :meth:`state_dict`; ``weights_only`` skips optimisers and counters.

        Raises:
            ValueError: the saved networks do not match these (another algorithm or config).
        """
        load_networks(self.modules(), state["networks"])
        if not weights_only:
            self.agent_optimiser.load_state_dict(state["optimiser"]["agent"])
            self.critic_optimiser.load_state_dict(state["optimiser"]["critic"])
            self.critic_updates = int(state["counters"]["critic_updates"])
            self.last_target_update = int(state["counters"]["last_target_update"])

    # -- learning ------------------------------------------------------------------------------
    def train(self, batch: EpisodeBatch) -> dict[str, float]:
        """Critic pass (one update per time step, last to first), then one actor update.

        Args:
            batch: the episodes just played with the current policy (never reused).

        Returns:
            ``loss`` (the actor's), ``grad_norm`` (the actor's), ``critic_loss``,
            ``critic_grad_norm``, ``q_taken_mean``, ``target_mean`` (means over the critic's
            updates), ``advantage_mean`` and ``pi_max`` (mean probability of the likeliest
            action).

        Raises:
            DivergenceError: a loss, gradient norm or value is not finite; raised before the
                optimiser steps that would apply it.
        """
        mask = batch.transition_mask()  # [B, T]
        inputs = self.controller.sequence_inputs(batch.obs, batch.actions)  # [B, T+1, N, I]
        h0 = self.agent.initial_hidden(batch.batch_size, inputs.device)  # [B, N, H]
        logits, _ = self.agent(inputs, h0)  # [B, T+1, N, A]
        pi = policy_probs(logits, batch.avail_actions, self.epsilon)  # [B, T+1, N, A]
        slot_actions = bootstrap_actions(batch.actions, pi, batch.filled)  # [B, T+1, N]
        n_actions = logits.shape[-1]
        crit_in = critic_inputs(batch.state, batch.obs, slot_actions, n_actions)  # [B,T+1,N,I_c]
        with torch.no_grad():
            target_q = self.target_critic(crit_in)  # [B, T+1, N, A]
            target_taken = target_q.gather(-1, slot_actions.unsqueeze(-1)).squeeze(-1)
            targets = td_lambda_targets(
                batch.reward,
                batch.terminated,
                mask,
                target_taken[:, 1:],
                self.gamma,
                self.td_lambda,
            )  # [B, T, N]
        q, critic_stats = self._train_critic(crit_in[:, :-1], batch.actions, targets, mask)

        # ---- actors: the counterfactual advantage of each taken action -----------------------
        pi_t = pi[:, :-1]  # [B, T, N, A]
        advantage = counterfactual_advantages(q, pi_t.detach(), batch.actions)  # [B, T, N]
        pi_taken = pi_t.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)  # [B, T, N]
        real = mask.unsqueeze(-1).expand_as(pi_taken) > 0  # [B, T, N]
        log_pi = torch.log(torch.where(real, pi_taken, torch.ones_like(pi_taken)))
        weights = torch.where(real, advantage.detach(), torch.zeros_like(advantage))
        loss = -(weights * log_pi).sum() / real.sum().clamp(min=1)
        self.agent_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.agent_params, self.grad_norm_clip)
        stats = {
            "loss": float(loss.detach()),
            "grad_norm": float(grad_norm),
            **critic_stats,
            "advantage_mean": masked_mean(advantage, mask),
            "pi_max": masked_mean(pi_t.detach().max(dim=-1).values, mask),
        }
        check_finite({"loss": stats["loss"], "gradient norm": stats["grad_norm"]})
        self.agent_optimiser.step()
        if self.critic_updates - self.last_target_update >= self.target_update_interval:
            self.target_critic.load_state_dict(self.critic.state_dict())
            self.last_target_update = self.critic_updates
        return stats

    def _train_critic(
        self,
        crit_in: torch.Tensor,
        actions: torch.Tensor,
        targets: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """One critic update per time step with a real transition, from the last to the first.

        Args:
            crit_in: ``[B, T, N, I_c]`` inputs at the transitions' slots.
            actions: ``[B, T, N]`` taken actions.
            targets: ``[B, T, N]`` TD(lambda) targets (constants).
            mask: ``[B, T]`` float.

        Returns:
            ``q [B, T, N, A]``: the values the critic gave at each step just before that step's
            update (the actors' advantages use them), and the mean figures of the updates.
        """
        n_actions = self.critic.fc3.out_features
        q = crit_in.new_zeros(*actions.shape, n_actions)  # [B, T, N, A]
        sums = {"critic_loss": 0.0, "critic_grad_norm": 0.0, "q_taken_mean": 0.0}
        sums["target_mean"] = 0.0
        updates = 0
        for t in reversed(range(actions.shape[1])):
            m = mask[:, t].unsqueeze(-1).expand_as(actions[:, t])  # [B, N]
            if m.sum() == 0:
                continue
            q_t = self.critic(crit_in[:, t])  # [B, N, A]
            q[:, t] = q_t.detach()
            taken = q_t.gather(-1, actions[:, t].unsqueeze(-1)).squeeze(-1)  # [B, N]
            error = torch.where(m > 0, taken - targets[:, t], torch.zeros_like(taken))
            loss = (error**2).sum() / m.sum()
            self.critic_optimiser.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.critic_params, self.grad_norm_clip)
            figures = {
                "critic loss": float(loss.detach()),
                "critic gradient norm": float(norm),
                "mean Q": float((taken.detach() * m).sum() / m.sum()),
            }
            check_finite(figures)
            self.critic_optimiser.step()
            self.critic_updates += 1
            updates += 1
            sums["critic_loss"] += figures["critic loss"]
            sums["critic_grad_norm"] += figures["critic gradient norm"]
            sums["q_taken_mean"] += figures["mean Q"]
            sums["target_mean"] += float((targets[:, t] * m).sum() / m.sum())
        return q, {key: value / max(updates, 1) for key, value in sums.items()}
