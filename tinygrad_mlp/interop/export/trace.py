"""Tracing: the Functions one forward pass of a model runs, as a list of steps both exports read.

The model runs once on a small batch inside `record_tape()` (the engine's tape), as
`torch.onnx` traces: whatever Python a forward holds (a skip connection, a second input, a
merge) is gone and only the ops remain. Every Tensor an op reads is then one of four things:

    an input of the model        "X" (or "X1", "X2", … for several inputs)
    an earlier step's output     "t<step>"
    a parameter or a buffer      its state_dict name ("0.weight", "1.running_mean")
    anything else                a constant, inlined with the values it had ("constant<k>")

A buffer that an op takes as an option (BatchNorm's running statistics) becomes a `Buffer`
reference of that name. Each step knows the module that ran it (the innermost one), so an op
without a translation is reported with its module, and `to_torch` asks that module's mode.
Steps whose result no output needs are dropped. Afterwards the model is exactly as it was:
each module's own train/eval mode, its buffers and the random generator are restored.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from tinygrad_mlp import nn
from tinygrad_mlp._checks import positive_int
from tinygrad_mlp.nn.module import parameter_dtype
from tinygrad_mlp.tensor import (Tensor, get_generator, increment_version, no_grad,
                                 record_tape)

TRACE_BATCH = 2   # rows traced: BatchNorm in training needs more than one


class Buffer(NamedTuple):
    """A buffer passed to an op as an option (not an input), by its state_dict name."""
    name: str


class Step(NamedTuple):
    """One op of the trace: `function` its Function class, `inputs` the names of what it read,
    `options` its keyword arguments (buffers as `Buffer`), `output` its name; the shapes it
    read and made (batch axis included) and its output's dtype; `batched` whether each input's
    axis 0 is the batch; `module` the dotted name of the module that ran it ("" for the model)."""
    function: type
    inputs: list[str]
    options: dict[str, Any]
    output: str
    input_shapes: list[tuple[int, ...]]
    shape: tuple[int, ...]
    dtype: np.dtype
    batched: list[bool]
    module: str


class Trace(NamedTuple):
    """What both exports translate. `tensors` maps a parameter's or buffer's state_dict name to
    its Tensor, `constants` a constant's name to its array; `output_batched[i]` says whether
    output i's axis 0 is the batch (a Flatten over it folds it away)."""
    inputs: list[str]
    input_shapes: list[tuple[int, ...]]
    dtype: np.dtype
    steps: list[Step]
    outputs: list[str]
    output_shapes: list[tuple[int, ...]]
    output_batched: list[bool]
    parameters: dict[str, Tensor]
    buffers: dict[str, Tensor]
    constants: dict[str, np.ndarray]
    modules: dict[str, nn.Module]


def check_module(model: Any, caller: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller}: expected an nn.Module, got {type(model).__name__}")


def input_shapes(model: nn.Module, input_shape: Any, caller: str) -> list[tuple[int, ...]]:
    """One sample's shape per input: `input_shape` (a shape, or a list of shapes for several
    inputs), else the model's own `input_shape` (an nn.Model knows it), else (in_features,)
    when the first layer the model holds is a Linear."""
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None:
        first = next((m for m in model.modules() if next(m.children(), None) is None), None)
        if not isinstance(first, nn.Linear):
            raise TypeError(f"{caller}: give input_shape, one sample's shape without the batch "
                            f"axis, e.g. (64,) or (1, 28, 28): {type(model).__name__} does not "
                            f"say what it takes")
        input_shape = (first.in_features,)
    several = isinstance(input_shape, list) and all(
        isinstance(shape, (tuple, list)) for shape in input_shape) and input_shape != []
    shapes = input_shape if several else [input_shape]
    result = []
    for shape in shapes:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        result.append(tuple(positive_int("input_shape", size, owner=caller) for size in shape))
    return result


def model_dtype(model: nn.Module) -> np.dtype:
    """The parameters' dtype (the inputs are made in it): nn.module.parameter_dtype's rule."""
    return parameter_dtype(model)


@contextlib.contextmanager
def _restored(model: nn.Module, training: bool) -> Iterator[None]:
    """Every module in mode `training` inside the block; after it each module has its own mode
    back, each buffer its values and the random generator its state (a traced BatchNorm in
    training moves its statistics, a traced Dropout draws a mask)."""
    modes = [(module, module.training) for module in model.modules()]
    buffers = [(buffer, buffer.data.copy()) for buffer in model.buffers()]
    generator = get_generator().bit_generator
    state = generator.state
    model.train(training)
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        for buffer, values in buffers:
            if not np.array_equal(buffer.data, values, equal_nan=True):
                buffer.data[...] = values
                increment_version(buffer)
        generator.state = state


@contextlib.contextmanager
def _owners(model: nn.Module, tape: list, owner: dict[int, str]) -> Iterator[None]:
    """Inside the block, `owner[i]` is set to the dotted name of the innermost module whose
    forward was running when tape entry i was recorded: each module's forward is wrapped (an
    attribute of the instance, removed after), a child's finishing first."""
    def wrap(name: str, forward: Callable[..., Any]) -> Callable[..., Any]:
        def named_forward(*args: Any, **kwargs: Any) -> Any:
            start = len(tape)
            try:
                return forward(*args, **kwargs)
            finally:
                for index in range(start, len(tape)):
                    owner.setdefault(index, name)
        return named_forward

    wrapped = []
    try:
        for name, module in model.named_modules():
            had = module.__dict__.get("forward")
            object.__setattr__(module, "forward", wrap(name, module.forward))
            wrapped.append((module, had))
        yield
    finally:
        for module, had in wrapped:
            if had is None:
                object.__delattr__(module, "forward")
            else:
                object.__setattr__(module, "forward", had)


def _outputs(result: Any, caller: str) -> list[Tensor]:
    results = list(result) if isinstance(result, (tuple, list)) else [result]
    if not results or not all(isinstance(r, Tensor) for r in results):
        kinds = ", ".join(type(r).__name__ for r in results) or "nothing"
        raise TypeError(f"{caller}: the model must return a Tensor or a tuple of Tensors, "
                        f"it returned {kinds}")
    return results


def trace(model: nn.Module, shapes: Sequence[tuple[int, ...]], training: bool, caller: str
          ) -> Trace:
    """Run `model` once on TRACE_BATCH rows per input (all its modules in mode `training`)
    and return its steps; the model's modes, buffers and the generator are left as they were."""
    dtype = model_dtype(model)
    draw = np.random.default_rng(0)          # values away from 0: no log(0) while tracing
    tensors = [Tensor(draw.uniform(0.25, 0.75, (TRACE_BATCH, *shape)).astype(dtype))
               for shape in shapes]
    names = ["X"] if len(tensors) == 1 else [f"X{i}" for i in range(1, len(tensors) + 1)]
    owner: dict[int, str] = {}
    with _restored(model, training), no_grad(), record_tape() as tape, \
            _owners(model, tape, owner):
        results = _outputs(model(*tensors), caller)
    parameters = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    known = {id(t): n for n, t in [*zip(names, tensors), *parameters.items(), *buffers.items()]}
    by_array = {id(t.data): n for n, t in buffers.items()}
    batched = {name: True for name in names}
    constants: dict[str, np.ndarray] = {}
    steps = []
    for index, entry in enumerate(tape):
        inputs = []
        for tensor in entry.inputs:
            if id(tensor) not in known:
                known[id(tensor)] = f"constant{len(constants)}"
                constants[known[id(tensor)]] = tensor.data.copy()
            inputs.append(known[id(tensor)])
        output = known.setdefault(id(entry.output), f"t{index}")
        options = {key: Buffer(by_array[id(value)]) if id(value) in by_array else value
                   for key, value in entry.options.items()}
        flags = [batched.get(name, False) for name in inputs]
        shape = entry.output.shape
        batched[output] = any(flags) and len(shape) > 0 and shape[0] == TRACE_BATCH
        steps.append(Step(type(entry.function), inputs, options, output,
                          [t.shape for t in entry.inputs], shape, entry.output.dtype, flags,
                          owner.get(index, "")))
    outputs = []
    for tensor in results:
        if id(tensor) not in known:                    # a constant output: inline it
            known[id(tensor)] = f"constant{len(constants)}"
            constants[known[id(tensor)]] = tensor.data.copy()
        outputs.append(known[id(tensor)])
    steps = _needed(steps, outputs)
    return Trace(names, list(shapes), dtype, steps, outputs, [t.shape for t in results],
                 [batched.get(name, False) for name in outputs], parameters, buffers, constants,
                 dict(model.named_modules()))


def _needed(steps: list[Step], outputs: list[str]) -> list[Step]:
    """The steps some output depends on, in order (a step that writes a buffer counts too)."""
    wanted = set(outputs)
    kept = []
    for step in reversed(steps):
        writes = any(isinstance(value, Buffer) for value in step.options.values()) and (
            step.options.get("training", False))
        if step.output in wanted or writes:
            wanted.update(step.inputs)
            kept.append(step)
    return kept[::-1]


def owner_of(step: Step, trace: Trace, root: str) -> str:
    """"module '1.0' (Sequential)": the module that ran `step`, for error messages."""
    module = trace.modules.get(step.module)
    kind = type(module).__name__ if module is not None else "?"
    return f"module {step.module!r} ({kind})" if step.module else f"the model itself ({root})"


def check_translations(trace: Trace, table: dict[type, Any], caller: str, root: str) -> None:
    """A TypeError naming the first op without a translation in `table` and its module."""
    for step in trace.steps:
        if step.function not in table:
            known = ", ".join(sorted(f.__name__ for f in table))
            raise TypeError(f"{caller}: the op {step.function.__name__} (run by "
                            f"{owner_of(step, trace, root)}) has no translation; nothing was "
                            f"written. The ops that export: {known}")


def reshape_target(step: Step) -> list[int]:
    """The traced output shape of a reshape-like step, its batch axis made dynamic: -2 where it
    stays the input's axis 0 (ONNX's Reshape writes 0 there, torch x.shape[0]), -1 where the
    batch is folded into axis 0 (a Flatten from axis 0)."""
    target = list(step.shape)
    if step.batched and step.batched[0] and target:
        same = target[0] == step.input_shapes[0][0]
        target[0] = -2 if same else -1
    return target
