"""serving.ingress without Ray: HAProxy is the default, Ray's proxy the fallback, and the wrapper moves every
bind of a rendered HAProxy config to 127.0.0.1 before it execs the real binary."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from serving import ingress


def test_default_and_fallback(monkeypatch, tmp_path):
    monkeypatch.delenv("DLWILD_SERVE_INGRESS", raising=False)
    assert ingress.mode() == "haproxy"
    env = ingress.serving_env(state=tmp_path / "hap")
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert os.access(env["RAY_SERVE_HAPROXY_BINARY_PATH"], os.X_OK) and os.access(env["DLWILD_HAPROXY_BIN"], os.X_OK)
    assert stat.S_IMODE((tmp_path / "hap").stat().st_mode) == 0o700
    assert env["RAY_SERVE_HAPROXY_SOCKET_PATH"].startswith(str(tmp_path / "hap"))
    monkeypatch.setenv("DLWILD_SERVE_INGRESS", "proxy")
    assert ingress.mode() == "proxy" and ingress.serving_env() == {}
    monkeypatch.setenv("DLWILD_SERVE_INGRESS", "nginx")
    with pytest.raises(ValueError, match="haproxy or proxy"):
        ingress.mode()


def test_wrapper_binds_localhost(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "frontend prometheus\n    bind :9101\nfrontend http_frontend\n    bind 127.0.0.1:8000\n"
        "frontend any\n    bind 0.0.0.0:8001\nlisten stats\n  bind *:8404\n"
    )
    env = dict(os.environ, DLWILD_HAPROXY_BIN="/bin/echo")
    out = subprocess.run([str(ingress.WRAPPER), "-db", "-f", str(cfg), "-sf", "1"], env=env, capture_output=True)
    assert out.returncode == 0 and out.stdout.decode().split() == ["-db", "-f", str(cfg), "-sf", "1"]
    binds = [ln.split()[1] for ln in cfg.read_text().splitlines() if ln.strip().startswith("bind")]
    assert binds == ["127.0.0.1:9101", "127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8404"]
