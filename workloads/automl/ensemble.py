"""Greedy ensemble selection (Caruana et al., 2004) over out-of-fold predictions, and the final estimator.

Starting from the best single model, each round adds (with replacement) the model whose addition gives the best
validation score of the averaged predictions. The rounds' best ensemble is kept; round one is the best single
model, so the result is never worse on the validation (out-of-fold) predictions than the best single model.
The final model is a scikit-learn `VotingClassifier` (soft voting) or `VotingRegressor` whose weights are the
selection counts, refit on the whole training split; with one member it is that member's Pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import balanced_accuracy_score, r2_score


def score_predictions(y: np.ndarray, predictions: np.ndarray, task: str) -> float:
    """Balanced accuracy of class probabilities (argmax) for classification, R2 for regression."""
    if task == "regression":
        return float(r2_score(y, predictions))
    return float(balanced_accuracy_score(y, np.argmax(predictions, axis=1)))


def caruana(predictions: Sequence[np.ndarray], y: np.ndarray, task: str, rounds: int = 50) -> tuple[np.ndarray, float]:
    """Selection counts per model and the validation score of the chosen ensemble."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in predictions])
    singles = [score_predictions(y, p, task) for p in stack]
    counts = np.zeros(len(stack), dtype=np.int64)
    counts[int(np.argmax(singles))] = 1
    total = stack[int(np.argmax(singles))].copy()
    best_counts, best_score = counts.copy(), max(singles)
    for n in range(2, rounds + 1):
        trial_scores = [score_predictions(y, (total + p) / n, task) for p in stack]
        pick = int(np.argmax(trial_scores))
        counts[pick] += 1
        total += stack[pick]
        if trial_scores[pick] > best_score:
            best_counts, best_score = counts.copy(), trial_scores[pick]
    return best_counts, best_score


def build_ensemble(pipelines: Sequence, weights: Sequence[float], task: str, n_jobs: int | None = None):
    """A plain scikit-learn estimator (unfitted) averaging the pipelines with the given weights."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    if len(pipelines) == 1:
        return pipelines[0]
    members = [(f"m{i}", p) for i, p in enumerate(pipelines)]
    if task == "regression":
        return VotingRegressor(members, weights=list(weights), n_jobs=n_jobs)
    return VotingClassifier(members, voting="soft", weights=list(weights), n_jobs=n_jobs)
