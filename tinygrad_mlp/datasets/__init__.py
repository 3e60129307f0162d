"""Data sets for the blog's path: bundled 8×8 digits, MNIST-format IDX files, FER2013, toy sets.

    X, y = load_digits()                          # offline, ships inside the package
    images, labels = load_mnist("~/mnist", kind="train")
    images, labels = load_mnist(fetch("fashion-mnist"))   # downloaded once, checked by MD5
    X, y = load_fer2013("fer2013.csv", usage="Training")
    X, y = spirals(300, classes=3)                # synthetic sets: xor, spirals, blobs

Every loader returns numpy arrays (X, y) with the values as stored: scaling is the caller's.
Synthetic sets draw from `tm.get_generator()` (so `tm.manual_seed` fixes them) unless given
their own `seed`.

Credit: the 8×8 digits are the UCI Machine Learning Repository's "Optical Recognition of
Handwritten Digits" data set by E. Alpaydin and C. Kaynak (1998), licensed CC BY 4.0
(https://doi.org/10.24432/C50P49), in the 1,797-image copy distributed with scikit-learn
(BSD-3-Clause), converted once to a compressed npz (uint8 values, same order).
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import warnings
import zlib
from typing import Any, Iterator

import numpy as np

from tinygrad_mlp._checks import finite_real, is_int, positive_int
from tinygrad_mlp.data import one_hot, train_test_split
from tinygrad_mlp.datasets.download import DownloadError, fetch
from tinygrad_mlp.tensor import get_generator

__all__ = ["load_digits", "load_idx", "load_mnist", "load_fer2013", "EMOTIONS", "xor", "spirals",
           "blobs", "one_hot", "train_test_split", "fetch", "DownloadError"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8×8 handwritten digits: X float32 (1797, 64) of raw pixel counts 0–16, y int64 0–9.

    Each row is an 8×8 image read row by row (`X[i].reshape(8, 8)`); scale with X / 16 or
    `tm.data.standardize`. About 180 images per digit.

        >>> X, y = load_digits()
        >>> X.shape, X.dtype, int(X.max()), y[:5].tolist()
        ((1797, 64), dtype('float32'), 16, [0, 1, 2, 3, 4])
    """
    with np.load(os.path.join(_HERE, "digits.npz"), allow_pickle=False) as archive:
        X = archive["images"].astype(np.float32)
        y = archive["labels"].astype(np.int64)
    return X, y


# --- IDX files (MNIST, Fashion-MNIST) ----------------------------------------------------------

# IDX type codes (third magic byte); values are stored big-endian.
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


# Deflate never inflates more than 1032:1, so a gzip file declaring more data than that is a lie.
_GZIP_MAX_RATIO = 1032


def _existing_file(path: str | os.PathLike) -> str:
    """`path` as a str once it names a regular file: FileNotFoundError when nothing is there,
    IsADirectoryError for a folder (not "no such file": it is there, but is no file)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a directory, not a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    return path


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Any IDX file (raw or gzip) as an array of its stored shape, in native byte order.

    The format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each size as a big-endian
    uint32, then the values. Gzip is detected by its magic bytes (1f 8b) whatever the name, and
    streamed: the header is read first and at most the data it declares is inflated, after the
    declared size was checked against the file's. A bad magic number, an unknown type, a size
    the file cannot hold, truncated data or trailing bytes are a ValueError naming the file.
    """
    path = _existing_file(path)
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            return _read_idx(stream, path, size, compressed)
        except (OSError, EOFError, zlib.error) as error:
            if not compressed:
                raise
            raise ValueError(f"{path!r} is a corrupt or truncated gzip file: {error}") from None
        finally:
            stream.close()


def _read_exactly(stream: Any, count: int) -> bytes:
    data = stream.read(count)
    return data if data is not None else b""


def _read_into(stream: Any, buffer: memoryview) -> int:
    """Fill `buffer` from `stream`; the count of bytes read (fewer only at the end of the data)."""
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])
        if not count:
            break
        filled += count
    return filled


def _read_idx(stream: Any, path: str, size: int, compressed: bool) -> np.ndarray:
    magic = _read_exactly(stream, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{path!r} is not an IDX file: its magic number is {magic.hex(' ')!r}, "
                         "expected 00 00 <type> <ndim>")
    if magic[2] not in _IDX_TYPES:
        raise ValueError(f"{path!r}: unknown IDX type code 0x{magic[2]:02X} (expected one of "
                         f"{', '.join(f'0x{code:02X}' for code in _IDX_TYPES)})")
    dtype, ndim = _IDX_TYPES[magic[2]], magic[3]
    sizes = _read_exactly(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{path!r} is truncated: its header needs {4 + 4 * ndim} bytes for "
                         f"{ndim} dimensions, the file has {4 + len(sizes)}")
    shape = tuple(int(n) for n in np.frombuffer(sizes, dtype=">u4"))
    expected = math.prod(shape) * dtype.itemsize
    header = 4 + 4 * ndim
    if not compressed and header + expected != size:
        found = size - header
        problem = "is truncated" if found < expected else "has trailing bytes"
        raise ValueError(f"{path!r} {problem}: shape {shape} of {dtype.name} needs {expected} "
                         f"bytes of data, found {found}")
    if compressed and header + expected > _GZIP_MAX_RATIO * size:
        raise ValueError(f"{path!r}: its header declares shape {shape} of {dtype.name} "
                         f"({expected} bytes), more than a {size}-byte gzip file can hold")
    values = np.empty(math.prod(shape), dtype=dtype)
    found = _read_into(stream, memoryview(values.view(np.uint8)))
    if found != expected:
        raise ValueError(f"{path!r} is truncated: shape {shape} of {dtype.name} needs "
                         f"{expected} bytes of data, found {found}")
    if compressed and _read_exactly(stream, 1):
        raise ValueError(f"{path!r} has trailing bytes: shape {shape} of {dtype.name} needs "
                         f"{expected} bytes of data, the file has more")
    return values.astype(dtype.newbyteorder("="), copy=False).reshape(shape)


def _find(directory: str, names: list[str], what: str) -> str:
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"no MNIST {what} file in {directory!r}: looked for "
                            f"{', '.join(names)}")


_MNIST_CLASSES = 10          # digits 0–9; Fashion-MNIST's 10 kinds of clothing


def load_mnist(directory: str | os.PathLike, kind: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST from `directory`: images uint8 (N, 28, 28), labels uint8 (N,).

    `kind` "train" reads train-images-idx3-ubyte / train-labels-idx1-ubyte, "test" the t10k-
    files; names with a dot (train-images.idx3-ubyte) and `.gz` copies are found too. Values
    are as stored (0–255): scale them yourself (the CLI divides by 255). A label outside 0–9 is
    a ValueError naming the file and the label's offset.
    """
    if kind not in ("train", "test"):
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"MNIST directory not found: {directory!r}")
    prefix = "train" if kind == "train" else "t10k"
    paths = {}
    for what, idx in (("images", "idx3"), ("labels", "idx1")):
        names = [f"{prefix}-{what}{sep}{idx}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
        paths[what] = _find(directory, names, f"{kind} {what}")
    images, labels = load_idx(paths["images"]), load_idx(paths["labels"])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{paths['images']!r}: expected uint8 images of shape (N, rows, cols), "
                         f"got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{paths['labels']!r}: expected uint8 labels of shape (N,), "
                         f"got {labels.dtype} of shape {labels.shape}")
    if labels.size and labels.max() >= _MNIST_CLASSES:
        at = int(np.argmax(labels >= _MNIST_CLASSES))
        raise ValueError(f"{paths['labels']!r}: label {int(labels[at])} at index {at} (byte offset "
                         f"{8 + at}) is not a class 0–{_MNIST_CLASSES - 1}")
    if len(images) != len(labels):
        raise ValueError(f"MNIST {kind} files disagree: {paths['images']!r} has {len(images)} "
                         f"images, {paths['labels']!r} has {len(labels)} labels")
    return images, labels


# --- FER2013 (facial expressions, the blog's last step) ----------------------------------------

EMOTIONS = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
_USAGES = ("Training", "PublicTest", "PrivateTest")
_FER_PIXELS = 48 * 48


def _parse_pixels(text: str) -> np.ndarray:
    """One row's pixels as int64 (any count); an unparsable field gives an empty array."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # older numpy warns instead of raising
        try:
            return np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            return np.zeros(0, dtype=np.int64)


def _fer_rows(f: Any, path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a CSV read as bytes and decoded line by line, so a byte that is
    not UTF-8 is reported with its line; no quoted newlines; plain lines skip the csv module."""
    for number, raw in enumerate(f, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")   # -sig: drop a BOM
        except UnicodeDecodeError as error:
            raise ValueError(f"{path!r}, line {number}: not UTF-8 text (byte "
                             f"0x{raw[error.start]:02x} at column {error.start + 1})") from None
        line = line.rstrip("\r\n")
        yield number, (next(csv.reader([line]), []) if '"' in line else
                       line.split(",") if line else [])


def _excerpt(text: str, limit: int = 40) -> str:
    """`text` quoted, cut to `limit` characters so a message never quotes a row of pixels."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} chars)"


def load_fer2013(csv_path: str | os.PathLike, usage: str | None = None,
                 return_usage: bool = False) -> tuple[np.ndarray, ...]:
    """The FER2013 CSV: X uint8 (N, 48, 48) face images, y int64 emotions 0–6 (see EMOTIONS).

    The file has a header `emotion,pixels,Usage` and one face per row, its 2304 pixels as
    space-separated ints 0–255. `usage` keeps only the rows of "Training", "PublicTest" or
    "PrivateTest" (the Usage column is then required). `return_usage=True` also returns each
    kept row's Usage (a str array, or None without the column), so one pass can split the file.
    A malformed row is a ValueError naming the file and its line.
    """
    if usage is not None and usage not in _USAGES:
        raise ValueError(f"usage must be None or one of {', '.join(_USAGES)}, got {usage!r}")
    csv_path = _existing_file(csv_path)
    images, labels, usages = [], [], []
    with open(csv_path, "rb") as f:
        rows = _fer_rows(f, csv_path)
        header = [name.strip() for name in next(rows, (1, []))[1]]
        if "emotion" not in header or "pixels" not in header:
            raise ValueError(f"{csv_path!r}, line 1: expected the FER2013 header "
                             f"'emotion,pixels,Usage', got {_excerpt(','.join(header))}")
        if usage is not None and "Usage" not in header:
            raise ValueError(f"{csv_path!r} has no Usage column to select {usage!r} from")
        emotion_at, pixels_at = header.index("emotion"), header.index("pixels")
        usage_at = header.index("Usage") if "Usage" in header else None
        for number, row in rows:
            if not row:
                continue
            where = f"{csv_path!r}, line {number}"
            if len(row) != len(header):
                raise ValueError(f"{where}: expected {len(header)} fields, got {len(row)}")
            row_usage = None if usage_at is None else row[usage_at].strip()
            if usage_at is not None and row_usage not in _USAGES:
                raise ValueError(f"{where}: Usage {_excerpt(row[usage_at])} is not one of "
                                 f"{', '.join(_USAGES)}")
            if usage is not None and row_usage != usage:
                continue
            emotion = row[emotion_at].strip()
            if not (emotion.isascii() and emotion.isdigit()) or int(emotion) >= len(EMOTIONS):
                raise ValueError(f"{where}: emotion {_excerpt(emotion)} is not an int in 0–6")
            image = _parse_pixels(row[pixels_at])
            if image.size != _FER_PIXELS or image.min() < 0 or image.max() > 255:
                raise ValueError(f"{where}: expected {_FER_PIXELS} space-separated ints in "
                                 "0–255 in the pixels field")
            images.append(image.astype(np.uint8))
            labels.append(int(emotion))
            usages.append(row_usage)
    X = np.array(images, dtype=np.uint8).reshape(-1, 48, 48)
    y = np.array(labels, dtype=np.int64)
    if not return_usage:
        return X, y
    return X, y, (None if usage_at is None else np.array(usages, dtype=str))


# --- synthetic sets for teaching -----------------------------------------------------------------

def _generator_for(seed: int | None) -> np.random.Generator:
    return get_generator() if seed is None else np.random.default_rng(seed)


def _per_class(n: int, k: int) -> np.ndarray:
    """n samples shared as evenly as possible among k classes (the first ones get the extra)."""
    return np.full(k, n // k) + (np.arange(k) < n % k)


def _shuffled(X: np.ndarray, y: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.int64)


def xor(n: int = 200, noise: float = 0.1, seed: int | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """XOR: n points near the corners of the unit square, label 1 where exactly one coordinate is 1.

    The four corners are used equally often, so `xor(4, noise=0)` is the truth table (shuffled).
    Not linearly separable: the smallest problem that needs the hidden layer.
    """
    n, noise = positive_int("n", n), finite_real("noise", noise, low=0)
    rng = _generator_for(seed)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)[np.arange(n) % 4]
    y = (corners[:, 0] != corners[:, 1]).astype(np.int64)
    return _shuffled(corners + noise * rng.standard_normal(corners.shape), y, rng)


def spirals(n: int = 300, classes: int = 3, noise: float = 0.2, seed: int | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spiral arms, one per class (CS231n's set): X (n, 2) in [-1, 1]², y classes.

    n points in total, shared as evenly as possible among the classes; `noise` jitters the angle.
    """
    n, classes = positive_int("n", n), positive_int("classes", classes)
    noise = finite_real("noise", noise, low=0)
    rng = _generator_for(seed)
    X, y = [], []
    for c, count in enumerate(_per_class(n, classes)):
        radius = np.linspace(0.0, 1.0, count)
        angle = np.linspace(c * 4.0, (c + 1) * 4.0, count) + noise * rng.standard_normal(count)
        X.append(np.column_stack((radius * np.sin(angle), radius * np.cos(angle))))
        y.append(np.full(count, c))
    return _shuffled(np.concatenate(X), np.concatenate(y), rng)


def blobs(n: int = 300, centers: int | Any = 3, std: float = 1.0, dim: int | None = None,
          seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters: X (n, dim), y the index of the cluster each point was drawn around.

    `centers` is a count (drawn uniformly in [-10, 10]^dim, dim 2 unless given) or an array of
    shape (k, dim); n points shared as evenly as possible among them, each coordinate with
    standard deviation `std`.
    """
    n, std = positive_int("n", n), finite_real("std", std, low=0)
    rng = _generator_for(seed)
    if is_int(centers):
        dim = 2 if dim is None else positive_int("dim", dim)
        centers = rng.uniform(-10.0, 10.0, size=(positive_int("centers", centers), dim))
    else:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[0] < 1 or dim not in (None, centers.shape[1]):
            raise ValueError(f"centers must be a count or an array of shape (k, dim), got shape "
                             f"{centers.shape}" + ("" if dim is None else f" with dim={dim!r}"))
        dim = centers.shape[1]
    y = np.repeat(np.arange(len(centers)), _per_class(n, len(centers)))
    return _shuffled(centers[y] + std * rng.standard_normal((n, dim)), y, rng)
