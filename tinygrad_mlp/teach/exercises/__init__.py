"""Exercises that grade themselves: derive a backward rule, then find out whether it is right.

    tinygrad-mlp exercise list                     # the exercises, in the blog's order
    tinygrad-mlp exercise show sigmoid > mine.py   # the task and a skeleton to complete
    tinygrad-mlp exercise check sigmoid mine.py    # pass, or the smallest failing input and a hint

From Python: `exercises.check("sigmoid", "mine.py")` (or the Function/function itself) returns a
`Feedback`; `print(feedback)` is what the command prints. Checking needs hypothesis (the `test`
extra); listing and showing do not.
"""

from __future__ import annotations

import os
from typing import Any

from tinygrad_mlp.teach.exercises.catalog import EXERCISES
from tinygrad_mlp.teach.exercises.grading import (Exercise, Feedback, Mistake, SolutionError,
                                            load_solution)

__all__ = ["names", "get", "skeleton", "check", "load_solution", "Exercise", "Feedback",
           "Mistake", "SolutionError", "EXERCISES"]


def names() -> list[str]:
    """The exercises' names, in the blog's order."""
    return list(EXERCISES)


def get(name: str) -> Exercise:
    if name not in EXERCISES:
        raise ValueError(f"no exercise {name!r}; the exercises are {', '.join(EXERCISES)}")
    return EXERCISES[name]


def skeleton(name: str) -> str:
    """The file a student completes: the task as its docstring, then the code to finish."""
    exercise = get(name)
    return (f'"""Exercise {exercise.name}: {exercise.title}.\n\n{exercise.task}\n\n'
            f"The rule you derive is checked against finite differences on inputs hypothesis "
            f"draws:\n    tinygrad-mlp exercise check {exercise.name} THIS_FILE.py\n"
            f'"""\n\nimport numpy as np\n\nimport tinygrad_mlp as tm\n\n'
            f"{exercise.skeleton}")


def check(name: str, solution: Any, max_examples: int = 100) -> Feedback:
    """Grade `solution` (a path to the student's file, or the Function/function itself)."""
    exercise = get(name)
    if isinstance(solution, (str, os.PathLike)):
        solution = load_solution(solution, exercise)
    from tinygrad_mlp.teach.exercises.grading import check as grade
    return grade(exercise, solution, max_examples=max_examples)
