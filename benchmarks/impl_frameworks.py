"""The other frameworks, each written the way its users write it, with the same math and weights.

PyTorch (CPU): nn.Sequential(Linear, Sigmoid, Linear), F.cross_entropy, optim.SGD.
MyGrad: tensors, matmul, sigmoid, softmax_crossentropy, in-place update under no_autodiff.
HIPS autograd: value_and_grad of a plain loss function, in-place update.
scikit-learn: MLPClassifier(solver="sgd", activation="logistic", momentum=0, alpha=0).
JAX: the whole step under one jax.jit (see JaxRunner).
Each module is imported only when its runner is built (the table says "not installed" otherwise).
"""

from __future__ import annotations

import warnings

import numpy as np

from benchmarks.common import NotApplicable, Runner
from benchmarks.workloads import CONV_KEYS, CONV_WIDTHS, conv_features

KEYS = ("W1", "b1", "W2", "b2")


class TorchRunner(Runner):
    def __init__(self, wl, data):
        super().__init__(wl, data)
        import torch
        self.torch = torch
        if wl.kind == "digits":
            raise NotApplicable
        if wl.kind == "chain":
            return
        nn = torch.nn
        if wl.kind == "conv":
            self.model = nn.Sequential(nn.Conv2d(1, CONV_WIDTHS[0], 3), nn.ReLU(), nn.MaxPool2d(2),
                                       nn.Conv2d(*CONV_WIDTHS, 3), nn.ReLU(), nn.MaxPool2d(2),
                                       nn.Flatten(), nn.Linear(conv_features(wl.D), wl.K))
        else:
            self.model = nn.Sequential(nn.Linear(wl.D, wl.M), nn.Sigmoid(), nn.Linear(wl.M, wl.K))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=wl.lr)
        self.X = torch.from_numpy(data["X"])
        self.y = torch.from_numpy(data["y"])
        self.batches = {id(idx): torch.from_numpy(idx) for idx in data["batches"]}  # by identity

    def reset(self):
        if self.wl.kind == "chain":
            return
        p = self.data["params"]
        keys = CONV_KEYS if self.wl.kind == "conv" else KEYS
        with self.torch.no_grad():
            for mine, k in zip(self.model.parameters(), keys):   # Linear's weight is (out, in)
                mine.copy_(self.torch.from_numpy(p[k].T if p[k].ndim == 2 else p[k]))
        self.optimizer.zero_grad()

    def train(self, batches, lr):
        F = self.torch.nn.functional
        for idx in batches:
            idx = self.batches[id(idx)]
            J = F.cross_entropy(self.model(self.X[idx]), self.y[idx])
            self.optimizer.zero_grad()
            J.backward()
            self.optimizer.step()
        return J.item()

    def loss(self, idx):
        with self.torch.no_grad():
            idx = self.torch.from_numpy(idx)
            return self.torch.nn.functional.cross_entropy(self.model(self.X[idx]),
                                                          self.y[idx]).item()

    def infer(self):
        b, torch = self.wl.batch, self.torch
        with torch.no_grad():
            out = [torch.softmax(self.model(self.X[i:i + b]), dim=1)
                   for i in range(0, len(self.X), b)]
        return torch.cat(out).numpy()

    def chain(self, x):
        x = self.torch.tensor(x, requires_grad=True)
        h = x
        for _ in range(self.wl.n_ops // 4):
            h = self.torch.sigmoid(h * 1.0001 + 0.1) - 0.5
        h.sum().backward()
        return x.grad.numpy()


class MygradRunner(Runner):
    def __init__(self, wl, data):
        super().__init__(wl, data)
        import mygrad
        self.mg = mygrad
        if wl.kind in ("digits", "conv"):
            raise NotApplicable
        if wl.kind != "chain":
            self.params = [mygrad.tensor(data["params"][k].copy()) for k in KEYS]

    def reset(self):
        if self.wl.kind == "chain":
            return
        for p, k in zip(self.params, KEYS):
            p.data[...] = self.data["params"][k]

    def _logits(self, X):
        from mygrad.nnet.activations import sigmoid
        W1, b1, W2, b2 = self.params
        return self.mg.matmul(sigmoid(self.mg.matmul(X, W1) + b1), W2) + b2

    def train(self, batches, lr):
        from mygrad.nnet.losses import softmax_crossentropy
        X, y = self.data["X"], self.data["y"]
        for idx in batches:
            J = softmax_crossentropy(self._logits(X[idx]), y[idx])
            J.backward()
            with self.mg.no_autodiff:
                for p in self.params:
                    p.data -= lr * p.grad
        return J.item()

    def loss(self, idx):
        from mygrad.nnet.losses import softmax_crossentropy
        with self.mg.no_autodiff:
            return float(softmax_crossentropy(self._logits(self.data["X"][idx]),
                                              self.data["y"][idx]).item())

    def infer(self):
        from mygrad.nnet.activations import softmax
        X, b = self.data["X"], self.wl.batch
        with self.mg.no_autodiff:
            return np.concatenate([np.asarray(softmax(self._logits(X[i:i + b])))
                                   for i in range(0, len(X), b)])

    def chain(self, x):
        from mygrad.nnet.activations import sigmoid
        x = self.mg.tensor(x.copy())
        h = x
        for _ in range(self.wl.n_ops // 4):
            h = sigmoid(h * 1.0001 + 0.1) - 0.5
        h.sum().backward()
        return x.grad


class AutogradRunner(Runner):
    def __init__(self, wl, data):
        super().__init__(wl, data)
        import autograd
        import autograd.numpy as anp
        self.anp = anp
        if wl.kind in ("digits", "conv"):
            raise NotApplicable
        if wl.kind == "chain":
            self.grad_chain = autograd.grad(lambda x: self._chain(x).sum())
            return
        self.params = [data["params"][k].copy() for k in KEYS]
        self.value_and_grad = autograd.value_and_grad(self._loss)

    def reset(self):
        if self.wl.kind == "chain":
            return
        for p, k in zip(self.params, KEYS):
            p[...] = self.data["params"][k]

    def _logits(self, params, X):
        anp = self.anp
        W1, b1, W2, b2 = params
        a1 = 1 / (1 + anp.exp(-(anp.dot(X, W1) + b1)))
        return anp.dot(a1, W2) + b2

    def _loss(self, params, X, Y):
        anp = self.anp
        Z2 = self._logits(params, X)
        Z2 = Z2 - anp.max(Z2, axis=1, keepdims=True)
        log_a2 = Z2 - anp.log(anp.sum(anp.exp(Z2), axis=1, keepdims=True))
        return -anp.sum(Y * log_a2) / len(X)

    def train(self, batches, lr):
        X, Y = self.data["X"], self.data["Y"]
        for idx in batches:
            J, grads = self.value_and_grad(self.params, X[idx], Y[idx])
            for p, g in zip(self.params, grads):
                p -= lr * g
        return float(J)

    def loss(self, idx):
        return float(self._loss(self.params, self.data["X"][idx], self.data["Y"][idx]))

    def infer(self):
        X, b = self.data["X"], self.wl.batch
        out = []
        for i in range(0, len(X), b):
            Z2 = self._logits(self.params, X[i:i + b])
            e = np.exp(Z2 - Z2.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        return np.concatenate(out)

    def _chain(self, x):
        h = x
        for _ in range(self.wl.n_ops // 4):
            h = 1 / (1 + self.anp.exp(-(h * 1.0001 + 0.1))) - 0.5
        return h

    def chain(self, x):
        return self.grad_chain(x)


class SklearnRunner(Runner):
    """MLPClassifier; weights copied in after a tiny partial_fit that creates them."""

    def __init__(self, wl, data):
        super().__init__(wl, data)
        from sklearn.neural_network import MLPClassifier
        if wl.kind not in ("train", "infer"):
            raise NotApplicable
        batch = wl.N if wl.batch is None else wl.batch
        self.clf = MLPClassifier(hidden_layer_sizes=(wl.M,), activation="logistic",
                                 solver="sgd", learning_rate="constant",
                                 learning_rate_init=wl.lr, momentum=0.0,
                                 nesterovs_momentum=False, alpha=0.0, batch_size=batch,
                                 shuffle=wl.shuffle, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(data["X"][:wl.K], data["y"][:wl.K], classes=np.arange(wl.K))

    def reset(self):
        p = self.data["params"]
        for mine, k in zip(self.clf.coefs_ + self.clf.intercepts_, ("W1", "W2", "b1", "b2")):
            mine[...] = p[k]

    def train(self, batches, lr):
        X, y = self.data["X"], self.data["y"]
        if len(batches) == 1:          # the correctness guard: one step on one batch
            X, y = X[batches[0]], y[batches[0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(self.wl.epochs if len(batches) > 1 else 1):
                self.clf.partial_fit(X, y)
        return float(self.clf.loss_)

    def loss(self, idx):
        proba = self.clf.predict_proba(self.data["X"][idx])
        return float(-np.log(proba[np.arange(len(idx)), self.data["y"][idx]]).mean())

    def infer(self):
        X, b = self.data["X"], self.wl.batch
        return np.concatenate([self.clf.predict_proba(X[i:i + b]) for i in range(0, len(X), b)])


class JaxRunner(Runner):
    """JAX on CPU as its tutorials write a compiled step: the whole SGD step (forward,
    value_and_grad, update) under one `jax.jit`, called with the batch as numpy arrays (gathered
    with numpy, as the numpy and tinygrad_mlp loops do), the loss read back (`float(J)`) every
    step as the other loops read theirs.

    W5 (the engine, per op) runs eagerly, `jax.grad` op by op: under jit the chain becomes one
    fused kernel and there is no per-op engine left to measure.
    """

    def __init__(self, wl, data):
        super().__init__(wl, data)
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        if wl.kind == "digits":
            raise NotApplicable
        if wl.kind == "chain":
            self.grad_chain = jax.grad(lambda x: self._chain(x).sum())
            return
        loss = self._loss

        def step(params, X, Y, lr):
            J, grads = jax.value_and_grad(loss)(params, X, Y)
            return J, [p - lr * g for p, g in zip(params, grads)]

        self.step = jax.jit(step)
        self.predict = jax.jit(lambda params, X: jax.nn.softmax(self._logits(params, X), axis=1))

    def reset(self):
        if self.wl.kind != "chain":
            keys = CONV_KEYS if self.wl.kind == "conv" else KEYS
            self.params = [self.jnp.asarray(self.data["params"][k]) for k in keys]

    def _logits(self, params, X):
        jax = self.jax
        if self.wl.kind != "conv":
            W1, b1, W2, b2 = params
            return jax.nn.sigmoid(X @ W1 + b1) @ W2 + b2
        c1w, c1b, c2w, c2b, fw, fb = params

        def conv_relu_pool(h, w, b):
            h = jax.lax.conv_general_dilated(h, w, (1, 1), "VALID") + b[:, None, None]
            return jax.lax.reduce_window(jax.nn.relu(h), -self.jnp.inf, jax.lax.max,
                                         (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

        h = conv_relu_pool(conv_relu_pool(X, c1w, c1b), c2w, c2b)
        return h.reshape(len(X), -1) @ fw + fb

    def _loss(self, params, X, Y):
        return -(Y * self.jax.nn.log_softmax(self._logits(params, X), axis=1)).sum() / len(X)

    def train(self, batches, lr):
        params, step, X, Y = self.params, self.step, self.data["X"], self.data["Y"]
        for idx in batches:
            J, params = step(params, X[idx], Y[idx], lr)
            J = float(J)
        self.params = params
        return J

    def loss(self, idx):
        return float(self._loss(self.params, self.data["X"][idx], self.data["Y"][idx]))

    def infer(self):
        X, b = self.data["X"], self.wl.batch
        return np.concatenate([np.asarray(self.predict(self.params, X[i:i + b]))
                               for i in range(0, len(X), b)])

    def _chain(self, x):
        h = x
        for _ in range(self.wl.n_ops // 4):
            h = self.jax.nn.sigmoid(h * 1.0001 + 0.1) - 0.5
        return h

    def chain(self, x):
        return np.asarray(self.grad_chain(self.jnp.asarray(x)))
