"""Schema-based fuzzing of every model app: schemathesis generates requests from `<prefix>/openapi.json` (valid
and invalid ones: bodies, multipart forms, query parameters, headers) and checks that no answer is a 5xx
(`not_a_server_error`) and that every answer has a status code, content type and body the OpenAPI documents
(`status_code_conformance`, `content_type_conformance`, `response_schema_conformance`).

Bounded in time: `--max-time` per app (FUZZ_SECONDS, default 10 s), so the four model apps and /tune take about
2 minutes on 2 CPUs with their deployments. A schema that did not describe the real requests (the raw-body
endpoints before issue 20) fails here: the generated bodies are answered 415, which that OpenAPI did not list.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "10"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
API_KEY = "fuzz-key"


def _build(app: str):
    from serving.face.app import build_app as face
    from serving.news.app import build_app as news
    from serving.omr.app import build_app as omr
    from serving.qc.app import build_app as qc
    from serving.tune_dashboard.app import build_app as tune

    return dict(omr=omr, news=news, face=face, qc=qc, tune=tune)[app]


@pytest.mark.slow
@pytest.mark.parametrize("app", ["omr", "news", "face", "qc", "tune"])
def test_fuzz_app(app, deploy_app, serve_http, tmp_path):
    args = {
        "news": {"corrections_db": str(tmp_path / "corrections.sqlite"), "api_key": API_KEY},
        "tune": {"storage": str(tmp_path / "runs")},
    }.get(app, {})
    st = Path(sys.executable).parent / "st"
    with deploy_app(app, _build(app), args, timeout=60):
        cmd = [
            str(st),
            "run",
            f"{serve_http}/{app}/openapi.json",
            "--url",
            f"{serve_http}/{app}",
            "--checks",
            CHECKS,
            "--max-time",
            str(FUZZ_SECONDS),
            "--max-examples",
            "40",
            "--seed",
            "20",
            "--request-timeout",
            "30",
            "--workers",
            "2",
            "--header",
            f"X-API-Key: {API_KEY}",
            "--no-color",
            "--report-dir",
            str(tmp_path / "report"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120)
    out = proc.stdout + proc.stderr
    print(out[-2500:])
    assert proc.returncode == 0, out[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", out)
    assert generated and int(generated[1]) > 50 and generated[1] == generated[2], out[-3000:]
