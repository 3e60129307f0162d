"""The engine: a Tensor that records the graph, Function (the one way an op is defined), backward.

Read this file top to bottom. A Tensor holds a numpy array. Every op is a `Function` whose
`forward(ctx, *arrays)` computes the result in numpy and whose `backward(ctx, grad)` returns
one gradient per input. `Function.apply` runs forward and, when a gradient will be needed,
remembers the inputs (`ctx.parents`) on the output. `Tensor.backward` then walks that graph in
reverse topological order and applies the chain rule: "never stop until you reach the target".

The built-in Functions live in the package `ops/`; the Tensor methods here are one-line calls
into them.

The seams other layers build on (only this file touches a Tensor's private fields):

    tensor.creator              the Function that made a tensor (None for a leaf); its
                                `.parents` are the inputs, `type(creator)` the op
    topological_order(root)     the nodes behind root that need a gradient, inputs first
    backpropagate(order, grad)  the backward walk over such an order (what backward() runs)
    record_tape()               a context manager listing every Function call (TapeEntry)
    config, using_config        the switches (grad mode, tape, default dtype) in one object
    increment_version(t)        what every in-place write to `t.data` by the library calls, so
                                backward can refuse a graph whose saved inputs changed since
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

# --- configuration: grad mode, tape, default dtype, the one random generator ---------------

_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


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
    if dtype not in _FLOAT_DTYPES:
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


def as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Data as a float ndarray: float arrays are shared as they are, anything else is converted.

    Ints, bools, lists and scalars become the default dtype (or `dtype`); strings, objects and
    complex numbers are a TypeError.
    """
    if isinstance(data, Tensor):
        data = data.data
    if type(data) is np.ndarray and dtype is None and data.dtype in _FLOAT_DTYPES:
        return data
    try:
        array = np.asarray(data)
    except ValueError as error:  # ragged nested lists
        raise TypeError(f"Tensor data must be a rectangular array of real numbers: {error}"
                        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"Tensor data must be real numbers; got dtype {array.dtype} "
                        f"(strings, objects, complex numbers and ragged lists are not supported)")
    if dtype is not None:
        return array.astype(dtype, copy=False)
    if isinstance(data, np.ndarray) and array.dtype.kind == "f":
        return array
    return array.astype(config.dtype)


# --- Function: forward and backward of one op, with its context -----------------------------

class Function:
    """One differentiable op. Subclass it, write two static methods, call it with `.apply`.

    >>> class Square(Function):
    ...     @staticmethod
    ...     def forward(ctx, x):          # numpy in, numpy out
    ...         ctx.x = x                 # ctx keeps what backward needs
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, grad):      # one gradient per input, each of that input's shape
    ...         return 2 * ctx.x * grad
    >>> Square.apply(Tensor([3.0], requires_grad=True)).sum().item()
    9.0

    Positional arguments of `apply` are the inputs (Tensors, arrays or scalars); keyword
    arguments are options handed to forward unchanged (like `axis=1`). The engine sums each
    gradient back over broadcast axes, so backward may return the gradient at the output's
    broadcast shape. `ctx.needs_input_grad[i]` says whether input i needs a gradient at all.
    """

    parents: list[Tensor] | None = None   # the inputs, set by apply; None once backward frees it
    input_versions: list[int] | None = None   # each input's version when forward read it
    writes_seen = 0        # how many in-place writes (to any tensor) had been made by then
    rule: str = ""   # one line for viz.explain: the local derivative that backward applies

    @staticmethod
    def forward(ctx: Function, *arrays: np.ndarray, **options: Any) -> np.ndarray:
        raise NotImplementedError("a Function must define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx: Function, grad: np.ndarray) -> np.ndarray | Sequence[np.ndarray | None]:
        raise NotImplementedError("a Function must define backward(ctx, grad)")

    def save_for_backward(self, *arrays: np.ndarray) -> None:
        """PyTorch's spelling of `ctx.saved_tensors = arrays`."""
        self.saved_tensors = arrays

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Tensor:
        ctx = cls()
        parents, arrays, needs, versions = [], [], [], []   # one loop, not four comprehensions:
        for x in inputs:                                     # this is the engine's hot path
            if not isinstance(x, Tensor):
                x = Tensor(x)
            parents.append(x)
            arrays.append(x.data)
            needs.append(x.requires_grad)
            versions.append(x._version)
        ctx.needs_input_grad = tuple(needs)
        data = cls.forward(ctx, *arrays, **options)
        if type(data) is not np.ndarray or data.dtype.kind not in "fbiu":
            data = _forward_result(cls, data)
        result = _wrap(data)
        if True in needs and config.grad_enabled:
            ctx.parents, ctx.input_versions, ctx.writes_seen = parents, versions, _writes[0]
            result.requires_grad, result._ctx = True, ctx
        if config.tape is not None:    # inside record_tape()
            config.tape.append(TapeEntry(ctx, parents, options, result))
        return result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backward>"


def _forward_result(cls: type, data: Any) -> np.ndarray:
    """A forward's result that is not a numeric ndarray: a number becomes one, anything else
    (a string, None, an object array) is a TypeError naming the Function."""
    if isinstance(data, (np.generic, int, float)) and not isinstance(data, (str, bytes)):
        data = np.asarray(data)
        if data.dtype.kind in "fbiu":
            return data
    kind = f"an array of dtype {data.dtype}" if isinstance(data, np.ndarray) else (
        f"{type(data).__name__} {data!r}"[:80])
    raise TypeError(f"{cls.__name__}.forward must return a numeric numpy array, got {kind}")


# --- the tape: every Function call inside a block, in order ------------------------------------

class TapeEntry(NamedTuple):
    """One recorded call: `function` is the Function instance (its ctx: `type(function)` is the
    op), `inputs` the Tensors it read, `options` its keyword arguments, `output` its result."""
    function: Function
    inputs: list[Tensor]
    options: dict[str, Any]
    output: Tensor


@contextlib.contextmanager
def record_tape() -> Iterator[list[TapeEntry]]:
    """Record every `Function.apply` inside the block, with or without grad, on a list.

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


# --- Tensor ----------------------------------------------------------------------------------

class Tensor:
    """An n-dimensional array that remembers how it was computed, so gradients can flow back.

    `Tensor(data, requires_grad=False)`: a float ndarray is shared, not copied; ints, lists
    and scalars become the default dtype (float32 unless `set_default_dtype` says otherwise).
    """

    __slots__ = {
        "data": "The ndarray this tensor holds. The library's own in-place writes (optimizer "
                "steps, load_state_dict) call `increment_version`, so a backward through a graph "
                "that saved the old values raises; writing `t.data[...] = ...` yourself bypasses "
                "that check (as in PyTorch): do it outside any forward-backward pair, or call "
                "`increment_version(t)` after.",
        "grad": "The gradient backward accumulated (an ndarray of data's shape), or None.",
        "requires_grad": "Does backward compute a gradient for this tensor?",
        "name": "An optional label (viz and error messages show it).",
        "_ctx": "", "_retain_grad": "", "_version": "", "__weakref__": ""}
    __array_ufunc__ = None   # numpy defers to our reflected operators: np.float64(2)*t is a Tensor

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 name: str | None = None) -> None:
        self.data: np.ndarray = as_array(data, dtype)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._ctx: Function | None = None
        self._retain_grad = False
        self._version = 0

    # --- the chain rule ----------------------------------------------------------------------

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Add d(self)/d(leaf) · grad into `.grad` of every leaf that requires grad.

        A scalar output is seeded with 1; any other output needs `grad` of its own shape.
        Leaf gradients accumulate across calls until `zero_grad()` (PyTorch semantics). The
        graph is freed afterwards unless `retain_graph=True`.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad and has no "
                               "graph; create the leaves with requires_grad=True")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() needs a scalar output or an explicit grad; got shape "
                                 f"{self.shape}: call .sum() or .mean() first, or pass grad= of "
                                 f"shape {self.shape}")
            grad = np.ones_like(self.data)
        else:
            grad = as_array(grad, self.data.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward(): grad shape {grad.shape} does not match output shape "
                                 f"{self.data.shape}")
        backpropagate(topological_order(self), grad, retain_graph)

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this non-leaf tensor during backward (leaves always keep theirs)."""
        self._retain_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> Tensor:
        """The same data (shared, not copied), cut from the graph."""
        return Tensor(self.data)

    # --- numpy-like properties -----------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """Made by no recorded op: created by the user, by `detach()`, or under `no_grad`."""
        return self._ctx is None

    @property
    def creator(self) -> Function | None:
        """The Function (its ctx) that computed this tensor, None for a leaf (PyTorch's grad_fn).

        `creator.parents` are its inputs, in order (None once backward freed the graph), and
        `type(creator)` is the op. This is how other layers read the graph: viz draws it, a
        loss recognises the Softmax or Sigmoid it can fuse with (`nn.losses`).
        """
        return self._ctx

    @property
    def version(self) -> int:
        """How many in-place writes the library made to `.data` (PyTorch's `_version`)."""
        return self._version

    @property
    def retains_grad(self) -> bool:
        """Will backward keep `.grad` on this non-leaf tensor (`retain_grad()` was called)?"""
        return self._retain_grad

    @property
    def op(self) -> str | None:
        """Name of the Function that made this tensor (None for a leaf)."""
        return None if self._ctx is None else type(self._ctx).__name__

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        def show(array: np.ndarray) -> str:
            return np.array2string(array, precision=4, separator=", ", threshold=20,
                                   prefix="Tensor(")
        extra = f", op={self.op}" if self._ctx is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        grad = "" if self.grad is None else f", grad={show(self.grad)}"
        return f"Tensor({show(self.data)}, dtype={self.dtype}{extra}{grad})"

    # --- arithmetic (each a Function from ops.py) ---------------------------------------------

    def _operand(self, other: Any) -> Tensor:
        """Another operand as a Tensor; a constant (scalar, list or array) takes this tensor's
        dtype, so a float64 numpy constant never upcasts a float32 graph."""
        if isinstance(other, Tensor):
            return other
        if type(other) is float or type(other) is int:    # the common case, made cheap
            return _wrap(np.array(other, dtype=self.data.dtype))
        return Tensor(other, dtype=self.data.dtype)

    def __add__(self, other: Any) -> Tensor:
        return ops.Add.apply(self, self._operand(other))

    def __radd__(self, other: Any) -> Tensor:
        return ops.Add.apply(self._operand(other), self)

    def __sub__(self, other: Any) -> Tensor:
        return ops.Sub.apply(self, self._operand(other))

    def __rsub__(self, other: Any) -> Tensor:
        return ops.Sub.apply(self._operand(other), self)

    def __mul__(self, other: Any) -> Tensor:
        return ops.Mul.apply(self, self._operand(other))

    def __rmul__(self, other: Any) -> Tensor:
        return ops.Mul.apply(self._operand(other), self)

    def __truediv__(self, other: Any) -> Tensor:
        return ops.Div.apply(self, self._operand(other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.Div.apply(self._operand(other), self)

    def __pow__(self, exponent: Any) -> Tensor:
        return ops.Pow.apply(self, self._operand(exponent))

    def __rpow__(self, base: Any) -> Tensor:
        return ops.Pow.apply(self._operand(base), self)

    def __matmul__(self, other: Any) -> Tensor:
        return ops.MatMul.apply(self, self._operand(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        return ops.MatMul.apply(self._operand(other), self)

    def __neg__(self) -> Tensor:
        return ops.Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __getitem__(self, index: Any) -> Tensor:
        return ops.GetItem.apply(self, index=index)

    # --- elementwise functions and activations ------------------------------------------------

    def exp(self) -> Tensor:
        return ops.Exp.apply(self)

    def log(self) -> Tensor:
        return ops.Log.apply(self)

    def sigmoid(self) -> Tensor:
        return ops.Sigmoid.apply(self)

    def tanh(self) -> Tensor:
        return ops.Tanh.apply(self)

    def relu(self) -> Tensor:
        return ops.ReLU.apply(self)

    def softmax(self, axis: int = -1) -> Tensor:
        return ops.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return ops.LogSoftmax.apply(self, axis=axis)

    def abs(self) -> Tensor:
        return ops.Abs.apply(self)

    def __abs__(self) -> Tensor:
        return ops.Abs.apply(self)

    def sqrt(self) -> Tensor:
        return ops.Sqrt.apply(self)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        """Entries limited to [min, max]; the gradient passes inside, bounds included."""
        return ops.Clip.apply(self, min=min, max=max)

    def astype(self, dtype: Any) -> Tensor:
        """The values in another float dtype (a new node: the gradient flows back, recast)."""
        return ops.AsType.apply(self, dtype=dtype)

    # --- reductions ----------------------------------------------------------------------------

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.Min.apply(self, axis=axis, keepdims=keepdims)

    def var(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False,
            ddof: int = 0) -> Tensor:
        """Σ(x − mean)² / (n − ddof): ddof=0 as numpy, ddof=1 the unbiased (PyTorch's default)."""
        return ops.Var.apply(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False,
            ddof: int = 0) -> Tensor:
        return ops.Std.apply(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
        """Index of the first maximal entry (an int ndarray: no graph, no gradient)."""
        return ops.argmax(self.data, axis=axis, keepdims=keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
        """Index of the first minimal entry (an int ndarray: no graph, no gradient)."""
        return ops.argmin(self.data, axis=axis, keepdims=keepdims)

    # --- shape ---------------------------------------------------------------------------------

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self) -> Tensor:
        return ops.Transpose.apply(self, axes=None)

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        return ops.Flatten.apply(self, start_axis=start_axis, end_axis=end_axis)

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Tensor:
        return ops.Squeeze.apply(self, axis=axis)

    def unsqueeze(self, axis: int) -> Tensor:
        return ops.Unsqueeze.apply(self, axis=axis)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        return ops.BroadcastTo.apply(self, shape=tuple(shape))

    def pad(self, pad_width: Any, value: float = 0.0) -> Tensor:
        """Constant padding; `pad_width` as numpy's: int, (before, after), or a pair per axis."""
        return ops.Pad.apply(self, pad_width=pad_width, value=value)

    # --- comparisons: bool ndarrays, no graph ----------------------------------------------

    def _compare(self, other: Any, compare: Any, symbol: str) -> np.ndarray:
        other_data = other.data if isinstance(other, Tensor) else np.asarray(other)
        try:
            return np.asarray(compare(self.data, other_data))
        except ValueError:
            raise ValueError(f"{symbol}: shapes {self.shape} and {np.shape(other_data)} cannot be "
                             f"broadcast together") from None

    def __lt__(self, other: Any) -> np.ndarray:
        return self._compare(other, np.less, "<")

    def __le__(self, other: Any) -> np.ndarray:
        return self._compare(other, np.less_equal, "<=")

    def __gt__(self, other: Any) -> np.ndarray:
        return self._compare(other, np.greater, ">")

    def __ge__(self, other: Any) -> np.ndarray:
        return self._compare(other, np.greater_equal, ">=")

    # --- Python values ------------------------------------------------------------------------

    def _one_value(self, kind: str) -> Any:
        if self.data.size != 1:
            raise ValueError(f"{kind}() needs a tensor with exactly one element, got shape "
                             f"{self.shape}")
        return self.data.item()

    def __float__(self) -> float:
        return float(self._one_value("float"))

    def __int__(self) -> int:
        return int(self._one_value("int"))

    def __bool__(self) -> bool:
        """The truth of a one-element tensor; more elements are ambiguous (as numpy, PyTorch)."""
        return bool(self._one_value("bool"))

    def tolist(self) -> Any:
        """The values as (nested) Python lists of floats; a 0-d tensor gives a float."""
        return self.data.tolist()


# --- functions of several tensors -------------------------------------------------------------

def _tensors(values: Sequence[Any]) -> list[Tensor]:
    """Tensors for `values`; constants take the dtype of the first Tensor among them."""
    first = next((v for v in values if isinstance(v, Tensor)), None)
    if first is None:
        return [Tensor(v) for v in values]
    return [first._operand(v) for v in values]


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Tensors of one shape joined along a new axis (numpy.stack, torch.stack)."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"stack: expected a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    return ops.Stack.apply(*_tensors(tensors), axis=axis)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Tensors joined along an existing axis (numpy.concatenate, torch.cat)."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"concatenate: expected a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    return ops.Concatenate.apply(*_tensors(tensors), axis=axis)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """a where the boolean `condition` holds, else b; all three broadcast together."""
    condition = condition if isinstance(condition, np.ndarray) else np.asarray(
        condition.data if isinstance(condition, Tensor) else condition)
    return ops.Where.apply(*_tensors([a, b]), condition=condition)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max with broadcasting; at a tie each operand gets half the gradient."""
    return ops.Maximum.apply(*_tensors([a, b]))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min with broadcasting; at a tie each operand gets half the gradient."""
    return ops.Minimum.apply(*_tensors([a, b]))


def increment_version(*tensors: Tensor) -> None:
    """Record an in-place write to each tensor's `.data` (PyTorch's
    `torch.autograd.graph.increment_version`). Every such write the library makes calls it
    (optimizers, `load_state_dict`, fit restoring weights); backward then refuses to use a
    graph whose ops read an older version, instead of silently using the new values."""
    for tensor in tensors:
        tensor._version += 1
    _writes[0] += len(tensors)


_writes = [0]   # in-place writes so far, to any tensor: backward compares versions only if it grew


# --- graph walking: the topological order and the backward walk over it ----------------------

def topological_order(root: Tensor) -> list[Tensor]:
    """Every node behind `root` that needs a gradient, each after all of its inputs; root last.

    A depth-first walk with an explicit stack of (node, its remaining inputs), so a graph of any
    depth works (no recursion limit). Tensors hash by identity: they define no __eq__. Inputs
    that need no gradient (data, constants) are not in it; their consumers' `creator.parents`
    still lists them.
    """
    order: list[Tensor] = []
    visited = {root}
    path: list[tuple[Tensor, Iterator[Tensor]]] = []
    node, inputs = root, _inputs(root)
    while True:
        for parent in inputs:
            if parent.requires_grad and parent not in visited:
                visited.add(parent)
                path.append((node, inputs))
                node, inputs = parent, _inputs(parent)
                break
        else:                              # all inputs of `node` are placed: place it
            order.append(node)
            if not path:
                return order
            node, inputs = path.pop()


def _inputs(node: Tensor) -> Iterator[Tensor]:
    ctx = node._ctx
    return iter(ctx.parents) if ctx is not None and ctx.parents is not None else iter(())


def backpropagate(order: list[Tensor], grad: np.ndarray, retain_graph: bool = False,
                  retain_grads: bool = False) -> None:
    """The chain rule: walk `order` backwards from its last node, the root, whose gradient is
    `grad` (an array of the root's shape and dtype). `Tensor.backward` is this walk over
    `topological_order(root)`; a caller that kept an order (TrainStep, viz) passes it again.

    `order` lists inputs before outputs (leaves may be left out: they get their gradient from
    their consumers). Each node's gradient is complete when it is reached (all its consumers
    come later in `order`), so its Function's backward runs exactly once; gradients of a node
    used several times add up, out of place, so no array is ever shared and then mutated. A leaf
    keeps each gradient the moment it arrives. `retain_grads`: every non-leaf also keeps the
    gradient that reached it in `.grad`, as if `retain_grad()` had been called on each.
    """
    root = order[-1]
    kept = {id(grad)}          # arrays some .grad (or the caller) holds: copy before keeping again
    if root._ctx is None:
        _keep(root, grad, kept)
        return
    grads = {root: grad}
    for node in reversed(order):
        node_grad = grads.pop(node, None)
        ctx = node._ctx
        if node_grad is None:   # a leaf, or every backward on the way returned None
            if ctx is not None and not retain_graph:
                ctx.__dict__.clear()
            continue
        if node._retain_grad or retain_grads:
            _keep(node, node_grad, kept)
        parents = ctx.parents
        if parents is None:
            raise RuntimeError(f"backward through a graph that was already freed (at "
                               f"{type(ctx).__name__}); call backward(retain_graph=True) the "
                               f"first time if you need to go back twice")
        versions = ctx.input_versions
        if (versions is not None and ctx.writes_seen != _writes[0]
                and [p._version for p in parents] != versions):
            _raise_modified(ctx, parents, versions)
        input_grads = ctx.backward(ctx, node_grad)
        if not isinstance(input_grads, (tuple, list)):
            input_grads = (input_grads,)
        if len(input_grads) != len(parents):
            raise ValueError(f"{type(ctx).__name__}.backward returned {len(input_grads)} "
                             f"gradients for {len(parents)} input"
                             f"{'s' if len(parents) != 1 else ''}: return one per input")
        for parent, parent_grad in zip(parents, input_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            data = parent.data
            if (type(parent_grad) is not np.ndarray or parent_grad.shape != data.shape
                    or parent_grad.dtype is not data.dtype):    # (an equal dtype: a no-op there)
                parent_grad = _sum_to_shape(parent_grad, data, ctx)
            if parent._ctx is None:
                _keep(parent, parent_grad, kept)
            else:
                grads[parent] = parent_grad if parent not in grads else grads[parent] + parent_grad
        if not retain_graph:
            ctx.__dict__.clear()   # drops parents and saved arrays; ctx.parents reads None now


def _raise_modified(ctx: Function, parents: list[Tensor], versions: list[int]) -> None:
    index, parent = next((i, p) for i, p in enumerate(parents) if p._version != versions[i])
    what = f"{parent.name!r} " if parent.name else ""
    raise RuntimeError(f"backward through {type(ctx).__name__}: its input {index} (the tensor "
                       f"{what}of shape {parent.shape}) was modified in place after the forward "
                       f"pass (version {versions[index]}, now {parent._version}), e.g. by an "
                       f"optimizer step or load_state_dict; its gradient would use the new values. "
                       f"Run backward before changing the parameters, or compute the forward "
                       f"pass again")


def _keep(node: Tensor, grad: np.ndarray, kept: set[int]) -> None:
    """Add `grad` into `node.grad`, never storing an array that is stored elsewhere or a view."""
    if node.grad is not None:
        node.grad = node.grad + grad
        return
    if id(grad) in kept or grad.base is not None:
        grad = grad.copy()
    node.grad = grad
    kept.add(id(grad))


def _wrap(data: Any) -> Tensor:
    """A constant Tensor around an op's result, skipping __init__'s checks (the hot path)."""
    if type(data) is not np.ndarray:
        data = np.asarray(data)
    tensor = Tensor.__new__(Tensor)
    tensor.data, tensor.grad, tensor.requires_grad = data, None, False
    tensor.name, tensor._ctx, tensor._retain_grad, tensor._version = None, None, False, 0
    return tensor


def _sum_to_shape(grad: np.ndarray, data: np.ndarray, ctx: Function) -> np.ndarray:
    """Undo numpy broadcasting: sum `grad` back to the shape (and dtype) of the input `data`."""
    shape = data.shape
    if type(grad) is not np.ndarray:   # a numpy scalar (0-d arithmetic) or a list: always an array
        grad = np.asarray(grad)
    returned = grad.shape
    if grad.shape != shape:
        extra = grad.ndim - len(shape)
        if extra > 0:
            grad = grad.sum(axis=tuple(range(extra)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i:i + 1] != (1,))
        if axes and grad.ndim == len(shape):
            grad = grad.sum(axis=axes, keepdims=True)
        if grad.shape != shape:
            raise ValueError(f"{type(ctx).__name__}.backward returned a gradient of shape "
                             f"{returned} for an input of shape {shape}")
    if grad.dtype != data.dtype:
        grad = grad.astype(data.dtype)
    return grad


def graph_size(root: Tensor) -> int:
    """How many recorded ops stand behind `root` (0 for a leaf or after no_grad/backward)."""
    return sum(1 for node in topological_order(root) if node._ctx is not None
               and node._ctx.parents is not None)


# ops.py defines the built-in Functions and imports Function from here, so it comes last.
from tinygrad_mlp import ops  # noqa: E402
