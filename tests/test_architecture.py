"""The package's layering, read from the source: every module's imports and attribute accesses.

DESIGN.md's table (mirrored in LAYERS) orders the layers: each may import only layers above it.
Three rules, checked on every module of tinygrad_mlp/ with `ast` (imports inside functions
count too):
1. no import of a layer below (tensor.py importing ops at its end is the one exception);
2. no underscore name taken from another layer's module (siblings in one package may share);
3. only the engine (tensor.py and tensor_methods.py, one layer in two files) reads or writes
   a Tensor's private attributes (`_ctx`, `_retain_grad`, …).
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

from tinygrad_mlp.tensor import Tensor

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tinygrad_mlp"

LAYERS = ["_checks", "_files", "backend", "config", "tensor", "ops", "nn", "optim", "models",
          "data", "datasets", "train", "gradcheck", "io", "testing", "viz", "interop", "teach",
          "apps", "cli"]
ALLOWED = {("tensor", "ops")}   # the engine's methods (tensor_methods.py) are calls into ops
FACADE = "tinygrad_mlp"         # the package's __init__: it re-exports every layer
SAME_LAYER = {"tensor_methods": "tensor"}   # Tensor's operator methods: the engine's second file
ATTRIBUTE_CALLS = {"getattr", "setattr", "hasattr", "delattr", "__setattr__", "__getattribute__"}


def tensor_private_names() -> set[str]:
    """Tensor's own private fields and methods (single underscore), from the class itself."""
    names = {name for name in dir(Tensor) if name.startswith("_") and not name.startswith("__")}
    names.update(s for s in Tensor.__slots__ if s.startswith("_") and not s.startswith("__"))
    return names


def layer_of_file(path: pathlib.Path) -> str:
    """`tinygrad_mlp/nn/losses.py` → "nn"; `tinygrad_mlp/tensor_methods.py` → "tensor"."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts in (("__main__",), ("__init__",)):
        return "cli" if parts == ("__main__",) else FACADE
    return SAME_LAYER.get(parts[0], parts[0])


def is_module(dotted: str) -> bool:
    """Is `tinygrad_mlp.a.b` a module or package of the source tree (not a name inside one)?"""
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(tree: ast.AST, package: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported module of tinygrad_mlp, names taken from it) for every import in `tree`.

    `from tinygrad_mlp import nn` is an import of the module tinygrad_mlp.nn; `from
    tinygrad_mlp.ops import _shared` one of tinygrad_mlp.ops._shared."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names
                      if alias.name.split(".")[0] == FACADE]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:                              # relative: resolve against the package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([module] if module else []))
            if module.split(".")[0] != FACADE:
                continue
            for alias in node.names:
                dotted = f"{module}.{alias.name}"
                if is_module(dotted):
                    found.append((node.lineno, dotted, []))
                else:
                    found.append((node.lineno, module, [alias.name]))
    return found


def import_layer(dotted: str) -> str:
    parts = dotted.split(".")
    return FACADE if len(parts) == 1 else SAME_LAYER.get(parts[1], parts[1])


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def violations(source: str, layer: str, package: str, filename: str) -> list[str]:
    """Every breach of the three rules in one module's `source`, as 'file:line: what'."""
    tree = ast.parse(source, filename)
    problems = []
    if layer not in LAYERS and layer != FACADE:
        problems.append(f"{filename}: layer {layer!r} is not in DESIGN's table (LAYERS)")
    rank = {name: i for i, name in enumerate(LAYERS)}
    for line, dotted, names in imports(tree, package):
        target = import_layer(dotted)
        where = f"{filename}:{line}"
        if layer == FACADE or target == layer:
            pass
        elif target == FACADE:
            if layer != LAYERS[-1]:
                problems.append(f"{where}: imports the package facade {dotted!r}, i.e. every "
                                f"layer; import the layer it needs")
        elif target not in rank:
            problems.append(f"{where}: imports {dotted!r}, which is in no layer of DESIGN's table")
        elif layer in rank and rank[target] > rank[layer] and (layer, target) not in ALLOWED:
            problems.append(f"{where}: layer {layer!r} imports {dotted!r}, a layer below it "
                            f"({target!r})")
        if target != layer and layer != FACADE:
            private = [name for name in names if is_private(name)]
            private += [part for part in dotted.split(".")[2:] if is_private(part)]
            for name in private:
                problems.append(f"{where}: takes the private name {name!r} from {dotted!r}")
    if layer != "tensor":
        fields = tensor_private_names()
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in fields:
                problems.append(f"{filename}:{node.lineno}: touches a Tensor's private "
                                f"attribute .{node.attr}; use a public seam of tensor.py")
            elif isinstance(node, ast.Call):
                function = node.func
                called = getattr(function, "id", getattr(function, "attr", None))
                if called in ATTRIBUTE_CALLS:
                    for argument in node.args:
                        if isinstance(argument, ast.Constant) and argument.value in fields:
                            problems.append(f"{filename}:{node.lineno}: {called}(…, "
                                            f"{argument.value!r}) touches a Tensor's private "
                                            f"attribute")
    return problems


def modules() -> list[pathlib.Path]:
    return sorted(PACKAGE.rglob("*.py"))


def check_file(path: pathlib.Path) -> list[str]:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = ".".join(parts if path.name == "__init__.py" else parts[:-1])
    return violations(path.read_text(encoding="utf-8"), layer_of_file(path), package,
                      str(path.relative_to(PACKAGE.parent)))


# --- the package obeys the rules --------------------------------------------------------------

def test_every_module_keeps_to_the_layering():
    problems = [problem for path in modules() for problem in check_file(path)]
    assert not problems, "\n".join(problems)


def test_every_module_is_seen():
    layers = {layer_of_file(path) for path in modules()}
    assert {"tensor", "ops", "nn", "train", "viz", "cli", FACADE} <= layers
    assert {"_ctx", "_retain_grad"} <= tensor_private_names()


# --- `import tinygrad_mlp` loads the framework, not what sits above it -------------------------

OPTIONAL_EXTRAS = ("cv2", "matplotlib", "onnx", "onnxruntime", "torch", "h5py", "keras", "jax",
                   "hypothesis", "IPython")
ABOVE_THE_FRAMEWORK = ("viz", "interop", "teach", "apps", "testing", "cli")


def modules_after(code: str) -> set[str]:
    """The names in sys.modules after running `code` in a fresh interpreter."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=PACKAGE.parent)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_package_loads_no_application_and_no_optional_extra():
    loaded = modules_after("import tinygrad_mlp")
    extras = sorted(name for name in loaded if name.split(".")[0] in OPTIONAL_EXTRAS)
    above = sorted(name for name in loaded
                   if name.split(".")[:2] in [["tinygrad_mlp", layer]
                                              for layer in ABOVE_THE_FRAMEWORK])
    assert not extras and not above, (extras, above)
    assert {"tinygrad_mlp.tensor", "tinygrad_mlp.nn", "tinygrad_mlp.train"} <= loaded


def test_the_applications_are_there_when_asked_for():
    loaded = modules_after("import tinygrad_mlp as tm\n"
                           "assert callable(tm.export.to_onnx) and callable(tm.from_keras)\n"
                           "assert tm.fer.classify_faces and tm.blog.blog_network\n"
                           "assert tm.viz.explain and tm.reference and tm.exercises\n"
                           "assert {'fer', 'export', 'viz', 'from_keras'} <= set(dir(tm))")
    assert {"tinygrad_mlp.apps.fer", "tinygrad_mlp.interop.export"} <= loaded


# --- the checker catches each kind of breach (so the test above can fail) ---------------------

@pytest.mark.parametrize("layer, source, expected", [
    ("nn", "from tinygrad_mlp.train import fit", "a layer below"),
    ("tensor", "def f():\n    from tinygrad_mlp import viz", "a layer below"),
    ("viz", "from tinygrad_mlp.tensor import _topological_order", "private name '_topological"),
    ("nn", "from tinygrad_mlp.ops import _shared", "private name '_shared'"),
    ("nn", "import tinygrad_mlp.ops._shared", "private name '_shared'"),
    ("viz", "def f(t):\n    return t._ctx", "private attribute ._ctx"),
    ("nn", "def f(t):\n    t._retain_grad = True", "private attribute ._retain_grad"),
    ("viz", "def f(t):\n    return getattr(t, '_ctx')", "getattr(…, '_ctx')"),
    ("nn", "import tinygrad_mlp as tm", "package facade"),
    ("data", "from tinygrad_mlp import replay_v2", "package facade"),
    ("nn", "from tinygrad_mlp.spare import thing", "in no layer"),
    ("spare", "import numpy", "not in DESIGN's table"),
])
def test_the_checker_reports_each_breach(layer, source, expected):
    problems = violations(source, layer, f"tinygrad_mlp.{layer}", "x.py")
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize("layer, source", [
    ("ops", "from tinygrad_mlp.ops._shared import _check_axis"),     # siblings share
    ("tensor", "from tinygrad_mlp import ops"),                      # the one exception
    ("nn", "from tinygrad_mlp._checks import positive_int\nfrom tinygrad_mlp import ops"),
    ("cli", "import tinygrad_mlp as tm"),                            # the last layer
    ("viz", "def f(t):\n    return t.creator.parents, t.is_leaf"),
])
def test_the_checker_allows_what_the_design_allows(layer, source):
    assert violations(source, layer, f"tinygrad_mlp.{layer}", "x.py") == []
