"""The classes a model file may name: tinygrad_mlp's own modules, and the ones users register.

    @nn.register
    class Block(nn.Module):
        def __init__(self, width, p=0.1): ...

`tm.save_model` writes each module as its registered name plus its `get_config()`;
`tm.load_model` looks the name up here (or in its `custom_objects`) and calls `from_config`.
Every Module subclass defined inside the tinygrad_mlp package is registered by its class name
when it is defined; a user's class must be registered (or passed in `custom_objects`), so a
model file never makes an arbitrary class from a name.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, TypeVar

__all__ = ["register", "lookup", "registered_name", "is_builtin"]

T = TypeVar("T", bound=type)

_classes: dict[str, type] = {}          # name -> class, built-in and registered alike
_names: dict[type, str] = {}            # class -> the name it is saved under


def register(cls: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
    """Class decorator: let model files save and rebuild this Module subclass.

    `@nn.register` uses the class name; `@nn.register(name="mylib.Block")` another one. A name
    already taken by a different class (e.g. a built-in "Linear") is a ValueError; registering
    a class again under its name (re-running a notebook cell) replaces the old definition.
    """
    def decorate(cls: T) -> T:
        from tinygrad_mlp.nn.module import Module      # (module.py imports this file)
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise TypeError(f"nn.register: expects a subclass of nn.Module, got {cls!r}")
        key = cls.__name__ if name is None else name
        if not isinstance(key, str) or not key:
            raise ValueError(f"nn.register: name must be a non-empty string, got {key!r}")
        taken = _classes.get(key)
        if taken is not None and taken is not cls and not _same_definition(taken, cls):
            raise ValueError(f"nn.register: the name {key!r} is taken by "
                             f"{taken.__module__}.{taken.__qualname__}; register "
                             f"{cls.__qualname__} under another one, e.g. "
                             f"@nn.register(name='{cls.__module__}.{cls.__qualname__}')")
        _add(key, cls)
        return cls
    return decorate if cls is None else decorate(cls)


def register_builtin(cls: type) -> None:
    """Called for each Module subclass defined in tinygrad_mlp (by Module.__init_subclass__)."""
    if is_builtin(cls) and not cls.__name__.startswith("_"):   # a private base: _BatchNorm
        _add(cls.__name__, cls)


def is_builtin(cls: type) -> bool:
    """Is `cls` one of tinygrad_mlp's own classes (not a user's, nor one defined in a function)?"""
    return cls.__module__.startswith("tinygrad_mlp.") and "<locals>" not in cls.__qualname__


def _add(key: str, cls: type) -> None:
    old = _classes.get(key)
    if old is not None:
        _names.pop(old, None)
    _classes[key], _names[cls] = cls, key


def _same_definition(a: type, b: type) -> bool:
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def registered_name(cls: type) -> str | None:
    """The name `cls` is saved under, or None when it is neither built in nor registered."""
    return _names.get(cls)


def lookup(name: str, custom_objects: Mapping[str, Any] | None = None) -> type | None:
    """The class saved as `name`: from `custom_objects` first, then the registry; or None."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return _classes.get(name)
