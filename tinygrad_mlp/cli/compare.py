"""`tinygrad-mlp compare`: GD vs SGD vs mini-batch on the same network and data (tm.blog)."""

from __future__ import annotations

import argparse
from typing import Any

from tinygrad_mlp.cli.common import (METHODS, _check_plot, _command, _data_source, _load_data,
                                     _non_negative_int, _positive_float, _positive_int)


def add_command(commands: Any) -> None:
    """`compare` and its options."""
    compare = _command(
        commands, "compare", _compare,
        help="GD vs SGD vs mini-batch on the same data: cost per epoch and per second",
        description="The blog's three ways to learn on the same network, data and initial "
                    "weights, with plain SGD and the SAME learning rate for all three (full "
                    "batch: 1 update per epoch, per sample: N updates, mini-batch: N/B). Prints "
                    "a table; --plot draws cost against epochs and against seconds.")
    compare.add_argument("--data", type=_data_source, default=("digits", None),
                         metavar="digits|mnist|fashion-mnist|mnist:DIR|fer2013:CSV",
                         help="data set (default: the bundled digits; its 75%% training split)")
    compare.add_argument("--samples", type=_positive_int, default=None, metavar="N",
                         help="use only the first N training samples (default: all)")
    compare.add_argument("--epochs", type=_positive_int, default=10, help="epochs (default 10)")
    compare.add_argument("--lr", type=_learning_rates, default=0.5, metavar="LR",
                         help="learning rate, the same for all three methods (default 0.5); or "
                              "one per method, e.g. gd=2,sgd=0.05 (the others keep 0.5)")
    compare.add_argument("--batch-size", type=_positive_int, default=32, metavar="B",
                         help="mini-batch size (default 32)")
    compare.add_argument("--hidden", type=_positive_int, default=32, metavar="M",
                         help="hidden units M (default 32)")
    compare.add_argument("--loss", choices=("ce", "mse"), default="ce",
                         help="ce (default): softmax + cross-entropy; mse: sigmoid + the blog's J")
    compare.add_argument("--seed", type=_non_negative_int, default=0,
                         help="seeds the split, the initial weights and the shuffling (default 0)")
    compare.add_argument("--plot", metavar="FILE.png", default=None,
                         help="draw the two panels (cost per epoch, per second) to FILE.png")


def _learning_rates(text: str) -> float | dict[str, float]:
    """'0.5' (one rate for all three ways to learn) or 'gd=2,sgd=0.05' (the others keep 0.5)."""
    if "=" not in text:
        return _positive_float(text)
    rates = dict.fromkeys(METHODS, 0.5)
    for item in text.split(","):
        method, _, value = item.partition("=")
        if method.strip() not in rates:
            raise argparse.ArgumentTypeError(f"unknown method {method.strip()!r} in {text!r}; "
                                             f"expected {', '.join(METHODS)}")
        rates[method.strip()] = _positive_float(value.strip())
    return rates


def _compare(args: argparse.Namespace) -> int:
    from tinygrad_mlp import blog, viz

    if args.plot is not None:
        _check_plot(args.plot)
    X, _, y, _, data_name = _load_data(*args.data, seed=args.seed)
    if args.samples is not None:
        X, y = X[:args.samples], y[:args.samples]
    print(f"data: {data_name}: {len(X)} training samples; {args.epochs} epochs per method")
    result = blog.compare_methods(X, y, hidden=args.hidden, epochs=args.epochs, lr=args.lr,
                                  batch_size=args.batch_size, seed=args.seed, loss=args.loss)
    print(blog.format_compare(result))
    if args.plot:
        viz.plot_compare(result, args.plot)
        print(f"plotted cost per epoch and per second to {args.plot}")
    return 0
