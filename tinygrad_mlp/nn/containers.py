"""Containers: Sequential (layers applied in order), ModuleList and ModuleDict (registered
collections of modules for a forward you write yourself).

A plain list or dict of layers assigned to a Module attribute is refused (its layers would never
be registered, so never trained nor saved): these containers register every module they hold.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from tinygrad_mlp.nn.layers import Linear
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.nn.verbs import KerasVerbs


class Sequential(Module, KerasVerbs):
    """Layers applied in order; children are named "0", "1", … (state_dict keys "0.weight", …).

        model = Sequential(Linear(64, 32), Sigmoid(), Linear(32, 10), Softmax())
        model[0], len(model), model[:2]           # indexing, len, slicing (a Sequential)

    Consecutive Linear layers must chain (out_features of one = in_features of the next); that is
    checked here, at construction. A single list of layers is accepted too (Keras style).
    """


    def __init__(self, *layers: Module) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            self.append(layer)

    @classmethod
    def _wrap(cls, layers: list[Module]) -> Sequential:
        """A Sequential over existing layers, leaving their parameter names alone (slicing)."""
        model = cls.__new__(cls)
        Module.__init__(model)
        for index, layer in enumerate(layers):
            setattr(model, str(index), layer)
        return model

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end (checked against the previous Linear); returns self."""
        index = len(self._modules)
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: layer {index} must be a Module, got "
                            f"{type(layer).__name__}")
        self._check_chain(index, layer)
        setattr(self, str(index), layer)
        for name, param in layer.named_parameters(prefix=str(index)):
            if param.name is None or name.endswith("." + param.name):
                param.name = name    # graph drawings say "0.weight"; a shared one keeps its name
        return self

    def _check_chain(self, index: int, layer: Module) -> None:
        if not isinstance(layer, Linear):
            return
        for previous_index, previous in zip(range(index - 1, -1, -1),   # (no copy per append)
                                            reversed(self._modules.values())):
            if isinstance(previous, Linear):
                if previous.out_features != layer.in_features:
                    raise ValueError(
                        f"Sequential: layer {index} ({layer.short_name()}) expects "
                        f"{layer.in_features} features but layer {previous_index} "
                        f"({previous.short_name()}) outputs {previous.out_features}")
                return
            if not previous.preserves_shape:
                return                          # a layer of unknown width: nothing to check

    def get_config(self) -> dict[str, Any]:
        """The layers it holds now (appended ones and slices included)."""
        return {"layers": list(self._modules.values())}

    def forward(self, X: Any) -> Any:
        for layer in self._modules.values():
            X = layer(X)
        return X

    def __getitem__(self, index: int | slice) -> Module | Sequential:
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential._wrap(layers[index])
        try:
            return layers[index]
        except IndexError:
            raise IndexError(f"Sequential index {index} out of range for {len(layers)} layers"
                             ) from None

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


def _check_module(owner: str, key: Any, module: Any) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{owner}: entry {key!r} must be a Module, got {type(module).__name__}")
    return module


class ModuleList(Module):
    """A list of modules, registered as children "0", "1", … (state_dict keys "0.weight", …).
    Indexing (a slice gives a ModuleList), len, iteration, append, extend and insert work as on
    a list. It has no forward: call its modules in your own.

        self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        for block in self.blocks: X = block(X).relu()
    """


    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def get_config(self) -> dict[str, Any]:
        """The modules it holds now (appended and inserted ones included)."""
        return {"modules": list(self._modules.values())}

    def _renumber(self, modules: list[Module]) -> None:
        for name in list(self._modules):
            delattr(self, name)
        for index, module in enumerate(modules):
            setattr(self, str(index), module)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self)), _check_module("ModuleList", len(self), module))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if isinstance(modules, Module) or not isinstance(modules, Iterable):
            raise TypeError(f"ModuleList.extend: expected an iterable of Modules, got "
                            f"{type(modules).__name__}")
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, _check_module("ModuleList", index, module))
        self._renumber(modules)

    def _index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ModuleList index {index} out of range for {len(self)} modules")
        return index % len(self)

    def __getitem__(self, index: int | slice) -> Module | ModuleList:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[self._index(index)]

    def __setitem__(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules[self._index(index)] = _check_module("ModuleList", index, module)
        self._renumber(modules)          # (re-assigning "0" alone would move it to the end)

    def __delitem__(self, index: int) -> None:
        modules = list(self._modules.values())
        del modules[self._index(index)]
        self._renumber(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


class ModuleDict(Module):
    """A dict of modules, registered as children under their keys (state_dict keys
    "encoder.weight", …), in insertion order; indexing, `in`, len, iteration over the keys,
    keys(), values(), items(), update() and pop() work as on a dict.

        self.heads = nn.ModuleDict({"digit": nn.Linear(32, 10), "parity": nn.Linear(32, 2)})
    """


    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def get_config(self) -> dict[str, Any]:
        """The modules it holds now, under their keys."""
        return {"modules": dict(self._modules)}

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        if key not in self._modules and hasattr(self, key):
            raise KeyError(f"ModuleDict: key {key!r} would hide the attribute "
                           f"ModuleDict.{key}; choose another name")
        module = _check_module("ModuleDict", key, module)
        if key not in self._modules:
            setattr(self, key, module)
            return
        items = [(name, module if name == key else old) for name, old in self._modules.items()]
        for name, _ in items:            # rebuilt, so a replaced entry keeps its place
            delattr(self, name)
        for name, entry in items:
            setattr(self, name, entry)

    def __getitem__(self, key: str) -> Module:
        try:
            return self._modules[key]
        except KeyError:
            raise KeyError(f"ModuleDict has no module {key!r}; keys: {list(self._modules)}"
                           ) from None

    def __delitem__(self, key: str) -> None:
        self[key]                              # the KeyError naming the keys, if absent
        delattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def keys(self) -> list[str]:
        return list(self._modules)

    def values(self) -> list[Module]:
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._modules.items())

    def update(self, modules: Mapping[str, Module]) -> None:
        if not isinstance(modules, Mapping):
            raise TypeError(f"ModuleDict.update: expected a mapping of name -> Module, got "
                            f"{type(modules).__name__}")
        for key, module in modules.items():
            self[key] = module

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module
