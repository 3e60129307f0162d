"""fit and TrainStep under careless input (issue 9): everything checked before the first update,
replay only for what is proven safe, clear messages."""

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim


def net(K=3, seed=0):
    tm.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, K), nn.Softmax())


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)).astype(np.float32), rng.integers(0, 3, n)


def weights(model):
    return [p.data.copy() for p in model.parameters()]


def unchanged(model, before):
    return all(np.array_equal(p.data, w) for p, w in zip(model.parameters(), before))


@pytest.mark.parametrize("replay", [None, False])
def test_a_bad_one_hot_row_late_in_the_data_is_refused_before_the_first_update(replay):
    X, y = data()
    Y = np.eye(3, dtype=np.float32)[y]
    Y[19] = [1, 1, 0]                                    # row 19: not a one-hot row
    model = net()
    before = weights(model)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: target row \(19,\) sums to 2"):
        tm.fit(model, X, Y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
               epochs=1, batch_size=4, shuffle=False, progress=False, replay=replay)
    assert unchanged(model, before)


@pytest.mark.parametrize("replay", [None, False])
def test_a_bce_target_outside_0_1_late_in_the_data_is_refused_before_the_first_update(replay):
    X, y = data()
    tm.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    Y = (y[:, None] == 1).astype(np.float32)
    Y[19] = 5.0
    before = weights(model)
    with pytest.raises(ValueError, match="BCELoss"):
        tm.fit(model, X, Y, nn.BCELoss(), optim.SGD(model.parameters(), lr=0.5), epochs=1,
               batch_size=4, shuffle=False, progress=False, replay=replay)
    assert unchanged(model, before)


def test_early_stopping_on_val_loss_without_validation_data_is_refused_before_epoch_1():
    X, y = data()
    model = net()
    before = weights(model)
    with pytest.raises(ValueError, match="EarlyStopping monitors 'val_loss'.*no validation"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
               epochs=3, progress=False, callbacks=[tm.EarlyStopping("val_loss")])
    assert unchanged(model, before)


def test_shuffle_must_be_a_bool():
    X, y = data()
    model = net()
    with pytest.raises(ValueError, match="fit: shuffle must be True or False, got 'no'"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5),
               epochs=1, progress=False, shuffle="no")


def test_a_loss_that_is_not_a_scalar_is_named_as_such():
    X, y = data()
    model = net()
    with pytest.raises(ValueError, match=r"the loss must be a scalar, got shape \(24, 3\)"):
        tm.fit(model, X, y, lambda output, Y: output, optim.SGD(model.parameters(), lr=0.5),
               epochs=1, progress=False)


def test_a_model_without_parameters_is_refused_up_front():
    X, y = data()
    model = nn.Sequential(nn.Softmax())
    with pytest.raises(ValueError, match="has no parameters"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(net().parameters(), lr=0.5),
               epochs=1, progress=False)


class Flips(nn.Module):
    """A custom module whose graph depends on the data: from the 3rd call on, another branch."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 3)
        self.calls = 0

    def forward(self, X):
        self.calls += 1
        Z = self.layer(X)
        return (Z * 3.0 if self.calls >= 3 else Z).softmax()


def one_hot_batches(count=6):
    return [(X, np.eye(3, dtype=np.float32)[y]) for X, y in (data(8, s) for s in range(count))]


def run_steps(replay, batches):
    tm.manual_seed(0)
    model = Flips()
    kwargs = {} if replay == "default" else {"replay": replay}
    step = tm.TrainStep(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
                        **kwargs)
    return [step(X, Y) for X, Y in batches], model.calls


def test_train_step_runs_a_custom_module_eagerly_unless_the_user_vouches_for_it():
    batches = one_hot_batches()
    default, calls = run_steps("default", batches)
    eager, _ = run_steps(False, batches)
    assert default == eager and calls == len(batches)    # every step ran the module's forward
    _, vouched_calls = run_steps(True, batches)
    assert vouched_calls < len(batches)                  # replay=True: steps were replayed


def test_train_step_replays_built_in_modules_by_default_with_the_eager_results():
    def losses(replay):
        model = net()
        step = tm.TrainStep(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
                            **({} if replay is None else {"replay": replay}))
        return [step(X, Y) for X, Y in one_hot_batches()], step.replay

    default, replayed = losses(None)
    assert replayed is True and default == losses(False)[0]
