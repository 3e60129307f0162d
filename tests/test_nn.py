"""nn: Module registration and state, Linear, activations, Sequential, init, and the blog's
network against the hand-derived reference gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp import nn


def blog_network(D, M, K, output="sigmoid", bias=False, dtype=None):
    """The blog's 3-layer perceptron: Linear(D, M) → σ → Linear(M, K) → σ or softmax."""
    last = nn.Sigmoid() if output == "sigmoid" else nn.Softmax()
    return nn.Sequential(nn.Linear(D, M, bias=bias, dtype=dtype), nn.Sigmoid(),
                         nn.Linear(M, K, bias=bias, dtype=dtype), last)


def snapshot(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


def assert_same_weights(model, saved):
    current = snapshot(model)
    assert list(current) == list(saved)
    for name in saved:
        assert current[name].dtype == saved[name].dtype
        assert np.array_equal(current[name], saved[name], equal_nan=True), name


# --- the blog's network against tm.reference ------------------------------------------------

LOSSES = {"mse": (nn.MSELoss, "sigmoid"), "bce": (nn.BCELoss, "sigmoid"),
          "ce": (nn.CrossEntropyLoss, "softmax")}


@given(N=st.integers(1, 6), D=st.integers(1, 5), M=st.integers(1, 5), K=st.integers(1, 4),
       loss=st.sampled_from(sorted(LOSSES)), seed=st.integers(0, 2**32 - 1))
def test_blog_network_gradients_match_reference(N, D, M, K, loss, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)) * 2
    if loss == "ce":
        Y = np.eye(K)[rng.integers(0, K, N)]
    else:
        Y = rng.random((N, K))
    loss_class, output = LOSSES[loss]
    tm.manual_seed(seed)
    model = blog_network(D, M, K, output, dtype=np.float64)
    J = loss_class()(model(X), Y)
    J.backward()
    W1, W2 = model[0].weight.data, model[2].weight.data
    dJ_dW1, dJ_dW2 = tm.reference.gradients(X, Y, W1, W2, loss=loss)
    np.testing.assert_allclose(J.item(), tm.reference.cost(X, Y, W1, W2, loss=loss), rtol=1e-12)
    np.testing.assert_allclose(model[0].weight.grad, dJ_dW1, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(model[2].weight.grad, dJ_dW2, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_blog_network_in_float32_stays_float32_and_close_to_reference(loss):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(8, 5)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    loss_class, output = LOSSES[loss]
    model = blog_network(5, 4, 3, output)
    J = loss_class()(model(X), Y)
    J.backward()
    assert J.dtype == np.float32
    W1, W2 = (model[i].weight.data.astype(np.float64) for i in (0, 2))
    for layer, expected in zip((model[0], model[2]),
                               tm.reference.gradients(X.astype(np.float64), Y, W1, W2, loss=loss)):
        assert layer.weight.grad.dtype == np.float32
        np.testing.assert_allclose(layer.weight.grad, expected, rtol=1e-4, atol=1e-6)


def test_class_indices_give_the_same_gradients_as_one_hot():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    grads = []
    for target in (y, np.eye(3)[y]):
        tm.manual_seed(0)
        model = blog_network(4, 5, 3, "softmax", dtype=np.float64)
        nn.CrossEntropyLoss()(model(X), target).backward()
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


# --- Module ----------------------------------------------------------------------------------

class Blog(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 3)
        self.scale = tm.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
        self.constant = tm.Tensor(np.zeros(3, dtype=np.float32))   # no grad: not a parameter
        self.out = nn.Linear(3, 2, bias=False)

    def forward(self, X):
        return self.out(self.hidden(X).sigmoid() * self.scale)


def test_parameters_are_registered_in_insertion_order_with_dotted_names():
    model = Blog()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "hidden.weight", "hidden.bias", "out.weight"]
    assert [p for p in model.parameters()] == [p for _, p in model.named_parameters()]
    assert list(model.state_dict()) == names
    assert [name for name, _ in model.named_children()] == ["hidden", "out"]
    assert [type(m).__name__ for m in model.modules()] == ["Blog", "Linear", "Linear"]


def test_reassigning_and_deleting_attributes_updates_the_registry():
    model = Blog()
    model.out = None
    assert [n for n, _ in model.named_parameters()] == ["scale", "hidden.weight", "hidden.bias"]
    model.scale = tm.Tensor(np.ones(3), requires_grad=True)     # replaced, keeps its slot
    del model.hidden
    assert [n for n, _ in model.named_parameters()] == ["scale"]
    assert list(model.children()) == []


def test_a_shared_parameter_is_listed_once():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid())
    model.append(model[0])
    assert len(model.parameters()) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_assigning_before_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Broken()


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        nn.Module()(1)


def test_zero_grad_train_eval():
    model = Blog()
    model(np.ones((2, 4), dtype=np.float32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert model.eval() is model
    assert [m.training for m in model.modules()] == [False, False, False]
    model.train()
    assert [m.training for m in model.modules()] == [True, True, True]


def test_repr_reads_like_pytorch():
    model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10, bias=False),
                          nn.Softmax(axis=1))
    assert repr(model) == ("Sequential(\n"
                           "  (0): Linear(in_features=64, out_features=32, bias=True)\n"
                           "  (1): Sigmoid()\n"
                           "  (2): Linear(in_features=32, out_features=10, bias=False)\n"
                           "  (3): Softmax(axis=1)\n"
                           ")")
    nested = repr(nn.Sequential(nn.Sequential(nn.ReLU())))
    assert nested == "Sequential(\n  (0): Sequential(\n    (0): ReLU()\n  )\n)"
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss(from_logits=False)"
    assert repr(nn.MSELoss()) == "MSELoss()"


# --- state_dict / load_state_dict ----------------------------------------------------------------

def test_state_dict_returns_copies_and_round_trips():
    model = blog_network(4, 3, 2, bias=True)
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    state["0.weight"][...] = 7.0
    assert not np.any(model[0].weight.data == 7.0)
    tm.manual_seed(1)
    other = blog_network(4, 3, 2, bias=True)
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert not np.array_equal(other(X).data, model(X).data)
    arrays = [p.data for p in other.parameters()]
    assert other.load_state_dict(model.state_dict()) == ([], [])
    assert [p.data for p in other.parameters()] == arrays          # same arrays, filled in place
    assert all(a is p.data for a, p in zip(arrays, other.parameters()))
    np.testing.assert_array_equal(other(X).data, model(X).data)


def test_load_state_dict_accepts_tensors():
    model, other = blog_network(3, 2, 2), blog_network(3, 2, 2)
    other.load_state_dict({k: tm.Tensor(v) for k, v in model.state_dict().items()})
    assert_same_weights(other, snapshot(model))


def test_failed_load_names_every_problem_and_changes_nothing():
    model = blog_network(4, 3, 2, bias=True)
    before = snapshot(model)
    state = model.state_dict()
    state["0.bias"] = np.full(3, 5.0, dtype=np.float32)          # valid, listed before the bad one
    state["2.weight"] = np.zeros((3, 5), dtype=np.float32)       # wrong shape
    state["2.bias"] = np.zeros(2, dtype=np.complex128)           # a dtype no cast fits
    del state["0.weight"]
    state["9.weight"] = np.zeros(1, dtype=np.float32)
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    for part in ("missing keys: ['0.weight']", "unexpected keys: ['9.weight']", "'2.weight'",
                 "(3, 5)", "(3, 2)", "'2.bias'", "complex128", "float32", "nothing was changed"):
        assert part in message
    assert_same_weights(model, before)


def test_load_state_dict_casts_other_float_and_int_arrays_as_pytorch_does():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    weight = np.random.default_rng(0).normal(size=(2, 3))              # float64
    model.load_state_dict({**model.state_dict(), "0.weight": weight,
                           "0.bias": np.array([1, 2, 3]), "1.num_batches_tracked": np.int32(7)})
    assert model[0].weight.data.dtype == np.float32
    np.testing.assert_array_equal(model[0].weight.data, weight.astype(np.float32))
    np.testing.assert_array_equal(model[0].bias.data, [1, 2, 3])
    assert model[1].num_batches_tracked.data == 7
    with pytest.raises(ValueError, match=r"'1.num_batches_tracked': float64 in the state dict "
                                         r"cannot become the model's int64"):
        model.load_state_dict({**model.state_dict(), "1.num_batches_tracked": np.float64(1.5)})


def test_strict_false_skips_missing_and_unexpected_keys_but_not_bad_shapes():
    model = blog_network(4, 3, 2)
    result = model.load_state_dict({"2.weight": np.ones((3, 2), np.float32), "x": 1},
                                   strict=False)
    assert result.missing_keys == ["0.weight"] and result.unexpected_keys == ["x"]
    np.testing.assert_array_equal(model[2].weight.data, 1.0)
    with pytest.raises(ValueError, match="shape mismatch for '0.weight'"):
        model.load_state_dict({"0.weight": np.ones((3, 4), np.float32)}, strict=False)


# --- Linear --------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, -1, 2.5, True, "3", None])
def test_linear_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        nn.Linear(size, 3)
    with pytest.raises(ValueError, match="out_features must be a positive int"):
        nn.Linear(3, size)


def test_linear_shapes_names_dtype_and_ops():
    layer = nn.Linear(4, 3)
    assert layer.weight.shape == (4, 3) and layer.bias.shape == (3,)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    assert layer.weight.requires_grad and layer.bias.requires_grad
    assert (layer.weight.name, layer.bias.name) == ("weight", "bias")
    np.testing.assert_array_equal(layer.bias.data, 0)
    assert layer(np.ones((2, 4), np.float32)).op == "Linear"
    assert nn.Linear(4, 3, bias=False)(np.ones((2, 4), np.float32)).op == "MatMul"
    assert nn.Linear(4, 3, dtype=np.float64).weight.dtype == np.float64
    tm.set_default_dtype(np.float64)
    assert nn.Linear(4, 3).weight.dtype == np.float64
    with pytest.raises(TypeError, match="float dtype"):
        nn.Linear(2, 2, dtype=np.int32)


def test_linear_computes_X_W_plus_b():
    layer = nn.Linear(3, 2, dtype=np.float64)
    layer.bias.data[...] = [1.0, -1.0]
    X = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(layer(X).data, X @ layer.weight.data + [1.0, -1.0])


@pytest.mark.parametrize("shape", [(2, 5), (5,), ()])
def test_linear_wrong_input_names_layer_and_shapes(shape):
    with pytest.raises(ValueError) as info:
        nn.Linear(4, 3)(np.ones(shape, np.float32))
    message = str(info.value)
    assert "Linear(4 -> 3)" in message and str(shape) in message and "(4, 3)" in message


def test_sequential_names_parameters_by_their_dotted_path():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Sequential(nn.Linear(3, 1)))
    assert [p.name for p in model.parameters()] == ["0.weight", "0.bias", "2.0.weight",
                                                    "2.0.bias"]
    model[1:]                                        # slicing leaves the names alone
    assert model[2][0].weight.name == "2.0.weight"


# --- activations ------------------------------------------------------------------------------

def test_activations_call_their_ops():
    Z = tm.Tensor([[-1.0, 0.0, 2.0]], requires_grad=True)
    for layer, op, expected in [(nn.Sigmoid(), "Sigmoid", 1 / (1 + np.exp(-Z.data))),
                                (nn.Tanh(), "Tanh", np.tanh(Z.data)),
                                (nn.ReLU(), "ReLU", np.maximum(Z.data, 0)),
                                (nn.Softmax(), "Softmax", np.exp(Z.data) / np.exp(Z.data).sum())]:
        out = layer(Z)
        assert out.op == op
        np.testing.assert_allclose(out.data, expected, rtol=1e-6)
    assert nn.Softmax(axis=0)(Z).data.tolist() == [[1.0, 1.0, 1.0]]
    with pytest.raises(ValueError, match="axis must be an int"):
        nn.Softmax(axis=1.5)


# --- Sequential -------------------------------------------------------------------------------

def test_sequential_indexing_slicing_iteration_len_append():
    layers = [nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.Softmax()]
    model = nn.Sequential(*layers)
    assert len(model) == 4 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[-1]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    assert head[0].weight is layers[0].weight                      # shared, like PyTorch
    assert [n for n, _ in model[2:].named_parameters()] == ["0.weight", "0.bias"]
    assert nn.Sequential(layers) is not None and len(nn.Sequential(layers)) == 4   # Keras style
    X = np.ones((5, 4), np.float32)
    np.testing.assert_array_equal(model(X).data, model[2:](model[:2](X)).data)
    grown = nn.Sequential()
    assert grown.append(nn.Linear(4, 2)) is grown and len(grown) == 1
    with pytest.raises(IndexError, match="index 4 out of range for 4 layers"):
        model[4]


def test_sequential_checks_that_linear_sizes_chain():
    with pytest.raises(ValueError) as info:
        nn.Sequential(nn.Linear(3, 16), nn.Sigmoid(), nn.Linear(8, 4))
    message = str(info.value)
    assert "layer 2 (Linear(8 -> 4))" in message and "layer 0 (Linear(3 -> 16))" in message
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU())
    with pytest.raises(ValueError, match="expects 15 features but layer 0"):
        model.append(nn.Linear(15, 2))
    assert len(model) == 2                                         # the bad layer was not added
    with pytest.raises(TypeError, match="layer 1 must be a Module, got ufunc"):
        nn.Sequential(nn.ReLU(), np.tanh)


# --- init ---------------------------------------------------------------------------------------

def test_glorot_uniform_is_the_default_and_has_the_right_bound_and_spread():
    fan_in, fan_out = 300, 200
    W = nn.Linear(fan_in, fan_out).weight.data
    bound = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound
    assert abs(W.std() / (bound / np.sqrt(3)) - 1) < 0.02
    assert abs(W.mean()) < 0.01 * bound


@pytest.mark.parametrize("initialiser, std", [
    (nn.init.xavier_normal, np.sqrt(2 / 500)), (nn.init.glorot_normal, np.sqrt(2 / 500)),
    (nn.init.he_normal, np.sqrt(2 / 300)), (nn.init.kaiming_normal, np.sqrt(2 / 300)),
    (nn.init.kaiming_uniform, np.sqrt(2 / 300)), (nn.init.he_uniform, np.sqrt(2 / 300)),
    (nn.init.xavier_uniform, np.sqrt(2 / 500)), (nn.init.glorot_uniform, np.sqrt(2 / 500))])
def test_init_spreads(initialiser, std):
    W = tm.Tensor(np.empty((300, 200), np.float32))
    assert initialiser(W) is W and W.dtype == np.float32
    assert abs(W.data.std() / std - 1) < 0.02


def test_simple_initialisers_and_errors():
    t = tm.Tensor(np.empty((3, 2)))
    np.testing.assert_array_equal(nn.init.zeros(t).data, 0)
    np.testing.assert_array_equal(nn.init.ones(t).data, 1)
    np.testing.assert_array_equal(nn.init.constant(t, 2.5).data, 2.5)
    assert np.all((nn.init.uniform(t, -1, 1).data >= -1) & (t.data < 1))
    array = np.empty(1000)
    nn.init.normal(array, 3.0, 0.1)
    assert abs(array.mean() - 3) < 0.02
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_uniform(tm.Tensor(np.empty(3)))
    with pytest.raises(TypeError, match="float Tensor or ndarray"):
        nn.init.zeros([1.0, 2.0])


def test_same_seed_same_weights_and_the_global_numpy_rng_is_untouched():
    np.random.seed(123)
    global_state = np.random.get_state()[1].copy()
    tm.manual_seed(5)
    first = snapshot(blog_network(6, 4, 3, bias=True))
    tm.manual_seed(5)
    second = blog_network(6, 4, 3, bias=True)
    assert_same_weights(second, first)
    tm.manual_seed(6)
    third = snapshot(blog_network(6, 4, 3, bias=True))
    assert not np.array_equal(third["0.weight"], first["0.weight"])
    assert np.array_equal(np.random.get_state()[1], global_state)


def test_float32_and_float64_models_from_one_seed_agree_up_to_rounding():
    tm.manual_seed(3)
    w32 = nn.Linear(5, 4).weight.data
    tm.manual_seed(3)
    w64 = nn.Linear(5, 4, dtype=np.float64).weight.data
    np.testing.assert_array_equal(w32, w64.astype(np.float32))
