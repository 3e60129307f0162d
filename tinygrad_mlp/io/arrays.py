"""Save and load parameters as .npz files: atomic writes, never pickle.

    tm.save(model.state_dict(), "digits.npz")
    model.load_state_dict(tm.load("digits.npz"))

The file is an ordinary .npz (a zip of .npy arrays, readable with `np.load`) holding one array
per state-dict key plus a format marker `__tinygrad_mlp_format__` (the format version).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Any, Mapping

import numpy as np

from tinygrad_mlp.tensor import Tensor

FORMAT_KEY = "__tinygrad_mlp_format__"
FORMAT_VERSION = 1


def save(state_dict: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write `state_dict` ({name: array or Tensor}) to exactly `path` (no ".npz" appended).

    Atomic: the arrays go to a temporary file in the same folder, which is flushed, fsynced and
    then renamed over `path` (`os.replace`), so a crash mid-save leaves any previous file intact.
    """
    path = os.fspath(path)
    arrays = _arrays_to_save(state_dict, path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def _arrays_to_save(state_dict: Mapping[str, Any], path: str) -> dict[str, np.ndarray]:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save({path!r}): expects a mapping of name -> array (e.g. "
                        f"model.state_dict()), got {type(state_dict).__name__}")
    arrays = {FORMAT_KEY: np.array(FORMAT_VERSION, dtype=np.int64)}
    for key, value in state_dict.items():
        if not isinstance(key, str) or not key or key == FORMAT_KEY:
            raise ValueError(f"save({path!r}): invalid key {key!r} (keys are non-empty names)")
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"save({path!r}): {key!r} has dtype {array.dtype}; only numeric "
                            f"arrays can be saved (no pickled objects)")
        arrays[key] = array
    return arrays


def _write_npz(file: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """An .npz written member by member (np.savez would reserve the keys 'file' and
    'allow_pickle'), with fixed timestamps so the same arrays always give the same bytes."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The {name: array} dict saved at `path`, in saved order, as fresh arrays.

    Never unpickles: a file that needs pickle is refused. Missing file → FileNotFoundError; a
    file that is corrupt, truncated or not written by `save` → ValueError naming the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path!r}")
    with open(path, "rb") as file:
        try:
            contents = np.load(file, allow_pickle=False)
        except Exception as error:
            raise ValueError(f"load: {path!r} is not a tinygrad_mlp checkpoint (.npz): it is "
                             f"corrupt, truncated or needs pickle ({type(error).__name__}: "
                             f"{error})") from error
        if not isinstance(contents, np.lib.npyio.NpzFile):
            raise ValueError(f"load: {path!r} holds a single array, not a tinygrad_mlp checkpoint "
                             f"(.npz with {FORMAT_KEY!r})")
        with contents:
            try:
                arrays = {key: contents[key] for key in contents.files}
            except Exception as error:
                raise ValueError(f"load: {path!r} is corrupt, truncated or needs pickle "
                                 f"({type(error).__name__}: {error})") from error
    version = arrays.pop(FORMAT_KEY, None)
    if version is None:
        raise ValueError(f"load: {path!r} is not a tinygrad_mlp checkpoint (missing "
                         f"{FORMAT_KEY!r}; was it written by tm.save?)")
    if (version.shape != () or version.dtype.kind not in "iu"
            or not 1 <= int(version) <= FORMAT_VERSION):
        raise ValueError(f"load: {path!r} has format version {version.tolist()!r}; this tinygrad_mlp reads "
                         f"version {FORMAT_VERSION}")
    return arrays
