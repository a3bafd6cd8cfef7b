"""Serve for the serving tests: one HTTP proxy on 127.0.0.1 and a free port, on top of the session's Ray, and
`deploy_app`, which runs one app under its route prefix for a module's tests."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from tests.ports import free_port


@pytest.fixture(scope="session")
def serve_http(ray_session):
    """Start Serve on 127.0.0.1 (never 0.0.0.0) and yield its base URL; Serve is shut down at the end."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(scope="session")
def deploy_app(serve_http):
    """`with deploy_app(name, build_app, args) as client:` runs `build_app(args)` at `/<name>` (one replica,
    batches of at most 4 unless `args` says otherwise) and yields an httpx client on Serve; the app is deleted
    afterwards."""
    from ray import serve

    @contextlib.contextmanager
    def deploy(name: str, build_app, args: dict, timeout: float = 60):
        serve.run(build_app({"num_replicas": 1, "max_batch_size": 4, **args}), name=name, route_prefix=f"/{name}")
        try:
            with httpx.Client(base_url=serve_http, timeout=timeout) as client:
                yield client
        finally:
            serve.delete(name)

    return deploy
