"""Per-sample shape layers: Reshape and Permute (Keras's), the batch axis always kept.

    nn.Reshape((4, 4, 2))(X)       # X (N, 32) → (N, 4, 4, 2)
    nn.Permute((2, 3, 1))(X)       # X (N, C, H, W) → (N, H, W, C)

`tm.from_keras` uses them where a Keras model relies on channels-last order (a Reshape, a
flattened image read as Keras laid it out).
"""

from __future__ import annotations

from typing import Any, Sequence

from tinygrad_mlp import ops
from tinygrad_mlp._checks import fail, is_int
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.tensor import Tensor


class Reshape(Module):
    """Each sample reshaped to `shape` (ints ≥ 1, at most one −1 for "the rest"), in the
    sample's own (C order) element order, like Keras's Reshape(target_shape)."""


    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        if (not isinstance(shape, (tuple, list)) or not shape
                or not all(is_int(s) and (s >= 1 or s == -1) for s in shape)
                or sum(s == -1 for s in shape) > 1):
            fail("shape", shape, "a non-empty tuple of ints >= 1 (one may be -1)", "Reshape")
        self.shape = tuple(int(s) for s in shape)

    def forward(self, X: Any) -> Tensor:
        X = X if isinstance(X, Tensor) else Tensor(X)
        return ops.Reshape.apply(X, shape=(X.shape[0], *self.shape))

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Permute(Module):
    """Each sample's axes reordered: `dims` numbers them from 1, the batch axis not counted
    (Keras's Permute), so (2, 3, 1) turns (N, C, H, W) into (N, H, W, C)."""


    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        if (not isinstance(dims, (tuple, list)) or not all(is_int(d) for d in dims)
                or sorted(dims) != list(range(1, len(dims) + 1))):
            fail("dims", dims, "a permutation of 1 … k (the sample's axes)", "Permute")
        self.dims = tuple(int(d) for d in dims)

    def forward(self, X: Any) -> Tensor:
        X = X if isinstance(X, Tensor) else Tensor(X)
        if X.ndim != len(self.dims) + 1:
            raise ValueError(f"Permute{self.dims} expected samples of {len(self.dims)} axes, "
                             f"got input of shape {X.shape}")
        return ops.Transpose.apply(X, axes=(0, *self.dims))

    def extra_repr(self) -> str:
        return f"dims={self.dims}"
