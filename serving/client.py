"""A small typed client of the model apps, on httpx: one method per endpoint, answers as the pydantic models of
`serving.schemas` (the same models the apps declare in their OpenAPI), and `ServeError` with the server's one-line
`detail` for every 4xx/5xx.

    from serving.client import Client

    with Client("http://127.0.0.1:8000") as dl:
        found = dl.omr_detect(Path("page.png"), overlay=True)       # Detection
        print(found.count, found.symbols[0].label)
        seg = dl.news_segment(png_bytes, publisher="daily_ledger")   # Segmentation
        face = dl.face_verify([frame1, frame2], id_photo)            # Verification
        tube = dl.qc_inspect(Path("tube.png"))                       # Inspection

An image is PNG or JPEG bytes or the path of such a file; it is sent as the raw body with its type
(`image/png` or `image/jpeg`) except for /face, whose frames go as multipart parts.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import BaseModel

from serving.schemas import (
    Correction,
    Detection,
    Health,
    Inspection,
    ModelMetadata,
    Publishers,
    Segmentation,
    Stored,
    Verification,
)

Image = bytes | str | Path
M = TypeVar("M", bound=BaseModel)
APPS = ("omr", "news", "face", "qc")


class ServeError(RuntimeError):
    """A 4xx/5xx answer: `status`, the server's one-line `detail`, and which request got it."""

    def __init__(self, status: int, detail: str, method: str, url: str):
        super().__init__(f"{method} {url} -> {status}: {detail}")
        self.status, self.detail, self.method, self.url = status, detail, method, url


def image_bytes(image: Image) -> bytes:
    """The bytes of an image given as bytes or a path."""
    return image if isinstance(image, bytes) else Path(image).read_bytes()


def image_type(data: bytes) -> str:
    """`image/jpeg` for JPEG bytes, else `image/png` (the server checks the signature either way)."""
    return "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"


class Client:
    """The model apps at `base_url` (Serve's HTTP address). `api_key` is sent with /news/corrections."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        timeout: float = 60.0,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.api_key = api_key
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ---------------------------------------------------------------------------------------------- plumbing
    def _call(self, model: type[M], method: str, path: str, **kwargs) -> M:
        r = self.http.request(method, path, **kwargs)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text.strip() or r.reason_phrase
            raise ServeError(r.status_code, str(detail), method, str(r.request.url))
        return model.model_validate(r.json())

    def _image(self, model: type[M], path: str, image: Image, params: dict) -> M:
        data = image_bytes(image)
        return self._call(model, "POST", path, content=data, headers={"content-type": image_type(data)}, params=params)

    # --------------------------------------------------------------------------------------------- endpoints
    def omr_detect(self, page: Image, *, overlay: bool = False, min_score: float = 0.3) -> Detection:
        """`POST /omr/detect`: music symbols on a page (with `overlay`, the page with boxes as base64 PNG)."""
        params = {"overlay": str(overlay).lower(), "min_score": min_score}
        return self._image(Detection, "/omr/detect", page, params)

    def news_segment(self, page: Image, publisher: str) -> Segmentation:
        """`POST /news/segment`: article regions of a newspaper page, by the publisher's model."""
        return self._image(Segmentation, "/news/segment", page, {"publisher": publisher})

    def news_publishers(self) -> Publishers:
        """`GET /news/publishers`: the publishers with a model and whether each is trained."""
        return self._call(Publishers, "GET", "/news/publishers")

    def news_correction(
        self,
        publisher: str,
        page: Image,
        articles: Sequence[Sequence[float]],
        *,
        is_article: bool = True,
        note: str = "",
    ) -> Stored:
        """`POST /news/corrections` (needs `api_key`): store a page with its true article boxes for retraining."""
        body = Correction(
            publisher=publisher,
            image_base64=base64.b64encode(image_bytes(page)).decode(),
            is_article=is_article,
            articles=[list(map(float, a)) for a in articles],
            note=note,
        )
        headers = {"content-type": "application/json", "x-api-key": self.api_key or ""}
        return self._call(Stored, "POST", "/news/corrections", content=body.model_dump_json(), headers=headers)

    def face_verify(self, selfie: Image | Sequence[Image], id_photo: Image) -> Verification:
        """`POST /face/verify`: a selfie (one image, or 2-8 frames of a clip) against an ID photo."""
        frames = [selfie] if isinstance(selfie, (bytes, str, Path)) else list(selfie)
        parts = []
        for i, frame in enumerate(frames):
            data = image_bytes(frame)
            parts.append(("selfie", (f"selfie{i}", data, image_type(data))))
        data = image_bytes(id_photo)
        parts.append(("id_photo", ("id_photo", data, image_type(data))))
        return self._call(Verification, "POST", "/face/verify", files=parts)

    def qc_inspect(self, image: Image, *, saliency: bool = True) -> Inspection:
        """`POST /qc/inspect`: defect probability, saliency map (base64 PNG) and adversarial flag of a tube."""
        return self._image(Inspection, "/qc/inspect", image, {"saliency": str(saliency).lower()})

    def health(self, app: str) -> Health:
        """`GET /<app>/health`: the model still runs; limits and devices."""
        return self._call(Health, "GET", f"/{_app(app)}/health")

    def model(self, app: str) -> ModelMetadata:
        """`GET /<app>/model` (omr, face, qc): the model's registry metadata."""
        return self._call(ModelMetadata, "GET", f"/{_app(app)}/model")


def _app(app: str) -> str:
    if app not in APPS:
        raise ValueError(f"unknown app {app!r}; one of {', '.join(APPS)}")
    return app
