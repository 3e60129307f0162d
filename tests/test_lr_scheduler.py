"""lr_scheduler without PyTorch: the documented formulas by hand, validation, get_last_lr,
state round trip. (PyTorch's exact sequences: test_optim_torch.py.)"""

import math

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import optim
from tinygrad_mlp.optim import lr_scheduler


def sgd(*lrs):
    return optim.SGD([{"params": [tm.Tensor(np.zeros(1), requires_grad=True)], "lr": lr}
                      for lr in lrs], lr=1.0)


def rates(scheduler, epochs):
    out = [scheduler.get_last_lr()]
    for _ in range(epochs):
        scheduler.step()
        out.append(scheduler.get_last_lr())
    return out


def test_step_and_exponential_by_hand():
    assert rates(lr_scheduler.StepLR(sgd(1.0), step_size=2, gamma=0.5), 5) == \
        [[1.0], [1.0], [0.5], [0.5], [0.25], [0.25]]
    got = rates(lr_scheduler.ExponentialLR(sgd(2.0, 1.0), gamma=0.5), 3)
    assert got == [[2.0, 1.0], [1.0, 0.5], [0.5, 0.25], [0.25, 0.125]]


def test_cosine_follows_the_closed_form_down_and_back_up():
    got = rates(lr_scheduler.CosineAnnealingLR(sgd(1.0), T_max=4, eta_min=0.2), 8)
    want = [0.2 + 0.8 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(9)]
    np.testing.assert_allclose([lr for lr, in got], want, atol=1e-12)


def test_lambda_scales_the_initial_lr_from_construction_on():
    optimizer = sgd(0.5)
    scheduler = lr_scheduler.LambdaLR(optimizer, lambda epoch: 10 ** -epoch)
    assert optimizer.lr == 0.5 and optimizer.param_groups[0]["initial_lr"] == 0.5
    assert rates(scheduler, 2) == [[0.5], [0.05], [0.005]]
    with pytest.raises(ValueError, match="lr_lambda 0 returned -1 at epoch 0"):
        lr_scheduler.LambdaLR(sgd(0.5), lambda epoch: -1)
    with pytest.raises(ValueError, match="2 lr_lambdas for 1 param groups"):
        lr_scheduler.LambdaLR(sgd(0.5), [abs, abs])


def test_reduce_on_plateau_waits_patience_epochs_then_multiplies():
    optimizer = sgd(1.0)
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2, min_lr=0.3)
    for value in [3.0, 2.0, 2.0, 2.0]:
        scheduler.step(value)
        assert optimizer.lr == 1.0
    scheduler.step(2.0)                              # a third epoch without improvement
    assert optimizer.lr == 0.5 and scheduler.get_last_lr() == [0.5]
    for _ in range(3):
        scheduler.step(np.float32(5.0))
    assert optimizer.lr == 0.3                       # floored at min_lr
    with pytest.raises(TypeError, match="metrics must be a number, got str"):
        scheduler.step("low")


@pytest.mark.parametrize("make, message", [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), "StepLR: step_size must be a positive int"),
    (lambda o: lr_scheduler.StepLR(o, 2, gamma=-1), "StepLR: gamma must be a finite number > 0"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=2.5), "T_max must be a positive int"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, 3, eta_min=-1), "eta_min must be"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), r"factor must be a finite number"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="lowest"), "mode must be 'min' or 'max'"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=-1), "patience must be an int >= 0"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, min_lr=[0, 0]), "2 min_lr values for 1"),
])
def test_bad_schedule_arguments_are_refused(make, message):
    optimizer = sgd(0.1)
    with pytest.raises(ValueError, match=message):
        make(optimizer)
    assert optimizer.lr == 0.1


def test_a_schedule_needs_one_of_our_optimizers():
    with pytest.raises(TypeError, match="expects an optimizer from tinygrad_mlp.optim, got list"):
        lr_scheduler.StepLR([], step_size=1)


def test_schedule_state_dict_round_trips_and_is_a_copy():
    first = lr_scheduler.StepLR(sgd(1.0), step_size=2)
    rates(first, 3)
    state = first.state_dict()
    rates(first, 5)
    assert state["last_epoch"] == 3
    second = lr_scheduler.StepLR(sgd(1.0), step_size=2)
    second.optimizer.lr = state["_last_lr"][0]
    second.load_state_dict(state)
    assert second.last_epoch == 3 and second.get_last_lr() == [0.1]
    with pytest.raises(ValueError, match="expected the keys"):
        second.load_state_dict({"last_epoch": 1})
