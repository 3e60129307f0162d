"""Argument checks shared by the op modules: broadcasting and axes, named by the op."""

from __future__ import annotations

from typing import Any

import numpy as np


def _broadcast_error(op: str, a: np.ndarray, b: np.ndarray) -> ValueError:
    """numpy's own message names neither the op nor the shapes."""
    return ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together")


def _normalize_axes(op: str, x: np.ndarray, axis: Any) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    normalized = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or not -x.ndim <= a < max(x.ndim, 1):
            raise ValueError(f"{op}: axis {axis} is out of range for an input of shape {x.shape}")
        normalized.append(int(a) % max(x.ndim, 1))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(normalized)


def _check_axis(op: str, x: np.ndarray, axis: Any) -> int:
    """One axis (softmax, log_softmax), normalized to be non-negative."""
    if type(axis) is int and -x.ndim <= axis < x.ndim:   # the usual case, checked cheaply
        return axis % x.ndim
    if x.ndim == 0:
        raise ValueError(f"{op}: needs at least a 1-D input, got a scalar")
    if not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{op}: axis must be an int, got {axis!r}")
    return _normalize_axes(op, x, axis)[0]
