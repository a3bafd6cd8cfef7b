"""workloads.pages: labels match pixels, shards are deterministic and resumable, patches and the aligner work."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workloads.pages import degrade, news
from workloads.pages.augment import PATCH_H, PATCH_W, MarginPatches, PatchBank, batches_until_all_seen
from workloads.pages.schema import classes, decode_png, mask_to_rle, rle_to_mask, rows_to_table
from workloads.pages.synthesis import page_dataset, render_clean, render_page, write_shards

ROOT = Path(__file__).resolve().parents[2]


def _check_row(row: dict, ink_below: int) -> None:
    """Boxes inside the image, non-empty, covering ink; labels from the class list; one label per box."""
    img = decode_png(row["image"])
    h, w = img.shape
    assert (row["width"], row["height"]) == (w, h)
    assert len(row["boxes"]) == len(row["labels"]) > 10
    assert set(row["labels"]) <= set(classes(row["kind"]))
    for (x0, y0, x1, y1), label in zip(row["boxes"], row["labels"]):
        assert 0 <= x0 < x1 <= w - 1 and 0 <= y0 < y1 <= h - 1, (label, x0, y0, x1, y1)
        crop = img[int(y0) : int(np.ceil(y1)) + 1, int(x0) : int(np.ceil(x1)) + 1]
        assert crop.min() < ink_below, f"{label} box {x0, y0, x1, y1} covers no ink"


@pytest.mark.parametrize("index", [0, 1])
def test_music_boxes_inside_image_cover_ink_and_use_the_class_list(index):
    row = render_page("music", seed=3, index=index)
    _check_row(row, ink_below=160)
    assert len(row["staves"]) >= 4 and all(len(s) == 7 for s in row["staves"])
    assert {"stem", "staff", "barline"} <= set(row["labels"])
    assert any(label.startswith("notehead") for label in row["labels"])


def test_degraded_pages_keep_boxes_on_ink_and_record_the_homography():
    row = render_page("music", seed=3, index=0, degrade=1.0)
    assert row["degraded"] and not np.allclose(np.reshape(row["homography"], (3, 3)), np.eye(3))
    _check_row(row, ink_below=170)


@pytest.mark.parametrize("page_type", ["article", "classifieds", "tv_programme", "share_prices", "sports_results"])
def test_news_pages_boxes_mask_and_page_types(page_type):
    page = news.render(np.random.default_rng(5), page_type=page_type)
    row = dict(
        kind="news",
        width=news.WIDTH,
        height=news.HEIGHT,
        boxes=page["boxes"],
        labels=page["labels"],
        image=cv2.imencode(".png", page["image"])[1].tobytes(),
    )
    _check_row(row, ink_below=130)
    mask = rle_to_mask(mask_to_rle(page["mask"]), news.HEIGHT, news.WIDTH)
    assert (mask == page["mask"]).all()
    if page_type == "article":
        ids = set(np.unique(mask)) - {0}
        assert len(ids) >= 3 and ids == {a for a in page["article_of"] if a}
        for (x0, y0, x1, y1), art in zip(page["boxes"], page["article_of"]):
            if art:  # a box of article a lies on pixels of article a
                cy, cx = int((y0 + y1) / 2), int((x0 + x1) / 2)
                assert mask[cy, cx] == art
    else:
        assert not mask.any() and "headline" in page["labels"]


def test_same_seed_gives_identical_shards_and_the_dataset_gives_the_same_rows(ray_session, tmp_path):
    tables = []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        out = tmp_path / name
        out.mkdir()
        target = f"file://{out}" if name == "b" else str(out)  # a URI (pyarrow filesystem) gives the same shards
        results = list(write_shards(target, "music", n_pages=3, shard_size=2, seed=seed, workers=2, degrade=0.5))
        assert len(results) == 2
        files = sorted(glob.glob(str(out / "*")))
        assert [os.path.basename(f) for f in files] == ["music-00000.parquet", "music-00001.parquet"]
        tables.append(pa.concat_tables([pq.read_table(f) for f in files]))
    assert tables[0].equals(tables[1])
    assert not tables[0].column("image").equals(tables[2].column("image"))
    assert tables[0].column("page_id").to_pylist() == [f"music-11-{i:08d}" for i in range(3)]
    streamed = page_dataset("music", 3, seed=11, degrade=0.5, workers=2).take_all()
    assert sorted(streamed, key=lambda r: r["page_index"]) == tables[0].to_pylist()
    # plain pyarrow types only: no Ray tensor extension types, `image` the only binary column
    schema = tables[0].schema
    assert not any(isinstance(f.type, pa.ExtensionType) for f in schema)
    assert [f.name for f in schema if pa.types.is_binary(f.type)] == ["image"]
    assert [f.name for f in schema if "box" in f.name] == ["boxes"]


def test_a_killed_run_resumes_without_duplicate_or_missing_pages(ray_session, tmp_path):
    """SIGKILL a real `python -m workloads.pages` after its first shard, rerun it: the finished shards are kept
    (not rewritten), the rest are written, every page is there exactly once and no temp file is left."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "workloads.pages",
        "--kind",
        "news",
        "--pages",
        "10",
        "--shard-size",
        "2",
        "--workers",
        "1",
        "--out",
        str(out),
        "--sample",
        "0",
        "--align-pages",
        "0",
    ]
    env = dict(os.environ, RAY_ADDRESS=ray_session.get_runtime_context().gcs_address)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 120
        while not glob.glob(str(out / "*.parquet")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = sorted(glob.glob(str(out / "*.parquet")))
    assert 1 <= len(first) < 5, "the run should have been killed after its first shard"
    assert not (out / "summary.json").exists(), "the killed run should not have finished"
    for f in first:  # what a killed run leaves is readable
        assert pq.read_table(f).num_rows == 2
    kept = {f: os.stat(f).st_mtime_ns for f in first}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(out)) == sorted(
        ["run.json", "summary.json", "class_histogram.png"] + [f"news-{k:05d}.parquet" for k in range(5)]
    )  # no temp files
    ids = [
        pid
        for k in range(5)
        for pid in pq.read_table(out / f"news-{k:05d}.parquet", columns=["page_id"]).column("page_id").to_pylist()
    ]
    assert ids == [f"news-0-{i:08d}" for i in range(10)]
    assert {f: os.stat(f).st_mtime_ns for f in first} == kept, "finished shards must be skipped, not rewritten"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["workload"] == "pages" and summary["wall_s"] > 0
    assert (summary["shards_skipped"], summary["shards_written"]) == (len(first), 5 - len(first))


def _bank_and_page():
    rows = [render_page("music", seed=21, index=i, rare="compose") for i in range(2)]
    return PatchBank.from_rows(rows, per_class=3, seed=0), render_page("music", seed=22, index=0)


def test_margin_patches_paste_crops_with_their_boxes():
    bank, page = _bank_and_page()
    assert bank.patches.shape[1:] == (PATCH_H, PATCH_W) and len(bank.classes) > 30
    before = rows_to_table("music", [page])
    after = MarginPatches(bank, k=12, seed=0)(before).to_pylist()[0]
    n_old = len(page["boxes"])
    assert after["boxes"][:n_old] == before.to_pylist()[0]["boxes"]
    new_boxes = np.array(after["boxes"][n_old:])
    assert len(new_boxes) >= 12
    img = decode_png(after["image"])
    top = min(b[1] for b in page["boxes"])
    assert new_boxes[:, 3].max() < top  # patches stay in the empty margin
    pasted = 0
    for j in range(12):
        x, y = 4 + (j % 7) * (PATCH_W + 4), 4 + (j // 7) * (PATCH_H + 4)
        region = img[y : y + PATCH_H, x : x + PATCH_W]
        if y + PATCH_H > top:
            break
        match = [i for i in range(len(bank.patches)) if np.array_equal(bank.patches[i], region)]
        assert match, f"slot {j} holds no bank crop"
        i = match[0]
        expected = (np.asarray(bank.boxes[i]) + [x, y, x, y]).round(2)
        inside = new_boxes[
            (new_boxes[:, 0] >= x)
            & (new_boxes[:, 2] <= x + PATCH_W)
            & (new_boxes[:, 1] >= y)
            & (new_boxes[:, 3] <= y + PATCH_H)
        ]
        assert len(inside) == len(expected) and np.allclose(np.sort(inside, 0), np.sort(expected, 0), atol=0.01)
        pasted += 1
    assert pasted >= 7
    _check_row(after, ink_below=160)


def test_margin_patches_make_every_class_show_up_sooner():
    bank, page = _bank_and_page()
    target = bank.classes
    plain = [[page["labels"]]] * 5
    patched = []
    for i in range(40):
        row = rows_to_table("music", [dict(page, page_index=i)])
        patched.append([MarginPatches(bank, k=12, seed=1)(row).column("labels").to_pylist()[0]])
    assert batches_until_all_seen(plain, target) is None
    assert batches_until_all_seen(patched, target) is not None


@pytest.mark.parametrize("kind", ["music", "news"])
def test_aligner_recovers_a_known_homography_within_2_px(kind):
    clean = render_clean(kind, seed=4, index=0)["image"]
    h, w = clean.shape
    known = np.array([[0.98, 0.03, 12.0], [-0.02, 1.01, -9.0], [1.5e-5, -1e-5, 1.0]])
    warped = cv2.warpPerspective(clean, known, (w, h), borderValue=80)
    assert degrade.alignment_error(known, degrade.align(warped, clean), w, h) < 2.0
    photo, true_h = degrade.photograph(clean, np.random.default_rng(9))
    assert degrade.alignment_error(true_h, degrade.align(photo, clean), w, h) < 2.0


def test_cli_refuses_bad_flags_with_one_line():
    for args in (["--kind", "poems"], ["--pages", "0"], ["--no-such-flag"], ["--degrade", "2"]):
        done = subprocess.run(
            [sys.executable, "-m", "workloads.pages", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2 and done.stderr.startswith("error:") and done.stderr.count("\n") == 1
