"""Matrix products: numpy's @ and the fused Linear X·W + b of the blog's layers."""

from __future__ import annotations

import numpy as np

from tinygrad_mlp.tensor import Function


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

    rule = "Z = X·W → grad_X = grad·Wᵀ, grad_W = Xᵀ·grad"

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

    rule = "Z = X·W + b → grad_X = grad·Wᵀ, grad_W = Xᵀ·grad, grad_b = Σₙ grad"

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
