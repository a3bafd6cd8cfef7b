"""`/face`: face-ID verification: orientation, quality guidance, anti-spoofing ensemble and a match score.

    POST /face/verify   multipart form: `selfie` (one image, or 2-8 frames of a short clip, each a `selfie` part)
                        and `id_photo` (one image) -> corrected orientation, quality verdict with guidance, spoof
                        probability per expert and fused, match score
    GET  /face/health   runs every expert; says whether the models are trained
    GET  /face/model    the bundle's registry metadata

Each expert is its own deployment (orientation, quality, patch_low, patch_high, motion, matcher) with
`@serve.batch`, composed by the ingress through DeploymentHandles, so each scales on its own; the ingress runs
the decision-tree fusion. Models come from `<registry>/face/faceid/<version>`, else the small bundle committed in
workloads/builtin, else untrained networks, in which case every response and the health check say so.
All models are trained on synthetic data (workloads/face/README.md): the figures they produce are
demonstrations, not evidence about real faces.
"""

import asyncio
from typing import Any

import cv2
import numpy as np
from fastapi import Depends, File, HTTPException, Request, UploadFile
from ray import serve
from starlette.datastructures import UploadFile as StarletteUpload

from serving import uploads
from serving.schemas import Verification, errors
from serving.skeleton import (
    ModelApp,
    bind,
    devices_of,
    model_args,
    model_ingress,
    place,
    result,
    run_isolated,
    torch_device,
)
from serving.uploads import IMAGE_TYPES
from workloads.images import ImageError, Limits, decode_image

api = uploads.api(title="dlwild face-ID", description="Selfie vs ID photo: orientation, quality, anti-spoofing, match.")
ROLES = ("orientation", "quality", "patch_low", "patch_high", "motion", "matcher")
MATCH_LIMITS = (
    "the matcher learned from one picture per person: a high score means 'same picture seen under "
    "other conditions', not a verified identity"
)
MAX_FRAMES = 8
# Each upload is cut to its centre square at 128 px (`capture`) and the orientation net sees 32 x 32: a side under
# 32 px would be blown up 4x, an aspect ratio over 4 leaves a centre square of a quarter of the picture. Up to
# 9 RGB images of 16 MP each are about 430 MiB decoded.
LIMITS = Limits(max_pixels=16_000_000, max_side=8192, min_side=32, max_aspect=4.0)


def multipart_only(request: Request) -> None:
    """415 unless the request is a multipart form (checked before FastAPI reports missing fields)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise HTTPException(
            415,
            f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data with "
            "'selfie' (1 to 8 parts) and 'id_photo' file fields",
        )


def capture(img: np.ndarray, side: int) -> np.ndarray:
    """The centre square of an RGB image at `side` px, the size the spoof experts were trained on."""
    h, w = img.shape[:2]
    s = min(h, w)
    sq = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if s == side:
        return np.ascontiguousarray(sq)
    return cv2.resize(sq, (side, side), interpolation=cv2.INTER_AREA if s > side else cv2.INTER_LINEAR)


@serve.deployment
class FaceExpert:
    """One expert of the face bundle; `role` says which. Requests are batched."""

    def __init__(
        self,
        role: str,
        registry: str | None = None,
        version: str = "latest",
        threads: int = 1,
        device: str = "auto",
        max_batch_size: int = 8,
        batch_wait_timeout_s: float = 0.005,
    ):
        from workloads.face import train

        if role not in ROLES:
            raise ValueError(f"unknown face expert role {role!r}")
        self.role = role
        self.models = train.load(registry, version)
        self.device = torch_device(threads, device)
        for net in self.models.nets.values():
            place(net, self.device)
        self.run.set_max_batch_size(max_batch_size)
        self.run.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def _compute(self, items: list) -> list:
        from workloads.face import models, motion, quality

        m = self.models
        if self.role == "orientation":
            return [models.predict_orientation(m.nets["orientation"], gray) for gray in items]
        if self.role == "matcher":
            return [models.match_score(m.nets["embed"], a, b) for a, b in items]
        if self.role == "quality":
            values = [quality.measures(img) for img in items]
            probs = m.spoof("quality", values)
            verdicts = [
                quality.verdict(v, m.limits)
                if m.limits
                else dict(acceptable=None, guidance=["no quality limits: the model is untrained"])
                for v in values
            ]
            return [dict(spoof=float(p), **v) for p, v in zip(probs, verdicts)]
        if self.role == "motion":
            return m.spoof("motion", [motion.features(frames) for frames in items]).tolist()
        return m.spoof(self.role, items).tolist()

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def run(self, items: list) -> list:
        return await run_isolated(self._compute, items)

    def devices(self) -> dict[str, Any]:
        """The device this expert picked and the devices its nets are on (for the ingress's /health)."""
        return dict(device=str(self.device), devices=devices_of(*self.models.nets.values()))

    def check_health(self) -> None:
        """The model must still run on a small input of this role."""
        img = np.full((128, 128, 3), 128, np.uint8)
        gray = img[..., 0]
        self._compute([{"orientation": gray, "matcher": (gray, gray), "motion": [img, img]}.get(self.role, img)])


@serve.deployment
@model_ingress(api)
class FaceVerify(ModelApp):
    task, note = "face", "models trained on synthetic data only (scikit-image pictures, synthesised attacks)"
    untrained = "untrained fallback models: no face bundle in the registry or builtin; every score is meaningless"

    def __init__(self, experts: dict, registry: str | None = None, version: str = "latest", limits: Limits = LIMITS):
        from workloads.face import train

        self.experts = experts
        self.models = train.load(registry, version)  # the whole bundle, for the fusion tree and its thresholds
        self.meta, self.trained = self.models.meta, self.models.trained
        self.capture = int(self.meta.get("capture", 128))
        self.limits = limits

    async def _images(self, request: Request) -> tuple[list[np.ndarray], np.ndarray]:
        """The selfie frames and the ID photo (FastAPI parsed the form; several parts of a name are read here)."""
        form = await request.form()  # cached: the form FastAPI parsed
        selfies, ids = form.getlist("selfie"), form.getlist("id_photo")
        if not selfies or len(ids) != 1:
            raise HTTPException(400, "need 'selfie' (1 to 8 file parts) and exactly one 'id_photo' file part")
        if len(selfies) > MAX_FRAMES:
            raise HTTPException(400, f"at most {MAX_FRAMES} selfie frames, got {len(selfies)}")

        async def decode(part, what: str) -> np.ndarray:
            if not isinstance(part, StarletteUpload):
                raise HTTPException(400, f"'{what}' must be a file part, not a text field")
            declared = (part.content_type or "").split(";")[0].strip().lower()
            if declared and declared not in IMAGE_TYPES:
                raise HTTPException(415, f"'{what}' has content type {declared!r}: send image/png or image/jpeg")
            try:
                return decode_image(await part.read(), self.limits, mode="RGB")
            except ImageError as exc:
                raise HTTPException(exc.status, f"{what}: {exc}") from None

        frames = [await decode(p, "selfie") for p in selfies]
        return frames, await decode(ids[0], "id_photo")

    @api.post(
        "/verify",
        response_model=Verification,
        response_model_exclude_unset=True,
        responses=errors(400, 413, 415, 422, 500, 503),
        description=f"Verify a selfie (1 to {MAX_FRAMES} frames: repeat the `selfie` field) against an ID photo, as a "
        f"multipart form. Each upload is a PNG or JPEG; limits, each upload (defaults; app args override): "
        f"{LIMITS.describe()}; the whole body at most {uploads.MAX_BODY // 2**20} MiB.",
        dependencies=[Depends(multipart_only)],
    )
    async def verify(
        self,
        request: Request,
        selfie: list[UploadFile] = File(
            ..., description=f"the selfie: one picture, or 2 to {MAX_FRAMES} frames of a short clip (motion expert)"
        ),
        id_photo: UploadFile = File(..., description="the ID document's photo"),
    ) -> dict[str, Any]:
        frames, id_photo = await self._images(request)
        h = self.experts
        gray = lambda img: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)  # noqa: E731
        (sel_deg, sel_conf), (id_deg, id_conf) = map(
            result,
            await asyncio.gather(
                h["orientation"].run.remote(gray(frames[0])), h["orientation"].run.remote(gray(id_photo))
            ),
        )
        from workloads.face.models import upright

        frames = [capture(upright(f, sel_deg), self.capture) for f in frames]
        id_up = upright(id_photo, id_deg)
        selfie = frames[0]
        calls = [
            h["quality"].run.remote(selfie),
            h["patch_low"].run.remote(selfie),
            h["patch_high"].run.remote(selfie),
            h["matcher"].run.remote((gray(id_up), gray(selfie))),
        ]
        if len(frames) >= 2:
            calls.append(h["motion"].run.remote(frames))
        results = [result(r) for r in await asyncio.gather(*calls)]
        qual, p_low, p_high, match = results[:4]
        p_motion = results[4] if len(frames) >= 2 else None
        probs = dict(
            quality=qual["spoof"], patch_low=p_low, patch_high=p_high, motion=0.5 if p_motion is None else p_motion
        )
        fused = float(self.models.fuse({k: np.array([v]) for k, v in probs.items()})[0])
        threshold = float(self.models.thresholds.get("ensemble", 0.5))
        body: dict[str, Any] = dict(
            model=self.info(),
            orientation=dict(
                selfie=dict(rotated_by=sel_deg, confidence=round(sel_conf, 4)),
                id_photo=dict(rotated_by=id_deg, confidence=round(id_conf, 4)),
                note="degrees counter-clockwise the upload was rotated by; the app turned it upright",
            ),
            quality=dict(acceptable=qual["acceptable"], guidance=qual["guidance"]),
            spoof=dict(
                experts=dict(quality=qual["spoof"], patch_low=p_low, patch_high=p_high, motion=p_motion),
                fused=round(fused, 4),
                threshold=threshold,
                verdict="attack" if fused >= threshold else "live",
                frames=len(frames),
                note=None if p_motion is not None else "one frame only: send 2-8 'selfie' frames for the motion expert",
            ),
            match=dict(score=round(match, 4), note=MATCH_LIMITS),
        )
        return self.warned(body)

    async def health_body(self) -> dict[str, Any]:
        hardware = {}
        for role in ROLES:  # a health call per expert replica that would answer
            await self.experts[role].check_health.remote()
            hardware[role] = await self.experts[role].devices.remote()
        return dict(
            status="ok", model=self.info(), experts=list(ROLES), limits=self.limits.as_dict(), hardware=hardware
        )


def build_app(args: dict[str, Any] | None = None):
    """Serve app builder; args (all optional): registry, version, max_batch_size, batch_wait_timeout_s, threads,
    device and num_cpus (each expert), ingress_num_cpus, num_gpus (each expert; the ingress runs no network),
    num_replicas | min_replicas/max_replicas/target_ongoing_requests, max_ongoing_requests, max_queued_requests,
    max_pixels, max_side, min_side, max_aspect (each upload)."""
    args = dict(args or {})
    experts = {
        role: bind(
            FaceExpert.options(name=f"Face_{role}"), args, num_cpus=0.05, role=role, **model_args(args, limits=None)
        )
        for role in ROLES
    }
    ingress = dict(args, num_cpus=args.get("ingress_num_cpus", 0.05), num_gpus=0)
    return bind(
        FaceVerify,
        ingress,
        batched=False,
        experts=experts,
        registry=args.get("registry"),
        version=args.get("version", "latest"),
        limits=LIMITS.override(args),
    )
