"""fit with Dropout and BatchNorm: train/eval modes, replayed steps that draw new masks and
move the running statistics once per batch, and the LearningRateScheduler callback."""

import re
from pathlib import Path

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim
from tinygrad_mlp.optim import lr_scheduler


def data(N=50, D=6, K=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)).astype(np.float32)
    y = (X[:, :K].argmax(axis=1)).astype(np.int64)
    return X, y


def regularised(D=6, K=3, p=0.3):
    return nn.Sequential(nn.Linear(D, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(p),
                         nn.Linear(8, K), nn.Softmax())


def state(model):
    return {key: value.copy() for key, value in model.state_dict().items()}


# --- modes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("replay", [True, False])
def test_batchnorm_counts_each_training_batch_once(replay):
    X, y = data()
    X_val, y_val = data(20, seed=1)
    model = regularised()
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1),
                     epochs=3, batch_size=16, validation_data=(X_val, y_val), progress=False,
                     replay=replay)
    steps = history.params["steps"] * 3                   # 4 batches of 50 rows, 3 epochs
    assert int(model[1].num_batches_tracked.data) == steps == 12
    assert model.training and all(m.training for m in model.modules())


def test_replayed_fit_equals_eager_fit_with_dropout_and_batchnorm():
    X, y = data()
    results = []
    for replay in (True, False):
        tm.manual_seed(3)
        model = regularised()
        history = tm.fit(model, X, y, nn.CrossEntropyLoss(),
                         optim.SGD(model.parameters(), lr=0.1, momentum=0.9), epochs=4,
                         batch_size=8, progress=False, replay=replay)
        results.append((state(model), history["loss"]))
    (replayed, replayed_loss), (eager, eager_loss) = results
    assert replayed_loss == eager_loss
    assert replayed.keys() == eager.keys()
    for key in eager:
        np.testing.assert_array_equal(replayed[key], eager[key], err_msg=key)


def test_a_replayed_step_draws_a_new_dropout_mask_every_time():
    X = np.ones((4, 5), np.float32)
    Y = np.zeros((4, 5), np.float32)
    outputs = {}
    for replay in (True, False):
        tm.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 5), nn.Dropout(0.5))
        step = tm.TrainStep(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1e-3),
                            replay=replay)
        masks = []
        for _ in range(6):
            step(X, Y)
            masks.append(step.output == 0)
        assert step.replay is replay                    # the replay never fell back to eager
        outputs[replay] = masks
    replayed, eager = outputs[True], outputs[False]
    assert len({mask.tobytes() for mask in replayed}) == 6        # a new mask on every step
    for a, b in zip(replayed, eager):                             # the masks eager draws
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layer", [lambda: nn.Dropout(0.9), lambda: nn.BatchNorm1d(5)])
def test_a_trainstep_keeps_one_tape_per_mode(layer):
    X = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    Y = np.zeros((4, 5), np.float32)
    model = nn.Sequential(nn.Linear(5, 5), layer())
    step = tm.TrainStep(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1e-3))
    for mode in (True, True, False, False, True, True):   # record, replay, in each mode
        model.train(mode)
        with tm.no_grad():
            expected = model(X).data if not mode else None   # eval: no mask, running stats
        step(X, Y)
        if expected is not None:
            np.testing.assert_array_equal(step.output, expected)
    assert step.replay


def test_batchnorm_running_statistics_under_replay_equal_eager_and_move_once_per_step():
    rng = np.random.default_rng(0)
    batches = [rng.normal(2.0, 3.0, size=(8, 4)).astype(np.float32) for _ in range(5)]
    Y = np.zeros((8, 4), np.float32)
    kept = []
    for replay in (True, False):
        tm.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        step = tm.TrainStep(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1),
                            replay=replay)
        for X in batches:
            step(X, Y)
        assert step.replay is replay
        assert int(model[1].num_batches_tracked.data) == 5
        kept.append(state(model))
    for key in kept[0]:
        np.testing.assert_allclose(kept[0][key], kept[1][key], rtol=1e-6, err_msg=key)


def test_evaluate_and_predict_run_in_eval_mode_and_restore_every_modules_mode():
    X, y = data()
    model = regularised()
    model[1].eval()                                      # a frozen BatchNorm inside a training net
    modes = [m.training for m in model.modules()]
    before = state(model)
    first = tm.predict(model, X)
    np.testing.assert_array_equal(tm.predict(model, X), first)    # no dropout: deterministic
    tm.evaluate(model, X, y, nn.CrossEntropyLoss())
    assert [m.training for m in model.modules()] == modes
    for key, value in before.items():                             # no statistic moved
        np.testing.assert_array_equal(model.state_dict()[key], value)


# --- LearningRateScheduler ------------------------------------------------------------------------

def test_the_callback_steps_the_schedule_once_per_epoch_as_a_hand_loop_does():
    X, y = data()
    runs = []
    for by_hand in (False, True):
        tm.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 3), nn.Softmax())
        opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        schedule = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        if by_hand:
            for _ in range(5):
                tm.fit(model, X, y, nn.CrossEntropyLoss(), opt, epochs=1, batch_size=10,
                       progress=False)
                schedule.step()
        else:
            callback = tm.LearningRateScheduler(schedule)
            tm.fit(model, X, y, nn.CrossEntropyLoss(), opt, epochs=5, batch_size=10,
                   progress=False, callbacks=[callback])
            assert callback.learning_rates == [[0.5], [0.5], [0.25], [0.25], [0.125]]
        runs.append((state(model), opt.lr))
    assert runs[0][1] == runs[1][1] == 0.125
    for key in runs[0][0]:
        np.testing.assert_array_equal(runs[0][0][key], runs[1][0][key])


def test_reduce_on_plateau_reads_the_monitored_metric():
    X, y = data()
    X_val, y_val = data(20, seed=1)
    model = nn.Sequential(nn.Linear(6, 3), nn.Softmax())
    opt = optim.SGD(model.parameters(), lr=1e-6)          # too small to improve: a plateau
    schedule = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    callback = tm.LearningRateScheduler(schedule, monitor="val_loss")
    history = tm.fit(model, X, y, nn.CrossEntropyLoss(), opt, epochs=6, progress=False,
                     validation_data=(X_val, y_val), callbacks=[callback])
    replayed = lr_scheduler.ReduceLROnPlateau(optim.SGD(model.parameters(), lr=1e-6),
                                              factor=0.5, patience=1)
    for value in history["val_loss"]:
        replayed.step(value)
    assert opt.lr == replayed.optimizer.lr < 1e-6
    assert callback.learning_rates[0] == [1e-6] and callback.learning_rates[-1][0] < 1e-6


@pytest.mark.parametrize("make, message", [
    (lambda o: tm.LearningRateScheduler(lr_scheduler.ReduceLROnPlateau(o)),
     "ReduceLROnPlateau needs the metric it watches"),
    (lambda o: tm.LearningRateScheduler(lr_scheduler.StepLR(o, 2), monitor="loss"),
     "only ReduceLROnPlateau reads a metric"),
])
def test_the_callback_refuses_a_monitor_that_does_not_fit_the_schedule(make, message):
    opt = optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=message):
        make(opt)
    with pytest.raises(TypeError, match="expects a schedule from tinygrad_mlp.optim"):
        tm.LearningRateScheduler(opt)


def test_a_validation_metric_without_validation_data_is_refused_before_training():
    X, y = data()
    model = nn.Sequential(nn.Linear(6, 3), nn.Softmax())
    before = state(model)
    opt = optim.SGD(model.parameters(), lr=0.5)
    callback = tm.LearningRateScheduler(lr_scheduler.ReduceLROnPlateau(opt), monitor="val_loss")
    with pytest.raises(ValueError, match="LearningRateScheduler monitors 'val_loss', but there "
                                         "is no validation data"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), opt, epochs=2, progress=False,
               callbacks=[callback])
    for key, value in before.items():
        np.testing.assert_array_equal(model.state_dict()[key], value)
