"""Shape ops: reshape, transpose, indexing. Backward moves the gradient back into place."""

from __future__ import annotations

from typing import Any

import numpy as np

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
        full = np.zeros(ctx.shape, dtype=grad.dtype)
        if _is_basic_index(ctx.index):
            full[ctx.index] = grad
        else:
            np.add.at(full, ctx.index, grad)
        return full
