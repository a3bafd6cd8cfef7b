"""Look at shards: export a sample to COCO JSON and a PNG contact sheet with the boxes drawn.

python -m workloads.pages.export --shards runs/pages/music --out runs/pages/music/sample --n 8
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from workloads.contract import UsageError, fail, field, parse_config, write_json
from workloads.pages.schema import KINDS, classes, decode_png
from workloads.pages.synthesis import finished_shards
from workloads.storage import is_uri


def read_sample(shards_dir: str, n: int) -> list[dict]:
    """The first `n` rows (by page index) of the finished shards in a folder or URI."""
    rows: list[dict] = []
    for kind in KINDS:
        fs, files = finished_shards(shards_dir, kind)
        if files:
            break
    for f in files:
        rows.extend(pq.read_table(f, filesystem=fs).to_pylist())
        if len(rows) >= n:
            break
    return sorted(rows, key=lambda r: r["page_index"])[:n]


def to_coco(rows: list[dict], kind: str) -> dict:
    """COCO detection JSON: images by page id (file names `<page_id>.png`), boxes as [x, y, w, h]."""
    names = classes(kind)
    cat = {c: i + 1 for i, c in enumerate(names)}
    images, annotations = [], []
    for img_id, row in enumerate(rows, 1):
        images.append(dict(id=img_id, file_name=f"{row['page_id']}.png", width=row["width"], height=row["height"]))
        for (x0, y0, x1, y1), label in zip(row["boxes"], row["labels"]):
            w, h = x1 - x0, y1 - y0
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=cat[label],
                    bbox=[round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)],
                    area=round(w * h, 2),
                    iscrowd=0,
                )
            )
    return dict(
        images=images,
        annotations=annotations,
        categories=[dict(id=i, name=c, supercategory=kind) for c, i in cat.items()],
    )


def _colour(label: str) -> tuple[int, int, int]:
    rng = np.random.default_rng(sum(map(ord, label)) * 7919)
    return tuple(int(v) for v in rng.integers(0, 200, 3))


def contact_sheet(rows: list[dict], columns: int = 4, thumb_w: int = 500, crop: bool = False) -> np.ndarray:
    """Pages side by side (scaled to `thumb_w`), each box drawn in a colour per class."""
    thumbs = []
    for row in rows:
        img = cv2.cvtColor(decode_png(row["image"]), cv2.COLOR_GRAY2BGR)
        for (x0, y0, x1, y1), label in zip(row["boxes"], row["labels"]):
            if label != "staff":
                cv2.rectangle(img, (int(x0), int(y0)), (int(np.ceil(x1)), int(np.ceil(y1))), _colour(label), 1)
        if crop:
            img = img[: img.shape[0] // 3, : img.shape[1] // 2]
        scale = thumb_w / img.shape[1]
        thumbs.append(cv2.resize(img, (thumb_w, int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA))
    h = max(t.shape[0] for t in thumbs)
    thumbs += [np.full_like(thumbs[0], 255)] * (-len(thumbs) % columns)
    grid = [
        np.concatenate(
            [np.pad(t, ((0, h - t.shape[0]), (4, 4), (0, 0)), constant_values=255) for t in thumbs[i : i + columns]], 1
        )
        for i in range(0, len(thumbs), columns)
    ]
    return np.concatenate(grid, 0)


def export(shards_dir: str, out_dir: str, n: int = 8) -> dict:
    rows = read_sample(shards_dir, n)
    if not rows:
        raise UsageError(f"no finished .parquet shards in {shards_dir}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind = rows[0]["kind"]
    write_json(out / "coco.json", to_coco(rows, kind))
    cv2.imwrite(str(out / "contact_sheet.png"), contact_sheet(rows))
    cv2.imwrite(str(out / "contact_sheet_detail.png"), contact_sheet(rows[:4], columns=2, thumb_w=500, crop=True))
    return dict(coco=str(out / "coco.json"), contact_sheet=str(out / "contact_sheet.png"), pages=len(rows))


@dataclasses.dataclass
class ExportConfig:
    """Export a sample of page shards to COCO JSON and a contact sheet PNG."""

    shards: str = field(None, help="folder or URI holding the .parquet shards")
    out: str = field(None, help="local output folder (default: <shards>/sample, or runs/pages/sample for a URI)")
    n: int = field(8, help="number of pages to export", minimum=1)

    def validate(self) -> None:
        if not self.shards or (not is_uri(self.shards) and not os.path.isdir(self.shards)):
            raise UsageError(f"--shards {self.shards!r} is not a folder")


def main(argv: list[str] | None = None) -> int:
    """A sub-command without a run folder: flags as the contract parses them, usage errors exit 2."""
    cfg = parse_config(ExportConfig, argv, prog="python -m workloads.pages.export")
    default = os.path.join("runs", "pages", "sample") if is_uri(cfg.shards) else os.path.join(cfg.shards, "sample")
    try:
        print(json.dumps(export(cfg.shards, cfg.out or default, cfg.n)))
    except UsageError as exc:
        fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
