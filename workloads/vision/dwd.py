"""The Deep Watershed Detector (section 5 of the paper): pixel-wise class, energy and box-size heads.

Region-proposal detectors struggle with pages of hundreds of tiny symbols, so the DWD predicts, for every
pixel, the class of the symbol it belongs to, a quantised "energy" (how central the pixel is to its symbol)
and the symbol's box size. Detections are read off the energy map: per class, the connected regions of high
energy are the symbols' cores; each core gives one box centred on it with the predicted size.

Training on the sum of the three losses was unstable in the paper, hence `STAGES`: each head on its own, the
energy head fine-tuned alone, then all heads on the sum of the losses, each divided by its running mean.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from workloads.vision.fcn import FCN, OUT_STRIDE, to_input

ENERGY_LEVELS = 6
NMS_IOU = 0.5
FG_WEIGHT = 5.0
MIN_RADIUS = 1.0  # output pixels: a 1.5 px stem still gets a centre pixel at the top energy level
# (head trained, share of the steps); "all" is the sum of the losses normalised by their running means.
STAGES = (("cls", 0.15), ("energy", 0.15), ("box", 0.1), ("energy", 0.1), ("all", 0.5))


def build_model(n_classes: int, widths=(16, 32, 64, 96)) -> FCN:
    """Class head: background + n_classes; energy head: ENERGY_LEVELS; box head: log(width), log(height) in px."""
    return FCN({"cls": n_classes + 1, "energy": ENERGY_LEVELS, "box": 2}, widths)


def targets(boxes, label_ids, height: int, width: int) -> dict[str, np.ndarray]:
    """Pixel targets at the output stride: class id (0 = background), energy level, log box size.

    Energy falls from the box centre to its border (elliptic distance, quantised). Where symbols overlap the
    smaller one wins (drawn later): a note head on a staff keeps its whole core, and a staff or beam cut into
    pieces by small symbols still has cores left (decoding merges them again by non-maximum suppression).
    """
    s = OUT_STRIDE
    H, W = -(-height // s), -(-width // s)
    cls = np.zeros((H, W), np.int16)
    energy = np.zeros((H, W), np.uint8)
    size = np.zeros((2, H, W), np.float16)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in np.argsort(-areas, kind="stable"):
        x0, y0, x1, y1 = boxes[i] / s
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = max((x1 - x0) / 2, MIN_RADIUS), max((y1 - y0) / 2, MIN_RADIUS)
        xa, xb = max(0, int(math.floor(cx - rx))), min(W, int(math.ceil(cx + rx)) + 1)
        ya, yb = max(0, int(math.floor(cy - ry))), min(H, int(math.ceil(cy + ry)) + 1)
        if xa >= xb or ya >= yb:
            continue
        gx = (np.arange(xa, xb) + 0.5 - cx) / rx
        gy = (np.arange(ya, yb) + 0.5 - cy) / ry
        e = 1.0 - np.sqrt(gy[:, None] ** 2 + gx[None, :] ** 2)
        level = np.clip(np.ceil(e * (ENERGY_LEVELS - 1)), 0, ENERGY_LEVELS - 1).astype(np.uint8)
        win = (slice(ya, yb), slice(xa, xb))
        take = level > 0
        cls[win][take] = label_ids[i] + 1
        energy[win][take] = level[take]
        bw, bh = max(boxes[i, 2] - boxes[i, 0], 1.0), max(boxes[i, 3] - boxes[i, 1], 1.0)
        size[0][win][take] = math.log(bw)
        size[1][win][take] = math.log(bh)
    return dict(cls=cls, energy=energy, size=size)


def losses(
    out: dict[str, torch.Tensor],
    cls: torch.Tensor,
    energy: torch.Tensor,
    size: torch.Tensor,
    class_weights: torch.Tensor | None = None,
) -> dict:
    """The three losses: class and energy cross-entropy over all pixels, box size smooth-L1 on symbol pixels.

    Symbol pixels are a small minority of a page, so the cross-entropies weight them FG_WEIGHT times more
    than paper (otherwise a short run learns "background" and the big staves first). `class_weights`
    (background first) further weights the class loss per target class (see `class_weights`).
    """
    fg = energy > 0
    weight = 1.0 + (FG_WEIGHT - 1.0) * fg.float()
    weight = weight / weight.mean()
    box = (
        F.smooth_l1_loss(out["box"].permute(0, 2, 3, 1)[fg], size.permute(0, 2, 3, 1)[fg])
        if fg.any()
        else out["box"].sum() * 0
    )
    cls_weight = weight if class_weights is None else weight * class_weights[cls]
    return dict(
        cls=(F.cross_entropy(out["cls"], cls, reduction="none") * cls_weight).mean(),
        energy=(F.cross_entropy(out["energy"], energy, reduction="none") * weight).mean(),
        box=box,
    )


def class_weights(counts: dict[str, int], classes: list[str], power: float, cap: float = 8.0) -> list[float]:
    """Per-class weights of the class loss, background first: (median count / count) ** power, within
    [1 / cap, cap]. Rare symbols are few pixels of few pages; without more weight a short run never predicts
    them (AP 0 for a third of the classes)."""
    seen = np.array([counts.get(c, 0) for c in classes], np.float64)
    median = float(np.median(seen[seen > 0])) if (seen > 0).any() else 1.0
    w = np.clip((median / np.maximum(seen, 1.0)) ** power, 1.0 / cap, cap)
    return [1.0] + [round(float(v), 4) for v in w]


class StagedLoss:
    """The paper's schedule: which loss a step optimises; 'all' divides each loss by its running mean.

    `rest_weight` > 0 keeps the other heads in a single-head stage, at that weight on their normalised losses:
    with the strict schedule (0) the shared layers drift while one head trains, and a short run spends much of
    the joint stage relearning what the class head had already learnt.
    """

    def __init__(self, total_steps: int, stages=STAGES, momentum: float = 0.98, rest_weight: float = 0.0):
        bounds, acc = [], 0.0
        for head, share in stages:
            acc += share
            bounds.append((round(acc / sum(s for _, s in stages) * total_steps), head))
        self.bounds, self.momentum, self.rest_weight = bounds, momentum, rest_weight
        self.running: dict[str, float] = {}

    def stage(self, step: int) -> str:
        return next((head for end, head in self.bounds if step < end), self.bounds[-1][1])

    def __call__(self, step: int, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        for name, value in parts.items():
            v = float(value.detach())
            self.running[name] = (
                v if name not in self.running else self.momentum * self.running[name] + (1 - self.momentum) * v
            )
        head = self.stage(step)
        if head != "all" and not self.rest_weight:
            return parts[head]
        return sum(
            value / max(self.running[name], 1e-6) * (1.0 if head in ("all", name) else self.rest_weight)
            for name, value in parts.items()
        )


def decode(
    out: dict[str, torch.Tensor],
    classes: list[str],
    shapes: list[tuple[int, int]],
    min_level: int = ENERGY_LEVELS // 3,
    min_score: float = 0.05,
    smooth: int = 3,
) -> list[list[dict]]:
    """Read symbols off the energy maps: per class, each connected region of energy >= `min_level` is one
    symbol; its box is centred on the region, sized by the box head (mean log size over the region), and its
    score is the mean class probability there. `min_level` 2 of 0-5 beat 3 and 4: on perfect maps (0.965 vs
    0.937 mAP@0.5) and on a trained model (0.492 vs 0.475 clean), since bigger cores centre small symbols better.
    The class of a pixel is the arg max of the class probabilities averaged over its `smooth` x `smooth`
    neighbourhood: a 30-minute model's class map is speckled, and each stray pixel splits a core into two
    detections (6 validation pages: 0.166 with 3, 0.152 without, 0.149 with 5)."""
    s = OUT_STRIDE
    energy = out["energy"].argmax(1).cpu().numpy()
    logsize = out["box"].float().cpu().numpy().astype(np.float64)
    results = []
    for n, (h, w) in enumerate(shapes):
        H, W = -(-h // s), -(-w // s)
        ys, xs = np.nonzero(energy[n, :H, :W] >= min_level)
        cls, conf = _vote(out["cls"][n, :, :H, :W], ys, xs, smooth)
        ys, xs, cls, conf = ys[cls > 0], xs[cls > 0], cls[cls > 0], conf[cls > 0]
        dets = []
        for c in np.unique(cls):
            mine = cls == c
            ys_c, xs_c = ys[mine], xs[mine]
            ya, xa = ys_c.min(), xs_c.min()  # work in the window that holds this class
            mask = np.zeros((ys_c.max() - ya + 1, xs_c.max() - xa + 1), np.uint8)
            mask[ys_c - ya, xs_c - xa] = 1
            count, labels = cv2.connectedComponents(mask, connectivity=4)
            comp = labels[ys_c - ya, xs_c - xa]
            area = np.bincount(comp, minlength=count)[1:]
            mean = lambda v, comp=comp, n=count, area=area: np.bincount(comp, weights=v, minlength=n)[1:] / area  # noqa: E731
            scores = mean(conf[mine])
            cx, cy = (mean(xs_c.astype(np.float64)) + 0.5) * s, (mean(ys_c.astype(np.float64)) + 0.5) * s
            bw, bh = np.exp(mean(logsize[n, 0, ys_c, xs_c])), np.exp(mean(logsize[n, 1, ys_c, xs_c]))
            x0, y0 = np.maximum(0.0, cx - bw / 2), np.maximum(0.0, cy - bh / 2)
            x1, y1 = np.minimum(w - 1.0, cx + bw / 2), np.minimum(h - 1.0, cy + bh / 2)
            # A large symbol crossed by small ones breaks into several cores with the same box: keep one.
            keep = cv2.dnn.NMSBoxes(
                np.stack([x0, y0, x1 - x0, y1 - y0], 1).tolist(), scores.tolist(), min_score, NMS_IOU
            )
            for k in np.asarray(keep, int).ravel():
                dets.append(
                    dict(
                        label=classes[c - 1],
                        score=round(float(scores[k]), 4),
                        box=[
                            round(float(x0[k]), 1),
                            round(float(y0[k]), 1),
                            round(float(x1[k]), 1),
                            round(float(y1[k]), 1),
                        ],
                    )
                )
        results.append(dets)
    return results


def _vote(logits: torch.Tensor, ys: np.ndarray, xs: np.ndarray, smooth: int, chunk: int = 4096):
    """Class and its probability at the pixels (ys, xs) of one (classes, H, W) logit map, from the class
    probabilities averaged over the `smooth` x `smooth` neighbourhood inside the map. Only core pixels are
    computed: softmax and pooling of every class map made decoding a page take 0.8-0.9 s here, this 0.3 s."""
    r = smooth // 2
    dy, dx = (a.ravel() for a in np.mgrid[-r : r + 1, -r : r + 1])
    H, W = logits.shape[-2:]
    per_pixel = logits.permute(1, 2, 0)  # (H, W, classes): each gathered pixel is one contiguous row
    cls, conf = np.zeros(len(ys), np.int64), np.zeros(len(ys), np.float32)
    for i in range(0, len(ys), chunk):
        yy, xx = ys[i : i + chunk, None] + dy, xs[i : i + chunk, None] + dx
        inside = torch.from_numpy((yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)).to(logits.device)
        p = per_pixel[torch.from_numpy(yy.clip(0, H - 1)), torch.from_numpy(xx.clip(0, W - 1))].float().softmax(-1)
        top, arg = ((p * inside[..., None]).sum(1) / inside.sum(1, keepdim=True)).max(1)
        cls[i : i + chunk], conf[i : i + chunk] = arg.cpu().numpy(), top.cpu().numpy()
    return cls, conf


@torch.inference_mode()
def detect(model: FCN, classes: list[str], pages: list[np.ndarray], device="cpu", **kwargs) -> list[list[dict]]:
    """Symbols (label, score, box) on each gray page.

    Channels-last tensors let oneDNN's convolutions skip their layout reorders: on this CPU the forward pass
    took 1.5x less time for eight 256 px crops, 1.1x less for one 128 px crop."""
    model.eval().to(memory_format=torch.channels_last)
    out = model(to_input(pages, device).contiguous(memory_format=torch.channels_last))
    return decode(out, classes, [p.shape for p in pages], **kwargs)


def load(files: dict[str, bytes], meta: dict) -> FCN:
    """A detector from registry files; weights only (no pickled code)."""
    from workloads.registry import torch_state

    model = build_model(len(meta["classes"]), tuple(meta.get("widths", (16, 32, 64, 96))))
    model.load_state_dict(torch_state(files["weights.pt"]))
    return model.eval()
