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


def test_numpy_conv_baseline_matches_a_direct_convolution_and_its_numeric_gradient():
    from benchmarks import conv
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5))
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    out, cols = conv.conv_forward(x, w, b)
    direct = np.zeros((2, 4, 4, 3))
    for i in range(4):
        for j in range(3):
            direct[:, :, i, j] = np.einsum("nchw,ochw->no", x[:, :, i:i + 3, j:j + 3], w) + b
    assert np.allclose(out, direct)
    grad = rng.standard_normal(out.shape)       # d(sum(out · grad)) by finite differences
    dw, db, dx = conv.conv_backward(grad, cols, w, x.shape)
    eps = 1e-6
    for array, analytic in ((x, dx), (w, dw)):
        index = tuple(rng.integers(0, n) for n in array.shape)
        old = array[index]
        array[index] = old + eps
        up = (conv.conv_forward(x, w, b)[0] * grad).sum()
        array[index] = old - eps
        down = (conv.conv_forward(x, w, b)[0] * grad).sum()
        array[index] = old
        assert np.isclose(analytic[index], (up - down) / (2 * eps), rtol=1e-5)
    assert np.allclose(db, grad.sum(axis=(0, 2, 3)))


def test_scaling_study_reports_time_per_sample_for_each_batch_size(tmp_path, capsys):
    figure = tmp_path / "scaling.png"
    code = run.main(["--quick", "--only", "S", "--impl", "numpy,tinygrad_loop", "--repeat", "1",
                     "--figure", str(figure)])
    out = capsys.readouterr().out
    assert code == 0 and "WARNING S" not in out    # the guard: the same one-step loss as numpy
    rows = [line for line in out.splitlines() if line.startswith("blog 64-32-10")]
    assert [line.split()[2] for line in rows] == ["1", "16", "full"]
    assert all("(1.00×)" in line and line.count("×") == 2 for line in rows)
    assert figure.stat().st_size > 10_000


def test_the_face_video_benchmark_writes_its_fps_to_the_json_output(tmp_path, capsys):
    import json

    import pytest
    pytest.importorskip("cv2", reason="the video extra (OpenCV) runs the face pipeline")
    out = tmp_path / "bench.json"
    assert run.main(["--quick", "--only", "V", "--json", str(out), "--no-memory"]) == 0
    result = json.loads(out.read_text())["video"]
    assert result["frame_size"] == [640, 480] and result["frames"] == 8
    assert result["fps_median"] > 0 and result["ms_detect"] < result["ms_per_frame"]
    assert "V real-time faces, pretrained mini-Xception: " in capsys.readouterr().out


def test_vision_workloads_reach_the_json_table_with_ratios_to_torch(tmp_path, capsys):
    import json

    import pytest
    pytest.importorskip("torch", reason="W8/W9's ratios are to the PyTorch twin from to_torch")
    out = tmp_path / "bench.json"
    assert run.main(["--quick", "--only", "W8,W9", "--impl", "tinygrad,torch", "--repeat", "1",
                     "--no-memory", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["workloads"]) == {"W8.1", "W8.64", "W9"}
    rows = {(r[0].split()[0], r[1]): r for r in report["table"]["rows"]}
    for key in ("W8.1", "W8.64", "W9"):
        assert rows[key, "torch"][4] == "1.00×" and rows[key, "tinygrad_loop"][4].endswith("×")
        assert len(report["workloads"][key]["times"]["tinygrad_loop"]) >= 1
    assert "(ratios to torch)" in rows["W8.1", "tinygrad_loop"][0]
    assert ("W9", "numpy") not in rows                # no numpy version: no row, no ratio to it
    out = capsys.readouterr().out
    assert "WARNING W8" not in out and "WARNING W9" not in out   # torch's outputs and loss
