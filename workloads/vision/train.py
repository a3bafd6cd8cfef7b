"""Training as Ray jobs: page rows (Ray Data) -> pixel targets (map_batches) -> Ray Train's TorchTrainer.

The page rows (PNG bytes, small) are materialised once; the decode-and-target step runs in Ray Data tasks,
once when `--cache-targets` keeps its output in the object store (the default), else again on every pass while
the Train worker cuts seeded random crops and takes optimiser steps. `--num-gpus` moves the worker to a GPU.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from workloads.pages.schema import decode_png, rle_to_mask
from workloads.vision import dwd, news
from workloads.vision.fcn import OUT_STRIDE


# ------------------------------------------------------------------ Ray Data: page rows -> pixel targets
def omr_targets(batch: dict, classes: list[str]) -> dict:
    """Decoded page and its DWD targets (class, energy, log box size at the output stride)."""
    index = {c: i for i, c in enumerate(classes)}
    out = {"image": [], "cls": [], "energy": [], "size": []}
    for png, boxes, labels in zip(batch["image"], batch["boxes"], batch["labels"]):
        img = decode_png(png)
        t = dwd.targets([list(b) for b in boxes], [index[label] for label in labels], *img.shape)
        out["image"].append(img)
        for key in ("cls", "energy", "size"):
            out[key].append(t[key])
    return {k: np.stack(v) if len({a.shape for a in v}) == 1 else v for k, v in out.items()}


def news_targets(batch: dict) -> dict:
    """Half-size page and its segmentation target (background / interior / border)."""
    images, segs = [], []
    for png, rle, h, w in zip(batch["image"], batch["mask_rle"], batch["height"], batch["width"]):
        img = news.prepare(decode_png(png))
        images.append(img)
        segs.append(news.seg_target(rle_to_mask(rle, int(h), int(w)), img.shape).astype(np.int8))
    return (
        {"image": np.stack(images), "seg": np.stack(segs)}
        if len({i.shape for i in images}) == 1
        else {"image": images, "seg": segs}
    )


def news_features(batch: dict) -> dict:
    return {
        "features": np.stack([news.page_features(decode_png(p)) for p in batch["image"]]),
        "is_article": np.asarray(batch["is_article"], bool),
    }


# --------------------------------------------------------------------------------- Train worker side
def crop(rng: np.random.Generator, page: dict, size: int, on_symbol: float = 0.0) -> dict:
    """A `size` px crop of a page and the matching window of every target map (white / 0 padding).

    With probability `on_symbol` (DWD pages only) the crop is centred, give or take a quarter crop, on a pixel of
    a symbol class drawn uniformly from the classes on the page: rare symbols are then seen as often as staves
    and note heads, which a uniformly placed crop cannot offer. Otherwise the crop is placed uniformly.
    """
    img = page["image"]
    h, w = img.shape
    s = OUT_STRIDE
    y, x = int(rng.integers(0, max(1, h - size + 1))), int(rng.integers(0, max(1, w - size + 1)))
    if "cls" in page and on_symbol > 0 and rng.random() < on_symbol:
        present = np.unique(page["cls"])
        present = present[present > 0]
        if present.size:
            ys, xs = np.nonzero(page["cls"] == rng.choice(present))
            k = int(rng.integers(len(ys)))
            jitter = rng.integers(-(size // 4), size // 4 + 1, 2)
            y = int(np.clip(ys[k] * s - size // 2 + jitter[0], 0, max(0, h - size)))
            x = int(np.clip(xs[k] * s - size // 2 + jitter[1], 0, max(0, w - size)))
    y, x = y // s * s, x // s * s
    out = {"image": np.full((size, size), 255, np.uint8)}
    part = img[y : y + size, x : x + size]
    out["image"][: part.shape[0], : part.shape[1]] = part
    for key, value in page.items():
        if key == "image":
            continue
        win = value[..., y // s : (y + size) // s, x // s : (x + size) // s]
        padded = np.zeros(value.shape[:-2] + (size // s, size // s), value.dtype)
        padded[..., : win.shape[-2], : win.shape[-1]] = win
        out[key] = padded
    return out


def _pages(batch: dict):
    n = len(batch["image"])
    for i in range(n):
        yield {k: np.asarray(v[i]) for k, v in batch.items()}


# ------------------------------------------------------------------ checkpoints and the loss log
def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Path | None:
    """The newest complete training checkpoint in `ckpt_dir` (`step-<N>.pt`; a half-written one is a `.tmp`)."""
    found = sorted(Path(ckpt_dir).glob("step-*.pt"))
    return found[-1] if found else None


def checkpoint_step(path: str | os.PathLike) -> int:
    return int(Path(path).stem.split("-")[1])


def _write_checkpoint(ckpt_dir: str, step: int, payload: dict, keep: int = 2) -> None:
    """torch.save to a temp name and rename (a kill leaves the previous checkpoint whole); keep the last `keep`."""
    import torch

    final = Path(ckpt_dir) / f"step-{step:08d}.pt"
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, final)
    for old in sorted(final.parent.glob("step-*.pt"))[:-keep]:
        old.unlink(missing_ok=True)


def read_log(path: str | os.PathLike, upto: int | None = None) -> list[dict]:
    """The loss log (one JSON line a step); a line cut short by a kill is dropped, as are steps after `upto`."""
    rows = []
    if os.path.exists(path):
        for line in Path(path).read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if upto is None or row["step"] <= upto:
                rows.append(row)
    return rows


def truncate_log(path: str | os.PathLike, step: int) -> None:
    """Keep the log up to `step` (the checkpoint a resumed run continues from): the steps after it are redone."""
    rows = read_log(path, upto=step)
    tmp = Path(f"{path}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def _rng_states(rng: np.random.Generator, world: int) -> list[dict]:
    """Every worker's numpy and torch generator states, gathered (in rank order) for rank 0's checkpoint."""
    import torch

    mine = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
    if world == 1:
        return [mine]
    import torch.distributed as dist

    states: list = [None] * world
    dist.all_gather_object(states, mine)
    return states


def train_loop(config: dict) -> None:
    """Per-worker loop: seeded crops of streamed pages, AdamW, the staged DWD schedule or the segmentation loss.

    Every `checkpoint_every` steps (at the end of a page batch) rank 0 writes model, optimiser, scheduler, the
    staged loss's running means, the step, the position in the data pass and every worker's RNG states to
    `ckpt_dir`; with `resume_from` the loop starts from such a checkpoint, skips the page batches of the pass
    that it had already taken, and continues to the same total `steps`. Rank 0 appends one JSON line per step to
    `log_path` (the loss log), which the driver truncates to the checkpoint's step before a resume.
    """
    import ray.train
    import ray.train.torch
    import torch
    from torch.utils.tensorboard import SummaryWriter

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(config["seed"] + rank)
    torch.set_num_threads(config["threads"])
    rng = np.random.default_rng([config["seed"], rank])
    task, steps, every = config["task"], config["steps"], config["checkpoint_every"]
    model = dwd.build_model(len(config["classes"])) if task == "omr" else news.build_model()
    resume = (
        torch.load(config["resume_from"], map_location="cpu", weights_only=True) if config.get("resume_from") else None
    )
    if resume:
        model.load_state_dict(resume["model"])
    model = ray.train.torch.prepare_model(model)
    device = ray.train.torch.get_device()
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config["lr"], total_steps=steps, pct_start=0.05)
    staged = dwd.StagedLoss(steps, rest_weight=config["stage_rest_weight"]) if task == "omr" else None
    step, data_pass, skip, seconds0 = 0, 0, 0, 0.0
    if resume:
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        if staged:
            staged.running = dict(resume["staged_running"])
        rng.bit_generator.state = resume["rng"][rank]["numpy"]
        torch.set_rng_state(resume["rng"][rank]["torch"])
        step, data_pass, skip, seconds0 = resume["step"], resume["data_pass"], resume["batches"], resume["seconds"]
    start = step
    cls_weights = torch.tensor(config["class_weights"], device=device) if config.get("class_weights") else None
    writer = (
        SummaryWriter(config["tb_dir"], purge_step=start + 1 if resume else None)
        if rank == 0 and config.get("tb_dir")
        else None
    )
    log = open(config["log_path"], "a") if rank == 0 else None  # noqa: SIM115 - closed after the loop
    shard = ray.train.get_dataset_shard("train")
    t0, saved = time.perf_counter(), step
    while step < steps:
        for b, batch in enumerate(
            shard.iter_batches(batch_size=config["pages_per_batch"], batch_format="numpy", prefetch_batches=1)
        ):
            if b < skip:  # taken before the checkpoint this run resumed from
                continue
            pool = [
                crop(rng, page, config["crop"], config["symbol_crops"])
                for page in _pages(batch)
                for _ in range(config["crops_per_page"])
            ]
            rng.shuffle(pool)
            for i in range(0, len(pool) - config["batch_size"] + 1, config["batch_size"]):
                if step >= steps:
                    break
                chunk = pool[i : i + config["batch_size"]]
                x = torch.from_numpy(
                    1.0 - np.stack([c["image"] for c in chunk])[:, None].astype(np.float32) / 255.0
                ).to(device)
                out = model(x)
                if task == "omr":
                    parts = dwd.losses(
                        out,
                        *(
                            torch.from_numpy(np.stack([c[k] for c in chunk]).astype(dt)).to(device)
                            for k, dt in (("cls", np.int64), ("energy", np.int64), ("size", np.float32))
                        ),
                        class_weights=cls_weights,
                    )
                    loss = staged(step, parts)
                    logged = {f"loss/{k}": float(v) for k, v in parts.items()}
                    logged["stage"] = staged.stage(step)
                else:
                    target = torch.from_numpy(np.stack([c["seg"] for c in chunk]).astype(np.int64)).to(device)
                    loss = news.seg_loss(out, target)
                    logged = {"loss/seg": float(loss)}
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                sched.step()
                step += 1
                if writer:
                    for k, v in logged.items():
                        if k.startswith("loss/"):
                            writer.add_scalar(k, v, step)
                if log:
                    log.write(
                        json.dumps(
                            dict(
                                step=step,
                                seconds=round(seconds0 + time.perf_counter() - t0, 2),
                                **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in logged.items()},
                            )
                        )
                        + "\n"
                    )
                    log.flush()
                if step % config["log_every"] == 0:
                    print(f"step {step}/{steps} {logged} {time.perf_counter() - t0:.0f}s", flush=True)
            if step // every > saved // every or (step >= steps > saved):
                states = _rng_states(rng, world)  # every rank takes part in the gather
                if rank == 0:
                    _write_checkpoint(
                        config["ckpt_dir"],
                        step,
                        dict(
                            model=(model.module if hasattr(model, "module") else model).state_dict(),
                            optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(),
                            staged_running=dict(staged.running) if staged else {},
                            step=step,
                            data_pass=data_pass,
                            batches=b + 1,
                            seconds=round(seconds0 + time.perf_counter() - t0, 2),
                            rng=states,
                        ),
                    )
                saved = step
            if step >= steps:
                break
        data_pass, skip = data_pass + 1, 0
    if writer:
        writer.close()
    if log:
        log.close()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            state = (model.module if hasattr(model, "module") else model).state_dict()
            torch.save(state, os.path.join(tmp, "weights.pt"))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(
            {
                "steps": step,
                "resumed_from": start,
                "seconds": round(time.perf_counter() - t0, 2),
                "history": read_log(config["log_path"]) if rank == 0 else [],
            },
            checkpoint=checkpoint,
        )


def refuse_overwrite(out_dir: Path, resume: bool) -> None:
    """Without --resume, a run folder that already holds training checkpoints is refused, not overwritten."""
    from workloads.contract import UsageError

    found = sorted(Path(out_dir).glob("checkpoints/*/step-*.pt"))
    if found and not resume:
        raise UsageError(
            f"{out_dir} holds checkpoints of an earlier run ({found[-1].parent.name}/{found[-1].name}); "
            "add --resume to continue it, or use another --out"
        )


# Config keys a resumed run must share with the run it continues (else its checkpoint means something else).
_RUN_KEYS = (
    "task",
    "steps",
    "seed",
    "lr",
    "batch_size",
    "crop",
    "symbol_crops",
    "crops_per_page",
    "stage_rest_weight",
    "class_weights",
    "pages_per_batch",
    "classes",
    "workers",
)


def fit(
    task: str,
    train_ds,
    cfg,
    out_dir,
    name: str,
    classes: list[str] | None = None,
    class_weights: list[float] | None = None,
) -> tuple[dict, dict]:
    """Run the TorchTrainer; returns (state dict, final metrics incl. the loss history).

    Checkpoints go to `<out_dir>/checkpoints/<name>/`, the loss log to `<out_dir>/train_log/<name>.jsonl`. With
    `cfg.resume` the run continues from the newest checkpoint there (none: from the start).
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from workloads.contract import UsageError, write_json
    from workloads.registry import torch_state

    use_gpu = cfg.num_gpus > 0
    per_worker = {"CPU": 1}
    if use_gpu:
        per_worker["GPU"] = cfg.num_gpus / cfg.workers
    ckpt_dir, log_path = out_dir / "checkpoints" / name, out_dir / "train_log" / f"{name}.jsonl"
    config = dict(
        task=task,
        steps=cfg.steps,
        seed=cfg.seed,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        crop=cfg.crop,
        symbol_crops=cfg.symbol_crops,
        crops_per_page=cfg.crops_per_page,
        stage_rest_weight=cfg.stage_rest_weight,
        class_weights=class_weights,
        pages_per_batch=cfg.pages_per_batch,
        workers=cfg.workers,
        threads=cfg.threads,
        log_every=max(1, cfg.steps // 20),
        classes=classes or [],
        tb_dir=str(out_dir / "tensorboard" / name),
        checkpoint_every=cfg.checkpoint_every,
        ckpt_dir=str(ckpt_dir),
        log_path=str(log_path),
        resume_from=None,
    )
    run_keys = json.loads(json.dumps({k: config[k] for k in _RUN_KEYS}))
    refuse_overwrite(out_dir, cfg.resume)
    latest = latest_checkpoint(ckpt_dir)
    if latest:
        before = json.loads((ckpt_dir / "run.json").read_text())
        if before != run_keys:
            diff = ", ".join(f"{k}={before.get(k)!r}->{v!r}" for k, v in run_keys.items() if before.get(k) != v)
            raise UsageError(f"--resume needs the flags of the run in {out_dir}; these differ: {diff}")
        truncate_log(log_path, checkpoint_step(latest))
        config["resume_from"] = str(latest)
    else:
        log_path.unlink(missing_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(ckpt_dir / "run.json", run_keys)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=config,
        datasets={"train": train_ds},
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        run_config=RunConfig(name=name, storage_path=str(out_dir / "ray_train")),
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        with open(os.path.join(d, "weights.pt"), "rb") as f:
            state = torch_state(f.read())
    return state, result.metrics
