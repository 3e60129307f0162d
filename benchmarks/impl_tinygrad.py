"""tinygrad_mlp through its public API, three ways: `tm.fit(...)`, an explicit training loop,
and the same loop through `tm.TrainStep` (which records the step once and replays it).

The model is the blog's network as a user writes it, with the blog's one-hot targets Y (N, K):
    model = nn.Sequential(nn.Linear(D, M), nn.Sigmoid(), nn.Linear(M, K), nn.Softmax())
    loss = nn.CrossEntropyLoss()                   # fuses with the Softmax: δ2 = (a2 − Y)/N
    optimizer = optim.SGD(model.parameters(), lr)
The loop is `J = loss(model(Tensor(X_b)), Y_b); optimizer.zero_grad(); J.backward();
optimizer.step()`; the fit variant calls `tm.fit(..., progress=False)` and `tm.predict`.
"""

from __future__ import annotations

import numpy as np

import tinygrad_mlp as tm
from benchmarks.common import NotApplicable, Runner
from benchmarks.workloads import CONV_KEYS, CONV_WIDTHS, conv_features

KEYS = ("W1", "b1", "W2", "b2")


def _train_api():
    """(fit, predict): the public tm.fit / tm.predict, or tinygrad_mlp.train's until exported."""
    if hasattr(tm, "fit") and hasattr(tm, "predict"):
        return tm.fit, tm.predict
    try:
        from tinygrad_mlp.train import fit, predict
    except ImportError:
        raise NotApplicable("tm.fit not available") from None
    return fit, predict


def conv_model(wl):
    """W7's network with tinygrad_mlp's layers (NotApplicable until nn.Conv2d exists)."""
    from tinygrad_mlp import nn
    if not all(hasattr(nn, name) for name in ("Conv2d", "MaxPool2d", "Flatten", "ReLU")):
        raise NotApplicable("no nn.Conv2d yet")
    (C1, C2), K = CONV_WIDTHS, wl.K
    return nn.Sequential(nn.Conv2d(1, C1, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(C1, C2, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(conv_features(wl.D), K), nn.Softmax())


class TinygradRunner(Runner):
    """`use_fit`: train with tm.fit and infer with tm.predict; otherwise an explicit loop."""

    use_fit = False

    def __init__(self, wl, data):
        super().__init__(wl, data)
        if wl.kind == "digits":
            if not self.use_fit:     # the CLI trains with fit: one variant is enough
                raise NotApplicable
            return
        if wl.kind == "chain":
            if self.use_fit:
                raise NotApplicable
            return
        if self.use_fit:
            self.fit, self.predict = _train_api()
        from tinygrad_mlp import nn, optim
        if wl.kind == "conv":
            self.model, self.keys = conv_model(wl), CONV_KEYS
        else:
            self.model = nn.Sequential(nn.Linear(wl.D, wl.M), nn.Sigmoid(),
                                       nn.Linear(wl.M, wl.K), nn.Softmax())
            self.keys = KEYS
        self.loss_fn = nn.CrossEntropyLoss()
        self.params = list(self.model.parameters())       # in the order of self.keys
        self.optimizer = optim.SGD(self.params, lr=wl.lr)

    def reset(self):
        if self.wl.kind in ("chain", "digits"):
            return
        for p, k in zip(self.params, self.keys):
            p.data[...] = self.data["params"][k]
            p.grad = None

    def train(self, batches, lr):
        if self.use_fit:
            return self._fit(batches)
        X, Y = self.data["X"], self.data["Y"]
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        for idx in batches:
            J = loss_fn(model(tm.Tensor(X[idx])), Y[idx])
            optimizer.zero_grad()
            J.backward()
            optimizer.step()
        return J.item()

    def _fit(self, batches):
        wl = self.wl
        if len(batches) == 1:      # the correctness guard: one step on one batch, in order
            X, Y = self.data["X"][batches[0]], self.data["Y"][batches[0]]
            epochs, batch_size, shuffle = 1, len(X), False
        else:
            X, Y = self.data["X"], self.data["Y"]
            epochs, batch_size, shuffle = wl.epochs, wl.batch, wl.shuffle
        history = self.fit(self.model, X, Y, loss=self.loss_fn, optimizer=self.optimizer,
                           epochs=epochs, batch_size=batch_size, shuffle=shuffle, progress=False)
        return history["loss"][-1]

    def loss(self, idx):
        with tm.no_grad():
            a2 = self.model(tm.Tensor(self.data["X"][idx])).data
        return float(-np.log(a2[np.arange(len(idx)), self.data["y"][idx]]).mean())

    def infer(self):
        X, b = self.data["X"], self.wl.batch
        if self.use_fit:
            return self.predict(self.model, X, batch_size=b)
        with tm.no_grad():
            return np.concatenate([self.model(tm.Tensor(X[i:i + b])).data
                                   for i in range(0, len(X), b)])

    def chain(self, x):
        x = tm.Tensor(x.copy(), requires_grad=True)
        h = x
        for _ in range(self.wl.n_ops // 4):
            h = (h * 1.0001 + 0.1).sigmoid() - 0.5
        h.sum().backward()
        return x.grad

    def digits(self):
        from benchmarks.digits import run_cli
        return run_cli(self.wl)


class TinygradFitRunner(TinygradRunner):
    use_fit = True


class TinygradStepRunner(TinygradRunner):
    """The explicit loop with `step = tm.TrainStep(model, loss, optimizer)`: `step(X_b, Y_b)`."""

    def __init__(self, wl, data):
        if wl.kind not in ("train", "conv"):
            raise NotApplicable
        super().__init__(wl, data)
        self.step = tm.TrainStep(self.model, self.loss_fn, self.optimizer)

    def train(self, batches, lr):
        X, Y, step = self.data["X"], self.data["Y"], self.step
        for idx in batches:
            J = step(X[idx], Y[idx])
        return J
