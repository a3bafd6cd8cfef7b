"""/qc over real HTTP on 127.0.0.1: defect probability, saliency PNG, adversarial flag, health, and bad uploads
(4xx, and the app keeps answering)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from tests.serving.bad_images import bomb_png, zero_width_png
from workloads.qc import data


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", (img * 255).astype(np.uint8))[1].tobytes()


@pytest.fixture(scope="module")
def qc(deploy_app, tmp_path_factory):
    from serving.qc.app import build_app

    registry = tmp_path_factory.mktemp("registry")  # empty: the app falls back to the committed model
    with deploy_app("qc", build_app, {"registry": str(registry)}) as client:
        yield client


def test_inspect(qc):
    rng = np.random.default_rng(0)
    tube = data.tube(rng, "bubble")
    r = qc.post("/qc/inspect", content=png(tube), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 <= body["defect_probability"] <= 1 and isinstance(body["defect"], bool)
    assert isinstance(body["adversarial"]["flag"], bool) and body["adversarial"]["spatial_entropy"] >= 0
    sal = cv2.imdecode(np.frombuffer(base64.b64decode(body["saliency_png"]), np.uint8), cv2.IMREAD_COLOR)
    assert sal.shape == (data.SIZE, 2 * data.SIZE, 3)
    assert ("warning" in body) is (not body["model"]["trained"]) and "synthetic" in body["model"]["note"]
    # a bigger JPEG as a multipart upload is resized to the model's input
    big = cv2.imencode(".jpg", cv2.resize((tube * 255).astype(np.uint8), (200, 200)))[1].tobytes()
    r = qc.post("/qc/inspect", files={"file": ("t.jpg", big, "image/jpeg")}, params={"saliency": "false"})
    assert r.status_code == 200 and r.json()["input_size"] == [200, 200] and "saliency_png" not in r.json()


def test_health_model_and_openapi(qc):
    h = qc.get("/qc/health").json()
    assert h["status"] == "ok"
    assert "trained" in qc.get("/qc/model").json()
    assert "/inspect" in qc.get("/qc/openapi.json").json()["paths"]


@pytest.mark.parametrize("case", ["not_image", "truncated", "zero_size", "bomb", "wrong_type", "empty"])
def test_bad_inputs_get_4xx(qc, case):
    tube = png(data.tube(np.random.default_rng(1)))
    body, ctype = {
        "not_image": (b"GIF89a not really", "image/png"),
        "truncated": (tube[:200], "image/png"),
        "zero_size": (zero_width_png(), "image/png"),
        "bomb": (bomb_png(), "image/png"),
        "wrong_type": (tube, "text/plain"),
        "empty": (b"", "image/png"),
    }[case]
    r = qc.post("/qc/inspect", content=body, headers={"content-type": ctype})
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
    assert r.json()["detail"]
    assert qc.get("/qc/health").status_code == 200
