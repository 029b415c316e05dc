"""QTRAN-base (Son et al., ICML 2019), a variant of the Q learner.

The agents' Q-values are summed, ``Q'(tau, u) = sum_a Q_a(tau^a, u^a)``, and the agents act on
their own Q-values (IGM holds by construction). An unrestricted joint ``Q_jt(s, u)`` learns the
team's value by TD; ``V_jt(s)`` corrects the sum. Two losses tie ``Q'`` to ``Q_jt`` so that
the greedy joint action of the sum is the best joint action of ``Q_jt`` (the paper's
Theorem 1):

- optimality: ``Q'(tau, u_bar) - Q_jt(tau, u_bar) + V_jt(s) = 0`` at the greedy joint action;
- non-optimality: ``Q'(tau, u) - Q_jt(tau, u) + V_jt(s) >= 0`` at the taken one (only its
  negative part is penalised).

``L = L_td + lambda_opt L_opt + lambda_nopt L_nopt`` (PyMARL: 1 and 0.1), with ``Q_jt`` held
constant inside ``L_opt`` and ``L_nopt``. The steps follow PyMARL's ``qtran_learner``.
"""

from __future__ import annotations

from typing import Any

import torch

from qmix.data.episode_batch import EpisodeBatch
from qmix.learners.maths import masked_td_loss, td_lambda_targets
from qmix.learners.q import QLearner, chosen_action_values, greedy_target_values
from qmix.networks.mixers import QTranJoint, mixer_inputs
from qmix.networks.steps import on_valid_steps
from qmix.policy.controller import AgentController


def qtran_losses(
    q_sum_taken: torch.Tensor,
    q_sum_greedy: torch.Tensor,
    joint_taken: torch.Tensor,
    joint_greedy: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """QTRAN-base's optimality and non-optimality losses (masked means of squares).

    Args:
        q_sum_taken: ``[B, T]`` ``Q'`` of the taken joint action.
        q_sum_greedy: ``[B, T]`` ``Q'`` of the agents' greedy joint action.
        joint_taken, joint_greedy: ``[B, T]`` ``Q_jt`` of those (treated as constants).
        v: ``[B, T]`` ``V_jt(s)``.
        mask: ``[B, T]`` float.

    Returns:
        ``L_opt``, ``L_nopt``.
    """
    opt = q_sum_greedy - joint_greedy.detach() + v
    nopt = (q_sum_taken - joint_taken.detach() + v).clamp(max=0.0)
    denom = mask.sum().clamp(min=1.0)
    real = mask > 0
    zero = torch.zeros_like(opt)
    l_opt = (torch.where(real, opt, zero) ** 2).sum() / denom
    l_nopt = (torch.where(real, nopt, zero) ** 2).sum() / denom
    return l_opt, l_nopt


class QTranLearner(QLearner):
    """QTRAN-base on the Q learner's machinery (buffer, targets, exploration).

    Args:
        controller: the agents (their features feed ``joint``).
        joint: the joint networks ``Q_jt``, ``V_jt``.
        opt_weight, nopt_weight: ``lambda_opt``, ``lambda_nopt``.
        **kwargs: the Q learner's settings (``double_q``: the greedy joint action of the target
            is the online agents', else the target agents').
    """

    def __init__(
        self,
        controller: AgentController,
        joint: QTranJoint,
        *,
        opt_weight: float = 1.0,
        nopt_weight: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(controller, None, **kwargs)
        self.joint = joint
        self.target_joint = self.add_network("joint", joint)
        self.opt_weight = opt_weight
        self.nopt_weight = nopt_weight

    def loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_td`` of ``Q_jt`` plus the weighted optimality and non-optimality losses."""
        mask = batch.transition_mask()  # [B, T]
        slots, steps = batch.slot_mask(), batch.filled  # [B, T+1], [B, T]: real, not padding
        avail = batch.avail_actions  # [B, T+1, N, A]
        inputs = self.controller.sequence_inputs(batch.obs, batch.actions)  # [B, T+1, N, I]
        h0 = self.agent.initial_hidden(batch.batch_size, inputs.device)  # [B, N, H]
        features, _ = self.agent.features(inputs, h0, slots)  # [B, T+1, N, F]
        q = self.agent.head(features)  # [B, T+1, N, A]
        mix_in = mixer_inputs(self.mixer_input, batch.obs, batch.state)  # [B, T+1, S']
        greedy = q.detach().masked_fill(~avail, float("-inf")).argmax(dim=-1)  # [B, T+1, N]
        with torch.no_grad():
            target_features, _ = self.target_agent.features(inputs, h0, slots)
            if self.double_q:
                target_greedy = greedy
            else:
                target_q = self.target_agent.head(target_features)
                target_greedy = target_q.masked_fill(~avail, float("-inf")).argmax(dim=-1)
            next_in = target_features[:, 1:], target_greedy[:, 1:], mix_in[:, 1:]
            next_joint, _ = on_valid_steps(self.target_joint, steps, *next_in)  # [B, T]
            targets = td_lambda_targets(
                batch.reward, batch.terminated, mask, next_joint, self.gamma, self.td_lambda
            )  # [B, T]
        f_now, s_now = features[:, :-1], mix_in[:, :-1]  # [B, T, N, F], [B, T, S']
        joint_taken, v = on_valid_steps(self.joint, steps, f_now, batch.actions, s_now)  # [B, T]
        joint_greedy, _ = on_valid_steps(self.joint, steps, f_now, greedy[:, :-1], s_now)
        q_sum_taken = chosen_action_values(q[:, :-1], batch.actions).sum(dim=-1)  # [B, T]
        q_sum_greedy = greedy_target_values(q[:, :-1], avail[:, :-1]).sum(dim=-1)  # [B, T]
        td_loss = masked_td_loss(joint_taken, targets, mask)
        l_opt, l_nopt = qtran_losses(q_sum_taken, q_sum_greedy, joint_taken, joint_greedy, v, mask)
        loss = td_loss + self.opt_weight * l_opt + self.nopt_weight * l_nopt
        parts = {
            "chosen": joint_taken.detach(),
            "targets": targets,
            "mask": mask,
            "td_loss": td_loss.detach(),
            "opt_loss": l_opt.detach(),
            "nopt_loss": l_nopt.detach(),
        }
        return loss, parts
