"""Seeing autodiff work: the graph as data and as Graphviz DOT, the backward walk told step by
step, and plots.

    J = ...                                   # any scalar built from Tensors
    print(viz.explain(J))                     # runs J.backward(retain_graph=True) and narrates it
    print(viz.to_dot(J))                      # the graph, with every node's gradient after explain
    viz.render(J, "graph.svg")                # SVG/PNG through Graphviz's `dot`, or a .dot file
    viz.draw(J)                               # in a notebook: the drawing, inline

graph.py   the graph behind a tensor as data (`build_graph`), on the engine's topological order
dot.py     `to_dot`, `render`
explain.py `explain`, `backward_steps` (each op's line comes from its Function's `rule`)
html.py    `explain_html`: the walk as a self-contained page (walk.css, walk.js inlined)
svg.py     `graph_svg`: the graph as inline SVG, from Graphviz or a layered layout
display.py `draw`: the graph as an object a notebook displays (SVG or HTML)
plots.py   `plot_history`, `plot_weights`, `plot_compare` (matplotlib, the optional extra)

viz draws and tells; it trains nothing and loads no data. The blog's network, its example batch
and the three ways to learn compared are in `tinygrad_mlp.blog`.
"""

from tinygrad_mlp.viz.dot import output_format, render, to_dot
from tinygrad_mlp.viz.display import Drawing, draw
from tinygrad_mlp.viz.explain import Step, backward_steps, explain
from tinygrad_mlp.viz.graph import Graph, build_graph
from tinygrad_mlp.viz.html import Check, explain_html
from tinygrad_mlp.viz.plots import plot_compare, plot_history, plot_weights
from tinygrad_mlp.viz.svg import graph_svg

__all__ = ["to_dot", "render", "output_format", "draw", "Drawing", "explain", "backward_steps", "Step", "Graph",
           "build_graph", "explain_html", "Check", "graph_svg", "plot_history", "plot_weights",
           "plot_compare"]
