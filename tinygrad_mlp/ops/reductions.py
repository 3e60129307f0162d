"""Reductions over axes: sum, mean, max. Backward puts the reduced axes back."""

from __future__ import annotations

import numpy as np

from tinygrad_mlp.ops._shared import _normalize_axes
from tinygrad_mlp.tensor import Function


def _expand_to_input(grad: np.ndarray, ctx: Function) -> np.ndarray:
    """A reduction's upstream gradient, with the reduced axes put back, broadcast to the input."""
    if not ctx.keepdims:
        grad = np.expand_dims(grad, ctx.axes)
    return np.broadcast_to(grad, ctx.shape)


class Sum(Function):
    rule = "Σ x → grad copied back to every summed entry"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.shape = _normalize_axes("sum", x, axis), keepdims, x.shape
        return np.sum(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand_to_input(grad, ctx)


class Mean(Function):
    """Mean over `axis`; the mean of an empty selection is nan (no warning), as in PyTorch."""

    rule = "mean x → grad / count, copied back to every entry"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.shape = _normalize_axes("mean", x, axis), keepdims, x.shape
        ctx.count = int(np.prod([x.shape[a] for a in ctx.axes]))
        total = np.sum(x, axis=ctx.axes, keepdims=keepdims)
        if ctx.count == 0:
            return np.full_like(total, np.nan)
        return total / x.dtype.type(ctx.count)

    @staticmethod
    def backward(ctx, grad):
        if ctx.count == 0:
            return np.zeros(ctx.shape, dtype=grad.dtype)
        return _expand_to_input(grad / grad.dtype.type(ctx.count), ctx)


class Max(Function):
    """Max over `axis`. Where several entries tie for the max, they share the gradient equally."""

    rule = "max x → grad to the maximal entries (ties share it)"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.shape = _normalize_axes("max", x, axis), keepdims, x.shape
        if any(x.shape[a] == 0 for a in ctx.axes):
            raise ValueError(f"max: cannot reduce over an empty axis (input shape {x.shape})")
        out = np.max(x, axis=ctx.axes, keepdims=True)
        ctx.is_max = x == out
        return out if keepdims else np.squeeze(out, axis=ctx.axes)

    @staticmethod
    def backward(ctx, grad):
        share = ctx.is_max / ctx.is_max.sum(axis=ctx.axes, keepdims=True).astype(grad.dtype)
        return _expand_to_input(grad, ctx) * share
