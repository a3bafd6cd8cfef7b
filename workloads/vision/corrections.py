"""Corrected segmentations sent back by users (`POST /news/corrections`), kept for the next training run.

An embedded SQLite file: one row per correction, committed before the request is answered, so nothing is lost
when the app restarts. `rows()` returns them in the page-shard schema the training job already reads. Every
correction is checked like a request (`check_correction`: the image within the news limits, boxes inside it)
when it is posted and again when it is read: `rows()` refuses a store holding a bad row (`BadCorrections`, one
line naming each row and why), so the training job neither crashes on one nor skips it silently.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

from workloads.contract import UsageError
from workloads.images import ImageError, Limits, decode_image

DEFAULT_STORE = ".dlwild/corrections/news.sqlite"

_SCHEMA = """CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, publisher TEXT NOT NULL,
    is_article INTEGER NOT NULL, articles TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    image BLOB NOT NULL, note TEXT)"""


class BadCorrections(UsageError):
    """Stored corrections that the training job cannot use; the message names each row and why."""


def check_correction(gray: np.ndarray, articles: list[list[float]], is_article: bool) -> None:
    """ValueError (one line) unless the article boxes [x0, y0, x1, y1] lie inside the page and an article page
    has at least one."""
    h, w = gray.shape[:2]
    for box in articles:
        if len(box) != 4 or not (0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h):
            raise ValueError(f"article box {box} is not [x0, y0, x1, y1] inside the {w}x{h} image")
    if is_article and not articles:
        raise ValueError("an article page needs at least one article box")


def store_path() -> str:
    """$DLWILD_CORRECTIONS, else `.dlwild/corrections/news.sqlite` under the current folder."""
    return os.environ.get("DLWILD_CORRECTIONS") or DEFAULT_STORE


class CorrectionStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def add(
        self,
        publisher: str,
        png: bytes,
        articles: list[list[float]],
        is_article: bool,
        width: int,
        height: int,
        note: str = "",
    ) -> int:
        """Store one correction durably; returns its id."""
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO corrections (created, publisher, is_article, articles, width, height, "
                "image, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), publisher, int(is_article), json.dumps(articles), width, height, png, note),
            )
            return int(cur.lastrowid)

    def count(self, publisher: str | None = None) -> int:
        with self._connect() as db:
            if publisher is None:
                return db.execute("SELECT COUNT(*) FROM corrections").fetchone()[0]
            return db.execute("SELECT COUNT(*) FROM corrections WHERE publisher = ?", (publisher,)).fetchone()[0]

    def _select(self, publisher: str | None) -> list[tuple]:
        query = "SELECT id, publisher, is_article, articles, width, height, image FROM corrections"
        args: tuple = ()
        if publisher is not None:
            query, args = query + " WHERE publisher = ?", (publisher,)
        with self._connect() as db:
            return db.execute(query + " ORDER BY id", args).fetchall()

    def problems(self, publisher: str | None = None, limits: Limits | None = None) -> list[str]:
        """'row ID: reason' for every stored correction that is not usable (checked like a request)."""
        from workloads.vision.news import LIMITS

        out = []
        for cid, _, art, boxes, w, h, img in self._select(publisher):
            try:
                gray = decode_image(bytes(img), limits or LIMITS)
                if gray.shape != (h, w):
                    raise ValueError(f"image is {gray.shape[1]}x{gray.shape[0]} px, the row says {w}x{h}")
                check_correction(gray, json.loads(boxes) if art else [], bool(art))
            except (ImageError, ValueError) as exc:
                out.append(f"row {cid}: {exc}")
        return out

    def rows(self, publisher: str | None = None, limits: Limits | None = None) -> list[dict]:
        """Corrections as page rows: image (PNG), publisher, is_article, width, height, mask_rle. Raises
        `BadCorrections` when any stored row is unusable (`problems`), rather than crash on it or drop it."""
        from workloads.pages.schema import mask_to_rle
        from workloads.vision.news import mask_from_boxes

        bad = self.problems(publisher, limits)
        if bad:
            raise BadCorrections(
                f"{len(bad)} unusable correction(s) in {self.path}: {'; '.join(bad[:5])}"
                + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
                + " (delete them with `DELETE FROM "
                "corrections WHERE id IN (...)` in sqlite3, or fix them, then retrain)"
            )
        return [
            dict(
                image=bytes(img),
                publisher=pub,
                is_article=bool(art),
                width=w,
                height=h,
                mask_rle=mask_to_rle(mask_from_boxes(json.loads(boxes) if art else [], h, w)),
            )
            for _, pub, art, boxes, w, h, img in self._select(publisher)
        ]
