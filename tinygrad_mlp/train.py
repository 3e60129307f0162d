"""Training: `fit`, `evaluate`, `predict`, the `History` they return, callbacks, progress.

    history = fit(model, X, Y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
                  epochs=20, batch_size=32, validation_split=0.1)
    history["loss"], history["val_accuracy"]          # one float per epoch

`batch_size` picks the blog's way to learn: None is full-batch gradient descent, 1 stochastic
gradient descent on each sample, k mini-batches (see `tinygrad_mlp.data.batches`). Every
argument is checked before the first weight changes; a loss that turns NaN or inf stops the fit
with a `FloatingPointError` and leaves finite weights (see `fit`). Epochs are numbered from 1 in
printed lines and error messages, from 0 in `History.epoch` and callback arguments (Keras).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Iterable

import numpy as np

from tinygrad_mlp._checks import choice, finite_real, non_negative_int
from tinygrad_mlp.data import batches, num_batches, one_hot, split_validation
from tinygrad_mlp.nn import CrossEntropyLoss, Module
from tinygrad_mlp.replay import TrainStep
from tinygrad_mlp.tensor import Tensor, get_default_dtype, increment_version, no_grad

__all__ = ["fit", "evaluate", "predict", "History", "Callback", "EarlyStopping"]


# --- History -------------------------------------------------------------------------------------

class History:
    """What `fit` returns: one value per epoch for each metric, as Keras's History.

    `history.history` is {"loss": [...], "accuracy": [...], "val_loss": [...], ...} (Python
    floats, the exact numbers the progress lines print rounded to 4 decimals);
    `history["loss"]` reads the same dict. `history.epoch` lists the completed epochs (0-based),
    `history.seconds` each epoch's wall-clock time (training plus validation), and
    `history.params` the fit's settings (epochs, batch_size, samples, steps).
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.seconds: list[float] = []
        self.params: dict[str, Any] = {}

    def append(self, epoch: int, logs: dict[str, float], seconds: float) -> None:
        """Record one finished epoch."""
        self.epoch.append(epoch)
        self.seconds.append(seconds)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __getitem__(self, key: str) -> list[float]:
        try:
            return self.history[key]
        except KeyError:
            raise KeyError(f"History has no {key!r}; it recorded {sorted(self.history)}") from None

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def keys(self) -> Iterable[str]:
        return self.history.keys()

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = ", ".join(f"{key}={values[-1]:.4f}" for key, values in self.history.items())
        return f"History({len(self.epoch)} epochs{': ' + last if last else ''})"


# --- callbacks -----------------------------------------------------------------------------------

class Callback:
    """Hooks called by `fit` (Keras's names). Subclass and override what you need.

    `fit` sets `self.model` and `self.params` before `on_train_begin`. Set
    `self.stop_training = True` (in any hook) to end the fit after the current epoch.
    `on_batch_end` is only called for callbacks that override it (it costs time every step);
    its logs are {"loss": the batch loss, "size": rows in the batch}.
    """

    model: Any = None
    params: dict[str, Any] = {}
    stop_training: bool = False

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass


class EarlyStopping(Callback):
    """Stop once `monitor` has not improved by more than `min_delta` for `patience` epochs in a
    row (Keras's rule: patience 1 stops at the first epoch without improvement, as does 0).

    `mode` "min" (losses) or "max" (accuracies); "auto" picks "max" when the name contains
    "acc". With `restore_best=True` the model gets the weights of its best epoch back when the
    fit ends (stopped early or not). After the fit: `best`, `best_epoch`, `stopped_epoch`
    (0-based; None when it did not stop the fit).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True) -> None:
        self.monitor = monitor
        self.patience = non_negative_int("patience", patience, owner="EarlyStopping")
        self.min_delta = finite_real("min_delta", min_delta, "EarlyStopping", low=0)
        choice("mode", mode, ("auto", "min", "max"), owner="EarlyStopping")
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.restore_best = bool(restore_best)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.wait, self.stop_training = 0, False
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: monitor={self.monitor!r} is not among the "
                             f"recorded metrics {sorted(logs)} (val_* metrics need "
                             f"validation_data or validation_split)")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = self.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch, self.stop_training = epoch, True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)


# --- checking and preparing the data ------------------------------------------------------------

def _parameter_dtype(model: Any) -> np.dtype:
    """The dtype X and float Y are cast to: the model's first parameter's, else the default."""
    parameters = model.parameters() if hasattr(model, "parameters") else []
    for param in parameters:
        return param.data.dtype
    return get_default_dtype()


def _as_rows(name: str, data: Any) -> np.ndarray:
    array = data.data if isinstance(data, Tensor) else np.asarray(data)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{name} must have one row per sample, got a scalar")
    return array


def _check_finite(name: str, array: np.ndarray, original: np.ndarray) -> None:
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


def _prepare(X: Any, Y: Any, dtype: np.dtype, what: str = "training"
             ) -> tuple[np.ndarray, np.ndarray]:
    """X and Y as arrays, cast once: X and float Y to `dtype`, 1-D integer labels kept as ints."""
    names = ("X", "Y") if what == "training" else (f"{what} X", f"{what} Y")
    X, Y = _as_rows(names[0], X), _as_rows(names[1], Y)
    if len(X) == 0:
        raise ValueError(f"{names[0]} has 0 samples (shape {X.shape}): nothing to learn from"
                         if what == "training" else f"{names[0]} has 0 samples (shape {X.shape})")
    if len(X) != len(Y):
        raise ValueError(f"{names[0]} has {len(X)} samples but {names[1]} has {len(Y)} "
                         f"(shapes {X.shape} and {Y.shape}); they need one row per sample")
    with np.errstate(over="ignore", invalid="ignore"):   # overflow is reported below
        X_cast = X.astype(dtype, copy=False)
        Y_cast = Y if Y.ndim == 1 and Y.dtype.kind in "iu" else Y.astype(dtype, copy=False)
    _check_finite(names[0], X_cast, X)
    _check_finite(names[1], Y_cast, Y)
    return X_cast, Y_cast


def _labels(Y: np.ndarray) -> np.ndarray | None:
    """Class of each row when Y are classes (1-D ints or one-hot rows with K > 1), else None."""
    if Y.ndim == 1 and Y.dtype.kind in "iu":
        return Y
    if (Y.ndim == 2 and Y.shape[1] > 1 and np.all((Y == 0) | (Y == 1))
            and np.all(Y.sum(axis=1) == 1)):
        return Y.argmax(axis=1)
    return None


def _loss_targets(model: Any, loss: Any, X: np.ndarray, Y: np.ndarray,
                  labels: np.ndarray | None) -> np.ndarray:
    """Y as the loss will see it: class indices become one-hot rows for CrossEntropyLoss, so the
    step's graph reads them directly (and can be replayed); anything else is Y itself."""
    if not (isinstance(loss, CrossEntropyLoss) and labels is Y):
        return Y
    with no_grad():
        K = np.shape(model(X[:1]))[-1]
    try:
        return one_hot(Y, K, dtype=X.dtype)
    except ValueError as error:
        raise ValueError(f"Y does not fit the model's {K} outputs: {error}") from None


def _modules(model: Any) -> list[Any]:
    return list(model.modules()) if isinstance(model, Module) else [model]


def _replayable(obj: Any) -> bool:
    """Has `obj` declared that its forward may be recorded once and replayed (Module.replayable)?"""
    return getattr(obj, "replayable", False) is True


# --- progress ------------------------------------------------------------------------------------

def _format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{key} {value:.4f}" for key, value in logs.items())


class _Progress:
    """A tqdm bar per epoch on a terminal, one plain line per epoch otherwise, or nothing."""

    def __init__(self, progress: bool | str, epochs: int) -> None:
        choice("progress", progress, (True, False, "bar", "lines"))
        self.epochs = epochs
        self.stream = sys.stdout
        self.mode = progress if isinstance(progress, str) else (
            "off" if not progress else ("bar" if _isatty(self.stream) else "lines"))
        self.bar = None
        self.set_steps(1)

    def set_steps(self, steps: int) -> None:
        """Batches per epoch. The bar is redrawn at most ~50 times an epoch: between redraws
        the inner loop only compares two ints (`stride` is beyond the epoch without a bar)."""
        self.steps = steps
        self.stride = max(1, steps // 50) if self.mode == "bar" else steps + 1

    def begin_epoch(self, epoch: int) -> None:
        if self.mode == "bar":
            from tqdm import tqdm   # lazy: `import tinygrad_mlp` stays light
            self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="batch", file=self.stream, leave=True, dynamic_ncols=True,
                            mininterval=0.1)

    def update(self, step: int, running_loss: float) -> None:
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix_str(f"loss {running_loss:.4f}", refresh=False)

    def end_epoch(self, epoch: int, logs: dict[str, float], seconds: float) -> None:
        if self.mode == "bar":
            self.bar.update(self.steps - self.bar.n)
            self.bar.set_postfix_str(_format_logs(logs), refresh=False)
            self.close()
        elif self.mode == "lines":
            print(f"epoch {epoch + 1}/{self.epochs} - {_format_logs(logs)} - {seconds:.2f}s",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _isatty(stream: Any) -> bool:
    """A terminal wide enough for a bar (a pty of width 0, as under `script`, is not)."""
    try:
        return bool(stream.isatty()) and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):
        return False


def _check_callbacks(loss: Any, optimizer: Any, callbacks: Any) -> list[Callback]:
    """The loss is callable, the optimizer has zero_grad() and step(), callbacks are Callbacks."""
    if not callable(loss):
        raise TypeError(f"fit: loss must be callable, got {type(loss).__name__}")
    for method in ("zero_grad", "step"):
        if not callable(getattr(optimizer, method, None)):
            raise TypeError(f"fit: optimizer must have a {method}() method, got "
                            f"{type(optimizer).__name__}")
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"fit: callbacks must be Callback instances, got "
                            f"{type(callback).__name__}")
    return callbacks


def _training_and_validation(model: Any, X: Any, Y: Any, batch_size: Any,
                             validation_data: Any, validation_split: Any) -> tuple[Any, ...]:
    """Checked and cast X, Y, X_val, Y_val (the last two None without validation)."""
    dtype = _parameter_dtype(model)
    X, Y = _prepare(X, Y, dtype)
    num_batches(len(X), batch_size)          # raises on a bad batch_size
    if validation_data is not None and validation_split:
        raise ValueError("fit: give validation_data or validation_split, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, Y_val)")
        X_val, Y_val = _prepare(*validation_data, dtype, what="validation")
        if X_val.shape[1:] != X.shape[1:]:
            raise ValueError(f"validation X has rows of shape {X_val.shape[1:]} but X has "
                             f"rows of shape {X.shape[1:]}")
        return X, Y, X_val, Y_val
    if validation_split:
        X, X_val, Y, Y_val = split_validation(X, Y, validation_split)
        return X, Y, X_val, Y_val
    return X, Y, None, None


# --- fit -----------------------------------------------------------------------------------------

def fit(model: Any, X: Any, Y: Any, loss: Any, optimizer: Any, epochs: int = 10,
        batch_size: int | None = None, shuffle: bool = True,
        validation_data: tuple[Any, Any] | None = None, validation_split: float = 0.0,
        callbacks: list[Callback] | None = None, progress: bool | str = True,
        replay: bool | None = None) -> History:
    """Train `model` on X (N, ...) and Y (N, ...) for `epochs` passes; returns a `History`.

    - `batch_size`: None full-batch gradient descent (the rows in their order), 1 per-sample
      stochastic gradient descent, k mini-batches (the last may be shorter); with `shuffle`
      the order is redrawn every epoch from `tm.get_generator()`.
    - Each step: forward, `loss(pred, Yb)`, `optimizer.zero_grad()`, backward, `optimizer.step()`.
    - X and float Y are cast once to the model's parameter dtype; 1-D integer Y (class indices)
      stay ints. `history["loss"]` is the epoch's batch losses averaged weighted by batch size;
      `accuracy` is recorded when Y are classes (1-D ints or one-hot) and the output has more
      than one column (computed on each batch before its update, as Keras does).
    - Validation: `validation_data=(Xv, Yv)`, or `validation_split` (a fraction in (0, 1)) of
      the rows drawn at random (stratified when Y are classes) and held out before training;
      `val_loss`/`val_accuracy` come from `evaluate` with the end-of-epoch weights.
    - Progress: a tqdm bar per epoch when stdout is a terminal, else one line per epoch
      (`epoch 3/20 - loss 0.1234 - accuracy 0.9650 - 0.82s`); `progress=False` prints
      nothing; "bar" or "lines" force one of the two.

    - `replay`: each step runs through a `replay.TrainStep`, which records the step's graph
      once per batch shape and replays it (the same Functions, the same results, much less
      Python per step). None (the default) replays when every module of the model and the loss
      declare `replayable` (the built-in ones do: their graphs never depend on the data's
      values); True vouches
      for a custom model; False always builds the graph anew. When replaying with
      CrossEntropyLoss, class-index Y are turned into one-hot rows once, up front (K read from
      the model's output for the first row), so the step's graph reads them directly.

    Every argument is checked before any weight changes (ValueError: NaN/inf in X or Y, no
    rows, X and Y of different lengths, batch_size not a positive int, negative epochs, a bad
    validation_split).

    Divergence: when a batch loss is NaN or inf, that batch's update is skipped and fit raises
    `FloatingPointError` naming the epoch and batch (1-based); the exception's `.history` holds
    the completed epochs. The model keeps its last finite weights, meaning: the weights that
    produced the bad loss when they are all finite (the usual case); if they are not (the
    previous update overflowed), the copy fit takes at the start of every epoch, i.e. the
    weights the model had when the failing epoch began. (fit only looks at the scalar loss
    each step; the weights are checked at most once per epoch, at the end, with the same
    restore when they went non-finite behind finite losses.) numpy floating-point warnings are
    silenced inside fit: the error is the report.
    """
    epochs = non_negative_int("epochs", epochs)
    bar = _Progress(progress, epochs)
    callbacks = _check_callbacks(loss, optimizer, callbacks)
    X, Y, X_val, Y_val = _training_and_validation(model, X, Y, batch_size, validation_data,
                                                  validation_split)
    N = len(X)
    steps = num_batches(N, batch_size)
    size = N if batch_size is None else min(batch_size, N)
    labels = _labels(Y)
    predicted = None if labels is None else np.empty(N, dtype=labels.dtype)
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    snapshot = [p.data.copy() for p in params]     # refreshed in place at each epoch's start
    history = History()
    history.params = {"epochs": epochs, "batch_size": batch_size, "samples": N, "steps": steps}
    bar.set_steps(steps)
    batch_callbacks = [c for c in callbacks if type(c).on_batch_end is not Callback.on_batch_end]
    for callback in callbacks:
        callback.set_model(model)
        callback.params = history.params
    if hasattr(model, "train"):
        model.train()

    if replay is None:
        replay = all(_replayable(module) for module in _modules(model)) and _replayable(loss)
    Y_loss = _loss_targets(model, loss, X, Y, labels) if replay else Y
    train_step = TrainStep(model, loss, optimizer, replay=bool(replay))
    isfinite = math.isfinite
    with np.errstate(all="ignore"):
        for callback in callbacks:
            callback.on_train_begin({})
        try:
            for epoch in range(epochs):
                for callback in callbacks:
                    callback.on_epoch_begin(epoch, {})
                for buffer, param in zip(snapshot, params):
                    np.copyto(buffer, param.data)
                started = time.perf_counter()
                bar.begin_epoch(epoch)
                total = 0.0
                next_report = bar.stride
                track_accuracy = None
                for batch, index in enumerate(batches(N, batch_size, shuffle)):
                    Xb = X[index]
                    value = train_step(Xb, Y_loss[index])  # zero_grad, forward, backward, step
                    if not isfinite(value):                # (the step skipped the update)
                        _diverged(f"at epoch {epoch + 1}/{epochs}, batch {batch + 1}/{steps}: "
                                  f"the loss became {value}; that update was skipped", epoch,
                                  params, snapshot, history)
                    n = len(Xb)
                    output = train_step.output
                    if track_accuracy is None:
                        track_accuracy = (labels is not None and output.ndim == 2
                                          and output.shape[1] > 1)
                    if track_accuracy:
                        predicted[index] = output.argmax(1)   # compared once, at epoch end
                    total += value * n
                    if batch_callbacks:
                        for callback in batch_callbacks:
                            callback.on_batch_end(batch, {"loss": value, "size": n})
                    if batch + 1 >= next_report:
                        bar.update(batch + 1, total / min((batch + 1) * size, N))
                        next_report += bar.stride
                if not all(np.isfinite(p.data).all() for p in params):
                    _diverged(f"during epoch {epoch + 1}/{epochs}: the weights became "
                              f"non-finite although every batch loss was finite", epoch, params,
                              snapshot, history)
                logs = {"loss": total / N}
                if track_accuracy:
                    logs["accuracy"] = int(np.count_nonzero(predicted == labels)) / N
                if X_val is not None:
                    logs.update({f"val_{key}": value for key, value in
                                 evaluate(model, X_val, Y_val, loss).items()})
                seconds = time.perf_counter() - started
                history.append(epoch, logs, seconds)
                bar.end_epoch(epoch, logs, seconds)
                for callback in callbacks:
                    callback.on_epoch_end(epoch, dict(logs))
                if any(callback.stop_training for callback in callbacks):
                    break
        finally:
            bar.close()
        for callback in callbacks:
            callback.on_train_end({"history": history})
    return history


def _diverged(what: str, epoch: int, params: list[Tensor], snapshot: list[np.ndarray],
              history: History) -> None:
    """Leave finite weights (restoring the epoch-start copy if needed) and raise."""
    if all(np.isfinite(p.data).all() for p in params):
        kept = "the model keeps the weights it had before this batch"
    else:
        for buffer, param in zip(snapshot, params):
            param.data[...] = buffer
            increment_version(param)
        kept = (f"the weights had become non-finite, so the model was restored to its weights "
                f"at the start of epoch {epoch + 1}")
    error = FloatingPointError(f"fit diverged {what}; {kept} (try a smaller learning rate)")
    error.history = history
    raise error


# --- evaluate and predict ------------------------------------------------------------------------

def evaluate(model: Any, X: Any, Y: Any, loss: Any, batch_size: int | None = None
             ) -> dict[str, float]:
    """{"loss": …, "accuracy": …} of `model` on X, Y (accuracy only when Y are classes).

    The loss is the batch losses averaged weighted by batch size, computed exactly as in
    training: the forward pass is recorded (so CrossEntropyLoss fuses with a final Softmax, as
    it does in `fit`) and the graph is dropped at once; nothing is updated. The model is in
    eval mode meanwhile and goes back to its previous mode after.
    """
    X, Y = _prepare(X, Y, _parameter_dtype(model), what="evaluate")
    N = len(X)
    labels = _labels(Y)
    total, correct, track_accuracy = 0.0, 0, False
    was_training = getattr(model, "training", None)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with np.errstate(all="ignore"):
            for index in batches(N, batch_size, shuffle=False):
                pred = model(Tensor(X[index]))
                total += loss(pred, Y[index]).item() * len(pred.data)
                track_accuracy = labels is not None and pred.data.ndim == 2 \
                    and pred.data.shape[1] > 1
                if track_accuracy:
                    correct += int(np.count_nonzero(pred.data.argmax(1) == labels[index]))
    finally:
        if was_training is not None and hasattr(model, "train"):
            model.train(was_training)
    result = {"loss": total / N}
    if track_accuracy:
        result["accuracy"] = correct / N
    return result


def predict(model: Any, X: Any, batch_size: int | None = None) -> np.ndarray:
    """The model's output on X as an ndarray, computed under `no_grad` (nothing recorded).

    X is cast to the model's parameter dtype; with `batch_size` the rows go through in chunks
    (less memory) and the outputs are concatenated.
    """
    X = _as_rows("X", X)
    if len(X) == 0:
        raise ValueError(f"X has 0 samples (shape {X.shape})")
    X = X.astype(_parameter_dtype(model), copy=False)
    was_training = getattr(model, "training", None)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            outputs = [model(Tensor(X[index])).data
                       for index in batches(len(X), batch_size, shuffle=False)]
    finally:
        if was_training is not None and hasattr(model, "train"):
            model.train(was_training)
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
