"""Losses: the fused Functions against raw-op formulas and finite differences, their fusion
with Sigmoid/Softmax (finite for any logits, gradient (a2 − Y)/N), and their input checks."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_mlp as tm
from tinygrad_mlp import nn


def leaf(array):
    return tm.Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def one_hot(y, K):
    return np.eye(K)[y]


def grads_of(loss_fn, Z):
    """(loss value, dloss/dZ) for a fresh leaf copy of Z."""
    Z = leaf(Z)
    loss = loss_fn(Z)
    loss.backward()
    return loss.item(), Z.grad


shapes = st.tuples(st.integers(1, 5), st.integers(1, 4))
logits = shapes.flatmap(lambda s: hnp.arrays(np.float64, s, elements=st.floats(-6, 6)))


def targets_for(Z, data, kind):
    N, K = Z.shape
    if kind == "one_hot":
        return one_hot(data.draw(hnp.arrays(np.int64, N, elements=st.integers(0, K - 1))), K)
    return data.draw(hnp.arrays(np.float64, Z.shape, elements=st.floats(0, 1)))


# --- fused == the raw-op formulas, and == finite differences -----------------------------------

@given(Z=logits, data=st.data())
def test_mse_equals_raw_formula_and_gradcheck(Z, data):
    Y = targets_for(Z, data, "real")
    N = Z.shape[0]
    fused = grads_of(lambda Z: nn.MSELoss()(Z.sigmoid(), Y), Z)
    raw = grads_of(lambda Z: ((Z.sigmoid() - Y) ** 2).sum() / (2 * N), Z)
    np.testing.assert_allclose(fused[0], raw[0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fused[1], raw[1], rtol=1e-10, atol=1e-15)
    assert tm.gradcheck(lambda a2: nn.MSELoss()(a2, Y), leaf(Z))


@given(Z=logits, data=st.data())
def test_bce_on_sigmoid_equals_raw_formula_and_gradcheck(Z, data):
    Y = targets_for(Z, data, "real")
    N = Z.shape[0]

    def raw_loss(Z):
        a2 = Z.sigmoid()
        return -(Y * a2.log() + (1 - Y) * (1 - a2).log()).sum() / N

    fused = grads_of(lambda Z: nn.BCELoss()(Z.sigmoid(), Y), Z)
    raw = grads_of(raw_loss, Z)
    np.testing.assert_allclose(fused[0], raw[0], rtol=1e-9)
    np.testing.assert_allclose(fused[1], raw[1], rtol=1e-7, atol=1e-12)
    a2 = 1 / (1 + np.exp(-Z))
    np.testing.assert_allclose(fused[1], (a2 - Y) / N, rtol=1e-12, atol=1e-15)
    assert tm.gradcheck(lambda Z: nn.BCELoss()(Z.sigmoid(), Y), leaf(Z))


@pytest.mark.parametrize("fused_form", ["softmax", "from_logits"])
@given(Z=logits, data=st.data())
def test_cross_entropy_equals_raw_formula_and_gradcheck(fused_form, Z, data):
    Y = targets_for(Z, data, "one_hot")
    N = Z.shape[0]
    if fused_form == "softmax":
        def loss(Z):
            return nn.CrossEntropyLoss()(Z.softmax(), Y)
    else:
        def loss(Z):
            return nn.CrossEntropyLoss(from_logits=True)(Z, Y)

    fused = grads_of(loss, Z)
    raw = grads_of(lambda Z: -(Y * Z.softmax().log()).sum() / N, Z)
    np.testing.assert_allclose(fused[0], raw[0], rtol=1e-10)
    np.testing.assert_allclose(fused[1], raw[1], rtol=1e-8, atol=1e-14)
    assert tm.gradcheck(loss, leaf(Z))


PROBABILITY_LOSSES = {   # loss on probabilities of unknown origin (a leaf), its raw-op formula
    "bce": (nn.BCELoss(), "real", lambda P, Y: -(Y * P.log() + (1 - Y) * (1 - P).log()).sum()),
    "ce": (nn.CrossEntropyLoss(), "one_hot", lambda P, Y: -(Y * P.log()).sum()),
}


@pytest.mark.parametrize("name", sorted(PROBABILITY_LOSSES))
@given(P=shapes.flatmap(lambda s: hnp.arrays(np.float64, s, elements=st.floats(0.05, 0.9))),
       data=st.data())
def test_losses_on_probabilities_equal_raw_formula_and_gradcheck(name, P, data):
    loss, kind, raw_formula = PROBABILITY_LOSSES[name]
    Y = targets_for(P, data, kind)
    N = P.shape[0]
    fused = grads_of(lambda P: loss(P, Y), P)
    raw = grads_of(lambda P: raw_formula(P, Y) / N, P)
    np.testing.assert_allclose(fused[0], raw[0], rtol=1e-12)
    np.testing.assert_allclose(fused[1], raw[1], rtol=1e-10, atol=1e-14)
    assert tm.gradcheck(lambda P: loss(P, Y), leaf(P))


def test_mse_is_the_blogs_half_mean_over_rows_not_pytorchs_mean():
    a2, Y = np.array([[1.0, 2.0], [3.0, 5.0]]), np.zeros((2, 2))
    assert nn.MSELoss()(a2, Y).item() == (1 + 4 + 9 + 25) / (2 * 2)


# --- fusion: finite for any logits, gradient (a2 − Y)/N -----------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_on_softmax_is_finite_for_huge_logits(dtype):
    Z = tm.Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0], [3.0, 3.0, -1e4]], dtype=dtype),
                  requires_grad=True)
    Y = one_hot([1, 1, 2], 3).astype(dtype)
    a2 = Z.softmax()
    loss = nn.CrossEntropyLoss()(a2, Y)
    loss.backward()
    assert loss.dtype == dtype and Z.grad.dtype == dtype
    assert np.isfinite(loss.item()) and loss.item() > 1e3    # rightly huge: −log(e^−2e4)
    np.testing.assert_allclose(loss.item(), (2e4 + 0 + (1e4 + 3 + np.log(2))) / 3, rtol=1e-6)
    np.testing.assert_array_equal(Z.grad, (a2.data - Y) / dtype(3))
    assert np.all(np.isfinite(Z.grad))


def test_bce_on_sigmoid_is_finite_for_huge_logits():
    Z = leaf([[1e4], [-1e4], [40.0], [-800.0]])
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    a2 = Z.sigmoid()
    loss = nn.BCELoss()(a2, Y)
    loss.backward()
    np.testing.assert_allclose(loss.item(), (1e4 + 1e4 + np.log1p(np.exp(-40.0)) + 0) / 4,
                               rtol=1e-12)
    np.testing.assert_array_equal(Z.grad, (a2.data - Y) / 4)


def test_bce_at_probabilities_exactly_zero_and_one_is_finite():
    P = leaf([[0.0], [1.0], [0.0], [1.0]])
    loss = nn.BCELoss()(P, np.array([[0.0], [1.0], [1.0], [0.0]]))   # two right, two wrong
    loss.backward()
    assert loss.item() == pytest.approx((100 + 100) / 4)              # log clamped at −100
    assert np.all(np.isfinite(P.grad))
    assert nn.BCELoss()(leaf([[0.0, 1.0]]), np.array([[0.0, 1.0]])).item() == 0.0


def test_cross_entropy_on_a_zero_probability_is_clipped_not_infinite():
    P = leaf([[0.0, 1.0], [1.0, 0.0]])
    loss = nn.CrossEntropyLoss()(P, np.array([0, 0]))
    loss.backward()
    assert loss.item() == pytest.approx(-np.log(1e-7) / 2)
    assert np.all(np.isfinite(P.grad))


def test_fusion_needs_the_graph_and_falls_back_to_probabilities_under_no_grad():
    Z = np.array([[2.0, -1.0, 0.5]])
    with tm.no_grad():
        a2 = tm.Tensor(Z).softmax()
        clipped = nn.CrossEntropyLoss()(a2, np.array([0])).item()
    assert a2._ctx is None
    fused = nn.CrossEntropyLoss()(leaf(Z).softmax(), np.array([0])).item()
    assert clipped == pytest.approx(fused, rel=1e-12)


def test_softmax_along_another_axis_is_fused_along_that_axis():
    Z = np.random.default_rng(0).normal(size=(3, 4))
    Y = one_hot([0, 2, 1, 1], 3).T                                    # classes along axis 0
    value, grad = grads_of(lambda Z: nn.CrossEntropyLoss()(Z.softmax(axis=0), Y), Z)
    a2 = np.exp(Z) / np.exp(Z).sum(axis=0)
    np.testing.assert_allclose(value, -(Y * np.log(a2)).sum() / 4, rtol=1e-12)
    np.testing.assert_allclose(grad, (a2 - Y) / 4, rtol=1e-12, atol=1e-15)


def test_double_softmax_is_refused():
    with pytest.raises(ValueError, match="softmax would be applied twice"):
        nn.CrossEntropyLoss(from_logits=True)(leaf([[1.0, 2.0]]).softmax(), np.array([1]))


# --- dtype, targets, graph ------------------------------------------------------------------------

@pytest.mark.parametrize("loss, Y", [(nn.MSELoss(), np.ones((4, 3))),
                                     (nn.BCELoss(), np.ones((4, 3))),
                                     (nn.CrossEntropyLoss(), np.array([0, 1, 2, 0]))])
def test_float32_stays_float32_and_targets_get_no_gradient(loss, Y):
    Z = tm.Tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32),
                  requires_grad=True)
    target = tm.Tensor(Y, requires_grad=True)
    out = loss(Z.sigmoid() if not isinstance(loss, nn.CrossEntropyLoss) else Z.softmax(), target)
    assert out.shape == () and out.dtype == np.float32
    assert tm.graph_size(out) > 0                      # connected to the parameters
    out.backward()
    assert Z.grad.dtype == np.float32 and target.grad is None


def test_indices_may_be_integer_valued_floats_or_a_tensor():
    Z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    expected = grads_of(lambda Z: nn.CrossEntropyLoss(from_logits=True)(Z, np.array([2, 0])), Z)
    for y in (np.array([2.0, 0.0]), tm.Tensor(np.array([2, 0])), [2, 0]):
        got = grads_of(lambda Z: nn.CrossEntropyLoss(from_logits=True)(Z, y), Z)
        assert got[0] == expected[0]
        np.testing.assert_array_equal(got[1], expected[1])


def test_soft_label_rows_are_accepted():
    Y = np.array([[0.25, 0.75], [0.5, 0.5]])
    value, _ = grads_of(lambda Z: nn.CrossEntropyLoss(from_logits=True)(Z, Y), np.zeros((2, 2)))
    assert value == pytest.approx(np.log(2))


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss, Y", [(nn.MSELoss(), np.ones(4)), (nn.BCELoss(), np.ones(4)),
                                     (nn.CrossEntropyLoss(), np.ones((4, 2))),
                                     (nn.CrossEntropyLoss(), np.zeros(4, np.int64))])
def test_shape_mismatch_never_broadcasts(loss, Y):
    a2 = leaf(np.full((4, 1), 0.5)).sigmoid()
    with pytest.raises(ValueError,
                       match=r"prediction shape \(4, 1\) != target shape \((4,|4, 2)\)"):
        loss(a2, Y)


@pytest.mark.parametrize("loss", [nn.MSELoss(), nn.BCELoss(), nn.CrossEntropyLoss()])
def test_empty_batch_is_an_error(loss):
    with pytest.raises(ValueError, match=r"empty batch \(prediction shape \(0, 3\)\)"):
        loss(leaf(np.zeros((0, 3))), np.zeros((0, 3)))


@pytest.mark.parametrize("y, message", [
    ([0, 3, 1], r"class index 3 at position \(1,\) is out of range for K=3 classes \(valid 0..2\)"),
    ([0, 1, -1], r"class index -1 at position \(2,\) is out of range for K=3"),
    ([0.0, 1.5, 1.0], r"class index 1.5 at position \(1,\) is not an integer \(K=3 classes\)"),
    ([0.0, np.nan, 1.0], r"class index nan at position \(1,\) is not an integer"),
    ([[1, 0, 0], [0, 0, 0], [0, 1, 0]], r"target row \(1,\) sums to 0.0, expected 1 .*K=3"),
    ([[1, 0, 0], [0, 1, 1], [0, 1, 0]], r"target row \(1,\) sums to 2.0"),
    ([[1, 0, 0], [-1, 1, 1], [0, 1, 0]], r"target -1.0 at position \(1, 0\) is negative.*K=3"),
    (np.array(["a", "b", "c"]), r"class indices must be integers, got dtype <U1"),
])
def test_cross_entropy_rejects_bad_targets(y, message):
    with pytest.raises(ValueError, match=message):
        nn.CrossEntropyLoss(from_logits=True)(leaf(np.zeros((3, 3))), np.array(y))


def test_cross_entropy_rejects_probabilities_outside_unit_interval():
    with pytest.raises(ValueError, match=r"got 1.5 at position \(0, 0\).*from_logits=True"):
        nn.CrossEntropyLoss()(leaf([[1.5, -0.5]]), np.array([0]))


@pytest.mark.parametrize("Y, message", [
    ([[0.5], [1.5]], r"targets must lie in \[0, 1\]; got 1.5 at position \(1, 0\)"),
    ([[-0.1], [1.0]], r"got -0.1 at position \(0, 0\)"),
    ([[np.nan], [1.0]], r"got nan at position \(0, 0\)")])
def test_bce_rejects_targets_outside_unit_interval(Y, message):
    with pytest.raises(ValueError, match=message):
        nn.BCELoss()(leaf([[0.0], [1.0]]).sigmoid(), np.array(Y))


def test_bce_rejects_probabilities_outside_unit_interval():
    with pytest.raises(ValueError, match=r"predictions \(probabilities\) must lie in \[0, 1\]; "
                                         r"got 2.0"):
        nn.BCELoss()(leaf([[0.5], [2.0]]), np.ones((2, 1)))
