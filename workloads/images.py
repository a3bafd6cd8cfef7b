"""Safe decoding of image bytes that come from outside (uploads, stored corrections).

Signature and header dimensions are checked before any pixel is decoded, so a decompression bomb, a file that
is not an image, or an image of a shape the model cannot afford (`Limits`: pixels, sides, aspect ratio) is
refused with a one-line reason and an HTTP status, never a crash.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_PIXELS = 40_000_000  # 40 MP: a 600 dpi A3 scan; anything larger is treated as a decompression bomb


class ImageError(ValueError):
    """An upload that is not a usable image; `status` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """The image shapes one model can afford, checked from the header before decoding: more than `max_pixels`
    pixels or a side over `max_side` is refused with 413 (too large); a side under `min_side` or a long/short
    side ratio over `max_aspect` with 422 (a shape the model cannot use). Each app states its own defaults; Serve
    app args of the same names override them."""

    max_pixels: int = MAX_PIXELS
    max_side: int = 20_000
    min_side: int = 1
    max_aspect: float = 50.0

    def override(self, args: dict[str, Any]) -> Limits:
        """These limits with the app args of the same names (`max_pixels`, `max_side`, ...) applied."""
        over = {f.name: type(getattr(self, f.name))(args[f.name]) for f in dataclasses.fields(self) if f.name in args}
        return dataclasses.replace(self, **over)

    def check(self, width: int, height: int) -> None:
        """ImageError (413 or 422, one line) unless a `width` x `height` image is within the limits."""
        if width < 1 or height < 1:
            raise ImageError(f"zero-size image ({width}x{height})")
        size = f"image of {width}x{height} px"
        if width * height > self.max_pixels:
            raise ImageError(f"{size} exceeds the limit of {self.max_pixels} pixels", 413)
        if max(width, height) > self.max_side:
            raise ImageError(f"{size} has a side over the limit of {self.max_side} px", 413)
        if min(width, height) < self.min_side:
            raise ImageError(f"{size} has a side under the minimum of {self.min_side} px", 422)
        if max(width, height) / min(width, height) > self.max_aspect:
            raise ImageError(f"{size} has an aspect ratio over the limit of {self.max_aspect:g}:1", 422)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for docs and OpenAPI descriptions."""
        return (
            f"at most {self.max_pixels:,} pixels and {self.max_side} px a side, at least {self.min_side} px a side, "
            f"aspect ratio at most {self.max_aspect:g}:1 (larger: 413, other shapes: 422)"
        )


def _limits(limits: Limits | int) -> Limits:
    return limits if isinstance(limits, Limits) else Limits(max_pixels=int(limits))


def decode_image(data: bytes, limits: Limits | int = MAX_PIXELS, mode: str = "L") -> np.ndarray:
    """Bytes of a PNG or JPEG -> gray (mode "L") or RGB (mode "RGB") uint8 array, refusing anything else first.

    `limits` (or a plain pixel limit) is checked on the dimensions of the header (Pillow opens lazily), so a
    decompression bomb or an unaffordable shape is refused without decoding it; truncated files fail at `load()`
    instead of yielding half an image.
    """
    from PIL import Image, UnidentifiedImageError

    limits = _limits(limits)
    if not data:
        raise ImageError("empty body: send the bytes of a PNG or JPEG image")
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise ImageError("not a PNG or JPEG image (unknown file signature)", 415)
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with Image.open(io.BytesIO(data)) as im:
            limits.check(*im.size)
            im.load()
            gray = np.asarray(im.convert(mode))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}", 413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None
    return np.ascontiguousarray(gray)
