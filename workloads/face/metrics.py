"""Presentation-attack detection metrics of ISO/IEC 30107-3.

APCER: share of attack presentations of one attack family (PAI species) accepted as bona fide.
BPCER: share of bona fide (live) presentations rejected as attacks.
ACER:  (APCER + BPCER) / 2, with the worst family's APCER when several families are evaluated together.
A score is a spoof probability; a presentation is called an attack when its score reaches the threshold.
"""

from __future__ import annotations

import numpy as np

LIVE = "live"


def eer_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold where the attack and bona fide error rates are closest (chosen on validation data)."""
    live, attack = scores[labels == LIVE], scores[labels != LIVE]
    candidates = np.unique(np.concatenate([scores, [0.5]]))
    gaps = [abs(np.mean(attack < t) - np.mean(live >= t)) for t in candidates]
    return float(candidates[int(np.argmin(gaps))])


def pad_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """APCER per family, BPCER, ACER per family and overall (worst family) for scores at a threshold."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    live = scores[labels == LIVE]
    if not len(live):
        raise ValueError("ISO 30107-3 metrics need bona fide (live) presentations")
    bpcer = float(np.mean(live >= threshold))
    apcer = {str(f): float(np.mean(scores[labels == f] < threshold)) for f in sorted(set(labels) - {LIVE})}
    return dict(
        threshold=round(float(threshold), 4),
        bpcer=bpcer,
        apcer=apcer,
        acer_per_family={f: (a + bpcer) / 2 for f, a in apcer.items()},
        acer=(max(apcer.values(), default=0.0) + bpcer) / 2,
    )
