"""Training: the blog's loop and what it needs, one concern per file.

loop.py       fit, evaluate, predict
prepare.py    fit's argument checks, the cast to the model's dtype, validation rows, one-hot
callbacks.py  History, Callback, EarlyStopping, LearningRateScheduler, the progress bar or lines
replay.py     TrainStep: one step recorded once per batch shape and replayed
compile.py    model.compile's optimizer and loss (Keras's names too)

Importing this package connects nn's Keras verbs (model.fit, ...) to these functions.
"""

from tinygrad_mlp.nn.verbs import connect

from tinygrad_mlp.train.callbacks import (Callback, EarlyStopping, History,
                                          LearningRateScheduler)
from tinygrad_mlp.train.loop import evaluate, fit, predict
from tinygrad_mlp.train.compile import compile_model
from tinygrad_mlp.train.replay import TrainStep

connect(compile=compile_model, fit=fit, evaluate=evaluate, predict=predict)

__all__ = ["fit", "evaluate", "predict", "History", "Callback", "EarlyStopping",
           "LearningRateScheduler", "TrainStep"]
