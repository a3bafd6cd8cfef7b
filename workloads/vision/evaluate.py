"""Re-measure published page models on freshly synthesised pages: the DWD symbol detector, or the newspaper models.

How to run:
    python -m workloads.vision.evaluate --registry workloads/builtin --eval-pages 24 --json runs/omr-eval.json
    python -m workloads.vision.evaluate --task news --registry workloads/builtin --eval-pages 80 --seed 11 \
        --degrade 1 --json runs/news-eval.json

It follows the workload contract: a run folder (`--out`, default runs/vision.evaluate/<timestamp>/) with
summary.json and overlays; `--json` writes the same results to a file of its own.

`--task omr` (the default): `map50_clean`, `map50_degraded` (a share `--degrade` of the pages printed and
photographed, default all) and per-class AP under `eval`. The training job calls the same `evaluate_detector`
right after training; this entrypoint re-measures a published model (another decoding, more pages, another seed)
without training it again.

`--task news`: the pipeline `/news` serves, on `--eval-pages` pages of which a share `--degrade` is printed and
photographed: the pre-classifier (random forest on `news.page_features`, article when P(article) >= 0.5, as
serving/news decides) on every page, and each publisher's segmenter. `preclassifier_accuracy`; `article_f1` (IoU >
0.5) of the segmenters on the true article pages; `pipeline_f1` of forest + segmenter over all pages (articles
found on a listing page count as false); the same per publisher and per page type; and `stump_accuracy`, a
depth-1 decision tree fitted on the features of the pre-classifier's own training pages (regenerated from its
metadata.json, as the training job drew them) to show how much of the forest's score one threshold on one feature
already gets. Pages come from `workloads.pages` with `--seed`: use a seed the models never saw (metadata.json
names the training seed; the training job evaluates on seed + 1).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from workloads import contract
from workloads.contract import UsageError, WorkloadConfig, field, write_json
from workloads.pages.schema import PUBLISHERS, decode_png
from workloads.registry import RegistryError, check_name, find_model

TASKS = ("omr", "news")


def eval_rows(kind: str, n: int, seed: int, degrade: float) -> list[dict]:
    from workloads.pages.synthesis import page_dataset

    return sorted(page_dataset(kind, n, seed=seed, degrade=degrade).iter_rows(), key=lambda r: r["page_index"])


def draw_boxes(img: np.ndarray, boxes, path, color=(0, 0, 255)) -> None:
    import cv2

    canvas = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    for b in boxes:
        cv2.rectangle(canvas, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), color, 1)
    cv2.imwrite(str(path), canvas)


def evaluate_detector(
    model,
    classes: list[str],
    eval_pages: int,
    seed: int,
    train_counts: dict | None = None,
    out: Path | None = None,
    degrade: float = 1.0,
) -> dict:
    """COCO mAP@0.5 overall and per class on `eval_pages` clean and as many degraded pages (of which a share
    `degrade` is printed and photographed); with the training class counts also `rare_map50`: the mAP over the
    third of the evaluated classes seen least often in training (what the margin patches are for)."""
    from workloads.vision import dwd
    from workloads.vision.metrics import coco_map

    results = {}
    for split, share in (("clean", 0.0), ("degraded", degrade)):
        rows = eval_rows("music", eval_pages, seed, share)
        dets, t0 = [], time.perf_counter()
        for row in rows:
            dets += dwd.detect(model, classes, [decode_png(row["image"])])
        results[split] = coco_map([r["boxes"] for r in rows], [r["labels"] for r in rows], dets, classes)
        results[split]["seconds_per_page"] = round((time.perf_counter() - t0) / len(rows), 3)
        if out is not None:
            draw_boxes(decode_png(rows[0]["image"]), [d["box"] for d in dets[0]], out / f"detections_{split}.png")
    rare = None
    if train_counts:
        evaluated = sorted(results["clean"]["per_class"], key=lambda c: train_counts.get(c, 0))
        rare = evaluated[: max(1, len(evaluated) // 3)]
    for split in results:
        pc = results[split]["per_class"]
        results[split]["rare_map50"] = float(np.mean([pc[c] for c in rare if c in pc])) if rare else None
    return dict(
        map50_clean=round(results["clean"]["map50"], 4),
        map50_degraded=round(results["degraded"]["map50"], 4),
        rare_map50_clean=results["clean"]["rare_map50"],
        rare_map50_degraded=results["degraded"]["rare_map50"],
        rare_classes=rare,
        eval=results,
    )


def _stump_plan(meta: dict, eval_seed: int, stump_pages: int) -> dict:
    """Where the stump's training pages come from: the pre-classifier's own training pages when its metadata says
    how they were drawn (`page_dataset('news', pages, seed, degrade)`, no Parquet shards, no corrections), else
    pages of another seed than the evaluated one, as many and as degraded as the metadata says (160, 0.3 if it
    says nothing). `stump_pages` > 0 takes only the first that many of them."""
    data = meta.get("training_data") or {}
    pages, seed, degrade = data.get("pages"), data.get("seed"), data.get("degrade")
    regenerable = (
        str(data.get("source", "")).startswith("workloads.pages page_dataset")
        and isinstance(pages, int)
        and isinstance(seed, int)
        and isinstance(degrade, (int, float))
        and not data.get("corrections")
        and "--corrections" not in str(meta.get("command", ""))
    )
    if regenerable:
        how = "the pre-classifier's training pages, regenerated from its metadata.json"
    else:
        pages = pages if isinstance(pages, int) else 160
        degrade = degrade if isinstance(degrade, (int, float)) else 0.3
        seed = eval_seed + 1
        how = (
            f"the pre-classifier's training pages cannot be regenerated ({data.get('source', 'no training_data')}"
            f"{', with corrections' if data.get('corrections') or '--corrections' in str(meta.get('command')) else ''}"
            f"): pages of seed {seed}, not the evaluated seed"
        )
    if stump_pages:
        pages = min(pages, stump_pages)
        how += f", the first {pages} of them (--stump-pages)"
    return dict(pages=int(pages), seed=int(seed), degrade=float(degrade), how=how, same_as_training=regenerable)


def fit_stump(plan: dict, random_state: int):
    """A depth-1 decision tree on the features of the planned pages, drawn as the training job draws them
    (`page_dataset` -> `train.news_features`) and fitted like the forest (same features, labels, seed)."""
    from sklearn.tree import DecisionTreeClassifier

    from workloads.pages.synthesis import page_dataset
    from workloads.vision.train import news_features

    ds = page_dataset("news", plan["pages"], seed=plan["seed"], degrade=plan["degrade"])
    feats = ds.select_columns(["image", "is_article"]).map_batches(news_features, batch_size=8).to_pandas()
    x, y = np.stack(feats["features"]), feats["is_article"].to_numpy(bool)
    stump = DecisionTreeClassifier(max_depth=1, random_state=random_state).fit(x, y)
    return stump, float((stump.predict(x) == y).mean())


def describe_stump(stump) -> dict:
    """The one split: feature (index and name), threshold, and which side is called an article page."""
    from workloads.vision import news

    tree = stump.tree_
    if tree.node_count < 3:  # one class only in the training pages: no split
        return dict(feature=None, feature_name=None, threshold=None, article_if=None)
    k, left = int(tree.feature[0]), int(tree.children_left[0])
    left_class = bool(stump.classes_[int(np.argmax(tree.value[left]))])
    return dict(
        feature=k,
        feature_name=news.FEATURE_NAMES[k] if k < len(news.FEATURE_NAMES) else f"feature {k}",
        threshold=round(float(tree.threshold[0]), 6),
        article_if="<=" if left_class else ">",
    )


def _rate(hits: np.ndarray) -> float | None:
    return round(float(np.mean(hits)), 4) if len(hits) else None


def _f1(result: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def evaluate_news(cfg: EvaluateConfig, out: Path) -> dict:
    """The published pre-classifier and segmenters on `cfg.eval_pages` fresh pages (a share `cfg.degrade`
    photographed), with the stump beside the forest; per publisher and per page type."""
    import torch

    from workloads.pages.schema import rle_to_mask
    from workloads.vision import news
    from workloads.vision.metrics import article_f1

    found = find_model("news", "preclassifier", cfg.version, cfg.registry or None)
    if not found:
        raise UsageError(f"no model news/preclassifier/{cfg.version} in the registry or builtin")
    forest_meta = found[1]
    forest = news.load_preclassifier(*found)
    segmenters, seg_meta = {}, {}
    for pub in PUBLISHERS:
        hit = find_model("news", pub, cfg.version, cfg.registry or None)
        if hit:
            segmenters[pub], seg_meta[pub] = news.load_segmenter(*hit), hit[1]
    if not segmenters:
        raise UsageError(f"no news segmenter ({', '.join(PUBLISHERS)}) at version {cfg.version} in the registry")
    warnings = []
    train_seeds = {(m.get("training_data") or {}).get("seed") for m in [forest_meta, *seg_meta.values()]}
    if cfg.seed in train_seeds:
        warnings.append(f"--seed {cfg.seed} is a training seed of these models: the figures are not held-out")
    elif any(isinstance(v, int) and cfg.seed == v + 1 for v in train_seeds):
        warnings.append(f"--seed {cfg.seed} is the seed the training job evaluated on (training seed + 1)")

    plan = _stump_plan(forest_meta, cfg.seed, cfg.stump_pages)
    if plan["seed"] == cfg.seed:
        warnings.append(f"the stump was fitted on pages of --seed {cfg.seed}, the evaluated seed")
    t0 = time.perf_counter()
    stump, stump_train_acc = fit_stump(plan, int((forest_meta.get("training_data") or {}).get("seed") or 0))
    stump_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    rows = eval_rows("news", cfg.eval_pages, cfg.seed, cfg.degrade)
    gray = [decode_png(r["image"]) for r in rows]
    feats = np.stack([news.page_features(g) for g in gray])
    truth = np.array([bool(r["is_article"]) for r in rows])
    p_article = news.article_probability(forest, feats)
    verdict = p_article >= 0.5
    stump_verdict = stump.predict(feats).astype(bool)
    gt = [rle_to_mask(r["mask_rle"], r["height"], r["width"]) for r in rows]
    torch.set_num_threads(cfg.threads)
    seg: dict[int, np.ndarray] = {}  # segmenter output for the pages that are, or are called, article pages
    for pub, model in segmenters.items():
        idx = [i for i, r in enumerate(rows) if r["publisher"] == pub and (truth[i] or verdict[i])]
        for j in range(0, len(idx), 2):
            for i, mask in zip(idx[j : j + 2], news.segment(model, [gray[i] for i in idx[j : j + 2]])):
                seg[i] = mask
    seconds = time.perf_counter() - t0

    def pred(i: int) -> np.ndarray:  # what the served pipeline returns for page i
        return seg[i] if verdict[i] else np.zeros_like(gt[i])

    def scores(idx: list[int]) -> dict:
        idx = [i for i in idx if rows[i]["publisher"] in segmenters]
        art = [i for i in idx if truth[i]]
        seg_f1 = _f1(article_f1([gt[i] for i in art], [seg[i] for i in art]))
        pipe_f1 = _f1(article_f1([gt[i] for i in idx], [pred(i) for i in idx]))
        return dict(
            pages=len(idx),
            article_pages=len(art),
            degraded_pages=sum(bool(rows[i]["degraded"]) for i in idx),
            preclassifier_accuracy=_rate(verdict[idx] == truth[idx]),
            stump_accuracy=_rate(stump_verdict[idx] == truth[idx]),
            article_f1=seg_f1["f1"] if art else None,
            pipeline_f1=pipe_f1["f1"] if idx else None,
            article=seg_f1 if art else None,
            pipeline=pipe_f1,
        )

    everything = scores(list(range(len(rows))))
    publishers = {}
    for pub in PUBLISHERS:
        idx = [i for i, r in enumerate(rows) if r["publisher"] == pub]
        if pub not in segmenters:
            publishers[pub] = dict(pages=len(idx), skipped="no segmenter for this publisher in the registry")
        elif idx:
            publishers[pub] = dict(scores(idx), model=seg_meta[pub].get("version"))
    page_types = {}
    for kind in sorted({r["page_type"] for r in rows}):
        idx = np.array([i for i, r in enumerate(rows) if r["page_type"] == kind])
        page_types[kind] = dict(
            pages=len(idx),
            preclassifier_accuracy=_rate(verdict[idx] == truth[idx]),
            stump_accuracy=_rate(stump_verdict[idx] == truth[idx]),
        )
    pages = [
        dict(
            page_index=int(r["page_index"]),
            publisher=r["publisher"],
            page_type=r["page_type"],
            degraded=bool(r["degraded"]),
            p_article=round(float(p_article[i]), 4),
            stump_article=bool(stump_verdict[i]),
            articles=int(len(np.unique(gt[i])) - (gt[i] == 0).any()),
            found=int(len(np.unique(pred(i))) - (pred(i) == 0).any()),
        )
        for i, r in enumerate(rows)
    ]
    first = next((i for i in range(len(rows)) if truth[i] and i in seg), None)
    outputs = {}
    if first is not None:
        draw_boxes(gray[first], news.boxes_from_mask(seg[first]), out / "articles.png")
        outputs["articles"] = str(out / "articles.png")
    keep = ("task", "name", "version", "steps", "command", "code_version", "training_data")
    return dict(
        task="news",
        seed=cfg.seed,
        degrade=cfg.degrade,
        eval_pages=len(rows),
        degraded_pages=everything["degraded_pages"],
        preclassifier_accuracy=everything["preclassifier_accuracy"],
        stump_accuracy=everything["stump_accuracy"],
        article_f1=everything["article_f1"],
        pipeline_f1=everything["pipeline_f1"],
        article=everything["article"],
        pipeline=everything["pipeline"],
        stump=dict(
            describe_stump(stump),
            trained_on=plan,
            train_accuracy=round(stump_train_acc, 4),
            fit_s=round(stump_s, 1),
        ),
        publishers=publishers,
        page_types=page_types,
        pages=pages,
        seconds_per_page=round(seconds / len(rows), 3),
        model=dict(
            preclassifier={k: forest_meta.get(k) for k in keep},
            segmenters={p: {k: m.get(k) for k in keep} for p, m in seg_meta.items()},
        ),
        warnings=warnings,
        outputs=outputs,
    )


@dataclasses.dataclass
class EvaluateConfig(WorkloadConfig):
    """Re-measure a published DWD model (--task omr) or the newspaper models (--task news) on fresh pages."""

    workload: ClassVar[str] = "vision.evaluate"

    task: str = field(
        "omr", help="omr (the DWD symbol detector) | news (pre-classifier and per-publisher segmenters)", choices=TASKS
    )
    registry: str = field("", help="registry folder or URI (default $DLWILD_REGISTRY or registry/, then builtin)")
    name: str = field("dwd", help="omr: model name under omr/ (news evaluates all its models)")
    version: str = field("latest", help="version (vN) or latest (news: of every model)")
    eval_pages: int = field(24, help="omr: pages per split (clean and degraded); news: pages", minimum=1)
    seed: int = field(1, help="page seed (the training job evaluates on its seed + 1)")
    degrade: float = field(
        1.0,
        help="share of pages printed and photographed: omr of the degraded split, news of all pages",
        minimum=0,
        maximum=1,
    )
    stump_pages: int = field(
        0, help="news: fit the stump on only the first N of its training pages (0: all, as the forest)", minimum=0
    )
    threads: int = field(2, help="torch threads", minimum=1)
    json: str = field("", help="also write the results to this JSON file")

    def smoke(self) -> EvaluateConfig:
        small = dataclasses.replace(self, eval_pages=min(self.eval_pages, 2))
        return dataclasses.replace(small, stump_pages=min(self.stump_pages or 8, 8)) if self.task == "news" else small

    def validate(self) -> None:
        if self.task == "news" and self.name != "dwd":
            raise UsageError("--name names an omr model; --task news evaluates the pre-classifier and every publisher")
        if self.task == "omr" and self.stump_pages:
            raise UsageError("--stump-pages is for --task news")
        try:
            check_name(self.name)
        except RegistryError as exc:
            raise UsageError(str(exc)) from None


def run(cfg: EvaluateConfig, out: Path) -> dict:
    import torch

    from workloads.vision import dwd

    if cfg.task == "news":
        try:
            result = evaluate_news(cfg, out)
        except RegistryError as exc:
            raise UsageError(str(exc)) from None
        outputs = result.pop("outputs")
        if cfg.json:
            write_json(Path(cfg.json), result)
        for line in result["warnings"]:
            print(f"warning: {line}", file=sys.stderr)
        keys = ("preclassifier_accuracy", "stump_accuracy", "article_f1", "pipeline_f1", "degraded_pages")
        print({k: result[k] for k in keys})
        return dict(result, outputs=dict(outputs, json=cfg.json) if cfg.json else outputs)
    try:
        found = find_model("omr", cfg.name, cfg.version, cfg.registry or None)
    except RegistryError as exc:
        raise UsageError(str(exc)) from None
    if not found:
        raise UsageError(f"no model omr/{cfg.name}/{cfg.version} in the registry or builtin")
    files, meta = found
    torch.set_num_threads(cfg.threads)
    result = evaluate_detector(
        dwd.load(files, meta),
        list(meta["classes"]),
        cfg.eval_pages,
        cfg.seed,
        meta.get("train_class_counts"),
        out,
        cfg.degrade,
    )
    result["model"] = {k: meta.get(k) for k in ("task", "name", "version", "steps", "command", "code_version")}
    if cfg.json:
        write_json(Path(cfg.json), result)
    print({k: result[k] for k in ("map50_clean", "map50_degraded", "rare_map50_clean")})
    outputs = dict(detections=[str(out / f"detections_{s}.png") for s in ("clean", "degraded")])
    return dict(result, outputs=dict(outputs, json=cfg.json) if cfg.json else outputs)


def main(argv: list[str] | None = None) -> int:
    return contract.main(EvaluateConfig, run, argv)


if __name__ == "__main__":
    sys.exit(main())
