"""Maths every learner shares: TD(lambda) returns, the masked TD loss, divergence checks and
the networks' state. Pure functions of tensors (and modules), tested on their own."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


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
            for IQL and COMA's critic).
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
        chosen: ``[B, T]`` (or ``[B, T, N]`` for per-agent values) values of the taken actions.
        targets: same shape; treated as constants.
        mask: ``[B, T]`` float.

    Returns:
        scalar; padding never contributes, whatever its values.
    """
    extra = chosen.dim() - mask.dim()
    m = mask.reshape(*mask.shape, *([1] * extra)).expand_as(chosen)
    error = torch.where(m > 0, chosen - targets.detach(), torch.zeros_like(chosen))
    return (error**2).sum() / m.sum().clamp(min=1.0)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``x [B, T]`` (or ``[B, T, N]``, averaged over agents first) over real
    transitions; non-finite wherever any entry is, padding included (0 * nan is nan)."""
    x = x.mean(dim=-1) if x.dim() == mask.dim() + 1 else x
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


# -- divergence ----------------------------------------------------------------------------------


class DivergenceError(RuntimeError):
    """An update's loss, gradient norm or values are not finite (issue 13).

    Raised before the optimiser steps, so the weights are those before the failed update;
    the message is one line, e.g. ``loss is nan (gradient norm inf, mean Q nan)``.
    """


def check_finite(values: dict[str, float]) -> None:
    """Raise :class:`DivergenceError` naming the first non-finite value, then the others.

    Args:
        values: figures of an update by their names in the message (``{"loss": ...}``).
    """
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if not bad:
        return
    first = bad[0]
    others = ", ".join(f"{name} {value:.4g}" for name, value in values.items() if name != first)
    raise DivergenceError(f"{first} is {values[first]:.4g} ({others})")


# -- networks' state -----------------------------------------------------------------------------


def load_networks(modules: dict[str, nn.Module], saved: dict[str, Any]) -> None:
    """Load each module's weights from ``saved`` (name -> state dict).

    Raises:
        ValueError: the saved networks are not these (another algorithm, task or config).
    """
    if set(saved) != set(modules):
        raise ValueError(f"saved networks {sorted(saved)} do not match {sorted(modules)}")
    for name, module in modules.items():
        try:
            module.load_state_dict(saved[name])
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ValueError(f"saved {name} does not fit this config: {first}") from err


def make_optimiser(
    params: list[nn.Parameter], kind: str, lr: float, alpha: float, eps: float
) -> torch.optim.Optimizer:
    """``rmsprop`` (PyMARL: alpha 0.99, eps 1e-5) or ``adam`` over ``params``.

    Adam runs torch's fused kernel (CPU and CUDA): the same updates as the ``foreach`` one, for
    less time per step on our small networks (``benchmarks/update_cost.py``); torch has no fused
    RMSprop."""
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, foreach=True)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    raise ValueError(f"unknown optimizer {kind!r}: use rmsprop or adam")
