"""`draw`: the graph behind a tensor as an object a notebook displays (the last line of a cell).

    J.backward(retain_graph=True)
    viz.draw(J)                   # in Jupyter: the graph, every node with its gradient

With Graphviz's `dot` on the PATH the drawing is Graphviz's SVG (`_repr_svg_`); without it, the
layered layout of svg.py inside a small HTML block (`_repr_html_`), so it shows either way.
"""

from __future__ import annotations

import shutil
from typing import Mapping

from tinygrad_mlp.tensor import Tensor
from tinygrad_mlp.viz.svg import graph_svg

__all__ = ["Drawing", "draw"]


class Drawing:
    """A graph drawn once, when `draw` is called: later changes to the graph do not redraw it.

    `svg` is the `<svg>` element, `engine` who laid it out ("dot" or "layered").
    """

    def __init__(self, svg: str, engine: str) -> None:
        self.svg, self.engine = svg, engine

    def _repr_svg_(self) -> str | None:
        return self.svg if self.engine == "dot" else None

    def _repr_html_(self) -> str | None:
        if self.engine == "dot":
            return None                 # IPython then shows the SVG above
        return f'<div style="max-width:100%;overflow-x:auto">{self.svg}</div>'

    def __repr__(self) -> str:
        return f"<Drawing of a graph, laid out by {self.engine}: {len(self.svg)} characters of SVG>"


def draw(tensor: Tensor, params: Mapping[str, Tensor] | None = None, gradients: bool = False,
         deltas: bool = False) -> Drawing:
    """The graph behind `tensor` as a Drawing that displays itself, each node with its gradient
    when backward has run; `params` names parameters (e.g. dict(model.named_parameters())).
    `gradients=True` shows ∂J/∂node on every node, `deltas=True` names δ2, δ1 at Z2, Z1 (see
    `to_dot`)."""
    engine = "dot" if shutil.which("dot") else "layered"
    return Drawing(graph_svg(tensor, params=params, engine=engine, gradients=gradients,
                             deltas=deltas), engine)
