"""Normalisation: batch norm (over the batch and any spatial axes, per channel) and layer norm
(over the trailing axes, per sample). Both standardise x̂ = (x − mean) / √(var + eps) with the
biased variance; the layers apply the affine weight and bias with ordinary ops afterwards.

Backward of the standardisation over m entries, with g the upstream gradient:
    dx = (g − mean(g) − x̂ · mean(g · x̂)) / √(var + eps)
"""

from __future__ import annotations


import numpy as np

from tinygrad_mlp.tensor import Function


def _standardize(ctx: Function, x: np.ndarray, axes: tuple[int, ...], eps: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x̂ over `axes`; keeps x̂ and 1/√(var + eps) for backward. Returns (x̂, mean, var)."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=axes, keepdims=True)
    ctx.axes, ctx.inv_std = axes, 1 / np.sqrt(var + x.dtype.type(eps))
    ctx.normalized = centred * ctx.inv_std
    return ctx.normalized, mean, var


def _standardize_backward(ctx: Function, grad: np.ndarray) -> np.ndarray:
    x_hat, axes = ctx.normalized, ctx.axes
    return ctx.inv_std * (grad - grad.mean(axis=axes, keepdims=True)
                          - x_hat * (grad * x_hat).mean(axis=axes, keepdims=True))


class BatchNorm(Function):
    """x standardised per channel (axis 1) over every other axis. In training the batch's
    statistics are used and the running ones updated in place, as PyTorch does:
        running = (1 − momentum) · running + momentum · batch   (var unbiased: · m/(m − 1))
    with momentum=None a cumulative average (1/num_batches_tracked). In eval the running
    statistics are used, and the op is linear in x. Updating inside forward keeps a replayed
    forward (TrainStep) updating them too."""

    rule = "x̂ = (x − μ_batch)/σ_batch → (grad − mean(grad) − x̂·mean(grad·x̂)) / σ_batch"

    @staticmethod
    def forward(ctx, x, running_mean=None, running_var=None, num_batches_tracked=None,
                training=True, momentum=0.1, eps=1e-5):
        axes = (0,) + tuple(range(2, x.ndim))
        channel = (1, -1) + (1,) * (x.ndim - 2)            # (C,) → broadcastable over x
        ctx.training = training
        if not training:
            mean, var = (s.reshape(channel).astype(x.dtype, copy=False)   # never upcast x
                         for s in (running_mean, running_var))
            ctx.inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
            return (x - mean) * ctx.inv_std
        count = x.size // x.shape[1]
        if count < 2:
            raise ValueError(f"batchnorm: training needs more than one value per channel, got "
                             f"an input of shape {x.shape} (use eval() for single samples)")
        out, mean, var = _standardize(ctx, x, axes, eps)
        if running_mean is not None:
            num_batches_tracked += 1
            factor = 1 / float(num_batches_tracked) if momentum is None else momentum
            running_mean *= 1 - factor
            running_mean += factor * mean.reshape(-1)
            running_var *= 1 - factor
            running_var += factor * count / (count - 1) * var.reshape(-1)
        return out

    @staticmethod
    def backward(ctx, grad):
        if not ctx.training:
            return grad * ctx.inv_std
        return _standardize_backward(ctx, grad)


class LayerNorm(Function):
    """x standardised over its last `ndim` axes, separately for every leading index."""

    rule = "x̂ = (x − μ)/σ over the last axes → (grad − mean(grad) − x̂·mean(grad·x̂)) / σ"

    @staticmethod
    def forward(ctx, x, ndim=1, eps=1e-5):
        return _standardize(ctx, x, tuple(range(x.ndim - ndim, x.ndim)), eps)[0]

    @staticmethod
    def backward(ctx, grad):
        return _standardize_backward(ctx, grad)


