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


# --- wrong answers that used to pass, and files that stop the grader (issue 19, items 17–19) -----

SIGMOID_FILE = """
import numpy as np
import tinygrad_mlp as tm
{prelude}
class Sigmoid(tm.Function):
    @staticmethod
    def forward(ctx, Z):
{forward}

    @staticmethod
    def backward(ctx, grad):
{backward}
"""


def sigmoid_file(forward="        ctx.Z, ctx.a = Z, 1 / (1 + np.exp(-Z))\n        return ctx.a",
                 backward="        return grad * ctx.a * (1 - ctx.a)", prelude=""):
    return SIGMOID_FILE.format(prelude=prelude, forward=forward, backward=backward)


# (exercise, the student's file, words the verdict must contain): each passed before
USED_TO_PASS = [
    ("sigmoid", sigmoid_file(prelude="_a = None",
                             forward="        global _a\n        _a = 1 / (1 + np.exp(-Z))\n"
                                     "        return _a",
                             backward="        return grad * _a * (1 - _a)"),
     "two graphs alive"),
    ("sigmoid", sigmoid_file(backward="        return grad * np.exp(-ctx.Z) / "
                                      "(1 + np.exp(-ctx.Z)) ** 2"), "NaN or inf"),
    ("sigmoid", sigmoid_file(backward="        right = (grad * ctx.a * (1 - ctx.a)).ravel()\n"
                                      "        out = np.zeros_like(right)\n"
                                      "        out[:9] = right[:9]           # 3×3 at most\n"
                                      "        return out.reshape(grad.shape)"),
     "disagrees with finite differences"),
    ("sigmoid", sigmoid_file(backward="        ctx.a *= 1 - ctx.a\n        return grad * ctx.a"),
     "changed forward's result in place"),
    ("mse", "def mse_grad(a2, Y):\n    a2 -= Y\n    return a2 / len(a2)\n", "changed a2 in place"),
    ("mse", "def mse_grad(a2, Y):\n    return (a2 - Y) / min(len(a2), 4)\n", "NOT YET"),
    ("momentum", "def sgd_momentum_step(W, grad, buf, lr, momentum):\n"
                 "    grad += momentum * buf\n    return W - lr * grad, grad\n",
     "changed grad in place"),
    ("delta1", "import numpy as np\ndef delta1(delta2, W2, a1):\n    one = np.ones(a1.shape)\n"
               "    return (delta2 @ W2.T) * a1 * (one - a1)\n", "came back float64, not float32"),
    ("sigmoid", sigmoid_file(forward="        ctx.a = 1 / (1 + np.exp(-Z.astype(np.float64)))\n"
                                     "        return ctx.a"), "came back float64, not float32"),
]


@pytest.mark.parametrize("name, code, verdict", USED_TO_PASS,
                         ids=[f"{wrong[0]}-{i}" for i, wrong in enumerate(USED_TO_PASS)])
def test_wrong_answers_that_used_to_pass_now_fail(name, code, verdict, tmp_path, capsys):
    path = tmp_path / "answer.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    assert main(["exercise", "check", name, str(path)]) == 1
    out = capsys.readouterr().out
    assert f"exercise {name}: NOT YET" in out and verdict in out, out


@pytest.mark.parametrize("where, code", [
    ("at import", "import sys\nsys.exit(0)\ndef mse_grad(a2, Y):\n    return (a2 - Y) / len(a2)\n"),
    ("in the answer", "import sys\ndef mse_grad(a2, Y):\n    sys.exit(0)\n"),
    ("in backward", sigmoid_file(backward="        import sys\n        sys.exit(0)")),
])
def test_sys_exit_in_a_solution_is_a_failure_that_says_so(where, code, tmp_path, capsys):
    name = "sigmoid" if "Sigmoid" in code else "mse"
    path = tmp_path / "answer.py"
    path.write_text(code, encoding="utf-8")
    assert main(["exercise", "check", name, str(path)]) == 1, where
    captured = capsys.readouterr()
    assert "called sys.exit(0)" in captured.out + captured.err, where


def test_a_keyboard_interrupt_raised_by_the_file_is_graded_not_taken_for_ctrl_c(tmp_path,
                                                                                capsys):
    path = tmp_path / "answer.py"
    path.write_text("def mse_grad(a2, Y):\n    raise KeyboardInterrupt\n", encoding="utf-8")
    assert main(["exercise", "check", "mse", str(path)]) == 1
    out = capsys.readouterr().out
    assert "raised KeyboardInterrupt itself" in out and "interrupted" not in out


def test_a_real_ctrl_c_still_stops_the_check(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "answer.py"
    started = tmp_path / "started"
    path.write_text(f"import pathlib, time\ndef mse_grad(a2, Y):\n"
                    f"    pathlib.Path({str(started)!r}).touch()\n    time.sleep(30)\n",
                    encoding="utf-8")
    child = subprocess.Popen([sys.executable, "-m", "tinygrad_mlp", "exercise", "check", "mse",
                              str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130 and b"interrupted" in err, (out, err)


def test_the_untouched_skeleton_gets_a_hint_never_the_answer(tmp_path, capsys):
    for name in exercises.names():
        exercise = exercises.get(name)
        path = tmp_path / f"{name}.py"
        path.write_text(exercises.skeleton(name), encoding="utf-8")
        assert main(["exercise", "check", name, str(path)]) == 1
        out = capsys.readouterr().out
        assert "not written yet" in out and "Where to start" in out
        assert exercise.rule not in out, (name, out)
        for part in exercise.rule.split(", "):            # nor any piece of the rule
            assert part not in out, (name, part, out)

