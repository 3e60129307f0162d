"""Every optimizer and schedule against PyTorch itself, in float64: 20 steps of a trajectory
whose gradients depend on the weights (so one wrong update shows in every later step), with
parameters equal within 1e-9 after each step, for a spread of settings and param groups."""

import copy
import math

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import optim
from tinygrad_mlp.optim import lr_scheduler

torch = pytest.importorskip("torch", reason="PyTorch is the oracle here (pip install torch)")

SHAPES = [(3, 2), (2,), (4,)]
STEPS = 20


def gradient(index, W, step, K):
    """A weight-dependent gradient (a smooth non-quadratic loss); parameter 2 gets no gradient
    on every third step, to check that both libraries skip it alike."""
    if index == 2 and step % 3 == 2:
        return None
    return np.cos(W) * K[index] + 0.3 * W ** 3 - 0.5


def start_and_K():
    rng = np.random.default_rng(7)
    return [rng.normal(size=shape) for shape in SHAPES], [rng.normal(size=s) for s in SHAPES]


def trajectories(name, groups_of, options, steps=STEPS):
    """Run our optimizer and torch's side by side; yield (step, ours, torch's) weights."""
    start, K = start_and_K()
    ours = [tm.Tensor(W.copy(), requires_grad=True) for W in start]
    theirs = [torch.tensor(W.copy(), requires_grad=True) for W in start]
    mine = getattr(optim, name)(groups_of(ours), **options)
    reference = getattr(torch.optim, name)(groups_of(theirs), **options)
    for step in range(steps):
        for index, (p, q) in enumerate(zip(ours, theirs)):
            g = gradient(index, q.detach().numpy(), step, K)
            p.grad = None if g is None else gradient(index, p.data, step, K)
            q.grad = None if g is None else torch.from_numpy(g)
        mine.step()
        reference.step()
        yield step, [p.data for p in ours], [q.detach().numpy() for q in theirs], mine, reference


def one_group(params):
    return params


def two_groups(params):                   # the first group overrides lr (and more, per optimizer)
    return [{"params": params[:2], "lr": 0.05}, {"params": params[2:]}]


SETTINGS = [
    ("SGD", one_group, dict(lr=0.1)),
    ("SGD", one_group, dict(lr=0.05, momentum=0.9)),
    ("SGD", one_group, dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("SGD", one_group, dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", one_group, dict(lr=0.1, weight_decay=0.1)),
    ("SGD", one_group, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", two_groups, dict(lr=0.1, momentum=0.5)),
    ("Adam", one_group, dict()),
    ("Adam", one_group, dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3)),
    ("Adam", one_group, dict(lr=0.05, weight_decay=0.1)),
    ("Adam", one_group, dict(lr=0.05, amsgrad=True)),
    ("Adam", two_groups, dict(lr=0.01, amsgrad=True, weight_decay=0.01)),
    ("AdamW", one_group, dict(lr=0.05)),
    ("AdamW", one_group, dict(lr=0.05, weight_decay=0.5, amsgrad=True)),
    ("AdamW", two_groups, dict(lr=0.01, betas=(0.8, 0.99))),
    ("RMSprop", one_group, dict()),
    ("RMSprop", one_group, dict(lr=0.01, alpha=0.9, momentum=0.9)),
    ("RMSprop", one_group, dict(lr=0.01, centered=True)),
    ("RMSprop", one_group, dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", two_groups, dict(lr=0.01, eps=1e-4)),
    ("Adagrad", one_group, dict()),
    ("Adagrad", one_group, dict(lr=0.1, lr_decay=0.05)),
    ("Adagrad", one_group, dict(lr=0.1, initial_accumulator_value=0.5, weight_decay=0.1)),
    ("Adagrad", two_groups, dict(lr=0.1, eps=1e-3)),
]


@pytest.mark.parametrize("name, groups_of, options", SETTINGS,
                         ids=[f"{n}-{g.__name__}-{o}" for n, g, o in SETTINGS])
def test_trajectory_equals_pytorch_after_every_step(name, groups_of, options):
    start, _ = start_and_K()
    for step, ours, theirs, mine, reference in trajectories(name, groups_of, options):
        for index, (a, b) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9,
                                       err_msg=f"{name} {options}: step {step + 1}, param {index}")
    assert all(np.abs(W - W0).max() > 1e-3 for W, W0 in zip(ours, start))    # they did move
    ours_state, theirs_state = mine.state_dict()["state"], reference.state_dict()["state"]
    assert sorted(ours_state) == sorted(theirs_state)
    for index, buffers in theirs_state.items():
        assert set(ours_state[index]) == set(buffers), (name, index)
        for key, value in buffers.items():
            np.testing.assert_allclose(np.asarray(ours_state[index][key], dtype=float),
                                       value.numpy(), rtol=0, atol=1e-9, err_msg=key)
    theirs_groups = reference.state_dict()["param_groups"]
    for group, their in zip(mine.state_dict()["param_groups"], theirs_groups):
        assert group == {key: their[key] for key in group}, name


@pytest.mark.parametrize("name, groups_of, options", SETTINGS[1::2],
                         ids=[f"{n}-{o}" for n, _, o in SETTINGS[1::2]])
def test_resuming_from_a_state_dict_halfway_follows_the_same_trajectory(name, groups_of, options):
    """Snapshot after 10 steps, keep stepping (the snapshot must not move: it is a copy), then
    restore it into a fresh optimizer on the saved weights: the last 10 steps match torch's."""
    run = trajectories(name, groups_of, options)
    for step, ours, _, mine, _ in run:
        if step == 9:
            break
    weights = [W.copy() for W in ours]
    snapshot = mine.state_dict()
    frozen = copy.deepcopy(snapshot)
    for _, ours, theirs, _, _ in run:                    # the original runs to the end
        pass
    assert_same_state(snapshot, frozen)
    fresh = [tm.Tensor(W, requires_grad=True) for W in weights]
    resumed = getattr(optim, name)(groups_of(fresh), **options)
    resumed.load_state_dict(snapshot)
    _, K = start_and_K()
    for step in range(10, STEPS):
        for index, p in enumerate(fresh):
            p.grad = gradient(index, p.data, step, K)
        resumed.step()
    for a, b in zip(fresh, theirs):
        np.testing.assert_allclose(a.data, b, rtol=0, atol=1e-9)


def assert_same_state(state, expected):
    assert state["param_groups"] == expected["param_groups"]
    assert state["state"].keys() == expected["state"].keys()
    for index, buffers in expected["state"].items():
        assert state["state"][index].keys() == buffers.keys()
        for key, value in buffers.items():
            np.testing.assert_array_equal(state["state"][index][key], value)


# --- schedules ------------------------------------------------------------------------------------

def schedule_pair(make, lrs=(0.5, 0.2), epochs=30, metrics=None):
    """Our and torch's learning rates per group after construction and each of `epochs` steps."""
    ours = optim.SGD([{"params": [tm.Tensor(np.zeros(1), requires_grad=True)], "lr": lr}
                      for lr in lrs], lr=1.0)
    theirs = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr}
                              for lr in lrs], lr=1.0)
    mine, reference = make(lr_scheduler, ours), make(torch.optim.lr_scheduler, theirs)
    got = [[g["lr"] for g in ours.param_groups]]
    want = [[g["lr"] for g in theirs.param_groups]]
    for epoch in range(epochs):
        theirs.step()                                     # torch wants a step before the schedule's
        if metrics is None:
            mine.step()
            reference.step()
        else:
            mine.step(metrics[epoch])
            reference.step(metrics[epoch])
        got.append(mine.get_last_lr())
        want.append(reference.get_last_lr())
        assert got[-1] == [g["lr"] for g in ours.param_groups]
    return got, want


SCHEDULES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "StepLR-1": lambda m, o: m.StepLR(o, step_size=1),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=7),
    "CosineAnnealingLR-eta": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda epoch: 1 / (1 + epoch)),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 0.95 ** e, lambda e: e % 4]),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_sequence_is_pytorchs_exactly(name):
    got, want = schedule_pair(SCHEDULES[name])
    assert got == want                                    # the same floats, not merely close
    assert len({tuple(lrs) for lrs in got}) > 2           # it did change the rates


def test_cosine_is_the_closed_form_and_reaches_eta_min_at_T_max():
    got, _ = schedule_pair(SCHEDULES["CosineAnnealingLR-eta"], lrs=(0.5,), epochs=10)
    for t, (lr,) in enumerate(got):
        assert lr == pytest.approx(0.01 + (0.5 - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2,
                                   abs=1e-12)


@pytest.mark.parametrize("options", [dict(), dict(mode="max", factor=0.5, patience=2),
                                     dict(patience=1, cooldown=2, min_lr=0.01),
                                     dict(patience=0, threshold=0.1, threshold_mode="abs"),
                                     dict(patience=1, min_lr=[0.3, 0.001], eps=0.05)])
def test_reduce_on_plateau_is_pytorchs_exactly(options):
    rng = np.random.default_rng(3)
    metrics = list(np.round(1 / np.arange(1, 41) + rng.normal(0, 0.02, 40), 3))
    metrics[10:25] = [metrics[10]] * 15                  # a plateau
    got, want = schedule_pair(lambda m, o: m.ReduceLROnPlateau(o, **options), epochs=40,
                              metrics=[float(v) for v in metrics])
    assert got == want
    assert got[-1] != got[0]
