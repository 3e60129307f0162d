"""Optimizers: the blog's update W ← W − α ∂J/∂W (SGD, with momentum) and Adam.

`step()` changes every parameter's array IN PLACE (`p.data` keeps its identity, so anything
holding it sees the new values), records no graph, skips parameters whose grad is None, and
keeps its state (momentum buffers, Adam moments) in the parameter's dtype. The formulas are
PyTorch's, so results can be compared one to one.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import numpy as np

from tinygrad_mlp._checks import finite_real
from tinygrad_mlp.tensor import Tensor


class Optimizer:
    """Holds a list of parameters (Tensors that require grad); subclasses define `step()`."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        if isinstance(params, Tensor) or not isinstance(params, Iterable):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors "
                            f"(e.g. model.parameters()), got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        seen: dict[int, int] = {}
        for index, param in enumerate(params):
            if not isinstance(param, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {index} is a "
                                f"{type(param).__name__}, not a Tensor")
            if not param.requires_grad:
                raise ValueError(f"{type(self).__name__}: parameter {index} "
                                 f"({param.name or 'unnamed'}, shape {param.shape}) does not "
                                 f"require grad, so it could never be updated")
            if id(param) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {index} "
                                 f"({param.name or 'unnamed'}) is the same Tensor as parameter "
                                 f"{seen[id(param)]}; pass each parameter once")
            seen[id(param)] = index
        self.params: list[Tensor] = params
        self.lr = lr
        self._work: list[np.ndarray | None] = [None] * len(params)      # scratch arrays, reused
        self._decayed: list[np.ndarray | None] = [None] * len(params)

    def _gradients(self, weight_decay: float) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(index, W, ∂J/∂W + weight_decay·W) for each parameter that has a gradient."""
        for index, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            if weight_decay:
                grad = self._decay(index, param.data, grad, weight_decay)
            yield index, param.data, grad

    def _decay(self, index: int, W: np.ndarray, grad: np.ndarray, weight_decay: float
               ) -> np.ndarray:
        """∂J/∂W + weight_decay·W, written into a reused array (L2 regularisation, as PyTorch)."""
        decayed = _scratch(self._decayed, index, W)
        np.multiply(W, weight_decay, out=decayed)
        decayed += grad
        return decayed

    @property
    def lr(self) -> float:
        """Learning rate α (positive, finite); may be changed between steps."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = finite_real("lr", value, type(self).__name__, 0.0, low_open=True)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (grad = None)."""
        for param in self.params:
            param.grad = None

    def step(self) -> None:
        raise NotImplementedError

    # --- state --------------------------------------------------------------------------------

    def _state_arrays(self) -> dict[str, list[np.ndarray | None]]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters and copies of the per-parameter buffers, by parameter index."""
        state: dict[str, Any] = {key: value for key, value in vars(self).items()
                                 if not key.startswith("_") and key != "params"}
        state["lr"] = self.lr
        for name, arrays in self._state_arrays().items():
            state[name] = [None if a is None else a.copy() for a in arrays]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict()` returned (checked first; nothing changes on error)."""
        buffers = self._state_arrays()
        for name, arrays in buffers.items():
            saved = state.get(name)
            if saved is None or len(saved) != len(self.params):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name!r} must list "
                                 f"{len(self.params)} entries")
            for index, (param, array) in enumerate(zip(self.params, saved)):
                if array is not None and np.shape(array) != param.shape:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: {name}[{index}] "
                                     f"has shape {np.shape(array)}, parameter has {param.shape}")
        self.lr = state.get("lr", self.lr)
        for key, value in state.items():
            if key not in buffers and key != "lr" and key in vars(self):
                setattr(self, key, list(value) if isinstance(value, list) else value)
        for name, arrays in buffers.items():
            arrays[:] = [None if a is None else np.array(a, dtype=p.dtype)
                         for p, a in zip(self.params, state[name])]


def _scratch(buffers: list[np.ndarray | None], index: int, like: np.ndarray) -> np.ndarray:
    """A reusable work array shaped like `like` (so step() allocates nothing after the first)."""
    array = buffers[index]
    if array is None or array.shape != like.shape or array.dtype != like.dtype:
        array = buffers[index] = np.empty_like(like)
    return array


class SGD(Optimizer):
    """Stochastic gradient descent: W ← W − lr·g, with PyTorch's momentum, Nesterov, weight decay.

        g = ∂J/∂W + weight_decay·W
        buf = g (first step), then buf = momentum·buf + g
        g = g + momentum·buf (nesterov) or buf (momentum > 0)
        W ← W − lr·g
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = finite_real("momentum", momentum, "SGD", 0.0)
        self.weight_decay = finite_real("weight_decay", weight_decay, "SGD", 0.0)
        if nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self._buffers: list[np.ndarray | None] = [None] * len(self.params)
        self._extra: list[np.ndarray | None] = [None] * len(self.params)

    def _state_arrays(self) -> dict[str, list[np.ndarray | None]]:
        return {"momentum_buffer": self._buffers}

    def step(self) -> None:
        lr, momentum, weight_decay = self._lr, self.momentum, self.weight_decay
        if not (momentum or weight_decay):
            self._plain_step(lr)
            return
        for index, W, grad in self._gradients(weight_decay):
            if momentum:
                buf = self._buffers[index]
                if buf is None:
                    buf = self._buffers[index] = np.array(grad, dtype=W.dtype)
                else:
                    buf *= momentum
                    buf += grad
                if not self.nesterov:
                    grad = buf
                else:                                   # W -= lr·(g + momentum·buf), in two steps
                    extra = _scratch(self._extra, index, W)
                    np.multiply(buf, lr * momentum, out=extra)
                    W -= extra
            work = _scratch(self._work, index, W)
            np.multiply(grad, lr, out=work)
            W -= work

    def _plain_step(self, lr: float) -> None:
        """W ← W − lr·g, the blog's update: two numpy calls per parameter, no allocation."""
        for index, (param, work) in enumerate(zip(self.params, self._work)):
            grad = param.grad
            if grad is None:
                continue
            W = param.data
            if work is None or work.shape != W.shape or work.dtype != W.dtype:
                work = _scratch(self._work, index, W)
            np.multiply(grad, lr, out=work)
            W -= work


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's formulas; weight_decay is L2 added to the gradient.

        g = ∂J/∂W + weight_decay·W;  m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²
        W ← W − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + eps)
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (finite_real("betas[0]", betas[0], "Adam", 0.0, 1.0),
                      finite_real("betas[1]", betas[1], "Adam", 0.0, 1.0))
        self.eps = finite_real("eps", eps, "Adam", 0.0)
        self.weight_decay = finite_real("weight_decay", weight_decay, "Adam", 0.0)
        n = len(self.params)
        self._m: list[np.ndarray | None] = [None] * n
        self._v: list[np.ndarray | None] = [None] * n
        self.steps: list[int] = [0] * n

    def _state_arrays(self) -> dict[str, list[np.ndarray | None]]:
        return {"exp_avg": self._m, "exp_avg_sq": self._v}

    def step(self) -> None:
        lr, (beta1, beta2), eps, weight_decay = self._lr, self.betas, self.eps, self.weight_decay
        for index, W, grad in self._gradients(weight_decay):
            m, v = self._m[index], self._v[index]
            if m is None or m.shape != W.shape:
                m = self._m[index] = np.zeros_like(W)
                v = self._v[index] = np.zeros_like(W)
            t = self.steps[index] = self.steps[index] + 1
            work = _scratch(self._work, index, W)
            m *= beta1
            np.multiply(grad, 1 - beta1, out=work)
            m += work
            v *= beta2
            np.multiply(grad, grad, out=work)
            work *= 1 - beta2
            v += work
            step_size = lr / (1 - beta1 ** t)
            np.sqrt(v, out=work)
            work /= math.sqrt(1 - beta2 ** t)
            work += eps
            np.divide(m, work, out=work)
            work *= step_size
            W -= work
