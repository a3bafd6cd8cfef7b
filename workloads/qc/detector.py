"""Adversarial-input detection for the QC CNN: attacks against benign perturbations of the same size.

The question is not "was this image perturbed?" (any noisy camera perturbs it) but "was it perturbed *against the
classifier*?". So every evaluation puts attacks (FGSM, and PGD: 10 steps of eps/4 from a random start, both in
the L-inf ball of radius eps) against benign perturbations of matching size: random sign noise of the same
L-inf budget, and Gaussian noise, JPEG artefacts and blur each scaled to the L2 norm of that sign noise
(eps * sqrt(pixels)), besides clean images.

Detectors:
- `entropy` (the baseline, Amirian et al. 2018): the mean local spatial entropy of the first layer's feature
  maps (`models.spatial_entropy`). It measures high-frequency disorder, so it flags sign and Gaussian noise
  at least as readily as an attack (see workloads/qc/README.md).
- `feature_lr` (served): a logistic regression on statistics of the classifier itself: the 32 pooled
  features before the head, the logit, the logits after two squeezers (3x3 median, Gaussian blur 0.8 px) and
  their differences to it (feature squeezing, Xu et al. 2018), the log L1 norm of the input gradient and the
  entropy score. It is trained on attacks against benign perturbations at several budgets (4/255 ... 12/255) on
  images of its own seed, its threshold is set on a second seed (1 % false alarms over the benign sets), and it
  is measured on a third (the test split) and, by `workloads.qc.evaluate`, on seeds never used at all.
Its parameters are plain numbers in the model's metadata.json (`adversarial_detector`), loaded without pickle.
Limit: the attacks know the classifier but not the detector; an adaptive attack that also minimises the
detector's score is not evaluated.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from workloads.qc import data, models

ATTACKS = ("fgsm", "pgd")
BENIGN = ("clean", "sign", "gauss", "jpeg", "blur")  # negatives; every one but clean has the attacks' size
NOISE = BENIGN[1:]
TRAIN_EPS = (4 / 255, 6 / 255, 8 / 255, 10 / 255, 12 / 255)
FALSE_ALARMS = 0.01  # the served threshold: this share of benign (incl. clean) validation images is flagged


def pgd(model, x: np.ndarray, y: np.ndarray, eps, steps: int = 10, seed: int = 0) -> np.ndarray:
    """Projected gradient descent in the L-inf ball of radius eps: random start, `steps` steps of eps/4."""
    eps = np.broadcast_to(np.asarray(eps, np.float32), (len(x),))[:, None, None]
    rng = np.random.default_rng(seed)
    adv = np.clip(x + rng.uniform(-1, 1, x.shape).astype(np.float32) * eps, 0, 1).astype(np.float32)
    for _ in range(steps):
        step = adv + eps / 4 * np.sign(models.loss_grad(model, adv, y))
        adv = np.clip(np.clip(step, x - eps, x + eps), 0, 1).astype(np.float32)
    return adv


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    u8 = (img * 255).round().astype(np.uint8)
    enc = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
    return cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255


def benign(rng: np.random.Generator, x: np.ndarray, eps, kind: str) -> np.ndarray:
    """A benign perturbation of each image: `sign` has L-inf eps; `gauss`, `jpeg` and `blur` are scaled to the
    L2 norm of sign noise, eps * sqrt(pixels) (JPEG quality 10-60 and blur sigma 0.6-1.5 px drawn per image)."""
    eps = np.broadcast_to(np.asarray(eps, np.float32), (len(x),))[:, None, None]
    if kind == "clean":
        return x
    if kind == "sign":
        return np.clip(x + eps * rng.choice(np.float32([-1, 1]), x.shape), 0, 1).astype(np.float32)
    if kind == "gauss":
        r = rng.normal(0, 1, x.shape)
    elif kind == "jpeg":
        r = np.stack([_jpeg(im, int(rng.integers(10, 61))) - im for im in x])
    elif kind == "blur":
        r = np.stack([cv2.GaussianBlur(im, (0, 0), rng.uniform(0.6, 1.5)) - im for im in x])
    else:
        raise ValueError(f"unknown benign perturbation {kind!r}: one of {', '.join(BENIGN)}")
    norm = np.sqrt((r**2).sum((1, 2), keepdims=True)) + 1e-12
    return np.clip(x + r * eps * np.sqrt(x[0].size) / norm, 0, 1).astype(np.float32)


def perturbed(model, x: np.ndarray, y: np.ndarray, eps, seed: int) -> dict[str, np.ndarray]:
    """Every benign and adversarial version of the images `x` (labels `y`) at budget eps (one or per image)."""
    rng = np.random.default_rng(seed)
    out = {kind: benign(rng, x, eps, kind) for kind in BENIGN}
    out["fgsm"] = models.fgsm(model, x, y, eps)
    out["pgd"] = pgd(model, x, y, eps, seed=seed + 1)
    return out


@torch.no_grad()
def _logit(model, x: np.ndarray) -> np.ndarray:
    return model(models.to_tensor(x)).numpy()


def features(model, x: np.ndarray, scale: list[float]) -> np.ndarray:
    """(n, 40) statistics of the classifier on each image (see the module docstring)."""
    with torch.no_grad():
        pooled = model.pooled(models.to_tensor(x)).numpy()
    logit = _logit(model, x)
    median = _logit(model, np.stack([cv2.medianBlur((im * 255).round().astype(np.uint8), 3) for im in x]) / 255)
    blurred = _logit(model, np.stack([cv2.GaussianBlur(im, (0, 0), 0.8) for im in x]))
    t = models.to_tensor(x).requires_grad_(True)
    model(t).sum().backward()
    grad = np.log(t.grad[:, 0].abs().sum((1, 2)).numpy() + 1e-9)
    entropy = models.spatial_entropy(model, x, scale)
    return np.c_[pooled, logit, median, blurred, logit - median, logit - blurred, grad, entropy].astype(np.float64)


def _sets(model, x, y, eps, scale, seed) -> dict[str, np.ndarray]:
    return {k: features(model, v, scale) for k, v in perturbed(model, x, y, eps, seed).items()}


def score(detector: dict, feats: np.ndarray) -> np.ndarray:
    """The detector's probability that each image was attacked, from `features` rows."""
    z = (feats - np.asarray(detector["mean"])) / np.asarray(detector["scale"])
    return 1 / (1 + np.exp(-(z @ np.asarray(detector["coef"]) + detector["intercept"])))


def adversarial_score(model, images: np.ndarray, meta: dict) -> np.ndarray:
    """The served adversarial score: this detector's when the bundle's metadata holds one
    (`adversarial_detector`), else the entropy baseline; /qc flags it above `meta["entropy_threshold"]`."""
    if "adversarial_detector" not in meta:
        return models.spatial_entropy(model, images, meta["entropy_scale"])
    return score(meta["adversarial_detector"], features(model, images, meta["entropy_scale"]))


def fit(model, train: tuple, val: tuple, scale: list[float], seed: int) -> dict:
    """Train the feature detector on `train` = (images, labels) perturbed at TRAIN_EPS and set its threshold to
    FALSE_ALARMS on the benign versions of `val` at 8/255; returns its JSON-able parameters."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = train
    eps = np.random.default_rng(seed).choice(TRAIN_EPS, len(x))
    sets = _sets(model, x, y, eps, scale, seed)
    feats = np.concatenate([sets[k] for k in BENIGN + ATTACKS])
    target = np.concatenate([np.full(len(sets[k]), k in ATTACKS) for k in BENIGN + ATTACKS])
    scaler = StandardScaler().fit(feats)
    lr = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(feats), target)
    detector = dict(
        kind="feature_lr",
        mean=scaler.mean_.tolist(),
        scale=scaler.scale_.tolist(),
        coef=lr.coef_[0].tolist(),
        intercept=float(lr.intercept_[0]),
        train_eps=list(TRAIN_EPS),
        train_images=len(x),
    )
    val_sets = _sets(model, *val, 8 / 255, scale, seed + 1)
    benign_scores = np.concatenate([score(detector, val_sets[k]) for k in BENIGN])
    detector["threshold"] = float(np.quantile(benign_scores, 1 - FALSE_ALARMS))
    detector["threshold_rule"] = f"{FALSE_ALARMS:.0%} false alarms over the benign sets of a validation seed at 8/255"
    return detector


def _auc(neg: np.ndarray, pos: np.ndarray) -> float:
    return float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))


def _table(scores: dict[str, np.ndarray]) -> dict:
    """ROC AUC of each attack against each negative and against all same-size noise together."""
    return {
        a: {
            **{b: _auc(scores[b], scores[a]) for b in BENIGN},
            "all_noise": _auc(np.concatenate([scores[b] for b in NOISE]), scores[a]),
        }
        for a in ATTACKS
    }


def evaluate(
    model,
    detector: dict,
    x: np.ndarray,
    y: np.ndarray,
    scale: list[float],
    eps: float,
    seed: int,
    entropy_threshold: float,
) -> dict:
    """Both detectors on images `x` perturbed every way at `eps`: ROC AUC tables, the worst attack-vs-noise AUC,
    and at the served thresholds the share of each set flagged."""
    images = perturbed(model, x, y, eps, seed)
    sets = {k: features(model, v, scale) for k, v in images.items()}
    new = {k: score(detector, f) for k, f in sets.items()}
    base = {k: f[:, -1] for k, f in sets.items()}  # the entropy score is the last feature
    out = {}
    for name, scores, thr in (("feature_lr", new, detector["threshold"]), ("entropy", base, entropy_threshold)):
        table = _table(scores)
        out[name] = dict(
            roc_auc=table,
            worst_auc_vs_noise=min(table[a][b] for a in ATTACKS for b in NOISE),
            flagged_at_threshold={k: float(np.mean(s > thr)) for k, s in scores.items()},
            threshold=float(thr),
        )
    accuracy = {k: float(np.mean((_logit(model, v) >= 0) == (y == 1))) for k, v in images.items()}
    return dict(eps=eps, images=len(x), defective=int(y.sum()), seed=seed, detectors=out, accuracy_at_0_5=accuracy)


def sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n fresh tube images of seed `seed`, a quarter of them defective (the detectors' image mix)."""
    images, labels, _ = data.dataset(n - n // 4, n // 4, seed)
    return images, labels
