"""The typed requests and answers of the model apps, for `<prefix>/openapi.json` and for `serving.client` (this
module needs only pydantic, not Ray): errors (4xx/5xx bodies), the model part of each answer, the image limits,
the health answers, then each app's own answers and the /news corrections body.

Every error body is `{"detail": "<one line>"}`, also for requests FastAPI refuses (a query parameter out of range,
a missing form field): `uploads.api` installs the handler that turns FastAPI's list of problems into one line.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Error(BaseModel):
    """Every 4xx and 5xx answer of the model apps."""

    detail: str = Field(description="one line saying what is wrong and, where it helps, what to send instead")


# What each status means on an upload endpoint (the OpenAPI `responses`, each with the Error body).
ERROR_TEXT = {
    400: "bad request: empty body, corrupt or undecodable image, a missing form field, a bad name",
    401: "missing or wrong X-API-Key header",
    404: "not found: an unknown publisher (GET /news/publishers lists them) or experiment",
    413: "too large: body over 32 MiB, or more pixels / a longer side than the app's limits",
    415: "unsupported media type: not PNG or JPEG, or a content type the endpoint does not read",
    422: "a shape the model cannot use (side too short, aspect ratio too long), or invalid fields/parameters",
    500: "the model failed on this one request (logged; requests batched with it are answered normally)",
    503: "write endpoint disabled (no API key configured), or the app's queue is full: retry later",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` for these status codes, each with the `Error` body."""
    return {code: {"model": Error, "description": ERROR_TEXT[code]} for code in codes}


class ModelInfo(BaseModel):
    """The model part of every answer."""

    name: str | None = Field(description="model name in the registry")
    version: str | None = Field(description="registry version; null for an untrained fallback")
    trained: bool = Field(description="false: an untrained fallback served, its outputs are meaningless")
    code_version: str | None = Field(None, description="the code version the model was trained with")
    note: str | None = Field(None, description="what the model's figures mean, e.g. trained on synthetic data only")


class ImageLimits(BaseModel):
    """The image shapes an app accepts (app args of the same names override the defaults)."""

    max_pixels: int
    max_side: int
    min_side: int
    max_aspect: float


class Health(BaseModel):
    """`GET <prefix>/health`: the model still runs; limits and devices in force."""

    model_config = ConfigDict(extra="allow")

    status: str = Field(description='"ok" once the model ran on a small input')
    model: ModelInfo | None = None
    limits: ImageLimits | None = None
    device: str | None = Field(None, description="the torch device the models run on (app arg `device`)")
    devices: list[str] | None = Field(None, description="the devices the model parameters are on")
    warning: str | None = Field(None, description="present while a model is an untrained fallback")


class ModelMetadata(BaseModel):
    """`GET <prefix>/model`: the model's registry metadata (keys vary by model) and whether it is trained."""

    model_config = ConfigDict(extra="allow")

    trained: bool


# ---------------------------------------------------------------- /omr
class Symbol(BaseModel):
    label: str = Field(description="symbol class (workloads/pages/schema.py)")
    score: float = Field(description="detection score in [0, 1]")
    box: list[float] = Field(description="[x0, y0, x1, y1] in page pixels", min_length=4, max_length=4)


class BatchInfo(BaseModel):
    size: int = Field(description="requests in the batch this page ran in")
    group: int = Field(description="pages in its forward pass (a group of bounded padded canvas)")
    canvas_pixels: int = Field(description="padded canvas of that forward pass: pages x tallest x widest")


class Detection(BaseModel):
    """`POST /omr/detect`: the symbols found on the page."""

    model: ModelInfo
    width: int
    height: int
    count: int = Field(description="symbols with score >= min_score")
    symbols: list[Symbol]
    batch: BatchInfo
    overlay_png: str | None = Field(None, description="with ?overlay=true: the page with the boxes, base64 PNG")
    warning: str | None = Field(None, description="present while the model is an untrained fallback")


# ---------------------------------------------------------------- /news
class Correction(BaseModel):
    """`POST /news/corrections`: a page and its true article boxes, stored for retraining."""

    publisher: str = Field(description="the publisher whose model should learn from this page")
    image_base64: str = Field(min_length=1, description="the page as base64 PNG or JPEG")
    is_article: bool = Field(True, description="false for classifieds, TV, share prices, sports results pages")
    articles: list[list[float]] = Field(default_factory=list, description="article boxes [x0, y0, x1, y1] px")
    note: str = Field("", max_length=1000)


class Stored(BaseModel):
    id: int = Field(description="the correction's row id")
    publisher: str
    stored: bool
    total_for_publisher: int


class Article(BaseModel):
    id: int
    box: list[float] = Field(description="[x0, y0, x1, y1] in page pixels", min_length=4, max_length=4)


class PreclassifierInfo(BaseModel):
    version: str | None
    trained: bool


class SegmenterInfo(BaseModel):
    publisher: str
    name: str | None
    version: str | None
    trained: bool


class Segmentation(BaseModel):
    """`POST /news/segment`: whether the page holds articles, and their regions."""

    publisher: str
    is_article: bool = Field(description="false: a non-article page (classifieds, TV, share prices, results)")
    p_article: float
    articles: list[Article]
    width: int
    height: int
    preclassifier: PreclassifierInfo
    model: SegmenterInfo
    warning: str | None = Field(None, description="present while a model is an untrained fallback")


class Publisher(BaseModel):
    name: str
    trained: bool


class Publishers(BaseModel):
    publishers: list[Publisher]


class NewsHealth(Health):
    preclassifier_trained: bool
    corrections: int = Field(description="stored corrections, all publishers")
    publishers: list[Publisher]
    limits: ImageLimits


# ---------------------------------------------------------------- /face
class Turn(BaseModel):
    rotated_by: int = Field(description="degrees counter-clockwise the upload was rotated by")
    confidence: float


class Orientation(BaseModel):
    selfie: Turn
    id_photo: Turn
    note: str


class Quality(BaseModel):
    acceptable: bool | None = Field(description="null while the quality limits are untrained")
    guidance: list[str] = Field(description="what to change for a better capture")


class Experts(BaseModel):
    quality: float
    patch_low: float
    patch_high: float
    motion: float | None = Field(description="null with one selfie frame")


class Spoof(BaseModel):
    experts: Experts = Field(description="spoof probability per expert")
    fused: float = Field(description="the decision tree's fused spoof probability")
    threshold: float
    verdict: str = Field(description='"attack" or "live"')
    frames: int
    note: str | None


class Match(BaseModel):
    score: float = Field(description="selfie vs ID photo, in [0, 1]")
    note: str


class Verification(BaseModel):
    """`POST /face/verify`: orientation, quality, anti-spoofing and match of a selfie against an ID photo."""

    model: ModelInfo
    orientation: Orientation
    quality: Quality
    spoof: Spoof
    match: Match
    warning: str | None = Field(None, description="present while the models are untrained fallbacks")


# ---------------------------------------------------------------- /qc
class Adversarial(BaseModel):
    flag: bool = Field(description="true: the input looks adversarially perturbed")
    spatial_entropy: float = Field(description="local spatial entropy of the first layer's feature maps")
    threshold: float | None = Field(description="entropy above which the flag is set; null while uncalibrated")


class Inspection(BaseModel):
    """`POST /qc/inspect`: the verdict on one tube image."""

    model: ModelInfo
    defect_probability: float
    defect: bool = Field(description="defect_probability >= decision_threshold")
    decision_threshold: float
    adversarial: Adversarial
    input_size: list[int] = Field(description="[width, height] of the upload", min_length=2, max_length=2)
    saliency_png: str | None = Field(None, description="guided-backprop saliency over the input, base64 PNG")
    warning: str | None = Field(None, description="present while the model is an untrained fallback")
