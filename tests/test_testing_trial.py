"""Issue 20's trial: five custom ops, each with a subtle bug, tested the way docs/guides/testing.md
shows (arrays in float32 and float64, assert_gradients_match with a reference, then
assert_backward_invariants). Each bug must be caught under each of 5 hypothesis seeds, and each
correct op must pass under the same 5 seeds, with no `assume` anywhere.

The seeds are hypothesis's own (`@seed`), without a database, so each run is a fresh search; the
buggy runs skip shrinking (only "is it caught" is measured, and quickly)."""

import math
import re

import numpy as np
import pytest
from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st

import tinygrad_mlp as tm
import tinygrad_mlp.testing as testing
from tinygrad_mlp.testing import (arrays, assert_backward_invariants, assert_gradients_match,
                                  broadcastable_shapes, float_dtypes, shapes)

SEEDS = range(5)


# --- softplus, wrong above |x| = 30 -------------------------------------------------------------

def sigmoid(x):
    return np.exp(-np.logaddexp(0, -x))


class Softplus(tm.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return np.logaddexp(0, x)

    @staticmethod
    def backward(ctx, grad):
        return grad * sigmoid(ctx.x)


class SoftplusFastTail(Softplus):
    """"Past |x| = 30 softplus is x, so its slope is 1": true above 30, not below -30."""

    @staticmethod
    def backward(ctx, grad):
        return grad * np.where(np.abs(ctx.x) > 30, 1.0, sigmoid(ctx.x))


def softplus_test(op):
    @given(x=arrays(dtype=float_dtypes(), min_value=-100, max_value=100), data=st.data())
    def test(x, data):
        assert_gradients_match(op.apply, x, reference=lambda x: np.logaddexp(0, x), data=data)
        assert_backward_invariants(op.apply, x, data=data)
    return test


# --- logsumexp, wrong with keepdims -------------------------------------------------------------

class LogSumExp(tm.Function):
    @staticmethod
    def forward(ctx, x, axis, keepdims):
        m = x.max(axis=axis, keepdims=True)
        out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
        ctx.x, ctx.out, ctx.axis, ctx.keepdims = x, out, axis, keepdims
        return out if keepdims else out.squeeze(axis)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axis)
        return grad * np.exp(ctx.x - ctx.out)


class LogSumExpKeepdims(LogSumExp):
    """Puts the reduced axis back even when keepdims already kept it."""

    @staticmethod
    def backward(ctx, grad):
        return np.expand_dims(grad, ctx.axis) * np.exp(ctx.x - ctx.out)


def logsumexp_test(op):
    @given(x=arrays(shapes(min_dims=1), dtype=float_dtypes()), data=st.data())
    def test(x, data):
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
        keepdims = data.draw(st.booleans(), label="keepdims")
        fn = lambda t: op.apply(t, axis=axis, keepdims=keepdims)    # noqa: E731
        reference = lambda x: np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))  # noqa: E731
        assert_gradients_match(fn, x, reference=reference, data=data)
        assert_backward_invariants(fn, x, data=data)
    return test


# --- weighted hypot, wrong when a size-1 axis in the middle broadcasts ----------------------------

class WeightedHypot(tm.Function):
    """w · sqrt(x² + y²), broadcasting like numpy."""

    @staticmethod
    def forward(ctx, x, y, w):
        r = np.hypot(x, y)
        ctx.x, ctx.y, ctx.w, ctx.r = x, y, w, r
        return w * r

    @staticmethod
    def backward(ctx, grad):
        x, y, w, r = ctx.x, ctx.y, ctx.w, ctx.r
        return grad * w * x / r, grad * w * y / r, grad * r


class WeightedHypotReshape(WeightedHypot):
    """Sums w's gradient back with a reshape: right when only leading axes broadcast."""

    @staticmethod
    def backward(ctx, grad):
        x, y, w, r = ctx.x, ctx.y, ctx.w, ctx.r
        gw = grad * r
        if gw.shape != w.shape:
            gw = gw.reshape(-1, w.size).sum(axis=0).reshape(w.shape)
        return grad * w * x / r, grad * w * y / r, gw


def hypot_test(op):
    @given(data=st.data())
    def test(data):
        shape_x, shape_y, shape_w = data.draw(broadcastable_shapes(3), label="shapes")
        dtype = data.draw(float_dtypes(), label="dtype")
        x = data.draw(arrays(shape_x, dtype, avoid=[0.0]), label="x")   # r > 0: off the kink
        y, w = data.draw(arrays(shape_y, dtype), label="y"), data.draw(arrays(shape_w, dtype),
                                                                       label="w")
        reference = lambda x, y, w: w * np.hypot(x, y)                   # noqa: E731
        assert_gradients_match(op.apply, x, y, w, reference=reference, data=data)
        assert_backward_invariants(op.apply, x, y, w, data=data)
    return test


# --- soft-threshold, whose float32 mask is wrong ------------------------------------------------

LAM = 0.5


class SoftThreshold(tm.Function):
    """sign(x) · max(|x| − λ, 0): the proximal step of an L1 penalty."""

    @staticmethod
    def forward(ctx, x):
        ctx.mask = np.abs(x) > LAM
        return np.sign(x) * np.maximum(np.abs(x) - LAM, 0)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.mask


class SoftThresholdLean(SoftThreshold):
    """In float32 it keeps the output instead of a mask, to save memory, and reads the mask off
    it as `out > 0`: the negative side is lost."""

    @staticmethod
    def forward(ctx, x):
        out = np.sign(x) * np.maximum(np.abs(x) - LAM, 0)
        ctx.mask = out > 0 if x.dtype == np.float32 else np.abs(x) > LAM
        return out


def soft_threshold_test(op):
    @given(x=arrays(dtype=float_dtypes(), avoid=[-LAM, LAM]), data=st.data())
    def test(x, data):
        reference = lambda x: np.sign(x) * np.maximum(np.abs(x) - LAM, 0)   # noqa: E731
        assert_gradients_match(op.apply, x, reference=reference, data=data)
        assert_backward_invariants(op.apply, x, data=data)
    return test


# --- tanh-GELU, returning float64 for float32 ---------------------------------------------------

A = 0.044715


class GELUTanh(tm.Function):
    C = math.sqrt(2 / math.pi)          # a Python float: numpy keeps the array's dtype

    @classmethod
    def forward(cls, ctx, x):
        t = np.tanh(cls.C * (x + A * x ** 3))
        ctx.x, ctx.t = x, t
        return 0.5 * x * (1 + t)

    @classmethod
    def backward(cls, ctx, grad):
        x, t = ctx.x, ctx.t
        return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * cls.C * (1 + 3 * A * x * x))


class GELUTanhNumpyConstant(GELUTanh):
    C = np.sqrt(2 / np.pi)              # a float64 scalar: float32 · float64 → float64


def gelu_test(op):
    @given(x=arrays(dtype=float_dtypes(), min_value=-5, max_value=5), data=st.data())
    def test(x, data):
        reference = lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + A * x ** 3)))  # noqa: E731,E501
        assert_gradients_match(op.apply, x, reference=reference, data=data)
        assert_backward_invariants(op.apply, x, data=data)
    return test


# --- the trial ----------------------------------------------------------------------------------

CASES = {   # name: (test factory, correct op, buggy op, what the failure must say)
    "softplus": (softplus_test, Softplus, SoftplusFastTail, "in float64: gradcheck"),
    "logsumexp": (logsumexp_test, LogSumExp, LogSumExpKeepdims, ""),
    "hypot": (hypot_test, WeightedHypot, WeightedHypotReshape, "input 2"),
    "soft_threshold": (soft_threshold_test, SoftThreshold, SoftThresholdLean,
                       "in float32: the gradient of input 0 against the float64 run"),
    "gelu": (gelu_test, GELUTanh, GELUTanhNumpyConstant, "float64"),
}


def run(test, seed_value, phases):
    """The test under the library's profile (100 examples), seeded, with no example database."""
    configured = settings(settings.get_profile(testing.PROFILE), database=None,
                          derandomize=False, phases=phases, report_multiple_bugs=False)(test)
    seed(seed_value)(configured)()


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("seed_value", SEEDS)
def test_the_correct_op_passes(name, seed_value):
    factory, correct, _, _ = CASES[name]
    run(factory(correct), seed_value, [Phase.generate])


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("seed_value", SEEDS)
def test_the_buggy_op_is_caught(name, seed_value):
    factory, _, buggy, message = CASES[name]
    with pytest.raises(Exception) as caught:    # a wrong gradient, or backward failing outright
        run(factory(buggy), seed_value, [Phase.generate])
    assert re.search(message, str(caught.value)), caught.value
