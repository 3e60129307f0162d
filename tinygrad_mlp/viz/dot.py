"""The graph as Graphviz DOT text, and drawn to SVG/PNG/PDF through Graphviz's `dot` if present.

    print(viz.to_dot(J))                      # the graph, with every node's gradient after explain
    viz.render(J, "graph.svg")                # SVG/PNG through `dot`, or a .dot file without it
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Mapping

import numpy as np

from tinygrad_mlp._checks import choice, finite_real
from tinygrad_mlp._files import write_atomically
from tinygrad_mlp.tensor import Tensor
from tinygrad_mlp.viz.explain import delta_name, node_gradients
from tinygrad_mlp.viz.graph import Graph, build_graph, is_freed, is_parameter, node_kind, norm

__all__ = ["to_dot", "render", "output_format"]

RANKDIRS = ("LR", "RL", "TB", "BT")   # Graphviz's directions: left to right, …
FORMATS = {"dot": "dot", "gv": "dot", "svg": "svg", "png": "png", "pdf": "pdf"}   # name -> kind
_STYLE = {   # kind -> DOT attributes: ops are rounded boxes, parameters orange, data grey ellipses
    "op": 'shape=box, style="rounded,filled", fillcolor="#dae8fc"',
    "parameter": 'shape=box, style=filled, fillcolor="#ffd59b"',
    "input": 'shape=ellipse, style=filled, fillcolor="#eeeeee"',
    "constant": 'shape=ellipse, style=dashed',
    "freed": 'shape=box, style="rounded,filled", fillcolor="#f8cecc", color="#b85450"',
}


def _dot_escape(text: str) -> str:
    """Text inside a DOT "…" string: Graphviz reads backslash escapes and HTML entities in
    labels (`&lt;` would show as <), so both are escaped."""
    return (text.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
            .replace("\n", "\\n"))


def _node_label(node: Tensor, kind: str, graph: Graph, grad: np.ndarray | None = None,
                deltas: bool = False) -> str:
    """The node's lines: name and op, shape and dtype, and `grad` (default: its `.grad`), named
    δk at Zk when `deltas`."""
    name = graph.name(node)
    grad = node.grad if grad is None else grad
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
    if grad is not None:
        delta = delta_name(name or "") if deltas else None
        lines.append(f"{delta + ' = ∂J/∂' + name if delta else 'grad'} "
                     f"{'×'.join(map(str, grad.shape)) or 'scalar'} ‖g‖={norm(grad):.4g}")
    if kind == "freed":
        lines.append("graph freed by backward():\nuse backward(retain_graph=True)")
    return "\n".join(lines)


def to_dot(tensor: Tensor, params: Mapping[str, Tensor] | None = None,
           clusters: bool = True, rankdir: str = "LR", fontsize: float = 10,
           gradients: bool = False, deltas: bool = False) -> str:
    """Graphviz DOT text of the graph that produced `tensor`: one node per op and per leaf.

    Each op node shows its op and output shape and dtype; parameters (orange boxes) are labelled
    by `params` (e.g. `dict(model.named_parameters())`) or their `.name`; inputs are grey
    ellipses, scalar constants dashed ones. A node holding `.grad` also shows the gradient's
    shape and norm: after `backward(retain_graph=True)` the leaves do, after `explain()` every
    node does. With `clusters`, each layer (parameters named `0.weight`, `0.bias`, …) and the op
    that consumes them are drawn in one box. Edges run from input to output, in input order.
    `fontsize` (points) sizes the labels: larger text makes a drawing scaled to a page readable.
    `gradients=True` shows ∂J/∂node on EVERY node of the scalar `tensor`, computed by one extra
    backward pass through the live graph (build it again, or keep it with
    `backward(retain_graph=True)`) that changes no `.grad`. `deltas=True` names the gradient at
    Zk as the blog does: δk = ∂J/∂Zk.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot expects a Tensor, got {type(tensor).__name__}")
    choice("rankdir", rankdir, RANKDIRS, "to_dot")
    finite_real("fontsize", fontsize, "to_dot", low=1, high=1000)
    graph = build_graph(tensor, params)
    grads = node_gradients(tensor, params, graph) if gradients else {}
    ids = {id(node): f"n{i}" for i, node in enumerate(graph.nodes)}
    layer_of: dict[int, str] = {}   # node id -> layer prefix ("0" for "0.weight")
    if clusters:
        for node in graph.nodes:
            name = graph.name(node) or ""
            if is_parameter(node) and "." in name:
                layer_of.setdefault(id(node), name.rsplit(".", 1)[0])
        for parent, child in graph.edges:
            if id(parent) in layer_of and is_parameter(parent):
                layer_of.setdefault(id(child), layer_of[id(parent)])
    lines = ["digraph tinygrad_mlp {", f"  rankdir={rankdir};",
             f'  node [fontname="Helvetica", fontsize={fontsize:g}];',
             '  edge [color="#555555"];']
    lines.append(f'  label="{_dot_escape(_caption(tensor))}"; labelloc=t; fontname="Helvetica";')
    by_layer: dict[str, list[str]] = {}
    for node in graph.nodes:
        kind = node_kind(node)
        extra = ", peripheries=2" if node is tensor else ""
        label = _node_label(node, kind, graph, grads.get(id(node)), deltas)
        line = f'{ids[id(node)]} [label="{_dot_escape(label)}", ' \
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
    lines.extend(f"  {ids[id(parent)]} -> {ids[id(child)]};" for parent, child in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _caption(tensor: Tensor) -> str:
    if is_freed(tensor):
        return "graph already freed by backward(): call backward(retain_graph=True) to draw it"
    if tensor.is_leaf:
        return "a leaf tensor: no graph behind it"
    return "computation graph (inputs → output); ‖g‖ = norm of the gradient"


def output_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format `render` writes `path` in: `format`, else the file's extension (none: dot).
    A ValueError for an unknown format, or one that contradicts the extension (`g.svg` as png
    would be PNG bytes under an SVG name)."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    fmt = (format or extension or "dot").lower()
    if fmt not in FORMATS:
        raise ValueError(f"render: unknown format {fmt!r} for {path!r}; expected dot, svg, png "
                         f"or pdf")
    if extension in FORMATS and FORMATS[extension] != FORMATS[fmt]:
        raise ValueError(f"render: {path!r} ends in .{extension} but the format asked is "
                         f"{fmt}; give a .{fmt} file name, or leave the format to the extension")
    return fmt


def render(tensor: Tensor, path: str | os.PathLike, format: str | None = None,
           params: Mapping[str, Tensor] | None = None) -> str:
    """Write the graph of `tensor` to `path` and return the path written.

    `format` (default: the file's extension) is `dot`, `svg`, `png` or `pdf`; a `format` that
    contradicts the extension (`g.svg` as png) is refused. SVG/PNG/PDF need Graphviz's `dot`
    program; without it the DOT text is written next to `path` (extension `.dot`), a note on
    stderr says how to get Graphviz, and that `.dot` path is returned. Files are written
    atomically (as `tm.save`): a failure leaves any old file as it was.
    """
    path = os.fspath(path)
    fmt = output_format(path, format)
    text = to_dot(tensor, params=params)
    if FORMATS[fmt] == "dot":
        write_atomically(path, lambda file: file.write(text.encode("utf-8")), "render")
        return path
    dot = shutil.which("dot")
    if dot is None:
        dot_path = os.path.splitext(path)[0] + ".dot"
        write_atomically(dot_path, lambda file: file.write(text.encode("utf-8")), "render")
        print(f"Graphviz's `dot` is not installed, so {path} was not drawn; wrote {dot_path}. "
              f"Install Graphviz (apt-get install graphviz, brew install graphviz, or "
              f"https://graphviz.org/download) and run: dot -T{fmt} {dot_path} -o {path}",
              file=sys.stderr)
        return dot_path
    result = subprocess.run([dot, f"-T{fmt}"], input=text.encode("utf-8"),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"render: `dot -T{fmt}` failed on {path}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    write_atomically(path, lambda file: file.write(result.stdout), "render")
    return path
