"""The Tensor's operator and convenience methods, each a one-line call into a Function of `ops/`.

tensor.py holds the engine (Tensor's state, Function, the graph walk and backward);
`TensorMethods` is the base class that gives Tensor its numpy-like face, written out so a reader
finds `__add__` or `mean` by name: arithmetic, elementwise functions, reductions, shape,
comparisons and Python values; then the functions of several tensors (`stack`, `where`, ...).
This module is the engine's second file (the same layer as tensor.py): tensor.py imports it once
`Function` exists, since ops subclass Function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp import tensor as engine   # half-imported here: Tensor is read at call time
from tinygrad_mlp.backend import asarray

if TYPE_CHECKING:
    from tinygrad_mlp.tensor import Tensor


class TensorMethods:
    """What `Tensor` can do besides recording the graph: every method reads `self.data` or
    calls `ops.<Function>.apply`. Tensor is its only subclass."""

    __slots__ = ()
    data: np.ndarray            # Tensor's fields and graph view, declared for readers and checkers
    creator: Any

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
    def op(self) -> str | None:
        """Name of the Function that made this tensor (None for a leaf)."""
        return None if self.creator is None else type(self.creator).__name__

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
        extra = f", op={self.op}" if self.creator is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        grad = "" if self.grad is None else f", grad={show(self.grad)}"
        return f"Tensor({show(self.data)}, dtype={self.dtype}{extra}{grad})"

    # --- arithmetic (each a Function from ops.py) ---------------------------------------------

    def _operand(self, other: Any) -> Tensor:
        """Another operand as a Tensor; a constant (scalar, list or array) takes this tensor's
        dtype, so a float64 numpy constant never upcasts a float32 graph."""
        if isinstance(other, TensorMethods):     # (Tensor is its one subclass)
            return other
        if type(other) is float or type(other) is int:    # the common case, made cheap
            return engine._wrap(np.array(other, dtype=self.data.dtype))
        return engine.Tensor(other, dtype=self.data.dtype)

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
        other_data = as_array(other)
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
    first = next((v for v in values if isinstance(v, engine.Tensor)), None)
    if first is None:
        return [engine.Tensor(v) for v in values]
    return [first._operand(v) for v in values]


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Tensors of one shape joined along a new axis (numpy.stack, torch.stack)."""
    if isinstance(tensors, engine.Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"stack: expected a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    return ops.Stack.apply(*_tensors(tensors), axis=axis)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Tensors joined along an existing axis (numpy.concatenate, torch.cat)."""
    if isinstance(tensors, engine.Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"concatenate: expected a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    return ops.Concatenate.apply(*_tensors(tensors), axis=axis)


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """a where the boolean `condition` holds, else b; all three broadcast together."""
    condition = as_array(condition)
    return ops.Where.apply(*_tensors([a, b]), condition=condition)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max with broadcasting; at a tie each operand gets half the gradient."""
    return ops.Maximum.apply(*_tensors([a, b]))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min with broadcasting; at a tie each operand gets half the gradient."""
    return ops.Minimum.apply(*_tensors([a, b]))


def graph_size(root: Tensor) -> int:
    """How many recorded ops stand behind `root` (0 for a leaf or after no_grad/backward)."""
    return sum(1 for node in engine.topological_order(root) if node.creator is not None
               and node.creator.parents is not None)


def as_array(value: Any, dtype: Any = None) -> np.ndarray:
    """The array a Tensor holds, or `value` as an array: the one way the library unwraps
    "a Tensor or an array" (an engine array is kept as it is, on its device)."""
    return asarray(value.data if isinstance(value, engine.Tensor) else value, dtype)
