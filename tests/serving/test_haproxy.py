"""/omr behind Ray's bundled HAProxy instead of the Python proxy (the opt-in that closes most of the gap to plain
uvicorn, see benchmarks/README.md): the same app answers detections and bad uploads over HTTP.

HAProxy mode is read from the environment when Ray starts, so this test runs its own small Ray in a child process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CHILD = textwrap.dedent("""
    import json, sys, tempfile, time
    import cv2, httpx, numpy as np, ray
    from ray import serve
    from serving.omr.app import build_app

    port = int(sys.argv[1])
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
             _temp_dir=tempfile.mkdtemp(prefix="dlwild-haproxy-"), log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"num_replicas": 1, "num_cpus": 0.5, "max_batch_size": 4}), name="omr", route_prefix="/omr")
    img = np.full((96, 96), 255, np.uint8)
    cv2.circle(img, (40, 50), 5, 0, -1)
    base = f"http://127.0.0.1:{port}/omr"
    out = {}
    with httpx.Client(timeout=30) as client:
        end = time.time() + 60
        while time.time() < end:  # HAProxy learns the replica's port shortly after serve.run returns
            try:
                if client.get(base + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        r = client.post(base + "/detect", content=cv2.imencode(".png", img)[1].tobytes(),
                        headers={"content-type": "image/png"})
        out["detect"] = [r.status_code, sorted(r.json())]
        r = client.post(base + "/detect", content=b"not an image", headers={"content-type": "text/plain"})
        out["bad"] = [r.status_code, r.json().get("detail", "")]
        out["health_after"] = client.get(base + "/health").status_code
    serve.shutdown()
    ray.shutdown()
    print("RESULT " + json.dumps(out), flush=True)
""")


def test_omr_behind_haproxy():
    tmp = tempfile.mkdtemp(prefix="dlw-hap-")  # short: HAProxy's admin socket path must stay under 98 characters
    port = _free_port()
    env = dict(
        os.environ,
        RAY_SERVE_ENABLE_HA_PROXY="1",
        RAY_SERVE_ENABLE_DIRECT_INGRESS="1",
        RAY_SERVE_HAPROXY_STATS_PORT=str(_free_port()),
        RAY_SERVE_HAPROXY_METRICS_PORT=str(_free_port()),
        RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=os.path.join(tmp, "haproxy.cfg"),
        RAY_SERVE_HAPROXY_SOCKET_PATH=os.path.join(tmp, "admin.sock"),
        RAY_SERVE_HAPROXY_SERVER_STATE_BASE=tmp,
        RAY_SERVE_HAPROXY_SERVER_STATE_FILE=os.path.join(tmp, "server-state"),
        RAY_AUTH_MODE="disabled",
    )
    env.pop("RAY_ADDRESS", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(port)], env=env, capture_output=True, text=True, timeout=240
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stderr[-3000:]
    out = json.loads(line[0][7:])
    assert out["detect"][0] == 200 and "symbols" in out["detect"][1]
    assert out["bad"][0] == 415 and "content type" in out["bad"][1]
    assert out["health_after"] == 200
