"""The backward walk told step by step: what reaches each node and the rule its op applies.

    J = ...                                   # any scalar built from Tensors
    print(viz.explain(J))                     # runs J.backward(retain_graph=True) and narrates it

`backward()` frees the graph (each node's `ctx.parents` becomes None). `explain` calls
`backward(retain_graph=True)` itself and leaves each intermediate gradient in `.grad`, so
`to_dot` can show it afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from tinygrad_mlp.tensor import Tensor, backpropagate
from tinygrad_mlp.viz.graph import Graph, build_graph, is_freed, norm

__all__ = ["explain", "backward_steps", "node_gradients", "Step", "rule", "named_rule",
           "format_values", "delta_name"]

def rule(node: Tensor) -> str:
    """The local derivative the op that made `node` applies: its Function's `rule` (a class
    attribute beside its forward), else, for a Function without one, its docstring's first line."""
    op = node.op
    function = type(node.creator)
    if function.rule:
        return function.rule
    doc = (function.__doc__ or "").strip().splitlines()
    summary = f" ({doc[0].strip()})" if doc else ""
    return f"a user-defined Function: grads = {op}.backward(ctx, grad){summary}"


def named_rule(text: str, input_names: list[str]) -> str:
    """A loss's rule, written with the blog's 2-layer names (a2 the prediction, Z its logits),
    in the names of this graph: on a 3-layer net a loss fed by a3 says (a3 − Y)/N, and a fused
    loss fed by Z3 says grad_Z3 = grad · (a3 − Y)/N. Other rules are returned unchanged."""
    def word(name: str) -> str:            # a whole name; `grad_Z` holds the name Z
        return rf"(?<![A-Za-z0-9]){name}(?![A-Za-z0-9])"

    if not input_names or not re.search(word("a2"), text):
        return text
    match = re.fullmatch(r"([aZ])(\d+)", input_names[0])
    if match is None:
        return text
    layer = match.group(2)
    if match.group(1) == "Z":
        text = re.sub(word("Z"), f"Z{layer}", text)
    return re.sub(word("a2"), f"a{layer}", text)


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
    accumulated: bool = False   # a leaf whose .grad already held a gradient: this one was added

    @property
    def is_leaf(self) -> bool:
        return self.op is None


def backward_steps(loss: Tensor, params: Mapping[str, Tensor] | None = None,
                   graph: Graph | None = None) -> list[Step]:
    """Run `loss.backward(retain_graph=True)` and record, node by node in the order the engine
    visits them (reversed `topological_order`), the gradient that arrived at each node.
    `graph`: `build_graph(loss, params)` when the caller already has it.

    Leaf gradients accumulate into `.grad` exactly as after `loss.backward()`; every
    intermediate node also keeps its gradient in `.grad` (as if `retain_grad()` had been called)
    so `to_dot` can show it. The graph stays alive.
    """
    if graph is None and isinstance(loss, Tensor):
        graph = build_graph(loss, params)
    arrived = node_gradients(loss, params, graph)
    order = [node for node in reversed(graph.nodes) if node.requires_grad]
    held = {id(node) for node in order if node.is_leaf and node.grad is not None}
    for node in order:
        grad, new = node.grad, arrived.get(id(node))
        node.grad = new if grad is None or new is None else grad + new
    return [Step(position, node, graph.describe(node), node.op, graph.input_names(node),
                 None if node.is_leaf else named_rule(rule(node), graph.input_names(node)),
                 arrived.get(id(node)),
                 named=graph.name(node) is not None,
                 accumulated=id(node) in held and id(node) in arrived)
            for position, node in enumerate(order, start=1)]


def node_gradients(loss: Tensor, params: Mapping[str, Tensor] | None = None,
                   graph: Graph | None = None) -> dict[int, np.ndarray]:
    """∂loss/∂node for every node behind the scalar `loss` that receives one, by id(node): one
    backward pass through the live graph (it stays alive) that leaves every `.grad` as it was."""
    if not isinstance(loss, Tensor):
        raise TypeError(f"explain expects a Tensor, got {type(loss).__name__}")
    if is_freed(loss):
        raise RuntimeError("explain: the graph behind this tensor was already freed by "
                           "backward(); build it again, or call backward(retain_graph=True)")
    if not loss.requires_grad:
        raise RuntimeError("explain: this tensor has no graph (nothing requires grad); create "
                           "the parameters with requires_grad=True")
    if loss.data.size != 1:
        raise ValueError(f"explain: needs a scalar loss, got shape {loss.shape}; call .sum() "
                         f"or .mean() first")
    graph = graph or build_graph(loss, params)
    forward_order = [node for node in graph.nodes if node.requires_grad]   # topological_order
    freed = [node.op for node in reversed(forward_order) if is_freed(node)]
    if freed:
        raise RuntimeError(f"explain: part of the graph (at {freed[0]}) was already freed by "
                           f"backward(); call backward(retain_graph=True) if you need both")
    saved = [node.grad for node in forward_order]
    for node in forward_order:
        node.grad = None
    try:
        backpropagate(forward_order, np.ones_like(loss.data), retain_graph=True,
                      retain_grads=True)
        return {id(node): node.grad for node in forward_order if node.grad is not None}
    finally:
        for node, grad in zip(forward_order, saved):
            node.grad = grad


def delta_name(name: str) -> str | None:
    """The blog's name for the gradient at Zk: δk (None for any other node)."""
    match = re.fullmatch(r"Z(\d+)", name)
    return f"δ{match.group(1)}" if match else None


def format_values(array: np.ndarray, max_values: int, indent: str) -> str:
    """The entries of a small array, rounded to 4 decimals, one indented line per row ("" when
    it has more than `max_values` entries)."""
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
        delta = delta_name(step.name)
        if delta:
            grad_name = f"{delta} = {grad_name}"
        if step.grad is None:
            out.append("    receives no gradient (nothing that depends on it reached it)")
        elif step.position == 1:
            out.append(f"    receives {grad_name} = {step.grad.item():.4g} (the seed)")
        else:
            out.append(f"    receives {grad_name}  norm {norm(step.grad):.4g}"
                       + format_values(step.grad, max_values, "      "))
        if step.accumulated:
            out.append(f"    added to {step.name}.grad (a leaf: the chain ends here), which "
                       f"already held a gradient:\n      backward accumulates, so {step.name}.grad "
                       "is now the sum (zero_grad() first keeps this walk's alone)")
        elif step.is_leaf:
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
            size = "none" if step.grad is None else f"{norm(step.grad):.4g}"
            out.append(f"  ∂J/∂{step.name:<{width}}  shape {step.tensor.shape}  norm {size}")
    else:
        out.append("No parameter requires grad: nothing to update.")
    return "\n".join(out)
