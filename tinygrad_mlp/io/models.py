"""Whole-model files: the architecture and the weights in one .npz, never pickle.

    tm.save_model(model, "digits.npz")
    model = tm.load_model("digits.npz")        # no need to rebuild 64 -> 64 -> 10 by hand

The file is what `tm.save` writes (parameters and buffers under their `state_dict` keys, so
`tm.load` reads a model file as its weights) plus one member holding the architecture as JSON:
each module's registered class name and its `get_config()` (its constructor arguments), nested
through containers and user modules, e.g.

    {"format": 2, "model": {"class": "Sequential", "id": 0, "path": "", "training": true,
     "config": {"layers": [{"module": {"class": "Linear", "id": 1, "path": "0",
                                       "training": true,
                                       "config": {"in_features": 64, ...}}}, ...]}}}

Arguments may be None, bools, ints, floats, strings, lists, tuples, dicts with string keys,
dtypes and Modules (a module used twice is saved once and shared again on loading). Only
classes that are built in or registered with `@nn.register` (or passed in `custom_objects`)
are ever constructed, so a file can name no arbitrary code. Each module keeps its own
train/eval mode (format 1 files, which kept only the root's, still load).

Loading checks the file's declared structure before it builds anything: each module entry is
read once (a shared one is a reference to it), the names the modules would expand to are
counted without walking them and bounded by what the file holds, and every parameter and
buffer a layer declares (`Module.state_spec`) is compared with the file's array of that name,
shape and dtype. So a file declaring layers whose weights it does not hold, or sharing modules
to expand exponentially, is refused at once with a ValueError, whatever it declares.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from tinygrad_mlp.io.arrays import (MODEL_KEY, _arrays_to_save, _read_arrays, _write_npz,
                                    write_atomically)
from tinygrad_mlp.nn import Model, Module
from tinygrad_mlp.nn.model import check_graph
from tinygrad_mlp.nn.registry import is_builtin, lookup, registered_name
from tinygrad_mlp.tensor import get_default_dtype, get_generator, using_config

__all__ = ["save_model", "load_model", "MODEL_FORMAT"]

MODEL_FORMAT = 2                        # 2: each module's own train/eval mode
_READABLE_FORMATS = (1, 2)
_MAX_DEPTH = 100                        # modules nested deeper than this are refused on loading
_NAMES_PER_UNIT = 4                     # module names allowed per architecture byte + array
_SHOWN = 200                            # characters of a file's value quoted in an error
_LISTED = 2000                          # characters of a list of problems in an error
_FLOAT_DTYPES = tuple(np.dtype(t) for t in (np.float16, np.float32, np.float64))


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
    architecture = {"format": MODEL_FORMAT, "model": _Describer(model).module(model, "")}
    text = json.dumps(architecture, allow_nan=False)
    state = model.state_dict()
    _check_rebuilds(text, state)
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
                "training": bool(module.training),
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


def _check_rebuilds(text: str, state: dict[str, np.ndarray]) -> None:
    """Build the architecture once and compare its state dict with the model's."""
    try:
        _build(text, state, None, "save_model", "")
    except _Unfit as error:
        raise ValueError(f"save_model: rebuilding the model from its modules' get_config() "
                         f"does not give the same model ({error.detail}): a module was "
                         f"changed after construction; define get_config() for it so that "
                         f"its constructor rebuilds it; nothing was written") from None
    except ValueError as error:
        raise ValueError(f"{error} (the model could not be loaded back, so nothing was "
                         f"written)") from None


# --- loading ---------------------------------------------------------------------------------------

def load_model(path: str | os.PathLike, custom_objects: Mapping[str, type] | None = None
               ) -> Module:
    """The model saved at `path` by `save_model`, rebuilt and holding the saved weights.

    `custom_objects` maps a saved class name to a Module subclass, for classes not registered
    in this process (it takes precedence over the registry). The file is read as `tm.load`
    reads any file (hostile: sizes checked, never unpickled), and its architecture is checked
    against its arrays before any layer is built (see the module's docstring). An unknown
    class, arguments its constructor no longer takes, or a missing, extra or differently
    shaped array is a ValueError naming the module's path, and no model is returned. Each
    module comes back in the train/eval mode it was saved in and in its saved dtype; no
    global state (the default dtype, the random generator) changes, in this thread or another.
    """
    path = os.fspath(path)
    if custom_objects is not None and not (
            isinstance(custom_objects, Mapping)
            and all(isinstance(k, str) and isinstance(v, type) and issubclass(v, Module)
                    for k, v in custom_objects.items())):
        raise TypeError(f"load_model: custom_objects must map class names to nn.Module "
                        f"subclasses, got {_short(custom_objects)}")
    arrays = _read_arrays(path)
    text = arrays.pop(MODEL_KEY, None)
    if text is None:
        raise ValueError(f"load_model: {path!r} holds only parameters (written by tm.save), not "
                         f"a model: build the model and call model.load_state_dict("
                         f"tm.load({path!r})), or save it with tm.save_model")
    try:
        if text.dtype != np.uint8 or text.ndim != 1:
            raise ValueError(f"a {text.dtype} array of shape {text.shape}, not JSON bytes")
        text = text.tobytes().decode("utf-8")
    except ValueError as error:                         # (UnicodeDecodeError is a ValueError)
        raise ValueError(f"load_model: {path!r}: the architecture member {MODEL_KEY!r} is not "
                         f"valid JSON ({error})") from None
    model = _build(text, arrays, custom_objects, "load_model", f"{path!r}: ")
    model.load_state_dict(arrays)                       # (every key, shape and dtype checked)
    return model


def _build(text: str, arrays: Mapping[str, np.ndarray],
           custom_objects: Mapping[str, type] | None, caller: str, file: str) -> Module:
    """The model the architecture `text` describes, checked against `arrays` before building
    and after (a ValueError prefixed by `caller: file` otherwise), not yet holding them."""
    prefix = f"{caller}: {file}"
    try:
        architecture = json.loads(text, object_pairs_hook=_no_duplicate_keys,
                                  parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:       # (JSONDecodeError is a ValueError)
        raise ValueError(f"{prefix}the architecture member {MODEL_KEY!r} is not valid JSON "
                         f"({_short(error, str)})") from None
    plan = _Plan(architecture, arrays, custom_objects, prefix, len(text.encode("utf-8")))
    model = plan.build()
    names, keys = model.expanded_size()
    plan.check_size("the built model", names, keys)
    mismatch = _differences(model.state_dict(keep_vars=True), arrays, saving=caller != "load_model")
    if mismatch:
        mismatch = _short(mismatch, str, _LISTED)
        raise _Unfit(f"{prefix}the arrays do not fit the architecture: {mismatch}", mismatch)
    return model


class _Unfit(ValueError):
    """The model was built, but its parameters and buffers are not the arrays given."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"the key {_short(twice)} appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON (save_model writes such floats as {{\"float\": ...}})")


def _short(value: Any, show: Any = repr, limit: int = _SHOWN) -> str:
    """`show(value)` cut to `limit` characters: a hostile file's values go into errors."""
    text = show(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class _Ref:
    """A module argument in a parsed config: the entry whose module goes there once built."""

    def __init__(self, number: int) -> None:
        self.number = number

    def __repr__(self) -> str:
        return f"<module {self.number}>"


class _Entry:
    """One module entry of the file, read and checked: what to build and what it expands to."""

    def __init__(self, number: int, cls: type, name: str, path: str, config: dict[str, Any],
                 training: bool | None, names: int, keys: int) -> None:
        self.number, self.cls, self.name, self.path = number, cls, name, path
        self.config, self.training = config, training
        self.names, self.keys = names, keys        # module names, state keys it expands to


class _Plan:
    """A file's architecture read in one pass, before anything is built.

    Each module entry is read once (a shared module appears once, then as {"ref": id}) and
    has its own path; its class is looked up in the registry; the state its class declares
    (`state_spec`) is compared with the file's arrays under that path, so what is built for
    the declared layers is never more than the file holds. How many module names and state
    keys the tree expands to is summed per entry (a reference adds its entry's totals,
    `Module.shares_config_modules` says whether a repeated one counts again) and bounded by
    what the file holds (`check_size`). `build()` then constructs the entries in order,
    children first (a reference reuses the module: linear in the file); the built tree is
    measured again (a user's class may make children of its own) before anything walks it.
    """

    def __init__(self, architecture: Any, arrays: Mapping[str, np.ndarray],
                 custom_objects: Mapping[str, type] | None, prefix: str, size: int) -> None:
        self.arrays, self.custom_objects, self.prefix = arrays, custom_objects, prefix
        self.max_names = _NAMES_PER_UNIT * (size + len(arrays))
        self.entries: dict[int, _Entry] = {}          # in the order they are built
        self.paths: set[str] = set()
        self.dtypes = _first_float_dtypes(arrays)
        if not isinstance(architecture, dict) or not isinstance(architecture.get("format"), int) \
                or isinstance(architecture["format"], bool) \
                or architecture["format"] not in _READABLE_FORMATS:
            found = architecture.get("format") if isinstance(architecture, dict) else None
            raise self.fail(f"the architecture is not model format {MODEL_FORMAT} (this "
                            f"tinygrad_mlp reads formats {_READABLE_FORMATS}), got format "
                            f"{_short(found)}")
        self.format = architecture["format"]
        expected = {"format", "model"} | ({"training"} if self.format == 1 else set())
        if set(architecture) - expected or "model" not in architecture:
            raise self.fail(f"the architecture must have the keys {sorted(expected)}, got "
                            f"{_short(sorted(architecture))}")
        self.root_training = architecture.get("training", True)
        if not isinstance(self.root_training, bool):
            raise self.fail(f"'training' must be true or false, got {_short(self.root_training)}")
        self.root = self.module(architecture["model"], 1)

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.prefix}{what}")

    def check_size(self, what: str, names: int, keys: int) -> None:
        """Refuse a tree expanding to more state keys than the file has arrays, or to more
        module names than the file could describe (a few per byte of JSON and per array):
        modules sharing each other twice per level expand to 2^depth names."""
        if keys > len(self.arrays):
            raise self.fail(f"{what} expands to {keys} parameters and buffers (a shared "
                            f"module's once per name it has), but the file holds "
                            f"{len(self.arrays)} arrays")
        if names > self.max_names:
            raise self.fail(f"{what} expands to {names} module names (a shared module's once "
                            f"per name it has), more than the {self.max_names} its size allows "
                            f"({_NAMES_PER_UNIT} per byte of architecture and per array)")

    # --- reading ------------------------------------------------------------------------------

    def module(self, spec: Any, depth: int) -> _Ref:
        """The entry `spec` (or the one it refers to), read and checked; its placeholder."""
        if depth > _MAX_DEPTH:
            raise self.fail(f"modules are nested more than {_MAX_DEPTH} deep")
        if isinstance(spec, dict) and set(spec) == {"ref"}:
            number = spec["ref"]
            if not _is_number(number) or number not in self.entries:
                raise self.fail(f"a reference to module number {_short(number)}, which comes "
                                f"later or nowhere")
            return _Ref(number)
        keys = {"class", "id", "path", "config"}
        if not (isinstance(spec, dict) and keys <= set(spec) <= keys | {"training"}
                and isinstance(spec["config"], dict) and isinstance(spec["path"], str)
                and _is_number(spec["id"])):
            raise self.fail(f"a module entry must have class, id, path, config (and training "
                            f"since format 2; id a number, path a string, config an object), "
                            f"got {_short(spec)}")
        name, path, number = spec["class"], spec["path"], spec["id"]
        where = _where(_short(path, str))
        training = spec.get("training")
        if training is not None and not isinstance(training, bool):
            raise self.fail(f"{where}: 'training' must be true or false, got {_short(training)}")
        cls = lookup(name, self.custom_objects) if isinstance(name, str) else None
        if cls is None:
            raise self.fail(f"{where} is a {_short(name)}, a class that is neither built in nor "
                            f"registered here: define it with @nn.register before loading, or "
                            f"pass custom_objects={{{_short(name)}: TheClass}}")
        children: list[_Ref] = []
        config = {key: self.value(value, depth, children)
                  for key, value in spec["config"].items()}
        if number in self.entries or path in self.paths:       # (its arrays would count twice)
            raise self.fail(f"{where}: a second module entry with id {number} or path "
                            f"{_short(path)}; each module is saved once")
        self.paths.add(path)
        if issubclass(cls, Model):
            self.check_graph(where, name, config)
        state = self.check_declared_state(cls, name, path, config)
        if getattr(cls, "shares_config_modules", False):
            children = list({child.number: child for child in children}.values())
        names = 1 + sum(self.entries[child.number].names for child in children)
        keys = len(state) + sum(self.entries[child.number].keys for child in children)
        self.check_size(where, names, keys)
        self.entries[number] = _Entry(number, cls, name, path, config, training, names, keys)
        return _Ref(number)

    def check_graph(self, where: str, name: str, config: dict[str, Any]) -> None:
        """An nn.Model's graph (`nn.model.check_graph`: the names it takes exist, no cycle, each
        layer fed as many inputs as it takes), read from its entries' classes and configs."""
        def layer_of(layer: Any) -> tuple[type, Any]:
            if isinstance(layer, _Ref):
                entry = self.entries[layer.number]
                return entry.cls, entry.config
            return type(layer), layer

        try:
            check_graph(config, layer_of)
        except ValueError as error:
            raise self.fail(f"{where} ({_short(name)}): {_short(error, str, _LISTED)}; nothing "
                            f"was built") from None

    def value(self, value: Any, depth: int, children: list[_Ref]) -> Any:
        """One argument, parsed: modules become placeholders (also listed in `children`)."""
        if depth > _MAX_DEPTH:
            raise self.fail(f"modules are nested more than {_MAX_DEPTH} deep")
        if isinstance(value, list):
            return [self.value(v, depth + 1, children) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (tag, content), = value.items()
            if tag == "module":
                children.append(self.module(content, depth + 1))
                return children[-1]
            if tag == "tuple" and isinstance(content, list):
                return tuple(self.value(v, depth + 1, children) for v in content)
            if tag == "dict" and isinstance(content, dict):
                return {k: self.value(v, depth + 1, children) for k, v in content.items()}
            if tag == "float" and content in ("inf", "-inf", "nan"):
                return float(content)
            if tag == "dtype" and isinstance(content, str):
                return self.dtype(content)
        raise self.fail(f"unexpected value {_short(value)} in the architecture")

    def dtype(self, name: str) -> np.dtype:
        try:
            dtype = np.dtype(name)
        except Exception:                               # numpy's TypeError, ValueError, …
            dtype = None
        if dtype is None or dtype.name != name or dtype.kind not in "biuf":
            raise self.fail(f"unknown dtype {_short(name)} (a model file names numeric dtypes "
                            f"such as 'float32')")
        return dtype

    def check_declared_state(self, cls: type, name: str, path: str, config: dict[str, Any]
                             ) -> dict:
        """The state `cls` declares for `config`, once the file holds each array of it (name,
        shape, dtype); {} for a user's class that declares nothing (checked once built)."""
        if not (is_builtin(cls) or "state_spec" in vars(cls)):
            return {}
        try:
            state = cls.state_spec(config)
        except Exception as error:
            raise self.rebuild_error(name, path, config, error) from None
        problems = []
        for key, (shape, dtype) in state.items():
            key = f"{path}.{key}" if path else key
            array = self.arrays.get(key)
            dtype = self.build_dtype(path) if dtype is None else np.dtype(dtype)
            if array is None:
                problems.append(f"{_where(path)} has {key!r} but the file has no such array")
            elif array.shape != tuple(shape) or array.dtype != dtype:
                problems.append(f"{key!r} is {dtype}{tuple(shape)} in the architecture but "
                                f"{array.dtype}{array.shape} in the file")
        if problems:
            raise self.fail(f"the arrays do not fit the architecture: "
                            f"{_short('; '.join(problems), str, _LISTED)}")
        return state

    def build_dtype(self, path: str) -> np.dtype:
        """The float dtype the module at `path` is built in: its first saved float array's
        (so a float64 Linear before a float32 BatchNorm keeps both), else the default."""
        dtype = self.dtypes.get(path)
        return dtype if dtype in _FLOAT_DTYPES else get_default_dtype()

    def rebuild_error(self, name: str, path: str, config: dict[str, Any], error: BaseException
                      ) -> ValueError:
        shown = ", ".join(f"{k}={v!r}" for k, v in config.items()
                          if not isinstance(v, (_Ref, list, tuple, dict)))
        return self.fail(f"{_where(path)} ({name}) cannot be rebuilt from its saved arguments "
                         f"({_short(shown, str)}): {type(error).__name__}: {_short(error, str)} "
                         f"(did its constructor change since the file was saved?)")

    # --- building -----------------------------------------------------------------------------

    def build(self) -> Module:
        """Every entry constructed, children first, each under its own float dtype in this
        thread only; the random generator's state left as it was; each module's mode set."""
        built: dict[int, Module] = {}
        generator = get_generator().bit_generator
        saved_state = generator.state
        try:
            for entry in self.entries.values():
                config = {key: _resolve(value, built) for key, value in entry.config.items()}
                try:
                    with using_config("thread_dtype", self.build_dtype(entry.path)):
                        module = entry.cls.from_config(config)
                except Exception as error:
                    raise self.rebuild_error(entry.name, entry.path, entry.config, error
                                             ) from None
                if not isinstance(module, Module):
                    raise self.fail(f"{_where(entry.path)}: {entry.name}.from_config returned "
                                    f"a {type(module).__name__}, not a Module")
                built[entry.number] = module
        finally:
            generator.state = saved_state
        model = built[self.root.number]
        model.train(self.root_training)
        for entry in self.entries.values():
            if entry.training is not None:
                object.__setattr__(built[entry.number], "training", entry.training)
        return model


def _is_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _resolve(value: Any, built: Mapping[int, Module]) -> Any:
    """A parsed argument with its placeholders replaced by the modules built for them."""
    if isinstance(value, _Ref):
        return built[value.number]
    if isinstance(value, list):
        return [_resolve(v, built) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve(v, built) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, built) for k, v in value.items()}
    return value


def _first_float_dtypes(arrays: Mapping[str, np.ndarray]) -> dict[str, np.dtype]:
    """{module path: the dtype of the first float array under it}, "" for the whole file."""
    dtypes: dict[str, np.dtype] = {}
    for key, array in arrays.items():
        if array.dtype.kind == "f":
            parts = key.split(".")
            for end in range(len(parts)):
                dtypes.setdefault(".".join(parts[:end]), array.dtype)
    return dtypes


def _differences(expected: Mapping[str, Any], found: Mapping[str, np.ndarray],
                 saving: bool) -> str:
    """What differs between a built model's state (name -> Tensor) and the arrays found (the
    file's on loading, the model's on saving): each array named with its module's path, and
    its shape and dtype. Empty when they fit."""
    other, rebuilt = ("the model", " rebuilt") if saving else ("the file", "")

    def owner(key: str) -> str:
        return _where(key.rpartition(".")[0])

    problems = [f"{owner(k)}{rebuilt} has {k!r} but {other} has no such array" for k in expected
                if k not in found]
    problems += [f"{other} has an array {k!r} that {owner(k)}{rebuilt} does not have"
                 for k in found if k not in expected]
    for key, tensor in expected.items():
        array = tensor.data
        if key in found and (array.shape != found[key].shape or array.dtype != found[key].dtype):
            what = "shape" if array.shape != found[key].shape else "dtype"
            problems.append(f"{what} mismatch for {key!r}: {array.dtype}{array.shape} in "
                            f"{owner(key)}{rebuilt} but {found[key].dtype}{found[key].shape} "
                            f"in {other}")
    return "; ".join(problems)
