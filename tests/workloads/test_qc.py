"""workloads.qc: synthetic tubes, an augmentation that never turns the tube by 90 degrees, the defect CNN
learns under every remedy, saliency looks at the defect, FGSM raises the entropy score, and the CLI runs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from workloads.qc import data, models
from workloads.qc.augment import Policy


def _orientation(img: np.ndarray) -> float:
    """Dominant gradient orientation in degrees (structure tensor): ~90 for horizontal lines, ~0 for vertical."""
    gx, gy = cv2.Sobel(img, cv2.CV_64F, 1, 0), cv2.Sobel(img, cv2.CV_64F, 0, 1)
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    return abs(np.degrees(0.5 * np.arctan2(2 * jxy, jxx - jyy)))


def test_tubes_and_imbalance():
    images, labels, kinds = data.dataset(300, 3, seed=0)
    assert images.shape == (303, data.SIZE, data.SIZE) and images.dtype == np.float32
    assert labels.sum() == 3 and set(kinds[labels == 1]) <= set(data.DEFECTS)
    assert 0 <= images.min() and images.max() <= 1
    # the tube runs along the x axis: its structure is horizontal
    assert _orientation(images[0]) > 60


def test_augmentation_never_rotates_by_90_degrees():
    policy = Policy()
    rng = np.random.default_rng(0)
    img = np.full((data.SIZE, data.SIZE), 0.5, np.float32)
    img[30:33, 8:56] = 1.0  # an axial (horizontal) scratch
    for _ in range(300):
        params = policy.sample(rng)
        assert abs(params["angle"]) <= policy.max_angle < 45
        assert set(params) == {
            "angle",
            "flip_lr",
            "flip_ud",
            "shift",
            "brightness",
            "contrast",
            "noise",
            "noise_seed",
        }  # no transpose or rot90 among the operations
        out = policy.apply(img, params)
        assert out.shape == img.shape
        assert _orientation(out) > 90 - 2 * policy.max_angle, params  # still axial after augmentation
    with pytest.raises(ValueError, match="axial"):
        Policy(max_angle=90)


def test_cnn_learns_under_each_remedy():
    images, labels, _ = data.dataset(150, 150, seed=1)
    for remedy in ("none", "oversample_aug"):  # on balanced data class_weights equals none
        _, losses = models.fit(images, labels, remedy, steps=120, batch=16, lr=3e-3)
        assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:10]), remedy
    with pytest.raises(ValueError):
        models.fit(images, labels, "smote_features")


def test_recall_at_precision_and_smote():
    y = np.array([0] * 90 + [1] * 10)
    scores = np.r_[np.linspace(0, 0.5, 90), np.linspace(0.45, 1, 10)]
    # the lowest defect (0.45) sits among nine normals; the other nine defects are above every normal
    assert models.recall_at_precision(y, scores, 0.9) == pytest.approx(0.9)
    assert models.recall_at_precision(y, np.zeros(100), 0.9) == 0.0
    rng = np.random.default_rng(0)
    feats = np.r_[rng.normal(0, 1, (95, 4)), rng.normal(3, 1, (5, 4))]
    clf = models.fit_smote(feats, np.r_[np.zeros(95), np.ones(5)].astype(int))
    assert clf.predict_proba(np.full((1, 4), 3.0))[0, 1] > 0.5


def test_saliency_and_fgsm_entropy():
    images, labels, _ = data.dataset(40, 40, seed=2)
    model, _ = models.fit(images, labels, "none", steps=60, batch=16, lr=1e-2)
    sal = models.guided_backprop(model, images[:4])
    assert sal.shape == (4, data.SIZE, data.SIZE) and np.isclose(sal.max(), 1.0)
    adv = models.fgsm(model, images[:16], labels[:16], eps=0.03)
    assert np.abs(adv - images[:16]).max() <= 0.03 + 1e-6
    scale = models.feature_scale(model, images)
    e_clean, e_adv = models.spatial_entropy(model, images[:16], scale), models.spatial_entropy(model, adv, scale)
    assert e_adv.mean() > e_clean.mean()


def test_cli_smoke(ray_session, tmp_path):
    from workloads.qc.__main__ import main
    from workloads.registry import find_model

    assert main(["--smoke-test", "--out", str(tmp_path / "run"), "--registry", str(tmp_path / "reg")]) == 0
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["workload"] == "qc" and saved["status"] == "ok" and saved["config"]["normal"] == 800
    assert set(saved["recall_at_precision"]) == set(models.REMEDIES)
    assert 0 <= saved["adversarial"]["roc_auc"] <= 1 and "synthetic" in saved["data"]
    assert saved["registry"]["version"] == "v1" and saved["remedies"]["none"]["train_s"] > 0
    files, meta = find_model("qc", "tubes", root=str(tmp_path / "reg"))
    assert "weights.pt" in files and meta["remedy"] == "oversample_aug" and len(meta["entropy_scale"]) == 8
    assert (
        meta["command"] == f"python -m workloads.qc --out {tmp_path / 'run'} --smoke-test --registry "
        f"{tmp_path / 'reg'} --normal 800 --defects 8 --test-normal 1000 --test-defects 10 --steps 40 --adversarial 40"
    )
    for name in ("remedies.png", "saliency.png", "entropy.png", "losses.png"):
        assert (tmp_path / "run" / name).stat().st_size > 1000 and saved["outputs"][name].endswith(name)


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["--defects", "1"], "--defects"),
        (["--precision", "1"], "--precision"),
        (["--eps", "0"], "--eps"),
        (["--adversarial", "0"], "--adversarial"),
    ],
)
def test_cli_rejects_bad_flags(capsys, argv, flag):
    from workloads.qc.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and flag in capsys.readouterr().err
