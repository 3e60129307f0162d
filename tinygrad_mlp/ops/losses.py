"""The loss Functions: each ONE fused op (one graph node, one numpy pass forward and back).

nn/losses.py holds the Modules users call (`nn.MSELoss()`, ...): they check shapes and targets
and pick the Function here. N, the number of samples, is defined once (`samples`); every loss
averages over it. The helpers the Modules share with these Functions (the [0, 1] check, class
indices to one-hot, the clamps) live here too, so nn and ops never import each other.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from tinygrad_mlp.tensor import Function

LOG_CLAMP = -100.0       # BCE clamps log(ŷ) and log(1 − ŷ) at −100, as PyTorch does
CE_EPSILON = 1e-7        # CrossEntropy clips probabilities of unknown origin to [ε, 1] (Keras)


# --- helpers ------------------------------------------------------------------------------------

def samples(shape: tuple[int, ...], class_axis: int | None = None) -> int:
    """N, the number of samples a loss averages over: the rows (1 for a scalar prediction), or,
    with a class axis, every position but that axis ((N, K) along the last axis: N rows)."""
    if class_axis is not None:
        return math.prod(shape) // shape[class_axis]
    return shape[0] if shape else 1


def position(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


def check_unit_interval(loss: str, what: str, array: np.ndarray, hint: str = "") -> None:
    """Every entry in [0, 1] (NaN fails too), else a ValueError naming the first bad entry."""
    if array.min() >= 0 and array.max() <= 1:
        return
    bad = int(np.flatnonzero(~((array >= 0) & (array <= 1)))[0])
    raise ValueError(f"{loss}: {what} must lie in [0, 1]; got {array.flat[bad].item()!r} at "
                     f"position {position(bad, array.shape)} (shape {array.shape}){hint}")


def one_hot_from_indices(name: str, indices: np.ndarray, a2: np.ndarray, axis: int
                          ) -> np.ndarray:
    """Class indices (shape of a2 without the class axis) → one-hot along `axis`, validated."""
    K = a2.shape[axis]
    if indices.dtype.kind == "f":
        non_integer = np.flatnonzero(~(indices == np.round(indices)))
        if non_integer.size:
            bad = int(non_integer[0])
            raise ValueError(f"{name}: class index {indices.flat[bad].item()!r} at position "
                             f"{position(bad, indices.shape)} is not an integer (K={K} classes)")
        indices = indices.astype(np.int64)
    elif indices.dtype.kind not in "iub":
        raise ValueError(f"{name}: class indices must be integers, got dtype {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= K):
        bad = int(np.flatnonzero((indices < 0) | (indices >= K))[0])
        raise ValueError(f"{name}: class index {int(indices.flat[bad])} at position "
                         f"{position(bad, indices.shape)} is out of range for K={K} classes "
                         f"(valid 0..{K - 1})")
    one_hot = np.zeros_like(a2)
    np.put_along_axis(one_hot, np.expand_dims(indices, axis), 1, axis=axis)
    return one_hot


# --- the Functions ---------------------------------------------------------------------------

class MSE(Function):
    """J = 1/(2N) Σ (a2 − Y)²; ∂J/∂a2 = (a2 − Y)/N."""

    rule = "J = 1/(2N) Σ(a2 − Y)² → grad_a2 = grad · (a2 − Y)/N"

    @staticmethod
    def forward(ctx, a2, Y):
        diff = a2 - Y
        ctx.diff, ctx.N = diff, samples(a2.shape)
        flat = diff.reshape(-1)
        return np.asarray((flat @ flat) / (2 * ctx.N), dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        return ctx.diff * (grad / ctx.N), None


class BCE(Function):
    """−1/N Σ [Y log a2 + (1 − Y) log(1 − a2)] on probabilities, logs clamped at −100.

    The gradient is PyTorch's (a2 − Y) / max(a2(1 − a2), 1e-12) / N: finite at a2 ∈ {0, 1}.
    """

    rule = "J = −1/N Σ[Y log a2 + (1−Y) log(1−a2)] → grad_a2 = grad · (a2 − Y)/(N·a2(1 − a2))"

    @staticmethod
    def forward(ctx, a2, Y):
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(a2), LOG_CLAMP)
            log_q = np.maximum(np.log1p(-a2), LOG_CLAMP)
        ctx.a2, ctx.Y, ctx.N = a2, Y, samples(a2.shape)
        total = np.sum(Y * (log_p - log_q) + log_q)
        return np.asarray(-total / ctx.N, dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        a2 = ctx.a2
        denominator = np.maximum(a2 * (1 - a2), a2.dtype.type(1e-12))
        return (a2 - ctx.Y) / denominator * (grad / ctx.N), None


class BCEWithLogits(Function):
    """BCE from the logits Z of a Sigmoid: 1/N Σ [max(Z, 0) − Z·Y + log(1 + e^−|Z|)].

    Stable for any Z; the gradient with respect to Z is (σ(Z) − Y)/N = (a2 − Y)/N.
    """

    rule = ("J = −1/N Σ[Y log σ(Z) + (1−Y) log(1−σ(Z))] fused with the Sigmoid "
            "→ grad_Z = grad · (a2 − Y)/N")

    @staticmethod
    def forward(ctx, Z, Y, a2=None):
        ctx.a2, ctx.Y, ctx.N = a2, Y, samples(Z.shape)
        total = np.sum(np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z))))
        return np.asarray(total / ctx.N, dtype=Z.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (ctx.a2 - ctx.Y) * (grad / ctx.N), None


@functools.lru_cache(maxsize=None)
def _smallest_normal(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).tiny)


class SoftmaxCrossEntropy(Function):
    """−1/N Σ Y · log_softmax(Z) along `axis`; the gradient with respect to Z is (a2 − Y)/N.

    `a2` (the softmax of Z) is reused when the caller already has it.
    """

    rule = "J = −1/N Σ Y log softmax(Z) fused with the Softmax → grad_Z = grad · (a2 − Y)/N"

    @staticmethod
    def forward(ctx, Z, Y, axis=-1, a2=None):
        if a2 is not None and a2.min() >= _smallest_normal(a2.dtype):
            log_a2 = np.log(a2)             # as exact as log-sum-exp while a2 is a normal number
        else:
            shifted = Z - Z.max(axis=axis, keepdims=True)
            exp = np.exp(shifted)
            sum_exp = exp.sum(axis=axis, keepdims=True)
            log_a2 = shifted - np.log(sum_exp)
            if a2 is None:
                a2 = exp
                a2 /= sum_exp
        ctx.a2, ctx.Y, ctx.N = a2, Y, samples(Z.shape, axis)
        log_a2 *= Y
        return Z.dtype.type(-log_a2.sum() / ctx.N)

    @staticmethod
    def backward(ctx, grad):
        return (ctx.a2 - ctx.Y) * (grad / ctx.N), None


class CrossEntropy(Function):
    """−1/N Σ Y·log(clip(a2, ε, 1)) on probabilities of unknown origin; ∂/∂a2 = −Y/clip(a2)/N."""

    rule = "J = −1/N Σ Y log a2 (a2 clipped to [1e-7, 1]) → grad_a2 = −grad · Y/(N·a2)"

    @staticmethod
    def forward(ctx, a2, Y, axis=-1):
        clipped = np.clip(a2, CE_EPSILON, 1)
        ctx.clipped, ctx.Y, ctx.N = clipped, Y, samples(a2.shape, axis)
        return np.asarray(-np.sum(Y * np.log(clipped)) / ctx.N, dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.Y / ctx.clipped * (grad / ctx.N), None


class L1(Function):
    """J = 1/N Σ |a2 − Y|; ∂J/∂a2 = sign(a2 − Y)/N, 0 where a2 = Y (PyTorch's subgradient)."""

    rule = "J = 1/N Σ|a2 − Y| → grad_a2 = grad · sign(a2 − Y)/N"

    @staticmethod
    def forward(ctx, a2, Y):
        diff = a2 - Y
        ctx.sign, ctx.N = np.sign(diff), samples(a2.shape)
        return np.asarray(np.abs(diff).sum() / ctx.N, dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        return ctx.sign * (grad / ctx.N), None


class Huber(Function):
    """J = 1/N Σ h(a2 − Y), h(d) = ½d² for |d| ≤ δ, else δ(|d| − ½δ); ∂h/∂d = clip(d, −δ, δ)."""

    rule = "J = 1/N Σ huber_δ(a2 − Y) → grad_a2 = grad · clip(a2 − Y, −δ, δ)/N"

    @staticmethod
    def forward(ctx, a2, Y, delta=1.0):
        diff = a2 - Y
        size = np.abs(diff)
        ctx.slope, ctx.N = np.clip(diff, -delta, delta), samples(a2.shape)
        losses = np.where(size <= delta, 0.5 * diff * diff, delta * (size - 0.5 * delta))
        return np.asarray(losses.sum() / ctx.N, dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        return ctx.slope * (grad / ctx.N), None


class NLL(Function):
    """J = −1/N Σₙ Σₖ Y·log_probs with one-hot Y: −1/N Σₙ log_probs[n, yₙ]; ∂J/∂log_probs = −Y/N."""

    rule = "J = −1/N Σₙ log_probs[n, yₙ] → grad_log_probs = −grad · Y/N"

    @staticmethod
    def forward(ctx, log_probs, Y):
        ctx.Y, ctx.N = Y, samples(log_probs.shape)
        return np.asarray(-np.sum(Y * log_probs) / ctx.N, dtype=log_probs.dtype)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.Y * (grad / ctx.N), None
