"""Grading: load a student's file, search for an input where the answer is wrong, explain it.

An `Exercise` knows how to judge one input (`judge` raises AssertionError when the answer is
wrong: tm.gradcheck's GradcheckError for a gradient, a plain AssertionError for a forward value or
an update) and how to show the right and the received value there. `check` lets hypothesis look
for a failing input, keeps the smallest one it shrinks to, and compares the student's answers
on a few fixed inputs with the `Mistake`s the exercise knows, to name the likely one.
"""

from __future__ import annotations

import importlib.util
import linecache
import os
import signal
import threading
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tinygrad_mlp.tensor import Function

INVARIANTS_HINT = ("the values are right, but your code changed an array it was handed or kept "
                   "(grad *= a, a2 -= Y, ctx.a *= …), returned one that shares memory with "
                   "another, or kept what backward needs outside ctx: the caller and the engine "
                   "may still need those arrays, so compute new ones (grad * a, not grad *= a)")
DTYPE_HINT = ("the values are right in float64, but not for float32 inputs: keep the inputs' "
              "dtype (no .astype(np.float64), np.float64(…) or float64 arrays of constants); "
              "models train in float32")
INSTALL_HINT = ("exercise check needs hypothesis, part of the test extra: "
                "pip install -e '.[test]' (from a checkout) or pip install hypothesis")


QUIET_STAGES = {"invariants": INVARIANTS_HINT, "dtype": DTYPE_HINT}
OVERFLOW_HINT = ("a form that overflows for large inputs (e^−Z at Z = −800 in float64, −88 in "
                 "float32, is inf): rewrite it with quantities that stay finite (forward's "
                 "result, say)")


@dataclass(frozen=True)
class Mistake:
    """A wrong answer students often give, written as a solution, and the hint that names it."""
    hint: str
    solution: Any


@dataclass(frozen=True)
class Exercise:
    """One exercise: its task, the skeleton to complete and how its answers are judged.

    `examples()` is the hypothesis strategy of inputs (a dict name → value); `diagnostics()`
    a few fixed inputs on which the known mistakes all give different answers. `judge(solution,
    inputs)` raises AssertionError when the solution is wrong at `inputs`; `expected(inputs)`
    and `received(solution, inputs)` are what the feedback shows (`stage` says which part).
    """
    name: str
    title: str
    expects: str                 # the name the solution file defines: "Sigmoid", "mse_grad"
    is_function_class: bool      # a tm.Function subclass (True) or a plain function (False)
    task: str
    skeleton: str
    rule: str                    # the right answer in one line, for hints on wrong answers
    nudge: str                   # where to start, for an untouched skeleton: never the answer
    examples: Callable[[], Any]
    diagnostics: Callable[[], list[dict[str, Any]]]
    judge: Callable[[Any, dict[str, Any]], None]
    expected: Callable[[dict[str, Any], str], Any]
    received: Callable[[Any, dict[str, Any], str], Any]
    judged_by: str               # "tm.gradcheck against finite differences", ...
    inputs: dict[str, str]       # each input's name → how the feedback names it
    outputs: dict[str, tuple[str, ...]]   # stage → the names of its results
    stage: Callable[[Any, dict[str, Any]], str] = lambda solution, inputs: "backward"
    mistakes: tuple[Mistake, ...] = ()


@dataclass
class Feedback:
    """The verdict on one solution; `str(feedback)` is what `tinygrad-mlp exercise check` prints."""
    exercise: str
    passed: bool
    examples: int                            # inputs tried
    message: str
    example: dict[str, Any] | None = None    # the smallest failing input
    expected: Any = None
    received: Any = None
    hint: str | None = None

    def __str__(self) -> str:
        return self.message


class SolutionError(Exception):
    """The solution file cannot be graded: missing, not Python, or without the expected name."""


def load_solution(path: str | os.PathLike, exercise: Exercise) -> Any:
    """Import `path` as a fresh module and return the object the exercise expects from it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise SolutionError(f"{path}: a directory, not a file (give the solution's .py file)")
    if not os.path.isfile(path):
        raise SolutionError(f"{path}: no such file (write it first: tinygrad-mlp exercise show "
                            f"{exercise.name} > {os.path.basename(path) or 'answer.py'})")
    spec = importlib.util.spec_from_file_location(f"tinygrad_mlp_exercise_{exercise.name}", path)
    if spec is None or spec.loader is None:
        raise SolutionError(f"{path}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        with _watching_ctrl_c():
            spec.loader.exec_module(module)
    except SyntaxError as error:      # (a NUL byte has no line: Python reports lineno None)
        where = f" line {error.lineno}" if error.lineno is not None else ""
        raise SolutionError(f"{path}{where}: syntax error: {error.msg}") from None
    except BaseException as error:   # the student's module-level code failed
        if not _from_student(error):
            raise
        raise SolutionError(f"{path}{_where(error, path)}: importing it "
                            f"{_Raised(error).what()}") from None
    solution = getattr(module, exercise.expects, None)
    kind = "a tm.Function subclass" if exercise.is_function_class else "a function"
    if solution is None:
        raise SolutionError(f"{path} defines no {exercise.expects!r}; exercise "
                            f"{exercise.name} expects {kind} of that name")
    wrong = (not (isinstance(solution, type) and issubclass(solution, Function))
             if exercise.is_function_class else not callable(solution))
    if wrong:
        raise SolutionError(f"{path}: {exercise.expects} is a {type(solution).__name__}; "
                            f"exercise {exercise.name} expects {kind}")
    return solution


_ctrl_c = [False]   # set by the SIGINT handler while a check runs: the user pressed Ctrl-C


class _watching_ctrl_c:
    """While grading, tell the user's Ctrl-C (a SIGINT) from a KeyboardInterrupt the student's
    code raises itself: only the first stops the check."""

    def __enter__(self) -> None:
        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:            # (signal handlers can only be set there)
            def interrupted(signum: int, frame: Any) -> None:
                _ctrl_c[0] = True
                raise KeyboardInterrupt
            _ctrl_c[0] = False
            self._previous = signal.signal(signal.SIGINT, interrupted)

    def __exit__(self, *exc: Any) -> None:
        if self._installed:            # None: a handler set outside Python; put Python's back
            signal.signal(signal.SIGINT, self._previous if self._previous is not None
                          else signal.default_int_handler)


def _from_student(error: BaseException) -> bool:
    """Is `error` the student's code failing (to grade), rather than the user stopping us?
    sys.exit() and a KeyboardInterrupt the code raised itself are the student's."""
    if isinstance(error, KeyboardInterrupt):
        return not _ctrl_c[0]
    return isinstance(error, (Exception, SystemExit))


def check(exercise: Exercise, solution: Any, max_examples: int = 100) -> Feedback:
    """Grade `solution`: try up to `max_examples` hypothesis-drawn inputs (deterministically);
    on a failure, shrink to the smallest failing input and explain it."""
    with _watching_ctrl_c():
        return _check(exercise, solution, max_examples)


def _check(exercise: Exercise, solution: Any, max_examples: int) -> Feedback:
    try:
        from hypothesis import HealthCheck, find, settings
        from hypothesis.errors import NoSuchExample
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    with _quiet():   # a skeleton still raising NotImplementedError needs no search
        probe = _attempt(exercise.received, solution, exercise.diagnostics()[0], "backward")
    if isinstance(probe, _Raised) and isinstance(probe.error, NotImplementedError):
        hint = _not_written_yet(exercise)
        return Feedback(exercise.name, False, 1, f"exercise {exercise.name}: NOT YET. {hint}",
                        hint=hint)
    tried = 0

    def fails(inputs: dict[str, Any]) -> bool:
        nonlocal tried
        tried += 1
        return _verdict(exercise, solution, inputs) is not None

    options = settings(max_examples=max_examples, database=None, derandomize=True,
                       deadline=None, suppress_health_check=list(HealthCheck))
    try:
        with _quiet():
            example = find(exercise.examples(), fails, settings=options)
    except NoSuchExample:
        return Feedback(exercise.name, True, tried, _passed_message(exercise, tried))
    with _quiet():
        reason = _verdict(exercise, solution, example) or "it failed while searching"
        stage = exercise.stage(solution, example)
        expected = _attempt(exercise.expected, example, stage)
        received = _attempt(exercise.received, solution, example, stage)
        hint = _diagnose(exercise, solution, stage) if stage not in QUIET_STAGES else ""
    if stage in QUIET_STAGES:                # right values: nothing to show side by side
        hint = OVERFLOW_HINT if "NaN or inf" in reason else QUIET_STAGES[stage]
        message = f"exercise {exercise.name}: NOT YET. {reason}\nhint: {hint}"
    else:
        message = _failed_message(exercise, tried, example, stage, reason, expected, received,
                                  hint)
    return Feedback(exercise.name, False, tried, message, example, expected, received, hint)


# --- judging one input -------------------------------------------------------------------------

class _Raised:
    """What a call raised, kept as a value so it can be shown and compared."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def what(self) -> str:
        """'raised ValueError: …', 'called sys.exit(0)' (a solution must return, not exit)."""
        if isinstance(self.error, SystemExit):
            return (f"called sys.exit({self.error.code!r}): a solution returns its answer, it "
                    f"does not end the program")
        if isinstance(self.error, KeyboardInterrupt):
            return "raised KeyboardInterrupt itself (no Ctrl-C was pressed)"
        return f"raised {type(self.error).__name__}: {self.error}"

    def __str__(self) -> str:
        return f"{self.what()}{_where(self.error)}"


def _attempt(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except BaseException as error:
        if not _from_student(error):
            raise
        return _Raised(error)


def _verdict(exercise: Exercise, solution: Any, inputs: dict[str, Any]) -> str | None:
    """None when `solution` is right at `inputs`, else the reason in a line."""
    try:
        with _quiet():
            exercise.judge(solution, inputs)
    except AssertionError as error:
        return str(error).split("\n")[0]
    except BaseException as error:
        if not _from_student(error):
            raise
        return f"your code {_Raised(error)}"
    return None


def _where(error: BaseException, path: str | None = None) -> str:
    """' (line 12 of answer.py: return a @ b)' for the innermost frame in the student's file."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for frame in reversed(frames):
        in_student = (os.path.abspath(frame.filename) == os.path.abspath(path) if path
                      else not os.path.abspath(frame.filename).startswith(ours)
                      and "site-packages" not in frame.filename and "<" not in frame.filename)
        if in_student:
            line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
            return f" (line {frame.lineno} of {os.path.basename(frame.filename)}: {line})"
    return ""


class _quiet:
    """numpy's floating-point warnings from a student's code are not the verdict: silence them."""

    def __enter__(self) -> None:
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._errstate = np.errstate(all="ignore")
        self._errstate.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._errstate.__exit__(*exc)
        self._warnings.__exit__(*exc)


# --- naming the mistake ------------------------------------------------------------------------

def same(a: Any, b: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """Two answers agree: both raised, or equal shapes and close values (tuples entry by entry)."""
    if isinstance(a, _Raised) or isinstance(b, _Raised):
        return isinstance(a, _Raised) and isinstance(b, _Raised)
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list))
                and len(a) == len(b) and all(same(x, y, rtol, atol) for x, y in zip(a, b)))
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _diagnose(exercise: Exercise, solution: Any, stage: str) -> str:
    """The hint of the known mistake whose answers equal the student's on every diagnostic
    input, else one read off the answers (an exception, a shape, a constant factor)."""
    cases = exercise.diagnostics()
    answers = [_attempt(exercise.received, solution, case, stage) for case in cases]
    if stage != "forward":   # a wrong forward is shown as such, whatever its backward
        for mistake in exercise.mistakes:
            theirs = [_attempt(exercise.received, mistake.solution, case, stage) for case in cases]
            if _alike(answers, theirs):
                return mistake.hint
    expected = [exercise.expected(case, stage) for case in cases]
    return _generic_hint(exercise, answers, expected, stage)


def _alike(answers: list[Any], theirs: list[Any]) -> bool:
    """The same answers on every input (an error of the same type counts as the same), and at
    least one real answer to compare: two programs that always fail are not the same mistake."""
    compared = 0
    for a, b in zip(answers, theirs):
        if isinstance(a, _Raised) or isinstance(b, _Raised):
            if not (isinstance(a, _Raised) and isinstance(b, _Raised)
                    and type(a.error) is type(b.error)):
                return False
        elif same(a, b):
            compared += 1
        else:
            return False
    return compared > 0


def _generic_hint(exercise: Exercise, answers: list[Any], expected: list[Any], stage: str) -> str:
    raised = next((a for a in answers if isinstance(a, _Raised)), None)
    if raised is not None:
        if isinstance(raised.error, NotImplementedError):
            return _not_written_yet(exercise)
        return f"your code {raised}; the rule: {exercise.rule}"
    flat_answers = [np.asarray(x, dtype=np.float64) for x in _flatten(answers)]
    flat_expected = [np.asarray(x, dtype=np.float64) for x in _flatten(expected)]
    if any(got.shape == want.shape and np.any(~np.isfinite(got) & np.isfinite(want))
           for got, want in zip(flat_answers, flat_expected)):
        return f"your result is NaN or inf where the right one is finite: {OVERFLOW_HINT}"
    for got, want in zip(flat_answers, flat_expected):
        if got.shape != want.shape:
            turned = " (transposed?)" if got.shape == want.shape[::-1] else ""
            return (f"a result of shape {got.shape} where {want.shape} was expected{turned}: "
                    f"a gradient always has the shape of what it is the gradient of; "
                    f"the rule: {exercise.rule}")
    factor = _constant_factor(flat_answers, flat_expected)
    if factor is not None:
        return (f"off by a constant factor {factor:.4g} everywhere: a missing or extra constant "
                f"(1/N, ½, 2, a sign?); the rule: {exercise.rule}")
    if stage == "forward":
        return f"the forward value is wrong: forward computes {exercise.outputs['forward'][0]}"
    return f"compare your formula with the rule, entry by entry: {exercise.rule}"


def _not_written_yet(exercise: Exercise) -> str:
    """The hint for an untouched skeleton: where to start, never the answer."""
    where = exercise.expects + (".backward" if exercise.is_function_class else "")
    return (f"not written yet: replace the `raise NotImplementedError` in {where} with your "
            f"code. Where to start: {exercise.nudge}")


def _flatten(answers: list[Any]) -> list[Any]:
    out: list[Any] = []
    for answer in answers:
        out.extend(_flatten(list(answer)) if isinstance(answer, (tuple, list)) else
                   [0.0 if answer is None else answer])
    return out


def _constant_factor(got: list[np.ndarray], want: list[np.ndarray]) -> float | None:
    """c when got ≈ c · want for every pair (over the entries where want is not ~0)."""
    ratios = []
    for g, w in zip(got, want):
        mask = np.abs(w) > 1e-6
        if not np.allclose(g[~mask], 0, atol=1e-9):
            return None
        ratios.extend((g[mask] / w[mask]).ravel().tolist())
    if not ratios or np.ptp(ratios) > 1e-6 * max(1.0, abs(ratios[0])):
        return None
    return float(ratios[0])


# --- messages ----------------------------------------------------------------------------------

def show(value: Any, indent: str = "    ") -> str:
    """A value as the feedback prints it: arrays rounded to 4 digits, one row a line."""
    if isinstance(value, _Raised):
        return indent + str(value)
    if isinstance(value, (tuple, list)):
        return "\n".join(show(v, indent) for v in value)
    if value is None:
        return indent + "None"
    if np.isscalar(value) or np.ndim(value) == 0:
        return indent + f"{float(value):.6g}"
    array = np.round(np.asarray(value, dtype=np.float64), 6) + 0.0
    text = np.array2string(array, precision=6, suppress_small=True, separator=" ",
                           max_line_width=100)
    return "\n".join(indent + line for line in text.splitlines())


def _labelled(values: Any, labels: list[str]) -> str:
    if isinstance(values, (tuple, list)) and len(values) == len(labels) > 1:
        return "\n".join(f"  {label}:\n{show(v)}" for label, v in zip(labels, values))
    return show(values)


def _passed_message(exercise: Exercise, tried: int) -> str:
    return (f"exercise {exercise.name}: PASSED. {exercise.expects} is right on all {tried} "
            f"inputs hypothesis drew (shapes and values at random, edge cases included), "
            f"judged by {exercise.judged_by}.")


def _failed_message(exercise: Exercise, tried: int, example: dict[str, Any], stage: str,
                    reason: str, expected: Any, received: Any, hint: str) -> str:
    lines = [f"exercise {exercise.name}: NOT YET. {reason}",
             f"The smallest failing input hypothesis found ({tried} inputs tried):"]
    for name, value in example.items():
        lines.append(f"  {exercise.inputs.get(name, name)}:")
        lines.append(show(value))
    results = exercise.outputs.get(stage, (stage,))
    what = results[0] if len(results) == 1 else ", ".join(results)
    lines.append(f"expected {what}:")
    lines.append(_labelled(expected, results))
    lines.append("received:")
    lines.append(_labelled(received, results))
    lines.append(f"hint: {hint}")
    return "\n".join(lines)
