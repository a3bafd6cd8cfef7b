"""`/omr`: music symbol detection with the DWD model from the registry, batched by `@serve.batch`.

    POST /omr/detect[?overlay=true&min_score=0.3]   body: a PNG or JPEG page -> {"symbols": [{label, score, box}]}
    GET  /omr/health                                 runs the model; says whether it is trained
    GET  /omr/model                                  the model's registry metadata

The model is `<registry>/omr/<model>/<version>` (registry: app arg `registry`, else $DLWILD_REGISTRY, else
`registry/`), else the small model committed in workloads/builtin, else an untrained network, in which
case every response and the health endpoint carry a warning.
"""

import asyncio
import base64
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from ray import serve

from serving.skeleton import ModelApp, bind, model_args, model_ingress
from serving.uploads import read_image
from workloads.images import MAX_PIXELS

api = FastAPI(title="dlwild OMR", description="Deep Watershed Detector for music symbols on page images.")


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
        max_pixels: int = MAX_PIXELS,
        threads: int = 1,
        device: str = "auto",
        max_batch_size: int = 8,
        batch_wait_timeout_s: float = 0.005,
    ):
        import torch

        from workloads.pages.schema import classes
        from workloads.vision import dwd
        from workloads.vision.fcn import pick_device

        torch.set_num_threads(threads)
        self.device = pick_device(device)
        files = self.load(model, version, registry)
        if files:
            self.model, self.classes = dwd.load(files, self.meta), list(self.meta["classes"])
        else:
            self.classes = classes("music")
            self.model = dwd.build_model(len(self.classes)).eval()
        self.model.to(self.device)
        self.max_pixels = max_pixels
        self.detect_batch.set_max_batch_size(max_batch_size)
        self.detect_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def _run(self, images: list[np.ndarray]) -> list[list[dict]]:
        from workloads.vision import dwd

        return dwd.detect(self.model, self.classes, images, self.device)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def detect_batch(self, images: list[np.ndarray]) -> list[list[dict]]:
        # In a thread, so that requests keep arriving (and fill the next batch) while the model runs.
        return await asyncio.to_thread(self._run, images)

    @api.post("/detect")
    async def detect(
        self, request: Request, overlay: bool = False, min_score: float = Query(0.3, ge=0.0, le=1.0)
    ) -> dict[str, Any]:
        img, _ = await read_image(request, self.max_pixels)
        symbols = [s for s in await self.detect_batch(img) if s["score"] >= min_score]
        body: dict[str, Any] = self.warned(
            dict(model=self.info(), width=img.shape[1], height=img.shape[0], count=len(symbols), symbols=symbols)
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
    threads, device, num_cpus, num_gpus, num_replicas | min_replicas/max_replicas/target_ongoing_requests,
    max_ongoing_requests, max_queued_requests, max_pixels."""
    args = dict(args or {})
    return bind(
        OMRDetector, args, **model_args(args), model=args.get("model", "dwd"), device=args.get("device", "auto")
    )
