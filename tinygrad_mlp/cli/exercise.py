"""`tinygrad-mlp exercise list | show NAME | check NAME FILE` (tm.exercises)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tinygrad_mlp.cli.common import CliError, PROG, _command, _positive_int


def add_command(commands: Any) -> None:
    """`exercise` and its actions."""
    from tinygrad_mlp import exercises

    exercise = _command(
        commands, "exercise", _exercise,
        help="exercises that grade themselves: list | show NAME | check NAME FILE",
        description="Derive a gradient the blog derives, write it in a file, and let "
                    "`check` judge it with tm.gradcheck on inputs hypothesis draws: pass, or "
                    "the smallest failing input, the expected and received values and a hint.")
    actions = exercise.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the exercises, in the blog's order")
    show = actions.add_parser("show", help="print the task and a skeleton file to complete")
    show.add_argument("name", choices=exercises.names(), metavar="NAME")
    check = actions.add_parser("check", help="grade FILE (exit 0 when it passes, 1 when not)")
    check.add_argument("name", choices=exercises.names(), metavar="NAME")
    check.add_argument("file", metavar="FILE", help="your solution, a Python file")
    check.add_argument("--examples", type=_positive_int, default=100, metavar="N",
                       help="inputs to try before shrinking a failure (default 100)")


def _exercise(args: argparse.Namespace) -> int:
    from tinygrad_mlp import exercises

    if args.action == "list":
        for number, name in enumerate(exercises.names(), start=1):
            exercise = exercises.get(name)
            print(f"{number}. {name:<9} {exercise.title}: write {exercise.expects}")
        print(f"\nStart with: {PROG} exercise show sigmoid > sigmoid.py")
        return 0
    if args.action == "show":
        sys.stdout.write(exercises.skeleton(args.name))
        return 0
    try:
        feedback = exercises.check(args.name, args.file, max_examples=args.examples)
    except exercises.SolutionError as error:
        raise CliError(str(error)) from None
    print(feedback)
    return 0 if feedback.passed else 1
