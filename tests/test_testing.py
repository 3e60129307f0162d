"""tinygrad_mlp.testing: the strategies draw what they promise, the assertions catch what they
promise, the module docstring's example runs, and hypothesis stays an optional dependency."""

import doctest
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

import tinygrad_mlp as tm
import tinygrad_mlp.testing as testing
from tinygrad_mlp.testing import (arrays, assert_backward_invariants, assert_gradients_match,
                                  assert_raw_backward, axes, broadcastable_shapes, float_dtypes,
                                  mlp_shapes, networks, shapes, tied_arrays)


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


# --- the corners the strategies reach -----------------------------------------------------------

def test_arrays_draw_empty_arrays_by_default_and_both_dtypes_when_asked():
    assert find(arrays(), lambda x: x.size == 0 and x.ndim >= 1).size == 0
    assert find(arrays(dtype=float_dtypes()), lambda x: x.dtype == np.float32).dtype == np.float32
    assert find(arrays(dtype=float_dtypes()), lambda x: x.dtype == np.float64).dtype == np.float64


@pytest.mark.parametrize("flag, found", [
    ("allow_nan", lambda x: np.isnan(x).any()),
    ("allow_infinity", lambda x: np.isinf(x).any()),
    ("allow_subnormal", lambda x: ((x != 0) & (np.abs(x) < np.finfo(x.dtype).tiny)).any()),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arrays_draw_nan_inf_and_subnormals_only_when_allowed(flag, found, dtype):
    find(arrays(dtype=dtype, **{flag: True}), found)          # reachable
    with pytest.raises(NoSuchExample):
        find(arrays(dtype=dtype), found, settings=settings(max_examples=300, database=None))


@given(x=arrays(dtype=float_dtypes(), min_value=-1, max_value=1, avoid=[0.0, 0.5], margin=0.1))
def test_arrays_keep_a_margin_around_the_points_to_avoid(x):
    assert ((x >= -1) & (x <= 1)).all()
    assert (np.abs(x) >= 0.1).all() and (np.abs(x - 0.5) >= 0.1).all()


def test_arrays_avoid_every_point_even_where_values_crowd_them():
    """Hypothesis tries the simplest value, 0, a lot: every one must be pushed out."""
    x = find(arrays((50,), min_value=-0.2, max_value=0.3, avoid=[0.0, 0.1]),
             lambda x: True)
    assert (np.abs(x) >= 1e-2).all() and (np.abs(x - 0.1) >= 1e-2).all()


@given(x=arrays((3,), elements=st.sampled_from([0.25, 4.0])))
def test_arrays_take_your_own_elements(x):
    assert set(x.tolist()) <= {0.25, 4.0}


def test_bad_avoid_arguments_are_value_errors():
    with pytest.raises(ValueError, match="within 0.5 of a point to avoid"):
        arrays(min_value=-0.1, max_value=0.1, avoid=[0.0], margin=0.5)
    with pytest.raises(ValueError, match="margin must be > 0"):
        arrays(avoid=[0.0], margin=0)


def middle_axis_stretches(shapes):
    """Does some shape have a size-1 axis, neither its first nor its last, that broadcasting
    stretches (the result has more there)?"""
    result = np.broadcast_shapes(*shapes)
    for shape in shapes:
        padded = (1,) * (len(result) - len(shape)) + tuple(shape)
        first = len(result) - len(shape)
        if any(padded[k] == 1 < result[k] for k in range(first + 1, len(result) - 1)):
            return True
    return False


def test_broadcastable_shapes_often_stretch_a_size_1_axis_in_the_middle():
    """hypothesis's mutually_broadcastable_shapes does in about 4% of draws (issue 20)."""
    drawn = []

    @settings(max_examples=200, derandomize=True, database=None)
    @given(shapes=broadcastable_shapes())
    def collect(shapes):
        np.broadcast_shapes(*shapes)
        drawn.append(shapes)

    collect()
    share = np.mean([middle_axis_stretches(s) for s in drawn])
    assert share >= 0.2, share


# --- what assert_backward_invariants and assert_gradients_match now see -------------------------

class Upcasts(Double):
    @staticmethod
    def forward(ctx, x):
        return x * np.float64(2.0)                      # a numpy float64 scalar wins in numpy 2


class BackwardTooWide(Double):
    """A (2, 3) float64 gradient for a (3,) float32 input: the engine sums and casts it."""

    @staticmethod
    def backward(ctx, grad):
        return np.stack([grad, 0 * grad]).astype(np.float64) * 2


class BackwardUpcasts(Double):
    @staticmethod
    def backward(ctx, grad):
        return grad * np.float64(2.0)


class SumKeepdims(tm.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.sum(axis=1, keepdims=True)

    @staticmethod
    def backward(ctx, grad):
        return np.broadcast_to(grad, ctx.shape).copy()


class SumKeepdimsExtraAxis(SumKeepdims):
    @staticmethod
    def backward(ctx, grad):
        return np.broadcast_to(np.expand_dims(grad, 1), (ctx.shape[0],) + ctx.shape).copy()


class MulReturningBroadcastGradients(tm.Function):
    """Right: returns both gradients at the output's broadcast shape, as the engine allows."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.b, grad * ctx.a


@pytest.mark.parametrize("fn, x, message", [
    (Upcasts.apply, np.ones(3, np.float32), "float64 output for inputs of dtype float32"),
    (BackwardTooWide.apply, np.ones(3, np.float32), r"BackwardTooWide.backward returned for input 0 \(shape \(3,\), dtype float32\) a gradient "
                                              "of dtype float64"),
    (BackwardUpcasts.apply, np.ones(3, np.float32), "dtype float64: the engine would cast"),
    (SumKeepdimsExtraAxis.apply, np.ones((2, 3)), r"shape \(2, 2, 3\): expected \(2, 3\)"),
])
def test_assert_backward_invariants_sees_dtypes_and_what_backward_really_returns(fn, x, message):
    with pytest.raises(AssertionError, match=message):
        assert_backward_invariants(fn, x)
    if fn is not Upcasts.apply:
        tm.Tensor(x, requires_grad=True)      # the engine alone would accept it silently:
        t = tm.Tensor(x, requires_grad=True)
        fn(t).backward(np.ones(fn(tm.Tensor(x)).shape, x.dtype))
        assert t.grad.shape == x.shape and t.grad.dtype == x.dtype


def test_raw_backward_accepts_gradients_at_the_broadcast_shape_and_keepdims_done_right():
    a, b = np.ones((2, 1, 3), np.float32), np.ones((4, 1), np.float32)
    assert_raw_backward(MulReturningBroadcastGradients.apply, a, b)
    assert_backward_invariants(MulReturningBroadcastGradients.apply, a, b)
    assert_backward_invariants(SumKeepdims.apply, np.ones((2, 3)))
    assert_backward_invariants(lambda a, b: a @ b, np.ones((2, 3, 4)), np.ones((4, 5)))


def test_an_explicit_cast_is_allowed_when_said():
    assert_backward_invariants(lambda t: t.astype(np.float64), np.ones(2, np.float32),
                               output_dtype=np.float64)
    assert_gradients_match(lambda t: t.astype(np.float64), np.ones(2, np.float32),
                           output_dtype=np.float64)


class WrongInFloat32(Double):
    @staticmethod
    def backward(ctx, grad):
        return grad * (2 if grad.dtype == np.float64 else 3)


def test_assert_gradients_match_runs_in_the_inputs_dtype_and_says_which_failed():
    assert_gradients_match(WrongInFloat32.apply, np.ones(3))              # float64 is right
    with pytest.raises(tm.GradcheckError, match="^in float32: the gradient of input 0"):
        assert_gradients_match(WrongInFloat32.apply, np.ones(3, np.float32))
    with pytest.raises(tm.GradcheckError, match="^in float32: fn returned a float64 output"):
        assert_gradients_match(Upcasts.apply, np.ones(3, np.float32))
    with pytest.raises(tm.GradcheckError, match="^in float64: gradcheck"):
        assert_gradients_match(WrongDouble.apply, np.ones(3, np.float32))


def test_a_reference_checks_the_forward_too():
    assert_gradients_match(Double.apply, np.arange(3.0), reference=lambda x: 2 * x)
    with pytest.raises(tm.GradcheckError, match="in float64: the output against the reference"):
        assert_gradients_match(Double.apply, np.arange(3.0), reference=lambda x: 2 * x + 1e-3)


@given(x=tied_arrays(dtype=np.float32), data=st.data())
def test_a_reference_backward_settles_the_subgradient_at_a_kink(x, data):
    """Finite differences at relu's kink see 1/2; the reference says tm's relu takes 0 there."""
    relu = (lambda x: np.maximum(x, 0), lambda G, x: G * (x > 0))
    assert_gradients_match(lambda t: t.relu(), x, reference=relu, data=data)


def test_without_a_reference_finite_differences_fail_at_the_kink():
    with pytest.raises(tm.GradcheckError, match="in float64"):
        assert_gradients_match(lambda t: t.relu(), np.zeros(2))
    with pytest.raises(tm.GradcheckError, match="gradient of input 0 against the reference"):
        assert_gradients_match(lambda t: t.relu(), np.zeros(2),
                               reference=(lambda x: np.maximum(x, 0), lambda G, x: G))


# --- profiles and the generator -----------------------------------------------------------------

def test_the_profiles_are_registered_for_users():
    ci = settings.get_profile(testing.CI_PROFILE)
    assert ci.derandomize and ci.database is None and ci.deadline is None
    assert HealthCheck.too_slow in settings.get_profile(testing.PROFILE).suppress_health_check


def test_each_example_starts_from_the_same_library_generator_state():
    """register_random: hypothesis seeds tm's generator before each example and restores it
    after, so an example that draws from it (Dropout, init) replays the same way."""
    tm.manual_seed(123)
    before = tm.get_generator().bit_generator.state
    firsts = []

    @settings(max_examples=10, database=None)
    @given(st.integers())
    def draws(_):
        firsts.append(tm.get_generator().random())
        tm.manual_seed(None)                            # even a reseed inside is undone

    draws()
    assert len(set(firsts)) == 1
    assert tm.get_generator().bit_generator.state == before
