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


class Doubler(nn.Module):
    def forward(self, X):
        return X * 2


def test_a_layer_without_a_translation_is_a_clear_error_and_writes_nothing(tmp_path):
    pytest.importorskip("onnx")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), Doubler()))
    with pytest.raises(TypeError, match=r"layer '1\.1' \(Doubler\) has no translation.*nn\.Linear"):
        tm.export.to_onnx(model, target, (4,))
    with pytest.raises(TypeError, match=r"layer 'Doubler' \(Doubler\)"):
        tm.export.to_onnx(Doubler(), target, (4,))
    assert target.read_bytes() == b"previous"


def test_a_subclass_of_a_built_in_layer_is_not_taken_for_it(tmp_path):
    pytest.importorskip("onnx")

    class Sigmoid(nn.Sigmoid):                # same name, its own forward
        def forward(self, Z):
            return super().forward(Z) * 10

    with pytest.raises(TypeError, match=r"\(Sigmoid\) has no translation"):
        tm.export.to_onnx(nn.Sequential(nn.Linear(2, 2), Sigmoid()), tmp_path / "m.onnx", (2,))


def test_a_wrong_input_shape_fails_with_the_layers_error_before_writing(tmp_path):
    pytest.importorskip("onnx")
    model = nn.Sequential(nn.Linear(64, 10))
    with pytest.raises(ValueError, match=r"expected input of shape \(\.\.\., 64\), got \(2, 63\)"):
        tm.export.to_onnx(model, tmp_path / "m.onnx", (63,))
    with pytest.raises(ValueError, match="to_onnx: input_shape must be a positive int, got 0"):
        tm.export.to_onnx(model, tmp_path / "m.onnx", (0,))
    assert list(tmp_path.iterdir()) == []


def test_to_torch_gives_the_same_outputs_and_weights():
    torch = pytest.importorskip("torch")
    model, X = digits_model()
    twin = tm.export.to_torch(model)
    assert isinstance(twin, torch.nn.Sequential)
    assert list(twin.state_dict()) == list(model.state_dict())       # "0.weight", "0.bias", …
    np.testing.assert_array_equal(twin[0].weight.detach().numpy(), model[0].weight.data.T)
    with torch.no_grad():
        out = twin(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, tm.predict(model, X), rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", MODELS)
def test_to_torch_covers_every_exportable_layer(kind):
    torch = pytest.importorskip("torch")
    layers, input_shape = MODELS[kind]
    model, X = stack(layers, input_shape)
    model.eval()
    twin = tm.export.to_torch(model)
    assert not twin.training
    with torch.no_grad():
        out = twin(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, tm.predict(model, X), rtol=0, atol=ATOL)
    model.train()
    assert tm.export.to_torch(model).training                   # the mode comes along


def test_to_torch_refuses_what_it_cannot_translate():
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"to_torch: layer '2' \(Doubler\) has no translation"):
        tm.export.to_torch(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), Doubler()))
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
