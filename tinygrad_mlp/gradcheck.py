"""Finite-difference gradient checks: does an op's backward agree with its forward?

`gradcheck(fn, *tensors)` runs `fn` on float64 copies of the inputs, backpropagates a random
upstream gradient G (not just ones: a `.sum()` upstream hides wrong backward rules), and compares
each analytic gradient entry with the central difference

    (⟨G, fn(x + eps·e_j)⟩ − ⟨G, fn(x − eps·e_j)⟩) / (2·eps)

entry by entry, with PyTorch's criterion |analytic − numeric| <= atol + rtol·|numeric|.
`fast=True` checks one random direction u per input instead, ⟨grad, u⟩ against the central
difference along u (PyTorch's fast mode, HIPS autograd's check): two evaluations per input, for
large inputs.

gradcheck never passes vacuously: an input `fn` does not read (a copy it never sees, such as a
model's parameter given to `lambda w: model(X)`) and an input `fn` casts to a lower precision
(a float32 model's layers cast the float64 probe) are refused with a message that says so and
points at `tm.testing.check_module`, which perturbs a model's parameters themselves.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tinygrad_mlp.tensor import Tensor, is_recording, no_grad, record_tape


class GradcheckError(AssertionError):
    """A gradient that disagrees with finite differences. An AssertionError, so a failed check
    reads as a failed test under pytest; the message names the input and the worst entry."""


def gradcheck(fn: Callable[..., Tensor], *tensors: Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, fast: bool = False, seed: int = 0,
              upstream: Any = None) -> bool:
    """Check the gradients of `fn(*tensors)` against central differences; True or GradcheckError.

    fn: takes the tensors, returns a Tensor of any shape. Only tensors with requires_grad are
    checked; the others are passed as constants. Both sides run in float64 on copies, so the
    inputs are never modified. The upstream gradient G is `upstream` (an array of the output's
    shape) or else drawn from `seed` (its own generator, not `tm.get_generator()`). `fast=True`
    compares one random direction per input instead of every entry. Raises ValueError for a bad
    argument (no tensor requiring grad, eps <= 0, fn not returning a Tensor, an input fn does not
    read, an input fn casts below float64).
    """
    if not eps > 0:
        raise ValueError(f"gradcheck: eps must be > 0, got {eps}")
    if not all(isinstance(t, Tensor) for t in tensors):
        kinds = [type(t).__name__ for t in tensors]
        raise ValueError(f"gradcheck: inputs must be Tensors, got {kinds}")
    checked = [i for i, t in enumerate(tensors) if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; create the inputs to check with "
                         "requires_grad=True")
    rng = np.random.default_rng(seed)
    inputs = [Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad) for t in tensors]

    out = _call_checking_reads(fn, inputs, checked)
    G = rng.standard_normal(out.shape) if upstream is None else np.asarray(upstream, np.float64)
    if G.shape != out.shape:
        raise ValueError(f"gradcheck: upstream has shape {G.shape}, the output {out.shape}")
    if out.requires_grad:
        out.backward(G)

    def f() -> float:
        """⟨G, fn(inputs)⟩, the scalar whose gradient the backward pass computed."""
        with no_grad():
            return float(np.sum(G * _call(fn, inputs).data))

    for i in checked:
        x = inputs[i].data
        analytic = inputs[i].grad if inputs[i].grad is not None else np.zeros_like(x)
        if analytic.shape != x.shape or analytic.dtype != np.float64:
            raise GradcheckError(f"gradcheck: input {i} of shape {x.shape} got a gradient of shape "
                                 f"{analytic.shape} and dtype {analytic.dtype} (expected float64)")
        check_gradient(f"input {i}", f, x, analytic, eps=eps, atol=atol, rtol=rtol,
                       direction=rng.standard_normal(x.shape) if fast else None)
    return True


def check_gradient(name: str, f: Callable[[], float], x: np.ndarray, analytic: np.ndarray,
                   eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                   direction: np.ndarray | None = None) -> None:
    """Compare `analytic` (the gradient of the scalar `f()` with respect to the array `x`, which
    `f` reads) with central differences, perturbing `x` itself in place and restoring it exactly;
    every entry, or only along `direction` when given (fast mode). Raises GradcheckError naming
    `name` ("input 0", "parameter '1.weight'") and the worst entry."""
    if direction is not None:
        numeric = _central_difference(f, x, direction, eps)
        _compare(name, "random direction", float(np.sum(analytic * direction)), numeric, atol,
                 rtol)
        return
    numeric_grad = np.empty_like(x)
    for j in np.ndindex(x.shape):
        unit = np.zeros_like(x)
        unit[j] = 1.0
        numeric_grad[j] = _central_difference(f, x, unit, eps)
    _compare_arrays(name, analytic, numeric_grad, atol, rtol)


def _call(fn: Callable[..., Tensor], inputs: list[Tensor]) -> Tensor:
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise ValueError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out


_CHECK_MODULE = ("to check a model's parameters, use tm.testing.check_module(model, *inputs): "
                 "it perturbs each parameter itself, in float64, on a copy of the model")


def _call_checking_reads(fn: Callable[..., Tensor], inputs: list[Tensor], checked: list[int]
                         ) -> Tensor:
    """fn(*inputs), refusing an input fn never reads (its finite differences would be 0 and its
    gradient None: a vacuous pass) or casts below float64 (finite differences in float32 are
    noise: a false failure), both told apart on the tape of this call."""
    if is_recording():                    # tapes do not nest: the caller's tape, unchecked
        return _call(fn, inputs)
    with record_tape() as tape:
        out = _call(fn, inputs)
    derived = {id(inputs[i]): i for i in checked}     # tensor id -> the probe it comes from
    read = set()
    for entry in tape:
        sources = {derived[id(t)] for t in entry.inputs if id(t) in derived}
        read |= sources
        if not sources:
            continue
        output = entry.output
        if output.dtype.kind == "f" and output.dtype.itemsize < 8:
            i = min(sources)
            raise ValueError(
                f"gradcheck: fn casts input {i} (float64, the precision finite differences need) "
                f"to {output.dtype} in {type(entry.function).__name__}, so the check would fail "
                f"on rounding alone; a layer computes in its parameters' dtype (a float32 model "
                f"casts a float64 input). Gradcheck a float64 copy of the model: {_CHECK_MODULE}")
        derived[id(output)] = min(sources)
    unread = [i for i in checked if i not in read and out is not inputs[i]]
    if unread:
        shapes = ", ".join(f"input {i} (shape {inputs[i].shape})" for i in unread)
        raise ValueError(
            f"gradcheck: fn does not read {shapes}: it would pass without checking anything. "
            f"gradcheck hands fn float64 copies of the tensors and fn must compute from those "
            f"arguments (`lambda w: model(X)` ignores w); {_CHECK_MODULE}")
    return out


def _central_difference(f: Callable[[], float], x: np.ndarray, direction: np.ndarray,
                        eps: float) -> float:
    """(f(x + eps·direction) − f(x − eps·direction)) / (2·eps); x is restored exactly after."""
    original = x.copy()
    x += eps * direction
    plus = f()
    x[...] = original
    x -= eps * direction
    minus = f()
    x[...] = original
    return (plus - minus) / (2 * eps)


def _compare(name: str, where: str, analytic: float, numeric: float, atol: float, rtol: float
             ) -> None:
    error = abs(analytic - numeric)
    if not error <= atol + rtol * abs(numeric):   # also fails on nan
        raise GradcheckError(
            f"gradcheck: gradient of {name} is wrong along a {where}: analytic {analytic!r}, "
            f"numeric {numeric!r}, abs error {error:.3g}, rel error "
            f"{error / max(abs(numeric), 1e-300):.3g} (allowed: atol={atol} + rtol={rtol}·|numeric|)")


def _compare_arrays(name: str, analytic: np.ndarray, numeric: np.ndarray, atol: float, rtol: float
                    ) -> None:
    """Raise naming the worst entry (the largest excess over the tolerance, nan first)."""
    with np.errstate(invalid="ignore"):
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    excess = np.where(np.isnan(excess), np.inf, excess)
    if excess.size == 0 or excess.max() <= 0:
        return
    j = np.unravel_index(np.argmax(excess), excess.shape)
    bad = int((excess > 0).sum())
    a, n = float(analytic[j]), float(numeric[j])
    error = abs(a - n)
    raise GradcheckError(
        f"gradcheck: gradient of {name} (shape {analytic.shape}) is wrong at index "
        f"{tuple(int(k) for k in j)}: analytic {a!r}, numeric {n!r}, abs error {error:.3g}, rel "
        f"error {error / max(abs(n), 1e-300):.3g} (allowed: atol={atol} + rtol={rtol}·|numeric|; "
        f"{bad} of {excess.size} entries fail)")
