"""Activations: sigmoid, tanh, ReLU, softmax and log-softmax, each stable for any finite input."""

from __future__ import annotations

import functools

import numpy as np

from tinygrad_mlp.ops._shared import _check_axis
from tinygrad_mlp.tensor import Function


@functools.lru_cache(maxsize=None)
def _exp_limit(dtype: np.dtype) -> float:
    """The most negative x whose e^-x still fits in `dtype` (−88 float32, −709 float64)."""
    return -float(np.floor(np.log(np.finfo(dtype).max)))


class Sigmoid(Function):
    """σ(x) = 1 / (1 + e^-x); σ' = σ(1 − σ), taken from the output as the blog does.

    When some x is so negative that e^-x would overflow, it is computed from e^-|x| ≤ 1 instead
    (σ = e^x/(1 + e^x) there), so σ(−1000) is exactly 0, with no warning and no lost precision.
    """

    rule = "a = σ(Z) → grad · a(1 − a)"

    @staticmethod
    def forward(ctx, x):
        if x.size and x.min() >= _exp_limit(x.dtype):     # the plain formula, in place
            out = np.asarray(np.negative(x))              # (asarray: a 0-d input gives a scalar)
            np.exp(out, out=out)
            out += 1
            np.reciprocal(out, out=out)
        else:
            e = np.exp(-np.abs(x))                        # in (0, 1]: cannot overflow
            out = np.where(x >= 0, 1, e) / (1 + e)        # 1/(1+e^-x) or e^x/(1+e^x)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, grad):
        local = 1 - ctx.out                               # the blog's a(1 − a) ...
        local *= ctx.out
        local *= grad                                     # ... times the gradient from above
        return local


class Tanh(Function):
    rule = "a = tanh(Z) → grad · (1 − a²)"

    @staticmethod
    def forward(ctx, x):
        ctx.out = np.tanh(x)
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad * (1 - ctx.out * ctx.out)


class ReLU(Function):
    """max(x, 0); the gradient at exactly 0 is taken as 0 (the usual subgradient)."""

    rule = "a = max(Z, 0) → grad · [Z > 0]"

    @staticmethod
    def forward(ctx, x):
        ctx.out = np.maximum(x, 0)
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad * (ctx.out > 0)


class Softmax(Function):
    """exp(x) / Σ exp(x) along `axis`, shifted by the max first so it never overflows."""

    rule = "a = softmax(Z) → a · (grad − Σₖ grad·a)"

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = axis = _check_axis("softmax", x, axis)
        if x.size == 0:
            ctx.out = x.copy()
            return ctx.out
        e = x - x.max(axis=axis, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(axis=axis, keepdims=True)
        ctx.out = e
        return e

    @staticmethod
    def backward(ctx, grad):
        out = ctx.out                                     # Jacobian-vector product of softmax
        return out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """x − log Σ exp(x) along `axis` (the shifted log-sum-exp): finite for any finite logits."""

    rule = "log softmax(Z) → grad − softmax(Z) · Σₖ grad"

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = axis = _check_axis("log_softmax", x, axis)
        if x.size == 0:
            ctx.out = x.copy()
            return ctx.out
        shifted = x - x.max(axis=axis, keepdims=True)
        ctx.out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad - np.exp(ctx.out) * grad.sum(axis=ctx.axis, keepdims=True)
