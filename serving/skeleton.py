"""The skeleton every model app shares: its model from the registry (else an untrained fallback that says so in
every answer), `GET <prefix>/health` and `GET <prefix>/model`, and the app builder's replica and batching options.

    api = FastAPI(title=...)

    @serve.deployment
    @model_ingress(api)                      # serve.ingress(api) plus /health and /model
    class Detector(ModelApp):
        task, untrained = "omr", "untrained fallback model: ...; detections are meaningless"

        def __init__(self, registry=None, version="latest", threads=1, max_batch_size=8, ...):
            files = self.load("dwd", version, registry)   # None: not in the registry nor builtin
            ...

        def check_health(self) -> None:      # Serve's health check and /health: the model must still run
            ...

    def build_app(args):
        return bind(Detector, args, **model_args(args))

`/health` runs `health_body()` (by default `check_health` in a thread) and answers `status`, the model's
`info()` and, while the model is untrained, a `warning`; `/model` answers the model's registry metadata with
`trained`. The app args every builder reads are listed in `bind`, `model_args` and `deployment_options`.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from fastapi import FastAPI
from ray import serve

from workloads.images import MAX_PIXELS
from workloads.registry import find_model


class ModelApp:
    """Base of a model app's ingress: which model it serves, whether it is trained, and what it says about it."""

    task: ClassVar[str] = ""  # the registry task: <registry>/<task>/<name>/<version>
    untrained: ClassVar[str] = ""  # the warning every answer carries while the model is an untrained fallback
    note: ClassVar[str | None] = None  # said in every answer's model info, e.g. "trained on synthetic data only"
    meta: dict[str, Any]  # the model's registry metadata
    trained: bool

    def load(self, name: str, version: str, registry: str | None, **fallback: Any) -> dict[str, bytes] | None:
        """The model's files from the registry, else the builtin models; None when neither holds it, and then
        `meta` is the fallback's (`task`, `name`, `version=None` and `fallback`) and `trained` is False."""
        found = find_model(self.task, name, version, registry)
        files, self.meta = found if found else (None, dict(task=self.task, name=name, version=None, **fallback))
        self.trained = found is not None
        return files

    def info(self) -> dict[str, Any]:
        """The model part of every answer."""
        info = dict(
            name=self.meta.get("name"),
            version=self.meta.get("version"),
            trained=self.trained,
            code_version=self.meta.get("code_version"),
        )
        return dict(info, note=self.note) if self.note else info

    def warned(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` with the untrained warning added while the model is a fallback."""
        if not self.trained:
            body["warning"] = self.untrained
        return body

    async def health_body(self) -> dict[str, Any]:
        """/health: the model must still run (`check_health`, in a thread so requests keep being served)."""
        await asyncio.to_thread(self.check_health)
        return dict(status="ok", model=self.info())


def model_ingress(api: FastAPI):
    """`serve.ingress(api)` for a `ModelApp` subclass, with `GET /health` and `GET /model` added to `api`."""

    def wrap(cls: type[ModelApp]) -> type:
        async def health(self) -> dict[str, Any]:
            return self.warned(await self.health_body())

        def model_info(self) -> dict[str, Any]:
            return dict(self.meta, trained=self.trained)

        for path, route in (("/health", health), ("/model", model_info)):
            # Fresh functions named as the class's own methods: Serve binds the routes whose qualname is in the
            # class's MRO, and no two apps share (and re-sign) one endpoint function.
            route.__qualname__ = f"{cls.__qualname__}.{route.__name__}"
            setattr(cls, route.__name__, route)
            api.get(path)(route)
        return serve.ingress(api)(cls)

    return wrap


def model_args(args: dict[str, Any], max_pixels: int | None = MAX_PIXELS) -> dict[str, Any]:
    """The model keyword arguments from app args: `registry` (default $DLWILD_REGISTRY, else registry/),
    `version` (default latest), `threads` (torch threads, 1) and, unless `max_pixels` is None, `max_pixels`."""
    out = dict(
        registry=args.get("registry"), version=args.get("version", "latest"), threads=int(args.get("threads", 1))
    )
    if max_pixels is not None:
        out["max_pixels"] = int(args.get("max_pixels", max_pixels))
    return out


def bind(
    deployment,
    args: dict[str, Any] | None,
    *,
    num_cpus: float = 0.25,
    default_batch: int = 8,
    batched: bool = True,
    **init: Any,
):
    """`deployment` with the replica options of `args` (see `deployment_options`), bound to `init` and, when
    `batched`, to the batching options (`max_batch_size`, `batch_wait_timeout_s`)."""
    args = dict(args or {})
    batch = batch_options(args, default_batch)
    options = deployment_options(args, batch["max_batch_size"], num_cpus)
    return deployment.options(**options).bind(**init, **(batch if batched else {}))


def batch_options(args: dict[str, Any], default_batch: int = 8) -> dict[str, Any]:
    """`max_batch_size` and `batch_wait_timeout_s` from app args (1 turns batching off)."""
    return dict(
        max_batch_size=int(args.get("max_batch_size", default_batch)),
        batch_wait_timeout_s=float(args.get("batch_wait_timeout_s", 0.005)),
    )


def deployment_options(args: dict[str, Any], batch: int, num_cpus: float = 0.25) -> dict[str, Any]:
    """Replica options from app args: fractional CPUs/GPUs, autoscaling, and the bounded queue (503 beyond)."""
    opts: dict[str, Any] = dict(
        ray_actor_options={
            "num_cpus": float(args.get("num_cpus", num_cpus)),
            "num_gpus": float(args.get("num_gpus", 0)),
        },
        max_ongoing_requests=max(int(args.get("max_ongoing_requests", 2 * batch)), batch),
        max_queued_requests=int(args.get("max_queued_requests", 64)),
        health_check_period_s=float(args.get("health_check_period_s", 10)),
    )
    if "num_replicas" in args:
        opts["num_replicas"] = int(args["num_replicas"])
    else:
        opts["autoscaling_config"] = dict(
            min_replicas=int(args.get("min_replicas", 1)),
            max_replicas=int(args.get("max_replicas", 2)),
            target_ongoing_requests=float(args.get("target_ongoing_requests", max(2, batch))),
            upscale_delay_s=5,
            downscale_delay_s=30,
        )
    return opts
