"""Activations: sigmoid, tanh, ReLU, softmax, log-softmax, leaky ReLU, ELU, GELU and softplus,
each stable for any finite input."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from tinygrad_mlp.backend import asarray
from tinygrad_mlp.ops._shared import _check_axis
from tinygrad_mlp.tensor import Function


@functools.lru_cache(maxsize=None)
def _exp_limit(dtype: np.dtype) -> float:
    """The most negative x whose e^-x still fits in `dtype` (−88 float32, −709 float64)."""
    return -float(np.floor(np.log(np.finfo(dtype).max)))


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) from e^-|x| ∈ (0, 1], which cannot overflow: 1/(1 + e^-x) or e^x/(1 + e^x)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


class Sigmoid(Function):
    """σ(x) = 1 / (1 + e^-x); σ' = σ(1 − σ), taken from the output as the blog does.

    When some x is so negative that e^-x would overflow, it is computed from e^-|x| ≤ 1 instead
    (σ = e^x/(1 + e^x) there), so σ(−1000) is exactly 0, with no warning and no lost precision.
    """

    rule = "a = σ(Z) → grad · a(1 − a)"

    @staticmethod
    def forward(ctx, x):
        if x.size and x.min() >= _exp_limit(x.dtype):     # the plain formula, in place
            out = asarray(np.negative(x))                 # (asarray: a 0-d input gives a scalar)
            np.exp(out, out=out)
            out += 1
            np.reciprocal(out, out=out)
        else:
            out = _stable_sigmoid(x)
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


def _shifted_by_max(ctx, op: str, x: np.ndarray, axis: Any) -> np.ndarray:
    """x minus its max along the checked `axis` (kept on ctx for backward): the shift that keeps
    softmax and log-softmax from overflowing. An empty x comes back as an empty copy."""
    ctx.axis = axis = _check_axis(op, x, axis)
    if x.size == 0:
        return x.copy()
    return x - x.max(axis=axis, keepdims=True)


class Softmax(Function):
    """exp(x) / Σ exp(x) along `axis`, shifted by the max first so it never overflows."""

    rule = "a = softmax(Z) → a · (grad − Σₖ grad·a)"

    @staticmethod
    def forward(ctx, x, axis=-1):
        e = _shifted_by_max(ctx, "softmax", x, axis)
        np.exp(e, out=e)
        e /= e.sum(axis=ctx.axis, keepdims=True)
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
        shifted = _shifted_by_max(ctx, "log_softmax", x, axis)
        with np.errstate(divide="ignore"):        # the sum is ≥ 1 unless the axis is empty
            ctx.out = shifted - np.log(np.exp(shifted).sum(axis=ctx.axis, keepdims=True))
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad - np.exp(ctx.out) * grad.sum(axis=ctx.axis, keepdims=True)


class LeakyReLU(Function):
    """x for x > 0, negative_slope·x otherwise; at exactly 0 the gradient is negative_slope
    (PyTorch's choice)."""

    rule = "a = max(Z, s·Z) → grad · (1 if Z > 0 else s)"

    @staticmethod
    def forward(ctx, x, negative_slope=0.01):
        ctx.slope = np.where(x > 0, x.dtype.type(1), x.dtype.type(negative_slope))
        return x * ctx.slope

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.slope


class ELU(Function):
    """x for x > 0, α(e^x − 1) otherwise; at exactly 0 the gradient is α (PyTorch's choice)."""

    rule = "a = ELU(Z) → grad · (1 if Z > 0 else a + α)"

    @staticmethod
    def forward(ctx, x, alpha=1.0):
        ctx.positive, ctx.alpha = x > 0, x.dtype.type(alpha)
        ctx.out = np.where(ctx.positive, x, ctx.alpha * np.expm1(np.minimum(x, 0)))
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad * np.where(ctx.positive, 1, ctx.out + ctx.alpha)


# numpy has no erf. W. J. Cody's rational approximations ("Rational Chebyshev approximations
# for the error function", Math. Comp. 1969; the CALERF coefficients) give it to a few ulps in
# numpy ops: erf on |x| ≤ 0.46875, erfc = e^(−x²)·R(x) on (0.46875, 4], and
# erfc = e^(−x²)/x·(1/√π − R(1/x²)/x²) beyond.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)


def _rational(t: np.ndarray, numerator: tuple, denominator: tuple) -> np.ndarray:
    """Cody's P(t)/Q(t): the last numerator coefficient leads, Q is monic."""
    n = len(denominator)
    top, bottom = numerator[-1] * t, t
    for i in range(n - 1):
        top = (top + numerator[i]) * t
        bottom = (bottom + denominator[i]) * t
    return (top + numerator[n - 1]) / (bottom + denominator[n - 1])


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, computed in float64 and returned in x's dtype; within
    a few ulps of the C library's erf (math.erf) for every finite x."""
    x = asarray(x)
    ax = np.abs(asarray(x, np.float64))
    out = np.empty_like(ax)
    small, large = ax <= 0.46875, ax > 4
    middle = ~small & ~large
    t = ax[small]
    out[small] = t * _rational(t * t, _ERF_A, _ERF_B)
    t = ax[middle]
    out[middle] = 1 - np.exp(-t * t) * _rational(t, _ERFC_C, _ERFC_D)
    t = ax[large]
    with np.errstate(under="ignore"):
        tail = (1 / math.sqrt(math.pi) - _rational(1 / (t * t), _ERFC_P, _ERFC_Q) / (t * t)) / t
        out[large] = 1 - np.exp(-t * t) * tail
    return (np.sign(x) * out).astype(x.dtype, copy=False)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class GELU(Function):
    """x·Φ(x), Φ the standard normal CDF (approximate="none", via Cody's erf), or PyTorch's tanh
    approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (approximate="tanh")."""

    rule = "a = Z·Φ(Z) → grad · (Φ(Z) + Z·φ(Z))"

    @staticmethod
    def forward(ctx, x, approximate="none"):
        ctx.x, ctx.approximate = x, approximate
        if approximate == "tanh":
            ctx.tanh = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            return 0.5 * x * (1 + ctx.tanh)
        if approximate != "none":
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        ctx.cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        return x * ctx.cdf

    @staticmethod
    def backward(ctx, grad):
        x = ctx.x
        if ctx.approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return grad * (0.5 * (1 + ctx.tanh) + 0.5 * x * (1 - ctx.tanh ** 2) * inner)
        density = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return grad * (ctx.cdf + x * density)


class Softplus(Function):
    """log(1 + e^(βx))/β, computed stably; where βx > threshold it is x itself (PyTorch's
    Softplus(beta=1, threshold=20), so the two agree to the last bit)."""

    rule = "a = log(1 + e^Z) → grad · σ(Z)"

    @staticmethod
    def forward(ctx, x, beta=1.0, threshold=20.0):
        scaled = x * x.dtype.type(beta)
        ctx.linear, ctx.scaled = scaled > threshold, scaled
        smooth = (np.maximum(scaled, 0) + np.log1p(np.exp(-np.abs(scaled)))) / beta
        return np.where(ctx.linear, x, smooth.astype(x.dtype))

    @staticmethod
    def backward(ctx, grad):
        return grad * np.where(ctx.linear, 1, _stable_sigmoid(ctx.scaled))
