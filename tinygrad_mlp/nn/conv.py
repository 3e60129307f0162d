"""Convolution and pooling layers on (N, C, H, W) batches, in PyTorch's layout and init.

    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    model(X).shape            # X (N, 1, 28, 28) → (N, 16, 14, 14)

Constructor arguments are ints or pairs of ints (lists or tuples), so a model file can record
them as JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp.nn import init
from tinygrad_mlp.nn.containers import Sequential
from tinygrad_mlp.nn.activations import ReLU, Softmax
from tinygrad_mlp.nn.layers import Dropout, Flatten, Linear
from tinygrad_mlp.nn.module import Module, cast_input
from tinygrad_mlp.ops.image import pair, pool_arguments
from tinygrad_mlp.tensor import Function, Tensor, get_default_dtype


def _shape_of(X: Any) -> tuple[int, ...]:
    return np.shape(X.data if isinstance(X, Tensor) else X)


class Conv2d(Module):
    """2-D convolution: (N, in_channels, H, W) → (N, out_channels, OH, OW).

    weight (out_channels, in_channels, kh, kw) and bias (out_channels,) start as PyTorch's do:
    U(−1/√fan_in, 1/√fan_in) with fan_in = in_channels·kh·kw (its kaiming-uniform with a = √5),
    drawn from the generator `tm.manual_seed` seeds. OH = (H + 2·padding − kh) // stride + 1.
    """

    replayable = True     # the graph never depends on the values

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.in_channels = pair("Conv2d", "in_channels", in_channels, 1)[0]
        self.out_channels = pair("Conv2d", "out_channels", out_channels, 1)[0]
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = pair("Conv2d", "stride", stride, 1)
        self.padding = pair("Conv2d", "padding", padding, 0)
        dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"Conv2d: dtype must be a float dtype, got {dtype}")
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Tensor(np.empty(shape, dtype=dtype), requires_grad=True, name="weight")
        self.bias = (Tensor(np.empty(self.out_channels, dtype=dtype), requires_grad=True,
                            name="bias") if bias else None)
        self.reset_parameters()

    @classmethod
    def state_spec(cls, config: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
        """weight (out_channels, in_channels, kh, kw) and bias (out_channels,), in `dtype`."""
        arguments = cls.config_arguments(config)
        n_in = pair("Conv2d", "in_channels", arguments["in_channels"], 1)[0]
        n_out = pair("Conv2d", "out_channels", arguments["out_channels"], 1)[0]
        kernel = pair("Conv2d", "kernel_size", arguments["kernel_size"], 1)
        dtype = arguments["dtype"]
        spec = {"weight": ((n_out, n_in, *kernel), dtype)}
        if arguments["bias"]:
            spec["bias"] = ((n_out,), dtype)
        return spec

    def reset_parameters(self) -> None:
        """PyTorch's init: weight and bias uniform in ±1/√(in_channels·kh·kw)."""
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        init.uniform(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform(self.bias, -bound, bound)

    def forward(self, X: Any) -> Tensor:
        X = cast_input(X, self.weight.data.dtype)        # computes in the weight's dtype
        shape = _shape_of(X)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"{self.short_name()} expected input of shape (N, "
                             f"{self.in_channels}, H, W), got {shape}")
        inputs = (X, self.weight) if self.bias is None else (X, self.weight, self.bias)
        return ops.Conv2d.apply(*inputs, stride=self.stride, padding=self.padding)

    def short_name(self) -> str:
        return f"Conv2d({self.in_channels} -> {self.out_channels})"

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class _Pool2d(Module):
    """What the two poolings share: their arguments, checked once, and one op per window.
    stride defaults to the kernel size; padding may be at most half the kernel."""

    replayable = True     # the graph never depends on the values
    pool: type[Function]  # the op each subclass applies

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool_arguments(
            type(self).__name__, kernel_size, stride, padding)

    def forward(self, X: Any) -> Tensor:
        return self.pool.apply(X, kernel_size=self.kernel_size, stride=self.stride,
                               padding=self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """The maximum of each kernel_size window (padding counts as −inf): (N, C, H, W) in."""

    pool = ops.MaxPool2d


class AvgPool2d(_Pool2d):
    """The mean of each kernel_size window (padded zeros count, as in PyTorch's default).
    Arguments as MaxPool2d's."""

    pool = ops.AvgPool2d


def cnn(height: int, width: int, classes: int, channels: int = 1, hidden: int = 128,
        dropout: float = 0.5) -> Sequential:
    """The small image classifier `tinygrad-mlp train --model cnn` trains: (N, channels, H, W)
    in, class probabilities (N, classes) out.

    Two blocks of 3×3 convolution (padding 1, so the size is kept) → ReLU → 2×2 max pool, with
    32 then 64 channels; then flatten, dropout, a hidden Linear + ReLU, dropout, and a Linear +
    Softmax head. For 28×28 MNIST that is 421,642 parameters; for 48×48 FER2013, 1,199,495.
    """
    if height < 4 or width < 4:
        raise ValueError(f"cnn: images must be at least 4×4 (two 2×2 pools), got {height}×{width}")
    features = 64 * (height // 4) * (width // 4)
    return Sequential(Conv2d(channels, 32, 3, padding=1), ReLU(), MaxPool2d(2),
                      Conv2d(32, 64, 3, padding=1), ReLU(), MaxPool2d(2),
                      Flatten(), Dropout(dropout / 2), Linear(features, hidden), ReLU(),
                      Dropout(dropout), Linear(hidden, classes), Softmax())
