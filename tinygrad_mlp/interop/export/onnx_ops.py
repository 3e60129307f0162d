"""Each traced op as ONNX nodes (opset OPSET), and the graph they make.

A translation is `translate(g, step, *inputs) -> output name`: `inputs` are the ONNX names of
what the op read, `step` (see trace.py) has its options and shapes. Parameters and buffers become
initializers under their state_dict names, constants initializers of their own. The file is the
model's eval form: Dropout is the identity, BatchNorm uses its running statistics (the model is
traced with every module in eval mode, as `tm.predict` runs it).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp._checks import is_int
from tinygrad_mlp.interop.export.trace import Buffer, Step, Trace, reshape_target
from tinygrad_mlp.ops.image import adaptive_bins, padding_argument, resolve_padding

OPSET = 17                      # the ONNX opset written: LayerNormalization needs 17


class Graph:
    """The ONNX nodes and initializers being written, with a fresh name for every value."""

    def __init__(self, helper: Any, numpy_helper: Any, trace: Trace) -> None:
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0
        self.step: Step | None = None            # the op being translated (names its nodes)
        self.aliases = {name: name for name in trace.inputs}   # trace name → ONNX name
        self.stored = {**{key: t.data for key, t in trace.parameters.items()},
                       **{key: t.data for key, t in trace.buffers.items()}, **trace.constants}

    def value(self, name: str) -> str:
        """The ONNX name of a traced value; a parameter, buffer or constant becomes an
        initializer of that name the first time an op reads it."""
        if name not in self.aliases:
            self.aliases[name] = self.initializer(name, self.stored[name])
        return self.aliases[name]

    def initializer(self, name: str, value: Any, dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def constant(self, value: Any, dtype: Any = None) -> str:
        """A constant in the current op's dtype (or `dtype`), under a fresh name."""
        self.count += 1
        return self.initializer(f"{self._prefix()}.c{self.count}", value,
                                self.step.dtype if dtype is None else dtype)

    def ints(self, values: Any) -> str:
        return self.constant(np.asarray(values, dtype=np.int64).reshape(-1), np.int64)

    def node(self, op: str, inputs: list[str], output: str | None = None, **attributes: Any
             ) -> str:
        self.count += 1
        name = f"{self._prefix()}/{op}_{self.count}"
        self.nodes.append(self.helper.make_node(op, inputs, [output or name], name=name,
                                                **attributes))
        return output or name

    def _prefix(self) -> str:
        return (self.step.module or "model") if self.step is not None else "model"


def _one(op: str, **attributes: Callable[[Step], Any]) -> Callable[..., str]:
    """An op that is one ONNX node; `attributes` read its attribute values off the step."""
    def translate(g: Graph, step: Step, *inputs: str) -> str:
        return g.node(op, list(inputs), **{key: read(step) for key, read in attributes.items()})
    return translate


def _axes(step: Step) -> list[int] | None:
    axis = step.options.get("axis")
    if axis is None:
        return None
    return [int(a) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]


def _reduce(op: str) -> Callable[..., str]:
    """ReduceMean/Max/Min take their axes as an attribute in opset 17, ReduceSum as an input."""
    def translate(g: Graph, step: Step, x: str) -> str:
        axes, keep = _axes(step), int(bool(step.options.get("keepdims", False)))
        if op == "ReduceSum":
            return g.node(op, [x] + ([g.ints(axes)] if axes else []), keepdims=keep)
        return g.node(op, [x], keepdims=keep, **({"axes": axes} if axes else {}))
    return translate


def _variance(g: Graph, step: Step, x: str) -> str:
    """Σ(x − mean)² / (n − ddof), n counted at run time (the batch axis may be reduced)."""
    axes, keep = _axes(step), int(bool(step.options.get("keepdims", False)))
    mean = g.node("ReduceMean", [x], keepdims=1, **({"axes": axes} if axes else {}))
    centred = g.node("Sub", [x, mean])
    squares = g.node("ReduceSum", [g.node("Mul", [centred, centred])] +
                     ([g.ints(axes)] if axes else []), keepdims=keep)
    element = g.helper.np_dtype_to_tensor_dtype(np.dtype(step.dtype))
    n = g.node("Div", [g.node("Cast", [g.node("Size", [x])], to=element),
                       g.node("Cast", [g.node("Size", [mean])], to=element)])
    out = g.node("Div", [squares, g.node("Sub", [n, g.constant(step.options.get("ddof", 0))])])
    return g.node("Sqrt", [out]) if step.function is ops.Std else out


def _get_item(g: Graph, step: Step, x: str) -> str:
    """Basic indexing (ints, slices with a positive step, None, ...): Slice, then Squeeze the
    axes an int picked and Unsqueeze where None stood."""
    index = step.options.get("index")
    parts = list(index) if isinstance(index, tuple) else [index]
    if not all(p is None or p is Ellipsis or is_int(p) or (
            isinstance(p, slice) and (p.step is None or p.step > 0)) for p in parts):
        raise TypeError(f"to_onnx: the op GetItem with index {index!r} has no translation "
                        f"(only ints, slices with a positive step, None and ...); nothing was "
                        f"written")
    ndim = len(step.input_shapes[0])
    if Ellipsis in parts:
        at = parts.index(Ellipsis)
        picked = sum(p is not None for p in parts) - 1
        parts[at:at + 1] = [slice(None)] * (ndim - picked)
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    axis = out_axis = 0
    for part in parts:
        if part is None:
            unsqueeze.append(out_axis)
            out_axis += 1
            continue
        if is_int(part):
            part = int(part)
            starts.append(part), ends.append(part + 1 if part != -1 else 2 ** 62)
            steps.append(1), squeeze.append(axis)
        else:
            starts.append(0 if part.start is None else part.start)
            ends.append(2 ** 62 if part.stop is None else part.stop)
            steps.append(part.step or 1)
            out_axis += 1
        axes.append(axis)
        axis += 1
    out = x
    if axes:
        out = g.node("Slice", [x, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    if squeeze:
        out = g.node("Squeeze", [out, g.ints(squeeze)])
    if unsqueeze:
        out = g.node("Unsqueeze", [out, g.ints(unsqueeze)])
    return out if out != x else g.node("Identity", [x])


def _clip(g: Graph, step: Step, x: str) -> str:
    bounds = [step.options.get("min"), step.options.get("max")]
    return g.node("Clip", [x] + ["" if b is None else g.constant(b) for b in bounds])


def _as_type(g: Graph, step: Step, x: str) -> str:
    return g.node("Cast", [x], to=g.helper.np_dtype_to_tensor_dtype(np.dtype(step.dtype)))


def _gelu(g: Graph, step: Step, x: str) -> str:
    """GELU is an ONNX op only from opset 20: x·Φ(x) written out (erf or its tanh form)."""
    half = g.node("Mul", [x, g.constant(0.5)])
    if step.options.get("approximate", "none") == "tanh":
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, g.constant(0.044715)])])
        phi = g.node("Tanh", [g.node("Mul", [inner, g.constant(math.sqrt(2 / math.pi))])])
    else:
        phi = g.node("Erf", [g.node("Div", [x, g.constant(math.sqrt(2))])])
    return g.node("Mul", [half, g.node("Add", [phi, g.constant(1.0)])])


def _softplus(g: Graph, step: Step, x: str) -> str:
    """log(1 + e^(beta·x))/beta, and x itself where beta·x > threshold (PyTorch's form)."""
    beta = g.constant(step.options.get("beta", 1.0))
    scaled = g.node("Mul", [x, beta])
    smooth = g.node("Div", [g.node("Softplus", [scaled]), beta])
    above = g.node("Greater", [scaled, g.constant(step.options.get("threshold", 20.0))])
    return g.node("Where", [above, x, smooth])


def _linear(g: Graph, step: Step, x: str, weight: str, bias: str) -> str:
    return g.node("Add", [g.node("MatMul", [x, weight]), bias])


def _batch_norm(g: Graph, step: Step, x: str) -> str:
    """The running statistics (eval), or the batch's when the op ran in training mode."""
    options, channels = step.options, step.shape[1]
    if not options.get("training", True):
        mean, var = (g.value(s.name) if isinstance(s, Buffer) else g.constant(s)
                     for s in (options["running_mean"], options["running_var"]))
        return g.node("BatchNormalization", [x, g.constant(np.ones(channels)),
                                             g.constant(np.zeros(channels)), mean, var],
                      epsilon=float(options.get("eps", 1e-5)))
    axes = [0, *range(2, len(step.shape))]
    centred = g.node("Sub", [x, g.node("ReduceMean", [x], axes=axes, keepdims=1)])
    var = g.node("ReduceMean", [g.node("Mul", [centred, centred])], axes=axes, keepdims=1)
    eps = g.constant(options.get("eps", 1e-5))
    return g.node("Div", [centred, g.node("Sqrt", [g.node("Add", [var, eps])])])


def _layer_norm(g: Graph, step: Step, x: str) -> str:
    ndim = step.options.get("ndim", 1)
    shape = step.shape[len(step.shape) - ndim:]
    return g.node("LayerNormalization", [x, g.constant(np.ones(shape)),
                                         g.constant(np.zeros(shape))],
                  axis=-ndim, epsilon=float(step.options.get("eps", 1e-5)))


def _reshape(g: Graph, step: Step, x: str) -> str:
    target = [0 if size == -2 else size for size in reshape_target(step)]   # 0: copy axis 0
    return g.node("Reshape", [x, g.ints(target)])


def _broadcast_to(g: Graph, step: Step, x: str) -> str:
    target = [1 if size == -2 else size for size in reshape_target(step)]   # 1: keep axis 0
    return g.node("Expand", [x, g.ints(target)])


def _squeeze(g: Graph, step: Step, x: str) -> str:
    axes = _axes(step)
    if axes is None:
        axes = [i for i, size in enumerate(step.input_shapes[0]) if size == 1]
    return g.node("Squeeze", [x, g.ints(axes)])


def _unsqueeze(g: Graph, step: Step, x: str) -> str:
    return g.node("Unsqueeze", [x, g.ints([step.options.get("axis", 0)])])


def _transpose(g: Graph, step: Step, x: str) -> str:
    axes = step.options.get("axes")
    perm = list(range(len(step.shape)))[::-1] if axes is None else [int(a) for a in axes]
    return g.node("Transpose", [x], perm=perm)


def _pad(g: Graph, step: Step, x: str) -> str:
    ndim = len(step.shape)
    widths = np.broadcast_to(np.asarray(step.options.get("pad_width", 0)), (ndim, 2))
    pads = [*widths[:, 0], *widths[:, 1]]
    return g.node("Pad", [x, g.ints(pads), g.constant(step.options.get("value", 0.0))])


def _join_axis(step: Step) -> int:
    return int(step.options.get("axis", 0)) % len(step.shape)


def _concatenate(g: Graph, step: Step, *xs: str) -> str:
    return g.node("Concat", list(xs), axis=_join_axis(step))


def _stack(g: Graph, step: Step, *xs: str) -> str:
    axis = g.ints([_join_axis(step)])
    return g.node("Concat", [g.node("Unsqueeze", [x, axis]) for x in xs], axis=_join_axis(step))


def _pair(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (tuple, list)) else [int(value)] * 2


def _pads(step: Step, kernel: Any, stride: Any, dilation: Any = 1) -> list[int]:
    """ONNX's pads [top, left, bottom, right] of a traced conv or pool: "same" resolved for
    the traced size (only the batch axis is dynamic, so it holds for every batch)."""
    (top, bottom), (left, right) = resolve_padding(
        padding_argument("export", step.options.get("padding", 0)), step.input_shapes[0][2:],
        tuple(kernel), tuple(stride), tuple(_pair(dilation)))
    return [top, left, bottom, right]


def _conv(g: Graph, step: Step, x: str, weight: str, *bias: str) -> str:
    kernel, stride = step.input_shapes[1][2:], _pair(step.options.get("stride", 1))
    dilation = _pair(step.options.get("dilation", 1))
    return g.node("Conv", [x, weight, *bias], kernel_shape=list(kernel), strides=stride,
                  pads=_pads(step, kernel, stride, dilation), dilations=dilation,
                  group=int(step.options.get("groups", 1)))


def _pool(op: str) -> Callable[..., str]:
    def translate(g: Graph, step: Step, x: str) -> str:
        kernel = _pair(step.options.get("kernel_size", 2))
        stride = step.options.get("stride")
        stride = kernel if stride is None else _pair(stride)
        extra = {}
        if op == "AveragePool":       # "same" divides by the real entries (Keras), else by k·k
            extra["count_include_pad"] = int(step.options.get("padding", 0) != "same")
        return g.node(op, [x], kernel_shape=kernel, strides=stride,
                      pads=_pads(step, kernel, stride), **extra)
    return translate


def _adaptive_average(g: Graph, step: Step, x: str) -> str:
    """PyTorch's bins as two products with constant matrices: A_H · x · A_Wᵀ (A's rows
    average one bin each); global pooling is GlobalAveragePool."""
    (H, W), (OH, OW) = step.input_shapes[0][2:], step.shape[2:]
    if (OH, OW) == (1, 1):
        return g.node("GlobalAveragePool", [x])
    A_H, A_W = (_bins(size, out) for size, out in ((H, OH), (W, OW)))
    rows = g.node("MatMul", [x, g.constant((A_W / A_W.sum(1, keepdims=True)).T)])
    return g.node("MatMul", [g.constant(A_H / A_H.sum(1, keepdims=True)), rows])


def _adaptive_max(g: Graph, step: Step, x: str) -> str:
    """Global pooling is GlobalMaxPool; other sizes a ReduceMax over each bin's Slice."""
    (H, W), (OH, OW) = step.input_shapes[0][2:], step.shape[2:]
    if (OH, OW) == (1, 1):
        return g.node("GlobalMaxPool", [x])
    A_H, A_W = _bins(H, OH), _bins(W, OW)
    rows = []
    for i in range(OH):
        row = []
        for j in range(OW):
            top, left = int(A_H[i].argmax()), int(A_W[j].argmax())
            bottom, right = top + int(A_H[i].sum()), left + int(A_W[j].sum())
            window = g.node("Slice", [x, g.ints([top, left]), g.ints([bottom, right]),
                                      g.ints([2, 3])])
            row.append(g.node("ReduceMax", [window], axes=[2, 3], keepdims=1))
        rows.append(g.node("Concat", row, axis=3) if len(row) > 1 else row[0])
    return g.node("Concat", rows, axis=2) if len(rows) > 1 else rows[0]


def _bins(size: int, out: int) -> np.ndarray:
    """(out, size), 1 where entry j is in bin i (PyTorch's adaptive bins)."""
    starts, ends = adaptive_bins(size, out)
    return ((np.arange(size) >= starts[:, None]) & (np.arange(size) < ends[:, None])).astype(float)


TRANSLATIONS: dict[type, Callable[..., str]] = {
    ops.Add: _one("Add"), ops.Sub: _one("Sub"), ops.Mul: _one("Mul"), ops.Div: _one("Div"),
    ops.Pow: _one("Pow"), ops.Maximum: _one("Max"), ops.Minimum: _one("Min"),
    ops.Neg: _one("Neg"), ops.Exp: _one("Exp"), ops.Log: _one("Log"), ops.Abs: _one("Abs"),
    ops.Sqrt: _one("Sqrt"), ops.Clip: _clip, ops.AsType: _as_type,
    ops.Sigmoid: _one("Sigmoid"), ops.Tanh: _one("Tanh"), ops.ReLU: _one("Relu"),
    ops.Softmax: _one("Softmax", axis=lambda step: int(step.options.get("axis", -1))),
    ops.LogSoftmax: _one("LogSoftmax", axis=lambda step: int(step.options.get("axis", -1))),
    ops.LeakyReLU: _one("LeakyRelu",
                        alpha=lambda step: float(step.options.get("negative_slope", 0.01))),
    ops.ELU: _one("Elu", alpha=lambda step: float(step.options.get("alpha", 1.0))),
    ops.GELU: _gelu, ops.Softplus: _softplus,
    ops.MatMul: _one("MatMul"), ops.Linear: _linear,
    ops.Sum: _reduce("ReduceSum"), ops.Mean: _reduce("ReduceMean"),
    ops.Max: _reduce("ReduceMax"), ops.Min: _reduce("ReduceMin"),
    ops.Var: _variance, ops.Std: _variance, ops.GetItem: _get_item,
    ops.BatchNorm: _batch_norm, ops.LayerNorm: _layer_norm,
    ops.Dropout: _one("Identity"),                     # the eval form
    ops.Reshape: _reshape, ops.Flatten: _reshape, ops.BroadcastTo: _broadcast_to,
    ops.Squeeze: _squeeze, ops.Unsqueeze: _unsqueeze, ops.Transpose: _transpose,
    ops.Pad: _pad, ops.Concatenate: _concatenate, ops.Stack: _stack,
    ops.Conv2d: _conv, ops.MaxPool2d: _pool("MaxPool"), ops.AvgPool2d: _pool("AveragePool"),
    ops.AdaptiveAvgPool2d: _adaptive_average, ops.AdaptiveMaxPool2d: _adaptive_max,
}


def build(trace: Trace, name: str, onnx: Any) -> Any:
    """The checked ONNX ModelProto of `trace`: inputs X (or X1, X2, …) of shape (N, *shape),
    outputs Y (or Y1, Y2, …), N dynamic wherever the batch axis survives."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    g = Graph(helper, numpy_helper, trace)
    for step in trace.steps:
        g.step = step
        inputs = [g.value(name) for name in step.inputs]
        g.aliases[step.output] = TRANSLATIONS[step.function](g, step, *inputs)
    g.step = None
    several = len(trace.outputs) > 1
    outputs = []
    for index, (value, shape, batched) in enumerate(zip(trace.outputs, trace.output_shapes,
                                                        trace.output_batched), 1):
        output = f"Y{index}" if several else "Y"
        g.node("Identity", [g.value(value)], output=output)
        dtype = helper.np_dtype_to_tensor_dtype(_dtype_of(trace, value))
        outputs.append(helper.make_tensor_value_info(
            output, dtype, ["N" if batched else shape[0], *shape[1:]] if shape else []))
    element = helper.np_dtype_to_tensor_dtype(trace.dtype)
    inputs = [helper.make_tensor_value_info(x, element, ["N", *shape])
              for x, shape in zip(trace.inputs, trace.input_shapes)]
    model = helper.make_model(
        helper.make_graph(g.nodes, name, inputs, outputs, g.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tinygrad_mlp")
    onnx.checker.check_model(model, full_check=True)
    return model


def _dtype_of(trace: Trace, value: str) -> np.dtype:
    for step in trace.steps:
        if step.output == value:
            return np.dtype(step.dtype)
    if value in trace.constants:
        return trace.constants[value].dtype
    tensor = trace.parameters.get(value, trace.buffers.get(value))
    return tensor.dtype if tensor is not None else np.dtype(trace.dtype)
