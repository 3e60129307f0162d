"""Hypothesis strategies and assertions to property-test your own ops (needs the `test` extra).

Testing a custom Function takes a few lines: draw inputs, check the gradients against finite
differences (in float64, with an upstream gradient hypothesis draws too, so a failure shrinks
to simple inputs and a simple gradient), and check that backward neither mutates nor aliases
anything.

>>> import numpy as np
>>> import tinygrad_mlp as tm
>>> from hypothesis import given, strategies as st
>>> from tinygrad_mlp.testing import arrays, assert_backward_invariants, assert_gradients_match
>>> class Cube(tm.Function):
...     @staticmethod
...     def forward(ctx, x):
...         ctx.x = x
...         return x ** 3
...     @staticmethod
...     def backward(ctx, grad):
...         return grad * 3 * ctx.x ** 2
>>> @given(arrays(min_value=-3, max_value=3), st.data())
... def test_cube(x, data):
...     assert_gradients_match(Cube.apply, x, data=data)
...     assert_backward_invariants(Cube.apply, x, data=data)
>>> test_cube()

Importing `tinygrad_mlp` does not import hypothesis; `import tinygrad_mlp.testing` does.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ModuleNotFoundError as error:
    if error.name != "hypothesis":
        raise
    raise ModuleNotFoundError("tinygrad_mlp.testing needs hypothesis, an optional extra: pip "
                              "install hypothesis (from a source checkout: pip install -e "
                              "'.[test]')", name="hypothesis") from None

from tinygrad_mlp.gradcheck import gradcheck
from tinygrad_mlp.tensor import Tensor, graph_size, no_grad

__all__ = ["arrays", "tied_arrays", "shapes", "broadcastable_shapes", "axes", "mlp_shapes",
           "networks",
           "assert_gradients_match", "assert_backward_invariants"]


# --- strategies ------------------------------------------------------------------------------

def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4
           ) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes such as (), (3,), (2, 1, 4). `min_side=0` also draws zero-size dims."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         min_side: int = 1, max_side: int = 4
                         ) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """`num_shapes` shapes that numpy broadcasts together, such as ((3, 1), (4,)), drawn with
    hypothesis's `mutually_broadcastable_shapes`."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side,
        max_side=max_side).map(lambda drawn: drawn.input_shapes)


def arrays(shape: Any = None, dtype: Any = np.float64, min_value: float = -10.0,
           max_value: float = 10.0, unique: bool = False) -> st.SearchStrategy[np.ndarray]:
    """Float arrays with finite values in [min_value, max_value] (no nan, inf or subnormals).

    shape: a tuple, an int, a strategy of shapes, or None for `shapes()`. unique=True draws
    distinct values (for ops like max, whose gradient at a tie is a matter of convention).
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"testing.arrays: dtype must be a float dtype, got {dtype}")
    if not min_value <= max_value:
        raise ValueError(f"testing.arrays: min_value {min_value} > max_value {max_value}")
    low, high = _representable_bounds(min_value, max_value, dtype)
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False,
                         allow_subnormal=False, width=8 * dtype.itemsize)
    return hnp.arrays(dtype, shapes() if shape is None else shape, elements=elements,
                      unique=unique)


def tied_arrays(shape: Any = None, dtype: Any = np.float64,
                values: Any = (-1.0, -0.5, 0.0, 0.5, 1.0)) -> st.SearchStrategy[np.ndarray]:
    """Arrays whose entries come from a few `values`, so ties, exact zeros and exact bounds are
    common: for checking the subgradient an op picks at its kinks (max at a tie, abs at 0, …)."""
    return hnp.arrays(np.dtype(dtype), shapes() if shape is None else shape,
                      elements=st.sampled_from([float(v) for v in values]))


def axes(ndim: int, allow_none: bool = True) -> st.SearchStrategy[Any]:
    """An `axis` argument for an array of `ndim` dimensions: None (if allowed), one int (negative
    ones too), or a tuple of distinct ints (possibly empty)."""
    choices = [st.none()] if allow_none else []
    if ndim:
        choices.append(st.integers(-ndim, ndim - 1))
        choices.append(st.lists(st.integers(-ndim, ndim - 1), unique_by=lambda a: a % ndim,
                                max_size=ndim).map(tuple))
    else:
        choices.append(st.just(()))
    return st.one_of(*choices)


def mlp_shapes(max_N: int = 8, max_D: int = 5, max_M: int = 5, max_K: int = 4
               ) -> st.SearchStrategy[tuple[int, int, int, int]]:
    """(N, D, M, K) of the blog's network: N samples, D inputs, M hidden units, K outputs."""
    return st.tuples(*(st.integers(1, high) for high in (max_N, max_D, max_M, max_K)))


def networks(loss: str = "mse", dtype: Any = np.float64, shape: Any = None
             ) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(X (N×D), Y (N×K), W1 (D×M), W2 (M×K)) for the blog's network, Y fit for `loss`:
    values in [0, 1] for "mse" and "bce", one-hot rows for "ce". X in [-3, 3], weights in
    [-2, 2] (so the sigmoids do not saturate). shape: (N, D, M, K) or a strategy of them."""
    if loss not in ("mse", "bce", "ce"):
        raise ValueError(f"testing.networks: loss must be 'mse', 'bce' or 'ce', got {loss!r}")
    if shape is None:
        shape = mlp_shapes()
    elif not isinstance(shape, st.SearchStrategy):
        shape = st.just(tuple(shape))
    return _networks(loss, np.dtype(dtype), shape)


@st.composite
def _networks(draw: Callable, loss: str, dtype: np.dtype, shape: st.SearchStrategy
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    N, D, M, K = draw(shape)
    X = draw(arrays((N, D), dtype, -3, 3))
    W1 = draw(arrays((D, M), dtype, -2, 2))
    W2 = draw(arrays((M, K), dtype, -2, 2))
    if loss == "ce":
        classes = draw(hnp.arrays(np.int64, N, elements=st.integers(0, K - 1)))
        Y = np.eye(K, dtype=dtype)[classes]
    else:
        Y = draw(arrays((N, K), dtype, 0, 1))
    return X, Y, W1, W2


def _representable_bounds(low: float, high: float, dtype: np.dtype) -> tuple[float, float]:
    """The bounds rounded inwards to values the dtype holds exactly (hypothesis requires it)."""
    kind = dtype.type
    low_, high_ = kind(low), kind(high)
    if low_ < low:
        low_ = np.nextafter(low_, kind(np.inf))
    if high_ > high:
        high_ = np.nextafter(high_, kind(-np.inf))
    return float(low_), float(high_)


# --- assertions ------------------------------------------------------------------------------

def _upstream(data: Any, shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    """An upstream gradient G of `shape`: drawn by hypothesis from `data` (the calling test's
    `st.data()`, so a failing case shrinks to a simple G), else from `seed`."""
    if data is None:
        return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    magnitude = st.floats(0.125, 2.0, width=8 * np.dtype(dtype).itemsize)   # never 0: a zero
    elements = st.one_of(magnitude, magnitude.map(lambda v: -v))         # G hides any bug
    return data.draw(hnp.arrays(dtype, shape, elements=elements), label="upstream gradient G")


def assert_gradients_match(fn: Callable[..., Tensor], *arrays: Any, eps: float = 1e-6,
                           atol: float = 1e-5, rtol: float = 1e-3, fast: bool = False,
                           seed: int = 0, data: Any = None) -> None:
    """Every input of `fn` gets the gradient finite differences say it should.

    Wraps each array in a Tensor requiring grad and runs `tm.gradcheck` in float64 with an
    upstream gradient G drawn by hypothesis from `data` when the test passes its `st.data()`
    (then a failure shrinks to a simple G as well as simple inputs), else from `seed`. Raises
    `tm.GradcheckError` (an AssertionError) on a mismatch.
    """
    tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    with no_grad():
        shape = fn(*[Tensor(t.data) for t in tensors]).shape
    G = _upstream(data, shape, np.float64, seed)
    gradcheck(fn, *tensors, eps=eps, atol=atol, rtol=rtol, fast=fast, seed=seed, upstream=G)


def assert_backward_invariants(fn: Callable[..., Tensor], *arrays: Any, seed: int = 0,
                               data: Any = None) -> None:
    """One forward and backward of `fn` with an upstream gradient G (drawn from `data`, the
    test's `st.data()`, when given, else from `seed`), then check that:
    the inputs and G are unchanged; each gradient has its input's shape and dtype; no gradient
    shares memory with another, with G, with an input or with the output; the graph is freed.
    Float arrays keep their dtype (so float32 is checked as float32); others become float64.
    """
    datas = [np.array(a, dtype=None if np.asarray(a).dtype.kind == "f" else np.float64)
             for a in arrays]
    originals = [d.copy() for d in datas]
    tensors = [Tensor(d, requires_grad=True) for d in datas]
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise AssertionError(f"fn must return a Tensor, got {type(out).__name__}")
    G = _upstream(data, out.shape, out.dtype, seed)
    G_original = G.copy()
    out.backward(G)

    for i, (data, original) in enumerate(zip(datas, originals)):
        if not np.array_equal(data, original, equal_nan=True):
            raise AssertionError(f"input {i} was mutated by forward or backward")
    if not np.array_equal(G, G_original, equal_nan=True):
        raise AssertionError("the upstream gradient passed to backward() was mutated")
    grads = [(i, t.grad) for i, t in enumerate(tensors) if t.grad is not None]
    for i, grad in grads:
        if grad.shape != datas[i].shape or grad.dtype != datas[i].dtype:
            raise AssertionError(f"input {i} of shape {datas[i].shape} and dtype {datas[i].dtype} "
                                 f"got a gradient of shape {grad.shape} and dtype {grad.dtype}")
        others = [("the upstream gradient", G), ("the output", out.data)]
        others += [(f"input {k}", d) for k, d in enumerate(datas)]
        others += [(f"the gradient of input {k}", g) for k, g in grads if k != i]
        for name, other in others:
            if np.shares_memory(grad, other):
                raise AssertionError(f"the gradient of input {i} shares memory with {name}")
    if graph_size(out):
        raise AssertionError(f"backward() left {graph_size(out)} recorded ops alive")
