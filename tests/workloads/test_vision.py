"""workloads.vision: the models learn, the registry round-trips safely, images are decoded defensively, and
the Ray Train job runs end to end."""

from __future__ import annotations

import datetime
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from workloads import images, registry
from workloads.images import ImageError
from workloads.pages.schema import classes, decode_png, rle_to_mask
from workloads.pages.synthesis import render_page
from workloads.registry import RegistryError
from workloads.vision import dwd, news
from workloads.vision.train import crop

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def music_pages():
    return [render_page("music", 3, i) for i in range(2)]


@pytest.fixture(scope="module")
def news_pages():
    return [render_page("news", 5, i) for i in range(6)]


def _fit(build, batch_fn, steps=15):
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = batch_fn(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_dwd_loss_falls_and_schedule(music_pages):
    names = classes("music")
    idx = {c: i for i, c in enumerate(names)}
    rng = np.random.default_rng(0)
    crops = []
    for row in music_pages:
        img = decode_png(row["image"])
        page = dict(image=img, **dwd.targets(row["boxes"], [idx[x] for x in row["labels"]], *img.shape))
        crops += [crop(rng, page, 96) for _ in range(2)]
    x = torch.from_numpy(1 - np.stack([c["image"] for c in crops])[:, None].astype(np.float32) / 255)
    t = [
        torch.from_numpy(np.stack([c[k] for c in crops]).astype(dt))
        for k, dt in (("cls", np.int64), ("energy", np.int64), ("size", np.float32))
    ]
    staged = dwd.StagedLoss(100)
    assert [staged.stage(s) for s in (0, 20, 35, 45, 60)] == ["cls", "energy", "box", "energy", "all"]
    losses = _fit(lambda: dwd.build_model(len(names)), lambda m: sum(dwd.losses(m(x), *t).values()))
    assert np.mean(losses[-3:]) < 0.7 * losses[0]


def test_rest_weight_and_class_weights():
    """A single-head stage keeps the other heads at the rest weight; rare classes weigh more in the class loss."""
    parts = {"cls": torch.tensor(2.0), "energy": torch.tensor(1.0), "box": torch.tensor(4.0)}
    assert float(dwd.StagedLoss(10)(0, parts)) == 2.0  # the paper's strict schedule: the class loss alone
    assert float(dwd.StagedLoss(10, rest_weight=0.5)(0, parts)) == pytest.approx(1.0 + 0.5 + 0.5)  # normalised
    names = classes("music")
    w = dwd.class_weights({"stem": 4000, "staff": 400, "clefG": 100, "tie": 25}, names, 0.5)
    assert len(w) == len(names) + 1 and w[0] == 1.0
    weight = dict(zip(["background"] + names, w))
    assert weight["tie"] > weight["clefG"] > weight["staff"] > weight["stem"] and weight["stem"] >= 1 / 8
    out = {
        "cls": torch.zeros(1, len(names) + 1, 4, 4),
        "energy": torch.zeros(1, dwd.ENERGY_LEVELS, 4, 4),
        "box": torch.zeros(1, 2, 4, 4),
    }
    target = torch.full((1, 4, 4), names.index("tie") + 1)
    energy, size = torch.ones(1, 4, 4, dtype=torch.long), torch.zeros(1, 2, 4, 4)
    plain = dwd.losses(out, target, energy, size)["cls"]
    assert float(dwd.losses(out, target, energy, size, torch.tensor(w))["cls"]) == pytest.approx(
        float(plain) * weight["tie"]
    )


def test_symbol_crops_balance_classes(music_pages):
    """Crops centred on a uniformly drawn class show the page's rarest class far more often than uniform crops."""
    names = classes("music")
    row = music_pages[0]
    img = decode_png(row["image"])
    page = dict(image=img, **dwd.targets(row["boxes"], [names.index(x) for x in row["labels"]], *img.shape))
    ids, counts = np.unique(page["cls"][page["cls"] > 0], return_counts=True)
    rarest = ids[np.argmin(counts)]

    def share(on_symbol):
        rng = np.random.default_rng(0)
        return np.mean([(crop(rng, page, 128, on_symbol)["cls"] == rarest).any() for _ in range(300)])

    assert share(1.0) > 2 * share(0.0)
    assert share(1.0) >= 0.5 / len(ids)  # drawn uniformly among the page's classes, plus neighbours' crops


def test_dwd_decodes_its_own_targets(music_pages):
    """Detections read off perfect maps find most symbols: the decoding matches the target encoding."""
    from workloads.vision.metrics import coco_map

    names = classes("music")
    row = music_pages[0]
    img = decode_png(row["image"])
    t = dwd.targets(row["boxes"], [names.index(x) for x in row["labels"]], *img.shape)
    onehot = lambda a, n: torch.nn.functional.one_hot(torch.from_numpy(a.astype(np.int64)), n).permute(2, 0, 1)[None]  # noqa: E731
    out = dict(
        cls=onehot(t["cls"], len(names) + 1).float() * 10,
        energy=onehot(t["energy"], dwd.ENERGY_LEVELS).float() * 10,
        box=torch.from_numpy(t["size"].astype(np.float32))[None],
    )
    dets = dwd.decode(out, names, [img.shape])
    result = coco_map([row["boxes"]], [row["labels"]], dets, names)
    assert result["map50"] > 0.8
    assert result["per_class"]["noteheadBlackInSpace"] > 0.9 if "noteheadBlackInSpace" in result["per_class"] else True


def test_segmenter_loss_falls_and_preclassifier(news_pages):
    rng = np.random.default_rng(0)
    crops = []
    for row in news_pages:
        if row["is_article"]:
            img = news.prepare(decode_png(row["image"]))
            seg = news.seg_target(rle_to_mask(row["mask_rle"], row["height"], row["width"]), img.shape)
            crops += [crop(rng, dict(image=img, seg=seg), 96)]
    assert crops, "the fixture pages hold article pages"
    x = torch.from_numpy(1 - np.stack([c["image"] for c in crops])[:, None].astype(np.float32) / 255)
    y = torch.from_numpy(np.stack([c["seg"] for c in crops]))
    losses = _fit(news.build_model, lambda m: news.seg_loss(m(x), y))
    assert np.mean(losses[-3:]) < 0.7 * losses[0]
    feats = np.stack([news.page_features(decode_png(r["image"])) for r in news_pages])
    labels = np.array([r["is_article"] for r in news_pages])
    forest = news.preclassifier(0).fit(feats, labels)
    assert (forest.predict(feats) == labels).mean() == 1.0


def test_article_f1_counts_matches():
    from workloads.vision.metrics import article_f1

    gt = np.zeros((20, 20), np.int32)
    gt[:10], gt[10:] = 1, 2
    pred = np.zeros_like(gt)
    pred[:9] = 5  # IoU 0.9 with article 1; article 2 missed
    r = article_f1([gt], [pred])
    assert (r["matched"], r["articles"], r["predicted"]) == (1, 2, 1)
    assert r["f1"] == pytest.approx(2 / 3)


def test_registry_round_trip_and_names(tmp_path):
    model = news.build_model()
    files = {"weights.pt": registry.torch_bytes(model.state_dict())}
    assert registry.save_model(str(tmp_path), "news", "daily_ledger", files, dict(metrics={"f1": 0.5})) == "v1"
    assert registry.save_model(f"file://{tmp_path}", "news", "daily_ledger", files, {}) == "v2"
    loaded, meta = registry.load_model(str(tmp_path), "news", "daily_ledger")
    assert meta["version"] == "v2" and meta["code_version"] and meta["files"] == ["weights.pt"]
    again = news.load_segmenter(loaded, meta)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert registry.load_model(str(tmp_path), "news", "daily_ledger", "v1")[1]["metrics"] == {"f1": 0.5}
    assert registry.list_models(str(tmp_path), "news") == ["daily_ledger"]
    for bad in ("../../etc", "a/b", "..", "", "X" * 70, "Upper"):
        with pytest.raises(RegistryError):
            registry.load_model(str(tmp_path), "news", bad)
    with pytest.raises(RegistryError):
        registry.resolve(str(tmp_path), "news", "daily_ledger", "../v1")
    with pytest.raises(RegistryError, match="no model"):
        registry.load_model(str(tmp_path), "news", "unknown")


def test_unsafe_weights_refused(tmp_path):
    """weights_only loading: a pickled object that is not a tensor container is refused."""
    buf = io.BytesIO()
    torch.save({"x": torch.zeros(1), "evil": datetime.date(2020, 1, 1)}, buf)  # any non-tensor global
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        registry.torch_state(buf.getvalue())


def test_decode_image_hardening():
    import cv2
    from PIL import Image

    png = cv2.imencode(".png", np.full((30, 40), 200, np.uint8))[1].tobytes()
    assert images.decode_image(png).shape == (30, 40)
    jpg = cv2.imencode(".jpg", np.full((30, 40), 200, np.uint8))[1].tobytes()
    assert images.decode_image(jpg).shape == (30, 40)
    cases = {b"": 400, b"hello, not an image": 415, png[: len(png) // 2]: 400, jpg[:60]: 400}
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")  # 400 MP, a few KB: a decompression bomb
    cases[buf.getvalue()] = 413
    for data, status in cases.items():
        with pytest.raises(ImageError) as err:
            images.decode_image(data)
        assert err.value.status == status, (data[:20], err.value)


def _quadratic_row_autocorrelation(gray: np.ndarray) -> np.ndarray:
    """The line-spacing autocorrelation as page_features computed it before (np.correlate: O(rows^2))."""
    rows = (gray < 128).astype(np.uint8).mean(1)
    ac = np.correlate(rows - rows.mean(), rows - rows.mean(), "full")[len(rows) - 1 :][:40]
    return ac / (ac[0] + 1e-9)


def test_page_features_linear_and_unchanged():
    """The features of generated pages, and the committed pre-classifier's verdicts on them, are those of the
    quadratic formula; a page of 200,000 rows costs well under a second; tiny and 1-px pages do not crash."""
    from workloads.registry import BUILTIN_REGISTRY, find_model

    gray = [decode_png(render_page("news", seed, i)["image"]) for seed in (3, 11) for i in range(6)]
    for g in gray:
        rows = (g < 128).astype(np.uint8).mean(1)
        np.testing.assert_allclose(news.row_autocorrelation(rows, 40), _quadratic_row_autocorrelation(g), atol=1e-9)
    feats = np.stack([news.page_features(g) for g in gray])
    ref = feats.copy()
    for k, g in enumerate(gray):
        ac = _quadratic_row_autocorrelation(g)
        ref[k, 6:8] = ac[5:40].max(), float(np.argmax(ac[5:40]))
    np.testing.assert_allclose(feats, ref, atol=1e-6)
    found = find_model("news", "preclassifier", "latest", BUILTIN_REGISTRY)
    if found:
        forest = news.load_preclassifier(*found)
        assert (forest.predict(feats) == forest.predict(ref)).all()
    tall = np.full((200_000, 2), 255, np.uint8)
    tall[::9] = 0
    start = time.perf_counter()
    news.page_features(tall)
    assert time.perf_counter() - start < 2.0
    for shape in [(5, 300), (1, 1), (3, 1), (1, 300), (400, 1)]:
        page = np.full(shape, 255, np.uint8)
        assert news.page_features(page).shape == feats.shape[1:]
        assert min(news.prepare(page).shape) >= 1


def test_cli_refuses_bad_flags(capsys):
    from workloads.vision.__main__ import main

    for argv in (["--task", "faces"], ["--name", "../x"], ["--crop", "100"], ["--bogus", "1"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err


def test_smoke_job_trains_and_publishes(ray_session, tmp_path):
    """The Ray Train job end to end: pages stream in, the loss falls, a registry version appears."""
    from workloads.vision.__main__ import main

    main(
        [
            "--task",
            "omr",
            "--smoke-test",
            "--steps",
            "16",
            "--registry",
            str(tmp_path / "reg"),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["wall_s"] > 0 and summary["steps"] == 12  # smoke() caps --steps
    assert "map50" in summary["eval"]["clean"] and 0.0 <= summary["map50_clean"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints" / "omr").glob("step-*.pt")) == [
        "step-00000008.pt",
        "step-00000012.pt",
    ]  # every 4 steps at smoke size, the last two kept
    files, meta = registry.load_model(str(tmp_path / "reg"), "omr", "dwd")
    assert meta["command"].startswith("python -m workloads.vision") and "weights.pt" in files
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0


def test_evaluate_a_published_detector(ray_session, tmp_path, capsys):
    """`python -m workloads.vision.evaluate` re-measures a registry model; bad names exit 2 with one line."""
    from workloads.vision.evaluate import main

    reg = tmp_path / "reg"
    meta = dict(classes=classes("music"), train_class_counts={"staff": 50, "clefG": 2})
    weights = registry.torch_bytes(dwd.build_model(len(meta["classes"])).state_dict())
    registry.save_model(str(reg), "omr", "dwd", {"weights.pt": weights}, meta)
    assert (
        main(
            [
                "--registry",
                str(reg),
                "--eval-pages",
                "1",
                "--json",
                str(tmp_path / "eval.json"),
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "eval.json").read_text())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["workload"] == "vision.evaluate" and summary["map50_clean"] == result["map50_clean"]
    assert set(result["eval"]) == {"clean", "degraded"} and result["model"]["version"] == "v1"
    assert 0.0 <= result["map50_clean"] <= 1.0 and result["eval"]["clean"]["gt"]["staff"] > 0
    assert result["rare_classes"]  # from the training counts in the metadata
    with pytest.raises(SystemExit) as exc:
        main(["--registry", str(reg), "--name", "../../etc"])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error:")


def test_evaluate_news_models(ray_session, tmp_path, capsys):
    """`evaluate --task news` re-measures the published newspaper models (here the builtin ones, which an empty
    registry falls back to) on fresh pages: pre-classifier and stump accuracy, article F1, per publisher."""
    from workloads.vision.evaluate import main

    out = tmp_path / "news.json"
    argv = ["--task", "news", "--registry", str(tmp_path / "empty"), "--eval-pages", "4", "--seed", "11"]
    argv += ["--degrade", "0.5", "--stump-pages", "8", "--json", str(out), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["status"] == "ok" and result["task"] == "news" and result["eval_pages"] == 4
    for key in ("preclassifier_accuracy", "stump_accuracy", "article_f1", "pipeline_f1"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["preclassifier_accuracy"] >= 0.75 and result["article_f1"] >= 0.3  # trained models, not noise
    assert 0 < result["degraded_pages"] < 4 and result["article"]["articles"] > 0
    assert sum(p["pages"] for p in result["publishers"].values()) == 4
    for pub in result["publishers"].values():
        assert 0.0 <= pub["preclassifier_accuracy"] <= 1.0 and 0.0 <= pub["stump_accuracy"] <= 1.0
    stump = result["stump"]
    assert stump["feature_name"] in news.FEATURE_NAMES and stump["article_if"] in ("<=", ">")
    assert stump["trained_on"] == dict(stump["trained_on"], pages=8, seed=0, degrade=0.3, same_as_training=True)
    assert result["model"]["preclassifier"]["version"] == "v1" and not result["warnings"]
    assert (tmp_path / "run" / "articles.png").stat().st_size > 0
    assert len(news.FEATURE_NAMES) == len(news.page_features(np.full((64, 64), 255, np.uint8)))
    capsys.readouterr()  # the run's own output
    for bad, flag in ((["--degrade", "1.5"], "--degrade"), (["--name", "dwd2"], "--name")):
        with pytest.raises(SystemExit) as exc:
            main(["--task", "news", *bad])
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and err.startswith("error:") and flag in err and "\n" not in err


def test_news_stump_plan_falls_back_to_another_seed():
    """Training pages the metadata cannot regenerate (shards, corrections) give stump pages of a seed that is not
    the evaluated one, and say so."""
    from workloads.vision.evaluate import _stump_plan

    meta = json.loads((ROOT / "workloads/builtin/news/preclassifier/v1/metadata.json").read_text())
    assert _stump_plan(meta, 11, 0) == dict(_stump_plan(meta, 11, 0), pages=160, seed=0, same_as_training=True)
    for other in (dict(meta, training_data=dict(source="runs/pages/news")), dict(meta, command="x --corrections db")):
        plan = _stump_plan(other, 11, 0)
        assert plan["seed"] != 11 and not plan["same_as_training"] and "cannot be regenerated" in plan["how"]


def _log_steps(path) -> list[int]:
    from workloads.vision.train import read_log

    return [row["step"] for row in read_log(path)]


def test_a_killed_training_resumes_from_its_checkpoint(ray_session, tmp_path):
    """SIGKILL a real `python -m workloads.vision` after a checkpoint and a few more steps, rerun it with --resume:
    it continues from the checkpoint's step to the same --steps, and the loss log holds every step exactly once."""
    from workloads.vision.train import checkpoint_step, latest_checkpoint

    out, steps = tmp_path / "run", 40
    cmd = [
        sys.executable,
        "-m",
        "workloads.vision",
        "--task",
        "omr",
        "--pages",
        "4",
        "--eval-pages",
        "1",
        "--steps",
        str(steps),
        "--batch-size",
        "2",
        "--crops-per-page",
        "2",
        "--crop",
        "128",
        "--checkpoint-every",
        "5",
        "--no-publish",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    env = dict(os.environ, RAY_ADDRESS=ray_session.get_runtime_context().gcs_address)
    log, ckpts = out / "train_log" / "omr.jsonl", out / "checkpoints" / "omr"
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 150
        while time.time() < deadline and proc.poll() is None:
            latest = latest_checkpoint(ckpts) if ckpts.exists() else None
            if latest and len(_log_steps(log)) > checkpoint_step(latest) + 1:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    quiet_since, size = time.time(), -1  # the killed job's Train worker goes down with its driver: wait for it
    while time.time() - quiet_since < 2 and time.time() < deadline + 30:
        if log.stat().st_size != size:
            quiet_since, size = time.time(), log.stat().st_size
        time.sleep(0.2)
    resumed_at, before = checkpoint_step(latest_checkpoint(ckpts)), _log_steps(log)
    assert 0 < resumed_at < steps and max(before) > resumed_at, (resumed_at, before[-3:])
    assert not (out / "summary.json").exists(), "the killed run should not have finished"

    refused = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--resume" in refused.stderr  # no silent restart over the checkpoints

    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["steps"] == steps and summary["resumed_from"] == resumed_at
    assert _log_steps(log) == list(range(1, steps + 1))  # no step twice, none missing
    assert checkpoint_step(latest_checkpoint(ckpts)) == steps
