"""The blog's network in plain numpy: the oracle for the tests and a text to read next to the blog.

Shapes follow the blog: X (N×D), W1 (D×M), W2 (M×K), Y (N×K), one sample per row.

    Z1 = X·W1      a1 = σ(Z1)      Z2 = a1·W2      a2 = σ(Z2)  (or softmax(Z2))

Backpropagation by the chain rule ("never stop until you reach the target"):

    δ2 = (a2 − Y) · a2(1 − a2)         (mse; for bce and ce the a2(1 − a2) cancels: δ2 = a2 − Y)
    δ1 = (δ2 · W2ᵀ) · a1(1 − a1)
    ∂J/∂W2 = a1ᵀ · δ2                  ∂J/∂W1 = Xᵀ · δ1

`deltas` returns δ1, δ2 exactly as the blog writes them; `gradients` divides by N, because the
blog's cost J = 1/(2N) Σ(a2 − Y)² is a mean over the N samples (see its docstring).
No autograd here: these formulas are derived by hand, which is what makes them a check on the
engine.
"""

from __future__ import annotations

import numpy as np

OUTPUTS = ("sigmoid", "softmax")
LOSSES = {"mse": "sigmoid", "bce": "sigmoid", "ce": "softmax"}   # loss -> its output activation


def sigmoid(Z: np.ndarray) -> np.ndarray:
    """σ(Z) = 1 / (1 + e^−Z), from e^−|Z| so it never overflows (σ(±1000) is exactly 1 or 0)."""
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1, e) / (1 + e)


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise e^Z / Σₖ e^Z, shifted by each row's max first so it never overflows."""
    if Z.shape[1] == 0:
        raise ValueError(f"reference.softmax: needs at least one column (K >= 1), got {Z.shape}")
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(X: np.ndarray, W1: np.ndarray, W2: np.ndarray, output: str = "sigmoid"
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The forward pass: (Z1 (N×M), a1 (N×M), Z2 (N×K), a2 (N×K)); `output` is "sigmoid" or
    "softmax" (the activation of the output layer).

        >>> Z1, a1, Z2, a2 = forward(np.ones((4, 2)), np.zeros((2, 3)), np.zeros((3, 1)))
        >>> a1[0].tolist(), a2[:, 0].tolist()      # σ(0) = 0.5 everywhere
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5])
    """
    if output not in OUTPUTS:
        raise ValueError(f"reference.forward: output must be one of {OUTPUTS}, got {output!r}")
    X, W1, W2 = _check_network(X, W1, W2)
    Z1 = X @ W1
    a1 = sigmoid(Z1)
    Z2 = a1 @ W2
    a2 = sigmoid(Z2) if output == "sigmoid" else softmax(Z2)
    return Z1, a1, Z2, a2


def cost(X: np.ndarray, Y: np.ndarray, W1: np.ndarray, W2: np.ndarray, loss: str = "mse"
         ) -> float:
    """The mean-form cost J whose gradient `gradients` returns:

    mse  J = 1/(2N) Σ (a2 − Y)²                               (sigmoid output)
    bce  J = −1/N Σ [Y log a2 + (1 − Y) log(1 − a2)]          (sigmoid output)
    ce   J = −1/N Σ Y log a2                                  (softmax output)

    The logs are taken from Z2 (log σ(z) = −log(1 + e^−z), log softmax = Z2 − logsumexp), so
    J is finite even where a2 rounds to exactly 0 or 1.
    """
    X, Y, W1, W2 = _check_inputs(X, Y, W1, W2, loss)
    _check_not_empty("cost", X)
    _, _, Z2, a2 = forward(X, W1, W2, LOSSES[loss])
    N = X.shape[0]
    if loss == "mse":
        return float(((a2 - Y) ** 2).sum() / (2 * N))
    if loss == "bce":
        log_a2, log_1_minus_a2 = -np.logaddexp(0, -Z2), -np.logaddexp(0, Z2)
        return float(-(Y * log_a2 + (1 - Y) * log_1_minus_a2).sum() / N)
    shifted = Z2 - Z2.max(axis=1, keepdims=True)
    log_a2 = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(Y * log_a2).sum() / N)


def deltas(X: np.ndarray, Y: np.ndarray, W1: np.ndarray, W2: np.ndarray, loss: str = "mse"
           ) -> tuple[np.ndarray, np.ndarray]:
    """The blog's (δ1 (N×M), δ2 (N×K)), exactly as the blog writes them (no 1/N).

    mse  δ2 = (a2 − Y) · a2(1 − a2)
    bce  δ2 = a2 − Y          the sigmoid's a2(1 − a2) cancels against the cross-entropy's
                              1/(a2(1 − a2))
    ce   δ2 = a2 − Y          softmax + categorical cross-entropy; needs each row of Y to sum
                              to 1 (one-hot or a distribution), otherwise it would be
                              a2·Σₖ Y − Y
    all  δ1 = (δ2 · W2ᵀ) · a1(1 − a1)

    These are the exact gradients ∂J/∂Z2 and ∂J/∂Z1 of the sum-form cost (½ Σ(a2 − Y)², or the
    cross-entropy summed over samples), that is N times those of the blog's mean-form cost.
    """
    _, delta1, delta2 = _backpropagate(X, Y, W1, W2, loss)
    return delta1, delta2


def gradients(X: np.ndarray, Y: np.ndarray, W1: np.ndarray, W2: np.ndarray, loss: str = "mse"
              ) -> tuple[np.ndarray, np.ndarray]:
    """The true gradient (∂J/∂W1 (D×M), ∂J/∂W2 (M×K)) of the mean-form cost J (see `cost`).

    Why the 1/N: the blog's cost is J = 1/(2N) Σ(a2 − Y)², so ∂J/∂a2 = (a2 − Y)/N. The blog
    drops this 1/N: its δ2 = (a2 − Y)·a2(1 − a2) and δ1 = (δ2·W2ᵀ)·a1(1 − a1) (see `deltas`)
    are exact for the sum-form cost ½ Σ(a2 − Y)², and equal N·∂J/∂Z2 and N·∂J/∂Z1 for the
    mean-form cost. So the blog's ∂J/∂W2 = a1ᵀ·δ2 and ∂J/∂W1 = Xᵀ·δ1 are N times too large;
    this function returns them divided by N:

        ∂J/∂W1 = Xᵀ·δ1 / N          ∂J/∂W2 = a1ᵀ·δ2 / N

    The blog's remark that cross-entropy "yields the same result" holds for the chain's
    structure: with a sigmoid output and binary cross-entropy (bce), and with a softmax output
    and categorical cross-entropy (ce, rows of Y summing to 1), the a2(1 − a2) factor cancels
    (for softmax: its Jacobian diag(a2) − a2·a2ᵀ, whose diagonal is a2(1 − a2)) and
    δ2 = a2 − Y, so ∂J/∂Z2 = (a2 − Y)/N. With gradient descent W ← W − α·∂J/∂W, the blog's
    version is the same update with a learning rate N times larger.

        >>> X, Y = np.ones((4, 2)), np.zeros((4, 1))
        >>> W1, W2 = np.zeros((2, 3)), np.zeros((3, 1))
        >>> dJ_dW1, dJ_dW2 = gradients(X, Y, W1, W2, loss="mse")
        >>> float(dJ_dW2[0, 0])     # a1 = a2 = 0.5: (0.5 · 0.5 · 0.25 · 4) / 4
        0.0625
    """
    X, Y, W1, W2 = _check_inputs(X, Y, W1, W2, loss)
    _check_not_empty("gradients", X)
    a1, delta1, delta2 = _backpropagate(X, Y, W1, W2, loss)
    N = X.shape[0]
    return X.T @ delta1 / N, a1.T @ delta2 / N


def _backpropagate(X: np.ndarray, Y: np.ndarray, W1: np.ndarray, W2: np.ndarray, loss: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a1 and the blog's δ1, δ2 (see `deltas`)."""
    X, Y, W1, W2 = _check_inputs(X, Y, W1, W2, loss)
    _, a1, _, a2 = forward(X, W1, W2, LOSSES[loss])
    if loss == "mse":
        delta2 = (a2 - Y) * a2 * (1 - a2)
    else:
        delta2 = a2 - Y
    delta1 = (delta2 @ W2.T) * a1 * (1 - a1)
    return a1, delta1, delta2


# --- input checks: shapes, names and targets, before anything is computed ----------------------

def _as_float_matrix(name: str, value: object) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"reference: {name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"reference: {name} must be 2-D, got shape {array.shape}")
    return array if array.dtype.kind == "f" else array.astype(np.float64)


def _check_not_empty(function: str, X: np.ndarray) -> None:
    if X.shape[0] == 0:
        raise ValueError(f"reference.{function}: the mean-form cost needs N >= 1 samples, "
                         f"got X of shape {X.shape}")


def _check_network(X: object, W1: object, W2: object
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, W1, W2 = (_as_float_matrix(n, v) for n, v in (("X", X), ("W1", W1), ("W2", W2)))
    if X.shape[1] != W1.shape[0]:
        raise ValueError(f"reference: X {X.shape} (N×D) does not fit W1 {W1.shape} (D×M): "
                         f"D = {X.shape[1]} != {W1.shape[0]}")
    if W1.shape[1] != W2.shape[0]:
        raise ValueError(f"reference: W1 {W1.shape} (D×M) does not fit W2 {W2.shape} (M×K): "
                         f"M = {W1.shape[1]} != {W2.shape[0]}")
    return X, W1, W2


def _check_inputs(X: object, Y: object, W1: object, W2: object, loss: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if loss not in LOSSES:
        raise ValueError(f"reference: loss must be one of {tuple(LOSSES)}, got {loss!r}")
    X, W1, W2 = _check_network(X, W1, W2)
    Y = _as_float_matrix("Y", Y)
    expected = (X.shape[0], W2.shape[1])
    if Y.shape != expected:
        raise ValueError(f"reference: Y must have shape (N, K) = {expected} for X {X.shape} and "
                         f"W2 {W2.shape}, got {Y.shape}")
    if loss in ("bce", "ce") and Y.size and not ((Y >= 0) & (Y <= 1)).all():
        raise ValueError(f"reference: loss {loss!r} needs targets Y in [0, 1], got values in "
                         f"[{Y.min()}, {Y.max()}]")
    if loss == "ce" and Y.size and not np.allclose(Y.sum(axis=1), 1):
        raise ValueError("reference: loss 'ce' needs each row of Y to sum to 1 (one-hot or a "
                         "distribution); δ2 = a2 − Y holds only then")
    return X, Y, W1, W2
