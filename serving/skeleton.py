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
`info()`, the image `limits`, the `device` and, while the model is untrained, a `warning`; `/model` answers the
model's registry metadata with `trained`. The app args every builder reads are listed in `bind`, `model_args`
and `deployment_options`.

Every app shares three rules for bad input and hardware (serving/README.md, "Limits"):
- images are checked against the app's `Limits` (`workloads.images`) from their header, before any model work and
  before batching: 413 or 422 with a one-line reason;
- a `@serve.batch` method runs its batch through `run_isolated`, and the endpoint takes its slot with `result`:
  when the batch fails, each item runs alone, so one bad item fails only its own request;
- `pick_device(device)` ("auto": cuda when torch sees one, else cpu) and `place(module, device)` put every model on
  the device the replica reserved with `num_gpus`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, ClassVar

from fastapi import FastAPI
from ray import serve

from serving.schemas import Health, ModelMetadata, errors
from workloads.images import Limits
from workloads.registry import find_model

log = logging.getLogger("ray.serve")


def pick_device(device: str = "auto"):
    """The torch device every app runs its models on: "auto" -> cuda when torch sees one, else cpu; any other
    value (app arg `device`, e.g. "cpu", "cuda:0") as torch names it."""
    from workloads.vision.fcn import pick_device as pick

    return pick(device)


def torch_device(threads: int, device: str = "auto"):
    """Set this replica's torch threads; the device its models run on (`pick_device`)."""
    import torch

    torch.set_num_threads(threads)
    return pick_device(device)


def _moved(value, device):
    """Tensors in `value` (a tensor, or tuples, lists and dicts of them) on `device`."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_moved(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _moved(v, device) for k, v in value.items()}
    return value


def place(module, device):
    """`module` (a torch nn.Module) on `device`. Off the CPU, it and its direct children also take their inputs to
    the device, and a call from outside (`model(x)`, or a sub-module call such as `model.response(x)`) hands its
    outputs back on the CPU; calls nested inside another of them stay on the device. So workload code written for
    CPU tensors (`torch.from_numpy(...)` in, `.numpy()` out) runs unchanged on a GPU; gradients flow through."""
    import threading

    import torch

    device = torch.device(device)
    module.to(device)
    if device.type == "cpu":
        return module
    depth = threading.local()  # per thread: a health check may run beside a batch

    def enter(_m, args, kwargs):
        depth.n = getattr(depth, "n", 0) + 1
        return _moved(args, device), _moved(kwargs, device)

    def leave(_m, _args, out):
        depth.n -= 1
        return _moved(out, "cpu") if depth.n == 0 else out

    for m in (module, *module.children()):
        m.register_forward_pre_hook(enter, with_kwargs=True)
        m.register_forward_hook(leave, always_call=True)
    return module


def devices_of(*modules) -> list[str]:
    """The devices the parameters of `modules` are on (what /health reports as `devices`)."""
    return sorted({str(p.device) for m in modules for p in m.parameters()})


async def run_isolated(fn, items: list) -> list:
    """`fn(items)` -> one result per item, in a thread (requests keep arriving and fill the next batch while it
    runs) or awaited when `fn` is a coroutine function. When the whole batch fails, each item runs alone, so one
    bad item fails only its own request: its slot holds the exception, which `result` raises in its handler."""
    call = fn if inspect.iscoroutinefunction(fn) else (lambda batch: asyncio.to_thread(fn, batch))
    try:
        return await call(items)
    except Exception as exc:
        if len(items) == 1:
            log.exception("a batch of one failed")
            return [exc]
        log.warning("a batch of %d failed (%s); running its items one by one", len(items), exc)
    out: list = []
    for item in items:
        try:
            out.extend(await call([item]))
        except Exception as exc:
            log.exception("one item of a batch failed")
            out.append(exc)
    return out


def canvas_groups(shapes: list[tuple[int, ...]], budget: int) -> list[list[int]]:
    """Indices of images of `shapes` (h, w, ...) in groups whose padded canvas (count x tallest x widest) stays
    within `budget` pixels; a page over the budget alone is its own group. Sorting by shape first puts pages that
    pad well together, so two pages of opposite aspect ratio never make one huge canvas."""
    groups: list[list[int]] = []
    cur: list[int] = []
    ch = cw = 0
    for i in sorted(range(len(shapes)), key=lambda i: tuple(shapes[i][:2])):
        h, w = shapes[i][:2]
        nh, nw = max(ch, h), max(cw, w)
        if cur and (len(cur) + 1) * nh * nw > budget:
            groups.append(cur)
            cur, nh, nw = [], h, w
        cur.append(i)
        ch, cw = nh, nw
    return groups + [cur] if cur else groups


def result(value):
    """One request's slot of a `run_isolated` batch: its value, or its own exception raised."""
    if isinstance(value, BaseException):
        raise value
    return value


class ModelApp:
    """Base of a model app's ingress: which model it serves, whether it is trained, and what it says about it."""

    task: ClassVar[str] = ""  # the registry task: <registry>/<task>/<name>/<version>
    untrained: ClassVar[str] = ""  # the warning every answer carries while the model is an untrained fallback
    note: ClassVar[str | None] = None  # said in every answer's model info, e.g. "trained on synthetic data only"
    meta: dict[str, Any]  # the model's registry metadata
    trained: bool
    limits: Limits | None = None  # the image shapes the app accepts (None: the app reads no images itself)
    device: Any = None  # the torch device its models run on (pick_device)

    def torch_models(self) -> list:
        """The torch modules the app runs (their devices are reported by /health)."""
        return []

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
        return dict(status="ok", model=self.info(), **self.hardware())

    def hardware(self) -> dict[str, Any]:
        """`limits` and `device`/`devices` for /health."""
        out: dict[str, Any] = dict(limits=self.limits.as_dict()) if self.limits else {}
        if self.device is not None:
            out.update(device=str(self.device), devices=devices_of(*self.torch_models()))
        return out


def model_ingress(api: FastAPI):
    """`serve.ingress(api)` for a `ModelApp` subclass, with `GET /health` and `GET /model` added to `api`."""

    def wrap(cls: type[ModelApp]) -> type:
        async def health(self) -> dict[str, Any]:
            return self.warned(await self.health_body())

        def model_info(self) -> dict[str, Any]:
            return dict(self.meta, trained=self.trained)

        for path, route, model in (("/health", health, Health), ("/model", model_info, ModelMetadata)):
            # Fresh functions named as the class's own methods: Serve binds the routes whose qualname is in the
            # class's MRO, and no two apps share (and re-sign) one endpoint function.
            route.__qualname__ = f"{cls.__qualname__}.{route.__name__}"
            setattr(cls, route.__name__, route)
            api.get(path, response_model=model, response_model_exclude_unset=True, responses=errors(500))(route)
        return serve.ingress(api)(cls)

    return wrap


def model_args(args: dict[str, Any], limits: Limits | None = Limits()) -> dict[str, Any]:
    """The model keyword arguments from app args: `registry` (default $DLWILD_REGISTRY, else registry/),
    `version` (default latest), `threads` (torch threads, 1), `device` ("auto") and, unless `limits` is None,
    `limits`: the app's defaults with the app args `max_pixels`, `max_side`, `min_side`, `max_aspect` applied."""
    out = dict(
        registry=args.get("registry"),
        version=args.get("version", "latest"),
        threads=int(args.get("threads", 1)),
        device=str(args.get("device", "auto")),
    )
    if limits is not None:
        out["limits"] = limits.override(args)
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
