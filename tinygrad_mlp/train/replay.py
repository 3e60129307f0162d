"""Record one training step's graph once for fixed shapes, then replay it.

Per-sample SGD on a small network spends most of its time in Python: it builds the same
five-node graph, topological order and module calls again for every sample. A `TrainStep` runs
its first step eagerly while the engine records every Function call on a tape (class, inputs,
options, output). Later steps with the same shapes put the batch in place of the recorded
inputs and call the recorded Functions' `forward` and `backward` directly: the same numpy
code as the eager engine, in the same order, so the results are the same, without rebuilding
Tensors, modules or the topological order.

Replay is only sound when the step's Python code does not depend on the data's values. Two
guards keep it honest: the recorded tape must read the batch from the input buffers (if a
module or loss converted the batch in Python, e.g. class indices into one-hot rows, the step
stays eager), and the first replay of each tape is compared with an eager forward pass on
the same batch; any difference switches the TrainStep to eager for good. Each recorded op keeps
one ctx that every replay's forward refills, so a Function used under replay must set, in
forward, every ctx attribute its backward reads (all built-in Functions do).

State a forward changes besides its output stays right under replay when the Function changes
it inside `forward`: Dropout draws a new mask from `tm.get_generator()` on every replay, and
BatchNorm updates its running statistics (arrays passed as options) in place. The eager pass
that checks a first replay starts from the generator state and buffers the replay started
from, and leaves them as the replay did. A tape is kept per train/eval mode of the model.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from tinygrad_mlp._checks import choice
from tinygrad_mlp.tensor import (Tensor, TapeEntry, backpropagate, get_generator, is_recording,
                                 record_tape, topological_order)
from tinygrad_mlp.train.prepare import Inputs, replayable


class _Program:
    """One recorded step: its ops (each with a ctx), the loss node and its order, the inputs.

    Each array the tape produces or reads (the two input buffers, every op's output) is renewed
    on replay by re-pointing the Tensors that hold it at the new array, which costs nothing. Only
    an array that something else also sees (a view of it, or an option such as a fused loss's
    `a2=`) is overwritten in place instead, so that everything that captured it sees the new values.
    """

    def __init__(self, tape: list[TapeEntry], output: Tensor, loss: Tensor,
                 X: list[np.ndarray], Y: np.ndarray, order: list[Tensor]) -> None:
        self.output, self.loss = output, loss
        self.order = [node for node in order if node.creator is not None]   # the op nodes
        self.checked = False       # until its first replay agrees with an eager forward
        tensors = {id(t): t for _, parents, _, result in tape for t in (*parents, result)}
        holders: dict[int, list[Tensor]] = {}
        seen_elsewhere: set[int] = set()
        for t in tensors.values():
            holders.setdefault(id(t.data), []).append(t)
            if t.data.base is not None:
                seen_elsewhere.add(id(t.data.base))
        for _, _, options, _ in tape:
            for value in options.values():
                if isinstance(value, np.ndarray):
                    seen_elsewhere.update((id(value), id(value.base)))

        def slot(array: np.ndarray) -> tuple[np.ndarray, list[Tensor], bool]:
            shared = id(array) in seen_elsewhere and array.flags.writeable
            return array, holders.get(id(array), []), shared

        self.X, self.Y = [slot(x) for x in X], slot(Y)
        self.steps = []            # (Function, its ctx, inputs, options, output's slot) per op
        for ctx, parents, options, result in tape:
            # The recorded ctx stays the output's creator; the eager backward emptied it, so it
            # gets its inputs back, and every replay's forward refills the rest.
            ctx.needs_input_grad = tuple([p.requires_grad for p in parents])
            if result.requires_grad:
                ctx.parents = parents
            self.steps.append((type(ctx), ctx, parents, options, slot(result.data)))
        self.seed = np.ones_like(loss.data)      # dJ/dJ, read-only: shared by every replay
        self.seed.flags.writeable = False


class TrainStep:
    """`step(X, Y) -> loss value`: zero_grad, forward, loss, backward and the update in one call.
    For a model with several inputs X is a tuple of arrays, `model(*X)`.

    Equivalent to the eager loop

        optimizer.zero_grad(); J = loss(model(X), Y); J.backward(); optimizer.step()

    but replays a recorded tape for batch shapes it has seen (at most `max_programs` of them:
    a full batch and the last short one, typically). A non-finite loss skips backward and the
    update, so the weights stay those of the last finite step; the value is returned as is.
    `replay=None` (the default) replays only what is proven safe: a model and loss built from
    modules that declare `replayable` (all built-in ones); `replay=True` vouches for a custom
    model (its graph must not depend on the data's values); `replay=False` always runs
    eagerly. After each call `output` holds the model's prediction for the batch (an array,
    valid until the next call).
    """

    def __init__(self, model: Callable[[Any], Tensor], loss: Callable[[Tensor, Any], Tensor],
                 optimizer: Any, replay: bool | None = None, max_programs: int = 4) -> None:
        choice("replay", replay, (None, True, False), owner="TrainStep")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.replay = replayable(model, loss) if replay is None else replay
        self.max_programs = max_programs
        self._programs: dict[tuple, _Program] = {}
        self.output: np.ndarray | None = None

    def __call__(self, X: Any, Y: np.ndarray) -> float:
        X = (list(X.arrays) if isinstance(X, Inputs) else list(X)
             if isinstance(X, (tuple, list)) else [X])    # several inputs: one array each
        if not self.replay:
            return self._eager(X, Y)
        key = (tuple((x.shape, x.dtype) for x in X), Y.shape, Y.dtype,
               getattr(self.model, "training", None))
        program = self._programs.get(key)
        if program is not None:
            return self._replay(program, X, Y)
        if len(self._programs) >= self.max_programs or is_recording():
            return self._eager(X, Y)
        return self._record(key, X, Y)

    def _eager(self, X: list[np.ndarray], Y: np.ndarray) -> float:
        output = self.model(*X)
        self.output = output.data
        J = self.loss(output, Y)
        return self._finish(J, lambda: J.backward())

    def _finish(self, J: Tensor, backward: Callable[[], None]) -> float:
        if J.data.size != 1:
            raise ValueError(f"TrainStep: the loss must be a scalar, got shape {J.shape}; "
                             f"reduce it with .sum() or .mean()")
        value = J.item()
        if math.isfinite(value):
            self.optimizer.zero_grad()
            backward()
            self.optimizer.step()
        return value

    def _record(self, key: tuple, X: list[np.ndarray], Y: np.ndarray) -> float:
        X_buffers, Y_buffer = [np.array(x) for x in X], np.array(Y)
        with record_tape() as tape:
            output = self.model(*X_buffers)
            J = self.loss(output, Y_buffer)
        self.output = output.data
        replayable = J.requires_grad and _reads(tape, Y_buffer) and all(
            _reads(tape, buffer) for buffer in X_buffers)
        order = topological_order(J) if replayable else []
        value = self._finish(J, lambda: J.backward())
        if replayable:          # (built after the eager backward, which frees the graph's ctxs)
            self._programs[key] = _Program(tape, output, J, X_buffers, Y_buffer, order)
        else:                   # the batch was converted in Python: this step can't be replayed
            self.replay = False
        return value

    def _replay(self, program: _Program, X: list[np.ndarray], Y: np.ndarray) -> float:
        checking = not program.checked
        if checking:
            before = _SideState(self.model)
        for slot, x in zip(program.X, X):
            _renew(slot, x)
        _renew(program.Y, Y)
        for cls, ctx, parents, options, output in program.steps:
            _renew(output, cls.forward(ctx, *[p.data for p in parents], **options))
        J = program.loss
        self.output = program.output.data
        if checking:            # the same step once more, eagerly, from the same side state
            program.checked = True
            after = _SideState(self.model)
            before.restore()
            agrees = _same(J.item(), self.loss(self.model(*X), Y).item(), J.dtype)
            if not agrees:
                before.restore()
                self.replay = False
                self._programs.clear()
                return self._eager(X, Y)
            after.restore()
        return self._finish(J, lambda: backpropagate(program.order, program.seed, True))


class _SideState:
    """What a forward pass changes besides its outputs: the random generator (Dropout draws its
    masks from it) and the model's buffers (BatchNorm's running statistics and count). Taken
    before and after a checked replay, so the eager pass that checks it draws the same masks
    and the statistics move once per step, not twice."""

    def __init__(self, model: Any) -> None:
        self.generator = get_generator().bit_generator
        self.state = self.generator.state
        buffers = model.buffers() if callable(getattr(model, "buffers", None)) else []
        self.buffers = [(buffer.data, buffer.data.copy()) for buffer in buffers]

    def restore(self) -> None:
        self.generator.state = self.state
        for array, saved in self.buffers:
            np.copyto(array, saved)


def _renew(slot: tuple[np.ndarray, list[Tensor], bool], new: Any) -> None:
    """Give a recorded array its new values: re-point its holders, or overwrite it if shared."""
    array, holders, shared = slot
    if shared:
        np.copyto(array, new)
        return
    if type(new) is not np.ndarray:
        new = np.asarray(new)
    for tensor in holders:
        tensor.data = new


def _reads(tape: list[TapeEntry], buffer: np.ndarray) -> bool:
    """Does some recorded Function take `buffer` (or a view of it) as an input?"""
    return any(p.data is buffer or p.data.base is buffer for _, parents, _, _ in tape
               for p in parents)


def _same(replayed: float, eager: float, dtype: np.dtype) -> bool:
    tolerance = 64 * np.finfo(dtype).eps * max(1.0, abs(eager))
    return replayed == eager or abs(replayed - eager) <= tolerance or (
        np.isnan(replayed) and np.isnan(eager))
