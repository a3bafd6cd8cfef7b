"""Newspaper pages (section 3 of the paper): a random-forest pre-classifier and an FCN article segmenter.

Non-article pages (classified ads, TV programme, share prices, sports results) are set aside first by a random
forest on hand-crafted layout features: cheap, and such pages differ in their texture (boxes, tables, regular
short lines) more than in anything a segmenter would learn. Article pages go to the publisher's FCN, which
labels each pixel background, article interior or article border; the articles are the connected regions of
interior, grown back over their border.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from workloads.images import Limits
from workloads.vision.fcn import FCN, OUT_STRIDE, to_input

SCALE = 0.5  # the segmenter sees pages at half size; its output is at 1/4 of the page
BORDER = 2  # output pixels of border ring per article
SEG_CLASSES = ("background", "interior", "border")
FEATURE_GRID = (8, 6)


AC_LAGS = 40  # line-spacing lags of the row profile's autocorrelation, in px
# What the news models can afford of a page (app args of the same names override them for /news): pages are
# about 1000 x 1400 px; the features resize to 250 x 350 and look for 60 px rules, the segmenter sees half size.
LIMITS = Limits(max_pixels=25_000_000, max_side=10_000, min_side=64, max_aspect=4.0)


def row_autocorrelation(rows: np.ndarray, lags: int) -> np.ndarray:
    """Autocorrelation of the row-ink profile at lags 0 .. lags-1 (fewer for shorter pages), normalised by lag 0.

    The same sums as `np.correlate(x, x, "full")` at those lags, in O(len(rows) * lags) instead of
    O(len(rows) ** 2): a 40,000-row page costs milliseconds, not minutes."""
    x = rows - rows.mean()
    n = len(x)
    ac = np.array([np.dot(x[k:], x[: n - k]) for k in range(min(lags, n))])
    return ac / (ac[0] + 1e-9)


# What each entry of `page_features` measures, in order (the ink grid is row-major, top row first).
FEATURE_NAMES = (
    "ink_share",
    "gray_share",
    "horizontal_rules",
    "vertical_rules",
    "boxes",
    "text_columns",
    "line_spacing_peak",
    "line_spacing_lag",
    "components",
    "component_median_area",
    "large_component_share",
    *(f"ink_grid[{r}][{c}]" for r in range(FEATURE_GRID[0]) for c in range(FEATURE_GRID[1])),
)


def article_probability(forest, feats: np.ndarray) -> np.ndarray:
    """P(article page) of each row of `page_features` from the pre-classifier (0 when it never saw an article
    page): the rule /news serves and workloads.vision.evaluate measures."""
    if True not in forest.classes_:
        return np.zeros(len(feats))
    return forest.predict_proba(feats)[:, list(forest.classes_).index(True)]


def page_features(gray: np.ndarray) -> np.ndarray:
    """Hand-crafted layout features of a page: ink and gray-tone shares, a coarse ink grid, horizontal and
    vertical rule counts, box-like contours, line-spacing regularity and the number of text columns (named, in
    order, by FEATURE_NAMES)."""
    small = cv2.resize(gray, (250, 350), interpolation=cv2.INTER_AREA)
    ink = small < 128
    mid = (small >= 60) & (small < 200)
    gh, gw = FEATURE_GRID
    grid = ink[: 350 // gh * gh, : 250 // gw * gw].reshape(gh, 350 // gh, gw, 250 // gw).mean((1, 3)).ravel()
    binary = (gray < 128).astype(np.uint8)
    hlines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (60, 1)))
    vlines = cv2.morphologyEx(binary, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 40)))
    n_h = cv2.connectedComponents(hlines)[0] - 1
    n_v = cv2.connectedComponents(vlines)[0] - 1
    contours, _ = cv2.findContours(cv2.bitwise_or(hlines, vlines), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = sum(1 for c in contours if cv2.boundingRect(c)[2] > 40 and cv2.boundingRect(c)[3] > 30)
    ac = row_autocorrelation(binary.mean(1), AC_LAGS)
    cols = binary[binary.shape[0] // 5 :].mean(0)
    gaps = np.diff((cols < 0.005).astype(np.int8))
    n_cols = int((gaps == 1).sum())
    comps = cv2.connectedComponentsWithStats(binary, connectivity=8)[2][1:, cv2.CC_STAT_AREA]
    comp_stats = [len(comps) / 1e4, np.median(comps) if len(comps) else 0, (comps > 400).mean() if len(comps) else 0]
    return np.concatenate(
        [
            [
                ink.mean(),
                mid.mean(),
                n_h / 100,
                n_v / 100,
                boxes / 50,
                n_cols / 10,
                ac[5:AC_LAGS].max() if len(ac) > 5 else 0.0,
                float(np.argmax(ac[5:AC_LAGS])) if len(ac) > 5 else 0.0,
            ],
            comp_stats,
            grid,
        ]
    ).astype(np.float32)


def preclassifier(seed: int = 0):
    """The random forest: modest depth and tree count keep the saved model small (it is committed)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=60, max_depth=10, min_samples_leaf=2, random_state=seed, n_jobs=1)


def build_model(widths=(16, 32, 48, 64)) -> FCN:
    return FCN({"seg": len(SEG_CLASSES)}, widths, decoder=24)


def prepare(gray: np.ndarray) -> np.ndarray:
    """The segmenter's view of a page: half size (at least 1 px a side, so a 1-px-wide page stays a page)."""
    h, w = gray.shape[:2]
    if min(h, w) * SCALE < 1:
        size = (max(1, round(w * SCALE)), max(1, round(h * SCALE)))
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return cv2.resize(gray, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_AREA)


def seg_target(article_mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per output pixel: 0 background, 1 article interior, 2 article border (ring of BORDER px inside)."""
    H, W = -(-shape[0] // OUT_STRIDE), -(-shape[1] // OUT_STRIDE)
    ids = cv2.resize(article_mask.astype(np.int32).astype(np.float32), (W, H), interpolation=cv2.INTER_NEAREST)
    ids = ids.astype(np.int32)
    target = (ids > 0).astype(np.int64)
    k = 2 * BORDER + 1
    lo = -cv2.dilate(-ids.astype(np.float32), np.ones((k, k), np.uint8))  # min over the window
    hi = cv2.dilate(ids.astype(np.float32), np.ones((k, k), np.uint8))
    target[(ids > 0) & ((lo != ids) | (hi != ids))] = 2
    return target


def seg_loss(out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    # Borders are thin but carry the article split: weight them up.
    return F.cross_entropy(out["seg"], target, weight=torch.tensor([1.0, 1.0, 3.0], device=target.device))


def articles_from_seg(seg: np.ndarray, page_shape: tuple[int, int], min_area: int = 400) -> np.ndarray:
    """Article-id mask at page size from a per-pixel class map: interior components, grown over the border.

    Components under `min_area` output pixels (about 80 x 80 page pixels, far below the smallest article)
    are fragments, not articles: dropping them raised article F1 from 0.84 to 0.92 on fresh pages.
    """
    interior = (seg == 1).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(interior, connectivity=4)
    keep = np.zeros(count, np.int32)
    ids = 0
    for k in range(1, count):
        if stats[k, cv2.CC_STAT_AREA] >= min_area:
            ids += 1
            keep[k] = ids
    labels = keep[labels].astype(np.float32)
    k = 2 * BORDER + 3
    grown = cv2.dilate(labels, np.ones((k, k), np.uint8))
    labels = np.where((labels == 0) & (seg > 0), grown, labels)
    h, w = page_shape
    return cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int32)


def boxes_from_mask(mask: np.ndarray) -> list[list[float]]:
    """Each article's bounding box [x0, y0, x1, y1] in pixels (articles are column rectangles here)."""
    out = []
    for i in [i for i in np.unique(mask) if i]:
        ys, xs = np.nonzero(mask == i)
        out.append([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)])
    return out


def mask_from_boxes(boxes, height: int, width: int) -> np.ndarray:
    """An article-id mask from article boxes (how corrections arrive): later boxes win where they overlap."""
    mask = np.zeros((height, width), np.int32)
    for i, (x0, y0, x1, y1) in enumerate(boxes, 1):
        mask[int(max(0, y0)) : int(min(height, y1)), int(max(0, x0)) : int(min(width, x1))] = i
    return mask


@torch.no_grad()
def segment(model: FCN, pages: list[np.ndarray], device="cpu") -> list[np.ndarray]:
    """Article-id masks (page size) for gray article pages."""
    model.eval()
    small = [prepare(p) for p in pages]
    seg = model(to_input(small, device))["seg"].argmax(1).cpu().numpy()
    out = []
    for p, s, full in zip(small, seg, pages):
        H, W = -(-p.shape[0] // OUT_STRIDE), -(-p.shape[1] // OUT_STRIDE)
        out.append(articles_from_seg(s[:H, :W], full.shape))
    return out


# Types a saved pre-classifier may contain beyond what skops trusts by default; anything else is refused.
SKOPS_TRUSTED = ["sklearn.tree._tree.Tree"]


def load_segmenter(files: dict[str, bytes], meta: dict) -> FCN:
    from workloads.registry import torch_state

    model = build_model(tuple(meta.get("widths", (16, 32, 48, 64))))
    model.load_state_dict(torch_state(files["weights.pt"]))
    return model.eval()


def load_preclassifier(files: dict[str, bytes], meta: dict):
    """The random forest from its skops file, with an allow-list of types (never plain pickle)."""
    import skops.io as sio

    return sio.loads(files["model.skops"], trusted=SKOPS_TRUSTED)
