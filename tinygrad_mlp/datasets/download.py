"""Data sets by name: `fetch("mnist")` downloads the original IDX files once, checked by MD5.

    directory = tm.datasets.fetch("mnist")            # ~/.cache/tinygrad_mlp/mnist
    images, labels = tm.datasets.load_mnist(directory, kind="train")

Each file is tried on every mirror in order, streamed into a new temporary file beside its
final name (with a progress bar), checked against the checksum published for it, and only then
renamed into place (as `tm.save` writes: the umask's mode, stale temp files of a killed run
removed by the next download): a file under its final name is always complete and verified.
Files that are already there and verified are not downloaded again. Redirects go to http(s)
only, and one `fetch` gives up after DEADLINE seconds in all, however slowly bytes arrive.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterable

from tinygrad_mlp._files import file_kind, replacing

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
DEADLINE = 1800.0                # seconds one fetch() may take in all (MNIST is 55 MB: 30 kB/s)
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
    deadline = time.monotonic() + DEADLINE
    for filename, md5 in CHECKSUMS[name].items():
        path = os.path.join(directory, filename)
        if os.path.exists(path) and not os.path.isfile(path):
            raise DownloadError(f"fetch: {path!r} is {file_kind(os.stat(path).st_mode)}, not a "
                                f"file; move it away and fetch again")
        if os.path.isfile(path) and _md5_of(path) == md5:
            continue
        _download(filename, md5, directory, mirrors, progress, deadline)
    return directory


def _md5_of(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(filename: str, md5: str, directory: str, mirrors: list[str], progress: bool,
              deadline: float) -> None:
    """Try each mirror until one gives `filename` with checksum `md5`, before `deadline` (a
    time.monotonic() value); else DownloadError."""
    failures = []
    for mirror in mirrors:
        url = mirror + filename
        if time.monotonic() >= deadline:
            failures.append(f"{url}: not tried, the {DEADLINE:g} s deadline had passed")
            continue
        try:
            _download_one(url, md5, os.path.join(directory, filename), progress, deadline)
            for stale in glob.glob(os.path.join(glob.escape(directory), f".{filename}.*.part")):
                with contextlib.suppress(OSError):      # what a killed older version left
                    os.unlink(stale)
            return
        except (OSError, ValueError, http.client.HTTPException) as error:   # URLError, timeouts
            failures.append(f"{url}: {error}")
    raise DownloadError(
        f"could not download {filename} from any mirror:\n  " + ";\n  ".join(failures) + ".\n"
        f"Download it yourself (MD5 {md5}) into {directory}, or give another mirror with "
        "mirrors=[...] or $TINYGRAD_MLP_MIRROR.")


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, except to another scheme than http(s) (urllib would follow ftp)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl!r} refused "
                                         f"(only http and https are followed)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpRedirectsOnly)


def _download_one(url: str, md5: str, path: str, progress: bool, deadline: float) -> None:
    """Stream `url` into a new temp file beside `path`; rename it to `path` only if its MD5 is
    `md5`. The temp file is removed on any failure; one a killed process left is removed by
    the next successful download of `path`."""
    from tqdm.auto import tqdm            # here, so `import tinygrad_mlp` stays light

    if not url.startswith(("http://", "https://", "file://")):
        raise ValueError(f"not an http(s) or file URL: {url!r}")
    with (replacing(path, "fetch") as (_, file),
          _OPENER.open(url, timeout=TIMEOUT) as response):
        digest = hashlib.md5()
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
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {DEADLINE:g} s deadline of fetch() passed after "
                                       f"{received} bytes")
                file.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise ValueError(f"the connection closed after {received} of {total} bytes")
        if digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch: got MD5 {digest.hexdigest()}, the "
                             f"published one is {md5} (file refused, not kept)")
