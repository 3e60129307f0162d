"""Merge layers: called on a list of tensors (in a functional model, of placeholders).

    y = nn.Add()([x, shortcut])               # a residual connection
    z = nn.Concatenate(axis=1)([a, b])        # channels of images, features of rows
"""

from __future__ import annotations

from functools import reduce
from typing import Any, Sequence

from tinygrad_mlp._checks import integer
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.tensor import Tensor, concatenate

__all__ = ["Add", "Multiply", "Concatenate"]


class _Merge(Module):
    """A layer called on a list of at least two tensors (in a model: placeholders)."""


    def forward(self, inputs: Sequence[Any]) -> Tensor:
        name = type(self).__name__
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            got = (f"a list of {len(inputs)}" if isinstance(inputs, (list, tuple))
                   else type(inputs).__name__)
            raise ValueError(f"{name} expects a list of at least 2 inputs "
                             f"({name}()([a, b])), got {got}")
        tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
        self._check_shapes([t.shape for t in tensors])
        return self.merge(tensors)

    def _check_shapes(self, shapes: list[tuple[int, ...]]) -> None:
        if any(shape != shapes[0] for shape in shapes):
            raise ValueError(f"{type(self).__name__} expects inputs of one shape, got "
                             f"{', '.join(map(str, shapes))}")

    def merge(self, tensors: list[Tensor]) -> Tensor:
        raise NotImplementedError


class Add(_Merge):
    """The sum of a list of tensors of one shape: `nn.Add()([a, b])` (a residual connection)."""

    def merge(self, tensors: list[Tensor]) -> Tensor:
        return reduce(lambda a, b: a + b, tensors)


class Multiply(_Merge):
    """The elementwise product of a list of tensors of one shape: `nn.Multiply()([a, b])`."""

    def merge(self, tensors: list[Tensor]) -> Tensor:
        return reduce(lambda a, b: a * b, tensors)


class Concatenate(_Merge):
    """A list of tensors joined along `axis`, which counts the batch axis as tm's (N, C, H, W)
    does: the default 1 joins channels of images and features of rows. All other axes must
    agree."""

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = integer("axis", axis, owner="Concatenate")

    def _check_shapes(self, shapes: list[tuple[int, ...]]) -> None:
        ndim = len(shapes[0])
        if not -ndim <= self.axis < ndim or any(len(s) != ndim for s in shapes):
            raise ValueError(f"Concatenate(axis={self.axis}) needs inputs with one number of "
                             f"axes that has axis {self.axis}, got {', '.join(map(str, shapes))}")
        axis = self.axis % ndim
        rest = {s[:axis] + s[axis + 1:] for s in shapes}
        if len(rest) > 1:
            raise ValueError(f"Concatenate(axis={self.axis}) needs inputs that agree on every "
                             f"other axis, got {', '.join(map(str, shapes))}")

    def merge(self, tensors: list[Tensor]) -> Tensor:
        return concatenate(tensors, axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"
