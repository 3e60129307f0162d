"""Training: the blog's loop and what it needs, one concern per file.

loop.py       fit, evaluate, predict
prepare.py    fit's argument checks, the cast to the model's dtype, validation rows, one-hot
callbacks.py  History, Callback, EarlyStopping, LearningRateScheduler, the progress bar or lines
replay.py     TrainStep: one step recorded once per batch shape and replayed
"""

from tinygrad_mlp.train.callbacks import (Callback, EarlyStopping, History,
                                          LearningRateScheduler)
from tinygrad_mlp.train.loop import evaluate, fit, predict
from tinygrad_mlp.train.replay import TrainStep

__all__ = ["fit", "evaluate", "predict", "History", "Callback", "EarlyStopping",
           "LearningRateScheduler", "TrainStep"]
