"""/face over real HTTP on 127.0.0.1: verification with one selfie and with frames, orientation correction, one
deployment per expert, health, and bad uploads (4xx, and the app keeps answering)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.serving.bad_images import bomb_png, zero_width_png
from workloads.face import data, train


def jpg(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img[..., ::-1])[1].tobytes()


@pytest.fixture(scope="module")
def presentation():
    """A live frame sequence and an ID photo of a held-out face (synthetic, like the training data)."""
    rng = np.random.default_rng(5)
    face = data.faces_gray("test")[3]
    frames = data.sequence(rng, np.repeat(face[..., None], 3, 2), None, frames=3)
    world = data.medium(rng, data.scene(rng, np.repeat(face[..., None], 3, 2)), "print_laser")
    id_photo = data.camera(rng, world, data.camera_settings(rng))
    return frames, id_photo


@pytest.fixture(scope="module")
def face(deploy_app, tmp_path_factory):
    from serving.face.app import build_app

    registry = tmp_path_factory.mktemp("registry")  # empty: the app falls back to the committed bundle
    with deploy_app("face", build_app, {"registry": str(registry)}, timeout=120) as client:
        yield client


def _files(frames, id_photo):
    return [("selfie", (f"f{i}.jpg", jpg(f), "image/jpeg")) for i, f in enumerate(frames)] + [
        ("id_photo", ("id.jpg", jpg(id_photo), "image/jpeg"))
    ]


def test_verify_one_selfie_and_frames(face, presentation):
    frames, id_photo = presentation
    r = face.post("/face/verify", files=_files(frames[:1], id_photo))
    assert r.status_code == 200, r.text
    body = r.json()
    trained = train.load().trained
    assert body["model"]["trained"] is trained and ("warning" in body) is (not trained)
    assert "synthetic" in body["model"]["note"]
    assert set(body["spoof"]["experts"]) == {"quality", "patch_low", "patch_high", "motion"}
    assert body["spoof"]["experts"]["motion"] is None and "frames" in body["spoof"]["note"]
    assert 0 <= body["spoof"]["fused"] <= 1 and body["spoof"]["verdict"] in ("live", "attack")
    assert isinstance(body["quality"]["guidance"], list) and 0 <= body["match"]["score"] <= 1
    r = face.post("/face/verify", files=_files(frames, id_photo))
    assert r.status_code == 200, r.text
    spoof = r.json()["spoof"]
    assert spoof["frames"] == 3 and 0 <= spoof["experts"]["motion"] <= 1


def test_orientation_is_corrected(face, presentation):
    frames, id_photo = presentation
    if not train.load().trained:
        pytest.skip("no trained face bundle to judge orientation with")
    turned = np.ascontiguousarray(np.rot90(id_photo, 1))  # counter-clockwise by 90 degrees
    r = face.post("/face/verify", files=_files(frames[:1], turned))
    assert r.status_code == 200
    assert r.json()["orientation"]["id_photo"]["rotated_by"] == 90


def test_health_model_and_openapi(face):
    h = face.get("/face/health")
    assert h.status_code == 200 and h.json()["status"] == "ok"
    assert set(h.json()["experts"]) == {"orientation", "quality", "patch_low", "patch_high", "motion", "matcher"}
    assert "/verify" in face.get("/face/openapi.json").json()["paths"]
    assert "trained" in face.get("/face/model").json()


@pytest.mark.parametrize(
    "case",
    [
        "not_image",
        "truncated",
        "zero_size",
        "bomb",
        "wrong_part_type",
        "json_body",
        "empty_body",
        "missing_id",
        "too_many_frames",
        "text_field",
    ],
)
def test_bad_inputs_get_4xx(face, presentation, case):
    frames, id_photo = presentation
    good_id = ("id_photo", ("id.jpg", jpg(id_photo), "image/jpeg"))
    selfie = lambda content, ctype="image/png": [("selfie", ("s.png", content, ctype)), good_id]  # noqa: E731
    kwargs = {
        "not_image": dict(files=selfie(b"hello, I am not a picture")),
        "truncated": dict(files=selfie(cv2.imencode(".png", frames[0])[1].tobytes()[:300])),
        "zero_size": dict(files=selfie(zero_width_png())),
        "bomb": dict(files=selfie(bomb_png())),
        "wrong_part_type": dict(files=selfie(jpg(frames[0]), "text/html")),
        "json_body": dict(json={"selfie": "x"}),
        "empty_body": dict(content=b"", headers={"content-type": "multipart/form-data; boundary=x"}),
        "missing_id": dict(files=[("selfie", ("s.jpg", jpg(frames[0]), "image/jpeg"))]),
        "too_many_frames": dict(
            files=[("selfie", (f"{i}.jpg", jpg(frames[0]), "image/jpeg")) for i in range(9)] + [good_id]
        ),
        "text_field": dict(data={"selfie": "not a file"}, files=[good_id]),
    }[case]
    r = face.post("/face/verify", **kwargs)
    assert 400 <= r.status_code < 500, (case, r.status_code, r.text)
    assert r.json()["detail"]
    assert face.get("/face/health").status_code == 200  # still answering
