"""TrainStep: a replayed step gives exactly what the eager engine gives, and refuses to replay
what it cannot replay faithfully."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim
from tinygrad_mlp.train.replay import TrainStep


def _blog_network(D, M, K, output, seed=0):
    tm.manual_seed(seed)
    last = nn.Softmax() if output == "softmax" else nn.Sigmoid()
    return nn.Sequential(nn.Linear(D, M), nn.Sigmoid(), nn.Linear(M, K), last)


def _train(replay, X, Y, batch, output, loss, dtype, optimizer="sgd"):
    tm.set_default_dtype(dtype)
    model = _blog_network(X.shape[1], 5, Y.shape[1], output)
    opt = (optim.SGD(model.parameters(), lr=0.5, momentum=0.9) if optimizer == "sgd"
           else optim.Adam(model.parameters(), lr=0.01))
    step = TrainStep(model, loss, opt, replay=replay)
    losses = [step(X[i:i + batch], Y[i:i + batch]) for _ in range(3)
              for i in range(0, len(X), batch)]
    return losses, [p.data.copy() for p in model.parameters()], step


@given(N=st.integers(2, 9), batch=st.integers(1, 4), dtype=st.sampled_from([np.float32, np.float64]),
       case=st.sampled_from(["ce", "mse", "bce"]), optimizer=st.sampled_from(["sgd", "adam"]))
def test_replay_matches_the_eager_engine_bit_for_bit(N, batch, dtype, case, optimizer):
    rng = np.random.default_rng(N)
    X = rng.standard_normal((N, 4)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, N)]
    output, loss = {"ce": ("softmax", nn.CrossEntropyLoss()), "mse": ("sigmoid", nn.MSELoss()),
                    "bce": ("sigmoid", nn.BCELoss())}[case]
    eager_losses, eager_weights, _ = _train(False, X, Y, batch, output, loss, dtype, optimizer)
    losses, weights, step = _train(True, X, Y, batch, output, loss, dtype, optimizer)
    assert step.replay, "the blog's network should stay replayable"
    assert losses == eager_losses
    for w, e in zip(weights, eager_weights):
        assert w.dtype == dtype
        np.testing.assert_array_equal(w, e)


def test_class_index_targets_are_converted_in_python_so_the_step_stays_eager():
    X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    model = _blog_network(4, 5, 3, "softmax")
    step = TrainStep(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1))
    step(X[:2], y[:2])
    assert not step.replay
    before = model[0].weight.data.copy()
    step(X[2:4], y[2:4])                      # still trains, eagerly
    assert not np.array_equal(before, model[0].weight.data)


class _DataDependent(nn.Module):
    """A module whose Python code looks at the values: replaying its first graph would be wrong."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 3)

    def forward(self, X):
        out = self.inner(X)
        return out * 2.0 if float(np.asarray(X).sum()) > 0 else out * -1.0


def test_a_step_whose_graph_depends_on_the_data_falls_back_to_eager():
    rng = np.random.default_rng(1)
    X = np.abs(rng.standard_normal((4, 4))).astype(np.float32)
    X[2:] *= -1                                 # second batch takes the other branch
    Y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    model = _DataDependent()
    opt = optim.SGD(model.parameters(), lr=0.1)
    step = TrainStep(model, nn.CrossEntropyLoss(from_logits=True), opt, replay=True)  # vouched
    step(X[:2], Y[:2])
    assert step.replay
    twin = _DataDependent()
    twin.load_state_dict(model.state_dict())
    expected = nn.CrossEntropyLoss(from_logits=True)(twin(X[2:]), Y[2:]).item()
    value = step(X[2:], Y[2:])
    assert not step.replay
    assert value == expected                    # the eager loss of that batch, before the update


def test_a_non_finite_loss_skips_the_update():
    model = _blog_network(2, 3, 1, "sigmoid")
    step = TrainStep(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1))
    X = np.ones((2, 2), np.float32)
    step(X, np.ones((2, 1), np.float32))
    before = [p.data.copy() for p in model.parameters()]
    assert np.isnan(step(X, np.full((2, 1), np.nan, np.float32)))
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)


@pytest.mark.parametrize("batch_size", [None, 1, 5])
@pytest.mark.parametrize("case", ["ce-indices", "mse"])
def test_fit_with_replay_equals_fit_without_it(batch_size, case):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((23, 4)).astype(np.float32)
    y = rng.integers(0, 3, 23)
    Y, loss, output = ((y, nn.CrossEntropyLoss(), "softmax") if case == "ce-indices"
                       else (np.eye(3, dtype=np.float32)[y], nn.MSELoss(), "sigmoid"))
    runs = []
    for replay in (False, None):
        model = _blog_network(4, 6, 3, output, seed=1)
        tm.manual_seed(7)
        history = tm.fit(model, X, Y, loss, optim.SGD(model.parameters(), lr=0.3, momentum=0.5),
                         epochs=3, batch_size=batch_size, progress=False, replay=replay)
        runs.append((history.history, [p.data.copy() for p in model.parameters()]))
    (eager_history, eager_weights), (history, weights) = runs
    assert history["loss"] == eager_history["loss"]
    assert history["accuracy"] == eager_history["accuracy"]
    for w, e in zip(weights, eager_weights):
        np.testing.assert_array_equal(w, e)


def test_fit_with_replay_still_refuses_a_label_out_of_range_before_training():
    X = np.ones((4, 4), np.float32)
    model = _blog_network(4, 6, 3, "softmax")
    before = model.state_dict()
    with pytest.raises(ValueError, match="3"):
        tm.fit(model, X, np.array([0, 1, 2, 3]), nn.CrossEntropyLoss(),
               optim.SGD(model.parameters(), lr=0.1), epochs=1, progress=False)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
