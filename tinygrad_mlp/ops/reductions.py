"""Reductions over axes: sum, mean, max, min, var, std; argmax and argmin (no gradient).

Backward puts the reduced axes back."""

from __future__ import annotations

import numpy as np

from typing import Any

from tinygrad_mlp._checks import is_int
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
    """Max over `axis`. Where several entries tie for the max, they share the gradient equally
    (PyTorch's amax; its max(dim) gives it all to one index instead)."""

    rule = "max x → grad to the maximal entries (ties share it)"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return _extreme(ctx, "max", np.max, x, axis, keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _extreme_backward(ctx, grad)


class Min(Function):
    """Min over `axis`. Tied minimal entries share the gradient equally (PyTorch's amin)."""

    rule = "min x → grad to the minimal entries (ties share it)"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return _extreme(ctx, "min", np.min, x, axis, keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _extreme_backward(ctx, grad)


def _extreme(ctx: Function, op: str, reduce: Any, x: np.ndarray, axis: Any, keepdims: bool
             ) -> np.ndarray:
    """max or min over `axis`; remembers which entries attain it, for backward."""
    ctx.axes, ctx.keepdims, ctx.shape = _normalize_axes(op, x, axis), keepdims, x.shape
    if any(x.shape[a] == 0 for a in ctx.axes):
        raise ValueError(f"{op}: cannot reduce over an empty axis (input shape {x.shape})")
    out = reduce(x, axis=ctx.axes, keepdims=True)
    ctx.is_extreme = x == out
    return out if keepdims else np.squeeze(out, axis=ctx.axes)


def _extreme_backward(ctx: Function, grad: np.ndarray) -> np.ndarray:
    count = ctx.is_extreme.sum(axis=ctx.axes, keepdims=True).astype(grad.dtype)
    return _expand_to_input(grad, ctx) * (ctx.is_extreme / count)


def _deviations(ctx: Function, op: str, x: np.ndarray, axis: Any, keepdims: bool, ddof: Any
                ) -> np.ndarray:
    """Σ(x − mean)² / (n − ddof) over `axis`; keeps x − mean and n − ddof for backward.

    n − ddof ≤ 0 gives nan (no warning), as PyTorch does."""
    if not is_int(ddof) or ddof < 0:
        raise ValueError(f"{op}: ddof must be a non-negative int, got {ddof!r}")
    ctx.axes, ctx.keepdims, ctx.shape = _normalize_axes(op, x, axis), keepdims, x.shape
    count = int(np.prod([x.shape[a] for a in ctx.axes]))
    ctx.centred = x - np.mean(x, axis=ctx.axes, keepdims=True) if count else np.zeros_like(x)
    ctx.dof = x.dtype.type(count - ddof)
    squares = np.sum(ctx.centred * ctx.centred, axis=ctx.axes, keepdims=keepdims)
    if ctx.dof <= 0:
        return np.full_like(squares, np.nan)
    return squares / ctx.dof


class Var(Function):
    """Variance Σ(x − mean)² / (n − ddof) over `axis`: ddof=0 is numpy's default, ddof=1 the
    unbiased estimate (PyTorch's default, `correction=1`). n − ddof ≤ 0 gives nan."""

    rule = "var x → grad · 2(x − mean) / (n − ddof)"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=0):
        return _deviations(ctx, "var", x, axis, keepdims, ddof)

    @staticmethod
    def backward(ctx, grad):
        with np.errstate(divide="ignore", invalid="ignore"):
            return _expand_to_input(grad, ctx) * (2 * ctx.centred / ctx.dof)


class Std(Function):
    """Standard deviation √var over `axis` (same `ddof` as var). Where the std is 0 (constant
    entries) the gradient is 0, as in PyTorch, instead of 0/0."""

    rule = "std x → grad · (x − mean) / ((n − ddof) · std)   (0 where std = 0)"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, ddof=0):
        out = np.sqrt(_deviations(ctx, "std", x, axis, keepdims, ddof))
        ctx.out = out if keepdims else np.expand_dims(out, ctx.axes)
        return out

    @staticmethod
    def backward(ctx, grad):
        with np.errstate(divide="ignore", invalid="ignore"):
            local = ctx.centred / (ctx.dof * ctx.out)
        local[np.broadcast_to(ctx.out == 0, local.shape)] = 0
        return _expand_to_input(grad, ctx) * local


def argmax(x: np.ndarray, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """Index of the (first) maximal entry along `axis`, over the flattened array if None."""
    return _arg_extreme("argmax", np.argmax, x, axis, keepdims)


def argmin(x: np.ndarray, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """Index of the (first) minimal entry along `axis`, over the flattened array if None."""
    return _arg_extreme("argmin", np.argmin, x, axis, keepdims)


def _arg_extreme(op: str, find: Any, x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    if axis is not None:
        if isinstance(axis, tuple) or x.ndim == 0:
            raise ValueError(f"{op}: axis must be one int or None, got {axis!r} (input shape "
                             f"{x.shape})")
        axis = _normalize_axes(op, x, axis)[0]
    if x.size == 0 or (axis is not None and x.shape[axis] == 0):
        raise ValueError(f"{op}: cannot take the {op} of an empty axis (input shape {x.shape})")
    return np.asarray(find(x, axis=axis, keepdims=keepdims))
