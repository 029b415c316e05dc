"""QPLEX (Wang et al., ICLR 2021), a variant of the Q learner with the duplex dueling mixer.

The mixer (:class:`~qmix.networks.mixers.QPLEXMixer`) reads the joint action and the agents'
greedy values as well as their chosen values, so its ``Q_tot`` can represent non-monotonic
payoffs while its greedy joint action stays the agents' (IGM). Trained by TD towards the
target mixer's value of the greedy joint action, as the authors' ``dmaq_qatten_learner``:
with ``double_q`` the target agents' values of the online agents' greedy actions, mixed with
those actions and the target agents' greedy values; without, ``V_tot`` of the target agents'
greedy values.
"""

from __future__ import annotations

import torch

from qmix.data.episode_batch import EpisodeBatch
from qmix.learners.maths import masked_td_loss, td_lambda_targets
from qmix.learners.q import QLearner, chosen_action_values, greedy_target_values
from qmix.networks.mixers import mixer_inputs
from qmix.networks.steps import on_valid_steps


class QPLEXLearner(QLearner):
    """QPLEX on the Q learner's machinery; its ``mixer`` is a ``QPLEXMixer``."""

    def loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """TD loss of QPLEX's ``Q_tot`` for the taken joint actions."""
        assert self.mixer is not None and self.target_mixer is not None
        mask = batch.transition_mask()  # [B, T]
        slots, steps = batch.slot_mask(), batch.filled  # [B, T+1], [B, T]: real, not padding
        avail = batch.avail_actions  # [B, T+1, N, A]
        inputs = self.controller.sequence_inputs(batch.obs, batch.actions)  # [B, T+1, N, I]
        h0 = self.agent.initial_hidden(batch.batch_size, inputs.device)  # [B, N, H]
        q, _ = self.agent(inputs, h0, slots)  # [B, T+1, N, A]
        mix_in = mixer_inputs(self.mixer_input, batch.obs, batch.state)  # [B, T+1, S']
        chosen = chosen_action_values(q[:, :-1], batch.actions)  # [B, T, N]
        best = greedy_target_values(q[:, :-1].detach(), avail[:, :-1])  # [B, T, N]
        q_tot = on_valid_steps(self.mixer, steps, chosen, mix_in[:, :-1], batch.actions, best)
        with torch.no_grad():
            target_q, _ = self.target_agent(inputs, h0, slots)  # [B, T+1, N, A]
            next_avail, next_in = avail[:, 1:], mix_in[:, 1:]
            target_best = greedy_target_values(target_q[:, 1:], next_avail)  # [B, T, N]
            if self.double_q:
                online = q[:, 1:].detach()
                greedy = online.masked_fill(~next_avail, float("-inf")).argmax(dim=-1)
                at_greedy = greedy_target_values(target_q[:, 1:], next_avail, online)
                next_values = on_valid_steps(
                    self.target_mixer, steps, at_greedy, next_in, greedy, target_best
                )  # [B, T]
            else:
                next_values = on_valid_steps(self.target_mixer, steps, target_best, next_in)
            targets = td_lambda_targets(
                batch.reward, batch.terminated, mask, next_values, self.gamma, self.td_lambda
            )  # [B, T]
        loss = masked_td_loss(q_tot, targets, mask)
        return loss, {"chosen": q_tot.detach(), "targets": targets, "mask": mask}
