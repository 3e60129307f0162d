"""nn.summary: a Keras-like table of a model's layers, their output shapes and parameter counts."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinygrad_mlp._checks import positive_int
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.tensor import Tensor, get_default_dtype, no_grad


def summary(model: Module, input_shape: Sequence[int]) -> str:
    """The table Keras's model.summary() prints: one row per layer call (name, type, output
    shape, parameter count), then the totals.

    input_shape is ONE sample's shape, without the batch axis (Keras's convention); the model
    runs once on a batch of one zero sample, in eval mode and under no_grad, so BatchNorm's
    running statistics and Dropout's generator are untouched; every module's train/eval mode
    is restored afterwards. The batch axis shows as None. A layer here is a module without
    children; each call is a row, so a layer used twice shows twice (the totals count it once).
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be an nn.Module, got {type(model).__name__}")
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    shape = tuple(positive_int("input_shape", n, owner="summary") for n in input_shape)
    params = model.parameters()
    dtype = params[0].dtype if params else get_default_dtype()
    rows: list[tuple[str, str, str, int]] = []
    modes = {id(module): (module, module.training) for module in model.modules()}
    names = {id(module): name for name, module in model.named_modules()}

    def record(module: Module, inputs: tuple, output: Any) -> None:
        own = sum(p.data.size for p in module.parameters())
        rows.append((names[id(module)] or type(module).__name__, type(module).__name__,
                     _shape(output), own))

    leaves = [module for module in model.modules() if next(module.children(), None) is None]
    handles = [leaf.register_forward_hook(record) for leaf in leaves]
    try:
        model.eval()
        with no_grad():
            model(Tensor(np.zeros((1,) + shape, dtype=dtype)))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.values():
            module.training = training
    return _table(rows, model, shape)


def _shape(output: Any) -> str:
    if isinstance(output, Tensor):
        return str((None,) + output.shape[1:])
    if isinstance(output, (tuple, list)):
        return ", ".join(_shape(o) for o in output)
    return type(output).__name__


def _table(rows: list[tuple[str, str, str, int]], model: Module, input_shape: tuple[int, ...]
           ) -> str:
    header = ("Layer (type)", "Output Shape", "Param #")
    cells = [(f"{name} ({kind})", shape, f"{count:,}") for name, kind, shape, count in rows]
    cells.insert(0, ("Input", str((None,) + input_shape), "0"))
    widths = [max(len(row[i]) for row in cells + [header]) + 2 for i in range(3)]
    line = "=" * sum(widths)

    def format_row(row: tuple[str, str, str]) -> str:
        return (row[0].ljust(widths[0]) + row[1].ljust(widths[1]) + row[2].rjust(widths[2])
                ).rstrip()

    total = model.num_parameters()
    trainable = sum(p.data.size for p in model.parameters() if p.requires_grad)
    buffers = sum(b.data.size for b in model.buffers())
    lines = [f'Model: "{type(model).__name__}"', line, format_row(header), line]
    lines += [format_row(row) for row in cells]
    lines += [line, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Buffers (not trained, e.g. running statistics): {buffers:,}", line]
    return "\n".join(lines)
