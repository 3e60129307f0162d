"""docs/tutorial.ipynb runs top to bottom in a real Jupyter kernel, and its pictures display."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def outputs_of(notebook, needle):
    """The display data of the first code cell whose source contains `needle`."""
    cell = next(cell for cell in notebook.cells
                if cell.cell_type == "code" and needle in cell.source)
    return [output.get("data", {}) for output in cell.outputs
            if output.output_type in ("execute_result", "display_data")]


def test_the_tutorial_runs_top_to_bottom_and_shows_its_pictures(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT),
                                                                   os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")       # jupyter_core's paths, no warning
    notebook = nbformat.read(ROOT / "docs" / "tutorial.ipynb", as_version=4)
    for cell in notebook.cells:                     # judge this run's outputs, not stored ones
        if cell.cell_type == "code":
            cell.outputs = []
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                                # any cell's error raises CellExecutionError

    drawing = outputs_of(notebook, "viz.draw(")
    assert drawing and ("<svg" in drawing[0].get("image/svg+xml", "")
                        or "<svg" in drawing[0].get("text/html", ""))
    for plot in ("viz.plot_compare(", "viz.plot_history(", "viz.plot_weights("):
        shown = outputs_of(notebook, plot)
        assert shown and shown[-1]["image/png"], plot
    history = outputs_of(notebook, "history = tm.fit(")
    assert "<table" in history[-1]["text/html"] and "val_accuracy" in history[-1]["text/html"]
    assert any("application/vnd.jupyter.widget-view+json" in shown for shown in history)  # tqdm
    checks = "".join(output.get("text", "") for cell in notebook.cells
                     if cell.cell_type == "code" and "reference.deltas" in cell.source
                     for output in cell.outputs)
    assert checks.count("True") == 4 and "False" not in checks
    assert list(tmp_path.iterdir()) == []                     # the tutorial writes no files
