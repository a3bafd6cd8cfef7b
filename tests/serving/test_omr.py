"""/omr over real HTTP on 127.0.0.1: detection, the overlay, health, and every kind of bad upload (4xx, and the
app keeps answering)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from tests.serving.bad_images import bomb_png, zero_width_png
from workloads.pages.schema import MUSIC_CLASSES as CLASSES
from workloads.registry import save_model, torch_bytes
from workloads.vision import dwd


def png(shape=(120, 90), value=255) -> bytes:
    img = np.full(shape, value, np.uint8)
    cv2.line(img, (10, 60), (80, 60), 0, 1)
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry holding one DWD (untrained weights, but published: the app calls it trained)."""
    root = tmp_path_factory.mktemp("registry")
    model = dwd.build_model(len(CLASSES))
    save_model(
        str(root),
        "omr",
        "dwd",
        {"weights.pt": torch_bytes(model.state_dict())},
        dict(classes=CLASSES, widths=list(model.widths), command="test"),
    )
    return root


@pytest.fixture(scope="module")
def omr(deploy_app, registry):
    from serving.omr.app import build_app

    with deploy_app("omr", build_app, {"registry": str(registry)}) as client:
        yield client


def test_detect_and_overlay(omr):
    r = omr.post(
        "/omr/detect", content=png(), headers={"content-type": "image/png"}, params={"overlay": "true", "min_score": 0}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == dict(name="dwd", version="v1", trained=True, code_version=body["model"]["code_version"])
    assert (body["width"], body["height"]) == (90, 120) and isinstance(body["symbols"], list)
    overlay = cv2.imdecode(np.frombuffer(base64.b64decode(body["overlay_png"]), np.uint8), cv2.IMREAD_COLOR)
    assert overlay.shape == (120, 90, 3)
    jpg = cv2.imencode(".jpg", np.full((50, 50), 255, np.uint8))[1].tobytes()
    r = omr.post("/omr/detect", files={"file": ("page.jpg", jpg, "image/jpeg")})
    assert r.status_code == 200 and r.json()["width"] == 50
    assert "warning" not in r.json()


def test_health_model_and_openapi(omr):
    h = omr.get("/omr/health").json()
    assert h["status"] == "ok" and h["model"]["trained"] is True
    assert omr.get("/omr/model").json()["command"] == "test"
    assert "/detect" in omr.get("/omr/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    "content,ctype,status",
    [
        (b"", "image/png", 400),
        (b"GIF89a....", "image/png", 415),
        (b"just text", "text/plain", 415),
        (png()[:60], "image/png", 400),
        (cv2.imencode(".jpg", np.zeros((40, 40), np.uint8))[1].tobytes()[:100], "image/jpeg", 400),
        (zero_width_png(), "image/png", 400),
        (bomb_png(), "image/png", 413),
        (png(), None, 415),
    ],
)
def test_bad_uploads_get_4xx_and_app_survives(omr, content, ctype, status):
    headers = {"content-type": ctype} if ctype else {}
    r = omr.post("/omr/detect", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    assert omr.post("/omr/detect", content=png(), headers={"content-type": "image/png"}).status_code == 200


def test_multipart_without_file_and_bad_query(omr):
    r = omr.post("/omr/detect", files={"other": ("x.png", png(), "image/png")})
    assert r.status_code == 400 and "file" in r.json()["detail"]
    r = omr.post("/omr/detect", content=png(), headers={"content-type": "image/png"}, params={"min_score": 7})
    assert r.status_code == 422


def test_untrained_fallback_says_so_everywhere(omr, deploy_app, registry):
    """A model in neither the registry nor builtin: a second app of the same class, beside the first, serves an
    untrained network and says so in every answer while the first one stays trained."""
    from serving.omr.app import build_app

    with deploy_app("omr-untrained", build_app, {"registry": str(registry), "model": "absent"}) as client:
        r = client.post("/omr-untrained/detect", content=png(), headers={"content-type": "image/png"})
        assert r.status_code == 200 and r.json()["model"]["trained"] is False and "untrained" in r.json()["warning"]
        health = client.get("/omr-untrained/health").json()
        assert health["status"] == "ok" and health["model"]["version"] is None and "untrained" in health["warning"]
        model = client.get("/omr-untrained/model").json()
        assert model == dict(task="omr", name="absent", version=None, trained=False)
        assert "warning" not in omr.get("/omr/health").json()
