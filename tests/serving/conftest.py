"""Serve for the serving tests: one HTTP proxy on 127.0.0.1 and a free port, on top of the session's Ray."""

from __future__ import annotations

import socket

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def serve_http(ray_session):
    """Start Serve on 127.0.0.1 (never 0.0.0.0) and yield its base URL; Serve is shut down at the end."""
    from ray import serve

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
