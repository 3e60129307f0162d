"""Does a network with BatchNorm and Dropout train through `fit` as well as the plain one?

    python examples/regularised_digits.py            # 5 seeds, about a minute

On the bundled digits (X / 16, a stratified 25 % held out, one split and one initialisation per
seed) it trains each network with `tm.fit` on mini-batches of 16 and prints the held-out
accuracy of each seed and the median:

    plain        64 → 64 sigmoid → 10 softmax, SGD lr 0.5 momentum 0.9, 30 epochs:
                 `tinygrad-mlp train`'s default network and settings
    plain-60     the same for 60 epochs
    relu         64 → 256 relu → 10 softmax, SGD lr 0.05 momentum 0.9 cosine-annealed to 0 over
                 60 epochs
    regularised  the relu network with BatchNorm1d(256) before the ReLU and Dropout(0.5) after
"""

from __future__ import annotations

import tinygrad_mlp as tm
from tinygrad_mlp import nn, optim
from tinygrad_mlp.optim import lr_scheduler

from seeds import compare      # examples/seeds.py: the table both comparisons print

NETWORKS = ("plain", "plain-60", "relu", "regularised")


def network(kind: str) -> tuple[nn.Module, optim.Optimizer, list[tm.Callback], int]:
    """The model, its optimizer, the fit callbacks and the number of epochs."""
    if kind.startswith("plain"):
        model = nn.Sequential(nn.Linear(64, 64), nn.Sigmoid(), nn.Linear(64, 10), nn.Softmax())
        return model, optim.SGD(model.parameters(), lr=0.5, momentum=0.9), [], \
            60 if kind == "plain-60" else 30
    if kind == "regularised":
        hidden = [nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5)]
    else:
        hidden = [nn.Linear(64, 256), nn.ReLU()]
    model = nn.Sequential(*hidden, nn.Linear(256, 10), nn.Softmax())
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = lr_scheduler.CosineAnnealingLR(opt, T_max=60)
    return model, opt, [tm.LearningRateScheduler(schedule)], 60


def held_out_accuracy(kind: str, seed: int) -> float:
    X, y = tm.datasets.load_digits()
    X_train, X_test, y_train, y_test = tm.datasets.train_test_split(X / 16, y, test_size=0.25,
                                                                    seed=seed)
    tm.manual_seed(seed)
    model, opt, callbacks, epochs = network(kind)
    tm.fit(model, X_train, y_train, nn.CrossEntropyLoss(), opt, epochs=epochs, batch_size=16,
           callbacks=callbacks, progress=False)
    return tm.evaluate(model, X_test, y_test, nn.CrossEntropyLoss())["accuracy"]


def main() -> None:
    compare(__doc__.splitlines()[0], NETWORKS, held_out_accuracy)


if __name__ == "__main__":
    main()
