"""io: exact save/load round trips, atomic saves, and refused files that leave the model as it was."""

import gc
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest

import tinygrad_mlp as tm
import tinygrad_mlp.io.arrays as tio
from tinygrad_mlp import nn


def blog_network():
    return nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.Softmax())


def snapshot(model):
    return {name: p.data.copy() for name, p in model.named_parameters()}


def assert_unchanged(model, saved):
    for name, p in model.named_parameters():
        assert p.data.dtype == saved[name].dtype
        assert np.array_equal(p.data, saved[name], equal_nan=True), name


def test_round_trip_is_exact_and_writes_exactly_the_given_path(tmp_path):
    model = blog_network()
    model[0].weight.data[0, :] = [np.nan, np.inf, -np.inf]
    model[0].bias.data[:] = [-0.0, np.finfo(np.float32).tiny, np.finfo(np.float32).max]
    path = tmp_path / "digits.weights"
    tm.save(model.state_dict(), path)
    assert sorted(os.listdir(tmp_path)) == ["digits.weights"]     # no ".npz" added, no temp left
    loaded = tm.load(str(path))
    assert list(loaded) == list(model.state_dict())
    for key, array in model.state_dict().items():
        assert loaded[key].dtype == np.float32 == array.dtype
        assert np.array_equal(loaded[key], array, equal_nan=True)
        assert np.array_equal(np.signbit(loaded[key]), np.signbit(array))
    other = blog_network()
    other.load_state_dict(loaded)
    assert_unchanged(other, snapshot(model))


def test_a_loaded_model_predicts_bit_identically(tmp_path):
    model, other = blog_network(), blog_network()
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert not np.array_equal(other(X).data, model(X).data)
    tm.save(model.state_dict(), tmp_path / "m")
    other.load_state_dict(tm.load(tmp_path / "m"))
    np.testing.assert_array_equal(other(X).data, model(X).data)


def test_same_state_gives_identical_bytes_and_files_are_plain_npz(tmp_path):
    state = {"w": np.arange(6, dtype=np.float64).reshape(2, 3), "file": np.ones(2),
             "allow_pickle": np.zeros(1, np.int32)}            # names np.savez would choke on
    tm.save(state, tmp_path / "a")
    tm.save(tm.load(tmp_path / "a"), tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    with np.load(tmp_path / "a") as archive:
        assert archive.files == [tio.FORMAT_KEY, "w", "file", "allow_pickle"]
        assert int(archive[tio.FORMAT_KEY]) == tio.FORMAT_VERSION


def test_tensors_can_be_saved_but_objects_cannot(tmp_path):
    tm.save({"t": tm.Tensor([1.0, 2.0])}, tmp_path / "t")
    np.testing.assert_array_equal(tm.load(tmp_path / "t")["t"], [1.0, 2.0])
    with pytest.raises(TypeError, match="'o' has dtype object"):
        tm.save({"o": np.array([{}], dtype=object)}, tmp_path / "o")
    with pytest.raises(TypeError, match="expects a mapping"):
        tm.save([np.ones(2)], tmp_path / "l")
    assert sorted(os.listdir(tmp_path)) == ["t"]


def test_a_save_that_fails_halfway_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    model = blog_network()
    tm.save(model.state_dict(), path)
    old = snapshot(model)

    def fail_halfway(file, arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(tio, "_write_npz", fail_halfway)
    for p in model.parameters():
        p.data += 1
    with pytest.raises(OSError, match="disk full"):
        tm.save(model.state_dict(), path)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    fresh = blog_network()
    fresh.load_state_dict(tm.load(path))
    assert_unchanged(fresh, old)


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m"
    tm.save({"a": np.zeros(2)}, path)
    tm.save({"a": np.ones(2)}, path)
    np.testing.assert_array_equal(tm.load(path)["a"], 1.0)


def test_a_missing_file_is_file_not_found_with_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        tm.load(tmp_path / "nowhere.npz")


def _truncated(path):
    tm.save(blog_network().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _tail_cut(path):
    tm.save(blog_network().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[:-30])


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())


def _pickled_object_array(path):
    with open(path, "wb") as file:
        np.savez(file, **{tio.FORMAT_KEY: np.array(1), "0.weight": np.array([{}], dtype=object)})


def _plain_pickle(path):
    path.write_bytes(pickle.dumps({"0.weight": np.ones((4, 3), np.float32)}))


def _no_marker(path):
    with open(path, "wb") as file:
        np.savez(file, **blog_network().state_dict())


def _newer_version(path):
    with open(path, "wb") as file:
        np.savez(file, **{tio.FORMAT_KEY: np.array(99)}, **blog_network().state_dict())


def _single_npy(path):
    with open(path, "wb") as file:
        np.save(file, np.ones(3))


def _corrupt_member(path):
    tm.save(blog_network().state_dict(), path)
    data = bytearray(path.read_bytes())
    start = data.find(b"\x93NUMPY", 200)                 # the header of a later member
    data[start:start + 6] = b"XXXXXX"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make_bad_file, message", [
    (lambda p: p.write_bytes(b""), "corrupt, truncated"),
    (_truncated, "corrupt, truncated"),
    (_tail_cut, "corrupt, truncated"),
    (_random_bytes, "corrupt, truncated or needs pickle"),
    (_pickled_object_array, "needs pickle"),
    (_plain_pickle, "needs pickle"),
    (_no_marker, "missing '__tinygrad_mlp_format__'"),
    (_newer_version, "format version 99"),
    (_single_npy, "holds a single array"),
    (_corrupt_member, "corrupt, truncated"),
], ids=["empty", "truncated", "tail-cut", "random", "pickled-object", "pickle", "no-marker",
        "newer-version", "npy", "corrupt-member"])
def test_bad_files_are_refused_naming_the_file_and_the_model_is_unchanged(
        tmp_path, make_bad_file, message):
    path = tmp_path / "bad.ckpt"
    make_bad_file(path)
    model = blog_network()
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # e.g. a ResourceWarning for a leaked handle
        with pytest.raises(ValueError) as info:
            model.load_state_dict(tm.load(path))
        gc.collect()
    assert str(path) in str(info.value) and message in str(info.value)
    assert_unchanged(model, before)


def test_a_file_with_wrong_shapes_is_refused_by_load_state_dict(tmp_path):
    path = tmp_path / "other.npz"
    tm.save(nn.Sequential(nn.Linear(4, 5), nn.Sigmoid(), nn.Linear(5, 2)).state_dict(), path)
    model = blog_network()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"'0.weight': \(4, 5\) in the state dict vs \(4, 3\)"):
        model.load_state_dict(tm.load(path))
    assert_unchanged(model, before)


def test_the_archive_format_is_a_zip_of_npy_members(tmp_path):
    tm.save({"0.weight": np.ones((2, 2), np.float32)}, tmp_path / "z")
    with zipfile.ZipFile(tmp_path / "z") as archive:
        assert archive.namelist() == [tio.FORMAT_KEY + ".npy", "0.weight.npy"]
