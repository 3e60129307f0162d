"""nn.summary: a Keras-like table of a model's layers, their output shapes and parameter counts."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinygrad_mlp._checks import positive_int
from tinygrad_mlp.nn.layers import Linear
from tinygrad_mlp.nn.model import Model
from tinygrad_mlp.nn.module import Module, parameter_dtype
from tinygrad_mlp.tensor import Tensor, no_grad


def summary(model: Module, input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None
            ) -> str:
    """The table Keras's model.summary() prints: one row per layer call (name, type, output
    shape, parameter count), then the totals.

    For an `nn.Model` the shapes come from the model (input_shape may be left out) and a
    fourth column says which nodes feed each row (Keras's "Connected to"); a layer called
    twice counts its parameters on its first row only, so the column adds up to the total.

    For any other module, input_shape is ONE sample's shape, without the batch axis (Keras's
    convention), or a list of them for a module taking several inputs; it may be left out
    when the model starts with a Linear layer. The model runs once on a batch of one zero
    sample, in eval mode and under no_grad, so BatchNorm's running statistics and Dropout's
    generator are untouched; every module's train/eval mode is restored afterwards. The batch
    axis shows as None. A layer here is a module without children; each call is a row, so a
    layer used twice shows twice (the totals count it once).
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be an nn.Module, got {type(model).__name__}")
    if isinstance(model, Model):
        own = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
        if input_shape is not None and _input_shapes(model, input_shape) != own:
            raise ValueError(f"summary: model {model.name!r} takes inputs of sample shape "
                             f"{', '.join(map(str, own))}, but input_shape is {input_shape}; "
                             f"leave input_shape out for an nn.Model")
        return _graph_table(model, own)
    shapes = _input_shapes(model, input_shape)
    dtype = parameter_dtype(model)
    rows: list[tuple[str, ...]] = []
    modes = {id(module): (module, module.training) for module in model.modules()}
    names = {id(module): name for name, module in model.named_modules()}

    def record(module: Module, inputs: tuple, output: Any) -> None:
        own = sum(p.data.size for p in module.parameters())
        rows.append((f"{names[id(module)] or type(module).__name__} ({type(module).__name__})",
                     _shape(output), f"{own:,}"))

    leaves = [module for module in model.modules() if next(module.children(), None) is None]
    handles = [leaf.register_forward_hook(record) for leaf in leaves]
    try:
        model.eval()
        with no_grad():
            model(*[Tensor(np.zeros((1,) + shape, dtype=dtype)) for shape in shapes])
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.values():
            module.training = training
    inputs = [(f"Input{f' {i}' if len(shapes) > 1 else ''}", str((None,) + shape), "0")
              for i, shape in enumerate(shapes)]
    return _table(("Layer (type)", "Output Shape", "Param #"), inputs + rows, model,
                  type(model).__name__)


def _input_shapes(model: Module, input_shape: Any) -> list[tuple[int, ...]]:
    """input_shape as a list of sample shapes (one per input of the model)."""
    if input_shape is None:
        first = next(iter(model.children()), None)
        if not isinstance(first, Linear):
            raise ValueError(f"summary: give input_shape, one sample's shape without the batch "
                             f"axis (e.g. (1, 28, 28)), for a {type(model).__name__} that does "
                             f"not start with a Linear layer")
        return [(first.in_features,)]
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    several = isinstance(input_shape, list) and len(input_shape) > 0 and all(
        isinstance(shape, (tuple, list)) for shape in input_shape)
    return [tuple(positive_int("input_shape", n, owner="summary") for n in
                  ((shape,) if isinstance(shape, (int, np.integer)) else shape))
            for shape in (input_shape if several else [input_shape])]


def _graph_table(model: Model, input_shapes: list[tuple[int, ...]]) -> str:
    """nn.summary of a functional model: a row per input and per node, with what feeds it."""
    rows = [(f"{name} (Input)", str((None,) + shape), "0", "")
            for name, shape in zip(model.input_names, input_shapes)]
    counted: set[int] = set()
    for node in model.graph():
        layer, shape = node["layer"], node["shape"]
        own = 0 if id(layer) in counted else layer.num_parameters()
        counted.add(id(layer))
        shown = (", ".join(str((None,) + s) for s in shape) if isinstance(shape, list)
                 else str((None,) + shape))
        rows.append((f"{node['name']} ({type(layer).__name__})", shown, f"{own:,}",
                     ", ".join(node["inputs"])))
    return _table(("Layer (type)", "Output Shape", "Param #", "Connected to"), rows, model,
                  model.name)


def _shape(output: Any) -> str:
    if isinstance(output, Tensor):
        return str((None,) + output.shape[1:])
    if isinstance(output, (tuple, list)):
        return ", ".join(_shape(o) for o in output)
    return type(output).__name__


def _table(header: tuple[str, ...], cells: list[tuple[str, ...]], model: Module, title: str
           ) -> str:
    """Columns padded to their widest cell; the parameter count (third) right-aligned."""
    widths = [max(len(row[i]) for row in cells + [header]) + 2 for i in range(len(header))]
    line = "=" * sum(widths)

    def format_row(row: tuple[str, ...]) -> str:
        return "".join(cell.rjust(width) if i == 2 else
                       (("  " + cell).ljust(width) if i == 3 else cell.ljust(width))
                       for i, (cell, width) in enumerate(zip(row, widths))).rstrip()

    total = model.num_parameters()
    trainable = sum(p.data.size for p in model.parameters() if p.requires_grad)
    buffers = sum(b.data.size for b in model.buffers())
    lines = [f'Model: "{title}"', line, format_row(header), line]
    lines += [format_row(row) for row in cells]
    lines += [line, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Buffers (not trained, e.g. running statistics): {buffers:,}", line]
    return "\n".join(lines)
