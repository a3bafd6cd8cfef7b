"""Synthesise annotated sheet-music or newspaper pages into Parquet shards with Ray Data.

How to run:
    python -m workloads.pages --kind music --pages 200 --out runs/pages/music --degrade 0.5 --margin-patches 12
    python -m workloads.pages --kind news --pages 200 --out runs/pages/news
    python -m workloads.pages --smoke-test

Rerunning with the same --out skips finished shards (a killed run resumes where it stopped). Besides the shards
the folder gets summary.json (throughput, class histogram, alignment error), class_histogram.png,
sample/coco.json and sample/contact_sheet.png. Schema: workloads/pages/README.md.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow.parquet as pq

from workloads import contract
from workloads.contract import UsageError, WorkloadConfig, field
from workloads.pages.augment import margin_patches
from workloads.pages.schema import KINDS, RARE_MODES, classes
from workloads.storage import is_uri


@dataclasses.dataclass
class PagesConfig(WorkloadConfig):
    """Synthesise annotated sheet-music or newspaper pages into Parquet shards (Ray Data)."""

    workload: ClassVar[str] = "pages"

    kind: str = field("music", help="page kind", choices=KINDS)
    pages: int = field(100, help="number of pages", minimum=1)
    out: str = field(
        "",
        help="folder or URI (s3://, gs://, file://) of the shards, rerun it to resume (default "
        "runs/pages/<timestamp>/); with a URI, summary.json and plots go to that default",
    )
    seed: int = field(0, help="run seed; page i depends only on (seed, i)")
    shard_size: int = field(50, help="pages per Parquet shard", minimum=1)
    workers: int = field(2, help="Ray Data render tasks running at once", minimum=1)
    degrade: float = field(0.0, help="fraction of pages 'printed and photographed'", minimum=0, maximum=1)
    rare: str = field(
        "none", help="music rare-symbol synthesis (mix: one of the others per page)", choices=(*RARE_MODES, "mix")
    )
    margin_patches: int = field(0, help="crops of 130x80 px pasted into each page's top margin (0: off)", minimum=0)
    bank_pages: int = field(
        40, help="pages (composed with rare symbols) the margin-patch crops are cut from", minimum=1
    )
    bank_per_class: int = field(8, help="crops per class in the margin-patch bank", minimum=1)
    sample: int = field(8, help="pages exported to sample/coco.json and sample/contact_sheet.png", minimum=0)
    align_pages: int = field(8, help="pages on which the photo aligner is checked (0: skip)", minimum=0)

    def smoke(self) -> PagesConfig:
        small = self.capped(pages=16, shard_size=8, bank_pages=6, sample=4, align_pages=2)
        return dataclasses.replace(small, degrade=self.degrade or 0.5, margin_patches=self.margin_patches or 6)


_CONTENT_KEYS = (
    "kind",
    "pages",
    "seed",
    "shard_size",
    "degrade",
    "rare",
    "margin_patches",
    "bank_pages",
    "bank_per_class",
)


def _check_same_run(shards_out: str, cfg: PagesConfig) -> None:
    """Refuse to mix shards of different runs in one place; record what defines this run's content (run.json)."""
    import json

    import pyarrow.fs as pafs

    from workloads.storage import filesystem

    spec = {k: getattr(cfg, k) for k in _CONTENT_KEYS}
    fs, root = filesystem(shards_out)
    path = f"{root}/run.json"
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        with fs.open_input_stream(path) as f:
            old = json.loads(f.read())
        if old != spec:
            diff = ", ".join(f"{k}={old.get(k)!r}->{spec[k]!r}" for k in spec if old.get(k) != spec[k])
            raise UsageError(f"{shards_out} holds shards of a different run ({diff}); use another --out")
    else:
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(path) as f:
            f.write((json.dumps(spec, indent=2) + "\n").encode())


def class_histogram(shards_out: str, kind: str) -> Counter:
    """Label counts over every finished shard (reads only the labels column, one file at a time)."""
    from workloads.pages.synthesis import finished_shards

    counts: Counter = Counter()
    fs, files = finished_shards(shards_out, kind)
    for f in files:
        for labels in pq.read_table(f, columns=["labels"], filesystem=fs).column("labels").to_pylist():
            counts.update(labels)
    return counts


def alignment_check(cfg: PagesConfig) -> dict:
    """Photograph the first pages, recover each homography from pixels and report the error in pixels."""
    from workloads.pages import degrade
    from workloads.pages.synthesis import _streams, render_clean

    errors = []
    for i in range(cfg.align_pages):
        clean = render_clean(cfg.kind, cfg.seed, i, cfg.rare)["image"]
        photo, hom = degrade.photograph(clean, _streams(cfg.seed, i)[1])
        errors.append(degrade.alignment_error(hom, degrade.align(photo, clean), clean.shape[1], clean.shape[0]))
    errors = np.array(errors)
    ok = errors[np.isfinite(errors)]
    return dict(
        pages=len(errors),
        failed=int((~np.isfinite(errors)).sum()),
        mean_px=float(ok.mean()) if len(ok) else None,
        max_px=float(ok.max()) if len(ok) else None,
    )


def plot_histogram(counts: Counter, kind: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = classes(kind)
    values = [counts.get(c, 0) for c in names]
    order = np.argsort(values)[::-1]
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.16), 4))
    ax.bar(range(len(names)), [max(values[i], 0.5) for i in order])
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), [names[i] for i in order], rotation=90, fontsize=6)
    ax.set_ylabel("boxes")
    ax.set_title(f"{kind}: class histogram over {sum(values)} boxes")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: PagesConfig, out: Path) -> dict:
    """Write the missing shards to `--out` (folder or URI); summary keys, histogram and sample in the run folder."""
    from workloads.pages.export import export
    from workloads.pages.synthesis import write_shards

    shards_out = cfg.out if is_uri(cfg.out) else str(out)
    _check_same_run(shards_out, cfg)
    t0 = time.perf_counter()
    augment = margin_patches(cfg.kind, cfg.margin_patches, cfg.seed, cfg.bank_pages, cfg.bank_per_class, cfg.workers)
    bank_s = time.perf_counter() - t0
    written = pages = 0
    t1 = time.perf_counter()
    for result in write_shards(
        shards_out, cfg.kind, cfg.pages, cfg.shard_size, cfg.seed, cfg.workers, cfg.degrade, cfg.rare, augment
    ):
        pages += int(result["pages"])
        written += not result["skipped"]
    write_s = time.perf_counter() - t1
    n_shards = -(-cfg.pages // cfg.shard_size)
    skipped = n_shards - written
    counts = class_histogram(shards_out, cfg.kind)
    total = sum(counts.values())
    ranked = counts.most_common()
    plot_histogram(counts, cfg.kind, out / "class_histogram.png")
    outputs = dict(shards=shards_out, class_histogram=str(out / "class_histogram.png"))
    if cfg.sample:
        outputs["sample"] = export(shards_out, str(out / "sample"), cfg.sample)
    summary = dict(
        outputs=outputs,
        shards=n_shards,
        shards_written=written,
        shards_skipped=skipped,
        pages_written=pages,
        write_s=round(write_s, 2),
        bank_s=round(bank_s, 2),
        pages_per_s=round(pages / write_s, 3) if pages else None,
        pages_per_s_per_worker=round(pages / write_s / cfg.workers, 3) if pages else None,
        boxes=total,
        class_histogram=dict(ranked),
        classes_seen=len(counts),
        classes_in_list=len(classes(cfg.kind)),
        top_class_share=round(ranked[0][1] / total, 3) if total else None,
        top10_share=round(sum(v for _, v in ranked[:10]) / total, 3) if total else None,
        alignment=alignment_check(cfg) if cfg.align_pages else None,
    )
    print(
        f"{cfg.kind}: {n_shards} shards in {shards_out} ({written} written, {skipped} already there), "
        f"{summary['pages_per_s']} pages/s; alignment {summary['alignment']}"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    return contract.main(PagesConfig, run, argv)


if __name__ == "__main__":
    sys.exit(main())
