"""W6: `tinygrad-mlp train`'s default run on the bundled digits, end to end, and its numpy twin.

tinygrad_mlp: the CLI's own training function, in process (`cli.main(["train", "--quiet"])`,
its output captured): load, split, build, fit, evaluate. numpy: the same data, split and
hyperparameters (the CLI's mini-batch defaults, SGD with PyTorch-style momentum) written by
hand. Both return the held-out accuracy, which the correctness guard compares.
"""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np

from benchmarks.impl_numpy import forward

# The CLI's defaults, used when cli.py does not expose them: batch, epochs, lr, momentum, M.
FALLBACK = {"batch": 16, "epochs": 30, "lr": 0.5, "momentum": 0.9, "hidden": 64}


def config(wl) -> dict:
    """The CLI's default settings for `train` (cross-entropy, mini-batch), epochs overridden in
    --quick. Read from cli.DEFAULTS (or the older cli.METHODS) and the parser's --hidden."""
    settings = dict(FALLBACK)
    try:
        from tinygrad_mlp import cli
        if isinstance(getattr(cli, "DEFAULTS", None), dict):
            values = cli.DEFAULTS[("ce", "minibatch")]
            settings.update(zip(("batch", "epochs", "lr", "momentum"), values))
        elif isinstance(getattr(cli, "METHODS", None), dict):
            settings.update(zip(("batch", "epochs", "lr"), cli.METHODS["minibatch"]))
            settings["momentum"] = getattr(cli, "DEFAULT_MOMENTUM", settings["momentum"])
        settings["hidden"] = cli.build_parser().parse_args(["train"]).hidden
    except (ImportError, AttributeError, KeyError, TypeError, ValueError, SystemExit):
        pass
    if wl.epochs:
        settings["epochs"] = wl.epochs
    return settings


def run_cli(wl) -> float:
    """`tinygrad-mlp train --quiet` in process; returns its test accuracy."""
    from benchmarks.common import NotApplicable
    from tinygrad_mlp import cli
    argv = ["train", "--quiet", "--epochs", str(config(wl)["epochs"])]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    found = re.search(r"test accuracy ([0-9.]+)", out.getvalue())
    if code != 0 or not found:
        raise NotApplicable(f"tinygrad-mlp {' '.join(argv)}: no test accuracy (exit {code})")
    return float(found.group(1))


def run_numpy(wl, seed: int = 0) -> float:
    """The same training written by hand; returns the test accuracy."""
    from tinygrad_mlp.data import train_test_split
    from tinygrad_mlp.datasets import load_digits
    c = config(wl)
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X / np.float32(16), y, 0.25, seed=seed)
    N, D, M, K = len(X_train), X_train.shape[1], c["hidden"], 10
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in ((D, M), (M, K)):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        params += [rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                   np.zeros(fan_out, np.float32)]
    W1, b1, W2, b2 = params
    velocity = [np.zeros_like(p) for p in params]
    Y_train = np.eye(K, dtype=np.float32)[y_train]
    lr, mu = np.float32(c["lr"]), np.float32(c["momentum"])
    for _ in range(c["epochs"]):
        order = rng.permutation(N)
        for i in range(0, N, c["batch"]):
            idx = order[i:i + c["batch"]]
            Xb, Yb, n = X_train[idx], Y_train[idx], len(idx)
            a1, a2 = forward(Xb, W1, b1, W2, b2)
            J = -np.log(a2[np.arange(n), y_train[idx]]).mean()  # noqa: F841  (computed, as fit does)
            delta2 = (a2 - Yb) / n
            delta1 = (delta2 @ W2.T) * a1 * (1 - a1)
            grads = (Xb.T @ delta1, delta1.sum(axis=0), a1.T @ delta2, delta2.sum(axis=0))
            for p, v, g in zip(params, velocity, grads):
                v *= mu
                v += g
                p -= lr * v
    return float((forward(X_test, W1, b1, W2, b2)[1].argmax(axis=1) == y_test).mean())
