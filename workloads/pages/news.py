"""Synthetic newspaper pages: multi-column articles with an article-id mask, and the non-article pages.

Section 3 of the paper segments pages into articles and first sets aside pages that hold no articles
(classified ads, TV programme, share prices, sports results). Each publisher has its own look (fonts, column
count, rules), so per-publisher models make sense. Text is drawn as pseudo-words with OpenCV's Hershey fonts:
it looks like print at this resolution and costs microseconds a line.
"""

from __future__ import annotations

import cv2
import numpy as np

from workloads.pages.schema import PAGE_TYPES, PUBLISHERS

WIDTH, HEIGHT = 1000, 1400
_STYLE_KEYS = ("columns", "head_font", "body_font", "body_scale", "line_h", "rule", "margin", "masthead")
_T, _C, _D, _S = cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SIMPLEX
STYLES = {  # one look per publisher of the page contract (schema.PUBLISHERS), one row of _STYLE_KEYS each
    name: dict(zip(_STYLE_KEYS, row, strict=True))
    for name, row in [
        ("morning_post", (5, _T, _S, 0.28, 9, "line", 40, 70)),
        ("daily_ledger", (4, _C, cv2.FONT_HERSHEY_COMPLEX_SMALL, 0.42, 10, "double", 50, 90)),
        ("evening_star", (6, _D, cv2.FONT_HERSHEY_PLAIN, 0.55, 8, "none", 35, 60)),
        ("valley_courier", (3, _S, _D, 0.3, 11, "thick", 55, 100)),
    ]
}
if tuple(STYLES) != PUBLISHERS:
    raise ImportError("news.STYLES must give one style per schema.PUBLISHERS entry, in order")
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyzeeeaaiioonnrrsstt"))


def _words(rng: np.random.Generator, n: int, capital: bool = False) -> str:
    lengths = rng.integers(2, 10, n)
    words = ["".join(rng.choice(_LETTERS, k)) for k in lengths]
    if capital:
        words = [w.capitalize() for w in words]
    return " ".join(words)


class _Page:
    """A page being drawn: the image, its boxes and labels, and the article-id mask."""

    def __init__(self, rng: np.random.Generator, style: dict):
        self.rng, self.style = rng, style
        self.img = np.full((HEIGHT, WIDTH), 255, np.uint8)
        self.mask = np.zeros((HEIGHT, WIDTH), np.int32)
        self.boxes: list[list[float]] = []
        self.labels: list[str] = []
        self.article_of: list[int] = []

    def add(self, box, label: str, article: int = 0) -> None:
        x0, y0, x1, y1 = (float(v) for v in box)
        self.boxes.append([max(0.0, x0), max(0.0, y0), min(WIDTH - 1.0, x1), min(HEIGHT - 1.0, y1)])
        self.labels.append(label)
        self.article_of.append(article)

    def text_lines(
        self,
        x0: int,
        y0: int,
        x1: int,
        y1: int,
        font: int,
        scale: float,
        line_h: int,
        thickness: int = 1,
        capital: bool = False,
        ragged: bool = True,
    ) -> int:
        """Fill [x0, x1] x [y0, y1] with lines of pseudo-words; returns the y below the last line drawn."""
        y, width = y0 + line_h, x1 - x0
        (cw, ch), _ = cv2.getTextSize("abcdefghij", font, scale, thickness)
        per_line = max(1, int(width / (cw / 10) / 6.5))
        last = y0
        while y <= y1:
            line = _words(self.rng, per_line + 2, capital)
            while len(line) > 1 and cv2.getTextSize(line, font, scale, thickness)[0][0] > width:
                line = line.rsplit(" ", 1)[0]
            if ragged and self.rng.random() < 0.12:  # paragraph end
                line = line[: max(1, len(line) // 2)]
            cv2.putText(self.img, line, (x0, y), font, scale, 0, thickness, cv2.LINE_AA)
            last = y + 2
            y += line_h
        return last

    def rule(self, x0, y0, x1, y1, article: int = 0) -> None:
        kind = self.style["rule"]
        if kind == "none":
            return
        t = 3 if kind == "thick" else 1
        cv2.line(self.img, (int(x0), int(y0)), (int(x1), int(y1)), 0, t)
        if kind == "double":
            dx, dy = (0, 3) if y0 == y1 else (3, 0)
            cv2.line(self.img, (int(x0 + dx), int(y0 + dy)), (int(x1 + dx), int(y1 + dy)), 0, 1)
        pad = t + (3 if kind == "double" else 0)
        self.add([x0 - 1, y0 - 1, x1 + pad, y1 + pad], "separator", article)

    def picture(self, x0, y0, x1, y1) -> None:
        """A photo-like patch: a gradient, a few blurred shapes and grain."""
        h, w = y1 - y0, x1 - x0
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a, b, c = self.rng.uniform(-1, 1, 3)
        pic = 128 + 60 * (a * xx / w + b * yy / h) + 20 * c
        for _ in range(int(self.rng.integers(2, 6))):
            cx, cy = self.rng.integers(0, w), self.rng.integers(0, h)
            axes = (int(self.rng.integers(5, max(6, w // 3))), int(self.rng.integers(5, max(6, h // 3))))
            cv2.ellipse(
                pic,
                (int(cx), int(cy)),
                axes,
                float(self.rng.uniform(0, 180)),
                0,
                360,
                float(self.rng.uniform(20, 230)),
                -1,
            )
        pic = cv2.GaussianBlur(pic, (0, 0), 2) + self.rng.normal(0, 8, pic.shape)
        self.img[y0:y1, x0:x1] = np.clip(pic, 0, 255).astype(np.uint8)
        cv2.rectangle(self.img, (x0, y0), (x1 - 1, y1 - 1), 0, 1)


def _masthead(page: _Page, name: str) -> int:
    s, m = page.style, page.style["margin"]
    title = name.replace("_", " ").title()
    scale = 1.0
    while cv2.getTextSize(title, s["head_font"], scale, 2)[0][0] < (WIDTH - 2 * m) * 0.6:
        scale += 0.1
    (tw, th), _ = cv2.getTextSize(title, s["head_font"], scale, 2)
    x, y = (WIDTH - tw) // 2, m + th + 5
    cv2.putText(page.img, title, (x, y), s["head_font"], scale, 0, 2, cv2.LINE_AA)
    page.add([x - 2, y - th - 2, x + tw + 2, y + 8], "masthead")
    bottom = max(m + s["masthead"], y + 22)
    cv2.line(page.img, (m, bottom - 6), (WIDTH - m, bottom - 6), 0, 2)
    page.add([m - 1, bottom - 8, WIDTH - m + 1, bottom - 4], "separator")
    return bottom + 6


def _articles(page: _Page, top: int) -> None:
    """Rows of articles across the column grid; each article: headline, maybe a picture with caption, text."""
    s, rng, m = page.style, page.rng, page.style["margin"]
    cols, gutter = s["columns"], 12
    col_w = (WIDTH - 2 * m - gutter * (cols - 1)) / cols
    y, article = top, 0
    while y < HEIGHT - m - 120:
        row_h = int(min(HEIGHT - m - y, rng.integers(260, 560)))
        if HEIGHT - m - (y + row_h) < 150:
            row_h = HEIGHT - m - y
        c = 0
        while c < cols:
            span = int(min(cols - c, rng.integers(1, min(4, cols) + 1)))
            article += 1
            x0 = int(m + c * (col_w + gutter))
            x1 = int(m + (c + span) * (col_w + gutter) - gutter)
            page.mask[y : y + row_h - 6, x0:x1] = article
            yy = y
            head_scale = float(rng.uniform(0.55, 0.75) * (1 + 0.25 * (span - 1)))
            (tw, th), _ = cv2.getTextSize("Abcdefghij", s["head_font"], head_scale, 2)
            lines = int(rng.integers(1, 3))
            head_bottom = page.text_lines(
                x0,
                yy,
                x1,
                yy + lines * int(th * 1.6),
                s["head_font"],
                head_scale,
                int(th * 1.6),
                2 if head_scale > 0.6 else 1,
                capital=True,
                ragged=False,
            )
            page.add([x0, yy + 2, x1, head_bottom + 3], "headline", article)
            yy = head_bottom + 8
            if span >= 2 and row_h > 300 and rng.random() < 0.6:
                ph = int(rng.uniform(0.3, 0.5) * row_h)
                page.picture(x0, yy, x1, yy + ph)
                page.add([x0, yy, x1 - 1, yy + ph - 1], "picture", article)
                yy += ph + 4
                cap = page.text_lines(
                    x0, yy, x1, yy + 2 * s["line_h"], s["body_font"], s["body_scale"] * 0.9, s["line_h"], ragged=False
                )
                page.add([x0, yy + 1, x1, cap + 2], "caption", article)
                yy = cap + 6
            for k in range(span):  # one text block per column of the article
                cx0 = int(m + (c + k) * (col_w + gutter))
                cx1 = int(cx0 + col_w)
                bottom = page.text_lines(cx0, yy, cx1, y + row_h - 10, s["body_font"], s["body_scale"], s["line_h"])
                if bottom > yy + 4:
                    page.add([cx0, yy + 1, cx1, bottom], "text", article)
            if c + span < cols:
                gx = int(x1 + gutter / 2)
                page.rule(gx, y + 2, gx, y + row_h - 8)
            c += span
        y += row_h
        if y < HEIGHT - m - 120:
            page.rule(m, y - 4, WIDTH - m, y - 4)


def _listing(page: _Page, top: int, page_type: str) -> None:
    """The non-article pages: a grid of cells, each a small ad, a channel's evening or a results/price table."""
    s, rng, m = page.style, page.rng, page.style["margin"]
    cols = {"classifieds": s["columns"] + 1, "tv_programme": 4, "share_prices": 3, "sports_results": 3}[page_type]
    label = {"classifieds": "classified_ad", "tv_programme": "tv_listing"}.get(page_type, "table")
    gutter = 10
    col_w = (WIDTH - 2 * m - gutter * (cols - 1)) / cols
    head_scale = 0.8
    (tw, th), _ = cv2.getTextSize("Abc", s["head_font"], head_scale, 2)
    title = {
        "classifieds": "Classifieds",
        "tv_programme": "Tonight on TV",
        "share_prices": "Markets",
        "sports_results": "Results",
    }[page_type]
    cv2.putText(page.img, title, (m, top + th), s["head_font"], head_scale, 0, 2, cv2.LINE_AA)
    page.add([m, top, m + cv2.getTextSize(title, s["head_font"], head_scale, 2)[0][0], top + th + 6], "headline")
    for c in range(cols):
        x0 = int(m + c * (col_w + gutter))
        x1 = int(x0 + col_w)
        y = top + th + 20
        while y < HEIGHT - m - 60:
            h = int(min(HEIGHT - m - y, rng.integers(60, 260)))
            if page_type == "classifieds":
                cv2.rectangle(page.img, (x0, y), (x1, y + h - 6), 0, 1)
                page.text_lines(x0 + 4, y + 2, x1 - 4, y + h - 10, s["body_font"], s["body_scale"], s["line_h"])
            else:
                name = _words(rng, 1, capital=True)
                cv2.putText(page.img, name, (x0, y + 12), s["head_font"], 0.45, 0, 1, cv2.LINE_AA)
                yy = y + 20
                while yy < y + h - 10:
                    left = (
                        f"{rng.integers(6, 24):02d}:{rng.choice([0, 15, 30, 45]):02d}"
                        if page_type == "tv_programme"
                        else _words(rng, 1, capital=True)[:9]
                    )
                    right = {
                        "tv_programme": _words(rng, 3, capital=True),
                        "share_prices": f"{rng.uniform(1, 900):8.2f} {rng.normal(0, 2):+5.1f}%",
                        "sports_results": f"{rng.integers(0, 5)}:{rng.integers(0, 5)} "
                        + _words(rng, 1, capital=True)[:9],
                    }[page_type]
                    cv2.putText(page.img, left, (x0, yy + 8), s["body_font"], s["body_scale"], 0, 1, cv2.LINE_AA)
                    cv2.putText(
                        page.img,
                        right[: int(col_w / 7)],
                        (x0 + int(col_w * 0.3), yy + 8),
                        s["body_font"],
                        s["body_scale"],
                        0,
                        1,
                        cv2.LINE_AA,
                    )
                    yy += s["line_h"] + 1
                cv2.line(page.img, (x0, y + h - 4), (x1, y + h - 4), 0, 1)
            page.add([x0, y, x1, y + h - 4], label)
            y += h


def render(rng: np.random.Generator, publisher: str | None = None, page_type: str | None = None) -> dict:
    """One page: image, boxes, labels, per-box article ids, the article-id mask and the page's metadata."""
    publisher = publisher or str(rng.choice(sorted(PUBLISHERS)))
    if page_type is None:
        page_type = "article" if rng.random() < 0.7 else str(rng.choice(PAGE_TYPES[1:]))
    page = _Page(rng, STYLES[publisher])
    top = _masthead(page, publisher)
    if page_type == "article":
        _articles(page, top)
    else:
        _listing(page, top, page_type)
    drawn = dict(image=page.img, boxes=page.boxes, labels=page.labels, article_of=page.article_of, mask=page.mask)
    return dict(drawn, publisher=publisher, page_type=page_type)
