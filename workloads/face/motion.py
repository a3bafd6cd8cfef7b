"""Motion features of a frame sequence for the LSTM expert: how much of the optical flow a flat sheet can explain.

A photo or a screen moves as a plane, so the dense flow between two frames is (up to noise) a homography; a live
face adds small non-rigid motion (eyes, mouth, skin). For each pair of consecutive frames we compute Farneback
flow (OpenCV), fit a homography to it by least squares, and describe the residual on a 4x4 grid plus the size
of the rigid part. The LSTM reads the sequence of these vectors.
"""

from __future__ import annotations

import cv2
import numpy as np

GRID = 4
DIM = GRID * GRID + 5


def pair_features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIM features of the motion from gray frame `a` to gray frame `b` (same size, uint8)."""
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 3, 5, 1.1, 0)
    h, w = a.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    m = 4  # ignore the border, where flow is unreliable
    src = np.stack([xx[m:-m:2, m:-m:2].ravel(), yy[m:-m:2, m:-m:2].ravel()], 1)
    dst = src + flow[m:-m:2, m:-m:2].reshape(-1, 2)
    hmat, _ = cv2.findHomography(src, dst, 0)
    if hmat is None:
        hmat = np.eye(3)
    pts = np.stack([xx.ravel(), yy.ravel()], 1).reshape(-1, 1, 2)
    rigid = cv2.perspectiveTransform(pts, hmat).reshape(h, w, 2) - np.stack([xx, yy], -1)
    resid = np.linalg.norm(flow - rigid, axis=2)[m:-m, m:-m]
    cells = cv2.resize(resid, (GRID, GRID), interpolation=cv2.INTER_AREA).ravel()
    mag = np.linalg.norm(flow, axis=2)[m:-m, m:-m]
    rig = np.linalg.norm(rigid, axis=2)[m:-m, m:-m]
    extra = [resid.mean(), resid.std(), np.percentile(resid, 95), rig.mean(), resid.mean() / (mag.mean() + 0.05)]
    return np.concatenate([cells, extra]).astype(np.float32)


def features(frames: list[np.ndarray]) -> np.ndarray:
    """(len(frames) - 1, DIM) motion features of RGB uint8 frames (resized to the first frame's size)."""
    if len(frames) < 2:
        raise ValueError("motion features need at least two frames")
    h, w = frames[0].shape[:2]
    gray = [cv2.cvtColor(cv2.resize(f, (w, h)) if f.shape[:2] != (h, w) else f, cv2.COLOR_RGB2GRAY) for f in frames]
    return np.stack([pair_features(a, b) for a, b in zip(gray, gray[1:])])
