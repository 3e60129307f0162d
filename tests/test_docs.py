"""The documentation is tested, not trusted.

- Every ```python block of README.md and docs/**/*.md runs, page by page in one namespace (the
  snippets of a page continue one another, like a notebook's cells), in a scratch folder; a
  block followed by "Output:" and a plain block must print that output (the same words and
  layout; numbers equal up to their printed digits).
- Every docstring example (`>>>`) of the package runs (doctest).
- `mkdocs build --strict` passes, and the API reference shows every public name.
- The README stays short, and its headline benchmark figure is the one the results file holds.
"""

from __future__ import annotations

import doctest
import http.server
import importlib
import json
import pathlib
import pkgutil
import re
import shutil
import subprocess
import sys
import threading

import pytest

import tinygrad_mlp as tm

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```\n(\nOutput:\n\n```[a-z]*\n(.*?)^```\n)?", re.S | re.M)
NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")
OPTIONAL = {"torch", "onnx", "onnxruntime", "cv2", "keras", "jax", "h5py", "matplotlib",
            "skimage", "hypothesis"}


def blocks(page: pathlib.Path) -> list[tuple[str, str | None]]:
    """(code, the output shown after it or None) for every python block of a page."""
    return [(code, shown if marker else None)
            for code, marker, shown in BLOCK.findall(page.read_text(encoding="utf-8"))]


def same_output(printed: str, shown: str) -> bool:
    """The same words and layout, numbers equal to the digits shown (BLAS rounding differs)."""
    if NUMBER.sub("#", printed).split() != NUMBER.sub("#", shown).split():
        return False
    return all(float(a) == pytest.approx(float(b), rel=1e-3, abs=5e-3)
               for a, b in zip(NUMBER.findall(printed), NUMBER.findall(shown)))


@pytest.fixture
def local_mnist_mirror(monkeypatch, tmp_path):
    """The Data guide's `fetch("mnist")` against a server on 127.0.0.1 serving small generated
    IDX files, their checksums in place of the real ones: the page's code runs unchanged."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_cli import mnist_like, write_idx
    from tinygrad_mlp.datasets import download
    served = {}
    for kind, n, seed in (("train", 60, 1), ("t10k", 20, 2)):
        images, labels = mnist_like(n, seed)
        for what, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{kind}-{what}-ubyte.gz"
            write_idx(tmp_path / name, array)
            served[name] = (tmp_path / name).read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = served.get(self.path.rsplit("/", 1)[-1])
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import hashlib
    checksums = {name: hashlib.md5(body).hexdigest() for name, body in served.items()}
    monkeypatch.setitem(download.CHECKSUMS, "mnist", {**download.CHECKSUMS["mnist"], **checksums})
    monkeypatch.setenv("TINYGRAD_MLP_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("TINYGRAD_MLP_DATA", str(tmp_path / "cache"))
    yield
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs_and_prints_what_it_shows(page, tmp_path, monkeypatch, capsys,
                                                          request):
    if page.name == "data.md":
        request.getfixturevalue("local_mnist_mirror")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()                  # pages draw into docs/: here, a scratch copy
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for number, (code, shown) in enumerate(blocks(page), 1):
        where = f"{page.relative_to(ROOT)}, python block {number}"
        try:
            exec(compile(code, where, "exec"), namespace)
        except ModuleNotFoundError as missing:
            if missing.name.split(".")[0] in OPTIONAL:
                pytest.skip(f"{where} needs {missing.name}, which is not installed")
            raise
        printed = capsys.readouterr().out
        if shown is not None:
            assert same_output(printed, shown), (
                f"{where} printed\n{printed}\nbut the page shows\n{shown}")


def package_modules() -> list[str]:
    names = ["tinygrad_mlp"]
    for info in pkgutil.walk_packages(tm.__path__, "tinygrad_mlp."):
        if not info.name.endswith("__main__"):          # running it would start the CLI
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", package_modules())
def test_docstring_examples_run(name):
    try:
        module = importlib.import_module(name)
    except ImportError as missing:          # a module of an optional extra (cv2, h5py, onnx…)
        pytest.skip(f"{name}: {missing}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs={"np": __import__("numpy"), "tm": tm,
                                                   **vars(module)}):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) of {name} failed"


def test_readme_is_short_and_opens_with_the_two_quick_start_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    quick = text.split("## Quick start", 1)[1]
    block = quick.split("```", 2)[1].strip().splitlines()
    assert block == ["pip install -e . && tinygrad-mlp train",
                     "pip install -e '.[dev]' && python -m pytest"]


def results() -> dict:
    return json.loads((ROOT / "benchmarks" / "results.json").read_text(encoding="utf-8"))


def test_the_readme_headline_figure_is_the_results_file_s():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    headline = re.search(r"<!-- headline: (\S+) (\S+) -->(.*?)<!-- /headline -->", readme, re.S)
    assert headline, "the README's headline figure is not marked"
    workload, implementation = headline.group(1), headline.group(2)
    rows = [r for r in results()["table"]["rows"]
            if r[0].split()[0] == workload and r[1] == implementation]
    assert rows, f"{workload} {implementation} is not in benchmarks/results.json"
    assert rows[0][5] in headline.group(3), (rows[0], headline.group(3))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    for plugin in ("material", "mkdocstrings", "mkdocs_jupyter"):
        if importlib.util.find_spec(plugin) is None:
            pytest.skip(f"{plugin} is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(out)], cwd=ROOT, capture_output=True, text=True,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_mkdocs_build_strict_passes(site):
    for page in ("index.html", "tutorial/index.html", "api/index.html", "benchmarks/index.html",
                 "tutorial/index.html"):
        assert (site / page).is_file(), page


def test_the_benchmark_page_is_generated_from_the_results_file(site):
    html = (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    report = results()
    assert report["command"] in html
    for row in report["table"]["rows"]:
        assert f"<td>{row[1]}</td>" in html and f"<td>{row[5]}</td>" in html, row


def public_names() -> list[tuple[str, str, object]]:
    """(namespace, name, object) for every name in tm, nn and optim's __all__ and in the
    public submodules' __all__."""
    found = []
    for namespace in ("tinygrad_mlp", "tinygrad_mlp.nn", "tinygrad_mlp.optim",
                      "tinygrad_mlp.models", "tinygrad_mlp.data", "tinygrad_mlp.datasets", "tinygrad_mlp.io",
                      "tinygrad_mlp.viz", "tinygrad_mlp.train", "tinygrad_mlp.teach.reference",
                      "tinygrad_mlp.teach.blog", "tinygrad_mlp.teach.exercises", "tinygrad_mlp.nn.init",
                      "tinygrad_mlp.nn.utils", "tinygrad_mlp.optim.lr_scheduler"):
        module = importlib.import_module(namespace)
        for name in getattr(module, "__all__", []):
            found.append((namespace, name, getattr(module, name)))
    return found


def test_the_api_reference_lists_every_public_name(site):
    ids = set()
    for page in (site / "api").rglob("index.html"):
        ids.update(re.findall(r'id="(tinygrad_mlp[\w.]*)"', page.read_text(encoding="utf-8")))
    missing = []
    for namespace, name, obj in public_names():
        candidates = {f"{namespace}.{name}", getattr(obj, "__name__", None) if
                      isinstance(obj, type(tm)) else None,
                      f"{getattr(obj, '__module__', '')}.{name}"}
        if not candidates & ids:
            missing.append(f"{namespace}.{name}")
    assert not missing, f"not in the API reference: {missing}"
