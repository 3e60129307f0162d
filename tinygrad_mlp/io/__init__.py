"""Files: parameters as arrays (arrays.py: `save`, `load`), and whole models (architecture + weights).

Every file is an ordinary .npz (a zip of .npy members), written atomically and read without pickle.
"""

from tinygrad_mlp.io.arrays import FORMAT_KEY, FORMAT_VERSION, load, save, write_atomically

__all__ = ["save", "load", "write_atomically", "FORMAT_KEY", "FORMAT_VERSION"]
