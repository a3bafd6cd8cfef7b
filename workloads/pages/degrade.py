"""A "print and photograph" transform, and the aligner that carries ground truth from clean to photographed pages.

The paper printed pages, photographed them and aligned the photos to the originals with OpenCV's BFMatcher so
the synthetic labels could be reused. `photograph` fakes the photo (perspective, paper texture, uneven light,
a shadow, blur, noise, JPEG) and returns the true homography, so the boxes move exactly; `align` recovers the
homography from the pixels alone (ORB + BFMatcher + RANSAC), which is what one does with a real photo, and
`alignment_error` says how far off that recovery is.
"""

from __future__ import annotations

import cv2
import numpy as np


def transform_boxes(boxes: np.ndarray, h: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes [x0, y0, x1, y1] through homography `h`: the axis-aligned hull of the moved corners, clipped."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return boxes
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 1, 2)
    moved = cv2.perspectiveTransform(corners, h).reshape(-1, 4, 2)
    out = np.concatenate([moved.min(1), moved.max(1)], 1)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width - 1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height - 1)
    return out


def photograph(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Fake a phone photo of a printed gray page; returns (image, homography clean -> photo)."""
    h, w = img.shape
    jitter = 0.03 * strength * np.array([w, h])
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + rng.uniform(-1, 1, (4, 2)) * jitter).astype(np.float32)
    hom = cv2.getPerspectiveTransform(src, dst)
    page = img.astype(np.float32)

    # Paper: low-frequency texture and fine grain.
    texture = cv2.resize(
        rng.normal(0, 1, (h // 32 + 1, w // 32 + 1)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    page = page * (1 - 0.03 * strength * texture)
    # Uneven light (a tilted plane times a vignette) and a shadow over one side, computed at 1/4 resolution.
    sh, sw = h // 4, w // 4
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    gx, gy = rng.uniform(-0.15, 0.15, 2) * strength
    light = 1 + gx * (xx / sw - 0.5) + gy * (yy / sh - 0.5)
    light *= 1 - 0.25 * strength * ((xx / sw - 0.5) ** 2 + (yy / sh - 0.5) ** 2)
    shadow = np.zeros((sh, sw), np.float32)
    corner = rng.integers(0, 4)
    pts = np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]])
    poly = np.array(
        [
            pts[corner],
            pts[(corner + 1) % 4],
            (pts[(corner + 1) % 4] + pts[(corner + 2) % 4]) // 2 + rng.integers(-20, 20, 2),
        ],
        np.int32,
    )
    cv2.fillPoly(shadow, [poly], 1.0)
    light *= 1 - rng.uniform(0.15, 0.35) * strength * cv2.GaussianBlur(shadow, (0, 0), 12)
    light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    page = page * light
    # The camera: perspective, a table around the page, blur, sensor noise, JPEG.
    page = cv2.warpPerspective(
        page,
        hom,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float(rng.uniform(40, 90)),
    )
    page = cv2.GaussianBlur(page, (0, 0), rng.uniform(0.4, 1.0) * strength + 1e-3)
    page += rng.standard_normal(page.shape, dtype=np.float32) * (4 * strength)
    page = np.clip(page, 0, 255).astype(np.uint8)
    quality = int(rng.integers(45, 85))
    page = cv2.imdecode(cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
    return page, hom


def align(photo: np.ndarray, clean: np.ndarray, n_features: int = 4000) -> np.ndarray | None:
    """Homography photo -> clean from ORB features, brute-force Hamming matches and RANSAC; None if it fails."""
    orb = cv2.ORB_create(nfeatures=n_features, fastThreshold=10)
    kp1, des1 = orb.detectAndCompute(photo, None)
    kp2, des2 = orb.detectAndCompute(clean, None)
    if des1 is None or des2 is None or len(kp1) < 4 or len(kp2) < 4:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des1, des2)
    if len(matches) < 4:
        return None
    src = np.float32([kp1[m.queryIdx].pt for m in matches]).reshape(-1, 1, 2)
    dst = np.float32([kp2[m.trainIdx].pt for m in matches]).reshape(-1, 1, 2)
    hom, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0, maxIters=5000, confidence=0.999)
    return hom


def alignment_error(true_hom: np.ndarray, est_hom: np.ndarray | None, width: int, height: int) -> float:
    """Mean distance (px) between grid points of the clean page and their round trip clean -> photo -> clean."""
    if est_hom is None:
        return float("inf")
    xs, ys = np.meshgrid(np.linspace(0, width - 1, 9), np.linspace(0, height - 1, 13))
    pts = np.stack([xs.ravel(), ys.ravel()], 1).reshape(-1, 1, 2).astype(np.float64)
    back = cv2.perspectiveTransform(cv2.perspectiveTransform(pts, true_hom), est_hom)
    return float(np.linalg.norm((back - pts).reshape(-1, 2), axis=1).mean())
