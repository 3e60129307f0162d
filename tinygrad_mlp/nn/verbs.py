"""Keras's verbs on a model: `compile`, `fit`, `evaluate`, `predict`, `summary`, as thin
methods over `tm.fit`, `tm.evaluate`, `tm.predict` and `nn.summary` (one code path; the
functions stay the documented way).

    model.compile(optim.Adam(model.parameters()), nn.CrossEntropyLoss())   # or "adam", "mse", ...
    history = model.fit(X, y, epochs=5, batch_size=32)    # tm.fit's keyword arguments
    model.evaluate(X_test, y_test), model.predict(X_test), model.summary()

nn sits above train in the package's layering (train imports nn, never the reverse), so these
methods cannot import the training loop. train/__init__.py hands its functions to `connect`
when it is imported, which importing tinygrad_mlp (or any of its parts) always does.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["KerasVerbs", "connect"]

_training: dict[str, Callable[..., Any]] = {}


def connect(compile: Callable[..., Any], fit: Callable[..., Any], evaluate: Callable[..., Any],
            predict: Callable[..., Any]) -> None:
    """Give the verbs the training functions they call (train/__init__.py does, once)."""
    _training.update(compile=compile, fit=fit, evaluate=evaluate, predict=predict)


class KerasVerbs:
    """Mixed into nn.Model and nn.Sequential."""

    def compile(self, optimizer: Any, loss: Any, metrics: list[str] | None = None) -> None:
        """Keep the optimizer and loss `fit` and `evaluate` use: objects (an optimizer over
        this model's parameters, a loss module), or Keras's names ("adam", "sgd", "rmsprop",
        "adamw", "adagrad"; "categorical_crossentropy", "sparse_categorical_crossentropy",
        "binary_crossentropy", "mse", "mae", "huber"). metrics: None or ["accuracy"] (fit
        records accuracy whenever the targets are classes)."""
        compiled = _training["compile"](self, optimizer, loss, metrics)
        object.__setattr__(self, "_compiled", compiled)     # not registered as a child

    def _compiled_or_fail(self, verb: str) -> tuple[Any, Any]:
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            raise RuntimeError(f"{type(self).__name__}.{verb}: call model.compile(optimizer, "
                               f"loss) first (or use tm.{verb}(model, ...) with them)")
        return compiled

    def fit(self, X: Any, Y: Any, **options: Any) -> Any:
        """`tm.fit(model, X, Y, loss, optimizer, **options)` with the compiled loss and
        optimizer; options are tm.fit's (epochs=10, batch_size=32, validation_split, ...)."""
        optimizer, loss = self._compiled_or_fail("fit")
        return _training["fit"](self, X, Y, loss, optimizer, **options)

    def evaluate(self, X: Any, Y: Any, batch_size: int | None = None) -> dict[str, float]:
        """`tm.evaluate(model, X, Y, loss)` with the compiled loss: {"loss", "accuracy"}."""
        _, loss = self._compiled_or_fail("evaluate")
        return _training["evaluate"](self, X, Y, loss, batch_size=batch_size)

    def predict(self, X: Any, batch_size: int | None = None) -> Any:
        """`tm.predict(model, X)`: the outputs as an ndarray (needs no compile)."""
        return _training["predict"](self, X, batch_size=batch_size)

    def summary(self, input_shape: Any = None) -> None:
        """Print `nn.summary(model, input_shape)` (Keras's model.summary() prints too)."""
        from tinygrad_mlp.nn.summary import summary      # (summary.py imports model.py)
        print(summary(self, input_shape))
