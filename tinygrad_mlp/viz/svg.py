"""The graph as inline SVG: drawn by Graphviz's `dot` when it is installed, else by a simple
layered layout computed here, so a page that shows the graph always works.

Both drawings have the same structure, which the HTML walk relies on: each node is a
`<g class="node">` whose `<title>` is its DOT id (`n0`, `n1`, … in `build_graph` order) and each
edge a `<g class="edge">` whose `<title>` is `n0->n3`; shapes and colours follow `to_dot`.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from typing import Mapping

import numpy as np

from tinygrad_mlp.tensor import Tensor
from tinygrad_mlp.viz.dot import _STYLE, _node_label, to_dot
from tinygrad_mlp.viz.explain import node_gradients
from tinygrad_mlp.viz.graph import Graph, build_graph, node_kind

__all__ = ["graph_svg"]

FONT_SIZE = 16          # the labels (points for Graphviz, px here): large, for a projector
LINE_HEIGHT = 20
CHAR_WIDTH = 9.2        # px per character of a label line, a generous average for sans-serif
LAYER_GAP = 64          # px between columns
NODE_GAP = 22           # px between nodes of one column
MARGIN = 16


def graph_svg(tensor: Tensor, params: Mapping[str, Tensor] | None = None,
              engine: str = "auto", gradients: bool = False, deltas: bool = False) -> str:
    """The graph behind `tensor` as one `<svg>` element (no XML prolog), inputs left, output
    right. `engine`: "dot" (Graphviz; an error if it is missing), "layered" (computed here),
    or "auto" (Graphviz when `dot` is on the PATH, else layered). `gradients` and `deltas` as
    in `to_dot`: ∂J/∂node on every node, and δk named at Zk."""
    if engine not in ("auto", "dot", "layered"):
        raise ValueError(f"graph_svg: engine must be 'auto', 'dot' or 'layered', got {engine!r}")
    dot = shutil.which("dot") if engine != "layered" else None
    if engine == "dot" and dot is None:
        raise RuntimeError("graph_svg: engine='dot' needs Graphviz's `dot` on the PATH "
                           "(apt-get install graphviz, brew install graphviz)")
    if dot is not None:
        return _graphviz_svg(dot, to_dot(tensor, params=params, fontsize=FONT_SIZE,
                                         gradients=gradients, deltas=deltas))
    graph = build_graph(tensor, params)
    return layered_svg(graph, node_gradients(tensor, params, graph) if gradients else {}, deltas)


def _graphviz_svg(dot: str, text: str) -> str:
    result = subprocess.run([dot, "-Tsvg"], input=text.encode("utf-8"), capture_output=True,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"graph_svg: `dot -Tsvg` failed: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    svg = result.stdout.decode("utf-8")
    svg = svg[svg.index("<svg"):]                       # drop the XML prolog and DOCTYPE
    svg = re.sub(r"<!--.*?-->\n?", "", svg, flags=re.S)  # and Graphviz's comments
    # the page sizes the drawing: keep the viewBox, drop the fixed width and height
    return re.sub(r'<svg width="[^"]*" height="[^"]*"', "<svg", svg, count=1)


def layered_svg(graph: Graph, grads: Mapping[int, np.ndarray] | None = None,
                deltas: bool = False) -> str:
    """A left-to-right layered drawing: a node's column is its longest path from an input;
    within a column, nodes are ordered by the mean row of their inputs. `grads` (by id(node))
    are shown instead of the nodes' `.grad`; `deltas` names the gradient at Zk δk."""
    nodes, edges = graph.nodes, graph.edges
    ids = {id(node): f"n{i}" for i, node in enumerate(nodes)}
    parents = {id(node): [p for p, child in edges if child is node] for node in nodes}
    children = {id(node): [child for p, child in edges if p is node] for node in nodes}
    column: dict[int, int] = {}
    for node in nodes:                                   # inputs come before outputs
        column[id(node)] = max((column[id(p)] + 1 for p in parents[id(node)]), default=0)
    for node in nodes:                  # an input sits just left of its first consumer
        if not parents[id(node)] and children[id(node)]:
            column[id(node)] = min(column[id(c)] for c in children[id(node)]) - 1
    columns: list[list[Tensor]] = [[] for _ in range(max(column.values(), default=0) + 1)]
    row: dict[int, float] = {}
    for node in nodes:
        members = columns[column[id(node)]]
        above = parents[id(node)]
        row[id(node)] = sum(row[id(p)] for p in above) / len(above) if above else len(members)
        members.append(node)
    for node in nodes:                  # inputs: level with their consumers, just above
        if not parents[id(node)] and children[id(node)]:
            below = children[id(node)]
            row[id(node)] = sum(row[id(c)] for c in below) / len(below) - 0.5
    for members in columns:
        members.sort(key=lambda node: row[id(node)])

    grads = grads or {}
    labels = {id(node): _node_label(node, node_kind(node), graph, grads.get(id(node)),
                                    deltas).split("\n") for node in nodes}
    size = {key: (max(len(line) for line in lines) * CHAR_WIDTH + 28,
                  len(lines) * LINE_HEIGHT + 16) for key, lines in labels.items()}
    widths = [max(size[id(node)][0] for node in members) for members in columns]
    heights = [sum(size[id(node)][1] for node in members) + NODE_GAP * (len(members) - 1)
               for members in columns]
    total_height = max(heights) + 2 * MARGIN
    centre: dict[int, tuple[float, float]] = {}
    x = MARGIN
    for members, width, height in zip(columns, widths, heights):
        y = (total_height - height) / 2
        for node in members:
            w, h = size[id(node)]
            centre[id(node)] = (x + width / 2, y + h / 2)
            y += h + NODE_GAP
        x += width + LAYER_GAP
    total_width = x - LAYER_GAP + MARGIN

    out = [f'<svg viewBox="0 0 {total_width:.0f} {total_height:.0f}" '
           f'xmlns="http://www.w3.org/2000/svg" class="layered">',
           f'<g id="graph0" class="graph" font-family="Helvetica,Arial,sans-serif" '
           f'font-size="{FONT_SIZE}">']
    for parent, child in edges:
        out.append(_edge(ids[id(parent)], ids[id(child)], centre[id(parent)], size[id(parent)],
                         centre[id(child)], size[id(child)]))
    for node in nodes:
        out.append(_node(ids[id(node)], node_kind(node), labels[id(node)], centre[id(node)],
                         size[id(node)], node is graph.root))
    out += ["</g>", "</svg>"]
    return "\n".join(out)


def _style(kind: str) -> tuple[str, str, bool]:
    """(shape, fill, dashed) of a node kind, read from `to_dot`'s style table."""
    style = _STYLE[kind]
    fill = re.search(r'fillcolor="(#[0-9a-fA-F]+)"', style)
    return (re.search(r"shape=(\w+)", style).group(1), fill.group(1) if fill else "white",
            "dashed" in style)


def _node(key: str, kind: str, lines: list[str], centre: tuple[float, float],
          size: tuple[float, float], is_root: bool) -> str:
    (cx, cy), (w, h) = centre, size
    shape, fill, dashed = _style(kind)
    stroke = ' stroke="black"' + (' stroke-dasharray="5,3"' if dashed else "")
    if shape == "ellipse":
        outline = (f'<ellipse fill="{fill}"{stroke} cx="{cx:.1f}" cy="{cy:.1f}" '
                   f'rx="{w / 2 + 6:.1f}" ry="{h / 2 + 2:.1f}"/>')
    else:
        rounded = ' rx="8"' if kind == "op" else ""
        outline = (f'<rect fill="{fill}"{stroke}{rounded} x="{cx - w / 2:.1f}" '
                   f'y="{cy - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}"/>')
        if is_root:   # to_dot draws the output with two outlines (peripheries=2)
            outline += (f'<rect fill="none" stroke="black"{rounded} x="{cx - w / 2 - 4:.1f}" '
                        f'y="{cy - h / 2 - 4:.1f}" width="{w + 8:.1f}" height="{h + 8:.1f}"/>')
    top = cy - (len(lines) - 1) * LINE_HEIGHT / 2 + FONT_SIZE * 0.35
    texts = "".join(f'<text text-anchor="middle" x="{cx:.1f}" y="{top + i * LINE_HEIGHT:.1f}">'
                    f"{html.escape(line)}</text>" for i, line in enumerate(lines))
    return f'<g class="node"><title>{key}</title>{outline}{texts}</g>'


def _edge(source: str, target: str, start: tuple[float, float], start_size: tuple[float, float],
          end: tuple[float, float], end_size: tuple[float, float]) -> str:
    x1, y1 = start[0] + start_size[0] / 2, start[1]
    x2, y2 = end[0] - end_size[0] / 2 - 8, end[1]      # stop short: the arrowhead fills the gap
    bend = max((x2 - x1) / 2, 20)
    path = (f'<path fill="none" stroke="#555555" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} '
            f'{x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"/>')
    head = (f'<polygon fill="#555555" stroke="#555555" points="{x2:.1f},{y2 - 5:.1f} '
            f'{x2 + 9:.1f},{y2:.1f} {x2:.1f},{y2 + 5:.1f}"/>')
    return (f'<g class="edge"><title>{html.escape(source)}-&gt;{html.escape(target)}</title>'
            f"{path}{head}</g>")
