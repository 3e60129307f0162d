"""What the commands share: the error types, argparse's option types, the parser with
'did you mean', the data sets `train` and `compare` read, and the checks made before any work."""

from __future__ import annotations

import argparse
import difflib
import os
from typing import Any, Callable, Iterator, NoReturn

import numpy as np

import tinygrad_mlp as tm
from tinygrad_mlp._checks import finite_real, non_negative_int, positive_int
from tinygrad_mlp._files import existing_file


PROG = "tinygrad-mlp"


METHODS = ("gd", "sgd", "minibatch")


class CliError(Exception):
    """A problem to report as one line on stderr (exit 1)."""


class UsageError(CliError):
    """Arguments that cannot work together, found before any work is done (exit 2)."""


def _number(convert: Any, check: Any, expected: str) -> Any:
    """An argparse type: `check(convert(text))` (a `_checks` validator), else a usage error."""
    def parse(text: str) -> Any:
        try:
            return check(convert(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    return parse


_positive_int = _number(int, lambda v: positive_int("value", v), "a positive integer")


_non_negative_int = _number(int, lambda v: non_negative_int("value", v), "an integer >= 0")


_positive_float = _number(float, lambda v: finite_real("value", v, low=0, low_open=True),
                          "a positive finite number")


_momentum = _number(float, lambda v: finite_real("value", v, low=0, high=1), "a number in [0, 1)")


def _data_source(text: str) -> tuple[str, str | None]:
    """'digits', 'mnist', 'fashion-mnist' (fetched on use), 'mnist:DIR' or 'fer2013:CSV'."""
    kind, _, path = text.partition(":")
    if kind in ("digits", "mnist", "fashion-mnist") and not path:
        return kind, None
    if kind in ("mnist", "fer2013") and path:
        return kind, os.path.expanduser(path)
    raise argparse.ArgumentTypeError(f"expected digits, mnist, fashion-mnist, mnist:DIR or "
                                     f"fer2013:CSV, got {text!r}")


def _command(commands: Any, name: str, handler: Callable[[argparse.Namespace], int],
             **texts: str) -> argparse.ArgumentParser:
    """A subcommand `name` (help=, description=) that main() runs through `handler`."""
    command = commands.add_parser(name, **texts)
    command.set_defaults(handler=handler)
    return command


class _Parser(argparse.ArgumentParser):
    """argparse's parser, which also says "did you mean --hidden?" for a mistyped option."""

    def error(self, message: str) -> NoReturn:
        unknown = message.partition("unrecognized arguments: ")[2].split()
        known = sorted({option for parser in _parsers(self) for option in
                        parser._option_string_actions})
        hints = {typo: match[0] for typo in unknown if typo.startswith("--")
                 for match in [difflib.get_close_matches(typo.partition("=")[0], known, 1)]
                 if match}
        if hints:
            message += "; did you mean " + ", ".join(f"{hint} (for {typo})" if len(hints) > 1
                                                      else hint
                                                      for typo, hint in hints.items()) + "?"
        super().error(message)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and every subcommand's parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def _load_data(kind: str, path: str | None, seed: int, progress: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """X_train, X_test, y_train, y_test (float32 features in [0, 1], int labels) and a name."""
    from tinygrad_mlp import datasets
    from tinygrad_mlp.data import train_test_split

    if kind == "digits":
        X, y = datasets.load_digits()
        X_train, X_test, y_train, y_test = train_test_split(X / np.float32(16), y, 0.25, seed=seed)
        return X_train, X_test, y_train, y_test, "digits (bundled, 8×8, 75/25 split)"
    if kind in ("mnist", "fashion-mnist"):
        path = path or datasets.fetch(kind, progress=progress)
        images, labels = datasets.load_mnist(path, "train")
        X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
        try:
            test_images, test_labels = datasets.load_mnist(path, "test")
        except FileNotFoundError:   # no t10k files: hold out a quarter of the training files
            X_train, X_test, y_train, y_test = train_test_split(X, labels.astype(np.int64), 0.25,
                                                                seed=seed)
            return X_train, X_test, y_train, y_test, f"MNIST {path} (train files, 75/25 split)"
        X_test = test_images.reshape(len(test_images), -1).astype(np.float32) / np.float32(255)
        return (X, X_test, labels.astype(np.int64), test_labels.astype(np.int64),
                f"MNIST {path} (train / t10k files)")
    # FER2013: its Usage column splits Training from the test rows, when it is there.
    existing_file(path, "FER2013 CSV")
    X, y, usage = datasets.load_fer2013(path, return_usage=True)     # one pass over the file
    if usage is not None:
        train = usage == "Training"
        X_train, y_train, X_test, y_test = X[train], y[train], X[~train], y[~train]
        name = f"FER2013 {path} (Usage: Training / PublicTest + PrivateTest)"
    else:
        X_train, X_test, y_train, y_test = train_test_split(X, y, 0.25, seed=seed)
        name = f"FER2013 {path} (75/25 split)"
    if len(X_train) == 0 or len(X_test) == 0:
        raise CliError(f"{path!r} needs both Training and test rows (found {len(X_train)} "
                       f"Training, {len(X_test)} test)")
    scale = np.float32(255)
    return (X_train.reshape(len(X_train), -1).astype(np.float32) / scale,
            X_test.reshape(len(X_test), -1).astype(np.float32) / scale, y_train, y_test, name)


def _check_writable(path: str, option: str) -> None:
    """Fail before training, not after, when FILE cannot be written (a usage error)."""
    if not path:
        raise UsageError(f"{option} needs a file name, got ''")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UsageError(f"{option} {path!r} is not a regular file; give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path!r}: folder {folder!r} is not writable")


def _check_plot(path: str, option: str = "--plot") -> None:
    """Before training: matplotlib is there and writes FILE's format."""
    _check_writable(path, option)
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CliError(f"{option} needs matplotlib, an optional extra: pip install matplotlib "
                       "(from a source checkout: pip install -e '.[plot]')") from None
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in FigureCanvasBase.get_supported_filetypes():
        what = extension or "a file without an extension"
        raise UsageError(f"{option} {path!r}: matplotlib cannot write {what}; use .png, .svg "
                         "or .pdf")


def _check_batch(batch: int) -> None:
    available = len(tm.datasets.load_digits()[1])
    if batch > available:
        raise UsageError(f"--batch {batch}: the bundled digits hold {available} images")


def blog_batch_options(command: argparse.ArgumentParser, loss_default: str) -> None:
    """--loss, --batch, --hidden, --seed: the blog's example batch (graph, explain)."""
    command.add_argument("--loss", choices=("mse", "bce", "ce"), default=loss_default,
                         help=f"mse: sigmoid output + the blog's J = 1/(2N) Σ(a2 − Y)²; bce: "
                              f"sigmoid + cross-entropy; ce: softmax + cross-entropy "
                              f"(default {loss_default})")
    command.add_argument("--batch", type=_positive_int, default=4, metavar="N",
                         help="samples in the batch (default 4)")
    command.add_argument("--hidden", type=_positive_int, default=8, metavar="M",
                         help="hidden units M (default 8)")
    command.add_argument("--seed", type=_non_negative_int, default=0,
                         help="picks the digits and the initial weights (default 0)")
