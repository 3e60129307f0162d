"""Training: `fit`, `evaluate` and `predict`, the blog's loop over epochs and batches.

    history = fit(model, X, Y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
                  epochs=20, batch_size=32, validation_split=0.1)
    history["loss"], history["val_accuracy"]          # one float per epoch

What `fit` promises, precisely:
- `batch_size`: k mini-batches (the last may be shorter), 32 unless told (Keras's default);
  None is full-batch gradient descent (the rows in their order), 1 per-sample stochastic
  gradient descent; with `shuffle` the order is redrawn every epoch from `tm.get_generator()`
  (see `tinygrad_mlp.data.batches`).
- The model trains in train mode; afterwards every module is back in the mode it had (a model
  in eval mode stays so, a frozen BatchNorm too), even on error. An optimizer holding none of
  the model's parameters is refused; one missing some is a warning naming them.
- Each step is one `TrainStep` (train/replay.py): forward, `loss(pred, Yb)`,
  `optimizer.zero_grad()`, backward, `optimizer.step()`. `replay=None` replays a recorded step
  when every module of the model and the loss declare `replayable` (the built-in ones do: their
  graphs never depend on the data's values); True vouches for a custom model; False always
  builds the graph anew. When replaying with CrossEntropyLoss, class-index Y become one-hot
  rows once, up front (K read from the model's output for the first row).
- X and float Y are cast once to the model's parameter dtype; 1-D integer Y (class indices)
  stay ints. `history["loss"]` is the epoch's batch losses averaged weighted by batch size;
  `accuracy` is recorded when Y are classes (1-D ints or one-hot) and the output has more than
  one column (computed on each batch before its update, as Keras does).
- Validation: `validation_data=(Xv, Yv)`, or `validation_split` (a fraction in (0, 1)) of the
  rows drawn at random (stratified when Y are classes) and held out before training;
  `val_loss`/`val_accuracy` come from `evaluate` with the end-of-epoch weights.
- Progress: a tqdm bar per epoch when stdout is a terminal, else one line per epoch
  (`epoch 3/20 - loss 0.1234 - accuracy 0.9650 - 0.82s`); `progress=False` prints nothing;
  "bar" or "lines" force one of the two.
- Every argument is checked before any weight changes (train/prepare.py; ValueError: NaN/inf in
  X or Y, no rows, X and Y of different lengths, batch_size not a positive int, negative
  epochs, a bad validation_split).
- Divergence: when a batch loss is NaN or inf, that batch's update is skipped and fit raises
  `FloatingPointError` naming the epoch and batch (1-based); the exception's `.history` holds
  the completed epochs. The model keeps its last finite weights: the weights that produced the
  bad loss when they are all finite (the usual case); if not (the previous update overflowed),
  the copy fit takes at the start of every epoch. fit looks only at the scalar loss each step;
  the weights are checked once per epoch, at its end, with the same restore. numpy's
  floating-point warnings are silenced inside fit: the error is the report.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from tinygrad_mlp._checks import choice, non_negative_int
from tinygrad_mlp.data import batches, num_batches
from tinygrad_mlp.tensor import increment_version, no_grad
from tinygrad_mlp.train.callbacks import Callback, CallbackList, History, Progress
from tinygrad_mlp.train.prepare import (Inputs, as_inputs, call_model, check_before_training,
                                        check_callables, check_optimizer, class_labels,
                                        eval_mode, in_mode, loss_targets, parameter_dtype,
                                        prepare, replayable,
                                        training_and_validation)
from tinygrad_mlp.train.replay import TrainStep

__all__ = ["fit", "evaluate", "predict"]


def fit(model: Any, X: Any, Y: Any, loss: Any, optimizer: Any, epochs: int = 10,
        batch_size: int | None = 32, shuffle: bool = True,
        validation_data: tuple[Any, Any] | None = None, validation_split: float = 0.0,
        callbacks: list[Callback] | None = None, progress: bool | str = True,
        replay: bool | None = None, augment: Any = None) -> History:
    """Train `model` on X (N, ...) and Y (N, ...) for `epochs` passes; returns a `History`.

    For a model with several inputs X is a tuple of arrays, one per input, each with N rows
    (checked against an nn.Model's inputs before any update); batches slice them alike.
    `batch_size` k mini-batches (32 unless told, as Keras), None full-batch gradient descent,
    1 per-sample SGD; each step is a `TrainStep` (replayed when model and loss are
    `replayable`, or `replay=True`). Every module ends in the train/eval mode it had.
    A NaN/inf loss raises FloatingPointError, keeping the last finite weights (module docstring).
    `augment`: a function applied to each training batch X before its step (e.g.
    `lambda Xb: data.augment_images(Xb, flip=True, shift=2)`); validation data is not.
    """
    epochs = non_negative_int("epochs", epochs)
    check_callables(loss, optimizer, augment)
    choice("shuffle", shuffle, (True, False), owner="fit")
    choice("replay", replay, (None, True, False), owner="fit")
    X, Y, X_val, Y_val = training_and_validation(model, X, Y, batch_size, validation_data,
                                                 validation_split)
    check_before_training(model, loss, X, Y, callbacks, X_val is not None)
    check_optimizer(model, optimizer)
    N, steps = len(X), num_batches(len(X), batch_size)
    bar = Progress(progress, epochs, steps)
    history = History({"epochs": epochs, "batch_size": batch_size, "samples": N, "steps": steps})
    callbacks = CallbackList(callbacks, model, history.params)
    labels = class_labels(Y)
    replay = replayable(model, loss) if replay is None else bool(replay)
    Y_loss = loss_targets(model, loss, X, Y, labels) if replay else Y
    step = TrainStep(model, loss, optimizer, replay=replay)
    weights = _LastFiniteWeights(model, epochs, steps, history)
    predicted = None if labels is None else np.empty(N, dtype=labels.dtype)
    size, isfinite = (N if batch_size is None else min(batch_size, N)), math.isfinite
    with in_mode(model, training=True), np.errstate(all="ignore"):
        callbacks.on_train_begin()
        try:
            for epoch in range(epochs):
                callbacks.on_epoch_begin(epoch)
                weights.keep()
                started, total, track_accuracy = time.perf_counter(), 0.0, None
                next_report = bar.begin_epoch(epoch)         # the first step to redraw after
                for batch, index in enumerate(batches(N, batch_size, shuffle)):
                    Xb = X[index] if augment is None else _augmented(augment, X[index])
                    value = step(Xb, Y_loss[index])          # forward, loss, backward, update
                    if not isfinite(value):                  # (the step skipped the update)
                        weights.loss_diverged(epoch, batch, value)
                    output = step.output
                    if track_accuracy is None:
                        track_accuracy = labels is not None and output.ndim == 2 \
                            and output.shape[1] > 1
                    if track_accuracy:
                        predicted[index] = output.argmax(1)   # compared once, at epoch end
                    total += value * len(output)
                    if callbacks.per_batch:
                        callbacks.on_batch_end(batch, {"loss": value, "size": len(output)})
                    if batch + 1 >= next_report:
                        next_report = bar.update(batch + 1, total / min((batch + 1) * size, N))
                weights.check(epoch)
                logs = {"loss": total / N}
                if track_accuracy:
                    logs["accuracy"] = int(np.count_nonzero(predicted == labels)) / N
                if X_val is not None:
                    logs.update({f"val_{key}": value for key, value in
                                 evaluate(model, X_val, Y_val, loss).items()})
                history.append(epoch, logs, time.perf_counter() - started)
                bar.end_epoch(epoch, logs, history.seconds[-1])
                if callbacks.on_epoch_end(epoch, logs):
                    break
        finally:
            bar.close()
        callbacks.on_train_end(history)
    return history


def _augmented(augment: Any, X: Any) -> Any:
    """augment(batch X); with several inputs augment takes and returns a tuple of arrays."""
    if isinstance(X, Inputs):
        return Inputs(augment(X.arrays))
    return augment(X)


class _LastFiniteWeights:
    """fit's promise on divergence: a copy of the weights at each epoch's start, restored when
    they went non-finite; `diverged` and `check` raise FloatingPointError saying which."""

    def __init__(self, model: Any, epochs: int, steps: int, history: History) -> None:
        self.params = list(model.parameters()) if hasattr(model, "parameters") else []
        self.snapshot = [p.data.copy() for p in self.params]   # refreshed in place by keep()
        self.epochs, self.steps, self.history = epochs, steps, history

    def keep(self) -> None:
        for buffer, param in zip(self.snapshot, self.params):
            np.copyto(buffer, param.data)

    def loss_diverged(self, epoch: int, batch: int, value: float) -> None:
        self.diverged(f"at epoch {epoch + 1}/{self.epochs}, batch {batch + 1}/{self.steps}: the "
                      f"loss became {value}; that update was skipped", epoch)

    def check(self, epoch: int) -> None:
        if not all(np.isfinite(p.data).all() for p in self.params):
            self.diverged(f"during epoch {epoch + 1}/{self.epochs}: the weights became "
                          f"non-finite although every batch loss was finite", epoch)

    def diverged(self, what: str, epoch: int) -> None:
        """Leave finite weights (restoring the epoch-start copy if needed) and raise."""
        if all(np.isfinite(p.data).all() for p in self.params):
            kept = "the model keeps the weights it had before this batch"
        else:
            for buffer, param in zip(self.snapshot, self.params):
                param.data[...] = buffer
                increment_version(param)
            kept = (f"the weights had become non-finite, so the model was restored to its "
                    f"weights at the start of epoch {epoch + 1}")
        error = FloatingPointError(f"fit diverged {what}; {kept} (try a smaller learning rate)")
        error.history = self.history
        raise error


def evaluate(model: Any, X: Any, Y: Any, loss: Any, batch_size: int | None = None
             ) -> dict[str, float]:
    """{"loss": …, "accuracy": …} of `model` on X, Y (accuracy only when Y are classes).

    The loss is the batch losses averaged weighted by batch size, computed exactly as in
    training: the forward pass is recorded (so CrossEntropyLoss fuses with a final Softmax, as
    it does in `fit`) and the graph is dropped at once; nothing is updated. The model is in
    eval mode meanwhile and goes back to its previous mode after.
    """
    X, Y = prepare(X, Y, parameter_dtype(model), what="evaluate", model=model)
    N = len(X)
    labels = class_labels(Y)
    total, correct, track_accuracy = 0.0, 0, False
    with eval_mode(model), np.errstate(all="ignore"):
        for index in batches(N, batch_size, shuffle=False):
            pred = call_model(model, X[index], wrap=True)
            total += loss(pred, Y[index]).item() * len(pred.data)
            track_accuracy = labels is not None and pred.data.ndim == 2 \
                and pred.data.shape[1] > 1
            if track_accuracy:
                correct += int(np.count_nonzero(pred.data.argmax(1) == labels[index]))
    result = {"loss": total / N}
    if track_accuracy:
        result["accuracy"] = correct / N
    return result


def predict(model: Any, X: Any, batch_size: int | None = None) -> np.ndarray:
    """The model's output on X as an ndarray, computed under `no_grad` (nothing recorded).
    X is a tuple of arrays for a model with several inputs; several outputs give a tuple.

    X is cast to the model's parameter dtype; with `batch_size` the rows go through in chunks
    (less memory) and the outputs are concatenated.
    """
    X = as_inputs(model, X)
    if len(X) == 0:
        raise ValueError("X has 0 samples")
    dtype = parameter_dtype(model)
    X = Inputs([x.astype(dtype, copy=False) for x in X.arrays]) if isinstance(X, Inputs) \
        else X.astype(dtype, copy=False)
    with eval_mode(model), no_grad():
        outputs = [call_model(model, X[index], wrap=True)
                   for index in batches(len(X), batch_size, shuffle=False)]
    if isinstance(outputs[0], (tuple, list)):            # several outputs: a tuple of arrays
        return tuple(np.concatenate([out[k].data for out in outputs])
                     for k in range(len(outputs[0])))
    return outputs[0].data if len(outputs) == 1 else np.concatenate([o.data for o in outputs])
