"""The blog's example, end to end: its network with every node named, a batch of digits, the
backward walk checked against its hand-derived δ, and its three ways to learn compared.

    X, Y, W1, W2 = blog.blog_example(batch=4)      # 4 digits, their one-hot labels, Glorot weights
    print(blog.explain_blog(X, Y, W1, W2))         # viz.explain, then autograd against the blog
    result = blog.compare_methods(X_all, y_all)    # GD vs SGD vs mini-batch, trained through fit
    print(blog.format_compare(result)); viz.plot_compare(result, "compare.png")
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Mapping

import numpy as np

from tinygrad_mlp import nn, optim
from tinygrad_mlp.teach import reference
from tinygrad_mlp._checks import fail, is_int, positive_int
from tinygrad_mlp.data import num_batches, one_hot
from tinygrad_mlp.datasets import load_digits
from tinygrad_mlp.tensor import Tensor, get_default_dtype, manual_seed, no_grad
from tinygrad_mlp.train import Callback, fit
from tinygrad_mlp.viz.explain import explain, format_values
from tinygrad_mlp.viz.html import Check, explain_html
from tinygrad_mlp.viz.plots import rates_text

__all__ = ["blog_network", "blog_example", "explain_blog", "explain_blog_html", "compare_methods",
           "format_compare", "METHODS", "BLOG_LOSSES"]

BLOG_LOSSES = ("mse", "bce", "ce")


def blog_network(X: Any, Y: Any, W1: Any, W2: Any, loss: str = "mse"
                 ) -> tuple[Tensor, dict[str, Tensor]]:
    """The blog's network built from raw ops, every node named as in the blog; returns (J, nodes).

    Z1 = X·W1, a1 = σ(Z1), Z2 = a1·W2, then for `loss`:
    mse  a2 = σ(Z2),       J = 1/(2N) Σ(a2 − Y)² written out as Sub, Pow, Sum, Div nodes
    bce  a2 = σ(Z2),       J = nn.BCELoss()(a2, Y), fused with the Sigmoid (one node)
    ce   a2 = softmax(Z2), J = nn.CrossEntropyLoss()(a2, Y), fused with the Softmax (one node)
    `nodes` maps X, Y, W1, W2, Z1, a1, Z2, a2, J to their Tensors (W1 and W2 require grad; they
    are new Tensors sharing the arrays' memory, so a later update changes the caller's arrays).
    """
    if loss not in BLOG_LOSSES:
        raise ValueError(f"blog_network: loss must be one of {BLOG_LOSSES}, got {loss!r}")
    X, Y = Tensor(X, name="X"), Tensor(Y, name="Y")
    W1, W2 = Tensor(W1, requires_grad=True, name="W1"), Tensor(W2, requires_grad=True, name="W2")
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"blog_network: X and Y must be 2-D (N×D and N×K), got {X.shape} and "
                         f"{Y.shape}")
    Z1 = X @ W1
    a1 = Z1.sigmoid()
    Z2 = a1 @ W2
    a2 = Z2.softmax(axis=1) if loss == "ce" else Z2.sigmoid()
    if loss == "mse":
        J = ((a2 - Y) ** 2).sum() / (2 * X.shape[0])
    elif loss == "bce":
        J = nn.BCELoss()(a2, Y)
    else:
        J = nn.CrossEntropyLoss()(a2, Y)
    nodes = dict(X=X, Y=Y, W1=W1, W2=W2, Z1=Z1, a1=a1, Z2=Z2, a2=a2, J=J)
    for name, node in nodes.items():
        node.name = name
    for parent in J.creator.parents:   # a fused loss wraps Y's array in a Tensor of its own
        if parent.data is Y.data:
            parent.name = "Y"
    return J, nodes


def blog_example(batch: int = 4, hidden: int = 8, loss: str = "mse", seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A small batch for the blog's network on the bundled digits: (X, Y, W1, W2).

    X: `batch` digit images drawn with `seed`, scaled to [0, 1] (N×64); Y: their one-hot
    labels (N×10), the targets of every loss here; W1 (64×hidden) and W2 (hidden×10): the
    Glorot-uniform weights nn.Linear starts from, drawn after `tm.manual_seed(seed)`.
    """
    if loss not in BLOG_LOSSES:
        raise ValueError(f"blog_example: loss must be one of {BLOG_LOSSES}, got {loss!r}")
    images, labels = load_digits()
    if not is_int(batch) or not 1 <= batch <= len(images):
        fail("batch", batch, f"an int in 1..{len(images)}", owner="blog_example")
    rng = manual_seed(seed)
    rows = np.sort(rng.choice(len(images), size=batch, replace=False))
    X = images[rows] / images.dtype.type(16)
    Y = one_hot(labels[rows], 10, dtype=X.dtype)
    W1 = nn.Linear(X.shape[1], hidden, bias=False).weight.data
    W2 = nn.Linear(hidden, 10, bias=False).weight.data
    return X, Y, W1, W2


def explain_blog(X: Any, Y: Any, W1: Any, W2: Any, loss: str = "mse",
                 max_values: int = 12) -> str:
    """`explain` on the blog's network (see `blog_network`), then the check against the blog.

    The blog's δ2 and δ1 (`reference.deltas`) are exact for the sum-form cost; this J is the
    mean over N samples, so autograd's ∂J/∂Z2 and ∂J/∂Z1 equal them divided by N. The text shows
    N·∂J/∂Zk next to reference δk and the largest difference, and the same for ∂J/∂W1, ∂J/∂W2
    against `reference.gradients`.
    """
    J, nodes = blog_network(X, Y, W1, W2, loss)
    text = explain(J, max_values=max_values)
    N, delta1, delta2, dJ_dW1, dJ_dW2 = _blog_references(nodes, loss)
    rule2 = DELTA2_RULES[loss]
    out = [text, "",
           f"Checking against the blog (tinygrad_mlp.reference, loss={loss!r}, N={N}):",
           f"the blog's δ2 = {rule2} and δ1 = (δ2·W2ᵀ)·a1(1 − a1) are for the sum-form cost;",
           "J here is the mean over the N samples, so ∂J/∂Zk = δk / N. Autograd against the blog:"]
    checks = [("δ2", "N · ∂J/∂Z2", N * nodes["Z2"].grad, delta2),
              ("δ1", "N · ∂J/∂Z1", N * nodes["Z1"].grad, delta1),
              ("∂J/∂W2", "W2.grad", nodes["W2"].grad, dJ_dW2),
              ("∂J/∂W1", "W1.grad", nodes["W1"].grad, dJ_dW1)]
    for name, autograd_name, ours, blogs in checks:
        difference = float(np.max(np.abs(ours - blogs))) if ours.size else 0.0
        source = ("reference.deltas" if name.startswith("δ")
                  else "reference.gradients (a1ᵀ·δ2/N, Xᵀ·δ1/N)")
        out.append(f"  {name:<7} {autograd_name:<11} = {source:<40} max |difference| "
                   f"{difference:.2g}")
    for name, _, ours, _ in checks[:2]:
        shown = format_values(ours, max_values, "    ")
        if shown:
            out.append(f"  the blog's {name} (N · ∂J/∂Z{name[-1]}):" + shown)
    return "\n".join(out)


DELTA2_RULES = {"mse": "(a2 − Y)·a2(1 − a2)", "bce": "a2 − Y", "ce": "a2 − Y"}


def _blog_references(nodes: Mapping[str, Tensor], loss: str
                     ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """N and the blog's δ1, δ2 (reference.deltas) and ∂J/∂W1, ∂J/∂W2 (reference.gradients)."""
    arrays = [nodes[name].data for name in ("X", "Y", "W1", "W2")]
    return (arrays[0].shape[0], *reference.deltas(*arrays, loss=loss),
            *reference.gradients(*arrays, loss=loss))


def explain_blog_html(X: Any, Y: Any, W1: Any, W2: Any, loss: str = "mse",
                      path: str | os.PathLike | None = None, max_values: int = 40,
                      engine: str = "auto") -> str:
    """`viz.explain_html` on the blog's network: the page that steps through the backward walk,
    with the blog's δ2 and δ1 at Z2 and Z1 (N·∂J/∂Zk against reference.deltas, since J is the
    mean over the N samples) and ∂J/∂W1, ∂J/∂W2 against reference.gradients at W1 and W2."""
    J, nodes = blog_network(X, Y, W1, W2, loss)
    N, delta1, delta2, dJ_dW1, dJ_dW2 = _blog_references(nodes, loss)
    mean = f"the blog's cost sums over the N = {N} samples, J here is their mean"
    checks = {
        "Z2": Check(f"the blog's δ2 = {DELTA2_RULES[loss]}", delta2, N, "tm.reference.deltas",
                    mean),
        "Z1": Check("the blog's δ1 = (δ2·W2ᵀ)·a1(1 − a1)", delta1, N, "tm.reference.deltas",
                    mean),
        "W2": Check("the blog's ∂J/∂W2 = a1ᵀ·δ2 / N", dJ_dW2, 1, "tm.reference.gradients"),
        "W1": Check("the blog's ∂J/∂W1 = Xᵀ·δ1 / N", dJ_dW1, 1, "tm.reference.gradients"),
    }
    title = (f"The blog's network, backward: X {nodes['X'].shape} · W1 → σ → · W2 → "
             f"{'softmax' if loss == 'ce' else 'σ'}, loss {loss}")
    return explain_html(J, path, max_values=max_values, checks=checks, title=title,
                        engine=engine)


# --- the blog's three ways to learn, compared ---------------------------------------------------

METHODS = {   # name -> label; batch size: gd all N, sgd 1, minibatch batch_size
    "gd": "full-batch gradient descent",
    "sgd": "stochastic gradient descent",
    "minibatch": "mini-batch gradient descent",
}


def compare_methods(X: Any, Y: Any, hidden: int = 32, epochs: int = 10,
                    lr: float | Mapping[str, float] = 0.5, batch_size: int = 32, seed: int = 0,
                    loss: str = "ce",
                    methods: tuple[str, ...] = ("gd", "sgd", "minibatch")) -> dict[str, Any]:
    """Train the blog's network once per way to learn, from the same initial weights.

    Network: Linear(D, hidden) → Sigmoid → Linear(hidden, K) → Softmax with cross-entropy
    (`loss="ce"`) or → Sigmoid with the blog's MSE (`loss="mse"`). Each method starts from
    `tm.manual_seed(seed)` (same weights, same shuffling stream) and uses plain SGD, by default
    with the SAME learning rate `lr` for all (or one per method: `lr={"gd": 2.0, ...}`):
    full-batch GD makes 1 update per epoch, per-sample SGD N updates, mini-batch
    ⌈N/batch_size⌉. Each trains through `fit` (so through the `TrainStep` it takes); after every
    epoch a callback measures the cost J over all of X (and the accuracy) under no_grad, after
    fit timed the epoch, so `seconds` counts training only.
    `Y`: one-hot rows (N, K) or class labels (N,). Returns {"methods": {name: {"label", "lr",
    "batch_size", "updates_per_epoch", "cost", "accuracy", "seconds"}}, "lr" (per method),
    "epochs", "N", "loss", "seed", "hidden"}; each list has epochs + 1 entries (entry 0: before
    training).
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"compare_methods: unknown method {unknown[0]!r}; expected some of "
                         f"{tuple(METHODS)}")
    if loss not in ("ce", "mse"):
        raise ValueError(f"compare_methods: loss must be 'ce' or 'mse', got {loss!r}")
    epochs = positive_int("epochs", epochs, owner="compare_methods")
    rates = dict(lr) if isinstance(lr, Mapping) else {method: lr for method in methods}
    missing = [m for m in methods if m not in rates]
    if missing:
        raise ValueError(f"compare_methods: lr gives no learning rate for {missing[0]!r} "
                         f"(got {sorted(rates)}); give one number, or one per method")
    rates = {m: float(rates[m]) for m in methods}
    dtype = get_default_dtype()   # the dtype the layers are created in
    X, Y = np.asarray(X, dtype=dtype), np.asarray(Y)
    labels = Y.argmax(axis=1) if Y.ndim == 2 else Y.astype(np.int64)
    Y = one_hot(labels, dtype=dtype) if Y.ndim == 1 else Y.astype(dtype)
    if X.ndim != 2 or len(X) != len(Y) or len(X) == 0:
        raise ValueError(f"compare_methods: X must be (N, D) and Y (N, K) or (N,) with the same "
                         f"N >= 1; got X {X.shape} and Y {Y.shape}")
    N, D = X.shape
    K = Y.shape[1]
    sizes = {"gd": None, "sgd": 1, "minibatch": batch_size}
    criterion = nn.CrossEntropyLoss() if loss == "ce" else nn.MSELoss()
    result: dict[str, Any] = {"methods": {}, "lr": rates, "epochs": epochs, "N": N,
                              "loss": loss, "seed": seed, "hidden": hidden}
    for method in methods:
        manual_seed(seed)
        model = nn.Sequential(nn.Linear(D, hidden), nn.Sigmoid(), nn.Linear(hidden, K),
                              nn.Softmax() if loss == "ce" else nn.Sigmoid())
        optimizer = optim.SGD(model.parameters(), lr=rates[method])
        measured = _CostOverAllRows(model, criterion, X, Y, labels)
        history = fit(model, X, Y, criterion, optimizer, epochs=epochs,
                      batch_size=sizes[method], shuffle=True, callbacks=[measured],
                      progress=False)
        result["methods"][method] = {
            "label": METHODS[method], "lr": rates[method], "batch_size": sizes[method] or N,
            "updates_per_epoch": num_batches(N, sizes[method]), "cost": measured.cost,
            "accuracy": measured.accuracy, "seconds": [0.0, *itertools.accumulate(history.seconds)]}
    return result


class _CostOverAllRows(Callback):
    """The cost J and the accuracy over all rows under no_grad: once now (before training), then
    after every epoch (fit calls on_epoch_end after it timed the epoch)."""

    def __init__(self, model: Any, criterion: Any, X: np.ndarray, Y: np.ndarray,
                 labels: np.ndarray) -> None:
        self.arguments = (model, criterion, X, Y, labels)
        self.cost: list[float] = []
        self.accuracy: list[float] = []
        self.on_epoch_end(-1)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        model, criterion, X, Y, labels = self.arguments
        with no_grad():
            a2 = model(Tensor(X))
            self.cost.append(criterion(a2, Y).item())
        self.accuracy.append(float((a2.data.argmax(axis=1) == labels).mean()))


def format_compare(result: Mapping[str, Any]) -> str:
    """The table `tinygrad-mlp compare` prints: per method, the cost after some epochs and the
    time, from a `compare_methods` result."""
    epochs = result["epochs"]
    shown = sorted({0, 1, min(2, epochs), epochs // 2, epochs})
    head = (f"{'method':<34}{'batch':>6}{'lr':>7}{'updates/epoch':>14}"
            + "".join(f"{'J@' + str(e):>10}" for e in shown) + f"{'train acc':>10}{'seconds':>9}")
    lines = [f"N={result['N']} samples, loss={result['loss']}, hidden={result['hidden']}, "
             f"{rates_text(result['lr'])}, seed={result['seed']}", head, "-" * len(head)]
    for run in result["methods"].values():
        lines.append(f"{run['label'][:33]:<34}{run['batch_size']:>6}{run['lr']:>7g}"
                     f"{run['updates_per_epoch']:>14}"
                     + "".join(f"{run['cost'][e]:>10.4f}" for e in shown)
                     + f"{run['accuracy'][-1]:>10.3f}{run['seconds'][-1]:>9.2f}")
    return "\n".join(lines)
