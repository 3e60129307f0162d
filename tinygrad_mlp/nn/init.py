"""Initialisers: each fills a Tensor (or ndarray) in place and returns it.

Random ones draw from `tm.get_generator()` (the generator `tm.manual_seed` seeds) in float64 and
store the values in the tensor's own dtype, so the same seed gives the same model in float32
and float64 up to rounding. A weight has the blog's shape (fan_in, fan_out) = (in, out).

    nn.init.he_normal(layer.weight)      # for ReLU networks
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygrad_mlp.tensor import Tensor, get_generator


def _array(tensor: Any) -> np.ndarray:
    array = tensor.data if isinstance(tensor, Tensor) else tensor   # no conversion: filled in place
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise TypeError(f"init: expected a float Tensor or ndarray to fill in place, got "
                        f"{type(tensor).__name__}")
    return array


def _fans(array: np.ndarray, name: str) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (in, out, …): trailing axes multiply both."""
    if array.ndim < 2:
        raise ValueError(f"{name}: needs a weight with at least 2 dimensions (in, out), got shape "
                         f"{array.shape}")
    receptive = int(np.prod(array.shape[2:]))
    return array.shape[0] * receptive, array.shape[1] * receptive


def _fill(tensor: Any, values: np.ndarray | float) -> Any:
    _array(tensor)[...] = values
    return tensor


def uniform(tensor: Any, low: float = 0.0, high: float = 1.0) -> Any:
    """U(low, high)."""
    array = _array(tensor)
    return _fill(tensor, get_generator().uniform(low, high, size=array.shape))


def normal(tensor: Any, mean: float = 0.0, std: float = 1.0) -> Any:
    """N(mean, std²)."""
    array = _array(tensor)
    return _fill(tensor, get_generator().normal(mean, std, size=array.shape))


def zeros(tensor: Any) -> Any:
    return _fill(tensor, 0.0)


def ones(tensor: Any) -> Any:
    return _fill(tensor, 1.0)


def constant(tensor: Any, value: float) -> Any:
    return _fill(tensor, value)


def xavier_uniform(tensor: Any, gain: float = 1.0) -> Any:
    """Glorot & Bengio (2010): U(−b, b) with b = gain·√(6 / (fan_in + fan_out)). The default."""
    fan_in, fan_out = _fans(_array(tensor), "xavier_uniform")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(tensor, -bound, bound)


def xavier_normal(tensor: Any, gain: float = 1.0) -> Any:
    """Glorot normal: N(0, σ²) with σ = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_array(tensor), "xavier_normal")
    return normal(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform(tensor: Any, gain: float = math.sqrt(2.0)) -> Any:
    """He et al. (2015) for ReLU nets: U(−b, b) with b = gain·√(3 / fan_in)."""
    fan_in, _ = _fans(_array(tensor), "kaiming_uniform")
    bound = gain * math.sqrt(3.0 / fan_in)
    return uniform(tensor, -bound, bound)


def kaiming_normal(tensor: Any, gain: float = math.sqrt(2.0)) -> Any:
    """He normal for ReLU nets: N(0, σ²) with σ = gain / √fan_in = √(2 / fan_in)."""
    fan_in, _ = _fans(_array(tensor), "kaiming_normal")
    return normal(tensor, 0.0, gain / math.sqrt(fan_in))


# Keras's names for the same initialisers.
glorot_uniform = xavier_uniform
glorot_normal = xavier_normal
he_uniform = kaiming_uniform
he_normal = kaiming_normal

__all__ = ["uniform", "normal", "zeros", "ones", "constant", "xavier_uniform", "xavier_normal",
           "kaiming_uniform", "kaiming_normal", "glorot_uniform", "glorot_normal", "he_uniform",
           "he_normal"]
