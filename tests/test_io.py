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
    (_random_bytes, "corrupt, truncated or not a zip archive"),
    (_pickled_object_array, "member '0.weight.npy' has dtype object, which needs pickle"),
    (_plain_pickle, "never unpickles"),
    (_no_marker, "missing '__tinygrad_mlp_format__'"),
    (_newer_version, "format version 99"),
    (_single_npy, "holds a single array"),
    (_corrupt_member, "is corrupt or truncated"),
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


# Hostile files and special paths (issue 9): every check below is made before anything is
# allocated or replaced.

def _npy_bytes(array):
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _zip(path, members):
    """An archive holding `members` [(name, bytes)] verbatim, the marker first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # zipfile warns on duplicate names
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(tio.FORMAT_KEY + ".npy", _npy_bytes(np.array(1, np.int64)))
            for name, data in members:
                archive.writestr(name, data)


def _peak_bytes_of_a_refused_load(path, message):
    """The most memory (numpy's allocations included) `load` held before refusing `path`."""
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            tm.load(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_compressed_member_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "bomb.npz"
    header = _npy_bytes(np.zeros(0, np.float32)).replace(b"(0,)", b"(16777216,)")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(tio.FORMAT_KEY + ".npy", _npy_bytes(np.array(1, np.int64)),
                         compress_type=zipfile.ZIP_STORED)
        with archive.open("w.npy", "w") as member:    # 64 MiB of zeros deflate to ~64 KiB
            member.write(header)
            zeros = bytes(1 << 20)
            for _ in range(64):
                member.write(zeros)
    assert path.stat().st_size < 1 << 20
    assert _peak_bytes_of_a_refused_load(path, r"bomb.npz.*member 'w.npy' is compressed") < 8 << 20


def test_a_member_declaring_more_than_the_file_holds_is_refused_naming_it(tmp_path):
    path = tmp_path / "liar.npz"
    header = _npy_bytes(np.zeros(0, np.float32)).replace(b"(0,)", b"(134217728,)")
    _zip(path, [("w.npy", header + bytes(16))])
    message = r"liar.npz.*'w.npy' declares shape \(134217728,\)"
    assert _peak_bytes_of_a_refused_load(path, message) < 8 << 20


@pytest.mark.parametrize("members, message", [
    ([("notes.txt", b"hello")], "member 'notes.txt' is not a .npy array"),
    ([(tio.FORMAT_KEY, b"1")], f"member '{tio.FORMAT_KEY}' is not a .npy array"),
    ([("s.npy", _npy_bytes(np.zeros(2, [("a", "<f4"), ("b", "<i4")])))],
     "member 's.npy' has dtype"),
    ([("c.npy", _npy_bytes(np.zeros(2, np.complex64)))], "member 'c.npy' has dtype complex64"),
    ([("u.npy", _npy_bytes(np.array(["ab"])))], "member 'u.npy' has dtype <U2"),
    ([("b.npy", _npy_bytes(np.zeros(2, ">f4")))], "member 'b.npy' has big-endian dtype >f4"),
    ([("w.npy", _npy_bytes(np.zeros(2, np.float32))), ("w.npy", _npy_bytes(np.ones(2)))],
     "member 'w.npy' appears twice"),
], ids=["not-npy", "raw-marker", "structured", "complex", "unicode", "big-endian", "duplicate"])
def test_members_save_never_writes_are_value_errors_naming_file_and_member(tmp_path, members,
                                                                          message):
    path = tmp_path / "crafted.npz"
    _zip(path, members)
    with pytest.raises(ValueError) as info:
        tm.load(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_big_endian_arrays_are_saved_little_endian_with_their_values(tmp_path):
    tm.save({"w": np.arange(3, dtype=">f4")}, tmp_path / "m")
    loaded = tm.load(tmp_path / "m")["w"]
    assert loaded.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(loaded, [0, 1, 2])


@pytest.mark.parametrize("key", ["x.npy", "a\0b", "\ud800", ""])
def test_keys_that_would_not_round_trip_are_refused(tmp_path, key):
    with pytest.raises(ValueError, match="invalid key"):
        tm.save({"x": np.zeros(1), key: np.ones(1)}, tmp_path / "m")
    assert os.listdir(tmp_path) == []


def test_save_refuses_a_fifo_and_leaves_it_a_fifo(tmp_path):
    import stat
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"pipe' is a FIFO, not a regular file"):
        tm.save({"w": np.ones(2)}, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


def test_save_refuses_a_device_node_and_a_directory(tmp_path):
    import stat
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        tm.save({"w": np.ones(2)}, tmp_path / "folder")
    try:
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    with pytest.raises(ValueError, match="is a character device"):
        tm.save({"w": np.ones(2)}, tmp_path / "null")
    assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)


def test_save_writes_through_a_symlink_to_its_target(tmp_path):
    tm.save({"w": np.zeros(2)}, tmp_path / "real.npz")
    os.symlink("real.npz", tmp_path / "link.npz")
    tm.save({"w": np.ones(2)}, tmp_path / "link.npz")
    assert os.path.islink(tmp_path / "link.npz")
    np.testing.assert_array_equal(tm.load(tmp_path / "real.npz")["w"], [1, 1])
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real.npz"]


def test_load_refuses_a_fifo_at_once_instead_of_blocking(tmp_path):
    import threading
    import time
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def unblock_an_old_reader():                         # so a blocking load fails, not hangs
        time.sleep(3)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    threading.Thread(target=unblock_an_old_reader, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"pipe' is a FIFO, not a regular file"):
        tm.load(fifo)
    assert time.monotonic() - start < 2


def test_saved_files_get_the_umask_mode_or_the_replaced_files_mode(tmp_path):
    import stat
    old = os.umask(0o022)
    try:
        tm.save({"w": np.ones(2)}, tmp_path / "new")
        assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o644
        (tmp_path / "shared").write_bytes(b"")
        os.chmod(tmp_path / "shared", 0o664)
        tm.save({"w": np.ones(2)}, tmp_path / "shared")
        assert stat.S_IMODE(os.stat(tmp_path / "shared").st_mode) == 0o664
        os.umask(0o077)
        tm.save({"w": np.ones(2)}, tmp_path / "private")
        assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o600
    finally:
        os.umask(old)


def test_the_next_save_removes_temp_files_a_killed_save_left_and_only_those(tmp_path):
    for name in [".m.abcd1234.tmp", ".m.zz_99xyz.tmp", ".other.abcd1234.tmp", ".m.notes"]:
        (tmp_path / name).write_bytes(b"PK half a zip")
    tm.save({"w": np.ones(2)}, tmp_path / "m")
    assert sorted(os.listdir(tmp_path)) == [".m.notes", ".other.abcd1234.tmp", "m"]


def test_save_errors_name_the_target_not_the_temp_file(tmp_path):
    target = tmp_path / "missing" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        tm.save({"w": np.ones(2)}, target)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    with pytest.raises(ValueError, match="path is empty"):
        tm.save({"w": np.ones(2)}, "")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # JAX's fork
def test_kill_9_during_saves_leaves_old_or_new_and_the_next_save_cleans_up(tmp_path):
    """20 saves of 12 MB killed at random moments (fork + SIGKILL, no re-import)."""
    import signal
    import time
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    path = tmp_path / "big.npz"
    old, new = np.zeros(3 << 20, np.float32), np.ones(3 << 20, np.float32)   # 12 MiB each
    tm.save({"w": old}, path)
    rng = np.random.default_rng(0)
    leftovers = 0
    for _ in range(20):
        pid = os.fork()
        if pid == 0:                                     # the child saves until it is killed
            try:
                while True:
                    tm.save({"w": new}, path)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        leftovers += len([f for f in os.listdir(tmp_path) if f.endswith(".tmp")])
        w = tm.load(path)["w"]
        assert np.array_equal(w, old) or np.array_equal(w, new)
    tm.save({"w": new}, path)
    assert os.listdir(tmp_path) == ["big.npz"], leftovers
    print(f"kill -9 x20: target old-or-new every time; {leftovers} kills left a temp file, "
          f"none left after the next save")
