"""`/omr`: music symbol detection with the DWD model from the registry, batched by `@serve.batch`.

    POST /omr/detect[?overlay=true&min_score=0.3]   body: a PNG or JPEG page (multipart field `file`, or raw
                                                     image/png / image/jpeg) -> {"symbols": [{label, score, box}]}
    GET  /omr/health                                 runs the model; says whether it is trained
    GET  /omr/model                                  the model's registry metadata

The model is `<registry>/omr/<model>/<version>` (registry: app arg `registry`, else $DLWILD_REGISTRY, else
`registry/`), else the small model committed in workloads/builtin, else an untrained network, in which
case every response and the health endpoint carry a warning.

The DWD needs about 200 MiB per megapixel of its padded input, so pages are refused beyond `LIMITS` (413/422,
before batching) and a batch runs in groups whose padded canvas stays within `max_batch_pixels`
(`canvas_groups`): pages of opposite aspect ratio never share one canvas.
"""

import base64
from typing import Any

import numpy as np
from fastapi import Query, Request, UploadFile
from ray import serve

from serving import skeleton, uploads
from serving.schemas import Detection, errors
from serving.skeleton import ModelApp, bind, model_args, model_ingress
from serving.uploads import image_body, image_file, read_image
from workloads.images import Limits

api = uploads.api(title="dlwild OMR", description="Deep Watershed Detector for music symbols on page images.")
# Music pages are about 1000 x 1400 px; 12 MP (an A4 page at 300 dpi) needs about 2.4 GiB; a single staff strip
# is about 10:1, and the FCN pads sides to a multiple of 16 px.
LIMITS = Limits(max_pixels=12_000_000, max_side=8192, min_side=16, max_aspect=16.0)
MAX_BATCH_PIXELS = 16_000_000  # padded canvas of one forward pass (about 3.2 GiB)


def _padded(side: int) -> int:
    """A side as the FCN pads it (a multiple of 16 px)."""
    return -(-side // 16) * 16


@serve.deployment
@model_ingress(api)
class OMRDetector(ModelApp):
    task = "omr"
    untrained = "untrained fallback model: no omr model in the registry or builtin; detections are meaningless"

    def __init__(
        self,
        registry: str | None = None,
        model: str = "dwd",
        version: str = "latest",
        limits: Limits = LIMITS,
        threads: int = 1,
        device: str = "auto",
        max_batch_pixels: int = MAX_BATCH_PIXELS,
        max_batch_size: int = 8,
        batch_wait_timeout_s: float = 0.005,
    ):
        from workloads.pages.schema import classes
        from workloads.vision import dwd

        self.device = skeleton.torch_device(threads, device)
        files = self.load(model, version, registry)
        if files:
            self.model, self.classes = dwd.load(files, self.meta), list(self.meta["classes"])
        else:
            self.classes = classes("music")
            self.model = dwd.build_model(len(self.classes)).eval()
        skeleton.place(self.model, self.device)
        self.limits, self.max_batch_pixels = limits, max_batch_pixels
        self.detect_batch.set_max_batch_size(max_batch_size)
        self.detect_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def torch_models(self) -> list:
        return [self.model]

    def _run(self, images: list[np.ndarray]) -> list[tuple[list[dict], dict]]:
        """(symbols, batch info) per page; the batch runs in groups of bounded padded canvas."""
        from workloads.vision import dwd

        out: list = [None] * len(images)
        for group in skeleton.canvas_groups([im.shape for im in images], self.max_batch_pixels):
            pages = [images[i] for i in group]
            canvas = len(pages) * _padded(max(p.shape[0] for p in pages)) * _padded(max(p.shape[1] for p in pages))
            info = dict(size=len(images), group=len(group), canvas_pixels=canvas)
            for i, symbols in zip(group, dwd.detect(self.model, self.classes, pages, self.device)):
                out[i] = (symbols, info)
        return out

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def detect_batch(self, images: list[np.ndarray]) -> list:
        return await skeleton.run_isolated(self._run, images)

    @api.post(
        "/detect",
        response_model=Detection,
        response_model_exclude_unset=True,
        responses=errors(400, 413, 415, 422, 500, 503),
        description=f"Symbols on a music page. Image limits (defaults; app args override them): {LIMITS.describe()}.",
        openapi_extra=image_body(LIMITS, "The page"),
    )
    async def detect(
        self,
        request: Request,
        file: UploadFile = image_file("the page"),
        overlay: bool = Query(False, description="also answer the page with the boxes drawn (overlay_png)"),
        min_score: float = Query(0.3, ge=0.0, le=1.0, description="answer symbols scoring at least this"),
    ) -> dict[str, Any]:
        img, _ = await read_image(request, self.limits, file)
        found, batch = skeleton.result(await self.detect_batch(img))
        symbols = [s for s in found if s["score"] >= min_score]
        body: dict[str, Any] = self.warned(
            dict(
                model=self.info(),
                width=img.shape[1],
                height=img.shape[0],
                count=len(symbols),
                symbols=symbols,
                batch=batch,
            )
        )
        if overlay:
            import cv2

            canvas = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            for s in symbols:
                x0, y0, x1, y1 = (int(v) for v in s["box"])
                cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 0, 255), 1)
            body["overlay_png"] = base64.b64encode(cv2.imencode(".png", canvas)[1].tobytes()).decode()
        return body

    def check_health(self) -> None:
        """Serve's health check: the model must still run (on a small blank page)."""
        self._run([np.full((64, 64), 255, np.uint8)])


def build_app(args: dict[str, Any] | None = None):
    """Serve app builder; args (all optional): registry, model, version, max_batch_size, batch_wait_timeout_s,
    max_batch_pixels, threads, device, num_cpus, num_gpus, num_replicas | min_replicas/max_replicas/
    target_ongoing_requests, max_ongoing_requests, max_queued_requests, max_pixels, max_side, min_side,
    max_aspect."""
    args = dict(args or {})
    return bind(
        OMRDetector,
        args,
        **model_args(args, LIMITS),
        model=args.get("model", "dwd"),
        max_batch_pixels=int(args.get("max_batch_pixels", MAX_BATCH_PIXELS)),
    )
