"""What `model.compile(optimizer, loss, metrics)` keeps: checked objects, or the ones Keras's
names stand for, built over the model's parameters (nn/verbs.py calls this through `connect`)."""

from __future__ import annotations

from typing import Any

from tinygrad_mlp import optim
from tinygrad_mlp.nn import BCELoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss
from tinygrad_mlp.train.prepare import check_callables

__all__ = ["compile_model"]

OPTIMIZERS = {"sgd": lambda p: optim.SGD(p, lr=0.01), "adam": optim.Adam, "adamw": optim.AdamW,
              "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}     # Keras's default rates
LOSSES = {"categorical_crossentropy": CrossEntropyLoss,
          "sparse_categorical_crossentropy": CrossEntropyLoss, "binary_crossentropy": BCELoss,
          "mse": MSELoss, "mean_squared_error": MSELoss, "mae": L1Loss,
          "mean_absolute_error": L1Loss, "huber": HuberLoss}


def compile_model(model: Any, optimizer: Any, loss: Any, metrics: Any = None
                  ) -> tuple[Any, Any]:
    """(optimizer, loss) for fit: a name becomes its object (MSELoss is the blog's 1/(2N) form,
    see nn.MSELoss); objects are checked as tm.fit checks them."""
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"compile: unknown optimizer {optimizer!r}; names: "
                             f"{sorted(OPTIMIZERS)}, or pass an optimizer object")
        optimizer = OPTIMIZERS[optimizer.lower()](model.parameters())
    if isinstance(loss, str):
        if loss.lower() not in LOSSES:
            raise ValueError(f"compile: unknown loss {loss!r}; names: {sorted(LOSSES)}, or "
                             f"pass a loss object such as nn.CrossEntropyLoss()")
        loss = LOSSES[loss.lower()]()
    if metrics is not None and (not isinstance(metrics, (list, tuple)) or any(
            m not in ("accuracy", "acc") for m in metrics)):
        raise ValueError(f"compile: metrics may be None or ['accuracy'] (fit records accuracy "
                         f"whenever the targets are classes), got {metrics!r}")
    check_callables(loss, optimizer)
    return optimizer, loss
