"""What fit reports and who it tells: History, Callback (Keras's hooks), EarlyStopping,
LearningRateScheduler, progress.

`fit` returns a `History` (one value per epoch for each metric) and calls each `Callback`'s
hooks through one `CallbackList`; `Progress` draws a tqdm bar per epoch on a terminal, or prints
one line per epoch. Epochs are 0-based in `History.epoch` and in the hooks' arguments (Keras),
1-based in printed lines.
"""

from __future__ import annotations

import html
import os
import sys
from typing import Any, Iterable

import numpy as np

from tinygrad_mlp._checks import choice, finite_real, non_negative_int
from tinygrad_mlp.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau, is_better

__all__ = ["History", "Callback", "EarlyStopping", "LearningRateScheduler", "CallbackList",
           "Progress"]


class History:
    """What `fit` returns: one value per epoch for each metric, as Keras's History.

    `history.history` is {"loss": [...], "accuracy": [...], "val_loss": [...], ...} (Python
    floats, the exact numbers the progress lines print rounded to 4 decimals);
    `history["loss"]` reads the same dict. `history.epoch` lists the completed epochs (0-based),
    `history.seconds` each epoch's wall-clock time (training plus validation), and
    `history.params` the fit's settings (epochs, batch_size, samples, steps).
    """

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.seconds: list[float] = []
        self.params: dict[str, Any] = dict(params or {})

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

    def _repr_html_(self) -> str:
        """What a notebook shows: one row per epoch (1-based, as fit prints them)."""
        keys = [key for key, values in self.history.items() if len(values) == len(self.epoch)]
        head = "".join(f"<th>{html.escape(key)}</th>" for key in ("epoch", *keys, "seconds"))
        rows = "".join(
            f"<tr><td>{epoch + 1}</td>"
            + "".join(f"<td>{self.history[key][row]:.4f}</td>" for key in keys)
            + f"<td>{self.seconds[row]:.2f}</td></tr>" for row, epoch in enumerate(self.epoch))
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


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
        return self.best is None or is_better(value, self.best, self.mode, self.min_delta)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = float(_monitored("EarlyStopping", self.monitor, logs))
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


def _monitored(owner: str, monitor: str, logs: dict[str, Any] | None) -> Any:
    """The epoch's value of the metric `monitor` names, or a ValueError listing those there are."""
    logs = logs or {}
    if monitor not in logs:
        raise ValueError(f"{owner}: monitor={monitor!r} is not among the recorded metrics "
                         f"{sorted(logs)} (val_* metrics need validation_data or "
                         f"validation_split)")
    return logs[monitor]


class LearningRateScheduler(Callback):
    """Step a learning-rate schedule once per epoch inside `fit`, after the epoch and its
    validation (where a PyTorch loop calls `sched.step()`):

        sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)
        tm.fit(model, X, Y, loss, opt, epochs=30, callbacks=[tm.LearningRateScheduler(sched)])

    A ReduceLROnPlateau reads the epoch's metric named by `monitor` ("val_loss", "loss",
    "val_accuracy", …), which it needs; the other schedules take no metric. `learning_rates`
    lists, per epoch, the learning rate of each param group that epoch trained with.
    """

    def __init__(self, schedule: LRScheduler | ReduceLROnPlateau,
                 monitor: str | None = None) -> None:
        if not isinstance(schedule, (LRScheduler, ReduceLROnPlateau)):
            raise TypeError(f"LearningRateScheduler: expects a schedule from "
                            f"tinygrad_mlp.optim.lr_scheduler, got {type(schedule).__name__}")
        plateau = isinstance(schedule, ReduceLROnPlateau)
        if plateau and monitor is None:
            raise ValueError("LearningRateScheduler: ReduceLROnPlateau needs the metric it "
                             "watches: monitor='val_loss', for example")
        if not plateau and monitor is not None:
            raise ValueError(f"LearningRateScheduler: only ReduceLROnPlateau reads a metric; "
                             f"{type(schedule).__name__} takes monitor=None, got {monitor!r}")
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"LearningRateScheduler: monitor must be a metric name, got "
                            f"{monitor!r}")
        self.schedule, self.monitor = schedule, monitor
        self.learning_rates: list[list[float]] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.learning_rates.append([g["lr"] for g in self.schedule.optimizer.param_groups])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.monitor is None:
            self.schedule.step()
            return
        self.schedule.step(_monitored("LearningRateScheduler", self.monitor, logs))


class CallbackList:
    """The callbacks of one fit, called together; checks that each is a `Callback`.

    `per_batch` lists those that override `on_batch_end` (the others cost nothing per step);
    `on_epoch_end` returns whether one of them asked to stop.
    """

    def __init__(self, callbacks: Iterable[Any] | None, model: Any,
                 params: dict[str, Any]) -> None:
        self.callbacks = list(callbacks or [])
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"fit: callbacks must be Callback instances, got "
                                f"{type(callback).__name__}")
        self.model, self.params = model, params
        self.per_batch = [c for c in self.callbacks
                          if type(c).on_batch_end is not Callback.on_batch_end]

    def on_train_begin(self) -> None:
        for callback in self.callbacks:
            callback.set_model(self.model)
            callback.params = self.params
            callback.on_train_begin({})

    def on_epoch_begin(self, epoch: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, {})

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        for callback in self.per_batch:
            callback.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, dict(logs))
        return any(callback.stop_training for callback in self.callbacks)

    def on_train_end(self, history: History) -> None:
        for callback in self.callbacks:
            callback.on_train_end({"history": history})


def _format_logs(logs: dict[str, float]) -> str:
    return " - ".join(f"{key} {value:.4f}" for key, value in logs.items())


class Progress:
    """A tqdm bar per epoch on a terminal or in Jupyter (tqdm.auto: the notebook's widget bar),
    one plain line per epoch otherwise, or nothing.

    The bar is redrawn at most ~50 times an epoch of `steps` batches: between redraws fit's
    inner loop only compares two ints (`stride` is beyond the epoch without a bar)."""

    def __init__(self, progress: bool | str, epochs: int, steps: int = 1) -> None:
        choice("progress", progress, (True, False, "bar", "lines"))
        self.epochs, self.steps = epochs, steps
        self.stream = sys.stdout
        self.mode = progress if isinstance(progress, str) else (
            "off" if not progress else
            ("bar" if _isatty(self.stream) or _in_notebook() else "lines"))
        self.stride = max(1, steps // 50) if self.mode == "bar" else steps + 1
        self.bar = None

    def begin_epoch(self, epoch: int) -> int:
        """Open the epoch's bar; returns the first step after which to call `update`."""
        if self.mode == "bar":
            from tqdm.auto import tqdm   # lazy: `import tinygrad_mlp` stays light
            self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="batch", file=self.stream, leave=True, dynamic_ncols=True,
                            mininterval=0.1)
        return self.stride

    def update(self, step: int, running_loss: float) -> int:
        """Redraw after `step` batches; returns the next step after which to call again."""
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix_str(f"loss {running_loss:.4f}", refresh=False)
        return step + self.stride

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


def _in_notebook() -> bool:
    """Inside a Jupyter kernel that can draw tqdm's widget bar (ipywidgets installed)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        import ipywidgets  # noqa: F401  (tqdm.auto needs it for the notebook bar)
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


def _isatty(stream: Any) -> bool:
    """A terminal wide enough for a bar (a pty of width 0, as under `script`, is not)."""
    try:
        return bool(stream.isatty()) and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, ValueError, OSError):
        return False
