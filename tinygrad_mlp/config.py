"""The engine's switches: grad mode, the tape, the default dtype, the one random generator.

DeZero's `Config` + `using_config`: one object holds every flag and one context manager changes
any of them; `no_grad`, `enable_grad` and `record_tape` are one-liners on top. This module sits
below tensor.py (the engine reads `config` on every op) and imports nothing of the package, so
the dtype table and the tape's record type live here with it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, NamedTuple

import numpy as np

from tinygrad_mlp.backend import FLOAT_DTYPES

class Config(threading.local):
    """The engine's switches, kept in one object (DeZero's `Config`); change them only through
    `using_config` (or `no_grad`, `enable_grad`, `record_tape`, `set_default_dtype`).

    grad_enabled  record the graph (False inside `no_grad`)
    tape          the list `record_tape` appends each Function call to, or None
    dtype         the dtype ints, lists and scalars become

    thread_dtype  this thread's dtype in place of `dtype` while not None (how `tm.load_model`
                  builds each layer in its saved dtype without changing any other thread's)

    Each thread has its own grad mode and tape (as PyTorch's grad mode): a `no_grad` block or a
    recording in one thread never changes what another thread records; a new thread starts
    with grad enabled and no tape. The default dtype is one for all threads (as PyTorch's).
    """

    _dtype = np.dtype(np.float32)

    def __init__(self) -> None:              # runs once in every thread that reads config
        self.grad_enabled = True
        self.tape: list[TapeEntry] | None = None
        self.thread_dtype: np.dtype | None = None

    @property
    def dtype(self) -> np.dtype:
        return Config._dtype if self.thread_dtype is None else self.thread_dtype

    @dtype.setter
    def dtype(self, value: np.dtype) -> None:
        Config._dtype = value


config = Config()
_generator = np.random.default_rng()


@contextlib.contextmanager
def using_config(name: str, value: Any) -> Iterator[None]:
    """Set `config.<name>` to `value` inside the block and restore it after, even on error."""
    previous = getattr(config, name)
    setattr(config, name, value)
    try:
        yield
    finally:
        setattr(config, name, previous)


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Nothing computed inside is recorded: no graph, no gradients (use for inference)."""
    return using_config("grad_enabled", False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Record the graph again inside a `no_grad` block."""
    return using_config("grad_enabled", True)


def is_grad_enabled() -> bool:
    return config.grad_enabled


def set_default_dtype(dtype: Any) -> None:
    """Dtype given to ints, lists and scalars turned into Tensors (float32 unless set)."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"default dtype must be float16, float32 or float64, got {dtype}")
    config.dtype = dtype


def get_default_dtype() -> np.dtype:
    return config.dtype


def manual_seed(seed: int | None) -> np.random.Generator:
    """Seed the one generator that initialisation, shuffling and unseeded splits draw from."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def get_generator() -> np.random.Generator:
    """The generator `manual_seed` last seeded (read it at call time: seeding replaces it)."""
    return _generator


# --- the tape: every Function call inside a block, in order ------------------------------------

class TapeEntry(NamedTuple):
    """One recorded call: `function` is the Function instance (its ctx: `type(function)` is the
    op), `inputs` the Tensors it read, `options` its keyword arguments, `output` its result.
    (Typed Any: tensor.py, which defines Function and Tensor, sits below this module.)"""
    function: Any
    inputs: list[Any]
    options: dict[str, Any]
    output: Any


@contextlib.contextmanager
def record_tape() -> Iterator[list[TapeEntry]]:
    """Record every `Function.apply` inside the block, with or without grad, on a list.

    >>> from tinygrad_mlp import Tensor
    >>> with record_tape() as tape:
    ...     y = (Tensor([1.0, 2.0]) * 3).sum()
    >>> [type(entry.function).__name__ for entry in tape]
    ['Mul', 'Sum']

    The tape holds its Tensors alive. Tapes do not nest: recording inside a recording is a
    RuntimeError (check `is_recording()` first). `train.replay.TrainStep` replays such tapes.
    """
    if config.tape is not None:
        raise RuntimeError("record_tape() inside another record_tape(): tapes do not nest")
    tape: list[TapeEntry] = []
    with using_config("tape", tape):
        yield tape


def is_recording() -> bool:
    """Is a `record_tape()` block active?"""
    return config.tape is not None
