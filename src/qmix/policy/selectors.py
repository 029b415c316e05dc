"""Action selectors: how agents turn their network outputs into actions (issue 14).

The controller computes every agent's outputs ``[B, N, A]`` (Q-values or policy logits); a
selector turns them into actions, never an unavailable one. As PyMARL's ``action_selectors``:

- :class:`EpsilonGreedy` for Q-learners: a uniform available action with probability
  ``epsilon``, else the greedy one;
- :class:`SoftmaxPolicy` for policy-gradient learners (COMA): a sample from the masked softmax
  of the logits with an epsilon floor, :func:`policy_probs`, the same distribution the learner
  differentiates.

``epsilon`` is the exploration rate of a training step; ``None`` asks for greedy actions
(tests and evaluation): the best available action by the outputs, for either selector.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

import numpy as np
import torch

from qmix.policy.exploration import epsilon_greedy, masked_argmax

SelectorName = Literal["epsilon_greedy", "softmax"]


def policy_probs(logits: torch.Tensor, avail: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The acting policy of a policy-gradient agent: masked softmax with an epsilon floor.

    ``pi = (1 - epsilon) softmax(logits over available actions) + epsilon / n_available`` on
    the available actions and 0 elsewhere (PyMARL's ``BasicMAC`` with ``mask_before_softmax``).

    Args:
        logits: ``[..., A]`` policy logits.
        avail: ``[..., A]`` bool; rows with no available action (padding) give all zeros.
        epsilon: floor weight in [0, 1].

    Returns:
        ``[..., A]`` probabilities, summing to 1 over the available actions of each row.
    """
    masked = logits.masked_fill(~avail, float("-inf"))  # [..., A]
    any_avail = avail.any(dim=-1, keepdim=True)  # [..., 1]
    soft = torch.softmax(torch.where(any_avail, masked, torch.zeros_like(masked)), dim=-1)
    n_avail = avail.sum(dim=-1, keepdim=True).clamp(min=1).to(logits.dtype)  # [..., 1]
    probs = (1.0 - epsilon) * soft + epsilon / n_avail
    return torch.where(avail, probs, torch.zeros_like(probs))


def sample_actions(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One action per row of ``probs [..., A]`` (CPU), drawn with one uniform per row.

    Inverse CDF: the first action whose cumulative probability passes ``u * total``. Actions
    of probability 0 add nothing to the sum, so they are never chosen, and scaling by the
    total keeps float round-off from running past the end. A row of zeros gives action 0.

    Returns:
        ``[...]`` int64.
    """
    cumulative = probs.cumsum(dim=-1)  # [..., A]
    u = torch.rand(*probs.shape[:-1], 1, generator=generator, dtype=probs.dtype)  # [..., 1]
    return (cumulative > u * cumulative[..., -1:]).to(torch.uint8).argmax(dim=-1)


class ActionSelector(Protocol):
    """Turns agent outputs into actions."""

    name: ClassVar[SelectorName]

    def select(
        self,
        outputs: np.ndarray,
        avail: np.ndarray,
        epsilon: float | None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Actions ``[B, N]`` for ``outputs [B, N, A]`` and ``avail [B, N, A]`` (bool; each
        agent needs an available action); ``epsilon`` ``None`` is greedy."""
        ...

    def draws(self, epsilon: float | None) -> bool:
        """Whether acting with ``epsilon`` is random (takes numbers from the generator)."""
        ...


class EpsilonGreedy:
    """Epsilon-greedy over the available actions (Q-learners)."""

    name: ClassVar[SelectorName] = "epsilon_greedy"

    def select(
        self,
        outputs: np.ndarray,
        avail: np.ndarray,
        epsilon: float | None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """See :func:`qmix.policy.exploration.epsilon_greedy`."""
        return epsilon_greedy(outputs, avail, epsilon or 0.0, generator)

    def draws(self, epsilon: float | None) -> bool:
        """Random only while exploring (``epsilon > 0``)."""
        return bool(epsilon)


class SoftmaxPolicy:
    """Samples from :func:`policy_probs` (policy-gradient learners: COMA)."""

    name: ClassVar[SelectorName] = "softmax"

    def select(
        self,
        outputs: np.ndarray,
        avail: np.ndarray,
        epsilon: float | None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """A sample of each agent's policy; ``epsilon`` ``None``: its most likely action."""
        if not avail.any(axis=-1).all():
            raise ValueError("every agent needs at least one available action")
        if epsilon is None:
            return masked_argmax(outputs, avail)  # [B, N]
        probs = policy_probs(torch.from_numpy(outputs), torch.from_numpy(avail), epsilon)
        return sample_actions(probs, generator).numpy()  # [B, N]

    def draws(self, epsilon: float | None) -> bool:
        """Random whenever training (any ``epsilon``, 0 included); greedy for ``None``."""
        return epsilon is not None


SELECTORS: dict[SelectorName, type[EpsilonGreedy] | type[SoftmaxPolicy]] = {
    "epsilon_greedy": EpsilonGreedy,
    "softmax": SoftmaxPolicy,
}


def build_selector(name: SelectorName) -> ActionSelector:
    """An action selector by name (``epsilon_greedy`` or ``softmax``)."""
    if name not in SELECTORS:
        raise ValueError(f"unknown action selector {name!r}: use {', '.join(SELECTORS)}")
    return SELECTORS[name]()
