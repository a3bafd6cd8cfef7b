"""Train the page models on the workloads.pages streams with Ray Train and publish them to the model registry.

How to run:
    python -m workloads.vision --task omr --smoke-test
    python -m workloads.vision --task omr --pages 200 --steps 2000 --margin-patches 12   # ~31 min on 2 CPUs
    python -m workloads.vision --task news --pages 300 --steps 800
    python -m workloads.vision --task news --corrections .dlwild/corrections/news.sqlite  # retrain with corrections
    python -m workloads.vision --task omr --data runs/pages/music    # Parquet shards instead of on-the-fly pages

Results to expect: summary.json (mAP@0.5 clean/degraded and per class, or pre-classifier accuracy and article
F1 per publisher; the 31-minute omr run above: mAP@0.5 0.26 clean, 0.20 degraded), loss curves and sample
pages as PNG, TensorBoard logs, and a new registry version under `<registry>/<task>/<name>/v<N>/`.
Figures: workloads/vision/README.md.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np

from workloads import contract
from workloads.contract import UsageError, WorkloadConfig, field, write_json
from workloads.registry import RegistryError, check_name, registry_root

TASKS = ("omr", "news")


@dataclasses.dataclass
class VisionConfig(WorkloadConfig):
    """Train the DWD symbol detector (omr) or the newspaper pre-classifier and segmenters (news)."""

    workload: ClassVar[str] = "vision"

    task: str = field(
        "omr", help="omr (music symbol detector) | news (pre-classifier + per-publisher segmenters)", choices=TASKS
    )
    data: str = field("", help="folder or URI of Parquet shards from workloads.pages (default: render --pages)")
    pages: int = field(
        60, help="training pages rendered on the fly by workloads.pages when --data is not given", minimum=1
    )
    eval_pages: int = field(16, help="held-out pages (another seed) for evaluation, clean and degraded", minimum=1)
    seed: int = field(0, help="seed of pages, crops and initialisation")
    degrade: float = field(0.3, help="share of training pages 'printed and photographed'", minimum=0, maximum=1)
    steps: int = field(600, help="optimiser steps (per publisher for news)", minimum=1)
    batch_size: int = field(8, help="crops per step", minimum=1)
    crop: int = field(256, help="crop side in pixels (of the model's input), a multiple of 16", minimum=32)
    crops_per_page: int = field(8, help="crops cut from each streamed page", minimum=1)
    margin_patches: int = field(0, help="omr: rare-symbol crops pasted into each training page's top margin", minimum=0)
    symbol_crops: float = field(
        0.5,
        help="omr: share of crops centred on a symbol of a class drawn uniformly "
        "from the page's classes (class-balanced sampling)",
        minimum=0,
        maximum=1,
    )
    stage_rest_weight: float = field(
        0.25,
        help="omr: weight of the other heads' normalised losses during a "
        "single-head stage (0: the paper's strict schedule)",
        minimum=0,
        maximum=1,
    )
    class_balance: float = field(
        0.5,
        help="omr: exponent of the per-class weights (median count / count) of "
        "the class loss; 0 = unweighted, 0.5 = square-root balancing",
        minimum=0,
        maximum=1,
    )
    pages_per_batch: int = field(2, help="pages the Train worker takes from the stream at a time", minimum=1)
    cache_targets: bool = field(
        True,
        help="compute the pixel targets once and keep them in the object store "
        "(about 4 MB a music page); off: recompute them every pass",
    )
    lr: float = field(3e-3, help="peak learning rate (one-cycle)")
    workers: int = field(1, help="Ray Train workers", minimum=1)
    num_gpus: float = field(0.0, help="GPUs for training in all (0 = CPU)", minimum=0)
    threads: int = field(2, help="torch threads per worker", minimum=1)
    checkpoint_every: int = field(100, help="steps between training checkpoints in <out>/checkpoints/", minimum=1)
    resume: bool = field(False, help="continue the killed run in --out from its last checkpoint (same flags)")
    publishers: str = field("", help="news: comma-separated publishers to train (default: all in the data)")
    max_publishers: int = field(
        0, help="news: without --publishers, train the first N with article pages (0: all)", minimum=0
    )
    corrections: str = field("", help="news: SQLite store of /news/corrections to add to the training pages")
    registry: str = field("", help="model registry folder or URI (default $DLWILD_REGISTRY or registry/)")
    name: str = field("dwd", help="omr: model name in the registry")
    publish: bool = field(True, help="write the trained models to the registry")

    def smoke(self) -> VisionConfig:
        small = self.capped(pages=8, eval_pages=4, steps=12, batch_size=4, crops_per_page=4, checkpoint_every=4)
        return dataclasses.replace(small, max_publishers=1)

    def validate(self) -> None:
        if self.crop % 16:
            raise UsageError(f"--crop must be a multiple of 16, got {self.crop}")
        if self.resume and not self.out:
            raise UsageError("--resume continues the run in --out: give the killed run's --out")
        try:
            check_name(self.name)
            for p in filter(None, self.publishers.split(",")):
                check_name(p, "publisher")
        except RegistryError as exc:
            raise UsageError(str(exc)) from None


def source_pages(cfg: VisionConfig, kind: str, columns: list[str]):
    """Training page rows as a materialised Ray Dataset (only the columns needed; PNGs are small)."""
    import ray

    if cfg.data:
        try:
            ds = ray.data.read_parquet(cfg.data, columns=columns, file_extensions=["parquet"])
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read Parquet shards from {cfg.data}: {exc}") from None
    else:
        from workloads.pages.augment import margin_patches
        from workloads.pages.synthesis import page_dataset

        # the bank of workloads.pages --margin-patches, cut from a fifth as many pages as are trained on
        augment = (
            margin_patches(kind, cfg.margin_patches, cfg.seed, max(6, cfg.pages // 5)) if kind == "music" else None
        )
        ds = page_dataset(kind, cfg.pages, seed=cfg.seed, degrade=cfg.degrade, augment=augment)
        ds = ds.select_columns(columns)
    return ds.materialize()


def targets_dataset(cfg: VisionConfig, ds):
    """With --cache-targets the decode-and-target pass runs once, not once per epoch: after the first pass
    both CPUs go to the model instead of one of them recomputing the same maps."""
    return ds.materialize() if cfg.cache_targets else ds


def _plot_history(history: list[dict], path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key in sorted({k for h in history for k in h if k.startswith("loss/")}):
        steps = [h["step"] for h in history if key in h]
        vals = np.array([h[key] for h in history if key in h])
        k = max(1, len(vals) // 50)
        ax.plot(steps[k - 1 :], np.convolve(vals, np.ones(k) / k, "valid"), label=key[5:])
    stages = [
        (h["step"], h["stage"])
        for i, h in enumerate(history)
        if "stage" in h and (i == 0 or history[i - 1].get("stage") != h["stage"])
    ]
    for step, stage in stages:
        ax.axvline(step, color="gray", lw=0.5)
        ax.text(step, ax.get_ylim()[1], stage, fontsize=7, va="top")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (moving mean)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _command() -> str:
    return "python -m workloads.vision " + " ".join(sys.argv[1:])


def _publish(cfg: VisionConfig, out: Path, task: str, name: str, files: dict[str, bytes], meta: dict) -> str:
    """Save a model version to the registry, once per run folder: a resumed run (--resume) gets the version that
    the killed attempt had already published instead of a second one (recorded in <out>/published.json)."""
    from workloads.registry import save_model

    path, key = out / "published.json", f"{task}/{name}"
    done = json.loads(path.read_text()) if cfg.resume and path.exists() else {}
    if key not in done:
        done[key] = save_model(cfg.registry or registry_root(), task, name, files, dict(meta, command=_command()))
        write_json(path, done)
    return done[key]


def run_omr(cfg: VisionConfig, out: Path) -> dict:
    import torch

    from workloads.pages.schema import classes as page_classes
    from workloads.registry import torch_bytes
    from workloads.vision import dwd
    from workloads.vision.evaluate import evaluate_detector
    from workloads.vision.train import fit, omr_targets

    classes = page_classes("music")
    t0 = time.perf_counter()
    pages = source_pages(cfg, "music", ["image", "boxes", "labels"])
    train_counts = Counter(label for row in pages.select_columns(["labels"]).iter_rows() for label in row["labels"])
    train_ds = targets_dataset(
        cfg, pages.map_batches(omr_targets, batch_size=cfg.pages_per_batch, fn_kwargs=dict(classes=classes))
    )
    weights = dwd.class_weights(train_counts, classes, cfg.class_balance) if cfg.class_balance else None
    state, metrics = fit("omr", train_ds, cfg, out, "omr", classes, weights)
    train_s = time.perf_counter() - t0
    model = dwd.build_model(len(classes))
    model.load_state_dict(state)
    torch.set_num_threads(cfg.threads)
    scores = evaluate_detector(model, classes, cfg.eval_pages, cfg.seed + 1, train_counts, out)
    _plot_history(metrics["history"], out / "loss.png", f"DWD staged training, {cfg.steps} steps")
    summary = dict(
        task="omr",
        train_s=round(train_s, 1),
        steps=metrics["steps"],
        resumed_from=metrics["resumed_from"],
        train_loop_s=metrics["seconds"],
        train_pages=pages.count(),
        **scores,
        train_class_counts=dict(train_counts.most_common()),
        final_losses={k: v for k, v in metrics["history"][-1].items() if k.startswith("loss/")},
        outputs=dict(
            loss=str(out / "loss.png"),
            train_log=str(out / "train_log" / "omr.jsonl"),
            detections=[str(out / f"detections_{s}.png") for s in ("clean", "degraded")],
            checkpoints=str(out / "checkpoints" / "omr"),
            tensorboard=str(out / "tensorboard"),
        ),
    )
    if cfg.publish:
        meta = dict(
            classes=classes,
            widths=list(model.widths),
            energy_levels=dwd.ENERGY_LEVELS,
            input="gray page, white paper, ink = 1 - pixel/255",
            metrics=dict(
                map50_clean=summary["map50_clean"],
                map50_degraded=summary["map50_degraded"],
                rare_map50_clean=summary["rare_map50_clean"],
            ),
            training_data=_data_info(cfg, "music"),
            steps=metrics["steps"],
            train_class_counts=summary["train_class_counts"],
        )
        version = _publish(cfg, out, "omr", cfg.name, {"weights.pt": torch_bytes(state)}, meta)
        summary["registry"] = dict(root=cfg.registry or registry_root(), model=f"omr/{cfg.name}", version=version)
    return summary


def _data_info(cfg: VisionConfig, kind: str) -> dict:
    if cfg.data:
        return dict(source=cfg.data)
    return dict(
        source=f"workloads.pages page_dataset({kind!r})",
        pages=cfg.pages,
        seed=cfg.seed,
        degrade=cfg.degrade,
        margin_patches=cfg.margin_patches,
    )


def run_news(cfg: VisionConfig, out: Path) -> dict:
    import ray
    import skops.io as sio
    import torch

    from workloads.pages.schema import decode_png, rle_to_mask
    from workloads.registry import torch_bytes
    from workloads.vision import news
    from workloads.vision.evaluate import draw_boxes, eval_rows
    from workloads.vision.metrics import article_f1
    from workloads.vision.train import fit, news_features, news_targets

    columns = ["image", "publisher", "is_article", "mask_rle", "width", "height"]
    pages = source_pages(cfg, "news", columns)
    if cfg.corrections:
        from workloads.vision.corrections import CorrectionStore

        fixes = CorrectionStore(cfg.corrections).rows()
        if fixes:
            pages = pages.union(ray.data.from_items(fixes).select_columns(columns)).materialize()
    n_corrections = len(fixes) if cfg.corrections else 0
    feats = pages.map_batches(news_features, batch_size=8).to_pandas()
    forest = news.preclassifier(cfg.seed).fit(np.stack(feats["features"]), feats["is_article"].to_numpy())
    rows = eval_rows("news", cfg.eval_pages, cfg.seed + 1, 0.0)
    gray = [decode_png(r["image"]) for r in rows]
    verdict = forest.predict(np.stack([news.page_features(g) for g in gray]))
    truth = np.array([r["is_article"] for r in rows])
    summary = dict(
        task="news",
        train_pages=pages.count(),
        corrections_used=n_corrections,
        preclassifier_accuracy=round(float((verdict == truth).mean()), 4),
        eval_pages=len(rows),
        publishers={},
        outputs={},
    )
    if cfg.publish:
        summary["registry"] = {
            "preclassifier": _publish(
                cfg,
                out,
                "news",
                "preclassifier",
                {"model.skops": sio.dumps(forest)},
                dict(
                    features=len(feats["features"].iloc[0]),
                    metrics=dict(accuracy=summary["preclassifier_accuracy"]),
                    training_data=_data_info(cfg, "news"),
                ),
            )
        }
    with_articles = sorted(
        {r["publisher"] for r in pages.select_columns(["publisher", "is_article"]).iter_rows() if r["is_article"]}
    )
    publishers = [p for p in cfg.publishers.split(",") if p] or with_articles[: cfg.max_publishers or None]
    torch.set_num_threads(cfg.threads)
    all_gt, all_pred = [], []
    for pub in publishers:
        check_name(pub, "publisher")
        mine = pages.filter(lambda r, p=pub: r["publisher"] == p and bool(r["is_article"]))
        if mine.count() == 0:
            summary["publishers"][pub] = dict(skipped="no article pages of this publisher in the data")
            continue
        seg_ds = targets_dataset(cfg, mine.map_batches(news_targets, batch_size=cfg.pages_per_batch))
        state, metrics = fit("news", seg_ds, cfg, out, f"news-{pub}")
        model = news.build_model()
        model.load_state_dict(state)
        idx = [i for i, r in enumerate(rows) if r["publisher"] == pub]
        gt = [rle_to_mask(rows[i]["mask_rle"], rows[i]["height"], rows[i]["width"]) for i in idx]
        seg = news.segment(model, [gray[i] for i in idx]) if idx else []
        pred = [s if verdict[i] else np.zeros_like(s) for i, s in zip(idx, seg)]  # the whole pipeline
        art = [k for k, i in enumerate(idx) if truth[i]]
        res = dict(
            steps=metrics["steps"],
            resumed_from=metrics["resumed_from"],
            final_loss=metrics["history"][-1]["loss/seg"],
            article_f1=article_f1([gt[k] for k in art], [seg[k] for k in art]),
            pipeline_f1=article_f1(gt, pred),
        )
        all_gt += gt
        all_pred += pred
        summary["publishers"][pub] = res
        _plot_history(metrics["history"], out / f"loss_{pub}.png", f"segmenter {pub}")
        summary["outputs"][pub] = dict(
            loss=str(out / f"loss_{pub}.png"), train_log=str(out / "train_log" / f"news-{pub}.jsonl")
        )
        if art:
            draw_boxes(gray[idx[art[0]]], news.boxes_from_mask(seg[art[0]]), out / f"articles_{pub}.png")
            summary["outputs"][pub]["articles"] = str(out / f"articles_{pub}.png")
        if cfg.publish:
            summary["registry"][pub] = _publish(
                cfg,
                out,
                "news",
                pub,
                {"weights.pt": torch_bytes(state)},
                dict(
                    seg_classes=list(news.SEG_CLASSES),
                    widths=list(model.widths),
                    scale=news.SCALE,
                    metrics=dict(article_f1=res["article_f1"]["f1"]),
                    training_data=dict(_data_info(cfg, "news"), publisher=pub, corrections=n_corrections),
                    steps=metrics["steps"],
                ),
            )
    summary["pipeline_f1"] = article_f1(all_gt, all_pred) if all_gt else None
    return summary


def run(cfg: VisionConfig, out: Path) -> dict:
    from workloads.vision.train import refuse_overwrite

    refuse_overwrite(out, cfg.resume)  # before any data work
    try:
        summary = run_omr(cfg, out) if cfg.task == "omr" else run_news(cfg, out)
    except RegistryError as exc:
        raise UsageError(str(exc)) from None
    keys = ("map50_clean", "map50_degraded", "rare_map50_clean", "preclassifier_accuracy", "pipeline_f1", "registry")
    print({k: summary[k] for k in keys if k in summary}, f"-> {out}")
    return summary


def main(argv: list[str] | None = None) -> int:
    return contract.main(VisionConfig, run, argv)


if __name__ == "__main__":
    sys.exit(main())
