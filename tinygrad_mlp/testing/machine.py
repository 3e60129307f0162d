"""ModuleMachine: a hypothesis state machine that drives a Module through train, eval, optimizer
steps, save and load in any order, and checks after every rule what must always hold. Subclass
it with your model (`ModuleMachine.for_module`) to give your own layers the same checks."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tinygrad_mlp.io import load, save
from tinygrad_mlp.nn import Module
from tinygrad_mlp.optim import SGD
from tinygrad_mlp.tensor import Tensor, get_generator, graph_size, no_grad


_MODES = st.booleans().map(lambda eval_mode: not eval_mode)     # simplest: train mode


def _outputs(out: Any) -> list[Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _same_state(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=True) for k in a)


class ModuleMachine(RuleBasedStateMachine):
    """Rules: `set_mode` (train or eval), `step` (in train or eval mode: forward, loss, backward,
    one SGD step), `save` (tm.save of the state_dict) and `load` (tm.load into the module, once
    saved).
    Checked after every rule: every submodule is in the mode last set; eval mode is a pure
    function (two forward passes agree bit for bit and change no weight, buffer or the generator);
    the output keeps the parameters' dtype; after `load`, the state and the eval output are the
    saved ones, in the same parameter objects the optimizer holds.

    Subclass with `make_module()` and `make_inputs()` (a tuple of arrays: one batch), and
    optionally `loss(outputs)` (default: the mean square of every output), or call
    `ModuleMachine.for_module(make_module, make_inputs)`. Run it with `Machine.TestCase` under
    pytest, or `hypothesis.stateful.run_state_machine_as_test(Machine)`.
    """

    lr = 0.01

    def make_module(self) -> Module:
        raise NotImplementedError("ModuleMachine: define make_module() to return your Module")

    def make_inputs(self) -> tuple:
        raise NotImplementedError("ModuleMachine: define make_inputs() to return a batch (a "
                                  "tuple of arrays)")

    def loss(self, outputs: list[Tensor]) -> Tensor:
        total = (outputs[0] * outputs[0]).mean()
        for out in outputs[1:]:
            total = total + (out * out).mean()
        return total

    @classmethod
    def for_module(cls, make_module: Callable[[], Module], make_inputs: Callable[[], tuple],
                   name: str = "ModuleMachine") -> type[ModuleMachine]:
        """A subclass whose module and batch come from the two functions."""
        return type(name, (cls,), {"make_module": lambda self: make_module(),
                                   "make_inputs": lambda self: tuple(make_inputs())})

    def __init__(self) -> None:
        super().__init__()
        self.module = self.make_module()
        self.inputs = self.make_inputs()
        self.params = list(self.module.parameters())
        self.optimizer = SGD(self.params, lr=self.lr) if self.params else None
        self.mode = self.module.training
        self.directory = tempfile.mkdtemp(prefix="tm-machine-")
        self.path = os.path.join(self.directory, "state.npz")
        self.saved: tuple[dict[str, np.ndarray], list[np.ndarray]] | None = None

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _eval_outputs(self) -> list[np.ndarray]:
        """The eval-mode output, the module's mode restored after."""
        mode = self.module.training
        self.module.eval()
        try:
            with no_grad():
                return [o.data.copy() for o in _outputs(self.module(*self.inputs))]
        finally:
            self.module.train(mode)

    @rule(training=_MODES)
    def set_mode(self, training: bool) -> None:
        self.module.train(training)
        self.mode = training

    @rule(training=_MODES)
    def step(self, training: bool) -> None:
        """One optimizer step in the given mode (train mode is the simplest draw)."""
        self.set_mode(training)
        self.module.zero_grad()
        outputs = _outputs(self.module(*self.inputs))
        loss = self.loss(outputs)
        assert np.isfinite(loss.data).all(), f"the loss is {loss.data} before any step diverged"
        if not loss.requires_grad:
            assert not self.params, "parameters exist but the loss does not depend on them"
            return
        loss.backward()
        assert graph_size(loss) == 0, "backward() left the graph alive"
        for name, param in self.module.named_parameters():
            if param.grad is None:
                continue
            assert param.grad.shape == param.shape and param.grad.dtype == param.dtype, (
                f"{name}: gradient {param.grad.shape} {param.grad.dtype} for a parameter "
                f"{param.shape} {param.dtype}")
            assert np.isfinite(param.grad).all(), f"{name}: a non-finite gradient"
        self.optimizer.step()

    @rule()
    def save(self) -> None:
        save(self.module.state_dict(), self.path)
        self.saved = (self.module.state_dict(), self._eval_outputs())

    @precondition(lambda self: self.saved is not None)
    @rule()
    def load(self) -> None:
        state, outputs = self.saved
        self.module.load_state_dict(load(self.path))
        assert _same_state(self.module.state_dict(), state), "load did not restore the state"
        params = list(self.module.parameters())
        assert len(params) == len(self.params) and all(
            a is b for a, b in zip(params, self.params)), (
            "load replaced parameter objects the optimizer holds")
        assert self.module.training == self.mode, "load changed the module's mode"
        for got, want in zip(self._eval_outputs(), outputs):
            np.testing.assert_array_equal(got, want, err_msg="the loaded module's eval output "
                                                             "differs from the saved one")

    @invariant()
    def every_submodule_is_in_the_mode_last_set(self) -> None:
        wrong = [name or type(self.module).__name__ for name, m in self.module.named_modules()
                 if m.training != self.mode]
        assert not wrong, f"{wrong} not in {'train' if self.mode else 'eval'} mode"

    @invariant()
    def eval_mode_is_a_pure_function(self) -> None:
        state = self.module.state_dict()
        generator = get_generator().bit_generator.state
        first, second = self._eval_outputs(), self._eval_outputs()
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b, err_msg="two eval forward passes differ")
        assert _same_state(self.module.state_dict(), state), "an eval forward changed the state"
        assert get_generator().bit_generator.state == generator, (
            "an eval forward drew from the generator")
        dtypes = {p.dtype for p in self.params}
        for out in first:
            assert not dtypes or out.dtype in dtypes, (
                f"the output is {out.dtype}, the parameters {sorted(map(str, dtypes))}")
