"""Data sets by name: `fetch("mnist")` downloads the original IDX files once, checked by MD5.

    directory = tm.datasets.fetch("mnist")            # ~/.cache/tinygrad_mlp/mnist
    images, labels = tm.datasets.load_mnist(directory, kind="train")

Each file is tried on every mirror in order, streamed into a temporary file beside its final
name (with a progress bar), checked against the checksum published for it, and only then
renamed into place: a file under its final name is always complete and verified. Files that
are already there and verified are not downloaded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from typing import Iterable

__all__ = ["fetch", "CHECKSUMS", "MIRRORS", "DownloadError"]

# The MD5 of every file, as published in torchvision's MNIST and FashionMNIST dataset classes
# (torchvision/datasets/mnist.py, `resources`). The one table: tests override it, nothing copies it.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
# Base URLs tried in order: PyTorch's S3 copy and Google's (TensorFlow's) before the original
# site, which often refuses scripts; Fashion-MNIST from Zalando's own bucket, then Keras's copy.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"),
}
TIMEOUT = 30.0                   # seconds a connection or a read may stall before a mirror fails
MAX_BYTES = 64 * 2**20           # the largest original file is 26 MB: anything past this is refused
CHUNK = 2**16


class DownloadError(OSError):
    """No mirror gave a file with the published checksum (the message lists what was tried)."""


def fetch(name: str, root: str | os.PathLike | None = None,
          mirrors: Iterable[str] | None = None, *, progress: bool = True) -> str:
    """Download data set `name` ("mnist" or "fashion-mnist") if needed; returns its directory.

    The directory is `root/name`, root being `$TINYGRAD_MLP_DATA`, else ~/.cache/tinygrad_mlp.
    `mirrors` are base URLs tried in order (default `$TINYGRAD_MLP_MIRROR`, whitespace-separated,
    else MIRRORS[name]). Raises DownloadError naming every URL tried, what went wrong and where
    to put the files by hand.
    """
    if name not in CHECKSUMS:
        raise ValueError(f"fetch: unknown data set {name!r}; expected one of "
                         f"{', '.join(map(repr, CHECKSUMS))}")
    if root is None:
        root = os.environ.get("TINYGRAD_MLP_DATA") or os.path.join("~", ".cache", "tinygrad_mlp")
    directory = os.path.join(os.path.expanduser(os.fspath(root)), name)
    if mirrors is None:
        mirrors = os.environ.get("TINYGRAD_MLP_MIRROR", "").split() or MIRRORS[name]
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    mirrors = [url if url.endswith("/") else url + "/" for url in mirrors]
    if not mirrors:
        raise ValueError("fetch: mirrors is empty; give at least one base URL")
    os.makedirs(directory, exist_ok=True)
    for filename, md5 in CHECKSUMS[name].items():
        path = os.path.join(directory, filename)
        if os.path.isfile(path) and _md5_of(path) == md5:
            continue
        _download(filename, md5, directory, mirrors, progress)
    return directory


def _md5_of(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(filename: str, md5: str, directory: str, mirrors: list[str], progress: bool) -> None:
    """Try each mirror until one gives `filename` with checksum `md5`; else DownloadError."""
    failures = []
    for mirror in mirrors:
        url = mirror + filename
        try:
            _download_one(url, md5, os.path.join(directory, filename), progress)
            return
        except (OSError, ValueError, http.client.HTTPException) as error:   # URLError, timeouts
            failures.append(f"{url}: {error}")
    raise DownloadError(
        f"could not download {filename} from any mirror:\n  " + ";\n  ".join(failures) + ".\n"
        f"Download it yourself (MD5 {md5}) into {directory}, or give another mirror with "
        "mirrors=[...] or $TINYGRAD_MLP_MIRROR.")


def _download_one(url: str, md5: str, path: str, progress: bool) -> None:
    """Stream `url` into a temp file beside `path`; rename it to `path` only if its MD5 is `md5`.

    The temp file is removed on any failure; a process killed midway leaves only a hidden
    `.part` file, which no loader takes for the real one.
    """
    from tqdm.auto import tqdm            # here, so `import tinygrad_mlp` stays light

    if not url.startswith(("http://", "https://", "file://")):
        raise ValueError(f"not an http(s) or file URL: {url!r}")
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part",
                                dir=os.path.dirname(path))
    try:
        digest = hashlib.md5()
        with (os.fdopen(fd, "wb", buffering=0) as file,
              urllib.request.urlopen(url, timeout=TIMEOUT) as response):
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > MAX_BYTES:
                raise ValueError(f"the server announces {total} bytes, more than the "
                                 f"{MAX_BYTES} any of these files has")
            with tqdm(total=total, unit="B", unit_scale=True, desc=os.path.basename(path),
                      disable=not progress, leave=False) as bar:
                received = 0
                while chunk := response.read1(CHUNK):       # what has arrived, up to CHUNK
                    received += len(chunk)
                    if received > MAX_BYTES:
                        raise ValueError(f"more than {MAX_BYTES} bytes: not the file expected")
                    file.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if total is not None and received != total:
                raise ValueError(f"the connection closed after {received} of {total} bytes")
            if digest.hexdigest() != md5:
                raise ValueError(f"checksum mismatch: got MD5 {digest.hexdigest()}, the "
                                 f"published one is {md5} (file refused, not kept)")
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
