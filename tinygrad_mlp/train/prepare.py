"""Everything fit does before the first step: check every argument, cast X and Y once to the
model's dtype, split off validation rows, find the classes, and turn class indices into one-hot
rows where the loss would otherwise do it in Python (so the step can be replayed).

Nothing here changes a weight: a bad argument is an error before training starts.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import numpy as np

from tinygrad_mlp.data import is_one_hot, num_batches, one_hot, split_validation
from tinygrad_mlp.nn import CrossEntropyLoss, Module
from tinygrad_mlp.nn.module import parameter_dtype
from tinygrad_mlp.tensor import Tensor, as_array, no_grad

__all__ = ["parameter_dtype", "as_rows", "prepare", "check_finite", "class_labels", "loss_targets",
           "replayable", "check_callables", "training_and_validation",
           "check_before_training", "Inputs", "inputs_of", "as_inputs", "call_model"]


def as_rows(name: str, data: Any) -> np.ndarray:
    array = as_array(data)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{name} must have one row per sample, got a scalar")
    return array


class Inputs:
    """A model's several input arrays as one X: `len(X)` is the number of rows and `X[index]`
    slices every array alike, so batching, shuffling and validation splits treat them as one."""

    __slots__ = ("arrays",)

    def __init__(self, arrays: Any) -> None:
        self.arrays = tuple(arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> Inputs:
        return Inputs([array[index] for array in self.arrays])


def call_model(model: Any, X: Any, wrap: bool = False) -> Any:
    """`model(X)`, or `model(X1, X2, ...)` for Inputs; `wrap` hands it Tensors."""
    arrays = X.arrays if isinstance(X, Inputs) else (X,)
    return model(*[Tensor(array) for array in arrays] if wrap else arrays)


def _input_shapes(model: Any) -> list[tuple[int, ...]] | None:
    """The sample shape of each input of an nn.Model (None for other modules)."""
    shape = getattr(model, "input_shape", None)
    if shape is None or not isinstance(model, Module):
        return None
    return list(shape) if isinstance(shape, list) else [tuple(shape)]


def as_inputs(model: Any, X: Any, name: str = "X") -> np.ndarray | Inputs:
    """X as the model takes it: one array, or Inputs for several (a tuple of arrays, or a list
    when the model has several inputs), checked against an nn.Model's inputs (their number and
    sample shapes) and for one number of rows, before any weight changes."""
    expected = _input_shapes(model)
    X = X.arrays if isinstance(X, Inputs) else X
    several = isinstance(X, tuple) or (isinstance(X, list) and expected is not None
                                       and len(expected) > 1)
    names = list(getattr(model, "input_names", []))
    if not several:
        arrays = [as_rows(name, X)]
        if expected is not None and len(expected) > 1:
            raise ValueError(f"{name}: the model takes {len(expected)} inputs {names}; pass a "
                             f"tuple of {len(expected)} arrays, one per input")
    else:
        arrays = [as_rows(f"{name}[{i}]", x) for i, x in enumerate(X)]
        if not arrays or (expected is not None and len(arrays) != len(expected)):
            raise ValueError(f"{name} is a tuple of {len(arrays)} arrays but the model takes "
                             f"{len(expected) if expected else 'at least 1'} input(s) {names}")
        for i, array in enumerate(arrays[1:], 1):
            if len(array) != len(arrays[0]):
                raise ValueError(f"{name}[{i}] has {len(array)} samples but {name}[0] has "
                                 f"{len(arrays[0])}; every input needs one row per sample")
    for i, (array, shape) in enumerate(zip(arrays, expected or [])):
        if array.shape[1:] != shape:
            which = f"{name}[{i}]" if several else name
            raise ValueError(f"{which} has samples of shape {array.shape[1:]} (shape "
                             f"{array.shape}), but the model's input {names[i]!r} takes "
                             f"samples of shape {shape}")
    return Inputs(arrays) if several else arrays[0]


def _arrays(X: np.ndarray | Inputs) -> tuple[np.ndarray, ...]:
    return X.arrays if isinstance(X, Inputs) else (X,)


def check_finite(name: str, array: np.ndarray, original: np.ndarray) -> None:
    """`array` (`original` cast to the model's dtype) holds no NaN or inf, else a ValueError
    naming the first one, in the data as given, or saying that the cast overflowed."""
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return
    when = ""
    if original is not array and (original.dtype.kind != "f" or np.isfinite(original).all()):
        when = f" after casting to the model's {array.dtype}"
    else:
        array = original
    bad = ~np.isfinite(array)
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(f"{name} contains {int(bad.sum())} non-finite values (NaN or inf){when}; "
                     f"the first is {array[first]!r} at row {first[0]}"
                     + (f", position {first[1:]}" if len(first) > 1 else ""))


def prepare(X: Any, Y: Any, dtype: np.dtype, what: str = "training", model: Any = None
             ) -> tuple[np.ndarray | Inputs, np.ndarray]:
    """X and Y as arrays, cast once: X and float Y to `dtype`, 1-D integer labels kept as ints.
    X may be several inputs (`as_inputs`, checked against `model`'s inputs)."""
    names = ("X", "Y") if what == "training" else (f"{what} X", f"{what} Y")
    X, Y = as_inputs(model, X, names[0]), as_rows(names[1], Y)
    shape = " and ".join(str(x.shape) for x in _arrays(X))
    if len(X) == 0:
        raise ValueError(f"{names[0]} has 0 samples (shape {shape}): nothing to learn from"
                         if what == "training" else f"{names[0]} has 0 samples (shape {shape})")
    if len(X) != len(Y):
        raise ValueError(f"{names[0]} has {len(X)} samples but {names[1]} has {len(Y)} "
                         f"(shapes {shape} and {Y.shape}); they need one row per sample")
    with np.errstate(over="ignore", invalid="ignore"):   # overflow is reported below
        X_cast = [x.astype(dtype, copy=False) for x in _arrays(X)]
        Y_cast = Y if Y.ndim == 1 and Y.dtype.kind in "iu" else Y.astype(dtype, copy=False)
    several = isinstance(X, Inputs)
    for i, (x_cast, x) in enumerate(zip(X_cast, _arrays(X))):
        check_finite(f"{names[0]}[{i}]" if several else names[0], x_cast, x)
    check_finite(names[1], Y_cast, Y)
    return (Inputs(X_cast) if several else X_cast[0]), Y_cast


def class_labels(Y: np.ndarray) -> np.ndarray | None:
    """Class of each row when Y are classes (1-D ints or one-hot rows with K > 1), else None."""
    if Y.ndim == 1 and Y.dtype.kind in "iu":
        return Y
    return Y.argmax(axis=1) if is_one_hot(Y) else None


def loss_targets(model: Any, loss: Any, X: np.ndarray, Y: np.ndarray,
                  labels: np.ndarray | None) -> np.ndarray:
    """Y as the loss will see it: class indices become one-hot rows for CrossEntropyLoss, so the
    step's graph reads them directly (and can be replayed); anything else is Y itself."""
    if not (isinstance(loss, CrossEntropyLoss) and labels is Y):
        return Y
    with eval_mode(model), no_grad():      # K from one row, in eval mode: in training mode
        K = np.shape(call_model(model, X[:1]))[-1]   # BatchNorm would count it, Dropout draw
    try:                                              # a mask
        return one_hot(Y, K, dtype=_arrays(X)[0].dtype)
    except ValueError as error:
        raise ValueError(f"Y does not fit the model's {K} outputs: {error}") from None


def eval_mode(model: Any) -> contextlib.AbstractContextManager[None]:
    """`model` in eval mode inside the block (Dropout off, BatchNorm on its running statistics);
    after it every module is back in the mode it had, even on error."""
    return in_mode(model, training=False)


@contextlib.contextmanager
def in_mode(model: Any, training: bool) -> Iterator[None]:
    """`model` in train (True) or eval mode inside the block; after it every module is back in
    the mode it had (a frozen BatchNorm stays in eval mode), even on error."""
    modules = list(model.modules()) if isinstance(model, Module) else []
    modes = [module.training for module in modules]
    switch = getattr(model, "train" if training else "eval", None)
    if callable(switch):
        switch()
    try:
        yield
    finally:
        for module, mode in zip(modules, modes):
            module.training = mode


def replayable(model: Any, loss: Any) -> bool:
    """Have every module of `model` and the loss declared that their forward may be recorded
    once and replayed (`Module.replayable`; the built-in modules do)?"""
    modules = list(model.modules()) if isinstance(model, Module) else [model]
    return all(getattr(obj, "replayable", False) is True for obj in [*modules, loss])


def check_before_training(model: Any, loss: Any, X: np.ndarray, Y: np.ndarray,
                          callbacks: Any, validating: bool) -> None:
    """What would otherwise fail (or, replayed, pass unchecked) after weights changed: a model
    without parameters, a callback watching val_* without validation data, and any target the
    loss refuses. The loss's own checks run on all of Y at once, against the model's output for
    the first row repeated N times (one forward pass of one row, in eval mode)."""
    if isinstance(model, Module) and not list(model.parameters()):
        raise ValueError(f"fit: the model ({type(model).__name__}) has no parameters to train")
    for callback in callbacks or []:
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor.startswith("val_") and not validating:
            raise ValueError(f"fit: {type(callback).__name__} monitors {monitor!r}, but there is "
                             f"no validation data; pass validation_data or validation_split")
    with eval_mode(model), no_grad(), np.errstate(all="ignore"):
        first = call_model(model, X[:1])
        if isinstance(first, (tuple, list)):
            raise ValueError(f"fit: the model gives {len(first)} outputs; fit, evaluate and "
                             f"the losses take a model with one output")
        first = as_array(first)
        J = loss(Tensor(np.broadcast_to(first, (len(X),) + first.shape[1:])), Y)
    if np.size(as_array(J)) != 1:
        raise ValueError(f"fit: the loss must be a scalar, got shape {np.shape(J)}; reduce it "
                         f"with .sum() or .mean()")


def check_callables(loss: Any, optimizer: Any, augment: Any = None) -> None:
    """The loss is callable, the optimizer has zero_grad() and step(), augment is None or a
    function of a batch X."""
    if augment is not None and not callable(augment):
        raise TypeError(f"fit: augment must be a function of a batch X, got {augment!r}")
    if not callable(loss):
        raise TypeError(f"fit: loss must be callable, got {type(loss).__name__}")
    for method in ("zero_grad", "step"):
        if not callable(getattr(optimizer, method, None)):
            raise TypeError(f"fit: optimizer must have a {method}() method, got "
                            f"{type(optimizer).__name__}")


def check_optimizer(model: Any, optimizer: Any) -> None:
    """An optimizer holding none of the model's parameters (built for another model) would
    train nothing: a ValueError. One missing only some gets a warning naming them (they stay
    as they are: frozen on purpose, or a mistake)."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(model, Module) or not isinstance(groups, list):
        return
    held = {id(param) for group in groups if isinstance(group, dict)
            for param in group.get("params", ())}
    named = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    missing = [name for name, param in named if id(param) not in held]
    if named and len(missing) == len(named):
        raise ValueError(f"fit: the optimizer holds none of the model's {len(named)} parameters "
                         f"(was it built for another model?); build it from this model's: "
                         f"{type(optimizer).__name__}(model.parameters(), ...)")
    if missing:
        shown = missing if len(missing) <= 10 else missing[:10] + [f"… {len(missing)} in all"]
        warnings.warn(f"fit: the optimizer does not hold the model's parameters {shown}, so "
                      f"they will not train; pass them to the optimizer unless they are "
                      f"frozen on purpose", UserWarning, stacklevel=3)


def training_and_validation(model: Any, X: Any, Y: Any, batch_size: Any,
                             validation_data: Any, validation_split: Any) -> tuple[Any, ...]:
    """Checked and cast X, Y, X_val, Y_val (the last two None without validation)."""
    dtype = parameter_dtype(model)
    X, Y = prepare(X, Y, dtype, model=model)
    num_batches(len(X), batch_size)          # raises on a bad batch_size
    if validation_data is not None and validation_split:
        raise ValueError("fit: give validation_data or validation_split, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, Y_val)")
        X_val, Y_val = prepare(*validation_data, dtype, what="validation", model=model)
        rows, rows_val = ([x.shape[1:] for x in _arrays(data)] for data in (X, X_val))
        if rows_val != rows:
            raise ValueError(f"validation X has rows of shape "
                             f"{', '.join(map(str, rows_val))} but X has rows of shape "
                             f"{', '.join(map(str, rows))}")
        return X, Y, X_val, Y_val
    if validation_split:           # (split as indices, so several inputs split alike)
        train, val, Y, Y_val = split_validation(np.arange(len(X)), Y, validation_split)
        return X[train], Y, X[val], Y_val
    return X, Y, None, None
