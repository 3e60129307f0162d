"""Module: the base class of every layer and model, in PyTorch's shape.

Assigning a Tensor that requires grad to an attribute registers it as a parameter; assigning a
Module registers it as a child. Both are kept in insertion order (dicts), so `parameters()` and
the `state_dict()` keys (`"0.weight"`, `"0.bias"`, …) come out in a stable order.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

from tinygrad_mlp.nn.placeholder import is_symbolic
from tinygrad_mlp.nn.registry import register_builtin
from tinygrad_mlp.backend import float_array
from tinygrad_mlp.tensor import Tensor, as_array, get_default_dtype, increment_version


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped: model keys not in the dict, and the reverse."""
    missing_keys: list[str]
    unexpected_keys: list[str]


def cast_input(X: Any, dtype: np.dtype) -> Any:
    """`X` in `dtype`: the one rule of every layer with parameters (and of `fit`). An array or a
    list is converted, so a float64 batch never upcasts a float32 layer; a Tensor of another
    dtype goes through `astype`, so its gradient comes back in its own dtype."""
    if type(X) is np.ndarray and X.dtype == dtype:
        return X
    if isinstance(X, Tensor):
        return X if X.data.dtype == dtype else X.astype(dtype)
    return float_array(X, dtype, dtype)


def parameter_dtype(model: Any) -> np.dtype:
    """The dtype a model computes in: its first parameter's, else the default dtype (the one
    rule `fit`, `summary`, export and the face classifier cast their inputs by)."""
    parameters = model.parameters() if hasattr(model, "parameters") else []
    for param in parameters:
        return param.data.dtype
    return get_default_dtype()


class Module:
    """Base class: subclass it, assign layers and parameters in `__init__`, write `forward`.

        class Blog(nn.Module):
            def __init__(self):
                super().__init__()
                self.hidden = nn.Linear(64, 32)      # registered as child "hidden"
            def forward(self, X):
                return self.hidden(X).sigmoid()

    A layer with parameters computes in its parameters' dtype: it casts its input to it
    (`cast_input`), so `model(np.random.randn(5, 2))` on a float32 model runs in float32.
    """

    training: bool
    # May `train.replay.TrainStep` record this module's forward once and replay it? Only when the
    # forward runs the same Functions for every batch of one shape, whatever its values. The
    # package's own layers are (a new built-in needs no declaration; one that is not says
    # `replayable = False`); a user's subclass that writes its own forward (or __call__) is not
    # replayable until it declares `replayable = True` itself.
    replayable: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "replayable" not in cls.__dict__:
            if cls.__module__.startswith("tinygrad_mlp."):
                cls.replayable = True
            elif "forward" in cls.__dict__ or "__call__" in cls.__dict__:
                cls.replayable = False
        register_builtin(cls)          # the package's own layers; users use @nn.register

    def __new__(cls, *args: Any, **kwargs: Any) -> Module:
        """Keep the constructor's arguments, so `get_config()` can say how to rebuild this."""
        module = super().__new__(cls)
        object.__setattr__(module, "_init_args", (args, kwargs))
        return module

    # Does the output have the input's shape (activations, dropout, normalisation)? Sequential
    # looks through such layers when it checks that consecutive Linear layers chain.
    preserves_shape: bool = False

    # Is a module its config names several times one child (a graph's shared layer, nn.Model)?
    # Otherwise each time is one more name (Sequential(shared, shared) has "0" and "1"), which
    # is how `tm.load_model` counts the names a file expands to before it builds anything.
    shares_config_modules: bool = False

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "training", True)

    # --- registration ---------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        registry = self.__dict__.get("_parameters")
        if registry is None:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() ran: call "
                                 f"super().__init__() first in {type(self).__name__}.__init__")
        if name in self.__dict__["_buffers"]:
            self.register_buffer(name, value, name not in self.__dict__["_non_persistent"])
            return
        _refuse_plain_containers(self, name, value)
        modules = self.__dict__["_modules"]
        registry.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, Tensor) and value.requires_grad and value.is_leaf:
            registry[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self.__dict__["_parameters"].pop(name, None)
        self.__dict__["_buffers"].pop(name, None)
        self.__dict__["_modules"].pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """State that is not trained but belongs to the module (BatchNorm's running statistics):
        in `state_dict` (unless persistent=False) and `buffers()`, never in `parameters()`.
        An array is wrapped in a Tensor that keeps its dtype; None reserves the name."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: name must be a non-empty string without '.', "
                           f"got {name!r}")
        if name in self.__dict__["_parameters"] or name in self.__dict__["_modules"]:
            raise KeyError(f"register_buffer: {name!r} is already a parameter or a child module "
                           f"of {type(self).__name__}")
        if tensor is not None and not isinstance(tensor, Tensor):
            if not isinstance(tensor, np.ndarray):
                raise TypeError(f"register_buffer: {name!r} must be a Tensor, an ndarray or "
                                f"None, got {type(tensor).__name__}")
            tensor = Tensor(tensor, dtype=tensor.dtype)
        self.__dict__["_buffers"][name] = tensor
        non_persistent = self.__dict__["_non_persistent"]
        non_persistent.discard(name) if persistent else non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    # --- walking the tree -----------------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "", remove_duplicate: bool = True
                      ) -> Iterator[tuple[str, Module]]:
        """This module (name `prefix`) and every descendant, depth first; a shared one once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            stack.extend(reversed([(f"{name}.{child_name}" if name else child_name, child)
                                   for child_name, child in module._modules.items()]))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True
                         ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, parameter) pairs in registration order; a shared parameter comes once."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix, remove_duplicate):
            for name, param in module._parameters.items():
                if remove_duplicate:
                    if id(param) in seen:
                        continue
                    seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self) -> list[Tensor]:
        """Every parameter once, in a stable order (what an optimizer takes)."""
        return [param for _, param in self.named_parameters()]

    def num_parameters(self) -> int:
        """How many numbers training adjusts: the sizes of all parameters, a shared one once."""
        return sum(param.data.size for param in self.parameters())

    def named_buffers(self, prefix: str = "", remove_duplicate: bool = True
                      ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, e.g. ("0.running_mean", Tensor); None buffers skipped."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix, remove_duplicate):
            for name, buffer in module._buffers.items():
                if buffer is None or (remove_duplicate and id(buffer) in seen):
                    continue
                seen.add(id(buffer))
                yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self) -> list[Tensor]:
        return [buffer for _, buffer in self.named_buffers()]

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call fn on every descendant (children first) and then on this module; returns self.

            model.apply(lambda m: nn.init.he_normal(m.weight) if isinstance(m, nn.Linear) else 0)
        """
        for child in self._modules.values():
            child.apply(fn)
        fn(self)
        return self

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> HookHandle:
        """Call hook(module, inputs, output) after every forward (a non-None result replaces
        the output), as PyTorch does; `handle.remove()` takes it away again."""
        hooks = self.__dict__["_forward_hooks"]
        handle = HookHandle(hooks)
        hooks[handle.id] = hook
        return handle

    # --- training helpers ------------------------------------------------------------------------

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (`grad = None`, as PyTorch's set_to_none)."""
        for param in self.parameters():
            param.grad = None

    def train(self, mode: bool = True) -> Module:
        """Set `.training` on this module and all its descendants; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    # --- state ------------------------------------------------------------------------------------

    def _named_state(self) -> Iterator[tuple[str, Tensor]]:
        """What state_dict holds: each module's parameters, then its persistent buffers."""
        for module_name, module in self.named_modules(remove_duplicate=False):
            prefix = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                yield prefix + name, param
            for name, buffer in module._buffers.items():
                if buffer is not None and name not in module._non_persistent:
                    yield prefix + name, buffer

    def state_dict(self, keep_vars: bool = False) -> dict[str, Any]:
        """{dotted name: a copy of the array}, e.g. {"0.weight": (D, M) array, …}: parameters
        and buffers (BatchNorm's "1.running_mean", …), in PyTorch's order; a shared module's
        under each of its names. keep_vars=True gives the Tensors themselves (no copies)."""
        if keep_vars:
            return dict(self._named_state())
        return {name: tensor.data.copy() for name, tensor in self._named_state()}

    def expanded_size(self) -> tuple[int, int]:
        """(module names, state_dict keys) counted as `state_dict` walks them, a shared module
        once per name it has, but computed visiting each module once (a file of modules that
        share each other twice per level would otherwise take 2^depth steps to measure)."""
        sizes: dict[int, tuple[int, int]] = {}
        for module in reversed(list(self.modules())):     # children before their parents
            paths = 1 + sum(sizes[id(child)][0] for child in module._modules.values())
            keys = (len(module._parameters) + sum(
                buffer is not None and name not in module._non_persistent
                for name, buffer in module._buffers.items())
                + sum(sizes[id(child)][1] for child in module._modules.values()))
            sizes[id(module)] = (paths, keys)
        return sizes[id(self)]

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True
                        ) -> IncompatibleKeys:
        """Copy arrays into the parameters and buffers, in place (optimizers keep their references).

        An array of another dtype is cast to the parameter's, as PyTorch does (a float64 array
        into a float32 layer), when numpy calls the cast "same_kind" (never a float into an
        int buffer). Every key, shape and dtype is checked before anything is assigned, so a
        failed load leaves the model exactly as it was. `strict=False` skips missing and
        unexpected keys (returned) but never a shape or dtype mismatch.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict expects a mapping of name -> array, got "
                            f"{type(state_dict).__name__}")
        params = dict(self._named_state())
        missing = [key for key in params if key not in state_dict]
        unexpected = [key for key in state_dict if key not in params]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        arrays = {}
        for key, param in params.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = as_array(value)
            if array.shape != param.data.shape:
                problems.append(f"shape mismatch for {key!r}: {array.shape} in the state dict "
                                f"vs {param.data.shape} in the model")
            elif not np.can_cast(array.dtype, param.data.dtype, "same_kind"):
                problems.append(f"dtype mismatch for {key!r}: {array.dtype} in the state dict "
                                f"cannot become the model's {param.data.dtype} (floats, ints "
                                f"and bools are cast to a float parameter, as PyTorch does; "
                                f"nothing is cast to a narrower kind)")
            else:
                arrays[key] = array
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed, nothing was "
                             f"changed: " + "; ".join(problems))
        for key, array in arrays.items():
            params[key].data[...] = array
            increment_version(params[key])
        return IncompatibleKeys(missing, unexpected)

    # --- config: how model files rebuild a module (Keras's get_config / from_config) ---------

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this module, {argument name: value}: the ones
        it was called with, bound to `__init__`'s signature, defaults filled in. Override it
        (returning what `from_config` needs) when a module changes after construction, as
        containers do; values may be numbers, strings, None, lists, tuples, dicts, dtypes and
        Modules (see `tm.save_model`)."""
        args, kwargs = self.__dict__.get("_init_args", ((), {}))
        signature = inspect.signature(type(self).__init__)
        bound = signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        config = dict(bound.arguments)
        config.pop(next(iter(signature.parameters)))          # `self`
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Module:
        """The module `get_config()` describes: each entry passed as the constructor argument
        of that name (a *args entry spread, a **kwargs entry merged)."""
        parameters = _constructor_parameters(cls, config)
        spread = any(p.kind is p.VAR_POSITIONAL for p in parameters)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for parameter in parameters:
            if parameter.name not in config:
                continue
            value = config[parameter.name]
            if parameter.kind is parameter.VAR_POSITIONAL:
                args.extend(value)
            elif parameter.kind is parameter.VAR_KEYWORD:
                kwargs.update(value)
            elif parameter.kind is parameter.POSITIONAL_ONLY or (
                    spread and parameter.kind is parameter.POSITIONAL_OR_KEYWORD):
                args.append(value)
            else:
                kwargs[parameter.name] = value
        return cls(*args, **kwargs)

    @classmethod
    def config_arguments(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """`config` as the constructor would see it, {argument name: value}, its defaults
        filled in (a TypeError for a name the constructor does not take)."""
        arguments = {}
        for parameter in _constructor_parameters(cls, config):
            if parameter.name in config:
                arguments[parameter.name] = config[parameter.name]
            elif parameter.default is not parameter.empty:
                arguments[parameter.name] = parameter.default
            else:
                raise TypeError(f"{cls.__name__}() is missing the argument {parameter.name!r}")
        return arguments

    @classmethod
    def state_spec(cls, config: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], Any]]:
        """The parameters and buffers the module `config` describes holds itself (not its
        children's), {name: (shape, dtype)}, dtype None for "the float dtype it is built in":
        what `tm.load_model` checks against a file before it builds anything. Layers with
        state override it; this one says "none", which a user's class that does not override
        it is not taken at its word for (its state is checked once it is built)."""
        return {}

    # --- calling ----------------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and is_symbolic(args[0]):        # building an nn.Model: record, don't compute
            from tinygrad_mlp.nn.model import call_on_placeholders
            return call_on_placeholders(self, args, kwargs)
        output = self.forward(*args, **kwargs)
        hooks = self.__dict__.get("_forward_hooks")
        if hooks:
            for hook in list(hooks.values()):
                result = hook(self, args, output)
                if result is not None:
                    output = result
        return output

    # --- repr -------------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """What goes between the parentheses of this module's repr (override in layers)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        extra = self.extra_repr()
        head = f"{type(self).__name__}({extra}\n" if extra else f"{type(self).__name__}(\n"
        return head + "\n".join(lines) + "\n)"


class HookHandle:
    """What `register_forward_hook` returns: `remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict) -> None:
        self.hooks, self.id = hooks, HookHandle._next_id
        HookHandle._next_id += 1

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


def _constructor_parameters(cls: type, config: Mapping[str, Any]) -> list[inspect.Parameter]:
    """`cls.__init__`'s parameters after self, once `config` names none it lacks."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    unknown = set(config) - {p.name for p in parameters}
    if unknown:
        raise TypeError(f"{cls.__name__}.from_config: {cls.__name__}() takes no argument "
                        f"named {sorted(unknown)}")
    return parameters


def _refuse_plain_containers(module: Module, name: str, value: Any) -> None:
    """A list, tuple or dict holding Modules is not registered, so its layers would silently
    never train nor be saved: refuse it, naming the containers that do register."""
    if isinstance(value, (list, tuple, dict)):
        items = value.values() if isinstance(value, dict) else value
        if any(isinstance(item, Module) for item in items):
            wrapper = "nn.ModuleDict({...})" if isinstance(value, dict) else "nn.ModuleList([...])"
            raise TypeError(f"{type(module).__name__}.{name}: a plain {type(value).__name__} of "
                            f"Modules is not registered, so its parameters would never train "
                            f"nor be saved; assign self.{name} = {wrapper} instead")
