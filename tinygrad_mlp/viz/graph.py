"""The computation graph behind a tensor, as data: nodes, edges, kinds and readable names.

Built on the engine's own `topological_order` (the nodes that need a gradient), read through
the public `Tensor.creator`; every drawing (DOT, text, HTML) starts from a `Graph`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from tinygrad_mlp.tensor import Tensor, topological_order

__all__ = ["Graph", "build_graph", "inputs", "is_freed", "is_parameter", "node_kind", "norm"]

LINEAR_OPS = ("Linear", "MatMul")
ACTIVATIONS = ("Sigmoid", "Tanh", "ReLU", "Softmax", "LogSoftmax")


def inputs(node: Tensor) -> tuple[Tensor, ...]:
    """The tensors the op that made `node` read, in order (none for a leaf or a freed graph)."""
    creator = node.creator
    return () if creator is None or creator.parents is None else tuple(creator.parents)


def is_freed(node: Tensor) -> bool:
    """Made by an op whose graph backward() already freed (without retain_graph=True)."""
    return node.creator is not None and node.creator.parents is None


def is_parameter(node: Tensor) -> bool:
    """A leaf that requires grad: a weight, a target of the backward walk."""
    return node.is_leaf and node.requires_grad


def node_kind(node: Tensor) -> str:
    """'op', 'freed' (an op whose graph is gone), 'parameter', 'constant' (a scalar) or 'input'."""
    if is_freed(node):
        return "freed"
    if not node.is_leaf:
        return "op"
    if node.requires_grad:
        return "parameter"
    return "constant" if node.data.size == 1 else "input"


def norm(array: np.ndarray) -> float:
    """‖array‖₂, summed in float64."""
    return float(np.sqrt(np.sum(np.square(array, dtype=np.float64))))


@dataclass
class Graph:
    """Every tensor behind `root`: `nodes` inputs before outputs (root last), `edges` (input,
    output) one per input slot in input order, `names` id(tensor) -> readable name."""
    root: Tensor
    nodes: list[Tensor]
    edges: list[tuple[Tensor, Tensor]]
    names: dict[int, str]

    def name(self, node: Tensor) -> str | None:
        return self.names.get(id(node))

    def describe(self, node: Tensor) -> str:
        """How a node appears among an op's inputs: its name, its op, a scalar's value, or
        'input (4, 64)'."""
        name = self.name(node)
        if name:
            return name
        if node.op:
            return node.op
        if node.data.size == 1:
            return f"{node.data.item():.4g}"
        return f"{'leaf' if node.requires_grad else 'input'} {node.shape}"

    def input_names(self, node: Tensor) -> list[str]:
        return [self.describe(parent) for parent in inputs(node)]


MAX_NAME = 80     # characters of a name shown in a drawing, a walk or a page


def readable(name: str) -> str:
    """`name` as viz shows it: characters that are not printable (NUL, ESC, a newline, a lone
    surrogate: invalid in SVG/XML, or breaking Graphviz) written as Python escapes (`\\x00`),
    and cut to MAX_NAME characters with "…" (Graphviz fails on a 20,000-character label)."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(name))
    return shown if len(shown) <= MAX_NAME else shown[:MAX_NAME - 1] + "…"


def build_graph(root: Tensor, params: Mapping[str, Tensor] | None = None) -> Graph:
    """The graph behind `root`; inputs that need no gradient (data, constants) are placed just
    before their first consumer. `params` (e.g. `dict(model.named_parameters())`) names leaves."""
    nodes: list[Tensor] = []
    edges: list[tuple[Tensor, Tensor]] = []
    placed: set[int] = set()
    for node in topological_order(root):
        for parent in inputs(node):
            edges.append((parent, node))
            if not parent.requires_grad and id(parent) not in placed:
                placed.add(id(parent))
                nodes.append(parent)
        nodes.append(node)
    return Graph(root, nodes, edges, _names(nodes, params))


def _names(nodes: list[Tensor], params: Mapping[str, Tensor] | None) -> dict[int, str]:
    """A readable name per tensor: the `params` mapping first, then `tensor.name`, then the blog's
    names found by structure: the k-th op that multiplies by a parameter (Linear, MatMul) is Zk,
    an activation applied to Zk is ak, and an unnamed scalar root is J. `nodes`: inputs first."""
    names = {id(t): readable(name) for name, t in (params or {}).items()}
    layer = 0
    z_of: dict[int, int] = {}
    for node in nodes:
        if id(node) in names:
            continue
        if node.name:
            names[id(node)] = readable(node.name)
            continue
        op, parents = node.op, inputs(node)
        if op in LINEAR_OPS and any(is_parameter(p) for p in parents[1:]):
            layer += 1
            z_of[id(node)] = layer
            names[id(node)] = f"Z{layer}"
        elif op in ACTIVATIONS and parents and id(parents[0]) in z_of:
            names[id(node)] = f"a{z_of[id(parents[0])]}"
    root = nodes[-1] if nodes else None
    if root is not None and id(root) not in names and root.data.size == 1 and not root.is_leaf:
        names[id(root)] = "J"
    return names
