"""gradcheck itself: it passes right gradients, and (the negative controls) it catches wrong ones,
including a backward that ignores its upstream gradient, and a badly chosen eps."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp.testing import arrays, shapes


class Square(tm.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x

    @staticmethod
    def backward(ctx, grad):
        return grad * 2 * ctx.x


class WrongSquare(Square):
    """Forgets the factor 2."""

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.x


class IgnoresUpstream(Square):
    """Right only when the upstream gradient is all ones: what a `.sum()` check would pass."""

    @staticmethod
    def backward(ctx, grad):
        return 2 * ctx.x


class WrongSecondInput(tm.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.b, grad * ctx.b


def leaf(x, requires_grad=True):
    return tm.Tensor(np.array(x, dtype=np.float64), requires_grad=requires_grad)


@given(x=arrays(shapes(min_dims=1), min_value=-3, max_value=3), fast=st.booleans())
def test_right_gradients_pass(x, fast):
    assert tm.gradcheck(lambda t: Square.apply(t).sigmoid(), leaf(x), fast=fast) is True


@given(x=arrays(shapes(min_dims=1), min_value=0.5, max_value=3), fast=st.booleans())
def test_a_wrong_backward_is_caught(x, fast):
    with pytest.raises(tm.GradcheckError, match="input 0"):
        tm.gradcheck(WrongSquare.apply, leaf(x), fast=fast)


def test_a_backward_that_ignores_the_upstream_gradient_is_caught():
    x = leaf([1.0, 2.0, 3.0])
    IgnoresUpstream.apply(x).sum().backward()            # an all-ones upstream hides the bug
    np.testing.assert_array_equal(x.grad, 2 * x.data)
    with pytest.raises(tm.GradcheckError):
        tm.gradcheck(IgnoresUpstream.apply, leaf([1.0, 2.0, 3.0]))


def test_the_error_names_input_index_and_values():
    a, b = leaf([[1.0, 2.0], [3.0, 4.0]]), leaf([[0.5, -1.0], [2.0, 1.5]])
    with pytest.raises(tm.GradcheckError) as info:
        tm.gradcheck(WrongSecondInput.apply, a, b)
    message = str(info.value)
    assert "input 1" in message and "shape (2, 2)" in message
    assert "at index (" in message and "analytic" in message and "numeric" in message
    assert "abs error" in message and "rel error" in message
    assert isinstance(info.value, AssertionError)


def test_only_inputs_requiring_grad_are_checked():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0], requires_grad=False)
    assert tm.gradcheck(WrongSecondInput.apply, a, b)    # input 1's wrong rule is never used


@pytest.mark.parametrize("eps", [0.5, 1e-300])
def test_a_bad_eps_fails(eps):
    """Too large: truncation error; too small: x ± eps == x, so the numeric side is 0."""
    with pytest.raises(tm.GradcheckError):
        tm.gradcheck(lambda t: t.exp(), leaf([1.0, 2.0]), eps=eps)


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="eps must be > 0"):
        tm.gradcheck(lambda t: t, leaf([1.0]), eps=0)
    with pytest.raises(ValueError, match="no input requires grad"):
        tm.gradcheck(lambda t: t * 2, leaf([1.0], requires_grad=False))
    with pytest.raises(ValueError, match="must be Tensors"):
        tm.gradcheck(lambda t: t * 2, np.ones(2))
    with pytest.raises(ValueError, match="must return a Tensor"):
        tm.gradcheck(lambda t: t.data * 2, leaf([1.0]))


def test_a_non_finite_output_fails():
    with pytest.raises(tm.GradcheckError, match="nan"):
        tm.gradcheck(lambda t: t.log(), leaf([0.0, 1.0]))


def test_inputs_are_not_mutated_and_float32_is_checked_in_float64():
    data = np.array([0.3, -1.2, 2.0], dtype=np.float32)
    x = tm.Tensor(data, requires_grad=True)
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return t.tanh() * 3

    original = data.copy()
    assert tm.gradcheck(fn, x, atol=1e-7, rtol=1e-6)     # float64 tolerances on a float32 input
    assert set(seen) == {np.dtype(np.float64)}
    np.testing.assert_array_equal(data, original)
    assert x.grad is None and x.dtype == np.float32


def test_an_input_fn_does_not_read_is_refused_not_passed():
    with pytest.raises(ValueError, match=r"does not read input 1 \(shape \(1,\)\)"):
        tm.gradcheck(lambda a, b: a * 2, leaf([1.0, 2.0]), leaf([3.0]))
    assert tm.gradcheck(lambda a, b: a * 2, leaf([1.0, 2.0]), leaf([3.0], requires_grad=False))
    assert tm.gradcheck(lambda a: a, leaf([1.0, 2.0]))              # returned as is: read


def test_a_models_parameter_is_refused_pointing_at_check_module():
    """gradcheck perturbs float64 copies: `lambda w: model(X)` never sees them, and used to pass
    for a wrong layer."""
    model = tm.nn.Sequential(tm.nn.Linear(3, 2))
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="does not read input 0.*check_module"):
        tm.gradcheck(lambda w: model(X), model[0].weight)


def test_a_probe_the_model_casts_to_float32_is_refused_saying_so():
    model = tm.nn.Linear(3, 2)                            # float32: casts its input to float32
    X = tm.Tensor(np.ones((4, 3)), requires_grad=True)
    with pytest.raises(ValueError, match="casts input 0 .* to float32 .*check_module"):
        tm.gradcheck(lambda x: model(x), X)
    with pytest.raises(ValueError, match="casts input 0"):
        tm.gradcheck(lambda x: (x * 2).astype(np.float32).sum(), X)
    tm.set_default_dtype(np.float64)
    model64 = tm.nn.Linear(3, 2)
    assert tm.gradcheck(lambda x: model64(x), X)            # a float64 model is checked


def test_gradcheck_does_not_touch_the_global_generator():
    tm.manual_seed(5)
    expected = tm.get_generator().random(3)
    tm.manual_seed(5)
    tm.gradcheck(lambda t: t.sigmoid(), leaf(np.ones((2, 2))), fast=True)
    np.testing.assert_array_equal(tm.get_generator().random(3), expected)


def test_fast_mode_checks_large_inputs_with_few_evaluations():
    calls = []

    def fn(t):
        calls.append(1)
        return (t * t).tanh()

    x = leaf(np.random.default_rng(0).uniform(-1, 1, (40, 50)))
    assert tm.gradcheck(fn, x, fast=True)
    assert len(calls) == 3                                # one for backward, two differences
    with pytest.raises(tm.GradcheckError, match="random direction"):
        tm.gradcheck(WrongSquare.apply, x, fast=True)
