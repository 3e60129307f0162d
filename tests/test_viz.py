"""viz: DOT graphs, the explained backward walk against the blog's formulas, plots, compare."""

import importlib.util
import re
import struct
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp import blog, nn, reference, viz
from tinygrad_mlp.tensor import topological_order as _topological_order

needs_matplotlib = pytest.mark.skipif(   # installed in CI (the `test` extra), so these run there
    importlib.util.find_spec("matplotlib") is None,
    reason="plots need matplotlib: pip install matplotlib")

# --- a tiny DOT reader: node statements `nK [label="..."...]` and edges `nA -> nB;` -------------

NODE = re.compile(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$', re.M)
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+);$", re.M)


def parse_dot(text):
    """(labels by node id, attributes by node id, edges) of the DOT text; checks its frame."""
    assert text.startswith("digraph ") and text.rstrip().endswith("}")
    assert text.count("{") == text.count("}")
    nodes = {m.group(1): m.group(2).replace("\\n", "\n") for m in NODE.finditer(text)}
    attributes = {m.group(1): m.group(3) for m in NODE.finditer(text)}
    edges = EDGE.findall(text)
    assert len(nodes) == len(NODE.findall(text)), "a node is declared twice"
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} to an undeclared node"
    return nodes, attributes, edges


def blog_arrays(N, D, M, K, loss, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    W1, W2 = rng.standard_normal((D, M)), rng.standard_normal((M, K))
    if loss == "ce":
        Y = np.eye(K)[rng.integers(0, K, N)]
    else:
        Y = rng.integers(0, 2, (N, K)).astype(np.float64)
    return X, Y, W1, W2


def png_size(path):
    with open(path, "rb") as file:
        header = file.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", header[16:24])


# --- to_dot ---------------------------------------------------------------------------------

def test_dot_counts_for_a_reused_input():
    x = tm.Tensor([1.0, 2.0], requires_grad=True, name="x")
    nodes, _, edges = parse_dot(viz.to_dot((x * x).sum()))
    assert len(nodes) == 3                 # x, Mul, Sum
    assert len(edges) == 3                 # x -> Mul twice (both inputs), Mul -> Sum
    assert sorted(label.split("\n")[0] for label in nodes.values()) == ["J = Sum", "Mul", "x"]


def test_dot_counts_and_kinds_for_a_layer():
    X = tm.Tensor(np.ones((4, 3)), name="X")
    W = tm.Tensor(np.ones((3, 2)), requires_grad=True, name="W")
    J = ((X @ W) + 1.0).sigmoid().sum()
    nodes, attributes, edges = parse_dot(viz.to_dot(J))
    assert len(nodes) == 7                 # X, W, MatMul, 1.0, Add, Sigmoid, Sum
    assert len(edges) == 6
    by_first_line = {label.split("\n")[0]: node for node, label in nodes.items()}
    assert "Z1 = MatMul" in by_first_line and "a1 = Sigmoid" not in by_first_line
    # parameters, inputs and constants are drawn differently
    styles = {name: attributes[by_first_line[name]] for name in ("W", "X (input)", "1")}
    assert len(set(styles.values())) == 3
    assert "4×3 float64" in nodes[by_first_line["X (input)"]]   # float arrays keep their dtype
    assert "peripheries=2" in attributes[by_first_line["J = Sum"]]   # the output stands out
    expected = float((1 / (1 + np.exp(-4.0))) * 8)                   # scalars show their value
    assert nodes[by_first_line["J = Sum"]].split("\n")[1] == f"scalar float64 = {expected:.4g}"


@given(st.lists(st.sampled_from(["exp", "sigmoid", "tanh", "neg", "sum"]), min_size=1,
                max_size=12))
def test_dot_chain_of_unary_ops_has_one_node_per_op(names):
    x = tm.Tensor([0.1, -0.2, 0.3], requires_grad=True)
    y = x
    for name in names:
        y = -y if name == "neg" else getattr(y, name)()
    nodes, _, edges = parse_dot(viz.to_dot(y))
    assert len(nodes) == len(names) + 1
    assert len(edges) == len(names)
    ops = [label.split("\n")[0].split(" = ")[-1] for label in nodes.values()]
    expected = {"exp": "Exp", "sigmoid": "Sigmoid", "tanh": "Tanh", "neg": "Neg", "sum": "Sum"}
    assert sorted(ops) == sorted([expected[n] for n in names] + ["leaf (requires_grad)"])


@given(st.lists(st.tuples(st.sampled_from(["add", "mul", "sub"]), st.integers(0, 100)),
                min_size=1, max_size=15))
def test_dot_counts_nodes_and_edges_of_dags_with_fan_out(steps):
    leaves = [tm.Tensor([0.5, -1.0], requires_grad=True, name=f"w{i}") for i in range(3)]
    nodes = list(leaves)
    used = {0}                                  # leaf indices the root depends on
    y = leaves[0]
    for op, pick in steps:                      # y = y (op) an earlier node (shared: fan-out)
        index = pick % len(nodes)
        other = nodes[index]
        if index < len(leaves):
            used.add(index)
        y = {"add": y + other, "mul": y * other, "sub": y - other}[op]
        nodes.append(y)
    labels, _, edges = parse_dot(viz.to_dot(y))
    assert len(labels) == len(used) + len(steps)   # each tensor once, however often it is used
    assert len(edges) == 2 * len(steps)            # one edge per input slot


def test_dot_deep_graph_does_not_recurse():
    x = tm.Tensor([1.0], requires_grad=True)
    depth = sys.getrecursionlimit() + 500
    y = x
    for _ in range(depth):
        y = y * 1.0
    nodes, _, edges = parse_dot(viz.to_dot(y))
    assert len(nodes) == 2 * depth + 1     # x, and per step one Mul and its constant 1.0
    assert len(edges) == 2 * depth


def test_dot_names_parameters_and_shows_gradients_after_backward():
    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.Softmax())
    X = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    J = nn.CrossEntropyLoss()(model(X), np.array([0, 1, 1, 0, 1]))
    params = dict(model.named_parameters())
    before, _, _ = parse_dot(viz.to_dot(J, params=params))
    labels = "\n".join(before.values())
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert name in labels
    assert "grad" not in labels
    J.backward(retain_graph=True)
    text = viz.to_dot(J, params=params)
    nodes, _, _ = parse_dot(text)
    for name, param in params.items():
        label = next(lbl for lbl in nodes.values() if lbl.startswith(name + "\n"))
        shape = "×".join(map(str, param.grad.shape))
        norm = float(np.linalg.norm(param.grad))
        match = re.search(r"grad (\S+) ‖g‖=(\S+)", label)
        assert match and match.group(1) == shape
        assert float(match.group(2)) == pytest.approx(norm, rel=1e-3)
    assert text.count("subgraph cluster_") == 2          # layer 0 and layer 2
    assert 'label="layer 0"' in text and 'label="layer 2"' in text


def test_dot_names_come_from_tensor_name_without_params():
    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())
    nodes, _, _ = parse_dot(viz.to_dot(model(np.ones((2, 4), np.float32)).sum()))
    assert any(label.startswith("0.weight\n") for label in nodes.values())


def test_dot_shows_every_gradient_and_the_blogs_deltas_without_touching_grad():
    X, Y, W1, W2 = blog_arrays(3, 4, 5, 2, "mse")
    J, nodes = blog.blog_network(X, Y, W1, W2, "mse")
    J.backward(retain_graph=True)
    leaf_grads = {name: nodes[name].grad.copy() for name in ("W1", "W2")}
    plain, _, _ = parse_dot(viz.to_dot(J))
    assert sum("‖g‖=" in label for label in plain.values()) == 2     # the parameters only
    labels, _, _ = parse_dot(viz.to_dot(J, gradients=True, deltas=True))
    by_name = {label.split("\n")[0].split(" = ")[0]: label for label in labels.values()}
    steps = {step.name: step for step in viz.backward_steps(J)}     # the same gradients
    for name, step in steps.items():
        shown = re.search(r"‖g‖=(\S+)", by_name[name])
        assert float(shown.group(1)) == pytest.approx(viz.graph.norm(step.grad), rel=1e-3)
    assert "δ2 = ∂J/∂Z2 3×2" in by_name["Z2"] and "δ1 = ∂J/∂Z1 3×5" in by_name["Z1"]
    assert "δ" not in viz.to_dot(J, gradients=True)
    for name, grad in leaf_grads.items():                 # to_dot changed no .grad ...
        np.testing.assert_array_equal(nodes[name].grad, 2 * grad)   # (backward_steps added one)
    J2, nodes2 = blog.blog_network(X, Y, W1, W2, "mse")
    viz.to_dot(J2, gradients=True)
    assert all(node.grad is None for node in nodes2.values())      # ... here, none at all
    J2.backward()                                         # a freed graph says how to keep it
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        viz.to_dot(J2, gradients=True)


def test_dot_of_a_freed_graph_says_how_to_keep_it():
    x = tm.Tensor([1.0, 2.0], requires_grad=True)
    J = (x * 3.0).sum()
    J.backward()
    text = viz.to_dot(J)
    nodes, _, edges = parse_dot(text)
    assert len(nodes) == 1 and not edges
    assert "retain_graph=True" in text


def test_to_dot_rejects_non_tensors():
    with pytest.raises(TypeError, match="to_dot expects a Tensor"):
        viz.to_dot(np.ones(3))


# --- render ----------------------------------------------------------------------------------

def test_render_without_graphviz_writes_dot_and_says_how(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(viz.dot.shutil, "which", lambda name: None)
    J = (tm.Tensor([1.0], requires_grad=True) * 2.0).sum()
    written = viz.render(J, tmp_path / "graph.svg")
    assert written == str(tmp_path / "graph.dot")
    assert (tmp_path / "graph.dot").read_text().startswith("digraph")
    assert not (tmp_path / "graph.svg").exists()
    message = capsys.readouterr().err
    assert "apt-get install graphviz" in message and "graphviz.org" in message


def test_render_calls_dot_when_installed(tmp_path, monkeypatch):
    fake = tmp_path / "dot"      # a stand-in for Graphviz: prints its format, then its input
    fake.write_text('#!/bin/sh\necho "$1"; cat\n')
    fake.chmod(0o755)
    monkeypatch.setattr(viz.dot.shutil, "which", lambda name: str(fake))
    J = (tm.Tensor([1.0], requires_grad=True) * 2.0).sum()
    written = viz.render(J, tmp_path / "graph.png")
    content = (tmp_path / "graph.png").read_text()
    assert written == str(tmp_path / "graph.png")
    assert content.startswith("-Tpng\ndigraph")


def test_render_refuses_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'bmp'"):
        viz.render(tm.Tensor([1.0]), tmp_path / "graph.bmp")


# --- explain: the backward walk ---------------------------------------------------------------

@pytest.mark.parametrize("loss", ["mse", "bce", "ce"])
@given(shape=st.tuples(*[st.integers(1, 5)] * 4), seed=st.integers(0, 2**16))
def test_explained_deltas_are_the_blogs_over_N(loss, shape, seed):
    N, D, M, K = shape
    if loss == "ce":
        K = max(K, 2)
    X, Y, W1, W2 = blog_arrays(N, D, M, K, loss, seed)
    J, nodes = blog.blog_network(X, Y, W1, W2, loss)
    steps = {step.name: step for step in viz.backward_steps(J)}
    delta1, delta2 = reference.deltas(X, Y, W1, W2, loss=loss)
    np.testing.assert_allclose(steps["Z2"].grad * N, delta2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(steps["Z1"].grad * N, delta1, rtol=1e-9, atol=1e-12)
    dJ_dW1, dJ_dW2 = reference.gradients(X, Y, W1, W2, loss=loss)
    np.testing.assert_allclose(steps["W1"].grad, dJ_dW1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(nodes["W2"].grad, dJ_dW2, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_explain_blog_text_names_deltas_and_matches_reference(loss):
    X, Y, W1, W2 = blog_arrays(4, 3, 2, 3, loss)
    text = blog.explain_blog(X, Y, W1, W2, loss=loss)
    assert "δ2 = ∂J/∂Z2" in text and "δ1 = ∂J/∂Z1" in text
    assert text.index("δ2 = ∂J/∂Z2") < text.index("δ1 = ∂J/∂Z1")   # walked backwards
    assert ("SoftmaxCrossEntropy(Z2, Y)" if loss == "ce" else "Sub(a2, Y)") in text
    differences = [float(d) for d in re.findall(r"max \|difference\| (\S+)", text)]
    assert len(differences) == 4 and max(differences) < 1e-12
    # the δ2 printed at the end is N·∂J/∂Z2, i.e. reference δ2
    _, delta2 = reference.deltas(X, Y, W1, W2, loss=loss)
    block = text.split("the blog's δ2 (N · ∂J/∂Z2):")[1].split("the blog's δ1")[0]
    printed = np.array([float(v) for v in re.findall(r"-?\d+\.\d*(?:e-?\d+)?", block)])
    np.testing.assert_allclose(printed, delta2.ravel(), atol=1e-4)


def test_explain_walks_in_backward_order_and_ends_at_the_parameters():
    X, Y, W1, W2 = blog_arrays(3, 2, 4, 1, "mse")
    J, nodes = blog.blog_network(X, Y, W1, W2, "mse")
    expected = list(reversed(_topological_order(J)))      # the order backward() uses
    steps = viz.backward_steps(J)
    assert [step.tensor for step in steps] == expected
    name_of = {id(node): name for name, node in nodes.items()}
    assert [step.name for step in steps] == [name_of.get(id(n), n.op) for n in expected]
    blog_order = [step.name for step in steps if step.name in nodes]
    assert [n for n in blog_order if n not in ("W1", "W2")] == ["J", "a2", "Z2", "a1", "Z1"]
    J2, _ = blog.blog_network(X, Y, W1, W2, "mse")
    text = viz.explain(J2)
    lines = [line for line in text.splitlines() if re.match(r"\[\d+\]", line)]
    assert len(lines) == len(steps)
    for line, step in zip(lines, steps):
        assert line.startswith(f"[{step.position}] {step.name}")
    tail = text.rstrip().splitlines()[-3:]
    assert tail[0].startswith("Target reached")
    assert [line.split()[0] for line in tail[1:]] == ["∂J/∂W1", "∂J/∂W2"]
    assert "rule Sigmoid: a = σ(Z) → grad · a(1 − a)" in text


def test_explain_leaves_gradients_as_backward_would_and_keeps_the_graph():
    x = tm.Tensor([1.0, -2.0], requires_grad=True)
    x.grad = np.array([10.0, 10.0], dtype=np.float32)       # accumulated earlier
    y = x.sigmoid()
    J = (y * y).sum()
    viz.explain(J)
    s = 1 / (1 + np.exp(-np.array([1.0, -2.0])))
    np.testing.assert_allclose(x.grad, 10 + 2 * s * s * (1 - s), rtol=1e-6)
    np.testing.assert_allclose(y.grad, 2 * s, rtol=1e-6)    # intermediates keep theirs
    assert not y._retain_grad                               # the flag itself is restored
    assert tm.graph_size(J) == 3                            # still drawable: not freed
    nodes, _, _ = parse_dot(viz.to_dot(J))
    assert sum("grad" in label for label in nodes.values()) == 4


def test_explaining_twice_shows_the_same_gradients_and_says_the_leaves_add_up():
    W = tm.Tensor([[0.5, -1.0]], requires_grad=True, name="W")
    J = (tm.Tensor([[1.0], [2.0]]) @ W).sigmoid().sum()
    first, second = viz.explain(J), viz.explain(J)          # a notebook cell run twice
    strip = lambda text: [line for line in text.splitlines() if "W.grad" not in line
                          and "backward accumulates" not in line]
    assert strip(first) == strip(second)                     # the gradients shown do not double
    assert "stored in W.grad" in first and "already held a gradient" not in first
    assert "added to W.grad" in second and "W.grad is now the sum" in second


def test_draw_displays_as_svg_with_graphviz_and_as_html_without(monkeypatch):
    from tinygrad_mlp.viz import display as draw_module
    x = tm.Tensor([1.0, -2.0], requires_grad=True, name="x")
    J = (x.sigmoid() * x).sum()
    J.backward(retain_graph=True)
    monkeypatch.setattr(draw_module.shutil, "which", lambda name: None)
    drawing = viz.draw(J)
    assert drawing.engine == "layered" and drawing._repr_svg_() is None
    html = drawing._repr_html_()
    assert html.startswith("<div") and html.count('class="node"') == 4    # x, σ, ·, Σ
    monkeypatch.undo()
    if draw_module.shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (CI installs it)")
    drawing = viz.draw(J)
    assert drawing.engine == "dot" and drawing._repr_html_() is None
    svg = drawing._repr_svg_()
    assert svg.startswith("<svg") and svg.count('class="node"') == 4


def test_explain_refuses_a_freed_graph_and_non_scalars():
    x = tm.Tensor([1.0, 2.0], requires_grad=True)
    J = (x * x).sum()
    J.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        viz.explain(J)
    with pytest.raises(ValueError, match="scalar"):
        viz.explain(x * 2.0)
    with pytest.raises(RuntimeError, match="requires_grad"):
        viz.explain(tm.Tensor([1.0]).sum())


def test_explain_describes_a_user_function_generically():
    class Cube(tm.Function):
        """x³, a custom op."""

        @staticmethod
        def forward(ctx, x):
            ctx.x = x
            return x ** 3

        @staticmethod
        def backward(ctx, grad):
            return 3 * ctx.x ** 2 * grad

    x = tm.Tensor([2.0], requires_grad=True, name="x")
    text = viz.explain(Cube.apply(x).sum())
    rule = "rule Cube: a user-defined Function: grads = Cube.backward(ctx, grad) (x³, a custom op.)"
    assert rule in text
    assert re.search(r"∂J/∂x\s+shape \(1,\)\s+norm 12\b", text)


def test_explain_on_a_sequential_recognises_Z_and_a():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Sigmoid(), nn.Linear(3, 2, bias=False),
                          nn.Softmax())
    X = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1])
    J = nn.CrossEntropyLoss()(model(X), y)
    text = viz.explain(J, params=dict(model.named_parameters()))
    assert "δ2 = ∂J/∂Z2" in text and "δ1 = ∂J/∂Z1" in text and "a1 = Sigmoid(Z1)" in text
    W1, W2 = model[0].weight.data, model[2].weight.data
    _, dJ_dW2 = reference.gradients(X, np.eye(2)[y], W1, W2, loss="ce")
    np.testing.assert_allclose(model[2].weight.grad, dJ_dW2, rtol=1e-4, atol=1e-6)
    assert text.rstrip().splitlines()[-1].strip().startswith("∂J/∂2.weight")


# --- plots -------------------------------------------------------------------------------------

@needs_matplotlib
def test_plot_history_writes_a_png_of_the_requested_size(tmp_path):
    history = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.4],
               "accuracy": [0.5, 0.8, 0.9], "val_accuracy": [0.4, 0.7, 0.85]}
    figure = viz.plot_history(history, tmp_path / "history.png")
    assert png_size(tmp_path / "history.png") == (1000, 400)
    assert len(figure.axes) == 2                       # loss and accuracy, side by side
    viz.plot_history({"loss": [3.0, 2.0]}, tmp_path / "loss.png", size=(600, 300))
    assert png_size(tmp_path / "loss.png") == (600, 300)
    with pytest.raises(ValueError, match="'loss'"):
        viz.plot_history({"accuracy": [0.1]}, tmp_path / "bad.png")


@needs_matplotlib
def test_plot_weights_draws_one_image_per_hidden_unit(tmp_path):
    layer = nn.Linear(64, 10)
    assert len(viz.plot_weights(layer, tmp_path / "weights.png").axes) == 10
    assert png_size(tmp_path / "weights.png") == (400, 300)   # 4 columns × 3 rows of 100 px
    figure_model = nn.Sequential(nn.Linear(784, 4), nn.Sigmoid())
    viz.plot_weights(figure_model, tmp_path / "mnist.png", cell=50)
    assert png_size(tmp_path / "mnist.png") == (100, 100)
    with pytest.raises(ValueError, match="not a square image"):
        viz.plot_weights(np.ones((10, 3)), tmp_path / "bad.png")


@needs_matplotlib
def test_plots_return_a_figure_that_shows_itself_in_a_notebook(tmp_path):
    figure = viz.plot_history({"loss": [3.0, 2.0, 1.5]}, size=(300, 200))
    assert list(tmp_path.iterdir()) == []                          # no path: nothing written
    (tmp_path / "shown.png").write_bytes(figure._repr_png_())     # what IPython displays
    assert png_size(tmp_path / "shown.png") == (300, 200)
    assert viz.plot_weights(nn.Linear(4, 3), cell=20)._repr_png_()[:4] == b"\x89PNG"


def test_plots_say_how_to_get_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[plot\]'"):
        viz.plot_history({"loss": [1.0]}, tmp_path / "h.png")


def test_importing_the_package_does_not_import_matplotlib():
    import subprocess
    code = ("import sys, tinygrad_mlp; "
            "print('matplotlib' in sys.modules, hasattr(tinygrad_mlp, 'viz'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


# --- compare ---------------------------------------------------------------------------------

@needs_matplotlib
def test_compare_methods_gives_three_curves_from_one_start(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    result = blog.compare_methods(X, y, hidden=5, epochs=3, lr=0.5, batch_size=8, seed=1)
    runs = result["methods"]
    assert list(runs) == ["gd", "sgd", "minibatch"]
    assert [runs[m]["updates_per_epoch"] for m in runs] == [1, 40, 5]
    starts = {runs[m]["cost"][0] for m in runs}
    assert len(starts) == 1                            # same initial weights for all three
    for run in runs.values():
        assert len(run["cost"]) == len(run["seconds"]) == len(run["accuracy"]) == 4
        assert run["cost"][-1] < run["cost"][0]
        assert all(a <= b for a, b in zip(run["seconds"], run["seconds"][1:]))
    assert runs["sgd"]["cost"][1] < runs["gd"]["cost"][1]   # more updates per epoch
    table = blog.format_compare(result)
    assert "lr=0.5 for all three" in table and table.count("gradient descent") == 3
    viz.plot_compare(result, tmp_path / "compare.png")
    assert png_size(tmp_path / "compare.png") == (1100, 420)
    own = blog.compare_methods(X, y, hidden=5, epochs=1, lr={"gd": 2.0, "sgd": 0.05}, seed=1,
                              methods=("gd", "sgd"))
    assert [run["lr"] for run in own["methods"].values()] == [2.0, 0.05]
    assert "learning rates gd 2, sgd 0.05" in blog.format_compare(own)
    with pytest.raises(ValueError, match="no learning rate for 'minibatch'"):
        blog.compare_methods(X, y, epochs=1, lr={"gd": 2.0, "sgd": 0.05})


def test_blog_example_is_a_seeded_batch_of_digits():
    X, Y, W1, W2 = blog.blog_example(batch=5, hidden=3, loss="ce", seed=7)
    assert (X.shape, Y.shape, W1.shape, W2.shape) == ((5, 64), (5, 10), (64, 3), (3, 10))
    assert X.dtype == W1.dtype == np.float32 and 0 <= X.min() and X.max() <= 1
    np.testing.assert_array_equal(Y.sum(axis=1), 1)
    again = blog.blog_example(batch=5, hidden=3, loss="ce", seed=7)
    for a, b in zip((X, Y, W1, W2), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(blog.blog_example(5, 3, "ce", seed=8)[0], X)
    with pytest.raises(ValueError, match="batch must be an int"):
        blog.blog_example(batch=0)


# --- the command line: compare, graph, explain ---------------------------------------------------

@needs_matplotlib
def test_cli_compare_runs_end_to_end_on_a_small_budget(tmp_path, capsys):
    from tinygrad_mlp import cli

    plot = tmp_path / "compare.png"
    code = cli.main(["compare", "--epochs", "2", "--samples", "60", "--hidden", "8",
                     "--batch-size", "16", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if "gradient descent" in line]
    assert len(rows) == 3                                    # the three curves' table rows
    assert [row.split()[-8] for row in rows] == ["60", "1", "16"]   # batch column
    assert [row.split()[-7] for row in rows] == ["0.5", "0.5", "0.5"]  # the same lr
    first_costs = {row.split()[-5] for row in rows}          # J@0: the same start for all
    assert len(first_costs) == 1
    assert "lr=0.5 for all three" in out
    assert png_size(plot) == (1100, 420)
    assert cli.main(["compare", "--epochs", "1", "--samples", "30", "--lr", "gd=2,sgd=0.05"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "gradient descent" in line]
    assert [row.split()[-6] for row in rows] == ["2", "0.05", "0.5"]   # lr column, per method
    assert cli.main(["compare", "--lr", "adam=1"]) == 2
    assert "unknown method 'adam'" in capsys.readouterr().err


def test_cli_graph_prints_the_blogs_network_as_dot(capsys, tmp_path, monkeypatch):
    from tinygrad_mlp import cli

    assert cli.main(["graph", "--batch", "3", "--hidden", "5"]) == 0
    nodes, _, edges = parse_dot(capsys.readouterr().out)
    first_lines = {label.split("\n")[0] for label in nodes.values()}
    assert {"W1", "W2", "X (input)", "Z1 = MatMul", "a1 = Sigmoid", "Z2 = MatMul",
            "a2 = Sigmoid", "J = Div"} <= first_lines
    assert len(nodes) == 14 and len(edges) == 13             # the blog's mse network
    w1 = next(label for label in nodes.values() if label.startswith("W1\n"))
    assert "64×5 float32" in w1 and "grad 64×5" in w1        # drawn after one backward pass
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert cli.main(["graph", "--loss", "ce", "--out", str(tmp_path / "g.svg")]) == 0
    assert (tmp_path / "g.dot").read_text().count("SoftmaxCrossEntropy") == 1
    assert cli.main(["graph", "--format", "png"]) == 2       # a usage error: an image needs --out
    assert "needs --out" in capsys.readouterr().err


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_cli_explain_prints_the_walk_with_the_blogs_deltas(loss, capsys):
    from tinygrad_mlp import cli

    assert cli.main(["explain", "--loss", loss, "--batch", "3", "--hidden", "4"]) == 0
    out = capsys.readouterr().out
    assert "δ2 = ∂J/∂Z2" in out and "δ1 = ∂J/∂Z1" in out
    assert out.index("δ2 = ∂J/∂Z2") < out.index("δ1 = ∂J/∂Z1") < out.index("Target reached")
    differences = [float(d) for d in re.findall(r"max \|difference\| (\S+)", out)]
    assert len(differences) == 4 and max(differences) < 1e-6     # float32 rounding only


# --- the tutorial page prints what it shows ----------------------------------------------------

TUTORIAL = __import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "tutorial" / "blog.md"
NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")


@needs_matplotlib
def test_the_tutorial_snippets_print_the_output_shown(tmp_path, monkeypatch, capsys):
    section = TUTORIAL.read_text(encoding="utf-8")
    pairs = re.findall(r"```python\n(.*?)```\n\nOutput:\n\n```\n(.*?)```", section, re.S)
    assert len(pairs) >= 6, "the tutorial's snippets (code, then its output) were not found"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()                 # the snippets draw into docs/, here a copy
    namespace: dict = {}
    for code, shown in pairs:                   # one namespace: the snippets build on each other
        exec(compile(code, str(TUTORIAL), "exec"), namespace)
        printed = capsys.readouterr().out
        # the same words and layout; numbers equal up to the last printed digits (BLAS rounding)
        assert NUMBER.sub("#", printed).split() == NUMBER.sub("#", shown).split(), code
        for ours, theirs in zip(NUMBER.findall(printed), NUMBER.findall(shown)):
            assert float(ours) == pytest.approx(float(theirs), rel=1e-3, abs=5e-3), code
    assert png_size(tmp_path / "docs" / "weights.png") == (480, 480)


@pytest.mark.parametrize("output, loss, fused", [
    (nn.Sigmoid(), nn.MSELoss(), False), (nn.Sigmoid(), nn.BCELoss(), True),
    (nn.Softmax(), nn.CrossEntropyLoss(), True)])
def test_a_loss_rule_uses_the_names_of_its_own_nodes_on_a_three_layer_net(output, loss, fused):
    tm.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 3), nn.Sigmoid(),
                          nn.Linear(3, 2), output)
    J = loss(model(np.random.default_rng(0).random((2, 4))), np.eye(2, dtype=np.float32))
    first = viz.backward_steps(J)[0]
    assert first.inputs[0] == ("Z3" if fused else "a3")
    assert "(a3 − Y)/N" in first.rule and "a2" not in first.rule, first.rule
    assert ("grad_Z3" if fused else "grad_a3") in first.rule


def test_dot_edges_point_from_each_input_to_the_op_that_uses_it():
    X = tm.Tensor(np.ones((4, 3)), name="X")
    W = tm.Tensor(np.ones((3, 2)), requires_grad=True, name="W")
    J = (X @ W).sigmoid().sum()
    nodes, _, edges = parse_dot(viz.to_dot(J))
    first = {node: label.split("\n")[0] for node, label in nodes.items()}
    drawn = {(first[a], first[b]) for a, b in edges}
    assert drawn == {("X (input)", "Z1 = MatMul"), ("W", "Z1 = MatMul"),
                     ("Z1 = MatMul", "a1 = Sigmoid"), ("a1 = Sigmoid", "J = Sum")}


# --- hostile names and paths (issue 19, items 12 and 15) ------------------------------------------

HOSTILE_NAMES = {"bell\x07and\x01": "bell\\x07and\\x01", "nul\x00byte": "nul\\x00byte",
                 "&lt;b&gt;": "&lt;b&gt;", "long" * 5000: ("long" * 5000)[:79] + "…"}


def hostile_graph():
    """A graph whose parameters carry control characters, a NUL, an HTML entity and a
    20,000-character name."""
    params = {name: tm.Tensor(np.ones(2), requires_grad=True) for name in HOSTILE_NAMES}
    J = sum((p * float(i + 2)).sum() for i, p in enumerate(params.values()))
    return J, params


def svg_texts(svg):
    import xml.etree.ElementTree as ElementTree
    root = ElementTree.fromstring(svg)              # well-formed XML, or this raises
    return [text.text for text in root.iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize("engine", ["dot", "layered"])
def test_hostile_names_give_valid_svg_that_shows_them_literally(engine):
    if engine == "dot" and viz.svg.shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    J, params = hostile_graph()
    texts = svg_texts(viz.graph_svg(J, params, engine=engine))
    for shown in HOSTILE_NAMES.values():
        assert shown in texts, (shown, texts)


def test_to_dot_refuses_attributes_it_would_paste_into_the_file():
    J = (tm.Tensor([1.0], requires_grad=True) * 2.0).sum()
    with pytest.raises(ValueError, match="rankdir"):
        viz.to_dot(J, rankdir='LR; node [URL="http://x"]')
    with pytest.raises(ValueError, match="fontsize"):
        viz.to_dot(J, fontsize="10, color=red")
    with pytest.raises(ValueError, match="fontsize"):
        viz.to_dot(J, fontsize=float("nan"))
    assert "rankdir=TB;" in viz.to_dot(J, rankdir="TB")


def test_render_refuses_a_format_that_contradicts_the_extension(tmp_path, capsys):
    J = (tm.Tensor([1.0], requires_grad=True) * 2.0).sum()
    with pytest.raises(ValueError, match=r"ends in \.svg but the format asked is png"):
        viz.render(J, tmp_path / "g.svg", format="png")
    from tinygrad_mlp.cli import main
    assert main(["graph", "--out", str(tmp_path / "g.svg"), "--format", "png"]) == 2
    assert "ends in .svg" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_file_and_a_fifo_is_refused(tmp_path):
    import os
    J = (tm.Tensor([1.0, 2.0], requires_grad=True, name="x") * 2.0).sum()
    old = tmp_path / "walk.html"
    old.write_text("the old page")
    with pytest.raises(UnicodeEncodeError):
        viz.explain_html(J, old, title="bad \udcff title")           # fails while writing
    assert old.read_text() == "the old page" and os.listdir(tmp_path) == ["walk.html"]
    fifo = tmp_path / "fifo.html"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)     # so an old open() would not block
    try:
        with pytest.raises(ValueError, match="is a FIFO, not a regular file"):
            viz.explain_html(J, fifo)
        with pytest.raises(ValueError, match="is a FIFO, not a regular file"):
            viz.render(J, tmp_path / "fifo.html", format="dot")
    finally:
        os.close(reader)
    dot_file = tmp_path / "g.dot"
    dot_file.write_text("old graph")
    dot_file.chmod(0o640)
    viz.render(J, dot_file)
    assert dot_file.read_text().startswith("digraph") and dot_file.stat().st_mode & 0o777 == 0o640
