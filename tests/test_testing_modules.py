"""tm.testing for whole modules: check_module gradchecks every parameter by name and leaves the
module exactly as it was; ModuleMachine drives every built-in layer family through train, eval,
optimizer steps, save and load, and catches modules that break what it checks."""

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

import tinygrad_mlp as tm
from tinygrad_mlp import nn
from tinygrad_mlp.testing import ModuleMachine, check_module


# --- check_module -------------------------------------------------------------------------------

class Scale(tm.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.x, ctx.w = x, w
        return x * w

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.w, grad * ctx.x


class ScaleForgetsTheSum(Scale):
    """w's gradient summed over the batch axis with a mean: wrong by a factor N."""

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.w, (grad * ctx.x).mean(axis=0)


class Scaler(nn.Module):
    """A custom layer: x · w per feature, with its own Function."""

    function = Scale

    def __init__(self, features):
        super().__init__()
        self.weight = tm.Tensor(np.linspace(0.5, 1.5, features), requires_grad=True)

    def forward(self, x):
        return self.function.apply(x, self.weight)


class WrongScaler(Scaler):
    function = ScaleForgetsTheSum


def snapshot(model):
    """Everything check_module must leave alone: arrays (bit for bit, dtype included), the
    parameter objects, every module's mode, the generator's state."""
    return ({k: (v.dtype, v.copy()) for k, v in model.state_dict().items()},
            [id(p) for p in model.parameters()],
            [m.training for m in model.modules()],
            tm.get_generator().bit_generator.state)


def assert_unchanged(model, before):
    state, params, modes, generator = snapshot(model)
    assert state.keys() == before[0].keys()
    for key, (dtype, array) in state.items():
        assert dtype == before[0][key][0], key
        np.testing.assert_array_equal(array, before[0][key][1], err_msg=key)
    assert params == before[1] and modes == before[2] and generator == before[3]


def block(layer):
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Dropout(0.5), layer,
                         nn.Linear(4, 2))


X = np.random.default_rng(0).standard_normal((6, 3))


@pytest.mark.parametrize("train", [False, True])
def test_check_module_passes_a_right_model_in_either_mode(train):
    model = block(Scaler(4))
    assert check_module(model, X, train=train) is True


@pytest.mark.parametrize("train", [False, True])
def test_check_module_names_the_wrong_parameter_and_leaves_the_model_as_it_was(train):
    model = block(WrongScaler(4))
    model.train(True)
    model[1].eval()                                    # a mixed mode, to be kept as it is
    model(X)                                           # buffers away from their initial values
    before = snapshot(model)
    with pytest.raises(tm.GradcheckError, match=r"parameter '4\.weight'"):
        check_module(model, X, train=train)
    assert_unchanged(model, before)
    assert model[0].weight.dtype == np.float32         # the float64 check ran on a copy


def test_check_module_leaves_a_passing_model_as_it_was():
    model = block(Scaler(4))
    model(X)
    before = snapshot(model)
    check_module(model, X, train=True)
    check_module(model, X)
    assert_unchanged(model, before)


def test_in_train_mode_dropout_keeps_one_mask_through_the_check():
    """Without rewinding the generator before each forward pass, every finite difference would
    see a new mask and the check would fail on a right model."""
    model = nn.Sequential(nn.Linear(3, 5), nn.Dropout(0.5), nn.Linear(5, 2))
    assert check_module(model, X, train=True)


def test_check_module_checks_inputs_and_several_outputs():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), WrongScaler(3)

        def forward(self, x):
            return self.a(x), self.b(x)

    with pytest.raises(tm.GradcheckError, match=r"parameter 'b\.weight'"):
        check_module(TwoHeads(), X)
    assert check_module(nn.Linear(3, 2), X, check_inputs=True)


def test_check_module_refuses_what_it_cannot_check():
    with pytest.raises(TypeError, match="expected an nn.Module"):
        check_module(lambda x: x, X)
    with pytest.raises(ValueError, match="no parameter to check"):
        check_module(nn.ReLU(), X)


# --- ModuleMachine over every built-in layer family ---------------------------------------------

rng = np.random.default_rng(1)
ROWS = rng.standard_normal((4, 6))
IMAGES = rng.standard_normal((2, 2, 6, 6))


def functional_model():
    x = nn.Input((6,))
    a, b = nn.Linear(6, 4)(x), nn.Linear(6, 4)(nn.Rescaling(0.5, offset=0.1)(x))
    merged = nn.Concatenate(axis=1)([nn.Add()([a, b]), nn.Multiply()([a, b])])
    return nn.Model(inputs=x, outputs=merged)


class Containers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Sequential(nn.Linear(6, 4)), nn.Linear(4, 4)])
        self.heads = nn.ModuleDict({"out": nn.Linear(4, 2)})

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.heads["out"](x)


# family: (model builder, batch, the built-in layer classes it exercises)
FAMILIES = {
    "dense": (lambda: nn.Sequential(nn.Linear(6, 3), nn.Linear(3, 2)), ROWS, ["Linear"]),
    "activations": (lambda: nn.Sequential(
        nn.Linear(6, 6), nn.Sigmoid(), nn.Tanh(), nn.ReLU(), nn.LeakyReLU(0.1), nn.ELU(),
        nn.GELU(), nn.Softplus(), nn.Linear(6, 3), nn.Softmax(), nn.LogSoftmax()), ROWS,
        ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "GELU", "Softplus", "Softmax",
         "LogSoftmax"]),
    "dropout": (lambda: nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 2)), ROWS,
                ["Dropout"]),
    "batchnorm": (lambda: nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)), ROWS,
                  ["BatchNorm1d"]),
    "layernorm": (lambda: nn.Sequential(nn.Linear(6, 4), nn.LayerNorm(4)), ROWS, ["LayerNorm"]),
    "conv": (lambda: nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3),
        nn.Conv2d(3, 3, 3, padding="same", dilation=2, groups=3), nn.MaxPool2d(2),
        nn.AvgPool2d(1), nn.ZeroPad2d((1, 1, 1, 1)), nn.AdaptiveMaxPool2d(3),
        nn.AdaptiveAvgPool2d(2), nn.Identity(), nn.Flatten(), nn.Linear(12, 2)), IMAGES,
        ["Conv2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "ZeroPad2d", "AdaptiveMaxPool2d",
         "AdaptiveAvgPool2d", "Identity", "Flatten"]),
    "shape": (lambda: nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.Permute((2, 3, 1)), nn.Reshape((-1, 3)), nn.Flatten(),
        nn.Linear(48, 2)), IMAGES, ["Permute", "Reshape"]),
    "containers": (Containers, ROWS, ["Sequential", "ModuleList", "ModuleDict"]),
    "functional": (functional_model, ROWS,
                   ["Model", "Add", "Multiply", "Concatenate", "Rescaling"]),
}
NOT_LAYERS = {"Module", "IncompatibleKeys", "HookHandle"}   # and the losses, checked by name


def test_the_families_cover_every_built_in_layer():
    layers = {name for name in nn.__all__ if isinstance(getattr(nn, name), type)
              and issubclass(getattr(nn, name), nn.Module)} - NOT_LAYERS
    layers = {name for name in layers if not name.endswith("Loss")}
    covered = {name for _, _, names in FAMILIES.values() for name in names}
    missing = sorted(layers - covered)
    assert not missing, (f"nn has layers no ModuleMachine family runs: {missing}; add them to "
                         f"FAMILIES in tests/test_testing_modules.py")


def run_machine(machine, steps=12, examples=8):
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_built_in_layer_family_keeps_what_the_machine_checks(family):
    build, batch, names = FAMILIES[family]
    assert {type(m).__name__ for m in build().modules()} >= set(names)   # the table is true
    run_machine(ModuleMachine.for_module(build, lambda: (batch,), name=f"{family}Machine"))


class NoisyInEval(nn.Module):
    """Adds noise from the library's generator in both modes (Dropout only does in train)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)

    def forward(self, x):
        return self.lin(x) + tm.get_generator().standard_normal(2).astype(np.float32) * 0.0


class ForgetsItsState(nn.Module):
    """Keeps a running count as a plain attribute, not a buffer: save/load loses it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)
        self.seen = np.zeros(1, np.float32)

    def forward(self, x):
        if self.training:
            self.seen += 1
        return self.lin(x) + self.seen


@pytest.mark.parametrize("module, message", [
    (NoisyInEval, "drew from the generator"),
    (ForgetsItsState, "eval output differs from the saved one"),
])
def test_the_machine_catches_a_module_that_breaks_its_checks(module, message):
    with pytest.raises(AssertionError, match=message):
        run_machine(ModuleMachine.for_module(module, lambda: (ROWS,)), steps=20, examples=100)
