"""The workloads W1–W7: their sizes, their synthetic data, the shared initial weights, their FLOPs.

Every implementation gets the same arrays from here (float32 X, int64 class labels, the same
initial weights and the same shuffled batch order), so a difference in time is a difference in
the framework, not in the problem. No downloads: the data is a seeded, learnable synthetic
problem (labels are the argmax of a random linear map of X), except W6 which uses the digits
bundled with tinygrad_mlp.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

SEED = 1234


@dataclasses.dataclass
class Workload:
    """One benchmark problem. kind: "train" (W1–W3), "infer" (W4), "chain" (W5), "digits" (W6),
    "conv" (W7: N images of 1×S×S, D = S, M = the two conv widths' first, K classes),
    "vision_infer" / "vision_train" (W8 / W9: the pretrained FER model on N = batch faces).
    `base`: the implementation the ratios are to (numpy; PyTorch where numpy has no version)."""

    key: str
    title: str
    kind: str
    N: int = 0
    D: int = 0
    M: int = 0
    K: int = 0
    batch: int | None = None      # None: the whole set in one batch (full-batch GD)
    epochs: int = 1
    shuffle: bool = False
    lr: float = 0.1
    n_ops: int = 0                # W5: length of the elementwise chain
    base: str = "numpy"

    @property
    def heading(self) -> str:
        """The title and, unless numpy, what the ratios are to (the table and the JSON show it)."""
        return self.title if self.base == "numpy" else f"{self.title} (ratios to {self.base})"

    def describe(self) -> str:
        if self.kind == "chain":
            return f"{self.n_ops} elementwise ops on (16,16), forward + backward"
        if self.kind == "digits":
            return "tinygrad-mlp train's default run on the bundled digits"
        if self.kind == "conv":
            return (f"N={self.N:,} images 1×{self.D}×{self.D}, conv3×3({CONV_WIDTHS[0]})-relu-"
                    f"pool2-conv3×3({CONV_WIDTHS[1]})-relu-pool2-linear({self.K}), "
                    f"batch {self.batch}, 1 epoch, shuffled")
        if self.kind == "vision_infer":
            return (f"tm.fer.pretrained() mini-Xception, batch of {self.N} faces 1×64×64, "
                    f"no_grad, eval mode; torch twin from tm.export.to_torch")
        if self.kind == "vision_train":
            return (f"tm.fer.pretrained() mini-Xception, one Adam step (lr 1e-3) on "
                    f"cross-entropy, batch {self.N}, train mode; torch twin from to_torch")
        shape = f"N={self.N:,} {self.D}-{self.M}-{self.K}"
        if self.kind == "infer":
            return f"{shape}, batches of {self.batch:,}, no_grad"
        how = "full batch" if self.batch is None else f"batch {self.batch}"
        unit = "iterations" if self.batch is None else ("epoch" if self.epochs == 1 else "epochs")
        return f"{shape}, {how}, {self.epochs} {unit}{', shuffled' if self.shuffle else ''}"


def workloads(quick: bool = False) -> dict[str, Workload]:
    """The suite. `quick` shrinks N and iteration counts (same shapes per step) for CI."""
    n = 2_000 if quick else 10_000
    return {
        "W1": Workload("W1", "mini-batch SGD", "train", n, 784, 128, 10, batch=64, shuffle=True,
                       lr=0.1),
        "W2": Workload("W2", "per-sample SGD", "train", 400 if quick else 2_000, 64, 32, 10,
                       batch=1, shuffle=True, lr=0.05),
        "W3": Workload("W3", "full-batch GD", "train", n, 784, 128, 10, batch=None,
                       epochs=5 if quick else 20, lr=0.5),
        "W4": Workload("W4", "inference", "infer", n, 784, 128, 10, batch=1_000),
        "W5": Workload("W5", "engine: elementwise chain", "chain", n_ops=1_000),
        "W6": Workload("W6", "digits end to end", "digits", epochs=2 if quick else 0),
        "W7": Workload("W7", "convolutional step", "conv", 64 if quick else 1_024, 48, 0, 7,
                       batch=64, shuffle=True, lr=0.01),
        "W8.1": Workload("W8.1", "vision inference, batch 1", "vision_infer", 1, base="torch"),
        "W8.64": Workload("W8.64", f"vision inference, batch {8 if quick else 64}",
                          "vision_infer", 8 if quick else 64, base="torch"),
        "W9": Workload("W9", f"vision training step, batch {8 if quick else 32}",
                       "vision_train", 8 if quick else 32, base="torch"),
    }


CONV_WIDTHS = (32, 64)     # W7's two Conv2d layers: 1 → 32 → 64 channels, 3×3 kernels
CONV_KEYS = ("c1w", "c1b", "c2w", "c2b", "fw", "fb")


def conv_features(size: int) -> int:
    """Inputs of W7's Linear: 64 channels of ((size − 2) // 2 − 2) // 2 squared (48 → 10×10)."""
    side = ((size - 2) // 2 - 2) // 2
    return CONV_WIDTHS[1] * side * side


def make_data(wl: Workload) -> dict[str, Any]:
    """Seeded data and initial weights for a train/infer workload (same for every implementation).

    X (N, D) float32 in [0, 1), y (N,) int64, Y one-hot (N, K) float32, params W1 (D, M), b1 (M,),
    W2 (M, K), b2 (K,) (Glorot uniform weights, small random biases so bias bugs show), and
    `batches`: the list of index arrays in the order every implementation visits them.
    """
    if wl.kind == "conv":
        return make_conv_data(wl)
    rng = np.random.default_rng(SEED)
    X = rng.random((wl.N, wl.D), dtype=np.float32)
    R = rng.standard_normal((wl.D, wl.K)).astype(np.float32)
    y = np.argmax((X - 0.5) @ R, axis=1).astype(np.int64)
    Y = np.zeros((wl.N, wl.K), dtype=np.float32)
    Y[np.arange(wl.N), y] = 1
    params = init_params(rng, wl.D, wl.M, wl.K)
    batches = []
    size = wl.N if wl.batch is None else wl.batch
    for _ in range(wl.epochs if wl.kind == "train" else 1):
        order = rng.permutation(wl.N) if wl.shuffle else np.arange(wl.N)
        batches.extend(order[i:i + size] for i in range(0, wl.N, size))
    return {"X": X, "y": y, "Y": Y, "params": params, "batches": batches}


def make_conv_data(wl: Workload) -> dict[str, Any]:
    """W7: X (N, 1, S, S) float32 in [0, 1), y (N,) int64 from a random linear map of the image,
    Y one-hot, params in PyTorch's conv layout (c1w (32, 1, 3, 3), c1b, c2w (64, 32, 3, 3), c2b)
    and the blog's (in, out) layout for the last layer (fw (6400, 7), fb), and the batches."""
    rng = np.random.default_rng(SEED)
    S, K, (C1, C2) = wl.D, wl.K, CONV_WIDTHS
    X = rng.random((wl.N, 1, S, S), dtype=np.float32)
    R = rng.standard_normal((S * S, K)).astype(np.float32)
    y = np.argmax((X.reshape(wl.N, -1) - 0.5) @ R, axis=1).astype(np.int64)
    Y = np.eye(K, dtype=np.float32)[y]

    def uniform(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        bound = np.sqrt(1.0 / fan_in)            # PyTorch's default for Conv2d and Linear
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    F = conv_features(S)
    params = {"c1w": uniform((C1, 1, 3, 3), 9), "c1b": uniform((C1,), 9),
              "c2w": uniform((C2, C1, 3, 3), C1 * 9), "c2b": uniform((C2,), C1 * 9),
              "fw": uniform((F, K), F), "fb": uniform((K,), F)}
    order = rng.permutation(wl.N)
    batches = [order[i:i + wl.batch] for i in range(0, wl.N, wl.batch)]
    return {"X": X, "y": y, "Y": Y, "params": params, "batches": batches}


def init_params(rng: np.random.Generator, D: int, M: int, K: int) -> dict[str, np.ndarray]:
    """Glorot-uniform W1 (D, M), W2 (M, K); biases uniform in ±0.1; all float32."""
    def glorot(fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)
    return {"W1": glorot(D, M), "b1": rng.uniform(-0.1, 0.1, M).astype(np.float32),
            "W2": glorot(M, K), "b2": rng.uniform(-0.1, 0.1, K).astype(np.float32)}


def chain_input() -> np.ndarray:
    """W5's (16, 16) float32 input."""
    return np.random.default_rng(SEED).random((16, 16), dtype=np.float32)


def flops(wl: Workload) -> float:
    """Matrix-product FLOPs of the workload (0 where there are none worth counting).

    Forward: 2·N·(D·M + M·K). Backward: 2× forward minus the skipped input gradient of the first
    layer (2·N·D·M), i.e. 2·N·(D·M + 2·M·K). A training pass: 2·N·(2·D·M + 3·M·K) per epoch.
    """
    N, D, M, K = wl.N, wl.D, wl.M, wl.K
    if wl.kind == "train":
        return 2.0 * N * (2 * D * M + 3 * M * K) * wl.epochs
    if wl.kind == "infer":
        return 2.0 * N * (D * M + M * K)
    return 0.0
