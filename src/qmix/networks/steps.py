"""Per-step networks on the real steps of a padded batch only.

A replay batch is padded to its longest episode, and on tasks whose episodes end early (LBF
once it is solved, SMAX battles) most of a ``[B, T]`` batch can be padding. Networks that treat
every step on its own (feed-forward agents, every mixer) need not see it: they are evaluated on
the ``M`` real steps, gathered as one ``[1, M, ...]`` sequence, and their outputs are scattered
back with zeros at the padding. The values at real steps are those of the whole batch (up to
float rounding); the cost follows the real steps, not the padded ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import overload

import torch


@overload
def on_valid_steps(
    fn: Callable[..., torch.Tensor], valid: torch.Tensor, *tensors: torch.Tensor | None
) -> torch.Tensor: ...


@overload
def on_valid_steps(
    fn: Callable[..., tuple[torch.Tensor, ...]],
    valid: torch.Tensor,
    *tensors: torch.Tensor | None,
) -> tuple[torch.Tensor, ...]: ...


def on_valid_steps(
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    valid: torch.Tensor,
    *tensors: torch.Tensor | None,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """``fn(*tensors)`` computed at the valid steps only, zeros elsewhere.

    Args:
        fn: a per-step function of ``[B', T', ...]`` tensors to ``[B', T', ...]`` (or a tuple
            of them): its output at ``(b, t)`` depends on its inputs at ``(b, t)`` alone.
        valid: ``[B, T]`` bool, the steps to compute.
        tensors: ``[B, T, ...]`` inputs (``None`` is passed through).

    Returns:
        ``fn``'s output(s), ``[B, T, ...]``, with zeros where ``valid`` is false; gradients
        flow to the inputs at the valid steps.
    """
    if bool(valid.all()):  # nothing to skip: one call on the batch as it is
        return fn(*tensors)
    packed = [None if x is None else x[valid].unsqueeze(0) for x in tensors]  # [1, M, ...]
    out = fn(*packed)

    def scatter(y: torch.Tensor) -> torch.Tensor:
        y = y.squeeze(0)  # [M, ...]
        return y.new_zeros(*valid.shape, *y.shape[1:]).index_put((valid,), y)  # [B, T, ...]

    return tuple(scatter(y) for y in out) if isinstance(out, tuple) else scatter(out)
