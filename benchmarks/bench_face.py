"""End-to-end latency of /face/verify on CPU: one selfie vs a 6-frame clip, Serve (one deployment per expert)
against the same pipeline called in-process.

    flock /tmp/dlwild-ray.lock python -m benchmarks.bench_face [--requests 40] [--clients 1,4] [--json OUT]

Every figure comes from one run on this machine, with the model the app serves (registry, builtin bundle or
untrained fallback: the cost is the same). The in-process figure runs the same decode + experts + fusion code
without Serve, so the difference is the price of HTTP, the proxy and the six DeploymentHandle hops.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import socket
import statistics
import time

import cv2
import numpy as np

from cluster import private_ray


def _payload(frames: int):
    from workloads.face import data

    rng = np.random.default_rng(0)
    face = np.repeat(data.faces_gray("test")[0][..., None], 3, 2)
    seq = data.sequence(rng, face, None, frames=frames)
    id_photo = data.camera(rng, data.medium(rng, data.scene(rng, face), "print_laser"), data.camera_settings(rng))
    enc = lambda img: cv2.imencode(".jpg", img[..., ::-1])[1].tobytes()  # noqa: E731
    return [("selfie", (f"{i}.jpg", enc(f), "image/jpeg")) for i, f in enumerate(seq)] + [
        ("id_photo", ("id.jpg", enc(id_photo), "image/jpeg"))
    ]


def _stats(lat: list[float], wall: float) -> dict:
    lat = sorted(lat)
    return dict(
        requests=len(lat),
        p50_ms=round(1000 * statistics.median(lat), 1),
        p99_ms=round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
        throughput_rps=round(len(lat) / wall, 2),
    )


def http_load(url: str, files, requests: int, clients: int) -> dict:
    import httpx

    def one(_):
        with httpx.Client(timeout=120) as c:
            t0 = time.perf_counter()
            r = c.post(url, files=files)
            r.raise_for_status()
            return time.perf_counter() - t0

    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))  # warm-up
        t0 = time.perf_counter()
        lat = list(pool.map(one, range(requests)))
    return _stats(lat, time.perf_counter() - t0)


def in_process(files, requests: int) -> dict:
    """The app's work without Serve: decode, orientation, experts, fusion, match, one request at a time."""
    import torch

    from serving.face.app import capture
    from workloads.face import models, motion, quality, train
    from workloads.images import decode_image

    torch.set_num_threads(1)
    m = train.load()
    gray = lambda img: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)  # noqa: E731

    def one():
        imgs = [decode_image(f[1][1], mode="RGB") for f in files]
        frames, id_photo = imgs[:-1], imgs[-1]
        deg, _ = models.predict_orientation(m.nets["orientation"], gray(frames[0]))
        models.predict_orientation(m.nets["orientation"], gray(id_photo))
        frames = [capture(models.upright(f, deg), 128) for f in frames]
        q = quality.measures(frames[0])
        probs = dict(
            quality=m.spoof("quality", [q]),
            patch_low=m.spoof("patch_low", frames[:1]),
            patch_high=m.spoof("patch_high", frames[:1]),
            motion=m.spoof("motion", [motion.features(frames)]) if len(frames) > 1 else np.array([0.5]),
        )
        m.fuse(probs)
        models.match_score(m.nets["embed"], gray(id_photo), gray(frames[0]))

    one()
    lat = []
    t0 = time.perf_counter()
    for _ in range(requests):
        t1 = time.perf_counter()
        one()
        lat.append(time.perf_counter() - t1)
    return _stats(lat, time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    import os

    import ray
    from ray import serve

    from serving.face.app import build_app
    from workloads.face import train

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    results = dict(trained_model=train.load().trained, device="cpu")
    for frames in (1, 6):
        results[f"in_process_{frames}_frames"] = in_process(_payload(frames), args.requests)
    private_ray.start("dlwild-bench-face-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"num_replicas": 1, "max_batch_size": 8}), name="face", route_prefix="/face")
    url = f"http://127.0.0.1:{port}/face/verify"
    for frames in (1, 6):
        for c in clients:
            results[f"serve_{frames}_frames_{c}_clients"] = http_load(url, _payload(frames), args.requests, c)
    serve.shutdown()
    ray.shutdown()
    for frames in (1, 6):
        results[f"serve_over_in_process_p50_{frames}_frames"] = round(
            results[f"serve_{frames}_frames_1_clients"]["p50_ms"] / results[f"in_process_{frames}_frames"]["p50_ms"], 2
        )
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
