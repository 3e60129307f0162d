"""The exercises, in the blog's order: σ's backward, the MSE cost's gradient, δ2 for softmax +
cross-entropy, δ1, a Linear layer's backward, and the SGD update with momentum.

Each gradient is judged by tm.gradcheck: the student's backward (or gradient function, wrapped
as the backward of a Function whose forward is the true one) against finite differences of the
forward, with a random upstream gradient. The momentum update is judged against tm.optim.SGD.
Inputs come from hypothesis (tinygrad_mlp.testing), imported only when a check runs.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tinygrad_mlp import optim
from tinygrad_mlp.teach import reference
from tinygrad_mlp.teach.exercises.grading import Exercise, Mistake, _from_student, same
from tinygrad_mlp.gradcheck import GradcheckError, gradcheck
from tinygrad_mlp.tensor import Function, Tensor

Inputs = dict[str, Any]


def _float64(value: Any) -> np.ndarray:
    return np.array(value, dtype=np.float64)


def _cast(inputs: Inputs, dtype: Any) -> Inputs:
    """`inputs` with every array (and every array in a list) in `dtype`; numbers unchanged."""
    def cast(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return value.astype(dtype)
        return [cast(v) for v in value] if isinstance(value, list) else value
    return {name: cast(value) for name, value in inputs.items()}


def _close32(name: str, got: Any, want: Any) -> None:
    """`got`, computed from float32 inputs, is float32 and equals `want` to float32 accuracy."""
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got)
    if got.dtype.kind == "f" and np.any(~np.isfinite(got) & np.isfinite(want)):
        raise AssertionError(f"for float32 inputs, {name} holds NaN or inf where the right one "
                             f"is finite (float32 overflows sooner: e^−Z is inf past Z = −88)")
    if got.dtype != np.float32:
        raise AssertionError(f"for float32 inputs, {name} came back {got.dtype}, not float32")
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    if got.shape != want.shape or not np.allclose(got, want, rtol=2e-3, atol=2e-4 * scale + 1e-6):
        raise AssertionError(f"for float32 inputs, {name} is wrong (right in float64: a "
                             f"cast or a constant that loses float32's precision?)")


def _unchanged(name: str, arrays: dict[str, np.ndarray], copies: dict[str, np.ndarray]) -> None:
    for key, array in arrays.items():
        if not np.array_equal(array, copies[key], equal_nan=True):
            raise AssertionError(f"{name} changed {key} in place (like {key} -= … or "
                                 f"{key} += …); it belongs to the caller")


def _rng() -> np.random.Generator:
    return np.random.default_rng(13)   # the diagnostic inputs: fixed, generic, non-square


def _close(name: str, got: Any, want: np.ndarray) -> None:
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{name} has shape {got.shape}, expected {want.shape}")
    if not np.allclose(got, want, rtol=1e-6, atol=1e-9):
        raise AssertionError(f"{name} is wrong (largest difference "
                             f"{float(np.max(np.abs(got - want))):.3g})")


def _staged(checks: tuple[tuple[str, Callable[[Any, Inputs], None]], ...]
            ) -> dict[str, Callable[..., Any]]:
    """judge (every check in order) and stage (the name of the first that fails) from
    (stage, check) pairs; a check raises AssertionError when the solution is wrong there."""
    def judge(solution: Any, inputs: Inputs) -> None:
        for _, check in checks:
            check(solution, inputs)

    def stage(solution: Any, inputs: Inputs) -> str:
        for name, check in checks:
            try:
                check(solution, inputs)
            except BaseException as error:
                if not _from_student(error):
                    raise
                return name
        return checks[-1][0]
    return dict(judge=judge, stage=stage)


def _answer_checks(expects: str, arguments: Callable[[Inputs], dict[str, np.ndarray]],
                   values_right: Callable[[Callable, Inputs], None],
                   expected: Callable[[Inputs, str], Any]) -> dict[str, Callable[..., Any]]:
    """judge and stage for an answer that is a function of arrays: its values (`values_right`,
    in float64), float32 in → float32 out, and its arguments (`arguments(inputs)`, by name, in
    the inputs' dtype) not changed in place."""
    def keeps_float32(solution: Callable, inputs: Inputs) -> None:
        inputs32 = _cast(inputs, np.float32)
        _close32(f"{expects}'s result", solution(*arguments(inputs32).values()),
                 expected(inputs32, "backward"))

    def keeps_arrays(solution: Callable, inputs: Inputs) -> None:
        given = arguments(_cast(inputs, np.float64))
        copies = {name: array.copy() for name, array in given.items()}
        solution(*given.values())
        _unchanged(expects, given, copies)

    return _staged((("backward", values_right), ("dtype", keeps_float32),
                    ("invariants", keeps_arrays)))


def _gradcheck(what: str, fn: Callable[..., Tensor], *tensors: Tensor) -> None:
    """tm.gradcheck, entry by entry on small inputs; on large ones (sides up to 16 are drawn)
    along one random direction per input, which any wrong gradient fails all the same."""
    try:
        gradcheck(fn, *tensors, fast=sum(t.data.size for t in tensors) > 64)
    except GradcheckError:
        raise AssertionError(f"{what} disagrees with finite differences (tm.gradcheck).") from None


def _matrices(specs: dict[str, tuple[str, float]]) -> Callable[[], Any]:
    """The hypothesis strategy of inputs named by `specs`: name → (axes, bound), e.g.
    "W": ("DM", 2) is a D×M array with values in [-2, 2]; each axis letter is one size shared
    by every input that has it: N (samples) in 1..32, any other in 1..16."""
    def examples() -> Any:
        from hypothesis import strategies as st

        from tinygrad_mlp.testing import arrays

        @st.composite
        def draw(draw: Callable) -> Inputs:
            sizes: dict[str, int] = {}
            for axis in "".join(axes for axes, _ in specs.values()):
                if axis not in sizes:
                    sizes[axis] = draw(st.integers(1, 32 if axis == "N" else 16))
            return {name: draw(arrays(tuple(sizes[a] for a in axes), min_value=-bound,
                                      max_value=bound))
                    for name, (axes, bound) in specs.items()}
        return draw()
    return examples


def _matrix_cases(specs: dict[str, tuple[str, float]], sizes: list[dict[str, int]]
                  ) -> list[Inputs]:
    """Fixed inputs of the given sizes, normal values scaled to each input's bound / 2."""
    rng = _rng()
    return [{name: bound / 2 * rng.standard_normal(tuple(size[a] for a in axes))
             for name, (axes, bound) in specs.items()} for size in sizes]


# --- exercises whose answer is a tm.Function: forward given, backward to write ----------------

def _function_exercise(names: tuple[str, ...], forward: Callable[..., np.ndarray],
                       right: type[Function]) -> dict[str, Callable[..., Any]]:
    """judge / received / stage for a Function of the inputs `names` (plus the upstream
    gradient G in the inputs); `forward(*arrays)` is the true forward, `right` the right
    Function. Judged: forward, backward (gradcheck, float64), float32 kept, nothing changed in
    place, two graphs alive at once."""

    def arrays(inputs: Inputs) -> list[np.ndarray]:
        return [np.array(inputs[name]) for name in names]     # a copy, in the inputs' dtype

    def forward_is_right(solution: type[Function], inputs: Inputs) -> None:
        inputs = _cast(inputs, np.float64)
        out = solution.apply(*arrays(inputs))
        _close(f"{solution.__name__}.forward's result", out.data, forward(*arrays(inputs)))

    def backward_is_right(solution: type[Function], inputs: Inputs) -> None:
        inputs = _cast(inputs, np.float64)
        G = _float64(inputs["G"])
        tensors = [Tensor(a, requires_grad=True) for a in arrays(inputs)]
        _gradcheck(f"{solution.__name__}.backward", lambda *t: (solution.apply(*t) * G).sum(),
                   *tensors)

    def keeps_float32(solution: type[Function], inputs: Inputs) -> None:
        """forward and the raw backward (before the engine casts anything) keep float32."""
        inputs32 = _cast(inputs, np.float32)
        ctx = solution()
        ctx.needs_input_grad = (True,) * len(names)
        out = solution.forward(ctx, *[inputs32[name] for name in names])
        _close32(f"{solution.__name__}.forward's result", out, forward(*arrays(inputs32)))
        grads = solution.backward(ctx, inputs32["G"])
        grads = grads if isinstance(grads, tuple) else (grads,)
        want = received_by(right, inputs32)
        for name, grad, wanted in zip(names, grads, want if isinstance(want, tuple) else (want,)):
            if grad is not None:           # (a missing gradient is judged by gradcheck)
                _close32(f"{solution.__name__}.backward's gradient for {name}", grad, wanted)

    def keeps_arrays(solution: type[Function], inputs: Inputs) -> None:
        """Nothing changed in place, no gradient sharing memory with another array, and two
        graphs alive at once do not mix (what backward needs lives in ctx, not a global)."""
        from tinygrad_mlp.testing import assert_backward_invariants

        for dtype in (np.float64, np.float32):
            try:
                assert_backward_invariants(solution.apply, *arrays(_cast(inputs, dtype)))
            except AssertionError as error:
                raise AssertionError(f"{solution.__name__}: {error}") from None
        G = _float64(inputs["G"])
        first = [Tensor(a, requires_grad=True) for a in arrays(inputs)]
        second = [Tensor(2 * a + 1, requires_grad=True) for a in arrays(inputs)]
        out, other = solution.apply(*first), solution.apply(*second)
        value = out.data.copy()
        out.backward(G)
        if not np.array_equal(out.data, value, equal_nan=True):
            raise AssertionError(f"{solution.__name__}.backward changed forward's result in "
                                 f"place (like ctx.a *= …)")
        alone = received_by(solution, inputs)
        for tensor, wanted in zip(first, alone if isinstance(alone, tuple) else (alone,)):
            if not same(tensor.grad, wanted):
                raise AssertionError(f"{solution.__name__}: with two graphs alive, backward of "
                                     f"the first used values of the second; keep what backward "
                                     f"needs in ctx (not in a global or on the class)")
        other.backward(G)

    def received_by(solution: type[Function], inputs: Inputs) -> Any:
        tensors = [Tensor(a, requires_grad=True) for a in arrays(inputs)]
        solution.apply(*tensors).backward(np.asarray(inputs["G"], dtype=tensors[0].dtype))
        grads = tuple(t.grad for t in tensors)
        return grads[0] if len(grads) == 1 else grads

    def received(solution: type[Function], inputs: Inputs, stage: str) -> Any:
        if stage == "forward":
            return solution.apply(*arrays(inputs)).data
        return received_by(solution, _cast(inputs, np.float64))

    return dict(received=received, **_staged((
        ("forward", forward_is_right), ("backward", backward_is_right),
        ("dtype", keeps_float32), ("invariants", keeps_arrays))))


def _variant(base: type[Function], backward: Callable[..., Any]) -> type[Function]:
    """`base` with another backward: how a mistake is written."""
    return type(f"{base.__name__}Mistake", (base,), {"backward": staticmethod(backward)})


class _Sigmoid(Function):
    """σ with the forward the skeleton gives; the backward is the exercise."""

    @staticmethod
    def forward(ctx, Z):
        ctx.Z, ctx.a = Z, reference.sigmoid(Z)
        return ctx.a

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.a * (1 - ctx.a)


def _sigmoid_examples() -> Any:
    from hypothesis import strategies as st

    from tinygrad_mlp.testing import arrays, shapes

    @st.composite
    def draw(draw: Callable) -> Inputs:
        shape = draw(shapes(min_dims=1, max_dims=2, max_side=16))
        bound = draw(st.sampled_from([6.0, 1000.0]))     # large |Z|: e^−Z overflows past 709
        return {"Z": draw(arrays(shape, min_value=-bound, max_value=bound)),
                "G": draw(arrays(shape, min_value=-2, max_value=2))}
    return draw()


def _sigmoid_diagnostics() -> list[Inputs]:
    rng = _rng()
    return [{"Z": 2 * rng.standard_normal(s), "G": rng.standard_normal(s)} for s in ((3, 4), (5,))]


def _sigmoid_expected(inputs: Inputs, stage: str) -> np.ndarray:
    a = reference.sigmoid(_float64(inputs["Z"]))
    return a if stage == "forward" else _float64(inputs["G"]) * a * (1 - a)


SIGMOID_SKELETON = '''
class Sigmoid(tm.Function):
    """a = σ(Z) = 1 / (1 + e^−Z), elementwise."""

    @staticmethod
    def forward(ctx, Z):
        a = 1 / (1 + np.exp(-Z))
        ctx.a = a                  # ctx keeps what backward will need
        return a

    @staticmethod
    def backward(ctx, grad):
        # grad is ∂J/∂a, the gradient that arrives (same shape as a); return ∂J/∂Z.
        raise NotImplementedError("your turn: return ∂J/∂Z")
'''

SIGMOID = Exercise(
    name="sigmoid", title="σ's backward",
    expects="Sigmoid", is_function_class=True,
    task="""The blog's hidden and output layers apply the sigmoid a = σ(Z) = 1/(1 + e^−Z).
Backpropagation hands this op ∂J/∂a (`grad`) and asks for ∂J/∂Z. By the chain rule that is
grad times σ'(Z), and the blog writes σ' through the output: σ'(Z) = a(1 − a).
Write Sigmoid.backward: return ∂J/∂Z, the same shape as Z.""",
    skeleton=SIGMOID_SKELETON,
    nudge=("by the chain rule ∂J/∂Z is grad times σ'(Z); write σ' with what"
           " forward kept in ctx"),
    rule="∂J/∂Z = grad · a(1 − a), with a = σ(Z) kept from forward",
    judged_by="tm.gradcheck against finite differences of σ, with a drawn upstream gradient",
    inputs={"Z": "Z (the input)", "G": "grad (∂J/∂a arriving from above)"},
    outputs={"forward": ("a = σ(Z)",), "backward": ("∂J/∂Z",)},
    examples=_sigmoid_examples, diagnostics=_sigmoid_diagnostics, expected=_sigmoid_expected,
    **_function_exercise(("Z",), reference.sigmoid, _Sigmoid),
    mistakes=(
        Mistake("grad · a: the (1 − a) factor is missing; σ'(Z) = a(1 − a)",
                _variant(_Sigmoid, lambda ctx, grad: grad * ctx.a)),
        Mistake("the local derivative a(1 − a) alone: the chain rule multiplies it by the "
                "gradient that arrives, grad · a(1 − a)",
                _variant(_Sigmoid, lambda ctx, grad: ctx.a * (1 - ctx.a))),
        Mistake("Z(1 − Z): the derivative is a(1 − a) of the OUTPUT a = σ(Z), not of the input Z",
                _variant(_Sigmoid, lambda ctx, grad: grad * ctx.Z * (1 - ctx.Z))),
        Mistake("a sign: σ is increasing (σ' = a(1 − a) > 0), so ∂J/∂Z has grad's sign",
                _variant(_Sigmoid, lambda ctx, grad: -grad * ctx.a * (1 - ctx.a))),
        Mistake("grad · (1 − a²) is tanh's derivative; σ's is a(1 − a)",
                _variant(_Sigmoid, lambda ctx, grad: grad * (1 - ctx.a ** 2))),
    ))


class _Linear(Function):
    @staticmethod
    def forward(ctx, X, W, b):
        ctx.X, ctx.W = X, W
        return X @ W + b

    @staticmethod
    def backward(ctx, grad):
        return grad @ ctx.W.T, ctx.X.T @ grad, grad.sum(axis=0)


LINEAR_INPUTS = {"X": ("ND", 3), "W": ("DM", 2), "b": ("M", 2), "G": ("NM", 2)}


def _linear_diagnostics() -> list[Inputs]:
    return _matrix_cases(LINEAR_INPUTS, [dict(N=3, D=2, M=4), dict(N=3, D=3, M=3)])


def _linear_expected(inputs: Inputs, stage: str) -> Any:
    X, W, b, G = (_float64(inputs[name]) for name in ("X", "W", "b", "G"))
    if stage == "forward":
        return X @ W + b
    return G @ W.T, X.T @ G, G.sum(axis=0)


LINEAR_SKELETON = '''
class Linear(tm.Function):
    """Z = X·W + b: X (N×D), W (D×M), b (M,) added to every row; Z (N×M)."""

    @staticmethod
    def forward(ctx, X, W, b):
        ctx.X, ctx.W = X, W        # ctx keeps what backward will need
        return X @ W + b

    @staticmethod
    def backward(ctx, grad):
        # grad is ∂J/∂Z (N×M); return (∂J/∂X, ∂J/∂W, ∂J/∂b), each the shape of its input.
        raise NotImplementedError("your turn: return grad_X, grad_W, grad_b")
'''

LINEAR = Exercise(
    name="linear", title="a Linear layer's backward",
    expects="Linear", is_function_class=True,
    task="""A layer of the blog's network computes Z = X·W (+ a bias b in nn.Linear): X is N×D
(one sample per row), W is D×M, b has M entries and is added to every row. Backpropagation
hands the layer ∂J/∂Z (`grad`, N×M) and asks for one gradient per input, each the shape of
that input: ∂J/∂X (N×D, passed on to the layer below), ∂J/∂W (D×M, what the optimizer uses)
and ∂J/∂b (M,). The blog's ∂J/∂W2 = a1ᵀ·δ2 is this layer's ∂J/∂W.
Write Linear.backward: return grad_X, grad_W, grad_b in that order.""",
    skeleton=LINEAR_SKELETON,
    nudge=("each gradient has the shape of its input: find the product of grad"
           " with X or W that has that shape, and ask how b reaches every row"),
    rule="grad_X = grad·Wᵀ, grad_W = Xᵀ·grad, grad_b = Σₙ grad",
    judged_by="tm.gradcheck against finite differences of X·W + b, with a drawn upstream "
              "gradient",
    inputs={"X": "X (N×D)", "W": "W (D×M)", "b": "b (M,)", "G": "grad (∂J/∂Z, N×M)"},
    outputs={"forward": ("Z = X·W + b",), "backward": ("∂J/∂X", "∂J/∂W", "∂J/∂b")},
    examples=_matrices(LINEAR_INPUTS), diagnostics=_linear_diagnostics, expected=_linear_expected,
    **_function_exercise(("X", "W", "b"), lambda X, W, b: X @ W + b, _Linear),
    mistakes=(
        Mistake("∂J/∂W = gradᵀ·X is transposed: it is M×D, W is D×M; ∂J/∂W = Xᵀ·grad",
                _variant(_Linear, lambda ctx, grad: (grad @ ctx.W.T, grad.T @ ctx.X,
                                                     grad.sum(axis=0)))),
        Mistake("∂J/∂X = grad·W does not fit (or is wrong when D = M): ∂J/∂X = grad·Wᵀ, "
                "(N×M)·(M×D)",
                _variant(_Linear, lambda ctx, grad: (grad @ ctx.W, ctx.X.T @ grad,
                                                     grad.sum(axis=0)))),
        Mistake("∂J/∂b as the mean over the rows: b is added to every one of the N rows, so "
                "their gradients add up, ∂J/∂b = Σₙ grad (no 1/N)",
                _variant(_Linear, lambda ctx, grad: (grad @ ctx.W.T, ctx.X.T @ grad,
                                                     grad.mean(axis=0)))),
        Mistake("no gradient for b: backward returns one gradient per input of forward (X, W, "
                "b); ∂J/∂b = Σₙ grad",
                _variant(_Linear, lambda ctx, grad: (grad @ ctx.W.T, ctx.X.T @ grad, None))),
        Mistake("the gradients come back in the wrong order: one per input, in forward's order "
                "(X, W, b)",
                _variant(_Linear, lambda ctx, grad: (ctx.X.T @ grad, grad @ ctx.W.T,
                                                     grad.sum(axis=0)))),
    ))


# --- exercises whose answer is a function returning an array ------------------------------------

def _answer(name: str, result: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(result, dtype=np.float64)
    if array.shape != shape:
        raise AssertionError(f"{name} returned shape {array.shape}, expected {shape}")
    return array


class _MSEWithYourGradient(Function):
    """J = 1/(2N) Σ(a2 − Y)²; backward: the student's mse_grad(a2, Y)."""

    @staticmethod
    def forward(ctx, a2, Y, answer):
        ctx.a2, ctx.Y, ctx.answer = a2, Y, answer
        return np.asarray(np.sum((a2 - Y) ** 2) / (2 * a2.shape[0]))

    @staticmethod
    def backward(ctx, grad):
        return grad * _answer("mse_grad", ctx.answer(ctx.a2.copy(), ctx.Y.copy()),
                              ctx.a2.shape), None


def _pair_examples(low: float, high: float, targets: str) -> Callable[[], Any]:
    """(N×K prediction-like values in [low, high], targets) for mse and delta2."""
    def examples() -> Any:
        from hypothesis import strategies as st
        from hypothesis.extra import numpy as hnp

        from tinygrad_mlp.testing import arrays

        @st.composite
        def draw(draw: Callable) -> Inputs:
            N, K = draw(st.integers(1, 32)), draw(st.integers(1, 16))
            values = draw(arrays((N, K), min_value=low, max_value=high))
            if targets == "one-hot":
                classes = draw(hnp.arrays(np.int64, N, elements=st.integers(0, K - 1)))
                return {"Z2": values, "Y": np.eye(K)[classes]}
            return {"a2": values, "Y": draw(arrays((N, K), min_value=0, max_value=1))}
        return draw()
    return examples


def _mse_judge(solution: Callable, inputs: Inputs) -> None:
    a2, Y = _float64(inputs["a2"]), _float64(inputs["Y"])
    _gradcheck("mse_grad", lambda t: _MSEWithYourGradient.apply(t, Y, answer=solution),
               Tensor(a2, requires_grad=True))


def _mse_arguments(inputs: Inputs) -> dict[str, np.ndarray]:
    return {"a2": np.array(inputs["a2"]), "Y": np.array(inputs["Y"])}


def _mse_received(solution: Callable, inputs: Inputs, stage: str) -> np.ndarray:
    return np.asarray(solution(*_mse_arguments(_cast(inputs, np.float64)).values()))


def _mse_expected(inputs: Inputs, stage: str) -> np.ndarray:
    return (_float64(inputs["a2"]) - inputs["Y"]) / len(inputs["a2"])


def _mse_diagnostics() -> list[Inputs]:
    rng = _rng()
    return [{"a2": rng.uniform(0, 1, (N, K)), "Y": rng.uniform(0, 1, (N, K))}
            for N, K in ((3, 2), (5, 4))]


MSE_SKELETON = '''
def mse_grad(a2, Y):
    """∂J/∂a2 for J = 1/(2N) Σ (a2 − Y)²: a2 and Y are N×K, so is the result."""
    raise NotImplementedError("your turn: return ∂J/∂a2")
'''

MSE = Exercise(
    name="mse", title="the MSE cost's gradient",
    expects="mse_grad", is_function_class=False,
    task="""The blog's cost is J = 1/(2N) Σₙ Σₖ (a2 − Y)²: half the squared error, averaged over
the N samples (rows). The backward walk starts here: the first gradient it hands on is
∂J/∂a2, an N×K array like a2. (The blog drops the 1/N; tm.nn.MSELoss and this exercise keep it:
J is a mean.) Write mse_grad(a2, Y): return ∂J/∂a2.""",
    skeleton=MSE_SKELETON,
    nudge=("differentiate one term (a2 − Y)² by a2, then keep the constant in front"
           " of the sum"),
    rule="∂J/∂a2 = (a2 − Y)/N for J = 1/(2N) Σ(a2 − Y)²",
    judged_by="tm.gradcheck against finite differences of J = 1/(2N) Σ(a2 − Y)²",
    inputs={"a2": "a2 (the prediction, N×K)", "Y": "Y (the targets, N×K)"},
    outputs={"backward": ("∂J/∂a2",)},
    examples=_pair_examples(0, 1, "values"), diagnostics=_mse_diagnostics,
    expected=_mse_expected, received=_mse_received,
    **_answer_checks("mse_grad", _mse_arguments, _mse_judge, _mse_expected),
    mistakes=(
        Mistake("a missing 1/N: J averages over the N samples, so ∂J/∂a2 = (a2 − Y)/N (the "
                "blog's a2 − Y is for the sum-form cost ½ Σ(a2 − Y)²)",
                lambda a2, Y: a2 - Y),
        Mistake("a factor 2 too many: the ½ in J = 1/(2N) Σ(a2 − Y)² cancels the 2 that the "
                "square brings down, so ∂J/∂a2 = (a2 − Y)/N",
                lambda a2, Y: 2 * (a2 - Y) / len(a2)),
        Mistake("a factor ½ too few: the 2 from the square cancels the ½, ∂J/∂a2 = (a2 − Y)/N",
                lambda a2, Y: (a2 - Y) / (2 * len(a2))),
        Mistake("a sign: d/da2 (a2 − Y)² = 2(a2 − Y), so ∂J/∂a2 = (a2 − Y)/N, not (Y − a2)/N",
                lambda a2, Y: (Y - a2) / len(a2)),
        Mistake("divided by N·K, the mean over every entry (PyTorch's and Keras's MSE); the "
                "blog's J divides by the N samples only",
                lambda a2, Y: (a2 - Y) / a2.size),
    ))


class _CrossEntropyWithYourDelta(Function):
    """J = −1/N Σ Y log softmax(Z2); backward: the student's delta2(softmax(Z2), Y)."""

    @staticmethod
    def forward(ctx, Z2, Y, answer):
        shifted = Z2 - Z2.max(axis=1, keepdims=True)
        log_a2 = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ctx.a2, ctx.Y, ctx.answer = np.exp(log_a2), Y, answer
        return np.asarray(-np.sum(Y * log_a2) / Z2.shape[0])

    @staticmethod
    def backward(ctx, grad):
        return grad * _answer("delta2", ctx.answer(ctx.a2.copy(), ctx.Y.copy()),
                              ctx.a2.shape), None


def _delta2_judge(solution: Callable, inputs: Inputs) -> None:
    Z2, Y = _float64(inputs["Z2"]), _float64(inputs["Y"])
    _gradcheck("delta2", lambda t: _CrossEntropyWithYourDelta.apply(t, Y, answer=solution),
               Tensor(Z2, requires_grad=True))


def _delta2_arguments(inputs: Inputs) -> dict[str, np.ndarray]:
    dtype = inputs["Z2"].dtype
    return {"a2": reference.softmax(_float64(inputs["Z2"])).astype(dtype),
            "Y": np.array(inputs["Y"], dtype=dtype)}


def _delta2_received(solution: Callable, inputs: Inputs, stage: str) -> np.ndarray:
    return np.asarray(solution(*_delta2_arguments(_cast(inputs, np.float64)).values()))


def _delta2_diagnostics() -> list[Inputs]:
    rng = _rng()
    return [{"Z2": 2 * rng.standard_normal((N, K)), "Y": np.eye(K)[rng.integers(0, K, N)]}
            for N, K in ((3, 4), (5, 3))]


def _delta2_expected(inputs: Inputs, stage: str) -> np.ndarray:
    a2 = reference.softmax(_float64(inputs["Z2"]))
    return (a2 - inputs["Y"]) / len(a2)


DELTA2_SKELETON = '''
def delta2(a2, Y):
    """δ2 = ∂J/∂Z2 for a2 = softmax(Z2) and J = −1/N Σ Y log a2; a2, Y and δ2 are N×K."""
    raise NotImplementedError("your turn: return ∂J/∂Z2")
'''

DELTA2 = Exercise(
    name="delta2", title="δ2 for softmax + cross-entropy",
    expects="delta2", is_function_class=False,
    task="""With a softmax output a2 = softmax(Z2) (each row sums to 1) and the cross-entropy
J = −1/N Σₙ Σₖ Y log a2 (Y one-hot), the blog remarks that the result is "the same" as for
its sigmoid output. Work it out: chain ∂J/∂a2 through the softmax's Jacobian and see what
cancels. Write delta2(a2, Y): return δ2 = ∂J/∂Z2 (N×K), for this mean-form J.""",
    skeleton=DELTA2_SKELETON,
    nudge=("write ∂J/∂a2 first, then chain it through the softmax's Jacobian"
           " ∂a2/∂Z2, one row at a time; most terms cancel"),
    rule="∂J/∂Z2 = (a2 − Y)/N for softmax + cross-entropy, J = −1/N Σ Y log a2",
    judged_by="tm.gradcheck against finite differences of J = −1/N Σ Y log softmax(Z2)",
    inputs={"Z2": "Z2 (the logits, N×K; a2 = softmax(Z2))", "Y": "Y (one-hot targets, N×K)"},
    outputs={"backward": ("δ2 = ∂J/∂Z2",)},
    examples=_pair_examples(-5, 5, "one-hot"), diagnostics=_delta2_diagnostics,
    expected=_delta2_expected, received=_delta2_received,
    **_answer_checks("delta2", _delta2_arguments, _delta2_judge, _delta2_expected),
    mistakes=(
        Mistake("a missing 1/N: a2 − Y is the blog's δ2, for the cost summed over the samples; "
                "J here is the mean, so δ2 = (a2 − Y)/N",
                lambda a2, Y: a2 - Y),
        Mistake("a sign: raising the true class's logit lowers J, so δ2 = (a2 − Y)/N",
                lambda a2, Y: (Y - a2) / len(a2)),
        Mistake("(a2 − Y)·a2(1 − a2) is the δ2 of the sigmoid output with the MSE cost; with "
                "softmax + cross-entropy the a2(1 − a2) cancels: δ2 = (a2 − Y)/N",
                lambda a2, Y: (a2 - Y) * a2 * (1 - a2) / len(a2)),
        Mistake("−Y/(N·a2) is ∂J/∂a2, the gradient at the softmax's OUTPUT; δ2 is one step "
                "further back, at Z2: through the softmax's Jacobian it becomes (a2 − Y)/N",
                lambda a2, Y: -Y / a2 / len(a2)),
    ))


class _SecondLayerWithYourDelta(Function):
    """Z2 = σ(Z1)·W2 as one op; backward: the student's delta1(grad, W2, a1)."""

    @staticmethod
    def forward(ctx, Z1, W2, answer):
        ctx.a1, ctx.W2, ctx.answer = reference.sigmoid(Z1), W2, answer
        return ctx.a1 @ W2

    @staticmethod
    def backward(ctx, grad):
        return _answer("delta1", ctx.answer(grad.copy(), ctx.W2.copy(), ctx.a1.copy()),
                       ctx.a1.shape), None


DELTA1_INPUTS = {"Z1": ("NM", 4), "W2": ("MK", 2), "G": ("NK", 2)}


def _delta1_judge(solution: Callable, inputs: Inputs) -> None:
    W2, G = _float64(inputs["W2"]), _float64(inputs["G"])
    _gradcheck("delta1", lambda t: (_SecondLayerWithYourDelta.apply(t, W2, answer=solution)
                                    * G).sum(), Tensor(_float64(inputs["Z1"]), requires_grad=True))


def _delta1_arguments(inputs: Inputs) -> dict[str, np.ndarray]:
    dtype = inputs["Z1"].dtype
    return {"delta2": np.array(inputs["G"]), "W2": np.array(inputs["W2"]),
            "a1": reference.sigmoid(_float64(inputs["Z1"])).astype(dtype)}


def _delta1_received(solution: Callable, inputs: Inputs, stage: str) -> np.ndarray:
    return np.asarray(solution(*_delta1_arguments(_cast(inputs, np.float64)).values()))


def _delta1_diagnostics() -> list[Inputs]:
    return _matrix_cases(DELTA1_INPUTS, [dict(N=3, M=4, K=2), dict(N=3, M=3, K=3)])


def _delta1_expected(inputs: Inputs, stage: str) -> np.ndarray:
    a1 = reference.sigmoid(_float64(inputs["Z1"]))
    return (_float64(inputs["G"]) @ _float64(inputs["W2"]).T) * a1 * (1 - a1)


DELTA1_SKELETON = '''
def delta1(delta2, W2, a1):
    """δ1 = ∂J/∂Z1 from δ2 = ∂J/∂Z2 (N×K), W2 (M×K) and a1 = σ(Z1) (N×M); δ1 is N×M."""
    raise NotImplementedError("your turn: return ∂J/∂Z1")
'''

DELTA1 = Exercise(
    name="delta1", title="δ1, one layer further back",
    expects="delta1", is_function_class=False,
    task=""""Never stop until you reach the target": from δ2 = ∂J/∂Z2 at the output layer, the
chain goes back through Z2 = a1·W2 and a1 = σ(Z1) to δ1 = ∂J/∂Z1, which gives ∂J/∂W1 = Xᵀ·δ1.
Shapes: δ2 is N×K, W2 is M×K, a1 and δ1 are N×M. Write delta1(delta2, W2, a1): return δ1.
(Whatever δ2 is, with or without the 1/N, δ1 follows from it the same way.)""",
    skeleton=DELTA1_SKELETON,
    nudge=("go back through Z2 = a1·W2 first (which product of δ2 and W2 is N×M?),"
           " then through a1 = σ(Z1)"),
    rule="δ1 = (δ2·W2ᵀ) · a1(1 − a1), elementwise ·",
    judged_by="tm.gradcheck against finite differences of Z2 = σ(Z1)·W2, with a drawn δ2",
    inputs={"Z1": "Z1 (N×M; a1 = σ(Z1))", "W2": "W2 (M×K)", "G": "δ2 (∂J/∂Z2, N×K)"},
    outputs={"backward": ("δ1 = ∂J/∂Z1",)},
    examples=_matrices(DELTA1_INPUTS), diagnostics=_delta1_diagnostics, expected=_delta1_expected,
    received=_delta1_received,
    **_answer_checks("delta1", _delta1_arguments, _delta1_judge, _delta1_expected),
    mistakes=(
        Mistake("δ2·W2 without the transpose: δ2 is N×K and W2 is M×K, so the product that "
                "fits is δ2·W2ᵀ (N×K)·(K×M)",
                lambda delta2, W2, a1: (delta2 @ W2) * a1 * (1 - a1)),
        Mistake("W2·δ2ᵀ is δ1 transposed (M×N); δ1 = (δ2·W2ᵀ) · a1(1 − a1) is N×M",
                lambda delta2, W2, a1: (W2 @ delta2.T) * (a1 * (1 - a1)).T),
        Mistake("the sigmoid is missing: between Z1 and a1 stands σ, whose derivative "
                "a1(1 − a1) multiplies δ2·W2ᵀ",
                lambda delta2, W2, a1: delta2 @ W2.T),
        Mistake("(δ2·W2ᵀ)·a1: the (1 − a1) factor is missing; σ' = a1(1 − a1)",
                lambda delta2, W2, a1: (delta2 @ W2.T) * a1),
        Mistake("a matrix product with a1(1 − a1): the σ' factor multiplies entry by entry",
                lambda delta2, W2, a1: (delta2 @ W2.T) @ (a1 * (1 - a1))),
        Mistake("a sign: no minus sign appears between δ2 and δ1",
                lambda delta2, W2, a1: -(delta2 @ W2.T) * a1 * (1 - a1)),
    ))


# --- the update: SGD with momentum --------------------------------------------------------------

def _momentum_examples() -> Any:
    from hypothesis import strategies as st

    from tinygrad_mlp.testing import arrays, shapes

    @st.composite
    def draw(draw: Callable) -> Inputs:
        shape = draw(shapes(min_dims=1, max_dims=2, max_side=16))
        steps = draw(st.integers(1, 4))
        return {"W": draw(arrays(shape, min_value=-2, max_value=2)),
                "grads": [draw(arrays(shape, min_value=-2, max_value=2)) for _ in range(steps)],
                "lr": draw(st.floats(0.01, 1.0)), "momentum": draw(st.floats(0.1, 0.95))}
    return draw()


def _sgd(inputs: Inputs) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, buf) after each step, from tm.optim.SGD."""
    W = Tensor(_float64(inputs["W"]), requires_grad=True)
    optimizer = optim.SGD([W], lr=inputs["lr"], momentum=inputs["momentum"])
    states = []
    for grad in inputs["grads"]:
        W.grad = _float64(grad)
        optimizer.step()
        states.append((W.data.copy(), optimizer.state_dict()["state"][0]["momentum_buffer"]))
    return states


def _yours(solution: Callable, inputs: Inputs) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, buf) after each step of the student's update, in the inputs' dtype; grad must come
    back unchanged (it is the parameter's .grad, the caller's; W and buf may be updated in
    place, as an optimizer does)."""
    W = np.array(inputs["W"])
    buf = np.zeros_like(W)
    states = []
    for grad in inputs["grads"]:
        grad = np.array(grad)
        kept = grad.copy()
        result = solution(W.copy(), grad, buf.copy(), inputs["lr"], inputs["momentum"])
        if not isinstance(result, tuple) or len(result) != 2:
            raise AssertionError(f"sgd_momentum_step must return a pair (W, buf), got "
                                 f"{type(result).__name__}")
        _unchanged("sgd_momentum_step", {"grad": grad}, {"grad": kept})
        W, buf = (np.asarray(result[0]), np.asarray(result[1]))
        for name, array in (("W", W), ("buf", buf)):
            if array.shape != grad.shape:
                raise AssertionError(f"sgd_momentum_step returned {name} of shape "
                                     f"{array.shape}, expected {grad.shape}")
        states.append((W, buf))
    return states


def _momentum_judge(solution: Callable, inputs: Inputs) -> None:
    for step, ((W, buf), (W_sgd, buf_sgd)) in enumerate(zip(_yours(solution, inputs),
                                                            _sgd(inputs)), start=1):
        _close(f"W after step {step} (tm.optim.SGD's)", W, W_sgd)
        _close(f"buf after step {step} (tm.optim.SGD's)", buf, buf_sgd)


def _momentum_values(solution: Callable, inputs: Inputs) -> None:
    """Right values in float64, however the arrays were treated."""
    _momentum_judge(lambda W, grad, buf, lr, m: solution(W, grad.copy(), buf, lr, m),
                    _cast(inputs, np.float64))


def _momentum_float32(solution: Callable, inputs: Inputs) -> None:
    inputs32 = _cast(inputs, np.float32)
    for step, ((W, buf), (W_sgd, buf_sgd)) in enumerate(zip(
            _yours(lambda W, grad, buf, lr, m: solution(W, grad.copy(), buf, lr, m), inputs32),
            _sgd(inputs32)), start=1):
        _close32(f"W after step {step}", W, W_sgd)
        _close32(f"buf after step {step}", buf, buf_sgd)


MOMENTUM_SKELETON = '''
def sgd_momentum_step(W, grad, buf, lr, momentum):
    """One SGD step with momentum; returns the new (W, buf). buf is all zeros at the first step."""
    raise NotImplementedError("your turn: return W, buf")
'''

MOMENTUM = Exercise(
    name="momentum", title="the SGD update with momentum",
    expects="sgd_momentum_step", is_function_class=False,
    task="""The blog learns by W ← W − α ∂J/∂W. With momentum, each step also follows the
direction of the previous steps: a buffer buf (zeros before the first step) accumulates
momentum times its old value plus the new gradient, and W steps by the learning rate times
the buffer. This is PyTorch's formula and tm.optim.SGD(params, lr, momentum)'s.
Write sgd_momentum_step(W, grad, buf, lr, momentum): return the new (W, buf).""",
    skeleton=MOMENTUM_SKELETON,
    nudge=("first update the buffer from its old value and the new gradient, then"
           " step W along it, against the gradient"),
    rule="buf ← momentum·buf + grad, then W ← W − lr·buf",
    judged_by="tm.optim.SGD(lr, momentum) over several steps",
    inputs={"W": "W (before the first step)", "grads": "grad at each step",
            "lr": "lr", "momentum": "momentum"},
    outputs={"update": ("W after the last step", "buf after the last step")},
    examples=_momentum_examples,
    diagnostics=lambda: [{"W": w, "grads": list(g), "lr": 0.3, "momentum": 0.7}
                         for w, g in [(_rng().standard_normal((2, 3)),
                                       _rng().standard_normal((3, 2, 3)) + 0.5)]],
    expected=lambda inputs, stage: _sgd(inputs)[-1],
    received=lambda solution, inputs, stage: _yours(
        lambda W, grad, buf, lr, m: solution(W, grad.copy(), buf, lr, m),
        _cast(inputs, np.float64))[-1],
    **_staged((("update", _momentum_values), ("dtype", _momentum_float32),
               ("invariants", lambda solution, inputs: _yours(solution, inputs)))),
    mistakes=(
        Mistake("a sign: gradient descent steps against the gradient, W ← W − lr·buf",
                lambda W, grad, buf, lr, m: (W + lr * (m * buf + grad), m * buf + grad)),
        Mistake("the buffer is not used: W ← W − lr·grad is plain SGD; with momentum W steps "
                "along buf = momentum·buf + grad",
                lambda W, grad, buf, lr, m: (W - lr * grad, m * buf + grad)),
        Mistake("buf ← momentum·buf + (1 − momentum)·grad is an exponential average "
                "(dampening); tm.optim.SGD and PyTorch add the whole gradient: "
                "buf ← momentum·buf + grad",
                lambda W, grad, buf, lr, m: (W - lr * (m * buf + (1 - m) * grad),
                                             m * buf + (1 - m) * grad)),
        Mistake("the velocity form v ← momentum·v + lr·grad, W ← W − v: the same W for a fixed "
                "lr, but its buffer is lr times tm.optim.SGD's; keep buf ← momentum·buf + grad "
                "and W ← W − lr·buf",
                lambda W, grad, buf, lr, m: (W - (m * buf + lr * grad), m * buf + lr * grad)),
        Mistake("momentum multiplies the OLD buffer, not the gradient: buf ← momentum·buf + grad",
                lambda W, grad, buf, lr, m: (W - lr * (buf + m * grad), buf + m * grad)),
    ))

EXERCISES = {exercise.name: exercise for exercise in (SIGMOID, MSE, DELTA2, DELTA1, LINEAR,
                                                      MOMENTUM)}
