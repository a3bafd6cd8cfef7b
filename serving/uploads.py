"""What a request brings in, checked before any app code sees it: bodies, images, names and API keys.

Used by every model app (/omr, /news, /face, /qc). Every POST needs a body; images come as raw bytes
(`Content-Type: image/png`, `image/jpeg` or `application/octet-stream`) or as the `file` field of a multipart
form (FastAPI `UploadFile`); `image_file` and `image_body` describe both in the OpenAPI, with the limits, so
`<prefix>/docs` can upload a file and client generators and fuzzers see the real request. They are checked by
signature and by the dimensions in their header against the app's `Limits` (pixels, sides, aspect ratio) before
any pixel is decoded (decompression bombs, shapes the model cannot afford), and
every failure becomes a 4xx with a one-line reason. Write endpoints compare an API
key from the app's configuration (Serve app args or an environment variable), never a default in code.
"""

from __future__ import annotations

import functools
import hmac
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from workloads.images import MAX_PIXELS, ImageError, Limits, decode_image
from workloads.registry import RegistryError, check_name

MAX_BODY = 32 * 1024 * 1024  # bytes of one upload
IMAGE_TYPES = ("image/png", "image/jpeg", "application/octet-stream")
RAW_TYPES = ("image/png", "image/jpeg")  # the raw body types documented (application/octet-stream is accepted too)


DOCS_ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}


def api(title: str, description: str) -> FastAPI:
    """A model app's FastAPI: every refusal is `{"detail": "<one line>"}` (FastAPI's own validation errors too), a
    body whose declared length is over `MAX_BODY` answers 413 before anything parses it, and `/docs` is Swagger UI
    served from the app itself (the files of the `fastapi-offline` wheel), so it works without internet access."""
    app = FastAPI(title=title, description=description, docs_url=None)
    app.add_exception_handler(RequestValidationError, _one_line)
    app.add_middleware(BodyLimit)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    @app.get("/docs-assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if name not in DOCS_ASSETS:
            raise HTTPException(404, "no such docs asset")
        return Response(_docs_asset(name), media_type=DOCS_ASSETS[name], headers={"cache-control": "max-age=86400"})

    return app


@functools.cache
def _docs_asset(name: str) -> bytes:
    import fastapi_offline

    return (Path(fastapi_offline.__file__).parent / "static" / name).read_bytes()


async def _one_line(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with one line: where (e.g. `query min_score`) and what, for the first problem."""
    problems = exc.errors()
    first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
    where = " ".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return JSONResponse({"detail": f"{where}: {first.get('msg')}{more}" if where else first.get("msg")}, 422)


class BodyLimit:
    """ASGI middleware: 413 for a request whose Content-Length is over `max_bytes`, before any form is parsed."""

    def __init__(self, app, max_bytes: int = MAX_BODY):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            declared = dict(scope.get("headers") or []).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_bytes:
                detail = f"body of {int(declared)} bytes exceeds the limit of {self.max_bytes}"
                return await JSONResponse({"detail": detail}, 413)(scope, receive, send)
        return await self.app(scope, receive, send)


def image_file(what: str = "the image"):
    """The multipart `file` field of an image endpoint (an `UploadFile`; optional, since a raw body works too)."""
    return File(None, description=f"{what} as a PNG or JPEG file (or send the file itself as the raw body)")


def image_body(limits: Limits, what: str = "The image") -> dict[str, Any]:
    """The endpoint's `openapi_extra`: the request body is required, and besides the multipart form (from
    `image_file`) it may be the raw PNG or JPEG bytes; the limits are stated."""
    raw = {"schema": {"type": "string", "format": "binary", "maxLength": MAX_BODY}}
    return {
        "requestBody": {
            "required": True,
            "description": (
                f"{what} as the multipart field `file`, or the raw bytes with Content-Type image/png or "
                f"image/jpeg (application/octet-stream is read too). At most {MAX_BODY // 2**20} MiB; "
                f"{limits.describe()}."
            ),
            "content": {ctype: raw for ctype in RAW_TYPES},
        }
    }


async def read_body(request: Request, max_bytes: int = MAX_BODY) -> bytes:
    """The request body, refusing empty and oversized ones (the declared length is checked first)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {max_bytes}")
    body = await request.body()
    if not body:
        raise HTTPException(400, "empty body: this endpoint needs a request body")
    if len(body) > max_bytes:
        raise HTTPException(413, f"body exceeds the limit of {max_bytes} bytes")
    return body


async def read_image(request: Request, limits: Limits | int = MAX_PIXELS, file: UploadFile | None = None):
    """(gray uint8 array, raw bytes) of the uploaded image within `limits` (or a pixel limit), or an
    HTTPException with the reason. `file` is the multipart field FastAPI parsed (`image_file`), if any."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        if file is None:
            form = await request.form()  # the form FastAPI parsed (cached), when the endpoint declares no field
            file = form.get("file")
        if file is None or isinstance(file, str):
            raise HTTPException(400, "multipart upload needs a 'file' field holding the image")
        data = await file.read()
        if not data:
            raise HTTPException(400, "empty 'file' field: it needs the image")
        if len(data) > MAX_BODY:
            raise HTTPException(413, f"file exceeds the limit of {MAX_BODY} bytes")
    elif ctype in IMAGE_TYPES:
        data = await read_body(request)
    else:
        raise HTTPException(
            415,
            f"unsupported content type {ctype or '(none)'!r}: send image/png, image/jpeg, "
            "application/octet-stream or multipart/form-data with a 'file' field",
        )
    try:
        return decode_image(data, limits), data
    except ImageError as exc:
        raise HTTPException(exc.status, str(exc)) from None


def checked_name(value: str, what: str) -> str:
    """A publisher or model id from a request, refused with 400 unless it is a plain identifier."""
    try:
        return check_name(value, what)
    except RegistryError as exc:
        raise HTTPException(400, str(exc)) from None


def configured_secret(args: dict[str, Any], key: str, env: str) -> str | None:
    """A secret from the app's args, else from the environment; None when neither sets it (never a default)."""
    value = args.get(key) or os.environ.get(env)
    return str(value) if value else None


def check_api_key(request: Request, expected: str | None) -> None:
    """401 unless the `X-API-Key` header matches (constant-time); 503 when no key is configured at all."""
    if not expected:
        raise HTTPException(503, "this write endpoint is disabled: no API key is configured for the app")
    given = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong X-API-Key header")
