"""Hypothesis strategies for arrays, shapes and the blog's networks, reaching the corners an op
must handle: empty arrays, size-1 axes that broadcast anywhere, float32, nan, inf, subnormals,
and (with `avoid=`) keeping away from an op's kinks."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtypes() -> st.SearchStrategy[np.dtype]:
    """float32 or float64: pass it as `arrays(dtype=float_dtypes())` so one test checks both."""
    return st.sampled_from(FLOAT_DTYPES)


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4
           ) -> st.SearchStrategy[tuple[int, ...]]:
    """Array shapes such as (), (3,), (2, 1, 4). `min_side=0` also draws zero-size dims."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         min_side: int = 1, max_side: int = 4
                         ) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """`num_shapes` shapes that numpy broadcasts together, such as ((3, 1, 4), (2, 4)).

    One shape is drawn for the result (sides of at least 2, `max_dims` axes half the time); each
    input keeps its trailing axes (all of them half the time) and, axis by axis, the result's
    size or (one time in four) 1; with 3 or more axes, most
    draws also give all inputs but one a size-1 axis in the middle where that one has the full
    size.
    Size-1 axes that stretch in the middle or at the end of a shape, where hand-written
    un-broadcasting goes wrong, are common, not a rarity.
    """
    return _broadcastable_shapes(num_shapes, min_dims, max_dims, min_side, max_side)


@st.composite
def _broadcastable_shapes(draw: Callable, num_shapes: int, min_dims: int, max_dims: int,
                          min_side: int, max_side: int) -> tuple[tuple[int, ...], ...]:
    # sides of at least 2 where allowed, so that an input's 1 is a stretch, not a coincidence
    wide = max(min_side, 2) if 1 <= min_side and max_side >= 2 else min_side
    ndim = draw(_mostly(max_dims, range(min_dims, max_dims)))
    result = [draw(st.integers(wide, max_side)) for _ in range(ndim)]
    drawn = []
    for _ in range(num_shapes):
        dropped = draw(_mostly(0, range(1, ndim - min_dims + 1)))
        drawn.append([1 if draw(st.integers(0, 3)) == 3 else n for n in result[dropped:]])
    if ndim >= 3 and num_shapes >= 2 and not draw(st.booleans()):     # simplest: do stretch
        # a middle axis k where one input (the first, simplest) has the full size and every
        # other input has size 1
        full = draw(st.sampled_from(range(num_shapes)))
        k = draw(st.sampled_from(range(1, ndim - 1)))
        for index in range(num_shapes):
            drawn[index] = [1] * (ndim - len(drawn[index])) + drawn[index]
            drawn[index][k] = result[k] if index == full else 1
    return tuple(tuple(shape) for shape in drawn)


def _mostly(value: int, others: range) -> st.SearchStrategy[int]:
    """`value` half the time (and when shrinking), else one of `others`."""
    if not len(others):
        return st.just(value)
    return st.booleans().flatmap(lambda other: st.sampled_from(others) if other
                                 else st.just(value))


def arrays(shape: Any = None, dtype: Any = np.float64, min_value: float = -10.0,
           max_value: float = 10.0, unique: bool = False, *, elements: Any = None,
           allow_nan: bool = False, allow_infinity: bool = False, allow_subnormal: bool = False,
           avoid: Iterable[float] = (), margin: float = 1e-2) -> st.SearchStrategy[np.ndarray]:
    """Float arrays with values in [min_value, max_value]; empty arrays included by default.

    shape: a tuple, an int, a strategy of shapes, or None for `shapes(min_side=0)` (pass
    `shapes()` for an op that refuses empty arrays). dtype: a float dtype or a strategy of them
    (`float_dtypes()`). unique=True draws distinct values (for ops like max, whose gradient at
    a tie is a convention). avoid: points (an op's kinks, such as 0 for abs or hypot) that every
    value keeps at least `margin` away from, so finite differences never straddle a kink.
    allow_nan / allow_infinity / allow_subnormal add those values. elements: your own strategy
    of values instead (min_value, max_value and the allow_ flags are then not used).
    """
    if isinstance(dtype, st.SearchStrategy):
        return dtype.flatmap(lambda d: arrays(
            shape, d, min_value, max_value, unique, elements=elements, allow_nan=allow_nan,
            allow_infinity=allow_infinity, allow_subnormal=allow_subnormal, avoid=avoid,
            margin=margin))
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"testing.arrays: dtype must be a float dtype, got {dtype}")
    points = [float(p) for p in avoid]
    if points and not margin > 0:
        raise ValueError(f"testing.arrays: margin must be > 0 to avoid {points}, got {margin}")
    if elements is None:
        if not min_value <= max_value:
            raise ValueError(f"testing.arrays: min_value {min_value} > max_value {max_value}")
        low, high = _representable_bounds(min_value, max_value, dtype)
        elements = st.floats(low, high, allow_nan=False, allow_infinity=False,
                             allow_subnormal=allow_subnormal, width=8 * dtype.itemsize)
        if points:
            elements = elements.map(_away_from(points, margin, low, high, dtype))
        specials = [np.nan] * allow_nan + [np.inf, -np.inf] * allow_infinity
        if specials:
            elements = st.one_of(elements, st.sampled_from(specials))
    elif points:
        elements = elements.filter(lambda v: all(not abs(v - p) < margin for p in points))
    return hnp.arrays(dtype, shapes(min_side=0) if shape is None else shape, elements=elements,
                      unique=unique)


def _away_from(points: list[float], margin: float, low: float, high: float, dtype: np.dtype
               ) -> Callable[[float], float]:
    """A map pushing a value out of every (p - margin, p + margin), staying in [low, high].
    Raises ValueError at once when no representable value of [low, high] is far enough."""
    kind = dtype.type

    def outward(v: float, toward: float) -> float:
        """v in the dtype, rounded away from the point (toward ±inf), never back toward it."""
        rounded = kind(v)
        if (rounded < v) if toward > v else (rounded > v):
            rounded = np.nextafter(rounded, kind(toward))
        return float(rounded)

    def far(v: float) -> bool:
        return low <= v <= high and all(not abs(v - p) < margin for p in points)

    candidates = [low, high]
    for p in points:
        candidates += [outward(p + margin, np.inf), outward(p - margin, -np.inf)]
    if not any(far(v) for v in candidates):
        raise ValueError(f"testing.arrays: every value in [{low}, {high}] is within {margin} of "
                         f"a point to avoid {points}: widen the range or shrink the margin")

    def push(v: float) -> float:
        for _ in range(len(points) + 1):
            near = [p for p in points if abs(v - p) < margin]
            if not near:
                return v
            p = near[0]
            up, down = outward(p + margin, np.inf), outward(p - margin, -np.inf)
            v = up if (v >= p and up <= high) or down < low else down
        return next(c for c in candidates if far(c))   # points too crowded to step out of
    return push


def tied_arrays(shape: Any = None, dtype: Any = np.float64,
                values: Any = (-1.0, -0.5, 0.0, 0.5, 1.0)) -> st.SearchStrategy[np.ndarray]:
    """Arrays whose entries come from a few `values`, so ties, exact zeros and exact bounds are
    common: for checking the subgradient an op picks at its kinks (max at a tie, abs at 0, …),
    against a `reference=` that says which one it should pick."""
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
