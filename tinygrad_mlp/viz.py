"""Seeing autodiff work: the graph as Graphviz DOT, the backward walk told step by step, plots.

    J = ...                                   # any scalar built from Tensors
    print(viz.explain(J))                     # runs J.backward(retain_graph=True) and narrates it
    print(viz.to_dot(J))                      # the graph, with every node's gradient after explain
    viz.render(J, "graph.svg")                # SVG/PNG through Graphviz's `dot`, or a .dot file

`backward()` frees the graph (each node's `ctx.parents` becomes None). To draw a graph with its
gradients, call `J.backward(retain_graph=True)` first, or call `explain(J)`, which does that for
you and also leaves each intermediate gradient in `.grad` so `to_dot` can show it.

Plots (`plot_history`, `plot_weights`, `plot_compare`) need matplotlib, the optional extra
`pip install 'tinygrad_mlp[plot]'`; it is imported only inside those functions, and figures are
drawn on a `Figure` with the Agg canvas, so the caller's pyplot backend is never touched.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from tinygrad_mlp import nn, reference
from tinygrad_mlp._checks import fail, is_int, positive_int
from tinygrad_mlp.tensor import Tensor, backpropagate, topological_order

__all__ = ["to_dot", "render", "explain", "backward_steps", "Step", "blog_network",
           "blog_example", "explain_blog", "compare_methods", "format_compare", "plot_history",
           "plot_weights", "plot_compare"]

# --- walking the graph -----------------------------------------------------------------------


def _graph(root: Tensor) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]]]:
    """Every tensor behind `root`, inputs before outputs, and the edges (input, output), one per
    input slot. Built on the engine's own `topological_order` (the nodes that need a gradient),
    with each input that needs none (data, constants) placed just before its first consumer."""
    nodes: list[Tensor] = []
    edges: list[tuple[Tensor, Tensor]] = []
    placed: set[int] = set()
    for node in topological_order(root):
        for parent in _parents(node):
            edges.append((parent, node))
            if not parent.requires_grad and id(parent) not in placed:
                placed.add(id(parent))
                nodes.append(parent)
        nodes.append(node)
    return nodes, edges


def _parents(node: Tensor) -> tuple[Tensor, ...]:
    creator = node.creator
    return () if creator is None or creator.parents is None else tuple(creator.parents)


def _is_freed(node: Tensor) -> bool:
    """Made by an op whose graph backward() already freed (without retain_graph=True)."""
    return node.creator is not None and node.creator.parents is None


def _is_parameter(node: Tensor) -> bool:
    return node.is_leaf and node.requires_grad


_LINEAR_OPS = ("Linear", "MatMul")
_ACTIVATIONS = ("Sigmoid", "Tanh", "ReLU", "Softmax", "LogSoftmax")


def _names(order: list[Tensor], params: Mapping[str, Tensor] | None) -> dict[int, str]:
    """A readable name per tensor: the `params` mapping first, then `tensor.name`, then the blog's
    names found by structure: the k-th op that multiplies by a parameter (Linear, MatMul) is Zk,
    an activation applied to Zk is ak, and an unnamed scalar root is J. `order`: inputs first."""
    names = {id(t): name for name, t in (params or {}).items()}
    layer = 0
    z_of: dict[int, int] = {}
    for node in order:
        if id(node) in names:
            continue
        if node.name:
            names[id(node)] = node.name
            continue
        op, parents = node.op, _parents(node)
        if op in _LINEAR_OPS and any(_is_parameter(p) for p in parents[1:]):
            layer += 1
            z_of[id(node)] = layer
            names[id(node)] = f"Z{layer}"
        elif op in _ACTIVATIONS and parents and id(parents[0]) in z_of:
            names[id(node)] = f"a{z_of[id(parents[0])]}"
    root = order[-1] if order else None
    if root is not None and id(root) not in names and root.data.size == 1 and not root.is_leaf:
        names[id(root)] = "J"
    return names


def _describe_leaf(node: Tensor, names: dict[int, str]) -> str:
    """How a leaf appears among an op's inputs: its name, a scalar's value, or 'input (4, 64)'."""
    if id(node) in names:
        return names[id(node)]
    if node.data.size == 1:
        return f"{node.data.item():.4g}"
    return f"{'leaf' if node.requires_grad else 'input'} {node.shape}"


def _input_names(node: Tensor, names: dict[int, str]) -> list[str]:
    return [names.get(id(p)) or (p.op or _describe_leaf(p, names))
            for p in _parents(node)]


def _norm(array: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.square(array, dtype=np.float64))))


# --- DOT ------------------------------------------------------------------------------------

_STYLE = {   # kind -> DOT attributes: ops are rounded boxes, parameters orange, data grey ellipses
    "op": 'shape=box, style="rounded,filled", fillcolor="#dae8fc"',
    "parameter": 'shape=box, style=filled, fillcolor="#ffd59b"',
    "input": 'shape=ellipse, style=filled, fillcolor="#eeeeee"',
    "constant": 'shape=ellipse, style=dashed',
    "freed": 'shape=box, style="rounded,filled", fillcolor="#f8cecc", color="#b85450"',
}


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _node_kind(node: Tensor) -> str:
    if _is_freed(node):
        return "freed"
    if not node.is_leaf:
        return "op"
    if node.requires_grad:
        return "parameter"
    return "constant" if node.data.size == 1 else "input"


def _node_label(node: Tensor, kind: str, names: dict[int, str]) -> str:
    name = names.get(id(node))
    shape = "scalar" if node.ndim == 0 else "×".join(map(str, node.shape))
    if kind in ("op", "freed"):
        lines = [f"{name} = {node.op}" if name else node.op]
    elif kind == "parameter":
        lines = [name or "leaf (requires_grad)"]
    elif kind == "constant":
        lines = [f"{name} = {node.data.item():.4g}" if name else f"{node.data.item():.4g}"]
    else:
        lines = [f"{name} (input)" if name else "input"]
    if kind != "constant":
        value = f" = {node.data.item():.4g}" if node.data.size == 1 else ""   # J's value, say
        lines.append(f"{shape} {node.dtype}{value}")
    if node.grad is not None:
        lines.append(f"grad {'×'.join(map(str, node.grad.shape)) or 'scalar'} "
                     f"‖g‖={_norm(node.grad):.4g}")
    if kind == "freed":
        lines.append("graph freed by backward():\nuse backward(retain_graph=True)")
    return "\n".join(lines)


def to_dot(tensor: Tensor, params: Mapping[str, Tensor] | None = None,
           clusters: bool = True, rankdir: str = "LR") -> str:
    """Graphviz DOT text of the graph that produced `tensor`: one node per op and per leaf.

    Each op node shows its op and output shape and dtype; parameters (orange boxes) are labelled
    by `params` (e.g. `dict(model.named_parameters())`) or their `.name`; inputs are grey
    ellipses, scalar constants dashed ones. A node holding `.grad` also shows the gradient's
    shape and norm: after `backward(retain_graph=True)` the leaves do, after `explain()` every
    node does. With `clusters`, each layer (parameters named `0.weight`, `0.bias`, …) and the op
    that consumes them are drawn in one box. Edges run from input to output, in input order.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot expects a Tensor, got {type(tensor).__name__}")
    order, edges = _graph(tensor)
    names = _names(order, params)
    ids = {id(node): f"n{i}" for i, node in enumerate(order)}
    layer_of: dict[int, str] = {}   # node id -> layer prefix ("0" for "0.weight")
    if clusters:
        for node in order:
            name = names.get(id(node), "")
            if _is_parameter(node) and "." in name:
                layer_of.setdefault(id(node), name.rsplit(".", 1)[0])
        for parent, child in edges:
            if id(parent) in layer_of and _is_parameter(parent):
                layer_of.setdefault(id(child), layer_of[id(parent)])
    lines = ["digraph tinygrad_mlp {", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [color="#555555"];']
    lines.append(f'  label="{_dot_escape(_caption(tensor))}"; labelloc=t; fontname="Helvetica";')
    by_layer: dict[str, list[str]] = {}
    for node in order:
        kind = _node_kind(node)
        extra = ", peripheries=2" if node is tensor else ""
        line = f'{ids[id(node)]} [label="{_dot_escape(_node_label(node, kind, names))}", ' \
               f'{_STYLE[kind]}{extra}];'
        if id(node) in layer_of:
            by_layer.setdefault(layer_of[id(node)], []).append(line)
        else:
            lines.append("  " + line)
    for i, (layer, members) in enumerate(by_layer.items()):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f'    label="layer {_dot_escape(layer)}"; style=rounded; color="#999999";')
        lines.extend("    " + member for member in members)
        lines.append("  }")
    lines.extend(f"  {ids[id(parent)]} -> {ids[id(child)]};" for parent, child in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _caption(tensor: Tensor) -> str:
    if _is_freed(tensor):
        return "graph already freed by backward(): call backward(retain_graph=True) to draw it"
    if tensor.is_leaf:
        return "a leaf tensor: no graph behind it"
    return "computation graph (inputs → output); ‖g‖ = norm of the gradient"


def render(tensor: Tensor, path: str | os.PathLike, format: str | None = None,
           params: Mapping[str, Tensor] | None = None) -> str:
    """Write the graph of `tensor` to `path` and return the path written.

    `format` (default: the file's extension) is `dot`, `svg`, `png` or `pdf`. SVG/PNG/PDF need
    Graphviz's `dot` program; without it the DOT text is written next to `path` (extension
    `.dot`), a note on stderr says how to get Graphviz, and that `.dot` path is returned.
    """
    path = os.fspath(path)
    fmt = (format or os.path.splitext(path)[1].lstrip(".") or "dot").lower()
    if fmt not in ("dot", "gv", "svg", "png", "pdf"):
        raise ValueError(f"render: unknown format {fmt!r} for {path!r}; expected dot, svg, png "
                         f"or pdf")
    text = to_dot(tensor, params=params)
    if fmt in ("dot", "gv"):
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return path
    dot = shutil.which("dot")
    if dot is None:
        dot_path = os.path.splitext(path)[0] + ".dot"
        with open(dot_path, "w", encoding="utf-8") as file:
            file.write(text)
        print(f"Graphviz's `dot` is not installed, so {path} was not drawn; wrote {dot_path}. "
              f"Install Graphviz (apt-get install graphviz, brew install graphviz, or "
              f"https://graphviz.org/download) and run: dot -T{fmt} {dot_path} -o {path}",
              file=sys.stderr)
        return dot_path
    result = subprocess.run([dot, f"-T{fmt}", "-o", path], input=text.encode("utf-8"),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"render: `dot -T{fmt}` failed on {path}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return path


# --- the backward walk ----------------------------------------------------------------------

def _rule(node: Tensor) -> str:
    """The op's own `rule` (a class attribute beside its forward), else its docstring's first line."""
    op = node.op
    function = type(node.creator)
    if function.rule:
        return function.rule
    doc = (function.__doc__ or "").strip().splitlines()
    summary = f" ({doc[0].strip()})" if doc else ""
    return f"a user-defined Function: grads = {op}.backward(ctx, grad){summary}"


@dataclass
class Step:
    """One node of the backward walk: what the engine hands it and what rule it applies."""
    position: int               # 1-based, in the order backward() visits the nodes
    tensor: Tensor
    name: str                   # Z1, a1, 0.weight, J, or the op's name
    op: str | None              # None for a leaf (a parameter: the walk ends there)
    inputs: list[str]           # names of the op's inputs, in order
    rule: str | None            # the local derivative (None for a leaf)
    grad: np.ndarray | None     # ∂J/∂(this node): the gradient that arrived here
    named: bool = True          # False when `name` is only the op's name

    @property
    def is_leaf(self) -> bool:
        return self.op is None


def backward_steps(loss: Tensor, params: Mapping[str, Tensor] | None = None) -> list[Step]:
    """Run `loss.backward(retain_graph=True)` and record, node by node in the order the engine
    visits them (reversed `topological_order`), the gradient that arrived at each node.

    Leaf gradients accumulate into `.grad` exactly as after `loss.backward()`; every
    intermediate node also keeps its gradient in `.grad` (as if `retain_grad()` had been called)
    so `to_dot` can show it. The graph stays alive.
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"explain expects a Tensor, got {type(loss).__name__}")
    if _is_freed(loss):
        raise RuntimeError("explain: the graph behind this tensor was already freed by "
                           "backward(); build it again, or call backward(retain_graph=True)")
    if not loss.requires_grad:
        raise RuntimeError("explain: this tensor has no graph (nothing requires grad); create "
                           "the parameters with requires_grad=True")
    if loss.data.size != 1:
        raise ValueError(f"explain: needs a scalar loss, got shape {loss.shape}; call .sum() "
                         f"or .mean() first")
    forward_order = topological_order(loss)
    order = list(reversed(forward_order))               # the order backward() visits
    freed = [node.op for node in order if _is_freed(node)]
    if freed:
        raise RuntimeError(f"explain: part of the graph (at {freed[0]}) was already freed by "
                           f"backward(); call backward(retain_graph=True) if you need both")
    saved = [node.grad for node in order]
    for node in order:
        node.grad = None
    try:
        backpropagate(forward_order, np.ones_like(loss.data), retain_graph=True,
                      retain_grads=True)
        arrived = [node.grad for node in order]
    except BaseException:
        for node, grad in zip(order, saved):
            node.grad = grad
        raise
    for node, grad, new in zip(order, saved, arrived):
        node.grad = new if grad is None or new is None else grad + new
    all_nodes, _ = _graph(loss)
    names = _names(all_nodes, params)
    steps = []
    for position, (node, grad) in enumerate(zip(order, arrived), start=1):
        name = names.get(id(node)) or node.op or _describe_leaf(node, names)
        steps.append(Step(position, node, name, node.op, _input_names(node, names),
                          None if node.is_leaf else _rule(node), grad,
                          named=id(node) in names))
    return steps


def _delta_name(name: str) -> str | None:
    match = re.fullmatch(r"Z(\d+)", name)
    return f"δ{match.group(1)}" if match else None


def _values(array: np.ndarray, max_values: int, indent: str) -> str:
    if array.size > max_values:
        return ""
    array = np.round(np.asarray(array, dtype=np.float64), 4) + 0.0   # + 0.0: no "-0." entries
    text = np.array2string(array, precision=4, suppress_small=True, separator=" ",
                           max_line_width=120)
    return "\n" + "\n".join(indent + line for line in text.splitlines())


def explain(loss: Tensor, params: Mapping[str, Tensor] | None = None,
            max_values: int = 12) -> str:
    """The backward walk of `loss` as text, node by node in the order `backward()` visits them.

    For each node: its op and inputs, its shape, the gradient ∂J/∂node that arrived (shape,
    norm, and the values when there are at most `max_values` of them) and the local derivative
    rule its backward applies. Nodes the blog names are named (Z1, a1, Z2, a2, J; the gradient
    at Zk is δk); parameters are named by `params` or their `.name`. It ends at the targets:
    the gradient each parameter received. Runs `loss.backward(retain_graph=True)` (see
    `backward_steps` for what it leaves in `.grad`).
    """
    steps = backward_steps(loss, params)
    out = [f"Backward walk of {steps[0].name}: backward() visits {len(steps)} nodes in this order "
           f"(reverse topological:",
           "a node comes only after every node that used it). Each node receives ∂J/∂node, summed",
           "over the nodes that used it, and hands each input grad × (its local derivative).",
           "Never stop until you reach the target.", ""]
    for step in steps:
        node = step.tensor
        shape = "scalar" if node.ndim == 0 else str(node.shape)
        if step.is_leaf:
            out.append(f"[{step.position}] {step.name}: parameter {shape} {node.dtype}, a target")
        else:
            call = f"{step.op}({', '.join(step.inputs)})"
            out.append(f"[{step.position}] {step.name + ' = ' if step.named else ''}{call}  "
                       f"{shape} {node.dtype}")
        grad_name = f"∂J/∂{step.name}"
        delta = _delta_name(step.name)
        if delta:
            grad_name = f"{delta} = {grad_name}"
        if step.grad is None:
            out.append("    receives no gradient (nothing that depends on it reached it)")
        elif step.position == 1:
            out.append(f"    receives {grad_name} = {step.grad.item():.4g} (the seed)")
        else:
            out.append(f"    receives {grad_name}  norm {_norm(step.grad):.4g}"
                       + _values(step.grad, max_values, "      "))
        if step.is_leaf:
            out.append(f"    stored in {step.name}.grad (a leaf: the chain ends here)")
        else:
            out.append(f"    rule {step.op}: {step.rule}")
    targets = [step for step in steps if step.is_leaf]
    if params:   # list the targets in the model's order
        rank = {id(t): i for i, t in enumerate(params.values())}
        targets.sort(key=lambda step: rank.get(id(step.tensor), len(rank)))
    else:
        targets.sort(key=lambda step: step.name)
    out.append("")
    if targets:
        out.append("Target reached. The gradient each parameter received "
                   "(what the optimizer uses: W ← W − α ∂J/∂W):")
        width = max(len(step.name) for step in targets)
        for step in targets:
            norm = "none" if step.grad is None else f"{_norm(step.grad):.4g}"
            out.append(f"  ∂J/∂{step.name:<{width}}  shape {step.tensor.shape}  norm {norm}")
    else:
        out.append("No parameter requires grad: nothing to update.")
    return "\n".join(out)


# --- the blog's network, explained --------------------------------------------------------------

BLOG_LOSSES = ("mse", "bce", "ce")


def blog_network(X: Any, Y: Any, W1: Any, W2: Any, loss: str = "mse"
                 ) -> tuple[Tensor, dict[str, Tensor]]:
    """The blog's network built from raw ops, every node named as in the blog; returns (J, nodes).

    Z1 = X·W1, a1 = σ(Z1), Z2 = a1·W2, then for `loss`:
    mse  a2 = σ(Z2),       J = 1/(2N) Σ(a2 − Y)² written out as Sub, Pow, Sum, Div nodes
    bce  a2 = σ(Z2),       J = nn.BCELoss()(a2, Y), fused with the Sigmoid (one node)
    ce   a2 = softmax(Z2), J = nn.CrossEntropyLoss()(a2, Y), fused with the Softmax (one node)
    `nodes` maps X, Y, W1, W2, Z1, a1, Z2, a2, J to their Tensors (W1 and W2 require grad; they
    are new Tensors sharing the arrays' memory, so a later update changes the caller's arrays).
    """
    if loss not in BLOG_LOSSES:
        raise ValueError(f"blog_network: loss must be one of {BLOG_LOSSES}, got {loss!r}")
    X, Y = Tensor(X, name="X"), Tensor(Y, name="Y")
    W1, W2 = Tensor(W1, requires_grad=True, name="W1"), Tensor(W2, requires_grad=True, name="W2")
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"blog_network: X and Y must be 2-D (N×D and N×K), got {X.shape} and "
                         f"{Y.shape}")
    Z1 = X @ W1
    a1 = Z1.sigmoid()
    Z2 = a1 @ W2
    a2 = Z2.softmax(axis=1) if loss == "ce" else Z2.sigmoid()
    if loss == "mse":
        J = ((a2 - Y) ** 2).sum() / (2 * X.shape[0])
    elif loss == "bce":
        J = nn.BCELoss()(a2, Y)
    else:
        J = nn.CrossEntropyLoss()(a2, Y)
    nodes = dict(X=X, Y=Y, W1=W1, W2=W2, Z1=Z1, a1=a1, Z2=Z2, a2=a2, J=J)
    for name, node in nodes.items():
        node.name = name
    for parent in J.creator.parents:   # a fused loss wraps Y's array in a Tensor of its own
        if parent.data is Y.data:
            parent.name = "Y"
    return J, nodes


def blog_example(batch: int = 4, hidden: int = 8, loss: str = "mse", seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A small batch for the blog's network on the bundled digits: (X, Y, W1, W2).

    X: `batch` digit images drawn with `seed`, scaled to [0, 1] (N×64); Y: their one-hot
    labels (N×10), the targets of every loss here; W1 (64×hidden) and W2 (hidden×10): the
    Glorot-uniform weights nn.Linear starts from, drawn after `tm.manual_seed(seed)`.
    """
    from tinygrad_mlp import data, datasets
    from tinygrad_mlp.tensor import manual_seed

    if loss not in BLOG_LOSSES:
        raise ValueError(f"blog_example: loss must be one of {BLOG_LOSSES}, got {loss!r}")
    images, labels = datasets.load_digits()
    if not is_int(batch) or not 1 <= batch <= len(images):
        fail("batch", batch, f"an int in 1..{len(images)}", owner="blog_example")
    rng = manual_seed(seed)
    rows = np.sort(rng.choice(len(images), size=batch, replace=False))
    X = images[rows] / images.dtype.type(16)
    Y = data.one_hot(labels[rows], 10, dtype=X.dtype)
    W1 = nn.Linear(X.shape[1], hidden, bias=False).weight.data
    W2 = nn.Linear(hidden, 10, bias=False).weight.data
    return X, Y, W1, W2


def explain_blog(X: Any, Y: Any, W1: Any, W2: Any, loss: str = "mse",
                 max_values: int = 12) -> str:
    """`explain` on the blog's network (see `blog_network`), then the check against the blog.

    The blog's δ2 and δ1 (`reference.deltas`) are exact for the sum-form cost; this J is the
    mean over N samples, so autograd's ∂J/∂Z2 and ∂J/∂Z1 equal them divided by N. The text shows
    N·∂J/∂Zk next to reference δk and the largest difference, and the same for ∂J/∂W1, ∂J/∂W2
    against `reference.gradients`.
    """
    J, nodes = blog_network(X, Y, W1, W2, loss)
    text = explain(J, max_values=max_values)
    arrays = [nodes[name].data for name in ("X", "Y", "W1", "W2")]
    N = arrays[0].shape[0]
    delta1, delta2 = reference.deltas(*arrays, loss=loss)
    dJ_dW1, dJ_dW2 = reference.gradients(*arrays, loss=loss)
    rule2 = "(a2 − Y)·a2(1 − a2)" if loss == "mse" else "a2 − Y"
    out = [text, "",
           f"Checking against the blog (tinygrad_mlp.reference, loss={loss!r}, N={N}):",
           f"the blog's δ2 = {rule2} and δ1 = (δ2·W2ᵀ)·a1(1 − a1) are for the sum-form cost;",
           "J here is the mean over the N samples, so ∂J/∂Zk = δk / N. Autograd against the blog:"]
    checks = [("δ2", "N · ∂J/∂Z2", N * nodes["Z2"].grad, delta2),
              ("δ1", "N · ∂J/∂Z1", N * nodes["Z1"].grad, delta1),
              ("∂J/∂W2", "W2.grad", nodes["W2"].grad, dJ_dW2),
              ("∂J/∂W1", "W1.grad", nodes["W1"].grad, dJ_dW1)]
    for name, autograd_name, ours, blogs in checks:
        difference = float(np.max(np.abs(ours - blogs))) if ours.size else 0.0
        source = ("reference.deltas" if name.startswith("δ")
                  else "reference.gradients (a1ᵀ·δ2/N, Xᵀ·δ1/N)")
        out.append(f"  {name:<7} {autograd_name:<11} = {source:<40} max |difference| "
                   f"{difference:.2g}")
    for name, _, ours, _ in checks[:2]:
        shown = _values(ours, max_values, "    ")
        if shown:
            out.append(f"  the blog's {name} (N · ∂J/∂Z{name[-1]}):" + shown)
    return "\n".join(out)


# --- the blog's three ways to learn, compared ---------------------------------------------------

METHODS = {   # name -> label; batch size: gd all N, sgd 1, minibatch batch_size
    "gd": "full-batch gradient descent",
    "sgd": "stochastic gradient descent",
    "minibatch": "mini-batch gradient descent",
}


def compare_methods(X: Any, Y: Any, hidden: int = 32, epochs: int = 10,
                    lr: float | Mapping[str, float] = 0.5, batch_size: int = 32, seed: int = 0,
                    loss: str = "ce",
                    methods: tuple[str, ...] = ("gd", "sgd", "minibatch")) -> dict[str, Any]:
    """Train the blog's network once per way to learn, from the same initial weights.

    Network: Linear(D, hidden) → Sigmoid → Linear(hidden, K) → Softmax with cross-entropy
    (`loss="ce"`) or → Sigmoid with the blog's MSE (`loss="mse"`). Each method starts from
    `tm.manual_seed(seed)` (same weights, same shuffling stream) and uses plain SGD, by default
    with the SAME learning rate `lr` for all (or one per method: `lr={"gd": 2.0, ...}`):
    full-batch GD makes 1 update per epoch, per-sample SGD N updates, mini-batch
    ⌈N/batch_size⌉. After every epoch the cost J over all of X (and the accuracy) is measured
    under no_grad, outside the timed part, so `seconds` counts training only.
    `Y`: one-hot rows (N, K) or class labels (N,). Returns {"methods": {name: {"label", "lr",
    "batch_size", "updates_per_epoch", "cost", "accuracy", "seconds"}}, "lr" (per method),
    "epochs", "N", "loss", "seed", "hidden"}; each list has epochs + 1 entries (entry 0: before
    training).
    """
    import time

    from tinygrad_mlp import data, optim
    from tinygrad_mlp.replay import TrainStep
    from tinygrad_mlp.tensor import get_default_dtype, manual_seed, no_grad

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"compare_methods: unknown method {unknown[0]!r}; expected some of "
                         f"{tuple(METHODS)}")
    if loss not in ("ce", "mse"):
        raise ValueError(f"compare_methods: loss must be 'ce' or 'mse', got {loss!r}")
    epochs = positive_int("epochs", epochs, owner="compare_methods")
    rates = dict(lr) if isinstance(lr, Mapping) else {method: lr for method in methods}
    missing = [m for m in methods if m not in rates]
    if missing:
        raise ValueError(f"compare_methods: lr gives no learning rate for {missing[0]!r} "
                         f"(got {sorted(rates)}); give one number, or one per method")
    rates = {m: float(rates[m]) for m in methods}
    dtype = get_default_dtype()   # the dtype the layers are created in
    X, Y = np.asarray(X, dtype=dtype), np.asarray(Y)
    labels = Y.argmax(axis=1) if Y.ndim == 2 else Y.astype(np.int64)
    Y = data.one_hot(labels, dtype=dtype) if Y.ndim == 1 else Y.astype(dtype)
    if X.ndim != 2 or len(X) != len(Y) or len(X) == 0:
        raise ValueError(f"compare_methods: X must be (N, D) and Y (N, K) or (N,) with the same "
                         f"N >= 1; got X {X.shape} and Y {Y.shape}")
    N, D = X.shape
    K = Y.shape[1]
    sizes = {"gd": None, "sgd": 1, "minibatch": batch_size}
    criterion = nn.CrossEntropyLoss() if loss == "ce" else nn.MSELoss()
    result: dict[str, Any] = {"methods": {}, "lr": rates, "epochs": epochs, "N": N,
                              "loss": loss, "seed": seed, "hidden": hidden}
    for method in methods:
        manual_seed(seed)
        model = nn.Sequential(nn.Linear(D, hidden), nn.Sigmoid(), nn.Linear(hidden, K),
                              nn.Softmax() if loss == "ce" else nn.Sigmoid())
        optimizer = optim.SGD(model.parameters(), lr=rates[method])
        step = TrainStep(model, criterion, optimizer)   # the step fit takes: same math, less Python

        def measure() -> tuple[float, float]:
            with no_grad():
                a2 = model(Tensor(X))
                cost = criterion(a2, Y).item()
            return cost, float((a2.data.argmax(axis=1) == labels).mean())

        cost, accuracy = measure()
        run = {"label": METHODS[method], "lr": rates[method], "batch_size": sizes[method] or N,
               "updates_per_epoch": data.num_batches(N, sizes[method]),
               "cost": [cost], "accuracy": [accuracy], "seconds": [0.0]}
        elapsed = 0.0
        for _ in range(epochs):
            start = time.perf_counter()
            for batch in data.batches(N, sizes[method], shuffle=True):
                step(X[batch], Y[batch])
            elapsed += time.perf_counter() - start
            cost, accuracy = measure()
            run["cost"].append(cost)
            run["accuracy"].append(accuracy)
            run["seconds"].append(elapsed)
        result["methods"][method] = run
    return result


def format_compare(result: Mapping[str, Any]) -> str:
    """The table `tinygrad-mlp compare` prints: per method, the cost after some epochs and the
    time, from a `compare_methods` result."""
    epochs = result["epochs"]
    shown = sorted({0, 1, min(2, epochs), epochs // 2, epochs})
    head = (f"{'method':<34}{'batch':>6}{'lr':>7}{'updates/epoch':>14}"
            + "".join(f"{'J@' + str(e):>10}" for e in shown) + f"{'train acc':>10}{'seconds':>9}")
    lines = [f"N={result['N']} samples, loss={result['loss']}, hidden={result['hidden']}, "
             f"{_rates_text(result['lr'])}, seed={result['seed']}", head, "-" * len(head)]
    for run in result["methods"].values():
        lines.append(f"{run['label'][:33]:<34}{run['batch_size']:>6}{run['lr']:>7g}"
                     f"{run['updates_per_epoch']:>14}"
                     + "".join(f"{run['cost'][e]:>10.4f}" for e in shown)
                     + f"{run['accuracy'][-1]:>10.3f}{run['seconds'][-1]:>9.2f}")
    return "\n".join(lines)


def _rates_text(rates: Mapping[str, float]) -> str:
    """'the same learning rate lr=0.5 for all three', or each method's rate."""
    values = set(rates.values())
    if len(values) == 1:
        count = {1: "the one method", 2: "both", 3: "all three"}.get(len(rates), "all")
        return f"the same learning rate lr={values.pop():g} for {count}"
    return "learning rates " + ", ".join(f"{m} {r:g}" for m, r in rates.items())


# --- plots (matplotlib, optional) -------------------------------------------------------------

def _figure(width_px: int, height_px: int, dpi: int = 100) -> Any:
    """A matplotlib Figure of exactly width_px × height_px pixels, drawn on the Agg canvas
    (pyplot and the caller's backend are never touched)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib, an optional extra: "
                          "pip install 'tinygrad_mlp[plot]'") from None
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    figure.savefig(path, dpi=figure.dpi)   # never bbox_inches="tight": the size stays exact
    return path


def plot_history(history: Any, path: str | os.PathLike, size: tuple[int, int] = (1000, 400)
                 ) -> str:
    """Loss and accuracy per epoch, train and validation, side by side; a PNG of `size` pixels.

    `history`: what `fit` returns (its `.history` dict) or a dict of lists (`loss`, `val_loss`,
    `accuracy`, `val_accuracy`; only `loss` is required). Returns the path written.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping) or not len(logs.get("loss", ())):
        raise ValueError("plot_history: expected a History or a dict with a non-empty 'loss' "
                         f"list, got {type(history).__name__} with keys "
                         f"{sorted(logs) if isinstance(logs, Mapping) else '-'}")
    figure = _figure(*size)
    panels = [("loss", "cost J")] + ([("accuracy", "accuracy")] if logs.get("accuracy") else [])
    for i, (key, title) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), i)
        for prefix, style in (("", "-o"), ("val_", "--s")):
            values = logs.get(prefix + key)
            if values:
                epochs = range(1, len(values) + 1)
                axes.plot(epochs, values, style, markersize=3,
                          label="validation" if prefix else "train")
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    return _save(figure, path)


def plot_weights(layer: Any, path: str | os.PathLike, image_shape: tuple[int, int] | None = None,
                 columns: int | None = None, cell: int = 100) -> str:
    """The first layer's weights as images: column j of W (D × M) is what hidden unit j looks
    for, drawn as a √D × √D picture (8×8 digits, 28×28 MNIST, 48×48 FER2013) in a grid.

    `layer`: an nn.Linear, a Sequential (its first Linear), a Tensor or an array of shape (D, M).
    Red is positive, blue negative, each image scaled to its own largest |weight|. The PNG is
    `columns × cell` by `rows × cell` pixels (columns defaults to ⌈√M⌉). Returns the path written.
    """
    W = _first_weight(layer)
    if W.ndim != 2:
        raise ValueError(f"plot_weights: expected a weight matrix (D, M), got shape {W.shape}")
    D, M = W.shape
    if image_shape is None:
        side = math.isqrt(D)
        if side * side != D:
            raise ValueError(f"plot_weights: D = {D} inputs is not a square image (64 = 8×8, "
                             f"784 = 28×28, 2304 = 48×48); pass image_shape=(height, width)")
        image_shape = (side, side)
    if image_shape[0] * image_shape[1] != D:
        raise ValueError(f"plot_weights: image_shape {tuple(image_shape)} does not hold D = {D} "
                         f"weights")
    columns = columns or math.ceil(math.sqrt(M))
    rows = math.ceil(M / columns)
    figure = _figure(columns * cell, rows * cell)
    for j in range(M):
        axes = figure.add_subplot(rows, columns, j + 1)
        image = W[:, j].reshape(image_shape)
        limit = float(np.abs(image).max()) or 1.0
        axes.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(str(j), fontsize=7, pad=2)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93, wspace=0.1, hspace=0.3)
    return _save(figure, path)


def _first_weight(layer: Any) -> np.ndarray:
    if isinstance(layer, nn.Sequential):
        linears = [child for child in layer if isinstance(child, nn.Linear)]
        if not linears:
            raise ValueError("plot_weights: this Sequential has no Linear layer")
        layer = linears[0]
    if isinstance(layer, nn.Linear):
        layer = layer.weight
    return np.asarray(layer.data if isinstance(layer, Tensor) else layer, dtype=np.float64)


def plot_compare(result: Mapping[str, Any], path: str | os.PathLike,
                 size: tuple[int, int] = (1100, 420)) -> str:
    """The blog's figure: cost J against epochs and against wall-clock seconds, one curve per
    way to learn, from a `compare_methods` result. A PNG of `size` pixels; returns the path."""
    figure = _figure(*size)
    by_epoch = figure.add_subplot(1, 2, 1)
    by_time = figure.add_subplot(1, 2, 2, sharey=by_epoch)
    for run in result["methods"].values():
        label = f"{run['label']}, batch {run['batch_size']}"
        by_epoch.plot(range(len(run["cost"])), run["cost"], "-o", markersize=3, label=label)
        by_time.plot(run["seconds"], run["cost"], "-o", markersize=3, label=label)
    by_epoch.set_xlabel("epoch")
    by_time.set_xlabel("wall-clock seconds (training only)")
    by_epoch.set_ylabel(f"cost J ({result['loss']}, over all {result['N']} samples)")
    by_epoch.set_title("cost per epoch")
    by_time.set_title("cost per second")
    for axes in (by_epoch, by_time):
        axes.set_yscale("log")
        axes.grid(alpha=0.3, which="both")
    by_epoch.legend(fontsize=8)
    figure.suptitle(f"GD vs SGD vs mini-batch, same network, same start; "
                    f"{_rates_text(result['lr'])}")
    figure.tight_layout()
    return _save(figure, path)
