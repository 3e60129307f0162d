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
from tinygrad_mlp._checks import is_int
from tinygrad_mlp.nn import init
from tinygrad_mlp.nn.module import Module, cast_input
from tinygrad_mlp.ops.image import (adaptive_output_size, output_size, padding_argument,
                                     pair, pool_arguments, resolve_padding)
from tinygrad_mlp.tensor import Function, Tensor, get_default_dtype


def _shape_of(X: Any) -> tuple[int, ...]:
    return np.shape(X.data if isinstance(X, Tensor) else X)


def _unbatched(layer: Module, X: Any) -> tuple[Any, bool]:
    """X as a batch: one (C, H, W) image gets a batch axis of 1 (PyTorch takes it too), which
    the caller removes from the result; anything else but (N, C, H, W) is an error naming
    the layer and the shape."""
    shape = _shape_of(X)
    if len(shape) == 3:
        return (X.unsqueeze(0) if isinstance(X, Tensor) else np.asarray(X)[None]), True
    if len(shape) != 4:
        raise ValueError(f"{layer.short_name()} expected input of shape (N, C, H, W) or "
                         f"(C, H, W), got {shape}")
    return X, False


class Conv2d(Module):
    """2-D convolution: (N, in_channels, H, W) → (N, out_channels, OH, OW); a (C, H, W) image
    gives (out_channels, OH, OW).

    weight (out_channels, in_channels // groups, kh, kw) and bias (out_channels,) start as
    PyTorch's do: U(−1/√fan_in, 1/√fan_in) with fan_in = in_channels // groups · kh · kw (its
    kaiming-uniform with a = √5), drawn from the generator `tm.manual_seed` seeds.
    OH = (H + 2·padding − dilation·(kh − 1) − 1) // stride + 1; padding "same" keeps
    ceil(H / stride) for any stride (TF's rule: an odd total puts the extra row and column
    after), "valid" is 0. groups splits the channels into independent convolutions;
    groups=in_channels is a depthwise convolution (out_channels a multiple of it).
    """


    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        self.in_channels = pair("Conv2d", "in_channels", in_channels, 1)[0]
        self.out_channels = pair("Conv2d", "out_channels", out_channels, 1)[0]
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = pair("Conv2d", "stride", stride, 1)
        self.padding = padding_argument("Conv2d", padding)
        self.dilation = pair("Conv2d", "dilation", dilation, 1)
        self.groups = pair("Conv2d", "groups", groups, 1)[0]
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"Conv2d: in_channels ({self.in_channels}) and out_channels "
                             f"({self.out_channels}) must both be divisible by groups "
                             f"({self.groups})")
        dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"Conv2d: dtype must be a float dtype, got {dtype}")
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Tensor(np.empty(shape, dtype=dtype), requires_grad=True, name="weight")
        self.bias = (Tensor(np.empty(self.out_channels, dtype=dtype), requires_grad=True,
                            name="bias") if bias else None)
        self.reset_parameters()

    @classmethod
    def state_spec(cls, config: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
        """weight (out_channels, in_channels // groups, kh, kw) and bias (out_channels,), in
        `dtype`."""
        arguments = cls.config_arguments(config)
        n_in = pair("Conv2d", "in_channels", arguments["in_channels"], 1)[0]
        n_out = pair("Conv2d", "out_channels", arguments["out_channels"], 1)[0]
        kernel = pair("Conv2d", "kernel_size", arguments["kernel_size"], 1)
        groups = pair("Conv2d", "groups", arguments["groups"], 1)[0]
        dtype = arguments["dtype"]
        spec = {"weight": ((n_out, n_in // groups, *kernel), dtype)}
        if arguments["bias"]:
            spec["bias"] = ((n_out,), dtype)
        return spec

    def reset_parameters(self) -> None:
        """PyTorch's init: weight and bias uniform in ±1/√(in_channels // groups · kh · kw)."""
        fan_in = self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        init.uniform(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform(self.bias, -bound, bound)

    def forward(self, X: Any) -> Tensor:
        X = cast_input(X, self.weight.data.dtype)        # computes in the weight's dtype
        X, unbatched = _unbatched(self, X)
        shape = _shape_of(X)
        if shape[1] != self.in_channels:
            raise ValueError(f"{self.short_name()} expected input of shape (N, "
                             f"{self.in_channels}, H, W), got {shape}")
        padding = resolve_padding(self.padding, shape[2:], self.kernel_size, self.stride,
                                  self.dilation)
        output_size(self.short_name(), shape, self.kernel_size, self.stride, padding,
                    self.dilation)                       # the layer's own error for a small input
        inputs = (X, self.weight) if self.bias is None else (X, self.weight, self.bias)
        Y = ops.Conv2d.apply(*inputs, stride=self.stride, padding=self.padding,
                             dilation=self.dilation, groups=self.groups)
        return Y.squeeze(0) if unbatched else Y

    def short_name(self) -> str:
        return f"Conv2d({self.in_channels} -> {self.out_channels})"

    def extra_repr(self) -> str:
        extra = "".join(f", {name}={value}" for name, value, default in [
            ("dilation", self.dilation, (1, 1)), ("groups", self.groups, 1)] if value != default)
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}{extra}, "
                f"bias={self.bias is not None}")


class _Pool2d(Module):
    """What the two poolings share: their arguments, checked once, and one op per window.
    stride defaults to the kernel size; padding may be at most half the kernel, or "same"."""

    pool: type[Function]  # the op each subclass applies

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] | str = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = pool_arguments(
            type(self).__name__, kernel_size, stride, padding)

    def forward(self, X: Any) -> Tensor:
        X, unbatched = _unbatched(self, X)
        shape = _shape_of(X)
        padding = resolve_padding(self.padding, shape[2:], self.kernel_size, self.stride)
        output_size(self.short_name(), shape, self.kernel_size, self.stride, padding)
        Y = self.pool.apply(X, kernel_size=self.kernel_size, stride=self.stride,
                            padding=self.padding)
        return Y.squeeze(0) if unbatched else Y

    def short_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


class MaxPool2d(_Pool2d):
    """The maximum of each kernel_size window (padding counts as −inf): (N, C, H, W) or
    (C, H, W) in. padding="same" keeps ceil(H / stride) (TF's rule)."""

    pool = ops.MaxPool2d


class AvgPool2d(_Pool2d):
    """The mean of each kernel_size window: padded zeros count for an int padding (PyTorch's
    default), only the real entries for padding="same" (Keras's rule). Arguments as
    MaxPool2d's."""

    pool = ops.AvgPool2d


class _AdaptivePool2d(Module):
    """What the two adaptive poolings share: output_size (an int, or a pair with None keeping
    the input's size) and PyTorch's bins, floor(i·H/out) to ceil((i + 1)·H/out)."""

    pool: type[Function]

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        self.output_size = adaptive_output_size(type(self).__name__, output_size)

    def forward(self, X: Any) -> Tensor:
        X, unbatched = _unbatched(self, X)
        if 0 in _shape_of(X)[2:]:
            raise ValueError(f"{self.short_name()} expected a non-empty image, got an input "
                             f"of shape {_shape_of(X)}")
        Y = self.pool.apply(X, output_size=self.output_size)
        return Y.squeeze(0) if unbatched else Y

    def short_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """The mean of each of output_size bins: (N, C, H, W) → (N, C, *output_size); 1 is global
    average pooling (then Flatten for (N, C))."""

    pool = ops.AdaptiveAvgPool2d


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """The maximum of each of output_size bins: (N, C, H, W) → (N, C, *output_size); 1 is
    global max pooling."""

    pool = ops.AdaptiveMaxPool2d


class ZeroPad2d(Module):
    """Zeros around each image: padding an int, or PyTorch's (left, right, top, bottom).
    (N, C, H, W) → (N, C, H + top + bottom, W + left + right); (C, H, W) works too."""


    def __init__(self, padding: int | tuple[int, int, int, int]) -> None:
        super().__init__()
        sides = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * 4
        if len(sides) != 4 or not all(is_int(p) and p >= 0 for p in sides):
            raise ValueError(f"ZeroPad2d: padding must be an int ≥ 0 or (left, right, top, "
                             f"bottom) of them, got {padding!r}")
        self.padding = tuple(int(p) for p in sides)

    def forward(self, X: Any) -> Tensor:
        shape = _shape_of(X)
        if len(shape) not in (3, 4):
            raise ValueError(f"ZeroPad2d expected input of shape (N, C, H, W) or (C, H, W), "
                             f"got {shape}")
        left, right, top, bottom = self.padding
        return ops.Pad.apply(X, pad_width=((0, 0),) * (len(shape) - 2) + ((top, bottom),
                                                                          (left, right)))

    def short_name(self) -> str:
        return "ZeroPad2d"

    def extra_repr(self) -> str:
        return f"padding={self.padding}"
