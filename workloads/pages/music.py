"""Synthetic sheet-music pages: random but valid MEI, engraved by verovio, drawn with OpenCV.

Why this shape: verovio does the engraving (layout, beams, stems, collisions) in a few milliseconds, but
rasterising its SVG with a generic renderer took ~0.45 s a page here. So we read glyph positions from the SVG
(each `<use>` names a SMuFL code point) and fill the glyph outlines (from verovio's own Leipzig font files)
with `cv2.fillPoly`; lines, beams and curves are filled polygons too. The same walk yields a tight box and a
class per symbol, so labels can never drift from the pixels.

Rare symbols (the paper's "compose" and "replace" ways) are generator options: `rare="compose"` raises the
odds of rare symbols while composing; `rare="replace"` swaps a common symbol for a similar rare one
(sharp -> double sharp, staccato -> staccatissimo, ...) in the score, so the music stays valid.
"""

from __future__ import annotations

import functools
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from workloads.pages.schema import MUSIC_CLASSES

WIDTH, HEIGHT = 1000, 1400  # pixels of one page
_PAGE_W, _PAGE_H, _SCALE = 2000, 2800, 50  # verovio page units and zoom: 2000 * 50% = 1000 px
_MARGIN_TOP = 380  # verovio units (x 0.5 -> 190 px): room for the margin patches (2 rows of 80 px)
_MERGED = {"arpeg": "arpeggiato", "grpSym": "brace"}  # SVG groups drawn in pieces that are one symbol
_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_MIN_LINE = 1.3  # pixels: thinnest staff line or stem, as on a scan

# SMuFL glyph name -> class, where the two differ.
_GLYPH_CLASS = {
    "gClef": "clefG",
    "gClefChange": "clefG",
    "fClef": "clefF",
    "fClefChange": "clefF",
    "dynamicPiano": "dynamicP",
    "dynamicForte": "dynamicF",
    "wiggleArpeggiatoUp": "arpeggiato",
    "wiggleArpeggiatoDown": "arpeggiato",
    "articStaccatissimoWedgeAbove": "articStaccatissimoAbove",
    "articStaccatissimoWedgeBelow": "articStaccatissimoBelow",
}


def _font_dir() -> Path:
    import verovio

    return Path(verovio.__file__).parent / "data"


@functools.lru_cache(maxsize=1)
def _glyph_names() -> dict[str, str]:
    """SMuFL code point -> glyph name, from verovio's Leipzig font metadata."""
    return {g.get("c"): g.get("n") for g in ET.parse(_font_dir() / "Leipzig.xml").getroot()}


@functools.cache
def _outline(code: str) -> list[np.ndarray]:
    """A glyph's outline polygons in font units (y down), read once from verovio's Leipzig glyph file."""
    f = _font_dir() / "Leipzig" / f"{code}.xml"
    d = ET.parse(f).getroot().find("path") if f.exists() else None
    return [] if d is None else [p * np.array([1.0, -1.0]) for p in path_polygons(d.get("d"))]


_TOKEN = re.compile(r"[MmLlHhVvCcSsQqZz]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def path_polygons(d: str, steps: int = 6) -> list[np.ndarray]:
    """Flatten an SVG path (M, L, H, V, C, S, Q, Z; absolute or relative) into closed polygons."""
    tokens = _TOKEN.findall(d)
    polys, cur, pos, start, last_ctrl, cmd, i = [], [], np.zeros(2), np.zeros(2), None, "M", 0
    t = np.linspace(0, 1, steps + 1)[1:, None]

    def nums(k):
        nonlocal i
        vals = [float(v) for v in tokens[i : i + k]]
        i += k
        return vals

    while i < len(tokens):
        if tokens[i].isalpha():
            cmd = tokens[i]
            i += 1
            if cmd in "Zz":
                if len(cur) > 2:
                    polys.append(np.array(cur))
                cur, pos = [], start.copy()
                continue
        rel = cmd.islower()
        base = pos if rel else np.zeros(2)
        c = cmd.upper()
        if c == "M":
            if len(cur) > 2:
                polys.append(np.array(cur))
            pos = base + nums(2)
            start, cur = pos.copy(), [pos.copy()]
            cmd = "l" if rel else "L"
        elif c == "L":
            pos = base + nums(2)
            cur.append(pos.copy())
        elif c == "H":
            pos = np.array([(pos[0] if rel else 0) + nums(1)[0], pos[1]])
            cur.append(pos.copy())
        elif c == "V":
            pos = np.array([pos[0], (pos[1] if rel else 0) + nums(1)[0]])
            cur.append(pos.copy())
        elif c in "CS":
            if c == "C":
                v = nums(6)
                p1, p2, p3 = base + v[0:2], base + v[2:4], base + v[4:6]
            else:
                v = nums(4)
                p1 = 2 * pos - last_ctrl if last_ctrl is not None else pos.copy()
                p2, p3 = base + v[0:2], base + v[2:4]
            pts = ((1 - t) ** 3) * pos + 3 * ((1 - t) ** 2) * t * p1 + 3 * (1 - t) * t * t * p2 + t**3 * p3
            cur.extend(pts)
            pos, last_ctrl = p3, p2
            continue
        elif c == "Q":
            v = nums(4)
            p1, p2 = base + v[0:2], base + v[2:4]
            cur.extend(((1 - t) ** 2) * pos + 2 * (1 - t) * t * p1 + t * t * p2)
            pos = p2
        else:  # unsupported command: skip its token
            i += 1
        last_ctrl = None
    if len(cur) > 2:
        polys.append(np.array(cur))
    return polys


# ----------------------------------------------------------------------------------------------- composing
_STEPS = "cdefgab"
_CLEFS = {"G": ("G", 2, 34), "F": ("F", 4, 22), "CAlto": ("C", 3, 28), "CTenor": ("C", 4, 26)}  # centre step
_KEYS = ["0"] + [f"{n}{a}" for n in range(1, 8) for a in "sf"]
_METERS = [
    (4, 4, None),
    (3, 4, None),
    (2, 4, None),
    (6, 8, None),
    (4, 4, "common"),
    (2, 2, "cut"),
    (3, 8, None),
    (5, 4, None),
    (12, 8, None),
    (7, 8, None),
    (9, 8, None),
    (10, 8, None),
]
_DYNAMS = ["p", "f", "mf", "mp", "pp", "ff", "sfz", "fp", "ppp", "fff", "sf", "rfz"]

# Odds of each feature: the default composes ordinary music; "compose" favours the rare symbols.
_ODDS = {
    "none": dict(
        dur={4: 36, 8: 30, 2: 12, 16: 12, 1: 3, 32: 4, 64: 0.5},
        dot=0.08,
        rest=0.18,
        chord=0.12,
        accid=0.08,
        accid_kind={"s": 40, "f": 40, "n": 16, "x": 2, "ff": 2},
        artic=0.06,
        artic_kind={"stacc": 45, "acc": 30, "ten": 15, "stacciss": 4, "marc": 4, "upbow": 1, "dnbow": 1},
        grace=0.015,
        tuplet=0.05,
        dynam=0.15,
        hairpin=0.08,
        slur=0.12,
        tie=0.05,
        fermata=0.02,
        orn=0.02,
        arpeg=0.02,
        clef_change=0.02,
        key_change=0.03,
        meter_change=0.03,
        grand=0.5,
        key_weights=[8, 6, 6, 4, 4, 2, 2, 1, 1, 0.5, 0.5, 0.2, 0.2, 0.1, 0.1],
        clef_odds=[6, 3, 0.5, 0.3],
    ),
}
_ODDS["compose"] = {
    **_ODDS["none"],
    "dur": {4: 10, 8: 10, 2: 8, 16: 12, 1: 6, 32: 12, 64: 8},
    "dot": 0.2,
    "accid": 0.3,
    "accid_kind": {"s": 10, "f": 10, "n": 20, "x": 30, "ff": 30},
    "artic": 0.3,
    "artic_kind": {"stacc": 5, "acc": 10, "ten": 15, "stacciss": 25, "marc": 25, "upbow": 10, "dnbow": 10},
    "grace": 0.1,
    "tuplet": 0.2,
    "dynam": 0.4,
    "hairpin": 0.3,
    "fermata": 0.15,
    "orn": 0.2,
    "arpeg": 0.2,
    "clef_change": 0.15,
    "key_change": 0.2,
    "meter_change": 0.2,
    "key_weights": [1] * 15,
    "clef_odds": [1, 1, 2, 2],
}
# "replace": a common symbol becomes a semantically similar rare one with this probability.
_REPLACE = {"s": "x", "f": "ff", "stacc": "stacciss", "acc": "marc", "p": "ppp", "f_dyn": "fff", "trill": "mordent"}


class _Composer:
    """Writes one random, valid MEI score; ids are deterministic (n1, n2, ...), so rows carry none at random."""

    def __init__(self, rng: np.random.Generator, rare: str = "none"):
        self.rng, self.odds = rng, _ODDS["compose" if rare == "compose" else "none"]
        self.replace = 0.5 if rare == "replace" else 0.0
        self.n = 0

    def pick(self, weights: dict):
        keys = list(weights)
        cum = np.cumsum([weights[k] for k in keys])
        return keys[min(int(np.searchsorted(cum, self.rng.random() * cum[-1], side="right")), len(keys) - 1)]

    def chance(self, name: str) -> bool:
        return bool(self.rng.random() < self.odds[name])

    def swap(self, value: str, key: str | None = None) -> str:
        key = key or value
        return _REPLACE[key] if key in _REPLACE and self.rng.random() < self.replace else value

    def nid(self) -> str:
        self.n += 1
        return f"n{self.n}"

    def note(
        self, step: int, dur: int, dots: int, grace: bool = False, in_chord: bool = False, tied: bool = False
    ) -> tuple[str, str]:
        nid = self.nid()
        attrs = f'xml:id="{nid}" pname="{_STEPS[step % 7]}" oct="{step // 7}"'
        if not in_chord:
            attrs += f' dur="{dur}"' + (f' dots="{dots}"' if dots else "")
        if grace:
            attrs += f' grace="{"unacc" if self.rng.random() < 0.5 else "acc"}"'
        if not tied and self.chance("accid"):
            attrs += f' accid="{self.swap(self.pick(self.odds["accid_kind"]))}"'
        if not in_chord and not grace and self.chance("artic"):
            attrs += f' artic="{self.swap(self.pick(self.odds["artic_kind"]))}"'
        return nid, f"<note {attrs}/>"

    def layer(self, length: int, centre: int, controls: list, staff: int) -> str:
        """Events filling `length` 64ths; beams group consecutive short notes; tuplets take a quarter or a half."""
        out, ids, beam, pos, step = [], [], [], 0, centre + int(self.rng.integers(-4, 5))
        tie_from = None  # a tie holds the pitch: the next note repeats it

        def flush():
            if len(beam) >= 2:
                out.append("<beam>" + "".join(beam) + "</beam>")
            else:
                out.extend(beam)
            beam.clear()

        while pos < length:
            left = length - pos
            if left >= 16 and self.chance("tuplet"):
                flush()
                tie_from = None
                num, numbase, dur, span = [(3, 2, 8, 16), (6, 4, 16, 16), (5, 4, 16, 16), (3, 2, 4, 32)][
                    self.rng.choice(4, p=[0.6, 0.15, 0.1, 0.15])
                ]
                if span > left:
                    num, numbase, dur, span = 3, 2, 8, 16
                notes = []
                for _ in range(num):
                    step = int(np.clip(step + self.rng.integers(-3, 4), centre - 7, centre + 7))
                    nid, xml = self.note(step, dur, 0)
                    ids.append(nid)
                    notes.append(xml)
                inner = "".join(notes) if dur == 4 else "<beam>" + "".join(notes) + "</beam>"  # quarters: bracket
                out.append(f'<tuplet num="{num}" numbase="{numbase}">{inner}</tuplet>')
                pos += span
                continue
            durs = {d: w for d, w in self.odds["dur"].items() if 64 // d <= left}
            dur = self.pick(durs)
            ticks, dots = 64 // dur, 0
            if dur <= 32 and ticks * 3 // 2 <= left and self.chance("dot"):
                ticks, dots = ticks * 3 // 2, 1
            pos += ticks
            if self.chance("rest"):
                flush()
                tie_from = None
                out.append(f'<rest dur="{dur}"' + (f' dots="{dots}"' if dots else "") + "/>")
                continue
            if tie_from is None:
                step = int(np.clip(step + self.rng.integers(-4, 5), centre - 7, centre + 7))
            xml = ""
            if tie_from is None and self.chance("grace"):
                _, g = self.note(step + 1, 8, 0, grace=True)
                xml += g
            if tie_from is None and self.chance("chord"):
                cid = self.nid()
                notes = [
                    self.note(step + k, dur, dots, in_chord=True)[1]
                    for k in sorted(
                        {0, *self.rng.choice([2, 3, 4, 5, 7], size=int(self.rng.integers(1, 3)), replace=False)}
                    )
                ]
                xml += (
                    f'<chord xml:id="{cid}" dur="{dur}"'
                    + (f' dots="{dots}"' if dots else "")
                    + ">"
                    + "".join(notes)
                    + "</chord>"
                )
                ids.append(cid)
                if self.chance("arpeg"):
                    controls.append(f'<arpeg plist="#{cid}" staff="{staff}"/>')
            else:
                nid, n = self.note(step, dur, dots, tied=tie_from is not None)
                xml += n
                if tie_from:
                    controls.append(f'<tie staff="{staff}" startid="#{tie_from}" endid="#{nid}"/>')
                ids.append(nid)
                tie_from = nid if self.chance("tie") else None
            if dur >= 8 and not dots and "grace" not in xml and len(beam) < 4:
                beam.append(xml)
            else:
                flush()
                out.append(xml)
        flush()
        self.decorate(ids, controls, staff)
        return "".join(out)

    def decorate(self, ids: list[str], controls: list, staff: int) -> None:
        """Control events of one layer: slurs, ties, ornaments, fermatas, dynamics and hairpins."""
        if not ids:
            return
        if len(ids) >= 2 and self.chance("slur"):
            a = int(self.rng.integers(0, len(ids) - 1))
            b = int(self.rng.integers(a + 1, len(ids)))
            controls.append(f'<slur staff="{staff}" startid="#{ids[a]}" endid="#{ids[b]}"/>')
        if self.chance("orn"):
            kind = self.swap(str(self.rng.choice(["trill", "mordent", "turn"])))
            controls.append(f'<{kind} staff="{staff}" startid="#{ids[int(self.rng.integers(0, len(ids)))]}"/>')
        if self.chance("fermata"):
            place = "above" if self.rng.random() < 0.8 else "below"
            controls.append(f'<fermata staff="{staff}" place="{place}" startid="#{ids[-1]}"/>')
        if self.chance("dynam"):
            d = self.pick(dict.fromkeys(_DYNAMS[:6], 10) | dict.fromkeys(_DYNAMS[6:], 2))
            d = self.swap(d, "f_dyn" if d == "f" else d)
            controls.append(f'<dynam staff="{staff}" place="below" startid="#{ids[0]}">{d}</dynam>')
        if len(ids) >= 2 and self.chance("hairpin"):
            form = "cres" if self.rng.random() < 0.5 else "dim"
            controls.append(
                f'<hairpin form="{form}" staff="{staff}" place="below" startid="#{ids[0]}" endid="#{ids[-1]}"/>'
            )

    def score(self, n_measures: int) -> str:
        rng, o = self.rng, self.odds
        grand = rng.random() < o["grand"]
        clef_names = list(_CLEFS)
        clefs = ["G", "F"] if grand else [clef_names[rng.choice(4, p=np.array(o["clef_odds"]) / sum(o["clef_odds"]))]]
        kw = np.array(o["key_weights"], float)
        key = _KEYS[rng.choice(len(_KEYS), p=kw / kw.sum())]
        meter = _METERS[int(rng.integers(len(_METERS)))]
        staff_defs = "".join(
            f'<staffDef n="{i + 1}" lines="5" clef.shape="{_CLEFS[c][0]}" clef.line="{_CLEFS[c][1]}"/>'
            for i, c in enumerate(clefs)
        )
        grp = '<staffGrp symbol="brace" bar.thru="true">' if grand else "<staffGrp>"
        parts = [
            f'<scoreDef key.sig="{key}" {self.meter_attrs(meter)}>{grp}{staff_defs}</staffGrp></scoreDef>',
            "<section>",
        ]
        for m in range(n_measures):
            if m and self.chance("key_change"):
                key = _KEYS[rng.choice(len(_KEYS), p=kw / kw.sum())]
                parts.append(f'<scoreDef key.sig="{key}"/>')
            if m and self.chance("meter_change"):
                meter = _METERS[int(rng.integers(len(_METERS)))]
                parts.append(f"<scoreDef {self.meter_attrs(meter)}/>")
            change = ""
            if m and not grand and self.chance("clef_change"):
                clefs[0] = clef_names[int(rng.integers(4))]
                change = f'<clef shape="{_CLEFS[clefs[0]][0]}" line="{_CLEFS[clefs[0]][1]}"/>'
            length = meter[0] * 64 // meter[1]
            controls: list[str] = []
            staves = "".join(
                f'<staff n="{i + 1}"><layer n="1">{change}'
                f"{self.layer(length, _CLEFS[c][2], controls, i + 1)}</layer></staff>"
                for i, c in enumerate(clefs)
            )
            parts.append(f'<measure n="{m + 1}">{staves}{"".join(controls)}</measure>')
        parts.append("</section>")
        return (
            '<?xml version="1.0" encoding="UTF-8"?><mei xmlns="http://www.music-encoding.org/ns/mei" '
            'meiversion="5.0"><music><body><mdiv><score>' + "".join(parts) + "</score></mdiv></body></music></mei>"
        )

    @staticmethod
    def meter_attrs(meter) -> str:
        count, unit, sym = meter
        return f'meter.count="{count}" meter.unit="{unit}"' + (f' meter.sym="{sym}"' if sym else "")


def compose(rng: np.random.Generator, rare: str = "none") -> str:
    """A random, valid MEI score long enough to fill one page."""
    return _Composer(rng, rare).score(n_measures=int(rng.integers(50, 60)))


# ----------------------------------------------------------------------------------------------- engraving
@functools.lru_cache(maxsize=1)
def _toolkit():
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    return verovio.toolkit()


def engrave(mei: str, id_seed: int) -> str:
    """SVG of the first page; verovio's ids are seeded so they are reproducible."""
    tk = _toolkit()
    tk.setOptions(
        {
            "pageWidth": _PAGE_W,
            "pageHeight": _PAGE_H,
            "scale": _SCALE,
            "footer": "none",
            "header": "none",
            "adjustPageHeight": False,
            "breaks": "auto",
            "pageMarginTop": _MARGIN_TOP,
            "pageMarginBottom": 100,
            "pageMarginLeft": 100,
            "pageMarginRight": 100,
            "xmlIdSeed": int(id_seed) % (2**31 - 1),
            "svgViewBox": False,
        }
    )
    if not tk.loadData(mei):
        raise ValueError("verovio could not load the generated MEI")
    return tk.renderToSVG(1)


_TRANSLATE = re.compile(r"translate\(\s*([-\d.e]+)[ ,]+([-\d.e]+)\s*\)")
_SCALE_RE = re.compile(r"scale\(\s*([-\d.e]+)(?:[ ,]+([-\d.e]+))?\s*\)")


def _affine(transform: str | None) -> tuple[float, float, float, float]:
    """(tx, ty, sx, sy) of a `translate(...) scale(...)` transform attribute."""
    tx = ty = 0.0
    sx = sy = 1.0
    if transform:
        if m := _TRANSLATE.search(transform):
            tx, ty = float(m.group(1)), float(m.group(2))
        if m := _SCALE_RE.search(transform):
            sx = float(m.group(1))
            sy = float(m.group(2)) if m.group(2) else sx
    return tx, ty, sx, sy


def _line_quad(x0, y0, x1, y1, width) -> np.ndarray:
    d = np.array([x1 - x0, y1 - y0], float)
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) or 1.0) * width / 2
    return np.array([[x0, y0] + n, [x1, y1] + n, [x1, y1] - n, [x0, y0] - n])


def draw_svg(svg: str, width: int = WIDTH, height: int = HEIGHT):
    """Rasterise verovio's SVG ourselves; returns (gray image, boxes, labels, staves).

    `staves` is one [x0, x1, y_line1, ..., y_line5] row per staff and system, in pixels.
    """
    names = _glyph_names()
    img = np.full((height, width), 255, np.uint8)
    boxes, labels, staves = [], [], {}
    root = ET.fromstring(svg)
    scale = float(root.get("width", f"{width}px").rstrip("px")) / (_PAGE_W * 10)
    k = 1 << _SHIFT

    def fill(polys: list[np.ndarray], label: str | None):
        polys = [p for p in polys if len(p) >= 3]
        if not polys:
            return
        cv2.fillPoly(img, [np.round(p * k).astype(np.int32) for p in polys], 0, cv2.LINE_AA, _SHIFT)
        if label:
            pts = np.concatenate(polys)
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            box = [max(0.0, x0), max(0.0, y0), min(width - 1.0, x1), min(height - 1.0, y1)]
            if box[2] - box[0] >= 0.5 and box[3] - box[1] >= 0.5:
                boxes.append(box)
                labels.append(label)

    def walk(el, ctx: tuple, off: np.ndarray, lines: list):
        tag = el.tag.rsplit("}", 1)[-1]
        cls = el.get("class", "")
        if "placeholder" in cls or tag in ("defs", "style", "desc", "text"):
            return
        if tag == "g" or tag == "svg":
            if cls:
                ctx = ctx + (cls.split()[0],)
            tx, ty, _, _ = _affine(el.get("transform"))
            off = off + np.array([tx, ty])
            if cls == "staff":
                lines = []
            first = len(boxes)
            for child in el:
                walk(child, ctx, off, lines)
            if cls in _MERGED and len(boxes) > first:  # drawn in pieces, labelled as one symbol
                merged = np.array(boxes[first:])
                del boxes[first:], labels[first:]
                boxes.append([*merged[:, :2].min(0), *merged[:, 2:].max(0)])
                labels.append(_MERGED[cls])
            if cls == "staff" and len(lines) == 5:
                key = (ctx.count("system"), round(lines[0][1] * scale, 1))
                x0, x1 = min(ln[0] for ln in lines), max(ln[2] for ln in lines)
                prev = staves.get(key)
                staves[key] = [
                    min(x0, prev[0]) if prev else x0,
                    max(x1, prev[1]) if prev else x1,
                    *[ln[1] for ln in lines],
                ]
            return
        owner = ctx[-1] if ctx else ""
        if tag == "use":
            code = el.get("{http://www.w3.org/1999/xlink}href", el.get("href", ""))[1:5]
            tx, ty, sx, sy = _affine(el.get("transform"))
            polys = [(p * [sx, sy] + [tx, ty] + off) * scale for p in _outline(code)]
            fill(polys, _glyph_class(names.get(code, ""), ctx, (ty + off[1]) * scale, lines, sx))
        elif tag == "path":
            d, sw = el.get("d", ""), float(el.get("stroke-width", "0") or 0)
            m = re.fullmatch(r"M\s*([-\d.]+)[ ,]([-\d.]+)\s*L\s*([-\d.]+)[ ,]([-\d.]+)", d.strip())
            if m:
                x0, y0, x1, y1 = (float(v) for v in m.groups())
                if owner == "staff" and y0 == y1:
                    lines.append(((x0 + off[0]) * scale, (y0 + off[1]) * scale, (x1 + off[0]) * scale))
                    label = None
                else:
                    label = {"stem": "stem", "barLine": "barline", "ledgerLines": "ledgerLine"}.get(owner)
                fill([(_line_quad(x0, y0, x1, y1, max(sw, _MIN_LINE / scale)) + off) * scale], label)
            else:
                polys = [(p + off) * scale for p in path_polygons(d)]
                fill(
                    polys,
                    {"tie": "tie", "slur": "slur", "tupletBracket": "tupletBracket", "grpSym": "brace"}.get(owner),
                )
        elif tag == "polygon":
            pts = np.array([float(v) for v in re.split(r"[ ,]+", el.get("points", "").strip()) if v]).reshape(-1, 2)
            fill([(pts + off) * scale], "beam" if owner == "beam" else None)
        elif tag == "polyline":
            pts = np.array([float(v) for v in re.split(r"[ ,]+", el.get("points", "").strip()) if v]).reshape(-1, 2)
            sw = max(float(el.get("stroke-width", "0") or 0), _MIN_LINE / scale)
            quads = [(_line_quad(*pts[i], *pts[i + 1], sw) + off) * scale for i in range(len(pts) - 1)]
            label = None
            if owner == "hairpin" and len(pts) == 3:
                label = "dynamicCrescendoHairpin" if pts[1][0] < pts[0][0] else "dynamicDiminuendoHairpin"
            elif owner == "tupletBracket":
                label = "tupletBracket"
            for q in quads:
                fill([q], None)
            if label and quads:  # one box for the whole polyline
                pts_all = np.concatenate(quads)
                boxes.append(
                    [
                        max(0.0, pts_all[:, 0].min()),
                        max(0.0, pts_all[:, 1].min()),
                        min(width - 1.0, pts_all[:, 0].max()),
                        min(height - 1.0, pts_all[:, 1].max()),
                    ]
                )
                labels.append(label)
        elif tag == "ellipse":
            cx, cy = float(el.get("cx")) + off[0], float(el.get("cy")) + off[1]
            rx, ry = float(el.get("rx")), float(el.get("ry"))
            a = np.linspace(0, 2 * math.pi, 16, endpoint=False)
            fill(
                [np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], 1) * scale],
                "augmentationDot" if owner == "dots" else None,
            )

    walk(root, (), np.zeros(2), [])
    staff_rows = [staves[k] for k in sorted(staves)]
    for x0, x1, *ys in staff_rows:
        boxes.append([x0, ys[0] - 0.5, x1, ys[-1] + 0.5])
        labels.append("staff")
    return img, boxes, labels, staff_rows


def _glyph_class(name: str, ctx: tuple, y: float, lines: list, glyph_scale: float) -> str | None:
    """The class of one glyph: noteheads say whether they sit on a line (ledger lines count) or in a space,
    accidentals in a key signature are key accidentals, and a C clef is alto or tenor by its line."""
    if name in ("noteheadBlack", "noteheadHalf", "noteheadWhole", "cClef", "cClefChange"):
        if not lines:
            return None
        half_steps = round((y - lines[0][1]) / ((lines[-1][1] - lines[0][1]) / 8 or 1.0))
        if name.startswith("cClef"):
            return {4: "clefCAlto", 2: "clefCTenor"}.get(half_steps)
        small = "Small" if glyph_scale < 0.65 and name == "noteheadBlack" else ""
        return f"{name}{'OnLine' if half_steps % 2 == 0 else 'InSpace'}{small}"
    if "keyAccid" in ctx:
        return {"accidentalFlat": "keyFlat", "accidentalSharp": "keySharp", "accidentalNatural": "keyNatural"}.get(name)
    cls = _GLYPH_CLASS.get(name, name)
    return cls if cls in _CLASS_SET else None


_CLASS_SET = set(MUSIC_CLASSES)
