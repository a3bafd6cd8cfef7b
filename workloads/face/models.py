"""The face-ID models (plain torch and scikit-learn), each small enough to train in seconds on a CPU.

- `PatchCNN`: real-vs-fake on fixed 32-px tiles of the unscaled capture; the "high" expert tiles the capture as it
  is (pixel-level moiré, halftone dots), the "low" expert tiles a half-resolution copy (a low-resolution camera).
- quality expert: a scikit-learn pipeline (scaler + linear discriminant, as in Galbally et al.) on `quality.NAMES`.
- `MotionLSTM`: an LSTM over the motion features of a frame sequence (`motion.features`).
- fusion: a depth-limited decision tree on the four experts' spoof probabilities.
- `OrientationCNN`: 0/90/180/270 degrees of a gray 32-px face.
- `EmbedNet`: a 32-d face embedding for the match score (see `fit_embedding` for what it can and cannot do).
Every `fit_*` returns the model and its per-step losses, so tests can check that the loss falls.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

TILE = 32
EXPERTS = ("quality", "patch_low", "patch_high", "motion")  # the fusion tree's inputs, in this order
FUSION_COLUMNS = ("lowest", "second", "third", "highest", "mean")  # the experts' sorted probabilities and mean


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))


def _gray32_features(width: int) -> list[nn.Module]:
    """Three conv blocks over a gray 32-px image, flattened to 4 * width * 16 features (layers 0-3 of a net)."""
    return [_block(1, width), _block(width, 2 * width), _block(2 * width, 4 * width), nn.Flatten()]


class PatchCNN(nn.Module):
    """Tiny CNN: one spoof logit per RGB TILE x TILE patch."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(_block(3, width), _block(width, 2 * width), _block(2 * width, 2 * width))
        self.head = nn.Linear(2 * width, 1)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3))).squeeze(1)


class OrientationCNN(nn.Module):
    """Four logits (0, 90, 180, 270 degrees counter-clockwise) for a gray 32-px image."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(*_gray32_features(width), nn.Linear(4 * width * 16, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)


class MotionLSTM(nn.Module):
    """Spoof logit from a (batch, pairs, features) sequence of motion features."""

    def __init__(self, dim: int, hidden: int = 16):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.lstm(self.norm(torch.log1p(x.clamp_min(0))))
        return self.head(out[:, -1]).squeeze(1)


class EmbedNet(nn.Module):
    """Unit-length 32-d embedding of a gray 32-px face."""

    def __init__(self, width: int = 16, dim: int = 32):
        super().__init__()
        self.net = nn.Sequential(*_gray32_features(width), nn.Linear(4 * width * 16, dim))

    def forward(self, x):
        return nn.functional.normalize(self.net(x), dim=1)


# ------------------------------------------------------------------------------------------------ inputs
def scaled(img: np.ndarray, scale: str) -> np.ndarray:
    """The capture the "high" expert tiles (as is) or the "low" expert tiles (half resolution)."""
    if scale == "high":
        return img
    return cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)


def grid_tiles(img: np.ndarray, scale: str, max_tiles: int = 16) -> np.ndarray:
    """Non-overlapping TILE-px tiles of the scaled capture (centre-most first), as float (n, 3, TILE, TILE)."""
    im = scaled(img, scale)
    h, w = im.shape[:2]
    if min(h, w) < TILE:
        im = cv2.resize(im, (max(w, TILE), max(h, TILE)), interpolation=cv2.INTER_LINEAR)
        h, w = im.shape[:2]
    ys, xs = range(0, h - TILE + 1, TILE), range(0, w - TILE + 1, TILE)
    cy, cx = h / 2, w / 2
    spots = sorted(
        ((y, x) for y in ys for x in xs), key=lambda p: (p[0] + TILE / 2 - cy) ** 2 + (p[1] + TILE / 2 - cx) ** 2
    )
    tiles = np.stack([im[y : y + TILE, x : x + TILE] for y, x in spots[:max_tiles]])
    return tiles.transpose(0, 3, 1, 2).astype(np.float32) / 255


def random_tiles(rng: np.random.Generator, images: np.ndarray, scale: str, k: int) -> np.ndarray:
    """k random TILE-px tiles of each scaled image: (len(images) * k, 3, TILE, TILE)."""
    out = []
    for img in images:
        im = scaled(img, scale)
        h, w = im.shape[:2]
        for _ in range(k):
            y, x = rng.integers(0, h - TILE + 1), rng.integers(0, w - TILE + 1)
            tile = im[y : y + TILE, x : x + TILE]
            out.append(tile[:, ::-1] if rng.random() < 0.5 else tile)
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255


def face_input(gray: np.ndarray) -> torch.Tensor:
    """A gray image (any size) as the (1, 1, 32, 32) input of the orientation and embedding nets."""
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return torch.from_numpy((small - small.mean()) / (small.std() + 1e-3))[None, None]


# ------------------------------------------------------------------------------------------------ training
def _adam_loop(model, batch_fn, steps: int, lr: float, seed: int) -> list[float]:
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.2)
    losses = []
    model.train()
    for step in range(steps):
        loss = batch_fn(step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def fit_patch(
    images: np.ndarray,
    spoof: np.ndarray,
    scale: str,
    steps: int = 300,
    batch: int = 16,
    tiles: int = 4,
    lr: float = 3e-3,
    seed: int = 0,
):
    """Train a PatchCNN on random tiles of RGB captures (`spoof` 1 = attack); classes are balanced per batch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = PatchCNN()
    pos, neg = np.flatnonzero(spoof == 1), np.flatnonzero(spoof == 0)
    loss_fn = nn.BCEWithLogitsLoss()

    def batch_fn(_):
        idx = np.concatenate([rng.choice(pos, batch // 2), rng.choice(neg, batch // 2)])
        x = torch.from_numpy(random_tiles(rng, images[idx], scale, tiles))
        y = torch.from_numpy(np.repeat(spoof[idx], tiles).astype(np.float32))
        return loss_fn(model(x), y)

    return model, _adam_loop(model, batch_fn, steps, lr, seed)


@torch.no_grad()
def predict_patch(model: PatchCNN, images, scale: str) -> np.ndarray:
    """Spoof probability per capture: the mean tile logit through a sigmoid."""
    out = []
    for img in images:
        logits = model(torch.from_numpy(grid_tiles(img, scale)))
        out.append(torch.sigmoid(logits.mean()).item())
    return np.asarray(out, np.float32)


def fit_quality(features: np.ndarray, spoof: np.ndarray):
    """Scaler + linear discriminant on the quality measures (the sklearn way: a Pipeline, fitted)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    signed_log = np.sign(features) * np.log1p(np.abs(features))
    return make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")).fit(
        signed_log, spoof
    )


def predict_quality(model, features: np.ndarray) -> np.ndarray:
    signed_log = np.sign(features) * np.log1p(np.abs(features))
    return model.predict_proba(np.atleast_2d(signed_log))[:, 1].astype(np.float32)


def fit_motion(seqs: np.ndarray, spoof: np.ndarray, steps: int = 300, batch: int = 32, lr: float = 3e-3, seed: int = 0):
    """Train the MotionLSTM on (n, pairs, DIM) motion features."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MotionLSTM(seqs.shape[2])
    pos, neg = np.flatnonzero(spoof == 1), np.flatnonzero(spoof == 0)
    x_all, y_all = torch.from_numpy(seqs.astype(np.float32)), torch.from_numpy(spoof.astype(np.float32))
    loss_fn = nn.BCEWithLogitsLoss()

    def batch_fn(_):
        idx = torch.from_numpy(np.concatenate([rng.choice(pos, batch // 2), rng.choice(neg, batch // 2)]))
        jitter = torch.exp(0.15 * torch.randn(len(idx), 1, x_all.shape[2]))  # flow estimates are noisy
        return loss_fn(model(x_all[idx] * jitter), y_all[idx])

    return model, _adam_loop(model, batch_fn, steps, lr, seed)


@torch.no_grad()
def predict_motion(model: MotionLSTM, seqs: np.ndarray) -> np.ndarray:
    return torch.sigmoid(model(torch.from_numpy(np.asarray(seqs, np.float32)))).numpy()


def fusion_input(probs: dict[str, np.ndarray]) -> np.ndarray:
    """The tree's input (FUSION_COLUMNS): the experts' probabilities sorted, and their mean.

    Sorting makes the tree vote ("two experts above 0.7") instead of learning which expert happened to be
    perfect on the training families: with expert identities, held-out families fooled the tree whenever they
    fooled its favourite expert. Every column depends on every expert, and every expert must be present.
    """
    missing = [e for e in EXPERTS if e not in probs]
    if missing:
        raise ValueError(f"fusion needs every expert's probability; missing {missing}")
    cols = np.stack([np.asarray(probs[e], np.float32).reshape(-1) for e in EXPERTS], 1)
    return np.concatenate([np.sort(cols, 1), cols.mean(1, keepdims=True)], 1)


def fit_fusion(probs: dict[str, np.ndarray], spoof: np.ndarray, seed: int = 0, no_motion_share: float = 0.5):
    """Decision tree on the experts' probabilities (from data the experts did not train on).

    A copy of the rows with the motion expert at 0.5 ("no frames sent") teaches the tree to decide without it.
    """
    from sklearn.tree import DecisionTreeClassifier

    x = fusion_input(probs)
    rng = np.random.default_rng(seed)
    rows = rng.random(len(x)) < no_motion_share
    x_still = fusion_input(dict(probs, motion=np.full(len(x), 0.5)))[rows]
    return DecisionTreeClassifier(max_depth=4, min_samples_leaf=8, random_state=seed).fit(
        np.concatenate([x, x_still]), np.concatenate([spoof, spoof[rows]])
    )


def predict_fusion(tree, probs: dict[str, np.ndarray]) -> np.ndarray:
    return tree.predict_proba(fusion_input(probs))[:, 1].astype(np.float32)


def fit_orientation(bank: np.ndarray, steps: int = 300, batch: int = 32, lr: float = 3e-3, seed: int = 0):
    """Train OrientationCNN on a (faces, views, 32, 32) bank of gray face views, rotated by k * 90 degrees."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = OrientationCNN()
    loss_fn = nn.CrossEntropyLoss()

    def batch_fn(_):
        ks = rng.integers(0, 4, batch)
        f, v = rng.integers(0, bank.shape[0], batch), rng.integers(0, bank.shape[1], batch)
        x = torch.cat([face_input(np.rot90(bank[i, j], k).copy()) for i, j, k in zip(f, v, ks)])
        return loss_fn(model(x), torch.from_numpy(ks))

    return model, _adam_loop(model, batch_fn, steps, lr, seed)


@torch.no_grad()
def predict_orientation(model: OrientationCNN, gray: np.ndarray) -> tuple[int, float]:
    """(degrees counter-clockwise the image is rotated by, confidence)."""
    p = torch.softmax(model(face_input(gray)), 1)[0]
    k = int(p.argmax())
    return 90 * k, float(p[k])


def upright(img: np.ndarray, degrees: int) -> np.ndarray:
    """Undo a counter-clockwise rotation by `degrees` (a multiple of 90)."""
    return np.ascontiguousarray(np.rot90(img, -(degrees // 90) % 4))


def fit_embedding(
    id_bank: np.ndarray,
    selfie_bank: np.ndarray,
    steps: int = 300,
    batch: int = 32,
    lr: float = 3e-3,
    temperature: float = 0.2,
    seed: int = 0,
):
    """Contrastive (NT-Xent) training: an ID-photo view and a selfie view of the same face are a positive pair.

    Banks are (faces, views, 32, 32) gray. Limits, honestly: lfw_subset has one picture per person, so the
    "identity" learned is the source picture seen through different cameras, prints and poses; a match score
    from this model says "same picture of the same person under other conditions", not "same person in a
    different photograph".
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = EmbedNet()

    def batch_fn(_):
        idx = rng.choice(len(id_bank), min(batch, len(id_bank)), replace=False)
        a = torch.cat([face_input(id_bank[i, rng.integers(id_bank.shape[1])]) for i in idx])
        b = torch.cat([face_input(selfie_bank[i, rng.integers(selfie_bank.shape[1])]) for i in idx])
        za, zb = model(a), model(b)
        logits = za @ zb.T / temperature
        target = torch.arange(len(idx))
        return (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)) / 2

    return model, _adam_loop(model, batch_fn, steps, lr, seed)


@torch.no_grad()
def match_score(model: EmbedNet, gray_a: np.ndarray, gray_b: np.ndarray) -> float:
    """Cosine similarity of two faces' embeddings mapped to [0, 1]."""
    z = model(torch.cat([face_input(gray_a), face_input(gray_b)]))
    return float((z[0] @ z[1] + 1) / 2)
