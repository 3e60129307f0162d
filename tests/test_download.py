"""tm.datasets.fetch against a local HTTP server (127.0.0.1, started here): never the network."""

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp.cli import main
from tinygrad_mlp.datasets import download

from test_cli import mnist_like, write_idx

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The four MNIST files (small, generated), as bytes by name."""
    folder = tmp_path_factory.mktemp("idx")
    for kind, n, seed in (("train", 120, 1), ("t10k", 40, 2)):
        images, labels = mnist_like(n, seed)
        write_idx(folder / f"{kind}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{kind}-labels-idx1-ubyte.gz", labels)
    return {name: (folder / name).read_bytes() for name in NAMES}


class Handler(http.server.BaseHTTPRequestHandler):
    """/good/NAME serves the file; /missing/ 404s; /corrupt/ flips a byte; /stall/ sends half
    the file, then waits (at most 20 s) for the test to kill its client."""
    files: dict = {}
    requests: list = []

    def do_GET(self):
        mirror, _, name = self.path.strip("/").partition("/")
        self.requests.append(self.path)
        if mirror == "missing" or name not in self.files:
            self.send_error(404)
            return
        body = bytearray(self.files[name])
        if mirror == "corrupt":
            body[len(body) // 2] ^= 0xFF
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mirror == "stall":
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            time.sleep(20)
            return
        self.wfile.write(bytes(body))

    def log_message(self, *args):
        pass


@pytest.fixture
def server(files, monkeypatch, tmp_path):
    """Base URL of the local server; the checksum table holds the generated files' MD5s, the
    cache is a temp folder and no proxy stands between the test and 127.0.0.1."""
    for proxy in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setitem(download.CHECKSUMS, "mnist",
                        {name: hashlib.md5(data).hexdigest() for name, data in files.items()})
    monkeypatch.setenv("TINYGRAD_MLP_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("TINYGRAD_MLP_MIRROR", raising=False)
    monkeypatch.setattr(download, "TIMEOUT", 5.0)
    Handler.files, Handler.requests = files, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_the_published_checksums_are_in_the_table():
    # torchvision/datasets/mnist.py lists them; one entry of each set is enough to pin the source.
    assert download.CHECKSUMS["mnist"]["train-images-idx3-ubyte.gz"] == \
        "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert download.CHECKSUMS["fashion-mnist"]["t10k-labels-idx1-ubyte.gz"] == \
        "bb300cfdad3c16e7a12a480ee83cd310"
    assert all(len(table) == 4 for table in download.CHECKSUMS.values())


def test_fetch_downloads_verifies_and_loads(server, files, tmp_path):
    directory = tm.datasets.fetch("mnist", mirrors=[server + "good"], progress=False)
    assert directory == str(tmp_path / "cache" / "mnist")
    assert sorted(os.listdir(directory)) == sorted(NAMES)        # no temp file left behind
    images, labels = tm.datasets.load_mnist(directory, "test")
    assert images.shape == (40, 28, 28) and labels.shape == (40,)
    assert all((tmp_path / "cache" / "mnist" / name).read_bytes() == files[name] for name in NAMES)


def test_files_present_and_verified_are_not_fetched_again(server):
    tm.datasets.fetch("mnist", mirrors=[server + "good"], progress=False)
    assert len(Handler.requests) == 4
    tm.datasets.fetch("mnist", mirrors=[server + "good"], progress=False)
    assert len(Handler.requests) == 4


def test_a_failed_mirror_moves_on_to_the_next(server, monkeypatch):
    monkeypatch.setenv("TINYGRAD_MLP_MIRROR", f"{server}missing {server}good")
    directory = tm.datasets.fetch("mnist", progress=False)
    assert tm.datasets.load_mnist(directory)[0].shape == (120, 28, 28)
    assert Handler.requests[:2] == ["/missing/" + NAMES[0], "/good/" + NAMES[0]]


def test_a_corrupted_file_is_refused_and_not_kept(server, tmp_path):
    with pytest.raises(tm.datasets.DownloadError) as error:
        tm.datasets.fetch("mnist", mirrors=[server + "corrupt", server + "missing"],
                          progress=False)
    message = str(error.value)
    assert f"{server}corrupt/{NAMES[0]}: checksum mismatch" in message
    assert f"{server}missing/{NAMES[0]}: HTTP Error 404" in message
    assert str(tmp_path / "cache" / "mnist") in message               # where to put it by hand
    assert os.listdir(tmp_path / "cache" / "mnist") == []


def test_a_wrong_file_already_there_is_replaced_by_a_verified_one(server, tmp_path, files):
    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    (folder / NAMES[1]).write_bytes(b"not the labels")
    tm.datasets.fetch("mnist", mirrors=[server + "good"], progress=False)
    assert (folder / NAMES[1]).read_bytes() == files[NAMES[1]]


def test_offline_is_one_error_listing_every_url(monkeypatch, tmp_path):
    monkeypatch.setattr(download, "TIMEOUT", 2.0)
    mirrors = ["http://127.0.0.1:9/a/", "http://127.0.0.1:9/b"]     # port 9: nothing listens
    with pytest.raises(tm.datasets.DownloadError) as error:
        tm.datasets.fetch("mnist", root=tmp_path, mirrors=mirrors, progress=False)
    message = str(error.value)
    assert "http://127.0.0.1:9/a/train-images-idx3-ubyte.gz" in message
    assert "http://127.0.0.1:9/b/train-images-idx3-ubyte.gz" in message
    assert "refused" in message.lower()


def test_a_download_killed_midway_leaves_no_file_that_passes_as_complete(server, tmp_path):
    folder = tmp_path / "cache" / "mnist"
    script = ("import sys; from tinygrad_mlp.datasets import download as d; "
              "d.CHECKSUMS['mnist'] = dict(zip(sys.argv[1::2], sys.argv[2::2])); "
              f"d.fetch('mnist', mirrors=[{server + 'stall'!r}], progress=False)")
    checksums = [item for name in NAMES for item in (name, download.CHECKSUMS["mnist"][name])]
    child = subprocess.Popen([sys.executable, "-c", script, *checksums], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 20
        while not folder.is_dir() or not any(path.stat().st_size for path in folder.iterdir()):
            assert child.poll() is None and time.monotonic() < deadline, "no partial download"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(10)
    assert [path.name for path in folder.iterdir() if not path.name.startswith(".")] == []
    with pytest.raises(FileNotFoundError):
        tm.datasets.load_mnist(folder)
    tm.datasets.fetch("mnist", mirrors=[server + "good"], progress=False)     # and it recovers
    assert tm.datasets.load_mnist(folder)[1].shape == (120,)


def test_an_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown data set 'cifar'.*'mnist', 'fashion-mnist'"):
        tm.datasets.fetch("cifar")


def test_cli_train_data_mnist_fetches_from_the_mirror(server, monkeypatch, capsys):
    monkeypatch.setenv("TINYGRAD_MLP_MIRROR", server + "good")
    assert main(["train", "--data", "mnist", "--epochs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "120 training, 40 test samples" in out
    assert np.isfinite(float(out.rsplit("test accuracy", 1)[-1].split()[0].strip(":% ")))


# --- hostile servers and folders (issue 19, item 16) -----------------------------------------------

class Hostile(http.server.BaseHTTPRequestHandler):
    """/trickle/NAME sends one byte every 0.1 s, forever; /ftp/NAME redirects to ftp://."""

    def do_GET(self):
        mirror, _, name = self.path.strip("/").partition("/")
        if mirror == "ftp":
            self.send_response(302)
            self.send_header("Location", f"ftp://127.0.0.1/{name}")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile(server):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_a_trickling_server_is_stopped_by_the_overall_deadline(hostile, monkeypatch, tmp_path):
    monkeypatch.setattr(download, "DEADLINE", 1.5)
    started = time.monotonic()
    with pytest.raises(tm.datasets.DownloadError) as error:
        tm.datasets.fetch("mnist", mirrors=[hostile + "trickle", hostile + "trickle"],
                          progress=False)
    assert time.monotonic() - started < 5
    assert "deadline of fetch() passed" in str(error.value)
    assert "not tried, the 1.5 s deadline had passed" in str(error.value)
    assert os.listdir(tmp_path / "cache" / "mnist") == []


def test_a_redirect_to_ftp_is_refused(hostile, tmp_path):
    with pytest.raises(tm.datasets.DownloadError, match="redirect to 'ftp://127.0.0.1/"):
        tm.datasets.fetch("mnist", mirrors=[hostile + "ftp"], progress=False)


def test_a_part_file_of_a_killed_run_is_removed_and_files_get_the_umask_mode(server, tmp_path):
    folder = tmp_path / "cache" / "mnist"
    folder.mkdir(parents=True)
    stale = [folder / f".{NAMES[0]}.abcdefgh.tmp", folder / f".{NAMES[0]}.k3j_x9q2.part"]
    for path in stale:
        path.write_bytes(b"half a download")
    old = os.umask(0o022)
    try:
        tm.datasets.fetch("mnist", mirrors=[server + "good"], progress=False)
    finally:
        os.umask(old)
    assert sorted(os.listdir(folder)) == sorted(NAMES)          # no .tmp, no .part left
    assert {(folder / name).stat().st_mode & 0o777 for name in NAMES} == {0o644}


def test_a_directory_at_the_target_name_is_one_error_before_any_download(server, tmp_path):
    folder = tmp_path / "cache" / "mnist"
    (folder / NAMES[0]).mkdir(parents=True)
    with pytest.raises(tm.datasets.DownloadError, match="is a directory, not a file") as error:
        tm.datasets.fetch("mnist", mirrors=[server + "good", server + "good"], progress=False)
    assert "mirror" not in str(error.value) and Handler.requests == []
