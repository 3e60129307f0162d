"""Argument validators shared by every layer of the package: one rule for each kind of value.

Each check returns the value as a plain Python int or float (numpy integers and floats are
accepted; bools never count as numbers) or raises a ValueError naming the argument, what it
must be and the value that came, optionally prefixed by its owner:

    >>> positive_int("epochs", 0, owner="fit")
    Traceback (most recent call last):
    ...
    ValueError: fit: epochs must be a positive int, got 0
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NoReturn, Sequence

import numpy as np

__all__ = ["is_int", "is_real", "fail", "integer", "positive_int", "non_negative_int",
           "finite_real", "fraction", "probability", "choice"]


def is_int(value: Any) -> bool:
    """A Python or numpy integer, not a bool (True is no batch size)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """A Python or numpy int or float, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def fail(name: str, value: Any, expected: str, owner: str = "") -> NoReturn:
    """Raise the one error message every check uses: '[owner: ]name must be expected, got value'."""
    raise ValueError(f"{owner + ': ' if owner else ''}{name} must be {expected}, got {value!r}")


def integer(name: str, value: Any, owner: str = "") -> int:
    """Any int (an axis, a seed)."""
    if not is_int(value):
        fail(name, value, "an int", owner)
    return int(value)


def positive_int(name: str, value: Any, owner: str = "", expected: str = "a positive int") -> int:
    """An int >= 1 (a count, a size); `expected` may say more, e.g. what 1 means."""
    if not is_int(value) or value < 1:
        fail(name, value, expected, owner)
    return int(value)


def non_negative_int(name: str, value: Any, owner: str = "") -> int:
    """An int >= 0 (epochs, patience)."""
    if not is_int(value) or value < 0:
        fail(name, value, "an int >= 0", owner)
    return int(value)


def finite_real(name: str, value: Any, owner: str = "", low: float = -math.inf,
                high: float = math.inf, low_open: bool = False) -> float:
    """A finite number with low <= value < high (low < value with `low_open`)."""
    ok = is_real(value) and math.isfinite(value) and value < high and (
        value > low if low_open else value >= low)
    if not ok:
        bounds = "" if low == -math.inf else f" {'>' if low_open else '>='} {low}"
        if high != math.inf:
            bounds += f"{' and' if bounds else ''} < {high}"
        fail(name, value, f"a finite number{bounds}", owner)
    return float(value)


def fraction(name: str, value: Any, owner: str = "") -> float:
    """A number strictly between 0 and 1 (a share of the rows)."""
    if not is_real(value) or not 0 < value < 1:
        fail(name, value, "a fraction in (0, 1)", owner)
    return float(value)


def probability(name: str, value: Any, owner: str = "",
                expected: str = "a probability in [0, 1]") -> float:
    """A number in [0, 1], ends included (a dropout rate, a running-average momentum)."""
    if not is_real(value) or not 0 <= value <= 1:
        fail(name, value, expected, owner)
    return float(value)


def choice(name: str, value: Any, options: Sequence[Any], owner: str = "") -> Any:
    """One of `options`, of the option's type (so 1 is not taken for True, nor True for 1)."""
    if not any(value is o or (isinstance(value, type(o)) and value == o) for o in options):
        shown = [repr(o) for o in options]
        fail(name, value, ", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1
             else shown[0], owner)
    return value
