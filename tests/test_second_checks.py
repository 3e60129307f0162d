"""Second, direct tests for behaviours a planted bug got past all but one test of (issue 19,
item 27): AvgPool's count of padded entries, GELU's tanh constant, fit keeping each X row with
its Y row when it shuffles, augment_images flipping left–right, and a stride that differs
between the two axes. Each reference is written out here with loops, independently of ops."""

import math

import numpy as np
import pytest

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim
from tinygrad_mlp.data import augment_images


def windows(x, kernel, stride, pads):
    """(i, j, window of the zero-padded x, window of the padded mask of real entries)."""
    (top, bottom), (left, right) = pads
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    mask = np.pad(np.ones_like(x), ((0, 0), (0, 0), (top, bottom), (left, right)))
    kh, kw = kernel
    for i in range((padded.shape[2] - kh) // stride[0] + 1):
        for j in range((padded.shape[3] - kw) // stride[1] + 1):
            rows = slice(i * stride[0], i * stride[0] + kh)
            columns = slice(j * stride[1], j * stride[1] + kw)
            yield i, j, padded[:, :, rows, columns], mask[:, :, rows, columns]


def pooled(x, kernel, stride, pads, how):
    out = {}
    for i, j, window, real in windows(x, kernel, stride, pads):
        if how == "max":                              # padding never wins (PyTorch's -inf)
            out[i, j] = np.where(real > 0, window, -np.inf).max(axis=(2, 3))
        elif how == "avg with padding":              # PyTorch's count_include_pad=True
            out[i, j] = window.sum(axis=(2, 3)) / (kernel[0] * kernel[1])
        else:                                         # Keras's "same": real entries only
            out[i, j] = window.sum(axis=(2, 3)) / real.sum(axis=(2, 3))
    rows, columns = max(i for i, _ in out) + 1, max(j for _, j in out) + 1
    return np.stack([np.stack([out[i, j] for j in range(columns)], -1) for i in range(rows)], -2)


# --- AvgPool: padded zeros count for an int padding, not for "same" -------------------------------

def test_avgpool_divides_by_the_whole_window_with_int_padding_and_by_the_real_entries_with_same():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 4))
    out = nn.AvgPool2d(3, stride=1, padding=1)(tm.Tensor(x)).data
    np.testing.assert_allclose(out, pooled(x, (3, 3), (1, 1), ((1, 1), (1, 1)),
                                           "avg with padding"), rtol=1e-12)
    same = nn.AvgPool2d(3, stride=1, padding="same")(tm.Tensor(x)).data
    np.testing.assert_allclose(same, pooled(x, (3, 3), (1, 1), ((1, 1), (1, 1)), "avg same"),
                               rtol=1e-12)
    assert not np.allclose(out[..., 0, 0], same[..., 0, 0])     # corners: 4 real of 9


def test_avgpool_backward_gives_each_entry_its_share_of_every_window_holding_it():
    x = tm.Tensor(np.random.default_rng(1).normal(size=(1, 1, 4, 4)), requires_grad=True)
    nn.AvgPool2d(3, stride=1, padding=1)(x).sum().backward()
    expected = np.zeros((1, 1, 6, 6))
    for i in range(4):
        for j in range(4):
            expected[:, :, i:i + 3, j:j + 3] += 1 / 9        # each window spreads 1 over 9
    np.testing.assert_allclose(x.grad, expected[:, :, 1:5, 1:5], rtol=1e-12)


# --- GELU's tanh approximation --------------------------------------------------------------------

def test_gelu_tanh_is_pytorchs_formula_and_its_derivative():
    x = np.linspace(-6, 6, 241)
    c = math.sqrt(2 / math.pi)
    expected = 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(nn.GELU("tanh")(tm.Tensor(x)).data, expected, rtol=1e-13,
                               atol=1e-15)
    t = tm.Tensor(x, requires_grad=True)
    nn.GELU("tanh")(t).sum().backward()
    inner = np.tanh(c * (x + 0.044715 * x ** 3))
    derivative = (0.5 * (1 + inner)
                  + 0.5 * x * (1 - inner ** 2) * c * (1 + 3 * 0.044715 * x ** 2))
    np.testing.assert_allclose(t.grad, derivative, rtol=1e-12, atol=1e-15)
    exact = nn.GELU()(tm.Tensor(x)).data                # the approximation is not the erf form
    assert 1e-5 < np.abs(exact - expected).max() < 1e-2


# --- fit keeps each X row with its own Y row when it shuffles -------------------------------------

@pytest.mark.parametrize("batch_size", [1, 3, None])
def test_fit_shuffles_x_and_y_together(batch_size):
    N = 12
    X = np.arange(N, dtype=np.float64)[:, None]          # the row's own index
    Y = 10.0 * X + 5                                      # a function of that index
    model = nn.Linear(1, 1, dtype=np.float64)
    pairs = []

    def loss(pred, Yb):
        seen = model_inputs.pop()
        pairs.append((seen[:, 0].copy(), np.asarray(Yb.data if isinstance(Yb, tm.Tensor)
                                                    else Yb)[:, 0].copy()))
        return ((pred - Yb) ** 2).mean()

    model_inputs = []
    model.register_forward_hook(lambda module, inputs, output: model_inputs.append(
        np.asarray(inputs[0].data if isinstance(inputs[0], tm.Tensor) else inputs[0])))
    tm.manual_seed(0)
    tm.fit(model, X, Y, loss, optim.SGD(model.parameters(), lr=1e-4), epochs=3,
           batch_size=batch_size, shuffle=True, replay=False, progress=False)
    training = pairs[1:]                                  # (the first is fit's own check)
    assert len(training) == 3 * (1 if batch_size is None else -(-N // batch_size))
    for rows, targets in training:
        np.testing.assert_array_equal(targets, 10 * rows + 5)
    order = np.concatenate([rows for rows, _ in training[:len(training) // 3]])
    assert sorted(order) == list(range(N))
    if batch_size is not None:
        assert list(order) != list(range(N))              # shuffled, yet still in pairs


# --- augment_images flips left–right (the last axis) ------------------------------------------

def test_augment_images_flips_columns_never_rows():
    X = np.arange(64 * 2 * 3 * 4, dtype=np.float32).reshape(64, 2, 3, 4)    # no symmetry
    out = augment_images(X, flip=True, generator=np.random.default_rng(0))
    flipped = [np.array_equal(o, x[:, :, ::-1]) for o, x in zip(out, X)]
    kept = [np.array_equal(o, x) for o, x in zip(out, X)]
    assert all(f != k for f, k in zip(flipped, kept))         # each image one or the other
    assert 10 < sum(flipped) < 54                             # about half are flipped
    assert not any(np.array_equal(o, x[:, ::-1, :]) for o, x in zip(out, X))


# --- a stride that differs between the axes -------------------------------------------------------

@pytest.mark.parametrize("stride", [(2, 1), (1, 3), (3, 2)])
def test_conv2d_with_a_different_stride_on_each_axis(stride):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 7, 8))
    conv = nn.Conv2d(3, 4, (3, 2), stride=stride, padding=1, dtype=np.float64)
    expected = {}
    for i, j, window, _ in windows(x, (3, 2), stride, ((1, 1), (1, 1))):
        expected[i, j] = np.einsum("nchw,ochw->no", window, conv.weight.data) + conv.bias.data
    rows, columns = max(i for i, _ in expected) + 1, max(j for _, j in expected) + 1
    reference = np.stack([np.stack([expected[i, j] for j in range(columns)], -1)
                          for i in range(rows)], -2)
    out = conv(tm.Tensor(x)).data
    assert out.shape == reference.shape == (2, 4, (7 + 2 - 3) // stride[0] + 1,
                                            (8 + 2 - 2) // stride[1] + 1)
    np.testing.assert_allclose(out, reference, rtol=1e-10, atol=1e-12)
    assert tm.gradcheck(lambda t: conv(t), tm.Tensor(x[:1], requires_grad=True), fast=True)


@pytest.mark.parametrize("layer, how", [(nn.MaxPool2d, "max"),
                                        (nn.AvgPool2d, "avg with padding")])
def test_pooling_with_a_different_stride_on_each_axis(layer, how):
    x = np.random.default_rng(3).normal(size=(2, 2, 7, 9))
    for stride in [(1, 2), (3, 1)]:
        out = layer((3, 2), stride=stride, padding=1)(tm.Tensor(x)).data
        np.testing.assert_allclose(out, pooled(x, (3, 2), stride, ((1, 1), (1, 1)), how),
                                   rtol=1e-12)
