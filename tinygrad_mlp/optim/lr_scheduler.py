"""Learning-rate schedules, stepped once per epoch, with PyTorch's exact sequences.

    opt = optim.SGD(model.parameters(), lr=0.5)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    for epoch in range(20):
        ...                                  # the epoch's optimizer steps
        sched.step()                         # then the next epoch's lr
    sched.get_last_lr()                      # [lr of each param group]

Each schedule writes `group["lr"]` of every param group, and computes it as PyTorch does:
from the group's current lr (StepLR, ExponentialLR, CosineAnnealingLR's recursive form) or from
its "initial_lr", which the schedule records in the group (LambdaLR), so the floats come out
identical, not merely close. Inside `fit`, `tm.LearningRateScheduler(sched)` does the stepping.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

from tinygrad_mlp._checks import is_real, non_negative_int, positive_int
from tinygrad_mlp.optim.optimizer import Optimizer, non_negative, real

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR",
           "ReduceLROnPlateau"]


def _optimizer(owner: str, optimizer: Any) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{owner}: expects an optimizer from tinygrad_mlp.optim, got "
                        f"{type(optimizer).__name__}")
    return optimizer


class LRScheduler:
    """Base class: `step()` advances `last_epoch` by one and sets each group's lr to
    `get_lr()`. Construction performs step 0 (PyTorch's "initial step"), so a fresh schedule
    has `last_epoch == 0` and, except for LambdaLR, leaves the learning rates as they were."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = _optimizer(type(self).__name__, optimizer)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def get_lr(self) -> list[float]:
        """The learning rate of each group at `last_epoch` (called by `step`)."""
        raise NotImplementedError

    def step(self) -> None:
        """Move to the next epoch's learning rates (call it after the epoch's optimizer steps)."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates the last `step()` set, one per param group."""
        return list(self._last_lr)

    def _current(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """A copy of the schedule's counters (not the optimizer, not the functions)."""
        return {key: copy.deepcopy(value) for key, value in vars(self).items()
                if key not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict()` returned (the same keys, or a ValueError)."""
        expected = set(self.state_dict())
        if not isinstance(state, dict) or set(state) != expected:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected the keys "
                             f"{sorted(expected)}, got {got}")
        self.__dict__.update(copy.deepcopy(state))


class StepLR(LRScheduler):
    """Multiply every group's lr by `gamma` once every `step_size` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = positive_int("step_size", step_size, "StepLR")
        self.gamma = real(0.0, low_open=True)("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]


class ExponentialLR(LRScheduler):
    """Multiply every group's lr by `gamma` every epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = real(0.0, low_open=True)("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]


class CosineAnnealingLR(LRScheduler):
    """Anneal from the initial lr to `eta_min` along half a cosine over `T_max` epochs (then
    back up, as PyTorch's schedule does past T_max):

        lr_t = eta_min + (initial_lr − eta_min)·(1 + cos(π·t / T_max)) / 2

    computed with PyTorch's recursive form (each lr from the previous one), so the sequence is
    PyTorch's to the last bit, and a change made to the lr between epochs carries on.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = positive_int("T_max", T_max, "CosineAnnealingLR")
        self.eta_min = non_negative("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if t == 0:
            return self._current()
        if (t - 1 - T) % (2 * T) == 0:           # the bottom of a cycle: the ratio below is 0/0
            return [lr + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for lr, base in zip(self._current(), self.base_lrs)]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current()]


class LambdaLR(LRScheduler):
    """lr = initial_lr · lr_lambda(epoch); one function for every group, or a list of one per
    group. As in PyTorch, construction already applies lr_lambda(0)."""

    def __init__(self, optimizer: Optimizer,
                 lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]]) -> None:
        groups = _optimizer("LambdaLR", optimizer).param_groups
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else \
            [lr_lambda] * len(groups)
        if len(lambdas) != len(groups):
            raise ValueError(f"LambdaLR: {len(lambdas)} lr_lambdas for {len(groups)} param "
                             f"groups; give one function, or one per group")
        for number, function in enumerate(lambdas):
            if not callable(function):
                raise TypeError(f"LambdaLR: lr_lambda {number} must be callable (epoch -> "
                                f"factor), got {type(function).__name__}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        lrs = []
        for number, (function, base) in enumerate(zip(self.lr_lambdas, self.base_lrs)):
            factor = function(self.last_epoch)
            if not is_real(factor) or not math.isfinite(factor) or factor < 0:
                raise ValueError(f"LambdaLR: lr_lambda {number} returned {factor!r} at epoch "
                                 f"{self.last_epoch}; it must return a finite number >= 0")
            lrs.append(base * float(factor))
        return lrs


def is_better(value: float, best: float, mode: str, threshold: float = 0.0,
              threshold_mode: str = "abs") -> bool:
    """Does a monitored metric's `value` beat `best` by more than `threshold`? The one rule of
    ReduceLROnPlateau and EarlyStopping. mode "min" (losses: lower is better) or "max"; the
    margin is `threshold` itself ("abs") or that fraction of best ("rel", PyTorch's default)."""
    if mode == "min":
        return value < (best * (1 - threshold) if threshold_mode == "rel" else best - threshold)
    return value > (best * (1 + threshold) if threshold_mode == "rel" else best + threshold)


class ReduceLROnPlateau:
    """Multiply every group's lr by `factor` once the metric has not improved for more than
    `patience` epochs (PyTorch's rule and defaults); `step(value)` takes the epoch's metric.

    `mode` "min" (losses) or "max" (accuracies); improving means beating the best by
    `threshold`, relative (best·(1 ∓ threshold), "rel") or absolute ("abs"). After a reduction
    `cooldown` epochs pass before bad epochs count again; no lr goes below `min_lr` (a number,
    or one per group), and a reduction smaller than `eps` is skipped.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | Sequence[float] = 0.0,
                 eps: float = 1e-8) -> None:
        owner = "ReduceLROnPlateau"
        self.optimizer = _optimizer(owner, optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{owner}: threshold_mode must be 'rel' or 'abs', got "
                             f"{threshold_mode!r}")
        groups = optimizer.param_groups
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * len(groups)
        if len(min_lrs) != len(groups):
            raise ValueError(f"{owner}: {len(min_lrs)} min_lr values for {len(groups)} param "
                             f"groups")
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = real(0.0, 1.0, low_open=True)(owner, "factor", factor)
        self.patience = non_negative_int("patience", patience, owner)
        self.threshold = non_negative(owner, "threshold", threshold)
        self.cooldown = non_negative_int("cooldown", cooldown, owner)
        self.min_lrs = [non_negative(owner, f"min_lr[{i}]", v) for i, v in enumerate(min_lrs)]
        self.eps = non_negative(owner, "eps", eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs, self.cooldown_counter, self.last_epoch = 0, 0, 0
        self._last_lr = [group["lr"] for group in groups]

    def is_better(self, value: float, best: float) -> bool:
        """Does `value` beat `best` by more than the threshold?"""
        return is_better(value, best, self.mode, self.threshold, self.threshold_mode)

    def step(self, metrics: float) -> None:
        """Record the epoch's metric (e.g. the validation loss); reduce the lr on a plateau."""
        if not is_real(metrics):
            try:
                metrics = float(metrics)            # a one-element Tensor or array
            except (TypeError, ValueError):
                raise TypeError(f"ReduceLROnPlateau.step: metrics must be a number, got "
                                f"{type(metrics).__name__}") from None
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0                 # bad epochs during cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    get_last_lr = LRScheduler.get_last_lr
    state_dict = LRScheduler.state_dict
    load_state_dict = LRScheduler.load_state_dict
