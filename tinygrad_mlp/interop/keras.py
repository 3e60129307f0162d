"""Keras models in: `from_keras(path)` turns a saved Keras model into an `nn.Model` in tm's layout.

    model = tm.from_keras("emotion_model.hdf5")     # or a Keras 3 ".keras" file
    probabilities = tm.predict(model, faces)         # faces (N, 1, 64, 64): tm's (N, C, H, W)

Reads a Keras 3 `.keras` zip (config.json + model.weights.h5) or a Keras 2/3 HDF5 file (a
`model_config` attribute + `model_weights` groups), Sequential or functional, with h5py (the
`keras` extra) and never Keras itself. Three passes: the config is parsed into layer calls;
every call is planned in Keras's channels-last shapes, each weight's shape and dtype checked
against the layer (on the HDF5 metadata, before reading it) and moved into tm's layout; only
then are the modules built. So a file this reader refuses (a `Lambda`, whose file holds
marshalled Python code and is never run; an unsupported layer; a missing, misshapen or
non-float32 weight; a truncated file; a config too large or too deep) is one ValueError naming
the file and the layer, and nothing is built.

Layout: images are (N, C, H, W) in tm and (N, H, W, C) in Keras. Kernels move from Keras's
(kh, kw, in, out) to (out, in, kh, kw); a Dense (or BatchNormalization) reading a flattened
image gets its rows permuted from channels-last to channels-first order, so outputs equal
Keras's; where a flattened image must keep Keras's order (a model output, Reshape,
Concatenate), it is put back in that order by a Reshape + Permute + Flatten.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["from_keras", "SUPPORTED_LAYERS"]

SUPPORTED_LAYERS = ("InputLayer", "Dense", "Conv2D", "DepthwiseConv2D", "SeparableConv2D",
                    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                    "GlobalMaxPooling2D", "BatchNormalization", "Activation", "ReLU",
                    "LeakyReLU", "ELU", "Softmax", "Dropout", "Flatten", "Reshape", "Rescaling",
                    "ZeroPadding2D", "Add", "Multiply", "Concatenate")
# Keras's activation names → (nn class name, its arguments); softmax's axis is set per input
_ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "linear": ("Identity", {}), "relu": ("ReLU", {}), "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}), "softmax": ("Softmax", {}), "elu": ("ELU", {"alpha": 1.0}),
    "softplus": ("Softplus", {}), "leaky_relu": ("LeakyReLU", {"negative_slope": 0.2}),
    "gelu": ("GELU", {"approximate": "none"})}
_MODEL_CLASSES = ("Sequential", "Functional", "Model")
_MERGES = ("Add", "Multiply", "Concatenate")       # layers called on a list of tensors
_MAX_CONFIG_BYTES = 64 << 20          # a config.json or model_config larger than this is refused
_MAX_ATTRIBUTE_BYTES = 1 << 20        # a weight_names list larger than this is refused
_MAX_WEIGHTS_BYTES = 4 << 30          # a .keras file's model.weights.h5, uncompressed
_HDF5_MAGIC, _ZIP_MAGIC = b"\x89HDF\r\n\x1a\n", b"PK"

Ref = tuple[str, int, int]            # (layer name, call index, output index): a Keras tensor


def from_keras(path: str | os.PathLike) -> Any:
    """The Keras model saved at `path` as an `nn.Model` in eval mode, float32 as stored, taking
    (and giving) images as (N, C, H, W): pass Keras's (N, H, W, C) arrays as
    `x.transpose(0, 3, 1, 2)`. Outputs equal Keras's to float32 rounding. Layers: those of
    SUPPORTED_LAYERS (a fused `activation=` becomes its own node, named `<layer>_activation`).
    Any file this reader refuses is a ValueError naming the file and the layer."""
    path = os.fspath(path)
    with _open(path) as source:
        layers, inputs, outputs = _parse(source.config, path)
        plan = _Planner(source, layers).plan(inputs, outputs)
    name = source.config.get("config")
    name = name.get("name") if isinstance(name, dict) else None
    plan.name = _node_name(name) if isinstance(name, str) and name else None
    return _build(plan)


# --- the file ----------------------------------------------------------------------------------

class _Source:
    """An opened Keras file: its config (parsed JSON) and its layers' weights, checked."""

    def __init__(self, path: str, config: dict[str, Any], weights: Any, size: int,
                 zipped: bool, handles: list[Any]) -> None:
        self.path, self.config, self.root, self.size = path, config, weights, size
        self.zipped, self.handles = zipped, handles

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in reversed(self.handles):
            handle.close()

    def weights(self, layer: _Layer, expected: dict[str, tuple[int, ...]],
                aliases: dict[str, str] | None = None) -> dict[str, np.ndarray]:
        """{role: float32 array} for `layer`, exactly the roles of `expected` with its shapes
        (in that order: a .keras file stores them by position), each checked on the HDF5
        metadata before it is read; `aliases` maps another version's role names to ours."""
        datasets = (self._by_position(layer, list(expected)) if self.zipped
                    else self._by_name(layer, list(expected), aliases or {}))
        arrays = {}
        for role, dataset in datasets.items():
            where = f"weight {role!r}"
            if dataset.dtype != np.float32:
                raise _error(self.path, layer, f"{where} is {dataset.dtype}, expected float32")
            if tuple(dataset.shape) != expected[role]:
                raise _error(self.path, layer, f"{where} has shape {tuple(dataset.shape)}, "
                                               f"expected {expected[role]} from its config")
            if dataset.external or dataset.is_virtual:
                raise _error(self.path, layer, f"{where} points outside the file (external or "
                                               f"virtual storage); refused")
            if dataset.size * 4 > self.size:
                raise _error(self.path, layer, f"{where} declares {dataset.size * 4} bytes, more "
                                               f"than the {self.size}-byte file holds")
            try:
                arrays[role] = np.ascontiguousarray(dataset[()], dtype=np.float32)
            except (OSError, ValueError, KeyError) as error:
                raise _error(self.path, layer, f"{where} cannot be read: truncated or corrupt "
                                               f"({error})") from error
        return arrays

    def _by_name(self, layer: _Layer, roles: list[str], aliases: dict[str, str]) -> dict[str, Any]:
        group = _child(self.root, layer.name, self.path, layer, "a group of weights") \
            if roles else None
        if group is None:
            return {}
        names = _attribute(group, "weight_names", self.path, layer)
        names = [n.decode("utf-8") if isinstance(n, bytes) else str(n)
                 for n in np.atleast_1d(names if names is not None else [])]
        found: dict[str, Any] = {}
        for name in names:
            role = name.rsplit("/", 1)[-1].split(":")[0]
            role = aliases.get(role, role)
            if role not in roles or role in found:
                raise _error(self.path, layer, f"holds an unexpected weight {name!r}; expected "
                                               f"{', '.join(roles)}")
            found[role] = _child(group, name, self.path, layer, f"weight {role!r}")
        missing = [role for role in roles if role not in found]
        if missing:
            raise _error(self.path, layer, f"weight {missing[0]!r} is missing (the file holds "
                                           f"{', '.join(found) or 'none'})")
        return {role: found[role] for role in roles}

    def _by_position(self, layer: _Layer, roles: list[str]) -> dict[str, Any]:
        group = self.root.get("layers", getlink=True)
        group = _child(self.root, f"layers/{layer.store}/vars", self.path, layer,
                       "a group of weights", required=bool(roles)) if group is not None else None
        stored = sorted(group.keys(), key=lambda k: (len(k), k)) if group is not None else []
        if stored != [str(i) for i in range(len(roles))]:
            raise _error(self.path, layer, f"holds weights {stored}, expected {len(roles)} "
                                           f"({', '.join(roles)})")
        return {role: _child(group, str(i), self.path, layer, f"weight {role!r}")
                for i, role in enumerate(roles)}


def _open(path: str) -> _Source:
    """The file at `path`, recognised by its first bytes (zip: .keras; HDF5: .h5/.hdf5)."""
    try:
        with open(path, "rb") as file:
            start = file.read(8)
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"from_keras: no such file: {path!r}") from None
    except IsADirectoryError:
        raise ValueError(f"from_keras: {path!r} is a directory, not a Keras model file "
                         f"(a SavedModel folder is not read: save with model.save('m.keras'))"
                         ) from None
    if start.startswith(_ZIP_MAGIC):
        return _open_keras_zip(path)
    if start == _HDF5_MAGIC:
        h5py = _h5py()
        try:
            handle = h5py.File(path, "r")
        except OSError as error:
            raise ValueError(f"from_keras: {path!r} is a truncated or corrupt HDF5 file "
                             f"({error})") from error
        try:
            text = _attribute(handle, "model_config", path, None, _MAX_CONFIG_BYTES)
            if text is None:
                raise ValueError(f"from_keras: {path!r} has no model_config: it holds weights "
                                 f"only (model.save_weights); save the whole model")
            weights = handle.get("model_weights", getlink=True)
            if not isinstance(weights, h5py.HardLink):
                raise ValueError(f"from_keras: {path!r} has no model_weights group")
            config = _json(text, path, "model_config")
            return _Source(path, config, handle["model_weights"], size, False, [handle])
        except BaseException:
            handle.close()
            raise
    raise ValueError(f"from_keras: {path!r} is neither a Keras 3 .keras file (a zip) nor a "
                     f"Keras HDF5 file (it starts with {start!r})")


def _open_keras_zip(path: str) -> _Source:
    h5py = _h5py()
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ValueError(f"from_keras: {path!r} is a truncated or corrupt .keras file (not a "
                         f"readable zip: {error})") from error
    try:
        config_text = _member(archive, "config.json", _MAX_CONFIG_BYTES, path)
        weights = _member(archive, "model.weights.h5", _MAX_WEIGHTS_BYTES, path)
        config = _json(config_text, path, "config.json")
        try:
            handle = h5py.File(io.BytesIO(weights), "r")
        except OSError as error:
            raise ValueError(f"from_keras: {path!r}: model.weights.h5 is a truncated or corrupt "
                             f"HDF5 file ({error})") from error
    finally:
        archive.close()
    return _Source(path, config, handle, len(weights), True, [handle])


def _member(archive: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes:
    """A zip member's bytes, its declared size bounded first (a member inflates no further)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ValueError(f"from_keras: {path!r} has no {name} (is it a Keras 3 .keras file?)"
                         ) from None
    if info.file_size > limit:
        raise ValueError(f"from_keras: {path!r}: {name} declares {info.file_size} bytes, more "
                         f"than the {limit} this reader accepts")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as error:
        raise ValueError(f"from_keras: {path!r}: {name} is truncated or corrupt "
                         f"({error})") from error


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError("from_keras needs h5py, an optional extra: pip install "
                          "'tinygrad_mlp[keras]' (or pip install h5py)") from None
    return h5py


def _json(text: Any, path: str, what: str) -> dict[str, Any]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        config = json.loads(text)
    except RecursionError:
        raise ValueError(f"from_keras: {path!r}: {what} is nested too deep") from None
    except ValueError as error:
        raise ValueError(f"from_keras: {path!r}: {what} is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"from_keras: {path!r}: {what} is not a model's config (a JSON object)")
    return config


def _attribute(node: Any, name: str, path: str, layer: _Layer | None,
               limit: int = _MAX_ATTRIBUTE_BYTES) -> Any:
    """An HDF5 attribute, or None. What it holds lies in the file, so reading it allocates no
    more than the file's size; then it must be under `limit` bytes."""
    if name not in node.attrs:
        return None
    try:
        value = node.attrs[name]
    except (OSError, ValueError, TypeError) as error:
        raise _error(path, layer, f"attribute {name!r} cannot be read ({error})") from error
    if isinstance(value, (str, bytes)):
        size = len(value)
    elif isinstance(value, np.ndarray) and value.dtype.kind == "O":       # variable-length strings
        size = sum(len(v) for v in value.ravel() if isinstance(v, (str, bytes)))
    else:
        size = np.asarray(value).nbytes
    if size > limit:
        raise _error(path, layer, f"attribute {name!r} holds {size} bytes, more than the "
                                  f"{limit} this reader accepts")
    return value


def _child(group: Any, name: str, path: str, layer: _Layer, what: str,
           required: bool = True) -> Any:
    """group[name], following only links inside the file (never a soft or external link)."""
    h5py = _h5py()
    node = group
    for part in name.split("/"):
        link = node.get(part, getlink=True) if isinstance(node, h5py.Group) else None
        if link is None:
            if not required:
                return None
            raise _error(path, layer, f"{what} ({name!r}) is missing from the file")
        if not isinstance(link, h5py.HardLink):
            raise _error(path, layer, f"{what} ({name!r}) is a link ({type(link).__name__}); "
                                      f"refused")
        node = node[part]
    return node


def _error(path: str, layer: _Layer | None, message: str) -> ValueError:
    where = f", layer {layer.name!r} ({layer.cls})" if layer else ""
    return ValueError(f"from_keras: {path!r}{where}: {message}")


# --- the config: layers and their calls ---------------------------------------------------------

@dataclass
class _Layer:
    name: str
    cls: str
    config: dict[str, Any]
    calls: list[list[Ref]] = field(default_factory=list)   # each call's input tensors
    store: str = ""              # its folder in a .keras file's weights: from its class, not name


def _parse(config: dict[str, Any], path: str) -> tuple[list[_Layer], list[Ref], list[Ref]]:
    """(layers, the model's inputs, its outputs) from a Keras model config, Sequential or
    functional, Keras 2 or 3."""
    cls, inner = config.get("class_name"), config.get("config")
    if cls not in _MODEL_CLASSES:
        raise ValueError(f"from_keras: {path!r} holds a {cls!r}, not a Keras model "
                         f"(Sequential or functional)")
    layer_configs = inner if isinstance(inner, list) else (inner or {}).get("layers")
    if not isinstance(layer_configs, list) or not layer_configs:
        raise ValueError(f"from_keras: {path!r}: the model's config lists no layers")
    layers = [_layer(entry, path, i) for i, entry in enumerate(layer_configs)]
    _number_stores(layers)
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise ValueError(f"from_keras: {path!r}: two layers share a name")
    if cls == "Sequential":
        return _sequential(layers, inner if isinstance(inner, dict) else {}, path)
    for layer, entry in zip(layers, layer_configs):
        layer.calls = [_call(node, path, layer) for node in entry.get("inbound_nodes") or []]
    return layers, _refs(inner.get("input_layers"), path), _refs(inner.get("output_layers"), path)


def _number_stores(layers: list[_Layer]) -> None:
    """Keras 3 stores a layer's weights under its class in snake case, numbered in model order
    from the second on ("dense", "dense_1", …), whatever the layer's name."""
    used: dict[str, int] = {}
    for layer in layers:
        name = re.sub(r"\W+", "", layer.cls)
        name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
        name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        layer.store = name


def _layer(entry: Any, path: str, index: int) -> _Layer:
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise ValueError(f"from_keras: {path!r}: layer #{index} of the config is not a layer")
    name = entry.get("name", entry["config"].get("name"))
    cls = entry.get("class_name")
    if not isinstance(name, str) or not isinstance(cls, str):
        raise ValueError(f"from_keras: {path!r}: layer #{index} has no name or class")
    return _Layer(name, cls, entry["config"])


def _sequential(layers: list[_Layer], config: dict[str, Any], path: str
                ) -> tuple[list[_Layer], list[Ref], list[Ref]]:
    """A Sequential model as a chain of calls, its InputLayer made when the file has none."""
    if layers[0].cls != "InputLayer":
        first = layers[0].config
        shape = (first.get("batch_input_shape") or first.get("batch_shape")
                 or config.get("build_input_shape"))
        if shape is None:
            raise ValueError(f"from_keras: {path!r}: the Sequential model was never built "
                             f"(no input shape in its config)")
        name = "input"
        while name in {layer.name for layer in layers}:
            name += "_"
        layers.insert(0, _Layer(name, "InputLayer", {"batch_shape": shape}))
    for previous, layer in zip(layers, layers[1:]):
        layer.calls = [[(previous.name, 0, 0)]]
    return layers, [(layers[0].name, 0, 0)], [(layers[-1].name, 0, 0)]


def _call(node: Any, path: str, layer: _Layer) -> list[Ref]:
    """The tensors one call of a layer takes: Keras 3's {"args", "kwargs"} or Keras 2's list."""
    if isinstance(node, dict):                                   # Keras 3
        refs: list[Ref] = []
        _find_tensors(node.get("args", []), refs, path, layer)
        kwargs: list[Ref] = []
        _find_tensors(node.get("kwargs", {}), kwargs, path, layer)
        if kwargs:
            raise _error(path, layer, "takes a tensor as a keyword argument; not supported")
        return refs
    if isinstance(node, list):                                   # Keras 2
        return [_ref(entry[:3] if isinstance(entry, list) else entry, path) for entry in node]
    raise _error(path, layer, f"has an inbound node that is not a call: {node!r:.80}")


def _find_tensors(value: Any, found: list[Ref], path: str, layer: _Layer) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
            found.append(_ref((item.get("config") or {}).get("keras_history"), path))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _refs(value: Any, path: str) -> list[Ref]:
    """input_layers / output_layers: one [name, node, index] or a list of them."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ValueError(f"from_keras: {path!r}: the config names no model inputs or outputs")
    return [_ref(v, path) for v in value]


def _ref(value: Any, path: str) -> Ref:
    if (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:])):
        return value[0], value[1], value[2]
    raise ValueError(f"from_keras: {path!r}: {value!r:.80} is not a tensor reference "
                     f"[layer, node, index]")


# --- planning: each call in Keras's shapes, weights checked, into tm's layout --------------------

@dataclass
class _Spec:
    """One tm module to build: its nn class name, arguments and state (parameters, buffers)."""
    cls: str
    kwargs: dict[str, Any]
    state: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = ""                   # its node name (a shared module has one)


@dataclass
class _Value:
    """A Keras tensor as tm holds it: its Keras per-sample shape (channels last), and, for a
    flattened image, the (H, W, C) it came from (tm's features are then in C, H, W order)."""
    shape: tuple[int, ...]
    flat_from: tuple[int, int, int] | None = None


@dataclass
class _Step:
    name: str
    spec: _Spec                      # one object per module: a layer called twice shares it
    inputs: list[int]                # value ids
    output: int


@dataclass
class _Plan:
    inputs: list[tuple[str, tuple[int, ...], int]]     # (name, tm per-sample shape, value id)
    steps: list[_Step]
    outputs: list[int]
    name: str | None = None          # the Keras model's


def _node_name(name: str) -> str:
    """A Keras name as an nn.Model node name ('.' and ':' would split state_dict keys)."""
    return name.replace(".", "_").replace(":", "_")


def _depthwise_weight(kernel: np.ndarray) -> np.ndarray:
    """Keras's depthwise kernel (kh, kw, C, M) as a grouped Conv2d's weight (C·M, 1, kh, kw):
    output channel c·M + m is input channel c's m-th filter, Keras's order."""
    height, width, channels, multiplier = kernel.shape
    return kernel.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, height, width)


def tm_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A Keras per-sample shape in tm's layout: (H, W, C) → (C, H, W); others unchanged."""
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def _channels_first_order(height: int, width: int, channels: int) -> np.ndarray:
    """For each feature of a tm-flattened (C, H, W) image, its index in Keras's (H, W, C)."""
    return np.arange(height * width * channels).reshape(height, width, channels
                                                        ).transpose(2, 0, 1).ravel()


class _Planner:
    def __init__(self, source: _Source, layers: list[_Layer]) -> None:
        self.source, self.path = source, source.path
        self.layers = {layer.name: layer for layer in layers}
        self.order = layers
        self.values: list[_Value] = []
        self.steps: list[_Step] = []
        self.tensors: dict[Ref, int] = {}              # Keras tensor → value id
        self.specs: dict[tuple[str, str], _Spec] = {}  # (layer, part) → module, for later calls
        self.current = ""                              # the layer being planned
        self.ordered: dict[int, int] = {}              # value → the same in Keras's order
        self.names: set[str] = set()                   # node names taken
        self.inputs: list[tuple[str, tuple[int, ...], int]] = []
        self.handlers: dict[str, Callable[[_Layer, list[int]], int]] = {
            "Dense": self.dense, "Conv2D": self.conv, "DepthwiseConv2D": self.depthwise,
            "SeparableConv2D": self.separable, "MaxPooling2D": self.pool,
            "AveragePooling2D": self.pool, "GlobalAveragePooling2D": self.global_pool,
            "GlobalMaxPooling2D": self.global_pool, "BatchNormalization": self.batch_norm,
            "Activation": self.activation_layer, "ReLU": self.relu, "LeakyReLU": self.leaky_relu,
            "ELU": self.elu, "Softmax": self.softmax, "Dropout": self.dropout,
            "Flatten": self.flatten, "Reshape": self.reshape, "Rescaling": self.rescaling,
            "ZeroPadding2D": self.zero_padding, "Add": self.merge, "Multiply": self.merge,
            "Concatenate": self.concatenate}

    def plan(self, inputs: list[Ref], outputs: list[Ref]) -> _Plan:
        for layer in self.order:                       # every layer checked, called or not
            if layer.cls == "Lambda":
                raise _error(self.path, layer, "a Lambda layer holds marshalled Python code, "
                                               "which from_keras never runs; rebuild it from "
                                               "supported layers")
            if layer.cls != "InputLayer" and layer.cls not in self.handlers:
                raise _error(self.path, layer, f"this layer is not supported; supported: "
                                               f"{', '.join(SUPPORTED_LAYERS)}")
        for ref in inputs:
            layer = self.layers.get(ref[0])
            if layer is None or layer.cls != "InputLayer" or ref[1:] != (0, 0):
                raise ValueError(f"from_keras: {self.path!r}: model input {list(ref)} is not "
                                 f"an InputLayer")
            self.input_layer(layer)
        pending = [(layer, i) for layer in self.order if layer.cls != "InputLayer"
                   for i in range(len(layer.calls))]
        while pending:                                 # configs list layers in call order,
            waiting = []                               # but a shared layer's calls need not be
            for layer, i in pending:
                refs = layer.calls[i]
                if all(ref in self.tensors for ref in refs):
                    ids = [self.tensors[ref] for ref in refs]
                    self.tensors[(layer.name, i, 0)] = self.call(layer, i, ids)
                else:
                    waiting.append((layer, i))
            if len(waiting) == len(pending):
                layer, i = waiting[0]
                missing = [list(r) for r in layer.calls[i] if r not in self.tensors]
                raise _error(self.path, layer, f"reads tensors {missing} that no layer makes")
            pending = waiting
        ids = []
        for ref in outputs:
            if ref not in self.tensors:
                raise ValueError(f"from_keras: {self.path!r}: model output {list(ref)} is "
                                 f"made by no layer")
            ids.append(self.keras_order(self.tensors[ref], ref[0]))
        return _Plan(self.inputs, self.steps, ids)

    # helpers -------------------------------------------------------------------------------

    def fail(self, layer: _Layer, message: str) -> ValueError:
        return _error(self.path, layer, message)

    def new_value(self, shape: tuple[int, ...], flat_from: Any = None) -> int:
        self.values.append(_Value(tuple(int(s) for s in shape), flat_from))
        return len(self.values) - 1

    def add(self, name: str, spec: _Spec, inputs: list[int], shape: tuple[int, ...],
            flat_from: Any = None) -> int:
        """A node calling `spec`'s module on `inputs`, named `name` (or as its first call)."""
        if not spec.name:
            spec.name = self.node_name(name)
        output = self.new_value(shape, flat_from)
        self.steps.append(_Step(spec.name, spec, inputs, output))
        return output

    def node_name(self, base: str) -> str:
        """`base`, or `base_` … when taken or (for a node a layer adds) another layer's name."""
        name = _node_name(base)
        while name in self.names or name in self.layers and name != self.current:
            name += "_"
        self.names.add(name)
        return name

    def call(self, layer: _Layer, index: int, ids: list[int]) -> int:
        merge = layer.cls in _MERGES
        if merge and len(ids) < 2 or not merge and len(ids) != 1:
            raise self.fail(layer, f"takes {'two or more inputs' if merge else 'one input'}, "
                                   f"got {len(ids)}")
        if layer.config.get("data_format", "channels_last") != "channels_last":
            raise self.fail(layer, f"data_format {layer.config['data_format']!r}: only "
                                   f"channels_last is read")
        self.current = layer.name
        return self.handlers[layer.cls](layer, ids)

    def spec(self, layer: _Layer, part: str, make: Callable[[], _Spec]) -> _Spec:
        """The layer's module `part`: made on its first call, shared by later ones."""
        key = (layer.name, part)
        if key not in self.specs:
            self.specs[key] = make()
        return self.specs[key]

    def shape(self, value: int) -> tuple[int, ...]:
        return self.values[value].shape

    def image(self, layer: _Layer, value: int) -> tuple[int, int, int]:
        shape = self.shape(value)
        if len(shape) != 3:
            raise self.fail(layer, f"expects images (H, W, C), got per-sample shape {shape}")
        return shape  # type: ignore[return-value]

    def keras_order(self, value: int, name: str) -> int:
        """`value` with its features in Keras's order (a Reshape + Permute + Flatten when it is
        a flattened image in tm's order)."""
        flat_from = self.values[value].flat_from
        if flat_from is None:
            return value
        if value in self.ordered:
            return self.ordered[value]
        height, width, channels = flat_from
        image = self.add(f"{name}_unflatten",
                         _Spec("Reshape", {"shape": (channels, height, width)}), [value],
                         self.shape(value))
        permuted = self.add(f"{name}_to_channels_last",
                            _Spec("Permute", {"dims": (2, 3, 1)}), [image], self.shape(value))
        self.ordered[value] = self.add(f"{name}_flatten", _Spec("Flatten", {}),
                                       [permuted], self.shape(value))
        return self.ordered[value]

    def activation(self, layer: _Layer, name: Any, value: int, node: str) -> int:
        """A node for Keras activation `name` on `value` ("linear" fused: no node)."""
        if isinstance(name, dict):                   # Keras 3 may serialise it as an object
            name = name.get("config", name.get("class_name"))
        if name is None or name == "linear" and node != layer.name:
            return value
        if name not in _ACTIVATIONS:
            raise self.fail(layer, f"activation {name!r} is not supported; supported: "
                                   f"{', '.join(_ACTIVATIONS)}")
        cls, kwargs = _ACTIVATIONS[name]
        if cls == "Softmax":
            kwargs = {"axis": 1 if len(self.shape(value)) == 3 else -1}
        spec = self.spec(layer, "activation", lambda: _Spec(cls, dict(kwargs)))
        return self.add(node, spec, [value], self.shape(value),
                        self.values[value].flat_from)

    def fused(self, layer: _Layer, value: int) -> int:
        return self.activation(layer, layer.config.get("activation"), value,
                               f"{layer.name}_activation")

    def pairs(self, layer: _Layer, name: str, default: Any = None) -> tuple[int, int]:
        value = layer.config.get(name, default)
        value = [value, value] if isinstance(value, int) else value
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                           for v in value)):
            raise self.fail(layer, f"{name} must be a pair of positive ints, got {value!r}")
        return value[0], value[1]

    def padding(self, layer: _Layer) -> str:
        padding = layer.config.get("padding", "valid")
        if padding not in ("valid", "same"):
            raise self.fail(layer, f"padding {padding!r}: only 'valid' and 'same' are read")
        return padding

    def window_shape(self, layer: _Layer, shape: tuple[int, int, int], kernel: tuple[int, int],
                     stride: tuple[int, int], dilation: tuple[int, int], channels: int
                     ) -> tuple[int, int, int]:
        same = self.padding(layer) == "same"
        out = []
        for size, k, s, d in zip(shape[:2], kernel, stride, dilation):
            span = (k - 1) * d + 1
            out.append(-(-size // s) if same else (size - span) // s + 1)
            if out[-1] < 1:
                raise self.fail(layer, f"its window {kernel} does not fit the input "
                                       f"{shape[:2]}")
        return out[0], out[1], channels

    def int_config(self, layer: _Layer, name: str, default: Any = None) -> int:
        value = layer.config.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(layer, f"{name} must be a positive int, got {value!r}")
        return value

    def bool_config(self, layer: _Layer, name: str, default: bool) -> bool:
        value = layer.config.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(layer, f"{name} must be true or false, got {value!r}")
        return value

    def float_config(self, layer: _Layer, name: str, default: Any) -> float:
        value = layer.config.get(name, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                not math.isfinite(value):
            raise self.fail(layer, f"{name} must be a finite number, got {value!r}")
        return float(value)

    # the layers ----------------------------------------------------------------------------

    def input_layer(self, layer: _Layer) -> None:
        config = layer.config
        shape = config.get("batch_shape", config.get("batch_input_shape"))
        if not isinstance(shape, list) or len(shape) < 2:
            raise self.fail(layer, f"has no input shape, got {shape!r}")
        sample = shape[1:]
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sample):
            raise self.fail(layer, f"input shape {sample} has unknown sizes; from_keras needs "
                                   f"fixed ones")
        if config.get("dtype", "float32") not in ("float32", None):
            raise self.fail(layer, f"input dtype {config['dtype']!r}: only float32 is read")
        value = self.new_value(tuple(sample))
        self.inputs.append((layer.name, tm_shape(tuple(sample)), value))
        self.tensors[(layer.name, 0, 0)] = value

    def dense(self, layer: _Layer, ids: list[int]) -> int:
        shape = self.shape(ids[0])
        if len(shape) != 1:
            raise self.fail(layer, f"a Dense on per-sample shape {shape} is not read; only on "
                                   f"vectors (put a Flatten before it)")
        units = self.int_config(layer, "units")
        bias = self.bool_config(layer, "use_bias", True)
        flat_from = self.values[ids[0]].flat_from
        value = ids[0] if len(layer.calls) == 1 else self.keras_order(ids[0], layer.name)

        def make() -> _Spec:
            weights = self.source.weights(layer, {"kernel": (shape[0], units)} |
                                          ({"bias": (units,)} if bias else {}))
            kernel = weights["kernel"]
            if flat_from is not None and value == ids[0]:
                kernel = kernel[_channels_first_order(*flat_from)]
            state = {"weight": kernel} | ({"bias": weights["bias"]} if bias else {})
            return _Spec("Linear", {"in_features": shape[0], "out_features": units,
                                    "bias": bias}, state)
        spec = self.spec(layer, "main", make)
        out = self.add(layer.name, spec, [value], (units,))
        return self.fused(layer, out)

    def conv(self, layer: _Layer, ids: list[int]) -> int:
        height, width, channels = self.image(layer, ids[0])
        filters = self.int_config(layer, "filters")
        groups = self.int_config(layer, "groups", 1)
        kernel = self.pairs(layer, "kernel_size")
        stride, dilation = self.pairs(layer, "strides", 1), self.pairs(layer, "dilation_rate", 1)
        bias = self.bool_config(layer, "use_bias", True)
        if channels % groups or filters % groups:
            raise self.fail(layer, f"groups={groups} must divide its {channels} input channels "
                                   f"and {filters} filters")

        def make() -> _Spec:
            weights = self.source.weights(
                layer, {"kernel": (*kernel, channels // groups, filters)} |
                ({"bias": (filters,)} if bias else {}))
            state = {"weight": weights["kernel"].transpose(3, 2, 0, 1)}
            return _Spec("Conv2d", dict(
                in_channels=channels, out_channels=filters, kernel_size=kernel, groups=groups,
                bias=bias, **self.conv_geometry(layer)),
                state | ({"bias": weights["bias"]} if bias else {}))
        out_shape = self.window_shape(layer, (height, width, channels), kernel, stride,
                                      dilation, filters)
        out = self.add(layer.name, self.spec(layer, "main", make), ids, out_shape)
        return self.fused(layer, out)

    def conv_geometry(self, layer: _Layer) -> dict[str, Any]:
        """The stride, padding and dilation arguments of a Conv2d for this Keras layer."""
        return dict(stride=self.pairs(layer, "strides", 1),
                    padding=0 if self.padding(layer) == "valid" else "same",
                    dilation=self.pairs(layer, "dilation_rate", 1))

    def depthwise(self, layer: _Layer, ids: list[int]) -> int:
        """DepthwiseConv2D as a Conv2d with groups = its input channels."""
        shape = self.image(layer, ids[0])
        channels, multiplier = shape[2], self.int_config(layer, "depth_multiplier", 1)
        kernel = self.pairs(layer, "kernel_size")
        bias = self.bool_config(layer, "use_bias", True)

        def make() -> _Spec:
            weights = self.source.weights(
                layer, {"kernel": (*kernel, channels, multiplier)} |
                ({"bias": (channels * multiplier,)} if bias else {}),
                aliases={"depthwise_kernel": "kernel"})          # Keras 2's name for it
            state = {"weight": _depthwise_weight(weights["kernel"])}
            return _Spec("Conv2d", dict(
                in_channels=channels, out_channels=channels * multiplier, kernel_size=kernel,
                groups=channels, bias=bias, **self.conv_geometry(layer)),
                state | ({"bias": weights["bias"]} if bias else {}))
        out_shape = self.window_shape(layer, shape, kernel, self.pairs(layer, "strides", 1),
                                      self.pairs(layer, "dilation_rate", 1),
                                      channels * multiplier)
        spec = self.spec(layer, "main", make)
        return self.fused(layer, self.add(layer.name, spec, ids, out_shape))

    def separable(self, layer: _Layer, ids: list[int]) -> int:
        """SeparableConv2D: a depthwise node `<name>_depthwise`, then a 1×1 `<name>_pointwise`."""
        shape = self.image(layer, ids[0])
        channels, multiplier = shape[2], self.int_config(layer, "depth_multiplier", 1)
        filters = self.int_config(layer, "filters")
        kernel = self.pairs(layer, "kernel_size")
        bias = self.bool_config(layer, "use_bias", True)
        middle = channels * multiplier
        if (layer.name, "depthwise") not in self.specs:
            weights = self.source.weights(
                layer, {"depthwise_kernel": (*kernel, channels, multiplier),
                        "pointwise_kernel": (1, 1, middle, filters)} |
                ({"bias": (filters,)} if bias else {}))
            pointwise = {"weight": weights["pointwise_kernel"].transpose(3, 2, 0, 1)}
            self.specs[(layer.name, "depthwise")] = _Spec("Conv2d", dict(
                in_channels=channels, out_channels=middle, kernel_size=kernel, groups=channels,
                bias=False, **self.conv_geometry(layer)),
                {"weight": _depthwise_weight(weights["depthwise_kernel"])})
            self.specs[(layer.name, "pointwise")] = _Spec("Conv2d", dict(
                in_channels=middle, out_channels=filters, kernel_size=1, bias=bias),
                pointwise | ({"bias": weights["bias"]} if bias else {}))
        middle_shape = self.window_shape(layer, shape, kernel, self.pairs(layer, "strides", 1),
                                         self.pairs(layer, "dilation_rate", 1), middle)
        value = self.add(f"{layer.name}_depthwise",
                         self.specs[(layer.name, "depthwise")], ids, middle_shape)
        value = self.add(f"{layer.name}_pointwise",
                         self.specs[(layer.name, "pointwise")], [value],
                         (*middle_shape[:2], filters))
        return self.fused(layer, value)

    def pool(self, layer: _Layer, ids: list[int]) -> int:
        shape = self.image(layer, ids[0])
        kernel = self.pairs(layer, "pool_size", 2)
        stride = kernel if layer.config.get("strides") is None else self.pairs(layer, "strides")
        padding = self.padding(layer)
        cls = "MaxPool2d" if layer.cls == "MaxPooling2D" else "AvgPool2d"
        spec = self.spec(layer, "main", lambda: _Spec(cls, dict(
            kernel_size=kernel, stride=stride, padding=0 if padding == "valid" else "same")))
        out_shape = self.window_shape(layer, shape, kernel, stride, (1, 1), shape[2])
        return self.add(layer.name, spec, ids, out_shape)

    def global_pool(self, layer: _Layer, ids: list[int]) -> int:
        channels = self.image(layer, ids[0])[2]
        keepdims = self.bool_config(layer, "keepdims", False)
        cls = "AdaptiveAvgPool2d" if layer.cls == "GlobalAveragePooling2D" else "AdaptiveMaxPool2d"
        pooled = self.add(layer.name,
                          self.spec(layer, "main", lambda: _Spec(cls, {"output_size": 1})), ids,
                          (1, 1, channels))
        if keepdims:
            return pooled
        return self.add(f"{layer.name}_flatten",
                        self.spec(layer, "flatten", lambda: _Spec("Flatten", {})), [pooled],
                        (channels,))

    def batch_norm(self, layer: _Layer, ids: list[int]) -> int:
        shape = self.shape(ids[0])
        axis = layer.config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if len(shape) not in (1, 3) or axis not in (-1, len(shape)):
            raise self.fail(layer, f"normalises axis {axis!r} of per-sample shape {shape}; only "
                                   f"the channels (last axis) of vectors or images are read")
        if layer.config.get("renorm"):
            raise self.fail(layer, "renorm=True is not supported")
        channels = shape[-1]
        scale = self.bool_config(layer, "scale", True)
        center = self.bool_config(layer, "center", True)
        eps = self.float_config(layer, "epsilon", 1e-3)
        momentum = self.float_config(layer, "momentum", 0.99)
        if eps <= 0 or not 0 <= momentum <= 1:
            raise self.fail(layer, f"epsilon {eps} must be > 0 and momentum {momentum} in [0, 1]")
        flat_from = self.values[ids[0]].flat_from
        value = ids[0] if len(layer.calls) == 1 else self.keras_order(ids[0], layer.name)

        def make() -> _Spec:
            roles = ({"gamma": (channels,)} if scale else {}) | \
                ({"beta": (channels,)} if center else {})
            roles |= {"moving_mean": (channels,), "moving_variance": (channels,)}
            weights = self.source.weights(layer, roles)
            if flat_from is not None and value == ids[0]:
                order = _channels_first_order(*flat_from)
                weights = {role: array[order] for role, array in weights.items()}
            state = {"running_mean": weights["moving_mean"],
                     "running_var": weights["moving_variance"],
                     "num_batches_tracked": np.zeros((), dtype=np.int64)}
            if scale or center:
                state["weight"] = weights.get("gamma", np.ones(channels, dtype=np.float32))
                state["bias"] = weights.get("beta", np.zeros(channels, dtype=np.float32))
            return _Spec("BatchNorm2d" if len(shape) == 3 else "BatchNorm1d", dict(
                num_features=channels, eps=eps, momentum=1.0 - momentum,
                affine=scale or center), state)
        spec = self.spec(layer, "main", make)
        return self.add(layer.name, spec, [value], shape,
                        flat_from if value == ids[0] else None)

    def activation_layer(self, layer: _Layer, ids: list[int]) -> int:
        return self.activation(layer, layer.config.get("activation"), ids[0], layer.name)

    def simple(self, layer: _Layer, ids: list[int], cls: str, kwargs: dict[str, Any]) -> int:
        """A layer that keeps its input's shape and acts on each entry (or along the channels)."""
        spec = self.spec(layer, "main", lambda: _Spec(cls, kwargs))
        return self.add(layer.name, spec, ids, self.shape(ids[0]),
                        self.values[ids[0]].flat_from)

    def relu(self, layer: _Layer, ids: list[int]) -> int:
        config = layer.config
        slope = self.float_config(layer, "negative_slope", 0.0)
        if config.get("max_value") is not None or config.get("threshold", 0) != 0:
            raise self.fail(layer, "max_value and threshold are not supported (only a plain or "
                                   "leaky ReLU)")
        if slope:
            return self.simple(layer, ids, "LeakyReLU", {"negative_slope": slope})
        return self.simple(layer, ids, "ReLU", {})

    def leaky_relu(self, layer: _Layer, ids: list[int]) -> int:
        name = "negative_slope" if "negative_slope" in layer.config else "alpha"
        return self.simple(layer, ids, "LeakyReLU",
                           {"negative_slope": self.float_config(layer, name, 0.3)})

    def elu(self, layer: _Layer, ids: list[int]) -> int:
        return self.simple(layer, ids, "ELU", {"alpha": self.float_config(layer, "alpha", 1.0)})

    def softmax(self, layer: _Layer, ids: list[int]) -> int:
        shape = self.shape(ids[0])
        axis = layer.config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if not isinstance(axis, int) or not -len(shape) <= axis <= len(shape) or axis == 0:
            raise self.fail(layer, f"axis {axis!r} is not an axis of per-sample shape {shape}")
        axis = axis % (len(shape) + 1)                     # 1-based over the sample's axes
        tm_axis = {1: 2, 2: 3, 3: 1}[axis] if len(shape) == 3 else axis
        return self.simple(layer, ids, "Softmax", {"axis": tm_axis})

    def dropout(self, layer: _Layer, ids: list[int]) -> int:
        rate = self.float_config(layer, "rate", 0.5)
        if not 0 <= rate <= 1:
            raise self.fail(layer, f"rate must be in [0, 1], got {rate}")
        return self.simple(layer, ids, "Dropout", {"p": rate})

    def rescaling(self, layer: _Layer, ids: list[int]) -> int:
        scale = self.float_config(layer, "scale", None)
        offset = self.float_config(layer, "offset", 0.0)
        return self.simple(layer, ids, "Rescaling", {"scale": scale, "offset": offset})

    def flatten(self, layer: _Layer, ids: list[int]) -> int:
        shape = self.shape(ids[0])
        size = math.prod(shape)
        if len(shape) == 3:
            flat_from = shape
        elif len(shape) == 1:
            flat_from = self.values[ids[0]].flat_from
        else:
            flat_from = None
        spec = self.spec(layer, "main", lambda: _Spec("Flatten", {}))
        return self.add(layer.name, spec, ids, (size,), flat_from)

    def reshape(self, layer: _Layer, ids: list[int]) -> int:
        """Keras's order: to channels last, reshape, back to channels first for images."""
        shape = self.shape(ids[0])
        target = layer.config.get("target_shape")
        if not isinstance(target, list) or not all(isinstance(t, int) for t in target) or \
                sum(t == -1 for t in target) > 1 or any(t < 1 and t != -1 for t in target):
            raise self.fail(layer, f"target_shape must be a list of positive ints (one may be "
                                   f"-1), got {target!r}")
        known = math.prod(t for t in target if t != -1)
        size = math.prod(shape)
        target = [size // known if t == -1 else t for t in target]
        if math.prod(target) != size:
            raise self.fail(layer, f"cannot reshape per-sample shape {shape} to {target}")
        if len(target) not in (1, 2, 3):
            raise self.fail(layer, f"target_shape {target}: only 1 to 3 axes are read")
        value = self.keras_order(ids[0], layer.name)
        if len(shape) == 3:
            value = self.add(f"{layer.name}_to_channels_last",
                             self.spec(layer, "main", lambda: _Spec("Permute", {"dims": (2, 3, 1)})),
                             [value], shape)
        value = self.add(layer.name, self.spec(
            layer, "reshape", lambda: _Spec("Reshape", {"shape": tuple(target)})), [value],
            tuple(target))
        if len(target) == 3:
            value = self.add(f"{layer.name}_to_channels_first", self.spec(
                layer, "to_channels_first", lambda: _Spec("Permute", {"dims": (3, 1, 2)})), [value],
                tuple(target))
        return value

    def zero_padding(self, layer: _Layer, ids: list[int]) -> int:
        height, width, channels = self.image(layer, ids[0])
        padding = layer.config.get("padding", 1)
        if isinstance(padding, int):
            padding = [[padding, padding], [padding, padding]]
        elif isinstance(padding, list) and len(padding) == 2 and all(
                isinstance(p, int) for p in padding):
            padding = [[padding[0], padding[0]], [padding[1], padding[1]]]
        flat = [p for pair in padding for p in pair] if isinstance(padding, list) and all(
            isinstance(p, list) and len(p) == 2 for p in padding) and len(padding) == 2 else None
        if flat is None or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0
                                   for p in flat):
            raise self.fail(layer, f"padding must be an int, a pair or ((top, bottom), (left, "
                                   f"right)) of ints >= 0, got {padding!r}")
        top, bottom, left, right = flat
        spec = self.spec(layer, "main", lambda: _Spec("ZeroPad2d",
                                                 {"padding": (left, right, top, bottom)}))
        return self.add(layer.name, spec, ids,
                        (height + top + bottom, width + left + right, channels))

    def merge(self, layer: _Layer, ids: list[int]) -> int:
        shapes = [self.shape(i) for i in ids]
        if len(set(shapes)) != 1:
            raise self.fail(layer, f"its inputs' shapes differ: {shapes}")
        flats = {self.values[i].flat_from for i in ids}
        if len(flats) != 1:
            ids = [self.keras_order(i, layer.name) for i in ids]
        cls = "Add" if layer.cls == "Add" else "Multiply"
        spec = self.spec(layer, "main", lambda: _Spec(cls, {}))
        return self.add(layer.name, spec, ids, shapes[0],
                        self.values[ids[0]].flat_from)

    def concatenate(self, layer: _Layer, ids: list[int]) -> int:
        shapes = [self.shape(i) for i in ids]
        rank = len(shapes[0])
        axis = layer.config.get("axis", -1)
        if not isinstance(axis, int) or not -rank <= axis <= rank or axis == 0 or \
                any(len(s) != rank for s in shapes):
            raise self.fail(layer, f"axis {axis!r} does not fit its inputs' shapes {shapes}")
        axis = axis % (rank + 1)
        if any(s[:axis - 1] + s[axis:] != shapes[0][:axis - 1] + shapes[0][axis:]
               for s in shapes):
            raise self.fail(layer, f"its inputs' shapes {shapes} differ off axis {axis}")
        ids = [self.keras_order(i, layer.name) for i in ids]
        out = list(shapes[0])
        out[axis - 1] = sum(s[axis - 1] for s in shapes)
        tm_axis = {1: 2, 2: 3, 3: 1}[axis] if rank == 3 else axis
        spec = self.spec(layer, "main", lambda: _Spec("Concatenate", {"axis": tm_axis}))
        return self.add(layer.name, spec, ids, tuple(out))


# --- building ------------------------------------------------------------------------------------

def _build(plan: _Plan) -> Any:
    """The planned modules, made, loaded and wired into an nn.Model (in float32, eval mode)."""
    from tinygrad_mlp import nn
    from tinygrad_mlp.tensor import using_config

    with using_config("dtype", np.dtype(np.float32)):
        values: dict[int, Any] = {}
        placeholders = []
        for name, shape, value in plan.inputs:
            placeholders.append(nn.Input(shape, name=name))
            values[value] = placeholders[-1]
        modules: dict[int, Any] = {}
        for step in plan.steps:
            module = modules.get(id(step.spec))
            if module is None:
                module = modules[id(step.spec)] = getattr(nn, step.spec.cls)(**step.spec.kwargs)
                module.eval()                 # wiring runs each module once on a zero sample
            args = [values[i] for i in step.inputs]
            values[step.output] = module(args if step.spec.cls in _MERGES else args[0],
                                         name=step.name)
        outputs = [values[i] for i in plan.outputs]
        model = nn.Model(inputs=placeholders if len(placeholders) > 1 else placeholders[0],
                         outputs=outputs if len(outputs) > 1 else outputs[0], name=plan.name)
        for step in plan.steps:
            if step.spec.state:
                modules[id(step.spec)].load_state_dict(step.spec.state)
    return model.eval()
