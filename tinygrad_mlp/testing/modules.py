"""check_module: gradcheck every parameter of a Module by its name, perturbing the parameter
itself (not a copy the model never sees), in float64, on a copy of the module, so the module's
weights, buffers, mode and the library's generator are exactly as they were after."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from tinygrad_mlp.gradcheck import GradcheckError, check_gradient
from tinygrad_mlp.nn import Module
from tinygrad_mlp.tensor import Tensor, get_generator, no_grad


def check_module(module: Module, *inputs: Any, train: bool = False, eps: float = 1e-6,
                 atol: float = 1e-5, rtol: float = 1e-3, fast: bool = False, seed: int = 0,
                 check_inputs: bool = False) -> bool:
    """Check d⟨G, module(*inputs)⟩ / d(parameter) against central differences for every
    parameter, named as in `named_parameters()` ("1.weight"); True, or GradcheckError naming
    the parameter and its worst entry.

    Runs on a float64 deep copy of the module (parameters, buffers and float inputs cast), in
    eval mode, or with `train=True` in train mode with the generator rewound before every forward
    pass (so Dropout draws the same mask each time and BatchNorm uses the batch's statistics).
    The module itself, its buffers, its mode and `tm.get_generator()` are left as they were.
    Outputs may be a Tensor or a tuple of them (each gets its own upstream gradient G).
    `check_inputs=True` also checks the gradient of every float input. `fast=True`: one random
    direction per parameter, for large models.
    """
    if not isinstance(module, Module):
        raise TypeError(f"check_module: expected an nn.Module, got {type(module).__name__}")
    generator = get_generator()
    state = copy.deepcopy(generator.bit_generator.state)
    probe = copy.deepcopy(module)
    try:
        return _check(probe, inputs, train, eps, atol, rtol, fast, seed, check_inputs,
                      generator, state)
    finally:
        generator.bit_generator.state = state


def _check(probe: Module, inputs: tuple, train: bool, eps: float, atol: float, rtol: float,
           fast: bool, seed: int, check_inputs: bool, generator: np.random.Generator,
           state: dict) -> bool:
    probe.train(train)
    for tensor in list(probe.parameters()) + list(probe.buffers()):
        if tensor.dtype.kind == "f":
            tensor.data = tensor.data.astype(np.float64)
    tensors = [_float64_input(x, check_inputs) for x in inputs]
    named = [(name, p) for name, p in probe.named_parameters() if p.requires_grad]
    if not named and not check_inputs:
        raise ValueError(f"check_module: {type(probe).__name__} has no parameter to check")

    def forward() -> list[Tensor]:
        generator.bit_generator.state = state          # the same dropout mask every time
        out = probe(*tensors)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if not all(isinstance(o, Tensor) for o in outs):
            raise ValueError(f"check_module: {type(probe).__name__} must return a Tensor or a "
                             f"tuple of them, got {type(out).__name__}")
        return outs

    outs = forward()
    for i, o in enumerate(outs):
        if o.dtype != np.float64:
            raise ValueError(f"check_module: the float64 copy of {type(probe).__name__} gave a "
                             f"{o.dtype} output {i}: something in its forward casts below "
                             f"float64, so finite differences would measure rounding")
    rng = np.random.default_rng(seed)
    Gs = [rng.standard_normal(o.shape) for o in outs]
    terms = [(o * G).sum() for o, G in zip(outs, Gs)]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    if total.requires_grad:
        total.backward()

    def f() -> float:
        with no_grad():
            return float(sum(np.sum(o.data * G) for o, G in zip(forward(), Gs)))

    checked = [(f"parameter {name!r}", p) for name, p in named]
    checked += [(f"input {i}", t) for i, t in enumerate(tensors)
                if isinstance(t, Tensor) and t.requires_grad]
    for label, tensor in checked:
        analytic = tensor.grad if tensor.grad is not None else np.zeros_like(tensor.data)
        try:
            check_gradient(label, f, tensor.data, analytic, eps=eps, atol=atol, rtol=rtol,
                           direction=rng.standard_normal(tensor.shape) if fast else None)
        except GradcheckError as error:
            raise GradcheckError(f"check_module({type(probe).__name__}): {error}") from None
    return True


def _float64_input(x: Any, requires_grad: bool) -> Any:
    """A float input (array, list or Tensor) as a float64 Tensor; class indices stay as they are."""
    array = np.asarray(x.data if isinstance(x, Tensor) else x)
    if array.dtype.kind != "f":
        return x
    return Tensor(array.astype(np.float64), requires_grad=requires_grad)
