"""Shared by the suite without importing numpy: BLAS thread setup and the Runner interface."""

from __future__ import annotations

import os
import sys
from typing import Any

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def set_threads_from_argv(argv: list[str]) -> None:
    """Set the BLAS thread variables from `--threads N` (default 1), if numpy is not loaded yet,
    and with one thread keep JAX's XLA CPU backend on one thread too (XLA_FLAGS).

    BLAS reads them once, when numpy is first imported; afterwards they change nothing.
    """
    threads = "1"
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            threads = argv[i + 1]
        elif arg.startswith("--threads="):
            threads = arg.split("=", 1)[1]
    if "numpy" not in sys.modules:
        for name in THREAD_VARIABLES:
            os.environ[name] = threads
    if "jax" not in sys.modules and threads == "1":   # XLA's CPU client reads this at import
        flags = os.environ.get("XLA_FLAGS", "")
        if "intra_op_parallelism_threads" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1").strip()


class NotApplicable(Exception):
    """This implementation has no version of this workload (shown as "n/a" in the table)."""


class Runner:
    """One implementation prepared for one workload.

    `reset()` puts the shared initial weights back (untimed); `run()` does the timed work and
    returns its result (last loss, predictions, or the chain's input gradient); `check()` is the
    correctness guard's value: the loss on the first batch after one step on it.
    """

    def __init__(self, wl: Any, data: dict[str, Any]) -> None:
        self.wl, self.data = wl, data

    def reset(self) -> None:
        pass

    def run(self) -> Any:
        kind = self.wl.kind
        if kind in ("train", "conv"):
            return self.train(self.data["batches"], self.wl.lr)
        if kind == "infer":
            return self.infer()
        if kind == "chain":
            return self.chain(self.data["x"])
        return self.digits()

    def check(self) -> Any:
        """Training kinds (train, conv): the loss on the first batch after one step on it;
        the others: run()."""
        self.reset()
        if self.wl.kind not in ("train", "conv"):
            return self.run()
        first = self.data["batches"][0]
        self.train([first], self.wl.lr)
        return self.loss(first)

    def train(self, batches: list, lr: float) -> float:
        raise NotApplicable

    def loss(self, idx: Any) -> float:
        raise NotApplicable

    def infer(self) -> Any:
        raise NotApplicable

    def chain(self, x: Any) -> Any:
        raise NotApplicable

    def digits(self) -> Any:
        raise NotApplicable
