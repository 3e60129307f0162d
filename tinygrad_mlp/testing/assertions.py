"""Assertions for one op (a Function, or any fn of Tensors): its gradients against finite
differences or a reference, in float64 and in the inputs' own dtype; its forward's dtype; what
its backward really returns before the engine sums or casts; no mutation, no aliasing."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_mlp.gradcheck import GradcheckError, gradcheck
from tinygrad_mlp.tensor import (Tensor, as_array, graph_size, is_recording, no_grad,
                                 record_tape)

# (rtol, atol) an op computed in each dtype must meet against the same op in float64, on the very
# values the dtype holds: torch.testing.assert_close's defaults. atol scales with the largest
# float64 entry when that exceeds 1, so a sum is held to its terms' rounding, not to 1e-5.
TOLERANCES = {np.dtype(np.float16): (1e-3, 1e-5), np.dtype(np.float32): (1.3e-6, 1e-5),
              np.dtype(np.float64): (1e-7, 1e-7)}


def _upstream(data: Any, shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    """An upstream gradient G of `shape`: drawn by hypothesis from `data` (the calling test's
    `st.data()`, so a failing case shrinks to a simple G), else from `seed`."""
    if data is None:
        return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    # never 0 (a zero G hides any bug), both signs, exact in float16: quick to draw and to read
    elements = st.sampled_from((1.0, -0.5, 2.0, -1.5, 0.25, -2.0, 0.75, -0.125))
    return data.draw(hnp.arrays(dtype, shape, elements=elements), label="upstream gradient G")


def _as_inputs(arrays: Sequence[Any]) -> list[np.ndarray]:
    """Float arrays keep their dtype (float32 is checked as float32); others become float64."""
    return [np.array(a, dtype=None if np.asarray(a).dtype.kind == "f" else np.float64)
            for a in arrays]


def _expected_dtype(datas: list[np.ndarray], output_dtype: Any) -> np.dtype:
    return np.dtype(output_dtype) if output_dtype is not None else np.result_type(*datas)


def assert_gradients_match(fn: Callable[..., Tensor], *arrays: Any, reference: Any = None,
                           eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                           fast: bool = False, seed: int = 0, data: Any = None,
                           output_dtype: Any = None) -> None:
    """Every input of `fn` gets the gradient it should, in float64 and in the inputs' own dtype.

    float64: `tm.gradcheck` (central differences, atol/rtol/eps/fast as there) with an upstream
    gradient G drawn by hypothesis from `data` when the test passes its `st.data()` (so a failure
    shrinks to a simple G too), else from `seed`. Own dtype (float32 inputs, say): fn's output
    must have that dtype (`output_dtype` to expect another), and output and gradients must match
    the float64 run within `TOLERANCES` of that dtype.

    reference: a numpy function of the (float64) arrays that fn's output must equal, or a pair
    (forward, backward) where backward(G, *arrays) returns one gradient per array (at its shape,
    or at the broadcast shape, summed back as the engine does): the gradients
    are then compared with it instead of with finite differences, so it also settles which
    subgradient an op takes at a kink. Raises `tm.GradcheckError` (an AssertionError) whose
    message starts with the dtype that failed.
    """
    forward, backward = _split_reference(reference)
    given = _as_inputs(arrays)
    arrays64 = [a.astype(np.float64) for a in given]
    with no_grad():
        out64 = fn(*[Tensor(a) for a in arrays64])
    if not isinstance(out64, Tensor):
        raise AssertionError(f"fn must return a Tensor, got {type(out64).__name__}")
    G = _upstream(data, out64.shape, np.float64, seed)
    if forward is not None:
        _compare("float64", "the output against the reference", out64.data,
                 np.asarray(forward(*[a.copy() for a in arrays64]), dtype=np.float64))
    if backward is None:
        tensors = [Tensor(a, requires_grad=True) for a in arrays64]
        try:
            gradcheck(fn, *tensors, eps=eps, atol=atol, rtol=rtol, fast=fast, seed=seed,
                      upstream=G)
        except GradcheckError as error:
            raise GradcheckError(f"in float64: {error}") from None
    grads64 = _run(fn, arrays64, G)[1]
    if backward is not None:
        expected = backward(G.copy(), *[a.copy() for a in arrays64])
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        for i, (grad, want) in enumerate(zip(grads64, expected)):
            want = _sum_to(np.asarray(want, dtype=np.float64), arrays64[i].shape)
            _compare("float64", f"the gradient of input {i} against the reference", grad, want)

    dtype = np.result_type(*given)
    if dtype == np.float64:
        return
    out, grads = _run(fn, given, G.astype(dtype))
    expected_dtype = _expected_dtype(given, output_dtype)
    if out.dtype != expected_dtype:
        raise GradcheckError(f"in {dtype}: fn returned a {out.dtype} output for inputs of dtype "
                             f"{', '.join(str(a.dtype) for a in given)} (expected "
                             f"{expected_dtype})")
    _compare(str(dtype), "the output against the float64 run", out.data, out64.data)
    for i, (grad, grad64) in enumerate(zip(grads, grads64)):
        _compare(str(dtype), f"the gradient of input {i} against the float64 run", grad, grad64)


def _sum_to(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A reference gradient at the broadcast shape summed back to its input's `shape`, as the
    engine does with an op's; any other shape is left for the comparison to report."""
    if grad.shape == shape or grad.ndim < len(shape):
        return np.broadcast_to(grad, shape) if grad.size == 1 else grad
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and grad.shape[k] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def _split_reference(reference: Any) -> tuple[Callable | None, Callable | None]:
    if reference is None:
        return None, None
    if callable(reference):
        return reference, None
    if isinstance(reference, (tuple, list)) and len(reference) == 2 and all(map(callable,
                                                                                 reference)):
        return reference[0], reference[1]
    raise ValueError(f"testing: reference must be a function of the arrays or a pair (forward, "
                     f"backward), got {reference!r}")


def _run(fn: Callable[..., Tensor], arrays: list[np.ndarray], G: np.ndarray
         ) -> tuple[Tensor, list[np.ndarray]]:
    """fn's output and each input's gradient (zeros where none came) for upstream G."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    if out.requires_grad:
        out.backward(G.astype(out.dtype, copy=True))
    return out, [t.grad if t.grad is not None else np.zeros_like(t.data) for t in tensors]


def _compare(dtype: str, what: str, actual: np.ndarray, expected: np.ndarray) -> None:
    """Raise GradcheckError at the worst entry of `actual` off `expected` by more than the
    tolerance of `actual`'s dtype (nan and inf must match exactly)."""
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        raise GradcheckError(f"in {dtype}: {what}: shape {actual.shape}, expected "
                             f"{expected.shape}")
    rtol, atol = TOLERANCES.get(actual.dtype, TOLERANCES[np.dtype(np.float64)])
    wide, want = actual.astype(np.float64), expected.astype(np.float64)
    finite = np.isfinite(want)
    scale = max(1.0, float(np.abs(want[finite]).max(initial=0)))
    with np.errstate(invalid="ignore"):
        excess = np.abs(wide - want) - (atol * scale + rtol * np.abs(want))
    excess = np.where(finite, excess, np.where(wide == want, -1.0, np.inf))
    excess = np.where(np.isnan(excess), np.inf, excess)
    if excess.size == 0 or excess.max() <= 0:
        return
    j = np.unravel_index(np.argmax(excess), excess.shape)
    raise GradcheckError(
        f"in {dtype}: {what} is wrong at index {tuple(int(k) for k in j)} (shape "
        f"{actual.shape}): got {float(wide[j])!r}, expected {float(want[j])!r} (allowed: "
        f"atol={atol}·{scale:.3g} + rtol={rtol}·|expected|; {int((excess > 0).sum())} of "
        f"{excess.size} entries off)")


def assert_backward_invariants(fn: Callable[..., Tensor], *arrays: Any, seed: int = 0,
                               data: Any = None, output_dtype: Any = None) -> None:
    """One forward and backward of `fn` with an upstream gradient G (drawn from `data`, the
    test's `st.data()`, when given, else from `seed`), then check that:
    the output has the inputs' dtype (`output_dtype` to expect another); what each Function's
    backward returns, before the engine sums or casts it, is an array of its input's dtype and
    of its input's shape or a broadcast of it along axes the op's output or other inputs have
    (`assert_raw_backward`); the inputs and G are unchanged; each gradient has its input's shape
    and dtype; no gradient shares memory with another, with G, with an input or with the output;
    the graph is freed. Float arrays keep their dtype (float32 is checked as float32).
    """
    datas = _as_inputs(arrays)
    originals = [d.copy() for d in datas]
    tensors = [Tensor(d, requires_grad=True) for d in datas]
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise AssertionError(f"fn must return a Tensor, got {type(out).__name__}")
    expected_dtype = _expected_dtype(datas, output_dtype)
    if out.dtype != expected_dtype:
        raise AssertionError(f"fn returned a {out.dtype} output for inputs of dtype "
                             f"{', '.join(str(d.dtype) for d in datas)} (expected "
                             f"{expected_dtype}: an op keeps its inputs' dtype)")
    assert_raw_backward(fn, *originals, seed=seed)
    G = _upstream(data, out.shape, out.dtype, seed)
    G_original = G.copy()
    out.backward(G)

    for i, (data, original) in enumerate(zip(datas, originals)):
        if not np.array_equal(data, original, equal_nan=True):
            raise AssertionError(f"input {i} was mutated by forward or backward")
    if not np.array_equal(G, G_original, equal_nan=True):
        raise AssertionError("the upstream gradient passed to backward() was mutated")
    grads = [(i, t.grad) for i, t in enumerate(tensors) if t.grad is not None]
    for i, grad in grads:
        if grad.shape != datas[i].shape or grad.dtype != datas[i].dtype:
            raise AssertionError(f"input {i} of shape {datas[i].shape} and dtype {datas[i].dtype} "
                                 f"got a gradient of shape {grad.shape} and dtype {grad.dtype}")
        others = [("the upstream gradient", G), ("the output", out.data)]
        others += [(f"input {k}", d) for k, d in enumerate(datas)]
        others += [(f"the gradient of input {k}", g) for k, g in grads if k != i]
        for name, other in others:
            if np.shares_memory(grad, other):
                raise AssertionError(f"the gradient of input {i} shares memory with {name}")
    if graph_size(out):
        raise AssertionError(f"backward() left {graph_size(out)} recorded ops alive")


def assert_raw_backward(fn: Callable[..., Tensor], *arrays: Any, seed: int = 0) -> None:
    """Run fn once on the arrays, then call every Function it ran directly, `backward(ctx, G)`
    with a random G of that Function's output shape and dtype, and check each gradient it returns
    for an input that needs one: an ndarray (or numpy scalar) of that input's dtype, whose shape is the input's or
    one the input broadcasts to along axes (counted from the right) the op's output or another
    of its inputs has at that length. This is what the engine would otherwise sum and cast away
    silently: a float64 gradient for a float32 input, a (2, 3) gradient for a (3,) input, a
    keepdims gradient with an extra axis."""
    if is_recording():                       # tapes do not nest: nothing to look at from here
        return
    rng = np.random.default_rng(seed)
    tensors = [Tensor(d.copy(), requires_grad=True) for d in _as_inputs(arrays)]
    with record_tape() as tape:
        fn(*tensors)
    for entry in tape:
        function, inputs, output = entry.function, entry.inputs, entry.output
        name = type(function).__name__
        if not any(function.needs_input_grad):
            continue
        G = as_array(rng.standard_normal(output.shape).astype(output.dtype))   # where it runs
        returned = type(function).backward(function, G)
        returned = returned if isinstance(returned, (tuple, list)) else (returned,)
        if len(returned) != len(inputs):
            raise AssertionError(f"{name}.backward returned {len(returned)} gradients for "
                                 f"{len(inputs)} inputs")
        shapes = [t.shape for t in inputs] + [output.shape]
        for i, (tensor, grad) in enumerate(zip(inputs, returned)):
            if grad is None or not function.needs_input_grad[i]:
                continue
            where = (f"{name}.backward returned for input {i} (shape {tensor.shape}, dtype "
                     f"{tensor.dtype})")
            if not isinstance(grad, (np.ndarray, np.generic)):   # 0-d arithmetic gives scalars
                raise AssertionError(f"{where} a {type(grad).__name__}, not an ndarray")
            grad = np.asarray(grad)
            if grad.dtype != tensor.dtype:
                raise AssertionError(f"{where} a gradient of dtype {grad.dtype}: the engine "
                                     f"would cast it silently; compute it in {tensor.dtype}")
            allowed = _allowed_grad_shape(tensor.shape, grad.shape,
                                          shapes[:i] + shapes[i + 1:])
            if not allowed:
                raise AssertionError(
                    f"{where} a gradient of shape {grad.shape}: expected {tensor.shape}, or a "
                    f"shape it broadcasts to along axes the op's output or other inputs have "
                    f"(shapes {shapes[:i] + shapes[i + 1:]}); the engine would sum it to "
                    f"{tensor.shape} and hide the mistake")


def _allowed_grad_shape(shape: tuple[int, ...], grad_shape: tuple[int, ...],
                        others: list[tuple[int, ...]]) -> bool:
    """Is `grad_shape` the input's `shape`, or a broadcast of it whose every extra or stretched
    axis (aligned from the right) has that length in one of the `others` shapes?"""
    if grad_shape == shape:
        return True
    if len(grad_shape) < len(shape):
        return False
    padded = (1,) * (len(grad_shape) - len(shape)) + tuple(shape)
    for k, (n, g) in enumerate(zip(padded, grad_shape)):
        if n == g:
            continue
        if n != 1:
            return False
        from_right = len(grad_shape) - k
        if not any(len(o) >= from_right and o[-from_right] == g for o in others):
            return False
    return True
