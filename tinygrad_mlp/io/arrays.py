"""Save and load parameters as .npz files: atomic writes, never pickle.

    tm.save(model.state_dict(), "digits.npz")
    model.load_state_dict(tm.load("digits.npz"))

The file is an ordinary .npz (a zip of uncompressed .npy arrays, readable with `np.load`)
holding one array per state-dict key plus a format marker `__tinygrad_mlp_format__` (the format
version). `load` reads files from anywhere as hostile: it accepts only what `save` writes and
checks every declared size against the file before allocating.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import zipfile
from typing import Any, BinaryIO, Iterator, Mapping

import numpy as np

from tinygrad_mlp._files import file_kind, write_atomically
from tinygrad_mlp.tensor import Tensor, as_array

FORMAT_KEY = "__tinygrad_mlp_format__"
MODEL_KEY = "__tinygrad_mlp_model__"    # a model file's architecture (JSON bytes): io/models.py
FORMAT_VERSION = 1

_SAVED_KINDS = "biuf"                   # bool, signed and unsigned ints, floats


def save(state_dict: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write `state_dict` ({name: array or Tensor}) to exactly `path` (no ".npz" appended).

    Atomic: the arrays go to a temporary file `.NAME.XXXXXXXX.tmp` in the same folder, which is
    flushed, fsynced and renamed over `path`, so a crash mid-save leaves any previous file intact;
    the next save to `path` removes temporary files a killed save left. The file gets the mode
    `open()` would give it (0666 less the umask), or the mode of the file it replaces. Only a
    regular file is replaced: a directory, FIFO, device or socket at `path` is refused; a
    symlink to a regular file is written through (its target is replaced, the link kept).
    Arrays are stored little-endian; keys must be non-empty names that round-trip through the
    zip format (no NUL byte, not ending in ".npy").
    """
    path = os.fspath(path)
    if not path:
        raise ValueError("save: the path is empty")
    arrays = _arrays_to_save(state_dict, path)
    write_atomically(path, lambda file: _write_npz(file, arrays), "save")


def _arrays_to_save(state_dict: Mapping[str, Any], path: str) -> dict[str, np.ndarray]:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save({path!r}): expects a mapping of name -> array (e.g. "
                        f"model.state_dict()), got {type(state_dict).__name__}")
    arrays = {FORMAT_KEY: np.array(FORMAT_VERSION, dtype=np.int64)}
    for key, value in state_dict.items():
        _check_key(key, path)
        array = np.asarray(as_array(value))
        if array.dtype.kind not in _SAVED_KINDS or array.dtype.fields is not None:
            raise TypeError(f"save({path!r}): {key!r} has dtype {array.dtype}; only bool, "
                            f"integer and float arrays can be saved (no pickled objects)")
        arrays[key] = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return arrays


def _check_key(key: Any, path: str) -> None:
    """Keys become zip member names `KEY.npy`: refuse the ones that would come back different."""
    problem = None
    if not isinstance(key, str) or not key:
        problem = "keys are non-empty strings"
    elif key in (FORMAT_KEY, MODEL_KEY):
        problem = "the name is reserved for the file format"
    elif "\0" in key:
        problem = "a NUL byte would truncate the name"
    elif key.endswith(".npy"):
        problem = "a name ending in '.npy' reads back as another key (numpy strips '.npy')"
    else:
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            problem = "the name is not valid Unicode"
    if problem:
        raise ValueError(f"save({path!r}): invalid key {key!r}: {problem}")


def _write_npz(file: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """An .npz written member by member (np.savez would reserve the keys 'file' and
    'allow_pickle'), with fixed timestamps so the same arrays always give the same bytes."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The {name: array} dict saved at `path`, in saved order, as fresh writable arrays.

    Reads only what `save` writes: uncompressed little-endian bool/int/float .npy members whose
    declared size fits the file, each name once, plus the format marker. Never unpickles. A
    missing file is FileNotFoundError; anything else (not a regular file, corrupt, truncated,
    compressed, pickled, duplicated) is a ValueError naming the file and the member, raised
    before any large allocation. A model file's architecture is left out (`tm.load_model`
    reads it), so a model file loads as its weights.
    """
    arrays = _read_arrays(path)
    arrays.pop(MODEL_KEY, None)
    return arrays


def _read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """`load` without leaving anything out."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))   # a FIFO must not block
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no such file: {path!r}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"load: {path!r} is {file_kind(info.st_mode)}, not a regular file")
        arrays = _read_npz(file, path, info.st_size)
    version = arrays.pop(FORMAT_KEY, None)
    if version is None:
        raise ValueError(f"load: {path!r} is not a tinygrad_mlp checkpoint (missing "
                         f"{FORMAT_KEY!r}; was it written by tm.save?)")
    if (version.shape != () or version.dtype.kind not in "iu"
            or not 1 <= int(version) <= FORMAT_VERSION):
        raise ValueError(f"load: {path!r} has format version {version.tolist()!r}; this "
                         f"tinygrad_mlp reads version {FORMAT_VERSION}")
    return arrays


def _read_npz(file: BinaryIO, path: str, size: int) -> dict[str, np.ndarray]:
    start = file.read(6)
    file.seek(0)
    if start.startswith(b"\x93NUMPY"):
        raise ValueError(f"load: {path!r} holds a single array (.npy), not a tinygrad_mlp "
                         f"checkpoint (.npz with {FORMAT_KEY!r})")
    if start[:1] == b"\x80":
        raise ValueError(f"load: {path!r} is a pickle, not a tinygrad_mlp checkpoint; "
                         f"tinygrad_mlp never unpickles")
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise ValueError(f"load: {path!r} is not a tinygrad_mlp checkpoint (.npz): it is "
                         f"corrupt, truncated or not a zip archive ({error})") from error
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for member in archive.infolist():
            key = _check_member(member, path, size, arrays)
            with _corrupt_as_value_error(path, member):
                stream = archive.open(member)
            with stream:
                arrays[key] = _read_member(stream, member, path)
    return arrays


@contextlib.contextmanager
def _corrupt_as_value_error(path: str, member: zipfile.ZipInfo) -> Iterator[None]:
    """What zipfile and numpy raise on broken bytes, as a ValueError naming file and member."""
    try:
        yield
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ValueError(f"load: {path!r}, member {member.filename!r} is corrupt or truncated "
                         f"({error})") from error


def _check_member(member: zipfile.ZipInfo, path: str, size: int,
                  seen: Mapping[str, np.ndarray]) -> str:
    """The key a member holds, once its entry in the zip directory is what `save` writes."""
    where = f"load: {path!r}, member {member.filename!r}"
    if not member.filename.endswith(".npy"):
        raise ValueError(f"{where} is not a .npy array; tm.save writes only .npy members")
    if member.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{where} is compressed; tm.save writes only uncompressed members "
                             f"(a compressed member could inflate without limit)")
    if member.flag_bits & 0x1:
        raise ValueError(f"{where} is encrypted")
    if member.file_size != member.compress_size or member.header_offset + member.file_size > size:
        raise ValueError(f"{where} declares {member.file_size} bytes, more than the "
                             f"{size}-byte file holds: corrupt or truncated")
    key = member.filename[:-len(".npy")]
    if key in seen:
        raise ValueError(f"{where} appears twice; a checkpoint holds each name once")
    return key


def _read_member(stream: BinaryIO, member: zipfile.ZipInfo, path: str) -> np.ndarray:
    """One .npy member as a fresh array, its header checked against the member's size first."""
    where = f"load: {path!r}, member {member.filename!r}"
    with _corrupt_as_value_error(path, member):
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(stream)
    if dtype.kind not in _SAVED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        hint = ", which needs pickle" if dtype.hasobject else ""
        raise ValueError(f"{where} has dtype {dtype}{hint}; only bool, integer and float "
                             f"arrays are loaded")
    if dtype.newbyteorder("<") != dtype:
        raise ValueError(f"{where} has big-endian dtype {dtype.str}; tm.save writes "
                             f"little-endian")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if stream.tell() + nbytes != member.file_size:
        raise ValueError(f"{where} declares shape {shape} of {dtype} ({nbytes} bytes) but "
                             f"holds {member.file_size - stream.tell()} bytes of data")
    flat = np.empty(count, dtype=dtype)
    with _corrupt_as_value_error(path, member):
        if stream.readinto(memoryview(flat.view(np.uint8))) != nbytes or stream.read(1):
            raise ValueError(f"{nbytes} bytes of data expected")
    return flat.reshape(shape, order="F" if fortran_order else "C")
