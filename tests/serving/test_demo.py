"""The demo's requests (`serving.demo.send`) against the four real apps: fresh synthetic inputs, an answer per
app saved as JSON with its picture, one line each."""

from __future__ import annotations

import contextlib
import json

import cv2

from serving import demo


def test_demo_sends_and_saves(deploy_app, serve_http, tmp_path, capsys):
    from serving.face.app import build_app as face
    from serving.news.app import build_app as news
    from serving.omr.app import build_app as omr
    from serving.qc.app import build_app as qc

    registry = str(tmp_path / "registry")  # none: the committed builtin models
    with contextlib.ExitStack() as stack:
        for name, build in (("omr", omr), ("news", news), ("face", face), ("qc", qc)):
            args = {"registry": registry, "corrections_db": str(tmp_path / "c.sqlite")} if name == "news" else {}
            stack.enter_context(deploy_app(name, build, {"registry": registry, **args}, timeout=120))
        records = demo.send(serve_http, tmp_path / "demo", seed=1)
    assert [r["app"] for r in records] == ["omr", "news", "face", "qc"]
    for r in records:
        body = json.loads(open(r["json"]).read())
        assert body["model"] and "overlay_png" not in body and "saliency_png" not in body
        picture = cv2.imread(r["png"])
        assert picture is not None and picture.shape[0] >= 64 and r["line"]
    assert json.loads(open(records[0]["json"]).read())["count"] >= 0
    assert json.loads(open(records[2]["json"]).read())["spoof"]["verdict"] in ("live", "attack")
    demo.report(records)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[demo] /omr: ") and out[-1].strip().endswith("qc.png")
