"""Optimizer: parameter groups, per-parameter state and its state dict, in PyTorch's format.

    opt = optim.SGD([{"params": model[0].parameters(), "lr": 0.1},
                     {"params": model[2].parameters()}], lr=0.01, momentum=0.9)
    opt.param_groups[1]["lr"]          # 0.01: a group takes the defaults it does not set
    opt.lr = 0.05                      # reads and writes group 0's learning rate

Every hyper-parameter is checked where it comes in (the constructor, `add_param_group`, the
`lr` setter, `load_state_dict`), before anything changes; `step()` trusts `param_groups`
(a schedule writes `group["lr"]` directly, as in PyTorch).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from tinygrad_mlp._checks import choice, finite_real, is_real
from tinygrad_mlp.backend import asarray
from tinygrad_mlp.tensor import Tensor

__all__ = ["Optimizer"]


# --- hyper-parameter checks: each takes (owner, name, value) and returns the value to keep -------

Check = Callable[[str, str, Any], Any]


def real(low: float = 0.0, high: float = math.inf, low_open: bool = False) -> Check:
    """A check for a finite real number with low <= value < high (returned as a float)."""
    return lambda owner, name, value: finite_real(name, value, owner, low, high, low_open)


def flag(owner: str, name: str, value: Any) -> bool:
    """A check for True or False (not "yes", not 1)."""
    return choice(name, value, (True, False), owner)


def pair(low: float, high: float) -> Check:
    """A check for two numbers in [low, high), e.g. Adam's betas."""
    def check(owner: str, name: str, value: Any) -> tuple[float, float]:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(f"{owner}: {name} must be a pair, got {value!r}")
        return (finite_real(f"{name}[0]", value[0], owner, low, high),
                finite_real(f"{name}[1]", value[1], owner, low, high))
    return check


learning_rate = real(0.0, low_open=True)
learning_rate_loaded = real(0.0)         # a saved schedule may have reached exactly 0
non_negative = real(0.0)


class Optimizer:
    """Base class: holds `param_groups` and `state`; subclasses define `step()`.

    `params` is an iterable of Tensors (one group), or PyTorch's list of dicts, each with
    "params" and any hyper-parameters that group overrides. `param_groups` is that list of
    dicts with every default filled in; `state` maps each parameter's index (its position
    across the groups, as in `state_dict()`) to its buffers, created at its first update.
    Subclasses set `checks` ({hyper-parameter: check}) and `state_keys(group)`.
    """

    checks: dict[str, Check] = {"lr": learning_rate}

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]],
                 defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(params, (Tensor, Mapping)) or not isinstance(params, Iterable):
            raise TypeError(f"{name}: params must be an iterable of Tensors (e.g. "
                            f"model.parameters()) or a list of dicts, got "
                            f"{type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError(f"{name} got an empty parameter list")
        self.defaults = self._checked(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self._states: dict[int, dict[str, Any]] = {}      # id(param) -> its buffers
        self._work: dict[int, np.ndarray] = {}            # id(param) -> a reused scratch array
        groups = params if isinstance(params[0], Mapping) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    # --- groups ---------------------------------------------------------------------------------

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group {"params": Tensors, hyper-parameter: value, …}; the rest from defaults."""
        name = type(self).__name__
        index = len(self.param_groups)
        if not isinstance(group, Mapping) or "params" not in group:
            raise TypeError(f"{name}: param group {index} must be a dict with a 'params' "
                            f"entry, got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p): i for i, p in enumerate(self._all_params())}
        for position, param in enumerate(params):
            where = f"parameter {position}" + (f" of group {index}" if index else "")
            if not isinstance(param, Tensor):
                raise TypeError(f"{name}: {where} is a {type(param).__name__}, not a Tensor")
            if not param.requires_grad:
                raise ValueError(f"{name}: {where} ({param.name or 'unnamed'}, shape "
                                 f"{param.shape}) does not require grad, so it could never "
                                 f"be updated")
            if id(param) in seen:
                raise ValueError(f"{name}: {where} ({param.name or 'unnamed'}) is the same "
                                 f"Tensor as parameter {seen[id(param)]}; pass each parameter "
                                 f"once")
            seen[id(param)] = position
        if not params:
            raise ValueError(f"{name}: param group {index} has an empty parameter list")
        settings = {key: value for key, value in group.items() if key != "params"}
        merged = self._checked({**self.defaults, **settings})
        self.param_groups.append({"params": params, **merged})

    def _checked(self, settings: Mapping[str, Any], loading: bool = False) -> dict[str, Any]:
        """`settings` with every known hyper-parameter checked (unknown keys are kept, as
        PyTorch keeps e.g. a group's "name"); raises before anything is stored."""
        name = type(self).__name__
        checked = dict(settings)
        for key, check in self.checks.items():
            if key in checked:
                if loading and check is learning_rate:
                    check = learning_rate_loaded
                checked[key] = check(name, key, checked[key])
        self.check_combination(checked)
        return checked

    def check_combination(self, group: dict[str, Any]) -> None:
        """Raise if the group's hyper-parameters do not go together (SGD's nesterov, …)."""

    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @property
    def lr(self) -> float:
        """The first group's learning rate (positive, finite); may be changed between steps."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = learning_rate(type(self).__name__, "lr", value)

    @property
    def state(self) -> dict[int, dict[str, Any]]:
        """{parameter index: its buffers} (the live arrays; `state_dict()` gives copies)."""
        return {index: self._states[id(p)] for index, p in enumerate(self._all_params())
                if id(p) in self._states}

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (grad = None)."""
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def scratch(self, param: Tensor) -> np.ndarray:
        """A work array shaped like `param`, reused across steps (step() allocates nothing)."""
        work = self._work.get(id(param))
        W = param.data
        if work is None or work.shape != W.shape or work.dtype != W.dtype:
            work = self._work[id(param)] = np.empty_like(W)
        return work

    def state_of(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """The parameter's buffers, made by `initial_state` at its first update."""
        state = self._states.get(id(param))
        if state is None:
            state = self._states[id(param)] = self.initial_state(param.data, group)
        return state

    def initial_state(self, W: np.ndarray, group: dict[str, Any]) -> dict[str, Any]:
        return {}

    def state_keys(self, group: dict[str, Any]) -> set[str]:
        """The keys a parameter's state holds under this group's settings."""
        return set()

    # --- state dict -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout, every value a copy (later steps never change it):

            {"state": {index: {"step": int, "exp_avg": array, …}},
             "param_groups": [{"lr": …, …, "params": [indices]}]}
        """
        state = {index: {key: (value.copy() if isinstance(value, np.ndarray)
                               else copy.deepcopy(value)) for key, value in buffers.items()}
                 for index, buffers in self.state.items()}
        groups, start = [], 0
        for group in self.param_groups:
            settings = {key: copy.deepcopy(value) for key, value in group.items()
                        if key != "params"}
            settings["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(settings)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what `state_dict()` returned, checked in full first: the group layout, every
        hyper-parameter (as the constructor checks it), every buffer's keys and shape. On any
        error nothing changes."""
        name = f"{type(self).__name__}.load_state_dict"
        if not (isinstance(state_dict, Mapping) and isinstance(state_dict.get("state"), Mapping)
                and isinstance(state_dict.get("param_groups"), (list, tuple))):
            raise ValueError(f"{name}: expects the dict state_dict() returns, with 'state' and "
                             f"'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state has {len(saved_groups)} param groups, this "
                             f"optimizer has {len(self.param_groups)}")
        new_groups, index_of = [], {}
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or not isinstance(saved.get("params"),
                                                                (list, tuple)):
                raise ValueError(f"{name}: param group {number} must be a dict with 'params'")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: param group {number} lists {len(saved['params'])} "
                                 f"parameters, this optimizer's has {len(group['params'])}")
            settings = {key: copy.deepcopy(value) for key, value in saved.items()
                        if key != "params"}
            try:
                settings = self._checked(settings, loading=True)
            except ValueError as error:
                raise ValueError(f"{name}: param group {number}: {error}") from None
            new_groups.append(settings)
            for saved_index, param in zip(saved["params"], group["params"]):
                index_of[saved_index] = (param, settings)
        new_states = {}
        for saved_index, buffers in state_dict["state"].items():
            if saved_index not in index_of:
                raise ValueError(f"{name}: state for parameter {saved_index!r}, which no "
                                 f"param group lists")
            param, settings = index_of[saved_index]
            new_states[id(param)] = self._checked_state(name, saved_index, buffers, param,
                                                        settings)
        for group, settings in zip(self.param_groups, new_groups):
            params = group["params"]
            group.clear()
            group.update(params=params, **settings)
        self._states = new_states

    def _checked_state(self, name: str, index: Any, buffers: Any, param: Tensor,
                       group: dict[str, Any]) -> dict[str, Any]:
        """A copy of one parameter's saved buffers, checked against what this group makes."""
        expected = self.state_keys(group)
        if not isinstance(buffers, Mapping) or set(buffers) != expected:
            keys = sorted(buffers) if isinstance(buffers, Mapping) else type(buffers).__name__
            raise ValueError(f"{name}: state of parameter {index} has {keys}, expected "
                             f"{sorted(expected)}")
        state = {}
        for key, value in buffers.items():
            if key == "step":
                if not is_real(value) or not float(value).is_integer() or value < 0:
                    raise ValueError(f"{name}: state[{index}]['step'] must be a count >= 0, "
                                     f"got {value!r}")
                state[key] = int(value)
                continue
            array = np.asarray(value)
            if array.shape != param.shape or array.dtype.kind not in "biuf":
                raise ValueError(f"{name}: state[{index}][{key!r}] has shape {array.shape} "
                                 f"and dtype {array.dtype}, parameter {index} has shape "
                                 f"{param.shape}")
            state[key] = asarray(value).astype(param.dtype)   # a copy in the param's dtype and place
        return state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            lines += [f"    {key}: {value}" for key, value in group.items() if key != "params"]
        return "\n".join(lines) + "\n)"
