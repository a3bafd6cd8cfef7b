"""workloads.face: synthetic presentations, quality measures, ISO 30107-3 metrics, every model learns,
the fusion reads every expert, and the CLI runs end to end into a registry bundle the app can load."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from workloads.face import data, metrics, models, motion, quality, train


def _falls(losses, k=5):
    return np.mean(losses[-k:]) < 0.8 * np.mean(losses[:k])


@pytest.fixture(scope="module")
def small():
    """A few presentations per class, rendered once for the module."""
    return train.synth("train", train.plan(12, 3), seed=3)


def test_presentations(small):
    assert small["image"].shape == (24, data.CAPTURE, data.CAPTURE, 3) and small["image"].dtype == np.uint8
    assert small["motion"].shape == (24, data.FRAMES - 1, motion.DIM)
    assert sorted(set(small["label"])) == sorted(["live", *data.FAMILIES])
    again = train.synth("train", train.plan(12, 3), seed=3)
    assert np.array_equal(again["image"], small["image"])  # reproducible from the seed
    assert set(data.TRAIN_SCENES).isdisjoint(name for name, _, _ in data.TEST_SCENES)
    with pytest.raises(ValueError, match="unknown attack family"):
        data.medium(np.random.default_rng(0), np.zeros((data.SCENE, data.SCENE, 3), np.float32), "mask")


def test_held_out_family_is_test_only(small):
    """The held-out attack family is a medium of its own that no training, fusion or threshold data contains."""
    assert data.HELD_OUT_FAMILIES and set(data.HELD_OUT_FAMILIES).isdisjoint(data.FAMILIES)
    assert set(small["label"]).isdisjoint(data.HELD_OUT_FAMILIES)
    assert set(train.plan(4, 2)) == {None, *data.FAMILIES}  # the default plan (training, test) never holds it
    for split in ("train", "fusion"):
        with pytest.raises(ValueError, match="test split only"):
            train.synth(split, [None, *data.HELD_OUT_FAMILIES], seed=0)
    held = train.synth("test", list(data.HELD_OUT_FAMILIES) * 2, seed=0)
    assert set(held["label"]) == set(data.HELD_OUT_FAMILIES)
    world = data.scene(np.random.default_rng(0), data.sources("test")[0])
    photo = data.medium(np.random.default_rng(1), world, data.HELD_OUT_FAMILIES[0])
    assert photo.shape == world.shape and not np.allclose(photo, world)


def test_test_captures_never_upsample_the_source(monkeypatch):
    """Test presentations come from native-resolution pictures, each crop at least CAPTURE source pixels wide."""
    assert all(min(src.shape[:2]) >= data.CAPTURE for src in data.sources("test"))
    assert any(max(src.shape[:2]) <= 100 for src in data.sources("train"))  # training keeps its thumbnails
    sides = []
    real = data.crop_side

    def spy(rng, src, min_side=0):
        sides.append(real(rng, src, min_side))
        return sides[-1]

    monkeypatch.setattr(data, "crop_side", spy)
    train.synth("test", [None, "print_laser", *data.HELD_OUT_FAMILIES] * 3, seed=5)
    assert len(sides) == 9 and min(sides) >= data.CAPTURE


def test_quality_measures(small):
    assert len(quality.NAMES) >= 20
    img = small["image"][0]
    q = quality.measures(img)
    assert q.shape == (len(quality.NAMES),) and np.isfinite(q).all()
    blurred = quality.measures(cv2.GaussianBlur(img, (0, 0), 2.0))
    i = quality.NAMES.index("laplacian_variance")
    assert blurred[i] < q[i]
    limits = quality.guidance_limits(small["quality"][small["label"] == "live"])
    dark = quality.verdict(quality.measures((img * 0.1).astype(np.uint8)), limits)
    assert not dark["acceptable"] and any("dark" in g for g in dark["guidance"])


def test_iso_metrics():
    labels = np.array(["live"] * 4 + ["print"] * 2 + ["screen"] * 2)
    scores = np.array([0.1, 0.2, 0.7, 0.3, 0.9, 0.4, 0.8, 0.9])
    m = metrics.pad_metrics(scores, labels, 0.5)
    assert m["bpcer"] == 0.25 and m["apcer"] == {"print": 0.5, "screen": 0.0}
    assert m["acer"] == pytest.approx((0.5 + 0.25) / 2)
    assert m["acer_per_family"]["screen"] == pytest.approx(0.125)
    with pytest.raises(ValueError):
        metrics.pad_metrics(scores[4:], labels[4:], 0.5)


def test_patch_cnns_and_lstm_learn(small):
    y = train.spoof_labels(small)
    for scale in ("low", "high"):
        _, losses = models.fit_patch(small["image"], y, scale, steps=40, batch=8, lr=5e-3)
        assert _falls(losses), (scale, losses[:5], losses[-5:])
    _, losses = models.fit_motion(small["motion"], y, steps=60, batch=16, lr=1e-2)
    assert _falls(losses)


def test_orientation_and_embedding_learn():
    faces = data.faces_gray("train")[:8]
    ids, selfies = train.view_bank(faces, 2, "id", 0), train.view_bank(faces, 2, "selfie", 1)
    _, losses = models.fit_orientation(np.concatenate([ids, selfies], 1), steps=60, batch=16, lr=5e-3)
    assert _falls(losses)
    _, losses = models.fit_embedding(ids, selfies, steps=40, batch=8, lr=5e-3)
    assert _falls(losses)
    img = np.arange(12).reshape(3, 4)
    assert np.array_equal(models.upright(np.rot90(img, 1), 90), img)


def test_fusion_uses_every_expert():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    probs = {e: np.clip(y + rng.normal(0, 0.4, 200), 0, 1) for e in models.EXPERTS}
    tree = models.fit_fusion(probs, y)
    base = {e: np.array([0.3]) for e in models.EXPERTS}
    x0 = models.fusion_input(base)
    assert x0.shape == (1, tree.n_features_in_)
    for e in models.EXPERTS:
        changed = models.fusion_input(dict(base, **{e: np.array([0.9])}))
        assert not np.array_equal(changed, x0), f"changing {e} must change the tree's input"
    with pytest.raises(ValueError, match="every expert"):
        models.fusion_input({e: base[e] for e in models.EXPERTS[:-1]})


def test_cli_smoke_publishes_a_loadable_bundle(ray_session, tmp_path):
    from workloads.face.__main__ import main

    argv = [
        "--smoke-test",
        "--live",
        "32",
        "--per-family",
        "8",
        "--test-live",
        "16",
        "--test-per-family",
        "4",
        "--views",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--registry",
        str(tmp_path / "reg"),
    ]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["workload"] == "face" and saved["status"] == "ok" and saved["config"]["live"] == 32
    assert saved["config"]["steps"] == 40  # the smoke size
    assert 0 <= saved["in_distribution"]["ensemble"]["acer"] <= 1 and saved["render_s"] > 0
    assert set(saved["leave_one_family_out"]) == set(data.FAMILIES)
    assert saved["held_out_families"] == list(data.HELD_OUT_FAMILIES)
    assert set(saved["held_out_family"]["ensemble"]["apcer"]) == set(data.HELD_OUT_FAMILIES)
    assert 0 <= saved["acer_table"]["held out: " + ", ".join(data.HELD_OUT_FAMILIES)]["ensemble"] <= 100
    assert "synthetic" in saved["data"]
    for name in ("acer.png", "losses.png", "samples.png"):
        assert (tmp_path / "run" / name).stat().st_size > 1000 and saved["outputs"][name].endswith(name)
    bundle = train.load(str(tmp_path / "reg"))
    assert bundle.trained and bundle.meta["version"] == "v1" and bundle.limits
    assert 0 <= bundle.meta["metrics"]["acer_held_out_family"] <= 1
    assert saved["registry"]["version"] == "v1"
    command = bundle.meta["command"]
    assert command.startswith("python -m workloads.face --out ") and "--live 32" in command
    p = bundle.spoof("patch_high", [np.zeros((128, 128, 3), np.uint8)])
    assert p.shape == (1,) and 0 <= p[0] <= 1


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["--per-family", "2"], "--per-family"),
        (["--live", "7"], "--live"),
        (["--steps", "0"], "--steps"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_cli_rejects_bad_flags(capsys, argv, flag):
    from workloads.face.__main__ import FaceConfig, main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and flag in capsys.readouterr().err
    assert FaceConfig(ray=False).ray_options() is None and FaceConfig().ray_options() == {}
