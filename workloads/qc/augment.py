"""Augmentation that respects the tube's geometry: no 90-degree rotations, no transposes.

An axial scratch matters more than a radial one, so every transform must keep "along the axis" along the axis:
small rotations (a tilted tube, at most `max_angle` < 45 degrees), flips along the axis (left-right: the tube
runs the other way) and across it (up-down: the camera sees the other side), small shifts, brightness,
contrast and sensor noise. `sample` draws the parameters, `apply` uses them, so tests can inspect both.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class Policy:
    max_angle: float = 6.0
    flip_lr: bool = True
    flip_ud: bool = True
    max_shift: float = 3.0
    brightness: float = 0.08
    contrast: float = 0.15
    noise: float = 0.01

    def __post_init__(self):
        if not 0 <= self.max_angle < 45:
            raise ValueError(
                f"max_angle must lie in [0, 45) degrees, got {self.max_angle}: a larger rotation turns "
                "axial scratches into radial ones"
            )

    def sample(self, rng: np.random.Generator) -> dict:
        return dict(
            angle=float(rng.uniform(-self.max_angle, self.max_angle)),
            flip_lr=bool(self.flip_lr and rng.random() < 0.5),
            flip_ud=bool(self.flip_ud and rng.random() < 0.5),
            shift=rng.uniform(-self.max_shift, self.max_shift, 2).tolist(),
            brightness=float(rng.uniform(-self.brightness, self.brightness)),
            contrast=float(rng.uniform(1 - self.contrast, 1 + self.contrast)),
            noise=float(rng.uniform(0, self.noise)),
            noise_seed=int(rng.integers(1 << 31)),
        )

    @staticmethod
    def apply(img: np.ndarray, p: dict) -> np.ndarray:
        h, w = img.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), p["angle"], 1.0)
        m[:, 2] += p["shift"]
        out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if p["flip_lr"]:
            out = out[:, ::-1]
        if p["flip_ud"]:
            out = out[::-1]
        mean = out.mean()
        out = (out - mean) * p["contrast"] + mean + p["brightness"]
        out = out + np.random.default_rng(p["noise_seed"]).normal(0, p["noise"], out.shape)
        return np.clip(out, 0, 1).astype(np.float32)

    def __call__(self, rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
        return self.apply(img, self.sample(rng))
