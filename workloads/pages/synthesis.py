"""Pages as rows: rendering one page from (seed, index), atomic Parquet shards and the Ray Data stream.

Page `i` of a run depends only on (seed, i), so shard `k` (pages k*S ... k*S+S-1) is the same whoever renders it,
whenever: reruns skip finished shards, and `page_dataset` yields exactly the rows the shards hold.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from workloads.pages import degrade as _degrade
from workloads.pages import music, news
from workloads.pages.schema import KINDS, RARE_MODES, mask_to_rle, rows_to_table
from workloads.storage import filesystem


def _streams(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for a page's content and its photograph, derived from (seed, index) only."""
    content, photo = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    return np.random.default_rng(content), np.random.default_rng(photo)


def render_clean(kind: str, seed: int, index: int, rare: str = "none") -> dict:
    """The undegraded page as Python values (image as an array)."""
    rng, _ = _streams(seed, index)
    if kind == "music":
        mode = rare if rare != "mix" else str(rng.choice(RARE_MODES))
        svg = music.engrave(music.compose(rng, mode), id_seed=int(rng.integers(1, 2**31 - 1)))
        img, boxes, labels, staves = music.draw_svg(svg)
        return dict(image=img, boxes=boxes, labels=labels, staves=staves, rare=mode)
    return news.render(rng)


def render_page(kind: str, seed: int, index: int, degrade: float = 0.0, rare: str = "none") -> dict:
    """One finished row (PNG bytes and all) of the kind's schema."""
    page = render_clean(kind, seed, index, rare)
    _, photo_rng = _streams(seed, index)
    img = page["image"]
    h, w = img.shape
    boxes = np.asarray(page["boxes"], np.float64).reshape(-1, 4)
    hom = np.eye(3)
    degraded = bool(photo_rng.random() < degrade)
    if degraded:
        img, hom = _degrade.photograph(img, photo_rng)
        boxes = _degrade.transform_boxes(boxes, hom, w, h)
        if kind == "news":
            page["mask"] = cv2.warpPerspective(page["mask"], hom, (w, h), flags=cv2.INTER_NEAREST)
    row = dict(
        page_id=f"{kind}-{seed}-{index:08d}",
        page_index=index,
        kind=kind,
        seed=seed,
        width=w,
        height=h,
        image=cv2.imencode(".png", img)[1].tobytes(),
        boxes=np.round(boxes, 2).tolist(),
        labels=list(page["labels"]),
        degraded=degraded,
        homography=hom.ravel().tolist(),
    )
    if kind == "music":
        row.update(rare=page["rare"], staves=[[round(v, 2) for v in s] for s in page["staves"]])
    else:
        row.update(
            publisher=page["publisher"],
            page_type=page["page_type"],
            is_article=page["page_type"] == "article",
            article_of=page["article_of"],
            mask_rle=mask_to_rle(page["mask"]),
        )
    return row


# ----------------------------------------------------------------------------------------------- shards
def shard_name(kind: str, shard: int) -> str:
    return f"{kind}-{shard:05d}.parquet"


def finished_shards(out: str, kind: str) -> tuple[pafs.FileSystem, list[str]]:
    """The filesystem and sorted paths of the finished shards of `kind` under `out`."""
    fs, root = filesystem(out)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    return fs, sorted(i.path for i in infos if i.base_name.startswith(f"{kind}-") and i.base_name.endswith(".parquet"))


def write_shard(
    out_dir: str,
    kind: str,
    shard: int,
    n_pages: int,
    shard_size: int,
    seed: int,
    degrade: float = 0.0,
    rare: str = "none",
    augment=None,
) -> dict:
    """Render and write one shard atomically (temp name, then rename); skip it if it is already there."""
    fs, root = filesystem(out_dir)
    final = f"{root}/{shard_name(kind, shard)}"
    if fs.get_file_info(final).type != pafs.FileType.NotFound:
        return dict(shard=shard, pages=0, seconds=0.0, cpu_seconds=0.0, skipped=True, counts="{}")
    t0, c0 = time.perf_counter(), time.process_time()
    first, last = shard * shard_size, min(n_pages, (shard + 1) * shard_size)
    table = rows_to_table(kind, [render_page(kind, seed, i, degrade, rare) for i in range(first, last)])
    if augment is not None:
        table = augment(table)
    tmp = f"{final}.{os.getpid()}.tmp"  # per writer: an orphaned task of a killed run cannot clash with a rerun
    pq.write_table(table, tmp, compression="zstd", filesystem=fs)
    fs.move(tmp, final)
    counts = Counter(label for labels in table.column("labels").to_pylist() for label in labels)
    return dict(
        shard=shard,
        pages=table.num_rows,
        seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
        skipped=False,
        counts=json.dumps(dict(counts)),
    )


def _write_batch(batch: dict, **kwargs) -> dict:
    cv2.setNumThreads(1)  # one page per core: OpenCV's own threads would only fight the other render tasks
    results = [write_shard(shard=int(s), **kwargs) for s in batch["shard"]]
    return {k: np.array([r[k] for r in results]) for k in results[0]}


def write_shards(
    out_dir: str,
    kind: str,
    n_pages: int,
    shard_size: int,
    seed: int,
    workers: int = 2,
    degrade: float = 0.0,
    rare: str = "none",
    augment=None,
):
    """Write every missing shard with Ray Data tasks; yields one small result dict per shard as it finishes."""
    import ray
    from ray.data import TaskPoolStrategy

    fs, root = filesystem(out_dir)
    fs.create_dir(root, recursive=True)
    for info in fs.get_file_info(pafs.FileSelector(root)):  # a killed run may leave a temp file, never a half shard
        if info.base_name.endswith(".tmp") and ".parquet." in info.base_name:
            fs.delete_file(info.path)
    done = {p.rsplit("/", 1)[-1] for p in finished_shards(out_dir, kind)[1]}
    n_shards = -(-n_pages // shard_size)
    todo = [s for s in range(n_shards) if shard_name(kind, s) not in done]
    if not todo:
        return
    ds = ray.data.from_items([{"shard": s} for s in todo], override_num_blocks=len(todo))
    ds = ds.map_batches(
        _write_batch,
        batch_size=1,
        num_cpus=1,
        compute=TaskPoolStrategy(size=workers),
        fn_kwargs=dict(
            out_dir=out_dir,
            kind=kind,
            n_pages=n_pages,
            shard_size=shard_size,
            seed=seed,
            degrade=degrade,
            rare=rare,
            augment=augment,
        ),
    )
    yield from ds.iter_rows()


def _render_batch(batch: dict, kind: str, seed: int, degrade: float, rare: str, augment) -> pa.Table:
    cv2.setNumThreads(1)
    table = rows_to_table(kind, [render_page(kind, seed, int(i), degrade, rare) for i in batch["id"]])
    return augment(table) if augment is not None else table


def page_dataset(
    kind: str,
    n_pages: int,
    seed: int = 0,
    degrade: float = 0.0,
    rare: str = "none",
    augment=None,
    workers: int = 2,
    pages_per_block: int = 8,
):
    """The same rows as the shards, as a streaming `ray.data.Dataset` (nothing written), e.g. for
    `iter_torch_batches` after a `map_batches` that decodes `image`."""
    import ray
    from ray.data import TaskPoolStrategy

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    ds = ray.data.range(n_pages, override_num_blocks=min(n_pages, max(workers, -(-n_pages // pages_per_block))))
    return ds.map_batches(
        _render_batch,
        batch_size=pages_per_block,
        batch_format="numpy",
        num_cpus=1,
        compute=TaskPoolStrategy(size=workers),
        fn_kwargs=dict(kind=kind, seed=seed, degrade=degrade, rare=rare, augment=augment),
    )
