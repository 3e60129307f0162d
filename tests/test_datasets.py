"""Bundled digits, IDX/MNIST and FER2013 readers (on files the tests write), synthetic sets."""

import gzip
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp import data, datasets
from tinygrad_mlp.datasets import (EMOTIONS, blobs, load_digits, load_fer2013, load_idx,
                                   load_mnist, spirals, xor)

# --- bundled digits ----------------------------------------------------------------------------


def test_digits_shapes_dtypes_values_and_label_counts():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    counts = np.bincount(y)
    assert len(counts) == 10 and counts.sum() == 1797 and np.all((counts >= 170) & (counts <= 190))


def test_digits_images_match_their_labels():
    """Nearest class mean on a held-out quarter: far above chance only if images match labels."""
    X, y = load_digits()
    X_train, X_test, y_train, y_test = data.train_test_split(X, y, seed=0)
    means = np.stack([X_train[y_train == c].mean(axis=0) for c in range(10)])
    predicted = ((X_test[:, None, :] - means) ** 2).sum(axis=2).argmin(axis=1)
    assert np.mean(predicted == y_test) > 0.85


def test_digits_are_fresh_arrays_each_call():
    X, y = load_digits()
    X[:] = -1
    y[:] = -1
    X2, y2 = load_digits()
    assert X2.min() == 0 and y2.min() == 0


def test_datasets_reexports_the_data_helpers():
    assert datasets.one_hot is data.one_hot and datasets.train_test_split is data.train_test_split
    assert tm.datasets is datasets and tm.data is data


# --- IDX -------------------------------------------------------------------------------------

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}


def idx_bytes(array):
    """An IDX file's bytes written by hand from the format description (big-endian)."""
    array = np.asarray(array)
    header = bytes([0, 0, IDX_CODES[array.dtype.type], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, content, compress=False):
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


@given(dtype=st.sampled_from(list(IDX_CODES)),
       shape=st.lists(st.integers(0, 5), min_size=1, max_size=4), compress=st.booleans(),
       seed=st.integers(0, 100))
def test_idx_round_trip_for_every_type_raw_and_gzip(tmp_path_factory, dtype, shape, compress,
                                                    seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    array = (rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype) if info
             else rng.standard_normal(shape).astype(dtype))
    path = write(tmp_path_factory.mktemp("idx") / "file", idx_bytes(array), compress)
    loaded = load_idx(path)
    assert loaded.shape == array.shape and loaded.dtype == np.dtype(dtype)
    assert loaded.dtype.isnative and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)


def test_gzip_is_detected_by_its_magic_bytes_not_by_the_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    named_raw = write(tmp_path / "x.idx", idx_bytes(array), compress=True)
    named_gz = write(tmp_path / "y.gz", idx_bytes(array), compress=False)
    np.testing.assert_array_equal(load_idx(named_raw), array)
    np.testing.assert_array_equal(load_idx(str(named_gz)), array)


@pytest.mark.parametrize("content, message", [
    (b"\x08\x03\x00\x00" + b"\x00" * 20, "magic number"),
    (b"PK\x03\x04" + b"\x00" * 20, "magic number"),
    (b"\x00", "magic number"),
    (b"\x00\x00\x0a\x01" + (2).to_bytes(4, "big") + b"ab", "unknown IDX type code 0x0A"),
    (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"), "truncated: its header"),
    (idx_bytes(np.zeros((4, 3), np.int16))[:-1], "truncated: shape \\(4, 3\\) of int16 needs 24"),
    (idx_bytes(np.zeros(5, np.uint8)) + b"\x00", "trailing bytes"),
])
def test_bad_idx_files_are_refused_naming_the_file(tmp_path, content, message):
    for compress in (False, True):
        path = write(tmp_path / f"bad-{compress}", content, compress)
        with pytest.raises(ValueError, match=message) as error:
            load_idx(path)
        assert str(path) in str(error.value)


def test_truncated_gzip_and_missing_file(tmp_path):
    path = write(tmp_path / "cut.gz", gzip.compress(idx_bytes(np.zeros(1000, np.uint8)))[:30])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_idx(path)
    with pytest.raises(FileNotFoundError, match="nowhere-idx"):
        load_idx(tmp_path / "nowhere-idx")


# --- MNIST -----------------------------------------------------------------------------------

def write_mnist(directory, prefix, n_images, n_labels, dot=False, compress=False):
    rng = np.random.default_rng(n_images)
    images = rng.integers(0, 256, size=(n_images, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_labels, dtype=np.uint8)
    sep, gz = ("." if dot else "-"), (".gz" if compress else "")
    write(directory / f"{prefix}-images{sep}idx3-ubyte{gz}", idx_bytes(images), compress)
    write(directory / f"{prefix}-labels{sep}idx1-ubyte{gz}", idx_bytes(labels), compress)
    return images, labels


@pytest.mark.parametrize("dot, compress", [(False, False), (False, True), (True, False),
                                           (True, True)])
def test_mnist_reads_train_and_test_under_the_usual_names(tmp_path, dot, compress):
    train = write_mnist(tmp_path, "train", 6, 6, dot, compress)
    test = write_mnist(tmp_path, "t10k", 3, 3, dot, compress)
    for kind, expected in (("train", train), ("test", test)):
        images, labels = load_mnist(tmp_path, kind=kind)
        assert images.dtype == labels.dtype == np.uint8
        np.testing.assert_array_equal(images, expected[0])
        np.testing.assert_array_equal(labels, expected[1])


def test_mnist_errors_name_the_files(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match="train-images-idx3-ubyte.*train-images.idx3-ubyte.gz"):
        load_mnist(tmp_path)
    write_mnist(tmp_path, "train", 5, 4, compress=True)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz' has 5 images.*"
                                         r"train-labels-idx1-ubyte.gz' has 4 labels"):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="kind must be 'train' or 'test', got 'validation'"):
        load_mnist(tmp_path, "validation")
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        load_mnist(tmp_path / "no-such-dir")
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((2, 28, 28), np.float32)))
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match="expected uint8 images.*float32"):
        load_mnist(tmp_path, "test")


# --- FER2013 ---------------------------------------------------------------------------------

def fer_row(emotion, usage, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, 48 * 48)
    return f"{emotion},{' '.join(map(str, pixels))},{usage}", pixels.reshape(48, 48)


def write_fer(path, rows, header="emotion,pixels,Usage"):
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_fer2013_reads_all_rows_or_one_usage(tmp_path):
    made = [fer_row(e, u, i) for i, (e, u) in enumerate([(0, "Training"), (6, "PublicTest"),
                                                         (3, "Training"), (5, "PrivateTest")])]
    path = write_fer(tmp_path / "fer.csv", [text for text, _ in made])
    X, y = load_fer2013(path)
    assert X.shape == (4, 48, 48) and X.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(y, [0, 6, 3, 5])
    assert np.array_equal(X, np.stack([pixels for _, pixels in made]))
    X_train, y_train = load_fer2013(str(path), usage="Training")
    assert np.array_equal(y_train, [0, 3]) and np.array_equal(X_train, X[[0, 2]])
    assert load_fer2013(path, usage="PrivateTest")[0].shape == (1, 48, 48)
    assert EMOTIONS[3] == "Happy" and len(EMOTIONS) == 7


def test_fer2013_accepts_a_bom_crlf_line_ends_and_quoted_fields(tmp_path):
    text, pixels = fer_row(4, "PublicTest", 9)
    emotion, values, usage = text.split(",")
    path = tmp_path / "fer.csv"
    path.write_bytes(("\ufeffemotion,pixels,Usage\r\n" + f'{emotion},"{values}",{usage}\r\n'
                      + text + "\r\n").encode("utf-8"))
    X, y = load_fer2013(path)
    assert np.array_equal(y, [4, 4]) and np.array_equal(X, np.stack([pixels, pixels]))


def test_fer2013_bad_usage_argument(tmp_path):
    path = write_fer(tmp_path / "fer.csv", [fer_row(0, "Training", 0)[0]])
    with pytest.raises(ValueError, match="usage must be None or one of .*got 'training'"):
        load_fer2013(path, usage="training")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_fer2013(tmp_path / "missing.csv")
    other = write_fer(tmp_path / "no-usage.csv", [fer_row(0, "Training", 0)[0].rsplit(",", 1)[0]],
                      header="emotion,pixels")
    assert load_fer2013(other)[0].shape == (1, 48, 48)
    with pytest.raises(ValueError, match="no Usage column"):
        load_fer2013(other, usage="Training")


good = fer_row(1, "Training", 1)[0]
pixels_of_good = good.split(",")[1]


@pytest.mark.parametrize("bad_row, message", [
    (f"1,{pixels_of_good} 7,Training", "2304 space-separated"),
    (f"1,{' '.join(pixels_of_good.split()[:-1])},Training", "2304 space-separated"),
    (f"1,256 {pixels_of_good.split(' ', 1)[1]},Training", "ints in 0–255"),
    (f"1,x {pixels_of_good.split(' ', 1)[1]},Training", "2304 space-separated"),
    (f"1,2.5 {pixels_of_good.split(' ', 1)[1]},Training", "2304 space-separated"),
    (f"7,{pixels_of_good},Training", "emotion '7'"),
    (f"-1,{pixels_of_good},Training", "emotion '-1'"),
    (f"1,{pixels_of_good}", "expected 3 fields, got 2"),
    (f"1,{pixels_of_good},Validation", "Usage 'Validation'"),
])
def test_fer2013_bad_rows_name_the_file_and_line(tmp_path, bad_row, message):
    path = write_fer(tmp_path / "fer.csv", [good, good, bad_row])
    with pytest.raises(ValueError, match=message) as error:
        load_fer2013(path)
    assert str(path) in str(error.value) and "line 4" in str(error.value)


def test_fer2013_wrong_header(tmp_path):
    path = write_fer(tmp_path / "fer.csv", [good], header="label,image,Usage")
    with pytest.raises(ValueError, match="header"):
        load_fer2013(path)


# --- synthetic sets --------------------------------------------------------------------------

@pytest.mark.parametrize("make, kwargs, classes", [
    (xor, {"n": 50}, 2), (spirals, {"n": 61, "classes": 4}, 4),
    (blobs, {"n": 31, "centers": 3}, 3)])
def test_synthetic_sets_shapes_balance_and_seeding(make, kwargs, classes):
    X, y = make(**kwargs)
    n = kwargs["n"]
    assert X.shape == (n, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.all(np.isfinite(X))
    counts = np.bincount(y, minlength=classes)
    assert len(counts) == classes and counts.max() - counts.min() <= 1 + (make is xor)
    assert not np.array_equal(y, np.sort(y))               # shuffled, not grouped by class
    tm.manual_seed(11)
    first = make(**kwargs)
    tm.manual_seed(11)
    second = make(**kwargs)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    state = tm.get_generator().bit_generator.state
    own = make(**kwargs, seed=4)
    assert tm.get_generator().bit_generator.state == state
    assert np.array_equal(own[0], make(**kwargs, seed=4)[0])


def test_xor_without_noise_is_the_truth_table():
    X, y = xor(4, noise=0.0)
    assert sorted(zip(X[:, 0].tolist(), X[:, 1].tolist(), y.tolist())) == [
        (0, 0, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)]


def test_blobs_points_lie_near_their_centers():
    centers = np.array([[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]])
    X, y = blobs(40, centers=centers, std=0.5)
    assert X.shape == (40, 3)
    assert np.all(np.linalg.norm(X - centers[y], axis=1) < 5)
    assert blobs(10, centers=5, dim=4)[0].shape == (10, 4)


@pytest.mark.parametrize("call, message", [
    (lambda: xor(0), "n must be a positive int"),
    (lambda: xor(10, noise=-1), "noise must be a finite number"),
    (lambda: spirals(10, classes=0), "classes must be a positive int"),
    (lambda: blobs(10, centers=np.zeros((2, 3)), dim=2), r"centers .*\(2, 3\)"),
    (lambda: blobs(10, std=float("nan")), "std must be a finite"),
])
def test_synthetic_sets_refuse_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- hostile files (issue 9): sizes checked against the header, gzip streamed with a bound ------

def _peak_bytes(fn, *args):
    """The most memory (numpy's allocations and Python bytes included) `fn(*args)` held."""
    import tracemalloc
    tracemalloc.start()
    try:
        fn(*args)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _refused(exception, message, fn, *args):
    def call():
        with pytest.raises(exception, match=message):
            fn(*args)
    return call


def test_a_gzip_bomb_behind_a_small_idx_header_is_streamed_only_as_far_as_the_header_says(
        tmp_path):
    import zlib
    path = tmp_path / "bomb-idx1-ubyte.gz"
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)            # 31: the gzip container
    parts = [compressor.compress(idx_bytes(np.zeros(10, np.uint8)))]
    zeros = bytes(1 << 20)
    parts += [compressor.compress(zeros) for _ in range(64)]      # 64 MiB more than declared
    path.write_bytes(b"".join(parts) + compressor.flush())
    assert path.stat().st_size < 1 << 20
    peak = _peak_bytes(_refused(ValueError, "bomb-idx1-ubyte.gz' has trailing bytes", load_idx,
                                path))
    assert peak < 4 << 20, peak


def test_an_idx_header_declaring_more_than_the_file_can_hold_is_refused_before_allocating(
        tmp_path):
    header = bytes([0, 0, 0x08, 1]) + (1 << 31).to_bytes(4, "big")
    gz = write(tmp_path / "huge.gz", header + bytes(1000), compress=True)
    peak = _peak_bytes(_refused(ValueError, r"declares shape \(2147483648,\).*can hold",
                                load_idx, gz))
    assert peak < 4 << 20, peak
    raw = write(tmp_path / "huge-raw", header + bytes(1000))
    peak = _peak_bytes(_refused(ValueError, r"huge-raw' is truncated: shape \(2147483648,\)",
                                load_idx, raw))
    assert peak < 4 << 20, peak


def test_mnist_labels_outside_0_to_9_are_refused_naming_the_file_and_offset(tmp_path):
    write_mnist(tmp_path, "train", 4, 4)
    labels = np.array([1, 2, 200, 3], np.uint8)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(labels))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte': label 200 at index 2 "
                                         r"\(byte offset 10\)"):
        load_mnist(tmp_path)


def test_a_fer2013_file_that_is_not_utf8_is_a_value_error_naming_file_and_line(tmp_path):
    path = write_fer(tmp_path / "fer.csv", [fer_row(0, "Training", 0)[0]] * 2)
    data = path.read_bytes().splitlines(keepends=True)
    data[2] = data[2].replace(b"Training", b"Tr\xe4ining")
    path.write_bytes(b"".join(data))
    with pytest.raises(ValueError, match=r"fer.csv', line 3: not UTF-8 text \(byte 0xe4"):
        load_fer2013(path)


def test_a_headerless_fer2013_file_gets_a_short_message_with_file_and_line(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text(fer_row(0, "Training", 0)[0] + "\n")
    with pytest.raises(ValueError) as info:
        load_fer2013(path)
    message = str(info.value)
    assert "fer.csv', line 1: expected the FER2013 header" in message and len(message) < 300


def test_fer2013_can_return_each_rows_usage_so_one_pass_splits_it(tmp_path):
    rows = [fer_row(e, u, i)[0] for i, (e, u) in enumerate([(0, "Training"), (6, "PublicTest"),
                                                           (3, "Training")])]
    X, y, usage = load_fer2013(write_fer(tmp_path / "fer.csv", rows), return_usage=True)
    assert list(usage) == ["Training", "PublicTest", "Training"] and np.array_equal(y, [0, 6, 3])
    other = write_fer(tmp_path / "no-usage.csv", [r.rsplit(",", 1)[0] for r in rows],
                      header="emotion,pixels")
    assert load_fer2013(other, return_usage=True)[2] is None
