"""W7's hand-written numpy baseline: a convolutional SGD step with im2col, written plainly.

The network (FER-shaped): x (n, 1, 48, 48) → conv3×3(32) → ReLU → maxpool 2 → conv3×3(64) →
ReLU → maxpool 2 → flatten (n, 6400) → linear(7) → softmax, cross-entropy, plain SGD.
A convolution is one matrix product on the im2col matrix (each row one 3×3 window of every
input channel); its backward is two (weight, input) and the input gradient is scattered back
(col2im) with one slice-add per kernel position.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def im2col(x: np.ndarray, k: int) -> np.ndarray:
    """(n, C, H, W) → (n·OH·OW, C·k·k), OH = H − k + 1: one row per output position."""
    n, C, H, W = x.shape
    windows = sliding_window_view(x, (k, k), axis=(2, 3))      # (n, C, OH, OW, k, k), a view
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * (H - k + 1) * (W - k + 1), C * k * k)


def conv_forward(x, w, b):
    """Valid cross-correlation, stride 1 (PyTorch's Conv2d): returns (out (n, O, OH, OW), cols)."""
    n, _, H, W = x.shape
    O, k = w.shape[0], w.shape[2]
    cols = im2col(x, k)
    out = cols @ w.reshape(O, -1).T + b
    return out.reshape(n, H - k + 1, W - k + 1, O).transpose(0, 3, 1, 2), cols


def conv_backward(grad, cols, w, x_shape, input_grad=True):
    """(∂w, ∂b, ∂x or None) of conv_forward, from grad (n, O, OH, OW)."""
    n, C, H, W = x_shape
    O, k = w.shape[0], w.shape[2]
    OH, OW = grad.shape[2:]
    g = grad.transpose(0, 2, 3, 1).reshape(-1, O)
    dw, db = (g.T @ cols).reshape(w.shape), g.sum(axis=0)
    if not input_grad:
        return dw, db, None
    dcols = (g @ w.reshape(O, -1)).reshape(n, OH, OW, C, k, k).transpose(0, 3, 4, 5, 1, 2)
    dx = np.zeros(x_shape, dtype=grad.dtype)
    for i in range(k):
        for j in range(k):
            dx[:, :, i:i + OH, j:j + OW] += dcols[:, :, i, j]
    return dw, db, dx


def maxpool2(x):
    """2×2 max pooling, stride 2 (odd edges dropped): returns (out, mask of the maxima)."""
    n, C, H, W = x.shape
    windows = x[:, :, :H // 2 * 2, :W // 2 * 2].reshape(n, C, H // 2, 2, W // 2, 2)
    out = windows.max(axis=(3, 5))
    return out, windows == out[:, :, :, None, :, None]


def maxpool2_backward(grad, mask, x_shape):
    n, C, H, W = x_shape
    dx = np.zeros(x_shape, dtype=grad.dtype)
    dx[:, :, :H // 2 * 2, :W // 2 * 2] = (mask * grad[:, :, :, None, :, None]).reshape(
        n, C, H // 2 * 2, W // 2 * 2)
    return dx


def forward(x, params):
    """Logits (n, K) and what the backward pass needs."""
    c1w, c1b, c2w, c2b, fw, fb = params
    z1, cols1 = conv_forward(x, c1w, c1b)
    r1 = np.maximum(z1, 0)
    p1, mask1 = maxpool2(r1)
    z2, cols2 = conv_forward(p1, c2w, c2b)
    r2 = np.maximum(z2, 0)
    p2, mask2 = maxpool2(r2)
    flat = p2.reshape(len(x), -1)
    return flat @ fw + fb, (cols1, r1, mask1, p1, cols2, r2, mask2, flat)


def softmax(Z):
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def step(x, Y, y, params, lr):
    """One SGD step on a batch; returns the batch's cross-entropy before the update."""
    c1w, c1b, c2w, c2b, fw, fb = params
    n = len(x)
    logits, (cols1, r1, mask1, p1, cols2, r2, mask2, flat) = forward(x, params)
    a = softmax(logits)
    J = -np.log(a[np.arange(n), y]).mean()
    delta = (a - Y) / n
    dflat = delta @ fw.T
    dfw, dfb = flat.T @ delta, delta.sum(axis=0)
    dr2 = maxpool2_backward(dflat.reshape(mask2.shape[:3] + mask2.shape[4:5]), mask2, r2.shape)
    dc2w, dc2b, dp1 = conv_backward(dr2 * (r2 > 0), cols2, c2w, p1.shape)
    dr1 = maxpool2_backward(dp1, mask1, r1.shape)
    dc1w, dc1b, _ = conv_backward(dr1 * (r1 > 0), cols1, c1w, x.shape, input_grad=False)
    for p, g in zip(params, (dc1w, dc1b, dc2w, dc2b, dfw, dfb)):
        p -= lr * g
    return J
