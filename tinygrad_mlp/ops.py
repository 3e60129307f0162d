"""The built-in Functions, grouped by kind: elementwise, matmul, reductions, shape, neural.

Each op's backward sits right below its forward. Backward receives `grad`, the gradient of the
final output with respect to this op's output, and returns one gradient per input: the chain
rule, one link at a time. Broadcasting is undone by the engine (tensor.py), not here.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from tinygrad_mlp.tensor import Function

# --- elementwise arithmetic ------------------------------------------------------------------


def _broadcast_error(op: str, a: np.ndarray, b: np.ndarray) -> ValueError:
    """numpy's own message names neither the op nor the shapes."""
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        try:
            return a + b
        except ValueError:
            raise _broadcast_error("add", a, b) from None

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        try:
            return a - b
        except ValueError:
            raise _broadcast_error("sub", a, b) from None

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad if ctx.needs_input_grad[1] else None


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        try:
            return a * b
        except ValueError:
            raise _broadcast_error("mul", a, b) from None

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx.b if ctx.needs_input_grad[0] else None,
                grad * ctx.a if ctx.needs_input_grad[1] else None)


class Div(Function):
    """a / b. Division by zero gives ±inf or nan silently, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            try:
                out = a / b
            except ValueError:
                raise _broadcast_error("div", a, b) from None
        ctx.b, ctx.out = b, out
        return out

    @staticmethod
    def backward(ctx, grad):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            grad_a = grad / ctx.b
            return grad_a, (-grad_a * ctx.out if ctx.needs_input_grad[1] else None)


class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    """a ** b. The exponent's gradient a**b · log(a) is computed only if the exponent needs one;
    a negative base with a fractional exponent gives nan silently, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            try:
                out = a ** b
            except ValueError:
                raise _broadcast_error("pow", a, b) from None
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.a, ctx.b, ctx.out
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            grad_a = grad * b * a ** (b - 1) if ctx.needs_input_grad[0] else None
            grad_b = grad * out * np.log(a) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        with np.errstate(over="ignore"):
            ctx.out = np.exp(a)
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.out


class Log(Function):
    """Natural log. log(0) = -inf and log(negative) = nan, silently, as in PyTorch."""

    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(a)

    @staticmethod
    def backward(ctx, grad):
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / ctx.a


# --- activations -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _exp_limit(dtype: np.dtype) -> float:
    """The most negative x whose e^-x still fits in `dtype` (−88 float32, −709 float64)."""
    return -float(np.floor(np.log(np.finfo(dtype).max)))


class Sigmoid(Function):
    """σ(x) = 1 / (1 + e^-x); σ' = σ(1 − σ), taken from the output as the blog does.

    When some x is so negative that e^-x would overflow, it is computed from e^-|x| ≤ 1 instead
    (σ = e^x/(1 + e^x) there), so σ(−1000) is exactly 0, with no warning and no lost precision.
    """

    @staticmethod
    def forward(ctx, x):
        if x.size and x.min() >= _exp_limit(x.dtype):     # the plain formula, in place
            out = np.asarray(np.negative(x))              # (asarray: a 0-d input gives a scalar)
            np.exp(out, out=out)
            out += 1
            np.reciprocal(out, out=out)
        else:
            e = np.exp(-np.abs(x))                        # in (0, 1]: cannot overflow
            out = np.where(x >= 0, 1, e) / (1 + e)        # 1/(1+e^-x) or e^x/(1+e^x)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, grad):
        local = 1 - ctx.out                               # the blog's a(1 − a) ...
        local *= ctx.out
        local *= grad                                     # ... times the gradient from above
        return local


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.out = np.tanh(x)
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad * (1 - ctx.out * ctx.out)


class ReLU(Function):
    """max(x, 0); the gradient at exactly 0 is taken as 0 (the usual subgradient)."""

    @staticmethod
    def forward(ctx, x):
        ctx.out = np.maximum(x, 0)
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad * (ctx.out > 0)


class Softmax(Function):
    """exp(x) / Σ exp(x) along `axis`, shifted by the max first so it never overflows."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = axis = _check_axis("softmax", x, axis)
        if x.size == 0:
            ctx.out = x.copy()
            return ctx.out
        e = x - x.max(axis=axis, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(axis=axis, keepdims=True)
        ctx.out = e
        return e

    @staticmethod
    def backward(ctx, grad):
        out = ctx.out                                     # Jacobian-vector product of softmax
        return out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """x − log Σ exp(x) along `axis` (the shifted log-sum-exp): finite for any finite logits."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = axis = _check_axis("log_softmax", x, axis)
        if x.size == 0:
            ctx.out = x.copy()
            return ctx.out
        shifted = x - x.max(axis=axis, keepdims=True)
        ctx.out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        return grad - np.exp(ctx.out) * grad.sum(axis=ctx.axis, keepdims=True)


# --- matrix products ---------------------------------------------------------------------------

def _check_matmul(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands must be at least 1-D, got shapes {a.shape} "
                         f"and {b.shape}")
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a.shape[-1]} (last dim of the first) != {inner_b} "
                         f"({'first' if b.ndim == 1 else 'second-to-last'} dim of the second)")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be "
                         f"broadcast together") from None


class MatMul(Function):
    """a @ b with numpy's rules (1-D operands, broadcast batch dimensions)."""

    @staticmethod
    def forward(ctx, a, b):
        _check_matmul(a, b)
        ctx.a, ctx.b = a, b
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.a, ctx.b
        if a.ndim == 1 and b.ndim == 1:       # a dot product: the output is a scalar
            return grad * b, grad * a
        if a.ndim == 1:                       # numpy treated a as a row (1, n): put that axis back
            grad = np.expand_dims(grad, -2)
            a = a[None, :]
        if b.ndim == 1:                       # and b as a column (n, 1)
            grad = np.expand_dims(grad, -1)
            b = b[:, None]
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = grad @ np.swapaxes(b, -1, -2)
            if ctx.a.ndim == 1:
                grad_a = grad_a[..., 0, :]
        if ctx.needs_input_grad[1]:
            grad_b = np.swapaxes(a, -1, -2) @ grad
            if ctx.b.ndim == 1:
                grad_b = grad_b[..., 0]
        return grad_a, grad_b


class Linear(Function):
    """X·W + b in one node: the blog's Z = X·W with a bias. X (..., in), W (in, out), b (out,)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        if x.ndim == 0 or x.shape[-1] != weight.shape[0]:
            raise ValueError(f"linear: input of shape {x.shape} does not fit weight of shape "
                             f"{weight.shape}: expected (..., {weight.shape[0]})")
        ctx.x, ctx.weight = x, weight
        out = x @ weight
        out += bias
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.x, ctx.weight
        grad_x = grad @ weight.T if ctx.needs_input_grad[0] else None
        if grad.ndim != 2:                    # fold leading batch axes into one
            x, grad = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
        grad_weight = x.T @ grad if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(axis=0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


# --- reductions --------------------------------------------------------------------------------

def _normalize_axes(op: str, x: np.ndarray, axis: Any) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    normalized = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -x.ndim <= a < max(x.ndim, 1):
            raise ValueError(f"{op}: axis {axis} is out of range for an input of shape {x.shape}")
        normalized.append(int(a) % max(x.ndim, 1))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(normalized)


def _check_axis(op: str, x: np.ndarray, axis: Any) -> int:
    """One axis (softmax, log_softmax), normalized to be non-negative."""
    if type(axis) is int and -x.ndim <= axis < x.ndim:   # the usual case, checked cheaply
        return axis % x.ndim
    if x.ndim == 0:
        raise ValueError(f"{op}: needs at least a 1-D input, got a scalar")
    if not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{op}: axis must be an int, got {axis!r}")
    return _normalize_axes(op, x, axis)[0]


def _expand_to_input(grad: np.ndarray, ctx: Function) -> np.ndarray:
    """A reduction's upstream gradient, with the reduced axes put back, broadcast to the input."""
    if not ctx.keepdims:
        grad = np.expand_dims(grad, ctx.axes)
    return np.broadcast_to(grad, ctx.shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.shape = _normalize_axes("sum", x, axis), keepdims, x.shape
        return np.sum(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        return _expand_to_input(grad, ctx)


class Mean(Function):
    """Mean over `axis`; the mean of an empty selection is nan (no warning), as in PyTorch."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.shape = _normalize_axes("mean", x, axis), keepdims, x.shape
        ctx.count = int(np.prod([x.shape[a] for a in ctx.axes]))
        total = np.sum(x, axis=ctx.axes, keepdims=keepdims)
        if ctx.count == 0:
            return np.full_like(total, np.nan)
        return total / x.dtype.type(ctx.count)

    @staticmethod
    def backward(ctx, grad):
        if ctx.count == 0:
            return np.zeros(ctx.shape, dtype=grad.dtype)
        return _expand_to_input(grad / grad.dtype.type(ctx.count), ctx)


class Max(Function):
    """Max over `axis`. Where several entries tie for the max, they share the gradient equally."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.shape = _normalize_axes("max", x, axis), keepdims, x.shape
        if any(x.shape[a] == 0 for a in ctx.axes):
            raise ValueError(f"max: cannot reduce over an empty axis (input shape {x.shape})")
        out = np.max(x, axis=ctx.axes, keepdims=True)
        ctx.is_max = x == out
        return out if keepdims else np.squeeze(out, axis=ctx.axes)

    @staticmethod
    def backward(ctx, grad):
        share = ctx.is_max / ctx.is_max.sum(axis=ctx.axes, keepdims=True).astype(grad.dtype)
        return _expand_to_input(grad, ctx) * share


# --- shape ---------------------------------------------------------------------------------------

class Reshape(Function):
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
