"""A stand-in device array: what a GPU array (CuPy's) would demand of the library, on this machine.

`DeviceArray` is an ndarray subclass that behaves like an array living on another device:
numpy's functions and ufuncs on it give DeviceArrays (the work "stays on the device"), and
code of tinygrad_mlp that mixes one with a plain host ndarray (one made by `np.zeros(shape)`,
a host random draw, `np.asarray` of it) is a TypeError naming the file and line, as CuPy
refuses such a mix. Tests may mix freely (comparing a result with an expected host array
computes on the host), so only the library is held to the rule (its test harness, testing/
and gradcheck.py, counts as test code). Numbers and 0-d arrays pass as scalars.

`conftest.py` switches the engine to it when TINYGRAD_MLP_TEST_DEVICE=standin (.ci/run runs the
op, layer and optimizer test modules that way), so host-only code cannot slip back in.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

import tinygrad_mlp

_LIBRARY = os.path.dirname(tinygrad_mlp.__file__) + os.sep
# the test harness's own modules compare on the host on purpose (gradcheck's float64 side)
_HARNESS = tuple(_LIBRARY + name for name in ("testing" + os.sep, "gradcheck.py"))
_NUMPY = os.path.dirname(np.__file__) + os.sep


class DeviceArray(np.ndarray):
    """An array on the stand-in device (see the module's docstring)."""

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        arrays = list(inputs) + list(kwargs.get("out", ()) or ())
        return _run(lambda *host: getattr(ufunc, method)(*host[:len(inputs)], **_with_out(
            kwargs, host[len(inputs):])), arrays, f"{ufunc.__name__}.{method}")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        flat, rebuild = _flatten([args, kwargs])
        return _run(lambda *host: func(*rebuild(host)[0], **rebuild(host)[1]), flat,
                    func.__name__)


def to_device(array: np.ndarray) -> DeviceArray:
    """A host array moved to the stand-in device (a view: nothing is copied)."""
    return np.asarray(array).view(DeviceArray)


def _with_out(kwargs: dict[str, Any], out: tuple[Any, ...]) -> dict[str, Any]:
    return {**kwargs, "out": tuple(out)} if "out" in kwargs and kwargs["out"] else kwargs


def _run(compute: Any, values: list[Any], what: str) -> Any:
    """Compute on host views of `values`; the results are DeviceArrays unless a test mixed."""
    on_device = any(type(v) is DeviceArray for v in values)
    on_host = any(type(v) is np.ndarray and v.ndim > 0 and v.dtype.kind in "fc"   # data, not
                  for v in values)                                              # an index
    if on_device and on_host:
        caller = _caller()
        if caller is not None:
            raise TypeError(f"stand-in device: {what} mixes a device array with a host ndarray "
                            f"at {caller} (allocate with like=/zeros_like, or through "
                            f"tinygrad_mlp.backend)")
        on_device = False                           # a test comparing results: on the host
    host = [v.view(np.ndarray) if type(v) is DeviceArray else v for v in values]
    result = compute(*host)
    return _to_device_all(result) if on_device else result


def _to_device_all(result: Any) -> Any:
    """Results as DeviceArrays; a scalar (a full reduction) as a 0-d one, as CuPy gives."""
    if type(result) is np.ndarray or isinstance(result, np.generic):
        return np.asarray(result).view(DeviceArray)
    if isinstance(result, tuple):
        return tuple(_to_device_all(r) for r in result)
    return result


def _caller() -> str | None:
    """'file:line' of the library code that made the call, or None when a test made it."""
    frame = sys._getframe(3)
    while frame is not None and (frame.f_code.co_filename.startswith(_NUMPY)
                                 or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    filename = "" if frame is None else frame.f_code.co_filename
    if not filename.startswith(_LIBRARY) or filename.startswith(_HARNESS):
        return None
    return f"{os.path.relpath(frame.f_code.co_filename, os.path.dirname(_LIBRARY))}:" \
           f"{frame.f_lineno}"


def _flatten(value: Any) -> tuple[list[Any], Any]:
    """The leaves of nested lists/tuples/dicts, and a function rebuilding the structure."""
    leaves: list[Any] = []

    def walk(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            parts = [walk(x) for x in v]
            return (type(v), parts)
        if isinstance(v, dict):
            return (dict, {k: walk(x) for k, x in v.items()})
        leaves.append(v)
        return len(leaves) - 1

    shape = walk(value)

    def rebuild(new_leaves: Any) -> Any:
        def build(s: Any) -> Any:
            if isinstance(s, int):
                return new_leaves[s]
            kind, parts = s
            if kind is dict:
                return {k: build(x) for k, x in parts.items()}
            return kind(build(x) for x in parts) if kind is tuple else [build(x) for x in parts]
        return build(shape)

    return leaves, rebuild
