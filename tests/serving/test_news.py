"""/news over real HTTP on 127.0.0.1: per-publisher models through @serve.multiplexed, the pre-classifier,
corrections behind an API key that survive a restart, and bad inputs (4xx, and the app keeps answering)."""

from __future__ import annotations

import base64
import json

import cv2
import httpx
import numpy as np
import pytest
import skops.io as sio

from workloads.pages.schema import decode_png, rle_to_mask
from workloads.pages.synthesis import render_page
from workloads.registry import save_model, torch_bytes
from workloads.vision import news

KEY = "test-key-not-a-default"


@pytest.fixture(scope="module")
def pages():
    return [render_page("news", 11, i) for i in range(8)]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, pages):
    """Two publishers with distinguishable models and a pre-classifier fitted on a few pages."""
    import torch

    root = tmp_path_factory.mktemp("registry")
    for seed, pub in enumerate(("morning_post", "daily_ledger")):
        torch.manual_seed(seed)
        model = news.build_model()
        save_model(
            str(root),
            "news",
            pub,
            {"weights.pt": torch_bytes(model.state_dict())},
            dict(widths=list(model.widths), command="test"),
        )
    feats = np.stack([news.page_features(decode_png(p["image"])) for p in pages])
    forest = news.preclassifier(0).fit(feats, np.array([p["is_article"] for p in pages]))
    save_model(str(root), "news", "preclassifier", {"model.skops": sio.dumps(forest)}, {})
    return root


def _deploy(registry, db, api_key=KEY):
    from ray import serve

    from serving.news.app import build_app

    args = {"registry": str(registry), "corrections_db": str(db), "num_replicas": 1}
    if api_key:
        args["api_key"] = api_key
    serve.run(build_app(args), name="news", route_prefix="/news")


@pytest.fixture(scope="module")
def client(serve_http, registry, tmp_path_factory):
    from ray import serve

    db = tmp_path_factory.mktemp("store") / "news.sqlite"
    _deploy(registry, db)
    with httpx.Client(base_url=serve_http, timeout=60) as c:
        c.db = db
        yield c
    serve.delete("news")


def _post_page(client, page, **params):
    return client.post("/news/segment", content=page["image"], headers={"content-type": "image/png"}, params=params)


def test_multiplexing_routes_to_each_publisher(client, pages):
    page = pages[0]
    for pub in ("morning_post", "daily_ledger", "morning_post"):
        r = _post_page(client, page, publisher=pub)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["publisher"] == pub and body["preclassifier"]["trained"] is True
        if body["is_article"]:
            assert body["model"] == dict(publisher=pub, name=pub, version="v1", trained=True)
        assert isinstance(body["articles"], list)
    r = client.post(
        "/news/segment",
        content=page["image"],
        headers={"content-type": "image/png", "serve_multiplexed_model_id": "daily_ledger"},
    )
    assert r.status_code == 200 and r.json()["publisher"] == "daily_ledger"
    # A publisher of the page generator without a trained model: served by the untrained fallback, which says so.
    r = _post_page(client, page, publisher="evening_star")
    assert r.status_code == 200
    if r.json()["is_article"]:
        assert "untrained" in r.json()["warning"]


def test_preclassifier_separates_pages(client, pages):
    verdicts = [_post_page(client, p, publisher="morning_post").json()["is_article"] for p in pages]
    assert verdicts == [p["is_article"] for p in pages]  # the forest was fitted on these very pages


@pytest.mark.parametrize(
    "params,status",
    [({"publisher": "../../etc"}, 400), ({"publisher": "a/b"}, 400), ({"publisher": "nobody"}, 404), ({}, 400)],
)
def test_bad_publishers(client, pages, params, status):
    r = _post_page(client, pages[0], **params)
    assert r.status_code == status and r.json()["detail"]
    assert _post_page(client, pages[0], publisher="morning_post").status_code == 200


def test_bad_images(client):
    for content, ctype, status in (
        (b"", "image/png", 400),
        (b"%PDF-1.4", "image/png", 415),
        (b"x", "application/json", 415),
    ):
        r = client.post(
            "/news/segment", content=content, headers={"content-type": ctype}, params={"publisher": "morning_post"}
        )
        assert r.status_code == status, r.text


def _correction(page, **over):
    img = decode_png(page["image"])
    trained = ("morning_post", "daily_ledger")
    body = dict(
        publisher=page["publisher"] if page["publisher"] in trained else "morning_post",
        image_base64=base64.b64encode(page["image"]).decode(),
        is_article=True,
        articles=[[10, 10, img.shape[1] // 2, img.shape[0] // 2]],
    )
    body.update(over)
    return json.dumps(body)


def test_corrections_need_key_and_valid_body(client, pages):
    good = _correction(pages[0])
    assert client.post("/news/corrections", content=good).status_code == 401
    assert client.post("/news/corrections", content=good, headers={"x-api-key": "wrong"}).status_code == 401
    key = {"x-api-key": KEY, "content-type": "application/json"}
    cases = [
        ("", 400),
        ("{not json", 422),
        (_correction(pages[0], publisher="../x"), 400),
        (_correction(pages[0], publisher="nobody"), 404),
        (_correction(pages[0], image_base64="!!!"), 400),
        (_correction(pages[0], image_base64=base64.b64encode(b"not an image").decode()), 415),
        (_correction(pages[0], articles=[[0, 0, 99999, 5]]), 422),
        (_correction(pages[0], articles=[]), 422),
    ]
    for content, status in cases:
        r = client.post("/news/corrections", content=content, headers=key)
        assert r.status_code == status, (content[:40], r.text)
    r = client.post("/news/corrections", content=good, headers=key)
    assert r.status_code == 201 and r.json()["stored"] is True


def test_corrections_survive_restart_and_feed_training(client, registry, pages):
    key = {"x-api-key": KEY}
    before = client.get("/news/health").json()["corrections"]
    assert (
        client.post(
            "/news/corrections", content=_correction(pages[1], is_article=False, articles=[]), headers=key
        ).status_code
        == 201
    )
    from ray import serve

    serve.delete("news")  # a restart: the replica goes away, a fresh one opens the same store
    _deploy(registry, client.db)
    health = client.get("/news/health").json()
    assert health["status"] == "ok" and health["corrections"] == before + 1
    from workloads.vision.corrections import CorrectionStore

    rows = CorrectionStore(client.db).rows()
    art = [r for r in rows if r["is_article"]][0]
    mask = rle_to_mask(art["mask_rle"], art["height"], art["width"])
    assert mask[12, 12] == 1 and mask.max() == 1 and mask[-1, -1] == 0
    assert cv2.imdecode(np.frombuffer(art["image"], np.uint8), cv2.IMREAD_GRAYSCALE).shape == mask.shape


def test_corrections_disabled_without_key(serve_http, registry, tmp_path, pages):
    from ray import serve

    from serving.news.app import build_app

    serve.run(
        build_app({"registry": str(registry), "corrections_db": str(tmp_path / "c.sqlite"), "num_replicas": 1}),
        name="news-nokey",
        route_prefix="/news-nokey",
    )
    try:
        r = httpx.post(
            f"{serve_http}/news-nokey/corrections", content=_correction(pages[0]), headers={"x-api-key": ""}, timeout=60
        )
        assert r.status_code == 503 and "no API key" in r.json()["detail"]
    finally:
        serve.delete("news-nokey")
