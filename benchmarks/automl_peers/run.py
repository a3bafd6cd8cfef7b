"""FLAML and TPOT on the same splits, budget and cores as `workloads.automl.compare`: where do we stand?

Each tool lives in its own virtual environment (see setup.sh) and this script runs inside one of them. It imports
`workloads.automl.data` from the project (numpy, pandas and scikit-learn only) for loading and splitting, so the
training and test rows are the same as ours; every result records the split's fingerprint to prove it.

How to run (or just `bash benchmarks/automl_peers/run.sh`):
    bash benchmarks/automl_peers/setup.sh
    benchmarks/automl_peers/.venv/flaml/bin/python benchmarks/automl_peers/run.py --tool flaml \
        --data sylvine,jasmine,cadata,digits --budget-s 300 --out runs/automl-peers
    benchmarks/automl_peers/.venv/tpot/bin/python benchmarks/automl_peers/run.py --tool tpot ... (same flags)
    python benchmarks/automl_peers/run.py --table --out runs/automl-peers --ours runs/automl-compare/summary.json

Scores: plain balanced accuracy (classification) and R2 (regression) on the holdout test split; both tools use
5-fold CV on the training split, the same seed and n_jobs = 2 (the two cores our searchers use).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _balanced_accuracy_loss(X_val, y_val, estimator, labels, X_train, y_train, *args, **kwargs):
    """FLAML custom metric (minimised): 1 - balanced accuracy on the validation fold."""
    from sklearn.metrics import balanced_accuracy_score

    score = balanced_accuracy_score(y_val, estimator.predict(X_val))
    return 1.0 - score, {"balanced_accuracy": score}


def run_flaml(X, y, task: str, budget_s: float, folds: int, seed: int, cores: int):
    from flaml import AutoML

    automl = AutoML()
    automl.fit(
        X,
        y,
        task="regression" if task == "regression" else "classification",
        metric="r2" if task == "regression" else _balanced_accuracy_loss,
        time_budget=budget_s,
        eval_method="cv",
        n_splits=folds,
        n_jobs=cores,
        seed=seed,
        verbose=0,
    )
    cv = 1.0 - automl.best_loss
    return automl, cv, f"{automl.best_estimator} {automl.best_config}"


def run_tpot(X, y, task: str, budget_s: float, folds: int, seed: int, cores: int):
    import tpot

    cls = tpot.TPOTRegressor if task == "regression" else tpot.TPOTClassifier
    scorer = "r2" if task == "regression" else "balanced_accuracy"
    model = cls(
        scorers=[scorer],
        scorers_weights=[1],
        cv=folds,
        max_time_mins=budget_s / 60,
        max_eval_time_mins=max(0.5, budget_s / 60 / 5),
        n_jobs=cores,
        random_state=seed,
        verbose=0,
    )
    model.fit(X, y)
    pipeline = model.fitted_pipeline_
    return pipeline, float("nan"), str(pipeline).replace("\n", " ")


def benchmark(args) -> None:
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score, r2_score

    sys.path.insert(0, str(ROOT))
    from workloads.automl import data as automl_data

    runner = {"flaml": run_flaml, "tpot": run_tpot}[args.tool]
    out = Path(args.out) / args.tool
    out.mkdir(parents=True, exist_ok=True)
    for name in args.data.split(","):
        dataset = automl_data.load_dataset(name)
        train, test = automl_data.split_data(dataset.y, dataset.task, args.seed, args.test_size)
        start = time.time()
        model, cv, description = runner(
            dataset.X[train], dataset.y[train], dataset.task, args.budget_s, args.cv_folds, args.seed, args.cores
        )
        wall = time.time() - start
        predictions = np.asarray(model.predict(dataset.X[test])).ravel()
        y_test = dataset.y[test]
        regression = dataset.task == "regression"
        score = r2_score(y_test, predictions) if regression else balanced_accuracy_score(y_test, predictions)
        result = {
            "tool": args.tool,
            "dataset": name,
            "task": dataset.task,
            "metric": "r2" if regression else "balanced_accuracy",
            "test_score": float(score),
            "cv_score": None if cv != cv else float(cv),
            "budget_s": args.budget_s,
            "wall_s": round(wall, 1),
            "cv_folds": args.cv_folds,
            "cores": args.cores,
            "seed": args.seed,
            "model": description[:500],
            "split_fingerprint": automl_data.split_fingerprint(test),
        }
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"{args.tool} {name}: test {result['metric']} {score:.4f} in {wall:.0f} s "
            f"(split {result['split_fingerprint']})",
            flush=True,
        )


def table(args) -> None:
    """Markdown table: our three searchers (from compare's summary.json) beside FLAML and TPOT."""
    ours = json.loads(Path(args.ours).read_text())["results"] if args.ours and Path(args.ours).is_file() else {}
    peers: dict[str, dict[str, dict]] = {}
    for path in sorted(Path(args.out).glob("*/*.json")):
        result = json.loads(path.read_text())
        peers.setdefault(result["dataset"], {})[result["tool"]] = result
    searchers = sorted({s for runs in ours.values() for s in runs}, key=["random", "bayes", "evolution"].index)
    tools = sorted({t for runs in peers.values() for t in runs})
    head = ["data set", "metric", *[f"ours: {s}" for s in searchers], *tools]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in list(dict.fromkeys([*ours, *peers])):
        runs, others = ours.get(name, {}), peers.get(name, {})
        metric = next((r["metric"] for r in [*runs.values(), *others.values()] if "metric" in r), "")
        cells = [name, metric]
        cells += [f"{runs[s]['test_score']:.4f}" if "test_score" in runs.get(s, {}) else "—" for s in searchers]
        cells += [f"{others[t]['test_score']:.4f}" if t in others else "—" for t in tools]
        lines.append("| " + " | ".join(cells) + " |")
        fingerprints = {r.get("split_fingerprint") for r in others.values()}
        fingerprints |= {r["split"]["fingerprint"] for r in runs.values() if "split" in r}
        if len(fingerprints) > 1:
            lines.append(f"| (warning: {name} was not split the same way: {sorted(map(str, fingerprints))}) |")
    text = "\n".join(lines) + "\n"
    (Path(args.out) / "table.md").write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", choices=["flaml", "tpot"], help="which peer to run (in its own venv)")
    parser.add_argument("--data", default="sylvine,jasmine,cadata,digits", help="comma-separated named data sets")
    parser.add_argument("--budget-s", type=float, default=300.0, help="time budget per data set, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cv-folds", type=int, default=5)
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--cores", type=int, default=2, help="n_jobs for the tool (our searchers use 2 trials)")
    parser.add_argument("--out", default="runs/automl-peers")
    parser.add_argument("--table", action="store_true", help="only merge the results into <out>/table.md")
    parser.add_argument("--ours", default="", help="workloads.automl.compare's summary.json, for the table")
    args = parser.parse_args()
    if args.table:
        table(args)
    elif args.tool:
        benchmark(args)
    else:
        parser.error("give --tool flaml|tpot, or --table")


if __name__ == "__main__":
    main()
