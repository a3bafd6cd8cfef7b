"""`/qc`: visual inspection of transparent tubes: defect probability, guided-backprop saliency, adversarial flag.

    POST /qc/inspect[?saliency=true]   body: a PNG or JPEG image (raw bytes or multipart field `file`)
                                       -> defect probability and verdict, saliency PNG (base64), adversarial flag
    GET  /qc/health                    runs the model; says whether it is trained
    GET  /qc/model                     the model's registry metadata

The model is `<registry>/qc/tubes/<version>`, else the small model committed in workloads/builtin, else an
untrained network, in which case every response and the health check say so. The adversarial flag thresholds
the local spatial entropy of the first layer's feature maps (workloads/qc/models.py). The model was
trained on synthetic tubes only; images are turned to gray and resized to its input size.
"""

import base64
from typing import Any

import cv2
import numpy as np
from fastapi import Query, Request, UploadFile
from ray import serve

from serving import uploads
from serving.schemas import Inspection, errors
from serving.skeleton import ModelApp, bind, model_args, model_ingress, place, result, run_isolated, torch_device
from serving.uploads import image_body, image_file, read_image
from workloads.images import Limits

api = uploads.api(title="dlwild QC", description="Defects on transparent tubes, with saliency and adversarial check.")
# Every image is squeezed to the model's 64 x 64 input: a side under 16 px would be blown up 4x, an aspect ratio
# over 4 squashed beyond anything the tube images it learned from look like.
LIMITS = Limits(max_pixels=16_000_000, max_side=8192, min_side=16, max_aspect=4.0)


@serve.deployment
@model_ingress(api)
class QCInspector(ModelApp):
    task, note = "qc", "model trained on synthetic tube images only"
    untrained = "untrained fallback model: no qc model in the registry or builtin; outputs are meaningless"

    def __init__(
        self,
        registry: str | None = None,
        version: str = "latest",
        limits: Limits = LIMITS,
        threads: int = 1,
        device: str = "auto",
        max_batch_size: int = 8,
        batch_wait_timeout_s: float = 0.005,
    ):
        from workloads.qc import data, models
        from workloads.registry import torch_state

        self.model = models.DefectCNN()
        files = self.load(
            models.NAME,
            version,
            registry,
            size=data.SIZE,
            decision_threshold=0.5,
            entropy_scale=[1.0] * self.model.stem[0].out_channels,
            entropy_threshold=float("inf"),
        )
        if files:
            self.model.load_state_dict(torch_state(files["weights.pt"]))
        self.device = torch_device(threads, device)
        place(self.model.eval(), self.device)
        self.size = int(self.meta["size"])
        self.limits = limits
        self.inspect_batch.set_max_batch_size(max_batch_size)
        self.inspect_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def torch_models(self) -> list:
        return [self.model]

    def _run(self, images: list[np.ndarray]) -> list[dict]:
        from workloads.qc import detector, models

        x = np.stack(
            [
                cv2.resize(im, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
                for im in images
            ]
        )
        probs = models.predict(self.model, x)
        entropy = detector.adversarial_score(self.model, x, self.meta)  # the bundle's detector, else the entropy
        sal = models.guided_backprop(self.model, x)
        out = []
        for img, p, e, s in zip(x, probs, entropy, sal):
            png = cv2.imencode(".png", models.saliency_overlay(img, s))[1].tobytes()
            out.append(dict(p=float(p), entropy=float(e), saliency=base64.b64encode(png).decode()))
        return out

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def inspect_batch(self, images: list[np.ndarray]) -> list[dict]:
        return await run_isolated(self._run, images)

    @api.post(
        "/inspect",
        response_model=Inspection,
        response_model_exclude_unset=True,
        responses=errors(400, 413, 415, 422, 500, 503),
        description=f"Inspect one tube image. Image limits (defaults; app args override them): {LIMITS.describe()}.",
        openapi_extra=image_body(LIMITS, "The tube image"),
    )
    async def inspect(
        self,
        request: Request,
        file: UploadFile = image_file("the tube image"),
        saliency: bool = Query(True, description="also answer the saliency map (saliency_png)"),
    ) -> dict[str, Any]:
        img, _ = await read_image(request, self.limits, file)
        r = result(await self.inspect_batch(img))
        threshold, e_thr = float(self.meta["decision_threshold"]), float(self.meta["entropy_threshold"])
        body: dict[str, Any] = dict(
            model=self.info(),
            defect_probability=round(r["p"], 5),
            defect=r["p"] >= threshold,
            decision_threshold=threshold,
            adversarial=dict(
                flag=r["entropy"] > e_thr,
                spatial_entropy=round(r["entropy"], 4),
                threshold=e_thr if np.isfinite(e_thr) else None,
            ),
            input_size=[int(img.shape[1]), int(img.shape[0])],
        )
        if saliency:
            body["saliency_png"] = r["saliency"]
        return self.warned(body)

    def check_health(self) -> None:
        """Serve's health check: the model must still run (on a blank image)."""
        self._run([np.full((self.size, self.size), 128, np.uint8)])


def build_app(args: dict[str, Any] | None = None):
    """Serve app builder; args (all optional): registry, version, max_batch_size, batch_wait_timeout_s, threads,
    device, num_cpus, num_gpus, num_replicas | min_replicas/max_replicas/target_ongoing_requests,
    max_ongoing_requests, max_queued_requests, max_pixels, max_side, min_side, max_aspect."""
    return bind(QCInspector, args, num_cpus=0.1, **model_args(dict(args or {}), LIMITS))
