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
from tinygrad_mlp import nn, optim, models
from tinygrad_mlp import data, datasets
from tinygrad_mlp.gradcheck import GradcheckError, gradcheck
from tinygrad_mlp.io import load, load_model, save, save_model
from tinygrad_mlp.train import (Callback, EarlyStopping, History, LearningRateScheduler, TrainStep,
                                evaluate, fit, predict)

__version__ = "0.1.0"

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "set_default_dtype",
           "get_default_dtype", "manual_seed", "get_generator", "graph_size", "stack",
           "concatenate", "where", "maximum", "minimum", "ops", "nn", "optim", "models",
           "data", "datasets", "reference", "gradcheck", "GradcheckError", "viz", "blog", "save",
           "load", "save_model", "load_model", "export", "fer", "fit", "evaluate", "predict",
           "History", "Callback", "EarlyStopping", "LearningRateScheduler", "TrainStep",
           "from_keras"]

# Above the framework, imported on first use (`tm.fer`, `tm.export`, `tm.from_keras`, ...), so
# `import tinygrad_mlp` loads only the framework: the applications, teaching code and the
# optional extras they reach (OpenCV, matplotlib, onnx, torch, h5py, hypothesis) wait until asked.
# name → where it lives (the names stayed when the modules moved into interop/, teach/, apps/)
_LAZY_MODULES = {"viz": "viz", "testing": "testing", "interop": "interop", "teach": "teach",
                 "apps": "apps", "export": "interop.export", "reference": "teach.reference",
                 "blog": "teach.blog", "exercises": "teach.exercises", "fer": "apps.fer"}
_LAZY_NAMES = {"from_keras": "interop"}       # a name taken from a lazy module


def __getattr__(name: str):
    if name in _LAZY_MODULES or name in _LAZY_NAMES:
        import importlib
        where = _LAZY_NAMES[name] if name in _LAZY_NAMES else _LAZY_MODULES[name]
        module = importlib.import_module(f"tinygrad_mlp.{where}")
        return getattr(module, name) if name in _LAZY_NAMES else module
    raise AttributeError(f"module 'tinygrad_mlp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))

