"""Elementwise arithmetic: + − · / ** and the elementwise functions exp, log, ….

Broadcasting is undone by the engine, so each backward returns gradients of the output's shape."""

from __future__ import annotations

import numpy as np

from tinygrad_mlp.ops._shared import _broadcast_error
from tinygrad_mlp.tensor import Function


class Add(Function):
    rule = "a + b → grad_a = grad, grad_b = grad (summed back over broadcast axes)"

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
    rule = "a − b → grad_a = grad, grad_b = −grad"

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
    rule = "a · b → grad_a = grad · b, grad_b = grad · a"

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

    rule = "a / b → grad_a = grad / b, grad_b = −grad · a / b²"

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
    rule = "−a → grad_a = −grad"

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    rule = "a ** b → grad_a = grad · b · a^(b−1), grad_b = grad · a^b · log a"

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
    rule = "e^x → grad · e^x"

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

    rule = "log x → grad / x"

    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(a)

    @staticmethod
    def backward(ctx, grad):
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / ctx.a
