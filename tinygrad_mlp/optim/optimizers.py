"""The optimizers: the blog's update W ← W − α ∂J/∂W (SGD) and its adaptive descendants.

`step()` changes every parameter's array IN PLACE (`p.data` keeps its identity, so anything
holding it sees the new values), records no graph, skips parameters whose grad is None, and
keeps its state (momentum buffers, moments) in the parameter's dtype. The formulas are
PyTorch's (written out in each docstring), so results can be compared one to one; each class
takes the hyper-parameters PyTorch's does, per param group.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import numpy as np

from tinygrad_mlp.optim.optimizer import Optimizer, flag, learning_rate, non_negative, pair, real
from tinygrad_mlp.tensor import Tensor, increment_version

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def _decayed(grad: np.ndarray, W: np.ndarray, weight_decay: float) -> np.ndarray:
    """∂J/∂W + weight_decay·W (L2 regularisation added to the gradient, as PyTorch)."""
    return grad + weight_decay * W if weight_decay else grad


def _updates(optimizer: Optimizer, group: dict[str, Any], l2: bool = True
             ) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, Any], np.ndarray]]:
    """(W, g, state, work) for each parameter of `group` that has a gradient: its array, its
    gradient (plus L2 decay when `l2`), its buffers and a scratch array, for an update in place."""
    weight_decay = group["weight_decay"] if l2 else 0.0
    updated = [param for param in group["params"] if param.grad is not None]
    increment_version(*updated)                  # W changes in place: old graphs are stale
    for param in updated:
        W = param.data
        yield (W, _decayed(param.grad, W, weight_decay), optimizer.state_of(param, group),
               optimizer.scratch(param))


class SGD(Optimizer):
    """Stochastic gradient descent: W ← W − lr·g, with PyTorch's momentum, Nesterov, weight decay.

        g = ∂J/∂W + weight_decay·W
        buf = g (first step), then buf = momentum·buf + (1 − dampening)·g
        g = g + momentum·buf (nesterov) or buf (momentum > 0)
        W ← W − lr·g

    One step of the blog's update on J = Σ w², whose gradient is 2w:

        >>> import tinygrad_mlp as tm
        >>> w = tm.Tensor([1.0, -2.0], requires_grad=True)
        >>> opt = SGD([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> w.data
        array([ 0.8, -1.6], dtype=float32)
    """

    checks = {"lr": learning_rate, "momentum": non_negative, "dampening": real(0.0, 1.0),
              "weight_decay": non_negative, "nesterov": flag}

    def __init__(self, params: Params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def check_combination(self, group: dict[str, Any]) -> None:
        if group.get("nesterov") and (group.get("momentum", 0) == 0
                                      or group.get("dampening", 0) != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening 0")

    def state_keys(self, group: dict[str, Any]) -> set[str]:
        return {"momentum_buffer"} if group["momentum"] else set()

    def step(self) -> None:
        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            if not (momentum or weight_decay):
                self._plain_step(group["params"], lr)
                continue
            damped, nesterov = 1 - group["dampening"], group["nesterov"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                increment_version(param)
                W = param.data
                grad = _decayed(param.grad, W, weight_decay)
                if momentum:
                    state = self._states.get(id(param))
                    if state is None:
                        buf = grad.astype(W.dtype)       # a copy, where W lives
                        self._states[id(param)] = {"momentum_buffer": buf}
                    else:
                        buf = state["momentum_buffer"]
                        buf *= momentum
                        buf += grad if damped == 1 else damped * grad
                    grad = grad + momentum * buf if nesterov else buf
                work = self.scratch(param)
                np.multiply(grad, lr, out=work)
                W -= work

    def _plain_step(self, params: list[Tensor], lr: float) -> None:
        """W ← W − lr·g, the blog's update: two numpy calls per parameter, no allocation."""
        works = self._work
        updated = [param for param in params if param.grad is not None]
        increment_version(*updated)              # one bump for the step, not one per parameter
        for param in updated:
            grad = param.grad
            W, work = param.data, works.get(id(param))
            if work is None or work.shape != W.shape or work.dtype != W.dtype:
                work = self.scratch(param)
            np.multiply(grad, lr, out=work)
            W -= work


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's formulas; weight_decay is L2 added to the gradient
    (AdamW decouples it). With `amsgrad` the denominator uses the largest v seen so far.

        g = ∂J/∂W + weight_decay·W;  m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²
        W ← W − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + eps)
    """

    checks = {"lr": learning_rate, "betas": pair(0.0, 1.0), "eps": non_negative,
              "weight_decay": non_negative, "amsgrad": flag}
    decoupled = False                     # AdamW: W ← W·(1 − lr·weight_decay) before the step

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def state_keys(self, group: dict[str, Any]) -> set[str]:
        keys = {"step", "exp_avg", "exp_avg_sq"}
        return keys | {"max_exp_avg_sq"} if group["amsgrad"] else keys

    def initial_state(self, W: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": 0, "exp_avg": np.zeros_like(W), "exp_avg_sq": np.zeros_like(W)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(W)
        return state

    def step(self) -> None:
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
            for W, grad, state, work in _updates(self, group, l2=not self.decoupled):
                if self.decoupled:
                    W *= 1 - lr * weight_decay
                t = state["step"] = state["step"] + 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m *= beta1
                np.multiply(grad, 1 - beta1, out=work)
                m += work
                v *= beta2
                np.multiply(grad, grad, out=work)
                work *= 1 - beta2
                v += work
                if amsgrad:
                    v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                np.sqrt(v, out=work)
                work /= math.sqrt(1 - beta2 ** t)
                work += eps
                np.divide(m, work, out=work)
                work *= lr / (1 - beta1 ** t)
                W -= work


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as PyTorch's AdamW:

        W ← W·(1 − lr·weight_decay), then Adam's step on ∂J/∂W alone.
    """

    decoupled = True

    def __init__(self, params: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e) with PyTorch's formulas:

        g = ∂J/∂W + weight_decay·W;  v = α·v + (1 − α)·g²
        centered: ḡ = α·ḡ + (1 − α)·g and v̂ = v − ḡ², else v̂ = v
        momentum > 0: buf = momentum·buf + g / (√v̂ + eps), W ← W − lr·buf
        else:         W ← W − lr · g / (√v̂ + eps)
    """

    checks = {"lr": learning_rate, "alpha": real(0.0, 1.0),
              "eps": non_negative, "weight_decay": non_negative, "momentum": non_negative,
              "centered": flag}

    def __init__(self, params: Params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def state_keys(self, group: dict[str, Any]) -> set[str]:
        keys = {"step", "square_avg"}
        if group["momentum"]:
            keys.add("momentum_buffer")
        if group["centered"]:
            keys.add("grad_avg")
        return keys

    def initial_state(self, W: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        return {key: 0 if key == "step" else np.zeros_like(W) for key in self.state_keys(group)}

    def step(self) -> None:
        for group in self.param_groups:
            lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
            centered = group["centered"]
            for W, grad, state, work in _updates(self, group):
                state["step"] += 1
                v = state["square_avg"]
                v *= alpha
                np.multiply(grad, grad, out=work)
                work *= 1 - alpha
                v += work
                if centered:
                    mean = state["grad_avg"]
                    mean *= alpha
                    np.multiply(grad, 1 - alpha, out=work)
                    mean += work
                    np.multiply(mean, mean, out=work)
                    np.subtract(v, work, out=work)
                    np.sqrt(work, out=work)
                else:
                    np.sqrt(v, out=work)
                work += eps
                np.divide(grad, work, out=work)
                if momentum:
                    buf = state["momentum_buffer"]
                    buf *= momentum
                    buf += work
                    np.multiply(buf, lr, out=work)
                else:
                    work *= lr
                W -= work


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011) with PyTorch's formulas:

        g = ∂J/∂W + weight_decay·W;  sum = sum + g²   (sum starts at initial_accumulator_value)
        W ← W − lr / (1 + (t − 1)·lr_decay) · g / (√sum + eps)
    """

    checks = {"lr": learning_rate, "lr_decay": non_negative, "weight_decay": non_negative,
              "initial_accumulator_value": non_negative, "eps": non_negative}

    def __init__(self, params: Params, lr: float = 0.01, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def state_keys(self, group: dict[str, Any]) -> set[str]:
        return {"step", "sum"}

    def initial_state(self, W: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": 0, "sum": np.full_like(W, group["initial_accumulator_value"])}

    def step(self) -> None:
        for group in self.param_groups:
            lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
            for W, grad, state, work in _updates(self, group):
                t = state["step"] = state["step"] + 1
                total = state["sum"]
                np.multiply(grad, grad, out=work)
                total += work
                np.sqrt(total, out=work)
                work += eps
                np.divide(grad, work, out=work)
                work *= lr / (1 + (t - 1) * lr_decay)
                W -= work
