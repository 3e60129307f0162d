"""Each traced op as PyTorch calls, and the torch.nn.Module that replays them.

A translation is `run(torch, op, *inputs) -> torch.Tensor`: `op.step` is the traced step (see
trace.py), `op.options` its options with buffers resolved to the module's live torch buffers, and
`op.part` the torch module standing for the tm module that ran it: its `.training` decides
whether BatchNorm uses the batch's statistics (moving the running ones) and Dropout drops, so
`twin.train()` / `twin.eval()` and per-module modes behave as in the tm model.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp.interop.export.trace import Buffer, Step, Trace, reshape_target
from tinygrad_mlp.ops.image import padding_argument, resolve_padding


class Op(NamedTuple):
    step: Step
    options: dict[str, Any]
    part: Any


def _dims(op: Op, ndim: int) -> tuple[int, ...]:
    axis = op.options.get("axis")
    if axis is None:
        return tuple(range(ndim))
    return tuple(int(a) for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))


def _reduce(name: str) -> Callable[..., Any]:
    def run(torch: Any, op: Op, x: Any) -> Any:
        return getattr(torch, name)(x, dim=_dims(op, x.ndim),
                                    keepdim=bool(op.options.get("keepdims", False)))
    return run


def _variance(torch: Any, op: Op, x: Any) -> Any:
    out = torch.var(x, dim=_dims(op, x.ndim), correction=int(op.options.get("ddof", 0)),
                    keepdim=bool(op.options.get("keepdims", False)))
    return torch.sqrt(out) if op.step.function is ops.Std else out


def _get_item(torch: Any, op: Op, x: Any) -> Any:
    """numpy's basic indexing, which torch's indexing shares; an array index as a tensor."""
    index = op.options.get("index")
    parts = index if isinstance(index, tuple) else (index,)
    converted = tuple(torch.from_numpy(np.asarray(p)) if isinstance(p, (np.ndarray, list))
                      else p for p in parts)
    return x[converted if isinstance(index, tuple) else converted[0]]


def _linear(torch: Any, op: Op, x: Any, weight: Any, bias: Any) -> Any:
    return torch.matmul(x, weight) + bias            # weight (in, out), as in tm


def _batch_norm(torch: Any, op: Op, x: Any) -> Any:
    """PyTorch's BatchNorm: batch statistics (running ones moved) while the module trains."""
    o = op.options
    eps = float(o.get("eps", 1e-5))
    mean, var = o.get("running_mean"), o.get("running_var")
    if not (bool(o.get("training", True)) and op.part.training):
        return torch.nn.functional.batch_norm(x, mean, var, training=False, eps=eps)
    momentum, count = o.get("momentum", 0.1), o.get("num_batches_tracked")
    if mean is not None and count is not None:
        with torch.no_grad():
            count.add_(1)
        if momentum is None:                          # a cumulative average, as PyTorch's
            momentum = 1.0 / float(count)
    return torch.nn.functional.batch_norm(x, mean, var, training=True,
                                          momentum=0.0 if momentum is None else momentum, eps=eps)


def _layer_norm(torch: Any, op: Op, x: Any) -> Any:
    ndim = int(op.options.get("ndim", 1))
    return torch.nn.functional.layer_norm(x, tuple(x.shape[x.ndim - ndim:]),
                                          eps=float(op.options.get("eps", 1e-5)))


def _dropout(torch: Any, op: Op, x: Any) -> Any:
    return torch.nn.functional.dropout(x, float(op.options.get("p", 0.5)),
                                       training=op.part.training)


def _target(op: Op, x: Any, batch_size: int) -> list[int]:
    return [batch_size if size == -2 else size for size in reshape_target(op.step)]


def _reshape(torch: Any, op: Op, x: Any) -> Any:
    return x.reshape(_target(op, x, x.shape[0] if x.ndim else 1))


def _broadcast_to(torch: Any, op: Op, x: Any) -> Any:
    return x.expand(_target(op, x, -1))


def _squeeze(torch: Any, op: Op, x: Any) -> Any:
    axis = op.options.get("axis")
    if axis is None:
        axis = tuple(i for i, size in enumerate(op.step.input_shapes[0]) if size == 1)
    return torch.squeeze(x, dim=axis)


def _transpose(torch: Any, op: Op, x: Any) -> Any:
    axes = op.options.get("axes")
    return x.permute(*(range(x.ndim - 1, -1, -1) if axes is None else axes))


def _pad(torch: Any, op: Op, x: Any) -> Any:
    widths = np.broadcast_to(np.asarray(op.options.get("pad_width", 0)), (x.ndim, 2))
    pads = [int(w) for pair in widths[::-1] for w in pair]     # last axis first
    return torch.nn.functional.pad(x, pads, value=float(op.options.get("value", 0.0)))


def _pair(value: Any) -> tuple[int, int]:
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),) * 2


def _pads(op: Op, kernel: Any, stride: Any, dilation: Any = 1) -> tuple[int, int, int, int]:
    """(left, right, top, bottom), F.pad's order: "same" resolved for the traced size."""
    (top, bottom), (left, right) = resolve_padding(
        padding_argument("export", op.options.get("padding", 0)), op.step.input_shapes[0][2:],
        tuple(kernel), tuple(stride), _pair(dilation))
    return left, right, top, bottom


def _conv(torch: Any, op: Op, x: Any, weight: Any, bias: Any = None) -> Any:
    """F.conv2d; an asymmetric padding ("same" with an odd total) padded first."""
    stride, dilation = _pair(op.options.get("stride", 1)), _pair(op.options.get("dilation", 1))
    left, right, top, bottom = _pads(op, weight.shape[2:], stride, dilation)
    if (left, top) != (right, bottom):
        x, left, top = torch.nn.functional.pad(x, (left, right, top, bottom)), 0, 0
    return torch.nn.functional.conv2d(x, weight, bias, stride=stride, padding=(top, left),
                                      dilation=dilation, groups=int(op.options.get("groups", 1)))


def _max_pool(torch: Any, op: Op, x: Any) -> Any:
    """F.max_pool2d; a padding it refuses (asymmetric, "same") padded first with −inf."""
    kernel, stride = _pair(op.options.get("kernel_size", 2)), op.options.get("stride")
    stride = kernel if stride is None else _pair(stride)
    left, right, top, bottom = _pads(op, kernel, stride)
    if (left, top) != (right, bottom):
        x = torch.nn.functional.pad(x, (left, right, top, bottom), value=-float("inf"))
        left = top = 0
    return torch.nn.functional.max_pool2d(x, kernel, stride, (top, left))


def _avg_pool(torch: Any, op: Op, x: Any) -> Any:
    """F.avg_pool2d counting padded zeros (PyTorch's default); for "same" the sum of each
    window over the count of its real entries (Keras's rule)."""
    kernel, stride = _pair(op.options.get("kernel_size", 2)), op.options.get("stride")
    stride = kernel if stride is None else _pair(stride)
    left, right, top, bottom = _pads(op, kernel, stride)
    if op.options.get("padding", 0) != "same":
        return torch.nn.functional.avg_pool2d(x, kernel, stride, (top, left),
                                              count_include_pad=True)
    pads = (left, right, top, bottom)
    ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    sums, counts = (torch.nn.functional.avg_pool2d(torch.nn.functional.pad(t, pads), kernel,
                                                   stride) for t in (x, ones))
    return sums / counts


def _adaptive(name: str) -> Callable[..., Any]:
    def run(torch: Any, op: Op, x: Any) -> Any:
        return getattr(torch.nn.functional, name)(x, tuple(op.step.shape[2:]))
    return run


def _call(name: str, *keys: tuple[str, Any], functional: bool = False) -> Callable[..., Any]:
    """torch.NAME (or torch.nn.functional.NAME) of the inputs and the options `keys`, each
    (option name, default), passed positionally."""
    def run(torch: Any, op: Op, *xs: Any) -> Any:
        fn = getattr(torch.nn.functional if functional else torch, name)
        return fn(*xs, *[op.options.get(key, default) for key, default in keys])
    return run


def _as_type(torch: Any, op: Op, x: Any) -> Any:
    return x.to(getattr(torch, np.dtype(op.step.dtype).name))


def _gelu(torch: Any, op: Op, x: Any) -> Any:
    return torch.nn.functional.gelu(x, approximate=op.options.get("approximate", "none"))


def _clip(torch: Any, op: Op, x: Any) -> Any:
    return torch.clamp(x, op.options.get("min"), op.options.get("max"))


def _join(name: str) -> Callable[..., Any]:
    def run(torch: Any, op: Op, *xs: Any) -> Any:
        return getattr(torch, name)(xs, dim=int(op.options.get("axis", 0)))
    return run


TRANSLATIONS: dict[type, Callable[..., Any]] = {
    ops.Add: _call("add"), ops.Sub: _call("sub"), ops.Mul: _call("mul"), ops.Div: _call("div"),
    ops.Pow: _call("pow"), ops.Maximum: _call("maximum"), ops.Minimum: _call("minimum"),
    ops.Neg: _call("neg"), ops.Exp: _call("exp"), ops.Log: _call("log"), ops.Abs: _call("abs"),
    ops.Sqrt: _call("sqrt"), ops.Clip: _clip, ops.AsType: _as_type,
    ops.Sigmoid: _call("sigmoid"), ops.Tanh: _call("tanh"), ops.ReLU: _call("relu"),
    ops.Softmax: _call("softmax", ("axis", -1)), ops.LogSoftmax: _call("log_softmax", ("axis", -1)),
    ops.LeakyReLU: _call("leaky_relu", ("negative_slope", 0.01), functional=True),
    ops.ELU: _call("elu", ("alpha", 1.0), functional=True),
    ops.GELU: _gelu,
    ops.Softplus: _call("softplus", ("beta", 1.0), ("threshold", 20.0), functional=True),
    ops.MatMul: _call("matmul"), ops.Linear: _linear,
    ops.Sum: _reduce("sum"), ops.Mean: _reduce("mean"),
    ops.Max: _reduce("amax"), ops.Min: _reduce("amin"),
    ops.Var: _variance, ops.Std: _variance, ops.GetItem: _get_item,
    ops.BatchNorm: _batch_norm, ops.LayerNorm: _layer_norm, ops.Dropout: _dropout,
    ops.Reshape: _reshape, ops.Flatten: _reshape, ops.BroadcastTo: _broadcast_to,
    ops.Squeeze: _squeeze, ops.Unsqueeze: _call("unsqueeze", ("axis", 0)),
    ops.Transpose: _transpose, ops.Pad: _pad,
    ops.Concatenate: _join("cat"), ops.Stack: _join("stack"),
    ops.Conv2d: _conv, ops.MaxPool2d: _max_pool, ops.AvgPool2d: _avg_pool,
    ops.AdaptiveAvgPool2d: _adaptive("adaptive_avg_pool2d"),
    ops.AdaptiveMaxPool2d: _adaptive("adaptive_max_pool2d"),
}


def __getattr__(name: str) -> type:
    """`TracedPart` and `Traced`, made when first asked for (torch is optional), so that
    pickle finds them here: torch.save of a whole module and multiprocessing work."""
    if name in ("TracedPart", "Traced"):
        import torch
        return dict(zip(("TracedPart", "Traced"), _classes(torch)))[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=None)
def _classes(torch: Any) -> tuple[type, type]:
    """The torch.nn.Module classes (made once, when torch is first needed)."""

    class TracedPart(torch.nn.Module):
        """Stands for one tm module: holds its parameters and buffers (state_dict names as in
        tm) and its train/eval mode; the ops it ran read them."""

        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind

        def extra_repr(self) -> str:
            return f"tinygrad_mlp {self.kind}"

    class Traced(TracedPart):
        """The traced model: forward replays its ops with torch calls on the parameters."""

        def __init__(self, kind: str, trace: Trace) -> None:
            super().__init__(kind)
            self.input_names, self.output_names = list(trace.inputs), list(trace.outputs)
            self.program: list[tuple[Step, Any]] = []      # each op and the part that ran it

        def forward(self, *inputs: Any) -> Any:
            if len(inputs) != len(self.input_names):
                raise TypeError(f"{self.kind} (traced) takes {len(self.input_names)} input"
                                f"{'s' if len(self.input_names) != 1 else ''}, got "
                                f"{len(inputs)}")
            values = dict(zip(self.input_names, inputs))
            for step, part in self.program:
                options = {key: self.state(value.name) if isinstance(value, Buffer) else value
                           for key, value in step.options.items()}
                xs = [values[name] if name in values else self.state(name)
                      for name in step.inputs]
                run = TRANSLATIONS[step.function]
                values[step.output] = run(torch, Op(step, options, part), *xs)
            outputs = [values[name] if name in values else self.state(name)
                       for name in self.output_names]
            return outputs[0] if len(outputs) == 1 else tuple(outputs)

        def state(self, name: str) -> Any:
            """The parameter, buffer or constant of that (dotted) name, looked up now (`.to()`
            replaces buffers)."""
            owner, _, leaf = name.rpartition(".")
            return getattr(self.get_submodule(owner) if owner else self, leaf)

    for kind in (TracedPart, Traced):
        kind.__module__, kind.__qualname__ = __name__, kind.__name__
    return TracedPart, Traced


def build(trace: Trace, name: str, torch: Any) -> Any:
    """The torch module replaying `trace`: one TracedPart per tm module (same dotted names and
    modes), each holding its parameters (as torch Parameters) and buffers."""
    TracedPart, Traced = _classes(torch)
    root = Traced(name, trace)
    parts = {"": root}
    for path, module in trace.modules.items():
        if path:
            owner, _, leaf = path.rpartition(".")
            parts[path] = TracedPart(type(module).__name__)
            parts[owner].add_module(leaf, parts[path])
    for key, tensor in trace.parameters.items():
        owner, _, leaf = key.rpartition(".")
        parts[owner].register_parameter(leaf, torch.nn.Parameter(_tensor(torch, tensor.data)))
    for key, tensor in trace.buffers.items():
        owner, _, leaf = key.rpartition(".")
        parts[owner].register_buffer(leaf, _tensor(torch, tensor.data))
    for key, array in trace.constants.items():
        root.register_buffer(key, _tensor(torch, array), persistent=False)
    for path, module in trace.modules.items():
        parts[path].training = module.training
    root.program = [(step, parts.get(step.module, root)) for step in trace.steps]
    return root


def _tensor(torch: Any, array: np.ndarray) -> Any:
    # (np.array, not np.ascontiguousarray: that turns a 0-d count into shape (1,))
    return torch.from_numpy(np.array(array, order="C"))
