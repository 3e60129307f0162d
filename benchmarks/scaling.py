"""How cost grows with batch size: time per sample of one training epoch, batch 1 to full batch.

Two networks: the blog's (64-32-10, N = 2,000, digits-shaped) and the MNIST-shaped one
(784-128-10, N = 10,000). Small batches are Python-bound (a fixed cost per step, spread over
few samples); large ones are BLAS-bound (a cost per sample that the matrix products set).
Small batches run on the first 256·batch rows only, so batch 1 does not take minutes; full
batch runs 5 iterations. Each cell is timed like the workloads (one process, round-robin).
"""

from __future__ import annotations

import textwrap
from typing import Any

from benchmarks.workloads import Workload

NETWORKS = {"blog 64-32-10": (2_000, 64, 32, 10), "MNIST-shaped 784-128-10": (10_000, 784, 128, 10)}
BATCHES: tuple[int | None, ...] = (1, 4, 16, 64, 256, 1_024, None)   # None: full batch
IMPLS = ("numpy", "tinygrad_fit", "tinygrad_loop", "torch")
FULL_BATCH_ITERATIONS = 5


def workloads(quick: bool = False) -> list[Workload]:
    """One training workload per (network, batch size); --quick: the blog's, batch 1, 16, full."""
    out = []
    for net, (N, D, M, K) in NETWORKS.items():
        if quick and D != 64:
            continue
        for batch in (1, 16, None) if quick else BATCHES:
            rows = N if batch is None else min(N, (16 if quick else 256) * batch)
            out.append(Workload(f"S {net} batch {batch or 'full'}", net, "train", rows, D, M, K,
                                batch=batch, shuffle=batch is not None, lr=0.1,
                                epochs=FULL_BATCH_ITERATIONS if batch is None else 1))
    return out


def per_sample(wl: Workload, times: list[float]) -> tuple[float, float]:
    """(minimum, median) seconds per sample of a workload's round times."""
    import statistics
    samples = wl.N * wl.epochs
    return min(times) / samples, statistics.median(times) / samples


def table(wls: list[Workload], results: dict[str, Any],
          impls: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: network, batch, then µs per sample (minimum over the rounds) for each
    implementation with its ratio to numpy's minimum."""
    header = ["network", "batch"] + [f"{name} µs/sample" for name in impls]
    body = []
    for wl in wls:
        times = results[wl.key]["times"]
        base = per_sample(wl, times["numpy"])[0] if "numpy" in times else None
        row = [wl.title, str(wl.batch) if wl.batch else f"full ({wl.N:,})"]
        for name in impls:
            if name not in times:
                row.append(results[wl.key]["status"].get(name, "–"))
                continue
            best = per_sample(wl, times[name])[0]
            row.append(f"{best * 1e6:.3g}" + (f" ({best / base:.2f}×)" if base else ""))
        body.append(row)
    return header, body


def figure(wls: list[Workload], results: dict[str, Any], impls: list[str], path: str,
           caption: str) -> None:
    """The log-log figure: µs per sample against batch size, one panel per network."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    nets = list(dict.fromkeys(wl.title for wl in wls))
    fig, axes = plt.subplots(1, len(nets), figsize=(6 * len(nets), 4.4), squeeze=False)
    for ax, net in zip(axes[0], nets):
        mine = [wl for wl in wls if wl.title == net]
        sizes = [wl.batch or wl.N for wl in mine]
        for name in impls:
            points = [(size, per_sample(wl, results[wl.key]["times"][name])[0] * 1e6)
                      for size, wl in zip(sizes, mine) if name in results[wl.key]["times"]]
            if points:
                ax.loglog(*zip(*points), marker="o", label=name)
        ax.set_xticks(sizes, [str(wl.batch) if wl.batch else f"full\n{wl.N:,}" for wl in mine])
        ax.minorticks_off()
        ax.set_title(net)
        ax.set_xlabel("batch size")
        ax.set_ylabel("µs per sample (one SGD epoch)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    fig.suptitle(textwrap.fill(caption, 60 * len(nets)), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
