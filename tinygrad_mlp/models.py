"""Ready-made networks: the recipes the CLI trains, in one place above nn.

    model = tm.models.cnn(28, 28, 10)      # `tinygrad-mlp train --model cnn`: (N, 1, 28, 28) in
    model = tm.models.mlp(64, 30, 10)      # `--model mlp`: the blog's D → M sigmoid → K network

Each function returns a fresh `nn.Sequential` of built-in layers (so it saves with
`tm.save_model` and exports), initialised from the package's seeded generator
(`tm.manual_seed`); nothing here trains or loads weights.
"""

from __future__ import annotations

from tinygrad_mlp import nn
from tinygrad_mlp._checks import choice

__all__ = ["mlp", "cnn"]


def mlp(inputs: int, hidden: int, classes: int, output: str = "softmax") -> nn.Sequential:
    """The blog's network, (N, inputs) → (N, classes): Linear → Sigmoid → Linear → `output`.

    `output` is "softmax" (with `nn.CrossEntropyLoss`) or "sigmoid" (the blog's MSE on one-hot
    targets).
    """
    head = {"softmax": nn.Softmax, "sigmoid": nn.Sigmoid}[
        choice("output", output, ("softmax", "sigmoid"), "mlp")]
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Sigmoid(), nn.Linear(hidden, classes),
                         head())


def cnn(height: int, width: int, classes: int, channels: int = 1, hidden: int = 128,
        dropout: float = 0.5) -> nn.Sequential:
    """The small image classifier `tinygrad-mlp train --model cnn` trains: (N, channels, H, W)
    in, class probabilities (N, classes) out.

    Two blocks of 3×3 convolution (padding 1, so the size is kept) → ReLU → 2×2 max pool, with
    32 then 64 channels; then flatten, dropout, a hidden Linear + ReLU, dropout, and a Linear +
    Softmax head. For 28×28 MNIST that is 421,642 parameters; for 48×48 FER2013, 1,199,495.
    """
    if height < 4 or width < 4:
        raise ValueError(f"cnn: images must be at least 4×4 (two 2×2 pools), got {height}×{width}")
    features = 64 * (height // 4) * (width // 4)
    return nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(dropout / 2), nn.Linear(features, hidden),
                         nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes),
                         nn.Softmax())
