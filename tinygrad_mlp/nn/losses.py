"""Losses: each a Module whose `loss(a2, Y)` returns a scalar Tensor of a2's dtype.

Each is ONE fused Function from ops/losses.py (one graph node, one numpy pass forward and
back), not a chain of raw ops. N is the number of samples (rows). Prediction and target shapes must match exactly
(CrossEntropyLoss also takes 1-D class indices): a loss never broadcasts (n, 1) against (n,).
Targets may be Tensors or arrays; they never receive a gradient.

Fusing with the output layer (the blog's remark that cross-entropy "yields the same result"):
when a2 came out of a Sigmoid op (BCELoss) or a Softmax op (CrossEntropyLoss) that is still in
the graph, the loss is computed from the logits Z2 with a log-sum-exp, so it is finite for any
logits and its gradient with respect to Z2 is exactly (a2 − Y)/N. The one mechanism for this is
`fusable_activation`: it reads a2's public `creator` (the op that made a2, and its inputs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp._checks import finite_real
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.ops.losses import (BCE, CE_EPSILON, L1, LOG_CLAMP, MSE, NLL,  # noqa: F401
                                     BCEWithLogits, CrossEntropy, Huber, SoftmaxCrossEntropy,
                                     check_unit_interval, one_hot_from_indices, position)
from tinygrad_mlp.tensor import Function, Tensor, as_array

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
    array = as_array(target)
    if array.shape != pred.shape:
        raise ValueError(f"{loss}: prediction shape {pred.shape} != target shape {array.shape}; "
                         f"they must match exactly (reshape the target to {pred.shape})")
    if array.dtype != pred.dtype:
        array = array.astype(pred.dtype)
    return array


def fusable_activation(a2: Tensor, activation: type[Function]) -> Function | None:
    """The `activation` op (e.g. ops.Softmax) that computed a2, when a2 came straight out of it
    and its graph is still alive; else None. Its `parents[0]` is the logits Z the loss fuses
    with (under no_grad, or after backward freed the graph, there is nothing to fuse with)."""
    creator = a2.creator
    if type(creator) is activation and creator.parents is not None:
        return creator
    return None


# --- MSE -------------------------------------------------------------------------------------

class MSELoss(Module):
    """The blog's cost J = 1/(2N) Σₙ Σₖ (a2 − Y)², N the number of rows; ∂J/∂a2 = (a2 − Y)/N.

    Note: PyTorch's MSELoss and Keras's mean_squared_error divide by N·K (every entry) and do
    not halve; multiply this loss by 2/K to compare.
    """


    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("MSELoss", a2)
        return MSE.apply(a2, _target("MSELoss", Y, a2.data))


# --- binary cross-entropy --------------------------------------------------------------------

class BCELoss(Module):
    """The blog's cross-entropy on probabilities: −1/N Σₙ Σₖ [y log ŷ + (1 − y) log(1 − ŷ)].

    Finite when ŷ is exactly 0 or 1: each log is clamped at −100 (as PyTorch does). When ŷ is the
    output of a Sigmoid still in the graph, the loss is computed from its logits instead (stable
    BCE-with-logits, gradient (a2 − Y)/N with respect to the logits). Targets must lie in [0, 1].
    """


    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("BCELoss", a2)
        Y = _target("BCELoss", Y, a2.data)
        check_unit_interval("BCELoss", "targets", Y)
        sigmoid = fusable_activation(a2, ops.Sigmoid)
        if sigmoid is not None:
            return BCEWithLogits.apply(sigmoid.parents[0], Y, a2=a2.data)
        check_unit_interval("BCELoss", "predictions (probabilities)", a2.data)
        return BCE.apply(a2, Y)


# --- categorical cross-entropy -------------------------------------------------------------

class CrossEntropyLoss(Module):
    """Categorical cross-entropy −1/N Σₙ Σₖ y log ŷ; targets one-hot rows or 1-D class indices.

    - On the output of a Softmax still in the graph (the blog's softmax layer) it fuses with it:
      log-softmax of the logits, finite for ANY logits, gradient (a2 − Y)/N wrt the logits.
    - `from_logits=True`: the prediction is raw scores Z; the same fused computation.
    - Otherwise (probabilities computed elsewhere, e.g. under no_grad) ŷ is clipped to
      [1e-7, 1] (`CE_EPSILON`, as Keras) before the log.
    Target rows may also be probability distributions (non-negative, summing to 1).
    """


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
        check_unit_interval("CrossEntropyLoss", "predictions (probabilities)", a2.data,
                             "; pass from_logits=True for raw scores")
        return CrossEntropy.apply(a2, Y, axis=axis)

    @staticmethod
    def _targets(Y: Any, a2: np.ndarray, axis: int) -> np.ndarray:
        """One-hot (or probability) rows in a2's dtype, from either target form, validated."""
        name = "CrossEntropyLoss"
        array = as_array(Y)
        if a2.ndim == 0:
            raise ValueError(f"{name}: the prediction must have a class axis, got a scalar")
        K = a2.shape[axis]
        if array.shape == a2.shape[:axis] + a2.shape[axis + 1:] and array.shape != a2.shape:
            if K == 1:     # (n, 1) against (n,): a binary problem, not one class
                raise ValueError(f"{name}: prediction shape {a2.shape} != target shape "
                                 f"{array.shape}, and one class is no categorical problem; for "
                                 f"binary targets use BCELoss with targets of shape {a2.shape}")
            return one_hot_from_indices(name, array, a2, axis)
        array = _target(name, array, a2)
        sums = array.sum(axis=axis)
        if not (array.min() >= 0 and np.abs(sums - 1).max() <= ONE_HOT_TOLERANCE):
            negative = np.flatnonzero(~(array >= 0))
            if negative.size:
                bad = int(negative[0])
                value = array.flat[bad].item()
                what = "is not a number" if value != value else "is negative"    # NaN
                raise ValueError(f"{name}: target {value!r} at position "
                                 f"{position(bad, array.shape)} {what}; one-hot rows "
                                 f"over K={K} classes must be non-negative and sum to 1")
            bad = int(np.flatnonzero(~(np.abs(sums - 1) <= ONE_HOT_TOLERANCE))[0])
            raise ValueError(f"{name}: target row {position(bad, sums.shape)} sums to "
                             f"{sums.flat[bad].item()!r}, expected 1 (one-hot rows over K={K} "
                             f"classes)")
        return array


# --- L1 and Huber ------------------------------------------------------------------------------

class L1Loss(Module):
    """Mean absolute error in this library's normalisation: J = 1/N Σₙ Σₖ |a2 − Y|, summed over
    each row and averaged over the N rows (like the blog's J).

    Note: PyTorch's L1Loss (and Keras's mean_absolute_error) average over all N·K entries:
    divide this loss by K to compare. The gradient at a2 = Y is 0, as in PyTorch.
    """


    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("L1Loss", a2)
        return L1.apply(a2, _target("L1Loss", Y, a2.data))


class HuberLoss(Module):
    """Huber loss (quadratic within `delta` of the target, linear beyond) in this library's
    normalisation: J = 1/N Σₙ Σₖ h(a2 − Y), summed over each row and averaged over the N rows.

    Note: PyTorch's HuberLoss averages over all N·K entries: divide this loss by K to compare.
    """


    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = finite_real("delta", delta, owner="HuberLoss", low=0.0, low_open=True)

    def forward(self, a2: Any, Y: Any) -> Tensor:
        a2 = _prediction("HuberLoss", a2)
        return Huber.apply(a2, _target("HuberLoss", Y, a2.data), delta=self.delta)

    def extra_repr(self) -> str:
        return f"delta={self.delta}"


# --- negative log-likelihood ---------------------------------------------------------------------

class NLLLoss(Module):
    """Negative log-likelihood of class indices under log-probabilities (N, K), e.g. the output
    of nn.LogSoftmax: J = −1/N Σₙ log_probs[n, yₙ], with targets y of shape (N,), ints in
    0 … K−1.

    This library sums over a row and averages over the N rows (like the blog's J); a row holds
    one term here, so this equals PyTorch's NLLLoss(reduction="mean") without class weights.
    The input is not checked to be ≤ 0 (PyTorch does not either).
    """


    def forward(self, log_probs: Any, Y: Any) -> Tensor:
        log_probs = _prediction("NLLLoss", log_probs)
        indices = as_array(Y)
        if log_probs.ndim != 2 or indices.shape != log_probs.shape[:1]:
            raise ValueError(f"NLLLoss: expected log-probabilities of shape (N, K) and class "
                             f"indices of shape (N,); got {log_probs.shape} and {indices.shape}")
        one_hot = one_hot_from_indices("NLLLoss", indices, log_probs.data, axis=1)
        return NLL.apply(log_probs, one_hot)
