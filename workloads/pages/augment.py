"""Rare-symbol crops and the margin-patch augmentation (DeepScores, section 5 of the paper).

The paper pasted 12 crops of 130x80 px, each centred on a symbol, into the empty top margin of every training
page, so that on expectation every class shows up within a few iterations despite the heavy imbalance.
`PatchBank` cuts such crops (with their context and boxes) from rendered pages, one class at a time, and
`MarginPatches` is the streaming transform: a callable on a pyarrow batch, usable in `Dataset.map_batches`.
`margin_patches` builds both the one way that workloads.pages (`--margin-patches`) and workloads.vision use.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pyarrow as pa

from workloads.pages.schema import decode_png

PATCH_W, PATCH_H = 130, 80


class PatchBank:
    """Crops of `PATCH_W` x `PATCH_H` px around symbols, with the boxes that lie (mostly) inside each crop."""

    def __init__(self, patches: np.ndarray, boxes: list[np.ndarray], labels: list[list[str]], centre: list[str]):
        self.patches, self.boxes, self.labels, self.centre = patches, boxes, labels, np.asarray(centre)
        self.classes = sorted(set(centre))

    @classmethod
    def from_rows(cls, rows, per_class: int = 8, seed: int = 0, skip=("staff",)) -> PatchBank:
        """Cut up to `per_class` crops per class from page rows (dicts with image PNG, boxes, labels)."""
        rng = np.random.default_rng(seed)
        patches, boxes, labels, centre = [], [], [], []
        have: Counter = Counter()
        for row in rows:
            img = decode_png(row["image"])
            h, w = img.shape
            row_boxes = np.asarray([list(b) for b in row["boxes"]], np.float64).reshape(-1, 4)
            row_labels = list(row["labels"])
            for i in rng.permutation(len(row_labels)):
                label = row_labels[i]
                x0, y0, x1, y1 = row_boxes[i]
                if label in skip or have[label] >= per_class or x1 - x0 > PATCH_W - 4 or y1 - y0 > PATCH_H - 4:
                    continue
                cx = (x0 + x1) / 2 + rng.uniform(-0.25, 0.25) * (PATCH_W - (x1 - x0))
                cy = (y0 + y1) / 2 + rng.uniform(-0.25, 0.25) * (PATCH_H - (y1 - y0))
                px = int(np.clip(round(cx - PATCH_W / 2), 0, w - PATCH_W))
                py = int(np.clip(round(cy - PATCH_H / 2), 0, h - PATCH_H))
                inside = _clip(row_boxes, px, py, row_labels)
                if (
                    inside is None
                    or not (row_boxes[i, :2] >= [px, py]).all()
                    or not (row_boxes[i, 2:] <= [px + PATCH_W - 1, py + PATCH_H - 1]).all()
                ):
                    continue
                kept, kept_labels = inside
                patches.append(img[py : py + PATCH_H, px : px + PATCH_W].copy())
                boxes.append(kept)
                labels.append(kept_labels)
                centre.append(label)
                have[label] += 1
        if not patches:
            raise ValueError("no symbol fits a 130x80 crop in the given pages")
        return cls(np.stack(patches), boxes, labels, centre)

    def sample(self, rng: np.random.Generator) -> int:
        """A crop index: first a class uniformly, then one of its crops, so rare classes come as often as common."""
        cls = self.classes[int(rng.integers(len(self.classes)))]
        options = np.flatnonzero(self.centre == cls)
        return int(options[int(rng.integers(len(options)))])


def _clip(boxes: np.ndarray, px: int, py: int, labels: list[str], keep: float = 0.6):
    """Boxes of a page seen through a crop at (px, py): clipped to it, kept when >= `keep` of a box is inside."""
    x0 = np.maximum(boxes[:, 0], px)
    y0 = np.maximum(boxes[:, 1], py)
    x1 = np.minimum(boxes[:, 2], px + PATCH_W - 1)
    y1 = np.minimum(boxes[:, 3], py + PATCH_H - 1)
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    ok = (inter / area >= keep) & (x1 - x0 >= 0.5) & (y1 - y0 >= 0.5)
    if not ok.any():
        return None
    rel = np.stack([x0 - px, y0 - py, x1 - px, y1 - py], 1)[ok]
    return rel, [labels[i] for i in np.flatnonzero(ok)]


class MarginPatches:
    """Paste up to `k` bank crops into the empty band above a page's first box (rows of 130x80 px).

    Deterministic per page: the crops come from a generator seeded with (seed, page_index).
    """

    def __init__(self, bank: PatchBank, k: int = 12, seed: int = 0, gap: int = 4):
        self.bank, self.k, self.seed, self.gap = bank, k, seed, gap

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        for row in rows:
            self.paste(row)
        return pa.Table.from_pylist(rows, schema=batch.schema)

    def paste(self, row: dict) -> dict:
        """Paste into one row dict in place; returns how many crops went in as `row`."""
        boxes = [list(b) for b in row["boxes"]]
        top = min((b[1] for b in boxes), default=row["height"])
        per_row = (row["width"] - self.gap) // (PATCH_W + self.gap)
        n_rows = int(max(0, top - 2 * self.gap) // (PATCH_H + self.gap))
        n = min(self.k, per_row * n_rows)
        if n == 0:
            return row
        rng = np.random.default_rng([self.seed, int(row["page_index"]), 1])
        img = decode_png(row["image"])
        labels = list(row["labels"])
        extra = {name: list(row[name]) for name in ("article_of",) if name in row}
        for j in range(n):
            idx = self.bank.sample(rng)
            x = self.gap + (j % per_row) * (PATCH_W + self.gap)
            y = self.gap + (j // per_row) * (PATCH_H + self.gap)
            img[y : y + PATCH_H, x : x + PATCH_W] = self.bank.patches[idx]
            for b, label in zip(self.bank.boxes[idx], self.bank.labels[idx]):
                boxes.append(
                    [
                        round(float(b[0] + x), 2),
                        round(float(b[1] + y), 2),
                        round(float(b[2] + x), 2),
                        round(float(b[3] + y), 2),
                    ]
                )
                labels.append(label)
                for name in extra:
                    extra[name].append(0)
        row.update(image=cv2.imencode(".png", img)[1].tobytes(), boxes=boxes, labels=labels, **extra)
        return row


def bank_seed(seed: int) -> int:
    """The seed of the pages a run's patch bank is cut from: derived from the run seed, never equal to it, so
    the bank's pages are not pages of the run (one rule for workloads.pages and workloads.vision)."""
    return int(np.random.SeedSequence([int(seed), 7]).generate_state(1)[0])


def margin_patches(
    kind: str, k: int, seed: int, bank_pages: int, per_class: int = 8, workers: int = 2
) -> MarginPatches | None:
    """The margin-patch transform of a run with `seed`, or None when `k` is 0.

    Its bank holds up to `per_class` crops per class, cut from `bank_pages` pages composed with rare symbols
    (`rare="compose"`) under `bank_seed(seed)`; which crops a page gets is drawn from (seed, page index).
    Needs Ray (the bank's pages come from `page_dataset`).
    """
    if not k:
        return None
    from workloads.pages.synthesis import page_dataset

    rows = sorted(
        page_dataset(kind, bank_pages, seed=bank_seed(seed), rare="compose", workers=workers).iter_rows(),
        key=lambda r: r["page_index"],
    )
    return MarginPatches(PatchBank.from_rows(rows, per_class=per_class, seed=seed), k=k, seed=seed)


def batches_until_all_seen(label_batches, classes, max_batches: int = 1000) -> int | None:
    """How many batches (each an iterable of per-page label lists) pass before every class was seen; None if
    some class is still missing after `max_batches`."""
    missing = set(classes)
    for n, batch in enumerate(label_batches, 1):
        for labels in batch:
            missing.difference_update(labels)
        if not missing:
            return n
        if n >= max_batches:
            break
    return None
