"""The examples' one table: each network's held-out accuracy on seeds 0 .. N-1, and the median."""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

import numpy as np


def compare(description: str, networks: Sequence[str],
            held_out_accuracy: Callable[[str, int], float]) -> None:
    """Parse --seeds (default 5), then print one row per network as it finishes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    args = parser.parse_args()
    width = max(len("network"), *map(len, networks)) + 1
    print(f"{'network':{width}} " + " ".join(f"{'seed ' + str(s):>8}" for s in range(args.seeds))
          + "  median")
    for kind in networks:
        accuracies = [held_out_accuracy(kind, seed) for seed in range(args.seeds)]
        print(f"{kind:{width}} " + " ".join(f"{a:8.4f}" for a in accuracies)
              + f"  {np.median(accuracies):.4f}", flush=True)
