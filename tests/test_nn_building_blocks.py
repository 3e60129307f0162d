"""nn, second round: containers, buffers and hooks, Identity/Flatten/Dropout, normalisation,
the new losses, gradient clipping and summary, each against a hand-derived oracle.
(tests/test_nn_torch.py compares the same layers with PyTorch.)"""

import inspect
import math

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim


@pytest.fixture(autouse=True)
def float64():
    tm.set_default_dtype(np.float64)


# --- containers ---------------------------------------------------------------------------------

class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(3, 3) for _ in range(2)])
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 2)})

    def forward(self, X):
        for block in self.blocks:
            X = block(X).relu()
        return tm.concatenate([self.heads["a"](X), self.heads["b"](X)], axis=1)


def test_modulelist_and_moduledict_register_their_modules():
    model = Tower()
    assert list(model.state_dict()) == [
        "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
        "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    assert model.num_parameters() == 2 * 12 + 4 + 8
    before = {k: v.copy() for k, v in model.state_dict().items()}
    opt = optim.SGD(model.parameters(), lr=0.1)
    J = nn.MSELoss()(model(np.ones((4, 3))), np.zeros((4, 3)))
    J.backward()
    opt.step()
    changed = [k for k, v in model.state_dict().items() if not np.array_equal(v, before[k])]
    assert "blocks.0.weight" in changed and "heads.b.weight" in changed


def test_modulelist_behaves_like_a_list():
    a, b, c, d = (nn.Linear(2, 2) for _ in range(4))
    layers = nn.ModuleList([a, b])
    layers.append(c)
    assert len(layers) == 3 and layers[-1] is c and list(layers) == [a, b, c]
    assert isinstance(layers[1:], nn.ModuleList) and list(layers[1:]) == [b, c]
    layers.insert(0, d)
    assert list(layers) == [d, a, b, c]
    assert [name for name, _ in layers.named_children()] == ["0", "1", "2", "3"]
    del layers[1]
    layers[0] = a
    assert list(layers) == [a, b, c] and [n for n, _ in layers.named_children()] == ["0", "1", "2"]
    layers.extend([d])
    assert layers[3] is d
    with pytest.raises(IndexError, match="ModuleList index 9 out of range for 4 modules"):
        layers[9]
    with pytest.raises(TypeError, match="ModuleList: entry 4 must be a Module, got int"):
        layers.append(3)


def test_moduledict_behaves_like_a_dict():
    a, b = nn.Linear(2, 2), nn.ReLU()
    heads = nn.ModuleDict({"a": a})
    heads["b"] = b
    assert list(heads) == ["a", "b"] and heads.keys() == ["a", "b"] and "a" in heads
    assert heads.items() == [("a", a), ("b", b)] and heads.values() == [a, b]
    c = nn.Tanh()
    heads["a"] = c                                     # replacing keeps the entry's place
    assert heads.items() == [("a", c), ("b", b)]
    assert heads.pop("a") is c and list(heads) == ["b"] and len(heads) == 1
    with pytest.raises(KeyError, match=r"ModuleDict has no module 'z'; keys: \['b'\]"):
        heads["z"]
    with pytest.raises(KeyError, match="without '.'"):
        heads["x.y"] = a
    with pytest.raises(KeyError, match="would hide the attribute ModuleDict.train"):
        heads["train"] = a
    with pytest.raises(TypeError, match="ModuleDict: entry 'c' must be a Module"):
        heads["c"] = 1.0


@pytest.mark.parametrize("value, wrapper", [
    ([nn.Linear(2, 2)], r"nn.ModuleList\(\[...\]\)"),
    ((nn.ReLU(), nn.Linear(2, 2)), r"nn.ModuleList\(\[...\]\)"),
    ({"head": nn.Linear(2, 2)}, r"nn.ModuleDict\(\{...\}\)"),
])
def test_a_plain_list_tuple_or_dict_of_modules_is_refused_naming_the_container(value, wrapper):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = value

    with pytest.raises(TypeError, match=rf"Net.layers: a plain {type(value).__name__} of Modules "
                                        rf"is not registered.* self.layers = {wrapper}"):
        Net()


def test_plain_lists_without_modules_are_still_fine():
    model = nn.Linear(2, 2)
    model.sizes = [1, 2]
    model.names = {"a": "b"}
    assert model.sizes == [1, 2] and model.num_parameters() == 6


# --- Module: buffers, apply, hooks ------------------------------------------------------------

def test_buffers_are_state_but_not_parameters():
    layer = nn.Linear(2, 3)
    layer.register_buffer("steps", np.zeros((), dtype=np.int64))
    layer.register_buffer("scratch", np.ones(3), persistent=False)
    layer.register_buffer("unset", None)
    assert [name for name, _ in layer.named_buffers()] == ["steps", "scratch"]
    assert all(b.requires_grad is False for b in layer.buffers())
    assert layer.steps.dtype == np.int64
    assert list(layer.state_dict()) == ["weight", "bias", "steps"]     # non-persistent left out
    assert len(layer.parameters()) == 2
    layer.steps = tm.Tensor(np.array(5), dtype=np.int64)           # assigning keeps it a buffer
    assert layer.state_dict()["steps"] == 5
    with pytest.raises(KeyError, match="'weight' is already a parameter"):
        layer.register_buffer("weight", np.zeros(2))
    with pytest.raises(TypeError, match="'x' must be a Tensor, an ndarray or None, got list"):
        layer.register_buffer("x", [1.0])


def test_apply_visits_children_before_parents_and_returns_the_module():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    visited = []
    assert model.apply(lambda m: visited.append(type(m).__name__)) is model
    assert visited == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]
    model.apply(lambda m: nn.init.zeros(m.weight) if isinstance(m, nn.Linear) else None)
    assert all(not p.data.any() for p in model.parameters())


def test_num_parameters_counts_a_shared_parameter_once():
    layer = nn.Linear(3, 4)
    assert nn.Sequential(layer, nn.ReLU(), layer.__class__(4, 4)).num_parameters() == 16 + 20
    shared = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    assert nn.Sequential(shared, shared).num_parameters() == 20


def test_forward_hooks_see_each_call_and_can_be_removed():
    layer = nn.Linear(2, 1)
    seen = []
    handle = layer.register_forward_hook(lambda m, inputs, out: seen.append(out.shape))
    layer(np.ones((3, 2)))
    handle.remove()
    layer(np.ones((5, 2)))
    assert seen == [(3, 1)]
    layer.register_forward_hook(lambda m, inputs, out: out * 0)
    assert not layer(np.ones((1, 2))).data.any()


# --- Identity, Flatten, Dropout ----------------------------------------------------------------

def test_identity_and_flatten():
    x = tm.Tensor(np.arange(24.0).reshape(2, 3, 2, 2))
    assert nn.Identity()(x) is x
    assert nn.Flatten()(x).shape == (2, 12)
    assert nn.Flatten(0, 1)(x).shape == (6, 2, 2)
    np.testing.assert_array_equal(nn.Flatten()(x).data, x.data.reshape(2, 12))


def test_dropout_is_inverted_reproducible_and_the_identity_in_eval():
    x = np.ones((200, 50))
    drop = nn.Dropout(0.3)
    tm.manual_seed(7)
    first = drop(x).data
    assert set(np.unique(first)) == {0.0, 1 / 0.7}                 # kept ones scaled by 1/(1 − p)
    assert abs((first == 0).mean() - 0.3) < 0.01                   # 10 000 draws: ±3σ ≈ 0.014
    assert not np.array_equal(drop(x).data, first)                 # a new mask on every call
    tm.manual_seed(7)
    np.testing.assert_array_equal(drop(x).data, first)             # drawn from tm's generator
    drop.eval()
    t = tm.Tensor(x)
    assert drop(t) is t
    assert nn.Dropout(0.0)(t) is t
    assert not nn.Dropout(1.0)(x).data.any()


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_dropout_refuses_a_p_that_is_no_probability(p):
    with pytest.raises(ValueError, match=r"Dropout: p must be a probability in \[0, 1\]"):
        nn.Dropout(p)


# --- BatchNorm and LayerNorm ------------------------------------------------------------------

def test_batchnorm_buffers_follow_pytorchs_running_statistics():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm1d(3, momentum=0.2)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var",
                                                  "num_batches_tracked"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    mean, var = np.zeros(3), np.ones(3)
    for step in range(1, 4):
        x = rng.normal(2.0, 3.0, size=(8, 3))
        out = bn(x).data
        np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-12)
        mean = 0.8 * mean + 0.2 * x.mean(0)
        var = 0.8 * var + 0.2 * x.var(0, ddof=1)                   # unbiased
        np.testing.assert_allclose(bn.running_mean.data, mean, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.data, var, rtol=1e-12)
        assert int(bn.num_batches_tracked) == step
    bn.eval()
    x = rng.normal(size=(2, 3))
    np.testing.assert_allclose(bn(x).data, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12)
    assert int(bn.num_batches_tracked) == 3                        # eval leaves them alone


def test_batchnorm_with_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm2d(2, momentum=None)
    batches = [np.random.default_rng(s).normal(s, 1.0, size=(3, 2, 2, 2)) for s in range(4)]
    for x in batches:
        bn(x)
    means = [x.mean(axis=(0, 2, 3)) for x in batches]
    np.testing.assert_allclose(bn.running_mean.data, np.mean(means, axis=0), rtol=1e-12)


def test_batchnorm_state_round_trips_and_errors_name_the_layer():
    bn = nn.BatchNorm1d(2)
    bn(np.random.default_rng(1).normal(size=(4, 2, 5)))
    copy = nn.BatchNorm1d(2)
    copy.load_state_dict(bn.state_dict())
    for name, buffer in bn.named_buffers():
        np.testing.assert_array_equal(dict(copy.named_buffers())[name].data, buffer.data)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(2\) expected input of shape \(N, C\) or "
                                         r"\(N, C, L\) with C=2, got \(4, 3\)"):
        bn(np.ones((4, 3)))
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(2\) expected input of shape "
                                         r"\(N, C, H, W\)"):
        nn.BatchNorm2d(2)(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"BatchNorm1d: momentum must be a number in \[0, 1\]"):
        nn.BatchNorm1d(2, momentum=2)


def test_layernorm_normalises_each_sample_over_its_last_axes():
    x = np.random.default_rng(2).normal(size=(4, 3, 5))
    ln = nn.LayerNorm((3, 5))
    assert ln.weight.shape == ln.bias.shape == (3, 5)
    ln.weight.data[...] = 2.0
    ln.bias.data[...] = -1.0
    mean, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(ln(x).data, 2 * (x - mean) / np.sqrt(var + 1e-5) - 1, rtol=1e-12)
    assert nn.LayerNorm(5, elementwise_affine=False).parameters() == []
    with pytest.raises(ValueError, match=r"LayerNorm\(3, 5\) expected input of shape "
                                         r"\(..., 3, 5\), got \(4, 5, 3\)"):
        ln(np.ones((4, 5, 3)))


# --- losses -----------------------------------------------------------------------------------

def test_l1_and_huber_are_summed_over_a_row_and_averaged_over_rows():
    a2 = tm.Tensor(np.array([[0.5, -2.0], [3.0, 1.0], [0.0, 0.25]]), requires_grad=True)
    Y = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    diff = a2.data - Y
    J = nn.L1Loss()(a2, Y)
    assert J.item() == pytest.approx(np.abs(diff).sum() / 3, rel=1e-15)
    J.backward()
    np.testing.assert_array_equal(a2.grad, np.sign(diff) / 3)      # 0 where a2 = Y
    a2.grad = None
    huber = np.where(np.abs(diff) <= 1.5, 0.5 * diff ** 2, 1.5 * (np.abs(diff) - 0.75))
    J = nn.HuberLoss(delta=1.5)(a2, Y)
    assert J.item() == pytest.approx(huber.sum() / 3, rel=1e-15)
    J.backward()
    np.testing.assert_allclose(a2.grad, np.clip(diff, -1.5, 1.5) / 3, rtol=1e-15)


def test_nll_picks_each_rows_log_probability_of_its_class():
    log_probs = tm.Tensor(np.log(np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])),
                          requires_grad=True)
    y = np.array([1, 0, 0])
    J = nn.NLLLoss()(log_probs, y)
    assert J.item() == pytest.approx(-(np.log(0.8) + np.log(0.6) + np.log(0.5)) / 3, rel=1e-15)
    J.backward()
    np.testing.assert_array_equal(log_probs.grad, -np.eye(2)[y] / 3)


@pytest.mark.parametrize("loss, pred, target, message", [
    (nn.L1Loss(), np.ones((3, 1)), np.ones(3), r"L1Loss: prediction shape \(3, 1\) != target "
                                               r"shape \(3,\)"),
    (nn.HuberLoss(), np.ones((2, 2)), np.ones((2, 3)), r"HuberLoss: prediction shape \(2, 2\)"),
    (nn.NLLLoss(), np.zeros((3, 2)), np.zeros((3, 2)), r"NLLLoss: expected log-probabilities "
                                                       r"of shape \(N, K\) and class indices "
                                                       r"of shape \(N,\); got \(3, 2\) and "
                                                       r"\(3, 2\)"),
    (nn.NLLLoss(), np.zeros((3, 2)), np.array([0, 2, 1]), r"NLLLoss: class index 2 at position "
                                                          r"\(1,\) is out of range for K=2"),
    (nn.NLLLoss(), np.zeros((2, 2)), np.array([0.5, 1.0]), "NLLLoss: class index 0.5"),
])
def test_new_losses_check_shapes_and_targets(loss, pred, target, message):
    with pytest.raises(ValueError, match=message):
        loss(pred, target)


def test_huber_delta_must_be_positive():
    with pytest.raises(ValueError, match="HuberLoss: delta must be a finite number > 0.0"):
        nn.HuberLoss(0)


# --- gradient clipping ------------------------------------------------------------------------

def params_with_grads(*grads):
    params = [tm.Tensor(np.zeros(np.shape(g)), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = np.array(g, dtype=np.float64)
    return params


def test_clip_grad_norm_returns_the_norm_before_clipping_and_scales_all_together():
    params = params_with_grads([3.0, 0.0], [[4.0]])
    total = nn.utils.clip_grad_norm_(params, max_norm=1.0)
    assert float(total) == 5.0
    coefficient = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad, [3 * coefficient, 0], rtol=1e-15)
    np.testing.assert_allclose(params[1].grad, [[4 * coefficient]], rtol=1e-15)
    small = params_with_grads([0.3, 0.4])
    assert float(nn.utils.clip_grad_norm_(small, max_norm=1.0)) == pytest.approx(0.5)
    np.testing.assert_array_equal(small[0].grad, [0.3, 0.4])        # below max_norm: untouched
    inf = params_with_grads([1.0, -7.0], [2.0])
    assert float(nn.utils.clip_grad_norm_(inf, 1.0, norm_type=math.inf)) == 7.0
    no_grad = tm.Tensor(np.zeros(2), requires_grad=True)
    assert float(nn.utils.clip_grad_norm_([no_grad], 1.0)) == 0.0 and no_grad.grad is None


def test_clip_grad_value_clips_every_entry():
    params = params_with_grads([-3.0, 0.5, 2.0])
    nn.utils.clip_grad_value_(params, 1.0)
    np.testing.assert_array_equal(params[0].grad, [-1.0, 0.5, 1.0])
    with pytest.raises(TypeError, match="clip_grad_value_: parameters must be Tensors"):
        nn.utils.clip_grad_value_([np.zeros(2)], 1.0)


# --- summary ----------------------------------------------------------------------------------

def test_summary_lists_layers_shapes_and_counts_without_touching_state():
    model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(32, 10), nn.Softmax())
    model[3].eval()                        # mixed modes come back exactly as they were
    state = {k: v.copy() for k, v in model.state_dict().items()}
    generator_state = tm.get_generator().bit_generator.state
    text = nn.summary(model, (64,))
    lines = text.splitlines()
    assert lines[0] == 'Model: "Sequential"'
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    rows = [line.split() for line in lines[4:11]]
    assert rows[0] == ["Input", "(None,", "64)", "0"]
    assert rows[1] == ["0", "(Linear)", "(None,", "32)", "2,080"]
    assert rows[2] == ["1", "(BatchNorm1d)", "(None,", "32)", "64"]
    assert rows[5] == ["4", "(Linear)", "(None,", "10)", "330"]
    assert "Total params: 2,474" in lines and "Trainable params: 2,474" in lines
    assert "Buffers (not trained, e.g. running statistics): 65" in lines
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    assert tm.get_generator().bit_generator.state == generator_state
    assert [m.training for m in model] == [True, True, True, False, True, True]
    assert model.training


def test_summary_of_a_custom_module_names_its_leaves_by_their_paths():
    text = nn.summary(Tower(), (3,))
    assert "blocks.0 (Linear)" in text and "heads.b (Linear)" in text
    assert "Total params: 36" in text


# --- constructor arguments are kept (what whole-model files record) ---------------------------

NEW_MODULES = [nn.Identity(), nn.Flatten(0, 2), nn.Dropout(0.25), nn.LeakyReLU(0.2),
               nn.ELU(0.5), nn.GELU("tanh"), nn.Softplus(2.0, 10.0), nn.LogSoftmax(0),
               nn.BatchNorm1d(3, 1e-3, None, False), nn.BatchNorm2d(4, momentum=0.3),
               nn.LayerNorm((2, 3), 1e-6, False), nn.L1Loss(), nn.HuberLoss(0.5), nn.NLLLoss()]


@pytest.mark.parametrize("module", NEW_MODULES, ids=lambda m: type(m).__name__)
def test_every_new_module_keeps_its_constructor_arguments(module):
    arguments = {name: getattr(module, name)
                 for name in inspect.signature(type(module).__init__).parameters if name != "self"}
    rebuilt = type(module)(**arguments)
    assert repr(rebuilt) == repr(module)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in module.parameters()]


def test_normalisation_layers_compute_in_their_own_dtype():
    tm.set_default_dtype(np.float32)
    x = np.random.default_rng(5).normal(size=(4, 3))             # float64 data
    for layer in (nn.BatchNorm1d(3), nn.LayerNorm(3)):
        assert layer(x).dtype == np.float32
        assert layer.eval()(x).dtype == np.float32


def test_fit_trains_dropout_and_batchnorm_in_train_mode_and_predicts_in_eval_mode():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(8, 2), nn.Softmax())
    tm.fit(model, X, y, loss=nn.CrossEntropyLoss(), optimizer=optim.SGD(model.parameters(), 0.1),
           epochs=3, batch_size=16, progress=False, validation_data=(X[:8], y[:8]))
    assert int(model[1].num_batches_tracked) == 3 * 3          # one update per training batch
    state = {k: v.copy() for k, v in model.state_dict().items()}
    first = tm.predict(model, X)
    np.testing.assert_array_equal(tm.predict(model, X), first)  # eval: no dropout, fixed stats
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    assert model.training and all(layer.training for layer in model)


def test_a_trainstep_replaying_batchnorm_updates_its_statistics_once_per_step():
    def run(replay):
        tm.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        step = tm.TrainStep(model, nn.MSELoss(), optim.SGD(model.parameters(), 0.1),
                            replay=replay)
        rng = np.random.default_rng(1)
        for _ in range(5):
            step(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)))
        return model, step
    replayed, step = run(True)
    eager, _ = run(False)
    assert step.replay                               # it did replay (its check passed)
    assert int(replayed[1].num_batches_tracked) == 5
    for key, value in eager.state_dict().items():
        np.testing.assert_allclose(replayed.state_dict()[key], value, rtol=1e-12, err_msg=key)
