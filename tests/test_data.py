"""Batching (the blog's three ways to learn), one-hot, stratified splits and standardize."""

import math
import re

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp.data import (batches, num_batches, one_hot, split_validation, standardize,
                               train_test_split)

batch_sizes = st.one_of(st.none(), st.just(1), st.integers(1, 70))


def epoch(N, batch_size, shuffle=True, generator=None):
    """The index arrays of one epoch (slices turned into the indices they select)."""
    return [np.arange(N)[b] for b in batches(N, batch_size, shuffle=shuffle, generator=generator)]


# --- batches ---------------------------------------------------------------------------------

@given(N=st.integers(1, 300), batch_size=batch_sizes, shuffle=st.booleans())
def test_every_sample_is_visited_exactly_once_per_epoch_and_the_last_short_batch_is_kept(
        N, batch_size, shuffle):
    parts = epoch(N, batch_size, shuffle)
    size = N if batch_size is None else min(batch_size, N)
    assert len(parts) == num_batches(N, batch_size) == math.ceil(N / size)
    assert [len(p) for p in parts[:-1]] == [size] * (len(parts) - 1)
    assert len(parts[-1]) == N - size * (len(parts) - 1) > 0
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(N))


@given(N=st.integers(1, 300), batch_size=batch_sizes)
def test_without_shuffle_the_order_is_kept_and_batches_are_views(N, batch_size):
    X = np.arange(2.0 * N).reshape(N, 2)
    views = [X[b] for b in batches(N, batch_size, shuffle=False)]
    assert np.array_equal(np.concatenate(views), X)
    assert all(np.shares_memory(v, X) for v in views)


@given(N=st.integers(10, 300), batch_size=st.one_of(st.just(1), st.integers(1, 9)),
       seed=st.integers(0, 2**32 - 1))
def test_shuffling_differs_between_epochs_and_is_reproducible_under_manual_seed(N, batch_size,
                                                                                 seed):
    tm.manual_seed(seed)
    first = [epoch(N, batch_size) for _ in range(3)]
    tm.manual_seed(seed)
    again = [epoch(N, batch_size) for _ in range(3)]
    flat = [np.concatenate(e) for e in first]
    assert all(np.array_equal(a, b) for a, b in zip(flat, [np.concatenate(e) for e in again]))
    assert not np.array_equal(flat[0], flat[1]) and not np.array_equal(flat[1], flat[2])
    assert not np.array_equal(flat[0], np.arange(N))


def test_the_generator_is_read_at_call_time_and_an_explicit_one_leaves_it_alone():
    tm.manual_seed(3)
    expected = np.concatenate(epoch(50, 7))
    tm.manual_seed(3)                     # replaces the generator: batches must use the new one
    assert np.array_equal(np.concatenate(epoch(50, 7)), expected)
    state = tm.get_generator().bit_generator.state
    own = np.concatenate(epoch(50, 7, generator=np.random.default_rng(3)))
    assert tm.get_generator().bit_generator.state == state
    assert np.array_equal(own, np.random.default_rng(3).permutation(50))


def test_full_batch_is_all_samples_at_once_and_batch_size_above_N_is_clipped():
    for batch_size in (None, 5, 1000):
        assert [list(np.arange(5)[b]) for b in batches(5, batch_size)] == [[0, 1, 2, 3, 4]]


def test_single_samples_and_the_full_batch_are_views_even_when_shuffled():
    X = np.arange(40.0).reshape(20, 2)
    per_sample = [X[b] for b in batches(20, 1)]
    assert all(v.shape == (1, 2) and np.shares_memory(v, X) for v in per_sample)
    assert not np.array_equal(np.concatenate(per_sample), X)
    (whole,) = [X[b] for b in batches(20, None)]
    assert np.shares_memory(whole, X) and np.array_equal(whole, X)


def test_shuffled_indices_are_read_only():
    index = next(batches(20, 4))
    with pytest.raises(ValueError):
        index[0] = 0


@pytest.mark.parametrize("bad", [0, -3, 2.0, 1.5, True, False, "4", np.float64(3)])
def test_invalid_batch_size_is_refused_at_the_call_naming_it(bad):
    with pytest.raises(ValueError, match=rf"batch_size.*{re.escape(repr(bad))}"):
        batches(10, bad)
    with pytest.raises(ValueError, match="batch_size"):
        num_batches(10, bad)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_invalid_sample_count_is_refused(bad):
    with pytest.raises(ValueError, match=rf"N .*{re.escape(repr(bad))}"):
        batches(bad, 2)


def test_numpy_integer_batch_size_is_accepted():
    assert len(list(batches(10, np.int64(3)))) == 4


# --- one_hot ---------------------------------------------------------------------------------

@given(labels=st.lists(st.integers(0, 9), min_size=1, max_size=50), extra=st.integers(0, 3))
def test_one_hot_rows_pick_their_label(labels, extra):
    k = max(labels) + 1 + extra
    Y = one_hot(labels, k)
    assert Y.shape == (len(labels), k) and Y.dtype == np.float32
    assert np.array_equal(Y.argmax(axis=1), labels) and np.all(Y.sum(axis=1) == 1)
    assert np.array_equal(one_hot(np.array(labels)), Y[:, :max(labels) + 1])


def test_one_hot_dtype_follows_the_default_or_the_argument():
    assert one_hot([1, 0], dtype=np.int64).dtype == np.int64
    tm.set_default_dtype(np.float64)
    assert one_hot([1, 0]).dtype == np.float64
    assert np.array_equal(one_hot(np.array([[2.0], [0.0]]), 3), [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("labels, k, message", [
    ([0, 3, 1], 3, "label 3 at index 1"),
    ([0, 1, -1], None, "label -1 at index 2"),
    ([0.0, 1.5], 2, "1.5 at index 1"),
    ([[0, 1], [1, 0]], 2, r"shape \(2, 2\)"),
    ([0, 1], 0, "k .*0"),
    (["a", "b"], 2, "integer class labels"),
])
def test_one_hot_names_the_bad_value(labels, k, message):
    with pytest.raises(ValueError, match=message):
        one_hot(labels, k)


# --- train_test_split and split_validation ---------------------------------------------------

class_counts = st.lists(st.integers(1, 30), min_size=1, max_size=6)


def labelled(counts, rng):
    """Shuffled class labels with the given counts, and X whose row i holds i (to trace rows)."""
    y = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    return np.arange(len(y), dtype=np.float32).reshape(-1, 1) * np.ones((1, 3), np.float32), y


def assert_stratified(y, y_train, y_test):
    N, n_test = len(y), len(y_test)
    for c, n_c in zip(*np.unique(y, return_counts=True)):
        assert abs(np.sum(y_test == c) - n_c * n_test / N) < 1
        assert abs(np.sum(y_train == c) - n_c * (N - n_test) / N) < 1


@given(counts=class_counts, fraction=st.floats(0.05, 0.95), seed=st.integers(0, 1000),
       one_hot_rows=st.booleans())
def test_split_is_disjoint_complete_stratified_in_sklearn_order(counts, fraction, seed,
                                                                one_hot_rows):
    X, y = labelled(counts, np.random.default_rng(seed))
    N, n_test = len(y), math.ceil(fraction * len(y))
    if not 0 < n_test < N:
        with pytest.raises(ValueError, match="leaves 0"):
            train_test_split(X, y, test_size=fraction, seed=seed)
        return
    target = one_hot(y) if one_hot_rows else y
    X_train, X_test, y_train, y_test = train_test_split(X, target, test_size=fraction, seed=seed)
    rows_train, rows_test = X_train[:, 0].astype(int), X_test[:, 0].astype(int)
    assert len(rows_test) == n_test and len(rows_train) == N - n_test
    assert np.array_equal(np.sort(np.concatenate([rows_train, rows_test])), np.arange(N))
    assert np.array_equal(y_train, target[rows_train]) and np.array_equal(y_test, target[rows_test])
    again = train_test_split(X, target, test_size=fraction, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(again, (X_train, X_test, y_train, y_test)))
    if one_hot_rows:
        y_train, y_test = y_train.argmax(axis=1), y_test.argmax(axis=1)
    assert_stratified(y, y_train, y_test)


def test_unseeded_split_follows_manual_seed_and_a_seeded_one_leaves_the_generator_alone():
    X, y = labelled([20, 30, 10], np.random.default_rng(0))
    tm.manual_seed(5)
    first = train_test_split(X, y)
    tm.manual_seed(5)
    assert np.array_equal(train_test_split(X, y)[1], first[1])
    assert not np.array_equal(train_test_split(X, y)[1], first[1])
    state = tm.get_generator().bit_generator.state
    train_test_split(X, y, seed=1)
    assert tm.get_generator().bit_generator.state == state


def test_split_by_count_and_of_regression_targets_and_inputs_untouched():
    X, y = labelled([10, 10], np.random.default_rng(1))
    X_copy, y_copy = X.copy(), y.copy()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=7, seed=0)
    assert len(X_test) == len(y_test) == 7 and len(X_train) == len(y_train) == 13
    assert np.array_equal(X, X_copy) and np.array_equal(y, y_copy)
    targets = np.linspace(0.0, 1.0, 20) ** 2                # not classes: a plain random split
    _, Xt, _, yt = train_test_split(X, targets, test_size=0.5, seed=0)
    assert len(yt) == 10 and np.array_equal(yt, targets[Xt[:, 0].astype(int)])


@pytest.mark.parametrize("test_size, message", [
    (0, "leaves 0 test"), (20, "leaves 0 training"), (25, "leaves 0 training"),
    (0.0, "fraction"), (1.0, "fraction"), (-0.2, "fraction"), (True, "fraction"),
    ("0.2", "fraction")])
def test_split_sizes_that_leave_a_side_empty_are_refused(test_size, message):
    X, y = labelled([10, 10], np.random.default_rng(1))
    with pytest.raises(ValueError, match=message):
        train_test_split(X, y, test_size=test_size)


def test_split_rows_must_agree():
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(4,\)"):
        train_test_split(np.zeros((5, 2)), np.zeros(4, dtype=int))


def test_validation_split_is_random_stratified_never_the_last_rows():
    y = np.repeat(np.arange(4), 25)                          # sorted: a tail split is one class
    X = np.arange(100.0).reshape(-1, 1)
    X_train, X_val, y_train, y_val = split_validation(X, y, 0.2)
    assert len(X_val) == 20 and not np.array_equal(np.sort(X_val[:, 0]), np.arange(80.0, 100.0))
    assert np.array_equal(np.bincount(y_val), [5, 5, 5, 5])
    assert_stratified(y, y_train, y_val)
    for bad, message in ((0.0, "in \\(0, 1\\)"), (1, "in \\(0, 1\\)"), (0.999, "leaves 0 train")):
        with pytest.raises(ValueError, match=rf"validation_split.*{message}"):
            split_validation(X, y, bad)


# --- standardize -----------------------------------------------------------------------------

@given(N=st.integers(2, 40), D=st.integers(1, 6), seed=st.integers(0, 1000))
@example(N=2, D=5, seed=443)
def test_standardize_gives_zero_mean_unit_std_and_leaves_constant_columns_unscaled(N, D, seed):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((N, D)) * rng.uniform(0.1, 50, D) + rng.uniform(-9, 9, D))
    X[:, 0] = 7.25                                           # a constant column (no warning)
    X = X.astype(np.float32)
    Xs, mean, std = standardize(X)
    assert Xs.dtype == mean.dtype == std.dtype == np.float32
    # float32 rounds the mean itself by up to eps·|mean|, which shifts Xs by that over std: a
    # column whose spread is small next to its mean (found by hypothesis: N=2, seed=443, values
    # 35.750 and 35.797) is centred only to that precision.
    conditioning = np.abs(mean.astype(np.float64)) / std + 1
    precision = 4 * np.finfo(np.float32).eps * conditioning
    assert np.all(np.abs(Xs.mean(axis=0, dtype=np.float64)) <= precision)
    assert std[0] == 1 and np.all(Xs[:, 0] == 0)
    np.testing.assert_allclose(Xs[:, 1:].std(axis=0, dtype=np.float64), 1,
                               rtol=max([1e-4, *precision[1:]]))
    again, mean2, std2 = standardize(X[:3], mean, std)
    np.testing.assert_array_equal(again, Xs[:3])


def test_standardize_converts_ints_and_checks_shapes():
    Xs, mean, std = standardize(np.array([[0, 1], [2, 1]]))
    assert Xs.dtype == np.float32 and np.array_equal(Xs, [[-1, 0], [1, 0]])
    with pytest.raises(ValueError, match=r"mean must have shape \(2,\).*\(3,\)"):
        standardize(np.ones((4, 2)), mean=np.zeros(3))
    with pytest.raises(ValueError, match="2-D"):
        standardize(np.ones(4))
