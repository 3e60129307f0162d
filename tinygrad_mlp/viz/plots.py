"""Plots with matplotlib (the optional extra: `pip install matplotlib`, or from a checkout
`pip install -e '.[plot]'`): a fit's history, the first layer's weights as images, and the
blog's GD/SGD/mini-batch comparison.

Each returns its matplotlib Figure, which shows itself in a notebook (it has `_repr_png_`), and
writes it to `path` when given one. matplotlib is imported only inside these functions, and the
figures are drawn on the Agg canvas, so the caller's pyplot backend is never touched.
"""

from __future__ import annotations

import functools
import io
import math
import os
from typing import Any, Mapping

import numpy as np

from tinygrad_mlp import nn
from tinygrad_mlp.tensor import Tensor, as_array

__all__ = ["plot_history", "plot_weights", "plot_compare", "rates_text"]

def _figure(width_px: int, height_px: int, dpi: int = 100) -> Any:
    """A matplotlib Figure of exactly width_px × height_px pixels, drawn on the Agg canvas
    (pyplot and the caller's backend are never touched)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib, an optional extra: pip install matplotlib "
                          "(from a source checkout: pip install -e '.[plot]')") from None
    figure = _notebook_figure(Figure)(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


@functools.cache
def _notebook_figure(Figure: type) -> type:
    class NotebookFigure(Figure):
        """A Figure that IPython displays as a PNG of its exact size, with or without pyplot."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=self.dpi)
            return buffer.getvalue()
    return NotebookFigure


def _save(figure: Any, path: str | os.PathLike | None) -> Any:
    if path is not None:
        figure.savefig(os.fspath(path), dpi=figure.dpi)   # never bbox_inches="tight": exact size
    return figure


def plot_history(history: Any, path: str | os.PathLike | None = None,
                 size: tuple[int, int] = (1000, 400)) -> Any:
    """Loss and accuracy per epoch, train and validation, side by side; a PNG of `size` pixels.

    `history`: what `fit` returns (its `.history` dict) or a dict of lists (`loss`, `val_loss`,
    `accuracy`, `val_accuracy`; only `loss` is required). Returns the Figure (saved to `path`
    when given).
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping) or not len(logs.get("loss", ())):
        raise ValueError("plot_history: expected a History or a dict with a non-empty 'loss' "
                         f"list, got {type(history).__name__} with keys "
                         f"{sorted(logs) if isinstance(logs, Mapping) else '-'}")
    figure = _figure(*size)
    panels = [("loss", "cost J")] + ([("accuracy", "accuracy")] if logs.get("accuracy") else [])
    for i, (key, title) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), i)
        for prefix, style in (("", "-o"), ("val_", "--s")):
            values = logs.get(prefix + key)
            if values:
                epochs = range(1, len(values) + 1)
                axes.plot(epochs, values, style, markersize=3,
                          label="validation" if prefix else "train")
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    return _save(figure, path)


def plot_weights(layer: Any, path: str | os.PathLike | None = None,
                 image_shape: tuple[int, int] | None = None, columns: int | None = None,
                 cell: int = 100) -> Any:
    """The first layer's weights as images: column j of W (D × M) is what hidden unit j looks
    for, drawn as a √D × √D picture (8×8 digits, 28×28 MNIST, 48×48 FER2013) in a grid.

    `layer`: an nn.Linear, a Sequential (its first Linear), a Tensor or an array of shape (D, M).
    Red is positive, blue negative, each image scaled to its own largest |weight|. The PNG is
    `columns × cell` by `rows × cell` pixels (columns defaults to ⌈√M⌉). Returns the Figure.
    """
    W = _first_weight(layer)
    if W.ndim != 2:
        raise ValueError(f"plot_weights: expected a weight matrix (D, M), got shape {W.shape}")
    D, M = W.shape
    if image_shape is None:
        side = math.isqrt(D)
        if side * side != D:
            raise ValueError(f"plot_weights: D = {D} inputs is not a square image (64 = 8×8, "
                             f"784 = 28×28, 2304 = 48×48); pass image_shape=(height, width)")
        image_shape = (side, side)
    if image_shape[0] * image_shape[1] != D:
        raise ValueError(f"plot_weights: image_shape {tuple(image_shape)} does not hold D = {D} "
                         f"weights")
    columns = columns or math.ceil(math.sqrt(M))
    rows = math.ceil(M / columns)
    figure = _figure(columns * cell, rows * cell)
    for j in range(M):
        axes = figure.add_subplot(rows, columns, j + 1)
        image = W[:, j].reshape(image_shape)
        limit = float(np.abs(image).max()) or 1.0
        axes.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(str(j), fontsize=7, pad=2)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93, wspace=0.1, hspace=0.3)
    return _save(figure, path)


def _first_weight(layer: Any) -> np.ndarray:
    if isinstance(layer, nn.Sequential):
        linears = [child for child in layer if isinstance(child, nn.Linear)]
        if not linears:
            raise ValueError("plot_weights: this Sequential has no Linear layer")
        layer = linears[0]
    if isinstance(layer, nn.Linear):
        layer = layer.weight
    return np.asarray(as_array(layer), dtype=np.float64)


def plot_compare(result: Mapping[str, Any], path: str | os.PathLike | None = None,
                 size: tuple[int, int] = (1100, 420)) -> Any:
    """The blog's figure: cost J against epochs and against wall-clock seconds, one curve per
    way to learn, from a `compare_methods` result. `size` in pixels; returns the Figure."""
    figure = _figure(*size)
    by_epoch = figure.add_subplot(1, 2, 1)
    by_time = figure.add_subplot(1, 2, 2, sharey=by_epoch)
    for run in result["methods"].values():
        label = f"{run['label']}, batch {run['batch_size']}"
        by_epoch.plot(range(len(run["cost"])), run["cost"], "-o", markersize=3, label=label)
        by_time.plot(run["seconds"], run["cost"], "-o", markersize=3, label=label)
    by_epoch.set_xlabel("epoch")
    by_time.set_xlabel("wall-clock seconds (training only)")
    by_epoch.set_ylabel(f"cost J ({result['loss']}, over all {result['N']} samples)")
    by_epoch.set_title("cost per epoch")
    by_time.set_title("cost per second")
    for axes in (by_epoch, by_time):
        axes.set_yscale("log")
        axes.grid(alpha=0.3, which="both")
    by_epoch.legend(fontsize=8)
    figure.suptitle(f"GD vs SGD vs mini-batch, same network, same start; "
                    f"{rates_text(result['lr'])}")
    figure.tight_layout()
    return _save(figure, path)


def rates_text(rates: Mapping[str, float]) -> str:
    """'the same learning rate lr=0.5 for all three', or each method's rate (of a
    `blog.compare_methods` result's "lr")."""
    values = set(rates.values())
    if len(values) == 1:
        count = {1: "the one method", 2: "both", 3: "all three"}.get(len(rates), "all")
        return f"the same learning rate lr={values.pop():g} for {count}"
    return "learning rates " + ", ".join(f"{m} {r:g}" for m, r in rates.items())
