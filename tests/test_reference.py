"""The blog's hand-derived formulas (reference.py) against the engine and finite differences.

Issue 2, item 8 (a): for drawn N, D, M, K and random weights, the Tensor graph of the blog's
network built from raw ops gives the same ∂J/∂W1, ∂J/∂W2 as `reference.gradients`.
"""

import doctest
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp import reference
from tinygrad_mlp.testing import mlp_shapes, networks

LOSSES = ["mse", "bce", "ce"]


def engine_cost(X, Y, W1, W2, loss):
    """The blog's network and cost from raw ops only (no fused layer or loss); returns
    (J, Z1, Z2) so tests can read ∂J/∂Z too."""
    N = X.shape[0]
    Z1 = X @ W1
    a1 = Z1.sigmoid()
    Z2 = a1 @ W2
    if loss == "mse":
        a2 = Z2.sigmoid()
        J = ((a2 - Y) ** 2).sum() / (2 * N)
    elif loss == "bce":
        a2 = Z2.sigmoid()
        J = -(Y * a2.log() + (1 - Y) * (1 - a2).log()).sum() / N
    else:
        a2 = Z2.softmax(axis=1)
        J = -(Y * a2.log()).sum() / N
    return J, Z1, Z2


def engine_gradients(X, Y, W1, W2, loss, dtype=np.float64):
    W1t = tm.Tensor(W1.astype(dtype), requires_grad=True)
    W2t = tm.Tensor(W2.astype(dtype), requires_grad=True)
    J, Z1, Z2 = engine_cost(tm.Tensor(X.astype(dtype)), tm.Tensor(Y.astype(dtype)), W1t, W2t, loss)
    Z1.retain_grad()
    Z2.retain_grad()
    J.backward()
    return W1t.grad, W2t.grad, Z1.grad, Z2.grad, J.item()


def numeric_gradient(f, W, eps=1e-6):
    """Central differences of the scalar function f at W, entry by entry (float64)."""
    grad = np.zeros_like(W)
    for j in np.ndindex(W.shape):
        plus, minus = W.copy(), W.copy()
        plus[j] += eps
        minus[j] -= eps
        grad[j] = (f(plus) - f(minus)) / (2 * eps)
    return grad


@st.composite
def network_and_loss(draw):
    loss = draw(st.sampled_from(LOSSES))
    return loss, draw(networks(loss=loss))


# --- (a) the engine agrees with the blog ----------------------------------------------------------

@given(case=network_and_loss())
def test_engine_gradients_of_the_blogs_network_equal_the_reference(case):
    loss, (X, Y, W1, W2) = case
    dW1, dW2, _, _, J = engine_gradients(X, Y, W1, W2, loss)
    ref_dW1, ref_dW2 = reference.gradients(X, Y, W1, W2, loss)
    np.testing.assert_allclose(dW1, ref_dW1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dW2, ref_dW2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(J, reference.cost(X, Y, W1, W2, loss), rtol=1e-12)


@given(case=network_and_loss())
def test_the_blogs_deltas_are_n_times_the_engines_dj_dz(case):
    loss, (X, Y, W1, W2) = case
    _, _, dZ1, dZ2, _ = engine_gradients(X, Y, W1, W2, loss)
    delta1, delta2 = reference.deltas(X, Y, W1, W2, loss)
    N = X.shape[0]
    np.testing.assert_allclose(delta2, N * dZ2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(delta1, N * dZ1, rtol=1e-9, atol=1e-12)


@given(case=network_and_loss())
def test_gradients_are_the_blogs_delta_expressions_divided_by_n(case):
    loss, (X, Y, W1, W2) = case
    delta1, delta2 = reference.deltas(X, Y, W1, W2, loss)
    _, a1, _, _ = reference.forward(X, W1, W2, "softmax" if loss == "ce" else "sigmoid")
    dW1, dW2 = reference.gradients(X, Y, W1, W2, loss)
    N = X.shape[0]
    np.testing.assert_array_equal(dW1, X.T @ delta1 / N)
    np.testing.assert_array_equal(dW2, a1.T @ delta2 / N)


@given(case=network_and_loss())
def test_reference_gradients_match_finite_differences_of_the_cost(case):
    loss, (X, Y, W1, W2) = case
    dW1, dW2 = reference.gradients(X, Y, W1, W2, loss)
    num1 = numeric_gradient(lambda W: reference.cost(X, Y, W, W2, loss), W1)
    num2 = numeric_gradient(lambda W: reference.cost(X, Y, W1, W, loss), W2)
    np.testing.assert_allclose(dW1, num1, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dW2, num2, rtol=1e-5, atol=1e-8)


@given(case=network_and_loss())
def test_float32_engine_gradients_stay_float32_and_agree(case):
    loss, (X, Y, W1, W2) = case
    dW1, dW2, _, _, _ = engine_gradients(X, Y, W1, W2, loss, dtype=np.float32)
    ref_dW1, ref_dW2 = reference.gradients(X, Y, W1, W2, loss)
    assert dW1.dtype == dW2.dtype == np.float32
    np.testing.assert_allclose(dW1, ref_dW1, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(dW2, ref_dW2, rtol=1e-3, atol=1e-5)


@given(shape=mlp_shapes(), data=st.data())
def test_ce_with_soft_targets_whose_rows_sum_to_one(shape, data):
    N, D, M, K = shape
    X, _, W1, W2 = data.draw(networks(loss="mse", shape=shape))
    logits = np.random.default_rng(N * K).standard_normal((N, K))
    Y = reference.softmax(logits)                       # a distribution per row, not one-hot
    dW1, dW2, _, _, _ = engine_gradients(X, Y, W1, W2, "ce")
    ref_dW1, ref_dW2 = reference.gradients(X, Y, W1, W2, "ce")
    np.testing.assert_allclose(dW1, ref_dW1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dW2, ref_dW2, rtol=1e-9, atol=1e-12)


# --- the forward pass -----------------------------------------------------------------------------

@given(X_Y_W1_W2=networks(), output=st.sampled_from(["sigmoid", "softmax"]))
def test_forward_returns_the_blogs_four_arrays(X_Y_W1_W2, output):
    X, _, W1, W2 = X_Y_W1_W2
    Z1, a1, Z2, a2 = reference.forward(X, W1, W2, output)
    np.testing.assert_array_equal(Z1, X @ W1)
    np.testing.assert_allclose(a1, 1 / (1 + np.exp(-Z1)), rtol=1e-12)
    np.testing.assert_array_equal(Z2, a1 @ W2)
    assert a2.shape == (X.shape[0], W2.shape[1])
    if output == "softmax":
        np.testing.assert_allclose(a2.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(a2, np.exp(Z2) / np.exp(Z2).sum(axis=1, keepdims=True),
                                   rtol=1e-12)
    else:
        np.testing.assert_allclose(a2, 1 / (1 + np.exp(-Z2)), rtol=1e-12)


def test_sigmoid_and_softmax_are_exact_and_silent_at_extremes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            s = reference.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
            p = reference.softmax(np.array([[1e4, 0.0, -1e4]]))
            J = reference.cost(np.ones((1, 1)), np.array([[0.0, 1.0]]), np.full((1, 1), 1e3),
                               np.array([[1e3, -1e3]]), "bce")
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0]])
    assert J == pytest.approx(2000.0)      # Z2 = ±1000, confidently wrong: −log σ(−1000) twice


def test_a_worked_example_by_hand():
    """Zero weights: a1 = a2 = 1/2 everywhere, so every formula reduces to fractions."""
    X, Y = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0], [0.0]])
    W1, W2 = np.zeros((2, 3)), np.zeros((3, 1))
    delta1, delta2 = reference.deltas(X, Y, W1, W2, "mse")
    np.testing.assert_array_equal(delta2, [[-0.125], [0.125]])   # (a2 − Y)·a2(1 − a2)
    np.testing.assert_array_equal(delta1, np.zeros((2, 3)))      # W2 = 0 stops the chain
    dW1, dW2 = reference.gradients(X, Y, W1, W2, "mse")
    np.testing.assert_array_equal(dW2, np.zeros((3, 1)))         # a1ᵀ·δ2/N = (½·(−⅛ + ⅛))/2
    assert reference.cost(X, Y, W1, W2, "mse") == 0.125          # (¼ + ¼) / (2·2)


# --- documentation and validation ---------------------------------------------------------------------

def test_the_docstring_examples_run():
    result = doctest.testmod(reference)
    assert result.attempted >= 4 and result.failed == 0


def test_the_gradients_docstring_explains_the_1_over_n():
    done = subprocess.run([sys.executable, "-c",
                           "import tinygrad_mlp as tm; print(tm.reference.gradients.__doc__)"],
                          capture_output=True, text=True, timeout=60)
    doc = done.stdout
    assert done.returncode == 0, done.stderr
    for phrase in ["1/(2N)", "(a2 − Y)/N", "drops this 1/N", "sum-form", "N·∂J/∂Z",
                   "a2(1 − a2) factor cancels", "/ N"]:
        assert phrase in doc, phrase


@pytest.mark.parametrize("call, message", [
    (lambda: reference.forward(np.ones((2, 3)), np.ones((4, 5)), np.ones((5, 1))),
     r"X \(2, 3\).*W1 \(4, 5\)"),
    (lambda: reference.forward(np.ones((2, 3)), np.ones((3, 4)), np.ones((5, 1))),
     r"W1 \(3, 4\).*W2 \(5, 1\)"),
    (lambda: reference.forward(np.ones(3), np.ones((3, 4)), np.ones((4, 1))), r"X must be 2-D"),
    (lambda: reference.forward(np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 1)), "relu"),
     r"output must be one of .*'relu'"),
    (lambda: reference.gradients(np.ones((2, 3)), np.ones((2, 1)), np.ones((3, 4)),
                                 np.ones((4, 1)), "hinge"), r"loss must be one of .*'hinge'"),
    (lambda: reference.gradients(np.ones((2, 3)), np.ones((3, 1)), np.ones((3, 4)),
                                 np.ones((4, 1))), r"\(2, 1\).*\(3, 1\)"),
    (lambda: reference.deltas(np.ones((2, 3)), np.full((2, 2), 0.7), np.ones((3, 4)),
                              np.ones((4, 2)), "ce"), r"sum to 1"),
    (lambda: reference.deltas(np.ones((2, 3)), np.full((2, 1), 2.0), np.ones((3, 4)),
                              np.ones((4, 1)), "bce"), r"\[0, 1\]"),
    (lambda: reference.gradients(np.ones((0, 3)), np.ones((0, 1)), np.ones((3, 4)),
                                 np.ones((4, 1))), r"N >= 1"),
])
def test_bad_inputs_are_value_errors_naming_what_came(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_non_numeric_inputs_are_type_errors():
    with pytest.raises(TypeError, match="X must hold real numbers"):
        reference.forward(np.array([["a"]]), np.ones((1, 1)), np.ones((1, 1)))
