"""Fixtures of the search tests: one local Ray per module, started as the runner starts it."""

from __future__ import annotations

import pytest
import ray

from harness.run.cluster import init_ray


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module, started as the runner starts it."""
    started = not ray.is_initialized()
    init_ray(None)
    yield
    if started:
        ray.shutdown()
