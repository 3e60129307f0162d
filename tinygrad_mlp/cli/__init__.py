"""Command line: `tinygrad-mlp` and `python -m tinygrad_mlp`.

    tinygrad-mlp train                      # the blog's network on the bundled 8×8 digits
    tinygrad-mlp train --method sgd --epochs 5 --save digits.npz
    tinygrad-mlp train --data mnist:~/mnist --hidden 128
    tinygrad-mlp compare | graph | explain  # the viz commands
    tinygrad-mlp explain --html walk.html   # the backward walk, to step through in a browser
    tinygrad-mlp exercise list | show NAME | check NAME FILE

Bad arguments are usage errors (exit 2), found before any training; a bad file or a failed run
(out of memory included) is one line on stderr and exit 1, never a traceback.

One module per command (train, compare, graph, explain, exercise, fer), each with its
`add_command` (the subcommand and its options) and the function it runs; `common` holds what
they share. `main` parses and runs one command and turns every failure into its exit code.
"""

from __future__ import annotations

import argparse
import os
import sys

import tinygrad_mlp as tm
from tinygrad_mlp.cli import compare, exercise, explain, fer, graph, train
from tinygrad_mlp.cli.common import CliError, METHODS, PROG, UsageError, _Parser
from tinygrad_mlp.cli.train import DEFAULTS

__all__ = ["main", "build_parser", "CliError", "UsageError", "PROG", "DEFAULTS",
           "METHODS"]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="A numpy autograd micro framework grown from a blog post that "
                               "derives a multi-layer perceptron by hand.")
    parser.add_argument("--version", action="version", version=f"{PROG} {tm.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for command in (train, compare, graph, explain, exercise, fer):
        command.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed run or bad file, 2 usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:                       # --help, or a usage error already printed
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:            # `tinygrad-mlp explain | head`: the reader left, not an error
        _silence_stdout()
        return 0
    except (CliError, OSError, ValueError, TypeError, ArithmeticError, ImportError,
            MemoryError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, MemoryError):
            message = f"out of memory: {message}"
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1


def _silence_stdout() -> None:
    """Point stdout at devnull, so Python's final flush into the closed pipe stays quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
