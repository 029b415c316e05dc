"""Weighted QMIX (Rashid et al., NeurIPS 2020): OW-QMIX and CW-QMIX, a variant of the Q learner.

QMIX's monotonic ``Q_tot`` cannot represent every joint-action value, and an unweighted
projection onto it can make a poor joint action look best (the limit its paper states).
Weighted QMIX adds an unrestricted central ``Q*`` (its own agent network and a feed-forward
mixer, :class:`~qmix.networks.mixers.CentralMixer`), trains both towards the target
``y = r + gamma Q*_target(s', u*')`` at the joint action ``u*'`` that is greedy for the agents'
Q-values, and weights ``Q_tot``'s squared errors: 1 where a mistake matters, ``alpha``
elsewhere, so the projection keeps the best joint action right.

- **OW** (optimistic): weight 1 where ``Q_tot < y``, ``alpha`` elsewhere;
- **CW** (centrally weighted): weight 1 where the joint action is the greedy one or
  ``y > Q*_target(s, u*)``, ``alpha`` elsewhere.

The agents still act on their own Q-values (``Q*`` is used in training only). The steps follow
the authors' ``max_q_learner``; the TD(lambda) targets, hard or soft targets and the choice of
the greedy joint action (online agents with ``double_q``, else the target agents) are the Q
learner's.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from qmix.data.episode_batch import EpisodeBatch
from qmix.learners.maths import masked_mean, masked_td_loss, td_lambda_targets
from qmix.learners.q import QLearner, chosen_action_values, greedy_target_values
from qmix.networks.agents import AgentNetwork
from qmix.networks.mixers import Mixer, mixer_inputs
from qmix.networks.steps import on_valid_steps
from qmix.policy.controller import AgentController

Weighting = Literal["ow", "cw"]


def wqmix_weights(
    kind: Weighting,
    alpha: float,
    td_error: torch.Tensor,
    is_greedy: torch.Tensor | None = None,
    target_above_greedy: torch.Tensor | None = None,
) -> torch.Tensor:
    """The weights of ``Q_tot``'s squared errors, 1 or ``alpha`` (section 4 of the paper).

    Args:
        kind: ``ow``: 1 where ``Q_tot < y`` (``td_error < 0``); ``cw``: 1 where the joint
            action is the greedy one (``is_greedy``) or the target beats ``Q*`` there
            (``target_above_greedy``).
        alpha: the weight everywhere else, in (0, 1].
        td_error: ``[B, T]`` ``Q_tot(s, u) - y``.
        is_greedy, target_above_greedy: ``[B, T]`` bool, for ``cw``.

    Returns:
        ``[B, T]`` float.
    """
    if kind == "ow":
        full = td_error < 0
    else:
        assert is_greedy is not None and target_above_greedy is not None
        full = is_greedy | target_above_greedy
    return torch.where(full, torch.ones_like(td_error), torch.full_like(td_error, alpha))


class WeightedQLearner(QLearner):
    """QMIX (or VDN) with Weighted QMIX's central ``Q*`` and weighted loss.

    Args:
        controller, mixer: as :class:`~qmix.learners.q.QLearner` (``mixer`` may not be None).
        central_agent: the central ``Q*``'s agent network (utilities per action).
        central_mixer: the unrestricted central mixer.
        weighting: ``ow`` or ``cw``.
        alpha: the weight of the errors that matter less (their code: 0.1).
        **kwargs: the Q learner's settings.
    """

    def __init__(
        self,
        controller: AgentController,
        mixer: Mixer,
        central_agent: AgentNetwork,
        central_mixer: Mixer,
        *,
        weighting: Weighting,
        alpha: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(controller, mixer, **kwargs)
        self.weighting = weighting
        self.alpha = alpha
        self.central_agent = central_agent
        self.central_mixer = central_mixer
        self.target_central_agent = self.add_network("central_agent", central_agent)
        self.target_central_mixer = self.add_network("central_mixer", central_mixer)

    def loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted ``Q_tot`` loss plus the central ``Q*`` loss, towards one target."""
        assert self.mixer is not None
        mask = batch.transition_mask()  # [B, T]
        slots, steps = batch.slot_mask(), batch.filled  # [B, T+1], [B, T]: real, not padding
        avail = batch.avail_actions  # [B, T+1, N, A]
        inputs = self.controller.sequence_inputs(batch.obs, batch.actions)  # [B, T+1, N, I]
        b, device = batch.batch_size, inputs.device
        h0 = self.agent.initial_hidden(b, device)  # [B, N, H]
        q, _ = self.agent(inputs, h0, slots)  # [B, T+1, N, A]
        h_central = self.central_agent.initial_hidden(b, device)  # [B, N, H*]
        central_q, _ = self.central_agent(inputs, h_central, slots)  # [B, T+1, N, A]
        mix_in = mixer_inputs(self.mixer_input, batch.obs, batch.state)  # [B, T+1, S']
        with torch.no_grad():
            if self.double_q:  # the greedy joint action of the online agents (their code)
                chooser = q.detach()
            else:  # ... or of the target agents (the paper's formula)
                chooser, _ = self.target_agent(inputs, h0, slots)
            greedy = chooser.masked_fill(~avail, float("-inf")).argmax(dim=-1)  # [B, T+1, N]
            central_target_q, _ = self.target_central_agent(inputs, h_central, slots)
            at_greedy = greedy_target_values(central_target_q, avail, chooser)  # [B, T+1, N]
            q_star_greedy = on_valid_steps(self.target_central_mixer, slots, at_greedy, mix_in)
            targets = td_lambda_targets(
                batch.reward,
                batch.terminated,
                mask,
                q_star_greedy[:, 1:],
                self.gamma,
                self.td_lambda,
            )  # [B, T]
        chosen = on_valid_steps(
            self.mixer, steps, chosen_action_values(q[:, :-1], batch.actions), mix_in[:, :-1]
        )  # [B, T]
        central_chosen = on_valid_steps(
            self.central_mixer,
            steps,
            chosen_action_values(central_q[:, :-1], batch.actions),
            mix_in[:, :-1],
        )  # [B, T]
        weights = wqmix_weights(
            self.weighting,
            self.alpha,
            (chosen - targets).detach(),
            is_greedy=(batch.actions == greedy[:, :-1]).all(dim=-1),
            target_above_greedy=targets > q_star_greedy[:, :-1],
        )  # [B, T]
        error = torch.where(mask > 0, chosen - targets, torch.zeros_like(chosen))
        qmix_loss = (weights * error**2).sum() / mask.sum().clamp(min=1.0)
        central_loss = masked_td_loss(central_chosen, targets, mask)
        parts = {
            "chosen": chosen.detach(),
            "targets": targets,
            "mask": mask,
            "central_loss": central_loss.detach(),
            "weight_mean": torch.tensor(masked_mean(weights, mask)),
        }
        return qmix_loss + central_loss, parts
