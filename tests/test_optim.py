"""optim: SGD (momentum, Nesterov, weight decay) and Adam against PyTorch's formulas written out
in numpy; in-place updates, dtype, skipped None grads, validation, state round trip. (Every
optimizer against PyTorch itself: test_optim_torch.py.)"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim

arrays = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
                    elements=st.floats(-5, 5))


def engine_array(values, dtype=np.float64):
    """A gradient as backward would leave it: an array of the engine's type (on the stand-in
    device under TINYGRAD_MLP_TEST_DEVICE=standin), set by hand."""
    return tm.Tensor(np.array(values, dtype=dtype), dtype=dtype).data


def param(values, dtype=np.float64):
    return tm.Tensor(np.array(values, dtype=dtype), requires_grad=True)


def run(optimizer, p, grads):
    """Apply one step per gradient in `grads`; return the parameter after each step."""
    history = []
    for g in grads:
        p.grad = engine_array(g, p.dtype)
        optimizer.step()
        history.append(p.data.copy())
    return history


def sgd_reference(W, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD's update rule (dampening 0), step by step, in float64 numpy."""
    W, buf, out = W.copy(), None, []
    for g in grads:
        g = g + weight_decay * W
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        W = W - lr * g
        out.append(W)
    return out


def adam_reference(W, grads, lr, betas, eps, weight_decay=0.0):
    """torch.optim.Adam's update rule (not AdamW), step by step."""
    W, m, v, out = W.copy(), np.zeros_like(W), np.zeros_like(W), []
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * W
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        W = W - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(W)
    return out


def test_plain_sgd_is_the_blogs_update_by_hand():
    p = param([[1.0, -2.0], [0.5, 3.0]])
    optimizer = optim.SGD([p], lr=0.1)
    p.grad = engine_array([[0.5, 1.0], [-1.0, 0.0]])
    optimizer.step()
    np.testing.assert_array_equal(p.data, [[0.95, -2.1], [0.6, 3.0]])


@pytest.mark.parametrize("options", [dict(momentum=0.9), dict(momentum=0.5, nesterov=True),
                                     dict(weight_decay=0.1),
                                     dict(momentum=0.9, nesterov=True, weight_decay=0.01)])
@given(W=arrays, seed=st.integers(0, 1000), lr=st.floats(1e-3, 1.0))
def test_sgd_matches_pytorch_formulas(options, W, seed, lr):
    grads = list(np.random.default_rng(seed).normal(size=(3,) + W.shape))
    p = param(W)
    got = run(optim.SGD([p], lr=lr, **options), p, grads)
    for a, b in zip(got, sgd_reference(W, grads, lr, **options)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options", [dict(), dict(weight_decay=0.1),
                                     dict(betas=(0.5, 0.9), eps=1e-3)])
@given(W=arrays, seed=st.integers(0, 1000), lr=st.floats(1e-4, 0.5))
def test_adam_matches_pytorch_formulas(options, W, seed, lr):
    grads = list(np.random.default_rng(seed).normal(size=(3,) + W.shape))
    p = param(W)
    got = run(optim.Adam([p], lr=lr, **options), p, grads)
    full = dict(betas=(0.9, 0.999), eps=1e-8, **options) if "betas" not in options else options
    for a, b in zip(got, adam_reference(W, grads, lr, **full)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_adam_first_step_moves_each_weight_by_lr_against_its_gradient_sign():
    p = param([1.0, 1.0, 1.0])
    run(optim.Adam([p], lr=0.01), p, [np.array([3.0, -0.2, 0.0])])
    np.testing.assert_allclose(p.data, [0.99, 1.01, 1.0], rtol=1e-7)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, 0.1, momentum=0.9, nesterov=True,
                                                        weight_decay=0.1),
                                  lambda ps: optim.Adam(ps, weight_decay=0.1)])
def test_step_is_in_place_float32_skips_none_grads_and_records_no_graph(make):
    model = nn.Sequential(nn.Linear(3, 2), nn.Sigmoid())
    W, b = model.parameters()
    arrays_before = (W.data, b.data)
    bias_before = b.data.copy()
    optimizer = make(model.parameters())
    for _ in range(2):
        model.zero_grad()
        model(np.ones((4, 3), np.float32)).sum().backward()
        b.grad = None                                    # e.g. an unused parameter
        weight_before = W.data.copy()
        optimizer.step()
        assert not np.array_equal(W.data, weight_before)
    assert (W.data, b.data) == arrays_before and W.data is arrays_before[0]
    np.testing.assert_array_equal(b.data, bias_before)
    assert W.dtype == np.float32 and W.is_leaf and W.requires_grad
    buffers = [a for state in optimizer.state_dict()["state"].values() for a in state.values()
               if isinstance(a, np.ndarray)]
    assert buffers and all(a.dtype == np.float32 for a in buffers)


def test_zero_grad_sets_grads_to_none():
    p = param([1.0])
    p.grad = engine_array([2.0])
    optimizer = optim.SGD([p], lr=1.0)
    optimizer.zero_grad()
    assert p.grad is None


def test_an_optimizer_trains_the_blog_network():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2), nn.Softmax())
    optimizer = optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = nn.CrossEntropyLoss()(model(X), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


# --- validation -----------------------------------------------------------------------------------

def test_bad_parameter_lists_are_refused():
    p = param([1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="parameter 1 .* is the same Tensor as parameter 0"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="parameter 0 .* does not require grad"):
        optim.Adam([tm.Tensor([1.0])])
    with pytest.raises(TypeError, match="parameter 0 is a ndarray, not a Tensor"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match=r"iterable of Tensors \(e.g. model.parameters\(\)\)"):
        optim.SGD(nn.Linear(2, 2), lr=0.1)


@pytest.mark.parametrize("lr", [0, -0.1, math.nan, math.inf, "0.1", None, True])
def test_learning_rate_must_be_positive_and_finite(lr):
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        optim.SGD([param([1.0])], lr=lr)
    optimizer = optim.Adam([param([1.0])])
    with pytest.raises(ValueError, match="lr must be"):
        optimizer.lr = lr
    assert optimizer.lr == 1e-3


def test_other_hyper_parameters_are_checked():
    p = param([1.0])
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0 and dampening 0"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="momentum must be"):
        optim.SGD([p], lr=0.1, momentum=-1)
    with pytest.raises(ValueError, match=r"betas\[1\] must be a finite number >= 0.0 and < 1.0"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas must be a pair"):
        optim.Adam([p], betas=0.9)


# --- state ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, 0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1)])
def test_state_dict_lets_a_new_optimizer_continue_identically(make):
    grads = list(np.random.default_rng(0).normal(size=(4, 3)))
    p, q = param(np.ones(3)), param(np.ones(3))
    first = make([p])
    run(first, p, grads[:2])
    q.data[...] = p.data
    second = make([q])
    second.load_state_dict(first.state_dict())
    np.testing.assert_array_equal(run(first, p, grads[2:])[-1], run(second, q, grads[2:])[-1])
    with pytest.raises(ValueError, match="param group 0 lists 1 parameters, this optimizer's has 2"):
        make([param([1.0]), param([2.0])]).load_state_dict(first.state_dict())


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, 0.1), lambda ps: optim.Adam(ps)])
def test_one_step_changes_every_parameter_even_after_load_state_dict(make):
    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.Softmax())
    optimizer = make(model.parameters())
    model.load_state_dict({k: v + 0.5 for k, v in model.state_dict().items()})  # in place:
    before = model.state_dict()                          # the optimizer still holds the params
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    nn.CrossEntropyLoss()(model(X), np.array([0, 1, 1, 0, 1])).backward()
    optimizer.step()
    for name, p in model.named_parameters():
        assert np.all(p.grad != 0) and not np.array_equal(p.data, before[name]), name


# --- param groups ---------------------------------------------------------------------------------

ALL = [lambda ps, **kw: optim.SGD(ps, lr=0.1, **kw), optim.Adam, optim.AdamW, optim.RMSprop,
       optim.Adagrad]


@pytest.mark.parametrize("make", ALL)
def test_param_groups_take_the_defaults_they_do_not_set_and_lr_is_group_0(make):
    a, b, c = param([1.0]), param([2.0, 3.0]), param([4.0])
    optimizer = make([{"params": [a, b], "lr": 0.5, "weight_decay": 0.25}, {"params": c}])
    first, second = optimizer.param_groups
    assert first["params"] == [a, b] and second["params"] == [c]
    assert (first["lr"], first["weight_decay"]) == (0.5, 0.25)
    defaults = {key: value for key, value in optimizer.defaults.items()}
    assert {key: second[key] for key in defaults} == defaults
    assert optimizer.lr == 0.5
    optimizer.lr = 0.125
    assert first["lr"] == 0.125 and second["lr"] == defaults["lr"]


def test_each_group_steps_with_its_own_hyper_parameters():
    a, b = param([1.0]), param([1.0])
    optimizer = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b], "momentum": 0.9}],
                          lr=0.1)
    for _ in range(2):
        a.grad, b.grad = engine_array([1.0]), engine_array([1.0])
        optimizer.step()
    np.testing.assert_allclose(a.data, [1 - 0.5 - 0.5])
    np.testing.assert_allclose(b.data, [1 - 0.1 - 0.1 * 1.9])
    assert sorted(optimizer.state) == [1]                  # only the momentum group keeps state


def test_bad_param_groups_are_refused_naming_the_group():
    a, b = param([1.0]), param([2.0])
    with pytest.raises(ValueError, match="parameter 0 of group 1 .* same Tensor as parameter 0"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(ValueError, match="momentum must be a finite number >= 0.0, got -1"):
        optim.SGD([{"params": [a]}, {"params": [b], "momentum": -1}], lr=0.1)
    with pytest.raises(TypeError, match="param group 1 must be a dict with a 'params' entry"):
        optim.Adam([{"params": [a]}, b])
    with pytest.raises(ValueError, match="param group 0 has an empty parameter list"):
        optim.Adam([{"params": []}])


@pytest.mark.parametrize("make, options", [
    (optim.RMSprop, dict(alpha=1.5)), (optim.RMSprop, dict(centered="yes")),
    (optim.Adam, dict(amsgrad=1)), (optim.AdamW, dict(betas=(0.9, -0.1))),
    (optim.Adagrad, dict(lr_decay=-1)), (optim.Adagrad, dict(eps=math.nan)),
    (optim.SGD, dict(lr=0.1, dampening=2)), (optim.SGD, dict(lr=0.1, nesterov="yes"))])
def test_new_optimizers_check_their_hyper_parameters(make, options):
    with pytest.raises(ValueError, match=f"{make.__name__}: .*must be"):
        make([param([1.0])], **options)


def test_adagrad_and_rmsprop_by_hand():
    p = param([1.0, -1.0])
    optimizer = optim.Adagrad([p], lr=0.1, eps=0.0)
    run(optimizer, p, [np.array([2.0, 0.5]), np.array([1.0, 0.5])])
    np.testing.assert_allclose(p.data, [1 - 0.1 - 0.1 / math.sqrt(5), -1 - 0.1 - 0.1 / math.sqrt(2)])
    q = param([1.0])
    run(optim.RMSprop([q], lr=0.1, alpha=0.5, eps=0.0), q, [np.array([2.0])])
    np.testing.assert_allclose(q.data, [1 - 0.1 * 2 / math.sqrt(0.5 * 4)])


def test_adamw_decays_the_weight_apart_from_the_gradient():
    p, q = param([2.0]), param([2.0])
    run(optim.AdamW([p], lr=0.1, weight_decay=0.5), p, [np.array([0.0])])
    run(optim.Adam([q], lr=0.1, weight_decay=0.5), q, [np.array([0.0])])
    np.testing.assert_allclose(p.data, [2.0 * (1 - 0.05)])           # no gradient: decay only
    np.testing.assert_allclose(q.data, [2.0 - 0.1], rtol=1e-6)        # L2 goes through Adam


# --- state dicts: copies, validated, all or nothing -----------------------------------------------

@pytest.mark.parametrize("make", ALL)
def test_state_dict_is_a_copy_that_later_steps_and_edits_never_reach(make):
    p = param([1.0, 2.0])
    optimizer = make([p], **({"momentum": 0.9} if make is ALL[0] else {}))
    run(optimizer, p, [np.array([0.5, -0.5])])
    snapshot = optimizer.state_dict()
    expected = {key: (value.copy() if isinstance(value, np.ndarray) else value)
                for key, value in snapshot["state"][0].items()}
    lr = snapshot["param_groups"][0]["lr"]
    run(optimizer, p, [np.array([1.0, 1.0])] * 3)
    optimizer.lr = lr * 2
    for key, value in expected.items():                 # Adam's step count stays at 1
        np.testing.assert_array_equal(snapshot["state"][0][key], value)
    assert snapshot["param_groups"][0]["lr"] == lr
    live = optimizer.state_dict()
    live["param_groups"][0]["lr"] = 99.0
    live["param_groups"][0]["params"].append(5)
    for value in live["state"][0].values():
        if isinstance(value, np.ndarray):
            value[...] = 99.0
    again = optimizer.state_dict()
    assert again["param_groups"][0]["lr"] == lr * 2 and again["param_groups"][0]["params"] == [0]
    assert all(not np.any(v == 99.0) for v in again["state"][0].values()
               if isinstance(v, np.ndarray))


@pytest.mark.parametrize("make, key, value, message", [
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), "momentum", -5,
     "momentum must be a finite number >= 0.0, got -5"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), "nesterov", "yes",
     "nesterov must be True or False, got 'yes'"),
    (lambda ps: optim.SGD(ps, lr=0.1), "nesterov", True, "nesterov=True needs momentum > 0"),
    (lambda ps: optim.Adam(ps), "betas", (0.9, 1.5), r"betas\[1\] must be"),
    (lambda ps: optim.RMSprop(ps), "lr", -0.1, "lr must be a finite number >= 0.0"),
])
def test_load_state_dict_checks_hyper_parameters_as_the_constructor_does(make, key, value,
                                                                         message):
    p = param([1.0, 2.0])
    optimizer = make([p])
    run(optimizer, p, [np.array([1.0, 1.0])])
    before = optimizer.state_dict()
    state = optimizer.state_dict()
    state["param_groups"][0][key] = value
    with pytest.raises(ValueError, match=f"param group 0: .*{message}"):
        optimizer.load_state_dict(state)
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]


def test_load_state_dict_checks_buffers_and_changes_nothing_on_error():
    a, b = param([1.0, 2.0]), param([3.0])
    optimizer = optim.Adam([a, b], lr=0.1)
    run(optimizer, a, [np.array([1.0, 1.0])])
    good = optimizer.state_dict()

    def broken(edit):
        state = optimizer.state_dict()
        edit(state)
        return state

    cases = [
        (lambda s: s["state"][0].update(exp_avg=np.zeros(3)), r"state\[0\]\['exp_avg'\] has shape"),
        (lambda s: s["state"][0].pop("exp_avg_sq"), r"state of parameter 0 has \['exp_avg', 'step'\]"),
        (lambda s: s["state"][0].update(step=-1), r"'step'\] must be a count >= 0"),
        (lambda s: s["state"].update({7: {}}), "state for parameter 7, which no param group lists"),
        (lambda s: s["param_groups"].append({"params": []}), "the state has 2 param groups"),
        (lambda s: s.pop("state"), "expects the dict state_dict"),
    ]
    for edit, message in cases:
        bad = broken(edit)
        bad["param_groups"][0]["lr"] = 0.5                 # would change if half-applied
        with pytest.raises(ValueError, match=message):
            optimizer.load_state_dict(bad)
        assert optimizer.lr == 0.1
        np.testing.assert_array_equal(optimizer.state[0]["exp_avg"], good["state"][0]["exp_avg"])
    good["param_groups"][0]["lr"] = 0.0                     # a schedule may end at lr 0
    optimizer.load_state_dict(good)
    assert optimizer.lr == 0.0 and optimizer.state[0]["step"] == 1
    assert optimizer.state[0]["exp_avg"] is not good["state"][0]["exp_avg"]


@pytest.mark.parametrize("make", ALL + [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)])
def test_every_step_bumps_the_version_so_a_stale_graph_cannot_backpropagate(make):
    w = param([1.0, 2.0])
    optimizer = make([w])
    y = (w * w).sum()
    w.grad = engine_array([1.0, 1.0])
    optimizer.step()
    assert w.version == 1
    with pytest.raises(RuntimeError, match="modified"):
        y.backward()
