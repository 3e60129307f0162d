"""Regularisation: inverted dropout, its mask drawn from the one generator `manual_seed` seeds."""

from __future__ import annotations

from tinygrad_mlp.backend import to_device_of
from tinygrad_mlp.tensor import Function, get_generator


class Dropout(Function):
    """Each entry zeroed with probability p, the others scaled by 1/(1 − p), so the expected
    output is the input and eval() needs no rescaling. A new mask is drawn on every forward
    (a TrainStep replay included) from `tm.get_generator()`."""

    rule = "a = Z · mask/(1 − p) → grad · mask/(1 − p)"

    @staticmethod
    def forward(ctx, x, p=0.5):
        keep = to_device_of(get_generator().random(x.shape), x) >= p   # drawn on the host
        ctx.scale = keep * x.dtype.type(0 if p == 1 else 1 / (1 - p))   # p = 1: all dropped
        return x * ctx.scale

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale
