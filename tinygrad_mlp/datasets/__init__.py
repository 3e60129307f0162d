"""Data sets for the blog's path: bundled 8×8 digits, MNIST-format IDX files, FER2013, toy sets.

`load_digits()` needs nothing but this package: the digits ship inside it as `digits.npz`.

Credit: the 8×8 digits are the UCI Machine Learning Repository's "Optical Recognition of
Handwritten Digits" data set by E. Alpaydin and C. Kaynak (1998), licensed CC BY 4.0
(https://doi.org/10.24432/C50P49), in the 1,797-image copy distributed with scikit-learn
(BSD-3-Clause), converted once to a compressed npz (uint8 values, same order).
"""

from __future__ import annotations

import os

import numpy as np

from tinygrad_mlp.data import one_hot, train_test_split

__all__ = ["load_digits", "one_hot", "train_test_split"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8×8 handwritten digits: X float32 (1797, 64) of raw pixel counts 0–16, y int64 0–9.

    Each row is an 8×8 image read row by row (`X[i].reshape(8, 8)`); scale with X / 16 or
    `tm.data.standardize`. About 180 images per digit.
    """
    with np.load(os.path.join(_HERE, "digits.npz"), allow_pickle=False) as archive:
        X = archive["images"].astype(np.float32)
        y = archive["labels"].astype(np.int64)
    return X, y
