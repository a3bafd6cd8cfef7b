"""Safe decoding of image bytes that come from outside (uploads, stored corrections).

Signature and header dimensions are checked before any pixel is decoded, so a decompression bomb or a file
that is not an image is refused with a reason and an HTTP status, never a crash.
"""

from __future__ import annotations

import io

import numpy as np

MAX_PIXELS = 40_000_000  # 40 MP: a 600 dpi A3 scan; anything larger is treated as a decompression bomb


class ImageError(ValueError):
    """An upload that is not a usable image; `status` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS, mode: str = "L") -> np.ndarray:
    """Bytes of a PNG or JPEG -> gray (mode "L") or RGB (mode "RGB") uint8 array, refusing anything else first.

    The dimensions are read from the header first (Pillow opens lazily), so a decompression bomb is refused
    without decoding it; truncated files fail at `load()` instead of yielding half an image.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("empty body: send the bytes of a PNG or JPEG image")
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise ImageError("not a PNG or JPEG image (unknown file signature)", 415)
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w < 1 or h < 1:
                raise ImageError(f"zero-size image ({w}x{h})")
            if w * h > max_pixels:
                raise ImageError(f"image of {w}x{h} px exceeds the limit of {max_pixels} pixels", 413)
            im.load()
            gray = np.asarray(im.convert(mode))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}", 413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image: {exc}") from None
    return np.ascontiguousarray(gray)
