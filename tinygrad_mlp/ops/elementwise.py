"""Elementwise arithmetic: + − · / ** and the elementwise functions exp, log, ….

Broadcasting is undone by the engine, so each backward returns gradients of the output's shape."""

from __future__ import annotations

import numpy as np

from tinygrad_mlp.backend import asarray
from tinygrad_mlp.ops._shared import _broadcast_error
from tinygrad_mlp.tensor import Function


class BinaryOp(Function):
    """An op of two operands numpy broadcasts together: forward is `compute(a, b)`, and
    operands that do not broadcast are an error naming the op and both shapes (numpy's own
    message names neither). An op that keeps more calls `BinaryOp.forward` from its own."""

    compute = staticmethod(np.add)    # each op sets its numpy function

    @staticmethod
    def forward(ctx, a, b):
        try:
            return ctx.compute(a, b)
        except ValueError:
            raise _broadcast_error(type(ctx).__name__.lower(), a, b) from None


class Add(BinaryOp):
    rule = "a + b → grad_a = grad, grad_b = grad (summed back over broadcast axes)"
    compute = staticmethod(np.add)

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(BinaryOp):
    rule = "a − b → grad_a = grad, grad_b = −grad"
    compute = staticmethod(np.subtract)

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad if ctx.needs_input_grad[1] else None


class Mul(BinaryOp):
    rule = "a · b → grad_a = grad · b, grad_b = grad · a"
    compute = staticmethod(np.multiply)

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return BinaryOp.forward(ctx, a, b)

    @staticmethod
    def backward(ctx, grad):
        return (grad * ctx.b if ctx.needs_input_grad[0] else None,
                grad * ctx.a if ctx.needs_input_grad[1] else None)


class Div(BinaryOp):
    """a / b. Division by zero gives ±inf or nan silently, as in PyTorch."""

    rule = "a / b → grad_a = grad / b, grad_b = −grad · a / b²"
    compute = staticmethod(np.true_divide)

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = BinaryOp.forward(ctx, a, b)
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


class Pow(BinaryOp):
    rule = "a ** b → grad_a = grad · b · a^(b−1), grad_b = grad · a^b · log a"
    compute = staticmethod(np.power)

    """a ** b. The exponent's gradient a**b · log(a) is computed only if the exponent needs one;
    a negative base with a fractional exponent gives nan silently, as in PyTorch. As PyTorch,
    the terms 0·∞ and 0·log 0 count as 0: grad_a is 0 where b == 0 (x**0 is constant), and
    grad_b is 0 where a == 0 and b >= 0 (0**b is constant there)."""

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = BinaryOp.forward(ctx, a, b)
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.a, ctx.b, ctx.out
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            grad_a = grad_b = None
            if ctx.needs_input_grad[0]:
                grad_a = grad * _zero_where(b == 0, b * a ** (b - 1))
            if ctx.needs_input_grad[1]:
                grad_b = grad * _zero_where((a == 0) & (b >= 0), out * np.log(a))
        return grad_a, grad_b


def _zero_where(condition: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` with 0 where `condition` holds (a pass over the data only if it holds anywhere)."""
    if not np.any(condition):
        return values
    return np.where(condition, np.zeros((), values.dtype), values)


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


class Abs(Function):
    """|x|. At x = 0 the gradient is 0 (sign(0) = 0), PyTorch's choice among the subgradients."""

    rule = "|x| → grad · sign(x)   (0 at x = 0)"

    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.abs(a)

    @staticmethod
    def backward(ctx, grad):
        return grad * np.sign(ctx.a)


class Sqrt(Function):
    """√x. √0 has gradient +inf and a negative x gives nan, silently, as in PyTorch."""

    rule = "√x → grad / (2√x)"

    @staticmethod
    def forward(ctx, a):
        with np.errstate(invalid="ignore"):
            ctx.out = np.sqrt(a)
        return ctx.out

    @staticmethod
    def backward(ctx, grad):
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / (2 * ctx.out)


class Clip(Function):
    """x limited to [min, max] (either may be None). The gradient passes where min ≤ x ≤ max,
    bounds included, and is 0 outside: PyTorch's clamp. With min > max every entry is max."""

    rule = "clip(x, min, max) → grad · [min ≤ x ≤ max]"

    @staticmethod
    def forward(ctx, a, min=None, max=None):
        for name, bound in (("min", min), ("max", max)):
            if bound is not None and (isinstance(bound, bool) or not np.isscalar(bound)
                                      or not np.isreal(bound)):
                raise TypeError(f"clip: {name} must be a real number or None, got {bound!r}")
        if min is None and max is None:
            raise ValueError("clip: give at least one of min and max")
        low = -np.inf if min is None else min
        high = np.inf if max is None else max
        ctx.passes = (a >= low) & (a <= high)
        return np.minimum(np.maximum(a, a.dtype.type(low)), a.dtype.type(high))

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.passes


class AsType(Function):
    """The same values in another float dtype; the gradient comes back in the input's dtype."""

    rule = "astype(x) → grad cast back to x's dtype"

    @staticmethod
    def forward(ctx, a, dtype=None):
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"astype: a Tensor holds floats; got dtype {dtype} (for integer "
                            f"values use t.numpy().astype({dtype}))")
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.dtype)


class Maximum(BinaryOp):
    """Elementwise max(a, b). Where a == b the gradient is split equally (half to each), as
    PyTorch does."""

    rule = "max(a, b) → grad_a = grad · ([a > b] + ½[a = b]), grad_b = grad · ([b > a] + ½[a = b])"
    compute = staticmethod(np.maximum)

    @staticmethod
    def forward(ctx, a, b):
        out = BinaryOp.forward(ctx, a, b)
        ctx.share_a = _winner_share(a > b, a == b, out.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.share_a, grad * (1 - ctx.share_a)


class Minimum(BinaryOp):
    """Elementwise min(a, b). Where a == b the gradient is split equally, as PyTorch does."""

    rule = "min(a, b) → grad_a = grad · ([a < b] + ½[a = b]), grad_b = grad · ([b < a] + ½[a = b])"
    compute = staticmethod(np.minimum)

    @staticmethod
    def forward(ctx, a, b):
        out = BinaryOp.forward(ctx, a, b)
        ctx.share_a = _winner_share(a < b, a == b, out.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.share_a, grad * (1 - ctx.share_a)


def _winner_share(wins: np.ndarray, ties: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The fraction of the gradient that goes to the first operand: 1, ½ at a tie, or 0."""
    share = asarray(wins, dtype)
    share[asarray(ties)] = 0.5
    return share


class Where(Function):
    """a where `condition` is True, b elsewhere (all three broadcast together); the condition
    is a boolean array (an option, not an input: it gets no gradient)."""

    rule = "where(c, a, b) → grad_a = grad · c, grad_b = grad · (1 − c)"

    @staticmethod
    def forward(ctx, a, b, condition=None):
        if hasattr(condition, "requires_grad"):      # a Tensor (of floats: refused below)
            condition = condition.data
        if not isinstance(condition, np.ndarray) or condition.dtype != np.bool_:
            kind = getattr(condition, "dtype", type(condition).__name__)
            raise TypeError(f"where: condition must be a boolean array (e.g. x > 0), got "
                            f"{kind}; for a 0/1 mask write mask != 0")
        try:
            out = np.where(condition, a, b)
        except ValueError:
            raise ValueError(f"where: condition {condition.shape}, a {a.shape} and b {b.shape} "
                             f"cannot be broadcast together") from None
        ctx.condition = condition
        return out

    @staticmethod
    def backward(ctx, grad):
        condition = ctx.condition
        return (np.where(condition, grad, 0) if ctx.needs_input_grad[0] else None,
                np.where(condition, 0, grad) if ctx.needs_input_grad[1] else None)
