"""Evaluation: COCO mAP@0.5 with pycocotools (overall and per class) and article-level F1 at IoU > 0.5."""

from __future__ import annotations

import contextlib
import io

import numpy as np


def coco_map(
    gt_boxes: list, gt_labels: list, detections: list[list[dict]], classes: list[str], max_dets: int = 2000
) -> dict:
    """mAP@0.5 over the classes that occur in the ground truth, and AP per class (pycocotools' COCOeval).

    gt_boxes/gt_labels: per page, [x0, y0, x1, y1] pixel boxes and class names; detections: per page, dicts
    with label, score and box. Returns {"map50": float, "per_class": {name: AP}, "gt": {name: count}}.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat = {c: i + 1 for i, c in enumerate(classes)}
    images, anns, dets = [], [], []
    for img_id, (boxes, labels, page_dets) in enumerate(zip(gt_boxes, gt_labels, detections), 1):
        images.append(dict(id=img_id))
        for b, label in zip(boxes, labels):
            x0, y0, x1, y1 = (float(v) for v in b)
            w, h = max(x1 - x0, 0.5), max(y1 - y0, 0.5)
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=img_id,
                    category_id=cat[label],
                    bbox=[x0, y0, w, h],
                    area=w * h,
                    iscrowd=0,
                )
            )
        for d in page_dets:
            x0, y0, x1, y1 = d["box"]
            dets.append(
                dict(
                    image_id=img_id,
                    category_id=cat[d["label"]],
                    score=float(d["score"]),
                    bbox=[x0, y0, max(x1 - x0, 0.5), max(y1 - y0, 0.5)],
                )
            )
    gt = COCO()
    gt.dataset = dict(images=images, annotations=anns, categories=[dict(id=i, name=c) for c, i in cat.items()])
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else None
    counts = {c: 0 for c in classes}
    for a in anns:
        counts[classes[a["category_id"] - 1]] += 1
    present = [c for c in classes if counts[c]]
    if dt is None:
        return dict(map50=0.0, per_class={c: 0.0 for c in present}, gt={c: counts[c] for c in present})
    ev = COCOeval(gt, dt, "bbox")
    ev.params.iouThrs = np.array([0.5])
    ev.params.maxDets = [max_dets]
    ev.params.areaRng = [[0, 1e10]]
    ev.params.areaRngLbl = ["all"]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, 0]  # [recall thresholds, classes]
    per_class = {}
    for k, c in enumerate(classes):
        p = precision[:, k]
        if counts[c]:
            per_class[c] = float(np.mean(np.maximum(p, 0))) if (p > -1).any() else 0.0
    return dict(
        map50=float(np.mean(list(per_class.values()))) if per_class else 0.0,
        per_class=per_class,
        gt={c: counts[c] for c in present},
    )


def article_f1(gt_masks: list[np.ndarray], pred_masks: list[np.ndarray], iou: float = 0.5) -> dict:
    """Article-level precision, recall and F1: a predicted article counts when it overlaps a ground-truth
    article with IoU > `iou` (each matched at most once). Masks hold article ids, 0 = no article."""
    tp = n_pred = n_gt = 0
    for gt, pred in zip(gt_masks, pred_masks):
        g_ids = [i for i in np.unique(gt) if i]
        p_ids = [i for i in np.unique(pred) if i]
        n_gt += len(g_ids)
        n_pred += len(p_ids)
        if not g_ids or not p_ids:
            continue
        # Intersections from the joint histogram of (gt id, pred id) pairs.
        g_idx = np.searchsorted(g_ids, gt.ravel())
        g_idx = np.where(gt.ravel() > 0, g_idx, len(g_ids))
        p_idx = np.searchsorted(p_ids, pred.ravel())
        p_idx = np.where(pred.ravel() > 0, p_idx, len(p_ids))
        joint = np.bincount(g_idx * (len(p_ids) + 1) + p_idx, minlength=(len(g_ids) + 1) * (len(p_ids) + 1)).reshape(
            len(g_ids) + 1, len(p_ids) + 1
        )
        inter = joint[:-1, :-1]
        union = joint[:-1].sum(1)[:, None] + joint[:, :-1].sum(0)[None, :] - inter
        ious = inter / np.maximum(union, 1)
        used = set()
        for g in np.argsort(-ious.max(1)):
            p = int(np.argmax(np.where([j in used for j in range(len(p_ids))], -1, ious[g])))
            if ious[g, p] > iou and p not in used:
                used.add(p)
                tp += 1
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_gt if n_gt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return dict(f1=f1, precision=precision, recall=recall, articles=n_gt, predicted=n_pred, matched=tp)
