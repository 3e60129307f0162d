"""Whole-model files: save_model / load_model round-trip every built-in layer, user modules
(registered or via custom_objects), shared modules, dtypes and modes; and every way a file or
a model can be wrong is an error naming the module, with nothing half-built or half-written."""

import functools
import io
import json
import os
import zipfile

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn
from tinygrad_mlp.nn import registry

MODEL_MEMBER = "__tinygrad_mlp_model__.npy"


# --- every built-in layer ---------------------------------------------------------------------------

def _optional(name, *args, **kwargs):
    """A built-in layer that may not exist yet on this branch: (factory, input shape)."""
    return lambda: getattr(nn, name)(*args, **kwargs)


# name -> (a model holding the layer, an input shape for its forward; None: not a layer)
EXAMPLES = {
    "Linear": (lambda: nn.Linear(3, 2), (4, 3)),
    "Sigmoid": (lambda: nn.Sigmoid(), (4, 3)),
    "Tanh": (lambda: nn.Tanh(), (4, 3)),
    "ReLU": (lambda: nn.ReLU(), (4, 3)),
    "Softmax": (lambda: nn.Softmax(axis=0), (4, 3)),
    "Sequential": (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False)),
                   (5, 3)),
    "Conv2d": (lambda: nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=1, groups=2),
               (2, 2, 5, 4)),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=1, padding=1), (1, 2, 4, 4)),
    "AvgPool2d": (lambda: nn.AvgPool2d([2, 1]), (1, 2, 4, 4)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((None, 2)), (1, 2, 5, 4)),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d(3), (1, 2, 5, 4)),
    "ZeroPad2d": (lambda: nn.ZeroPad2d((1, 0, 2, 3)), (1, 2, 3, 3)),
    "MSELoss": (lambda: nn.MSELoss(), None),
    "BCELoss": (lambda: nn.BCELoss(), None),
    "CrossEntropyLoss": (lambda: nn.CrossEntropyLoss(from_logits=True), None),
    "Identity": (lambda: nn.Identity(), (4, 3)),
    "Flatten": (lambda: nn.Flatten(0, 1), (2, 3, 4)),
    "Dropout": (lambda: nn.Dropout(0.3), (4, 3)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), (4, 3)),
    "ELU": (lambda: nn.ELU(0.5), (4, 3)),
    "GELU": (lambda: nn.GELU("tanh"), (4, 3)),
    "Softplus": (lambda: nn.Softplus(2.0, 5.0), (4, 3)),
    "LogSoftmax": (lambda: nn.LogSoftmax(axis=0), (4, 3)),
    "BatchNorm1d": (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=0.2)),
                    (5, 3)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2, eps=1e-3, momentum=None, affine=False),
                    (3, 2, 2, 2)),
    "LayerNorm": (lambda: nn.LayerNorm((2, 3), eps=1e-6), (4, 2, 3)),
    "ModuleList": (lambda: nn.ModuleList([nn.Linear(2, 2), nn.ReLU()]).append(nn.Tanh()), None),
    "ModuleDict": (lambda: nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.LayerNorm(2)}), None),
    "L1Loss": (lambda: nn.L1Loss(), None),
    "HuberLoss": (lambda: nn.HuberLoss(delta=0.5), None),
    "NLLLoss": (lambda: nn.NLLLoss(), None),
    "Rescaling": (lambda: nn.Rescaling(0.5, offset=-1.0), (4, 3)),
    "Reshape": (lambda: nn.Reshape((3, -1)), (4, 2, 3)),
    "Permute": (lambda: nn.Permute((2, 3, 1)), (4, 2, 3, 5)),
    "Add": (lambda: _merged(nn.Add()), (4, 3)),
    "Multiply": (lambda: _merged(nn.Multiply()), (4, 3)),
    "Concatenate": (lambda: _merged(nn.Concatenate(axis=-1)), (4, 3)),
    "Model": (lambda: _merged(nn.Add(), shared=True), (4, 3)),
}


def _merged(merge, shared=False):
    """An nn.Model joining a Linear branch and a shortcut with `merge` (the Linear used twice
    when `shared`)."""
    x = nn.Input((3,))
    linear = nn.Linear(3, 3)
    branch = linear(nn.Tanh()(linear(x)) if shared else x)
    return nn.Model(x, merge([branch, x], name="merge"), name="merged")


def builtin_layers():
    return sorted(name for name, cls in registry._classes.items()
                  if cls.__module__.startswith("tinygrad_mlp.nn"))


def test_every_built_in_module_has_a_round_trip_example():
    missing = [name for name in builtin_layers() if name not in EXAMPLES]
    assert not missing, (f"add an example of {missing} to EXAMPLES in tests/test_io_models.py, so "
                         f"model files are tested with it")


def randomized(model, rng):
    """Give every parameter and buffer values no fresh construction would have."""
    state = {key: (rng.uniform(0.5, 1.5, size=value.shape) if value.dtype.kind == "f"
                   else rng.integers(1, 9, size=value.shape)).astype(value.dtype)
             for key, value in model.state_dict().items()}
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_built_in_module_round_trips(name, tmp_path):
    make, shape = EXAMPLES[name]
    model = randomized(make(), np.random.default_rng(0))
    path = tmp_path / "model.npz"
    tm.save_model(model, path)
    loaded = tm.load_model(path)
    assert type(loaded) is type(model) and repr(loaded) == repr(model)
    assert loaded.get_config().keys() == model.get_config().keys()
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)
        assert loaded.state_dict()[key].dtype == value.dtype
    if shape is not None:
        X = np.random.default_rng(1).normal(size=shape).astype(np.float32)
        np.testing.assert_array_equal(tm.predict(loaded, X), tm.predict(model, X))


def test_a_model_file_is_tm_loads_weights_plus_json_and_weights_only_files_still_load(tmp_path):
    model = randomized(nn.Sequential(nn.Linear(3, 2), nn.Sigmoid()), np.random.default_rng(0))
    weights, whole = tmp_path / "weights.npz", tmp_path / "model.npz"
    tm.save(model.state_dict(), weights)
    tm.save_model(model, whole)
    for path in (weights, whole):                          # tm.load reads both as weights
        state = tm.load(path)
        assert state.keys() == model.state_dict().keys()
        fresh = nn.Sequential(nn.Linear(3, 2), nn.Sigmoid())
        fresh.load_state_dict(state)
        np.testing.assert_array_equal(fresh[0].weight.data, model[0].weight.data)
    with zipfile.ZipFile(whole) as archive:               # an ordinary npz, the JSON readable
        architecture = json.loads(np.load(io.BytesIO(archive.read(MODEL_MEMBER))).tobytes())
    assert architecture["model"]["class"] == "Sequential"
    assert architecture["model"]["config"]["layers"][0]["module"]["config"] == {
        "in_features": 3, "out_features": 2, "bias": True, "dtype": None}
    with pytest.raises(ValueError, match="holds only parameters .* model.load_state_dict"):
        tm.load_model(weights)


def test_dtype_mode_and_the_random_generator_survive(tmp_path):
    tm.set_default_dtype(np.float64)
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1, dtype=np.float32)).eval()
    tm.set_default_dtype(np.float32)
    path = tmp_path / "model.npz"
    tm.manual_seed(5)
    expected = tm.get_generator().random()
    tm.manual_seed(5)
    tm.save_model(model, path)
    loaded = tm.load_model(path)
    assert tm.get_generator().random() == expected         # saving and loading drew nothing
    assert [p.dtype for p in loaded.parameters()] == [p.dtype for p in model.parameters()]
    assert loaded.parameters()[0].dtype == np.float64 and not loaded.training
    assert not any(m.training for m in loaded.modules())


# --- user modules -------------------------------------------------------------------------------------

@nn.register
class Block(nn.Module):
    """A user module: its constructor arguments are recorded without any code of its own."""

    def __init__(self, width, activation=None, *, scale=1.0):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.activation = activation if activation is not None else nn.Identity() \
            if hasattr(nn, "Identity") else nn.Tanh()
        self.scale = scale

    def forward(self, X):
        return self.activation(self.linear(X)) * self.scale


@nn.register(name="tests.Configured")
class Configured(nn.Module):
    """A user module that says how it is rebuilt (Keras's get_config)."""

    def __init__(self, sizes):
        super().__init__()
        self.sizes = list(sizes)
        self.layers = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])])

    def grow(self, width):                   # changes the module after construction
        self.layers.append(nn.Linear(self.sizes[-1], width))
        self.sizes.append(width)

    def get_config(self):
        return {"sizes": tuple(self.sizes)}

    def forward(self, X):
        return self.layers(X)


class Unregistered(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, X):
        return self.linear(X)


def test_user_modules_nest_and_a_shared_module_stays_shared(tmp_path):
    shared = nn.Linear(4, 4)
    grown = Configured([4, 3])
    grown.grow(4)
    model = nn.Sequential(Block(4, nn.Sigmoid(), scale=0.5), shared, grown, shared)
    randomized(model, np.random.default_rng(0))
    path = tmp_path / "model.npz"
    tm.save_model(model, path)
    loaded = tm.load_model(path)
    assert repr(loaded) == repr(model)
    assert loaded[1] is loaded[3] and loaded[0].scale == 0.5 and loaded[2].sizes == [4, 3, 4]
    X = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(tm.predict(loaded, X), tm.predict(model, X))


def test_an_unregistered_class_is_refused_at_save_naming_its_path_and_nothing_is_written(
        tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"the previous file")
    model = nn.Sequential(nn.Linear(2, 2), Block(2, Unregistered()))
    with pytest.raises(ValueError, match=r"module '1.activation' is a .*Unregistered, which is "
                                         r"neither built in nor registered: .*@nn.register"):
        tm.save_model(model, path)
    assert path.read_bytes() == b"the previous file"
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_module_changed_after_construction_is_refused_at_save(tmp_path):
    model = Block(2)
    model.extra = nn.Linear(2, 3)                          # not in Block's constructor
    with pytest.raises(ValueError, match=r"does not give the same model \(the model has an "
                                         r"array 'extra.weight' that module 'extra' rebuilt "
                                         r"does not have.*get_config\(\)"):
        tm.save_model(model, tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()


def test_an_argument_json_cannot_hold_is_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match=r"module '0': argument activation is a builtin_function_or_method, "
                                        r"which a model file cannot hold"):
        tm.save_model(nn.Sequential(Block(2, activation=abs)), tmp_path / "model.npz")


def test_custom_objects_rebuild_a_class_this_process_does_not_know(tmp_path):
    path = tmp_path / "model.npz"
    tm.save_model(nn.Sequential(Block(3)), path)
    rewrite_architecture(path, lambda a: a["model"]["config"]["layers"][0]["module"].update(
        {"class": "Elsewhere"}))
    with pytest.raises(ValueError, match=r"module '0' is a 'Elsewhere', a class that is neither "
                                         r"built in nor registered here: .*custom_objects="):
        tm.load_model(path)
    loaded = tm.load_model(path, custom_objects={"Elsewhere": Block})
    assert isinstance(loaded[0], Block)
    with pytest.raises(TypeError, match="custom_objects must map class names to nn.Module"):
        tm.load_model(path, custom_objects={"Elsewhere": len})


def test_a_changed_constructor_is_an_error_naming_the_module(tmp_path):
    path = tmp_path / "model.npz"
    tm.save_model(nn.Sequential(nn.Linear(3, 3), Block(3)), path)

    class Block2(nn.Module):                              # Block's new version: renamed argument
        def __init__(self, size):
            super().__init__()
            self.linear = nn.Linear(size, size)

    class Wider(Block):                                    # same arguments, other shapes
        def __init__(self, width, activation=None, *, scale=1.0):
            super().__init__(width + 1, activation, scale=scale)

    with pytest.raises(ValueError, match=r"module '1' \(Block\) cannot be rebuilt from its "
                                         r"saved arguments .*width.* constructor change"):
        tm.load_model(path, custom_objects={"Block": Block2})
    with pytest.raises(ValueError, match=r"shape mismatch for '1.linear.weight'"):
        tm.load_model(path, custom_objects={"Block": Wider})


# --- hostile and broken files -----------------------------------------------------------------------

def rewrite_member(path, name, payload):
    """Rewrite the npz at `path` with member `name` replaced (None: removed), the rest as is."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    if payload is None:
        del members[name]
    else:
        buffer = io.BytesIO()
        np.save(buffer, payload, allow_pickle=False)
        members[name] = buffer.getvalue()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def rewrite_architecture(path, edit):
    with zipfile.ZipFile(path) as archive:
        architecture = json.loads(np.load(io.BytesIO(archive.read(MODEL_MEMBER))).tobytes())
    edit(architecture)
    text = json.dumps(architecture).encode()
    rewrite_member(path, MODEL_MEMBER, np.frombuffer(text, dtype=np.uint8))


def saved(tmp_path):
    path = tmp_path / "model.npz"
    tm.save_model(nn.Sequential(nn.Linear(3, 2), nn.Sigmoid(), nn.Sequential(nn.Linear(2, 2))),
                  path)
    return path


def test_a_missing_or_an_extra_array_is_an_error_naming_the_module(tmp_path):
    path = saved(tmp_path)
    rewrite_member(path, "2.0.bias.npy", None)
    with pytest.raises(ValueError, match=r"module '2.0' has '2.0.bias' but the file has no such "
                                         r"array"):
        tm.load_model(path)
    path = saved(tmp_path)
    rewrite_member(path, "1.weight.npy", np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match=r"the file has an array '1.weight' that module '1' "
                                         r"does not have"):
        tm.load_model(path)


@pytest.mark.parametrize("payload, message", [
    (np.frombuffer(b"{not json", dtype=np.uint8), "is not valid JSON"),
    (np.frombuffer(b"[" * 100000, dtype=np.uint8), "is not valid JSON"),
    (np.ones(3, np.float32), "not JSON bytes"),
    (np.frombuffer(b'{"format": 99}', dtype=np.uint8), "not model format 2 .*got format 99"),
    (np.frombuffer(json.dumps({"format": 1, "model": {"class": "os.system", "id": 0,
                                                      "path": "", "config": {}}}).encode(),
                   dtype=np.uint8), "the model is a 'os.system', a class that is neither"),
    (np.frombuffer(json.dumps({"format": 1, "model": {"ref": 3}}).encode(), dtype=np.uint8),
     "a reference to module number 3"),
])
def test_a_broken_architecture_is_a_clear_error(tmp_path, payload, message):
    path = saved(tmp_path)
    rewrite_member(path, MODEL_MEMBER, payload)
    with pytest.raises(ValueError, match=message):
        tm.load_model(path)


def test_deeply_nested_modules_are_refused(tmp_path):
    path = saved(tmp_path)
    spec = {"class": "Sigmoid", "id": 0, "path": "", "config": {}}
    for number in range(1, 150):
        spec = {"class": "Sequential", "id": number, "path": "", "config": {
            "layers": [{"module": spec}]}}
    rewrite_architecture(path, lambda a: a.update(model=spec))
    with pytest.raises(ValueError, match="nested more than 100 deep"):
        tm.load_model(path)


# --- the registry ---------------------------------------------------------------------------------

def test_register_refuses_taken_names_and_non_modules():
    with pytest.raises(ValueError, match=r"the name 'Linear' is taken by "
                                         r"tinygrad_mlp.nn.layers.Linear"):
        @nn.register
        class Linear(nn.Module):
            pass
    with pytest.raises(TypeError, match="expects a subclass of nn.Module"):
        nn.register(dict)
    assert registry.lookup("tests.Configured") is Configured
    assert registry.registered_name(Block) == "Block"
    assert registry.registered_name(Unregistered) is None


# --- functional models: the graph in the file ------------------------------------------------------

def saved_graph(tmp_path):
    """A saved nn.Model: input -> linear -> tanh -> add([tanh, input]) -> linear_1."""
    x = nn.Input((3,))
    h = nn.Tanh()(nn.Linear(3, 3)(x))
    tm.save_model(nn.Model(x, nn.Linear(3, 1)(nn.Add()([h, x]))), tmp_path / "graph.npz")
    return tmp_path / "graph.npz"


def node(architecture, name):
    nodes = [entry["dict"] for entry in architecture["model"]["config"]["nodes"]]
    return next(entry for entry in nodes if entry["name"] == name)


@pytest.mark.parametrize("edit, message", [
    (lambda a: node(a, "tanh").update(inputs=["nowhere"]),
     r"node 'tanh' takes 'nowhere', which is no input or node"),
    (lambda a: node(a, "linear").update(inputs=["add"]),
     r"it has a cycle through node '(linear|tanh|add)' \((linear|tanh|add) -> .* -> "),
    (lambda a: node(a, "add").update(inputs=["tanh"]),
     r"node 'add' feeds its layer \(Add\) 1 input, but it takes at least 2"),
    (lambda a: node(a, "linear_1").update(inputs=["add", "input"]),
     r"node 'linear_1' feeds its layer \(Linear\) 2 inputs, but it takes 1"),
    (lambda a: node(a, "add").update(list=False),
     r"node 'add' feeds its layer \(Add\) separate inputs, but a merge layer takes one list"),
    (lambda a: a["model"]["config"].update(outputs="nothing"),
     r"the output 'nothing' is no input or node"),
])
def test_a_bad_graph_in_a_model_file_is_an_error_naming_the_node_before_building(
        tmp_path, monkeypatch, edit, message):
    path = saved_graph(tmp_path)
    rewrite_architecture(path, edit)

    @functools.wraps(nn.Linear.__init__)         # (the file's check reads its signature)
    def built(*args, **kwargs):
        raise AssertionError("a layer was built before the graph was checked")

    monkeypatch.setattr(nn.Linear, "__init__", built)
    with pytest.raises(ValueError, match=r"load_model: .*graph.npz.*the model's graph is "
                                         r"invalid: " + message):
        tm.load_model(path)
