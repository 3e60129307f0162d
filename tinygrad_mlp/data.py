"""Feeding data to a network: batches for the blog's three ways to learn, splits, one-hot, scaling.

`batches(N, batch_size)` is the one batching mechanism. Its `batch_size` picks the way to learn:

    None  full-batch gradient descent: one batch of all N samples per epoch
    1     stochastic gradient descent: one sample per step, in a new random order every epoch
    k     mini-batch gradient descent: batches of k samples (the last one may be shorter)

`tm.fit` passes its own `batch_size`, 32 unless told (Keras's default): gradient descent is
`fit(..., batch_size=None)`.

    >>> X = np.arange(10.0).reshape(5, 2)
    >>> [X[b].shape[0] for b in batches(len(X), batch_size=2, shuffle=False)]
    [2, 2, 1]

Random draws (shuffling, unseeded splits) come from `tm.get_generator()`, read at call time,
so `tm.manual_seed(s)` makes every epoch's order reproducible. numpy's global RNG is never used.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from tinygrad_mlp._checks import fail, fraction as check_fraction, is_int, is_real, positive_int
from tinygrad_mlp.tensor import get_default_dtype, get_generator

__all__ = ["batches", "num_batches", "one_hot", "is_one_hot", "train_test_split",
           "split_validation", "standardize", "augment_images"]


# --- batching: the blog's three ways to learn ------------------------------------------------

def _check_batch_size(batch_size: Any, N: int) -> int:
    """The batch size to use on N samples: None means all N; larger than N is clipped to N."""
    if batch_size is None:
        return N
    batch_size = positive_int("batch_size", batch_size, expected="None (full batch) or a "
                              "positive int (1 for per-sample SGD)")
    return min(batch_size, N)


def num_batches(N: int, batch_size: int | None = None) -> int:
    """How many batches `batches(N, batch_size)` yields per epoch (the last short one counts)."""
    N = positive_int("N (the number of samples)", N)
    return -(-N // _check_batch_size(batch_size, N))


def batches(N: int, batch_size: int | None = None, shuffle: bool = True,
            generator: np.random.Generator | None = None) -> Iterator[np.ndarray | slice]:
    """One epoch over N samples: yields indices `b` to use as `X[b]`, `Y[b]`; each sample once.

    `batch_size` None is full-batch gradient descent, 1 per-sample SGD, k mini-batches; the last
    short batch is kept, a batch_size above N is clipped to N. With `shuffle`, one permutation
    is drawn now (from `generator`, default `tm.get_generator()`); call `batches` again for the
    next epoch's new order. A batch whose samples are contiguous is a `slice`, so `X[b]` is a
    view, not a copy: every batch without shuffle, every single sample, and one full batch
    (kept in order: the gradient of a mean loss does not depend on the order within a batch).
    Shuffled mini-batches are read-only int64 index arrays (views of the permutation).
    Bad N or batch_size raise ValueError at the call, not at the first batch.
    """
    N = positive_int("N (the number of samples)", N)
    size = _check_batch_size(batch_size, N)
    if not shuffle or size == N:
        return map(slice, range(0, N, size), [*range(size, N, size), N])
    order = (generator if generator is not None else get_generator()).permutation(N)
    if size == 1:                # slices of one row: X[b] stays 2-D and costs no fancy indexing
        return map(slice, order.tolist(), (order + 1).tolist())
    order.flags.writeable = False
    return (order[start:start + size] for start in range(0, N, size))


# --- labels ----------------------------------------------------------------------------------

def _as_int_labels(y: Any, name: str = "y") -> np.ndarray:
    """1-D int64 labels from ints (or floats holding whole numbers); a (N, 1) column is accepted."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels of shape (N,), got shape {labels.shape}")
    if labels.dtype == np.bool_ or not (np.issubdtype(labels.dtype, np.integer)
                                        or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
    if np.issubdtype(labels.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name} must hold integer class labels, got {labels[i]} at index {i}")
    return labels.astype(np.int64, copy=False)


def one_hot(y: Any, k: int | None = None, dtype: Any = None) -> np.ndarray:
    """Class indices (N,) → one-hot rows (N, k) in `dtype` (default: tm's default float dtype).

    `k` defaults to max(y) + 1. Every label must be an integer in [0, k); the error names the
    first bad value and its index.

        >>> one_hot([0, 2, 1])
        array([[1., 0., 0.],
               [0., 0., 1.],
               [0., 1., 0.]], dtype=float32)
    """
    labels = _as_int_labels(y)
    if k is None:
        if labels.size == 0:
            raise ValueError("one_hot of an empty y needs k (the number of classes)")
        k = int(labels.max()) + 1
    k = positive_int("k (the number of classes)", k)
    bad = np.flatnonzero((labels < 0) | (labels >= k))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"one_hot: label {labels[i]} at index {i} is outside [0, {k})")
    Y = np.zeros((labels.size, int(k)), dtype=dtype if dtype is not None else get_default_dtype())
    Y[np.arange(labels.size), labels] = 1
    return Y


def is_one_hot(Y: np.ndarray) -> bool:
    """Are the rows of Y (N, K), K > 1, one-hot: each entry 0 or 1, each row summing to 1?"""
    return bool(Y.ndim == 2 and Y.shape[1] > 1 and np.all((Y == 0) | (Y == 1))
                and np.all(Y.sum(axis=1) == 1))


def _class_labels(y: np.ndarray) -> np.ndarray | None:
    """Classes to stratify on: int labels, or the argmax of one-hot rows; None for other targets."""
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1) if is_one_hot(y) else None
    try:
        return _as_int_labels(y)
    except ValueError:
        return None


# --- splits ----------------------------------------------------------------------------------

def _split_indices(y: np.ndarray, n_test: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled (train, test) indices with n_test test samples, stratified when y are classes.

    Each class c of n_c samples gets n_test·n_c/N test samples rounded down, and the samples
    still missing go to the classes with the largest remainders (ties broken at random), so
    every class's share is within one sample of its exact proportion on both sides.
    """
    N = len(y)
    order = rng.permutation(N)
    labels = _class_labels(y)
    if labels is None:
        return order[n_test:], order[:n_test]
    classes, class_of, counts = np.unique(labels[order], return_inverse=True, return_counts=True)
    exact = counts * n_test / N
    test_counts = np.floor(exact).astype(np.int64)
    missing = n_test - int(test_counts.sum())
    by_remainder = np.lexsort((rng.random(len(classes)), -(exact - test_counts)))
    test_counts[by_remainder[:missing]] += 1
    # Group the shuffled samples by class (stable: random order within each class) and send
    # the first test_counts[c] of class c to the test side.
    grouped = np.argsort(class_of, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_in_class = np.arange(N) - starts[class_of[grouped]]
    is_test = np.empty(N, dtype=bool)
    is_test[grouped] = rank_in_class < test_counts[class_of[grouped]]
    return order[~is_test], order[is_test]


def _rows(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ValueError(f"X and y must have the same number of rows, got shapes {X.shape} "
                         f"and {y.shape}")
    return X, y


def train_test_split(X: Any, y: Any, test_size: float | int = 0.25,
                     seed: int | np.random.Generator | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split rows into X_train, X_test, y_train, y_test (scikit-learn's order), shuffled.

    Stratified when y are class labels (ints, or one-hot rows): each class keeps its proportion
    on both sides to within one sample; other targets are split at random. `test_size` is a
    fraction in (0, 1) (the test side gets ceil(fraction·N) rows) or a row count. `seed` None
    draws from `tm.get_generator()`; an int (or a Generator) gives this split its own stream.

        >>> X, y = np.arange(20.0).reshape(10, 2), np.array([0, 1] * 5)
        >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)
        >>> X_train.shape, X_test.shape, sorted(y_test.tolist())     # one of each class
        ((8, 2), (2, 2), [0, 1])
    """
    X, y = _rows(X, y)
    N = len(X)
    if is_int(test_size):
        n_test = int(test_size)
    elif is_real(test_size) and 0 < test_size < 1:
        n_test = math.ceil(float(test_size) * N)
    else:
        fail("test_size", test_size, "a fraction in (0, 1) or a number of rows")
    if not 0 < n_test < N:
        side = "test" if n_test <= 0 else "training"
        left = n_test if n_test <= 0 else N - n_test
        raise ValueError(f"test_size={test_size!r} leaves {max(left, 0)} {side} samples "
                         f"out of {N}")
    rng = seed if isinstance(seed, np.random.Generator) else (
        get_generator() if seed is None else np.random.default_rng(seed))
    train, test = _split_indices(y, n_test, rng)
    return X[train], X[test], y[train], y[test]


def split_validation(X: Any, Y: Any, fraction: float,
                     generator: np.random.Generator | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For `fit(validation_split=fraction)`: X_train, X_val, Y_train, Y_val.

    The validation rows are a shuffled random `fraction` of the data (ceil(fraction·N) rows),
    stratified when Y are classes, never just the last rows; drawn from `generator`
    (default `tm.get_generator()`). A fraction outside (0, 1) or one that leaves either side
    empty is a ValueError.
    """
    X, Y = _rows(X, Y)
    N = len(X)
    n_val = math.ceil(check_fraction("validation_split", fraction) * N)
    if n_val >= N:
        raise ValueError(f"validation_split={fraction!r} leaves 0 training samples out of {N}")
    train, val = _split_indices(Y, n_val, generator if generator is not None else get_generator())
    return X[train], X[val], Y[train], Y[val]


# --- scaling ---------------------------------------------------------------------------------

def standardize(X: Any, mean: Any = None, std: Any = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale each column to mean 0 and std 1: returns (Xs, mean, std) with Xs = (X − mean) / std.

    Fit on the training set, then reuse its mean and std on test data:
    `Xs, mean, std = standardize(X_train)`; `Xt, _, _ = standardize(X_test, mean, std)`.
    Constant columns (std 0, like the digits' always-blank corner pixels) are only centred: the
    returned std holds 1 there, so no division by zero and no warning. Float X keeps its dtype;
    ints become the default float dtype.
    """
    X = np.asarray(X)
    dtype = X.dtype if X.dtype in (np.float16, np.float32, np.float64) else get_default_dtype()
    if X.ndim != 2:
        raise ValueError(f"standardize expects a 2-D X of shape (N, D), got shape {X.shape}")
    for name, value in (("mean", mean), ("std", std)):
        if value is not None and np.shape(value) != (X.shape[1],):
            raise ValueError(f"standardize: {name} must have shape ({X.shape[1]},) for X of shape "
                             f"{X.shape}, got shape {np.shape(value)}")
    if mean is None:
        if len(X) == 0:
            raise ValueError("standardize needs at least one row to compute the mean")
        mean = X.mean(axis=0, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    if std is None:
        std = np.sqrt(np.mean((X - mean) ** 2, axis=0))
    std = np.asarray(std, dtype=np.float64)
    # A std at rounding level of the mean is a constant column, not a signal to amplify.
    std = np.where(std <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0), 1.0, std)
    mean, std = mean.astype(dtype), std.astype(dtype)
    return (X.astype(dtype, copy=False) - mean) / std, mean, std  # reuse gives the same Xs


# --- image augmentation ------------------------------------------------------------------------

def augment_images(X: Any, flip: bool = False, shift: int = 0,
                   generator: np.random.Generator | None = None) -> np.ndarray:
    """A new batch: each image of X (N, C, H, W) flipped left–right with probability ½ (`flip`,
    for faces; never for digits) and moved by whole pixels, up to `shift` each way in both
    directions, with zeros coming in. Draws from `generator`, default `tm.get_generator()`
    (so `tm.manual_seed` makes it reproducible); X itself is never changed.

    Use it per batch (fit's `augment=`), so every epoch sees new variants:
    `fit(..., augment=lambda Xb: augment_images(Xb, flip=True, shift=2))`.
    """
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"augment_images expects images of shape (N, C, H, W), got {X.shape}")
    if not is_int(shift) or shift < 0:
        fail("shift", shift, "an int >= 0 (pixels)", owner="augment_images")
    rng = generator if generator is not None else get_generator()
    N, _, H, W = X.shape
    rows, columns = np.arange(H), np.arange(W)
    if flip:                                          # per image: columns read right to left
        flipped = rng.random(N) < 0.5
        columns = np.where(flipped[:, None], columns[::-1], columns)
    else:
        columns = np.broadcast_to(columns, (N, W))
    rows = np.broadcast_to(rows, (N, H))
    if shift:
        padded = np.pad(X, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
        rows = rows + rng.integers(0, 2 * shift + 1, N)[:, None]
        columns = columns + rng.integers(0, 2 * shift + 1, N)[:, None]
    else:
        padded = X
    n = np.arange(N)[:, None, None]
    return padded[n, :, rows[:, :, None], columns[:, None, :]].transpose(0, 3, 1, 2)
