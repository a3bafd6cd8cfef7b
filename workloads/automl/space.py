"""The CASH search space: one definition, read by all three searchers, and the one function that builds a Pipeline.

A configuration is a flat dict such as
``{"imputer": "median", "scaler": "standard", "preprocessor": "pca", "pca__n_components": 0.9,
"estimator": "rf", "rf__n_estimators": 200, ...}``. Parameters named ``<choice>__<name>`` are only *active* when
their parent gene (``preprocessor`` or ``estimator``) has that value; `prune` drops the inactive ones.

The same list of `Param` objects becomes
- Tune domains (`tune_domains`) for random search: every parameter is drawn independently and the inactive ones
  are pruned, which gives exactly the distribution of conditional sampling;
- an Optuna define-by-run function (`optuna_space`) for TPE: inactive parameters are never suggested;
- random draws and mutations (`sample`, `mutate`, `crossover`) for the evolutionary searcher.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class Param:
    """One gene: categorical (`values` are the choices) or numeric (`values` = (low, high), inclusive)."""

    name: str
    kind: str  # "cat" | "int" | "float"
    values: tuple
    log: bool = False

    @property
    def parent(self) -> str | None:
        """The choice this parameter belongs to (`rf` for `rf__n_estimators`), None for top-level genes."""
        return self.name.split("__", 1)[0] if "__" in self.name else None


def _p(name, kind, values, log=False) -> Param:
    return Param(name, kind, tuple(values), log)


# Genes shared by both tasks: imputation, scaling and optional feature preprocessing.
_COMMON = [
    _p("imputer", "cat", ["mean", "median"]),
    _p("scaler", "cat", ["standard", "robust", "minmax", "none"]),
    _p("preprocessor", "cat", ["none", "pca", "select", "poly", "nystroem"]),
    _p("pca__n_components", "float", [0.5, 0.999]),
    _p("select__percentile", "int", [10, 100]),
    _p("poly__interaction_only", "cat", [True, False]),
    _p("nystroem__n_components", "int", [50, 500], log=True),
    _p("nystroem__gamma", "float", [1e-3, 1.0], log=True),
]

# Families present in both tasks, with the same hyperparameters (classifier or regressor variant).
_TREES = [
    _p("rf__n_estimators", "int", [50, 300], log=True),
    _p("rf__max_features", "float", [0.1, 1.0]),
    _p("rf__min_samples_leaf", "int", [1, 20], log=True),
    _p("et__n_estimators", "int", [50, 300], log=True),
    _p("et__max_features", "float", [0.1, 1.0]),
    _p("et__min_samples_leaf", "int", [1, 20], log=True),
    _p("hgb__learning_rate", "float", [0.01, 0.3], log=True),
    _p("hgb__max_iter", "int", [50, 500], log=True),
    _p("hgb__max_leaf_nodes", "int", [8, 128], log=True),
    _p("hgb__min_samples_leaf", "int", [5, 100], log=True),
    _p("hgb__l2_regularization", "float", [1e-8, 1.0], log=True),
    _p("knn__n_neighbors", "int", [1, 50], log=True),
    _p("knn__weights", "cat", ["uniform", "distance"]),
    _p("mlp__hidden", "int", [16, 256], log=True),
    _p("mlp__alpha", "float", [1e-6, 1e-1], log=True),
    _p("mlp__learning_rate_init", "float", [1e-4, 1e-2], log=True),
    _p("kernel_svm__C", "float", [1e-2, 1e3], log=True),
    _p("kernel_svm__gamma", "float", [1e-4, 1.0], log=True),
]

_CLASSIFIERS = ["logreg", "linear_svm", "kernel_svm", "knn", "rf", "et", "hgb", "mlp", "lda", "qda"]
_REGRESSORS = ["ridge", "elasticnet", "linear_svm", "kernel_svm", "knn", "rf", "et", "hgb", "mlp"]

SPACES: dict[str, list[Param]] = {
    CLASSIFICATION: _COMMON
    + [_p("estimator", "cat", _CLASSIFIERS)]
    + _TREES
    + [
        _p("logreg__C", "float", [1e-3, 1e3], log=True),
        _p("linear_svm__alpha", "float", [1e-6, 1e-1], log=True),
        _p("lda__shrinkage", "float", [0.0, 1.0]),
        _p("qda__shrinkage", "float", [1e-3, 1.0], log=True),
    ],
    REGRESSION: _COMMON
    + [_p("estimator", "cat", _REGRESSORS)]
    + _TREES
    + [
        _p("ridge__alpha", "float", [1e-3, 1e3], log=True),
        _p("elasticnet__alpha", "float", [1e-4, 1.0], log=True),
        _p("elasticnet__l1_ratio", "float", [0.0, 1.0]),
        _p("linear_svm__C", "float", [1e-3, 1e2], log=True),
        _p("linear_svm__epsilon", "float", [0.0, 1.0]),
        _p("kernel_svm__epsilon", "float", [0.01, 1.0], log=True),
    ],
}


def space(task: str) -> list[Param]:
    """The parameter list for `task` ('binary'/'multiclass' map to classification)."""
    return SPACES[REGRESSION if task == REGRESSION else CLASSIFICATION]


def is_active(param: Param, config: dict[str, Any]) -> bool:
    """A child gene is active when its parent gene (`preprocessor` or `estimator`) selected its choice."""
    parent = param.parent
    return parent is None or parent in (config.get("preprocessor"), config.get("estimator"))


def prune(config: dict[str, Any], task: str) -> dict[str, Any]:
    """Only the active genes of `config`, in the space's order (other keys, e.g. from Tune, are dropped)."""
    return {p.name: _plain(config[p.name]) for p in space(task) if p.name in config and is_active(p, config)}


def _plain(value: Any) -> Any:
    """Numpy scalars from Tune's sampling become Python values (JSON- and Optuna-friendly)."""
    return value.item() if hasattr(value, "item") else value


def sample(task: str, draw: Callable[[Param], Any], fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Walk the space in order and draw every active gene with `draw(param)`; genes in `fixed` are kept."""
    config: dict[str, Any] = {}
    fixed = fixed or {}
    for param in space(task):
        if is_active(param, config):
            config[param.name] = fixed[param.name] if param.name in fixed else draw(param)
    return config


def random_draw(rng: np.random.Generator) -> Callable[[Param], Any]:
    """A `draw` function sampling uniformly (log-uniformly where `log`) with `rng`."""

    def draw(param: Param) -> Any:
        if param.kind == "cat":
            return param.values[int(rng.integers(len(param.values)))]
        low, high = param.values
        if param.log:
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        return int(min(high, max(low, round(value)))) if param.kind == "int" else float(value)

    return draw


def optuna_space(trial, task: str) -> None:
    """Define-by-run space for OptunaSearch (module level so Tune can pickle it; bind `task` with partial)."""

    def draw(param: Param) -> Any:
        if param.kind == "cat":
            return trial.suggest_categorical(param.name, list(param.values))
        suggest = trial.suggest_int if param.kind == "int" else trial.suggest_float
        return suggest(param.name, param.values[0], param.values[1], log=param.log)

    sample(task, draw)


def tune_domains(task: str) -> dict[str, Any]:
    """Every gene as an independent Tune domain, for Tune's random search (prune inactive genes afterwards)."""
    from ray import tune

    domains = {}
    for p in space(task):
        low, high = p.values[0], p.values[-1]
        if p.kind == "cat":
            domains[p.name] = tune.choice(list(p.values))
        elif p.kind == "int":
            domains[p.name] = (tune.lograndint if p.log else tune.randint)(low, high + 1)
        else:
            domains[p.name] = (tune.loguniform if p.log else tune.uniform)(low, high)
    return domains


def mutate(config: dict[str, Any], task: str, rng: np.random.Generator) -> dict[str, Any]:
    """Change one active gene: a categorical flips to another choice (structure), a number moves by a
    Gaussian step of 20% of its (log) range; genes that become active are drawn fresh, stale ones pruned.
    A step that rounds or clips back to the old value is retried, so the child differs from its parent."""
    params = [p for p in space(task) if p.name in config]
    for _ in range(20):
        param = params[int(rng.integers(len(params)))]
        child = dict(config)
        if param.kind == "cat":
            others = [v for v in param.values if v != config[param.name]]
            child[param.name] = others[int(rng.integers(len(others)))]
        else:
            low, high = param.values
            to, back = (math.log, math.exp) if param.log else (float, float)
            x = to(config[param.name]) + rng.normal(0.0, 0.2 * (to(high) - to(low)))
            value = min(high, max(low, back(x)))
            child[param.name] = int(round(value)) if param.kind == "int" else float(value)
        child = sample(task, random_draw(rng), fixed=child)
        if child != config:
            break
    return child


def blocks(task: str) -> list[list[str]]:
    """Genes grouped into the blocks that crossover swaps whole: each top-level gene with its children."""
    groups: dict[str, list[str]] = {}
    for p in space(task):
        if p.parent is None:
            groups[p.name] = [p.name]
    for p in space(task):
        if p.parent is not None:
            owner = "preprocessor" if p.parent in space_choices(task, "preprocessor") else "estimator"
            groups[owner].append(p.name)
    return list(groups.values())


def space_choices(task: str, gene: str) -> tuple:
    """The choices of a categorical top-level gene."""
    return next(p.values for p in space(task) if p.name == gene)


def crossover(a: dict[str, Any], b: dict[str, Any], task: str, rng: np.random.Generator) -> dict[str, Any]:
    """Uniform crossover over blocks: each block (a step of the pipeline with its hyperparameters) comes whole
    from one parent, so e.g. parent A's preprocessing meets parent B's estimator."""
    child: dict[str, Any] = {}
    for block in blocks(task):
        source = a if rng.random() < 0.5 else b
        child.update({k: source[k] for k in block if k in source})
    return prune(child, task)


def _estimator(config: dict[str, Any], task: str, seed: int):
    from sklearn import discriminant_analysis as da
    from sklearn import ensemble, linear_model, neighbors, neural_network, svm
    from sklearn.calibration import CalibratedClassifierCV

    name = config["estimator"]
    hp = {k.split("__", 1)[1]: v for k, v in config.items() if k.startswith(name + "__")}
    classify = task != REGRESSION
    if name in ("rf", "et"):
        cls = {
            ("rf", True): ensemble.RandomForestClassifier,
            ("rf", False): ensemble.RandomForestRegressor,
            ("et", True): ensemble.ExtraTreesClassifier,
            ("et", False): ensemble.ExtraTreesRegressor,
        }
        return cls[name, classify](**hp, n_jobs=1, random_state=seed)
    if name == "hgb":
        cls = ensemble.HistGradientBoostingClassifier if classify else ensemble.HistGradientBoostingRegressor
        return cls(**hp, early_stopping=True, random_state=seed)
    if name == "knn":
        cls = neighbors.KNeighborsClassifier if classify else neighbors.KNeighborsRegressor
        return cls(**hp, n_jobs=1)
    if name == "mlp":
        cls = neural_network.MLPClassifier if classify else neural_network.MLPRegressor
        return cls(
            hidden_layer_sizes=(hp["hidden"],),
            alpha=hp["alpha"],
            learning_rate_init=hp["learning_rate_init"],
            early_stopping=True,
            max_iter=200,
            random_state=seed,
        )
    if name == "kernel_svm":
        if classify:
            # Platt-scaled probabilities from 3 internal folds (what SVC(probability=True) did, deprecated in 1.9)
            return CalibratedClassifierCV(svm.SVC(C=hp["C"], gamma=hp["gamma"], cache_size=500), cv=3, ensemble=False)
        return svm.SVR(C=hp["C"], gamma=hp["gamma"], epsilon=hp["epsilon"], cache_size=500)
    if name == "logreg":
        return linear_model.LogisticRegression(C=hp["C"], max_iter=1000)
    if name == "linear_svm" and classify:  # smoothed hinge loss: a linear SVM that also gives probabilities
        return linear_model.SGDClassifier(loss="modified_huber", alpha=hp["alpha"], random_state=seed)
    if name == "linear_svm":
        return svm.LinearSVR(C=hp["C"], epsilon=hp["epsilon"], dual="auto", max_iter=2000, random_state=seed)
    if name == "lda":
        return da.LinearDiscriminantAnalysis(solver="lsqr", shrinkage=hp["shrinkage"])
    if name == "qda":
        return da.QuadraticDiscriminantAnalysis(solver="eigen", shrinkage=hp["shrinkage"])
    if name == "ridge":
        return linear_model.Ridge(alpha=hp["alpha"])
    if name == "elasticnet":
        return linear_model.ElasticNet(alpha=hp["alpha"], l1_ratio=hp["l1_ratio"], max_iter=5000)
    raise ValueError(f"unknown estimator {name!r}")


def build_pipeline(config: dict[str, Any], task: str, n_features: int, seed: int = 0):
    """The plain scikit-learn Pipeline for a configuration (imputer, scaler, preprocessor, estimator).

    Polynomial features are taken of the 20 best features by a univariate F-test, so that wide data (jasmine
    has 144 columns) does not explode into ten thousand products. Regressors learn a standardised target
    (TransformedTargetRegressor) so that C, epsilon and alpha mean the same on cadata's 1e5-sized prices.
    """
    from sklearn import decomposition, kernel_approximation, preprocessing
    from sklearn import feature_selection as fs
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    config = prune(config, task)
    classify = task != REGRESSION
    score_func = fs.f_classif if classify else fs.f_regression
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=config["imputer"]))]
    scalers = {
        "standard": preprocessing.StandardScaler,
        "robust": preprocessing.RobustScaler,
        "minmax": preprocessing.MinMaxScaler,
    }
    if config["scaler"] in scalers:
        steps.append(("scale", scalers[config["scaler"]]()))
    pre = config["preprocessor"]
    if pre == "pca":
        steps.append(
            ("pca", decomposition.PCA(n_components=config["pca__n_components"], svd_solver="full", random_state=seed))
        )
    elif pre == "select":
        steps.append(("select", fs.SelectPercentile(score_func, percentile=config["select__percentile"])))
    elif pre == "poly":
        if n_features > 20:
            steps.append(("select", fs.SelectKBest(score_func, k=20)))
        steps.append(
            (
                "poly",
                preprocessing.PolynomialFeatures(
                    degree=2, interaction_only=config["poly__interaction_only"], include_bias=False
                ),
            )
        )
        steps.append(("rescale", preprocessing.StandardScaler()))
    elif pre == "nystroem":
        steps.append(
            (
                "nystroem",
                kernel_approximation.Nystroem(
                    gamma=config["nystroem__gamma"], n_components=config["nystroem__n_components"], random_state=seed
                ),
            )
        )
    estimator = _estimator(config, task, seed)
    if not classify:
        estimator = TransformedTargetRegressor(regressor=estimator, transformer=preprocessing.StandardScaler())
    steps.append(("model", estimator))
    return Pipeline(steps)


def describe(config: dict[str, Any], task: str) -> str:
    """A one-line human description, e.g. `median-impute > standard > pca(n_components=0.9) > rf(...)`."""
    config = prune(config, task)

    def step(name: str) -> str:
        hp = ", ".join(f"{k.split('__', 1)[1]}={_short(v)}" for k, v in config.items() if k.startswith(name + "__"))
        return f"{name}({hp})" if hp else name

    parts = [f"{config['imputer']}-impute"]
    if config["scaler"] != "none":
        parts.append(config["scaler"])
    if config["preprocessor"] != "none":
        parts.append(step(config["preprocessor"]))
    parts.append(step(config["estimator"]))
    return " > ".join(parts)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
