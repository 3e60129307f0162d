"""The backward walk as one self-contained HTML page, to step through in a browser or on a
projector: the graph as inline SVG, Next / Previous / Play and the arrow keys, the node being
visited highlighted and the edges its gradient flows along marked.

    html = viz.explain_html(J, "walk.html")   # runs J.backward(retain_graph=True), like explain

The page loads nothing: its CSS (walk.css) and JavaScript (walk.js, beside this file) are
inlined, its data is a JSON block (values that are not finite as the strings "nan", "inf",
"-inf"), and a Content-Security-Policy forbids any request, form or <base>, and runs only the
page's own script and style (by their SHA-256: no 'unsafe-inline'). Chromium ignores CSP's
`navigate-to` (dropped from the standard), so navigation is limited by the page holding no link.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping

import numpy as np

from tinygrad_mlp._files import write_atomically
from tinygrad_mlp.tensor import Tensor
from tinygrad_mlp.viz.explain import Step, delta_name, backward_steps
from tinygrad_mlp.viz.graph import build_graph, inputs, node_kind, norm
from tinygrad_mlp.viz.svg import FONT_SIZE, graph_svg

__all__ = ["explain_html", "Check"]

CSP = ("default-src 'none'; style-src {style}; script-src {script}; img-src data:; "
       "form-action 'none'; base-uri 'none'")   # {style}, {script}: the inlined blocks' hashes


@dataclass(frozen=True)
class Check:
    """A hand-derived value to compare with the gradient at one node, shown at that step:
    `scale · ∂J/∂node` against `expected`, with the largest difference. For the blog's δ2 at
    Z2: label "the blog's δ2 = (a2 − Y)·a2(1 − a2)", expected reference.deltas(...)[1],
    scale N, note "the blog sums over the N samples, J here is their mean"."""
    label: str
    expected: np.ndarray
    scale: float = 1.0
    source: str = "the hand-derived formula"
    note: str = ""              # why the scale, say


def explain_html(tensor: Tensor, path: str | os.PathLike | None = None,
                 params: Mapping[str, Tensor] | None = None, max_values: int = 40,
                 checks: Mapping[str, Check] | None = None, title: str | None = None,
                 engine: str = "auto") -> str:
    """The backward walk of the scalar `tensor` as a self-contained HTML page; returns its text
    and writes it to `path` when given.

    The page draws the graph (Graphviz's `dot` when installed, else a layout computed in
    Python; `engine` as in `graph_svg`) and steps through the nodes in the order backward()
    visits them: for each, its name and op, its shape, the gradient that arrives (norm, and the
    values when there are at most `max_values`), the local rule its op applies, and the forward
    value of any node on hover or click. `checks` maps a node's name (e.g. "Z2") to a `Check`
    shown at its step. Runs `tensor.backward(retain_graph=True)` (see `backward_steps`).
    """
    svg = graph_svg(tensor, params, engine)       # drawn before the walk: no gradients in it
    graph = build_graph(tensor, params)
    ids = {id(node): f"n{i}" for i, node in enumerate(graph.nodes)}
    steps = backward_steps(tensor, params, graph)
    unknown = sorted(set(checks or {}) - {step.name for step in steps})
    if unknown:
        raise ValueError(f"explain_html: checks name {unknown}, which are not nodes of this "
                         f"graph (its nodes: {', '.join(step.name for step in steps)})")
    data = {
        "steps": [_step(step, ids, max_values, (checks or {}).get(step.name)) for step in steps],
        "nodes": {ids[id(node)]: _forward(node, graph.describe(node), max_values)
                  for node in graph.nodes},
        "fontSize": FONT_SIZE,                    # the labels' size in the drawing's units
    }
    heading = title or f"Backward walk of {steps[0].name}"
    page = _page(heading, svg, data, steps)
    if path is not None:
        write_atomically(path, lambda file: file.write(page.encode("utf-8")), "explain_html")
    return page


def _values(array: np.ndarray, max_values: int) -> dict[str, Any] | None:
    """The entries when there are at most `max_values`, rounded to 4 decimals: `rows` (a
    matrix's rows; a vector is one row, a scalar one cell) for the page's table, and `text`
    (numpy's printout) for anything with more than two axes."""
    if array.size > max_values or array.size == 0:
        return None
    array = np.round(np.asarray(array, dtype=np.float64), 4) + 0.0   # + 0.0: no "-0." entries
    if array.ndim > 2:
        return {"rows": None, "text": np.array2string(array, precision=4, suppress_small=True,
                                                      separator=" ", max_line_width=60)}
    return {"rows": [[_number(v) for v in row] for row in np.atleast_2d(array).tolist()],
            "text": None}


def _number(value: float) -> float | str:
    """A value for the page's JSON: JSON has no NaN or infinity (json.dumps would write
    `Infinity`, which JSON.parse refuses), so those become the strings numpy prints."""
    return value if math.isfinite(value) else str(value)      # "nan", "inf", "-inf"


def _shape(node: Tensor) -> str:
    return f"{'scalar' if node.ndim == 0 else '×'.join(map(str, node.shape))} {node.dtype}"


def _forward(node: Tensor, name: str, max_values: int) -> dict[str, str]:
    data = np.asarray(node.data, dtype=np.float64)
    summary = (f"{data.size} entries: min {data.min():.4g}, max {data.max():.4g}, "
               f"mean {data.mean():.4g}, ‖·‖ {norm(data):.4g}") if data.size else "empty"
    kind = node_kind(node)
    what = node.op if kind == "op" else kind
    return {"name": name, "what": what, "shape": _shape(node), "summary": summary,
            "values": _values(data, max_values)}


def _step(step: Step, ids: dict[int, str], max_values: int, check: Check | None
          ) -> dict[str, Any]:
    node = step.tensor
    delta = delta_name(step.name)
    targets = [parent for parent in inputs(node) if parent.requires_grad]
    if step.is_leaf:
        heading = f"{step.name}: a parameter, a target"
        rule = f"stored in {step.name}.grad (a leaf: the chain ends here)"
    else:
        heading = f"{step.name + ' = ' if step.named else ''}{step.op}({', '.join(step.inputs)})"
        rule = f"{step.op}: {step.rule}"
    grad_name = f"∂J/∂{step.name}"
    out: dict[str, Any] = {
        "node": ids[id(node)], "position": step.position, "name": step.name, "title": heading,
        "shape": _shape(node), "gradName": f"{delta} = {grad_name}" if delta else grad_name,
        "norm": None, "values": None, "rule": rule,
        "flow": sorted({ids[id(parent)] for parent in targets}),
        "passes": ", ".join(dict.fromkeys(name for parent, name in
                                          zip(inputs(node), step.inputs) if parent.requires_grad)),
        "none": ", ".join(dict.fromkeys(name for parent, name in
                                        zip(inputs(node), step.inputs)
                                        if not parent.requires_grad)),
    }
    if step.grad is not None:
        out["norm"] = f"{norm(step.grad):.4g}"
        out["values"] = _values(step.grad, max_values)
        if step.position == 1:
            out["seed"] = True
    if check is not None and step.grad is not None:
        scaled = check.scale * np.asarray(step.grad, dtype=np.float64)
        expected = np.asarray(check.expected, dtype=np.float64)
        if scaled.shape != expected.shape:
            raise ValueError(f"explain_html: the check at {step.name} expects shape "
                             f"{expected.shape}, the gradient there has {scaled.shape}")
        difference = float(np.max(np.abs(scaled - expected))) if scaled.size else 0.0
        factor = "" if check.scale == 1 else f"{check.scale:g} · "
        out["check"] = {"label": check.label, "source": check.source,
                        "compare": f"{factor}∂J/∂{step.name}"
                                   f"{' (' + check.note + ')' if check.note else ''} against "
                                   f"{check.source}: max |difference| {difference:.2g}",
                        "difference": _number(difference),
                        "values": _values(scaled, max_values)}
    return out


def _asset(name: str) -> str:
    return resources.files("tinygrad_mlp.viz").joinpath(name).read_text(encoding="utf-8")


def _printed_steps(steps: list[dict[str, Any]]) -> str:
    """Every step as a list, for the printed page (the screen shows one at a time)."""
    items = []
    for shown in steps:
        norm_text = "no gradient reached it" if shown["norm"] is None else \
            f"{shown['gradName']}, ‖g‖ = {shown['norm']}"
        check = shown.get("check")
        extra = (f"<br>{html.escape(check['label'])}: {html.escape(check['compare'])}"
                 if check else "")
        items.append(f"<li><strong>{html.escape(shown['title'])}</strong> "
                     f"<span class=\"shape\">{html.escape(shown['shape'])}</span><br>"
                     f"receives {html.escape(norm_text)}<br>{html.escape(shown['rule'])}"
                     f"{extra}</li>")
    return "\n".join(items)


def _hash(block: str) -> str:
    """A CSP source for exactly this inline <script> or <style> text."""
    digest = hashlib.sha256(block.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def _page(heading: str, svg: str, data: dict[str, Any], steps: list[Step]) -> str:
    blob = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    # ("<" escaped: no "</script>" inside; allow_nan=False: a non-finite value is a bug here)
    style, script = f"\n{_asset('walk.css')}\n", f"\n{_asset('walk.js')}\n"
    csp = CSP.format(style=_hash(style), script=_hash(script))
    count = len(steps)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(heading)} · tinygrad_mlp</title>
<style>{style}</style>
</head>
<body>
<header>
  <h1>{html.escape(heading)}</h1>
  <p class="lead">backward() visits {count} nodes, each only after every node that used it. Each
  receives ∂J/∂node and hands each input grad × (its local derivative). Never stop until you
  reach the target.</p>
  <nav class="controls" aria-label="walk controls">
    <button id="prev" type="button" title="Previous step (←)">◀ Previous</button>
    <button id="next" type="button" title="Next step (→)">Next ▶</button>
    <button id="play" type="button" title="Play / pause (space)">▶ Play</button>
    <span id="position" aria-live="polite">Step 1 of {count}</span>
    <span class="legend"><span class="swatch current"></span>visiting now
      <span class="swatch visited"></span>gradient known
      <span class="swatch flow"></span>gradient flows</span>
  </nav>
</header>
<main class="layout">
  <section id="graph" aria-label="the computation graph">
{svg}
  </section>
  <section id="panel" aria-live="polite">
    <div class="title">
      <h2 id="step-title"></h2>
      <span id="step-shape" class="shape"></span>
    </div>
    <div class="column">
      <div class="box">
        <h3>receives <span id="grad-name"></span></h3>
        <p class="norm">‖g‖ = <span id="grad-norm"></span></p>
        <div id="grad-values" class="values"></div>
      </div>
      <div class="box check" id="check" hidden>
        <h3 id="check-label"></h3>
        <p id="check-compare"></p>
        <div id="check-values" class="values"></div>
      </div>
    </div>
    <div class="column">
      <div class="box">
        <h3>local rule</h3>
        <p id="step-rule"></p>
        <p id="step-passes"></p>
      </div>
      <div class="box forward">
        <h3>forward value of <span id="forward-name"></span></h3>
        <p id="forward-shape" class="shape"></p>
        <div id="forward-values" class="values"></div>
        <p class="hint">hover over or click any node of the graph</p>
      </div>
    </div>
  </section>
</main>
<ol id="all-steps">
{_printed_steps(data["steps"])}
</ol>
<div id="tooltip" role="tooltip" hidden></div>
<script type="application/json" id="walk-data">{blob}</script>
<script>{script}</script>
</body>
</html>
"""
