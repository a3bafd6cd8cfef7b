"""Serve throughput and latency of the /omr detector: batching vs none, Serve vs plain FastAPI + uvicorn, and
overload (bounded queue -> 503).

    python -m benchmarks.bench_serve [--seconds 6] [--clients 1,8,32] [--variants baseline,haproxy] [--json OUT]

Every figure comes from one run on this machine. The model is the one /omr serves (registry, builtin or
untrained fallback: the cost per image is the same) on a small page crop, so the serving overhead is visible.
Each Serve variant runs in a fresh child process with its own local Ray and environment: `baseline` is Ray's
Python proxy (the fallback, `DLWILD_SERVE_INGRESS=proxy`), `haproxy` the project's default ingress
(`serving.ingress.serving_env()`: Ray's bundled HAProxy, replicas serving HTTP themselves, every port on
127.0.0.1), `haproxy_tuned` that with user code on the replica's main loop and one HAProxy thread; `tuned` runs
user code and the router on the replica's main loop
(RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0, RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=0), `direct` has no
proxy at all (RAY_SERVE_ENABLE_DIRECT_INGRESS=1), `quiet` is `tuned` without access logs, `grpc` sends
proxy -> replica over gRPC.
Plain uvicorn (uvloop, httptools, one process) runs the same decode + model code without Serve.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import cv2
import numpy as np
from fastapi import FastAPI, Request

from cluster import private_ray

TUNED = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}
VARIANTS = {
    "baseline": {},
    "tuned": TUNED,
    "quiet": TUNED,  # tuned, and no per-request access log lines in proxy and replica
    "direct": {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1"},
    "haproxy": {},  # + serving.ingress.serving_env("haproxy"), set in the child
    "haproxy_tuned": {**TUNED, "RAY_SERVE_HAPROXY_NBTHREAD": "1"},
    "grpc": {"RAY_SERVE_PROXY_USE_GRPC": "1"},
}


def payload(side: int = 128) -> bytes:
    """A small crop of a rendered music page as PNG (a few KB)."""
    from workloads.pages.synthesis import render_page

    img = cv2.imdecode(np.frombuffer(render_page("music", 0, 0)["image"], np.uint8), cv2.IMREAD_GRAYSCALE)
    return cv2.imencode(".png", img[300 : 300 + side, 200 : 200 + side])[1].tobytes()


async def _load(url: str, body: bytes, clients: int, seconds: float) -> dict:
    """`clients` closed-loop clients posting for `seconds`; latency of each answered request, by status."""
    import aiohttp

    lat: dict[int, list[float]] = {}
    stop = time.perf_counter() + seconds
    headers = {"content-type": "image/png"}

    async def client(session):
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError:
                status = 0
            lat.setdefault(status, []).append(time.perf_counter() - t0)

    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as session:
        for _ in range(2):  # warm-up
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - t0
    ok = sorted(lat.get(200, []))
    total = sum(len(v) for v in lat.values())
    pct = lambda q: round(1000 * ok[min(len(ok) - 1, int(q * len(ok)))], 1) if ok else None  # noqa: E731
    return dict(
        clients=clients,
        ok=len(ok),
        requests=total,
        rps=round(len(ok) / wall, 1),
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
        share_503=round(len(lat.get(503, [])) / total, 3) if total else None,
        other_errors=total - len(ok) - len(lat.get(503, [])),
    )


def measure(url: str, body: bytes, clients: list[int], seconds: float) -> list[dict]:
    return [asyncio.run(_load(url, body, c, seconds)) for c in clients]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 90) -> None:
    import httpx

    end = time.time() + timeout
    while time.time() < end:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


# ------------------------------------------------------------------------------------------ plain uvicorn
def plain_app():
    """The same decode and model code as /omr, in one FastAPI process without Serve."""
    import torch

    from serving.uploads import read_image
    from workloads.pages.schema import MUSIC_CLASSES as CLASSES
    from workloads.registry import find_model
    from workloads.vision import dwd

    torch.set_num_threads(1)
    found = find_model("omr", "dwd")
    model = dwd.load(*found) if found else dwd.build_model(len(CLASSES)).eval()
    classes = found[1]["classes"] if found else CLASSES
    app = FastAPI()

    @app.post("/omr/detect")
    async def detect(request: Request):
        img, _ = await read_image(request)
        return {"symbols": dwd.detect(model, classes, [img])[0]}

    @app.get("/omr/health")
    async def health():
        return {"status": "ok"}

    return app


def run_plain(body: bytes, clients: list[int], seconds: float) -> list[dict]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "benchmarks.bench_serve:plain_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
        ]
    )
    try:
        _wait(f"http://127.0.0.1:{port}/omr/health")
        return measure(f"http://127.0.0.1:{port}/omr/detect", body, clients, seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------- Serve child
def child(variant: str, clients: list[int], seconds: float, overload_clients: int) -> dict:
    """One Serve variant: batched and unbatched deployments, the handle path, and overload."""
    import ray
    from ray import serve

    from serving.ingress import serving_env
    from serving.omr.app import build_app

    os.environ.update(VARIANTS[variant])
    if variant.startswith("haproxy"):
        os.environ.update(serving_env("haproxy"))
    private_ray.start("dlwild-bench-serve-")
    port = 8000 if variant == "direct" else _free_port()
    logging = {"enable_access_log": variant != "quiet"}
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=logging)
    body = payload()
    base = f"http://127.0.0.1:{port}"
    out = dict(variant=variant, env=VARIANTS[variant], access_log=logging["enable_access_log"])
    common = {"num_replicas": 1, "num_cpus": 1, "threads": 1}
    for name, args in (
        (
            "batched",
            dict(
                common, max_batch_size=16, batch_wait_timeout_s=0.004, max_ongoing_requests=64, max_queued_requests=256
            ),
        ),
        ("unbatched", dict(common, max_batch_size=1, max_ongoing_requests=64, max_queued_requests=256)),
    ):
        serve.run(build_app(args), name="omr", route_prefix="/omr", logging_config=logging)
        _wait(f"{base}/omr/health")
        out[name] = measure(f"{base}/omr/detect", body, clients, seconds)
        if name == "unbatched":
            handle = serve.get_app_handle("omr")
            lat = []
            for _ in range(40):  # the handle path skips HTTP and the proxy (the model call itself stays)
                t0 = time.perf_counter()
                handle.model_info.remote().result()
                lat.append(time.perf_counter() - t0)
            out["handle_metadata_p50_ms"] = round(1000 * statistics.median(lat), 2)
        serve.delete("omr")
    serve.run(
        build_app(dict(common, max_batch_size=8, max_ongoing_requests=8, max_queued_requests=8)),
        name="omr",
        route_prefix="/omr",
        logging_config=logging,
    )
    _wait(f"{base}/omr/health")
    out["overload"] = measure(f"{base}/omr/detect", body, [overload_clients], seconds)[0]
    serve.shutdown()
    ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--variants", default="baseline,haproxy")
    parser.add_argument("--overload-clients", type=int, default=64)
    parser.add_argument("--json", default="")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    if args.child:
        print("RESULT " + json.dumps(child(args.child, clients, args.seconds, args.overload_clients)), flush=True)
        return
    for v in args.variants.split(","):
        if v not in VARIANTS:
            print(f"error: unknown variant {v!r}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
            raise SystemExit(2)
    # Plain uvicorn is measured right before each Serve variant, and each variant is compared with that
    # measurement: on a machine shared with other jobs the load drifts between minutes.
    results = {"plain_uvicorn": [], "serve": []}
    for v in args.variants.split(","):
        before = run_plain(payload(), clients, args.seconds)
        results["plain_uvicorn"].append(dict(before_variant=v, runs=before))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_serve",
                "--child",
                v,
                "--clients",
                args.clients,
                "--seconds",
                str(args.seconds),
                "--overload-clients",
                str(args.overload_clients),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        )
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if not line:
            print(f"variant {v} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        results["serve"].append(dict(json.loads(line[0][7:]), plain_uvicorn=before))
    print(f"{'setup':28s} {'clients':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for s in results["serve"]:
        plain = {r["clients"]: r for r in s["plain_uvicorn"]}
        for r in s["plain_uvicorn"]:
            print(f"{'plain uvicorn':28s} {r['clients']:7d} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}")
        for kind in ("batched", "unbatched"):
            for r in s[kind]:
                print(
                    f"{'serve ' + s['variant'] + ' ' + kind:28s} {r['clients']:7d} {r['rps']:8.1f} "
                    f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f}"
                )
        b = {r["clients"]: r for r in s["batched"]}
        u = {r["clients"]: r for r in s["unbatched"]}
        top = max(clients)
        o = s["overload"]
        print(
            f"[{s['variant']}] batching at {top} clients: {b[top]['rps'] / u[top]['rps']:.2f}x throughput, "
            f"p99 {b[top]['p99_ms']} vs {u[top]['p99_ms']} ms; unbatched p50 at 1 client "
            f"{u[1]['p50_ms'] - plain[1]['p50_ms']:+.1f} ms, batched {b[1]['p50_ms'] - plain[1]['p50_ms']:+.1f} ms "
            "vs plain uvicorn"
            if 1 in u and 1 in plain
            else ""
        )
        print(
            f"[{s['variant']}] vs plain uvicorn at {top} clients: batched {b[top]['rps'] / plain[top]['rps']:.2f}x, "
            f"unbatched {u[top]['rps'] / plain[top]['rps']:.2f}x; overload {o['clients']} clients: "
            f"{100 * o['share_503']:.0f}% 503, admitted p99 {o['p99_ms']} ms, {o['rps']} req/s; "
            f"handle call p50 {s['handle_metadata_p50_ms']} ms"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
