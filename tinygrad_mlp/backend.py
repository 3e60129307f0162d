"""What an array is here: the one seam between the engine and its array library.

DeZero's `get_array_module` idea, without its global switch: the library's code asks this
module whether a value is an engine array (`is_array`), turns data into one (`asarray`,
`float_array`), and allocates like an existing array (numpy's `like=` / `zeros_like`), so the
same op runs on any array type that speaks numpy's protocols. numpy's `ndarray` is the array
type on this machine; a device's array type would be set with `set_array_type`. Nothing here
imports the rest of the package.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
ARRAY_TYPES: set[type] = {np.ndarray}   # the types the engine holds as they are (exact types)
_from_host: Callable[[np.ndarray], Any] | None = None   # host data → the engine's arrays


def is_array(value: Any) -> bool:
    """Is `value` an engine array (exactly: np.matrix or a masked array is not one)?"""
    return type(value) in ARRAY_TYPES


def set_array_type(array_type: type, from_host: Callable[[np.ndarray], Any] | None) -> None:
    """Make `array_type` (an ndarray subclass speaking numpy's protocols, e.g. a device's) the
    engine's one array type, as `torch.set_default_device` does: host data that becomes a
    Tensor (or a target) is moved with `from_host`. `set_array_type(np.ndarray, None)` restores
    numpy. The test suite uses it to run on a stand-in device (tests/standin_device.py)."""
    global _from_host
    ARRAY_TYPES.clear()
    ARRAY_TYPES.add(array_type)
    _from_host = from_host


def asarray(value: Any, dtype: Any = None) -> np.ndarray:
    """`value` as an engine array: one already is stays where it is (cast to `dtype` if given);
    anything else (lists, numbers, host arrays) goes through numpy.asarray and, when the engine
    runs on a device, to it."""
    if type(value) in ARRAY_TYPES:
        return value if dtype is None else value.astype(dtype, copy=False)
    array = np.asarray(value, dtype=dtype)
    return array if _from_host is None else _from_host(array)


def to_device_of(array: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`array`, made on the host (a random draw), moved to where `reference` lives."""
    return array if type(reference) is np.ndarray or _from_host is None else _from_host(array)


def float_array(data: Any, dtype: Any, default: np.dtype) -> np.ndarray:
    """Data as a float array, the rule for what a Tensor holds: float arrays are shared as they
    are, anything else is converted to `dtype` (or, for ints, bools, lists and scalars, to the
    `default` dtype); strings, objects and complex numbers are a TypeError."""
    if type(data) in ARRAY_TYPES and dtype is None and data.dtype in FLOAT_DTYPES:
        return data
    try:
        array = asarray(data)
    except ValueError as error:  # ragged nested lists
        raise TypeError(f"Tensor data must be a rectangular array of real numbers: {error}"
                        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be real numbers; got dtype {array.dtype} "
                        f"(strings, objects, complex numbers and ragged lists are not supported)")
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if isinstance(data, np.ndarray) and array.dtype.kind == "f":
        return array
    return array.astype(default)


def forward_result(function: str, data: Any) -> np.ndarray:
    """A forward's result that is not a numeric engine array: a number becomes one, anything
    else (a string, None, an object array) is a TypeError naming the Function."""
    if (isinstance(data, (np.generic, int, float)) and not isinstance(data, (str, bytes))
            or type(data) is np.ndarray and data.ndim == 0):    # a number: on the device
        data = asarray(data)
        if data.dtype.kind in "fbiu":
            return data
    kind = f"an array of dtype {data.dtype}" if isinstance(data, np.ndarray) else (
        f"{type(data).__name__} {data!r}"[:80])
    raise TypeError(f"{function}.forward must return a numeric numpy array, got {kind}")


def sum_to_shape(grad: Any, data: np.ndarray, function: str) -> np.ndarray:
    """Undo numpy broadcasting: sum `grad` back to the shape (and dtype) of the input `data`
    (DeZero's `sum_to`); a gradient that cannot be is a ValueError naming the Function."""
    shape = data.shape
    if type(grad) not in ARRAY_TYPES:  # a numpy scalar (0-d arithmetic) or a list: an array
        grad = np.asarray(grad)        # (on the host: a backward computing there stays caught)
    returned = grad.shape
    if grad.shape != shape:
        extra = grad.ndim - len(shape)
        if extra > 0:
            grad = grad.sum(axis=tuple(range(extra)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i:i + 1] != (1,))
        if axes and grad.ndim == len(shape):
            grad = grad.sum(axis=axes, keepdims=True)
        if grad.shape != shape:
            raise ValueError(f"{function}.backward returned a gradient of shape "
                             f"{returned} for an input of shape {shape}")
    if grad.dtype != data.dtype:
        grad = grad.astype(data.dtype)
    return grad
