"""Taking a model elsewhere: to an ONNX file (any runtime) or to an equivalent PyTorch module.

    tm.export.to_onnx(model, "digits.onnx", input_shape=(64,))    # needs the export extra (onnx)
    torch_model = tm.export.to_torch(model)                       # needs torch

Both trace: the model runs once and the Functions it ran are translated one by one (trace.py,
onnx_ops.py, torch_ops.py), so any model exports, a Sequential, an nn.Model or a Module
subclass with a skip connection, as long as each op it runs has a translation; one without is a
TypeError naming the op and the module that ran it, raised before anything is written. The
caller's model is left as it was (each module's mode, its buffers, the random generator).
"""

from __future__ import annotations

import os
from typing import Any, List, Sequence, Union

from tinygrad_mlp import nn
from tinygrad_mlp.interop.export import onnx_ops, torch_ops
from tinygrad_mlp.interop.export.onnx_ops import OPSET
from tinygrad_mlp.interop.export.trace import check_module, check_translations, input_shapes, trace
from tinygrad_mlp.io import write_atomically

__all__ = ["to_onnx", "to_torch", "OPSET"]

_HINT = "pip install -e '.[export]' from a checkout, or pip install onnx"


Shape = Union[int, Sequence[int], List[Sequence[int]], None]   # one shape, or one per input


def to_onnx(model: nn.Module, path: str | os.PathLike, input_shape: Shape = None) -> None:
    """Write `model`'s eval form (as `tm.predict` runs it) to the ONNX file `path` (opset
    OPSET), atomically: a failed export leaves an existing file as it was.

    `input_shape` is one sample's shape, without the batch axis: (64,) for the digits, (1, 28,
    28) for a CNN on MNIST; a list of shapes for a model of several inputs; left out, the
    model's own `input_shape` (an nn.Model's), else (in_features,) of a first Linear. The file's inputs are "X" (or "X1", "X2", …) of
    shape (N, *input_shape), N dynamic, in the parameters' dtype; its outputs "Y" (or "Y1", …).
    The model runs once on a small batch in eval mode to trace its ops, so a wrong input_shape
    fails here with the layer's own error. Parameters and buffers are stored under their
    state_dict names.
    """
    try:
        import onnx
    except ImportError as error:
        raise ImportError(f"to_onnx needs the onnx package ({_HINT})") from error
    check_module(model, "to_onnx")
    shapes = input_shapes(model, input_shape, "to_onnx")
    traced = trace(model, shapes, training=False, caller="to_onnx")
    name = type(model).__name__
    check_translations(traced, onnx_ops.TRANSLATIONS, "to_onnx", name)
    data = onnx_ops.build(traced, name, onnx).SerializeToString()
    write_atomically(path, lambda file: file.write(data), "to_onnx")


def to_torch(model: nn.Module, input_shape: Shape = None) -> Any:
    """A torch.nn.Module computing what `model` computes, which trains in PyTorch.

    Its forward replays the traced ops with torch calls on torch Parameters (copies of the
    model's parameters, same dtype and state_dict names; Linear's weight keeps tm's (in, out)
    layout) and buffers. Each tm module has a torch sub-module of the same dotted name and mode:
    in training mode BatchNorm uses the batch's statistics and moves its running ones, Dropout
    drops; in eval mode the outputs are `tm.predict`'s. The model is traced with every module in
    training mode (a forward that branches on `self.training` is recorded in its training form).
    `input_shape` as for `to_onnx`.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError("to_torch needs PyTorch (pip install torch)") from error
    check_module(model, "to_torch")
    shapes = input_shapes(model, input_shape, "to_torch")
    traced = trace(model, shapes, training=True, caller="to_torch")
    name = type(model).__name__
    check_translations(traced, torch_ops.TRANSLATIONS, "to_torch", name)
    return torch_ops.build(traced, name, torch)
