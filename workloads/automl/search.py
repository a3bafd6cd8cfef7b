"""One AutoML run: load and split the data, search the CASH space with Ray Tune, select an ensemble, refit, test.

All three searchers share the trainable (`cv_trainable`: K-fold cross-validation of one pipeline), the space
(workloads/automl/space.py), the wall-clock budget (Tune's `time_budget_s`) and the concurrency
(`max_concurrent_trials`, one CPU per trial); they differ only in how they pick the next configuration.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workloads import contract, storage
from workloads.automl import data as automl_data
from workloads.automl import ensemble, portfolio, space
from workloads.contract import UsageError, WorkloadConfig, config_from_dict, field, write_json

SEARCHERS = ("random", "bayes", "evolution")
METRIC = "cv_score"
MIN_BUDGET_S = 5.0  # less is too small for one trial's CV
MAX_BUDGET_S = 7 * 86400.0  # a week; Tune's time budget must be finite


@dataclass
class AutoMLConfig(WorkloadConfig):
    """CASH search (imputer, scaler, preprocessor, estimator and their hyperparameters) on Ray Tune."""

    workload: ClassVar[str] = "automl"

    data: str = field("", help="CSV file, or a named data set: " + ", ".join(automl_data.NAMED))
    target: str = field(
        "", help="target column: name or index (negative counts from the end); known for named data sets"
    )
    task: str = field("auto", help="auto infers it from the target", choices=("auto", *automl_data.TASKS))
    searcher: str = field(
        "bayes",
        help="random (Tune's random sampling) | bayes (Optuna TPE) | evolution (TPOT-style genetic search)",
        choices=SEARCHERS,
    )
    budget_s: float = field(
        300.0,
        help="wall-clock budget of the search in seconds, at least enough for one trial (ensemble refit comes after)",
        minimum=MIN_BUDGET_S,
        maximum=MAX_BUDGET_S,
    )
    seed: int = field(0, help="seed of the split, the CV folds, the searchers and the estimators")
    json: str = field("", help="also write the summary to this path")
    cv_folds: int = field(5, help="K of the K-fold cross-validation (stratified for classification)", minimum=2)
    test_size: float = field(0.2, help="fraction of rows held out for the test score", minimum=0.01, maximum=0.99)
    header: str = field(
        "auto", help="CSV header row (auto: a first row without any number)", choices=automl_data.HEADERS
    )
    warm_start: bool = field(True, help="start bayes/evolution from portfolio configurations of similar data sets")
    concurrency: int = field(2, help="trials run at once, one CPU each (the same for every searcher)", minimum=1)
    population_size: int = field(12, help="evolution: pipelines per generation (top 20%% survive)", minimum=2)
    nsga2: bool = field(False, help="evolution: select survivors by NSGA-II on (CV score, fit time)")
    asha: bool = field(False, help="stop weak pipelines early with ASHA over the CV folds")
    ensemble_rounds: int = field(50, help="rounds of greedy ensemble selection (1 = best single pipeline)", minimum=1)
    ensemble_candidates: int = field(30, help="best pipelines offered to ensemble selection", minimum=1)
    smoke_test: bool = field(False, help="tiny run: breast_cancer unless --data, at most 20 s, 3 folds")
    resume: bool = field(False, help="continue the interrupted search in --out (its saved settings are used)")
    out: str = field(
        "",
        help="run folder: a local folder or a URI (s3://bucket/path, gs://..., file:///shared/path); default "
        "runs/automl/<UTC timestamp>/. A multi-node cluster needs a URI",
    )

    def smoke(self) -> AutoMLConfig:
        return replace(self, data=self.data or "breast_cancer", budget_s=min(self.budget_s, 20.0), cv_folds=3)

    def checked(self) -> AutoMLConfig:
        """With --resume the settings saved in --out stand for the flags (--json may still be given); then the
        contract's checks, and the data loaded and split (bad input ends here, before Ray starts)."""
        return super(AutoMLConfig, self.saved() if self.resume else self).checked()

    def saved(self) -> AutoMLConfig:
        """The configuration of the interrupted run in --out (its config.json, local or in the store), marked to
        resume."""
        if not self.out:
            raise UsageError("--resume needs --out, the folder of the run to continue")
        text = _read(storage.join(self.out, "config.json"))
        if text is None:
            raise UsageError(f"nothing to resume in {self.out}: no config.json from an earlier run")
        saved = json.loads(text)
        return config_from_dict(
            AutoMLConfig, {**saved, "resume": True, "out": self.out, "json": self.json or saved.get("json", "")}
        )

    def validate(self) -> None:
        if storage.is_uri(self.json):
            raise UsageError(f"--json takes a local file, not {self.json}; with --out URI the summary is in the store")
        if storage.is_uri(self.out):
            try:  # a URI pyarrow cannot use, or a store it cannot reach or write, ends here, before Ray starts
                storage.check_writable(self.out)
            except (ValueError, OSError) as exc:
                raise UsageError(f"--out {self.out}: {exc}") from None
        if not self.data:
            raise UsageError("--data is required (a CSV file or one of " + ", ".join(automl_data.NAMED) + ")")
        prepare(self)


def _read(location: str) -> str | None:
    """The text of a file in a run folder or store (None when missing); UsageError naming --out when the location
    cannot be used (unknown scheme, store unreachable, no permission)."""
    try:
        data = storage.read_bytes(location)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--out: cannot read {location}: {exc}") from None
    return None if data is None else data.decode()


def metric_name(task: str) -> str:
    return "r2" if task == "regression" else "balanced_accuracy"


def cv_trainable(config: dict[str, Any], X: np.ndarray, y: np.ndarray, settings: dict[str, Any]) -> None:
    """K-fold cross-validation of one pipeline. Reports the running mean score after every fold (so ASHA can
    stop weak pipelines) and, after the last, a checkpoint with the out-of-fold predictions for ensembling."""
    from ray import tune
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold

    task, folds, seed = settings["task"], settings["cv_folds"], settings["seed"]
    classify = task != "regression"
    pipeline = space.build_pipeline(config, task, X.shape[1], seed)
    splitter = (StratifiedKFold if classify else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    oof = np.zeros((len(y), settings["n_classes"]) if classify else len(y), dtype=np.float32)
    scores, fit_time = [], 0.0
    for fold, (train, valid) in enumerate(splitter.split(X, y), start=1):
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = clone(pipeline).fit(X[train], y[train])
                if classify:
                    oof[np.ix_(valid, model.classes_)] = model.predict_proba(X[valid])
                else:
                    oof[valid] = model.predict(X[valid])
                scores.append(ensemble.score_predictions(y[valid], oof[valid], task))
        except Exception as exc:  # a pipeline that cannot fit this data scores worst, the search goes on
            tune.report(
                {
                    METRIC: settings["worst"],
                    "folds_done": folds,
                    "fit_time": fit_time,
                    "failed": 1,
                    "end_time": time.time(),
                    "error": f"{type(exc).__name__}: {exc}"[:200],
                }
            )
            return
        fit_time += time.perf_counter() - start
        metrics = {
            METRIC: float(np.mean(scores)),
            "folds_done": fold,
            "fit_time": fit_time,
            "failed": 0,
            "end_time": time.time(),
        }
        if fold < folds:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "oof.npy", oof)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _searcher(cfg: AutoMLConfig, task: str, warm: list[dict]):
    """The search algorithm (and Tune param_space, for random search) of `cfg.searcher`."""
    if cfg.searcher == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # A SearchGenerator, not a Searcher: it takes the concurrency limit itself.
        return BasicVariantGenerator(random_state=cfg.seed, max_concurrent=cfg.concurrency), space.tune_domains(task)
    if cfg.searcher == "bayes":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=cfg.seed, multivariate=True, group=True, n_startup_trials=10)
        return OptunaSearch(
            space=functools.partial(space.optuna_space, task=task),
            metric=METRIC,
            mode="max",
            sampler=sampler,
            points_to_evaluate=warm or None,
        ), None
    from workloads.automl.evolution import EvolutionSearch

    return EvolutionSearch(
        task,
        METRIC,
        "max",
        population_size=cfg.population_size,
        objective="score_time" if cfg.nsga2 else "score",
        points_to_evaluate=warm,
        seed=cfg.seed,
    ), None


@dataclass
class Prepared:
    """The data of a configuration, loaded and split."""

    dataset: automl_data.Dataset
    train_rows: np.ndarray
    test_rows: np.ndarray


def prepare(cfg: AutoMLConfig) -> Prepared:
    """Load and split the data of `cfg`; UsageError says what is wrong with it. Cached, so that the check before
    Ray starts (`validate`) and the run read the data once."""
    dataset, train_rows, test_rows = _load_split(
        cfg.data, cfg.target or None, cfg.task, cfg.header, cfg.seed, cfg.test_size
    )
    if dataset.task != "regression" and np.bincount(dataset.y[train_rows]).min() < cfg.cv_folds:
        raise UsageError(f"a class has fewer training rows than --cv-folds {cfg.cv_folds}; lower --cv-folds")
    return Prepared(dataset, train_rows, test_rows)


@functools.lru_cache(maxsize=1)
def _load_split(data: str, target: str | None, task: str, header: str, seed: int, test_size: float):
    try:
        dataset = automl_data.load_dataset(data, target, task, header)
    except automl_data.DataError as exc:
        raise UsageError(str(exc)) from None
    return (dataset, *automl_data.split_data(dataset.y, dataset.task, seed, test_size))


def run(cfg: AutoMLConfig, out: Path) -> dict[str, Any]:
    """The search of a checked `cfg` in the run folder `out` (Ray must be up): its own summary keys, which
    `contract.main` (the CLI) and `search` (from Python) complete with the common ones.

    Raises UsageError for bad input and for a budget in which no pipeline finished.
    """
    store = cfg.out if storage.is_uri(cfg.out) else None  # the run lives there; `out` is its local staging folder
    storage.require_shared(store or cfg.out or str(out), flag="--out")
    prepared = prepare(cfg)
    dataset, train_rows, test_rows = prepared.dataset, prepared.train_rows, prepared.test_rows
    task = dataset.task
    X, y = dataset.X[train_rows], dataset.y[train_rows]
    meta = automl_data.meta_features(X, y, task)
    warm = portfolio.warm_start(meta, task) if cfg.warm_start and cfg.searcher != "random" else []
    if store and cfg.resume:
        storage.download(store, out, skip=("tune",))  # config.json, state.json, ... of the earlier sessions
    if not cfg.resume:
        write_json(out / "config.json", asdict(cfg))
    sessions = _sessions(out / "state.json", cfg.resume)
    started = sessions[0]
    if store:  # in the store before the search starts, so that --resume finds them after a kill
        storage.upload(out, store, names=["config.json", "state.json"])
    location = store or str(out)

    result_grid = _tune(cfg, task, X, y, warm, location)
    finished = [r for r in result_grid if r.metrics and r.metrics.get("folds_done") == cfg.cv_folds]
    usable = sorted(
        (r for r in finished if not r.metrics.get("failed") and r.checkpoint is not None),
        key=lambda r: r.metrics[METRIC],
        reverse=True,
    )
    if not usable:
        raise UsageError(
            f"no pipeline finished its {cfg.cv_folds}-fold CV within --budget-s {cfg.budget_s:g}; "
            "raise --budget-s or lower --cv-folds"
        )
    trace = _trace(finished, started)
    final, selection = _ensemble(cfg, task, X, y, usable)
    X_test, y_test = dataset.X[test_rows], dataset.y[test_rows]
    test_score = _test_score(final, X_test, y_test, task)
    best_member = final.named_estimators_["m0"] if len(selection["members"]) > 1 else final
    summary = {
        "dataset": dataset.name,
        "task": task,
        "target": dataset.target,
        "searcher": cfg.searcher,
        "metric": metric_name(task),
        "cv_score": usable[0].metrics[METRIC],
        "test_score": test_score,
        "test_score_best_single": _test_score(best_member, X_test, y_test, task),
        "n_trials": len(result_grid),
        "n_finished": len(finished),
        "n_failed": sum(1 for r in finished if r.metrics.get("failed")),
        "budget_s": cfg.budget_s,
        "search_s": _search_s(finished, sessions),
        "best_pipeline": _pipeline_info(usable[0], task),
        "ensemble": selection,
        "warm_start": warm,
        "cv_folds": cfg.cv_folds,
        "concurrency": cfg.concurrency,
        "seed": cfg.seed,
        "split": {
            "seed": cfg.seed,
            "test_size": cfg.test_size,
            "train_rows": len(train_rows),
            "test_rows": len(test_rows),
            "fingerprint": automl_data.split_fingerprint(test_rows),
        },
        "meta_features": meta,
        "data_notes": dataset.notes,
        "trace": trace,
    }
    if cfg.searcher == "evolution":
        summary["evolution"] = evolution_state(location)
    if task != "regression":
        chance = 1.0 / len(dataset.classes)
        summary["test_score_normalized"] = (test_score - chance) / (1.0 - chance)  # ChaLearn's BAC form
    summary["outputs"] = _save(final, summary, dataset, out, location)
    print(
        f"{summary['dataset']} {summary['searcher']}: cv {summary['metric']} {summary['cv_score']:.4f}, "
        f"test {test_score:.4f} (best single {summary['test_score_best_single']:.4f}), {summary['n_trials']} "
        f"trials, ensemble of {len(selection['members'])} -> {summary['outputs']['model']}"
    )
    return summary


def search(cfg: AutoMLConfig) -> dict[str, Any]:
    """One search from Python, as `python -m workloads.automl` runs it (`workloads.automl.compare` runs its grid
    with this): the config checked, its run folder (or store), summary.json and its --json copy. Returns the
    summary; raises UsageError for bad input."""
    return execute(cfg.checked(), run)[1]


def execute(cfg: contract.WorkloadConfig, run_fn) -> tuple[str, dict[str, Any]]:
    """`contract.execute`, and for a URI --out the run folder published to the store: the contract writes the run
    into a local staging folder (Tune writes its trials to the store itself), which goes to the store once the run
    ends, however it ends (summary.json records a failure too), and is then removed. Returns (where the run is:
    the URI or the local folder, summary)."""
    if not storage.is_uri(cfg.out):
        out, summary = contract.execute(cfg, run_fn)
        return str(out), summary
    staging: list[Path] = []

    def staged(c, out: Path) -> dict[str, Any]:
        staging.append(out)
        return run_fn(c, out)

    try:
        _, summary = contract.execute(cfg, staged)
    finally:
        for folder in staging:
            _publish(folder, cfg.out)
    return cfg.out, summary


def _publish(folder: Path, store: str) -> None:
    """Copy a finished run's staging folder to its store and remove it; kept (and said so) if the copy fails."""
    import shutil
    import sys

    try:
        storage.upload(folder, store)
    except OSError as exc:
        print(f"warning: could not copy {folder} to {store} ({exc}); the run stays in {folder}", file=sys.stderr)
        return
    shutil.rmtree(folder, ignore_errors=True)


def main(config_cls: type, run_fn, argv: list[str] | None = None, prog: str | None = None) -> int:
    """`contract.main` over `execute`: the same flags, messages and exit codes, with the run (and the summary path
    printed at the end) in the store when --out is a URI."""
    import sys
    import traceback

    cfg = contract.parse_config(config_cls, argv, prog=prog)
    try:
        where, summary = execute(cfg, run_fn)
    except UsageError as exc:
        contract.fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded in summary.json by contract.execute, printed, exit 1
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return contract.FAILURE_EXIT
    print(f"summary: {storage.join(where, 'summary.json')} ({summary['status']})")
    return 0 if summary["status"] == "ok" else contract.FAILURE_EXIT


def _tune(cfg: AutoMLConfig, task: str, X: np.ndarray, y: np.ndarray, warm: list[dict], location: str):
    """The Tune run (or its continuation with --resume); trials and TensorBoard logs go to <location>/tune, a local
    folder or a URI (Tune writes there through the same pyarrow filesystem; every node needs access to it)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    settings = {
        "task": task,
        "cv_folds": cfg.cv_folds,
        "seed": cfg.seed,
        "n_classes": int(y.max()) + 1 if task != "regression" else 0,
        "worst": -1.0 if task == "regression" else 0.0,
    }
    trainable = tune.with_resources(tune.with_parameters(cv_trainable, X=X, y=y, settings=settings), {"cpu": 1})
    fs, path = storage.filesystem(location)
    fs_options = {"storage_filesystem": fs} if storage.is_uri(location) else {}
    storage_path = path if fs_options else location
    experiment = f"{storage_path}/tune"
    if cfg.resume and tune.Tuner.can_restore(experiment, **fs_options):
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, **fs_options)
        return tuner.fit()
    search_alg, param_space = _searcher(cfg, task, warm)
    scheduler = (
        ASHAScheduler(time_attr="folds_done", max_t=cfg.cv_folds, grace_period=1, reduction_factor=3)
        if cfg.asha
        else FIFOScheduler()
    )
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=-1,
            time_budget_s=cfg.budget_s,
            max_concurrent_trials=None if cfg.searcher == "random" else cfg.concurrency,
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(storage_path=storage_path, name="tune", verbose=1, **fs_options),
    )
    return tuner.fit()


def evolution_state(location: str | Path) -> dict[str, Any]:
    """Generations and survivors of an evolution run, from the searcher state Tune saved in <location>/tune (a
    local folder or a URI)."""
    import pickle

    import pyarrow.fs as pafs

    fs, path = storage.filesystem(storage.join(location, "tune"))
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return {}
    states = sorted(
        (i for i in fs.get_file_info(pafs.FileSelector(path)) if i.base_name.startswith("searcher-state-")),
        key=lambda i: (i.mtime_ns or 0, i.base_name),
    )
    states = [i for i in states if i.base_name.endswith(".pkl") and i.type == pafs.FileType.File]
    if not states:
        return {}
    with fs.open_input_stream(states[-1].path) as f:  # written by EvolutionSearch.save in this run's own folder
        state = pickle.loads(f.read())
    return {
        "generations": state["generation"],
        "population_size": state["population_size"],
        "survivors": [
            {
                "trial_id": s["trial_id"],
                "score": s["score"],
                "generation": s["generation"],
                "description": space.describe(s["config"], state["task"]),
            }
            for s in state["survivors"]
        ],
    }


def _trial_dirname(trial) -> str:
    """Short trial folder names (Tune's default spells out the whole configuration)."""
    return f"trial_{trial.trial_id}"


def _sessions(path: Path, resume: bool) -> list[float]:
    """The start times of this search's sessions, this one last, kept in state.json: the first is the start of the
    time axis (a resumed run keeps one), the others say where a --resume took over after an interruption."""
    state = json.loads(path.read_text()) if resume and path.is_file() else {}
    sessions = [*state.get("sessions", [state["started"]] if "started" in state else []), time.time()]
    write_json(path, {"started": sessions[0], "sessions": sessions})
    return sessions


def _search_s(finished: list, sessions: list[float]) -> float | None:
    """Seconds spent searching: in each session, from its start to the last trial that finished in it (for a run
    without interruption, the last point of the trace); the time between a kill and its --resume does not count."""
    ends = [r.metrics["end_time"] for r in finished]
    spans = [
        max(inside) - start
        for start, stop in zip(sessions, [*sessions[1:], math.inf])
        if (inside := [e for e in ends if start <= e < stop])
    ]
    return round(sum(spans), 2) if spans else None


def _trace(finished: list, started: float) -> list[list[float]]:
    """Anytime curve: (seconds since start, best CV score so far) at each finished trial."""
    points, best = [], -math.inf
    for r in sorted(finished, key=lambda r: r.metrics["end_time"]):
        best = max(best, r.metrics[METRIC])
        points.append([round(r.metrics["end_time"] - started, 2), best])
    return points


def _pipeline_info(result, task: str) -> dict[str, Any]:
    config = space.prune(result.config, task)
    return {
        "description": space.describe(config, task),
        "config": config,
        "cv_score": result.metrics[METRIC],
        "fit_time_s": result.metrics["fit_time"],
        "trial_id": result.metrics.get("trial_id"),
    }


def _ensemble(cfg: AutoMLConfig, task: str, X: np.ndarray, y: np.ndarray, usable: list):
    """Caruana selection over the best candidates' out-of-fold predictions; the chosen ensemble refit on all of
    the training split. Member m0 is always the best single pipeline."""
    candidates = usable[: cfg.ensemble_candidates]
    oof = []
    for r in candidates:
        with r.checkpoint.as_directory() as folder:
            oof.append(np.load(Path(folder) / "oof.npy"))
    counts, ensemble_score = ensemble.caruana(oof, y, task, rounds=cfg.ensemble_rounds)
    chosen = [0] + [i for i in np.flatnonzero(counts) if i != 0]
    pipelines = [space.build_pipeline(candidates[i].config, task, X.shape[1], cfg.seed) for i in chosen]
    final = ensemble.build_ensemble(pipelines, [int(counts[i]) for i in chosen], task, n_jobs=cfg.concurrency)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        final.fit(X, y)
    members = [{**_pipeline_info(candidates[i], task), "weight": int(counts[i])} for i in chosen]
    return final, {
        "members": members,
        "size": int(counts.sum()),
        "oof_score": ensemble_score,
        "best_single_oof_score": ensemble.score_predictions(y, oof[0], task),
        "candidates": len(candidates),
        "rounds": cfg.ensemble_rounds,
    }


def _test_score(model, X: np.ndarray, y: np.ndarray, task: str) -> float:
    from sklearn.metrics import balanced_accuracy_score, r2_score

    predictions = model.predict(X)
    return float(r2_score(y, predictions) if task == "regression" else balanced_accuracy_score(y, predictions))


def _save(model, summary: dict, dataset, out: Path, location: str) -> dict[str, str]:
    """The final model (skops), its description, and the anytime plot, written in `out`; the paths returned are
    where they end up: in `location`, the run's store when --out is a URI (`execute` copies them there)."""
    import skops.io

    model_path = out / "model.skops"
    skops.io.dump(model, model_path, compression=zipfile.ZIP_DEFLATED)
    description = {
        "how_to_load": "from workloads.automl.search import load_model; model = load_model(path)",
        "input": f"{len(dataset.feature_names)} numeric columns, in this order (NaN allowed)",
        "feature_names": dataset.feature_names,
        "classes": dataset.classes,
        "output": "class index into `classes`" if dataset.classes is not None else "predicted target",
        **{k: summary[k] for k in ("dataset", "task", "target", "metric", "cv_score", "test_score", "ensemble")},
    }
    write_json(out / "model.json", description)
    plot = plot_anytime(
        {summary["searcher"]: summary["trace"]},
        out / "anytime.png",
        f"{summary['dataset']}: best CV {summary['metric']} over time",
    )
    return {
        "model": storage.join(location, model_path.name),
        "model_description": storage.join(location, "model.json"),
        "anytime_plot": storage.join(location, plot.name),
        "tune": storage.join(location, "tune"),
    }


def load_model(path: str | Path):
    """Load a saved model with skops, trusting only scikit-learn's own types (and numpy dtypes). `path` may be a
    local file or a URI (s3://bucket/runs/x/model.skops)."""
    import skops.io

    if storage.is_uri(path):
        data = storage.read_bytes(path)
        if data is None:
            raise FileNotFoundError(path)
        untrusted = skops.io.get_untrusted_types(data=data)
    else:
        untrusted = skops.io.get_untrusted_types(file=path)
    unknown = [t for t in untrusted if not (t == "numpy.dtype" or t.startswith("sklearn."))]
    if unknown:
        raise ValueError(f"refusing to load {path}: unexpected types {', '.join(unknown)}")
    if storage.is_uri(path):
        return skops.io.loads(data, trusted=untrusted)
    return skops.io.load(path, trusted=untrusted)


def plot_anytime(traces: dict[str, list], path: Path, title: str) -> Path:
    """Best CV score against time, one step line per searcher."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, trace in traces.items():
        if trace:
            t, s = zip(*trace)
            ax.step(t, s, where="post", label=name)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("best CV score so far")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
