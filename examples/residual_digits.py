"""Does a small residual network, built with the functional API, beat the plain network?

    python examples/residual_digits.py            # 5 seeds, a few minutes

On the bundled digits as 1×8×8 images (a stratified 25 % held out, one split and one
initialisation per seed) it trains both networks with `tm.fit` the same way (Adam lr 0.01,
mini-batches of 32, 15 epochs) and prints the held-out accuracy of each seed and the median:

    plain     64 → 64 sigmoid → 10 softmax, the blog's network, on the pixels / 16
    residual  Rescaling(1/16) → conv 3×3 (16) → BatchNorm → ReLU → a residual block (two
              3×3 convs with BatchNorm, added to its input) → 2×2 max pooling → Linear → softmax
"""

from __future__ import annotations

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim

from seeds import compare      # examples/seeds.py: the table both comparisons print

NETWORKS = ("plain", "residual")


def conv_bn(channels: int, x: nn.Module) -> nn.Module:
    """A 3×3 convolution keeping the size (padding 1), then BatchNorm."""
    return nn.BatchNorm2d(channels)(nn.Conv2d(channels, channels, 3, padding=1)(x))


def residual() -> nn.Model:
    image = nn.Input((1, 8, 8), name="image")
    x = nn.Rescaling(1 / 16)(image)
    x = nn.ReLU()(nn.BatchNorm2d(16)(nn.Conv2d(1, 16, 3, padding=1)(x)))
    y = conv_bn(16, nn.ReLU()(conv_bn(16, x)))
    x = nn.ReLU()(nn.Add()([x, y]))                      # the skip connection
    x = nn.Flatten()(nn.MaxPool2d(2)(x))                 # (None, 16 · 4 · 4)
    return nn.Model(image, nn.Softmax()(nn.Linear(256, 10)(x)), name="residual")


def plain() -> nn.Model:
    image = nn.Input((1, 8, 8), name="image")
    x = nn.Flatten()(nn.Rescaling(1 / 16)(image))
    x = nn.Sigmoid()(nn.Linear(64, 64)(x))
    return nn.Model(image, nn.Softmax()(nn.Linear(64, 10)(x)), name="plain")


def held_out_accuracy(kind: str, seed: int) -> float:
    X, y = tm.datasets.load_digits()
    X_train, X_test, y_train, y_test = tm.datasets.train_test_split(
        X.reshape(-1, 1, 8, 8), y, test_size=0.25, seed=seed)
    tm.manual_seed(seed)
    model = residual() if kind == "residual" else plain()
    model.compile(optim.Adam(model.parameters(), lr=0.01), nn.CrossEntropyLoss())
    model.fit(X_train, y_train, epochs=15, batch_size=32, progress=False)
    return model.evaluate(X_test, y_test)["accuracy"]


def main() -> None:
    compare(__doc__.splitlines()[0], NETWORKS, held_out_accuracy)


if __name__ == "__main__":
    main()
