"""Image ops on NCHW batches: Conv2d by im2col (one matrix product each way), MaxPool2d, AvgPool2d.

Im2col lays every kernel-sized window of the (padded) input out as one row, so a convolution is
the blog's Z = X·W once more: `cols (N·OH·OW, kh·kw·C) · Wᵀ (kh·kw·C, out)`. Rows hold a
window's pixels channel-last, so gathering them and scattering gradients back move contiguous
runs of C values. Backward scatters the columns' gradient into the input with one strided,
vectorised add per kernel position (kh·kw adds, never a loop over pixels): overlapping windows
add up exactly where they overlap.

Outputs are NCHW in shape but channel-last in memory (a transposed view of the product, no copy);
numpy's elementwise ops and these ops keep that layout, and the next convolution reads it
without a copy. Results that are (N, C, H, W) in shape behave the same whatever their memory.
Semantics follow PyTorch's `conv2d`, `max_pool2d` and `avg_pool2d` (`count_include_pad=True`,
floor of the output size); the tests compare values and gradients with PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinygrad_mlp._checks import is_int
from tinygrad_mlp.tensor import Function


def pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (tuple or list), each ≥ minimum, as (along H, along W).

    Public so that the layers (nn.Conv2d, …) check their arguments at construction the same way.
    """
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(is_int(v) and v >= minimum for v in pair):
        raise ValueError(f"{op}: {name} must be an int ≥ {minimum} or a pair of them, "
                         f"got {value!r}")
    return int(pair[0]), int(pair[1])


def _geometry(op: str, shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
              padding: tuple[int, int]) -> tuple[int, int]:
    """(OH, OW) of a window sliding over an (N, C, H, W) input, or a ValueError naming why not."""
    if len(shape) != 4:
        raise ValueError(f"{op}: expected an input of shape (N, C, H, W), got {shape}")
    sizes = []
    for axis, size, k, s, p in zip("HW", shape[2:], kernel, stride, padding):
        if size + 2 * p < k:
            raise ValueError(f"{op}: kernel {kernel} is larger than the padded input "
                             f"({shape[2] + 2 * padding[0]}, {shape[3] + 2 * padding[1]}) "
                             f"of an input of shape {shape}")
        sizes.append((size + 2 * p - k) // s + 1)
    return sizes[0], sizes[1]


def _channels_last_padded(x: np.ndarray, padding: tuple[int, int], fill: float) -> np.ndarray:
    """x (N, C, H, W) as (N, H + 2ph, W + 2pw, C): a view when there is no padding."""
    x = x.transpose(0, 2, 3, 1)
    ph, pw = padding
    if ph == pw == 0:
        return x
    N, H, W, C = x.shape
    padded = np.full((N, H + 2 * ph, W + 2 * pw, C), fill, dtype=x.dtype)
    padded[:, ph:ph + H, pw:pw + W] = x
    return padded


def _window_slices(kernel: tuple[int, int], stride: tuple[int, int], out: tuple[int, int]):
    """For each kernel position (a, b): its index (row-major) and the (rows, columns) slices that
    pick, from the padded input, the pixel at that position of every window."""
    (kh, kw), (sh, sw), (OH, OW) = kernel, stride, out
    for a in range(kh):
        for b in range(kw):
            rows = slice(a, a + sh * (OH - 1) + 1, sh)
            yield a * kw + b, rows, slice(b, b + sw * (OW - 1) + 1, sw)


def _unpad(padded: np.ndarray, shape: tuple[int, ...], padding: tuple[int, int]) -> np.ndarray:
    """The (N, H, W, C) gradient of a padded input cut back to the input and shown as NCHW."""
    (ph, pw), (H, W) = padding, shape[2:]
    return padded[:, ph:ph + H, pw:pw + W].transpose(0, 3, 1, 2)


class Conv2d(Function):
    """Cross-correlation of x (N, C, H, W) with weight (out, C, kh, kw), plus bias (out,).

    `Conv2d.apply(x, weight, bias, stride=1, padding=0)`; bias may be left out. Output
    (N, out, OH, OW) with OH = (H + 2·ph − kh) // sh + 1, and the same for OW.
    """

    rule = ("Y = cols·Wᵀ + b (cols: the input's windows) → grad_W = gradᵀ·cols, "
            "grad_b = Σ grad, grad_X = the windows of grad·W added back into place")

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=1, padding=0):
        stride = pair("conv2d", "stride", stride, 1)
        padding = pair("conv2d", "padding", padding, 0)
        if weight.ndim != 4 or x.ndim != 4 or x.shape[1] != weight.shape[1]:
            raise ValueError(f"conv2d: input of shape {x.shape} (N, C, H, W) does not fit weight "
                             f"of shape {weight.shape} (out_channels, in_channels, kh, kw)")
        out_channels, _, kh, kw = weight.shape
        if bias is not None and bias.shape != (out_channels,):
            raise ValueError(f"conv2d: bias of shape {bias.shape} does not fit weight of shape "
                             f"{weight.shape}: expected ({out_channels},)")
        OH, OW = _geometry("conv2d", x.shape, (kh, kw), stride, padding)
        N, C = x.shape[:2]
        padded = _channels_last_padded(x, padding, 0.0)
        windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::stride[0], ::stride[1]]
        cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(N * OH * OW, kh * kw * C)
        w2 = weight.transpose(0, 2, 3, 1).reshape(out_channels, kh * kw * C)
        out = cols @ w2.T
        if bias is not None:
            out += bias
        ctx.cols, ctx.w2, ctx.x_shape, ctx.w_shape = cols, w2, x.shape, weight.shape
        ctx.stride, ctx.padding, ctx.out_size = stride, padding, (OH, OW)
        return out.reshape(N, OH, OW, out_channels).transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        out_channels, C, kh, kw = ctx.w_shape
        grad2 = grad.transpose(0, 2, 3, 1).reshape(-1, out_channels)   # (N·OH·OW, out)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            N, _, H, W = ctx.x_shape
            (ph, pw), (OH, OW) = ctx.padding, ctx.out_size
            # grad·W, one product per kernel position so that each position's block is
            # contiguous (kh·kw, N, OH, OW, C): the adds below then stream whole rows.
            w_blocks = ctx.w2.reshape(out_channels, kh * kw, C).transpose(1, 0, 2)
            grad_cols = np.matmul(grad2, w_blocks).reshape(kh * kw, N, OH, OW, C)
            padded = np.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=grad_cols.dtype)
            for k, rows, columns in _window_slices((kh, kw), ctx.stride, ctx.out_size):
                padded[:, rows, columns] += grad_cols[k]
            grad_x = _unpad(padded, ctx.x_shape, ctx.padding)
        if ctx.needs_input_grad[1]:
            grad_w = (grad2.T @ ctx.cols).reshape(out_channels, kh, kw, C).transpose(0, 3, 1, 2)
        if len(ctx.needs_input_grad) == 3 and ctx.needs_input_grad[2]:
            # Σ over rows as a product with ones: BLAS does it ten times faster than sum(axis=0)
            grad_b = np.ones(len(grad2), dtype=grad2.dtype) @ grad2
        return (grad_x, grad_w) if len(ctx.needs_input_grad) == 2 else (grad_x, grad_w, grad_b)


def pool_arguments(op: str, kernel_size: Any, stride: Any, padding: Any
                   ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, padding) of a pooling op, checked: stride None means the kernel size,
    and padding may be at most half the kernel (PyTorch's rule: no window all padding)."""
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size "
                         f"{kernel}")
    return kernel, stride, padding


def _pool_geometry(op: str, x: np.ndarray, kernel_size: Any, stride: Any, padding: Any):
    kernel, stride, padding = pool_arguments(op, kernel_size, stride, padding)
    return kernel, stride, padding, _geometry(op, x.shape, kernel, stride, padding)


class MaxPool2d(Function):
    """The maximum of each kernel-sized window of x (N, C, H, W); padding counts as −inf.

    Where a window holds several equal maxima, the first (row-major) takes the gradient, as in
    PyTorch; a NaN in a window makes its output NaN.
    """

    rule = "max over each window → grad to the window's (first) maximal entry"

    @staticmethod
    def forward(ctx, x, kernel_size=2, stride=None, padding=0):
        kernel, stride, padding, out_size = _pool_geometry("max_pool2d", x, kernel_size, stride,
                                                           padding)
        padded = _channels_last_padded(x, padding, -np.inf)
        out = argmax = None
        position = np.min_scalar_type(kernel[0] * kernel[1] - 1)
        for k, rows, columns in _window_slices(kernel, stride, out_size):
            values = padded[:, rows, columns]
            if out is None:
                out, argmax = values.copy(), np.zeros(values.shape, dtype=position)
                continue
            # positions come in increasing order, so the window's argmax is the largest k at
            # which its value grew (a max is ten times faster than a masked assignment)
            np.maximum(argmax, (values > out) * position.type(k), out=argmax)
            np.maximum(out, values, out=out)          # (np.maximum keeps NaNs)
        ctx.argmax, ctx.x_shape, ctx.padded_shape = argmax, x.shape, padded.shape
        ctx.kernel, ctx.stride, ctx.padding, ctx.out_size = kernel, stride, padding, out_size
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.transpose(0, 2, 3, 1)
        padded = np.zeros(ctx.padded_shape, dtype=grad.dtype)
        overlap = ctx.stride[0] < ctx.kernel[0] or ctx.stride[1] < ctx.kernel[1]
        for k, rows, columns in _window_slices(ctx.kernel, ctx.stride, ctx.out_size):
            if overlap:
                padded[:, rows, columns] += (ctx.argmax == k) * grad
            else:                        # each input pixel is in one window: write, don't add
                np.multiply(ctx.argmax == k, grad, out=padded[:, rows, columns])
        return _unpad(padded, ctx.x_shape, ctx.padding)


class AvgPool2d(Function):
    """The mean of each kernel-sized window of x (N, C, H, W); padded zeros count in the mean
    (PyTorch's default `count_include_pad=True`)."""

    rule = "mean over each window → grad / (kh·kw) to every entry of the window"

    @staticmethod
    def forward(ctx, x, kernel_size=2, stride=None, padding=0):
        kernel, stride, padding, out_size = _pool_geometry("avg_pool2d", x, kernel_size, stride,
                                                           padding)
        padded = _channels_last_padded(x, padding, 0.0)
        out = None
        for _, rows, columns in _window_slices(kernel, stride, out_size):
            if out is None:
                out = padded[:, rows, columns].copy()
            else:
                out += padded[:, rows, columns]
        out *= x.dtype.type(1.0 / (kernel[0] * kernel[1]))
        ctx.x_shape, ctx.padded_shape = x.shape, padded.shape
        ctx.kernel, ctx.stride, ctx.padding, ctx.out_size = kernel, stride, padding, out_size
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        share = grad.transpose(0, 2, 3, 1) * grad.dtype.type(1.0 / (ctx.kernel[0] *
                                                                    ctx.kernel[1]))
        padded = np.zeros(ctx.padded_shape, dtype=grad.dtype)
        for _, rows, columns in _window_slices(ctx.kernel, ctx.stride, ctx.out_size):
            padded[:, rows, columns] += share
        return _unpad(padded, ctx.x_shape, ctx.padding)
