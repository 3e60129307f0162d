"""Optimizers with PyTorch's parameter groups and state dicts, and learning-rate schedules.

    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    # each epoch: the steps (opt.zero_grad(); J.backward(); opt.step()), then sched.step()
"""

from tinygrad_mlp.optim import lr_scheduler
from tinygrad_mlp.optim.optimizer import Optimizer
from tinygrad_mlp.optim.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
