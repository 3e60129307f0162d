"""Placeholder: what `nn.Input(...)` and a Module called on placeholders return (Keras's symbolic
tensor). It stands for a batch of a known sample shape; it is not a Tensor and holds no data a
user computes with. `nn.Model(inputs, outputs)` runs the graph the placeholders recorded.

This file holds only the record (no Module), so module.py can recognise a placeholder cheaply
on every call; nn/functional.py builds and runs the graphs.
"""

from __future__ import annotations

import itertools
from typing import Any

__all__ = ["Placeholder", "Node", "is_symbolic"]

_order = itertools.count()      # creation order: a node's inputs always come before it


class Node:
    """One call of `layer` on placeholders: `inputs` (placeholders), whether they came as one
    list (merge layers: `nn.Add()([a, b])`) or as positional arguments, the name asked for with
    `layer(x, name=...)` (or None), and the sample shape of each output the call gave."""

    __slots__ = ("layer", "inputs", "as_list", "name", "shapes", "order")

    def __init__(self, layer: Any, inputs: list[Placeholder], as_list: bool, name: str | None,
                 shapes: list[tuple[int, ...]]) -> None:
        self.layer, self.inputs, self.as_list, self.name = layer, inputs, as_list, name
        self.shapes, self.order = shapes, next(_order)

    @property
    def outputs(self) -> int:
        return len(self.shapes)


class Placeholder:
    """A batch of samples of shape `sample_shape`, known while a model is being built.

        x = nn.Input((64,))                    # Placeholder(shape=(None, 64), name='input')
        h = nn.Linear(64, 32)(x)               # Placeholder(shape=(None, 32), from Linear)

    `shape` has the batch axis as None (as Keras shows it); `node` is the call that made it
    (None for an `nn.Input`), `index` which of that call's outputs it is. `value` is the
    layer's output on a batch of one zero sample, from which the next layer's shape follows.
    """

    __slots__ = ("sample_shape", "value", "node", "index", "name", "order")

    def __init__(self, sample_shape: tuple[int, ...], value: Any, node: Node | None = None,
                 index: int = 0, name: str | None = None) -> None:
        self.sample_shape, self.value, self.node, self.index = sample_shape, value, node, index
        self.name = name            # an input's own name (nn.Input(name=...)); None for others
        self.order = next(_order)

    @property
    def shape(self) -> tuple[int | None, ...]:
        return (None,) + self.sample_shape

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)

    @property
    def dtype(self) -> Any:
        return self.value.dtype

    def __repr__(self) -> str:
        if self.node is None:
            return f"Placeholder(shape={self.shape}, name={self.name!r})"
        where = type(self.node.layer).__name__
        if self.node.outputs > 1:
            where += f", output {self.index}"
        return f"Placeholder(shape={self.shape}, from {where})"

    def __bool__(self) -> bool:
        raise TypeError("a Placeholder has no value while the model is being built: "
                        "branch in Python on the data by writing a Module with its own forward")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self!r} is a placeholder for the model being built, not data: call "
                        f"a Module on it (nn.Linear(...)(x)), and the model on arrays "
                        f"(nn.Model(inputs, outputs)(X))")


def is_symbolic(first: Any) -> bool:
    """Is a module being called on placeholders (its first argument, or a list of them)?"""
    kind = type(first)
    return kind is Placeholder or ((kind is list or kind is tuple) and len(first) > 0
                                   and type(first[0]) is Placeholder)
