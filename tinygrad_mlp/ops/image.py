"""Image ops on NCHW batches: Conv2d by im2col (one batched matrix product each way; depthwise
as kh·kw shifted multiply-adds), MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d.

Im2col lays every kernel-sized window of the (padded) input out as one row, so a convolution is
the blog's Z = X·W once more: `cols (N·OH·OW, kh·kw·C) · Wᵀ (kh·kw·C, out)`; with groups the
rows split into one block per group and the products are one `np.matmul` over a group axis.
Rows hold a window's pixels channel-last, so gathering them and scattering gradients back move
contiguous runs of C values. Backward scatters the columns' gradient into the input with one
strided, vectorised add per kernel position (kh·kw adds, never a loop over pixels): overlapping
windows add up exactly where they overlap. A depthwise convolution (one input channel per
group) has nothing to multiply in a product, so it is kh·kw multiply-adds of strided views.

Outputs are NCHW in shape but channel-last in memory (a transposed view of the product, no copy);
numpy's elementwise ops and these ops keep that layout, and the next convolution reads it
without a copy. Results that are (N, C, H, W) in shape behave the same whatever their memory.
Semantics follow PyTorch's `conv2d`, `max_pool2d`, `avg_pool2d` (`count_include_pad=True`,
floor of the output size) and `adaptive_*_pool2d`; padding="same" follows TF/Keras (any stride,
the odd pixel after); the tests compare values and gradients with PyTorch.

Every op keeps its geometry on its ctx for readers such as export: `kernel`, `stride`,
`padding` as ((top, bottom), (left, right)), `dilation`, `groups`, `out_size`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinygrad_mlp._checks import is_int
from tinygrad_mlp.tensor import Function, config

Pads = tuple[tuple[int, int], tuple[int, int]]      # ((top, bottom), (left, right))


def pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (tuple or list), each ≥ minimum, as (along H, along W).

    Public so that the layers (nn.Conv2d, …) check their arguments at construction the same way.
    """
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(is_int(v) and v >= minimum for v in pair):
        raise ValueError(f"{op}: {name} must be an int ≥ {minimum} or a pair of them, "
                         f"got {value!r}")
    return int(pair[0]), int(pair[1])


def padding_argument(op: str, padding: Any) -> tuple[int, int] | str:
    """padding checked: "same", "valid", or an int or pair of ints ≥ 0 (as a pair)."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be an int, a pair of ints, 'valid' or "
                             f"'same', got {padding!r}")
        return padding
    return pair(op, "padding", padding, 0)


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(before, after) of TF/Keras's "same": the output has ceil(size / stride) entries and,
    when the total is odd, the extra one goes after (PyTorch's rule too, for stride 1)."""
    total = max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding: tuple[int, int] | str, spatial: tuple[int, ...],
                    kernel: tuple[int, int], stride: tuple[int, int],
                    dilation: tuple[int, int] = (1, 1)) -> Pads:
    """A checked padding argument as ((top, bottom), (left, right)) for an input of size
    `spatial` (H, W)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        h, w = (same_padding(*args) for args in zip(spatial, kernel, stride, dilation))
        return h, w
    return (padding[0], padding[0]), (padding[1], padding[1])


def output_size(op: str, shape: tuple[int, ...], kernel: tuple[int, int],
                stride: tuple[int, int], padding: Pads,
                dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """(OH, OW) of a window sliding over an (N, C, H, W) input, or a ValueError naming the op
    (a layer passes its own name), the input's shape and why not."""
    if len(shape) != 4:
        raise ValueError(f"{op}: expected an input of shape (N, C, H, W), got {shape}")
    padded = tuple(size + sum(p) for size, p in zip(shape[2:], padding))
    extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    if padded[0] < extent[0] or padded[1] < extent[1]:
        dilated = "" if extent == kernel else f" (dilated to {extent})"
        raise ValueError(f"{op}: kernel {kernel}{dilated} is larger than the padded input "
                         f"{padded} of an input of shape {tuple(shape)}")
    return tuple((p - e) // s + 1 for p, e, s in zip(padded, extent, stride))


def _channels_last_padded(x: np.ndarray, padding: Pads, fill: float) -> np.ndarray:
    """x (N, C, H, W) as (N, top + H + bottom, left + W + right, C): a view when unpadded."""
    x = x.transpose(0, 2, 3, 1)
    (top, bottom), (left, right) = padding
    if top == bottom == left == right == 0:
        return x
    N, H, W, C = x.shape
    padded = np.full((N, top + H + bottom, left + W + right, C), fill, dtype=x.dtype)
    padded[:, top:top + H, left:left + W] = x
    return padded


def _window_slices(kernel: tuple[int, int], stride: tuple[int, int], out: tuple[int, int],
                   dilation: tuple[int, int] = (1, 1)):
    """For each kernel position (a, b): its index (row-major) and the (rows, columns) slices that
    pick, from the padded input, the pixel at that position of every window."""
    (kh, kw), (sh, sw), (OH, OW), (dh, dw) = kernel, stride, out, dilation
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dh, a * dh + sh * (OH - 1) + 1, sh)
            yield a * kw + b, rows, slice(b * dw, b * dw + sw * (OW - 1) + 1, sw)


def _unpad(padded: np.ndarray, shape: tuple[int, ...], padding: Pads) -> np.ndarray:
    """The (N, H, W, C) gradient of a padded input cut back to the input and shown as NCHW."""
    ((top, _), (left, _)), (H, W) = padding, shape[2:]
    return padded[:, top:top + H, left:left + W].transpose(0, 3, 1, 2)


def _ones_product(rows: np.ndarray) -> np.ndarray:
    """Σ over the rows of a 2-D array as a product with ones: BLAS does it ten times faster
    than sum(axis=0)."""
    return np.ones(len(rows), dtype=rows.dtype) @ rows


class Conv2d(Function):
    """Cross-correlation of x (N, C, H, W) with weight (out, C // groups, kh, kw), plus bias (out,).

    `Conv2d.apply(x, weight, bias, stride=1, padding=0, dilation=1, groups=1)`; bias may be left
    out; padding an int, a pair, "valid" or "same". Output (N, out, OH, OW) with
    OH = (H + top + bottom − dh·(kh − 1) − 1) // sh + 1, and the same for OW. Input channel
    group g (of C // groups channels) makes output channels g·out/groups … (g + 1)·out/groups − 1.
    """

    rule = ("Y = cols·Wᵀ + b (cols: the input's windows) → grad_W = gradᵀ·cols, "
            "grad_b = Σ grad, grad_X = the windows of grad·W added back into place")

    @staticmethod
    def forward(ctx, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        stride = pair("conv2d", "stride", stride, 1)
        dilation = pair("conv2d", "dilation", dilation, 1)
        padding = padding_argument("conv2d", padding)
        if not is_int(groups) or groups < 1:
            raise ValueError(f"conv2d: groups must be an int ≥ 1, got {groups!r}")
        if (weight.ndim != 4 or x.ndim != 4 or x.shape[1] % groups or weight.shape[0] % groups
                or x.shape[1] // groups != weight.shape[1]):
            raise ValueError(f"conv2d: input of shape {x.shape} (N, C, H, W) does not fit weight "
                             f"of shape {weight.shape} (out_channels, in_channels // groups, "
                             f"kh, kw) with groups={groups}")
        out_channels, _, kh, kw = weight.shape
        if bias is not None and bias.shape != (out_channels,):
            raise ValueError(f"conv2d: bias of shape {bias.shape} does not fit weight of shape "
                             f"{weight.shape}: expected ({out_channels},)")
        padding = resolve_padding(padding, x.shape[2:], (kh, kw), stride, dilation)
        OH, OW = output_size("conv2d", x.shape, (kh, kw), stride, padding, dilation)
        ctx.kernel, ctx.stride, ctx.padding, ctx.dilation = (kh, kw), stride, padding, dilation
        ctx.groups, ctx.out_size, ctx.x_shape, ctx.w_shape = groups, (OH, OW), x.shape, weight.shape
        padded = _channels_last_padded(x, padding, 0.0)
        if groups > 1 and groups == x.shape[1]:
            out = _depthwise_forward(ctx, padded, weight)
        else:
            out = _im2col_forward(ctx, padded, weight)
        if bias is not None:
            out += bias
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.transpose(0, 2, 3, 1).reshape(-1, grad.shape[1])   # (N·OH·OW, out), once
        needs = ctx.needs_input_grad
        if ctx.groups > 1 and ctx.groups == ctx.x_shape[1]:
            grad_x, grad_w = _depthwise_backward(ctx, grad, needs[0], needs[1])
        else:
            grad_x, grad_w = _im2col_backward(ctx, grad, needs[0], needs[1])
        if len(needs) == 2:
            return grad_x, grad_w
        grad_b = _ones_product(grad) if needs[2] else None
        return grad_x, grad_w, grad_b


def _im2col_forward(ctx, padded: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(N, OH, OW, out) = cols (G, N·OH·OW, kh·kw·C/G) · W (G, kh·kw·C/G, out/G), one matmul."""
    (kh, kw), (dh, dw), (sh, sw), G = ctx.kernel, ctx.dilation, ctx.stride, ctx.groups
    N, C, out_channels = padded.shape[0], padded.shape[3], weight.shape[0]
    (OH, OW), Cg = ctx.out_size, C // G
    extent = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    windows = sliding_window_view(padded, extent, axis=(1, 2))[:, ::sh, ::sw, :, ::dh, ::dw]
    windows = windows.reshape(N, OH, OW, G, Cg, kh, kw)       # (splitting an axis: a view)
    cols = windows.transpose(3, 0, 1, 2, 5, 6, 4).reshape(G, N * OH * OW, kh * kw * Cg)
    w2 = weight.reshape(G, out_channels // G, Cg, kh, kw).transpose(0, 1, 3, 4, 2).reshape(
        G, out_channels // G, kh * kw * Cg)                    # (G, out/G, kh·kw·Cg)
    ctx.cols, ctx.w2 = cols, w2
    out = np.matmul(cols, w2.transpose(0, 2, 1))               # (G, N·OH·OW, out/G)
    out = out[0] if G == 1 else out.transpose(1, 0, 2).reshape(-1, out_channels)
    return out.reshape(N, OH, OW, out_channels)


def _im2col_backward(ctx, grad: np.ndarray, need_x: bool, need_w: bool):
    N, C, H, W = ctx.x_shape
    (kh, kw), G, (OH, OW) = ctx.kernel, ctx.groups, ctx.out_size
    out_channels, Cg = ctx.w_shape[0], C // G
    grad3 = grad.reshape(N * OH * OW, G, out_channels // G).transpose(1, 0, 2)   # (G, M, out/G)
    grad_x = grad_w = None
    if need_x:
        # grad·W, one product per (kernel position, group) so that each position's block is
        # contiguous (kh·kw, G, N·OH·OW, Cg): the adds below then stream whole rows.
        w_blocks = ctx.w2.reshape(G, out_channels // G, kh * kw, Cg).transpose(2, 0, 1, 3)
        grad_cols = np.matmul(grad3, w_blocks)                # (kh·kw, G, M, Cg)
        grad_cols = grad_cols.reshape(kh * kw, G, N, OH, OW, Cg).transpose(0, 2, 3, 4, 1, 5)
        (top, bottom), (left, right) = ctx.padding
        padded = np.zeros((N, top + H + bottom, left + W + right, G, Cg), dtype=grad.dtype)
        for k, rows, columns in _window_slices(ctx.kernel, ctx.stride, ctx.out_size,
                                               ctx.dilation):
            padded[:, rows, columns] += grad_cols[k]
        grad_x = _unpad(padded.reshape(*padded.shape[:3], C), ctx.x_shape, ctx.padding)
    if need_w:
        grad_w = np.matmul(grad3.transpose(0, 2, 1), ctx.cols)   # (G, out/G, kh·kw·Cg)
        grad_w = grad_w.reshape(out_channels, kh, kw, Cg).transpose(0, 3, 1, 2)
    return grad_x, grad_w


_CACHE_BYTES = 2 ** 18     # a depthwise layer's work goes in batch chunks of about this size


def _batch_chunks(N: int, bytes_per_sample: int):
    """Slices of the batch axis whose outputs fit the cache budget: the kh·kw passes of a
    depthwise layer then stay in cache instead of streaming the whole batch from memory kh·kw
    times (1.7× faster at batch 64; one chunk for a single image)."""
    chunk = max(1, _CACHE_BYTES // max(bytes_per_sample, 1))
    return [slice(start, start + chunk) for start in range(0, N, chunk)]


def _depthwise_forward(ctx, padded: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """One input channel per group: out[..., c, j] = Σ_(a, b) x_ab[..., c] · w[c·m + j, 0, a, b],
    kh·kw multiply-adds of the strided views x_ab (N, OH, OW, C) of the padded input."""
    N, C, (OH, OW) = padded.shape[0], padded.shape[3], ctx.out_size
    m = ctx.w_shape[0] // C                                   # the depth multiplier
    taps = weight.reshape(C, m, -1)                           # (C, m, kh·kw)
    ctx.padded, ctx.taps = padded, taps
    out = np.empty((N, OH, OW, C, m), dtype=padded.dtype)
    for batch in _batch_chunks(N, out[0].nbytes):
        part = out[batch]
        term = np.empty_like(part)
        for k, view, tap in _depthwise_taps(ctx, padded[batch], taps):
            shaped = (part if k == 0 else term).reshape(*view.shape[:-1], -1)
            np.multiply(view, tap, out=shaped)
            if k:
                part += term
    return out.reshape(N, OH, OW, C * m)


def _depthwise_taps(ctx, padded: np.ndarray, taps: np.ndarray):
    """For each kernel position k: (k, the input's view x_k, the weights it is multiplied by),
    shaped so that x_k · weights has the output's shape. With one filter per channel and a
    horizontal stride of 1 the views are (N, OH, OW·C) and the weights a row of OW·C (each
    channel's tap repeated per column), so numpy's loops run along whole rows instead of C
    values at a time (a depthwise layer has few channels: 3× faster)."""
    N, C, (OH, OW) = padded.shape[0], padded.shape[3], ctx.out_size
    rows_of_pixels = taps.shape[1] == 1 and ctx.stride[1] == 1
    if rows_of_pixels:
        tiled = np.tile(taps[:, 0, :].T, (1, OW))             # (kh·kw, OW·C)
    for k, rows, columns in _window_slices(ctx.kernel, ctx.stride, ctx.out_size, ctx.dilation):
        view = padded[:, rows, columns]
        if rows_of_pixels:
            yield k, view.reshape(N, OH, OW * C), tiled[k]    # (a row of pixels: a view)
        else:
            yield k, view[..., None], taps[:, :, k]


def _depthwise_backward(ctx, grad: np.ndarray, need_x: bool, need_w: bool):
    N, C, H, W = ctx.x_shape
    m, (OH, OW) = ctx.w_shape[0] // C, ctx.out_size
    grad5 = grad.reshape(N, OH, OW, C, m)
    padded = np.zeros(ctx.padded.shape, dtype=grad.dtype) if need_x else None
    grad_taps = np.zeros(ctx.taps.shape, dtype=grad.dtype) if need_w else None
    for batch in _batch_chunks(N, grad5[0].nbytes):
        inputs = list(_depthwise_taps(ctx, ctx.padded[batch], ctx.taps))
        targets = ([view for _, view, _ in _depthwise_taps(ctx, padded[batch], ctx.taps)]
                   if need_x else [None] * len(inputs))      # views of the input's gradient
        for (k, view, tap), target in zip(inputs, targets):
            G = grad5[batch].reshape(*view.shape[:-1], -1)
            if need_x:
                term = G * tap
                target += term if m == 1 else term.sum(axis=-1, keepdims=True)
            if need_w:
                term = view * G                               # (n, OH, OW, C, m) in memory
                grad_taps[:, :, k] += _ones_product(term.reshape(-1, C * m)).reshape(C, m)
    grad_x = _unpad(padded, ctx.x_shape, ctx.padding) if need_x else None
    grad_w = grad_taps.reshape(ctx.w_shape) if need_w else None
    return grad_x, grad_w


# --- pooling ----------------------------------------------------------------------------------

def pool_arguments(op: str, kernel_size: Any, stride: Any, padding: Any
                   ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int] | str]:
    """(kernel, stride, padding) of a pooling op, checked: stride None means the kernel size;
    padding is "same", "valid", or at most half the kernel (PyTorch's rule: no window all
    padding; "same" never makes one either)."""
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(op, "stride", stride, 1)
    padding = padding_argument(op, padding)
    if not isinstance(padding, str) and (padding[0] > kernel[0] // 2 or
                                         padding[1] > kernel[1] // 2):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel size "
                         f"{kernel}")
    return kernel, stride, padding


def _pool_geometry(ctx, op: str, x: np.ndarray, kernel_size: Any, stride: Any,
                   padding: Any) -> None:
    """Checks the arguments and keeps the geometry on ctx: kernel, stride, padding, out_size."""
    kernel, stride, padding = pool_arguments(op, kernel_size, stride, padding)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected an input of shape (N, C, H, W), got {x.shape}")
    ctx.same = padding == "same"
    padding = resolve_padding(padding, x.shape[2:], kernel, stride)
    ctx.kernel, ctx.stride, ctx.padding = kernel, stride, padding
    ctx.out_size = output_size(op, x.shape, kernel, stride, padding)
    ctx.x_shape = x.shape


class MaxPool2d(Function):
    """The maximum of each kernel-sized window of x (N, C, H, W); padding counts as −inf
    (padding may be "same", TF's rule).

    Where a window holds several equal maxima, the first (row-major) takes the gradient, as in
    PyTorch; a NaN in a window makes its output NaN.
    """

    rule = "max over each window → grad to the window's (first) maximal entry"

    @staticmethod
    def forward(ctx, x, kernel_size=2, stride=None, padding=0):
        _pool_geometry(ctx, "max_pool2d", x, kernel_size, stride, padding)
        padded = _channels_last_padded(x, ctx.padding, -np.inf)
        out = argmax = None
        position = np.min_scalar_type(ctx.kernel[0] * ctx.kernel[1] - 1)
        track = ctx.needs_input_grad[0] and config.grad_enabled   # (no_grad: values only)
        for k, rows, columns in _window_slices(ctx.kernel, ctx.stride, ctx.out_size):
            values = padded[:, rows, columns]
            if out is None:
                out = values.copy()
                argmax = np.zeros(values.shape, dtype=position) if track else None
                continue
            if not track:
                np.maximum(out, values, out=out)
                continue
            # positions come in increasing order, so the window's argmax is the largest k at
            # which its value grew (a max is ten times faster than a masked assignment)
            np.maximum(argmax, (values > out) * position.type(k), out=argmax)
            np.maximum(out, values, out=out)          # (np.maximum keeps NaNs)
        ctx.argmax, ctx.padded_shape = argmax, padded.shape
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


def _real_counts(size: int, kernel: int, stride: int, before: int, out: int) -> np.ndarray:
    """How many entries of each window along one axis lie inside the input (not padding)."""
    starts = np.arange(out) * stride - before
    return np.minimum(starts + kernel, size) - np.maximum(starts, 0)


class AvgPool2d(Function):
    """The mean of each kernel-sized window of x (N, C, H, W). With an int padding, padded zeros
    count in the mean (PyTorch's default `count_include_pad=True`); with padding="same" the
    mean is over the window's real entries only (Keras's rule)."""

    rule = "mean over each window → grad / (window size) to every entry of the window"

    @staticmethod
    def forward(ctx, x, kernel_size=2, stride=None, padding=0):
        _pool_geometry(ctx, "avg_pool2d", x, kernel_size, stride, padding)
        padded = _channels_last_padded(x, ctx.padding, 0.0)
        out = None
        for _, rows, columns in _window_slices(ctx.kernel, ctx.stride, ctx.out_size):
            if out is None:
                out = padded[:, rows, columns].copy()
            else:
                out += padded[:, rows, columns]
        if ctx.same:                      # (OH, OW, 1): the real entries of each window
            counts = [_real_counts(size, k, s, p[0], o) for size, k, s, p, o in
                      zip(x.shape[2:], ctx.kernel, ctx.stride, ctx.padding, ctx.out_size)]
            ctx.scale = (1.0 / np.multiply.outer(*counts)).astype(x.dtype)[:, :, None]
        else:
            ctx.scale = x.dtype.type(1.0 / (ctx.kernel[0] * ctx.kernel[1]))
        out *= ctx.scale
        ctx.padded_shape = padded.shape
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        share = grad.transpose(0, 2, 3, 1) * ctx.scale
        padded = np.zeros(ctx.padded_shape, dtype=grad.dtype)
        for _, rows, columns in _window_slices(ctx.kernel, ctx.stride, ctx.out_size):
            padded[:, rows, columns] += share
        return _unpad(padded, ctx.x_shape, ctx.padding)


# --- adaptive pooling -------------------------------------------------------------------------

def adaptive_output_size(op: str, output_size: Any) -> tuple[int | None, int | None]:
    """An int ≥ 1 or a pair of them (None in a pair keeps the input's size, as in PyTorch)."""
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(sizes) != 2 or not all(s is None or (is_int(s) and s >= 1) for s in sizes):
        raise ValueError(f"{op}: output_size must be an int ≥ 1 or a pair of them (None keeps "
                         f"the input's size), got {output_size!r}")
    return tuple(None if s is None else int(s) for s in sizes)


def adaptive_bins(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of PyTorch's `out` adaptive bins over `size` entries: bin i covers
    [floor(i·size/out), ceil((i + 1)·size/out)). Public: the exports build the same bins."""
    return (np.arange(out) * size) // out, -((-(np.arange(out) + 1) * size) // out)


def _adaptive_geometry(ctx, op: str, x: np.ndarray, output_size: Any) -> None:
    """Keeps on ctx out_size and, per axis, PyTorch's bins: bin i covers
    [floor(i·size/out), ceil((i + 1)·size/out))."""
    sizes = adaptive_output_size(op, output_size)
    if x.ndim != 4 or 0 in x.shape[2:]:
        raise ValueError(f"{op}: expected an input of shape (N, C, H, W) with H, W ≥ 1, got "
                         f"{x.shape}")
    ctx.out_size = tuple(size if out is None else out for size, out in zip(x.shape[2:], sizes))
    ctx.bins = [adaptive_bins(size, out) for size, out in zip(x.shape[2:], ctx.out_size)]
    ctx.x_shape = x.shape


class AdaptiveAvgPool2d(Function):
    """The mean of each of output_size bins of x (N, C, H, W) → (N, C, OH, OW); output_size 1 is
    global average pooling. As two small products: out = A_H · x · A_Wᵀ, A's rows averaging
    one bin each."""

    rule = "Y = A_H·X·A_Wᵀ (A: each bin's mean) → grad_X = A_Hᵀ·grad·A_W"

    @staticmethod
    def forward(ctx, x, output_size=1):
        _adaptive_geometry(ctx, "adaptive_avg_pool2d", x, output_size)
        ctx.means = []
        for (starts, ends), size in zip(ctx.bins, x.shape[2:]):
            inside = (np.arange(size) >= starts[:, None]) & (np.arange(size) < ends[:, None])
            ctx.means.append((inside / (ends - starts)[:, None]).astype(x.dtype))   # (out, size)
        A_H, A_W = ctx.means
        if ctx.out_size == (1, 1):                 # global pooling: a mean, no products
            return x.mean(axis=(2, 3), keepdims=True)
        return np.tensordot(np.tensordot(x, A_H, axes=([2], [1])), A_W, axes=([2], [1]))

    @staticmethod
    def backward(ctx, grad):
        A_H, A_W = ctx.means
        if ctx.out_size == (1, 1):
            return np.broadcast_to(grad * (A_H[0, 0] * A_W[0, 0]), ctx.x_shape)
        rows = np.tensordot(grad, A_W, axes=([3], [0]))                   # (N, C, OH, W)
        return np.tensordot(rows, A_H, axes=([2], [0])).transpose(0, 1, 3, 2)


class AdaptiveMaxPool2d(Function):
    """The maximum of each of output_size bins of x (N, C, H, W) → (N, C, OH, OW); output_size 1
    is global max pooling. Ties: the first maximum (row-major) takes the gradient."""

    rule = "max over each bin → grad to the bin's (first) maximal entry"

    @staticmethod
    def forward(ctx, x, output_size=1):
        _adaptive_geometry(ctx, "adaptive_max_pool2d", x, output_size)
        N, C, H, W = x.shape
        (OH, OW), ((h0, h1), (w0, w1)) = ctx.out_size, ctx.bins
        # each bin's rows and columns, padded to the widest bin by repeating its last one
        # (a repeat is never a new maximum, so the first maximum keeps its place)
        rows = np.minimum(h0[:, None] + np.arange((h1 - h0).max()), h1[:, None] - 1)
        columns = np.minimum(w0[:, None] + np.arange((w1 - w0).max()), w1[:, None] - 1)
        windows = x[:, :, rows[:, None, :, None], columns[None, :, None, :]]   # N C OH OW r c
        windows = windows.reshape(N, C, OH, OW, -1)
        local = windows.argmax(axis=-1)[..., None]
        out = np.take_along_axis(windows, local, axis=-1)[..., 0]
        r, c = np.divmod(local[..., 0], columns.shape[1])
        spatial = (rows[np.arange(OH)[:, None], r] * W +
                   columns[np.arange(OW)[None, :], c])             # (N, C, OH, OW) into H·W
        ctx.flat = spatial + (np.arange(N * C) * (H * W)).reshape(N, C, 1, 1)
        return out

    @staticmethod
    def backward(ctx, grad):
        total = math.prod(ctx.x_shape)
        flat = np.bincount(ctx.flat.ravel(), weights=grad.ravel(), minlength=total)
        return flat.astype(grad.dtype, copy=False).reshape(ctx.x_shape)
