"""`/news`: newspaper page segmentation, one model per publisher (`@serve.multiplexed`), and corrections.

    POST /news/segment?publisher=NAME   body: a PNG or JPEG page (multipart field `file`, or raw image/png /
                                        image/jpeg) -> non-article verdict or article regions
    POST /news/corrections              JSON {publisher, image_base64, is_article, articles: [[x0, y0, x1, y1]]},
                                        header X-API-Key; stored in an embedded SQLite file for retraining
    GET  /news/publishers               publishers with a model, and whether each is trained
    GET  /news/health                   runs the pre-classifier and a segmenter

The publisher may also come in the `serve_multiplexed_model_id` header, which lets Serve route a request to
a replica that already holds that publisher's model. Models: `<registry>/news/<publisher>/<version>` and
`news/preclassifier`, else the committed builtin ones, else untrained fallbacks that say so in every response.
The API key is an app arg (`api_key`) or $DLWILD_NEWS_API_KEY; without one, /news/corrections answers 503.
Pages, and the images of corrections, are refused beyond `workloads.vision.news.LIMITS` (413/422) before any
model work; a batch runs each publisher's pages in groups of bounded padded canvas (`max_batch_pixels`).
"""

import asyncio
import base64
import binascii
import logging
import time
import weakref
from collections import defaultdict
from typing import Any

import numpy as np
from fastapi import HTTPException, Query, Request, Security, UploadFile
from fastapi.security import APIKeyHeader
from pydantic import ValidationError
from ray import serve

from serving import uploads
from serving.schemas import Correction, NewsHealth, Publishers, Segmentation, Stored, errors
from serving.skeleton import bind, canvas_groups, devices_of, place, result, run_isolated, torch_device
from serving.uploads import (
    check_api_key,
    checked_name,
    configured_secret,
    image_body,
    image_file,
    read_body,
    read_image,
)
from workloads.images import ImageError, Limits, decode_image
from workloads.registry import BUILTIN_REGISTRY, find_model, list_models, registry_root
from workloads.vision.corrections import check_correction
from workloads.vision.news import LIMITS

api = uploads.api(title="dlwild news", description="Article segmentation of newspaper pages, per publisher.")
log = logging.getLogger("ray.serve")
MAX_BATCH_PIXELS = 32_000_000  # page pixels of one segmenter forward pass (it runs at half size: 8 MP)
UNTRAINED = "untrained fallback model for {what}: no trained model in the registry or builtin; output is meaningless"


API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="the app's key (app arg `api_key`)")


# The corrections body as the OpenAPI states it; the endpoint parses it itself, after the API key check, so a
# request without the key answers 401 whatever its body.
CORRECTION_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": Correction.model_json_schema()}},
        "description": f"The page (base64 PNG or JPEG) is held to the /segment limits: {LIMITS.describe()}.",
    }
}


class Segmenter:
    """One publisher's loaded model and what to say about it."""

    def __init__(self, publisher: str, model, meta: dict, trained: bool):
        self.publisher, self.model, self.meta, self.trained = publisher, model, meta, trained

    def info(self) -> dict[str, Any]:
        return dict(
            publisher=self.publisher, name=self.meta.get("name"), version=self.meta.get("version"), trained=self.trained
        )


@serve.deployment
@serve.ingress(api)
class NewsSegmenter:
    def __init__(
        self,
        registry: str | None = None,
        api_key: str | None = None,
        corrections_db: str | None = None,
        device: str = "auto",
        limits: Limits = LIMITS,
        threads: int = 1,
        max_batch_pixels: int = MAX_BATCH_PIXELS,
        max_batch_size: int = 4,
        batch_wait_timeout_s: float = 0.005,
    ):
        from workloads.vision import news
        from workloads.vision.corrections import CorrectionStore, store_path

        self.registry = registry or registry_root()
        self.api_key = api_key
        self.limits, self.max_batch_pixels = limits, max_batch_pixels
        self.device = torch_device(threads, device)
        self._segmenters: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self.store = CorrectionStore(corrections_db or store_path())
        found = find_model("news", "preclassifier", "latest", self.registry)
        self.forest = news.load_preclassifier(*found) if found else None
        self.forest_meta = found[1] if found else dict(name="preclassifier", version=None)
        self.segment_batch.set_max_batch_size(max_batch_size)
        self.segment_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        self._probe = place(self._probe_model(), self.device)

    def _probe_model(self):
        """A segmenter for the health check: the first trained publisher's that loads (a corrupt model file
        fails only its own publisher's requests, never the replica), else an untrained one."""
        from workloads.vision import news

        for pub in sorted(p for p, t in self.publishers().items() if t):
            try:
                return news.load_segmenter(*find_model("news", pub, "latest", self.registry))
            except Exception as exc:
                log.warning("news model of %s does not load (%s); not used for the health check", pub, exc)
        return news.build_model().eval()

    def publishers(self) -> dict[str, bool]:
        """Publishers the app serves: trained ones (registry, builtin) and the page generator's (untrained).
        Listed again at most every 30 s, so new registry models show up without a restart."""
        from workloads.pages.schema import PUBLISHERS

        if time.monotonic() - getattr(self, "_listed_at", -1e9) < 30:
            return self._known
        known = {p: False for p in PUBLISHERS}
        for root in (BUILTIN_REGISTRY, self.registry):
            try:
                known.update({p: True for p in list_models(root, "news") if p != "preclassifier"})
            except OSError:
                continue
        self._known, self._listed_at = known, time.monotonic()
        return known

    @serve.multiplexed(max_num_models_per_replica=3)
    async def get_model(self, publisher: str) -> Segmenter:
        """Load a publisher's segmenter (least recently used ones are evicted beyond 3 per replica)."""
        from workloads.vision import news

        found = await asyncio.to_thread(find_model, "news", publisher, "latest", self.registry)
        if found:
            seg = Segmenter(publisher, place(news.load_segmenter(*found), self.device), found[1], True)
        else:
            model = place(news.build_model().eval(), self.device)
            seg = Segmenter(publisher, model, dict(name=publisher, version=None), False)
        self._segmenters[publisher] = seg
        return seg

    def _publisher(self, request: Request, publisher: str | None) -> str:
        name = publisher or request.headers.get("serve_multiplexed_model_id") or ""
        if not name:
            raise HTTPException(400, "say which publisher: ?publisher=NAME or the serve_multiplexed_model_id header")
        checked_name(name, "publisher")
        if name not in self.publishers():
            raise HTTPException(404, f"unknown publisher {name!r}; GET /news/publishers lists them")
        return name

    def _classify(self, images: list[np.ndarray]) -> np.ndarray:
        """Probability that each page holds articles (1.0 for every page when no forest is trained)."""
        from workloads.vision import news

        if self.forest is None:
            return np.ones(len(images))
        return news.article_probability(self.forest, np.stack([news.page_features(img) for img in images]))

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.005)
    async def segment_batch(self, items: list[tuple[str, np.ndarray]]) -> list:
        return await run_isolated(self._segment_items, items)

    def _segment(self, model, pages: list[np.ndarray]) -> list[np.ndarray]:
        """Article masks of one publisher's pages, in groups whose padded canvas stays within the budget."""
        from workloads.vision import news

        masks: list = [None] * len(pages)
        for group in canvas_groups([p.shape for p in pages], self.max_batch_pixels):
            for i, m in zip(group, news.segment(model, [pages[i] for i in group], self.device)):
                masks[i] = m
        return masks

    async def _segment_items(self, items: list[tuple[str, np.ndarray]]) -> list[dict]:
        """Pre-classify every page at once, then run each publisher's model on its article pages."""
        from workloads.vision import news

        images = [img for _, img in items]
        p_article = await asyncio.to_thread(self._classify, images)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (pub, _) in enumerate(items):
            if p_article[i] >= 0.5:
                groups[pub].append(i)
        masks: dict[int, np.ndarray] = {}
        models: dict[str, Segmenter] = {}
        for pub, idx in groups.items():
            models[pub] = await self.get_model(pub)
            for i, m in zip(idx, await asyncio.to_thread(self._segment, models[pub].model, [images[i] for i in idx])):
                masks[i] = m
        results = []
        for i, (pub, _) in enumerate(items):
            boxes = news.boxes_from_mask(masks[i]) if i in masks else []
            articles = [dict(id=k, box=b) for k, b in enumerate(boxes, 1)]
            results.append(
                dict(
                    p_article=float(p_article[i]),
                    articles=articles,
                    model=models[pub].info() if pub in models else None,
                )
            )
        return results

    def _warnings(self, segmenter: dict | None) -> list[str]:
        out = [] if self.forest is not None else [UNTRAINED.format(what="the pre-classifier")]
        if segmenter is not None and not segmenter["trained"]:
            out.append(UNTRAINED.format(what=f"publisher {segmenter['publisher']}"))
        return out

    @api.post(
        "/segment",
        response_model=Segmentation,
        response_model_exclude_unset=True,
        responses=errors(400, 404, 413, 415, 422, 500, 503),
        description=f"Segment a page. Page limits (defaults; app args override them): {LIMITS.describe()}.",
        openapi_extra=image_body(LIMITS, "The page"),
    )
    async def segment(
        self,
        request: Request,
        file: UploadFile = image_file("the page"),
        publisher: str | None = Query(
            None, description="whose model segments the page (or the serve_multiplexed_model_id header)"
        ),
    ) -> dict[str, Any]:
        name = self._publisher(request, publisher)
        img, _ = await read_image(request, self.limits, file)
        res = result(await self.segment_batch((name, img)))
        body = dict(
            publisher=name,
            is_article=res["p_article"] >= 0.5,
            p_article=round(res["p_article"], 4),
            articles=res["articles"],
            width=img.shape[1],
            height=img.shape[0],
            preclassifier=dict(version=self.forest_meta.get("version"), trained=self.forest is not None),
            model=res["model"] or (await self.get_model(name)).info(),
        )
        warnings = self._warnings(body["model"])
        if warnings:
            body["warning"] = "; ".join(warnings)
        return body

    @api.post(
        "/corrections",
        status_code=201,
        response_model=Stored,
        responses=errors(400, 401, 404, 413, 415, 422, 503),
        description=f"Store a corrected page (needs X-API-Key). The page image is held to the /segment limits "
        f"(defaults): {LIMITS.describe()}.",
        openapi_extra=CORRECTION_BODY,
    )
    async def corrections(self, request: Request, _key: str | None = Security(API_KEY)) -> dict[str, Any]:
        check_api_key(request, self.api_key)
        raw = await read_body(request)
        try:
            fix = Correction.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise HTTPException(422, f"invalid correction: {first['loc']}: {first['msg']}") from None
        name = checked_name(fix.publisher, "publisher")
        if name not in self.publishers():
            raise HTTPException(404, f"unknown publisher {name!r}; GET /news/publishers lists them")
        try:
            png = base64.b64decode(fix.image_base64, validate=True)
            img = decode_image(png, self.limits)
        except (binascii.Error, ValueError) as exc:
            status = exc.status if isinstance(exc, ImageError) else 400
            raise HTTPException(status, f"image_base64: {exc}") from None
        try:
            check_correction(img, fix.articles, fix.is_article)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        h, w = img.shape
        cid = await asyncio.to_thread(self.store.add, name, png, fix.articles, fix.is_article, w, h, fix.note)
        return dict(id=cid, publisher=name, stored=True, total_for_publisher=self.store.count(name))

    @api.get("/publishers", response_model=Publishers)
    def list_publishers(self) -> dict[str, Any]:
        return dict(publishers=[dict(name=p, trained=t) for p, t in sorted(self.publishers().items())])

    @api.get("/health", response_model=NewsHealth, response_model_exclude_unset=True, responses=errors(500))
    async def health(self) -> dict[str, Any]:
        await asyncio.to_thread(self.check_health)
        body = dict(
            status="ok",
            preclassifier_trained=self.forest is not None,
            corrections=self.store.count(),
            publishers=self.list_publishers()["publishers"],
            limits=self.limits.as_dict(),
            device=str(self.device),
            devices=devices_of(self._probe, *(m.model for m in self._loaded())),
        )
        warnings = self._warnings(None)
        if warnings:
            body["warning"] = "; ".join(warnings)
        return body

    def _loaded(self) -> list[Segmenter]:
        """The segmenters this replica holds now (those the multiplexed cache has not evicted)."""
        return list(self._segmenters.values())

    def check_health(self) -> None:
        """Serve's health check: the pre-classifier and a segmenter must still run (on a blank page)."""
        from workloads.vision import news

        page = np.full((96, 64), 255, np.uint8)
        self._classify([page])
        news.segment(self._probe, [page])


def build_app(args: dict[str, Any] | None = None):
    """Serve app builder; args: registry, api_key (else $DLWILD_NEWS_API_KEY), corrections_db, max_batch_size,
    batch_wait_timeout_s, max_batch_pixels, threads, device, num_cpus, num_gpus, replica and queue limits as for
    /omr, max_pixels, max_side, min_side, max_aspect."""
    args = dict(args or {})
    return bind(
        NewsSegmenter,
        args,
        default_batch=4,
        api_key=configured_secret(args, "api_key", "DLWILD_NEWS_API_KEY"),
        corrections_db=args.get("corrections_db"),
        registry=args.get("registry"),
        limits=LIMITS.override(args),
        threads=int(args.get("threads", 1)),
        device=str(args.get("device", "auto")),
        max_batch_pixels=int(args.get("max_batch_pixels", MAX_BATCH_PIXELS)),
    )
