"""One session-wide local Ray for the whole suite: small, isolated, and stopped only by us.

`address="local"` keeps the tests away from any cluster already running on the machine, and
`RAY_AUTH_MODE=disabled` is a test-only setting (the product keeps token authentication on).
"""

from __future__ import annotations

import os

import pytest

from cluster import private_ray

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.pop("RAY_ADDRESS", None)
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray with 2 CPUs, no dashboard and a small object store, shared by every test that asks."""
    import ray

    private_ray.start("dlwild-ray-", object_store_mb=300)
    yield ray
    if ray.is_initialized():
        ray.shutdown()
