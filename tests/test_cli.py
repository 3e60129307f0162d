"""The command line, end to end: `tinygrad-mlp train` on the digits, MNIST files and FER2013."""

import gzip
import os
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn
from tinygrad_mlp.cli import main


def write_idx(path, array, gz=True):
    """An IDX file as MNIST ships it: magic 0 0 0x08 ndim, big-endian sizes, uint8 values."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                         *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as file:
        file.write(data)


def mnist_like(n, seed):
    """28×28 images whose label (0–3) is the bright quadrant: learnable in a couple of epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 2)
        image[row * 14:(row + 1) * 14, col * 14:(col + 1) * 14] += 180
    return images, labels


@pytest.fixture
def mnist_dir(tmp_path):
    for kind, n, seed in (("train", 240, 1), ("t10k", 80, 2)):
        images, labels = mnist_like(n, seed)
        write_idx(tmp_path / f"{kind}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{kind}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def one_line_error(capsys, code):
    out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_train_on_digits_prints_epochs_and_the_test_accuracy(capsys):
    assert main(["train", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "1347 training, 450 test" in out
    assert "64 → 64 sigmoid → 10 softmax" in out
    epochs = re.findall(r"^epoch (\d)/3 - loss \d\.\d{4} - accuracy (\d\.\d{4}) - ", out, re.M)
    assert [e for e, _ in epochs] == ["1", "2", "3"]
    accuracy = float(re.search(r"^test accuracy (\d\.\d{4}) \((\d+)/450\)", out, re.M).group(1))
    assert accuracy >= 0.9


@pytest.mark.parametrize("options", [["--method", "gd", "--epochs", "20"],
                                     ["--method", "sgd", "--epochs", "1"],
                                     ["--batch-size", "64", "--epochs", "5", "--optimizer", "adam"],
                                     ["--loss", "mse", "--epochs", "5", "--hidden", "16"]])
def test_train_options(options, capsys):
    assert main(["train", "--quiet", *options]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test accuracy") and len(out.strip().splitlines()) == 1
    assert float(out.split()[2]) > 0.5


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not(capsys):
    results = []
    for seed in ("1", "1", "2"):
        assert main(["train", "--quiet", "--epochs", "2", "--seed", seed]) == 0
        results.append(capsys.readouterr().out.split(" - trained")[0])
    assert results[0] == results[1] != results[2]


def test_train_on_mnist_files(mnist_dir, capsys):
    code = main(["train", "--data", f"mnist:{mnist_dir}", "--hidden", "16", "--epochs", "3",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "240 training, 80 test" in out and "784 → 16 sigmoid → 4 softmax" in out
    assert "mini-batch gradient descent (64 samples); SGD lr 0.1 momentum 0.9" in out
    assert len(re.findall(r"^epoch \d/3 - loss", out, re.M)) == 3
    assert float(re.search(r"test accuracy (\S+)", out).group(1)) >= 0.9


def test_mnist_without_test_files_holds_out_a_quarter(mnist_dir, capsys):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        os.remove(mnist_dir / name)
    assert main(["train", "--data", f"mnist:{mnist_dir}", "--epochs", "1"]) == 0
    assert "180 training, 60 test" in capsys.readouterr().out


def test_train_on_fer2013_csv_uses_its_usage_column(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "fer2013.csv"
    rows = ["emotion,pixels,Usage"]
    for i in range(30):
        usage = "Training" if i < 20 else ("PublicTest" if i < 25 else "PrivateTest")
        pixels = " ".join(str(v) for v in rng.integers(0, 256, 48 * 48))
        rows.append(f"{i % 7},{pixels},{usage}")
    path.write_text("\n".join(rows) + "\n")
    assert main(["train", "--data", f"fer2013:{path}", "--hidden", "4", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "20 training, 10 test" in out and "2304 → 4 sigmoid → 7 softmax" in out


def test_save_writes_a_loadable_file(tmp_path, capsys):
    path = tmp_path / "digits.npz"
    assert main(["train", "--quiet", "--epochs", "1", "--hidden", "20", "--save", str(path)]) == 0
    state = tm.load(str(path))
    assert {key: value.shape for key, value in state.items()} == {
        "0.weight": (64, 20), "0.bias": (20,), "2.weight": (20, 10), "2.bias": (10,)}
    model = nn.Sequential(nn.Linear(64, 20), nn.Sigmoid(), nn.Linear(20, 10), nn.Softmax())
    model.load_state_dict(state)
    X, y = tm.datasets.load_digits()
    accuracy = np.mean(tm.predict(model, X / 16).argmax(axis=1) == y)
    assert accuracy > 0.5                          # the trained weights, not a fresh init
    rebuilt = tm.load_model(str(path))              # the file is a whole model
    assert repr(rebuilt) == repr(model)
    np.testing.assert_array_equal(tm.predict(rebuilt, X / 16), tm.predict(model, X / 16))


@pytest.mark.parametrize("arguments, message", [
    (["--data", "mnist:/no/such/folder"], "MNIST directory not found: '/no/such/folder'"),
    (["--data", "fer2013:/no/such.csv"], "not found"),
])
def test_bad_files_are_one_line_errors(arguments, message, capsys):
    code = main(["train", "--epochs", "1", *arguments])
    assert code == 1
    assert message in one_line_error(capsys, code)


def test_a_corrupt_mnist_file_is_a_one_line_error(mnist_dir, capsys):
    (mnist_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x09\x07junk"))
    code = main(["train", "--data", f"mnist:{mnist_dir}", "--epochs", "1"])
    assert "train-images-idx3-ubyte.gz" in one_line_error(capsys, code)


def test_save_fails_before_training_when_the_target_is_a_folder(tmp_path, capsys):
    code = main(["train", "--epochs", "50", "--save", str(tmp_path)])
    err = one_line_error(capsys, code)
    assert "is a directory" in err


@pytest.mark.parametrize("arguments", [[], ["train", "--hidden", "0"], ["train", "--lr", "-1"],
                                       ["train", "--data", "cifar"], ["train", "--epochs", "x"],
                                       ["train", "--method", "adam"], ["fly"]])
def test_bad_arguments_are_usage_errors(arguments, capsys):
    assert main(arguments) == 2
    out, err = capsys.readouterr()
    assert "usage: tinygrad-mlp" in err and "Traceback" not in err


def test_help_exits_zero(capsys):
    assert main(["train", "--help"]) == 0
    assert "--method {gd,sgd,minibatch}" in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(tm.__file__)))] +
        os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    result = subprocess.run([sys.executable, "-m", "tinygrad_mlp", "train", "--epochs", "2",
                             "--quiet"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("test accuracy")


def test_plot_writes_the_training_curves(tmp_path, capsys):
    path = tmp_path / "curves.png"
    assert main(["train", "--quiet", "--epochs", "2", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_reader_that_stops_early_is_not_an_error(monkeypatch, capsys):
    """`tinygrad-mlp explain | head -1`: a closed pipe ends the command quietly, exit 0."""
    import io
    import sys

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["explain"]) == 0
    assert "Broken pipe" not in capsys.readouterr().err


def test_train_on_fer2013_reads_the_csv_once(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "fer2013.csv"
    rows = ["emotion,pixels,Usage"] + [
        f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},"
        f"{'Training' if i < 8 else 'PublicTest'}" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")
    opened = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    assert main(["train", "--data", f"fer2013:{path}", "--hidden", "2", "--epochs", "1",
                 "--quiet"]) == 0
    assert len(opened) == 1


# --- the command-line contract (issue 9): usage errors exit 2 before any training ---------------

@pytest.mark.parametrize("arguments, message", [
    (["train", "--save", ""], "--save needs a file name"),
    (["train", "--save", "/no/such/folder/w.npz"], "does not exist"),
    (["train", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["train", "--method", "sgd", "--batch-size", "8"],
     "--batch-size applies to --method minibatch"),
    (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    (["train", "--epochs", "0", "--plot", "x.png"], "argument --epochs"),
    (["train", "--plot", "curves.txt"], "matplotlib cannot write txt"),
    (["compare", "--plot", "curves.txt"], "matplotlib cannot write txt"),
    (["graph", "--format", "svg"], "--format svg needs --out FILE"),
    (["graph", "--out", "g.xyz"], "--out 'g.xyz': unknown extension"),
    (["graph", "--out", "/no/such/folder/g.dot"], "does not exist"),
    (["explain", "--batch", "100000"], "--batch 100000: the bundled digits hold 1797 images"),
    (["explain", "--seed", "-3"], "argument --seed"),
])
def test_bad_arguments_exit_2_naming_the_option_before_any_work(arguments, message, capsys,
                                                               monkeypatch):
    trained = []
    monkeypatch.setattr("tinygrad_mlp.train.fit", lambda *a, **k: trained.append(1))
    assert main(arguments) == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err
    assert not trained and "test accuracy" not in out


def test_save_to_a_fifo_is_refused_before_training(tmp_path, capsys):
    import stat
    os.mkfifo(tmp_path / "pipe")
    assert main(["train", "--epochs", "1", "--save", str(tmp_path / "pipe")]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


def test_plot_without_matplotlib_fails_before_training_with_a_hint_that_works(tmp_path, capsys,
                                                                            monkeypatch):
    for name in ("matplotlib", "matplotlib.backend_bases", "matplotlib.figure",
                 "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    save = tmp_path / "w.npz"
    code = main(["train", "--epochs", "1", "--save", str(save), "--plot", str(tmp_path / "c.png")])
    err = one_line_error(capsys, code)
    assert code == 1 and not save.exists()
    assert_hint_works(err, "matplotlib")


def assert_hint_works(message, package):
    """The message's checkout hint `pip install -e '.[EXTRA]'` names an extra of setup.cfg that
    installs `package`, and it gives the plain `pip install package` for an installed copy."""
    import configparser
    extra = re.search(r"pip install -e '\.\[(\w+)\]'", message)
    assert extra and f"pip install {package}" in message, message
    config = configparser.ConfigParser()
    config.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "setup.cfg"))
    assert package in config["options.extras_require"][extra.group(1)]


def test_viz_plots_and_tm_testing_give_install_hints_that_work(tmp_path, monkeypatch):
    import importlib
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError) as info:
        tm.viz.plot_history({"loss": [1.0]}, tmp_path / "c.png")
    assert_hint_works(str(info.value), "matplotlib")
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "tinygrad_mlp.testing", raising=False)
    with pytest.raises(ModuleNotFoundError) as info:
        importlib.import_module("tinygrad_mlp.testing")
    assert_hint_works(str(info.value), "hypothesis")


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tinygrad-mlp {tm.__version__}"


def test_out_of_memory_is_a_one_line_error(monkeypatch, capsys):
    code = main(["train", "--hidden", "99999999999", "--epochs", "1"])
    assert code == 1 and "out of memory" in one_line_error(capsys, code)

    def bomb(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.06 GiB")

    monkeypatch.setattr(tm.datasets, "load_digits", bomb)
    code = main(["train", "--epochs", "1"])
    assert code == 1 and "out of memory: Unable to allocate" in one_line_error(capsys, code)
