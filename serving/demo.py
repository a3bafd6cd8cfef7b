"""Real requests to the four model apps, answers and pictures saved: the end of `make demo`.

    python -m serving.demo [--url http://127.0.0.1:8000] [--out runs/demo] [--seed S]
    python -m serving.demo --with-cluster-demo      # what `make demo` runs: cluster.demo first, then this

Freshly synthesised inputs (a music page, a news page, a face pair, a tube image; `--seed` picks them) go to
/omr/detect, /news/segment, /face/verify and /qc/inspect through `serving.client`; each answer is saved as
`<out>/<app>.json` beside a PNG: the detections drawn by the app (`omr.png`), the article boxes (`news.png`), the
selfie beside the ID photo with the verdict (`face.png`), the tube with its saliency map (`qc.png`). One line per
answer is printed, then the paths. With `--with-cluster-demo` the cluster demo (jobs, Serve deployment) runs
first, with the cluster kept up for the requests and stopped afterwards when the demo started it; a cluster it
starts uses the default ingress of `serving.ingress` (HAProxy on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from serving.client import Client, ServeError

CONFIG = Path(__file__).with_name("config.yaml")


def base_url(config: Path = CONFIG) -> str:
    """Serve's HTTP address from serving/config.yaml's http_options."""
    import yaml

    http = (yaml.safe_load(config.read_text()) or {}).get("http_options", {})
    return f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}"


def _png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def _decode(b64: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)


def inputs(seed: int = 0) -> dict[str, Any]:
    """Fresh synthetic inputs: music and news pages (PNG bytes, with the news page's publisher), a face pair
    (selfie frames and an ID photo, RGB arrays) and a tube image (PNG bytes)."""
    from workloads.face import data as face_data
    from workloads.pages.synthesis import render_page
    from workloads.qc import data as qc_data

    rng = np.random.default_rng(seed)
    news = render_page("news", seed, 0)
    face = np.repeat(face_data.faces_gray("test")[seed % 5][..., None], 3, 2)
    frames = face_data.sequence(rng, face, None, frames=3)
    world = face_data.medium(rng, face_data.scene(rng, face), "print_laser")
    id_photo = face_data.camera(rng, world, face_data.camera_settings(rng))
    tube = (qc_data.tube(rng, "bubble") * 255).astype(np.uint8)
    return dict(
        music=render_page("music", seed, 0)["image"],
        news=news["image"],
        publisher=news["publisher"],
        news_truth=f"{news['page_type']} page, {len(set(news['article_of']) - {0})} articles"
        if news["is_article"]
        else f"{news['page_type']} page",
        frames=frames,
        id_photo=id_photo,
        tube=_png(tube),
    )


def _retrying(call: Callable[[], Any], wait_s: float = 120) -> Any:
    """`call()`, retried while the app is still coming up (no connection, 404 before its route exists, 503)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return call()
        except (httpx.TransportError, ServeError) as exc:
            if isinstance(exc, ServeError) and exc.status not in (404, 503) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def _jpg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes()


def send(url: str, out: Path, seed: int = 0, wait_s: float = 120) -> list[dict[str, Any]]:
    """Send one request to each model app, save `<app>.json` and `<app>.png` under `out`; one record per answer
    (`app`, `line`, `json`, `png`)."""
    out.mkdir(parents=True, exist_ok=True)
    x = inputs(seed)
    records = []
    with Client(url) as dl:
        omr = _retrying(lambda: dl.omr_detect(x["music"], overlay=True), wait_s)
        labels = sorted({s.label for s in omr.symbols})
        records.append(
            _save(out, "omr", omr, _decode(omr.overlay_png), f"{omr.count} symbols ({', '.join(labels[:6]) or '-'})")
        )

        news = _retrying(lambda: dl.news_segment(x["news"], x["publisher"]), wait_s)
        page = cv2.cvtColor(cv2.imdecode(np.frombuffer(x["news"], np.uint8), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)
        for a in news.articles:
            x0, y0, x1, y1 = (int(v) for v in a.box)
            cv2.rectangle(page, (x0, y0), (x1, y1), (0, 0, 255), 3)
            cv2.putText(page, str(a.id), (x0 + 6, y0 + 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 255), 2)
        verdict = f"{len(news.articles)} articles" if news.is_article else "non-article page"
        line = f"{news.publisher}: {verdict} (p_article {news.p_article}); sent: {x['news_truth']}"
        records.append(_save(out, "news", news, page, line))

        face = _retrying(lambda: dl.face_verify([_jpg(f) for f in x["frames"]], _jpg(x["id_photo"])), wait_s)
        pair = _side_by_side([x["frames"][0][..., ::-1], x["id_photo"][..., ::-1]], 256)
        line = f"spoof {face.spoof.verdict} (fused {face.spoof.fused}), match {face.match.score}"
        cv2.putText(pair, line, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2)
        line += "; sent: 3 live selfie frames and a laser print of the same face as ID photo"
        records.append(_save(out, "face", face, pair, line))

        qc = _retrying(lambda: dl.qc_inspect(x["tube"]), wait_s)
        line = f"defect {qc.defect} (p {qc.defect_probability}), adversarial {qc.adversarial.flag}"
        line += "; sent: a tube with a bubble (a defect), not attacked"
        records.append(_save(out, "qc", qc, cv2.resize(_decode(qc.saliency_png), None, fx=4, fy=4), line))
    return records


def _side_by_side(images: list[np.ndarray], height: int) -> np.ndarray:
    scaled = [cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height)) for im in images]
    return np.ascontiguousarray(np.concatenate(scaled, 1))


def _save(out: Path, app: str, answer, picture: np.ndarray, line: str) -> dict[str, Any]:
    """`<app>.json` (the answer, without its base64 pictures) and `<app>.png`; the record of this answer."""
    body = answer.model_dump(exclude_unset=True, exclude={"overlay_png", "saliency_png"})
    js, png = out / f"{app}.json", out / f"{app}.png"
    js.write_text(json.dumps(body, indent=2))
    cv2.imwrite(str(png), picture)
    warning = " [untrained model]" if getattr(answer, "warning", None) else ""
    return dict(app=app, line=f"{line}{warning}", json=str(js), png=str(png))


def report(records: list[dict[str, Any]]) -> None:
    for r in records:
        print(f"[demo] /{r['app']}: {r['line']}", flush=True)
    print("[demo] answers and pictures:")
    for r in records:
        print(f"  {r['json']}\n  {r['png']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="", help="Serve's HTTP address (default: from serving/config.yaml)")
    parser.add_argument("--out", default="runs/demo", help="folder for the answers (JSON) and pictures (PNG)")
    parser.add_argument("--seed", type=int, default=0, help="which synthetic inputs")
    parser.add_argument("--with-cluster-demo", action="store_true", help="run `python -m cluster.demo` first")
    parser.add_argument("--keep", action="store_true", help="with --with-cluster-demo: leave the cluster up")
    args = parser.parse_args(argv)
    url = args.url or base_url()
    if not args.with_cluster_demo:
        return _send_and_report(url, Path(args.out), args.seed)
    from cluster import demo, head
    from serving import ingress

    was_running = head.is_running(head.load_state())
    ingress.apply()  # a head started from here serves through HAProxy on 127.0.0.1 (DLWILD_SERVE_INGRESS=proxy: not)
    code = demo.main(["--keep"])
    try:
        return _send_and_report(url, Path(args.out), args.seed) or code
    finally:
        if not was_running and not args.keep:
            head.down()
            print("[demo] cluster stopped (python -m serving.demo --with-cluster-demo --keep leaves it up)")


def _send_and_report(url: str, out: Path, seed: int) -> int:
    try:
        records = send(url, out, seed)
    except (ServeError, httpx.HTTPError) as exc:
        print(f"error: {exc}")
        return 1
    report(records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
