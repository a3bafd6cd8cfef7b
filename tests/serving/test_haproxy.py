"""The default ingress: Ray's bundled HAProxy in front of replicas that serve HTTP themselves (serving/ingress.py),
with every port HAProxy and the replicas open bound to 127.0.0.1. /omr and the multiplexed /news answer through
it, bad uploads still get their 4xx, and with the feature off (no wrapper) the stats page would listen on all
interfaces.

HAProxy mode is read from the environment when Ray starts, so this test runs its own small Ray in a child process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from serving.ingress import serving_env
from tests.ports import free_port

CHILD = textwrap.dedent("""
    import json, os, sys, tempfile, time
    import cv2, httpx, numpy as np, psutil, ray
    from ray import serve
    from serving.news.app import build_app as news
    from serving.omr.app import build_app as omr
    from workloads.pages.synthesis import render_page

    port = int(sys.argv[1])
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
             _temp_dir=tempfile.mkdtemp(prefix="dlwild-haproxy-"), log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    one = {"num_replicas": 1, "num_cpus": 0.5, "max_batch_size": 4}
    serve.run(omr(one), name="omr", route_prefix="/omr")
    serve.run(news(dict(one, corrections_db=tempfile.mktemp())), name="news", route_prefix="/news")
    img = np.full((96, 96), 255, np.uint8)
    cv2.circle(img, (40, 50), 5, 0, -1)
    base = f"http://127.0.0.1:{port}"
    out = {}
    with httpx.Client(timeout=30) as client:
        for app in ("omr", "news"):
            end = time.time() + 60
            while time.time() < end:  # HAProxy learns a replica's port shortly after serve.run returns
                try:
                    if client.get(f"{base}/{app}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
        r = client.post(base + "/omr/detect", content=cv2.imencode(".png", img)[1].tobytes(),
                        headers={"content-type": "image/png"})
        out["detect"] = [r.status_code, sorted(r.json())]
        r = client.post(base + "/omr/detect", content=b"not an image", headers={"content-type": "text/plain"})
        out["bad"] = [r.status_code, r.json().get("detail", "")]
        page = render_page("news", 4, 0)
        r = client.post(base + "/news/segment", params={"publisher": page["publisher"]}, content=page["image"],
                        headers={"content-type": "image/png"})
        out["segment"] = [r.status_code, r.json().get("publisher")]
        out["health_after"] = client.get(base + "/omr/health").status_code
    procs = [psutil.Process()] + psutil.Process().children(recursive=True)
    listening = []
    for p in procs:
        try:
            name = p.name()
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                listening.append([name, c.laddr.ip, c.laddr.port])
    out["listening"] = listening
    serve.shutdown()
    ray.shutdown()
    print("RESULT " + json.dumps(out), flush=True)
""")


def test_default_ingress_is_haproxy_on_localhost():
    tmp = tempfile.mkdtemp(prefix="dlw-hap-")  # short: HAProxy's admin socket path must stay under 98 characters
    port, stats, metrics = free_port(), free_port(), free_port()
    env = dict(
        os.environ,
        **serving_env("haproxy", state=Path(tmp)),
        RAY_SERVE_HAPROXY_STATS_PORT=str(stats),
        RAY_SERVE_HAPROXY_METRICS_PORT=str(metrics),
        RAY_AUTH_MODE="disabled",
    )
    env.pop("RAY_ADDRESS", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(port)], env=env, capture_output=True, text=True, timeout=300
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stderr[-3000:]
    out = json.loads(line[0][7:])
    assert out["detect"][0] == 200 and "symbols" in out["detect"][1]
    assert out["bad"][0] == 415 and "content type" in out["bad"][1]
    assert out["segment"][0] == 200 and out["segment"][1]
    assert out["health_after"] == 200
    haproxy = {(ip, p) for name, ip, p in out["listening"] if name.startswith("haproxy")}
    assert {p for _, p in haproxy} >= {port, stats, metrics}, out["listening"]
    assert all(ip == "127.0.0.1" for ip, _ in haproxy), haproxy
    replicas = [(ip, p) for _, ip, p in out["listening"] if 30000 <= p <= 31000]  # direct-ingress HTTP servers
    assert len(replicas) >= 2 and all(ip == "127.0.0.1" for ip, _ in replicas), out["listening"]
