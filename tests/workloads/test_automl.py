"""workloads.automl: the CASH space, data cleaning, the evolutionary searcher, ensemble selection, real Tune
searches with each searcher, and the CLI's answers to bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workloads import contract
from workloads.automl import data, ensemble, space
from workloads.automl.evolution import EvolutionSearch, _nsga2

from . import s3

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3_store(monkeypatch):
    """A real S3-protocol server (moto) on 127.0.0.1 with the bucket `bucket`; AWS_* variables set."""
    yield from s3.store_for_test(monkeypatch)


# -- the space ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["wine", "diabetes"])
def test_every_estimator_family_builds_fits_and_predicts(name):
    dataset = data.load_dataset(name)
    rng = np.random.default_rng(0)
    families = space.space_choices(dataset.task, "estimator")
    assert len(families) >= 8
    for family in families:
        config = space.sample(
            dataset.task,
            space.random_draw(rng),
            fixed={"imputer": "median", "scaler": "standard", "preprocessor": "none", "estimator": family},
        )
        pipeline = space.build_pipeline(config, dataset.task, dataset.X.shape[1]).fit(dataset.X, dataset.y)
        assert pipeline.predict(dataset.X).shape == dataset.y.shape
        if dataset.task != "regression":
            assert pipeline.predict_proba(dataset.X).shape == (len(dataset.y), 3)


def test_one_definition_serves_random_tpe_and_evolution():
    import optuna
    from ray.tune.search.sample import Domain

    for task in ("multiclass", "regression"):
        # Optuna's define-by-run suggests exactly the active genes.
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(20):
            trial = study.ask()
            space.optuna_space(trial, task)
            assert trial.params == space.prune(trial.params, task)
            study.tell(trial, 0.0)
        # Tune's random sampling draws every gene; pruning leaves a valid configuration.
        domains = space.tune_domains(task)
        assert all(isinstance(d, Domain) for d in domains.values())
        drawn = {k: d.sample() for k, d in domains.items()}
        pruned = space.prune(drawn, task)
        assert set(pruned) < set(drawn) and pruned["estimator"] == drawn["estimator"]
        space.build_pipeline(pruned, task, 5)
        # Mutation and crossover stay inside the space and change something.
        rng = np.random.default_rng(1)
        a = space.sample(task, space.random_draw(rng))
        b = space.sample(task, space.random_draw(rng))
        for _ in range(30):
            child = space.mutate(a, task, rng)
            assert child != a and child == space.prune(child, task)
            mixed = space.crossover(a, b, task, rng)
            assert mixed == space.prune(mixed, task)
            assert all(mixed[k] in (a.get(k), b.get(k)) for k in ("imputer", "scaler", "estimator"))


# -- data --------------------------------------------------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_cleaning_header_index_junk_nans_constants(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["id,note,a,b,const,label"]
    for i in range(60):
        a = "" if i % 7 == 0 else f"{rng.normal():.3f}"  # missing values
        b = "oops" if i == 3 else f"{rng.normal():.3f}"  # a stray junk cell
        rows.append(f"{i},text{i},{a},{b},1,{'yes' if i % 2 else 'no'}")
    with_header = _write(tmp_path / "h.csv", "\n".join(rows) + "\n")
    ds = data.load_dataset(str(with_header), target="label", task="auto")
    assert ds.task == "binary" and ds.classes == ["no", "yes"]
    assert ds.feature_names == ["id", "a", "b"]  # 'note' is non-numeric, 'const' is constant
    assert np.isnan(ds.X).any()
    assert any("non-numeric" in n for n in ds.notes) and any("constant" in n for n in ds.notes)
    # Same data without a header, target by index from the end.
    no_header = _write(tmp_path / "n.csv", "\n".join(rows[1:]) + "\n")
    ds2 = data.load_dataset(str(no_header), target="-1", task="binary")
    assert ds2.X.shape == ds.X.shape and (ds2.y == ds.y).all()


def test_bad_data_is_refused_with_a_reason(tmp_path):
    csv = _write(tmp_path / "r.csv", "x,y\n" + "".join(f"{i},{i * 1.37:.2f}\n" for i in range(50)))
    with pytest.raises(data.DataError, match="continuous"):
        data.load_dataset(str(csv), target="y", task="binary")
    with pytest.raises(data.DataError, match="not found"):
        data.load_dataset(str(csv), target="price", task="regression")
    with pytest.raises(data.DataError, match="not found"):
        data.load_dataset(str(tmp_path / "missing.csv"), target="y")
    assert data.load_dataset(str(csv), target="y").task == "regression"


def test_split_is_fixed_by_seed_and_stratified():
    ds = data.load_dataset("breast_cancer")
    train, test = data.split_data(ds.y, ds.task, seed=0)
    again = data.split_data(ds.y, ds.task, seed=0)[1]
    assert data.split_fingerprint(test) == data.split_fingerprint(again)
    assert data.split_fingerprint(test) != data.split_fingerprint(data.split_data(ds.y, ds.task, seed=1)[1])
    assert abs(ds.y[test].mean() - ds.y[train].mean()) < 0.02
    assert not set(train) & set(test)


# -- evolution ---------------------------------------------------------------------------------------------
def _fitness(config: dict) -> float:
    """A fake CV score: the estimator family sets the level, hyperparameters move it."""
    level = {"hgb": 0.9, "rf": 0.85, "et": 0.8}.get(config["estimator"], 0.6)
    leaves = config.get("hgb__max_leaf_nodes", 8) / 128  # best at the top of its range
    return level + 0.05 * leaves + 0.01 * (config["imputer"] == "median")


def test_evolution_evolves():
    searcher = EvolutionSearch("binary", population_size=10, seed=0)
    by_id = {}
    best_survivor_per_generation = {}
    for i in range(80):
        trial_id = f"t{i}"
        config = searcher.suggest(trial_id)
        individual = searcher.pending[trial_id]
        for parent in individual["parents"]:  # offspring differ from their parents
            assert config != by_id[parent]
        by_id[trial_id] = config
        searcher.on_trial_complete(trial_id, {"cv_score": _fitness(config), "fit_time": 1.0})
        if searcher.survivors:
            best_survivor_per_generation[searcher.generation] = searcher.survivors[0]["score"]
    assert searcher.generation >= 5  # generations advance
    assert len(searcher.survivors) == 2  # top 20% of 10
    assert len({json.dumps(c, sort_keys=True) for c in by_id.values()}) == len(by_id)  # nothing tried twice
    bests = [best_survivor_per_generation[g] for g in sorted(best_survivor_per_generation)]
    assert bests == sorted(bests)  # survivors carry over: the best never gets lost
    assert bests[-1] > bests[0]  # and selection improves on generation 0
    assert all(ind["parents"] for ind in searcher.history[10:])  # after generation 0 everything is bred from survivors


def test_nsga2_keeps_the_pareto_front():
    pool = [
        {"score": s, "fit_time": t, "trial_id": str(i)}
        for i, (s, t) in enumerate([(0.9, 10.0), (0.8, 1.0), (0.85, 5.0), (0.7, 20.0), (0.6, 0.5)])
    ]
    chosen = {ind["trial_id"] for ind in _nsga2(pool, 3)}
    assert "3" not in chosen  # dominated by (0.9, 10)
    assert chosen <= {"0", "1", "2", "4"} and "0" in chosen


# -- ensemble selection ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_ensemble_never_worse_than_best_single(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=300)
    truth = np.eye(3)[y]
    predictions = [np.clip(truth + rng.normal(0, 0.6 + 0.1 * i, truth.shape), 0, None) for i in range(8)]
    counts, score = ensemble.caruana(predictions, y, "multiclass", rounds=20)
    best_single = max(ensemble.score_predictions(y, p, "multiclass") for p in predictions)
    assert score >= best_single and counts.sum() >= 1
    y_reg = rng.normal(size=200)
    regressions = [y_reg + rng.normal(0, 1.0, 200) for _ in range(6)]
    counts, score = ensemble.caruana(regressions, y_reg, "regression", rounds=20)
    assert score >= max(ensemble.score_predictions(y_reg, p, "regression") for p in regressions)
    assert counts.sum() > 1  # averaging independent errors helps here, so it must pick several


# -- real Tune runs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("searcher", ["random", "bayes", "evolution"])
def test_each_searcher_returns_a_fitted_ensemble(ray_session, tmp_path, searcher):
    from workloads.automl.search import AutoMLConfig, load_model, search

    cfg = AutoMLConfig(
        data="breast_cancer",
        searcher=searcher,
        budget_s=12,
        cv_folds=3,
        population_size=6,
        asha=searcher == "random",
        out=str(tmp_path),
        json=str(tmp_path / "result.json"),
    )
    summary = search(cfg)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result == summary == json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "metric",
        "cv_score",
        "test_score",
        "n_trials",
        "budget_s",
        "best_pipeline",
        "ensemble",
        *contract.SUMMARY_KEYS,
    ):
        assert key in result
    assert result["workload"] == "automl" and result["status"] == "ok" and 0 < result["search_s"] < result["wall_s"]
    assert result["metric"] == "balanced_accuracy" and result["n_trials"] >= 4
    assert summary["cv_score"] > 0.9 and summary["test_score"] > 0.85
    assert summary["ensemble"]["oof_score"] >= summary["ensemble"]["best_single_oof_score"]
    model = load_model(summary["outputs"]["model"])
    ds = data.load_dataset("breast_cancer")
    assert (model.predict(ds.X) == ds.y).mean() > 0.9
    assert list(tmp_path.glob("tune/*/events.out.tfevents*"))  # TensorBoard logs per trial
    assert (tmp_path / "anytime.png").stat().st_size > 0
    if searcher == "evolution":
        assert summary["evolution"]["generations"] >= 2
        assert len(summary["evolution"]["survivors"]) == 2


# -- the CLI -----------------------------------------------------------------------------------------------
def _cli(*args: str, module: str = "workloads.automl", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "no/such.csv", "--target", "y"], "not found"),
        (["--data", "{csv}", "--target", "price"], "target column 'price' not found"),
        (["--data", "{csv}", "--target", "y", "--task", "binary"], "looks continuous"),
        (["--data", "{junk}", "--target", "y"], "no usable numeric feature"),
        (["--data", "wine", "--budget-s", "1"], "--budget-s must be at least 5"),
        (["--data", "wine", "--budget-s", "nan"], "--budget-s must be at least 5"),
        (["--data", "wine", "--searcher", "grid"], "argument --searcher: invalid choice: 'grid'"),
        (["--data", "wine", "--cv-folds", "1"], "--cv-folds must be at least 2"),
        (["--data", "wine", "--cv-folds", "60"], "a class has fewer training rows than --cv-folds 60"),
        (["--data", "wine", "--test-size", "1"], "--test-size must be at most 0.99"),
        (["--data", "wine", "--no-such-flag"], "unrecognized arguments"),
        (["--target", "y"], "--data is required"),
        (["--resume"], "--resume needs --out"),
        (["--resume", "--out", "{tmp}/nothing"], "nothing to resume"),
        (["--data", "wine", "--out", "foo://bucket/x"], "--out foo://bucket/x: Unrecognized filesystem type"),
        (["--data", "wine", "--json", "s3://bucket/x.json"], "--json takes a local file"),
    ],
)
def test_cli_rejects_bad_input_in_one_line(tmp_path, args, message):
    """Usage errors exit 2 with one line, before Ray starts (no run folder, no Ray session)."""
    csv = _write(tmp_path / "r.csv", "x,y\n" + "".join(f"{i},{i * 1.37:.2f}\n" for i in range(50)))
    junk = _write(tmp_path / "j.csv", "name,y\n" + "".join(f"n{i},{i % 2}\n" for i in range(20)))
    args = [a.format(csv=csv, junk=junk, tmp=tmp_path) for a in args]
    proc = _cli(*args, env={"DLWILD_RUNS": str(tmp_path / "runs")})
    assert proc.returncode == contract.USAGE_EXIT
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / "runs").exists() and "Started a local Ray instance" not in proc.stdout + proc.stderr


def test_cli_runs_a_messy_csv_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["f1,f2,junk,flat,target"]
    for i in range(120):
        f1, f2 = rng.normal(size=2)
        cell = "" if i % 9 == 0 else f"{f1:.3f}"
        lines.append(f"{cell},{f2:.3f},w{i},0,{int(f1 + f2 > 0)}")
    csv = _write(tmp_path / "messy.csv", "\n".join(lines) + "\n")
    proc = _cli(
        "--data",
        str(csv),
        "--target",
        "target",
        "--task",
        "binary",
        "--searcher",
        "random",
        "--budget-s",
        "8",
        "--cv-folds",
        "2",
        "--out",
        str(tmp_path / "run"),
        "--json",
        str(tmp_path / "out.json"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result == json.loads((tmp_path / "run" / "summary.json").read_text())  # --json: the same summary
    assert result["test_score"] > 0.7 and result["n_trials"] >= 2
    assert result["config"]["task"] == "binary" and result["status"] == "ok"
    assert any("constant" in n for n in result["data_notes"])


def test_load_model_refuses_types_outside_scikit_learn(tmp_path):
    import skops.io
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from workloads.automl.search import load_model

    skops.io.dump(make_pipeline(FunctionTransformer(print), Ridge()), tmp_path / "m.skops")
    with pytest.raises(ValueError, match="builtins.print"):
        load_model(tmp_path / "m.skops")


# -- resume after a kill -----------------------------------------------------------------------------------
def _saved_trials(tune_dir: Path) -> tuple[dict, dict[str, dict]]:
    """The newest experiment state Tune saved in `tune_dir`: (the state, {trial id: trial with its last result})."""
    files = sorted(tune_dir.glob("experiment_state-*.json"))  # one per session, named by its start
    if not files:
        return {}, {}
    try:
        state = json.loads(files[-1].read_text())
    except ValueError:  # caught mid-write
        return {}, {}
    trials = {}
    for pair in state["trial_data"]:
        trial, runtime = (json.loads(p) if isinstance(p, str) else p for p in pair)
        trials[trial["trial_id"]] = {**trial, "last_result": runtime.get("last_result") or {}}
    state["mtime"] = files[-1].stat().st_mtime
    return state, trials


@pytest.mark.slow
def test_a_killed_search_resumes_the_same_experiment(tmp_path):
    """SIGKILL a real `python -m workloads.automl` search once Tune has saved a few finished trials, then
    `--resume --out SAME`: the same experiment goes on (the trials finished before the kill stay, once each and not
    re-run), trial ids stay unique, the budget counts the time before the kill, and the summary is complete."""
    import signal
    import time

    out, budget = tmp_path / "run", 40.0
    env = {**os.environ, "DLWILD_RUNS": str(tmp_path / "runs")}
    command = [
        sys.executable,
        "-m",
        "workloads.automl",
        "--data",
        "breast_cancer",
        "--searcher",
        "bayes",
        "--budget-s",
        str(budget),
        "--cv-folds",
        "3",
        "--out",
        str(out),
    ]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )  # its own process group: Ray's processes die with it
        try:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and first.poll() is None:
                state, trials = _saved_trials(out / "tune")
                done = {i: t for i, t in trials.items() if t["status"] == "TERMINATED"}
                # the state must hold some finished trials and a good part of the budget (spent before the kill)
                if len(done) >= 3 and state["mtime"] - state["stats"]["start_time"] >= 15:
                    break
                time.sleep(0.2)
            assert first.poll() is None, (
                "the search ended before it could be killed: " + (tmp_path / "first.log").read_text()[-2000:]
            )
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the driver, the embedded Ray's head processes and workers
            first.wait()
    assert not (out / "summary.json").exists() and len(done) >= 3
    spent = state["mtime"] - state["stats"]["start_time"]  # Tune's budget used up to the saved state
    finished_before = {i: (t["config"], t["last_result"]["end_time"]) for i, t in done.items()}

    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "workloads.automl",
            "--resume",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "resumed.json"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]

    final_state, final = _saved_trials(out / "tune")
    assert final_state["stats"]["start_time"] > state["stats"]["start_time"]  # a second session of the same run
    for trial_id, (config, end_time) in finished_before.items():  # kept, once, and not run again
        assert final[trial_id]["status"] == "TERMINATED" and final[trial_id]["config"] == config
        assert final[trial_id]["last_result"]["end_time"] == end_time
    assert len(final) > len(trials)  # the search went on with new trials
    folders = sorted(p.name for p in (out / "tune").glob("trial_*"))
    assert len(folders) == len(set(folders)) and {f"trial_{i}" for i in final} <= set(folders)
    for trial_id, trial in final.items():  # no folder holds two trials' results
        result_file = out / "tune" / f"trial_{trial_id}" / "result.json"
        if not result_file.exists():  # a trial started as the budget ran out reports nothing
            assert "training_iteration" not in trial["last_result"], trial_id
            continue
        rows = [json.loads(line) for line in result_file.open()]
        assert all(row["trial_id"] == trial_id and row["config"] == trial["config"] for row in rows)
    # the budget: the resumed session searched only for what was left of it
    ends = [t["last_result"].get("end_time", 0) for t in final.values()]
    resumed_span = max(ends) - final_state["stats"]["start_time"]
    assert resumed_span < budget - spent + 6, (resumed_span, spent)

    summary = json.loads((out / "summary.json").read_text())
    assert json.loads((tmp_path / "resumed.json").read_text()) == summary
    assert summary["status"] == "ok" and set(contract.SUMMARY_KEYS) <= set(summary)
    assert summary["config"]["resume"] and summary["config"]["budget_s"] == budget  # the saved settings
    assert summary["n_trials"] == len(final) and summary["n_finished"] >= len(finished_before)
    assert summary["test_score"] > 0.85 and summary["best_pipeline"]["description"]
    assert summary["search_s"] < budget + 10  # the time between the kill and the resume does not count
    assert (out / "model.skops").is_file() and (out / "anytime.png").is_file()


# -- the run in an object store ----------------------------------------------------------------------------
def test_out_s3_puts_the_whole_run_in_the_store_and_resumes_from_it(s3_store, tmp_path):
    """`--out s3://bucket/runs/x` against a real S3-protocol server (moto): Tune's trials with their checkpoints
    (the out-of-fold predictions the ensemble reads back), summary.json, the model and the plot all land in the
    bucket, nothing stays local (no `s3:` folder, no staging folder); the model loads from the store; then
    `--resume --out` the same URI continues from what the store holds (the local copy is gone)."""
    import re

    from workloads.automl.search import load_model

    runs, uri = tmp_path / "runs", f"s3://{s3_store.bucket}/runs/x"
    env = {**s3_store.env, "DLWILD_RUNS": str(runs)}
    first = _cli(  # the smoke data set and budget, 2 folds: trials still finish on a busy machine
        "--data", "breast_cancer", "--searcher", "random", "--budget-s", "20", "--cv-folds", "2", "--out", uri, env=env
    )
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert f"summary: {uri}/summary.json (ok)" in first.stdout
    keys = s3_store.keys("runs/x/")
    summary = json.loads(s3_store.read("runs/x/summary.json"))
    assert summary["status"] == "ok" and summary["config"]["out"] == uri and summary["n_trials"] >= 2
    for name in ("config.json", "state.json", "model.skops", "model.json", "anytime.png"):
        assert f"runs/x/{name}" in keys, keys
    checkpoints = [k for k in keys if re.fullmatch(r"runs/x/tune/trial_[^/]+/checkpoint_\d+/oof\.npy", k)]
    assert len(checkpoints) >= 2, keys
    assert any(re.match(r"runs/x/tune/trial_[^/]+/events\.out\.tfevents", k) for k in keys)  # TensorBoard
    assert any(k.startswith("runs/x/tune/experiment_state-") for k in keys)
    assert summary["outputs"]["model"] == f"{uri}/model.skops" and summary["outputs"]["tune"] == f"{uri}/tune"
    assert not (ROOT / "s3:").exists() and not (tmp_path / "s3:").exists()
    assert not list(runs.rglob("*.json")), "the local staging folder should be gone once the run is in the store"
    model = load_model(summary["outputs"]["model"])  # read from the store
    ds = data.load_dataset("breast_cancer")
    assert (model.predict(ds.X) == ds.y).mean() > 0.9

    second = _cli("--resume", "--out", uri, "--json", str(tmp_path / "resumed.json"), env=env)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    resumed = json.loads(s3_store.read("runs/x/summary.json"))
    assert json.loads((tmp_path / "resumed.json").read_text()) == resumed
    assert resumed["status"] == "ok" and resumed["config"]["resume"] and resumed["config"]["budget_s"] == 20
    assert len(json.loads(s3_store.read("runs/x/state.json"))["sessions"]) == 2  # state.json read back, extended
    states = [k for k in s3_store.keys("runs/x/tune/") if k.startswith("runs/x/tune/experiment_state-")]
    assert len(states) == 2  # one per session: Tune restored the experiment from the store
    assert resumed["n_trials"] >= summary["n_trials"]  # the first session's trials are kept
    assert not (ROOT / "s3:").exists() and not list(runs.rglob("*.json"))


def test_out_in_a_missing_bucket_is_refused_before_ray_starts(s3_store, tmp_path):
    proc = _cli("--smoke-test", "--out", "s3://no-such-bucket/x", env={**s3_store.env, "DLWILD_RUNS": str(tmp_path)})
    assert proc.returncode == contract.USAGE_EXIT
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --out s3://no-such-bucket/x:"), proc.stderr[-2000:]
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr
