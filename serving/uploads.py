"""What a request brings in, checked before any app code sees it: bodies, images, names and API keys.

Used by every model app (/omr, /news, /face, /qc). Every POST needs a body; images come as raw bytes
(`Content-Type: image/png`, `image/jpeg` or `application/octet-stream`) or as the `file` field of a multipart
form. They are checked by signature and by the dimensions in their header against the app's `Limits` (pixels,
sides, aspect ratio) before any pixel is decoded (decompression bombs, shapes the model cannot afford), and
every failure becomes a 4xx with a one-line reason. Write endpoints compare an API
key from the app's configuration (Serve app args or an environment variable), never a default in code.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from fastapi import HTTPException, Request

from workloads.images import MAX_PIXELS, ImageError, Limits, decode_image
from workloads.registry import RegistryError, check_name

MAX_BODY = 32 * 1024 * 1024  # bytes of one upload
IMAGE_TYPES = ("image/png", "image/jpeg", "application/octet-stream")


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


async def read_image(request: Request, limits: Limits | int = MAX_PIXELS):
    """(gray uint8 array, raw bytes) of the uploaded image within `limits` (or a pixel limit), or an
    HTTPException with the reason."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        await read_body(request)  # size and emptiness checks before parsing the form
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, "multipart upload needs a 'file' field holding the image")
        data = await upload.read()
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
