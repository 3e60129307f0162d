"""Keras's functional API: nn.Input, nn.Model, the merge layers and Rescaling."""

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim
from tinygrad_mlp.tensor import Tensor


def two_input_model():
    """A residual block on images plus a second input's Linear, joined by Concatenate."""
    image, extra = nn.Input((1, 6, 6)), nn.Input((3,), name="extra")
    x = nn.Rescaling(1 / 16)(image)
    x = nn.Conv2d(1, 4, 3, padding=1)(x)
    x = nn.BatchNorm2d(4)(x)
    y = nn.ReLU()(nn.Conv2d(4, 4, 3, padding=1)(x))
    x = nn.Add()([x, y])
    x = nn.Flatten()(nn.MaxPool2d(2)(x))
    z = nn.ReLU()(nn.Linear(3, 5, dtype=np.float32)(extra))
    x = nn.Concatenate(axis=1)([x, z])
    out = nn.Softmax()(nn.Linear(4 * 3 * 3 + 5, 4)(x))
    return nn.Model([image, extra], out, name="two_inputs")


def test_model_computes_what_its_layers_compute():
    tm.manual_seed(1)
    x = nn.Input((5,))
    first, second = nn.Linear(5, 4), nn.Linear(4, 3)
    h = nn.Tanh()(first(x))
    out = nn.Add()([second(h), nn.Linear(5, 3)(x)])
    model = nn.Model(x, out)
    X = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    skip = model.get_layer("linear_2")
    expected = second(first(X).tanh()).data + skip(X).data
    np.testing.assert_allclose(model(X).data, expected, rtol=1e-6)
    assert model.input_shape == (5,) and model.output_shape == (3,)


def test_several_inputs_and_outputs():
    a, b = nn.Input((2,)), nn.Input((3,))
    joined = nn.Concatenate()([a, b])
    head1, head2 = nn.Linear(5, 1)(joined), nn.Linear(5, 2)(joined)
    model = nn.Model([a, b], [head1, head2])
    assert model.input_shape == [(2,), (3,)] and model.output_shape == [(1,), (2,)]
    X1, X2 = np.ones((4, 2), np.float32), np.ones((4, 3), np.float32)
    out = model(X1, X2)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(4, 1), (4, 2)]
    again = model([X1, X2])                          # Keras's model([X1, X2])
    np.testing.assert_array_equal(again[1].data, out[1].data)
    predicted = tm.predict(model, (X1, X2), batch_size=3)
    assert isinstance(predicted, tuple)
    np.testing.assert_allclose(predicted[1], out[1].data, rtol=1e-6)
    with pytest.raises(TypeError, match="takes 2 input"):
        model(X1)
    with pytest.raises(ValueError, match=r"input 'input_1' expects a batch of shape \(N, 3\), "
                                         r"got \(4, 2\)"):
        model(X1, X1)


def test_a_wrong_shape_fails_at_the_line_that_builds_naming_layer_and_shapes():
    x = nn.Input((1, 8, 8))
    h = nn.Flatten()(nn.Conv2d(1, 2, 3)(x))                      # (None, 72)
    with pytest.raises(ValueError) as error:
        nn.Linear(64, 10)(h)
    message = str(error.value)
    assert "Linear(in_features=64, out_features=10" in message
    assert "(None, 72)" in message and "(..., 64)" in message
    with pytest.raises(ValueError, match=r"Add.*\(None, 2, 6, 6\), \(None, 1, 8, 8\).*one shape"):
        nn.Add()([nn.Conv2d(1, 2, 3)(x), x])


def test_a_shared_layer_is_one_layer_and_names_are_keras_like():
    x = nn.Input((4,), name="features")
    shared = nn.Linear(4, 4)
    out = shared(nn.ReLU()(shared(x)))
    out = nn.Linear(4, 2)(out, name="head")
    model = nn.Model(x, out)
    assert list(model.state_dict()) == ["linear.weight", "linear.bias", "head.weight",
                                        "head.bias"]
    assert model.num_parameters() == 4 * 4 + 4 + 4 * 2 + 2
    names = [(node["name"], node["inputs"]) for node in model.graph()]
    assert names == [("linear", ["features"]), ("re_lu", ["linear"]),
                     ("linear[1]", ["re_lu"]), ("head", ["linear[1]"])]
    J = model(np.ones((3, 4), np.float32)).sum()
    J.backward()
    assert shared.weight.grad is not None          # both uses reach the one weight
    conv = [nn.Conv2d(1, 1, 1) for _ in range(3)]
    y = nn.Input((1, 2, 2))
    model = nn.Model(y, conv[2](conv[1](conv[0](y))))
    assert [name for name, _ in model.named_children()] == ["conv2d", "conv2d_1", "conv2d_2"]


def test_names_are_checked():
    x = nn.Input((2,))
    with pytest.raises(ValueError, match="'dense' is given to two different"):
        nn.Model(x, nn.Linear(2, 2)(nn.Linear(2, 2)(x, name="dense"), name="dense"))
    with pytest.raises(ValueError, match="without '.'"):
        nn.Linear(2, 2)(x, name="a.b")
    with pytest.raises(ValueError, match="not among the model's inputs"):
        other = nn.Input((2,))
        nn.Model(x, nn.Add()([x, other]))


def test_merge_layers_work_eagerly_and_check_their_inputs():
    a, b = Tensor(np.full((2, 3), 2.0)), Tensor(np.full((2, 3), 5.0))
    np.testing.assert_array_equal(nn.Add()([a, b]).data, np.full((2, 3), 7.0))
    np.testing.assert_array_equal(nn.Multiply()([a, b, b]).data, np.full((2, 3), 50.0))
    assert nn.Concatenate()([a, b, a]).shape == (2, 9)
    assert nn.Concatenate(axis=0)([a, b]).shape == (4, 3)
    with pytest.raises(ValueError, match="at least 2 inputs"):
        nn.Add()([a])
    with pytest.raises(ValueError, match="agree on every other axis"):
        nn.Concatenate()([a, Tensor(np.ones((3, 3)))])
    with pytest.raises(ValueError, match=r"one shape, got \(2, 3\), \(2, 1\)"):
        nn.Multiply()([a, Tensor(np.ones((2, 1)))])


def test_rescaling():
    X = np.array([[0, 255]], dtype=np.float32)
    np.testing.assert_allclose(nn.Rescaling(1 / 127.5, offset=-1)(X).data, [[-1.0, 1.0]])
    assert nn.Rescaling(2.0)(X).dtype == np.float32
    with pytest.raises(ValueError, match="scale must be a finite number"):
        nn.Rescaling(float("nan"))


def test_modes_parameters_and_building_leave_state_alone():
    x = nn.Input((3,))
    bn = nn.BatchNorm1d(3)
    drop = nn.Dropout(0.5)
    before = tm.get_generator().bit_generator.state
    model = nn.Model(x, drop(bn(x)))
    assert tm.get_generator().bit_generator.state == before      # building drew nothing
    assert int(bn.num_batches_tracked.data) == 0 and bn.training and drop.training
    model.eval()
    assert not bn.training and not drop.training
    bn.train()
    model(np.ones((2, 3), np.float32))                # only the BatchNorm counts this batch
    assert int(bn.num_batches_tracked.data) == 1
    assert model.parameters() == [bn.weight, bn.bias]


def test_a_model_is_a_layer_of_another_model():
    x = nn.Input((4,))
    inner = nn.Model(x, nn.ReLU()(nn.Linear(4, 4)(x)), name="block")
    y = nn.Input((4,))
    outer = nn.Model(y, nn.Linear(4, 1)(inner(inner(y))))
    assert list(outer.state_dict()) == ["model.linear.weight", "model.linear.bias",
                                        "linear.weight", "linear.bias"]
    X = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(outer(X).data, outer.get_layer("linear")(inner(inner(X))).data)


def test_the_two_input_model_round_trips_through_a_model_file(tmp_path):
    model = two_input_model()
    X1 = np.random.default_rng(0).uniform(0, 16, (5, 1, 6, 6)).astype(np.float32)
    X2 = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    model.train()
    model(X1, X2)                                      # move BatchNorm's running statistics
    tm.save_model(model, tmp_path / "two.npz")
    loaded = tm.load_model(tmp_path / "two.npz")
    assert isinstance(loaded, nn.Model) and loaded.name == "two_inputs"
    assert loaded.input_shape == [(1, 6, 6), (3,)] and list(loaded.state_dict()) == \
        list(model.state_dict())
    np.testing.assert_array_equal(loaded.eval()(X1, X2).data, model.eval()(X1, X2).data)


def test_fit_replays_an_nn_model_exactly_as_the_eager_loop():
    X, y = tm.datasets.load_digits()
    X, y = X[:200] / 16, y[:200]

    def history(replay):
        tm.manual_seed(3)
        x = nn.Input((64,))
        h = nn.ReLU()(nn.BatchNorm1d(32)(nn.Linear(64, 32)(x)))
        h = nn.Add()([h, nn.Linear(32, 32)(nn.Dropout(0.2)(h))])
        model = nn.Model(x, nn.Softmax()(nn.Linear(32, 10)(h)))
        calls = []
        model.register_forward_hook(lambda *args: calls.append(1))
        fitted = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), 0.3),
                        epochs=2, batch_size=32, progress=False, replay=replay)
        return fitted.history, model.state_dict(), len(calls)

    (replayed, w1, replay_calls), (eager, w2, eager_calls) = history(None), history(False)
    assert replay_calls < eager_calls - 8          # most steps replayed, not run eagerly
    assert replayed == eager
    for key in w1:
        np.testing.assert_array_equal(w1[key], w2[key])


def test_summary_of_a_model_has_a_row_per_node_with_what_feeds_it():
    model = two_input_model()
    text = nn.summary(model)
    lines = text.splitlines()
    assert lines[0] == 'Model: "two_inputs"'
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "Connected",
                                "to"]
    rows = {line.split()[0]: line for line in lines[4:-5]}
    assert list(rows)[:2] == ["input", "extra"]
    assert rows["add"].split()[-6:] == ["4,", "6,", "6)", "0", "batch_norm2d,", "re_lu"]
    assert rows["concatenate"].split()[-4:] == ["41)", "0", "flatten,", "re_lu_1"]
    assert rows["linear"].split()[-3:] == ["5)", "20", "extra"]
    assert rows["conv2d"].split()[-2:] == ["40", "rescaling"]
    assert f"Total params: {model.num_parameters():,}" in lines
    assert nn.summary(model, [(1, 6, 6), (3,)]) == text
    with pytest.raises(ValueError, match="leave input_shape out"):
        nn.summary(model, (1, 6, 6))
    shared = nn.Linear(2, 2)
    x = nn.Input((2,))
    text = nn.summary(nn.Model(x, shared(shared(x))))
    counts = [line.split()[-2] for line in text.splitlines() if "(Linear)" in line]
    assert counts == ["6", "0"] and "linear[1] (Linear)" in text    # counted once


def test_summary_of_a_module_with_several_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 3), nn.Linear(4, 3)

        def forward(self, x, y):
            return self.a(x) + self.b(y)

    lines = nn.summary(Two(), [(2,), (4,)]).splitlines()
    assert [line.split() for line in lines[4:8]] == [
        ["Input", "0", "(None,", "2)", "0"], ["Input", "1", "(None,", "4)", "0"],
        ["a", "(Linear)", "(None,", "3)", "9"], ["b", "(Linear)", "(None,", "3)", "15"]]
    sequential = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    assert nn.summary(sequential) == nn.summary(sequential, (3,))     # read from the Linear
    with pytest.raises(ValueError, match="give input_shape"):
        nn.summary(nn.Sequential(nn.ReLU()))


# --- fit, evaluate, predict with several inputs; Keras's verbs -----------------------------------

def two_input_data(N=48, seed=0):
    """Images whose class is set by their brightest quadrant, plus 3 noisy extra features."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, N)
    X1 = rng.uniform(0, 4, (N, 1, 6, 6)).astype(np.float32)
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        X1[i, 0, 3 * r:3 * r + 3, 3 * c:3 * c + 3] += 12
    X2 = rng.normal(size=(N, 3)).astype(np.float32)
    return X1, X2, y


def test_fit_evaluate_and_predict_take_a_tuple_of_inputs():
    X1, X2, y = two_input_data()
    model = two_input_model()
    history = tm.fit(model, (X1, X2), y, nn.CrossEntropyLoss(),
                     optim.Adam(model.parameters(), 0.01), epochs=8, batch_size=8,
                     progress=False, validation_data=((X1[:8], X2[:8]), y[:8]))
    assert history["loss"][-1] < history["loss"][0] / 2 and history["accuracy"][-1] > 0.9
    assert len(history["val_loss"]) == 8
    result = tm.evaluate(model, [X1, X2], y, nn.CrossEntropyLoss(), batch_size=5)
    assert result["loss"] < history["loss"][0] / 2 and 0.9 < result["accuracy"] <= 1
    probabilities = tm.predict(model, (X1, X2), batch_size=7)
    np.testing.assert_allclose(probabilities, model.eval()(X1, X2).data, rtol=1e-5, atol=1e-6)
    split = tm.fit(model, (X1, X2), y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), 0.01),
                   epochs=1, validation_split=0.25, progress=False)
    assert split.params["samples"] == 36 and "val_accuracy" in split.history


@pytest.mark.parametrize("X, message", [
    (lambda X1, X2: X1, r"the model takes 2 inputs \['input', 'extra'\]; pass a tuple"),
    (lambda X1, X2: (X1,), r"a tuple of 1 arrays but the model takes 2 input"),
    (lambda X1, X2: (X1, X2[:40]), r"X\[1\] has 40 samples but X\[0\] has 48"),
    (lambda X1, X2: (X1, X1), r"X\[1\] has samples of shape \(1, 6, 6\).*input 'extra' takes "
                              r"samples of shape \(3,\)"),
    (lambda X1, X2: (X1, np.where(X2 > 1, np.nan, X2)), r"X\[1\] contains .* non-finite"),
])
def test_a_wrong_tuple_of_inputs_is_refused_before_any_update(X, message):
    X1, X2, y = two_input_data()
    model = two_input_model()
    before = model.state_dict()
    with pytest.raises(ValueError, match=message):
        tm.fit(model, X(X1, X2), y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), 0.1),
               epochs=1, progress=False)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    with pytest.raises(ValueError, match="evaluate X"):
        tm.evaluate(model, X(X1, X2), y, nn.CrossEntropyLoss())


def test_train_step_replays_a_two_input_model_as_the_eager_loop_does():
    X1, X2, y = two_input_data(16)
    Y = np.eye(4, dtype=np.float32)[y]

    def losses(replay):
        tm.manual_seed(4)
        model = two_input_model()
        calls = []
        model.register_forward_hook(lambda *args: calls.append(1))
        step = tm.TrainStep(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), 0.05),
                            replay=replay)
        values = [step((X1[i:i + 4], X2[i:i + 4]), Y[i:i + 4]) for i in (0, 4, 8, 12, 0, 4)]
        return values, len(calls)

    (replayed, replay_calls), (eager, eager_calls) = losses(None), losses(False)
    assert replayed == eager and eager_calls == 6 and replay_calls == 2   # record + check


@pytest.mark.parametrize("kind", ["Sequential", "Model"])
def test_compile_then_fit_gives_the_history_of_tm_fit(kind):
    X, y = tm.datasets.load_digits()
    X, y = X[:300] / 16, y[:300]

    def model():
        tm.manual_seed(7)
        layers = [nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 10), nn.Softmax()]
        if kind == "Sequential":
            return nn.Sequential(*layers)
        x = h = nn.Input((64,))
        for layer in layers:
            h = layer(h)
        return nn.Model(x, h)

    options = dict(epochs=3, batch_size=16, validation_split=0.2, progress=False)
    functions = model()
    expected = tm.fit(functions, X, y, nn.CrossEntropyLoss(),
                      optim.Adam(functions.parameters(), 0.01), **options)
    verbs = model()
    verbs.compile(optim.Adam(verbs.parameters(), 0.01), nn.CrossEntropyLoss(),
                  metrics=["accuracy"])
    history = verbs.fit(X, y, **options)
    assert history.history == expected.history and history.params == expected.params
    assert verbs.evaluate(X, y) == tm.evaluate(functions, X, y, nn.CrossEntropyLoss())
    np.testing.assert_array_equal(verbs.predict(X), tm.predict(functions, X))


def test_compile_takes_keras_names_and_the_verbs_need_it(capsys):
    x = nn.Input((4,))
    model = nn.Model(x, nn.Softmax()(nn.Linear(4, 3)(x)))
    with pytest.raises(RuntimeError, match=r"call model.compile\(optimizer, loss\) first"):
        model.fit(np.ones((2, 4)), np.array([0, 1]))
    model.compile("adam", "sparse_categorical_crossentropy")
    optimizer, loss = model._compiled
    assert isinstance(optimizer, optim.Adam) and isinstance(loss, nn.CrossEntropyLoss)
    assert optimizer.param_groups[0]["params"] == model.parameters()
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        model.compile("adamax", "mse")
    with pytest.raises(ValueError, match="metrics may be None or"):
        model.compile("sgd", "mse", metrics=["auc"])
    model.summary()
    assert capsys.readouterr().out == nn.summary(model) + "\n"
    assert "_compiled" not in dict(model.named_children())


def issue_model():
    """Issue 17's model: Rescaling, a "same" conv, a depthwise conv, BatchNorm, Add, "same" max
    pooling, global pooling, and Concatenate with a second input's Linear."""
    image, extra = nn.Input((1, 8, 8), name="image"), nn.Input((3,), name="extra")
    x = nn.Rescaling(1 / 16)(image)
    x = nn.ReLU()(nn.Conv2d(1, 8, 3, padding="same")(x))
    y = nn.BatchNorm2d(8)(nn.Conv2d(8, 8, 3, padding="same", groups=8)(x))    # depthwise
    x = nn.Add()([x, y])
    x = nn.MaxPool2d(3, stride=2, padding="same")(x)                          # (None, 8, 4, 4)
    x = nn.Flatten()(nn.AdaptiveAvgPool2d(1)(x))                               # (None, 8)
    z = nn.ReLU()(nn.Linear(3, 4)(extra))
    out = nn.Softmax()(nn.Linear(12, 4)(nn.Concatenate(axis=1)([x, z])))
    return nn.Model([image, extra], out, name="issue17")


def test_the_issues_two_input_residual_model_trains_saves_and_summarises(tmp_path):
    X1, X2, y = two_input_data(64)
    X1 = np.pad(X1, ((0, 0), (0, 0), (1, 1), (1, 1)))               # 8 × 8 images
    model = issue_model()
    assert model.get_layer("conv2d_1").weight.shape == (8, 1, 3, 3)         # depthwise
    history = tm.fit(model, (X1, X2), y, nn.CrossEntropyLoss(),
                     optim.Adam(model.parameters(), 0.02), epochs=10, batch_size=16,
                     progress=False)
    assert history["loss"][-1] < history["loss"][0] / 2
    expected = tm.predict(model, (X1, X2))
    tm.save_model(model, tmp_path / "issue17.npz")
    loaded = tm.load_model(tmp_path / "issue17.npz")
    np.testing.assert_array_equal(tm.predict(loaded, (X1, X2)), expected)
    text = nn.summary(loaded)
    for row in ["image (Input)", "conv2d_1 (Conv2d)", "add (Add)", "max_pool2d (MaxPool2d)",
                "adaptive_avg_pool2d (AdaptiveAvgPool2d)", "concatenate (Concatenate)"]:
        assert row in text
    assert "(None, 8, 4, 4)" in text and f"Total params: {model.num_parameters():,}" in text


def test_the_issues_two_input_residual_model_exports_like_predict(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="runs the exported ONNX file")
    torch = pytest.importorskip("torch", reason="runs the exported torch module")
    pytest.importorskip("onnx", reason="writes the ONNX file")
    X1, X2, y = two_input_data(16)
    X1 = np.pad(X1, ((0, 0), (0, 0), (1, 1), (1, 1)))
    model = issue_model()
    tm.fit(model, (X1, X2), y, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), 0.02),
           epochs=2, progress=False)                      # BatchNorm statistics of its own
    expected = tm.predict(model, (X1, X2))
    tm.export.to_onnx(model, tmp_path / "issue17.onnx")
    session = ort.InferenceSession(str(tmp_path / "issue17.onnx"),
                                   providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"X1": X1, "X2": X2})[0], expected, atol=1e-5)
    twin = tm.export.to_torch(model).eval()
    with torch.no_grad():
        out = twin(torch.from_numpy(X1), torch.from_numpy(X2)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)
