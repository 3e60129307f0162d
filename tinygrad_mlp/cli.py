"""Command line: `tinygrad-mlp` and `python -m tinygrad_mlp` (placeholder until the training loop lands)."""

from __future__ import annotations

import sys

import numpy as np

import tinygrad_mlp as tm

COMMANDS = ("train", "compare", "graph", "explain")


def _demo_train() -> int:
    """The blog's 2-3-1 sigmoid network learning XOR by full-batch gradient descent."""
    tm.manual_seed(0)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    Y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    rng = tm.get_generator()
    W1 = tm.Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    W2 = tm.Tensor(rng.standard_normal((3, 1)).astype(np.float32), requires_grad=True)
    for epoch in range(2001):
        a2 = (X @ W1).sigmoid() @ W2
        a2 = a2.sigmoid()
        J = ((a2 - Y) ** 2).sum() / (2 * len(X))
        W1.grad = W2.grad = None
        J.backward()
        for W in (W1, W2):
            W.data -= 2.0 * W.grad
        if epoch % 400 == 0:
            print(f"epoch {epoch:4d}  cost J = {J.item():.5f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: tinygrad-mlp {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    if argv[0] == "train":
        return _demo_train()
    print(f"tinygrad-mlp {argv[0]}: not available yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
