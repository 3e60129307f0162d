"""Files: parameters as arrays (arrays.py: `save`, `load`), and whole models (architecture + weights).

Every file is an ordinary .npz (a zip of .npy members), written atomically and read without pickle.
"""

from tinygrad_mlp.io.arrays import FORMAT_KEY, FORMAT_VERSION, load, save, write_atomically
from tinygrad_mlp.io.models import load_model, save_model

__all__ = ["save", "load", "save_model", "load_model", "write_atomically", "FORMAT_KEY",
           "FORMAT_VERSION"]
