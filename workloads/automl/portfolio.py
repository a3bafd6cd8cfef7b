"""Warm start by meta-learning, Auto-sklearn style but small: a built-in portfolio of configurations, each tied to
the meta-features of the kind of data set it did well on; a new data set starts from the configurations of its
nearest portfolio entries.

The portfolio is hand-written from well-known strong settings for such data (not learned from our own runs, and
not tuned on the benchmark's test splits); the archetypes' meta-features are those of typical data sets of each
kind. It is used by `bayes` (Optuna's `points_to_evaluate`) and `evolution` (seeds of generation 0); `random`,
the baseline, never sees it.
"""

from __future__ import annotations

import math

from workloads.automl import space

_IMPUTE = {"imputer": "median", "scaler": "standard", "preprocessor": "none"}
_HGB = {
    **_IMPUTE,
    "estimator": "hgb",
    "hgb__learning_rate": 0.1,
    "hgb__max_iter": 200,
    "hgb__max_leaf_nodes": 31,
    "hgb__min_samples_leaf": 20,
    "hgb__l2_regularization": 1e-6,
}
_RF = {**_IMPUTE, "estimator": "rf", "rf__n_estimators": 200, "rf__max_features": 0.5, "rf__min_samples_leaf": 1}
_ET = {**_IMPUTE, "estimator": "et", "et__n_estimators": 200, "et__max_features": 0.5, "et__min_samples_leaf": 1}
_SVM = {**_IMPUTE, "estimator": "kernel_svm", "kernel_svm__C": 10.0, "kernel_svm__gamma": 0.01}
_KNN = {**_IMPUTE, "estimator": "knn", "knn__n_neighbors": 5, "knn__weights": "distance"}
_MLP = {**_IMPUTE, "estimator": "mlp", "mlp__hidden": 128, "mlp__alpha": 1e-4, "mlp__learning_rate_init": 1e-3}

# (meta-features of the archetype, configurations that do well on it), per task family.
PORTFOLIO = {
    space.CLASSIFICATION: [
        (
            {"log_rows": 3.3, "log_features": 1.8, "classes": 10, "minority_fraction": 0.1},  # small images
            [_SVM, _KNN, {**_IMPUTE, "estimator": "logreg", "logreg__C": 0.1}, _MLP],
        ),
        (
            {"log_rows": 3.7, "log_features": 1.3, "classes": 2, "minority_fraction": 0.5},  # mid-size tabular
            [_HGB, _RF, _ET, {**_SVM, "kernel_svm__C": 3.0, "kernel_svm__gamma": 0.05}],
        ),
        (
            {"log_rows": 3.5, "log_features": 2.2, "classes": 2, "minority_fraction": 0.5},  # wide tabular
            [
                {**_RF, "rf__max_features": 0.2, "rf__n_estimators": 300},
                _HGB,
                {**_ET, "et__max_features": 0.3},
                {**_IMPUTE, "estimator": "logreg", "logreg__C": 0.1},
            ],
        ),
        (
            {"log_rows": 2.5, "log_features": 1.2, "classes": 3, "minority_fraction": 0.3},  # small tabular
            [
                {**_IMPUTE, "estimator": "logreg", "logreg__C": 1.0},
                {**_IMPUTE, "estimator": "lda", "lda__shrinkage": 0.1},
                {**_SVM, "kernel_svm__C": 1.0},
                _RF,
            ],
        ),
        (
            {"log_rows": 4.5, "log_features": 1.5, "classes": 2, "minority_fraction": 0.1},  # large, imbalanced
            [_HGB, {**_HGB, "hgb__max_leaf_nodes": 63, "hgb__learning_rate": 0.05, "hgb__max_iter": 400}, _RF],
        ),
    ],
    space.REGRESSION: [
        (
            {"log_rows": 4.3, "log_features": 0.9},  # large, low-dimensional
            [
                {**_HGB, "hgb__max_leaf_nodes": 63, "hgb__max_iter": 400},
                {**_RF, "rf__min_samples_leaf": 2, "rf__n_estimators": 100},
                {**_KNN, "knn__n_neighbors": 10},
                _ET,
            ],
        ),
        (
            {"log_rows": 2.6, "log_features": 1.0},  # small
            [
                {**_IMPUTE, "estimator": "ridge", "ridge__alpha": 1.0},
                {**_IMPUTE, "estimator": "elasticnet", "elasticnet__alpha": 0.01, "elasticnet__l1_ratio": 0.5},
                {**_SVM, "kernel_svm__C": 1.0, "kernel_svm__gamma": 0.05, "kernel_svm__epsilon": 0.1},
                _RF,
            ],
        ),
        (
            {"log_rows": 3.5, "log_features": 2.0},  # mid-size, wide
            [_HGB, {**_RF, "rf__max_features": 0.3}, {**_IMPUTE, "estimator": "ridge", "ridge__alpha": 10.0}, _MLP],
        ),
    ],
}


def _midpoint(param: space.Param):
    """Fills a gene a portfolio entry leaves open: the first choice, or the (geometric) middle of the range."""
    if param.kind == "cat":
        return param.values[0]
    low, high = param.values
    mid = math.sqrt(low * high) if param.log else (low + high) / 2
    return int(round(mid)) if param.kind == "int" else mid


def warm_start(meta: dict[str, float], task: str, k: int = 5) -> list[dict]:
    """Up to `k` distinct configurations from the portfolio entries nearest to `meta` (Euclidean distance on
    the meta-features the entries name; class counts compared on a log scale)."""
    family = space.REGRESSION if task == space.REGRESSION else space.CLASSIFICATION

    def distance(archetype: dict[str, float]) -> float:
        total = 0.0
        for key, value in archetype.items():
            a, b = (math.log2(1 + value), math.log2(1 + meta[key])) if key == "classes" else (value, meta[key])
            total += (a - b) ** 2
        return total

    chosen: list[dict] = []
    for _, configs in sorted(PORTFOLIO[family], key=lambda entry: distance(entry[0])):
        for config in configs:
            config = space.sample(task, _midpoint, fixed=space.prune(config, task))
            if config not in chosen:
                chosen.append(config)
    return chosen[:k]
