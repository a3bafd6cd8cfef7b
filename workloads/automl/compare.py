"""`python -m workloads.automl.compare`: the three searchers on several data sets, a Table-1-style table beside the
paper's numbers, and anytime plots (best CV score against time, one line per searcher).

How to run (the measured setting: 5 minutes per data set and searcher, 5-fold CV, 2 CPUs, about 70 minutes):
    python -m workloads.automl.compare --data sylvine,jasmine,cadata,digits --budget-s 300 --out runs/automl-compare

Every run is an ordinary `workloads.automl` run in <out>/<data set>/<searcher>/ (Tune trials and TensorBoard logs
under its tune/ folder); `--resume` keeps runs that already have a summary.json and does the rest. --out may be a
URI (s3://bucket/path, ...: each run and the table land in the store, see workloads/storage.py).
Results: <out>/table.md, <out>/summary.json (the common keys of workloads/contract.py, mean_rank, results, the
paper's numbers), <out>/anytime_<data set>.png. Exit code 2 for bad flags (e.g. a data set that is not named).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workloads import storage
from workloads.automl import data as automl_data
from workloads.automl import search as automl_search
from workloads.automl.search import MAX_BUDGET_S, MIN_BUDGET_S, SEARCHERS, AutoMLConfig, plot_anytime, search
from workloads.contract import UsageError, WorkloadConfig, field

# Table 1 of Stadelmann et al. (2018): test scores (balanced accuracy; R2 for cadata), AutoML-challenge splits.
PAPER = {
    "sylvine": {"Auto-sklearn": 0.9454, "TPOT": 0.9493, "random search": 0.9233},
    "jasmine": {"Auto-sklearn": 0.8348, "TPOT": 0.8281, "random search": 0.8371},
    "cadata": {"Auto-sklearn": 0.7801, "TPOT": 0.8017, "random search": 0.7119},
}
PAPER_MEAN_OF_TEN = {"Auto-sklearn": 0.7654, "TPOT": 0.7497, "random search": 0.6991}
LABELS = {"digits": "digits (scikit-learn's, a substitute for the challenge's)"}

SHARED_SETTINGS = ("budget_s", "seed", "cv_folds", "concurrency", "warm_start")  # the same for every searcher


@dataclasses.dataclass
class CompareConfig(WorkloadConfig):
    """Random vs Bayesian vs evolutionary CASH search on several data sets, same budget and concurrency."""

    workload: ClassVar[str] = "automl-compare"  # runs/automl-compare/<timestamp>/

    data: str = field(
        "sylvine,jasmine,cadata,digits", help="comma-separated named data sets: " + ", ".join(automl_data.NAMED)
    )
    searchers: str = field(",".join(SEARCHERS), help="comma-separated searchers")
    budget_s: float = field(
        300.0, help="budget per data set and searcher, in seconds", minimum=MIN_BUDGET_S, maximum=MAX_BUDGET_S
    )
    seed: int = field(0, help="seed of every run")
    cv_folds: int = field(5, help="K-fold cross-validation", minimum=2)
    concurrency: int = field(2, help="trials at once, the same for every searcher", minimum=1)
    warm_start: bool = field(True, help="portfolio warm start for bayes and evolution")
    smoke_test: bool = field(False, help="tiny comparison: wine and diabetes, at most 15 s each, 3 folds")
    resume: bool = field(False, help="keep the runs in --out that already finished, do the others")

    def smoke(self) -> CompareConfig:
        return dataclasses.replace(self, data="wine,diabetes", budget_s=min(self.budget_s, 15.0), cv_folds=3)

    def validate(self) -> None:
        unknown = [s for s in self.searchers.split(",") if s not in SEARCHERS]
        if unknown:
            raise UsageError(f"unknown searcher(s) {', '.join(unknown)}; use {', '.join(SEARCHERS)}")
        if not self.data.strip(","):
            raise UsageError("--data needs at least one data set")
        for name in self.data.split(","):
            if name and name not in automl_data.NAMED:
                raise UsageError(f"compare takes named data sets ({', '.join(automl_data.NAMED)}), not {name!r}")


def run(cfg: CompareConfig, out: Path) -> dict[str, Any]:
    """Run every (data set, searcher) pair in <out>/<data set>/<searcher>/ and write the table and plots; the
    summary's own keys."""
    root = cfg.out if storage.is_uri(cfg.out) else str(out)  # where the runs go; `out` holds table and plots
    storage.require_shared(cfg.out or root, flag="--out")
    datasets = [d for d in cfg.data.split(",") if d]
    searchers = cfg.searchers.split(",")
    runs: dict[str, dict[str, Any]] = {}
    plots = {}
    for name in datasets:
        runs[name] = {}
        for searcher in searchers:
            folder = storage.join(root, name, searcher)
            done = _finished(folder) if cfg.resume else None
            if done:
                runs[name][searcher] = done
                continue
            shared = {key: getattr(cfg, key) for key in SHARED_SETTINGS}
            run_cfg = AutoMLConfig(data=name, searcher=searcher, out=folder, **shared)
            try:
                runs[name][searcher] = search(run_cfg)
            except UsageError as exc:
                runs[name][searcher] = {"error": str(exc)}
                print(f"{name} {searcher}: {exc}")
        traces = {s: r.get("trace", []) for s, r in runs[name].items()}
        plots[f"anytime_{name}"] = str(
            plot_anytime(traces, out / f"anytime_{name}.png", f"{name}: best CV score over time")
        )
    ranks = mean_ranks(runs, searchers)
    table = format_table(runs, searchers, ranks, cfg)
    (out / "table.md").write_text(table)
    print(table)
    return {
        "mean_rank": ranks,
        "paper": PAPER,
        "paper_mean_of_ten": PAPER_MEAN_OF_TEN,
        "results": {d: {s: _brief(r) for s, r in rs.items()} for d, rs in runs.items()},
        "outputs": {
            "table": storage.join(root, "table.md"),
            **{key: storage.join(root, Path(path).name) for key, path in plots.items()},
        },
    }


def _finished(folder: str) -> dict[str, Any] | None:
    """The summary of a run that finished in `folder`, a local folder or a URI (kept by --resume), else None."""
    data = storage.read_bytes(storage.join(folder, "summary.json"))
    summary = json.loads(data) if data is not None else None
    return summary if summary and summary.get("status", "ok") == "ok" else None


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "metric",
        "cv_score",
        "test_score",
        "test_score_best_single",
        "test_score_normalized",
        "n_trials",
        "n_finished",
        "budget_s",
        "split",
        "error",
    )
    brief = {k: result[k] for k in keys if k in result}
    if "best_pipeline" in result:
        brief["best_pipeline"] = result["best_pipeline"]["description"]
        brief["ensemble_members"] = len(result["ensemble"]["members"])
        brief["trace"] = result["trace"]
    return brief


def mean_ranks(runs: dict[str, dict[str, Any]], searchers: list[str]) -> dict[str, float]:
    """Mean rank of each searcher by test score over the data sets where all of them finished (1 = best)."""
    from scipy.stats import rankdata

    rows = [
        [-rs[s]["test_score"] for s in searchers]
        for rs in runs.values()
        if all("test_score" in rs.get(s, {}) for s in searchers)
    ]
    if not rows:
        return {}
    return dict(zip(searchers, np.mean([rankdata(r) for r in rows], axis=0).round(2).tolist()))


def format_table(
    runs: dict[str, dict[str, Any]], searchers: list[str], ranks: dict[str, float], cfg: CompareConfig
) -> str:
    """Markdown: test score (CV score, trials) per searcher, then Table 1's numbers for the same data set."""
    paper_cols = list(PAPER_MEAN_OF_TEN)
    head = ["data set", "metric", *searchers, *[f"paper: {c}" for c in paper_cols]]
    lines = [
        f"Test scores after {cfg.budget_s:g} s per data set and searcher, {cfg.cv_folds}-fold CV, "
        f"{cfg.concurrency} trials at once, seed {cfg.seed}; cells: test (CV, trials). Balanced accuracy is "
        "the plain form; R2 for regression. Paper: Table 1 of Stadelmann et al. (2018).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, rs in runs.items():
        metric = next((r["metric"] for r in rs.values() if "metric" in r), "")
        cells = [LABELS.get(name, name), metric]
        for s in searchers:
            r = rs.get(s, {})
            cells.append(
                f"{r['test_score']:.4f} ({r['cv_score']:.4f}, {r['n_trials']})" if "test_score" in r else "failed"
            )
        cells += [f"{PAPER[name][c]:.4f}" if name in PAPER else "—" for c in paper_cols]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        "| mean rank (1 = best) | | "
        + " | ".join(str(ranks.get(s, "—")) for s in searchers)
        + " | "
        + " | ".join(f"mean of 10: {PAPER_MEAN_OF_TEN[c]:.4f}" for c in paper_cols)
        + " |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return automl_search.main(CompareConfig, run, argv, prog="python -m workloads.automl.compare")


if __name__ == "__main__":
    sys.exit(main())
