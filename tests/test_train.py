"""fit / evaluate / predict, History, callbacks: the blog's three ways to learn, end to end."""

import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim
from tinygrad_mlp.data import train_test_split
from tinygrad_mlp.datasets import blobs, load_digits


def blog_net(D=2, M=8, K=3, seed=0):
    """The blog's network: D → M sigmoid → K softmax."""
    tm.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, M), nn.Sigmoid(), nn.Linear(M, K), nn.Softmax())


def toy(n=60, seed=0):
    """Three 2-D Gaussian classes, float32 X and int labels."""
    X, y = blobs(n, centers=3, std=0.5, seed=seed)
    return X.astype(np.float32), y


def same_state(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


class Recorder(tm.Callback):
    """Weights at every epoch start and after every batch, and the batch logs."""

    def __init__(self):
        self.epoch_begin, self.epoch_end, self.batches = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_begin.append(self.model.state_dict())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end.append(self.model.state_dict())

    def on_batch_end(self, batch, logs=None):
        self.batches.append((batch, logs["loss"], logs["size"], self.model.state_dict()))


class Frozen:
    """An optimizer that never changes anything: the weights stay fixed through a fit."""

    def zero_grad(self):
        pass

    def step(self):
        pass


# --- the three ways to learn ------------------------------------------------------------------

@pytest.mark.parametrize("batch_size, lr, epochs", [(None, 1.0, 30), (1, 0.1, 3), (8, 0.5, 10)],
                         ids=["gradient-descent", "stochastic", "mini-batch"])
def test_each_way_to_learn_lowers_the_cost(batch_size, lr, epochs):
    X, y = toy()
    model = blog_net()
    loss = nn.CrossEntropyLoss()
    before = tm.evaluate(model, X, y, loss)["loss"]
    history = tm.fit(model, X, y, loss, optim.SGD(model.parameters(), lr=lr), epochs=epochs,
                     batch_size=batch_size, progress=False)
    after = tm.evaluate(model, X, y, loss)["loss"]
    assert after < 0.5 * before
    assert history["loss"][-1] < history["loss"][0]
    assert history.params["steps"] == {None: 1, 1: 60, 8: 8}[batch_size]


def test_same_seed_gives_bit_identical_weights_and_history():
    X, y = toy()
    X_copy, y_copy = X.copy(), y.copy()
    runs = []
    for _ in range(2):
        tm.manual_seed(3)
        model = blog_net(seed=3)
        history = tm.fit(model, X, y, nn.CrossEntropyLoss(),
                         optim.SGD(model.parameters(), lr=0.3, momentum=0.9), epochs=4,
                         batch_size=5, validation_split=0.2, progress=False)
        runs.append((model.state_dict(), history.history))
    assert same_state(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert np.array_equal(X, X_copy) and np.array_equal(y, y_copy)   # shuffled by index only


def test_shuffle_changes_the_order_and_false_keeps_it():
    X, y = toy()
    results = {}
    for shuffle in (True, False):
        model = blog_net()
        recorder = Recorder()
        tm.fit(model, X, y, nn.CrossEntropyLoss(), Frozen(), epochs=2, batch_size=6,
               shuffle=shuffle, callbacks=[recorder], progress=False)
        results[shuffle] = [loss for _, loss, _, _ in recorder.batches]
    assert results[False][:10] == results[False][10:]        # same order every epoch
    assert results[True][:10] != results[True][10:]          # a new order every epoch
    assert results[True][:10] != results[False][:10]


# --- History and progress ------------------------------------------------------------------------

def test_history_holds_exactly_the_printed_numbers(capsys):
    X, y = toy()
    model = blog_net()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
                     epochs=3, batch_size=16, validation_data=(X[:20], y[:20]))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3                                    # stdout is not a terminal: lines
    for epoch, line in enumerate(lines):
        assert line.startswith(f"epoch {epoch + 1}/3 - ")
        printed = dict(re.findall(r"(\w+) (-?\d+\.\d{4})\b", line))
        assert list(printed) == ["loss", "accuracy", "val_loss", "val_accuracy"]
        for key, text in printed.items():
            assert f"{history[key][epoch]:.4f}" == text
        assert line.endswith(f"{history.seconds[epoch]:.2f}s")
    assert history.epoch == [0, 1, 2]
    assert all(type(v) is float for values in history.history.values() for v in values)


def test_history_api():
    X, y = toy()
    model = blog_net()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
                     epochs=2, progress=False)
    assert history["loss"] is history.history["loss"] and len(history["loss"]) == 2
    assert "accuracy" in history and "val_loss" not in history
    assert len(history.seconds) == 2 and all(s > 0 for s in history.seconds)
    assert len(history) == 2 and "2 epochs" in repr(history)
    with pytest.raises(KeyError, match="val_loss.*recorded"):
        history["val_loss"]


def test_progress_false_prints_nothing(capsys):
    X, y = toy()
    model = blog_net()
    tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
           epochs=2, batch_size=4, progress=False)
    assert capsys.readouterr() == ("", "")


def test_epoch_loss_is_the_batch_losses_weighted_by_size():
    """With the weights fixed, the weighted mean of batch means is the mean over all rows."""
    X, y = toy(n=10)
    model = blog_net()
    loss = nn.CrossEntropyLoss()
    recorder = Recorder()
    history = tm.fit(model, X, y, loss, Frozen(), epochs=1, batch_size=4, callbacks=[recorder],
                     progress=False)
    sizes = [size for _, _, size, _ in recorder.batches]
    losses = [value for _, value, _, _ in recorder.batches]
    assert sizes == [4, 4, 2]                                  # the last short batch is kept
    expected = tm.evaluate(model, X, y, loss)["loss"]
    assert history["loss"][0] == pytest.approx(expected, rel=1e-5)
    assert history["loss"][0] == pytest.approx(sum(l * n for l, n in zip(losses, sizes)) / 10,
                                               rel=1e-12)
    assert np.mean(losses) != pytest.approx(expected, rel=1e-5)   # the unweighted mean is not


@given(st.integers(1, 25), st.integers(1, 30), st.booleans())
def test_every_sample_counts_once_per_epoch(n, batch_size, shuffle):
    """Any N and batch size (larger than N too): with fixed weights the epoch loss and accuracy
    are those of the whole set, so every row was used exactly once, the last short batch too."""
    X, y = toy(n=25)
    X, y = X[:n], y[:n]
    model = blog_net()
    loss = nn.CrossEntropyLoss()
    history = tm.fit(model, X, y, loss, Frozen(), epochs=2, batch_size=batch_size,
                     shuffle=shuffle, progress=False)
    whole = tm.evaluate(model, X, y, loss)
    assert history.params["steps"] == -(-n // min(batch_size, n))
    assert history["loss"] == pytest.approx([whole["loss"]] * 2, rel=1e-5)
    assert history["accuracy"] == [whole["accuracy"]] * 2


def test_accuracy_only_for_class_targets():
    X, y = toy()
    model = blog_net()
    one_hot = tm.data.one_hot(y, 3)
    history = tm.fit(model, X, one_hot, nn.CrossEntropyLoss(),
                     optim.SGD(model.parameters(), lr=0.5), epochs=1, progress=False)
    assert "accuracy" in history
    tm.manual_seed(0)
    regression = nn.Sequential(nn.Linear(2, 1))
    history = tm.fit(regression, X, X[:, :1] * 2, nn.MSELoss(),
                     optim.SGD(regression.parameters(), lr=0.1), epochs=1, progress=False)
    assert list(history.keys()) == ["loss"]


def test_inputs_are_cast_to_the_parameter_dtype():
    X, y = toy()
    model = blog_net()
    optimizer = optim.SGD(model.parameters(), lr=0.5)
    tm.fit(model, X.astype(np.float64), y.astype(np.int32), nn.CrossEntropyLoss(), optimizer,
           epochs=1, batch_size=8, progress=False)
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32 for p in model.parameters())
    tm.set_default_dtype(np.float64)
    model = blog_net()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
                     epochs=1, batch_size=8, progress=False)
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    assert type(history["loss"][0]) is float


# --- validation ----------------------------------------------------------------------------------

def test_validation_split_is_shuffled_and_stratified(monkeypatch):
    """Rows sorted by class: the last 20% are all one class; the split must not take them."""
    X, y = toy(n=100)
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    seen = {}
    evaluate = tm.train.evaluate

    def spy(model, X_val, Y_val, loss, batch_size=None):
        seen["X"], seen["y"] = X_val, Y_val
        return evaluate(model, X_val, Y_val, loss, batch_size)

    monkeypatch.setattr(tm.train.loop, "evaluate", spy)
    model = blog_net()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
                     epochs=1, validation_split=0.2, progress=False)
    assert len(seen["y"]) == 20 and history.params["samples"] == 80
    exact = np.bincount(y, minlength=3) * 20 / 100             # each class's exact share
    assert np.all(np.abs(np.bincount(seen["y"], minlength=3) - exact) < 1)
    assert not np.array_equal(seen["X"], X[-20:])
    rows = {tuple(row) for row in X.tolist()}
    assert {tuple(row) for row in seen["X"].tolist()} <= rows
    assert "val_loss" in history and "val_accuracy" in history


def test_validation_loss_is_the_training_loss_for_the_same_weights():
    """Huge logits: only the Softmax-fused cross-entropy gets this loss right (no clipping)."""
    X, y = toy(n=12)
    model = blog_net()
    model[2].weight.data[...] *= 300                           # saturate the softmax
    loss = nn.CrossEntropyLoss()
    recorded = loss(model(tm.Tensor(X)), y).item()             # what a training step computes
    with tm.no_grad():
        clipped = loss(model(tm.Tensor(X)), y).item()          # what an unrecorded pass would
    assert recorded != pytest.approx(clipped, rel=1e-3)
    assert tm.evaluate(model, X, y, loss)["loss"] == pytest.approx(recorded, rel=1e-6)
    history = tm.fit(model, X, y, loss, Frozen(), epochs=1, validation_data=(X, y),
                     progress=False)
    assert history["val_loss"][0] == pytest.approx(history["loss"][0], rel=1e-6)
    assert history["val_loss"][0] == pytest.approx(recorded, rel=1e-6)


def test_val_loss_uses_the_end_of_epoch_weights():
    X, y = toy()
    model = blog_net()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
                     epochs=2, batch_size=8, validation_data=(X[:15], y[:15]), progress=False)
    final = tm.evaluate(model, X[:15], y[:15], nn.CrossEntropyLoss())
    assert history["val_loss"][-1] == final["loss"]
    assert history["val_accuracy"][-1] == final["accuracy"]


# --- input validation: every error before any weight changes ----------------------------------

def _bad(X, y):
    nan_X, inf_Y = X.copy(), np.eye(3, dtype=np.float32)[y]
    nan_X[3, 1] = np.nan
    inf_Y[5, 2] = np.inf
    return {
        "nan in X": (dict(X=nan_X), r"X contains 1 non-finite.*row 3"),
        "inf in Y": (dict(Y=inf_Y), r"Y contains 1 non-finite.*row 5, position \(2,\)"),
        "empty": (dict(X=X[:0], Y=y[:0]), r"X has 0 samples"),
        "too large for float32": (dict(X=np.full((60, 2), 1e300)),
                                  r"X contains 120 non-finite .* after casting to .* float32"),
        "rows disagree": (dict(Y=y[:-1]), r"X has 60 samples but Y has 59"),
        "batch_size 0": (dict(batch_size=0), r"batch_size .* got 0"),
        "batch_size float": (dict(batch_size=2.5), r"batch_size .* got 2\.5"),
        "batch_size bool": (dict(batch_size=True), r"batch_size .* got True"),
        "negative epochs": (dict(epochs=-1), r"epochs must be an int >= 0, got -1"),
        "validation_split 1": (dict(validation_split=1.0), r"validation_split .* got 1\.0"),
        "validation_split negative": (dict(validation_split=-0.1), r"validation_split"),
        "validation_split leaves nothing": (dict(validation_split=0.999),
                                            r"leaves 0 training samples"),
        "nan in validation X": (dict(validation_data=(nan_X, y)),
                                r"validation X contains 1 non-finite"),
        "validation rows disagree": (dict(validation_data=(X, y[:-2])),
                                     r"validation X has 60 samples but validation Y has 58"),
        "both validations": (dict(validation_data=(X, y), validation_split=0.2), r"not both"),
        "target does not fit the output": (dict(Y=np.zeros((60, 4), np.float32)),
                                           r"\(60, 3\).*\(60, 4\)|\(8, 3\).*\(8, 4\)"),
    }


@pytest.mark.parametrize("case", list(_bad(*toy())))
def test_bad_input_is_a_value_error_before_any_weight_changes(case):
    X, y = toy()
    overrides, message = _bad(X, y)[case]
    model = blog_net()
    before = model.state_dict()
    optimizer = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    arguments = dict(X=X, Y=y, epochs=2, batch_size=8, progress=False)
    arguments.update(overrides)
    with pytest.raises(ValueError, match=message):
        tm.fit(model, loss=nn.CrossEntropyLoss(), optimizer=optimizer, **arguments)
    assert same_state(model.state_dict(), before)


def test_zero_epochs_changes_nothing():
    X, y = toy()
    model = blog_net()
    before = model.state_dict()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1.0),
                     epochs=0, progress=False)
    assert len(history) == 0 and history.history == {}
    assert same_state(model.state_dict(), before)


# --- divergence -----------------------------------------------------------------------------

class _InjectInf(tm.Function):
    @staticmethod
    def forward(ctx, x, poison=False):
        return x + np.float32(np.inf) if poison else x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


class InjectInf(nn.Module):
    """Identity, except that its `at`-th call in training mode (1-based) outputs inf (fit's
    up-front check of the targets runs one row in eval mode first)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, Z):
        self.calls += self.training
        return _InjectInf.apply(Z, poison=self.calls == self.at)


def test_a_non_finite_loss_stops_fit_and_keeps_the_last_weights():
    X, y = toy(n=24)
    tm.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Sigmoid(), nn.Linear(8, 3), InjectInf(at=9),
                          nn.Softmax())
    recorder = Recorder()
    with pytest.raises(FloatingPointError, match=r"epoch 2/5, batch 3/6.*skipped") as error:
        tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
               epochs=5, batch_size=4, callbacks=[recorder], progress=False)
    assert len(recorder.batches) == 8                          # 6 + 2 updates were applied
    assert same_state(model.state_dict(), recorder.batches[-1][3])
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    assert error.value.history["loss"] == pytest.approx(error.value.history["loss"][:1])
    assert len(error.value.history) == 1                       # the completed epoch


def test_weights_that_overflow_are_restored_to_the_epoch_start():
    """lr = 1e38: the first update overflows float32 to inf; the next loss is NaN."""
    rng = np.random.default_rng(0)
    X = 10 * rng.standard_normal((40, 3)).astype(np.float32)
    Y = X @ np.ones((3, 1), np.float32)
    tm.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1))
    recorder = Recorder()
    with pytest.raises(FloatingPointError, match=r"epoch 1/3, batch 2/5.*start of epoch 1"):
        tm.fit(model, X, Y, nn.MSELoss(), optim.SGD(model.parameters(), lr=1e38), epochs=3,
               batch_size=8, callbacks=[recorder], progress=False)
    assert not np.isfinite(recorder.batches[0][3]["0.weight"]).all()   # the overflow happened
    assert same_state(model.state_dict(), recorder.epoch_begin[0])


class PoisonUnused:
    """SGD, and at the 3rd step an unused parameter becomes NaN (the loss cannot see it)."""

    def __init__(self, model, unused):
        self.sgd, self.unused, self.steps = optim.SGD(model.parameters(), lr=0.1), unused, 0

    def zero_grad(self):
        self.sgd.zero_grad()

    def step(self):
        self.sgd.step()
        self.steps += 1
        if self.steps == 3:
            self.unused.data[...] = np.nan


def test_weights_non_finite_behind_finite_losses_are_caught_at_epoch_end():
    X, y = toy(n=20)
    model = blog_net()
    model.unused = tm.Tensor(np.zeros(2, np.float32), requires_grad=True)
    recorder = Recorder()
    with pytest.raises(FloatingPointError, match=r"during epoch 1/2.*non-finite"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), PoisonUnused(model, model.unused), epochs=2,
               batch_size=5, callbacks=[recorder], progress=False)
    assert same_state(model.state_dict(), recorder.epoch_begin[0])


# --- callbacks --------------------------------------------------------------------------------

def test_early_stopping_restores_the_best_weights():
    """Validating on the opposite labels: val_loss gets worse after the first epoch."""
    X, y = toy()
    model = blog_net()
    recorder = Recorder()
    stop = tm.EarlyStopping(monitor="val_loss", patience=1)
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1.0),
                     epochs=20, validation_data=(X, (y + 1) % 3), callbacks=[recorder, stop],
                     progress=False)
    assert np.all(np.diff(history["val_loss"]) > 0)
    assert stop.best_epoch == 0 and stop.stopped_epoch == 1 and len(history) == 2
    assert same_state(model.state_dict(), recorder.epoch_end[0])
    assert not same_state(model.state_dict(), recorder.epoch_end[-1])


def test_early_stopping_waits_patience_epochs_and_can_keep_last_weights():
    X, y = toy()
    model = blog_net()
    stop = tm.EarlyStopping(monitor="val_loss", patience=3, restore_best=False)
    recorder = Recorder()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1.0),
                     epochs=20, validation_data=(X, (y + 1) % 3), callbacks=[recorder, stop],
                     progress=False)
    assert len(history) == 4                                   # 3 epochs without improvement
    assert same_state(model.state_dict(), recorder.epoch_end[-1])


def test_early_stopping_on_accuracy_and_bad_monitor():
    X, y = toy()
    model = blog_net()
    stop = tm.EarlyStopping(monitor="accuracy", patience=0)
    assert stop.mode == "max"
    tm.fit(model, X, y, nn.CrossEntropyLoss(), Frozen(), epochs=5, callbacks=[stop],
           progress=False)
    assert stop.stopped_epoch == 1                             # frozen weights never improve
    with pytest.raises(ValueError, match="val_loss.*validation_data"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), Frozen(), epochs=1,
               callbacks=[tm.EarlyStopping()], progress=False)
    with pytest.raises(ValueError, match="patience"):
        tm.EarlyStopping(patience=-1)


def test_callback_hooks_are_called_in_order():
    calls = []

    class Log(tm.Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_batch_end(self, batch, logs=None):
            calls.append(f"batch {batch}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    X, y = toy(n=10)
    model = blog_net()
    tm.fit(model, X, y, nn.CrossEntropyLoss(), Frozen(), epochs=2, batch_size=5,
           callbacks=[Log()], progress=False)
    assert calls == ["train_begin", "epoch_begin 0", "batch 0", "batch 1",
                     "epoch_end 0 ['accuracy', 'loss']", "epoch_begin 1", "batch 0", "batch 1",
                     "epoch_end 1 ['accuracy', 'loss']", "train_end"]
    with pytest.raises(TypeError, match="Callback"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), Frozen(), callbacks=[print])


# --- predict and evaluate -------------------------------------------------------------------------

class Keep(nn.Module):
    """Wraps a model and keeps its last output Tensor, to look at the graph behind it."""

    def __init__(self, model):
        super().__init__()
        self.model, self.outputs = model, []

    def forward(self, X):
        self.outputs.append(self.model(X))
        return self.outputs[-1]


def test_predict_records_nothing_and_matches_the_forward_pass():
    X, _ = toy()
    model = Keep(blog_net())
    out = tm.predict(model, X.astype(np.float64))
    assert type(out) is np.ndarray and out.dtype == np.float32 and out.shape == (60, 3)
    assert tm.graph_size(model.outputs[-1]) == 0 and not model.outputs[-1].requires_grad
    expected = model.model(tm.Tensor(X))
    assert tm.graph_size(expected) > 0                         # a normal call does record
    np.testing.assert_allclose(out, expected.data, rtol=1e-6)
    chunks = tm.predict(model, X, batch_size=7)
    assert len(model.outputs) == 1 + 9                         # 60 rows in chunks of 7
    np.testing.assert_allclose(chunks, out, rtol=1e-6)
    assert all(tm.graph_size(o) == 0 for o in model.outputs)
    assert model.training                                      # mode restored after predict


@given(st.integers(1, 30), st.integers(1, 12))
def test_evaluate_in_batches_equals_the_full_batch(n, batch_size):
    X, y = toy(n=30)
    X, y = X[:n], y[:n]
    model = blog_net()
    loss = nn.CrossEntropyLoss()
    full = tm.evaluate(model, X, y, loss)
    batched = tm.evaluate(model, X, y, loss, batch_size=batch_size)
    assert batched["loss"] == pytest.approx(full["loss"], rel=1e-5)
    assert batched["accuracy"] == full["accuracy"]
    predicted = tm.predict(model, X).argmax(axis=1)
    assert full["accuracy"] == np.mean(predicted == y)


# --- the blog's promise: handwritten digits -------------------------------------------------------

def test_held_out_accuracy_on_digits_is_at_least_95_percent():
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.25, seed=0)
    model = blog_net(D=64, M=64, K=10)
    tm.fit(model, X_train, y_train, nn.CrossEntropyLoss(),
           optim.SGD(model.parameters(), lr=0.5, momentum=0.9), epochs=30, batch_size=16,
           progress=False)
    assert len(X_test) == 450
    assert tm.evaluate(model, X_test, y_test, nn.CrossEntropyLoss())["accuracy"] >= 0.95


def test_the_progress_bar_shows_the_running_loss_and_the_epoch_logs(capsys):
    X, y = toy()
    model = blog_net()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
                     epochs=2, batch_size=1, progress="bar")
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and "60/60" in out
    for epoch in range(2):
        assert (f"loss {history['loss'][epoch]:.4f} - accuracy "
                f"{history['accuracy'][epoch]:.4f}") in out
    with pytest.raises(ValueError, match="progress"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), Frozen(), progress="verbose")


def test_importing_the_package_does_not_import_tqdm():
    import subprocess
    import sys
    code = "import sys, tinygrad_mlp; print('tqdm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=str(__import__("pathlib").Path(tm.__file__).parents[1]))
    assert result.stdout.strip() == "False", result.stderr


# --- which models fit replays: a property each module class declares ---------------------------

class CountingIdentity(nn.Module):
    """Its own forward: not replayable unless the class says so; counts how often it runs."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, X):
        self.calls += 1
        return X


class VouchedIdentity(CountingIdentity):
    replayable = True


def test_replayable_is_declared_per_class_and_a_new_forward_must_declare_it_again():
    assert nn.Linear.replayable and nn.Sequential.replayable and nn.CrossEntropyLoss.replayable
    assert not nn.Module.replayable and not CountingIdentity.replayable

    class WiderLinear(nn.Linear):      # no forward of its own: the built-in one runs
        pass

    class ScaledLinear(nn.Linear):     # a forward of its own: it must vouch for it
        def forward(self, X):
            return super().forward(X) * 2.0

    assert WiderLinear.replayable and not ScaledLinear.replayable and VouchedIdentity.replayable


@pytest.mark.parametrize("layer, replayed", [(CountingIdentity, False), (VouchedIdentity, True)])
def test_fit_replays_only_models_whose_modules_all_declare_it(layer, replayed):
    X, y = toy(n=12)
    tm.manual_seed(0)
    counter = layer()
    model = nn.Sequential(nn.Linear(2, 3), counter, nn.Softmax())
    tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
           epochs=2, batch_size=1, progress=False)
    # (+ 1: fit checks the targets against the model's output for one row before training)
    if replayed:    # recorded once, then one eager check of the first replay (+ the K probe)
        assert counter.calls <= 4 + 1
    else:           # built anew for each of the 2 × 12 steps
        assert counter.calls == 24 + 1


def test_a_history_shows_itself_as_a_table_of_its_epochs():
    history = tm.History()
    history.append(0, {"loss": 0.5, "accuracy": 0.75}, 0.125)
    history.append(1, {"loss": 0.25, "accuracy": 0.875}, 0.5)
    table = history._repr_html_()                       # what Jupyter displays
    assert "<th>epoch</th><th>loss</th><th>accuracy</th><th>seconds</th>" in table
    assert "<tr><td>2</td><td>0.2500</td><td>0.8750</td><td>0.50</td></tr>" in table
    assert table.count("<tr>") == 3                     # the header and one row per epoch


def test_a_new_built_in_layer_replays_without_declaring_it_and_a_user_layer_does_not():
    namespace = {"nn": nn}
    source = ("class _Doubling(nn.Module):\n"
              "    def forward(self, X):\n"
              "        return X * 2.0\n")
    exec(compile(source, "<built-in>", "exec"), {**namespace, "__name__": "tinygrad_mlp.nn.new"},
         namespace)                    # defined as if in a module of the package
    built_in = namespace["_Doubling"]
    exec(compile(source, "<user>", "exec"), {**namespace, "__name__": "my_project"}, namespace)
    user = namespace["_Doubling"]
    assert built_in.__module__ == "tinygrad_mlp.nn.new" and built_in.replayable
    assert user.__module__ == "my_project" and not user.replayable
    tm.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), built_in())
    assert tm.TrainStep(model, nn.MSELoss(), tm.optim.SGD(model.parameters(), lr=0.1)).replay
