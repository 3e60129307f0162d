"""Model-file bombs (issue 19, items 1–2): small files that made `tm.load_model` hang or exhaust
memory, and how long it takes, and how much memory, to refuse each.

    OPENBLAS_NUM_THREADS=1 python -m benchmarks.model_file_bombs              # this checkout
    OPENBLAS_NUM_THREADS=1 python -m benchmarks.model_file_bombs --package DIR --limit-gb 4

Each file is loaded in a child process under an address-space limit (RLIMIT_AS) and a
timeout; the child reports its seconds inside `load_model`, its peak resident memory and the
outcome (the exception's type and first words). tests/test_model_file_bombs.py asserts the
outcome; this prints the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np

CHILD = textwrap.dedent("""
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
    import tinygrad_mlp as tm
    start = time.perf_counter()
    try:
        tm.load_model(sys.argv[1])
        outcome = "loaded"
    except BaseException as error:
        outcome = f"{{type(error).__name__}}: {{error}}"
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{{seconds:.3f}} {{peak:.0f}} {{outcome}}")
""")


def write_model_file(path: Path, architecture: dict | str, arrays: dict | None = None) -> Path:
    """A model file as save_model writes one, with any architecture (or JSON text) and arrays."""
    text = architecture if isinstance(architecture, str) else json.dumps(architecture)
    state = {"__tinygrad_mlp_format__": np.array(1, dtype=np.int64), **(arrays or {}),
             "__tinygrad_mlp_model__": np.frombuffer(text.encode(), dtype=np.uint8)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, array in state.items():
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            archive.writestr(key + ".npy", buffer.getvalue())
    return path


def doubling(depth: int, leaf: dict) -> dict:
    """Each level a Sequential holding the previous level twice (the second time by reference):
    a few bytes per level, 2^depth module names."""
    spec = dict(leaf, id=0, path=".".join(["0"] * depth))
    for level in range(1, depth + 1):
        spec = {"class": "Sequential", "id": level, "path": ".".join(["0"] * (depth - level)),
                "config": {"layers": [{"module": spec}, {"module": {"ref": level - 1}}]}}
    return {"format": 1, "model": spec}


def linear(number: int, path: str, size: int) -> dict:
    return {"class": "Linear", "id": number, "path": path,
            "config": {"in_features": size, "out_features": size, "bias": True, "dtype": None}}


def sequential(layers: list) -> dict:
    return {"format": 1, "model": {"class": "Sequential", "id": 10**6, "path": "",
                                   "config": {"layers": layers}}}


def bombs(folder: Path) -> dict[str, Path]:
    """name -> a model file that hung or exhausted memory in load_model before issue 19 (format
    1, which every version reads)."""
    leaf = {"class": "Linear",
            "config": {"in_features": 2, "out_features": 2, "bias": True, "dtype": None}}
    weights = {("0." * 40) + "weight": np.ones((2, 2), np.float32),
               ("0." * 40) + "bias": np.ones(2, np.float32)}
    shared = [{"module": linear(0, "0", 2000)}] + [{"module": {"ref": 0}}] * 9999
    return {
        "refs doubling 40 deep": write_model_file(
            folder / "a.npz", doubling(40, {"class": "Sigmoid", "config": {}})),
        "refs doubling 40 deep, weighted leaf": write_model_file(
            folder / "b.npz", doubling(40, leaf), weights),
        "four Linear(8000, 8000) without arrays": write_model_file(
            folder / "c.npz", sequential([{"module": linear(i, str(i), 8000)}
                                          for i in range(4)])),
        "10,000 refs to one Linear(2000, 2000)": write_model_file(
            folder / "d.npz", sequential(shared),
            {"0.weight": np.zeros((2000, 2000), np.float32),
             "0.bias": np.zeros(2000, np.float32)}),
    }


def measure(path: Path, limit: int, timeout: float, package: str) -> dict:
    """load_model(path) in a child under `limit` bytes of address space: seconds, peak MB,
    outcome (None for each when it ran out of time), and the child's stderr."""
    environment = dict(os.environ, PYTHONPATH=package, OPENBLAS_NUM_THREADS="1")
    try:
        child = subprocess.run([sys.executable, "-c", CHILD.format(limit=limit), str(path)],
                               capture_output=True, text=True, timeout=timeout, env=environment,
                               cwd=package)            # ("-c" puts the cwd first on sys.path)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "peak_mb": None, "outcome": None, "stderr": ""}
    seconds, peak, outcome = (child.stdout.split(" ", 2) + ["", "", ""])[:3]
    return {"seconds": float(seconds) if seconds else None,
            "peak_mb": float(peak) if peak else None, "outcome": outcome.strip(),
            "stderr": child.stderr, "returncode": child.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default=str(Path(__file__).resolve().parents[1]),
                        help="the folder holding the tinygrad_mlp to measure (default: this one)")
    parser.add_argument("--limit-gb", type=float, default=4.0, help="address-space limit")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        for name, path in bombs(Path(folder)).items():
            result = measure(path, int(args.limit_gb * 2**30), args.timeout, args.package)
            if result["outcome"] is None:
                print(f"{name:<42} still running after {args.timeout:.0f} s (killed)")
                continue
            print(f"{name:<42} {result['seconds']:7.3f} s  peak {result['peak_mb']:7.0f} MB  "
                  f"{os.path.getsize(path):>10,} bytes  {result['outcome'][:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
