"""tm.from_keras against Keras itself: models of every supported layer, saved in both formats,
Sequential and functional (two inputs, a shared layer, four outputs), give Keras's outputs
within 1e-5; hostile files are one ValueError naming the file and the layer, before anything
is built."""

from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras", reason="Keras 3 (on JAX) is the oracle for from_keras")
h5py = pytest.importorskip("h5py", reason="from_keras reads HDF5 with h5py (the keras extra)")

import tinygrad_mlp as tm  # noqa: E402
from tinygrad_mlp import nn  # noqa: E402
from tinygrad_mlp.interop import keras as reader  # noqa: E402

layers = keras.layers
# Keras 3's Variable.numpy() trips numpy 2's copy-keyword deprecation: Keras's own, not ours
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
SAVE_FORMATS = (".keras", ".h5")


def randomise(model: keras.Model, seed: int = 0) -> keras.Model:
    """Every weight drawn at random (variances positive), so no layer passes by being an
    identity at initialisation."""
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.uniform(0.5, 1.5, w.shape) if "variance" in v.path
                        else rng.normal(0, 0.5, w.shape)).astype(np.float32)
                       for v, w in zip(model.weights, model.get_weights())])
    return model


def every_layer_sequential() -> keras.Model:
    """A Sequential model holding every single-input layer from_keras reads."""
    return randomise(keras.Sequential([
        keras.Input((12, 12, 3)),
        layers.Rescaling(0.5, offset=0.1),
        layers.ZeroPadding2D(((1, 0), (2, 1))),                              # 13 × 15
        layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        layers.BatchNormalization(name="norm"),
        layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same",
                               name="depthwise"),                             # 7 × 8 × 8
        layers.SeparableConv2D(6, 3, activation="elu", name="separable"),     # 5 × 6 × 6
        layers.Conv2D(6, 3, padding="same", dilation_rate=2, groups=2, activation="softplus"),
        layers.MaxPooling2D(2, padding="same"),                               # 3 × 3 × 6
        layers.Activation("tanh"),
        layers.LeakyReLU(negative_slope=0.2),
        layers.AveragePooling2D(2, strides=1),                                # 2 × 2 × 6
        layers.ReLU(),
        layers.ELU(alpha=0.5),
        layers.Flatten(),                                                     # 24, channels last
        layers.BatchNormalization(),                     # on a flattened image: rows permuted
        layers.Dropout(0.3),
        layers.Dense(10, activation="gelu"),
        layers.Dense(5, activation="sigmoid", use_bias=False),
        layers.Dense(4),
        layers.Softmax(),
    ], name="every_layer"))


def every_layer_functional() -> keras.Model:
    """Two inputs, merges, a shared layer, Reshape, global pooling and an image output."""
    image, vector = keras.Input((8, 8, 2), name="image"), keras.Input((6,), name="vector")
    x = layers.Conv2D(4, 3, padding="same")(image)
    y = layers.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, use_bias=False)(image)
    added = layers.Add()([x, y])
    multiplied = layers.Multiply()([x, added])
    channels = layers.Concatenate()([added, multiplied])                 # 8 × 8 × 8
    rows = layers.Concatenate(axis=1)([added, multiplied])               # 16 × 8 × 4
    mean = layers.GlobalAveragePooling2D()(channels)                      # 8
    peak = layers.Flatten()(layers.GlobalMaxPooling2D(keepdims=True)(rows))   # 4
    flat = layers.Flatten()(x)                                            # 256, channels last
    square = layers.Reshape((16, 16))(flat)
    image_again = layers.Reshape((4, 4, 16))(flat)
    pooled = layers.GlobalMaxPooling2D()(layers.Conv2D(3, 2)(image_again))   # 3
    joined = layers.Concatenate()([flat, vector, mean, peak, pooled])    # flattened + others
    shared = layers.Dense(3, name="shared")
    first = shared(layers.Dense(6, activation="relu")(joined))
    second = shared(layers.Add()([layers.Dense(6)(vector),
                                  layers.Dense(6)(layers.Flatten()(square))]))
    probabilities = layers.Softmax(axis=1)(channels)                      # along H, an image
    return randomise(keras.Model([image, vector], [first, second, probabilities, flat],
                                 name="graph"))


def run_both(model: keras.Model, path: str, inputs: list[np.ndarray]) -> None:
    """Save `model` at `path`, import it, and compare every output with Keras's."""
    model.save(path)
    expected = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    imported = tm.from_keras(path)
    assert isinstance(imported, nn.Model) and not imported.training
    ours = [x.transpose(0, 3, 1, 2) if x.ndim == 4 else x for x in inputs]
    with tm.no_grad():
        outputs = imported(*ours)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        got = got.data.transpose(0, 2, 3, 1) if got.ndim == 4 else got.data
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("suffix", SAVE_FORMATS)
def test_a_sequential_model_of_every_layer_gives_keras_outputs(tmp_path, suffix):
    rng = np.random.default_rng(1)
    run_both(every_layer_sequential(), str(tmp_path / f"seq{suffix}"),
             [rng.uniform(-1, 1, (4, 12, 12, 3)).astype(np.float32)])


@pytest.mark.parametrize("suffix", SAVE_FORMATS)
def test_a_two_input_functional_model_gives_keras_outputs(tmp_path, suffix):
    rng = np.random.default_rng(2)
    run_both(every_layer_functional(), str(tmp_path / f"graph{suffix}"),
             [rng.uniform(-1, 1, (3, 8, 8, 2)).astype(np.float32),
              rng.uniform(-1, 1, (3, 6)).astype(np.float32)])


def test_a_keras_2_sequential_config_without_an_input_layer(tmp_path):
    """Keras 2 wrote a Sequential's input shape on its first layer (`batch_input_shape`), with
    no InputLayer: the same file in that form gives the same outputs."""
    model = every_layer_sequential()
    path = tmp_path / "keras2.h5"
    model.save(path)
    with h5py.File(path, "r+") as file:
        config = json.loads(file.attrs["model_config"])
        first, *rest = config["config"]["layers"]
        rest[0]["config"]["batch_input_shape"] = first["config"]["batch_shape"]
        config["config"]["layers"] = rest
        file.attrs["model_config"] = json.dumps(config)
    x = np.random.default_rng(3).uniform(-1, 1, (2, 12, 12, 3)).astype(np.float32)
    np.testing.assert_allclose(tm.predict(tm.from_keras(path), x.transpose(0, 3, 1, 2)),
                               model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_every_supported_layer_is_in_the_oracle_models():
    used = {type(layer).__name__ for model in (every_layer_sequential(), every_layer_functional())
            for layer in model.layers} | {"InputLayer"}
    assert set(reader.SUPPORTED_LAYERS) <= used, set(reader.SUPPORTED_LAYERS) - used


def test_an_imported_model_keeps_keras_names_and_hyperparameters(tmp_path):
    path = str(tmp_path / "seq.keras")
    every_layer_sequential().save(path)
    model = tm.from_keras(path)
    assert model.input_shape == (3, 12, 12)
    batch_norm = model.get_layer("norm")
    assert (batch_norm.eps, batch_norm.momentum) == (pytest.approx(1e-3), pytest.approx(0.01))
    assert isinstance(model.get_layer("conv_activation"), nn.ReLU)   # fused, its own node
    depthwise = model.get_layer("depthwise")
    assert (depthwise.groups, depthwise.out_channels) == (4, 8)
    assert model.get_layer("separable_depthwise").groups == 8
    assert model.get_layer("separable_pointwise").kernel_size == (1, 1)
    assert all(p.dtype == np.float32 for p in model.parameters())


# --- hostile files ------------------------------------------------------------------------------

def small_model() -> keras.Model:
    return randomise(keras.Sequential([keras.Input((4, 4, 1)), layers.Conv2D(2, 3, name="conv"),
                                       layers.Flatten(), layers.Dense(3, name="dense")]))


@pytest.fixture
def never_built(monkeypatch):
    """Fails the test if from_keras gets as far as building modules."""
    def build(plan):
        raise AssertionError("from_keras built modules from a file it should have refused")
    monkeypatch.setattr(reader, "_build", build)


def refused(path, *words: str) -> str:
    with pytest.raises(ValueError) as caught:
        tm.from_keras(path)
    message = str(caught.value)
    assert repr(str(path)) in message
    for word in words:
        assert word in message, message
    return message


def test_a_lambda_layer_is_refused_and_never_run(tmp_path, never_built, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("TM_TEST_LAMBDA_MARKER", str(marker))
    model = keras.Sequential([keras.Input((3,)), layers.Lambda(   # runs once as Keras builds it
        lambda x: x + len(os.makedirs(os.environ["TM_TEST_LAMBDA_MARKER"]) or ""),
        name="code")])
    path = tmp_path / "lambda.keras"
    model.save(path)
    marker.rmdir()
    refused(path, "'code'", "Lambda", "never runs")
    assert not marker.exists()


def test_an_unsupported_layer_is_named_with_the_supported_list(tmp_path, never_built):
    model = keras.Sequential([keras.Input((5, 2)), layers.Conv1D(2, 2, name="temporal")])
    model.save(tmp_path / "conv1d.keras")
    message = refused(tmp_path / "conv1d.keras", "'temporal'", "Conv1D", "not supported")
    assert all(name in message for name in reader.SUPPORTED_LAYERS)


def rewrite_h5_weight(path, layer, name, array=None):
    """Replace (or with None delete) one weight of an HDF5 model file."""
    with h5py.File(path, "r+") as file:
        group = file[f"model_weights/{layer}"]
        [stored] = [n for n in group.attrs["weight_names"] if n.split("/")[-1] == name]
        del group[stored]
        if array is not None:
            group[stored] = array


@pytest.mark.parametrize("array, words", [
    (np.zeros((3, 3, 1, 5), np.float32), ("'kernel'", "(3, 3, 1, 5)", "(3, 3, 1, 2)")),
    (np.zeros((3, 3, 1, 2), np.float64), ("'kernel'", "float64", "float32")),
    (None, ("'kernel'", "missing"))])
def test_a_wrong_or_missing_weight_names_file_and_layer(tmp_path, never_built, array, words):
    path = tmp_path / "m.h5"
    small_model().save(path)
    rewrite_h5_weight(path, "conv", "kernel", array)
    refused(path, "layer 'conv' (Conv2D)", *words)


def test_a_wrong_weight_in_a_keras_zip_names_file_and_layer(tmp_path, never_built):
    path = tmp_path / "m.keras"
    small_model().save(path)
    with zipfile.ZipFile(path) as archive:
        config, weights = archive.read("config.json"), archive.read("model.weights.h5")
    (tmp_path / "w.h5").write_bytes(weights)
    with h5py.File(tmp_path / "w.h5", "r+") as file:
        del file["layers/dense/vars/0"]
        file["layers/dense/vars/0"] = np.zeros((7, 3), np.float32)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config)
        archive.write(tmp_path / "w.h5", "model.weights.h5")
    refused(path, "layer 'dense' (Dense)", "(7, 3)", "(8, 3)")


@pytest.mark.parametrize("suffix", SAVE_FORMATS)
def test_a_truncated_file_is_a_value_error(tmp_path, never_built, suffix):
    path = tmp_path / f"m{suffix}"
    small_model().save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    refused(path, "truncated")


def test_a_file_that_is_no_model_is_refused(tmp_path, never_built):
    (tmp_path / "notes.keras").write_text("not a model")
    refused(tmp_path / "notes.keras", "neither")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    refused(tmp_path / "empty.keras", "config.json")


def test_a_weight_larger_than_the_file_is_refused_before_reading(tmp_path, never_built):
    """A config and a weight that agree on a size the file cannot hold: refused on the HDF5
    metadata (an unwritten dataset takes no room), never allocated."""
    path = tmp_path / "m.h5"
    keras.Sequential([keras.Input((4,)), layers.Dense(3, name="dense")]).save(path)
    with h5py.File(path, "r+") as file:
        config = file.attrs["model_config"]
        file.attrs["model_config"] = config.replace('"units": 3', '"units": 300000000')
        group = file["model_weights/dense"]
        folder = group.attrs["weight_names"][0].rsplit("/", 1)[0]
        group = group[folder]
        del group["kernel"], group["bias"]
        group.create_dataset("kernel", shape=(4, 300_000_000), dtype=np.float32)
        group.create_dataset("bias", shape=(300_000_000,), dtype=np.float32)
    refused(path, "layer 'dense' (Dense)", "more than the")


def test_a_config_too_deep_or_too_large_is_refused(tmp_path, never_built, monkeypatch):
    path = tmp_path / "m.h5"
    small_model().save(path)
    shutil.copy(path, tmp_path / "deep.h5")
    with h5py.File(tmp_path / "deep.h5", "r+") as file:
        file.attrs["model_config"] = "[" * 100_000 + "]" * 100_000
    refused(tmp_path / "deep.h5", "too deep")
    monkeypatch.setattr(reader, "_MAX_CONFIG_BYTES", 100)
    refused(path, "'model_config'", "more than the 100")


def test_a_soft_link_in_place_of_a_weight_is_refused(tmp_path, never_built):
    path = tmp_path / "m.h5"
    small_model().save(path)
    with h5py.File(path, "r+") as file:
        group = file["model_weights/conv"]
        kernel, dense = group.attrs["weight_names"][0], file["model_weights/dense"]
        del group[kernel]
        group[kernel] = h5py.SoftLink(dense.name + "/" + dense.attrs["weight_names"][0])
    refused(path, "layer 'conv' (Conv2D)", "link")
