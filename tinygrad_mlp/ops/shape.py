"""Shape ops: reshape, flatten, squeeze, unsqueeze, transpose, broadcast_to, pad, indexing, and
joining (stack, concatenate). Backward moves the gradient back into place."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_mlp._checks import is_int
from tinygrad_mlp.ops._shared import _normalize_axes
from tinygrad_mlp.tensor import Function


class Reshape(Function):
    rule = "reshape → grad reshaped back to the input's shape"

    @staticmethod
    def forward(ctx, x, shape=()):
        ctx.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape an input of shape {x.shape} "
                             f"(size {x.size}) into {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


def _check_int(op: str, name: str, value: Any) -> int:
    if not is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return int(value)


class Flatten(Function):
    """Axes start_axis … end_axis (inclusive, negative counts from the end) merged into one,
    as torch.flatten; a 0-d input becomes shape (1,)."""

    rule = "flatten → grad reshaped back to the input's shape"

    @staticmethod
    def forward(ctx, x, start_axis=0, end_axis=-1):
        ctx.shape = x.shape
        if x.ndim == 0:
            return x.reshape(1)
        start, end = (_check_int("flatten", name, value) for name, value in
                      (("start_axis", start_axis), ("end_axis", end_axis)))
        for name, value in (("start_axis", start), ("end_axis", end)):
            if not -x.ndim <= value < x.ndim:
                raise ValueError(f"flatten: {name}={value} is out of range for an input of "
                                 f"shape {x.shape}")
        start, end = start % x.ndim, end % x.ndim
        if start > end:
            raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis "
                             f"{end_axis} (input shape {x.shape})")
        merged = int(np.prod(x.shape[start:end + 1]))
        return x.reshape(x.shape[:start] + (merged,) + x.shape[end + 1:])

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Squeeze(Function):
    """Drop size-1 axes: all of them (axis=None), or the ones named, each of which must be 1."""

    rule = "squeeze → grad reshaped back to the input's shape"

    @staticmethod
    def forward(ctx, x, axis=None):
        ctx.shape = x.shape
        if axis is None:
            return np.squeeze(x)
        axes = _normalize_axes("squeeze", x, axis)
        wrong = [a for a in axes if x.shape[a] != 1]
        if wrong:
            raise ValueError(f"squeeze: axis {wrong[0]} of an input of shape {x.shape} has "
                             f"size {x.shape[wrong[0]]}, not 1")
        return np.squeeze(x, axis=axes)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Unsqueeze(Function):
    """Insert a size-1 axis at position `axis` of the output (−1: last), as torch.unsqueeze."""

    rule = "unsqueeze → grad reshaped back to the input's shape"

    @staticmethod
    def forward(ctx, x, axis=0):
        axis = _check_int("unsqueeze", "axis", axis)
        if not -x.ndim - 1 <= axis <= x.ndim:
            raise ValueError(f"unsqueeze: axis {axis} is out of range for an input of shape "
                             f"{x.shape} (valid: {-x.ndim - 1} … {x.ndim})")
        ctx.shape = x.shape
        return np.expand_dims(x, axis)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Transpose(Function):
    """Permute axes (reverse them when `axes` is None), like numpy.transpose."""

    rule = "transpose → grad transposed back"

    @staticmethod
    def forward(ctx, x, axes=None):
        if axes is not None:                  # normalized, so backward can invert negative axes
            if (not all(-x.ndim <= int(a) < x.ndim for a in axes)
                    or sorted(int(a) % x.ndim for a in axes) != list(range(x.ndim))):
                raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the "
                                 f"{x.ndim} axes of an input of shape {x.shape}")
            axes = tuple(int(a) % x.ndim for a in axes)
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, None if ctx.axes is None else np.argsort(ctx.axes))


class BroadcastTo(Function):
    """x repeated along new leading axes and size-1 axes to `shape` (numpy.broadcast_to); the
    result is a fresh array, not a read-only view."""

    rule = "broadcast_to → grad summed back over the broadcast axes"

    @staticmethod
    def forward(ctx, x, shape=()):
        try:
            return np.broadcast_to(x, shape).copy()
        except (ValueError, TypeError):
            raise ValueError(f"broadcast_to: an input of shape {x.shape} cannot be broadcast to "
                             f"{shape!r}") from None

    @staticmethod
    def backward(ctx, grad):
        return grad                           # the engine sums it back to the input's shape


class Pad(Function):
    """Constant padding with numpy's `pad_width`: an int, (before, after), or one (before, after)
    per axis; the gradient is the padded gradient's middle."""

    rule = "pad → grad with the padding cut off"

    @staticmethod
    def forward(ctx, x, pad_width=0, value=0.0):
        try:
            widths = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
        except ValueError:
            raise ValueError(f"pad: pad_width {pad_width!r} does not fit an input of shape "
                             f"{x.shape} (give an int, (before, after), or {x.ndim} such "
                             f"pairs)") from None
        if widths.dtype.kind not in "iu" or (widths < 0).any():
            raise ValueError(f"pad: pad_width must be non-negative ints, got {pad_width!r}")
        if isinstance(value, bool) or not np.isscalar(value) or not np.isreal(value):
            raise TypeError(f"pad: value must be a real number, got {value!r}")
        ctx.middle = tuple(slice(int(before), int(before) + n)
                           for (before, _), n in zip(widths, x.shape))
        if x.ndim == 0:                       # nothing to pad (numpy's np.pad fails here)
            return x.copy()
        return np.pad(x, widths, constant_values=x.dtype.type(value))

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.middle]


def _is_basic_index(index: Any) -> bool:
    """True for ints, slices, None and Ellipsis: each element is picked at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


class GetItem(Function):
    """x[index] with numpy indexing. Repeated indices add up their gradients (np.add.at)."""

    rule = "x[index] → grad scattered into zeros at index (repeats add up)"

    @staticmethod
    def forward(ctx, x, index=None):
        if isinstance(index, tuple):
            index = tuple(i.data if hasattr(i, "requires_grad") else i for i in index)
        elif hasattr(index, "requires_grad"):   # a Tensor used as an index
            index = index.data
        ctx.index, ctx.shape, ctx.dtype = index, x.shape, x.dtype
        try:
            return x[index]
        except IndexError as error:
            raise IndexError(f"getitem: {error} (input shape {x.shape})") from None

    @staticmethod
    def backward(ctx, grad):
        full = np.zeros_like(grad, shape=ctx.shape)
        if _is_basic_index(ctx.index):
            full[ctx.index] = grad
        else:
            np.add.at(full, ctx.index, grad)
        return full


def _check_joinable(op: str, arrays: tuple[np.ndarray, ...], axis: Any, new_axis: bool) -> int:
    """The normalised axis along which `arrays` can be stacked or concatenated."""
    if not arrays:
        raise ValueError(f"{op}: needs at least one tensor")
    axis = _check_int(op, "axis", axis)
    first = arrays[0]
    ndim = first.ndim + new_axis
    if not -ndim <= axis < ndim or ndim == 0:
        raise ValueError(f"{op}: axis {axis} is out of range for inputs of shape {first.shape}")
    axis %= ndim
    for i, a in enumerate(arrays[1:], 1):
        same = a.shape == first.shape if new_axis else (
            a.ndim == first.ndim and a.shape[:axis] + a.shape[axis + 1:]
            == first.shape[:axis] + first.shape[axis + 1:])
        if not same:
            need = "the same shape" if new_axis else f"the same shape outside axis {axis}"
            raise ValueError(f"{op}: all inputs need {need}; input 0 has shape {first.shape}, "
                             f"input {i} has shape {a.shape}")
    return axis


def _one_or_many(grads: list[np.ndarray]) -> np.ndarray | tuple[np.ndarray, ...]:
    """backward's return value: a lone gradient for a single input, else one per input."""
    return grads[0] if len(grads) == 1 else tuple(grads)


class Stack(Function):
    """The inputs (all of one shape) joined along a new axis `axis`, as numpy.stack."""

    rule = "stack → grad sliced apart along the new axis, one slice per input"

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = _check_joinable("stack", arrays, axis, new_axis=True)
        return np.stack(arrays, axis=ctx.axis)

    @staticmethod
    def backward(ctx, grad):
        return _one_or_many([np.take(grad, i, axis=ctx.axis) for i in range(grad.shape[ctx.axis])])


class Concatenate(Function):
    """The inputs joined along the existing axis `axis`, as numpy.concatenate."""

    rule = "concatenate → grad split back into the inputs' pieces along the axis"

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = _check_joinable("concatenate", arrays, axis, new_axis=False)
        ctx.ends = np.cumsum([a.shape[ctx.axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=ctx.axis)

    @staticmethod
    def backward(ctx, grad):
        return _one_or_many(np.split(grad, ctx.ends, axis=ctx.axis))
