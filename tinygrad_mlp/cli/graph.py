"""`tinygrad-mlp graph`: the blog's network as DOT, SVG or PNG (tm.viz)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tinygrad_mlp.cli.common import (UsageError, _check_batch, _check_writable, _command,
                                     blog_batch_options)


def add_command(commands: Any) -> None:
    """`graph` and its options."""
    graph = _command(
        commands, "graph", _graph,
        help="the computation graph of the blog's network, as DOT (or SVG/PNG)",
        description="The graph of the blog's network (X·W1 → σ → ·W2 → σ or softmax → J) on a "
                    "small batch of digits, after one backward pass so every node shows its "
                    "gradient. DOT text on stdout, or a file with --out (SVG/PNG need Graphviz).")
    blog_batch_options(graph, "mse")
    graph.add_argument("--format", choices=("dot", "svg", "png"), default=None,
                       help="output format (default: from --out's extension, else dot)")
    graph.add_argument("--out", metavar="FILE", default=None,
                       help="write to FILE instead of printing DOT to stdout")


def _graph(args: argparse.Namespace) -> int:
    from tinygrad_mlp import blog, viz

    fmt = args.format or (os.path.splitext(args.out)[1].lstrip(".").lower() if args.out else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise UsageError(f"--out {args.out!r}: unknown extension; use .dot, .svg or .png, or "
                         "--format")
    if args.out is None and fmt != "dot":
        raise UsageError(f"--format {fmt} needs --out FILE (only DOT text goes to stdout)")
    if args.out is not None:
        _check_writable(args.out, "--out")
        try:
            viz.output_format(args.out, fmt)
        except ValueError as error:
            raise UsageError(f"--out/--format: {error}") from None
    _check_batch(args.batch)
    J, _ = blog.blog_network(*blog.blog_example(args.batch, args.hidden, args.loss, args.seed),
                             loss=args.loss)
    viz.backward_steps(J)            # one backward pass: every node now holds its gradient
    if args.out is None:
        sys.stdout.write(viz.to_dot(J))
        return 0
    written = viz.render(J, args.out, format=fmt)
    print(f"wrote the graph of the blog's network to {written}")
    return 0
