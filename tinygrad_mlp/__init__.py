"""tinygrad_mlp: a numpy autograd micro framework grown from a blog post that derives an MLP by hand.

    import tinygrad_mlp as tm
    x = tm.Tensor([[1.0, 2.0]], requires_grad=True)
    (x.sigmoid() ** 2).sum().backward()
    x.grad
"""

from tinygrad_mlp.tensor import (Function, Tensor, concatenate, enable_grad, get_default_dtype,
                                 get_generator, graph_size, is_grad_enabled, manual_seed, maximum,
                                 minimum, no_grad, set_default_dtype, stack, where)
from tinygrad_mlp import ops
from tinygrad_mlp import nn, optim
from tinygrad_mlp import data, datasets
from tinygrad_mlp import reference
from tinygrad_mlp.gradcheck import GradcheckError, gradcheck
from tinygrad_mlp import viz, blog
from tinygrad_mlp.io import load, load_model, save, save_model
from tinygrad_mlp import export, fer
from tinygrad_mlp.train import (Callback, EarlyStopping, History, LearningRateScheduler, TrainStep,
                                evaluate, fit, predict)

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "set_default_dtype",
           "get_default_dtype", "manual_seed", "get_generator", "graph_size", "stack",
           "concatenate", "where", "maximum", "minimum", "ops", "nn", "optim",
           "data", "datasets", "reference", "gradcheck", "GradcheckError", "viz", "blog", "save",
           "load", "save_model", "load_model", "export", "fer", "fit", "evaluate", "predict",
           "History", "Callback", "EarlyStopping", "LearningRateScheduler", "TrainStep",
           "from_keras"]

_LAZY_MODULES = ("testing", "exercises", "interop")   # testing imports hypothesis (the `test` extra)


def __getattr__(name: str):
    if name == "from_keras":              # interop imports h5py only when a file is read, but
        from tinygrad_mlp.interop import from_keras   # `import tinygrad_mlp` stays lean
        return from_keras
    if name in _LAZY_MODULES:
        import importlib
        return importlib.import_module(f"tinygrad_mlp.{name}")
    raise AttributeError(f"module 'tinygrad_mlp' has no attribute {name!r}")
