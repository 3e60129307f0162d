"""Hypothesis profiles: `ci` is deterministic and bounded (chosen by .ci/run through
HYPOTHESIS_PROFILE=ci); `dev`, the default, draws more examples for local runs; `thorough`
draws 500 per test."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Every test starts with float32, grad mode on and a fresh seed, and cannot leak changes."""
    import tinygrad_mlp as tm

    tm.set_default_dtype(np.float32)
    tm.manual_seed(0)
    yield
    tm.set_default_dtype(np.float32)
    assert tm.is_grad_enabled(), "a test left grad mode off"
