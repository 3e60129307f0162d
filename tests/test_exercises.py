"""`tinygrad-mlp exercise`: reference solutions pass, typical wrong ones fail with the hint that
names their mistake, and files that cannot be graded give one clear line."""

import pathlib
import re
import textwrap

import pytest

pytest.importorskip("hypothesis")

from tinygrad_mlp import exercises  # noqa: E402
from tinygrad_mlp.cli import main  # noqa: E402

SOLUTIONS = pathlib.Path(__file__).parent / "exercise_solutions"

SIGMOID = """
import numpy as np
import tinygrad_mlp as tm

class Sigmoid(tm.Function):
    @staticmethod
    def forward(ctx, Z):
        ctx.Z = Z
        ctx.a = 1 / (1 + np.exp(-Z))
        return {forward}

    @staticmethod
    def backward(ctx, grad):
        a, Z = ctx.a, ctx.Z
        return {backward}
"""

LINEAR = """
import tinygrad_mlp as tm

class Linear(tm.Function):
    @staticmethod
    def forward(ctx, X, W, b):
        ctx.X, ctx.W = X, W
        return X @ W + b

    @staticmethod
    def backward(ctx, grad):
        X, W = ctx.X, ctx.W
        return {backward}
"""

# (exercise, the student's file, words the hint must contain)
WRONG = [
    ("sigmoid", SIGMOID.format(forward="ctx.a", backward="grad * a"), "(1 − a) factor is missing"),
    ("sigmoid", SIGMOID.format(forward="ctx.a", backward="a * (1 - a)"), "multiplies it by the"),
    ("sigmoid", SIGMOID.format(forward="ctx.a", backward="grad * Z * (1 - Z)"),
     "OUTPUT a = σ(Z), not of the input Z"),
    ("sigmoid", SIGMOID.format(forward="ctx.a", backward="grad * (a - 1) * a"), "a sign"),
    ("sigmoid", SIGMOID.format(forward="np.tanh(Z)", backward="grad * (1 - np.tanh(Z) ** 2)"),
     "the forward value is wrong"),
    ("sigmoid", SIGMOID.format(forward="ctx.a",
                               backward="np.multiply(grad, a * (1 - a), out=grad)"),
     "not grad *= a"),
    ("mse", "def mse_grad(a2, Y):\n    return a2 - Y\n", "a missing 1/N"),
    ("mse", "def mse_grad(a2, Y):\n    return 2 * (a2 - Y) / len(a2)\n", "factor 2 too many"),
    ("mse", "def mse_grad(a2, Y):\n    return (Y - a2) / len(a2)\n", "a sign"),
    ("mse", "import numpy as np\ndef mse_grad(a2, Y):\n    return np.mean(a2 - Y) + 0 * a2\n",
     "compare your formula"),
    ("mse", "def mse_grad(a2, Y):\n    return ((a2 - Y) / a2.shape[0]).sum(axis=1)\n",
     "a result of shape"),
    ("mse", "def mse_grad(a2, Y):\n    return (a2 - Y) / a2.size\n", "N·K"),
    ("delta2", "def delta2(a2, Y):\n    return a2 - Y\n", "a missing 1/N"),
    ("delta2", "def delta2(a2, Y):\n    return a2 * (1 - a2) * (a2 - Y) / len(a2)\n",
     "the a2(1 − a2) cancels"),
    ("delta2", "def delta2(a2, Y):\n    return -Y / (a2 * len(a2))\n", "softmax's OUTPUT"),
    ("delta1", "def delta1(delta2, W2, a1):\n    return delta2 @ W2 * a1 * (1 - a1)\n",
     "without the transpose"),
    ("delta1", "def delta1(delta2, W2, a1):\n    return delta2.dot(W2.T)\n",
     "the sigmoid is missing"),
    ("delta1", "def delta1(delta2, W2, a1):\n    return (delta2 @ W2.T) * a1\n",
     "(1 − a1) factor is missing"),
    ("delta1", "def delta1(delta2, W2, a1):\n    return (W2 @ delta2.T).T * a1 * (a1 - 1)\n",
     "a sign"),
    ("linear", LINEAR.format(backward="grad @ W.T, grad.T @ X, grad.sum(axis=0)"),
     "transposed"),
    ("linear", LINEAR.format(backward="grad @ W, X.T @ grad, grad.sum(axis=0)"), "grad·Wᵀ"),
    ("linear", LINEAR.format(backward="grad @ W.T, X.T @ grad, grad.mean(axis=0)"),
     "their gradients add up"),
    ("linear", LINEAR.format(backward="grad @ W.T, X.T @ grad, None"), "no gradient for b"),
    ("linear", LINEAR.format(backward="X.T @ grad, grad @ W.T, grad.sum(axis=0)"),
     "wrong order"),
    ("momentum", "def sgd_momentum_step(W, grad, buf, lr, momentum):\n"
                 "    buf = momentum * buf + grad\n    return W + lr * buf, buf\n", "a sign"),
    ("momentum", "def sgd_momentum_step(W, grad, buf, lr, momentum):\n"
                 "    buf = momentum * buf + (1 - momentum) * grad\n    return W - lr * buf, buf\n",
     "exponential average"),
    ("momentum", "def sgd_momentum_step(W, grad, buf, lr, momentum):\n"
                 "    buf = momentum * buf + lr * grad\n    return W - buf, buf\n",
     "velocity form"),
    ("momentum", "def sgd_momentum_step(W, grad, buf, lr, momentum):\n"
                 "    return W - lr * grad, momentum * buf + grad\n", "the buffer is not used"),
]


@pytest.mark.parametrize("name", exercises.names())
def test_reference_solutions_pass(name, capsys):
    assert main(["exercise", "check", name, str(SOLUTIONS / f"{name}.py")]) == 0
    assert f"exercise {name}: PASSED" in capsys.readouterr().out


@pytest.mark.parametrize("name, code, hint", WRONG,
                         ids=[f"{wrong[0]}-{i}" for i, wrong in enumerate(WRONG)])
def test_wrong_solutions_fail_with_the_hint_that_names_the_mistake(name, code, hint, tmp_path,
                                                                   capsys):
    path = tmp_path / "answer.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    assert main(["exercise", "check", name, str(path), "--examples", "30"]) == 1
    out = capsys.readouterr().out
    assert f"exercise {name}: NOT YET" in out
    if "not grad *=" not in hint:      # (a right value done in place has nothing to compare)
        assert "smallest failing input" in out and "expected" in out and "received:" in out
    hint_line = next(line for line in out.splitlines() if line.startswith("hint: "))
    assert hint in hint_line


def test_show_prints_a_skeleton_that_check_calls_not_written_yet(tmp_path, capsys):
    for name in exercises.names():
        assert main(["exercise", "show", name]) == 0
        skeleton = capsys.readouterr().out
        assert skeleton.startswith(f'"""Exercise {name}: ') and "NotImplementedError" in skeleton
        path = tmp_path / f"{name}.py"
        path.write_text(skeleton, encoding="utf-8")
        compile(skeleton, str(path), "exec")
        assert main(["exercise", "check", name, str(path)]) == 1
        assert "not written yet" in capsys.readouterr().out


def test_list_names_every_exercise_in_the_blogs_order(capsys):
    assert main(["exercise", "list"]) == 0
    out = capsys.readouterr().out
    positions = [out.index(f" {name} ") for name in
                 ("sigmoid", "mse", "delta2", "delta1", "linear", "momentum")]
    assert positions == sorted(positions)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("def mse_grad(a2, Y:\n    return a2\n", "line 1: syntax error"),
    ("def mse_gradient(a2, Y):\n    return a2\n", "defines no 'mse_grad'"),
    ("mse_grad = 3\n", "mse_grad is a int; exercise mse expects a function"),
    ("import numpy as np\nnp.zeros(2)[5]\n", "importing it raised IndexError"),
])
def test_files_that_cannot_be_graded_give_one_clear_line(content, message, tmp_path, capsys):
    path = tmp_path / "answer.py"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["exercise", "check", "mse", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("tinygrad-mlp exercise: error: ") and message in captured.err


def test_a_function_class_exercise_refuses_a_plain_function(tmp_path, capsys):
    path = tmp_path / "answer.py"
    path.write_text("def Sigmoid(Z):\n    return Z\n", encoding="utf-8")
    assert main(["exercise", "check", "sigmoid", str(path)]) == 1
    assert "expects a tm.Function subclass" in capsys.readouterr().err


def test_unknown_exercise_is_a_usage_error(capsys):
    assert main(["exercise", "check", "tanh", "answer.py"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_check_without_hypothesis_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "hypothesis", None)
    assert main(["exercise", "list"]) == 0                   # listing needs no hypothesis
    assert main(["exercise", "check", "mse", str(SOLUTIONS / "mse.py")]) == 1
    assert "pip install -e '.[test]'" in capsys.readouterr().err


def test_check_takes_the_solution_itself_from_python():
    feedback = exercises.check("mse", lambda a2, Y: a2 - Y, max_examples=30)
    assert not feedback.passed and "1/N" in feedback.hint
    N = feedback.example["a2"].shape[0]
    assert N == 2                                            # shrunk: the smallest N that shows it
    assert (feedback.received == N * feedback.expected).all()


def test_the_teaching_guide_shows_what_check_prints(tmp_path, capsys):
    readme = (SOLUTIONS.parents[1] / "docs" / "guides" / "teaching.md").read_text(encoding="utf-8")
    command = "$ tinygrad-mlp exercise check mse mse.py\n"
    shown = readme[readme.index(command) + len(command):]
    shown = shown[:shown.index("```")]
    path = tmp_path / "mse.py"
    path.write_text("def mse_grad(a2, Y):\n    return a2 - Y\n", encoding="utf-8")
    assert main(["exercise", "check", "mse", str(path)]) == 1
    tried = re.compile(r"\(\d+ inputs tried\)")          # the count depends on hypothesis
    assert tried.sub("(…)", capsys.readouterr().out) == tried.sub("(…)", shown)
