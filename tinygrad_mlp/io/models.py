"""Whole-model files: the architecture and the weights in one .npz, never pickle.

    tm.save_model(model, "digits.npz")
    model = tm.load_model("digits.npz")        # no need to rebuild 64 -> 64 -> 10 by hand

The file is what `tm.save` writes (parameters and buffers under their `state_dict` keys, so
`tm.load` reads a model file as its weights) plus one member holding the architecture as JSON:
each module's registered class name and its `get_config()` (its constructor arguments), nested
through containers and user modules, e.g.

    {"format": 1, "training": true, "model": {"class": "Sequential", "id": 0, "path": "",
     "config": {"layers": [{"module": {"class": "Linear", "id": 1, "path": "0",
                                       "config": {"in_features": 64, ...}}}, ...]}}}

Arguments may be None, bools, ints, floats, strings, lists, tuples, dicts with string keys,
dtypes and Modules (a module used twice is saved once and shared again on loading). Only
classes that are built in or registered with `@nn.register` (or passed in `custom_objects`)
are ever constructed, so a file can name no arbitrary code.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from tinygrad_mlp.io.arrays import (MODEL_KEY, _arrays_to_save, _read_arrays, _write_npz,
                                    write_atomically)
from tinygrad_mlp.nn import Module
from tinygrad_mlp.nn.registry import lookup, registered_name
from tinygrad_mlp.tensor import get_default_dtype, get_generator, using_config

__all__ = ["save_model", "load_model", "MODEL_FORMAT"]

MODEL_FORMAT = 1
_MAX_DEPTH = 100                        # modules nested deeper than this are refused on loading


def _where(path: str) -> str:
    return "the model" if path == "" else f"module {path!r}"


# --- saving ----------------------------------------------------------------------------------------

def save_model(model: Module, path: str | os.PathLike) -> None:
    """Write `model` (architecture + parameters + buffers) to exactly `path`, atomically as
    `tm.save` does (same modes, special files refused, temp files cleaned).

    Before writing, the architecture is rebuilt once from the recorded arguments (the random
    generator's state is kept) and compared with the model, so a file that could not be
    loaded back is never written: a class neither built in nor registered, an argument JSON
    cannot hold, or a module changed after construction (define `get_config()` for it) is a
    ValueError naming the module's path.
    """
    path = os.fspath(path)
    if not path:
        raise ValueError("save_model: the path is empty")
    if not isinstance(model, Module):
        raise TypeError(f"save_model: expects an nn.Module, got {type(model).__name__}")
    architecture = {"format": MODEL_FORMAT, "training": bool(model.training),
                    "model": _Describer(model).module(model, "")}
    text = json.dumps(architecture, allow_nan=False)
    state = model.state_dict()
    _check_rebuilds(json.loads(text), state)
    arrays = _arrays_to_save(state, path)
    arrays[MODEL_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    write_atomically(path, lambda file: _write_npz(file, arrays), "save_model")


class _Describer:
    """Turns a module tree into JSON values, numbering modules so shared ones are saved once."""

    def __init__(self, model: Module) -> None:
        self.paths = {id(module): name for name, module in model.named_modules()}
        self.ids: dict[int, int] = {}

    def module(self, module: Module, where: str) -> dict[str, Any]:
        if id(module) in self.ids:
            return {"ref": self.ids[id(module)]}
        path = self.paths.get(id(module), where)
        cls = type(module)
        name = registered_name(cls)
        if name is None:
            raise ValueError(f"save_model: {_where(path)} is a {cls.__module__}."
                             f"{cls.__qualname__}, which is neither built in nor registered: "
                             f"decorate the class with @nn.register so model files can "
                             f"rebuild it")
        self.ids[id(module)] = len(self.ids)
        config = module.get_config()
        if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
            raise TypeError(f"save_model: {_where(path)}: {cls.__name__}.get_config() must "
                            f"return a dict with string keys, got {config!r}")
        return {"class": name, "id": self.ids[id(module)], "path": path,
                "config": {key: self.value(value, f"{path}:{key}")
                           for key, value in config.items()}}

    def value(self, value: Any, where: str) -> Any:
        """One argument as JSON: plain values as they are, others tagged ({"tuple": [...]})."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (float, np.floating)):
            return float(value) if math.isfinite(value) else {"float": repr(float(value))}
        if isinstance(value, Module):
            return {"module": self.module(value, where)}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"tuple": [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: self.value(v, f"{where}[{k!r}]") for k, v in value.items()}}
        if isinstance(value, np.dtype) or (isinstance(value, type) and
                                           issubclass(value, (np.generic, float, int, bool))):
            return {"dtype": np.dtype(value).name}
        module, _, argument = where.partition(":")
        raise TypeError(f"save_model: {_where(module)}: argument {argument} is a "
                        f"{type(value).__name__}, which a model file cannot hold (it keeps "
                        f"None, bools, numbers, strings, lists, tuples, dicts, dtypes and "
                        f"Modules); give the class a get_config() that returns such values")


def _check_rebuilds(architecture: dict[str, Any], state: dict[str, np.ndarray]) -> None:
    """Build the architecture once and compare its state dict with the model's."""
    try:
        rebuilt = _Builder(architecture, None, "save_model", "").build(state)
    except ValueError as error:
        raise ValueError(f"{error} (the model could not be loaded back, so nothing was "
                         f"written)") from None
    mismatch = _differences(rebuilt.state_dict(), state, saving=True)
    if mismatch:
        raise ValueError(f"save_model: rebuilding the model from its modules' get_config() "
                         f"does not give the same model ({mismatch}): a module was changed "
                         f"after construction; define get_config() for it so that its "
                         f"constructor rebuilds it; nothing was written")


# --- loading ---------------------------------------------------------------------------------------

def load_model(path: str | os.PathLike, custom_objects: Mapping[str, type] | None = None
               ) -> Module:
    """The model saved at `path` by `save_model`, rebuilt and holding the saved weights.

    `custom_objects` maps a saved class name to a Module subclass, for classes not registered
    in this process (it takes precedence over the registry). The file is read as `tm.load`
    reads any file (hostile: sizes checked, never unpickled). An unknown class, arguments its
    constructor no longer takes, or a missing, extra or differently shaped array is a
    ValueError naming the module's path, and no model is returned. The model comes back in
    the train/eval mode it was saved in.
    """
    path = os.fspath(path)
    if custom_objects is not None and not (
            isinstance(custom_objects, Mapping)
            and all(isinstance(k, str) and isinstance(v, type) and issubclass(v, Module)
                    for k, v in custom_objects.items())):
        raise TypeError(f"load_model: custom_objects must map class names to nn.Module "
                        f"subclasses, got {custom_objects!r}")
    arrays = _read_arrays(path)
    text = arrays.pop(MODEL_KEY, None)
    if text is None:
        raise ValueError(f"load_model: {path!r} holds only parameters (written by tm.save), not "
                         f"a model: build the model and call model.load_state_dict("
                         f"tm.load({path!r})), or save it with tm.save_model")
    try:
        if text.dtype != np.uint8 or text.ndim != 1:
            raise ValueError(f"a {text.dtype} array of shape {text.shape}, not JSON bytes")
        architecture = json.loads(text.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as error:       # (JSONDecodeError is a ValueError)
        raise ValueError(f"load_model: {path!r}: the architecture member {MODEL_KEY!r} is not "
                         f"valid JSON ({error})") from None
    model = _Builder(architecture, custom_objects, "load_model", f"{path!r}: ").build(arrays)
    mismatch = _differences(model.state_dict(), arrays, saving=False)
    if mismatch:
        raise ValueError(f"load_model: {path!r}: the arrays do not fit the architecture: "
                         f"{mismatch}")
    try:
        model.load_state_dict(arrays)
    except ValueError as error:
        raise ValueError(f"load_model: {path!r}: {error}") from None
    return model


class _Builder:
    """Builds modules from a parsed architecture, checking every field it reads."""

    def __init__(self, architecture: Any, custom_objects: Mapping[str, type] | None,
                 caller: str, file: str) -> None:
        self.architecture, self.custom_objects = architecture, custom_objects
        self.prefix = f"{caller}: {file}"
        self.built: dict[int, Module] = {}

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.prefix}{what}")

    def build(self, arrays: Mapping[str, np.ndarray]) -> Module:
        """The whole model, built under the saved weights' float dtype (so layers whose dtype
        argument is None get it) with the random generator's state left as it was."""
        architecture = self.architecture
        if not isinstance(architecture, dict) or architecture.get("format") != MODEL_FORMAT:
            raise self.fail(f"the architecture is not model format {MODEL_FORMAT}")
        floats = [a.dtype for a in arrays.values() if a.dtype.kind == "f"]
        generator = get_generator().bit_generator
        saved_state = generator.state
        try:
            with using_config("dtype", floats[0] if floats else get_default_dtype()):
                model = self.value({"module": architecture.get("model")}, 0)
        finally:
            generator.state = saved_state
        model.train(bool(architecture.get("training", True)))
        return model

    def value(self, value: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise self.fail(f"modules are nested more than {_MAX_DEPTH} deep")
        if isinstance(value, list):
            return [self.value(v, depth + 1) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            raise self.fail(f"unexpected value {value!r} in the architecture")
        (tag, content), = value.items()
        if tag == "module":
            return self.module(content, depth + 1)
        if tag == "tuple" and isinstance(content, list):
            return tuple(self.value(v, depth + 1) for v in content)
        if tag == "dict" and isinstance(content, dict):
            return {k: self.value(v, depth + 1) for k, v in content.items()}
        if tag == "float" and content in ("inf", "-inf", "nan"):
            return float(content)
        if tag == "dtype" and isinstance(content, str):
            try:
                return np.dtype(content)
            except TypeError:
                raise self.fail(f"unknown dtype {content!r}") from None
        raise self.fail(f"unexpected value {value!r} in the architecture")

    def module(self, spec: Any, depth: int) -> Module:
        if isinstance(spec, dict) and set(spec) == {"ref"}:
            if spec["ref"] not in self.built:
                raise self.fail(f"a reference to module number {spec['ref']!r}, which comes "
                                f"later or nowhere")
            return self.built[spec["ref"]]
        if not (isinstance(spec, dict) and set(spec) == {"class", "id", "path", "config"}
                and isinstance(spec["config"], dict) and isinstance(spec["path"], str)):
            raise self.fail(f"a module entry must have class, id, path and config, got "
                            f"{str(spec)[:200]}")
        name, where = spec["class"], _where(spec["path"])
        cls = lookup(name, self.custom_objects) if isinstance(name, str) else None
        if cls is None:
            raise self.fail(f"{where} is a {name!r}, a class that is neither built in nor "
                            f"registered here: define it with @nn.register before loading, or "
                            f"pass custom_objects={{{name!r}: TheClass}}")
        config = {key: self.value(value, depth) for key, value in spec["config"].items()}
        try:
            module = cls.from_config(config)
        except Exception as error:
            shown = ", ".join(f"{k}={v!r}" for k, v in config.items()
                              if not isinstance(v, (Module, list, tuple, dict)))
            raise self.fail(f"{where} ({name}) cannot be rebuilt from its saved arguments "
                            f"({shown}): {type(error).__name__}: {error} (did its constructor "
                            f"change since the file was saved?)") from None
        if not isinstance(module, Module):
            raise self.fail(f"{where}: {name}.from_config returned a "
                            f"{type(module).__name__}, not a Module")
        self.built[spec["id"]] = module
        return module


def _differences(expected: Mapping[str, np.ndarray], found: Mapping[str, np.ndarray],
                 saving: bool) -> str:
    """What differs between a rebuilt model's state dict and the arrays found (the file's on
    loading, the model's on saving, when also shapes and dtypes are compared): each array
    named with its module's path. Empty when they fit."""
    other, rebuilt = ("the model", " rebuilt") if saving else ("the file", "")

    def owner(key: str) -> str:
        return _where(key.rpartition(".")[0])

    problems = [f"{owner(k)}{rebuilt} has {k!r} but {other} has no such array" for k in expected
                if k not in found]
    problems += [f"{other} has an array {k!r} that {owner(k)}{rebuilt} does not have"
                 for k in found if k not in expected]
    if saving:
        problems += [f"{k!r} is {expected[k].dtype}{expected[k].shape} rebuilt but "
                     f"{found[k].dtype}{found[k].shape} in the model" for k in expected
                     if k in found and (expected[k].shape != found[k].shape
                                        or expected[k].dtype != found[k].dtype)]
    return "; ".join(problems)
