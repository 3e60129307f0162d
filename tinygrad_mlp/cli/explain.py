"""`tinygrad-mlp explain`: the backward walk of one step, as text or a page (tm.blog)."""

from __future__ import annotations

import argparse
from typing import Any

from tinygrad_mlp.cli.common import (_check_batch, _check_writable, _command, _non_negative_int,
                                     blog_batch_options)


def add_command(commands: Any) -> None:
    """`explain` and its options."""
    explain = _command(
        commands, "explain", _explain,
        help="the backward walk of one step, with the δ values the blog derives",
        description="Run backward() once on the blog's network and print every node it "
                    "visits, in order: the gradient that arrives, the local derivative rule, "
                    "δ2 and δ1 where they appear, and the gradients reaching W2 and W1; then "
                    "check δ1, δ2 and the weight gradients against the blog's formulas.")
    blog_batch_options(explain, "mse")
    explain.add_argument("--values", type=_non_negative_int, default=40, metavar="K",
                         help="print a gradient's entries when it has at most K (default 40)")
    explain.add_argument("--html", metavar="FILE", default=None,
                         help="write the walk as a self-contained page to step through in a "
                              "browser (Next / Previous / Play, arrow keys) instead of printing")


def _explain(args: argparse.Namespace) -> int:
    from tinygrad_mlp import blog

    _check_batch(args.batch)
    if args.html is not None:                       # (--html "" is an error, not ignored)
        _check_writable(args.html, "--html")
    X, Y, W1, W2 = blog.blog_example(args.batch, args.hidden, args.loss, args.seed)
    if args.html is not None:
        blog.explain_blog_html(X, Y, W1, W2, loss=args.loss, path=args.html,
                               max_values=args.values)
        print(f"wrote the backward walk of the blog's network to {args.html}: open it in a "
              f"browser (→ / ← step, space plays)")
        return 0
    print(f"The blog's network on {args.batch} digits (seed {args.seed}): X {X.shape} · W1 "
          f"{W1.shape} → σ → · W2 {W2.shape} → {'softmax' if args.loss == 'ce' else 'σ'}, "
          f"loss {args.loss}\n")
    print(blog.explain_blog(X, Y, W1, W2, loss=args.loss, max_values=args.values))
    return 0
