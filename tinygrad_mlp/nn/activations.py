"""Activation layers: the blog's Sigmoid, and Tanh, ReLU, Softmax, LogSoftmax, LeakyReLU, ELU,
GELU and Softplus, each a thin Module around one op of `ops.activations`."""

from __future__ import annotations

from typing import Any

from tinygrad_mlp import ops
from tinygrad_mlp._checks import choice, finite_real, integer
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.tensor import Tensor


class Sigmoid(Module):
    """σ(Z) = 1 / (1 + e^−Z), the blog's activation; its derivative is a(1 − a)."""

    preserves_shape = True

    def forward(self, Z: Any) -> Tensor:
        return ops.Sigmoid.apply(Z)


class Tanh(Module):
    preserves_shape = True

    def forward(self, Z: Any) -> Tensor:
        return ops.Tanh.apply(Z)


class ReLU(Module):
    preserves_shape = True

    def forward(self, Z: Any) -> Tensor:
        return ops.ReLU.apply(Z)


class _AlongAxis(Module):
    """What Softmax and LogSoftmax share: the `axis` they normalize along, checked once."""

    preserves_shape = True

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = integer("axis", axis, owner=type(self).__name__)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Softmax(_AlongAxis):
    """exp(Z) / Σ exp(Z) along `axis`. Feed it to CrossEntropyLoss(): the loss fuses with it."""


    def forward(self, Z: Any) -> Tensor:
        return ops.Softmax.apply(Z, axis=self.axis)


class LogSoftmax(_AlongAxis):
    """log softmax(Z) along `axis` (log-sum-exp shifted by the max: finite for any logits);
    pair it with NLLLoss, as in PyTorch."""


    def forward(self, Z: Any) -> Tensor:
        return ops.LogSoftmax.apply(Z, axis=self.axis)


class LeakyReLU(Module):
    """Z for Z > 0, negative_slope·Z otherwise (gradient negative_slope at 0, as PyTorch)."""

    preserves_shape = True

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = finite_real("negative_slope", negative_slope, owner="LeakyReLU")

    def forward(self, Z: Any) -> Tensor:
        return ops.LeakyReLU.apply(Z, negative_slope=self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """Z for Z > 0, alpha·(e^Z − 1) otherwise (gradient alpha at 0, as PyTorch)."""

    preserves_shape = True

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = finite_real("alpha", alpha, owner="ELU")

    def forward(self, Z: Any) -> Tensor:
        return ops.ELU.apply(Z, alpha=self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(Module):
    """Z·Φ(Z), Φ the standard normal CDF (approximate="none"), or PyTorch's tanh approximation
    (approximate="tanh"); both match PyTorch's GELU."""

    preserves_shape = True

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = choice("approximate", approximate, ("none", "tanh"), owner="GELU")

    def forward(self, Z: Any) -> Tensor:
        return ops.GELU.apply(Z, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """log(1 + e^(beta·Z))/beta, a smooth ReLU; Z itself where beta·Z > threshold (PyTorch's)."""

    preserves_shape = True

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = finite_real("beta", beta, owner="Softplus", low=0.0, low_open=True)
        self.threshold = finite_real("threshold", threshold, owner="Softplus")

    def forward(self, Z: Any) -> Tensor:
        return ops.Softplus.apply(Z, beta=self.beta, threshold=self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"
