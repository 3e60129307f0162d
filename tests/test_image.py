"""Conv2d, MaxPool2d and AvgPool2d (ops and nn): finite differences and PyTorch over drawn
geometries (shapes, kernels, strides, paddings), the backward invariants, float32, errors."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_mlp as tm
from tinygrad_mlp import nn, ops
from tinygrad_mlp.testing import arrays, assert_backward_invariants, assert_gradients_match


@st.composite
def geometries(draw, pool=False, max_side=6):
    """(input shape, kernel, stride, padding) that give at least one output pixel; for a pool
    the padding is at most half the kernel, as PyTorch requires."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2 if pool else 2)) for k in kernel)
    H, W = (draw(st.integers(max(1, k - 2 * p), max_side)) for k, p in zip(kernel, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W)
    return shape, kernel, stride, padding


@st.composite
def conv_cases(draw):
    shape, kernel, stride, padding = draw(geometries())
    out_channels = draw(st.integers(1, 3))
    x = draw(arrays(shape, min_value=-3, max_value=3))
    weight = draw(arrays((out_channels, shape[1], *kernel), min_value=-3, max_value=3))
    bias = draw(arrays((out_channels,), min_value=-3, max_value=3))
    return x, weight, bias, stride, padding


@st.composite
def distinct_values(draw, shape):
    """Values at least 0.1 apart, so no max ties and no max changes within gradcheck's eps."""
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).permutation(math.prod(shape)) * 0.1 - 1.0
    return values.reshape(shape)


@st.composite
def pool_cases(draw, distinct=False):
    shape, kernel, stride, padding = draw(geometries(pool=True))
    x = draw(distinct_values(shape) if distinct else arrays(shape, min_value=-3, max_value=3))
    return x, dict(kernel_size=kernel, stride=stride, padding=padding)


def conv(stride, padding):
    return lambda x, w, b: ops.Conv2d.apply(x, w, b, stride=stride, padding=padding)


# --- finite differences and invariants --------------------------------------------------------

@given(case=conv_cases())
def test_conv2d_gradients_match_finite_differences(case):
    x, weight, bias, stride, padding = case
    fn = conv(stride, padding)
    assert_gradients_match(fn, x, weight, bias)
    assert_backward_invariants(fn, x, weight, bias)
    assert_backward_invariants(fn, *(a.astype(np.float32) for a in (x, weight, bias)))


@pytest.mark.parametrize("op", [ops.MaxPool2d, ops.AvgPool2d])
@given(case=pool_cases(distinct=True))
def test_pool_gradients_match_finite_differences(op, case):
    x, options = case
    fn = lambda x: op.apply(x, **options)                       # noqa: E731
    assert_gradients_match(fn, x)
    assert_backward_invariants(fn, x)
    assert_backward_invariants(fn, x.astype(np.float32))


def test_conv2d_without_bias_and_with_constant_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5))
    assert_gradients_match(lambda x, w: ops.Conv2d.apply(x, w, padding=1), x,
                           rng.standard_normal((4, 3, 3, 3)))
    w = tm.Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    ops.Conv2d.apply(x, w, stride=2).sum().backward()      # x needs no gradient: none computed
    assert w.grad.shape == w.shape


# --- equal to PyTorch ---------------------------------------------------------------------------

def torch_grads(fn, *arrays, grad):
    torch = pytest.importorskip("torch")
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(torch.tensor(grad))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def ours_grads(fn, *arrays, grad):
    tensors = [tm.Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(grad)
    return out.data, [t.grad for t in tensors]


def assert_same_as_torch(ours, theirs, *arrays, seed=0):
    """Values and every input's gradient within 1e-10 (float64), for a random upstream grad."""
    with tm.no_grad():
        shape = ours(*arrays).shape
    grad = np.random.default_rng(seed).standard_normal(shape)
    out, grads = ours_grads(ours, *arrays, grad=grad)
    torch_out, torch_grads_ = torch_grads(theirs, *arrays, grad=grad)
    np.testing.assert_allclose(out, torch_out, rtol=0, atol=1e-10)
    for g, tg in zip(grads, torch_grads_):
        np.testing.assert_allclose(g, tg, rtol=0, atol=1e-10)


@given(case=conv_cases())
def test_conv2d_equals_pytorch(case):
    F = pytest.importorskip("torch.nn.functional")
    x, weight, bias, stride, padding = case
    assert_same_as_torch(conv(stride, padding),
                         lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
                         x, weight, bias)


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
@given(case=pool_cases())
def test_pools_equal_pytorch(name, case):
    F = pytest.importorskip("torch.nn.functional")
    x, options = case
    op = {"max_pool2d": ops.MaxPool2d, "avg_pool2d": ops.AvgPool2d}[name]
    assert_same_as_torch(lambda x: op.apply(x, **options),
                         lambda x: getattr(F, name)(x, **options), x)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum_like_pytorch():
    F = pytest.importorskip("torch.nn.functional")
    x = np.zeros((1, 2, 4, 4))
    x[0, 1, 1:3, 1:3] = 5.0                  # a window whose maxima are all equal
    options = dict(kernel_size=3, stride=1, padding=1)
    assert_same_as_torch(lambda x: ops.MaxPool2d.apply(x, **options),
                         lambda x: F.max_pool2d(x, **options), x)
    _, (grad,) = ours_grads(lambda x: ops.MaxPool2d.apply(x, kernel_size=2), x,
                            grad=np.ones((1, 2, 2, 2)))
    assert grad[0, 0, 0, 0] == 1 and grad[0, 0, 0, 1] == grad[0, 0, 1, 0] == 0


def test_max_pool_propagates_nan():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    out = ops.MaxPool2d.apply(x, kernel_size=2).data
    assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 1, 1])


def test_chained_convs_and_pools_equal_pytorch():
    """The channel-last memory an op returns is read correctly by the next op, both ways."""
    F = pytest.importorskip("torch.nn.functional")
    rng = np.random.default_rng(0)
    x, w1, w2 = (rng.standard_normal(s) for s in [(2, 3, 11, 9), (4, 3, 3, 3), (5, 4, 2, 2)])

    def ours(x, w1, w2):
        h = ops.MaxPool2d.apply(ops.Conv2d.apply(x, w1, padding=1).relu(), kernel_size=2)
        return ops.AvgPool2d.apply(ops.Conv2d.apply(h, w2, stride=2), kernel_size=2,
                                   stride=1).reshape(2, -1)

    def theirs(x, w1, w2):
        h = F.max_pool2d(F.relu(F.conv2d(x, w1, padding=1)), 2)
        return F.avg_pool2d(F.conv2d(h, w2, stride=2), 2, stride=1).reshape(2, -1)

    assert_same_as_torch(ours, theirs, x, w1, w2)


# --- dtypes and errors ------------------------------------------------------------------------

@pytest.mark.parametrize("op, options", [(ops.MaxPool2d, dict(kernel_size=2)),
                                         (ops.AvgPool2d, dict(kernel_size=3, padding=1))])
def test_float32_stays_float32(op, options):
    x = tm.Tensor(np.ones((2, 3, 6, 6), np.float32), requires_grad=True)
    w = tm.Tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    y = op.apply(ops.Conv2d.apply(x, w, padding=1), **options)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == np.float32


@pytest.mark.parametrize("call, message", [
    (lambda: ops.Conv2d.apply(np.ones((1, 2, 5, 5)), np.ones((3, 4, 3, 3))),
     r"input of shape \(1, 2, 5, 5\).*weight of shape \(3, 4, 3, 3\)"),
    (lambda: ops.Conv2d.apply(np.ones((2, 5, 5)), np.ones((3, 2, 3, 3))), "conv2d: input"),
    (lambda: ops.Conv2d.apply(np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), np.ones(2)),
     r"bias of shape \(2,\)"),
    (lambda: ops.Conv2d.apply(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))),
     r"kernel \(3, 3\) is larger than the padded input \(2, 2\)"),
    (lambda: ops.Conv2d.apply(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=0),
     "conv2d: stride must be an int ≥ 1"),
    (lambda: ops.Conv2d.apply(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=(1,)),
     "conv2d: padding"),
    (lambda: ops.MaxPool2d.apply(np.ones((1, 1, 5, 5)), kernel_size=2, padding=2),
     r"max_pool2d: padding \(2, 2\) must be at most half the kernel size \(2, 2\)"),
    (lambda: ops.AvgPool2d.apply(np.ones((1, 5, 5)), kernel_size=2), r"\(N, C, H, W\)"),
    (lambda: nn.Conv2d(3, 4, 0), "Conv2d: kernel_size must be an int ≥ 1"),
    (lambda: nn.Conv2d(3, 4, 3, stride=True), "Conv2d: stride"),
    (lambda: nn.MaxPool2d(3, padding=2), "MaxPool2d: padding"),
    (lambda: nn.Conv2d(3, 4, 3)(np.ones((1, 1, 5, 5))),
     r"Conv2d\(3 -> 4\) expected input of shape \(N, 3, H, W\), got \(1, 1, 5, 5\)"),
])
def test_bad_arguments_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- layers -------------------------------------------------------------------------------------

def test_conv2d_layer_shapes_and_pytorch_init():
    tm.manual_seed(0)
    layer = nn.Conv2d(3, 8, (3, 5), stride=2, padding=[1, 2])
    assert layer.weight.shape == (8, 3, 3, 5) and layer.bias.shape == (8,)
    assert (layer.kernel_size, layer.stride, layer.padding) == ((3, 5), (2, 2), (1, 2))
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    bound = 1 / math.sqrt(3 * 3 * 5)                      # PyTorch: 1/√fan_in for both
    for p in (layer.weight, layer.bias):
        assert np.abs(p.data).max() <= bound and p.dtype == np.float32
    assert np.abs(layer.weight.data).max() > 0.9 * bound     # uniform over the whole range
    assert abs(layer.weight.data.std() - bound / math.sqrt(3)) < 0.1 * bound
    assert layer(np.ones((2, 3, 9, 9), np.float32)).shape == (2, 8, 5, 5)
    assert nn.Conv2d(3, 8, 3, bias=False).bias is None
    tm.manual_seed(0)
    again = nn.Conv2d(3, 8, (3, 5), stride=2, padding=[1, 2])
    np.testing.assert_array_equal(again.weight.data, layer.weight.data)


def test_conv2d_layer_equals_torch_layer_with_the_same_weights():
    torch = pytest.importorskip("torch")
    tm.set_default_dtype(np.float64)
    ours = nn.Conv2d(2, 3, 3, stride=(1, 2), padding=1)
    theirs = torch.nn.Conv2d(2, 3, 3, stride=(1, 2), padding=1).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        theirs.bias.copy_(torch.tensor(ours.bias.data))
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 8))
    np.testing.assert_allclose(ours(x).data, theirs(torch.tensor(x)).detach().numpy(),
                               rtol=0, atol=1e-12)


def test_pool_layers_default_stride_is_the_kernel():
    x = np.arange(2 * 1 * 6 * 6, dtype=np.float64).reshape(2, 1, 6, 6)
    assert nn.MaxPool2d(2)(x).shape == (2, 1, 3, 3)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).data[0, 0, 0], [7, 9, 11])
    np.testing.assert_allclose(nn.AvgPool2d(3, stride=1)(x).data[0, 0, 0, :2], [7, 8])
    assert nn.MaxPool2d(3, stride=1, padding=1).stride == (1, 1)


def test_a_small_cnn_learns_with_fit():
    """Two classes told apart by where a bright bar is: a conv net learns it in a few epochs."""
    rng = np.random.default_rng(0)
    X = rng.random((64, 1, 8, 8)).astype(np.float32) * 0.2
    y = np.arange(64) % 2
    X[y == 0, 0, 2, :] += 1.0
    X[y == 1, 0, :, 5] += 1.0
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.AvgPool2d(4))
    head = nn.Sequential(model, _Flatten(), nn.Linear(4, 2), nn.Softmax())
    history = tm.fit(head, X, y, loss=nn.CrossEntropyLoss(),
                     optimizer=tm.optim.Adam(head.parameters(), lr=0.05), epochs=15,
                     batch_size=16, progress=False)
    assert history.history["accuracy"][-1] == 1.0
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


class _Flatten(nn.Module):
    def forward(self, X):
        return X.reshape(len(X.data), -1)


# --- augmentation -------------------------------------------------------------------------------

def test_augment_images_flips_and_shifts_each_image_with_zeros_coming_in():
    X = np.arange(2 * 1 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4) + 1
    original = X.copy()
    tm.manual_seed(0)
    seen = set()
    for _ in range(40):
        out = tm.data.augment_images(X, flip=True, shift=1)
        assert out.shape == X.shape and out.dtype == X.dtype
        for image, source in zip(out[:, 0], X[:, 0]):
            matches = [(f, dy, dx) for f in (False, True) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                       if np.array_equal(image, _moved(source[:, ::-1] if f else source, dy, dx))]
            assert matches, image                 # exactly a flip and a whole-pixel move
            seen.update(matches)
    assert len(seen) == 18                        # every flip × shift occurs
    np.testing.assert_array_equal(X, original)
    tm.manual_seed(3)
    a = tm.data.augment_images(X, flip=True, shift=2)
    tm.manual_seed(3)
    np.testing.assert_array_equal(a, tm.data.augment_images(X, flip=True, shift=2))
    np.testing.assert_array_equal(tm.data.augment_images(X), X)     # off by default


def _moved(image, dy, dx):
    """image moved down dy and right dx pixels, zeros coming in."""
    H, W = image.shape
    out = np.zeros_like(image)
    out[max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        image[max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


def test_augment_images_errors():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        tm.data.augment_images(np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match="shift must be an int >= 0"):
        tm.data.augment_images(np.ones((2, 1, 8, 8)), shift=-1)


def test_fit_augments_each_training_batch():
    seen = []

    def augment(Xb):
        seen.append(Xb.copy())
        return Xb + 1
    model = nn.Sequential(nn.Linear(2, 2), nn.Softmax())
    X, y = np.zeros((8, 2), np.float32), np.arange(8) % 2
    tm.fit(model, X, y, nn.CrossEntropyLoss(), tm.optim.SGD(model.parameters(), lr=0.1),
           epochs=2, batch_size=4, progress=False, augment=augment)
    assert len(seen) == 4 and all(b.shape == (4, 2) for b in seen)
    with pytest.raises(TypeError, match="augment must be a function"):
        tm.fit(model, X, y, nn.CrossEntropyLoss(), tm.optim.SGD(model.parameters(), lr=0.1),
               augment=3)


# --- tinygrad-mlp train --model cnn ----------------------------------------------------------------

def test_train_model_cnn_saves_a_model_file_that_rebuilds_the_network(tmp_path, capsys):
    from tinygrad_mlp.cli import main
    path = str(tmp_path / "cnn.npz")
    assert main(["train", "--model", "cnn", "--epochs", "1", "--save", path, "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    model = tm.load_model(path)
    assert isinstance(model[0], nn.Conv2d) and model[0].weight.shape == (32, 1, 3, 3)
    assert tm.predict(model.eval(), np.zeros((3, 1, 8, 8), np.float32)).shape == (3, 10)


@pytest.mark.parametrize("argv, message", [
    (["--model", "cnn", "--loss", "mse"], "--model cnn trains with --loss ce"),
    (["--augment"], "--augment applies to --model cnn"),
])
def test_train_model_cnn_usage_errors(argv, message, capsys):
    from tinygrad_mlp.cli import main
    assert main(["train", *argv]) == 2
    assert message in capsys.readouterr().err
