"""Property-test your own ops and modules with hypothesis (needs the `test` extra).

Testing a custom Function takes a few lines: draw inputs in float32 and float64, check the
gradients against finite differences and against the same op in float64 (with an upstream
gradient hypothesis draws too, so a failure shrinks to simple inputs and a simple gradient),
and check what backward returns, and that it neither mutates nor aliases anything.

>>> import numpy as np
>>> import tinygrad_mlp as tm
>>> from hypothesis import given, strategies as st
>>> from tinygrad_mlp.testing import (arrays, assert_backward_invariants,
...                                   assert_gradients_match, float_dtypes)
>>> class Cube(tm.Function):
...     @staticmethod
...     def forward(ctx, x):
...         ctx.x = x
...         return x ** 3
...     @staticmethod
...     def backward(ctx, grad):
...         return grad * 3 * ctx.x ** 2
>>> @given(arrays(dtype=float_dtypes(), min_value=-3, max_value=3), st.data())
... def test_cube(x, data):
...     assert_gradients_match(Cube.apply, x, reference=lambda x: x ** 3, data=data)
...     assert_backward_invariants(Cube.apply, x, data=data)
>>> test_cube()

`check_module(model, X)` gradchecks every parameter of a model by name; `ModuleMachine` drives a
model through train/eval/step/save/load. Importing this module registers the hypothesis
profiles "tinygrad_mlp" and "tinygrad_mlp-ci" (`settings.load_profile("tinygrad_mlp-ci")`) and
hands the library's generator (`tm.manual_seed`) to hypothesis (`register_random`), so each
example starts from the same generator state and replays with it. Importing `tinygrad_mlp`
does not import hypothesis; `import tinygrad_mlp.testing` does.
"""

from __future__ import annotations

from typing import Any

try:
    import hypothesis
    from hypothesis import HealthCheck, settings
except ModuleNotFoundError as error:
    if error.name != "hypothesis":
        raise
    raise ModuleNotFoundError("tinygrad_mlp.testing needs hypothesis, an optional extra: pip "
                              "install hypothesis (from a source checkout: pip install -e "
                              "'.[test]')", name="hypothesis") from None

from tinygrad_mlp.tensor import get_generator, manual_seed
from tinygrad_mlp.testing.assertions import (TOLERANCES, assert_backward_invariants,
                                             assert_gradients_match, assert_raw_backward)
from tinygrad_mlp.testing.machine import ModuleMachine
from tinygrad_mlp.testing.modules import check_module
from tinygrad_mlp.testing.strategies import (arrays, axes, broadcastable_shapes, float_dtypes,
                                             mlp_shapes, networks, shapes, tied_arrays)

__all__ = ["arrays", "tied_arrays", "float_dtypes", "shapes", "broadcastable_shapes", "axes",
           "mlp_shapes", "networks", "assert_gradients_match", "assert_backward_invariants",
           "assert_raw_backward", "TOLERANCES", "check_module", "ModuleMachine", "PROFILE",
           "CI_PROFILE"]

PROFILE, CI_PROFILE = "tinygrad_mlp", "tinygrad_mlp-ci"
# Gradient checks run the op a few times per entry: no deadline, and no health check failing a
# slow draw. The CI profile replays the same examples on every run and keeps no database.
settings.register_profile(PROFILE, max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(CI_PROFILE, max_examples=50, deadline=None, derandomize=True,
                          database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])


class _LibraryRandom:
    """The library's generator as hypothesis sees a Random: seed, getstate, setstate. Read at
    call time, since `manual_seed` replaces the generator."""

    def seed(self, seed: Any) -> None:
        manual_seed(seed)

    def getstate(self) -> Any:
        return get_generator().bit_generator.state

    def setstate(self, state: Any) -> None:
        get_generator().bit_generator.state = state


_library_random = _LibraryRandom()     # hypothesis keeps only a weak reference
hypothesis.register_random(_library_random)
