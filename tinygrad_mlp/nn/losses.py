"""Losses: each a Module whose `loss(a2, Y)` returns a scalar Tensor of a2's dtype.

Each is ONE fused Function (one graph node, one numpy pass forward and back), not a chain of
raw ops. N is the number of samples (rows). Prediction and target shapes must match exactly
(CrossEntropyLoss also takes 1-D class indices): a loss never broadcasts (n, 1) against (n,).
Targets may be Tensors or arrays; they never receive a gradient.

Fusing with the output layer (the blog's remark that cross-entropy "yields the same result"):
when a2 came out of a Sigmoid op (BCELoss) or a Softmax op (CrossEntropyLoss) that is still in
the graph, the loss is computed from the logits Z2 with a log-sum-exp, so it is finite for any
logits and its gradient with respect to Z2 is exactly (a2 − Y)/N. The one mechanism for this is
`fusable_activation`: it reads a2's public `creator` (the op that made a2, and its inputs).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp._checks import finite_real
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.tensor import Function, Tensor

LOG_CLAMP = -100.0       # BCELoss clamps log(ŷ) and log(1 − ŷ) at −100, as PyTorch does
CE_EPSILON = 1e-7        # CrossEntropyLoss clips probabilities of unknown origin to [ε, 1] (Keras)
ONE_HOT_TOLERANCE = 1e-3  # how far a target row's sum may be from 1


# --- helpers ------------------------------------------------------------------------------------

def _prediction(loss: str, pred: Any) -> Tensor:
    if not isinstance(pred, Tensor):
        pred = Tensor(pred)
    if pred.data.size == 0:
        raise ValueError(f"{loss}: empty batch (prediction shape {pred.shape}); a mean over 0 "
                         f"samples is undefined")
    return pred


def _target(loss: str, target: Any, pred: np.ndarray) -> np.ndarray:
    """The target as an array in the prediction's dtype, with exactly the prediction's shape."""
    array = target.data if isinstance(target, Tensor) else np.asarray(target)
    if array.shape != pred.shape:
        raise ValueError(f"{loss}: prediction shape {pred.shape} != target shape {array.shape}; "
                         f"they must match exactly (reshape the target to {pred.shape})")
    if array.dtype != pred.dtype:
        array = array.astype(pred.dtype)
    return array


def _rows(shape: tuple[int, ...]) -> int:
    """N: the number of samples, i.e. rows (1 for a single scalar prediction)."""
    return shape[0] if shape else 1


def _position(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


def fusable_activation(a2: Tensor, activation: type[Function]) -> Function | None:
    """The `activation` op (e.g. ops.Softmax) that computed a2, when a2 came straight out of it
    and its graph is still alive; else None. Its `parents[0]` is the logits Z the loss fuses
    with (under no_grad, or after backward freed the graph, there is nothing to fuse with)."""
    creator = a2.creator
    if type(creator) is activation and creator.parents is not None:
        return creator
    return None


def _check_unit_interval(loss: str, what: str, array: np.ndarray, hint: str = "") -> None:
    """Every entry in [0, 1] (NaN fails too), else a ValueError naming the first bad entry."""
    if array.min() >= 0 and array.max() <= 1:
        return
    bad = int(np.flatnonzero(~((array >= 0) & (array <= 1)))[0])
    raise ValueError(f"{loss}: {what} must lie in [0, 1]; got {array.flat[bad].item()!r} at "
                     f"position {_position(bad, array.shape)} (shape {array.shape}){hint}")


# --- MSE -------------------------------------------------------------------------------------

class MSE(Function):
    """J = 1/(2N) Σ (a2 − Y)²; ∂J/∂a2 = (a2 − Y)/N."""

    rule = "J = 1/(2N) Σ(a2 − Y)² → grad_a2 = grad · (a2 − Y)/N"

    @staticmethod
    def forward(ctx, a2, Y):
        diff = a2 - Y
        ctx.diff, ctx.N = diff, _rows(a2.shape)
        flat = diff.reshape(-1)
        return np.asarray((flat @ flat) / (2 * ctx.N), dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        return ctx.diff * (grad / ctx.N), None


class MSELoss(Module):
    """The blog's cost J = 1/(2N) Σₙ Σₖ (a2 − Y)², N the number of rows; ∂J/∂a2 = (a2 − Y)/N.

    Note: PyTorch's MSELoss and Keras's mean_squared_error divide by N·K (every entry) and do
    not halve; multiply this loss by 2/K to compare.
    """

    replayable = True

    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("MSELoss", a2)
        return MSE.apply(a2, _target("MSELoss", Y, a2.data))


# --- binary cross-entropy --------------------------------------------------------------------

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
        ctx.a2, ctx.Y, ctx.N = a2, Y, _rows(a2.shape)
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
        ctx.a2, ctx.Y, ctx.N = a2, Y, _rows(Z.shape)
        total = np.sum(np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z))))
        return np.asarray(total / ctx.N, dtype=Z.dtype)

    @staticmethod
    def backward(ctx, grad):
        return (ctx.a2 - ctx.Y) * (grad / ctx.N), None


class BCELoss(Module):
    """The blog's cross-entropy on probabilities: −1/N Σₙ Σₖ [y log ŷ + (1 − y) log(1 − ŷ)].

    Finite when ŷ is exactly 0 or 1: each log is clamped at −100 (as PyTorch does). When ŷ is the
    output of a Sigmoid still in the graph, the loss is computed from its logits instead (stable
    BCE-with-logits, gradient (a2 − Y)/N with respect to the logits). Targets must lie in [0, 1].
    """

    replayable = True

    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("BCELoss", a2)
        Y = _target("BCELoss", Y, a2.data)
        _check_unit_interval("BCELoss", "targets", Y)
        sigmoid = fusable_activation(a2, ops.Sigmoid)
        if sigmoid is not None:
            return BCEWithLogits.apply(sigmoid.parents[0], Y, a2=a2.data)
        _check_unit_interval("BCELoss", "predictions (probabilities)", a2.data)
        return BCE.apply(a2, Y)


# --- categorical cross-entropy -------------------------------------------------------------

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
        ctx.a2, ctx.Y, ctx.N = a2, Y, Z.size // Z.shape[axis]
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
        ctx.clipped, ctx.Y, ctx.N = clipped, Y, a2.size // a2.shape[axis]
        return np.asarray(-np.sum(Y * np.log(clipped)) / ctx.N, dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.Y / ctx.clipped * (grad / ctx.N), None


class CrossEntropyLoss(Module):
    """Categorical cross-entropy −1/N Σₙ Σₖ y log ŷ; targets one-hot rows or 1-D class indices.

    - On the output of a Softmax still in the graph (the blog's softmax layer) it fuses with it:
      log-softmax of the logits, finite for ANY logits, gradient (a2 − Y)/N wrt the logits.
    - `from_logits=True`: the prediction is raw scores Z; the same fused computation.
    - Otherwise (probabilities computed elsewhere, e.g. under no_grad) ŷ is clipped to
      [1e-7, 1] (`CE_EPSILON`, as Keras) before the log.
    Target rows may also be probability distributions (non-negative, summing to 1).
    """

    replayable = True

    def __init__(self, from_logits: bool = False) -> None:
        super().__init__()
        self.from_logits = bool(from_logits)

    def extra_repr(self) -> str:
        return f"from_logits={self.from_logits}"

    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("CrossEntropyLoss", a2)
        softmax = fusable_activation(a2, ops.Softmax)
        if softmax is not None and self.from_logits:
            raise ValueError("CrossEntropyLoss(from_logits=True) got the output of a Softmax: "
                             "softmax would be applied twice; use CrossEntropyLoss() (it fuses "
                             "with the Softmax) or drop the Softmax layer")
        axis = softmax.axis if softmax is not None else a2.ndim - 1
        Y = self._targets(Y, a2.data, axis)
        if softmax is not None:
            return SoftmaxCrossEntropy.apply(softmax.parents[0], Y, axis=axis, a2=a2.data)
        if self.from_logits:
            return SoftmaxCrossEntropy.apply(a2, Y, axis=axis)
        _check_unit_interval("CrossEntropyLoss", "predictions (probabilities)", a2.data,
                             "; pass from_logits=True for raw scores")
        return CrossEntropy.apply(a2, Y, axis=axis)

    @staticmethod
    def _targets(Y: Any, a2: np.ndarray, axis: int) -> np.ndarray:
        """One-hot (or probability) rows in a2's dtype, from either target form, validated."""
        name = "CrossEntropyLoss"
        array = Y.data if isinstance(Y, Tensor) else np.asarray(Y)
        if a2.ndim == 0:
            raise ValueError(f"{name}: the prediction must have a class axis, got a scalar")
        K = a2.shape[axis]
        if array.shape == a2.shape[:axis] + a2.shape[axis + 1:] and array.shape != a2.shape:
            if K == 1:     # (n, 1) against (n,): a binary problem, not one class
                raise ValueError(f"{name}: prediction shape {a2.shape} != target shape "
                                 f"{array.shape}, and one class is no categorical problem; for "
                                 f"binary targets use BCELoss with targets of shape {a2.shape}")
            return _one_hot_from_indices(name, array, a2, axis)
        array = _target(name, array, a2)
        sums = array.sum(axis=axis)
        if not (array.min() >= 0 and np.abs(sums - 1).max() <= ONE_HOT_TOLERANCE):
            negative = np.flatnonzero(~(array >= 0))
            if negative.size:
                bad = int(negative[0])
                value = array.flat[bad].item()
                what = "is not a number" if value != value else "is negative"    # NaN
                raise ValueError(f"{name}: target {value!r} at position "
                                 f"{_position(bad, array.shape)} {what}; one-hot rows "
                                 f"over K={K} classes must be non-negative and sum to 1")
            bad = int(np.flatnonzero(~(np.abs(sums - 1) <= ONE_HOT_TOLERANCE))[0])
            raise ValueError(f"{name}: target row {_position(bad, sums.shape)} sums to "
                             f"{sums.flat[bad].item()!r}, expected 1 (one-hot rows over K={K} "
                             f"classes)")
        return array


def _one_hot_from_indices(name: str, indices: np.ndarray, a2: np.ndarray, axis: int
                          ) -> np.ndarray:
    """Class indices (shape of a2 without the class axis) → one-hot along `axis`, validated."""
    K = a2.shape[axis]
    if indices.dtype.kind == "f":
        non_integer = np.flatnonzero(~(indices == np.round(indices)))
        if non_integer.size:
            bad = int(non_integer[0])
            raise ValueError(f"{name}: class index {indices.flat[bad].item()!r} at position "
                             f"{_position(bad, indices.shape)} is not an integer (K={K} classes)")
        indices = indices.astype(np.int64)
    elif indices.dtype.kind not in "iub":
        raise ValueError(f"{name}: class indices must be integers, got dtype {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= K):
        bad = int(np.flatnonzero((indices < 0) | (indices >= K))[0])
        raise ValueError(f"{name}: class index {int(indices.flat[bad])} at position "
                         f"{_position(bad, indices.shape)} is out of range for K={K} classes "
                         f"(valid 0..{K - 1})")
    one_hot = np.zeros(a2.shape, dtype=a2.dtype)
    np.put_along_axis(one_hot, np.expand_dims(indices, axis), 1, axis=axis)
    return one_hot


# --- L1 and Huber ------------------------------------------------------------------------------

class L1(Function):
    """J = 1/N Σ |a2 − Y|; ∂J/∂a2 = sign(a2 − Y)/N, 0 where a2 = Y (PyTorch's subgradient)."""

    rule = "J = 1/N Σ|a2 − Y| → grad_a2 = grad · sign(a2 − Y)/N"

    @staticmethod
    def forward(ctx, a2, Y):
        diff = a2 - Y
        ctx.sign, ctx.N = np.sign(diff), _rows(a2.shape)
        return np.asarray(np.abs(diff).sum() / ctx.N, dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        return ctx.sign * (grad / ctx.N), None


class L1Loss(Module):
    """Mean absolute error in this library's normalisation: J = 1/N Σₙ Σₖ |a2 − Y|, summed over
    each row and averaged over the N rows (like the blog's J).

    Note: PyTorch's L1Loss (and Keras's mean_absolute_error) average over all N·K entries:
    divide this loss by K to compare. The gradient at a2 = Y is 0, as in PyTorch.
    """

    replayable = True

    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("L1Loss", a2)
        return L1.apply(a2, _target("L1Loss", Y, a2.data))


class Huber(Function):
    """J = 1/N Σ h(a2 − Y), h(d) = ½d² for |d| ≤ δ, else δ(|d| − ½δ); ∂h/∂d = clip(d, −δ, δ)."""

    rule = "J = 1/N Σ huber_δ(a2 − Y) → grad_a2 = grad · clip(a2 − Y, −δ, δ)/N"

    @staticmethod
    def forward(ctx, a2, Y, delta=1.0):
        diff = a2 - Y
        size = np.abs(diff)
        ctx.slope, ctx.N = np.clip(diff, -delta, delta), _rows(a2.shape)
        losses = np.where(size <= delta, 0.5 * diff * diff, delta * (size - 0.5 * delta))
        return np.asarray(losses.sum() / ctx.N, dtype=a2.dtype)

    @staticmethod
    def backward(ctx, grad):
        return ctx.slope * (grad / ctx.N), None


class HuberLoss(Module):
    """Huber loss (quadratic within `delta` of the target, linear beyond) in this library's
    normalisation: J = 1/N Σₙ Σₖ h(a2 − Y), summed over each row and averaged over the N rows.

    Note: PyTorch's HuberLoss averages over all N·K entries: divide this loss by K to compare.
    """

    replayable = True

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = finite_real("delta", delta, owner="HuberLoss", low=0.0, low_open=True)

    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("HuberLoss", a2)
        return Huber.apply(a2, _target("HuberLoss", Y, a2.data), delta=self.delta)

    def extra_repr(self) -> str:
        return f"delta={self.delta}"


# --- negative log-likelihood ---------------------------------------------------------------------

class NLL(Function):
    """J = −1/N Σₙ Σₖ Y·log_probs with one-hot Y: −1/N Σₙ log_probs[n, yₙ]; ∂J/∂log_probs = −Y/N."""

    rule = "J = −1/N Σₙ log_probs[n, yₙ] → grad_log_probs = −grad · Y/N"

    @staticmethod
    def forward(ctx, log_probs, Y):
        ctx.Y, ctx.N = Y, _rows(log_probs.shape)
        return np.asarray(-np.sum(Y * log_probs) / ctx.N, dtype=log_probs.dtype)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.Y * (grad / ctx.N), None


class NLLLoss(Module):
    """Negative log-likelihood of class indices under log-probabilities (N, K), e.g. the output
    of nn.LogSoftmax: J = −1/N Σₙ log_probs[n, yₙ], with targets y of shape (N,), ints in
    0 … K−1.

    This library sums over a row and averages over the N rows (like the blog's J); a row holds
    one term here, so this equals PyTorch's NLLLoss(reduction="mean") without class weights.
    The input is not checked to be ≤ 0 (PyTorch does not either).
    """

    replayable = True

    def forward(self, log_probs: Any, Y: Any) -> Tensor:
        log_probs = _prediction("NLLLoss", log_probs)
        indices = Y.data if isinstance(Y, Tensor) else np.asarray(Y)
        if log_probs.ndim != 2 or indices.shape != log_probs.shape[:1]:
            raise ValueError(f"NLLLoss: expected log-probabilities of shape (N, K) and class "
                             f"indices of shape (N,); got {log_probs.shape} and {indices.shape}")
        one_hot = _one_hot_from_indices("NLLLoss", indices, log_probs.data, axis=1)
        return NLL.apply(log_probs, one_hot)
