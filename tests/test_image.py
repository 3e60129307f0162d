"""Conv2d, MaxPool2d and AvgPool2d (ops and nn): finite differences and PyTorch over drawn
geometries (shapes, kernels, strides, paddings), the backward invariants, float32, errors."""

import math
import os

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


# --- groups, dilation, "same", adaptive pooling (the third round) --------------------------------

def tf_same(size, kernel, stride, dilation=1):
    """TF's "same", written out from its definition for the reference: the output has
    ceil(size / stride) entries; the padding they need is split with the odd one after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@st.composite
def grouped_conv_cases(draw):
    """x, weight, bias and options over groups (depthwise with a depth multiplier included),
    dilation, stride per axis and padding (ints, "valid", "same" with odd and even sizes)."""
    groups = draw(st.integers(1, 3))
    per_group_in, per_group_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid", (0, 0), (1, 2), (2, 1)]))
    pads = (0, 0) if isinstance(padding, str) else padding
    H, W = (draw(st.integers(max(1, (k - 1) * d + 1 - 2 * p), 8))
            for k, d, p in zip(kernel, dilation, pads))
    C = groups * per_group_in
    x = draw(arrays((draw(st.integers(1, 2)), C, H, W), min_value=-3, max_value=3))
    weight = draw(arrays((groups * per_group_out, per_group_in, *kernel), min_value=-3,
                         max_value=3))
    bias = draw(arrays((groups * per_group_out,), min_value=-3, max_value=3))
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def torch_conv(options, spatial):
    """PyTorch's conv2d with the same options; "same" with a stride (which PyTorch refuses) as
    an explicit F.pad by TF's rule first."""
    F = pytest.importorskip("torch.nn.functional")
    options = dict(options)
    if options["padding"] == "same" and options["stride"] != (1, 1):
        options["padding"] = 0
        return lambda x, w, b: F.conv2d(F.pad(x, _tf_pads(spatial, w.shape[2:], options)), w, b,
                                        **options)
    return lambda x, w, b: F.conv2d(x, w, b, **options)


def _tf_pads(spatial, kernel, options):
    (top, bottom), (left, right) = (tf_same(n, k, s, d) for n, k, s, d in
                                    zip(spatial, kernel, options["stride"], options["dilation"]))
    return (left, right, top, bottom)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@given(case=grouped_conv_cases())
def test_grouped_dilated_and_same_convolutions_equal_pytorch(case):
    x, weight, bias, options = case
    assert_same_as_torch(lambda x, w, b: ops.Conv2d.apply(x, w, b, **options),
                         torch_conv(options, x.shape[2:]), x, weight, bias)
    if options["padding"] == "same":
        assert ops.Conv2d.apply(x, weight, **options).shape[2:] == tuple(
            -(-n // s) for n, s in zip(x.shape[2:], options["stride"]))


@given(case=grouped_conv_cases())
def test_grouped_convolutions_without_bias_match_finite_differences(case):
    x, weight, _, options = case
    fn = lambda x, w: ops.Conv2d.apply(x, w, **options)               # noqa: E731
    assert_gradients_match(fn, x, weight)
    assert_backward_invariants(fn, x.astype(np.float32), weight.astype(np.float32))


@pytest.mark.parametrize("stride, kernel, size", [(2, 3, 7), (2, 3, 8), (2, 2, 7), (3, 4, 8),
                                                  ((2, 1), (3, 2), 6)])
def test_same_with_a_stride_pads_like_tensorflow(stride, kernel, size):
    """An independent reference for TF's "same" with a stride: XLA's SAME (which TF and Keras
    use), through jax.lax."""
    lax = pytest.importorskip("jax.lax", reason="jax gives TF's SAME padding as a reference")
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, size, size + 1)), rng.standard_normal((4, 3, *pair(kernel)))
    theirs = np.asarray(lax.conv_general_dilated(x.astype(np.float32), w.astype(np.float32),
                                                 pair(stride), "SAME"))
    ours = ops.Conv2d.apply(x, w, stride=stride, padding="same").data
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def pair(value):
    return value if isinstance(value, tuple) else (value, value)


@st.composite
def adaptive_cases(draw, distinct=False):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)),
             draw(st.integers(1, 9)))
    output_size = draw(st.one_of(st.integers(1, 5),
                                 st.tuples(st.one_of(st.none(), st.integers(1, 10)),
                                           st.integers(1, 10))))
    x = draw(distinct_values(shape) if distinct else arrays(shape, min_value=-3, max_value=3))
    return x, output_size


@given(case=adaptive_cases(distinct=True))
def test_adaptive_pools_equal_pytorch(case):
    F = pytest.importorskip("torch.nn.functional")
    x, output_size = case
    for op, theirs in [(ops.AdaptiveAvgPool2d, F.adaptive_avg_pool2d),
                       (ops.AdaptiveMaxPool2d, F.adaptive_max_pool2d)]:
        assert_same_as_torch(lambda x: op.apply(x, output_size=output_size),
                             lambda x: theirs(x, output_size), x)


@given(case=adaptive_cases(distinct=True))
def test_adaptive_pool_gradients_match_finite_differences(case):
    x, output_size = case
    for op in (ops.AdaptiveAvgPool2d, ops.AdaptiveMaxPool2d):
        fn = lambda x: op.apply(x, output_size=output_size)          # noqa: E731
        assert_gradients_match(fn, x)
        assert_backward_invariants(fn, x.astype(np.float32))


def test_adaptive_max_ties_and_overlapping_bins_like_pytorch():
    """Bins overlap when the size does not divide (7 into 3: rows 0–2, 2–4, 4–6); the shared
    row's gradient adds up, and among equal values the first takes it."""
    F = pytest.importorskip("torch.nn.functional")
    x = np.zeros((1, 2, 7, 5))
    x[0, 0, 2, :] = 1.0
    assert_same_as_torch(lambda x: ops.AdaptiveMaxPool2d.apply(x, output_size=(3, 2)),
                         lambda x: F.adaptive_max_pool2d(x, (3, 2)), x)


def keras_same_pool(x, kernel, stride, kind):
    """Keras's pooling with padding="same", one window at a time in plain numpy: the windows
    start at i·stride − before (TF's split), and only the real entries count."""
    N, C, H, W = x.shape
    (top, _), (left, _) = (tf_same(n, k, s) for n, k, s in zip((H, W), kernel, stride))
    OH, OW = -(-H // stride[0]), -(-W // stride[1])
    out = np.empty((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            r0, c0 = i * stride[0] - top, j * stride[1] - left
            window = x[:, :, max(r0, 0):r0 + kernel[0], max(c0, 0):c0 + kernel[1]]
            out[:, :, i, j] = window.max(axis=(2, 3)) if kind == "max" else window.mean(
                axis=(2, 3))
    return out


@st.composite
def same_pool_cases(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 8)),
             draw(st.integers(1, 8)))
    return draw(distinct_values(shape)), kernel, stride


@given(case=same_pool_cases())
def test_same_pooling_equals_keras_rule(case):
    x, kernel, stride = case
    for op, kind in [(ops.MaxPool2d, "max"), (ops.AvgPool2d, "avg")]:
        fn = lambda x: op.apply(x, kernel_size=kernel, stride=stride, padding="same")  # noqa
        np.testing.assert_allclose(fn(x).data, keras_same_pool(x, kernel, stride, kind),
                                   rtol=0, atol=1e-12)
        assert_gradients_match(fn, x)
        assert_backward_invariants(fn, x.astype(np.float32))


def test_same_pooling_matches_keras_itself():
    """The numpy reference above against Keras on one odd and one even size."""
    os.environ.setdefault("KERAS_BACKEND", "jax")          # (its default, TensorFlow, is absent)
    keras = pytest.importorskip("keras", reason="Keras's own pooling as a reference")
    rng = np.random.default_rng(2)
    for size, pool, kind in [(7, keras.layers.MaxPooling2D, "max"),
                             (8, keras.layers.AveragePooling2D, "avg")]:
        x = rng.standard_normal((2, 3, size, size + 1)).astype(np.float32)
        theirs = np.asarray(pool(3, strides=2, padding="same")(x.transpose(0, 2, 3, 1)))
        np.testing.assert_allclose(keras_same_pool(x, (3, 3), (2, 2), kind),
                                   theirs.transpose(0, 3, 1, 2), atol=1e-5)
        op = ops.MaxPool2d if kind == "max" else ops.AvgPool2d
        np.testing.assert_allclose(op.apply(x, kernel_size=3, stride=2, padding="same").data,
                                   theirs.transpose(0, 3, 1, 2), atol=1e-5)


def test_layers_take_one_unbatched_image_like_pytorch():
    torch = pytest.importorskip("torch")
    tm.set_default_dtype(np.float64)
    x = np.random.default_rng(0).standard_normal((4, 7, 6))
    layers = [(nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2), torch.nn.Conv2d),
              (nn.MaxPool2d(3, stride=2, padding=1), None), (nn.AvgPool2d(2), None),
              (nn.AdaptiveAvgPool2d((2, 3)), None), (nn.AdaptiveMaxPool2d(1), None),
              (nn.ZeroPad2d((1, 2, 0, 3)), None)]
    for layer, _ in layers:
        one = layer(tm.Tensor(x, requires_grad=True))
        np.testing.assert_array_equal(one.data, layer(x[None]).data[0])
        assert one.shape == layer(x[None]).shape[1:]
    assert nn.ZeroPad2d((1, 2, 0, 3))(x).shape == (4, 10, 9)


def test_conv2d_layer_with_groups_dilation_and_same_equals_torch_layer():
    torch = pytest.importorskip("torch")
    tm.set_default_dtype(np.float64)
    for options in [dict(groups=3, padding="same", dilation=2), dict(groups=6, padding="valid"),
                    dict(groups=1, padding=(0, 2), dilation=(1, 3), stride=(2, 1))]:
        ours = nn.Conv2d(6, 12, (3, 2), **options)
        theirs = torch.nn.Conv2d(6, 12, (3, 2), **options).double()
        assert ours.weight.shape == tuple(theirs.weight.shape)
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(ours.weight.data))
            theirs.bias.copy_(torch.tensor(ours.bias.data))
        x = np.random.default_rng(0).standard_normal((2, 6, 9, 8))
        np.testing.assert_allclose(ours(x).data, theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=0, atol=1e-12)


def test_grouped_conv2d_init_uses_the_fan_in_of_one_group():
    layer = nn.Conv2d(8, 16, 3, groups=8)
    assert layer.weight.shape == (16, 1, 3, 3)
    bound = 1 / math.sqrt(9)
    assert np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.8 * bound


def test_new_layers_round_trip_through_model_files(tmp_path):
    tm.set_default_dtype(np.float64)
    model = nn.Sequential(nn.ZeroPad2d((1, 0, 2, 1)), nn.Conv2d(2, 4, 3, padding="same"),
                          nn.Conv2d(4, 8, 3, stride=2, padding="same", groups=4, dilation=1,
                                    bias=False),
                          nn.Conv2d(8, 8, 2, dilation=(2, 1), padding="valid"),
                          nn.MaxPool2d(3, stride=2, padding="same"),
                          nn.AvgPool2d(2, stride=1, padding="same"),
                          nn.AdaptiveMaxPool2d((3, None)), nn.AdaptiveAvgPool2d(1))
    x = np.random.default_rng(0).standard_normal((2, 2, 11, 10))
    path = str(tmp_path / "model.npz")
    tm.save_model(model, path)
    again = tm.load_model(path)
    assert repr(again) == repr(model)
    assert again[2].groups == 4 and again[2].padding == "same" and again[3].dilation == (2, 1)
    np.testing.assert_array_equal(again(x).data, model(x).data)


@pytest.mark.parametrize("call, message", [
    (lambda: nn.Conv2d(6, 4, 3, groups=4),
     r"in_channels \(6\) and out_channels \(4\) must both be divisible by groups \(4\)"),
    (lambda: nn.Conv2d(6, 4, 3, padding="full"), "Conv2d: padding must be .* 'same'"),
    (lambda: nn.Conv2d(6, 6, 3, dilation=0), "Conv2d: dilation must be an int ≥ 1"),
    (lambda: nn.Conv2d(6, 6, 3, groups=0), "Conv2d: groups must be an int ≥ 1"),
    (lambda: nn.Conv2d(2, 2, 3, dilation=3)(np.ones((1, 2, 6, 6))),
     r"Conv2d\(2 -> 2\): kernel \(3, 3\) \(dilated to \(7, 7\)\) is larger than the padded "
     r"input \(6, 6\) of an input of shape \(1, 2, 6, 6\)"),
    (lambda: nn.Conv2d(2, 2, 3)(np.ones((2, 2))), r"Conv2d\(2 -> 2\) expected input of shape "
     r"\(N, C, H, W\) or \(C, H, W\), got \(2, 2\)"),
    (lambda: nn.MaxPool2d(3)(np.ones((1, 1, 2, 5))),
     r"MaxPool2d: kernel \(3, 3\) is larger than the padded input \(2, 5\)"),
    (lambda: ops.Conv2d.apply(np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3)), groups=3),
     r"conv2d: input of shape \(1, 4, 5, 5\).*weight of shape \(4, 2, 3, 3\).*groups=3"),
    (lambda: ops.Conv2d.apply(np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3)), groups=1),
     r"conv2d: input of shape \(1, 4, 5, 5\)"),
    (lambda: nn.AvgPool2d(2, padding="full"), "AvgPool2d: padding must be"),
    (lambda: nn.AdaptiveAvgPool2d(0), "AdaptiveAvgPool2d: output_size must be an int ≥ 1"),
    (lambda: nn.AdaptiveMaxPool2d((2, 2, 2)), "AdaptiveMaxPool2d: output_size"),
    (lambda: nn.AdaptiveMaxPool2d(2)(np.ones((1, 1, 0, 3))),
     r"AdaptiveMaxPool2d expected a non-empty image, got an input of shape \(1, 1, 0, 3\)"),
    (lambda: ops.AdaptiveAvgPool2d.apply(np.ones((3, 4)), output_size=1),
     r"adaptive_avg_pool2d: expected an input of shape \(N, C, H, W\)"),
    (lambda: nn.ZeroPad2d((1, 2, 3)), r"ZeroPad2d: padding must be an int ≥ 0 or \(left, "),
    (lambda: nn.ZeroPad2d(-1), "ZeroPad2d: padding"),
    (lambda: nn.ZeroPad2d(1)(np.ones((3, 3))), r"ZeroPad2d expected input of shape"),
])
def test_third_round_bad_arguments_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()

