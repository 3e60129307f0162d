"""The engine: a Tensor that records the graph, Function (the one way an op is defined), backward.

Read this file top to bottom. A Tensor holds a numpy array. Every op is a `Function` whose
`forward(ctx, *arrays)` computes the result in numpy and whose `backward(ctx, grad)` returns
one gradient per input. `Function.apply` runs forward and, when a gradient will be needed,
remembers the inputs (`ctx.parents`) on the output. `Tensor.backward` then walks that graph in
reverse topological order and applies the chain rule: "never stop until you reach the target".

The built-in Functions live in the package `ops/`; Tensor's operator and convenience methods
(`+`, `sum`, `reshape`, ...) are one-line calls into them, written out in tensor_methods.py.
The switches (grad mode, the tape, the default dtype) live in config.py.

The seams other layers build on (only the engine touches a Tensor's private fields):

    tensor.creator              the Function that made a tensor (None for a leaf); its
                                `.parents` are the inputs, `type(creator)` the op
    topological_order(root)     the nodes behind root that need a gradient, inputs first
    backpropagate(order, grad)  the backward walk over such an order (what backward() runs)
    increment_version(t)        what every in-place write to `t.data` by the library calls, so
                                backward can refuse a graph whose saved inputs changed since
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from tinygrad_mlp.backend import ARRAY_TYPES, float_array, forward_result, sum_to_shape
from tinygrad_mlp.config import (TapeEntry, config, enable_grad,  # noqa: F401
                                 get_default_dtype, get_generator, is_grad_enabled, is_recording,
                                 manual_seed, no_grad, record_tape, set_default_dtype,
                                 using_config)


# --- Function: forward and backward of one op, with its context -----------------------------

class Function:
    """One differentiable op. Subclass it, write two static methods, call it with `.apply`.

    >>> class Square(Function):
    ...     @staticmethod
    ...     def forward(ctx, x):          # numpy in, numpy out
    ...         ctx.x = x                 # ctx keeps what backward needs
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, grad):      # one gradient per input, each of that input's shape
    ...         return 2 * ctx.x * grad
    >>> Square.apply(Tensor([3.0], requires_grad=True)).sum().item()
    9.0

    Positional arguments of `apply` are the inputs (Tensors, arrays or scalars); keyword
    arguments are options handed to forward unchanged (like `axis=1`). The engine sums each
    gradient back over broadcast axes, so backward may return the gradient at the output's
    broadcast shape. `ctx.needs_input_grad[i]` says whether input i needs a gradient at all.
    """

    parents: list[Tensor] | None = None   # the inputs, set by apply; None once backward frees it
    input_versions: list[int] | None = None   # each input's version when forward read it
    writes_seen = 0        # how many in-place writes (to any tensor) had been made by then
    rule: str = ""   # one line for viz.explain: the local derivative that backward applies

    @staticmethod
    def forward(ctx: Function, *arrays: np.ndarray, **options: Any) -> np.ndarray:
        raise NotImplementedError("a Function must define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx: Function, grad: np.ndarray) -> np.ndarray | Sequence[np.ndarray | None]:
        raise NotImplementedError("a Function must define backward(ctx, grad)")

    def save_for_backward(self, *arrays: np.ndarray) -> None:
        """PyTorch's spelling of `ctx.saved_tensors = arrays`."""
        self.saved_tensors = arrays

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Tensor:
        ctx = cls()
        parents, arrays, needs, versions = [], [], [], []   # one loop, not four comprehensions:
        for x in inputs:                                     # this is the engine's hot path
            if not isinstance(x, Tensor):
                x = Tensor(x)
            parents.append(x)
            arrays.append(x.data)
            needs.append(x.requires_grad)
            versions.append(x._version)
        ctx.needs_input_grad = tuple(needs)
        data = cls.forward(ctx, *arrays, **options)
        if type(data) not in ARRAY_TYPES or data.dtype.kind not in "fbiu":
            data = forward_result(cls.__name__, data)
        result = _wrap(data)
        if True in needs and config.grad_enabled:
            ctx.parents, ctx.input_versions, ctx.writes_seen = parents, versions, _writes[0]
            result.requires_grad, result._ctx = True, ctx
        if config.tape is not None:    # inside record_tape()
            config.tape.append(TapeEntry(ctx, parents, options, result))
        return result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backward>"


# The methods call ops, and ops subclass Function: so they are imported once Function exists.
from tinygrad_mlp.tensor_methods import (TensorMethods, as_array, concatenate,  # noqa: E402,F401
                                         graph_size, maximum, minimum, stack, where)

# --- Tensor ----------------------------------------------------------------------------------

class Tensor(TensorMethods):
    """An n-dimensional array that remembers how it was computed, so gradients can flow back.

    `Tensor(data, requires_grad=False)`: a float ndarray is shared, not copied; ints, lists
    and scalars become the default dtype (float32 unless `set_default_dtype` says otherwise).
    """

    __slots__ = {
        "data": "The ndarray this tensor holds. The library's in-place writes (optimizer steps, "
                "load_state_dict) call `increment_version`, so backward through a graph that saved "
                "the old values raises; writing `t.data[...] = ...` yourself bypasses that check "
                "(as in PyTorch) unless you call `increment_version(t)` after.",
        "grad": "The gradient backward accumulated (an ndarray of data's shape), or None.",
        "requires_grad": "Does backward compute a gradient for this tensor?",
        "name": "An optional label (viz and error messages show it).",
        "_ctx": "", "_retain_grad": "", "_version": "", "__weakref__": ""}
    __array_ufunc__ = None   # numpy defers to our reflected operators: np.float64(2)*t is a Tensor

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 name: str | None = None) -> None:
        self.data: np.ndarray = float_array(data.data if isinstance(data, Tensor) else data,
                                                 dtype, config.dtype)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self._ctx: Function | None = None
        self._retain_grad = False
        self._version = 0

    # --- the chain rule ----------------------------------------------------------------------

    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Add d(self)/d(leaf) · grad into `.grad` of every leaf that requires grad.

        A scalar output is seeded with 1; any other output needs `grad` of its own shape.
        Leaf gradients accumulate across calls until `zero_grad()` (PyTorch semantics). The
        graph is freed afterwards unless `retain_graph=True`.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad and has no "
                               "graph; create the leaves with requires_grad=True")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward() needs a scalar output or an explicit grad; got shape "
                                 f"{self.shape}: call .sum() or .mean() first, or pass grad= of "
                                 f"shape {self.shape}")
            grad = np.ones_like(self.data)
        else:
            grad = float_array(as_array(grad), self.data.dtype, config.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward(): grad shape {grad.shape} does not match output shape "
                                 f"{self.data.shape}")
        backpropagate(topological_order(self), grad, retain_graph)

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this non-leaf tensor during backward (leaves always keep theirs)."""
        self._retain_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> Tensor:
        """The same data (shared, not copied), cut from the graph."""
        return Tensor(self.data)

    @property
    def is_leaf(self) -> bool:
        """Made by no recorded op: created by the user, by `detach()`, or under `no_grad`."""
        return self._ctx is None

    @property
    def creator(self) -> Function | None:
        """The Function (its ctx) that computed this tensor, None for a leaf (PyTorch's grad_fn).

        `creator.parents` are its inputs, in order (None once backward freed the graph), and
        `type(creator)` is the op. This is how other layers read the graph: viz draws it, a
        loss recognises the Softmax or Sigmoid it can fuse with (`nn.losses`).
        """
        return self._ctx

    @property
    def version(self) -> int:
        """How many in-place writes the library made to `.data` (PyTorch's `_version`)."""
        return self._version

    @property
    def retains_grad(self) -> bool:
        """Will backward keep `.grad` on this non-leaf tensor (`retain_grad()` was called)?"""
        return self._retain_grad


def increment_version(*tensors: Tensor) -> None:
    """Record an in-place write to each tensor's `.data` (PyTorch's
    `torch.autograd.graph.increment_version`). Every such write the library makes calls it
    (optimizers, `load_state_dict`, fit restoring weights); backward then refuses to use a
    graph whose ops read an older version, instead of silently using the new values."""
    for tensor in tensors:
        tensor._version += 1
    _writes[0] += len(tensors)


_writes = [0]   # in-place writes so far, to any tensor: backward compares versions only if it grew


# --- graph walking: the topological order and the backward walk over it ----------------------

def topological_order(root: Tensor) -> list[Tensor]:
    """Every node behind `root` that needs a gradient, each after all of its inputs; root last.

    A depth-first walk with an explicit stack of (node, its remaining inputs), so a graph of any
    depth works (no recursion limit). Tensors hash by identity: they define no __eq__. Inputs
    that need no gradient (data, constants) are not in it; their consumers' `creator.parents`
    still lists them.
    """
    order: list[Tensor] = []
    visited = {root}
    path: list[tuple[Tensor, Iterator[Tensor]]] = []
    node, inputs = root, _inputs(root)
    while True:
        for parent in inputs:
            if parent.requires_grad and parent not in visited:
                visited.add(parent)
                path.append((node, inputs))
                node, inputs = parent, _inputs(parent)
                break
        else:                              # all inputs of `node` are placed: place it
            order.append(node)
            if not path:
                return order
            node, inputs = path.pop()


def _inputs(node: Tensor) -> Iterator[Tensor]:
    ctx = node._ctx
    return iter(ctx.parents) if ctx is not None and ctx.parents is not None else iter(())


def backpropagate(order: list[Tensor], grad: np.ndarray, retain_graph: bool = False,
                  retain_grads: bool = False) -> None:
    """The chain rule: walk `order` backwards from its last node, the root, whose gradient is
    `grad` (an array of the root's shape and dtype). `Tensor.backward` is this walk over
    `topological_order(root)`; a caller that kept an order (TrainStep, viz) passes it again.

    `order` lists inputs before outputs (leaves may be left out: they get their gradient from
    their consumers). Each node's gradient is complete when it is reached (all its consumers
    come later in `order`), so its Function's backward runs exactly once; gradients of a node
    used several times add up, out of place, so no array is ever shared and then mutated. A leaf
    keeps each gradient the moment it arrives. `retain_grads`: every non-leaf also keeps the
    gradient that reached it in `.grad`, as if `retain_grad()` had been called on each.
    """
    kept = {id(grad)}          # arrays some .grad (or the caller) holds: copy before keeping again
    grads = {order[-1]: grad}
    for node in reversed(order):
        node_grad = grads.pop(node, None)
        ctx = node._ctx
        if node_grad is not None and (ctx is None or node._retain_grad or retain_grads):
            _keep(node, node_grad, kept)
        if ctx is None:        # a leaf: its gradient was kept the moment it arrived
            continue
        if node_grad is not None:   # else every backward on the way returned None
            _pass_to_inputs(ctx, _input_grads(ctx, node_grad), grads, kept)
        if not retain_graph:
            ctx.__dict__.clear()   # drops parents and saved arrays; ctx.parents reads None now


def _input_grads(ctx: Function, grad: np.ndarray) -> Sequence[Any]:
    """Run one Function's backward, once its graph is known alive and its inputs unchanged."""
    parents = ctx.parents
    if parents is None:
        raise RuntimeError(f"backward through a graph that was already freed (at "
                           f"{type(ctx).__name__}); call backward(retain_graph=True) the "
                           f"first time if you need to go back twice")
    versions = ctx.input_versions
    if (versions is not None and ctx.writes_seen != _writes[0]
            and [p._version for p in parents] != versions):
        _raise_modified(ctx, parents, versions)
    input_grads = ctx.backward(ctx, grad)
    if not isinstance(input_grads, (tuple, list)):
        input_grads = (input_grads,)
    if len(input_grads) != len(parents):
        raise ValueError(f"{type(ctx).__name__}.backward returned {len(input_grads)} "
                         f"gradients for {len(parents)} input"
                         f"{'s' if len(parents) != 1 else ''}: return one per input")
    return input_grads


def _pass_to_inputs(ctx: Function, input_grads: Sequence[Any], grads: dict[Tensor, np.ndarray],
                    kept: set[int]) -> None:
    """Each input's gradient, summed back to its shape: kept by a leaf, else added to `grads`."""
    for parent, parent_grad in zip(ctx.parents, input_grads):
        if parent_grad is None or not parent.requires_grad:
            continue
        data = parent.data
        if (type(parent_grad) not in ARRAY_TYPES or parent_grad.shape != data.shape
                or parent_grad.dtype is not data.dtype):    # (an equal dtype: a no-op there)
            parent_grad = sum_to_shape(parent_grad, data, type(ctx).__name__)
        if parent._ctx is None:
            _keep(parent, parent_grad, kept)
        else:
            grads[parent] = parent_grad if parent not in grads else grads[parent] + parent_grad


def _raise_modified(ctx: Function, parents: list[Tensor], versions: list[int]) -> None:
    index, parent = next((i, p) for i, p in enumerate(parents) if p._version != versions[i])
    what = f"{parent.name!r} " if parent.name else ""
    raise RuntimeError(f"backward through {type(ctx).__name__}: its input {index} (the tensor "
                       f"{what}of shape {parent.shape}) was modified in place after the forward "
                       f"pass (version {versions[index]}, now {parent._version}), e.g. by an "
                       f"optimizer step or load_state_dict; its gradient would use the new values. "
                       f"Run backward before changing the parameters, or compute the forward "
                       f"pass again")


def _keep(node: Tensor, grad: np.ndarray, kept: set[int]) -> None:
    """Add `grad` into `node.grad`, never storing an array that is stored elsewhere or a view."""
    if node.grad is not None:
        node.grad = node.grad + grad
        return
    if id(grad) in kept or grad.base is not None:
        grad = grad.copy()
    node.grad = grad
    kept.add(id(grad))


def _wrap(data: Any) -> Tensor:
    """A constant Tensor around an op's result, skipping __init__'s checks (the hot path)."""
    tensor = Tensor.__new__(Tensor)
    tensor.data, tensor.grad, tensor.requires_grad = data, None, False
    tensor.name, tensor._ctx, tensor._retain_grad, tensor._version = None, None, False, 0
    return tensor
