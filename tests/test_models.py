"""tm.models: the ready-made networks the CLI trains — their shapes, sizes, refusals, and that
each is plain built-in layers (so it saves, loads and gradchecks like any model)."""

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import models, nn


def parameter_count(model: nn.Module) -> int:
    return sum(p.data.size for p in model.parameters())


@pytest.mark.parametrize("height, width, classes, count", [(28, 28, 10, 421_642),
                                                            (48, 48, 7, 1_199_495)])
def test_cnn_has_the_documented_size_and_gives_probabilities(height, width, classes, count):
    tm.manual_seed(0)
    model = models.cnn(height, width, classes).eval()
    assert parameter_count(model) == count
    X = np.random.default_rng(0).random((3, 1, height, width))
    P = model(X).data
    assert P.shape == (3, classes)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)


def test_cnn_takes_odd_sizes_and_colour_and_refuses_images_too_small_to_pool_twice():
    model = models.cnn(9, 13, 4, channels=3, hidden=16).eval()
    assert model(np.zeros((2, 3, 9, 13))).shape == (2, 4)
    with pytest.raises(ValueError, match=r"at least 4×4 .* got 3×8"):
        models.cnn(3, 8, 10)


@pytest.mark.parametrize("output, head", [("softmax", nn.Softmax), ("sigmoid", nn.Sigmoid)])
def test_mlp_is_the_blogs_network(output, head):
    model = models.mlp(64, 30, 10, output=output)
    kinds = [type(layer) for layer in model]
    assert kinds == [nn.Linear, nn.Sigmoid, nn.Linear, head]
    assert [layer.weight.shape for layer in (model[0], model[2])] == [(64, 30), (30, 10)]
    assert model(np.zeros((5, 64))).shape == (5, 10)


def test_mlp_refuses_an_unknown_output_naming_it():
    with pytest.raises(ValueError, match="output.*'relu'"):
        models.mlp(4, 3, 2, output="relu")


@pytest.mark.parametrize("build", [lambda: models.mlp(16, 8, 3),
                                   lambda: models.cnn(8, 8, 3, hidden=8)])
def test_a_ready_made_network_round_trips_through_a_model_file(build, tmp_path):
    tm.manual_seed(1)
    model = build().eval()
    X = np.random.default_rng(1).random((2, 16) if isinstance(model[0], nn.Linear)
                                        else (2, 1, 8, 8))
    path = str(tmp_path / "model.npz")
    tm.save_model(model, path)
    np.testing.assert_array_equal(tm.load_model(path).eval()(X).data, model(X).data)
