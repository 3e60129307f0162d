"""Hand-written numpy: the blog's formulas written once, plainly. The baseline every ratio uses.

One step on a batch (X_b, Y_b) of n rows, biases included because the frameworks use them:
    Z1 = X·W1 + b1, a1 = σ(Z1), Z2 = a1·W2 + b2, a2 = softmax(Z2), J = −1/n Σ log a2[y]
    δ2 = (a2 − Y)/n, δ1 = δ2·W2ᵀ · a1(1 − a1)
    ∂J/∂W2 = a1ᵀ·δ2, ∂J/∂b2 = Σ δ2, ∂J/∂W1 = X_bᵀ·δ1, ∂J/∂b1 = Σ δ1, W ← W − α ∂J/∂W (in place)
"""

from __future__ import annotations

import numpy as np

from benchmarks import conv
from benchmarks.common import NotApplicable, Runner
from benchmarks.workloads import CONV_KEYS


def sigmoid(Z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-Z))


def forward(X, W1, b1, W2, b2):
    """(a1, a2) of the blog's network with a softmax output."""
    a1 = sigmoid(X @ W1 + b1)
    Z2 = a1 @ W2 + b2
    e = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
    return a1, e / e.sum(axis=1, keepdims=True)


def step(X, Y, y, params, lr):
    """One SGD step on a batch; returns the batch's cross-entropy J before the update."""
    W1, b1, W2, b2 = params
    n = len(X)
    a1, a2 = forward(X, W1, b1, W2, b2)
    J = -np.log(a2[np.arange(n), y]).mean()
    delta2 = (a2 - Y) / n
    delta1 = (delta2 @ W2.T) * a1 * (1 - a1)
    W2 -= lr * (a1.T @ delta2)
    b2 -= lr * delta2.sum(axis=0)
    W1 -= lr * (X.T @ delta1)
    b1 -= lr * delta1.sum(axis=0)
    return J


class NumpyRunner(Runner):
    """The blog's step (W1–W4), the chain's forward and backward (W5), W6's twin, and W7's
    im2col step (benchmarks/conv.py)."""

    def __init__(self, wl, data):
        super().__init__(wl, data)
        self.keys = CONV_KEYS if wl.kind == "conv" else ("W1", "b1", "W2", "b2")
        if wl.kind in ("train", "infer", "conv"):
            self.params = [np.empty_like(data["params"][k]) for k in self.keys]

    def reset(self):
        if self.wl.kind not in ("train", "infer", "conv"):
            return
        for p, k in zip(self.params, self.keys):
            p[...] = self.data["params"][k]

    def train(self, batches, lr):
        X, Y, y = self.data["X"], self.data["Y"], self.data["y"]
        train_step = conv.step if self.wl.kind == "conv" else step
        for idx in batches:
            J = train_step(X[idx], Y[idx], y[idx], self.params, lr)
        return float(J)

    def loss(self, idx):
        X = self.data["X"][idx]
        if self.wl.kind == "conv":
            a2 = conv.softmax(conv.forward(X, self.params)[0])
        else:
            a2 = forward(X, *self.params)[1]
        return float(-np.log(a2[np.arange(len(idx)), self.data["y"][idx]]).mean())

    def infer(self):
        X, b = self.data["X"], self.wl.batch
        return np.concatenate([forward(X[i:i + b], *self.params)[1] for i in range(0, len(X), b)])

    def chain(self, x):
        """The chain's forward, keeping each σ output, then its hand-written backward."""
        h, saved = x, []
        for _ in range(self.wl.n_ops // 4):
            h = sigmoid(h * 1.0001 + 0.1)
            saved.append(h)
            h = h - 0.5
        grad = np.ones_like(h)                  # d(sum)/dh
        for s in reversed(saved):
            grad = grad * s * (1 - s) * 1.0001   # through −0.5, σ, +0.1, ×1.0001
        return grad

    def digits(self):
        from benchmarks.digits import run_numpy
        return run_numpy(self.wl)


class BlasBoundRunner(Runner):
    """Only the matrix products of the hand-written step, at the same shapes, on preallocated
    arrays (`out=`): the time BLAS alone needs for the workload, measured like the others."""

    def __init__(self, wl, data):
        super().__init__(wl, data)
        if wl.kind not in ("train", "infer"):
            raise NotApplicable
        rows = wl.N if wl.batch is None else wl.batch
        rng = np.random.default_rng(0)
        self.X = rng.random((rows, wl.D), dtype=np.float32)
        self.a1 = rng.random((rows, wl.M), dtype=np.float32)
        self.delta2 = rng.random((rows, wl.K), dtype=np.float32)
        self.delta1 = np.empty((rows, wl.M), np.float32)
        self.Z2 = np.empty((rows, wl.K), np.float32)
        self.W1 = rng.random((wl.D, wl.M), dtype=np.float32)
        self.W2 = rng.random((wl.M, wl.K), dtype=np.float32)
        self.dW1, self.dW2 = np.empty_like(self.W1), np.empty_like(self.W2)

    def run(self):
        if self.wl.kind == "infer":
            sizes = [len(self.data["X"][i:i + self.wl.batch])
                     for i in range(0, self.wl.N, self.wl.batch)]
        else:
            sizes = [len(idx) for idx in self.data["batches"]]
        W1, W2, train = self.W1, self.W2, self.wl.kind == "train"
        for n in sizes:
            X, a1, delta1, delta2 = self.X[:n], self.a1[:n], self.delta1[:n], self.delta2[:n]
            np.matmul(X, W1, out=delta1)                 # Z1 = X·W1
            np.matmul(a1, W2, out=self.Z2[:n])           # Z2 = a1·W2
            if train:
                np.matmul(delta2, W2.T, out=delta1)      # δ2·W2ᵀ
                np.matmul(a1.T, delta2, out=self.dW2)    # a1ᵀ·δ2
                np.matmul(X.T, delta1, out=self.dW1)     # Xᵀ·δ1

    def check(self):
        raise NotApplicable
