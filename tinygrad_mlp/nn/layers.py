"""Layers: Linear (the blog's Z = X·W + b), Identity, Flatten, Dropout and Rescaling.

Activations are in nn/activations.py, normalisation in nn/normalization.py, containers
(Sequential, ModuleList, ModuleDict) in nn/containers.py."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp._checks import finite_real, integer, positive_int, probability
from tinygrad_mlp.nn import init
from tinygrad_mlp.nn.module import Module, cast_input
from tinygrad_mlp.tensor import Tensor, get_default_dtype


class Linear(Module):
    """Z = X·W + b with W of shape (in_features, out_features), as in the blog; b of shape (out,).

    The weight starts Glorot/Xavier uniform, the bias at zero (re-initialise with `nn.init`,
    e.g. `nn.init.he_normal(layer.weight)` for ReLU nets). Parameters take `dtype` or the default.
    """


    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: Any = None) -> None:
        super().__init__()
        self.in_features = positive_int("in_features", in_features, owner="Linear")
        self.out_features = positive_int("out_features", out_features, owner="Linear")
        dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"Linear: dtype must be a float dtype, got {dtype}")
        self.weight = Tensor(np.empty((self.in_features, self.out_features), dtype=dtype),
                             requires_grad=True, name="weight")
        self.bias = (Tensor(np.empty(self.out_features, dtype=dtype), requires_grad=True,
                            name="bias") if bias else None)
        self.reset_parameters()

    @classmethod
    def state_spec(cls, config: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
        """weight (in_features, out_features) and bias (out_features,), in `dtype`."""
        arguments = cls.config_arguments(config)
        n_in = positive_int("in_features", arguments["in_features"], owner="Linear")
        n_out = positive_int("out_features", arguments["out_features"], owner="Linear")
        dtype = arguments["dtype"]
        spec = {"weight": ((n_in, n_out), dtype)}
        if arguments["bias"]:
            spec["bias"] = ((n_out,), dtype)
        return spec

    def reset_parameters(self) -> None:
        """Glorot uniform weight, zero bias (drawn from the generator `tm.manual_seed` seeds)."""
        init.xavier_uniform(self.weight)
        if self.bias is not None:
            init.zeros(self.bias)

    def forward(self, X: Any) -> Tensor:
        X = cast_input(X, self.weight.data.dtype)        # computes in the weight's dtype
        shape = X.shape
        if not shape or shape[-1] != self.in_features:
            raise ValueError(f"{self.short_name()} expected input of shape (..., "
                             f"{self.in_features}), got {shape} (weight shape "
                             f"{self.weight.shape})")
        if self.bias is None:
            return ops.MatMul.apply(X, self.weight)
        return ops.Linear.apply(X, self.weight, self.bias)

    def short_name(self) -> str:
        return f"Linear({self.in_features} -> {self.out_features})"

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. where a layer is optional)."""

    preserves_shape = True

    def forward(self, X: Any) -> Any:
        return X


class Flatten(Module):
    """Axes start_axis … end_axis merged into one; by default every axis but the batch axis,
    so (N, C, H, W) becomes (N, C·H·W) (PyTorch's nn.Flatten)."""


    def __init__(self, start_axis: int = 1, end_axis: int = -1) -> None:
        super().__init__()
        self.start_axis = integer("start_axis", start_axis, owner="Flatten")
        self.end_axis = integer("end_axis", end_axis, owner="Flatten")

    def forward(self, X: Any) -> Tensor:
        return ops.Flatten.apply(X, start_axis=self.start_axis, end_axis=self.end_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


class Dropout(Module):
    """Inverted dropout: in training each entry is zeroed with probability p and the rest are
    scaled by 1/(1 − p), a new mask per call drawn from `tm.get_generator()` (so
    `tm.manual_seed` makes it reproducible); in eval() it is the identity."""

    preserves_shape = True

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = probability("p", p, owner="Dropout")

    def forward(self, X: Any) -> Tensor:
        if not self.training or self.p == 0:
            return X if isinstance(X, Tensor) else Tensor(X)
        return ops.Dropout.apply(X, p=self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Rescaling(Module):
    """X · scale + offset (Keras's Rescaling): `nn.Rescaling(1 / 255)` turns pixels into [0, 1],
    `nn.Rescaling(1 / 127.5, offset=-1)` into [-1, 1]. Computes in the input's float dtype."""

    preserves_shape = True

    def __init__(self, scale: float, offset: float = 0.0) -> None:
        super().__init__()
        self.scale = finite_real("scale", scale, owner="Rescaling")
        self.offset = finite_real("offset", offset, owner="Rescaling")

    def forward(self, X: Any) -> Tensor:
        X = X if isinstance(X, Tensor) else Tensor(X)
        Z = X * self.scale
        return Z + self.offset if self.offset else Z

    def extra_repr(self) -> str:
        return f"scale={self.scale}, offset={self.offset}"
