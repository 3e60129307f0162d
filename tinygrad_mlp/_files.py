"""Files on disk, the one way every layer writes and checks them.

    write_atomically("model.npz", lambda file: file.write(data), "save")
    with replacing("out.avi", "annotate_video", suffix=".avi") as (temp, file):
        ...                                   # a library writes `temp` by name (OpenCV)
    existing_file("photo.jpg", "image")       # FileNotFoundError / IsADirectoryError, clearly

A file is written to a new temp file beside it, created exclusively (O_EXCL: a symlink or file
planted at the temp name is never followed or reused), flushed, fsynced and renamed over the
target, so a crash or an error leaves any previous file intact.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from typing import BinaryIO, Callable, Iterator

__all__ = ["write_atomically", "replacing", "existing_file", "file_kind"]

_TEMP_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None],
                     caller: str = "save") -> None:
    """Call `write(file)` on a temp file beside `path`, fsync it, then rename it over `path`.

    The file gets the mode `open()` would give it (0666 less the umask), or the mode of the
    file it replaces. Only a regular file is replaced: a directory, FIFO, device or socket at
    `path` is refused; a symlink to a regular file is written through (its target is replaced,
    the link kept). Temp files a killed write left are removed by the next write to `path`.
    `caller` names the function in error messages.
    """
    with replacing(path, caller) as (_, file):
        try:
            write(file)
        except OSError as error:          # a full disk, say: name the file
            raise _could_not_write(error, os.fspath(path), caller) from error


@contextlib.contextmanager
def replacing(path: str | os.PathLike, caller: str = "save", suffix: str = ""
              ) -> Iterator[tuple[str, BinaryIO]]:
    """(temp name, its open binary file) for writing `path` atomically, as `write_atomically`.

    The temp file `.NAME.XXXXXXXX.tmpSUFFIX` is new (created with O_EXCL) and beside the target;
    `suffix` keeps an extension a library reads the format from. On a clean exit it is flushed,
    fsynced and renamed over `path`; on any error it is removed and `path` is untouched.
    """
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{caller}: the path is empty")
    target = os.path.realpath(path)           # a symlink is written through to its target
    mode = _mode_for(target, path, caller)
    folder, name = os.path.split(target)
    temp, fd = _create_temp(folder, name, suffix, path, caller)
    body_done = False                     # the caller's errors pass unchanged
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            yield temp, file
            body_done = True
            file.flush()
            os.fsync(file.fileno())        # the inode: also what a library wrote by name
        os.replace(temp, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if body_done and isinstance(error, OSError):
            raise _could_not_write(error, path, caller) from error
        raise
    _remove_stale_temps(folder, name, suffix)


def _could_not_write(error: OSError, path: str, caller: str) -> OSError:
    return OSError(error.errno, f"{caller}: could not write {path!r}: {error.strerror or error}")


def existing_file(path: str | os.PathLike, what: str = "file") -> str:
    """`path` as a str when it is an existing regular file (or a link to one); else
    FileNotFoundError "WHAT 'PATH' not found", IsADirectoryError "… is a directory, not a
    file", or ValueError for a FIFO, device or socket (reading one could block forever)."""
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{what} {path!r} not found") from None
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(f"{what} {path!r} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {path!r} is {file_kind(info.st_mode)}, not a regular file")
    return path


def file_kind(mode: int) -> str:
    """'a directory', 'a FIFO', … for an `st_mode` that is not a regular file's."""
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")]
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def _mode_for(target: str, path: str, caller: str) -> int | None:
    """The replaced file's permission bits (None for a new file: the umask applies); anything at
    `target` that is not a regular file is refused before it could be replaced."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{caller}: {path!r} is {file_kind(info.st_mode)}, not a regular file; "
                         "refusing to replace it")
    return stat.S_IMODE(info.st_mode)


def _create_temp(folder: str, name: str, suffix: str, path: str, caller: str
                 ) -> tuple[str, int]:
    """A new `.NAME.XXXXXXXX.tmpSUFFIX` beside the target, created with mode 0666 so the kernel
    applies the umask exactly as `open()` would (mkstemp would force 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | \
        getattr(os, "O_NOFOLLOW", 0)
    while True:
        token = "".join(secrets.choice(_TEMP_ALPHABET) for _ in range(8))
        temp = os.path.join(folder, f".{name}.{token}.tmp{suffix}")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise _could_not_write(error, path, caller) from error


def _remove_stale_temps(folder: str, name: str, suffix: str) -> None:
    stale = re.compile(rf"\.{re.escape(name)}\.[{_TEMP_ALPHABET}]{{8}}\.tmp{re.escape(suffix)}")
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if stale.fullmatch(entry):
            candidate = os.path.join(folder, entry)
            try:
                if stat.S_ISREG(os.lstat(candidate).st_mode):
                    os.unlink(candidate)
            except OSError:
                pass
