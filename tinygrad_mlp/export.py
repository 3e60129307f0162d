"""Taking a model elsewhere: to an ONNX file (any runtime) or to an equivalent PyTorch module.

    tm.export.to_onnx(model, "digits.onnx", input_shape=(64,))    # needs the export extra (onnx)
    torch_model = tm.export.to_torch(model)                       # needs torch

Both walk the model's layers: a built-in layer, or an nn.Sequential of them (nested too). Each
built-in layer has one ONNX translation and one PyTorch twin below, side by side; a layer
without one (a custom Module, say) is a TypeError naming it. Dropout and BatchNorm export in
their eval form. Linear's weight is (in, out) here, (out, in) in PyTorch: to_torch transposes it.
"""

from __future__ import annotations

import collections
import math
import os
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from tinygrad_mlp import nn
from tinygrad_mlp._checks import positive_int
from tinygrad_mlp.io import write_atomically
from tinygrad_mlp.tensor import Tensor, no_grad

__all__ = ["to_onnx", "to_torch", "OPSET"]

OPSET = 17                      # the ONNX opset written: LayerNormalization needs 17
_TRACE_BATCH = 2                # rows traced; a Flatten that merges the batch axis changes it
_HINT = "pip install -e '.[export]' from a checkout, or pip install onnx"


def _values(array_or_tensor: Any) -> np.ndarray:
    return np.asarray(array_or_tensor.data if isinstance(array_or_tensor, Tensor)
                      else array_or_tensor)


def _check_module(model: Any, caller: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller}: expected an nn.Module, got {type(model).__name__}")


def _layers(model: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """(dotted name, layer) of every layer a Sequential applies, in order, nested ones flattened."""
    if type(model) is nn.Sequential:          # a subclass may have its own forward
        for name, child in model.named_children():
            yield from _layers(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix or type(model).__name__, model


def _kind(layer: nn.Module, table: dict[str, Any], caller: str, name: str) -> Any:
    """The table entry of a built-in layer (exact class, so a subclass's own forward is never
    exported as its parent's), else a TypeError naming the layer."""
    kind = type(layer).__name__
    if kind not in table or getattr(nn, kind, None) is not type(layer):
        raise TypeError(f"{caller}: layer {name!r} ({kind}) has no translation; the layers that "
                        f"export are nn.Sequential and nn.{', nn.'.join(sorted(table))}")
    return table[kind]


# --- ONNX ---------------------------------------------------------------------------------------

class _Graph:
    """The ONNX nodes and initializers being written, with a fresh name for every value."""

    def __init__(self, helper: Any, numpy_helper: Any, dtype: np.dtype) -> None:
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    def constant(self, name: str, value: Any, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: Sequence[str], layer: str, **attributes: Any) -> str:
        self.count += 1
        output = f"{layer}.{op}_{self.count}"
        self.nodes.append(self.helper.make_node(op, list(inputs), [output], name=output,
                                                **attributes))
        return output


def _onnx_linear(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]) -> str:
    Z = g.node("MatMul", [x, g.constant(f"{name}.weight", _values(layer.weight))], name)
    if layer.bias is None:
        return Z
    return g.node("Add", [Z, g.constant(f"{name}.bias", _values(layer.bias))], name)


def _onnx_gelu(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]) -> str:
    """GELU is an ONNX op only from opset 20: x·Φ(x) written out (erf or its tanh form)."""
    half = g.node("Mul", [x, g.constant(f"{name}.half", 0.5)], name)
    if layer.approximate == "tanh":
        cube = g.node("Mul", [g.node("Mul", [x, x], name), x], name)
        inner = g.node("Add", [x, g.node("Mul", [cube, g.constant(f"{name}.c", 0.044715)], name)],
                       name)
        scaled = g.node("Mul", [inner, g.constant(f"{name}.k", math.sqrt(2 / math.pi))], name)
        phi = g.node("Tanh", [scaled], name)
    else:
        phi = g.node("Erf", [g.node("Div", [x, g.constant(f"{name}.sqrt2", math.sqrt(2))], name)],
                     name)
    return g.node("Mul", [half, g.node("Add", [phi, g.constant(f"{name}.one", 1.0)], name)], name)


def _onnx_softplus(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]) -> str:
    """log(1 + e^(beta·x))/beta, and x itself where beta·x > threshold (PyTorch's form)."""
    scaled = g.node("Mul", [x, g.constant(f"{name}.beta", layer.beta)], name)
    smooth = g.node("Div", [g.node("Softplus", [scaled], name), f"{name}.beta"], name)
    above = g.node("Greater", [scaled, g.constant(f"{name}.threshold", layer.threshold)], name)
    return g.node("Where", [above, x, smooth], name)


def _onnx_flatten(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]) -> str:
    """A Reshape to the traced output shape, the batch axis kept dynamic (0: copy it), or
    folded into the first axis (-1) when the layer flattens it away."""
    shape = [0 if out_shape[0] == _TRACE_BATCH else -1, *out_shape[1:]]
    return g.node("Reshape", [x, g.constant(f"{name}.shape", shape, np.int64)], name)


def _onnx_batch_norm(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]
                     ) -> str:
    C = layer.num_features
    scale = _values(layer.weight) if layer.affine else np.ones(C)
    shift = _values(layer.bias) if layer.affine else np.zeros(C)
    inputs = [x, g.constant(f"{name}.weight", scale), g.constant(f"{name}.bias", shift),
              g.constant(f"{name}.running_mean", _values(layer.running_mean)),
              g.constant(f"{name}.running_var", _values(layer.running_var))]
    return g.node("BatchNormalization", inputs, name, epsilon=float(layer.eps))


def _onnx_layer_norm(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]) -> str:
    shape = tuple(layer.normalized_shape)
    affine = layer.elementwise_affine
    inputs = [x, g.constant(f"{name}.weight", _values(layer.weight) if affine else np.ones(shape)),
              g.constant(f"{name}.bias", _values(layer.bias) if affine else np.zeros(shape))]
    return g.node("LayerNormalization", inputs, name, axis=-len(shape), epsilon=float(layer.eps))


def _onnx_conv(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]) -> str:
    inputs = [x, g.constant(f"{name}.weight", _values(layer.weight))]
    if layer.bias is not None:
        inputs.append(g.constant(f"{name}.bias", _values(layer.bias)))
    return g.node("Conv", inputs, name, kernel_shape=list(layer.kernel_size),
                  strides=list(layer.stride), pads=[*layer.padding, *layer.padding])


def _pool(op: str, **extra: Any) -> Callable[..., str]:
    def convert(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]) -> str:
        return g.node(op, [x], name, kernel_shape=list(layer.kernel_size),
                      strides=list(layer.stride), pads=[*layer.padding, *layer.padding], **extra)
    return convert


def _same(op: str, **attributes: Callable[[Any], Any]) -> Callable[..., str]:
    """A layer that is one ONNX op; `attributes` read its attribute values off the layer."""
    def convert(g: _Graph, layer: Any, x: str, name: str, out_shape: tuple[int, ...]) -> str:
        return g.node(op, [x], name, **{key: read(layer) for key, read in attributes.items()})
    return convert


_ONNX: dict[str, Callable[..., str]] = {
    "Linear": _onnx_linear,
    "Sigmoid": _same("Sigmoid"), "Tanh": _same("Tanh"), "ReLU": _same("Relu"),
    "Softmax": _same("Softmax", axis=lambda layer: layer.axis),
    "LogSoftmax": _same("LogSoftmax", axis=lambda layer: layer.axis),
    "LeakyReLU": _same("LeakyRelu", alpha=lambda layer: float(layer.negative_slope)),
    "ELU": _same("Elu", alpha=lambda layer: float(layer.alpha)),
    "Softplus": _onnx_softplus, "GELU": _onnx_gelu,
    "Identity": _same("Identity"), "Dropout": _same("Identity"),      # dropout's eval form
    "Flatten": _onnx_flatten,
    "BatchNorm1d": _onnx_batch_norm, "BatchNorm2d": _onnx_batch_norm,
    "LayerNorm": _onnx_layer_norm,
    "Conv2d": _onnx_conv,
    "MaxPool2d": _pool("MaxPool"), "AvgPool2d": _pool("AveragePool", count_include_pad=1),
}


def _input_shape(input_shape: Any) -> tuple[int, ...]:
    shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
    return tuple(positive_int("input_shape", size, owner="to_onnx") for size in shape)


def to_onnx(model: nn.Module, path: str | os.PathLike, input_shape: int | Sequence[int]) -> None:
    """Write `model` (eval form) to the ONNX file `path` (opset OPSET), atomically.

    `input_shape` is one sample's shape, without the batch axis: (64,) for the digits, (1, 28,
    28) for a CNN on MNIST. The file's input "X" has shape (N, *input_shape) with N dynamic, its
    output "Y" whatever the model gives; the dtype is the parameters'. The model runs once on
    zeros to trace its shapes, so a wrong input_shape fails here, with the layer's own error.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as error:
        raise ImportError(f"to_onnx needs the onnx package ({_HINT})") from error
    _check_module(model, "to_onnx")
    shape = _input_shape(input_shape)
    layers = [(name, layer, _kind(layer, _ONNX, "to_onnx", name)) for name, layer in _layers(model)]
    dtype = next((p.dtype for p in model.parameters()), np.dtype(np.float32))
    graph = _Graph(helper, numpy_helper, dtype)
    x, value = "X", Tensor(np.zeros((_TRACE_BATCH, *shape), dtype=dtype))
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for name, layer, convert in layers:
                value = layer(value)
                x = convert(graph, layer, x, name, value.shape)
    finally:
        model.train(was_training)
    if x == "X":                                  # an empty Sequential: Y is X
        x = graph.node("Identity", [x], "model")
    graph.nodes[-1].output[0] = "Y"
    element = helper.np_dtype_to_tensor_dtype(dtype)
    out_dims = ["N" if value.shape[:1] == (_TRACE_BATCH,) else None, *value.shape[1:]]
    onnx_model = helper.make_model(
        helper.make_graph(graph.nodes, type(model).__name__,
                          [helper.make_tensor_value_info("X", element, ["N", *shape])],
                          [helper.make_tensor_value_info("Y", element, out_dims)],
                          graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tinygrad_mlp")
    onnx.checker.check_model(onnx_model, full_check=True)
    data = onnx_model.SerializeToString()
    write_atomically(path, lambda file: file.write(data), "to_onnx")


# --- PyTorch ------------------------------------------------------------------------------------

def _torch_linear(torch: Any, layer: Any) -> Any:
    twin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    _copy(torch, twin.weight, _values(layer.weight).T)          # (in, out) → PyTorch's (out, in)
    if layer.bias is not None:
        _copy(torch, twin.bias, _values(layer.bias))
    return twin


def _torch_batch_norm(torch: Any, layer: Any) -> Any:
    kind = getattr(torch.nn, type(layer).__name__)
    twin = kind(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine)
    for key in ("weight", "bias") if layer.affine else ():
        _copy(torch, getattr(twin, key), _values(getattr(layer, key)))
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        _copy(torch, getattr(twin, key), _values(getattr(layer, key)))
    return twin


def _torch_layer_norm(torch: Any, layer: Any) -> Any:
    twin = torch.nn.LayerNorm(tuple(layer.normalized_shape), eps=layer.eps,
                              elementwise_affine=layer.elementwise_affine)
    for key in ("weight", "bias") if layer.elementwise_affine else ():
        _copy(torch, getattr(twin, key), _values(getattr(layer, key)))
    return twin


def _torch_conv(torch: Any, layer: Any) -> Any:
    twin = torch.nn.Conv2d(layer.in_channels, layer.out_channels, tuple(layer.kernel_size),
                           stride=tuple(layer.stride), padding=tuple(layer.padding),
                           bias=layer.bias is not None)
    _copy(torch, twin.weight, _values(layer.weight))             # same (out, in, kh, kw) layout
    if layer.bias is not None:
        _copy(torch, twin.bias, _values(layer.bias))
    return twin


def _torch_pool(kind: str, **extra: Any) -> Callable[[Any, Any], Any]:
    def convert(torch: Any, layer: Any) -> Any:
        return getattr(torch.nn, kind)(tuple(layer.kernel_size), stride=tuple(layer.stride),
                                       padding=tuple(layer.padding), **extra)
    return convert


def _twin(kind: str, **arguments: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    """A layer whose PyTorch twin takes only hyper-parameters, read off the layer."""
    def convert(torch: Any, layer: Any) -> Any:
        return getattr(torch.nn, kind)(**{key: read(layer) for key, read in arguments.items()})
    return convert


def _copy(torch: Any, target: Any, values: np.ndarray) -> None:
    with torch.no_grad():
        # (np.array, not np.ascontiguousarray: that turns a 0-d count into shape (1,))
        target.copy_(torch.from_numpy(np.array(values, order="C")).to(target.dtype))


_TORCH: dict[str, Callable[[Any, Any], Any]] = {
    "Linear": _torch_linear,
    "Sigmoid": _twin("Sigmoid"), "Tanh": _twin("Tanh"), "ReLU": _twin("ReLU"),
    "Softmax": _twin("Softmax", dim=lambda layer: layer.axis),
    "LogSoftmax": _twin("LogSoftmax", dim=lambda layer: layer.axis),
    "LeakyReLU": _twin("LeakyReLU", negative_slope=lambda layer: layer.negative_slope),
    "ELU": _twin("ELU", alpha=lambda layer: layer.alpha),
    "GELU": _twin("GELU", approximate=lambda layer: layer.approximate),
    "Softplus": _twin("Softplus", beta=lambda layer: layer.beta,
                      threshold=lambda layer: layer.threshold),
    "Identity": _twin("Identity"), "Dropout": _twin("Dropout", p=lambda layer: layer.p),
    "Flatten": _twin("Flatten", start_dim=lambda layer: layer.start_axis,
                     end_dim=lambda layer: layer.end_axis),
    "BatchNorm1d": _torch_batch_norm, "BatchNorm2d": _torch_batch_norm,
    "LayerNorm": _torch_layer_norm,
    "Conv2d": _torch_conv,
    "MaxPool2d": _torch_pool("MaxPool2d"),
    "AvgPool2d": _torch_pool("AvgPool2d", count_include_pad=True),
}


def to_torch(model: nn.Module) -> Any:
    """The equivalent torch.nn module (a Sequential stays a Sequential with the same child names,
    so state_dict keys match), with copies of the weights in the parameters' dtype and the same
    train/eval mode. Same outputs as `tm.predict` up to float rounding.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError("to_torch needs PyTorch (pip install torch)") from error

    def convert(module: nn.Module, name: str) -> Any:
        if type(module) is nn.Sequential:
            children = [(key, convert(child, f"{name}.{key}" if name else key))
                        for key, child in module.named_children()]
            return torch.nn.Sequential(collections.OrderedDict(children))
        return _kind(module, _TORCH, "to_torch", name or type(module).__name__)(torch, module)

    _check_module(model, "to_torch")
    dtype = next((p.dtype for p in model.parameters()), np.dtype(np.float32))
    twin = convert(model, "").to(getattr(torch, np.dtype(dtype).name))
    return twin.train(model.training)
