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
import sys
import time
from collections import Counter

import numpy as np

from workloads.contract import UsageError, fail, field, init_ray, parse_config, run_dir, write_summary
from workloads.registry import RegistryError, check_name, registry_root

TASKS = ("omr", "news")


@dataclasses.dataclass
class VisionConfig:
    """Train the DWD symbol detector (omr) or the newspaper pre-classifier and segmenters (news)."""

    task: str = field("omr", help="omr (music symbol detector) | news (pre-classifier + per-publisher segmenters)")
    data: str = field("", help="folder or URI of Parquet shards from workloads.pages (default: render --pages)")
    pages: int = field(60, help="training pages rendered on the fly by workloads.pages when --data is not given")
    eval_pages: int = field(16, help="held-out pages (another seed) for evaluation, clean and degraded")
    seed: int = field(0, help="seed of pages, crops and initialisation")
    degrade: float = field(0.3, help="share of training pages 'printed and photographed'")
    margin_patches: int = field(0, help="omr: rare-symbol crops pasted into each training page's top margin")
    steps: int = field(600, help="optimiser steps (per publisher for news)")
    batch_size: int = field(8, help="crops per step")
    crop: int = field(256, help="crop side in pixels (of the model's input)")
    crops_per_page: int = field(8, help="crops cut from each streamed page")
    symbol_crops: float = field(0.5, help="omr: share of crops centred on a symbol of a class drawn uniformly "
                                         "from the page's classes (class-balanced sampling)")
    stage_rest_weight: float = field(0.25, help="omr: weight of the other heads' normalised losses during a "
                                              "single-head stage (0: the paper's strict schedule)")
    class_balance: float = field(0.5, help="omr: exponent of the per-class weights (median count / count) of "
                                           "the class loss; 0 = unweighted, 0.5 = square-root balancing")
    pages_per_batch: int = field(2, help="pages the Train worker takes from the stream at a time")
    cache_targets: bool = field(True, help="compute the pixel targets once and keep them in the object store "
                                           "(about 4 MB a music page); off: recompute them every pass")
    lr: float = field(3e-3, help="peak learning rate (one-cycle)")
    workers: int = field(1, help="Ray Train workers")
    num_gpus: float = field(0.0, help="GPUs for training in all (0 = CPU)")
    threads: int = field(2, help="torch threads per worker")
    publishers: str = field("", help="news: comma-separated publishers to train (default: all in the data)")
    corrections: str = field("", help="news: SQLite store of /news/corrections to add to the training pages")
    registry: str = field("", help="model registry folder or URI (default $DLWILD_REGISTRY or registry/)")
    name: str = field("dwd", help="omr: model name in the registry")
    publish: bool = field(True, help="write the trained models to the registry")
    out: str = field(None, help="output folder (default runs/vision/<timestamp>/)")
    smoke_test: bool = field(False, help="a tiny run of the whole pipeline (about a minute)")

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name in ("pages", "eval_pages", "steps", "batch_size", "crops_per_page", "pages_per_batch", "workers",
                     "threads"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.crop < 32 or self.crop % 16:
            raise UsageError("--crop must be a multiple of 16, at least 32")
        if not (0 <= self.degrade <= 1 and 0 <= self.symbol_crops <= 1 and 0 <= self.stage_rest_weight <= 1
                and 0 <= self.class_balance <= 1):
            raise UsageError("--degrade, --symbol-crops, --stage-rest-weight and --class-balance are fractions "
                             "between 0 and 1")
        if self.num_gpus < 0 or self.margin_patches < 0:
            raise UsageError("--num-gpus and --margin-patches must not be negative")
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
        from workloads.pages.core import page_dataset

        ds = page_dataset(kind, cfg.pages, seed=cfg.seed, degrade=cfg.degrade, augment=margin_augment(cfg, kind))
        ds = ds.select_columns(columns)
    return ds.materialize()


def targets_dataset(cfg: VisionConfig, ds):
    """With --cache-targets the decode-and-target pass runs once, not once per epoch: after the first pass
    both CPUs go to the model instead of one of them recomputing the same maps."""
    return ds.materialize() if cfg.cache_targets else ds


def margin_augment(cfg: VisionConfig, kind: str):
    """The margin-patch transform of workloads.pages, its crops cut from pages composed with rare symbols."""
    if kind != "music" or not cfg.margin_patches:
        return None
    from workloads.pages.augment import MarginPatches, PatchBank
    from workloads.pages.core import page_dataset

    bank_rows = sorted(page_dataset("music", max(6, cfg.pages // 5), seed=cfg.seed + 7, rare="compose").iter_rows(),
                       key=lambda r: r["page_index"])
    return MarginPatches(PatchBank.from_rows(bank_rows, per_class=8, seed=cfg.seed), k=cfg.margin_patches,
                         seed=cfg.seed)


def _plot_history(history: list[dict], path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key in sorted({k for h in history for k in h if k.startswith("loss/")}):
        steps = [h["step"] for h in history if key in h]
        vals = np.array([h[key] for h in history if key in h])
        k = max(1, len(vals) // 50)
        ax.plot(steps[k - 1:], np.convolve(vals, np.ones(k) / k, "valid"), label=key[5:])
    stages = [(h["step"], h["stage"]) for i, h in enumerate(history)
              if "stage" in h and (i == 0 or history[i - 1].get("stage") != h["stage"])]
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


def run_omr(cfg: VisionConfig, out) -> dict:
    import torch

    from workloads.pages.schema import classes as page_classes
    from workloads.registry import save_model, torch_bytes
    from workloads.vision import dwd
    from workloads.vision.evaluate import evaluate_detector
    from workloads.vision.train import fit, omr_targets

    classes = page_classes("music")
    t0 = time.perf_counter()
    pages = source_pages(cfg, "music", ["image", "boxes", "labels"])
    train_counts = Counter(label for row in pages.select_columns(["labels"]).iter_rows() for label in row["labels"])
    train_ds = targets_dataset(cfg, pages.map_batches(omr_targets, batch_size=cfg.pages_per_batch,
                                                      fn_kwargs=dict(classes=classes)))
    weights = dwd.class_weights(train_counts, classes, cfg.class_balance) if cfg.class_balance else None
    state, metrics = fit("omr", train_ds, cfg, out, "omr", classes, weights)
    train_s = time.perf_counter() - t0
    model = dwd.build_model(len(classes))
    model.load_state_dict(state)
    torch.set_num_threads(cfg.threads)
    scores = evaluate_detector(model, classes, cfg.eval_pages, cfg.seed + 1, train_counts, out)
    _plot_history(metrics["history"], out / "loss.png", f"DWD staged training, {cfg.steps} steps")
    summary = dict(task="omr", train_seconds=round(train_s, 1), steps=metrics["steps"],
                   train_loop_seconds=metrics["seconds"], train_pages=pages.count(), **scores,
                   train_class_counts=dict(train_counts.most_common()),
                   final_losses={k: v for k, v in metrics["history"][-1].items() if k.startswith("loss/")})
    if cfg.publish:
        meta = dict(classes=classes, widths=list(model.widths), energy_levels=dwd.ENERGY_LEVELS,
                    input="gray page, white paper, ink = 1 - pixel/255", metrics=dict(
                        map50_clean=summary["map50_clean"], map50_degraded=summary["map50_degraded"],
                        rare_map50_clean=summary["rare_map50_clean"]),
                    training_data=_data_info(cfg, "music"), steps=metrics["steps"],
                    train_class_counts=summary["train_class_counts"],
                    command="python -m workloads.vision " + " ".join(sys.argv[1:]))
        root = cfg.registry or registry_root()
        summary["registry"] = dict(root=root, model=f"omr/{cfg.name}",
                                   version=save_model(root, "omr", cfg.name, {"weights.pt": torch_bytes(state)}, meta))
    return summary


def _data_info(cfg: VisionConfig, kind: str) -> dict:
    if cfg.data:
        return dict(source=cfg.data)
    return dict(source=f"workloads.pages page_dataset({kind!r})", pages=cfg.pages, seed=cfg.seed, degrade=cfg.degrade,
                margin_patches=cfg.margin_patches)


def run_news(cfg: VisionConfig, out) -> dict:
    import ray
    import skops.io as sio
    import torch

    from workloads.pages.schema import decode_png, rle_to_mask
    from workloads.registry import save_model, torch_bytes
    from workloads.vision import news
    from workloads.vision.evaluate import draw_boxes, eval_rows
    from workloads.vision.metrics import article_f1
    from workloads.vision.train import fit, news_features, news_targets

    columns = ["image", "publisher", "is_article", "mask_rle", "width", "height"]
    t0 = time.perf_counter()
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
    summary = dict(task="news", train_pages=pages.count(), corrections_used=n_corrections,
                   preclassifier_accuracy=round(float((verdict == truth).mean()), 4), eval_pages=len(rows),
                   publishers={})
    root = cfg.registry or registry_root()
    if cfg.publish:
        summary["registry"] = {"preclassifier": save_model(
            root, "news", "preclassifier", {"model.skops": sio.dumps(forest)},
            dict(features=len(feats["features"].iloc[0]), metrics=dict(accuracy=summary["preclassifier_accuracy"]),
                 training_data=_data_info(cfg, "news"), command="python -m workloads.vision " + " ".join(sys.argv[1:])))}
    with_articles = sorted({r["publisher"] for r in pages.select_columns(["publisher", "is_article"]).iter_rows()
                            if r["is_article"]})
    publishers = [p for p in cfg.publishers.split(",") if p] or with_articles[: 1 if cfg.smoke_test else None]
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
        res = dict(steps=metrics["steps"], final_loss=metrics["history"][-1]["loss/seg"],
                   article_f1=article_f1([gt[k] for k in art], [seg[k] for k in art]),
                   pipeline_f1=article_f1(gt, pred))
        all_gt += gt
        all_pred += pred
        summary["publishers"][pub] = res
        _plot_history(metrics["history"], out / f"loss_{pub}.png", f"segmenter {pub}")
        if art:
            draw_boxes(gray[idx[art[0]]], news.boxes_from_mask(seg[art[0]]), out / f"articles_{pub}.png")
        if cfg.publish:
            summary["registry"][pub] = save_model(
                root, "news", pub, {"weights.pt": torch_bytes(state)},
                dict(seg_classes=list(news.SEG_CLASSES), widths=list(model.widths), scale=news.SCALE,
                     metrics=dict(article_f1=res["article_f1"]["f1"]), training_data=dict(
                         _data_info(cfg, "news"), publisher=pub, corrections=n_corrections),
                     steps=metrics["steps"], command="python -m workloads.vision " + " ".join(sys.argv[1:])))
    summary["pipeline_f1"] = article_f1(all_gt, all_pred) if all_gt else None
    summary["train_seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(VisionConfig, argv, prog="python -m workloads.vision")
    if cfg.smoke_test:
        cfg = dataclasses.replace(cfg, pages=min(cfg.pages, 8), eval_pages=min(cfg.eval_pages, 4),
                                  steps=min(cfg.steps, 12), batch_size=min(cfg.batch_size, 4),
                                  crops_per_page=min(cfg.crops_per_page, 4),
)
    out = run_dir("vision", cfg.out)
    try:
        init_ray()
        summary = run_omr(cfg, out) if cfg.task == "omr" else run_news(cfg, out)
    except (UsageError, RegistryError) as exc:
        fail(str(exc))
    summary["config"] = dataclasses.asdict(cfg)
    write_summary(out, summary)
    keys = ("map50_clean", "map50_degraded", "rare_map50_clean", "preclassifier_accuracy", "pipeline_f1", "registry")
    print({k: summary[k] for k in keys if k in summary}, f"-> {out}")


if __name__ == "__main__":
    main()
