"""Smoke tests for the benchmark harness (benchmarks/): it runs and reports. No timing assertions."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # plain `pytest`

from benchmarks import run  # noqa: E402
from benchmarks.impl_numpy import NumpyRunner  # noqa: E402
from benchmarks.workloads import Workload, flops, make_data  # noqa: E402


def test_one_workload_runs_and_produces_text_and_markdown_tables(tmp_path, capsys):
    report = tmp_path / "bench.md"
    code = run.main(["--quick", "--only", "W5", "--impl", "numpy,tinygrad", "--repeat", "1",
                     "--no-memory", "--markdown", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    rows = {name: line for line in out.splitlines() if line.startswith("W5")
            for name in ("numpy", "tinygrad_loop", "tinygrad_fit") if f"  {name}  " in line}
    assert "1.00×" in rows["numpy"] and "×" in rows["tinygrad_loop"]
    assert "tinygrad_fit" not in rows             # fit has no version of the bare engine chain
    assert "WARNING W5" not in out                # same gradient as the hand-written backward
    markdown = report.read_text()
    assert "| W5 engine: elementwise chain | numpy |" in markdown
    assert "Command: `python -m benchmarks --quick --only W5" in markdown


def test_correctness_guard_flags_an_implementation_doing_different_math():
    wl = Workload("W2", "per-sample SGD", "train", 20, 8, 4, 3, batch=1, shuffle=True, lr=0.1)

    class WrongRate(NumpyRunner):
        def train(self, batches, lr):
            return super().train(batches, 2 * lr)

    data = make_data(wl)
    lines = run.correctness_guard(wl, {"numpy": NumpyRunner(wl, data),
                                       "same": NumpyRunner(wl, data),
                                       "wrong": WrongRate(wl, data)})
    assert len(lines) == 1 and lines[0].startswith("WARNING W2 wrong:")


def test_flop_count_matches_the_stated_formula():
    wl = run.workloads()["W1"]            # 784-128-10, 10,000 rows, one epoch: the 4.1 GFLOP
    N, D, M, K = 10_000, 784, 128, 10
    forward = 2 * N * (D * M + M * K)
    assert flops(wl) == forward + (2 * forward - 2 * N * D * M)
    assert np.isclose(flops(wl) / 1e9, 4.09, atol=0.01)
