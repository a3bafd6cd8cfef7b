"""Honest synthetic anti-spoofing data: live captures and attacks built from images that ship with scikit-image.

No face data can be downloaded here, so every sample starts from a *scene* cut from a scikit-image picture.
Training: `coffee`, `rocket`, `retina`, `immunohistochemistry`, the left `stereo_motorcycle` view and 70
`lfw_subset` faces (upsampled from 25 px). Testing: only pictures at least as sharp as the camera, the
astronaut's and the cameraman's heads and `chelsea`, each crop at least CAPTURE source pixels wide, so a test
capture never shows an upsampled thumbnail (the other 30 lfw faces serve the 32-px orientation and matcher
tests only).
A **live** sample is the scene seen by a camera (pose, light,
white balance, optics, sensor noise, and sometimes an old webcam: low resolution and strong JPEG). An **attack**
puts the scene on a medium first and the camera films the medium:

| family         | medium                                                                            | motion          |
|----------------|-----------------------------------------------------------------------------------|-----------------|
| `screen_lcd`   | RGB stripe pixel grid (moiré after resampling), gamma shift, glare                | rigid           |
| `screen_phone` | dense round-dot (OLED) grid, saturated gamut, blue tint, strong glare             | rigid           |
| `print_laser`  | gray halftone at 45°, colour loss, toner spread, paper texture                    | rigid or flexed |
| `print_inkjet` | colour halftone with rotated screens, ink bleed, gamut compression, paper texture | rigid or flexed |
| `print_photo`  | HELD OUT: continuous-tone glossy photo print (no halftone), soft print resolution | rigid or flexed |
|                | warm cast, compressed tonal range, silver-halide grain, a broad gloss sheen       |                 |

`print_photo` (HELD_OUT_FAMILIES) is a test-only family: it was written once, before any result was seen, and
is never rendered for training, fusion or thresholds (`train.synth` refuses it outside the test split).

Each sample is a short frame sequence: live faces move a little *non-rigidly* (expressions, blinks; some people
hold very still), attacks move *rigidly* as a flat sheet in the hand (a homography), prints sometimes flex.
The first frame is the selfie the single-image experts see; motion features of the sequence feed the LSTM.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

CAPTURE = 128  # side of a camera frame (RGB uint8), the size every expert is trained on
SCENE = 256  # side of the "real world" a camera or a medium samples from
FRAMES = 6  # frames per sequence
FAMILIES = ("screen_lcd", "screen_phone", "print_laser", "print_inkjet")  # used in development and training
HELD_OUT_FAMILIES = ("print_photo",)  # test only; never used in any way during development
TRAIN_SCENES = ("coffee", "rocket", "retina", "immunohistochemistry", "stereo_motorcycle")
# test pictures at native resolution: (name, rows, cols) regions; the astronaut's head (skimage's LBP face
# cascade finds her face at rows 70-163, cols 175-268), the cameraman's head and camera, the cat
TEST_SCENES = (("astronaut", (0, 330), (90, 350)), ("camera", (20, 330), (110, 400)), ("chelsea", None, None))
N_TRAIN_FACES = 70  # lfw_subset faces 0..69 train, 70..99 test (orientation and matcher only)


@functools.lru_cache(maxsize=2)
def sources(split: str) -> tuple[np.ndarray, ...]:
    """RGB uint8 source pictures of a split: 'train' natural images and upsampled LFW faces; 'test' native-resolution
    regions only (TEST_SCENES), every one at least CAPTURE px on its shorter side."""
    import skimage.data as skd

    if split == "train":
        out = [skd.stereo_motorcycle()[0] if n == "stereo_motorcycle" else getattr(skd, n)() for n in TRAIN_SCENES]
        return tuple(out + [cv2.cvtColor(f, cv2.COLOR_GRAY2RGB) for f in faces_gray(split)])
    out = []
    for name, rows, cols in TEST_SCENES:
        img = getattr(skd, name)()
        img = img[slice(*rows) if rows else slice(None), slice(*cols) if cols else slice(None)]
        out.append(cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img)
    return tuple(np.ascontiguousarray(o) for o in out)


@functools.lru_cache(maxsize=2)
def faces_gray(split: str) -> tuple[np.ndarray, ...]:
    """The lfw_subset faces of a split as 100x100 gray uint8 (the originals are 25x25)."""
    import skimage.data as skd

    lfw = skd.lfw_subset()[:100]
    idx = range(N_TRAIN_FACES) if split == "train" else range(N_TRAIN_FACES, 100)
    return tuple(cv2.resize((lfw[i] * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC) for i in idx)


def crop_side(rng: np.random.Generator, src: np.ndarray, min_side: int = 0) -> int:
    """Side of a random square crop of `src`: 80-100 % of a small picture, 30-90 % of a large one, at least
    `min_side` source pixels (the test split asks for CAPTURE: its captures never upsample the source)."""
    h, w = src.shape[:2]
    side = int(min(h, w) * (rng.uniform(0.8, 1.0) if max(h, w) <= 100 else rng.uniform(0.3, 0.9)))
    return min(max(side, min_side), min(h, w))


def scene(rng: np.random.Generator, src: np.ndarray, min_side: int = 0) -> np.ndarray:
    """A random view (crop, small roll) of a source picture at SCENE px, float32 RGB in [0, 1]."""
    h, w = src.shape[:2]
    side = crop_side(rng, src, min_side)
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = src[y : y + side, x : x + side].astype(np.float32) / 255
    crop = cv2.resize(crop, (SCENE, SCENE), interpolation=cv2.INTER_AREA if side > SCENE else cv2.INTER_CUBIC)
    m = cv2.getRotationMatrix2D((SCENE / 2, SCENE / 2), rng.uniform(-8, 8), 1.0)
    return np.clip(cv2.warpAffine(crop, m, (SCENE, SCENE), borderMode=cv2.BORDER_REFLECT), 0, 1)


def camera_settings(rng: np.random.Generator) -> dict:
    """Light, optics and sensor of one capture session (shared by the frames of a sequence)."""
    return dict(
        gain=rng.uniform(0.7, 1.3),
        gamma=rng.uniform(0.8, 1.25),
        wb=rng.uniform(0.9, 1.1, 3),
        blur=rng.uniform(0, 0.8),
        noise=rng.uniform(0.004, 0.03),
        webcam=rng.random() < 0.3,
        scale=rng.uniform(0.45, 0.75),
        jpeg=int(rng.integers(40, 80)) if rng.random() < 0.5 else int(rng.integers(75, 96)),
    )


def camera(rng: np.random.Generator, world: np.ndarray, cam: dict) -> np.ndarray:
    """What a camera makes of a SCENE-px world: CAPTURE-px RGB uint8 after optics, light, noise and JPEG."""
    img = cv2.resize(world, (CAPTURE, CAPTURE), interpolation=cv2.INTER_LINEAR)  # lens + sensor sampling
    if cam["blur"] > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), cam["blur"])
    img = np.clip(img * cam["gain"] * cam["wb"], 0, 1) ** cam["gamma"]
    img = img + rng.normal(0, cam["noise"], img.shape) + rng.normal(0, cam["noise"] / 2, img.shape[:2])[..., None]
    img = np.clip(img, 0, 1).astype(np.float32)
    if cam["webcam"]:
        small = int(CAPTURE * cam["scale"])
        img = cv2.resize(
            cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA),
            (CAPTURE, CAPTURE),
            interpolation=cv2.INTER_LINEAR,
        )
    u8 = (img * 255 + 0.5).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, cam["jpeg"]])
    return cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1].copy()


# ------------------------------------------------------------------------------------------------ media
def _glare(rng, img, strength):
    yy, xx = np.mgrid[0:SCENE, 0:SCENE].astype(np.float32)
    cy, cx, r = rng.uniform(0, SCENE, 2).tolist() + [rng.uniform(20, 90)]
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    return img + strength * blob * (1 - img)


def _saturate(img, factor):
    gray = img.mean(2, keepdims=True)
    return np.clip(gray + factor * (img - gray), 0, 1)


def _paper(rng, img):
    """Slightly yellow paper with low-frequency unevenness and fibre noise."""
    low = cv2.resize(rng.normal(0, 1, (8, 8)).astype(np.float32), (SCENE, SCENE), interpolation=cv2.INTER_CUBIC)
    fibre = cv2.GaussianBlur(rng.normal(0, 1, (SCENE, SCENE)).astype(np.float32), (0, 0), 0.7)
    tex = 1 + 0.04 * low + 0.03 * fibre
    white = np.array([1.0, 0.97, rng.uniform(0.86, 0.94)], np.float32)
    return np.clip(img * white * tex[..., None], 0, 1)


def _screen(rng, world, dots: bool):
    d = int(rng.integers(120, 200)) if dots else int(rng.integers(64, 112))  # display pixels across the view
    disp = cv2.resize(world, (d, d), interpolation=cv2.INTER_AREA)
    disp = cv2.resize(disp, (SCENE, SCENE), interpolation=cv2.INTER_NEAREST)
    u = (np.arange(SCENE) * d / SCENE) % 1.0
    if dots:  # round emitters of one colour each, on a staggered grid
        v = (np.arange(SCENE)[:, None] * d / SCENE) % 1.0
        r2 = (u[None, :] - 0.5) ** 2 + (v - 0.5) ** 2
        mask = np.repeat((r2 < 0.12).astype(np.float32)[..., None], 3, 2) * 0.8 + 0.2
    else:  # vertical R, G, B stripes with a dark gap between pixel rows
        v = (np.arange(SCENE) * d / SCENE) % 1.0
        stripes = np.stack([(u < 1 / 3), (u >= 1 / 3) & (u < 2 / 3), (u >= 2 / 3)], -1).astype(np.float32)
        mask = stripes[None, :, :] * (v[:, None, None] < 0.85) * 0.85 + 0.15
    img = disp * mask * rng.uniform(2.0, 2.6)
    img = np.clip(img, 0, 1) ** rng.uniform(0.7, 1.4)  # display gamma differs from the scene's
    img = _saturate(img, rng.uniform(1.2, 1.6) if dots else rng.uniform(0.9, 1.3))
    if dots:
        img = img * np.array([0.92, 0.97, 1.08], np.float32)  # cold white point
    m = cv2.getRotationMatrix2D((SCENE / 2, SCENE / 2), rng.uniform(-6, 6), rng.uniform(0.95, 1.1))
    img = cv2.warpAffine(np.clip(img, 0, 1).astype(np.float32), m, (SCENE, SCENE), borderMode=cv2.BORDER_REFLECT)
    return np.clip(_glare(rng, img, rng.uniform(0.2, 0.55) if dots else rng.uniform(0.05, 0.35)), 0, 1)


def _halftone(channel, period, angle, rng, jitter=0.0):
    """Amplitude-modulated dots: ink where the screen's cosine lies below the ink coverage."""
    yy, xx = np.mgrid[0:SCENE, 0:SCENE].astype(np.float32)
    a = np.deg2rad(angle)
    xr, yr = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
    screen = (np.cos(2 * np.pi * xr / period) * np.cos(2 * np.pi * yr / period) + 1) / 2
    if jitter:
        screen = screen + rng.uniform(-jitter, jitter, screen.shape)
    return (screen < (1 - channel)).astype(np.float32)  # 1 = ink


def _print(rng, world, colour: bool):
    if colour:  # C, M, Y screens at classic angles; inks are imperfect and bleed
        img = _saturate(world, rng.uniform(0.6, 0.9)) * 0.8 + 0.1
        period = rng.uniform(3.0, 4.5)
        ink = np.stack([_halftone(img[..., c], period, ang, rng, 0.15) for c, ang in enumerate((15, 75, 0))], -1)
        img = 1 - ink * np.array([0.85, 0.8, 0.75], np.float32)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 1.4))
    else:  # laser: gray toner, the colour is lost
        gray = _saturate(world, rng.uniform(0.0, 0.3)).mean(2) * 0.85 + 0.12
        ink = _halftone(gray, rng.uniform(3.0, 4.5), 45, rng)
        tint = _saturate(world, rng.uniform(0.0, 0.3))
        img = (1 - 0.88 * ink)[..., None] * (0.7 + 0.3 * tint / np.maximum(tint.mean(2, keepdims=True), 1e-3))
        img = cv2.GaussianBlur(np.clip(img, 0, 1).astype(np.float32), (0, 0), rng.uniform(0.5, 0.9))
    return _paper(rng, img)


def _photo_print(rng, world):
    """Held-out family: a continuous-tone glossy photo print (dye-sublimation / silver halide), no halftone."""
    d = int(rng.integers(150, 221))  # print resolution across the view: soft, but no dot pattern
    img = cv2.resize(
        cv2.resize(world, (d, d), interpolation=cv2.INTER_AREA), (SCENE, SCENE), interpolation=cv2.INTER_CUBIC
    )
    img = _saturate(np.clip(img, 0, 1), rng.uniform(0.85, 1.05))
    img = 0.5 + (img - 0.5) * rng.uniform(1.0, 1.15)  # the print's contrast curve
    img = np.clip(img, 0, 1) * np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 0.95)], np.float32)  # warm
    low, high = rng.uniform(0.04, 0.09), rng.uniform(0.92, 0.97)  # paper white and the dye's maximum density
    img = low + (high - low) * np.clip(img, 0, 1)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (SCENE, SCENE)).astype(np.float32), (0, 0), 0.5)
    img = img * (1 + rng.uniform(0.005, 0.015) * grain)[..., None]
    yy, xx = np.mgrid[0:SCENE, 0:SCENE].astype(np.float32) / SCENE
    a = rng.uniform(0, np.pi)
    band = np.exp(
        -(((np.cos(a) * xx + np.sin(a) * yy) - rng.uniform(0.2, 0.8)) ** 2) / (2 * rng.uniform(0.05, 0.15) ** 2)
    )
    img = img + rng.uniform(0.15, 0.45) * band[..., None] * (1 - img)  # gloss sheen across the sheet
    return np.clip(img, 0, 1)


def medium(rng: np.random.Generator, world: np.ndarray, family: str) -> np.ndarray:
    """The scene as shown by a screen or printed on paper, seen at SCENE px."""
    if family not in FAMILIES + HELD_OUT_FAMILIES:
        raise ValueError(f"unknown attack family {family!r}: one of {', '.join(FAMILIES + HELD_OUT_FAMILIES)}")
    if family == "print_photo":
        return _photo_print(rng, world).astype(np.float32)
    if family.startswith("screen"):
        return _screen(rng, world, dots=family == "screen_phone").astype(np.float32)
    return _print(rng, world, colour=family == "print_inkjet").astype(np.float32)


# ------------------------------------------------------------------------------------------------ motion
def _bumps(rng, n):
    """A few smooth local displacement modes (eyes, mouth, cheeks), each with its own direction and pace."""
    yy, xx = np.mgrid[0:SCENE, 0:SCENE].astype(np.float32)
    modes = []
    for _ in range(n):
        cy, cx = rng.uniform(0.2, 0.8, 2) * SCENE
        r = rng.uniform(15, 45)
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        modes.append((g, rng.normal(0, 1, 2), rng.uniform(0.6, 2.0), rng.uniform(0, 2 * np.pi)))
    return modes


def _remap(img, dx, dy):
    yy, xx = np.mgrid[0:SCENE, 0:SCENE].astype(np.float32)
    return cv2.remap(img, xx + dx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _homography(rng, t):
    """Hand-held flat sheet: drifting shift, roll and a little perspective, as one 3x3 matrix at time t."""
    c = SCENE / 2
    shift = t * np.array([rng.uniform(-3, 3), rng.uniform(-3, 3)]) * 2
    ang = np.deg2rad(t * rng.uniform(-2, 2))
    s = 1 + t * rng.uniform(-0.02, 0.02)
    m = np.array([[s * np.cos(ang), -s * np.sin(ang), 0], [s * np.sin(ang), s * np.cos(ang), 0], [0, 0, 1]])
    m[2, :2] = t * rng.uniform(-4e-5, 4e-5, 2)
    to_c, back = (
        np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1]]),
        np.array([[1, 0, c + shift[0]], [0, 1, c + shift[1]], [0, 0, 1]]),
    )
    return back @ m @ to_c


def sequence(
    rng: np.random.Generator, src: np.ndarray, family: str | None, frames: int = FRAMES, min_side: int = 0
) -> list[np.ndarray]:
    """CAPTURE-px RGB frames of one presentation: live (family None) or an attack of `family`; the scene is a crop
    of at least `min_side` source pixels."""
    world = scene(rng, src, min_side)
    cam = camera_settings(rng)
    out = []
    if family is None:
        still = rng.random() < 0.2  # some people hold very still
        amp = rng.uniform(0.15, 0.6) if still else rng.uniform(1.0, 4.0)  # px at SCENE scale
        modes = _bumps(rng, int(rng.integers(2, 5)))
        head = rng.normal(0, 1, 3)
        for i in range(frames):
            dx = sum(g * d[0] * amp * np.sin(w * i + p) for g, d, w, p in modes)
            dy = sum(g * d[1] * amp * np.sin(w * i + p) for g, d, w, p in modes)
            m = cv2.getRotationMatrix2D((SCENE / 2, SCENE / 2), head[2] * 0.4 * np.sin(0.7 * i), 1.0)
            m[:, 2] += head[:2] * np.sin(0.5 * i)
            view = cv2.warpAffine(
                _remap(world, dx.astype(np.float32), dy.astype(np.float32)),
                m,
                (SCENE, SCENE),
                borderMode=cv2.BORDER_REFLECT,
            )
            out.append(camera(rng, view, cam))
        return out
    flat = medium(rng, world, family)
    flex = family.startswith("print") and rng.random() < 0.3  # paper bends in the hand
    modes = _bumps(rng, 1) if flex else []
    amp = rng.uniform(0.5, 2.0)
    motion_rng = np.random.default_rng(rng.integers(1 << 31))
    for i in range(frames):
        seed = motion_rng.bit_generator.state
        h = _homography(motion_rng, i / max(frames - 1, 1))
        motion_rng.bit_generator.state = seed  # the same hand trajectory, evaluated at each time
        view = flat
        if modes:
            g, d, w, p = modes[0]
            view = _remap(
                flat,
                (g * d[0] * amp * np.sin(w * i + p)).astype(np.float32),
                (g * d[1] * amp * np.sin(w * i + p)).astype(np.float32),
            )
        view = cv2.warpPerspective(view, h, (SCENE, SCENE), borderMode=cv2.BORDER_REFLECT)
        out.append(camera(rng, view, cam))
    return out


def face_view(rng: np.random.Generator, face: np.ndarray, style: str, size: int = 32) -> np.ndarray:
    """A gray `size`-px view of a face: an ID photo (printed, frontal) or a selfie (live camera, pose jitter)."""
    src = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    world = scene(rng, src)
    if style == "id":
        world = medium(rng, world, "print_laser" if rng.random() < 0.5 else "print_inkjet")
    frame = camera(rng, world, camera_settings(rng))
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (size, size), interpolation=cv2.INTER_AREA)
