"""Layers: Linear (the blog's Z = X·W + b), the activations, and Sequential."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp._checks import integer, positive_int
from tinygrad_mlp.nn import init
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.tensor import Tensor, get_default_dtype


class Linear(Module):
    """Z = X·W + b with W of shape (in_features, out_features), as in the blog; b of shape (out,).

    The weight starts Glorot/Xavier uniform, the bias at zero (re-initialise with `nn.init`,
    e.g. `nn.init.he_normal(layer.weight)` for ReLU nets). Parameters take `dtype` or the default.
    """

    replayable = True

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

    def reset_parameters(self) -> None:
        """Glorot uniform weight, zero bias (drawn from the generator `tm.manual_seed` seeds)."""
        init.xavier_uniform(self.weight)
        if self.bias is not None:
            init.zeros(self.bias)

    def forward(self, X: Any) -> Tensor:
        shape = np.shape(X.data if isinstance(X, Tensor) else X)
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


class Sigmoid(Module):
    """σ(Z) = 1 / (1 + e^−Z), the blog's activation; its derivative is a(1 − a)."""

    replayable = True

    def forward(self, Z: Any) -> Tensor:
        return ops.Sigmoid.apply(Z)


class Tanh(Module):
    replayable = True

    def forward(self, Z: Any) -> Tensor:
        return ops.Tanh.apply(Z)


class ReLU(Module):
    replayable = True

    def forward(self, Z: Any) -> Tensor:
        return ops.ReLU.apply(Z)


class Softmax(Module):
    """exp(Z) / Σ exp(Z) along `axis`. Feed it to CrossEntropyLoss(): the loss fuses with it."""

    replayable = True

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = integer("axis", axis, owner="Softmax")

    def forward(self, Z: Any) -> Tensor:
        return ops.Softmax.apply(Z, axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


_SAME_WIDTH = (Sigmoid, Tanh, ReLU, Softmax)   # layers whose output has their input's width


class Sequential(Module):
    """Layers applied in order; children are named "0", "1", … (state_dict keys "0.weight", …).

        model = Sequential(Linear(64, 32), Sigmoid(), Linear(32, 10), Softmax())
        model[0], len(model), model[:2]           # indexing, len, slicing (a Sequential)

    Consecutive Linear layers must chain (out_features of one = in_features of the next); that is
    checked here, at construction. A single list of layers is accepted too (Keras style).
    """

    replayable = True

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            self.append(layer)

    @classmethod
    def _wrap(cls, layers: list[Module]) -> Sequential:
        """A Sequential over existing layers, leaving their parameter names alone (slicing)."""
        model = cls.__new__(cls)
        Module.__init__(model)
        for index, layer in enumerate(layers):
            setattr(model, str(index), layer)
        return model

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end (checked against the previous Linear); returns self."""
        index = len(self._modules)
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: layer {index} must be a Module, got "
                            f"{type(layer).__name__}")
        self._check_chain(index, layer)
        setattr(self, str(index), layer)
        for name, param in layer.named_parameters(prefix=str(index)):
            if param.name is None or name.endswith("." + param.name):
                param.name = name    # graph drawings say "0.weight"; a shared one keeps its name
        return self

    def _check_chain(self, index: int, layer: Module) -> None:
        if not isinstance(layer, Linear):
            return
        layers = list(self._modules.values())
        for previous_index in range(index - 1, -1, -1):
            previous = layers[previous_index]
            if isinstance(previous, Linear):
                if previous.out_features != layer.in_features:
                    raise ValueError(
                        f"Sequential: layer {index} ({layer.short_name()}) expects "
                        f"{layer.in_features} features but layer {previous_index} "
                        f"({previous.short_name()}) outputs {previous.out_features}")
                return
            if not isinstance(previous, _SAME_WIDTH):
                return                          # a layer of unknown width: nothing to check

    def get_config(self) -> dict[str, Any]:
        """The layers it holds now (appended ones and slices included)."""
        return {"layers": list(self._modules.values())}

    def forward(self, X: Any) -> Any:
        for layer in self._modules.values():
            X = layer(X)
        return X

    def __getitem__(self, index: int | slice) -> Module | Sequential:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential._wrap(layers[index])
        try:
            return layers[index]
        except IndexError:
            raise IndexError(f"Sequential index {index} out of range for {len(layers)} layers"
                             ) from None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))
