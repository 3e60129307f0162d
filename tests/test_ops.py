"""Every op in ops.py against finite differences, over drawn shapes (broadcasting and zero-size
dims included), with a random upstream gradient; and float32 against float64.

Each example runs `check_op`: gradcheck in float64 (tm.testing.assert_gradients_match), the
backward invariants (nothing mutated, nothing aliased, graph freed), and the same op in float32,
whose gradients must stay float32 and agree with the float64 run to about 1e-4.
"""

import math
import operator

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_mlp as tm
from tinygrad_mlp import ops
from tinygrad_mlp.testing import (arrays, assert_backward_invariants, assert_gradients_match,
                                  axes, broadcastable_shapes, shapes, tied_arrays)


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


# --- second round: elementwise -----------------------------------------------------------------

def unbroadcast(grad, shape):
    """The oracle's own sum back to `shape` (leading axes, then size-1 axes)."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


def backward_of(fn, *arrays, seed=3):
    """Gradients of ⟨G, fn(*tensors)⟩ for a random G: (output, G, [grad per input])."""
    tensors = [tm.Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    G = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(G)
    return out.data, G, [t.grad for t in tensors]


@st.composite
def separated_pair(draw):
    """Broadcastable a, b that never tie: a on tenths, b on tenths shifted by 0.05."""
    shape_a, shape_b = draw(broadcastable_shapes())
    a = draw(hnp.arrays(np.int64, shape_a, elements=st.integers(-30, 30))) / 10
    b = draw(hnp.arrays(np.int64, shape_b, elements=st.integers(-30, 30))) / 10 + 0.05
    return np.asarray(a), np.asarray(b)              # (0-d arithmetic gives numpy scalars)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(pair=separated_pair())
def test_maximum_and_minimum_with_broadcasting(name, pair):
    check_op(getattr(tm, name), *pair)
    np.testing.assert_array_equal(getattr(tm, name)(*pair).data, getattr(np, name)(*pair))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(data=st.data())
def test_maximum_and_minimum_split_the_gradient_equally_at_ties(name, data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a, b = data.draw(tied_arrays(shape_a)), data.draw(tied_arrays(shape_b))
    _, G, (grad_a, grad_b) = backward_of(getattr(tm, name), a, b)
    wins = (a > b) if name == "maximum" else (a < b)
    share = wins + 0.5 * (a == b)
    np.testing.assert_allclose(grad_a, unbroadcast(G * share, a.shape), atol=1e-12)
    np.testing.assert_allclose(grad_b, unbroadcast(G * (1 - share), b.shape), atol=1e-12)


@given(data=st.data())
def test_abs_and_its_zero_gradient_at_zero(data):
    x = data.draw(arrays(shapes(min_side=0), min_value=-3, max_value=3))
    check_op(lambda t: t.abs(), nonzero(x))
    tied = data.draw(tied_arrays())
    out, G, (grad,) = backward_of(abs, tied)
    np.testing.assert_array_equal(out, np.abs(tied))
    np.testing.assert_array_equal(grad, G * np.sign(tied))      # 0 exactly where x == 0


@given(x=arrays(shapes(min_side=0), min_value=0.2, max_value=5))
def test_sqrt(x):
    check_op(lambda t: t.sqrt(), x)


@st.composite
def clip_case(draw):
    """x on tenths shifted by 0.05, bounds on tenths (or None): x never sits on a bound."""
    x = np.asarray(draw(hnp.arrays(np.int64, shapes(), elements=st.integers(-30, 30))) / 10 + 0.05)
    low, high = sorted(draw(st.lists(st.integers(-30, 30), min_size=2, max_size=2)))
    low, high = draw(st.sampled_from([(low, high), (low, None), (None, high)]))
    return x, None if low is None else low / 10, None if high is None else high / 10


@given(case=clip_case())
def test_clip_with_either_bound(case):
    x, low, high = case
    check_op(lambda t: t.clip(low, high), x)
    np.testing.assert_array_equal(tm.Tensor(x).clip(low, high).data,
                                  np.clip(x, -np.inf if low is None else low,
                                          np.inf if high is None else high))


@given(x=tied_arrays(), bounds=st.sampled_from([(-0.5, 0.5), (0.0, 1.0), (-1.0, None)]))
def test_clip_passes_the_gradient_at_its_bounds(x, bounds):
    low, high = bounds
    _, G, (grad,) = backward_of(lambda t: t.clip(low, high), x)
    inside = (x >= low) & (x <= (np.inf if high is None else high))   # bounds included
    np.testing.assert_array_equal(grad, G * inside)


@given(x=arrays(shapes(min_side=0)), dtype=st.sampled_from([np.float32, np.float64]))
def test_astype_casts_forward_and_the_gradient_back(x, dtype):
    assert_gradients_match(lambda t: t.astype(np.float64) * 2, x)
    source = tm.Tensor(x.astype(np.float32 if dtype == np.float64 else np.float64),
                       requires_grad=True)
    out = source.astype(dtype)
    assert out.dtype == dtype
    out.backward(np.ones(out.shape, dtype=dtype))
    assert source.grad.dtype == source.dtype
    np.testing.assert_array_equal(source.grad, np.ones(x.shape))


@given(data=st.data())
def test_where_with_three_way_broadcasting(data):
    shape_c, shape_a, shape_b = data.draw(broadcastable_shapes(num_shapes=3))
    condition = data.draw(hnp.arrays(np.bool_, shape_c))
    a, b = data.draw(arrays(shape_a)), data.draw(arrays(shape_b))
    check_op(lambda x, y: tm.where(condition, x, y), a, b)
    np.testing.assert_array_equal(tm.where(condition, a, b).data, np.where(condition, a, b))
    _, G, (grad_a, grad_b) = backward_of(lambda x, y: tm.where(condition, x, y), a, b)
    np.testing.assert_array_equal(grad_a, unbroadcast(np.where(condition, G, 0), a.shape))
    np.testing.assert_array_equal(grad_b, unbroadcast(np.where(condition, 0, G), b.shape))


# --- second round: reductions ----------------------------------------------------------------

@st.composite
def reduction_args(draw, min_side=1):
    shape = draw(shapes(min_side=min_side))
    return shape, draw(axes(len(shape))), draw(st.booleans())


@given(data=st.data())
def test_min_over_any_axes_with_distinct_values(data):
    shape, axis, keepdims = data.draw(reduction_args())
    x = np.asarray(data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-500, 500),
                                        unique=True)) / 100)
    check_op(lambda t: t.min(axis=axis, keepdims=keepdims), x)
    np.testing.assert_array_equal(tm.Tensor(x).min(axis=axis, keepdims=keepdims).data,
                                  np.min(x, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data())
def test_max_and_min_share_the_gradient_between_ties(name, data):
    shape, axis, keepdims = data.draw(reduction_args())
    x = data.draw(tied_arrays(shape))
    out, G, (grad,) = backward_of(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)
    extreme = getattr(np, name)(x, axis=axis, keepdims=True)
    hits = x == extreme
    G_full = G if keepdims else np.expand_dims(G, axis if axis is not None else
                                               tuple(range(x.ndim)))
    expected = G_full * hits / hits.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["var", "std"])
@given(data=st.data(), ddof=st.sampled_from([0, 1, 2]))
def test_var_and_std_over_any_axes_with_ddof(name, data, ddof):
    shape, axis, keepdims = data.draw(reduction_args())
    reduced = range(len(shape)) if axis is None else np.atleast_1d(axis)
    count = int(np.prod([shape[a] for a in reduced]))
    assume(count > ddof and (name == "var" or count >= 2))
    x = np.asarray(data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-300, 300),
                                        unique=True)) / 100)
    check_op(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims, ddof=ddof), x)
    np.testing.assert_allclose(
        getattr(tm.Tensor(x), name)(axis=axis, keepdims=keepdims, ddof=ddof).data,
        getattr(np, name)(x, axis=axis, keepdims=keepdims, ddof=ddof), rtol=1e-12, atol=1e-12)


def test_std_of_constant_entries_has_zero_gradient_and_var_without_dof_is_nan():
    x = tm.Tensor(np.full((2, 3), 4.0), requires_grad=True)
    x.std(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros((2, 3)))
    y = tm.Tensor(np.array([3.0]), requires_grad=True)
    with np.errstate(all="raise"):                 # and no numpy warning on the way
        v = y.var(ddof=1)
        v.backward()
    assert np.isnan(v.item()) and np.isnan(y.grad).all()


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(data=st.data(), keepdims=st.booleans())
def test_argmax_and_argmin_are_numpys_first_index_without_a_graph(name, data, keepdims):
    x = data.draw(tied_arrays(shapes(min_dims=1)))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    t = tm.Tensor(x, requires_grad=True)
    got = getattr(t, name)(axis=axis, keepdims=keepdims)
    assert isinstance(got, np.ndarray) and got.dtype.kind == "i"
    np.testing.assert_array_equal(got, getattr(np, name)(x, axis=axis, keepdims=keepdims))


# --- second round: shape ---------------------------------------------------------------------

@given(data=st.data())
def test_stack_along_any_axis(data):
    shape = data.draw(shapes(min_side=0))
    n = data.draw(st.integers(1, 3))
    xs = [data.draw(arrays(shape)) for _ in range(n)]
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check_op(lambda *ts: tm.stack(list(ts), axis=axis), *xs)
    np.testing.assert_array_equal(tm.stack(xs, axis=axis).data, np.stack(xs, axis=axis))


@given(data=st.data())
def test_concatenate_along_any_axis(data):
    shape = data.draw(shapes(min_dims=1, min_side=0))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    xs = [data.draw(arrays(shape[:axis % len(shape)] + (k,) + shape[axis % len(shape) + 1:]))
          for k in sizes]
    check_op(lambda *ts: tm.concatenate(ts, axis=axis), *xs)
    np.testing.assert_array_equal(tm.concatenate(xs, axis=axis).data,
                                  np.concatenate(xs, axis=axis))


@given(data=st.data())
def test_flatten_between_any_two_axes(data):
    x = data.draw(arrays(shapes(min_dims=1, min_side=0)))
    start = data.draw(st.integers(-x.ndim, x.ndim - 1))
    end = data.draw(st.integers(start % x.ndim - x.ndim, -1))     # end at or after start
    end = data.draw(st.sampled_from([end, end % x.ndim]))         # negative or not
    check_op(lambda t: t.flatten(start, end), x)
    s, e = start % x.ndim, end % x.ndim
    assert tm.Tensor(x).flatten(start, end).shape == \
        x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:]


@given(data=st.data())
def test_squeeze_all_or_named_axes(data):
    x = data.draw(arrays(shapes(max_dims=4, max_side=2)))
    ones = [a for a, n in enumerate(x.shape) if n == 1]
    axis = data.draw(st.one_of(st.none(), st.lists(st.sampled_from(ones), unique=True).map(tuple)
                               if ones else st.none()))
    check_op(lambda t: t.squeeze(axis), x)
    assert tm.Tensor(x).squeeze(axis).shape == np.squeeze(x, axis).shape


@given(data=st.data())
def test_unsqueeze_at_any_position(data):
    x = data.draw(arrays(shapes(min_side=0)))
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    check_op(lambda t: t.unsqueeze(axis), x)
    assert tm.Tensor(x).unsqueeze(axis).shape == np.expand_dims(x, axis).shape


@given(data=st.data())
def test_broadcast_to_sums_the_gradient_back(data):
    target = data.draw(shapes(min_side=0))
    kept = data.draw(st.integers(0, len(target)))
    source = tuple(1 if data.draw(st.booleans()) else n for n in target[len(target) - kept:])
    x = data.draw(arrays(source))
    check_op(lambda t: t.broadcast_to(target), x)
    np.testing.assert_array_equal(tm.Tensor(x).broadcast_to(target).data,
                                  np.broadcast_to(x, target))


@given(data=st.data(), value=st.sampled_from([0.0, -1.5, 2.0]))
def test_pad_with_every_form_of_pad_width(data, value):
    x = data.draw(arrays(shapes(min_side=0)))
    width = st.integers(0, 2)
    forms = [width, st.tuples(width, width)]
    if x.ndim:                                   # numpy refuses () for a 0-d array
        forms.append(st.tuples(*[st.tuples(width, width) for _ in range(x.ndim)]))
    pad_width = data.draw(st.one_of(*forms))
    check_op(lambda t: t.pad(pad_width, value), x)
    np.testing.assert_array_equal(tm.Tensor(x).pad(pad_width, value).data,
                                  np.pad(x, pad_width, constant_values=value))


# --- second round: comparisons and Python values -----------------------------------------------

@pytest.mark.parametrize("symbol", ["<", "<=", ">", ">="])
@given(data=st.data())
def test_comparisons_give_bool_arrays_and_no_graph(symbol, data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a, b = data.draw(tied_arrays(shape_a)), data.draw(tied_arrays(shape_b))
    compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[symbol]
    t, u = tm.Tensor(a, requires_grad=True), tm.Tensor(b)
    for got in (compare(t, u), compare(t, b), compare(a, t)):   # Tensor or array on either side
        assert isinstance(got, np.ndarray) and got.dtype == np.bool_
    np.testing.assert_array_equal(compare(t, u), compare(a, b))
    np.testing.assert_array_equal(compare(a, u), compare(a, b))


def test_python_values_of_one_element_tensors():
    t = tm.Tensor([[2.75]])
    assert float(t) == 2.75 and type(float(t)) is float
    assert int(t) == 2 and int(tm.Tensor(-2.75)) == -2          # truncation, as int() does
    assert bool(t) is True and bool(tm.Tensor([0.0])) is False
    assert tm.Tensor([[1.0, 2.0]]).tolist() == [[1.0, 2.0]] and tm.Tensor(3.0).tolist() == 3.0
    for convert in (float, int, bool):
        with pytest.raises(ValueError, match=rf"{convert.__name__}\(\) needs a tensor with "
                                             r"exactly one element, got shape \(2,\)"):
            convert(tm.Tensor([1.0, 2.0]))


@pytest.mark.parametrize("call, error, message", [
    (lambda t: t.clip(), ValueError, "clip: give at least one of min and max"),
    (lambda t: t.clip(min="0"), TypeError, "clip: min must be a real number"),
    (lambda t: tm.where(t.data, t, t), TypeError, "where: condition must be a boolean array"),
    (lambda t: tm.where(np.ones(4, bool), t, t), ValueError, r"where: condition \(4,\), a"),
    (lambda t: tm.maximum(t, np.ones(4)), ValueError,
     r"maximum: shapes \(2, 3\) and \(4,\) cannot be broadcast"),
    (lambda t: t.var(ddof=-1), ValueError, "var: ddof must be a non-negative int"),
    (lambda t: t.min(axis=2), ValueError, r"min: axis 2 is out of range .* \(2, 3\)"),
    (lambda t: t.argmax(axis=(0, 1)), ValueError, "argmax: axis must be one int or None"),
    (lambda t: t.astype(np.int64), TypeError, "astype: a Tensor holds floats"),
    (lambda t: tm.stack([t, t[0]]), ValueError, r"stack: all inputs need the same shape; input 0 "
                                                r"has shape \(2, 3\), input 1 has shape \(3,\)"),
    (lambda t: tm.concatenate([t, t.T], axis=0), ValueError, "concatenate: all inputs need"),
    (lambda t: tm.stack([]), ValueError, "stack: needs at least one tensor"),
    (lambda t: tm.stack(t), TypeError, "stack: expected a list or tuple of tensors"),
    (lambda t: t.flatten(1, 0), ValueError, "flatten: start_axis 1 comes after end_axis 0"),
    (lambda t: t.squeeze(0), ValueError, r"squeeze: axis 0 .* has size 2, not 1"),
    (lambda t: t.unsqueeze(4), ValueError, r"unsqueeze: axis 4 is out of range"),
    (lambda t: t.broadcast_to((3, 2)), ValueError, r"broadcast_to: an input of shape \(2, 3\)"),
    (lambda t: t.pad(-1), ValueError, "pad: pad_width must be non-negative ints"),
    (lambda t: t.pad(((1, 1),) * 3), ValueError, "pad: pad_width .* does not fit"),
    (lambda t: t < np.ones(4), ValueError, r"<: shapes \(2, 3\) and \(4,\)"),
])
def test_second_round_ops_name_themselves_and_the_shapes_in_errors(call, error, message):
    t = tm.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(error, match=message):
        call(t)


# --- second round: activations, normalisation, dropout -------------------------------------------

ACTIVATIONS = {
    "leaky_relu": (lambda t: ops.LeakyReLU.apply(t, negative_slope=0.1), True),
    "elu": (lambda t: ops.ELU.apply(t, alpha=1.5), True),
    "gelu": (lambda t: ops.GELU.apply(t), False),
    "gelu_tanh": (lambda t: ops.GELU.apply(t, approximate="tanh"), False),
    "softplus": (lambda t: ops.Softplus.apply(t), False),
    "softplus_beta": (lambda t: ops.Softplus.apply(t, beta=2.0, threshold=3.0), True),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(x=arrays(shapes(min_side=0), min_value=-4, max_value=4))
def test_second_round_activations(name, x):
    fn, has_kink = ACTIVATIONS[name]
    if has_kink:        # away from 0 (and from softplus's threshold βx = 3, where it switches)
        x = nonzero(x) if name != "softplus_beta" else np.where(np.abs(2 * x - 3) < 0.1, 0.0, x)
    check_op(fn, x)


@given(x=tied_arrays())
def test_leaky_relu_and_elu_take_the_negative_side_at_zero(x):
    _, G, (grad,) = backward_of(lambda t: ops.LeakyReLU.apply(t, negative_slope=0.1), x)
    np.testing.assert_allclose(grad, G * np.where(x > 0, 1, 0.1), rtol=1e-12)
    _, G, (grad,) = backward_of(lambda t: ops.ELU.apply(t, alpha=2.0), x)
    np.testing.assert_allclose(grad, G * np.where(x > 0, 1, 2.0 * np.exp(x)), rtol=1e-12)


@given(x=arrays(shapes(min_side=0), min_value=-30, max_value=30))
def test_erf_is_the_c_librarys_to_an_ulp_of_one(x):
    from tinygrad_mlp.ops.activations import erf
    expected = np.vectorize(math.erf, otypes=[np.float64])(x) if x.size else x
    np.testing.assert_allclose(erf(x), expected, rtol=0, atol=2.3e-16)
    assert erf(x.astype(np.float32)).dtype == np.float32


def test_gelu_is_x_times_the_normal_cdf():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    cdf = np.array([0.0013498980316301, 0.1586552539314571, 0.5, 0.6914624612740131,
                    0.9772498680518208])                       # Φ from tables
    np.testing.assert_allclose(ops.GELU.apply(x).data, x * cdf, rtol=1e-13, atol=1e-15)


@st.composite
def batchnorm_case(draw):
    ndim = draw(st.sampled_from([2, 3, 4]))
    shape = draw(shapes(min_dims=ndim, max_dims=ndim, max_side=3))
    assume(np.prod(shape) // shape[1] >= 2)
    x = draw(hnp.arrays(np.int64, shape, elements=st.integers(-300, 300), unique=True)) / 100
    return np.asarray(x)


@pytest.mark.host_only("the running statistics it hands the op are host arrays")
@given(x=batchnorm_case(), training=st.booleans())
def test_batchnorm_standardises_per_channel(x, training):
    C = x.shape[1]
    stats = {}

    def batchnorm(t):
        stats.update(mean=np.zeros(C), var=np.ones(C) * 2, count=np.zeros((), np.int64))
        return ops.BatchNorm.apply(t, running_mean=stats["mean"], running_var=stats["var"],
                                   num_batches_tracked=stats["count"], training=training)
    # a channel of two close values (0.01, -0.01: variance 1e-4) divides float32 rounding by a
    # small std, so float32 agrees with float64 to about 3e-4 there, not 1e-4
    check_op(batchnorm, x, rtol32=1e-3)
    axes = (0,) + tuple(range(2, x.ndim))
    out = batchnorm(tm.Tensor(x)).data
    if training:
        expected = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
        m = x.size // C
        np.testing.assert_allclose(stats["mean"], 0.1 * x.mean(axes), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(stats["var"], 0.9 * 2 + 0.1 * x.var(axes) * m / (m - 1),
                                   rtol=1e-12)
        assert stats["count"] == 1
    else:
        np.testing.assert_allclose(out, x / np.sqrt(2 + 1e-5), rtol=1e-12)
        assert stats["count"] == 0


@given(data=st.data())
def test_layernorm_standardises_over_the_last_axes(data):
    x = data.draw(arrays(shapes(min_dims=1, max_dims=3), min_value=-3, max_value=3))
    ndim = data.draw(st.integers(1, x.ndim))
    axes = tuple(range(x.ndim - ndim, x.ndim))
    assume(np.all(x.var(axis=axes) > 0.01))       # a constant row's x̂ is 0/0-sensitive
    check_op(lambda t: ops.LayerNorm.apply(t, ndim=ndim), x)
    expected = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ops.LayerNorm.apply(x, ndim=ndim).data, expected, rtol=1e-10,
                               atol=1e-10)


@given(x=arrays(shapes(min_side=0)), p=st.sampled_from([0.0, 0.3, 0.5, 0.9]))
def test_dropout_zeroes_and_rescales_with_the_mask_of_its_forward(x, p):
    tm.manual_seed(1)
    out, G, (grad,) = backward_of(lambda t: ops.Dropout.apply(t, p=p), x)
    tm.manual_seed(1)
    keep = tm.get_generator().random(x.shape) >= p          # the same draw
    np.testing.assert_allclose(out, np.where(keep, x / (1 - p), 0), rtol=1e-12)
    np.testing.assert_allclose(grad, np.where(keep, G / (1 - p), 0), rtol=1e-12)
    assert_backward_invariants(lambda t: ops.Dropout.apply(t, p=p), x)


COVERED = {"Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Sigmoid", "Tanh", "ReLU",
           "Softmax", "LogSoftmax", "MatMul", "Linear", "Sum", "Mean", "Max", "Reshape",
           "Transpose", "GetItem", "Abs", "Sqrt", "Clip", "AsType", "Maximum", "Minimum", "Where",
           "Min", "Var", "Std", "Flatten", "Squeeze", "Unsqueeze", "BroadcastTo", "Pad", "Stack",
           "Concatenate", "LeakyReLU", "ELU", "GELU", "Softplus", "BatchNorm", "LayerNorm",
           "Dropout"}
COVERED |= {"Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
            "AdaptiveMaxPool2d"}                 # gradchecked in test_image.py


def _loss_case(name):
    """(the loss Function applied to a prediction, that prediction) on a 4×3 batch."""
    rng = np.random.default_rng(0)
    P = rng.uniform(0.1, 0.9, (4, 3))
    Y = np.eye(3)[[0, 2, 1, 2]]
    Z = rng.normal(size=(4, 3))
    return {"MSE": (lambda p: ops.MSE.apply(p, Y), Z),
            "L1": (lambda p: ops.L1.apply(p, Y), Z),
            "Huber": (lambda p: ops.Huber.apply(p, Y, delta=0.5), Z),
            "BCE": (lambda p: ops.BCE.apply(p, Y), P),
            "BCEWithLogits": (lambda z: ops.BCEWithLogits.apply(z, Y, a2=z.sigmoid().data), Z),
            "SoftmaxCrossEntropy": (lambda z: ops.SoftmaxCrossEntropy.apply(z, Y), Z),
            "CrossEntropy": (lambda p: ops.CrossEntropy.apply(p, Y), P),
            "NLL": (lambda p: ops.NLL.apply(p, Y), Z)}[name]


LOSS_FUNCTIONS = ["MSE", "L1", "Huber", "BCE", "BCEWithLogits", "SoftmaxCrossEntropy",
                  "CrossEntropy", "NLL"]
COVERED |= set(LOSS_FUNCTIONS)


@pytest.mark.parametrize("name", LOSS_FUNCTIONS)
def test_each_loss_function_in_ops_gradchecks_on_its_own(name):
    function, prediction = _loss_case(name)
    assert tm.gradcheck(function, tm.Tensor(prediction, requires_grad=True))


def test_every_op_in_ops_py_has_a_gradient_test_here():
    defined = {name for name, value in vars(ops).items()
               if isinstance(value, type) and issubclass(value, tm.Function)
               and value is not tm.Function}
    assert defined <= COVERED, f"ops without a gradcheck test in this file: {defined - COVERED}"
