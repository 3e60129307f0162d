"""tinygrad_mlp.testing: the strategies draw what they promise, the assertions catch what they
promise, the module docstring's example runs, and hypothesis stays an optional dependency."""

import doctest
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

import tinygrad_mlp as tm
import tinygrad_mlp.testing as testing
from tinygrad_mlp.testing import (arrays, assert_backward_invariants, assert_gradients_match,
                                  axes, broadcastable_shapes, mlp_shapes, networks, shapes,
                                  tied_arrays)


def run_python(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_package_does_not_import_hypothesis():
    assert run_python("import sys, tinygrad_mlp as tm, numpy as np\n"
                      "tm.gradcheck(lambda t: t.exp(), tm.Tensor(np.ones(2), requires_grad=True))\n"
                      "print('hypothesis' in sys.modules)") == "False"


def test_tm_testing_is_importable_lazily():
    assert run_python("import tinygrad_mlp as tm\nprint(tm.testing.networks.__name__)") == \
        "networks"
    assert tm.testing is testing


def test_the_module_docstring_example_runs():
    result = doctest.testmod(testing, raise_on_error=False, verbose=False)
    assert result.attempted >= 5 and result.failed == 0


# --- strategies ---------------------------------------------------------------------------------

@given(x=arrays(dtype=np.float32, min_value=0.1, max_value=0.3))
def test_arrays_respect_dtype_and_bounds_even_when_not_representable(x):
    assert x.dtype == np.float32
    assert ((x >= 0.1) & (x <= 0.3)).all()


@given(x=arrays((3, 4), unique=True))
def test_arrays_with_a_shape_and_unique_values(x):
    assert x.shape == (3, 4) and x.dtype == np.float64
    assert len(np.unique(x)) == x.size and np.isfinite(x).all()


@given(shape=shapes(min_dims=1, max_dims=2, min_side=0, max_side=2))
def test_shapes_respect_their_bounds(shape):
    assert 1 <= len(shape) <= 2 and all(0 <= n <= 2 for n in shape)


@given(drawn=broadcastable_shapes(num_shapes=3))
def test_broadcastable_shapes_broadcast(drawn):
    assert len(drawn) == 3
    np.broadcast_shapes(*drawn)


@given(shape=mlp_shapes(max_N=3, max_D=2, max_M=2, max_K=2))
def test_mlp_shapes_are_positive_and_bounded(shape):
    N, D, M, K = shape
    assert 1 <= N <= 3 and 1 <= D <= 2 and 1 <= M <= 2 and 1 <= K <= 2


@pytest.mark.parametrize("loss", ["mse", "bce", "ce"])
@given(data=st.data())
def test_networks_fit_the_blogs_shapes_and_the_loss(loss, data):
    X, Y, W1, W2 = data.draw(networks(loss=loss))
    N, D = X.shape
    M, K = W2.shape
    assert W1.shape == (D, M) and Y.shape == (N, K)
    assert ((Y >= 0) & (Y <= 1)).all()
    if loss == "ce":
        np.testing.assert_array_equal(Y.sum(axis=1), 1.0)
        assert set(np.unique(Y)) <= {0.0, 1.0}
    tm.reference.gradients(X, Y, W1, W2, loss)           # accepted by the oracle as is


def test_bad_strategy_arguments_are_value_errors():
    with pytest.raises(ValueError, match="float dtype"):
        arrays(dtype=np.int64)
    with pytest.raises(ValueError, match="min_value"):
        arrays(min_value=2, max_value=1)
    with pytest.raises(ValueError, match="'hinge'"):
        networks(loss="hinge")


# --- assertions ---------------------------------------------------------------------------------

class Double(tm.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


class WrongDouble(Double):
    @staticmethod
    def backward(ctx, grad):
        return grad


class MutatesInput(Double):
    @staticmethod
    def forward(ctx, x):
        x *= 1.0 + 1e-3
        return 2 * x


class MutatesUpstream(Double):
    @staticmethod
    def backward(ctx, grad):
        grad *= 2
        return grad


class ReturnsInputAsGradient(tm.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x / 2

    @staticmethod
    def backward(ctx, grad):
        return ctx.x           # right only for an all-ones upstream, and it aliases the input


@given(x=arrays(min_value=-3, max_value=3))
def test_the_assertions_pass_a_right_function(x):
    assert_gradients_match(Double.apply, x)
    assert_backward_invariants(Double.apply, x)
    assert_backward_invariants(Double.apply, x.astype(np.float32))


def test_assert_gradients_match_catches_a_wrong_backward():
    with pytest.raises(tm.GradcheckError, match="input 0"):
        assert_gradients_match(WrongDouble.apply, np.ones(3))


@pytest.mark.parametrize("fn, message", [
    (MutatesInput.apply, "input 0 was mutated"),
    (MutatesUpstream.apply, "upstream gradient .* was mutated"),
    (ReturnsInputAsGradient.apply, "shares memory with input 0"),
])
def test_assert_backward_invariants_catches_mutation_and_aliasing(fn, message):
    with pytest.raises(AssertionError, match=message):
        assert_backward_invariants(fn, np.arange(1.0, 4.0))


@given(data=st.data())
def test_axes_draws_valid_distinct_axes_and_tied_arrays_draw_ties(data):
    x = data.draw(tied_arrays(shapes(min_dims=0, max_dims=3), values=(0.0, 1.0)))
    assert set(np.unique(x)) <= {0.0, 1.0}
    axis = data.draw(axes(x.ndim))
    np.sum(x, axis=axis)                      # numpy accepts it: in range, no repeats
    if isinstance(axis, tuple):
        assert len({a % max(x.ndim, 1) for a in axis}) == len(axis)


def test_tied_arrays_do_draw_ties_and_zeros():
    tied = find(tied_arrays((4,)), lambda x: len(np.unique(x)) < 4 and (x == 0).any())
    assert (tied == 0).any()
