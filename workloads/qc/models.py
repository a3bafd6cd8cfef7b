"""The QC defect classifier, the imbalance remedies, guided-backprop saliency and the FGSM/entropy detector.

Remedies compared (the minority is about 1 % of the training images):
- `none`: plain training, uniform batches (the baseline);
- `class_weights`: the BCE weighs defects by n_normal / n_defect;
- `oversample_aug`: half of every batch are defects, each a fresh augmentation (`augment.Policy`);
- `smote_features`: SMOTE (imbalanced-learn) on hand-crafted blob and line features, then logistic regression;
- `synthesis`: more defect images from the generator (like GAN synthesis, but from the same generator as the
  test defects, so it is optimistic).
They are compared by minority recall at precision 0.9.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from workloads.qc.augment import Policy

REMEDIES = ("none", "class_weights", "oversample_aug", "smote_features", "synthesis")
TASK, NAME, SERVED_REMEDY = "qc", "tubes", "oversample_aug"  # the registry model and the remedy it holds


class DefectCNN(nn.Module):
    """Gray SIZE-px tube image -> defect logit; a fixed high-pass first, global max pooling because defects are
    small and local (without the high-pass the net needed ~5x more steps to find them at all)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())  # the entropy detector reads this
        self.body = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4 * width, 4 * width, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * width, 1)

    @staticmethod
    def highpass(x):
        """Subtract the local 5x5 mean: the smooth tube and its lighting drop out, small defects stay."""
        return 10 * (x - nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False))

    def response(self, x):
        """The first layer's feature maps (what the entropy detector reads)."""
        return self.stem(self.highpass(x))

    def pooled(self, x):
        return self.body(self.response(x)).amax((2, 3))

    def forward(self, x):
        return self.head(self.pooled(x)).squeeze(1)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images, np.float32))[:, None]


def fit(
    images: np.ndarray,
    labels: np.ndarray,
    remedy: str = "none",
    steps: int = 400,
    batch: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    policy: Policy | None = None,
):
    """Train a DefectCNN with one of the CNN remedies; returns (model, per-step losses)."""
    if remedy not in ("none", "class_weights", "oversample_aug", "synthesis"):
        raise ValueError(f"unknown CNN remedy {remedy!r}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = policy or Policy()
    model = DefectCNN()
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    weight = torch.tensor(len(neg) / max(len(pos), 1) if remedy == "class_weights" else 1.0)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.2)
    losses = []
    model.train()
    for _ in range(steps):
        if remedy == "oversample_aug":
            idx = np.concatenate([rng.choice(pos, batch // 2), rng.choice(neg, batch - batch // 2)])
        else:
            idx = rng.integers(0, len(labels), batch)
        x = np.stack([policy(rng, images[i]) for i in idx])
        loss = loss_fn(model(to_tensor(x)), torch.from_numpy(labels[idx].astype(np.float32)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


@torch.no_grad()
def predict(model: DefectCNN, images: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate(
        [torch.sigmoid(model(to_tensor(images[i : i + batch]))).numpy() for i in range(0, len(images), batch)]
    )


def handcrafted_features(images: np.ndarray) -> np.ndarray:
    """Blob and line detector responses (LoG at two scales, thin horizontal and vertical lines) of the high-passed
    image: per filter the strongest response, the mean of the top 5 and of the top 20, plus the overall spread."""
    import cv2

    kernels = [cv2.getDerivKernels(2, 0, 5), cv2.getDerivKernels(0, 2, 5)]
    out = []
    for img in images:
        hp = img - cv2.blur(img, (5, 5))
        resp = [cv2.GaussianBlur(hp, (0, 0), s) for s in (0.8, 1.6)]
        resp += [cv2.sepFilter2D(hp, cv2.CV_32F, kx, ky) for kx, ky in kernels]
        feats = []
        for r in resp:
            top = np.sort(np.abs(r[4:-4, 4:-4]).ravel())[::-1]
            feats += [top[0], top[:5].mean(), top[:20].mean()]
        out.append(feats + [hp.std()])
    return np.asarray(out, np.float32)


def fit_smote(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    """SMOTE on features, then a scaled logistic regression (an imbalanced-learn pipeline)."""
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    k = max(1, min(5, int(labels.sum()) - 1))
    return make_pipeline(
        StandardScaler(), SMOTE(k_neighbors=k, random_state=seed), LogisticRegression(max_iter=2000, C=0.5)
    ).fit(features, labels)


def recall_at_precision(labels: np.ndarray, scores: np.ndarray, precision: float = 0.9) -> float:
    """The largest minority recall whose operating point reaches at least `precision` (0 if none does)."""
    from sklearn.metrics import precision_recall_curve

    p, r, _ = precision_recall_curve(labels, scores)
    ok = p >= precision
    return float(r[ok].max()) if ok.any() else 0.0


def threshold_at_precision(labels: np.ndarray, scores: np.ndarray, precision: float = 0.9) -> float:
    """The loosest (lowest) score threshold whose precision on (labels, scores) reaches `precision`; 0.5 if none.
    Call it on a validation split: on the test split it would make the reported precision a chosen one."""
    from sklearn.metrics import precision_recall_curve

    p, _, thresholds = precision_recall_curve(labels, scores)
    ok = np.flatnonzero(p[:-1] >= precision)
    return float(thresholds[ok[0]]) if len(ok) else 0.5


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Precision, recall and counts of the verdict `score >= threshold`."""
    pred = scores >= threshold
    tp, fp = int(np.sum(pred & (labels == 1))), int(np.sum(pred & (labels == 0)))
    return dict(
        precision=tp / max(tp + fp, 1),
        recall=tp / max(int(labels.sum()), 1),
        flagged=int(pred.sum()),
        defects=int(labels.sum()),
        images=len(labels),
    )


# ------------------------------------------------------------------------------------------------ saliency
class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward pass lets only positive gradients through positive inputs (Springenberg et al.)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0) * (grad > 0)


class _Guided(nn.Module):
    def forward(self, x):
        return _GuidedReLU.apply(x)


def guided_backprop(model: DefectCNN, images: np.ndarray) -> np.ndarray:
    """|d defect logit / d pixel| with guided ReLUs, per image normalised to [0, 1]: where the model looks."""
    import copy

    guided = copy.deepcopy(model).eval()
    for parent in guided.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, _Guided())
    x = to_tensor(images).requires_grad_(True)
    guided(x).sum().backward()
    sal = x.grad.abs()[:, 0].numpy()
    return sal / (sal.reshape(len(sal), -1).max(1)[:, None, None] + 1e-12)


# ------------------------------------------------------------------------------------------------ adversarial
def loss_grad(model: DefectCNN, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d BCE(true label) / d pixel for each image, (n, SIZE, SIZE)."""
    x = to_tensor(images).requires_grad_(True)
    loss = nn.functional.binary_cross_entropy_with_logits(model(x), torch.from_numpy(labels.astype(np.float32)))
    loss.backward()
    return x.grad[:, 0].numpy()


def fgsm(model: DefectCNN, images: np.ndarray, labels: np.ndarray, eps) -> np.ndarray:
    """Fast gradient sign attack: one step of size eps (a number or one per image) that increases the loss of the
    true label."""
    eps = np.broadcast_to(np.asarray(eps, np.float32), (len(images),))[:, None, None]
    return np.clip(images + eps * np.sign(loss_grad(model, images, labels)), 0, 1).astype(np.float32)


@torch.no_grad()
def feature_scale(model: DefectCNN, images: np.ndarray) -> list[float]:
    """Per-channel 99.5th percentile of the first layer's response on clean images (fixes the quantisation)."""
    return np.percentile(model.response(to_tensor(images)).numpy(), 99.5, axis=(0, 2, 3)).tolist()


@torch.no_grad()
def spatial_entropy(model: DefectCNN, images: np.ndarray, scale: list[float], radius: int = 2) -> np.ndarray:
    """Mean local spatial entropy of the first layer's feature maps (Amirian et al. 2018), one score per image.

    Each map is quantised to 32 levels over the clean range `scale` and the entropy of its values in a disk
    around every pixel is averaged; the fine sign pattern of an FGSM step makes the responses locally disordered.
    """
    from skimage.filters.rank import entropy
    from skimage.morphology import disk

    maps = model.response(to_tensor(images)).numpy()
    s = np.asarray(scale, np.float32)[:, None, None] + 1e-6
    fp = disk(radius)
    return np.asarray(
        [np.mean([entropy(ch, fp).mean() for ch in np.clip(m / s * 31, 0, 31).astype(np.uint8)]) for m in maps],
        np.float32,
    )


def saliency_overlay(image: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """BGR uint8: the gray image beside its saliency as a heat map over it."""
    import cv2

    gray = cv2.cvtColor((image * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    heat = cv2.applyColorMap((np.sqrt(saliency) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return np.concatenate([gray, cv2.addWeighted(gray, 0.5, heat, 0.5, 0)], 1)
