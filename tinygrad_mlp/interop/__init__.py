"""Models from other frameworks, in: `from_keras` reads Keras 3 `.keras` and Keras 2/3 HDF5
files into an `nn.Model` (keras.py). Each reader treats its file as hostile until checked."""

from tinygrad_mlp.interop.keras import SUPPORTED_LAYERS, from_keras

__all__ = ["from_keras", "SUPPORTED_LAYERS"]
