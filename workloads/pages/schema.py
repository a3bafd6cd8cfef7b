"""The page contract: what a page row holds, in one place for the generators, the trainers and the apps.

Parquet columns and schemas per kind, the class lists, the newspaper publishers and page types, the page PNG
decoder and the run-length code of the news article mask. It imports nothing heavier than pyarrow and OpenCV,
so `serving/` and `workloads/vision` read the contract here instead of from the page generators
(`music.py`, `news.py`), which import it too. Documented in workloads/pages/README.md.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa

KINDS = ("music", "news")
RARE_MODES = ("none", "replace", "compose")  # values of the music `rare` column (`--rare mix` draws one a page)

# DeepScoresV2 class names where it has the class; SMuFL glyph names (as in DeepScores v1) otherwise.
MUSIC_CLASSES = (
    "staff",
    "ledgerLine",
    "barline",
    "brace",
    "stem",
    "beam",
    "tie",
    "slur",
    "augmentationDot",
    "clefG",
    "clefF",
    "clefCAlto",
    "clefCTenor",
    "timeSig0",
    "timeSig1",
    "timeSig2",
    "timeSig3",
    "timeSig4",
    "timeSig5",
    "timeSig6",
    "timeSig7",
    "timeSig8",
    "timeSig9",
    "timeSigCommon",
    "timeSigCutCommon",
    "noteheadBlackOnLine",
    "noteheadBlackInSpace",
    "noteheadHalfOnLine",
    "noteheadHalfInSpace",
    "noteheadWholeOnLine",
    "noteheadWholeInSpace",
    "noteheadBlackOnLineSmall",
    "noteheadBlackInSpaceSmall",
    "flag8thUp",
    "flag8thDown",
    "flag16thUp",
    "flag16thDown",
    "flag32ndUp",
    "flag32ndDown",
    "flag64thUp",
    "flag64thDown",
    "accidentalFlat",
    "accidentalNatural",
    "accidentalSharp",
    "accidentalDoubleSharp",
    "accidentalDoubleFlat",
    "keyFlat",
    "keyNatural",
    "keySharp",
    "articAccentAbove",
    "articAccentBelow",
    "articStaccatoAbove",
    "articStaccatoBelow",
    "articTenutoAbove",
    "articTenutoBelow",
    "articStaccatissimoAbove",
    "articStaccatissimoBelow",
    "articMarcatoAbove",
    "stringsUpBow",
    "stringsDownBow",
    "fermataAbove",
    "fermataBelow",
    "restWhole",
    "restHalf",
    "restQuarter",
    "rest8th",
    "rest16th",
    "rest32nd",
    "rest64th",
    "dynamicP",
    "dynamicF",
    "dynamicPP",
    "dynamicPPP",
    "dynamicFF",
    "dynamicFFF",
    "dynamicMP",
    "dynamicMF",
    "dynamicFortePiano",
    "dynamicSforzato",
    "dynamicSforzando1",
    "dynamicRinforzando2",
    "dynamicCrescendoHairpin",
    "dynamicDiminuendoHairpin",
    "ornamentTrill",
    "ornamentMordent",
    "ornamentTurn",
    "arpeggiato",
    "tuplet3",
    "tuplet5",
    "tuplet6",
    "tupletBracket",
)
NEWS_CLASSES = (
    "masthead",
    "headline",
    "text",
    "picture",
    "caption",
    "separator",
    "classified_ad",
    "tv_listing",
    "table",
)
PUBLISHERS = ("morning_post", "daily_ledger", "evening_star", "valley_courier")  # each has a style in news.py
PAGE_TYPES = ("article", "classifieds", "tv_programme", "share_prices", "sports_results")  # the first has articles

_COMMON = [
    ("page_id", pa.string()),
    ("page_index", pa.int64()),
    ("kind", pa.string()),
    ("seed", pa.int64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("image", pa.binary()),
    ("boxes", pa.list_(pa.list_(pa.float32()))),
    ("labels", pa.list_(pa.string())),
    ("degraded", pa.bool_()),
    ("homography", pa.list_(pa.float64())),
]
SCHEMAS = {
    "music": pa.schema(_COMMON + [("rare", pa.string()), ("staves", pa.list_(pa.list_(pa.float32())))]),
    "news": pa.schema(
        _COMMON
        + [
            ("publisher", pa.string()),
            ("page_type", pa.string()),
            ("is_article", pa.bool_()),
            ("article_of", pa.list_(pa.int32())),
            ("mask_rle", pa.list_(pa.int64())),
        ]
    ),
}


def classes(kind: str) -> list[str]:
    """The documented class list of a kind (the `labels` a page of that kind may hold)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return list(MUSIC_CLASSES if kind == "music" else NEWS_CLASSES)


def rows_to_table(kind: str, rows: list[dict]) -> pa.Table:
    """Page rows (dicts) as a table of the kind's schema."""
    return pa.Table.from_pylist(rows, schema=SCHEMAS[kind])


def decode_png(png: bytes) -> np.ndarray:
    """Decode a page PNG we wrote ourselves (Parquet shards) to gray: the fast OpenCV path, no checks.

    Bytes from outside (an upload) go through `workloads.images.decode_image` instead.
    """
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """Row-major run-length code of an integer mask: [value, run, value, run, ...] (the news `mask_rle`)."""
    flat = mask.ravel()
    starts = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], starts])
    runs = np.diff(np.concatenate([starts, [flat.size]]))
    return np.stack([flat[starts], runs], 1).ravel().astype(np.int64).tolist()


def rle_to_mask(rle, height: int, width: int) -> np.ndarray:
    """Inverse of `mask_to_rle`: the article-id mask (0 = no article) of a news page."""
    pairs = np.asarray(rle, np.int64).reshape(-1, 2)
    return np.repeat(pairs[:, 0], pairs[:, 1]).reshape(height, width).astype(np.int32)
