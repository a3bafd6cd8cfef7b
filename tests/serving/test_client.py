"""`serving.client` against real apps on 127.0.0.1: typed answers, and `ServeError` with the server's 4xx line."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from serving.client import Client, ServeError
from serving.schemas import Detection, Inspection


@pytest.fixture(scope="module")
def apps(deploy_app, serve_http, tmp_path_factory):
    from serving.omr.app import build_app as omr
    from serving.qc.app import build_app as qc

    registry = str(tmp_path_factory.mktemp("registry"))  # empty: the committed builtin models
    with deploy_app("qc", qc, {"registry": registry}), deploy_app("omr", omr, {"registry": registry}):
        with Client(serve_http) as client:
            yield client


def test_typed_answers(apps, tmp_path):
    img = np.full((96, 96), 230, np.uint8)
    cv2.circle(img, (48, 48), 20, 80, -1)
    png = cv2.imencode(".png", img)[1].tobytes()
    tube = apps.qc_inspect(png, saliency=False)
    assert isinstance(tube, Inspection) and 0 <= tube.defect_probability <= 1 and tube.saliency_png is None
    path = tmp_path / "page.jpg"
    path.write_bytes(cv2.imencode(".jpg", img)[1].tobytes())  # a path, sent as image/jpeg
    found = apps.omr_detect(path, overlay=True, min_score=0.0)
    assert isinstance(found, Detection) and (found.width, found.height) == (96, 96) and found.overlay_png
    assert apps.health("qc").status == "ok" and apps.model("omr").trained in (True, False)


def test_errors_carry_the_servers_line(apps):
    with pytest.raises(ServeError) as err:
        apps.qc_inspect(b"GIF89a not a png")
    assert err.value.status == 415 and "PNG" in err.value.detail.upper() and "/qc/inspect" in str(err.value)
    with pytest.raises(ServeError) as err:
        apps.omr_detect(cv2.imencode(".png", np.zeros((8, 400), np.uint8))[1].tobytes())
    assert err.value.status == 422 and err.value.detail
    with pytest.raises(ServeError) as err:
        apps.omr_detect(cv2.imencode(".png", np.zeros((64, 64), np.uint8))[1].tobytes(), min_score=2)
    assert err.value.status == 422 and "min_score" in err.value.detail
    with pytest.raises(ValueError, match="unknown app"):
        apps.health("nope")
