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

from serving.common import batch_options, deployment_options, read_image
from workloads.registry import find_model
from workloads.images import MAX_PIXELS

api = FastAPI(title="dlwild OMR", description="Deep Watershed Detector for music symbols on page images.")
UNTRAINED = "untrained fallback model: no omr model in the registry or builtin; detections are meaningless"


@serve.deployment
@serve.ingress(api)
class OMRDetector:
    def __init__(self, registry: str | None = None, model: str = "dwd", version: str = "latest",
                 max_pixels: int = MAX_PIXELS, threads: int = 1, device: str = "auto",
                 max_batch_size: int = 8, batch_wait_timeout_s: float = 0.005):
        import torch

        from workloads.pages.music import CLASSES
        from workloads.vision import dwd
        from workloads.vision.fcn import pick_device

        torch.set_num_threads(threads)
        self.device = pick_device(device)
        found = find_model("omr", model, version, registry)
        if found:
            files, self.meta = found
            self.model, self.classes = dwd.load(files, self.meta), list(self.meta["classes"])
        else:
            self.meta = dict(task="omr", name=model, version=None, trained=False)
            self.model, self.classes = dwd.build_model(len(CLASSES)).eval(), list(CLASSES)
        self.model.to(self.device)
        self.trained = bool(found)
        self.max_pixels = max_pixels
        self.detect_batch.set_max_batch_size(max_batch_size)
        self.detect_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def _info(self) -> dict[str, Any]:
        return dict(name=self.meta.get("name"), version=self.meta.get("version"), trained=self.trained,
                    code_version=self.meta.get("code_version"))

    def _run(self, images: list[np.ndarray]) -> list[list[dict]]:
        from workloads.vision import dwd

        return dwd.detect(self.model, self.classes, images, self.device)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def detect_batch(self, images: list[np.ndarray]) -> list[list[dict]]:
        # In a thread, so that requests keep arriving (and fill the next batch) while the model runs.
        return await asyncio.to_thread(self._run, images)

    @api.post("/detect")
    async def detect(self, request: Request, overlay: bool = False,
                     min_score: float = Query(0.3, ge=0.0, le=1.0)) -> dict[str, Any]:
        img, _ = await read_image(request, self.max_pixels)
        symbols = [s for s in await self.detect_batch(img) if s["score"] >= min_score]
        body: dict[str, Any] = dict(model=self._info(), width=img.shape[1], height=img.shape[0],
                                    count=len(symbols), symbols=symbols)
        if not self.trained:
            body["warning"] = UNTRAINED
        if overlay:
            import cv2

            canvas = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            for s in symbols:
                x0, y0, x1, y1 = (int(v) for v in s["box"])
                cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 0, 255), 1)
            body["overlay_png"] = base64.b64encode(cv2.imencode(".png", canvas)[1].tobytes()).decode()
        return body

    @api.get("/health")
    def health(self) -> dict[str, Any]:
        self.check_health()
        body = dict(status="ok", model=self._info())
        if not self.trained:
            body["warning"] = UNTRAINED
        return body

    @api.get("/model")
    def model_info(self) -> dict[str, Any]:
        return dict(self.meta, trained=self.trained)

    def check_health(self) -> None:
        """Serve's health check: the model must still run (on a small blank page)."""
        self._run([np.full((64, 64), 255, np.uint8)])


def build_app(args: dict[str, Any] | None = None):
    """Serve app builder; args (all optional): registry, model, version, max_batch_size, batch_wait_timeout_s,
    threads, device, num_cpus, num_gpus, num_replicas | min_replicas/max_replicas/target_ongoing_requests,
    max_ongoing_requests, max_queued_requests, max_pixels."""
    args = dict(args or {})
    batch = batch_options(args)
    return OMRDetector.options(**deployment_options(args, batch["max_batch_size"])).bind(
        registry=args.get("registry"), model=args.get("model", "dwd"), version=args.get("version", "latest"),
        max_pixels=int(args.get("max_pixels", MAX_PIXELS)), threads=int(args.get("threads", 1)),
        device=args.get("device", "auto"), **batch)
