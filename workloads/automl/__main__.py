"""`python -m workloads.automl`: one CASH search (random, bayes or evolution) on a CSV file or a named data set.

How to run:
    python -m workloads.automl --data sylvine --searcher bayes --budget-s 300 --json runs/sylvine-bayes.json
    python -m workloads.automl --data my.csv --target price --task regression --searcher evolution --budget-s 600
    python -m workloads.automl --smoke-test

Results to expect: a run folder with summary.json (cv_score, test_score, n_trials, best_pipeline, ensemble),
model.skops + model.json (the refit ensemble, a plain scikit-learn estimator), anytime.png, and tune/ with
Tune's trial folders and TensorBoard event files (`tensorboard --logdir <out>/tune`).
"""

from __future__ import annotations

import sys

from workloads.contract import UsageError, fail, init_ray, parse_config
from workloads.automl.search import AutoMLConfig, prepare, run


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(AutoMLConfig, argv, prog="python -m workloads.automl")
    try:
        prepared = prepare(cfg)  # bad input ends here, before Ray starts
        init_ray()
        summary = run(cfg, prepared)
    except UsageError as exc:
        fail(str(exc), code=1)
    line = (f"{summary['dataset']} {summary['searcher']}: cv {summary['metric']} {summary['cv_score']:.4f}, "
            f"test {summary['test_score']:.4f} (best single {summary['test_score_best_single']:.4f}), "
            f"{summary['n_trials']} trials, ensemble of {len(summary['ensemble']['members'])} -> "
            f"{summary['files']['model']}")
    print(line, file=sys.stdout)


if __name__ == "__main__":
    main()
