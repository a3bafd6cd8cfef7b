"""Uploads that look like images and are not: every app must answer them with a 4xx and keep answering."""

from __future__ import annotations

import io
import struct
import zlib


def zero_width_png() -> bytes:
    """A PNG whose header says 0 x 10 pixels (encoders refuse to write one, so build it by hand)."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def bomb_png() -> bytes:
    """900 megapixels in a few KB: must be refused from the header, before decoding."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buf, "PNG")
    return buf.getvalue()
