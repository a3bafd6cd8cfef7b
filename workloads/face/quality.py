"""Image-quality measures in the spirit of Galbally, Marcel & Fierrez (2014), and guidance for the user.

Spoofs degrade a capture in characteristic ways (moiré, halftone dots, lost colour, glare), so a classifier on
general quality measures is one anti-spoofing expert. Full-reference measures compare the image with a Gaussian-
blurred copy of itself (3x3, sigma 0.5, as in the paper); the rest are no-reference measures of blur, noise,
compression, spectrum and colour. OpenCV and scikit-image functions are used where they exist.
"""

from __future__ import annotations

import cv2
import numpy as np

NAMES = (
    # full reference: the image against its blurred copy
    "mse",
    "psnr",
    "snr",
    "structural_content",
    "max_difference",
    "average_difference",
    "normalized_abs_error",
    "r_averaged_max_difference",
    "laplacian_mse",
    "normalized_cross_correlation",
    "ssim",
    "total_edge_difference",
    "total_corner_difference",
    "spectral_magnitude_error",
    "spectral_phase_error",
    "gradient_magnitude_error",
    "gradient_phase_error",
    # no reference: blur, noise, compression, spectrum, colour, exposure
    "laplacian_variance",
    "blur_effect",
    "noise_sigma",
    "jpeg_blockiness",
    "high_frequency_ratio",
    "spectral_peakiness",
    "saturation",
    "colourfulness",
    "brightness",
    "contrast",
    "dynamic_range",
    "glare_fraction",
    "entropy",
)


def _wrap(a):
    return np.angle(np.exp(1j * a))


def _spectral_peakiness(mag: np.ndarray) -> float:
    """Strongest isolated peak in the mid/high band of the log spectrum (periodic screens and halftones)."""
    h, w = mag.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h / 2, xx - w / 2) / (min(h, w) / 2)
    logm = np.log1p(mag)
    smooth = cv2.medianBlur(logm.astype(np.float32), 5)
    band = (r > 0.25) & (r < 0.95)
    return float((logm - smooth)[band].max())


def _blockiness(gray: np.ndarray) -> float:
    """Ratio of the mean jump across 8-px block borders to the mean jump elsewhere (>1: JPEG blocks)."""
    dx = np.abs(np.diff(gray, axis=1))
    border = dx[:, 7::8].mean()
    inner = np.delete(dx, np.s_[7::8], axis=1).mean()
    return float(border / (inner + 1e-6))


def _noise_sigma(gray: np.ndarray) -> float:
    """Immerkaer's (1996) fast noise estimate: the response to a Laplacian-difference mask that cancels edges."""
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    resp = cv2.filter2D(gray, cv2.CV_32F, mask)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(resp).mean() / 6)


def measures(rgb: np.ndarray) -> np.ndarray:
    """The len(NAMES) quality measures of an RGB uint8 image, as float32 in the order of NAMES."""
    from skimage.measure import blur_effect, shannon_entropy
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    u8 = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    g = u8.astype(np.float32) / 255
    b = cv2.GaussianBlur(g, (3, 3), 0.5)
    d = g - b
    mse = float((d**2).mean())
    energy = float((g**2).sum())
    lap_g, lap_b = cv2.Laplacian(g, cv2.CV_32F), cv2.Laplacian(b, cv2.CV_32F)
    b8 = (b * 255 + 0.5).astype(np.uint8)
    e1, e2 = cv2.Canny(u8, 50, 150) > 0, cv2.Canny(b8, 50, 150) > 0

    def corners(img):
        pts = cv2.goodFeaturesToTrack(img, 500, 0.01, 3)
        return 0 if pts is None else len(pts)

    c1, c2 = corners(u8), corners(b8)
    f1, f2 = np.fft.fftshift(np.fft.fft2(g)), np.fft.fftshift(np.fft.fft2(b))
    gx1, gy1 = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    gx2, gy2 = cv2.Sobel(b, cv2.CV_32F, 1, 0), cv2.Sobel(b, cv2.CV_32F, 0, 1)
    top = np.sort(np.abs(d).ravel())[-10:]
    mag = np.abs(f1)
    h, w = g.shape
    r = np.hypot(*np.mgrid[-h / 2 : h / 2, -w / 2 : w / 2]) / (min(h, w) / 2)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32) / 255
    rf, gf, bf = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = rf - gf, 0.5 * (rf + gf) - bf
    values = [
        mse,
        peak_signal_noise_ratio(g, b, data_range=1.0) if mse > 0 else 100.0,
        10 * np.log10(energy / (g.size * mse + 1e-12)),
        energy / (float((b**2).sum()) + 1e-12),
        float(np.abs(d).max()),
        float(d.mean()),
        float(np.abs(d).sum() / (np.abs(g).sum() + 1e-12)),
        float(top.mean()),
        float(((lap_g - lap_b) ** 2).sum() / ((lap_g**2).sum() + 1e-12)),
        float((g * b).sum() / (energy + 1e-12)),
        structural_similarity(g, b, data_range=1.0),
        float((e1 != e2).mean()),
        abs(c1 - c2) / max(c1, 1),
        float(((np.abs(f1) - np.abs(f2)) ** 2).mean() / g.size),
        float((_wrap(np.angle(f1) - np.angle(f2)) ** 2).mean()),
        float(((np.hypot(gx1, gy1) - np.hypot(gx2, gy2)) ** 2).mean()),
        float((_wrap(np.arctan2(gy1, gx1) - np.arctan2(gy2, gx2)) ** 2).mean()),
        float(cv2.Laplacian(g, cv2.CV_32F).var()),
        float(blur_effect(g)),
        _noise_sigma(g),
        _blockiness(g),
        float((mag[r > 0.25] ** 2).sum() / ((mag**2).sum() + 1e-12)),
        _spectral_peakiness(mag),
        float(hsv[..., 1].mean()),
        float((np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())) / 255),
        float(g.mean()),
        float(g.std()),
        float(np.percentile(g, 99) - np.percentile(g, 1)),
        float((g > 0.98).mean()),
        float(shannon_entropy(u8)),
    ]
    return np.nan_to_num(np.asarray(values, np.float32), nan=0.0, posinf=1e3, neginf=-1e3)


# ------------------------------------------------------------------------------------------------ guidance
# (measure, direction, advice): a capture is flagged when a measure lies beyond the live captures' percentile.
GUIDANCE = (
    ("brightness", "low", "too dark: move to a brighter place or face the light"),
    ("brightness", "high", "overexposed: step out of direct light"),
    ("glare_fraction", "high", "glare or reflections: tilt the camera or avoid lamps behind the screen"),
    ("contrast", "low", "low contrast: avoid backlight and haze on the lens"),
    ("laplacian_variance", "low", "blurred: hold the camera still and let it focus on your face"),
    ("noise_sigma", "high", "noisy: more light lowers the sensor noise"),
    ("jpeg_blockiness", "high", "strongly compressed: use the camera app's full quality"),
)


def guidance_limits(live: np.ndarray, low: float = 1.0, high: float = 99.0) -> dict[str, list[float]]:
    """Per guided measure, the [low, high] percentiles over live training captures (JSON-friendly)."""
    idx = {n: i for i, n in enumerate(NAMES)}
    return {
        m: [float(np.percentile(live[:, idx[m]], low)), float(np.percentile(live[:, idx[m]], high))]
        for m in {g[0] for g in GUIDANCE}
    }


def verdict(values: np.ndarray, limits: dict[str, list[float]]) -> dict:
    """{"acceptable": bool, "guidance": [messages]} for one capture's measures."""
    idx = {n: i for i, n in enumerate(NAMES)}
    advice = []
    for name, side, text in GUIDANCE:
        v, (lo, hi) = float(values[idx[name]]), limits[name]
        if (side == "low" and v < lo) or (side == "high" and v > hi):
            advice.append(text)
    return dict(acceptable=not advice, guidance=advice or ["good capture"])
