"""Evaluate a DWD symbol detector from the registry on held-out synthetic pages, clean and degraded.

How to run:
    python -m workloads.vision.evaluate --registry workloads/builtin --eval-pages 24 --json runs/omr-eval.json

It follows the workload contract: a run folder (`--out`, default runs/vision.evaluate/<timestamp>/) with
summary.json and the detection overlays; `--json` writes the same results (`map50_clean`, `map50_degraded`, per-class
AP under `eval`) to a file of its own.

The training job calls the same `evaluate_detector` right after training; this entrypoint re-measures a published
model (another decoding, more pages, another seed) without training it again. Pages come from
`workloads.pages` with `--seed` (the training job uses its own seed + 1, so the pages are never trained on).
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
from workloads.pages.schema import decode_png
from workloads.registry import RegistryError, check_name, find_model


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
    model, classes: list[str], eval_pages: int, seed: int, train_counts: dict | None = None, out: Path | None = None
) -> dict:
    """COCO mAP@0.5 overall and per class on `eval_pages` clean and as many degraded pages; with the training
    class counts also `rare_map50`: the mAP over the third of the evaluated classes seen least often in training
    (what the margin patches are for)."""
    from workloads.vision import dwd
    from workloads.vision.metrics import coco_map

    results = {}
    for split, degrade in (("clean", 0.0), ("degraded", 1.0)):
        rows = eval_rows("music", eval_pages, seed, degrade)
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


@dataclasses.dataclass
class EvaluateConfig(WorkloadConfig):
    """Evaluate a published DWD model on held-out synthetic music pages."""

    workload: ClassVar[str] = "vision.evaluate"

    registry: str = field("", help="registry folder or URI (default $DLWILD_REGISTRY or registry/, then builtin)")
    name: str = field("dwd", help="model name under omr/")
    version: str = field("latest", help="version (vN) or latest")
    eval_pages: int = field(24, help="pages per split (clean and degraded)", minimum=1)
    seed: int = field(1, help="page seed (the training job evaluates on its seed + 1)")
    threads: int = field(2, help="torch threads", minimum=1)
    json: str = field("", help="also write the results to this JSON file")

    def smoke(self) -> EvaluateConfig:
        return dataclasses.replace(self, eval_pages=min(self.eval_pages, 2))

    def validate(self) -> None:
        try:
            check_name(self.name)
        except RegistryError as exc:
            raise UsageError(str(exc)) from None


def run(cfg: EvaluateConfig, out: Path) -> dict:
    import torch

    from workloads.vision import dwd

    try:
        found = find_model("omr", cfg.name, cfg.version, cfg.registry or None)
    except RegistryError as exc:
        raise UsageError(str(exc)) from None
    if not found:
        raise UsageError(f"no model omr/{cfg.name}/{cfg.version} in the registry or builtin")
    files, meta = found
    torch.set_num_threads(cfg.threads)
    result = evaluate_detector(
        dwd.load(files, meta), list(meta["classes"]), cfg.eval_pages, cfg.seed, meta.get("train_class_counts"), out
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
