"""The engine's pitfalls (tensor.py): graphs that reuse nodes, broadcasting, deep chains,
extreme values, grad mode, repeated and non-scalar backward, errors, dtypes and memory."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp.testing import arrays, assert_gradients_match, broadcastable_shapes


def leaf(values, dtype=np.float64):
    return tm.Tensor(np.array(values, dtype=dtype), requires_grad=True)


# --- nodes used more than once ------------------------------------------------------------------

@given(x=arrays(min_value=-3, max_value=3))
def test_a_node_used_twice_accumulates(x):
    t = leaf(x)
    (t * t).backward(np.ones_like(x))
    np.testing.assert_allclose(t.grad, 2 * x)
    a = leaf(x)
    b = a + a
    (b + b).backward(np.full_like(x, 0.5))
    np.testing.assert_array_equal(a.grad, np.full_like(x, 2.0))


@given(x=arrays(min_value=-2, max_value=2))
def test_diamonds_match_finite_differences(x):
    def diamond(t):
        h = t.sigmoid()                              # h feeds three branches that meet again
        return h * h.exp() + (h - t).tanh() * h
    assert_gradients_match(diamond, x)


def test_each_backward_runs_once_per_node_in_a_diamond():
    calls = []

    class Counted(tm.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            calls.append(1)
            return grad * 2

    x = leaf([1.0, 2.0])
    h = Counted.apply(x)
    ((h * 3) + (h * 4)).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(x.grad, [14.0, 14.0])


# --- broadcasting -------------------------------------------------------------------------------

@given(shapes=broadcastable_shapes(), data=st.data())
def test_broadcast_gradients_are_summed_back_to_each_input_shape(shapes, data):
    a = data.draw(arrays(shapes[0]))
    b = data.draw(arrays(shapes[1]))
    ta, tb = leaf(a), leaf(b)
    out = ta * 1.0 + tb
    G = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(G)
    expected_a = np.broadcast_to(G, out.shape)
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    # the summed-back gradient, written independently: sum over every broadcast axis
    for grad, shape in ((ta.grad, a.shape), (tb.grad, b.shape)):
        padded = (1,) * (out.ndim - len(shape)) + shape
        axes = tuple(i for i, n in enumerate(padded) if n == 1 and out.shape[i] != 1)
        want = expected_a.sum(axis=axes, keepdims=True).reshape(shape)
        np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-12)


def test_bias_gradient_is_the_column_sum():
    X, b = leaf(np.ones((4, 3))), leaf(np.zeros(3))
    G = np.arange(12.0).reshape(4, 3)
    (X + b).backward(G)
    np.testing.assert_array_equal(b.grad, G.sum(axis=0))


# --- deep graphs ----------------------------------------------------------------------------------

def test_a_100000_op_chain_backpropagates():
    x = leaf(1.0)
    y = x
    for _ in range(100_000):
        y = y + 1.0
    assert tm.graph_size(y) == 100_000
    y.backward()
    assert x.grad == 1.0
    assert tm.graph_size(y) == 0


def test_deleting_a_100000_op_chain_does_not_crash():
    code = ("import tinygrad_mlp as tm\n"
            "y = x = tm.Tensor(1.0, requires_grad=True)\n"
            "for _ in range(100_000): y = y * 1.0\n"
            "del y\nprint('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# --- extreme values ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_softmax_and_log_softmax_at_huge_logits_are_finite_and_exact(scale):
    logits = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]) * scale
    with np.errstate(all="raise", under="ignore"):      # e^-20000 may underflow to 0: exact
        t = leaf(logits)
        p = t.softmax(axis=1)
        log_p = t.log_softmax(axis=1)
        G = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
        (p * G).sum().backward()
        grad_softmax = t.grad.copy()
        t.zero_grad()
        (log_p * G).sum().backward()
    winners = np.argmax(logits, axis=1)
    np.testing.assert_array_equal(p.data, np.eye(3)[winners])       # exact one-hot
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.testing.assert_allclose(log_p.data, shifted, rtol=1e-12)       # log Σ e^shifted = log 1
    assert np.isfinite(grad_softmax).all() and np.isfinite(t.grad).all()
    np.testing.assert_allclose(grad_softmax, 0, atol=1e-12)           # saturated: no gradient
    np.testing.assert_allclose(t.grad, G - np.eye(3)[winners] * G.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_of_plus_minus_1000_is_exact_without_warnings(dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):   # e^-1000 underflows to 0: exact
            x = leaf([-1000.0, 0.0, 1000.0], dtype)
            y = x.sigmoid()
            y.backward(np.ones(3, dtype))
    np.testing.assert_array_equal(y.data, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.25, 0.0])
    assert y.dtype == x.grad.dtype == dtype


# --- grad mode, detach, retain_grad -------------------------------------------------------------------

def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with tm.no_grad():
        y = (x * 2).sigmoid().sum()
        assert not tm.is_grad_enabled()
    assert tm.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None and tm.graph_size(y) == 0
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    z = (x * 2).sum()
    assert tm.graph_size(z) == 2


def test_detach_shares_data_and_cuts_the_graph():
    x = leaf([1.0, 2.0])
    y = x * 3
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and np.shares_memory(d.data, y.data)
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])     # no path through d


def test_retain_grad_keeps_an_inner_gradient_and_others_keep_none():
    x = leaf([1.0, 2.0])
    h = (x * 2).retain_grad()
    k = h * 1.0
    (k * k).sum().backward()
    np.testing.assert_array_equal(h.grad, 2 * h.data)
    assert k.grad is None


# --- backward twice, non-scalar, wrong grads -----------------------------------------------------------

def test_backward_twice_accumulates_with_retain_graph_and_raises_without():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, 2 * (2 * x.data))
    with pytest.raises(RuntimeError, match="already freed"):
        y.backward()
    x.zero_grad()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_the_graph_is_freed_after_backward():
    x = leaf([1.0, 2.0])
    h = x.exp()
    y = (h * 2).sum()
    assert tm.graph_size(y) == 3
    y.backward()
    assert tm.graph_size(y) == 0 and h._ctx.parents is None


def test_non_scalar_backward_needs_a_grad_and_names_the_shape():
    y = leaf(np.ones((3, 4))) * 2
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        y.backward()


def test_backward_with_a_grad_of_the_wrong_shape_names_both_shapes():
    y = leaf(np.ones((3, 4))) * 2
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 4\)"):
        y.backward(np.ones((4, 3)))


@given(x=arrays(min_value=-3, max_value=3))
def test_backward_with_g_equals_backward_of_the_weighted_sum(x):
    G = np.random.default_rng(2).standard_normal(x.shape)
    a, b = leaf(x), leaf(x)
    a.tanh().backward(G)
    (b.tanh() * G).sum().backward()
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-15)


# --- error messages and input types --------------------------------------------------------------------

def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        tm.Tensor(np.ones((2, 3))) @ tm.Tensor(np.ones((4, 5)))


def test_elementwise_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        tm.Tensor(np.ones((2, 3))) + np.ones(4)


@pytest.mark.parametrize("data", [["a", "b"], np.array([object(), 1]), [1 + 2j], [[1, 2], [3]]])
def test_a_tensor_of_strings_objects_or_complex_numbers_is_a_type_error(data):
    with pytest.raises(TypeError):
        tm.Tensor(data)


# --- dtypes and numpy interplay ------------------------------------------------------------------------

def test_numpy_operands_give_tensors_and_float32_stays_float32():
    t = tm.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    results = [np.float64(2) * t, t * np.float64(2), np.ones(3) + t, t - np.ones(3),
               np.ones(3, np.float32) / (t + 1), 1 - t, 2 / t, 2 ** t, t ** 2, t @ np.ones(3),
               sum([t, t]), t.mean(), t.softmax(), np.ones((2, 3)) @ t]
    for r in results:
        assert isinstance(r, tm.Tensor) and r.dtype == np.float32, (r, r.dtype)
    sum(r.sum() for r in results).backward()
    assert t.grad.dtype == np.float32


def test_reflected_operators_compute_the_right_values_and_gradients():
    t = leaf([1.0, 2.0])
    for value, expected, grad in [(1 - t, [0.0, -1.0], [-1.0, -1.0]),
                                  (2 / t, [2.0, 1.0], [-2.0, -0.5]),
                                  (sum([t, t]), [2.0, 4.0], [2.0, 2.0]),
                                  (np.float64(3) * t, [3.0, 6.0], [3.0, 3.0])]:
        t.zero_grad()
        value.sum().backward()
        np.testing.assert_allclose(value.data, expected)
        np.testing.assert_allclose(t.grad, grad)


def test_ints_and_lists_get_the_default_dtype_and_float_arrays_keep_theirs():
    assert tm.Tensor([1, 2]).dtype == np.float32
    tm.set_default_dtype(np.float64)
    assert tm.Tensor([1, 2]).dtype == np.float64
    assert tm.Tensor(np.ones(2, np.float32)).dtype == np.float32
    array = np.ones(2)
    assert np.shares_memory(tm.Tensor(array).data, array)


def test_a_scalar_gradient_is_an_ndarray():
    x = leaf(2.0)
    (-x).backward()
    assert type(x.grad) is np.ndarray and x.grad.shape == () and x.grad == -1.0


# --- memory: no aliasing, no mutation ---------------------------------------------------------------------

def test_gradients_do_not_alias_each_other_the_upstream_or_inputs():
    a_data, b_data = np.ones((2, 3)), np.ones((2, 3))
    a, b = tm.Tensor(a_data, requires_grad=True), tm.Tensor(b_data, requires_grad=True)
    G = np.arange(6.0).reshape(2, 3)
    G_copy = G.copy()
    (a + b).backward(G)              # Add hands the very same array to both inputs
    assert not np.shares_memory(a.grad, b.grad)
    assert not np.shares_memory(a.grad, G) and not np.shares_memory(b.grad, G)
    np.testing.assert_array_equal(G, G_copy)
    a.grad += 1                      # an in-place update of one grad touches nothing else
    np.testing.assert_array_equal(b.grad, G_copy)
    np.testing.assert_array_equal(a_data, np.ones((2, 3)))


# --- custom Functions -----------------------------------------------------------------------------------------

class ScaledSquare(tm.Function):
    """x² · scale, with the options and saved arrays a custom op typically needs."""

    @staticmethod
    def forward(ctx, x, scale=1.0):
        ctx.scale = scale
        ctx.save_for_backward(x)
        return scale * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * ctx.scale * x


@given(x=arrays(min_value=-3, max_value=3), scale=st.floats(-2, 2))
def test_a_custom_function_with_ctx_attributes_and_save_for_backward(x, scale):
    assert_gradients_match(lambda t: ScaledSquare.apply(t, scale=scale), x)
    y = ScaledSquare.apply(leaf(x), scale=scale)
    assert y.op == "ScaledSquare"


def test_a_custom_backward_returning_none_passes_no_gradient():
    class Blocked(tm.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return None

    x = leaf([1.0, 2.0])
    h = x.exp()
    (Blocked.apply(h).sum() + x.sum()).backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    assert h._ctx.parents is None                    # its graph is freed all the same


def test_a_custom_backward_returning_the_wrong_shape_is_named():
    class Bad(tm.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, grad):
            return np.ones(5)

    with pytest.raises(ValueError, match=r"Bad.*\(5,\).*\(2,\)"):
        Bad.apply(leaf([1.0, 2.0])).backward()


def test_the_docs_engine_example_computes_the_chain_rule_by_hand():
    """docs/index.md "The engine in ten lines": J = ½ Σ σ(X·W1)², so dJ/dW1 = Xᵀ·(a·a(1 − a)) with a = σ(X·W1)."""
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "index.md").read_text(encoding="utf-8")
    code = page.split("## The engine in ten lines", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {"print": lambda *args: None}
    exec(compile(code, "docs/index.md", "exec"), namespace)
    X, W1 = namespace["X"], namespace["W1"]
    a = 1 / (1 + np.exp(-(X @ W1.data)))
    assert W1.grad.dtype == np.float32
    np.testing.assert_allclose(W1.grad, X.T @ (a * a * (1 - a)), rtol=1e-6)
