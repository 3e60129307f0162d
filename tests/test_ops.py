"""Every op in ops.py against finite differences, over drawn shapes (broadcasting and zero-size
dims included), with a random upstream gradient; and float32 against float64.

Each example runs `check_op`: gradcheck in float64 (tm.testing.assert_gradients_match), the
backward invariants (nothing mutated, nothing aliased, graph freed), and the same op in float32,
whose gradients must stay float32 and agree with the float64 run to about 1e-4.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_mlp as tm
from tinygrad_mlp import ops
from tinygrad_mlp.testing import (arrays, assert_backward_invariants, assert_gradients_match,
                                  broadcastable_shapes, shapes)


def check_op(fn, *arrays64, rtol32=1e-4):
    """gradcheck in float64, backward invariants in float64 and float32, float32 ≈ float64."""
    assert_gradients_match(fn, *arrays64)
    assert_backward_invariants(fn, *arrays64)
    arrays32 = [np.asarray(a, dtype=np.float32) for a in arrays64]
    assert_backward_invariants(fn, *arrays32)
    # the float64 run on the very values float32 holds, so only the arithmetic differs
    runs = {}
    for dtype in (np.float32, np.float64):
        tensors = [tm.Tensor(a.astype(dtype), requires_grad=True) for a in arrays32]
        out = fn(*tensors)
        assert out.dtype == dtype, f"{dtype.__name__} inputs gave a {out.dtype} output"
        G = np.random.default_rng(1).standard_normal(out.shape)
        out.backward(G.astype(dtype))
        runs[dtype] = [t.grad for t in tensors]
    for g32, g64 in zip(runs[np.float32], runs[np.float64]):
        if g64 is None:
            assert g32 is None
            continue
        assert g32.dtype == np.float32
        scale = max(1.0, float(np.abs(g64).max(initial=0)))
        np.testing.assert_allclose(g32, g64, rtol=rtol32, atol=rtol32 * scale)


def nonzero(x, margin=0.05):
    """x pushed away from 0 (for ReLU's kink and for denominators), keeping its sign."""
    return np.where(x >= 0, x + margin, x - margin)


# --- elementwise, binary, with broadcasting ---------------------------------------------------

@st.composite
def broadcast_pair(draw, min_side=1, low=-3, high=3):
    shape_a, shape_b = draw(broadcastable_shapes(min_side=min_side))
    return draw(arrays(shape_a, min_value=low, max_value=high)), \
        draw(arrays(shape_b, min_value=low, max_value=high))


BINARY = {
    "add": (lambda a, b: a + b, lambda b: b),
    "sub": (lambda a, b: a - b, lambda b: b),
    "mul": (lambda a, b: a * b, lambda b: b),
    "div": (lambda a, b: a / b, lambda b: nonzero(b, 0.5)),
}


@pytest.mark.parametrize("name", BINARY)
@given(pair=broadcast_pair())
def test_binary_ops_with_broadcasting(name, pair):
    fn, prepare_b = BINARY[name]
    a, b = pair
    check_op(fn, a, prepare_b(b))


@pytest.mark.parametrize("name", BINARY)
@given(pair=broadcast_pair(min_side=0))
def test_binary_ops_with_zero_size_dims(name, pair):
    fn, prepare_b = BINARY[name]
    a, b = pair
    check_op(fn, a, prepare_b(b))


@given(pair=broadcast_pair(low=0.5, high=2))
def test_pow_with_a_tensor_exponent_on_a_positive_base(pair):
    base, exponent = pair
    check_op(lambda a, b: a ** b, base, exponent * 1.5)


@given(x=arrays(min_value=-3, max_value=3), exponent=st.sampled_from([2, 3, -1, 0.5, 2.5]))
def test_pow_with_a_constant_exponent(x, exponent):
    if exponent != int(exponent):          # fractional powers need a positive base
        x = np.abs(x) + 0.5
    elif exponent < 0:
        x = nonzero(x, 0.5)
    check_op(lambda a: a ** exponent, x)


@given(x=arrays(min_value=0.5, max_value=2), base=st.sampled_from([2.0, 0.5, np.e]))
def test_pow_with_a_constant_base(x, base):
    check_op(lambda a: base ** a, x)


# --- elementwise, unary, and activations --------------------------------------------------------

UNARY = {
    "neg": (lambda x: -x, -3, 3),
    "exp": (lambda x: x.exp(), -3, 3),
    "log": (lambda x: x.log(), 0.2, 5),
    "sigmoid": (lambda x: x.sigmoid(), -6, 6),
    "tanh": (lambda x: x.tanh(), -3, 3),
    "relu": (lambda x: x.relu(), -3, 3),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_ops(name, data):
    fn, low, high = UNARY[name]
    x = data.draw(arrays(shapes(min_side=0), min_value=low, max_value=high))
    if name == "relu":
        x = nonzero(x)                     # never at the kink, where no derivative exists
    check_op(fn, x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data())
def test_softmax_and_log_softmax_along_any_axis(name, data):
    x = data.draw(arrays(shapes(min_dims=1, min_side=0), min_value=-5, max_value=5))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    check_op(lambda t: getattr(t, name)(axis=axis), x)


# --- matrix products -----------------------------------------------------------------------------

@st.composite
def matmul_operands(draw):
    """Operands numpy's matmul accepts: 1-D or batched, with broadcast batch dimensions and
    inner dimension possibly 0."""
    batch_a, batch_b = draw(broadcastable_shapes(max_dims=2, max_side=3))
    n, k, m = draw(st.integers(1, 4)), draw(st.integers(0, 4)), draw(st.integers(1, 4))
    shape_a = (k,) if draw(st.booleans()) else batch_a + (n, k)
    shape_b = (k,) if draw(st.booleans()) else batch_b + (k, m)
    return draw(arrays(shape_a, min_value=-3, max_value=3)), \
        draw(arrays(shape_b, min_value=-3, max_value=3))


@given(operands=matmul_operands())
def test_matmul_including_1d_and_batched_operands(operands):
    check_op(lambda a, b: a @ b, *operands)


@given(data=st.data())
def test_linear_is_x_w_plus_b_with_all_three_gradients(data):
    lead = data.draw(shapes(min_dims=0, max_dims=2, min_side=0))
    n_in, n_out = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    x = data.draw(arrays(lead + (n_in,), min_value=-3, max_value=3))
    W = data.draw(arrays((n_in, n_out), min_value=-2, max_value=2))
    b = data.draw(arrays((n_out,), min_value=-2, max_value=2))
    check_op(lambda x, W, b: ops.Linear.apply(x, W, b), x, W, b)
    out = ops.Linear.apply(x, W, b)
    np.testing.assert_allclose(out.data, x @ W + b, rtol=1e-12, atol=1e-12)


# --- reductions ------------------------------------------------------------------------------------

@st.composite
def reduction_case(draw, min_side=1):
    shape = draw(shapes(min_side=min_side))
    ndim = len(shape)
    axis = draw(st.one_of(
        st.none(),
        st.integers(-ndim, ndim - 1) if ndim else st.none(),
        st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(tuple)
        if ndim else st.just(())))
    keepdims = draw(st.booleans())
    return shape, axis, keepdims


@pytest.mark.parametrize("name", ["sum", "mean"])
@given(data=st.data())
def test_sum_and_mean_over_any_axes(name, data):
    shape, axis, keepdims = data.draw(reduction_case())
    x = data.draw(arrays(shape))
    check_op(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)


@given(data=st.data())
def test_sum_with_zero_size_dims(data):
    shape, axis, keepdims = data.draw(reduction_case(min_side=0))
    x = data.draw(arrays(shape))
    check_op(lambda t: t.sum(axis=axis, keepdims=keepdims), x)


@given(data=st.data())
def test_max_over_any_axes_with_distinct_values(data):
    shape, axis, keepdims = data.draw(reduction_case())
    # distinct and at least 0.01 apart, so no finite-difference step crosses a tie
    x = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-500, 500), unique=True)) / 100
    check_op(lambda t: t.max(axis=axis, keepdims=keepdims), x)


def test_max_shares_the_gradient_between_tied_entries():
    x = tm.Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], requires_grad=True)
    x.max(axis=1).backward(np.array([1.0, 4.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [2, 0, 2]])


# --- shape ops -------------------------------------------------------------------------------------

@given(data=st.data())
def test_reshape_including_minus_one(data):
    x = data.draw(arrays(shapes(min_side=0)))
    shape = x.shape
    candidates = [(-1,), tuple(reversed(shape)), (1,) + shape, shape + (1,)]
    if x.ndim >= 1 and x.size:
        candidates.append((shape[0], -1))
    target = data.draw(st.sampled_from(candidates))
    check_op(lambda t: t.reshape(target), x)
    assert tm.Tensor(x).reshape(*target).shape == x.reshape(target).shape


@given(data=st.data())
def test_transpose_with_any_permutation_including_negative_axes(data):
    x = data.draw(arrays(shapes(min_side=0)))
    permutation = data.draw(st.permutations(range(x.ndim)))
    negative = data.draw(st.lists(st.booleans(), min_size=x.ndim, max_size=x.ndim))
    axes = tuple(a - x.ndim if neg else a for a, neg in zip(permutation, negative))
    check_op(lambda t: t.transpose(*axes), x)
    check_op(lambda t: t.T, x)
    assert tm.Tensor(x).transpose(axes).shape == np.transpose(x, axes).shape


@st.composite
def indexed_array(draw):
    """An array and an index of every kind: ints, slices with steps, None, Ellipsis, repeated
    fancy indices (their gradients must add up) and boolean masks."""
    x = draw(arrays(shapes(min_dims=1, min_side=1)))
    n = x.shape[0]
    kind = draw(st.sampled_from(["int", "slice", "none_ellipsis", "fancy", "fancy2d", "mask"]))
    if kind == "int":
        index = draw(st.integers(-n, n - 1))
    elif kind == "slice":
        index = slice(draw(st.integers(-n, n)), draw(st.integers(-n, n)),
                      draw(st.sampled_from([1, 2, -1, -2])))
    elif kind == "none_ellipsis":
        last = x.shape[-1]
        index = (None, Ellipsis, draw(st.integers(-last, last - 1)))
    elif kind == "fancy":
        index = np.array(draw(st.lists(st.integers(-n, n - 1), min_size=0, max_size=6)),
                         dtype=np.int64)
    elif kind == "fancy2d" and x.ndim >= 2:
        rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))
        cols = draw(st.lists(st.integers(0, x.shape[1] - 1), min_size=len(rows),
                             max_size=len(rows)))
        index = (np.array(rows), np.array(cols))
    else:
        index = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    return x, index


@given(case=indexed_array())
def test_getitem_with_every_kind_of_index(case):
    x, index = case
    check_op(lambda t: t[index], x)
    np.testing.assert_array_equal(tm.Tensor(x)[index].data, x[index])


def test_getitem_repeated_fancy_indices_add_up():
    x = tm.Tensor(np.arange(4.0), requires_grad=True)
    x[np.array([0, 2, 0, 0])].backward(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad, [8.0, 0.0, 2.0, 0.0])


@given(data=st.data())
def test_mean_and_max_with_zero_size_dims_outside_the_reduced_axes(data):
    shape, axis, keepdims = data.draw(reduction_case(min_side=0))
    reduced = range(len(shape)) if axis is None else np.atleast_1d(axis)
    assume(all(shape[a] > 0 for a in reduced))          # reducing an empty axis: nan or error
    x = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-500, 500), unique=True)) / 100
    check_op(lambda t: t.mean(axis=axis, keepdims=keepdims), x)
    check_op(lambda t: t.max(axis=axis, keepdims=keepdims), x)


COVERED = {"Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Sigmoid", "Tanh", "ReLU",
           "Softmax", "LogSoftmax", "MatMul", "Linear", "Sum", "Mean", "Max", "Reshape",
           "Transpose", "GetItem"}


def test_every_op_in_ops_py_has_a_gradient_test_here():
    defined = {name for name, value in vars(ops).items()
               if isinstance(value, type) and issubclass(value, tm.Function)
               and value is not tm.Function}
    assert defined <= COVERED, f"ops without a gradcheck test in this file: {defined - COVERED}"
