"""Corrected segmentations sent back by users (`POST /news/corrections`), kept for the next training run.

An embedded SQLite file: one row per correction, committed before the request is answered, so nothing is lost
when the app restarts. `rows()` returns them in the page-shard schema the training job already reads.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

DEFAULT_STORE = ".dlwild/corrections/news.sqlite"

_SCHEMA = """CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, publisher TEXT NOT NULL,
    is_article INTEGER NOT NULL, articles TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    image BLOB NOT NULL, note TEXT)"""


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

    def rows(self, publisher: str | None = None) -> list[dict]:
        """Corrections as page rows: image (PNG), publisher, is_article, width, height, mask_rle."""
        from workloads.pages.schema import mask_to_rle
        from workloads.vision.news import mask_from_boxes

        query = "SELECT publisher, is_article, articles, width, height, image FROM corrections"
        args: tuple = ()
        if publisher is not None:
            query, args = query + " WHERE publisher = ?", (publisher,)
        with self._connect() as db:
            found = db.execute(query + " ORDER BY id", args).fetchall()
        return [
            dict(
                image=bytes(img),
                publisher=pub,
                is_article=bool(art),
                width=w,
                height=h,
                mask_rle=mask_to_rle(mask_from_boxes(json.loads(boxes) if art else [], h, w)),
            )
            for pub, art, boxes, w, h, img in found
        ]
