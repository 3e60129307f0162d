"""Keras's functional API: `nn.Input`, `nn.Model` and the merge layers, in tm's layout.

    x = nn.Input((1, 8, 8))                               # one sample's shape, no batch axis
    h = nn.ReLU()(nn.Conv2d(1, 8, 3, padding=1)(x))       # a Module called on placeholders
    y = nn.Add()([h, nn.Conv2d(1, 8, 1)(x)])              #   records a node, returns a placeholder
    out = nn.Linear(8 * 8 * 8, 10)(nn.Flatten()(y))
    model = nn.Model(x, out)                              # a Module running that graph
    model(X)                                              # X (N, 1, 8, 8) -> (N, 10)

Each call on placeholders runs the layer once on a batch of one zero sample (under no_grad, in
eval mode, every module's mode restored), so the output's shape is known and a layer that
cannot take its input fails at the line that builds the model, with its own message. A layer
object called twice is one layer (its weights shared, as in Keras). The model's children, and
so its `state_dict` keys, are named after the layers: `layer(x, name="stem")` names one, the
others are named from their class ("conv2d", "conv2d_1", "linear", ...), like Keras's.
"""

from __future__ import annotations

import heapq
import inspect
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tinygrad_mlp._checks import fail, is_int
from tinygrad_mlp.nn.merge import _Merge
from tinygrad_mlp.nn.module import Module
from tinygrad_mlp.nn.verbs import KerasVerbs
from tinygrad_mlp.nn.placeholder import Node, Placeholder
from tinygrad_mlp.tensor import Tensor, get_default_dtype, no_grad

__all__ = ["Input", "Model", "check_graph"]


def Input(shape: int | Sequence[int], name: str | None = None) -> Placeholder:
    """A placeholder for a batch of samples of `shape` (one sample's shape, no batch axis):
    `nn.Input((64,))` for rows of 64 features, `nn.Input((1, 28, 28))` for gray images."""
    if is_int(shape):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(is_int(n) and n >= 1 for n in shape):
        fail("shape", shape, "one sample's shape, a tuple of positive ints without the batch "
             "axis, e.g. (64,) or (1, 28, 28)", owner="nn.Input")
    shape = tuple(int(n) for n in shape)
    if name is not None:
        _check_name(name, "nn.Input")
    return Placeholder(shape, Tensor(np.zeros((1,) + shape, dtype=get_default_dtype())),
                       name=name)


def _check_name(name: Any, owner: str) -> str:
    if not isinstance(name, str) or not name or "." in name or ":" in name:
        fail("name", name, "a non-empty string without '.' or ':' (it becomes the state_dict "
             "prefix)", owner=owner)
    return name


def _describe(layer: Module, name: str | None = None) -> str:
    """A layer as error messages name it: 'Linear(in_features=8, ...)' or 'Model "encoder"'."""
    own = f"Model {layer.name!r}" if isinstance(layer, Model) else (
        repr(layer) if next(layer.children(), None) is None else type(layer).__name__)
    return f"{own} (named {name!r})" if name is not None else own


def _sample_shapes(inputs: Sequence[Placeholder]) -> str:
    return ", ".join(str(p.shape) for p in inputs)


def call_on_placeholders(layer: Module, args: tuple, kwargs: dict) -> Any:
    """`layer(x)`, `layer(x1, x2)` or `layer([a, b])` on placeholders: run the layer on the
    placeholders' one-sample values to learn the output's shape, record the call as a Node and
    return its output placeholder (a tuple of them for a layer with several outputs)."""
    name = kwargs.pop("name", None)
    if kwargs:
        raise TypeError(f"{_describe(layer)}: called on placeholders it takes only name=, "
                        f"got {sorted(kwargs)}")
    if name is not None:
        _check_name(name, type(layer).__name__)
    as_list = len(args) == 1 and isinstance(args[0], (list, tuple))
    inputs = list(args[0]) if as_list else list(args)
    strays = [type(x).__name__ for x in inputs if not isinstance(x, Placeholder)]
    if strays:
        raise TypeError(f"{_describe(layer, name)}: called on placeholders and "
                        f"{', '.join(strays)}; while building a model every input must be a "
                        f"placeholder (from nn.Input or another layer)")
    values = [p.value for p in inputs]
    modes = [(module, module.training) for module in layer.modules()]
    layer.eval()
    try:
        with no_grad(), np.errstate(all="ignore"):
            output = layer(values) if as_list else layer(*values)
    except Exception as error:
        shapes = _sample_shapes(inputs)
        message = (f"{_describe(layer, name)} cannot take input{'s' * (len(inputs) > 1)} of "
                   f"shape {shapes} (the batch axis is None): {error}")
        try:
            wrapped = type(error)(message)
        except Exception:
            wrapped = ValueError(message)
        raise wrapped from None
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    several = isinstance(output, (tuple, list))
    outputs = list(output) if several else [output]
    for value in outputs:
        if not isinstance(value, Tensor) or value.ndim == 0 or value.shape[0] != 1:
            got = (f"a Tensor of shape {value.shape}" if isinstance(value, Tensor)
                   else type(value).__name__)
            raise TypeError(f"{_describe(layer, name)} on inputs of shape "
                            f"{_sample_shapes(inputs)} returned {got}; a layer in a model must "
                            f"return Tensors that keep the batch axis first")
    node = Node(layer, inputs, as_list, name, [tuple(v.shape[1:]) for v in outputs])
    placeholders = [Placeholder(v.shape[1:], v, node, i) for i, v in enumerate(outputs)]
    return tuple(placeholders) if several else placeholders[0]


def _nodes_between(inputs: list[Placeholder], outputs: list[Placeholder]
                   ) -> tuple[list[Node], dict[int, list[Placeholder]]]:
    """The nodes the outputs depend on, in creation order (a topological order), and which of
    their output placeholders are used; an output that depends on an nn.Input not among
    `inputs` is an error naming it (Keras's "graph disconnected")."""
    given = {id(p) for p in inputs}
    found: dict[int, Node] = {}
    outputs_of: dict[int, list[Placeholder]] = {}
    stack, seen = list(outputs), set()
    while stack:
        placeholder = stack.pop()
        if id(placeholder) in seen or id(placeholder) in given:
            continue
        seen.add(id(placeholder))
        node = placeholder.node
        if node is None:
            raise ValueError(f"nn.Model: the outputs depend on the input {placeholder!r}, "
                             f"which is not among the model's inputs (add it to inputs=)")
        outputs_of.setdefault(id(node), []).append(placeholder)
        if id(node) not in found:
            found[id(node)] = node
            stack.extend(node.inputs)
    return sorted(found.values(), key=lambda node: node.order), outputs_of


def _snake(name: str) -> str:
    """Keras's default layer names: Conv2d -> conv2d, BatchNorm2d -> batch_norm2d."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class Model(Module, KerasVerbs):
    """A Module that runs the graph recorded from `inputs` to `outputs` (placeholders).

        model = nn.Model(inputs=[image, extra], outputs=out)
        model(X1, X2)                  # (or model([X1, X2])); several outputs: a tuple
        model.input_shape              # (1, 8, 8), or a list with one shape per input
        model.layers, model.get_layer("conv2d")

    Layers are children named after their nodes (see the module docstring), so
    `parameters()`, `train()`/`eval()`, `state_dict()` ("conv2d.weight", ...) work as for any
    Module. Each call checks every input's sample shape, naming the input.
    """

    shares_config_modules = True         # a layer on several nodes is one child

    def __init__(self, inputs: Placeholder | Sequence[Placeholder],
                 outputs: Placeholder | Sequence[Placeholder], name: str | None = None) -> None:
        super().__init__()
        self.name = "model" if name is None else _check_name(name, "nn.Model")
        self._several_outputs = isinstance(outputs, (list, tuple))
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = list(outputs) if self._several_outputs else [outputs]
        for kind, group in (("inputs", inputs), ("outputs", outputs)):
            bad = [type(p).__name__ for p in group if not isinstance(p, Placeholder)]
            if bad or not group:
                raise TypeError(f"nn.Model: {kind} must be placeholders (from nn.Input and "
                                f"layers called on them), got {bad or 'none'}")
        derived = [p for p in inputs if p.node is not None]
        if derived or len({id(p) for p in inputs}) != len(inputs):
            raise ValueError(f"nn.Model: every input must be an nn.Input placeholder, given "
                             f"once; got {derived[0] if derived else 'one twice'}")
        nodes, outputs_of = _nodes_between(inputs, outputs)
        self._name_everything(inputs, nodes)
        slots: dict[int, int | tuple[int, int]] = {id(p): i for i, p in enumerate(inputs)}
        self._steps: list[tuple[Module, list[Any], bool]] = []    # (layer, sources, as_list)
        self._node_shapes = [node.shapes if node.outputs > 1 else node.shapes[0]
                             for node in nodes]
        for node in nodes:
            self._steps.append((node.layer, [slots[id(p)] for p in node.inputs], node.as_list))
            slot = len(inputs) + len(self._steps) - 1
            for placeholder in outputs_of[id(node)]:
                slots[id(placeholder)] = (slot, placeholder.index) if node.outputs > 1 else slot
        self._node_inputs = [[self._slot_name(slots[id(p)]) for p in node.inputs]
                             for node in nodes]
        self._input_shapes = [p.sample_shape for p in inputs]
        self._output_shapes = [p.sample_shape for p in outputs]
        self._output_slots = [slots[id(p)] for p in outputs]

    # --- building ------------------------------------------------------------------------------

    def _name_everything(self, inputs: list[Placeholder], nodes: list[Node]) -> None:
        """Name inputs, layers and nodes; register each layer once under its name."""
        taken: dict[str, Any] = {}

        def claim(name: str, owner: Any) -> None:
            if name in taken and taken[name] is not owner:
                raise ValueError(f"nn.Model: the name {name!r} is given to two different "
                                 f"layers or inputs; names must be unique in a model")
            taken[name] = owner

        asked: dict[int, str] = {}
        for node in nodes:
            if node.name is not None:
                previous = asked.setdefault(id(node.layer), node.name)
                if previous != node.name:
                    raise ValueError(f"nn.Model: {_describe(node.layer)} is called as "
                                     f"{previous!r} and as {node.name!r}; a shared layer has "
                                     f"one name")
                claim(node.name, node.layer)
        for p in inputs:
            if p.name is not None:
                claim(p.name, p)

        def fresh(base: str, owner: Any) -> str:
            name, k = base, 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            claim(name, owner)
            return name

        self._input_names = [p.name if p.name is not None else fresh("input", p) for p in inputs]
        self._node_names: list[str] = []
        layer_names: dict[int, str] = {}
        calls: dict[int, int] = {}
        for node in nodes:
            key = id(node.layer)
            if key not in layer_names:
                layer_names[key] = asked.get(key) or fresh(_snake(type(node.layer).__name__),
                                                           node.layer)
                self._modules[layer_names[key]] = node.layer
            calls[key] = calls.get(key, 0) + 1
            self._node_names.append(layer_names[key] if calls[key] == 1
                                    else fresh(f"{layer_names[key]}[{calls[key] - 1}]", node))

    # --- what it is ------------------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple[int, ...] | list[tuple[int, ...]]:
        """One sample's shape (no batch axis), or a list of them for several inputs."""
        return self._input_shapes[0] if len(self._input_shapes) == 1 else list(self._input_shapes)

    @property
    def output_shape(self) -> tuple[int, ...] | list[tuple[int, ...]]:
        """The output's sample shape, or a list of them for several outputs."""
        return list(self._output_shapes) if self._several_outputs else self._output_shapes[0]

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    @property
    def layers(self) -> list[Module]:
        """The layers, each once, in the order they run (Keras's model.layers, inputs aside)."""
        return list(self._modules.values())

    def get_layer(self, name: str) -> Module:
        """The layer named `name` (Keras's model.get_layer)."""
        if name not in self._modules:
            raise KeyError(f"Model {self.name!r} has no layer {name!r}; layers: "
                           f"{list(self._modules)}")
        return self._modules[name]

    def graph(self) -> list[dict[str, Any]]:
        """One entry per node, in the order they run: {"name", "layer", "inputs": [names of
        what feeds it], "shape": its output's sample shape (a list of them for a layer with
        several outputs)} (what nn.summary shows)."""
        return [{"name": name, "layer": layer, "inputs": list(sources), "shape": shape}
                for (layer, _, _), name, sources, shape in
                zip(self._steps, self._node_names, self._node_inputs, self._node_shapes)]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, inputs={self._input_names}"

    # --- running ---------------------------------------------------------------------------------

    def forward(self, *inputs: Any) -> Any:
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)) and \
                len(self._input_shapes) > 1:
            inputs = tuple(inputs[0])                  # Keras's model([X1, X2])
        if len(inputs) != len(self._input_shapes):
            raise TypeError(f"Model {self.name!r} takes {len(self._input_shapes)} input(s) "
                            f"{self._input_names}, got {len(inputs)}")
        for name, X, expected in zip(self._input_names, inputs, self._input_shapes):
            shape = X.shape if isinstance(X, (Tensor, np.ndarray)) else np.shape(X)
            if tuple(shape[1:]) != expected:
                raise ValueError(f"Model {self.name!r}: input {name!r} expects a batch of shape "
                                 f"(N, {', '.join(map(str, expected))}), got {tuple(shape)}")
        values, read = list(inputs), self._read
        for layer, sources, as_list in self._steps:
            arguments = [read(values, slot) for slot in sources]
            values.append(layer(arguments) if as_list else layer(*arguments))
        outputs = [read(values, slot) for slot in self._output_slots]
        return tuple(outputs) if self._several_outputs else outputs[0]

    @staticmethod
    def _read(values: list[Any], slot: int | tuple[int, int]) -> Any:
        return values[slot] if type(slot) is int else values[slot[0]][slot[1]]

    # --- model files -----------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The graph, for model files: inputs (name, sample shape), nodes in the order they run
        (name, layer, the names feeding it, whether they come as one list), outputs."""
        config_nodes = []
        seen: set[int] = set()
        for (layer, _, as_list), name, sources in zip(self._steps, self._node_names,
                                                          self._node_inputs):
            first = id(layer) not in seen
            seen.add(id(layer))
            config_nodes.append({"name": name, "layer": layer, "inputs": list(sources),
                                 "list": as_list, "named": first})
        output_names = [self._slot_name(slot) for slot in self._output_slots]
        return {"inputs": [{"name": n, "shape": list(s)}
                           for n, s in zip(self._input_names, self._input_shapes)],
                "nodes": config_nodes,
                "outputs": output_names if self._several_outputs else output_names[0],
                "name": self.name}

    def _slot_name(self, slot: int | tuple[int, int]) -> str:
        index = slot if type(slot) is int else slot[0]
        k = len(self._input_names)
        name = self._input_names[index] if index < k else self._node_names[index - k]
        return name if type(slot) is int else f"{name}:{slot[1]}"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Model:
        """The model `get_config()` describes, rebuilt by calling its layers on placeholders
        (the graph is checked first: `check_graph`)."""
        order = check_graph(config, lambda layer: (type(layer), layer))
        placeholders: dict[str, Any] = {}
        for entry in config["inputs"]:
            placeholders[entry["name"]] = Input(tuple(entry["shape"]), name=entry["name"])
        nodes = {entry["name"]: entry for entry in config["nodes"]}
        for name in order:
            entry = nodes[name]
            arguments = [_lookup(placeholders, ref, name) for ref in entry["inputs"]]
            named = name if entry.get("named", True) else None
            out = (entry["layer"](arguments, name=named) if entry["list"]
                   else entry["layer"](*arguments, name=named))
            placeholders[name] = out
        outputs = config["outputs"]
        several = isinstance(outputs, (list, tuple))
        found = [_lookup(placeholders, ref, "outputs") for ref in
                 (outputs if several else [outputs])]
        inputs = [placeholders[entry["name"]] for entry in config["inputs"]]
        return cls(inputs if len(inputs) > 1 else inputs[0], found if several else found[0],
                   name=config.get("name"))


def _lookup(placeholders: dict[str, Any], ref: str, where: str) -> Placeholder:
    name, _, index = ref.rpartition(":") if ":" in ref else (ref, "", "")
    value = placeholders[name]
    if index:
        if not isinstance(value, tuple) or not index.isdigit() or int(index) >= len(value):
            raise ValueError(f"node {where!r}: {ref!r} names an output {name!r} does not have")
        return value[int(index)]
    if isinstance(value, tuple):
        raise ValueError(f"node {where!r}: {name!r} has {len(value)} outputs; name one as "
                         f"'{name}:0'")
    return value


# --- checking a graph read from a file, before anything is built ---------------------------------

def check_graph(config: Mapping[str, Any], layer_of: Callable[[Any], tuple[type, Any]]
                ) -> list[str]:
    """The node names of a Model config in an order that runs (inputs first), after checking
    its graph: every name it refers to exists, it has no cycle, and each node feeds its layer
    a number of inputs the layer takes. Else a ValueError naming the node.

    `layer_of(entry["layer"])` gives the layer's class and something `_input_count` reads
    (the layer itself, or its saved config before it is built), so `tm.load_model` runs this
    on the file's graph before building any layer."""
    def bad(what: str) -> ValueError:
        return ValueError(f"the model's graph is invalid: {what}")

    if not isinstance(config, Mapping) or not all(k in config for k in ("inputs", "nodes",
                                                                          "outputs")):
        raise bad("it needs inputs, nodes and outputs")
    inputs, nodes = config["inputs"], config["nodes"]
    if not isinstance(inputs, list) or not isinstance(nodes, list) or not inputs:
        raise bad("inputs and nodes must be lists, with at least one input")
    names: dict[str, Any] = {}
    for entry in inputs:
        if not (isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("shape"), (list, tuple))):
            raise bad(f"an input must have a name and a shape, got {str(entry)[:100]}")
        if entry["name"] in names:
            raise bad(f"the name {entry['name']!r} is used twice")
        names[entry["name"]] = None
    for entry in nodes:
        if not (isinstance(entry, Mapping) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("inputs"), list) and "layer" in entry
                and isinstance(entry.get("list"), bool)
                and all(isinstance(ref, str) for ref in entry["inputs"])):
            raise bad(f"a node must have a name, a layer, a list of input names and 'list', "
                      f"got {str(entry)[:100]}")
        if entry["name"] in names:
            raise bad(f"the name {entry['name']!r} is used twice")
        names[entry["name"]] = entry

    def source(ref: str) -> str:
        return ref.rpartition(":")[0] if ":" in ref and ref not in names else ref

    for entry in nodes:
        for ref in entry["inputs"]:
            if source(ref) not in names:
                raise bad(f"node {entry['name']!r} takes {ref!r}, which is no input or node")
        cls, layer = layer_of(entry["layer"])
        if not issubclass(cls, Module):
            raise bad(f"node {entry['name']!r} has no layer (a {cls.__name__})")
        if issubclass(cls, _Merge) and not entry["list"]:
            raise bad(f"node {entry['name']!r} feeds its layer ({cls.__name__}) separate "
                      f"inputs, but a merge layer takes one list")
        low, high = _input_count(cls, layer, entry["list"])
        count = len(entry["inputs"])
        if count < low or (high is not None and count > high):
            takes = (f"{low}" if low == high else f"{low} to {high}" if high is not None
                     else f"at least {low}")
            raise bad(f"node {entry['name']!r} feeds its layer ({cls.__name__}) {count} "
                      f"input{'s' * (count != 1)}, but it takes {takes}")
    outputs = config["outputs"]
    for ref in outputs if isinstance(outputs, list) else [outputs]:
        if not isinstance(ref, str) or source(ref) not in names:
            raise bad(f"the output {ref!r} is no input or node")
    return _topological(nodes, source, bad)


def _topological(nodes: list[Mapping[str, Any]], source: Callable[[str], str],
                 bad: Callable[[str], ValueError]) -> list[str]:
    """Kahn's order of the nodes, taking the earliest ready node in the file's order each time
    (so a file in running order keeps it); a node left over lies on (or behind) a cycle."""
    names = [entry["name"] for entry in nodes]
    position = {name: i for i, name in enumerate(names)}
    waiting = {entry["name"]: {source(r) for r in entry["inputs"]} & position.keys()
               for entry in nodes}
    users: dict[str, list[str]] = {}
    for name, needs in waiting.items():
        for need in needs:
            users.setdefault(need, []).append(name)
    ready = [position[name] for name, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for user in users.get(name, []):
            waiting[user].discard(name)
            if not waiting[user]:
                heapq.heappush(ready, position[user])
    if len(order) < len(nodes):
        done = set(order)
        cycle = _a_cycle([name for name in names if name not in done], waiting)
        raise bad(f"it has a cycle through node {cycle[0]!r} ({' -> '.join(cycle)})")
    return order


def _a_cycle(left: list[str], waiting: dict[str, set[str]]) -> list[str]:
    """The nodes of one cycle among `left`, found by following an unmet input until one repeats."""
    path, at = [], left[0]
    while at not in path:
        path.append(at)
        at = sorted(waiting[at])[0]
    cycle = path[path.index(at):]
    return cycle + [cycle[0]]


def _input_count(cls: type, layer: Any, as_list: bool) -> tuple[int, int | None]:
    """How many inputs a node may feed a layer of class `cls`: (fewest, most or None)."""
    if issubclass(cls, _Merge):
        return (2, None)                                   # one list of at least two
    if issubclass(cls, Model):
        count = (len(layer.input_names) if isinstance(layer, Model) else
                 len(layer["inputs"]) if isinstance(layer, Mapping)
                 and isinstance(layer.get("inputs"), list) else None)
        return (count, count) if count is not None else (1, None)
    try:
        parameters = list(inspect.signature(cls.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return (1, None)
    if as_list:
        return (1, None)
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    spread = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    return (required, None if spread else len(positional))
