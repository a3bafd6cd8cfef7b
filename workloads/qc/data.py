"""Synthetic transparent tubes (balloon-catheter-like) with rare, small defects; gray float32 images in [0, 1].

The tube runs horizontally (its axis is the x axis) across a smoothly lit background. It is transparent, so it
shows mostly as dark refracting walls, a slightly different interior and bright specular reflections along the
axis. Defects are small and faint: `axial_scratch` (a thin line along the axis), `radial_scratch` (across it),
`inclusion` (a dark speck) and `bubble` (a small ring). Nothing here comes from real catheters.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 64
DEFECTS = ("axial_scratch", "radial_scratch", "inclusion", "bubble")


def _tube(rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, float]]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    img = rng.uniform(0.35, 0.55) + rng.uniform(-0.1, 0.1) * xx / SIZE + rng.uniform(-0.1, 0.1) * yy / SIZE
    cy, half = rng.uniform(26, 38), rng.uniform(11, 17)
    tilt = np.tan(np.deg2rad(rng.uniform(-3, 3)))
    centre = cy + tilt * (xx - SIZE / 2)
    d = (yy - centre) / half  # -1 .. 1 across the tube
    inside = np.abs(d) < 1
    img = img + inside * rng.uniform(-0.05, 0.08) * (1 - d**2)
    for wall in (-1, 1):  # refracting walls: dark lines with a bright rim
        img = img - rng.uniform(0.15, 0.3) * np.exp(-(((d - wall) * half) ** 2) / 1.5)
        img = img + rng.uniform(0.03, 0.1) * np.exp(-(((d - 0.85 * wall) * half) ** 2) / 1.0)
    for _ in range(int(rng.integers(1, 4))):  # specular streaks along the axis, of uneven brightness
        pos, width = rng.uniform(-0.7, 0.7), rng.uniform(0.6, 1.8)
        along = 0.6 + 0.4 * np.sin(xx / rng.uniform(6, 20) + rng.uniform(0, 6.3))
        img = img + rng.uniform(0.1, 0.35) * along * np.exp(-(((d - pos) * half) ** 2) / width)
    return img, (cy, half)


def _defect(rng: np.random.Generator, img: np.ndarray, kind: str, cy: float, half: float) -> np.ndarray:
    x, y = rng.uniform(10, SIZE - 10), cy + rng.uniform(-0.6, 0.6) * half
    amp = rng.uniform(0.12, 0.25) * rng.choice([-1, 1])
    layer = np.zeros_like(img)
    if kind in ("axial_scratch", "radial_scratch"):
        length = rng.uniform(8, 18) if kind == "axial_scratch" else rng.uniform(0.5, 1.0) * half
        ang = np.deg2rad(rng.uniform(-10, 10) + (0 if kind == "axial_scratch" else 90))
        p0 = (int(x - np.cos(ang) * length / 2), int(y - np.sin(ang) * length / 2))
        p1 = (int(x + np.cos(ang) * length / 2), int(y + np.sin(ang) * length / 2))
        cv2.line(layer, p0, p1, 1.0, 1, cv2.LINE_AA)
        return img + amp * layer
    if kind == "inclusion":
        cv2.circle(layer, (int(x), int(y)), int(rng.integers(1, 3)), 1.0, -1, cv2.LINE_AA)
        return img - abs(amp) * 1.3 * cv2.GaussianBlur(layer, (0, 0), 0.6)
    r = int(rng.integers(2, 5))  # bubble: a dark rim around a bright centre
    cv2.circle(layer, (int(x), int(y)), r, 1.0, 1, cv2.LINE_AA)
    centre = np.zeros_like(img)
    cv2.circle(centre, (int(x), int(y)), max(r - 2, 1), 1.0, -1, cv2.LINE_AA)
    return img - abs(amp) * layer + abs(amp) * 0.7 * centre


def tube(rng: np.random.Generator, defect: str | None = None) -> np.ndarray:
    """One SIZE x SIZE image of a tube, with one defect of kind `defect` or none."""
    img, (cy, half) = _tube(rng)
    if defect is not None:
        img = _defect(rng, img, defect, cy, half)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), rng.uniform(0.3, 0.7))
    img = img + rng.normal(0, rng.uniform(0.01, 0.03), img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def dataset(n_normal: int, n_defect: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (n, SIZE, SIZE), labels 0/1, defect kind per image or '') with defect kinds in turn, shuffled."""
    rng = np.random.default_rng(seed)
    kinds = [None] * n_normal + [DEFECTS[i % len(DEFECTS)] for i in range(n_defect)]
    order = rng.permutation(len(kinds))
    images = np.stack([tube(rng, kinds[i]) for i in order])
    labels = np.array([kinds[i] is not None for i in order], np.int64)
    return images, labels, np.array([kinds[i] or "" for i in order])
