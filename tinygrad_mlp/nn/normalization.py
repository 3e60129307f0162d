"""Normalisation layers: BatchNorm1d, BatchNorm2d (per channel, over the batch) and LayerNorm
(per sample, over the trailing axes), with PyTorch's arguments, parameters and buffers."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tinygrad_mlp import ops
from tinygrad_mlp._checks import choice, finite_real, is_int, positive_int, probability
from tinygrad_mlp.nn.module import Module, cast_input
from tinygrad_mlp.tensor import Tensor, get_default_dtype


def _affine(shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """weight = 1 and bias = 0 of `shape`, in the default dtype, named for graph drawings."""
    dtype = get_default_dtype()
    return (Tensor(np.ones(shape, dtype=dtype), requires_grad=True, name="weight"),
            Tensor(np.zeros(shape, dtype=dtype), requires_grad=True, name="bias"))


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share; they differ only in the input ranks they take.

    Training: each channel is standardised with the batch's mean and (biased) variance, and the
    buffers follow PyTorch: running_mean and running_var (unbiased, m/(m − 1)) move by
    `momentum` (None: a cumulative average), num_batches_tracked counts the batches. eval():
    the running statistics are used instead. Then weight · x̂ + bias (if affine).
    """

    ranks: tuple[int, ...] = ()
    shapes: str = ""
    preserves_shape = True
    # ops.BatchNorm updates the running statistics inside forward, so a TrainStep replay updates
    # them too (and the eager pass checking its first replay restores them).

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = positive_int("num_features", num_features, owner=name)
        self.eps = finite_real("eps", eps, owner=name, low=0.0, low_open=True)
        self.momentum = None if momentum is None else probability(
            "momentum", momentum, owner=name, expected="a number in [0, 1] or None")
        self.affine = choice("affine", affine, (True, False), owner=name)
        if affine:
            self.weight, self.bias = _affine((self.num_features,))
        else:
            self.weight = self.bias = None
        dtype = get_default_dtype()
        self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    @classmethod
    def state_spec(cls, config: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
        """weight and bias (if affine), running_mean and running_var, all (num_features,) in
        the dtype it is built in; num_batches_tracked, an int64 scalar."""
        arguments = cls.config_arguments(config)
        shape = (positive_int("num_features", arguments["num_features"], owner=cls.__name__),)
        spec = {"weight": (shape, None), "bias": (shape, None)} if arguments["affine"] else {}
        return {**spec, "running_mean": (shape, None), "running_var": (shape, None),
                "num_batches_tracked": ((), np.dtype(np.int64))}

    def reset_running_stats(self) -> None:
        self.running_mean.data[...] = 0
        self.running_var.data[...] = 1
        self.num_batches_tracked.data[...] = 0

    def forward(self, X: Any) -> Tensor:
        X = cast_input(X, self.running_mean.data.dtype)      # computes in its own dtype
        X = X if isinstance(X, Tensor) else Tensor(X)
        if X.ndim not in self.ranks or X.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expected input of "
                             f"shape {self.shapes} with C={self.num_features}, got {X.shape}")
        out = ops.BatchNorm.apply(
            X, running_mean=self.running_mean.data, running_var=self.running_var.data,
            num_batches_tracked=self.num_batches_tracked.data, training=self.training,
            momentum=self.momentum, eps=self.eps)
        if not self.affine:
            return out
        channel = (self.num_features,) + (1,) * (X.ndim - 2)
        return out * self.weight.reshape(channel) + self.bias.reshape(channel)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C (PyTorch's)."""

    ranks, shapes = (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, per channel C (PyTorch's)."""

    ranks, shapes = (4,), "(N, C, H, W)"


class LayerNorm(Module):
    """Each sample standardised over its last axes, of shape `normalized_shape` (an int or a
    tuple), with the biased variance; then weight · x̂ + bias (if elementwise_affine), both of
    shape normalized_shape (PyTorch's)."""

    preserves_shape = True

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True) -> None:
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = finite_real("eps", eps, owner="LayerNorm", low=0.0, low_open=True)
        self.elementwise_affine = choice("elementwise_affine", elementwise_affine,
                                         (True, False), owner="LayerNorm")
        if elementwise_affine:
            self.weight, self.bias = _affine(self.normalized_shape)
        else:
            self.weight = self.bias = None

    @classmethod
    def state_spec(cls, config: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
        """weight and bias of shape normalized_shape (if elementwise_affine)."""
        arguments = cls.config_arguments(config)
        shape = _normalized_shape(arguments["normalized_shape"])
        return ({"weight": (shape, None), "bias": (shape, None)}
                if arguments["elementwise_affine"] else {})

    def forward(self, X: Any) -> Tensor:
        if self.elementwise_affine:
            X = cast_input(X, self.weight.data.dtype)        # computes in the weight's dtype
        X = X if isinstance(X, Tensor) else Tensor(X)
        ndim = len(self.normalized_shape)
        if X.ndim < ndim or X.shape[X.ndim - ndim:] != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape} expected input of shape (..., "
                             f"{', '.join(map(str, self.normalized_shape))}), got {X.shape}")
        out = ops.LayerNorm.apply(X, ndim=ndim, eps=self.eps)
        if not self.elementwise_affine:
            return out
        return out * self.weight + self.bias

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


def _normalized_shape(normalized_shape: Any) -> tuple[int, ...]:
    """LayerNorm's normalized_shape, an int or a non-empty sequence of them, as a tuple."""
    shape = (normalized_shape,) if is_int(normalized_shape) else normalized_shape
    if not isinstance(shape, (tuple, list)) or not shape:
        raise ValueError(f"LayerNorm: normalized_shape must be a positive int or a non-empty "
                         f"tuple of them, got {normalized_shape!r}")
    return tuple(positive_int("normalized_shape", n, owner="LayerNorm") for n in shape)
