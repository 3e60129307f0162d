"""Gradient clipping, as PyTorch's torch.nn.utils: call between backward() and optimizer.step().

    J.backward()
    total = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from tinygrad_mlp._checks import fail, finite_real, is_real
from tinygrad_mlp.tensor import Tensor


def _with_grads(owner: str, parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    """The parameters (one Tensor or an iterable of them) that have a gradient."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{owner}: parameters must be Tensors, got {type(p).__name__} at "
                            f"position {i}")
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint norm is at most `max_norm`.

    The norm is taken over every gradient entry as if they were one vector (`norm_type` 2, any
    p > 0, or math.inf for the largest |entry|). As in PyTorch, gradients are multiplied by
    max_norm / (total + 1e-6) when that is below 1. Returns the total norm BEFORE clipping, as
    a 0-d Tensor (`float(total)` gives the number). Parameters without a gradient are skipped.
    """
    max_norm = finite_real("max_norm", max_norm, owner="clip_grad_norm_", low=0.0)
    if not is_real(norm_type) or not norm_type > 0:
        fail("norm_type", norm_type, "a number > 0 or math.inf", owner="clip_grad_norm_")
    params = _with_grads("clip_grad_norm_", parameters)
    if not params:
        return Tensor(0.0)
    dtype = np.result_type(*[p.grad for p in params])
    if norm_type == math.inf:
        total = max(np.abs(p.grad).max(initial=0.0) for p in params)
    else:
        total = sum(float(np.sum(np.abs(p.grad) ** norm_type)) for p in params) ** (1 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of the gradients is {total}; set "
                           f"error_if_nonfinite=False to clip anyway")
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1:
        for p in params:
            p.grad = p.grad * p.grad.dtype.type(coefficient)
    return Tensor(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clip every gradient entry into [−clip_value, clip_value] (PyTorch's clip_grad_value_)."""
    clip_value = finite_real("clip_value", clip_value, owner="clip_grad_value_", low=0.0)
    for p in _with_grads("clip_grad_value_", parameters):
        p.grad = np.clip(p.grad, -clip_value, clip_value).astype(p.grad.dtype, copy=False)


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
