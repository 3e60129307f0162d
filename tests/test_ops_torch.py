"""The second round's ops against PyTorch in float64: values and gradients within 1e-10, on
drawn shapes, axes and ties (so PyTorch also settles which subgradient each kink takes)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_mlp as tm
from tinygrad_mlp.testing import arrays, axes, broadcastable_shapes, shapes, tied_arrays

torch = pytest.importorskip("torch")

TOLERANCE = 1e-10


def assert_matches_torch(ours, theirs, *arrays, seed=0):
    """ours(*Tensors) and theirs(*torch tensors) agree in value and in every input's gradient,
    for the same random upstream gradient."""
    tensors = [tm.Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    torch_tensors = [torch.tensor(np.array(a, dtype=np.float64), requires_grad=True)
                     for a in arrays]
    out, torch_out = ours(*tensors), theirs(*torch_tensors)
    np.testing.assert_allclose(out.data, torch_out.detach().numpy(), rtol=TOLERANCE,
                               atol=TOLERANCE)
    G = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(G)
    torch_out.backward(torch.tensor(G))
    for i, (t, torch_t) in enumerate(zip(tensors, torch_tensors)):
        expected = np.zeros(t.shape) if torch_t.grad is None else torch_t.grad.numpy()
        got = np.zeros(t.shape) if t.grad is None else t.grad
        np.testing.assert_allclose(got, expected, rtol=TOLERANCE, atol=TOLERANCE,
                                   err_msg=f"gradient of input {i}")


def torch_axis(axis, ndim):
    """numpy's axis as torch's dim (None: every axis; () reduces nothing here but all there)."""
    return tuple(range(ndim)) if axis is None else axis


# --- elementwise --------------------------------------------------------------------------------

@given(x=tied_arrays())
def test_abs_including_zero(x):
    assert_matches_torch(lambda t: t.abs(), torch.abs, x)


@given(x=arrays(min_value=0.01, max_value=5))
def test_sqrt(x):
    assert_matches_torch(lambda t: t.sqrt(), torch.sqrt, x)


@given(x=tied_arrays(), bounds=st.sampled_from([(-0.5, 0.5), (0.0, 1.0), (-1.0, None),
                                                 (None, 0.0)]))
def test_clip_at_and_between_its_bounds(x, bounds):
    low, high = bounds
    assert_matches_torch(lambda t: t.clip(low, high), lambda t: torch.clamp(t, low, high), x)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(data=st.data())
def test_maximum_and_minimum_with_ties_and_broadcasting(name, data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a, b = data.draw(tied_arrays(shape_a)), data.draw(tied_arrays(shape_b))
    assert_matches_torch(getattr(tm, name), getattr(torch, name), a, b)


@given(data=st.data())
def test_where(data):
    shape_c, shape_a, shape_b = data.draw(broadcastable_shapes(num_shapes=3))
    condition = data.draw(hnp.arrays(np.bool_, shape_c))
    a, b = data.draw(arrays(shape_a)), data.draw(arrays(shape_b))
    assert_matches_torch(lambda x, y: tm.where(condition, x, y),
                         lambda x, y: torch.where(torch.tensor(condition), x, y), a, b)


# --- reductions ---------------------------------------------------------------------------------

@st.composite
def reduction_args(draw):
    shape = draw(shapes(min_dims=1))
    axis = draw(axes(len(shape)).filter(lambda a: a != ()))   # torch reads () as "all axes"
    return shape, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["max", "min"])
@given(data=st.data())
def test_max_and_min_with_ties_are_torchs_amax_and_amin(name, data):
    shape, axis, keepdims = data.draw(reduction_args())
    x = data.draw(tied_arrays(shape))
    reduce = getattr(torch, "a" + name)
    assert_matches_torch(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims),
                         lambda t: reduce(t, dim=torch_axis(axis, t.ndim), keepdim=keepdims), x)


@pytest.mark.parametrize("name", ["var", "std"])
@given(data=st.data(), ddof=st.sampled_from([0, 1]))
def test_var_and_std_with_ddof_as_torchs_correction(name, data, ddof):
    shape, axis, keepdims = data.draw(reduction_args())
    reduced = range(len(shape)) if axis is None else np.atleast_1d(axis)
    assume(int(np.prod([shape[a] for a in reduced])) > ddof)
    x = data.draw(st.one_of(arrays(shape), tied_arrays(shape)))   # ties: std may be 0
    reduce = getattr(torch, name)
    assert_matches_torch(
        lambda t: getattr(t, name)(axis=axis, keepdims=keepdims, ddof=ddof),
        lambda t: reduce(t, dim=torch_axis(axis, t.ndim), keepdim=keepdims, correction=ddof), x)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(data=st.data(), keepdims=st.booleans())
def test_argmax_and_argmin_pick_the_first_tie_like_torch(name, data, keepdims):
    x = data.draw(tied_arrays(shapes(min_dims=1)))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    ours = getattr(tm.Tensor(x), name)(axis=axis, keepdims=keepdims and axis is not None)
    theirs = getattr(torch, name)(torch.tensor(x), dim=axis, keepdim=keepdims and axis is not None)
    np.testing.assert_array_equal(ours, theirs.numpy())


# --- shape --------------------------------------------------------------------------------------

@pytest.mark.parametrize("join", ["stack", "concatenate"])
@given(data=st.data())
def test_stack_and_concatenate(join, data):
    shape = data.draw(shapes(min_dims=1))
    n = data.draw(st.integers(1, 3))
    xs = [data.draw(arrays(shape)) for _ in range(n)]
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    theirs = torch.stack if join == "stack" else torch.cat
    assert_matches_torch(lambda *ts: getattr(tm, join)(list(ts), axis=axis),
                         lambda *ts: theirs(list(ts), dim=axis), *xs)


@given(data=st.data())
def test_flatten_squeeze_unsqueeze_broadcast_to(data):
    x = data.draw(arrays(shapes(min_dims=1, max_side=2)))
    start = data.draw(st.integers(0, x.ndim - 1))
    end = data.draw(st.integers(start, x.ndim - 1))
    assert_matches_torch(lambda t: t.flatten(start, end), lambda t: t.flatten(start, end), x)
    ones = tuple(a for a, n in enumerate(x.shape) if n == 1)
    assert_matches_torch(lambda t: t.squeeze(ones), lambda t: t.squeeze(ones), x)
    assert_matches_torch(lambda t: t.squeeze(), lambda t: t.squeeze(), x)
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    assert_matches_torch(lambda t: t.unsqueeze(axis), lambda t: t.unsqueeze(axis), x)
    target = (3,) + tuple(3 if n == 1 else n for n in x.shape)
    assert_matches_torch(lambda t: t.broadcast_to(target), lambda t: t.broadcast_to(target), x)


@given(data=st.data(), value=st.sampled_from([0.0, -2.5]))
def test_pad_is_torchs_constant_pad_with_numpys_pad_width(data, value):
    x = data.draw(arrays(shapes(min_dims=1)))
    widths = data.draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)),
                                min_size=x.ndim, max_size=x.ndim))
    torch_pad = tuple(w for pair in reversed(widths) for w in pair)   # last axis first
    assert_matches_torch(lambda t: t.pad(widths, value),
                         lambda t: torch.nn.functional.pad(t, torch_pad, value=value), x)
