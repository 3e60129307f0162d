"""Hostile model files (issue 19, items 1–5): files that expand exponentially through shared
modules or declare layers whose weights they do not hold are refused at once, in a child
process under a memory limit, with one ValueError; malformed fields are clear errors naming
the file; loading and saving never touch another thread's default dtype; a model mixing
float64 and float32 layers saves and loads."""

import io
import json
import os
import re
import sys
import threading
import zipfile

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # plain `pytest`
from benchmarks.model_file_bombs import bombs, measure, write_model_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(tm.__file__)))   # the package tested
MEMORY_LIMIT = 768 * 2**20          # the child's address space: the bombs asked for gigabytes


@pytest.mark.parametrize("name, reason", [
    ("refs doubling 40 deep", r"expands to \d+ module names .* more than the \d+ its size "
                              r"allows"),
    ("refs doubling 40 deep, weighted leaf", r"expands to \d+ parameters and buffers .* holds "
                                             r"2 arrays"),
    ("four Linear(8000, 8000) without arrays", r"module '0' has '0.weight' but the file has no "
                                               r"such array"),
    ("10,000 refs to one Linear(2000, 2000)", r"expands to 20000 parameters and buffers .* "
                                              r"holds 2 arrays"),
])
def test_a_model_file_bomb_is_refused_at_once_under_a_memory_limit(tmp_path, name, reason):
    path = bombs(tmp_path)[name]
    result = measure(path, MEMORY_LIMIT, 60, ROOT)
    if result["outcome"] is None:
        pytest.fail(f"load_model({name}) still ran after 60 s")
    assert result["returncode"] == 0 and result["stderr"] == "", result["stderr"][-2000:]
    message = result["outcome"]
    assert message.startswith("ValueError: load_model: ") and str(path) in message, message
    assert re.search(reason, message), message
    assert result["seconds"] < 1.0, result
    assert len(message) < 3000                                # no megabyte messages


# --- item 3: malformed fields are clear errors naming the file ----------------------------------

def saved(tmp_path, model=None):
    path = tmp_path / "model.npz"
    tm.save_model(model or nn.Sequential(nn.Linear(3, 2), nn.Sigmoid()), path)
    return path


def edited(path, edit, arrays=None):
    loaded = tm.load(path)
    with zipfile.ZipFile(path) as archive:
        architecture = json.loads(np.load(io.BytesIO(
            archive.read("__tinygrad_mlp_model__.npy"))).tobytes())
    edit(architecture)
    return write_model_file(path, architecture, arrays if arrays is not None else loaded)


def set_in(keys, value):
    def edit(architecture):
        target = architecture
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (set_in(["model", "id"], [1]), r"a module entry must have class, id, path, config .*id a "
                                   r"number"),
    (set_in(["model", "config", "layers", 1, "module"], {"ref": {"a": 1}}),
     r"a reference to module number \{'a': 1\}, which comes later or nowhere"),
    (set_in(["format"], True), r"not model format 2 .*got format True"),
    (lambda a: a.update(format=1, training="false"), r"'training' must be true or false, got "
                                                     r"'false'"),
    (set_in(["model", "training"], 0), r"the model: 'training' must be true or false, got 0"),
    (set_in(["model", "class"], "x" * 10**6), r"the model is a 'xxxx.*\(1000002 characters\)"),
    (set_in(["model", "config", "layers", 0, "module", "config", "dtype"],
            {"dtype": "(99999999999,99999999999)f8"}), r"unknown dtype"),
])
def test_a_malformed_field_is_a_short_value_error_naming_the_file(tmp_path, edit, message):
    path = edited(saved(tmp_path), edit)
    with pytest.raises(ValueError, match=message) as caught:
        tm.load_model(path)
    assert str(caught.value).startswith(f"load_model: {str(path)!r}: ")
    assert len(str(caught.value)) < 3000


def test_a_duplicate_json_key_is_refused(tmp_path):
    text = '{"format": 1, "training": true, "training": false, "model": {"class": "Sigmoid", ' \
           '"id": 0, "path": "", "config": {}}}'
    path = write_model_file(tmp_path / "model.npz", text)
    with pytest.raises(ValueError, match=r"not valid JSON \(the key 'training' appears twice"):
        tm.load_model(path)


def test_float128_weights_do_not_build_a_float128_model(tmp_path):
    longdouble = np.dtype(np.longdouble)
    if longdouble.itemsize <= 8:
        pytest.skip("this platform's long double is a float64")
    path = saved(tmp_path)
    arrays = {key: array.astype(longdouble) for key, array in tm.load(path).items()}
    edited(path, lambda architecture: None, arrays)
    with pytest.raises(ValueError, match=rf"'0.weight' is float32\(3, 2\) in the architecture "
                                         rf"but {longdouble}\(3, 2\) in the file"):
        tm.load_model(path)
    # a layer whose dtype argument says float128 keeps it (Linear takes any float dtype)
    model = nn.Sequential(nn.Linear(3, 2, dtype=longdouble))
    loaded = tm.load_model(saved(tmp_path, model))
    assert loaded[0].weight.dtype == longdouble and tm.get_default_dtype() == np.float32


# --- item 4: no global dtype changes while a model is built -------------------------------------

@pytest.mark.parametrize("operation", ["load_model", "save_model"])
def test_another_thread_keeps_its_default_dtype_while_a_float16_model_is_built(tmp_path,
                                                                               operation):
    model = nn.Sequential(*[nn.Linear(4, 4, dtype=np.float16) for _ in range(300)])
    path = saved(tmp_path, model)
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            seen.add(tm.Tensor([1.0]).dtype)

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for _ in range(10):
            if operation == "load_model":
                assert tm.load_model(path)[0].weight.dtype == np.float16
            else:
                tm.save_model(model, path)
    finally:
        done.set()
        thread.join()
    assert seen == {np.dtype(np.float32)}


def test_a_float16_load_builds_its_layers_in_float16_in_its_own_thread(tmp_path):
    path = saved(tmp_path, nn.Sequential(nn.Linear(2, 2, dtype=np.float16), nn.BatchNorm1d(2)))
    loaded = tm.load_model(path)
    assert loaded[0].weight.dtype == np.float16
    assert tm.get_default_dtype() == np.float32 and tm.Tensor([1.0]).dtype == np.float32


# --- item 5: a model mixing float64 and float32 layers ------------------------------------------

@pytest.mark.parametrize("order", ["Linear first", "BatchNorm first"])
def test_a_float64_linear_and_a_float32_batchnorm_save_and_load_in_either_order(tmp_path, order):
    layers = [nn.Linear(3, 3, dtype=np.float64), nn.BatchNorm1d(3)]
    model = nn.Sequential(*(layers if order == "Linear first" else layers[::-1]))
    tm.save_model(model, tmp_path / "mixed.npz")
    loaded = tm.load_model(tmp_path / "mixed.npz")
    assert [(k, v.dtype) for k, v in loaded.state_dict().items()] == \
        [(k, v.dtype) for k, v in model.state_dict().items()]
    X = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_array_equal(tm.predict(loaded, X), tm.predict(model, X))


# --- the declared state each layer checks a file against -----------------------------------------

def test_every_built_in_layer_declares_the_state_it_builds():
    from test_io_models import EXAMPLES
    for name, (factory, _) in EXAMPLES.items():
        for module in factory().modules():
            spec = type(module).state_spec(module.get_config())
            own = {key: (array.shape, array.dtype) for key, array in module.state_dict().items()
                   if "." not in key}
            assert {key: (tuple(shape), np.dtype(dtype or np.float32))
                    for key, (shape, dtype) in spec.items()} == own, name


# --- item 6 (files): each module keeps its own train/eval mode ----------------------------------

def test_each_module_keeps_its_own_mode_through_a_file(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5), nn.Linear(3, 1))
    model[1].eval()                                         # a frozen BatchNorm, the rest training
    loaded = tm.load_model(saved(tmp_path, model))
    assert [m.training for m in loaded.modules()] == [m.training for m in model.modules()] == \
        [True, True, False, True, True]
    model.eval()
    model[2].train()
    loaded = tm.load_model(saved(tmp_path, model))
    assert [m.training for m in loaded.modules()] == [False, False, False, True, False]


def test_a_format_1_file_still_loads_with_its_one_mode(tmp_path):
    architecture = {"format": 1, "training": False, "model": {
        "class": "Sequential", "id": 0, "path": "", "config": {"layers": [
            {"module": {"class": "Linear", "id": 1, "path": "0", "config": {
                "in_features": 2, "out_features": 1, "bias": False, "dtype": None}}}]}}}
    weight = np.array([[1.5], [-2.0]], np.float32)
    model = tm.load_model(write_model_file(tmp_path / "old.npz", architecture,
                                           {"0.weight": weight}))
    assert [m.training for m in model.modules()] == [False, False]
    np.testing.assert_array_equal(model[0].weight.data, weight)
