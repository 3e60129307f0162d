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



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) every optional tool is installed, so a skipped test is a failure: an
    oracle test that silently skips (no torch, no browser) would check nothing."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every optional tool is installed: {report.longrepr}"


# --- the stand-in device: TINYGRAD_MLP_TEST_DEVICE=standin runs the engine on DeviceArray -------

STANDIN = os.environ.get("TINYGRAD_MLP_TEST_DEVICE") == "standin"
if STANDIN:
    from standin_device import DeviceArray, to_device

    from tinygrad_mlp import backend

    backend.set_array_type(DeviceArray, to_device)


def pytest_configure(config):
    config.addinivalue_line("markers", "host_only(reason): a test whose own data is host arrays "
                                       "the library would get on a device; deselected on the stand-in")


def pytest_collection_modifyitems(config, items):
    """On the stand-in, host_only tests are deselected (not skipped: CI fails on a skip)."""
    if STANDIN:
        host_only = [item for item in items if item.get_closest_marker("host_only")]
        items[:] = [item for item in items if not item.get_closest_marker("host_only")]
        config.hook.pytest_deselected(items=host_only)
