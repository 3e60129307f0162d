"""Traps a new user fell into with `fit` (issue 19, items 6, 20–22): an optimizer built for
another model, the full-batch default, and the train/eval modes fit left behind."""

import inspect
import warnings

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim
from tinygrad_mlp.datasets import load_digits


LOSS = nn.CrossEntropyLoss(from_logits=True)


def digits(N=200):
    X, y = load_digits()
    return X[:N].astype(np.float32) / 16, y[:N]


def network(seed=0):
    tm.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(16, 10))


# --- item 20: an optimizer that holds none (or only some) of the model's parameters --------------

def test_an_optimizer_built_for_another_model_is_refused_before_anything_changes():
    X, y = digits()
    model, other = network(0), network(1)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"fit: the optimizer holds none of the model's 6 "
                                         r"parameters \(was it built for another model\?\); "
                                         r"build it from this model's: SGD\(model.parameters"):
        tm.fit(model, X, y, LOSS, optim.SGD(other.parameters(), lr=0.1),
               epochs=1, progress=False)
    for key, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[key])


def test_an_optimizer_missing_some_parameters_is_a_warning_naming_them():
    X, y = digits()
    model = network()
    frozen = model[0].weight.data.copy()
    with pytest.warns(UserWarning, match=r"does not hold the model's parameters \['0.weight', "
                                         r"'0.bias'\], so they will not train"):
        tm.fit(model, X, y, LOSS,
               optim.SGD([p for p in model.parameters()][2:], lr=0.1), epochs=1, progress=False)
    np.testing.assert_array_equal(model[0].weight.data, frozen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                      # all held: no warning
        tm.fit(model, X, y, LOSS, optim.SGD(model.parameters(), lr=0.1),
               epochs=1, progress=False)


# --- item 21: mini-batches of 32 unless told ------------------------------------------------------

def test_fit_defaults_to_mini_batches_of_32_as_keras():
    assert inspect.signature(tm.fit).parameters["batch_size"].default == 32
    X, y = digits(100)
    model = network()
    history = tm.fit(model, X, y, LOSS, optim.SGD(model.parameters(), lr=0.1),
                     epochs=1, progress=False)
    assert history.params["batch_size"] == 32 and history.params["steps"] == 4   # ⌈100 / 32⌉
    model = network()
    history = tm.fit(model, X, y, LOSS, optim.SGD(model.parameters(), lr=0.1),
                     epochs=1, batch_size=None, progress=False)
    assert history.params["batch_size"] is None and history.params["steps"] == 1


# --- item 22 (and 6 for fit): each module's mode restored -----------------------------------------

@pytest.mark.parametrize("setup", ["eval", "frozen batchnorm", "train"])
def test_fit_trains_in_train_mode_and_leaves_every_module_in_the_mode_it_had(setup):
    X, y = digits()
    model = network()
    if setup == "eval":
        model.eval()
    elif setup == "frozen batchnorm":
        model[1].eval()
    before = [m.training for m in model.modules()]
    seen = []
    model[3].register_forward_hook(lambda module, inputs, output: seen.append(module.training))
    tm.fit(model, X, y, LOSS,
           optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=32, progress=False,
           replay=False)
    assert seen.count(True) == 7                # each of ⌈200 / 32⌉ steps in train mode
    assert [m.training for m in model.modules()] == before


def test_a_failed_fit_also_restores_the_modes():
    X, y = digits()
    model = network().eval()

    class Stop(tm.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        tm.fit(model, X, y, LOSS, optim.SGD(model.parameters(), lr=0.1),
               epochs=1, progress=False, callbacks=[Stop()])
    assert not any(m.training for m in model.modules())
