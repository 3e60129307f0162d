"""tm.export: ONNX files run in onnxruntime, and PyTorch twins, give tm.predict's outputs."""

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn

ATOL = 1e-5


def digits_model():
    """The blog's network on the digits, trained for a few epochs (so the weights are real)."""
    X, y = tm.datasets.load_digits()
    X = X / np.float32(16)
    model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10), nn.Softmax())
    tm.fit(model, X, y, loss=nn.CrossEntropyLoss(), epochs=3, batch_size=64,
           optimizer=tm.optim.SGD(model.parameters(), lr=0.5), progress=False)
    return model, X


# Every built-in layer with an ONNX translation, in a dense stack on (N, 12) inputs and (where
# the image layers exist) a small CNN on (N, 2, 8, 8) images: only layers nn has are used.
DENSE = [("Linear", lambda: nn.Linear(12, 12)), ("Tanh", lambda: nn.Tanh()),
         ("LayerNorm", lambda: nn.LayerNorm(12)), ("BatchNorm1d", lambda: nn.BatchNorm1d(12)),
         ("ReLU", lambda: nn.ReLU()), ("Identity", lambda: nn.Identity()),
         ("LeakyReLU", lambda: nn.LeakyReLU(0.2)), ("ELU", lambda: nn.ELU(0.7)),
         ("GELU", lambda: nn.GELU()), ("GELU", lambda: nn.GELU(approximate="tanh")),
         ("Softplus", lambda: nn.Softplus()), ("Softplus", lambda: nn.Softplus(2.0, 0.5)),
         ("Dropout", lambda: nn.Dropout(0.3)),
         ("Sequential", lambda: nn.Sequential(nn.Linear(12, 6, bias=False), nn.Sigmoid())),
         ("Linear", lambda: nn.Linear(6, 5)), ("Softmax", lambda: nn.Softmax())]
IMAGE = [("Conv2d", lambda: nn.Conv2d(2, 3, 3, padding=1)),
         ("BatchNorm2d", lambda: nn.BatchNorm2d(3)),
         ("ReLU", lambda: nn.ReLU()), ("MaxPool2d", lambda: nn.MaxPool2d(2)),
         ("Conv2d", lambda: nn.Conv2d(3, 4, (2, 3), stride=(1, 2), padding=(1, 0), bias=False)),
         ("AvgPool2d", lambda: nn.AvgPool2d(2, stride=1, padding=1)),
         ("Flatten", lambda: nn.Flatten()), ("LogSoftmax", lambda: nn.LogSoftmax())]


def stack(layers, input_shape):
    model = nn.Sequential(*[make() for name, make in layers if hasattr(nn, name)])
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, *input_shape)).astype(np.float32)
    with tm.no_grad():                        # give BatchNorm running statistics of its own
        for _ in range(3):
            model(tm.Tensor(X * 2 + 1))
    return model, X


MODELS = {"dense": (DENSE, (12,))}
if hasattr(nn, "Conv2d"):
    MODELS["image"] = (IMAGE, (2, 8, 8))


def run_onnx(path, X):
    """The file's output for X: onnxruntime for float32; for float64, onnx's reference
    evaluator (onnxruntime's CPU provider has no float64 Conv, pools or Erf)."""
    if X.dtype == np.float64:
        reference = pytest.importorskip("onnx.reference")
        return reference.ReferenceEvaluator(str(path)).run(None, {"X": X})[0]
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})[0]


def test_the_digits_model_runs_in_onnxruntime_like_predict(tmp_path):
    pytest.importorskip("onnx")
    model, X = digits_model()
    tm.export.to_onnx(model, tmp_path / "digits.onnx", input_shape=(64,))
    expected = tm.predict(model, X)
    np.testing.assert_allclose(run_onnx(tmp_path / "digits.onnx", X), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(run_onnx(tmp_path / "digits.onnx", X[:1]), expected[:1], rtol=0,
                               atol=ATOL)                               # the batch is dynamic


@pytest.mark.parametrize("kind", MODELS)
def test_every_exportable_layer_runs_in_onnxruntime_like_predict(kind, tmp_path):
    onnx = pytest.importorskip("onnx")
    layers, input_shape = MODELS[kind]
    model, X = stack(layers, input_shape)
    model.train()
    tm.export.to_onnx(model, tmp_path / "model.onnx", input_shape)
    assert model.training                                 # the caller's mode is left as it was
    np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", X), tm.predict(model, X),
                               rtol=0, atol=ATOL)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert {op.version for op in onnx.load(str(tmp_path / "model.onnx")).opset_import} == {17}


def test_a_flatten_over_the_batch_axis_exports_too(tmp_path):
    pytest.importorskip("onnx")
    if not hasattr(nn, "Flatten"):
        model = nn.Sequential(nn.Linear(3, 2))
    else:
        model = nn.Sequential(nn.Linear(3, 2), nn.Flatten(start_axis=0))
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    tm.export.to_onnx(model, tmp_path / "flat.onnx", 3)
    np.testing.assert_allclose(run_onnx(tmp_path / "flat.onnx", X), tm.predict(model, X),
                               atol=ATOL)


def run_torch(twin, *arrays):
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        out = twin(*[torch.from_numpy(a) for a in arrays])
    return [o.numpy() for o in out] if isinstance(out, tuple) else out.numpy()


class Sinh(tm.Function):
    """An op of the user's own: neither export knows it."""

    @staticmethod
    def forward(ctx, x):
        ctx.cosh = np.cosh(x)
        return np.sinh(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.cosh * grad


class Hyperbolic(nn.Module):
    def forward(self, X):
        return Sinh.apply(X)


def test_an_op_without_a_translation_is_a_clear_error_naming_it_and_its_module(tmp_path):
    pytest.importorskip("onnx")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), Hyperbolic()))
    with pytest.raises(TypeError, match=r"to_onnx: the op Sinh \(run by module '1\.1' \(Hyperbolic\)\) "
                                        r"has no translation; nothing was written.*Linear"):
        tm.export.to_onnx(model, target, (4,))
    with pytest.raises(TypeError, match=r"the op Sinh \(run by the model itself \(Hyperbolic\)\)"):
        tm.export.to_onnx(Hyperbolic(), target, (4,))
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]     # no temp file left


class Doubled(nn.Sigmoid):                # a built-in layer's subclass with its own forward
    def forward(self, Z):
        return super().forward(Z) * 10


class Residual(nn.Module):
    """A user's block with a skip connection: X + f(X), then a head."""

    def __init__(self, width=6, classes=3):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.GELU(),
                                   nn.Dropout(0.2), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width, eps=1e-3)
        self.head = nn.Linear(width, classes)

    def forward(self, X):
        h = self.norm(X + self.inner(X).tanh() * 0.5)
        return self.head(h).log_softmax(axis=1)


class TwoHeads(nn.Module):
    """Two inputs, two outputs: a merge by concatenation, and a second head on one input."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(5, 4)
        self.out = nn.Linear(8, 2)

    def forward(self, A, B):
        a, b = self.a(A).relu(), self.b(B).sigmoid()
        return self.out(tm.concatenate([a, b], axis=1)), (a - b).mean(axis=1, keepdims=True)


def trained(model, *shapes, dtype=np.float32, seed=0):
    """`model` with running statistics of its own and random inputs of `shapes` (9 rows)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((9, *shape)).astype(dtype) for shape in shapes]
    with tm.no_grad():
        for _ in range(3):
            model(*[a * 2 + 1 for a in arrays])
    return arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [Residual, lambda: nn.Sequential(nn.Linear(6, 6), Doubled())],
                         ids=["skip-connection", "subclassed-layer"])
def test_a_custom_module_exports_both_ways_like_predict(make, dtype, tmp_path):
    pytest.importorskip("onnx")
    tm.manual_seed(0)
    tm.set_default_dtype(dtype)
    try:
        model = make()
    finally:
        tm.set_default_dtype(np.float32)
    (X,) = trained(model, (6,), dtype=dtype)
    expected = tm.predict(model, X)
    tm.export.to_onnx(model, tmp_path / "m.onnx", (6,))
    onnx_out = run_onnx(tmp_path / "m.onnx", X)
    assert onnx_out.dtype == dtype
    np.testing.assert_allclose(onnx_out, expected, rtol=0, atol=ATOL)
    twin = tm.export.to_torch(model).eval()
    torch_out = run_torch(twin, X)
    assert torch_out.dtype == dtype
    np.testing.assert_allclose(torch_out, expected, rtol=0, atol=ATOL)


def test_several_inputs_and_outputs_export_both_ways(tmp_path):
    pytest.importorskip("onnx")
    tm.manual_seed(1)
    model = TwoHeads()
    A, B = trained(model, (3,), (5,))
    expected = model(A, B)
    tm.export.to_onnx(model, tmp_path / "two.onnx", [(3,), (5,)])
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tmp_path / "two.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["X1", "X2"]
    assert [o.name for o in session.get_outputs()] == ["Y1", "Y2"]
    for got, want in zip(session.run(None, {"X1": A, "X2": B}), expected):
        np.testing.assert_allclose(got, want.data, rtol=0, atol=ATOL)
    twin = tm.export.to_torch(model, [(3,), (5,)])
    got = run_torch(twin, A, B)
    assert len(got) == 2
    for g, want in zip(got, expected):
        np.testing.assert_allclose(g, want.data, rtol=0, atol=ATOL)
    with pytest.raises(TypeError, match="takes 2 inputs, got 1"):
        run_torch(twin, A)


class Slicing(nn.Module):
    """Indexing, reductions and statistics in a forward of one's own, some over the batch."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 6)

    def forward(self, X):
        h = self.linear(X)
        rows = h[..., 1:5:2].var(axis=1, keepdims=True, ddof=1) + h[:, 2][:, None]
        batch = h.std(axis=0)[None, :3] + h.var(axis=0, ddof=1)[None, 3:] + h.mean(axis=0)[:3]
        return (h[:, :3] * h[:, 3:] + rows + batch + h.sum(axis=1, keepdims=True)
                - h.max(axis=1, keepdims=True) + h.min(axis=1, keepdims=True).exp().sqrt())


def test_indexing_and_reductions_export_both_ways_for_any_batch_size(tmp_path):
    pytest.importorskip("onnx")
    tm.manual_seed(6)
    model = Slicing()
    X = np.random.default_rng(6).standard_normal((5, 6)).astype(np.float32)
    tm.export.to_onnx(model, tmp_path / "m.onnx")
    for rows in (X, X[:3]):                            # traced on 2 rows: the batch is dynamic
        np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", rows), tm.predict(model, rows),
                                   rtol=0, atol=ATOL)
        np.testing.assert_allclose(run_torch(tm.export.to_torch(model), rows),
                                   tm.predict(model, rows), rtol=0, atol=ATOL)


def residual_two_inputs():
    """The issue's model: Rescaling, a "same" conv, a depthwise conv, BatchNorm, Add, "same" max
    pooling, global pooling, Concatenate with a second input's Linear."""
    images, features = nn.Input((2, 9, 9), name="images"), nn.Input((5,), name="features")
    x = nn.Rescaling(1 / 255, offset=-0.5)(images)
    x = nn.Conv2d(2, 4, 3, stride=2, padding="same")(x)
    h = nn.Conv2d(4, 8, 3, padding="same", groups=4)(x)              # depthwise, multiplier 2
    h = nn.ReLU()(nn.BatchNorm2d(4)(nn.Conv2d(8, 4, 1)(h)))
    x = nn.MaxPool2d(3, stride=2, padding="same")(nn.Add()([x, h]))
    x = nn.Flatten()(nn.AdaptiveAvgPool2d(1)(x))
    y = nn.Concatenate(axis=1)([x, nn.ReLU()(nn.Linear(5, 6)(features))])
    return nn.Model([images, features], nn.LogSoftmax()(nn.Linear(10, 3)(y)))


def test_a_two_input_residual_model_exports_both_ways(tmp_path):
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    tm.manual_seed(7)
    model = residual_two_inputs()
    images, features = trained(model, (2, 9, 9), (5,))
    images = images * 60 + 128
    model.eval()                      # (tm.predict with a tuple of inputs: issue 17's fit work)
    with tm.no_grad():
        expected = model(images, features).data
    tm.export.to_onnx(model, tmp_path / "m.onnx")       # the shapes: model.input_shape
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"X1": images, "X2": features})[0], expected,
                               rtol=0, atol=ATOL)
    twin = tm.export.to_torch(model)
    assert list(twin.state_dict()) == list(model.state_dict())
    np.testing.assert_allclose(run_torch(twin.eval(), images, features), expected, rtol=0,
                               atol=ATOL)
    twin.train()
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    out = twin(torch.from_numpy(images), torch.from_numpy(features))
    torch.nn.functional.nll_loss(out, torch.from_numpy(np.arange(9) % 3)).backward()
    optimizer.step()
    assert np.abs(run_torch(twin.eval(), images, features) - expected).max() > 1e-4


def test_a_wrong_input_shape_fails_with_the_layers_error_before_writing(tmp_path):
    pytest.importorskip("onnx")
    model = nn.Sequential(nn.Linear(64, 10))
    with pytest.raises(ValueError, match=r"expected input of shape \(\.\.\., 64\), got \(2, 63\)"):
        tm.export.to_onnx(model, tmp_path / "m.onnx", (63,))
    with pytest.raises(ValueError, match="to_onnx: input_shape must be a positive int, got 0"):
        tm.export.to_onnx(model, tmp_path / "m.onnx", (0,))
    with pytest.raises(TypeError, match=r"to_onnx: give input_shape.*Sequential does not say"):
        tm.export.to_onnx(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_to_torch_gives_the_same_outputs_and_weights_as_parameters():
    torch = pytest.importorskip("torch")
    model, X = digits_model()
    twin = tm.export.to_torch(model)                   # (64,): the first Linear's width
    assert isinstance(twin, torch.nn.Module)
    assert list(twin.state_dict()) == list(model.state_dict())       # "0.weight", "0.bias", …
    for name, values in model.state_dict().items():
        np.testing.assert_array_equal(twin.state_dict()[name].numpy(), values)
    params = dict(twin.named_parameters())
    assert list(params) == [name for name, _ in model.named_parameters()]
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in params.values())
    np.testing.assert_allclose(run_torch(twin, X), tm.predict(model, X), rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", MODELS)
def test_to_torch_covers_every_exportable_layer(kind):
    pytest.importorskip("torch")
    layers, input_shape = MODELS[kind]
    model, X = stack(layers, input_shape)
    model.eval()
    twin = tm.export.to_torch(model, input_shape)
    assert not twin.training and not any(m.training for m in twin.modules())
    np.testing.assert_allclose(run_torch(twin, X), tm.predict(model, X), rtol=0, atol=ATOL)
    model.train()
    assert all(m.training for m in tm.export.to_torch(model, input_shape).modules())


def test_the_torch_module_trains():
    """One optimizer step in torch changes the outputs; the gradients reach every parameter."""
    torch = pytest.importorskip("torch")
    tm.manual_seed(2)
    model = Residual()
    (X,) = trained(model, (6,))
    twin = tm.export.to_torch(model)
    inputs = torch.from_numpy(X)
    before = twin.eval()(inputs).detach().clone()
    twin.train()
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    loss = torch.nn.functional.nll_loss(twin(inputs), torch.from_numpy(np.arange(9) % 3))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in twin.parameters())
    optimizer.step()
    after = twin.eval()(inputs).detach()
    assert (after - before).abs().max() > 1e-3
    np.testing.assert_allclose(before.numpy(), tm.predict(model, X), rtol=0, atol=ATOL)


def test_in_training_mode_the_torch_module_does_what_the_model_does():
    """BatchNorm on the batch's statistics, its running ones moved by momentum (also None);
    Dropout drops, with the model's p."""
    torch = pytest.importorskip("torch")
    tm.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5, eps=0.3, momentum=0.25), nn.ReLU(),
                          nn.Linear(5, 3), nn.BatchNorm1d(3, momentum=None))
    (X,) = trained(model, (4,))
    twin = tm.export.to_torch(model)
    for _ in range(2):
        expected = model(X).data
        np.testing.assert_allclose(twin(torch.from_numpy(X)).detach().numpy(), expected,
                                   rtol=0, atol=ATOL)
    for name, values in model.state_dict().items():
        np.testing.assert_allclose(twin.state_dict()[name].numpy(), values, rtol=0, atol=ATOL)
    dropping = tm.export.to_torch(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.75)))
    out = dropping(torch.ones(200, 4)).detach().numpy()
    assert 0.6 < (out == 0).mean() < 0.9
    assert not (dropping.eval()(torch.ones(200, 4)) == 0).all(dim=1).any()


def test_exports_keep_each_modules_mode_and_state():
    """A frozen BatchNorm (eval) in a model that trains stays frozen, in the model and in the
    torch module; exporting moves no statistics and draws nothing from the generator."""
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    import tempfile, os
    tm.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Dropout(0.5), nn.Linear(5, 2),
                          nn.BatchNorm1d(2))
    (X,) = trained(model, (4,))
    model.train()
    model[1].eval()                                   # frozen
    modes = [m.training for m in model.modules()]
    state = model.state_dict()
    draw = tm.get_generator().bit_generator.state
    with tempfile.TemporaryDirectory() as folder:
        tm.export.to_onnx(model, os.path.join(folder, "m.onnx"))
    twin = tm.export.to_torch(model)
    assert [m.training for m in model.modules()] == modes
    assert [m.training for m in twin.modules()] == modes
    for name, values in model.state_dict().items():
        np.testing.assert_array_equal(values, state[name])
    assert tm.get_generator().bit_generator.state == draw
    twin(torch.from_numpy(X))                         # the torch module trains, BN 1 frozen
    after = twin.state_dict()
    np.testing.assert_array_equal(after["1.running_mean"].numpy(), state["1.running_mean"])
    assert not np.allclose(after["4.running_mean"].numpy(), state["4.running_mean"])


NORMS = [nn.BatchNorm1d(4, eps=0.5, momentum=0.3), nn.LayerNorm(4, eps=0.25),
         nn.BatchNorm1d(4, eps=2.0, momentum=None, affine=False)]


def test_normalisation_with_its_own_eps_and_momentum_exports_both_ways(tmp_path):
    """eps far from the default 1e-5 and running statistics of their own: an export that
    dropped eps (or momentum, in torch's training mode) would be off by far more than 1e-5."""
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    tm.manual_seed(5)
    dense = nn.Sequential(nn.Linear(3, 4), *NORMS, nn.Linear(4, 2))
    image = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2, eps=0.4, momentum=0.6),
                          nn.LayerNorm((4, 4), eps=0.3), nn.Flatten(), nn.Linear(32, 2))
    for model, shape in [(dense, (3,)), (image, (1, 4, 4))]:
        (X,) = trained(model, shape)
        X = X * 0.2                                   # small variance: eps matters
        expected = tm.predict(model, X)
        tm.export.to_onnx(model, tmp_path / "m.onnx", shape)
        np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", X), expected, rtol=0, atol=ATOL)
        twin = tm.export.to_torch(model, shape)
        np.testing.assert_allclose(run_torch(twin.eval(), X), expected, rtol=0, atol=ATOL)
        twin.train()
        np.testing.assert_allclose(twin(torch.from_numpy(X)).detach().numpy(), model(X).data,
                                   rtol=0, atol=ATOL)
        for name, values in model.state_dict().items():
            np.testing.assert_allclose(twin.state_dict()[name].numpy(), values, rtol=0,
                                       atol=ATOL)


def test_to_torch_refuses_what_it_cannot_translate():
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"to_torch: the op Sinh \(run by module '2' \(Hyperbolic\)\) "
                                        r"has no translation"):
        tm.export.to_torch(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), Hyperbolic()))
    with pytest.raises(TypeError, match="to_torch: expected an nn.Module, got list"):
        tm.export.to_torch([nn.ReLU()])


def test_the_ddp_example_continues_training_the_exported_module(tmp_path, monkeypatch, capsys):
    """examples/ddp_digits.py, as one process of a DDP group (torchrun would start several)."""
    torch = pytest.importorskip("torch")
    import importlib.util
    import pathlib
    import socket

    model, _ = digits_model()
    tm.save_model(model, tmp_path / "digits.npz")
    with socket.socket() as probe:                      # a free port on the loopback interface
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0",
                       "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    path = pathlib.Path(__file__).parent.parent / "examples" / "ddp_digits.py"
    spec = importlib.util.spec_from_file_location("ddp_digits", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                            # as torchrun does (OMP_NUM_THREADS=1)
    try:
        example.main(str(tmp_path / "digits.npz"), epochs=2)
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    losses = [float(line.split("loss ")[1].split()[0]) for line in out.splitlines()
              if line.startswith("epoch")]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert float(out.rsplit("digits: ", 1)[1]) > 0.9


def test_the_torch_module_pickles_whole_into_another_process(tmp_path):
    """torch.save(twin) and torch.load in a fresh interpreter (as multiprocessing does)."""
    torch = pytest.importorskip("torch")
    import os
    import pathlib
    import subprocess
    import sys

    tm.manual_seed(9)
    model = Residual()
    (X,) = trained(model, (6,))
    torch.save(tm.export.to_torch(model).eval(), tmp_path / "twin.pt")
    np.save(tmp_path / "X.npy", X)
    code = ("import numpy as np, torch; twin = torch.load('twin.pt', weights_only=False); "
            "np.save('out.npy', twin(torch.from_numpy(np.load('X.npy'))).detach().numpy())")
    root = str(pathlib.Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), tm.predict(model, X), rtol=0,
                               atol=ATOL)


# The convolution and pooling arguments of the third round: groups (depthwise with a depth
# multiplier), dilation, "same" with a stride (an odd total: the extra row after), "same"
# pooling (max pads −inf, average counts real entries), adaptive and global pooling, ZeroPad2d.
VISION = [lambda: nn.ZeroPad2d((1, 0, 2, 1)),
          lambda: nn.Conv2d(2, 4, 3, stride=2, padding="same"),
          lambda: nn.Conv2d(4, 8, 3, padding="same", groups=4),
          lambda: nn.Conv2d(8, 4, 3, padding=2, dilation=2, groups=2),
          lambda: nn.BatchNorm2d(4, eps=0.1),
          lambda: nn.AdaptiveMaxPool2d((6, 3)),                       # (6, 4) in: bins overlap
          lambda: nn.MaxPool2d(3, stride=2, padding="same"),        # before ReLU: −inf matters
          lambda: nn.AvgPool2d(2, stride=1, padding="same"), lambda: nn.ReLU(),
          lambda: nn.AdaptiveAvgPool2d((2, 1)), lambda: nn.Flatten()]
GLOBAL = [lambda: nn.Conv2d(2, 3, 1), lambda: nn.AdaptiveAvgPool2d(1), lambda: nn.Flatten()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layers", [VISION, GLOBAL, [lambda: nn.AdaptiveMaxPool2d(1)]],
                         ids=["vision", "global-average", "global-max"])
def test_the_new_convolutions_and_pools_export_both_ways(layers, dtype, tmp_path):
    pytest.importorskip("onnx")
    tm.manual_seed(8)
    tm.set_default_dtype(dtype)
    try:
        model = nn.Sequential(*[make() for make in layers])
    finally:
        tm.set_default_dtype(np.float32)
    (X,) = trained(model, (2, 9, 7), dtype=dtype)
    expected = tm.predict(model, X)
    tm.export.to_onnx(model, tmp_path / "m.onnx", (2, 9, 7))
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", X), expected, rtol=0, atol=ATOL)
    twin = tm.export.to_torch(model, (2, 9, 7))
    np.testing.assert_allclose(run_torch(twin.eval(), X), expected, rtol=0, atol=ATOL)
