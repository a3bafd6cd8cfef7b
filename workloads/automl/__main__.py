"""`python -m workloads.automl`: one CASH search (random, bayes or evolution) on a CSV file or a named data set.

How to run:
    python -m workloads.automl --data sylvine --searcher bayes --budget-s 300 --json runs/sylvine-bayes.json
    python -m workloads.automl --data my.csv --target price --task regression --searcher evolution --budget-s 600
    python -m workloads.automl --smoke-test
    python -m workloads.automl --resume --out runs/automl/<timestamp>   # continue an interrupted search
    python -m workloads.automl --smoke-test --out s3://bucket/runs/x   # the whole run in an object store

Results to expect: a run folder with summary.json (= --json: the common keys of workloads/contract.py and cv_score,
test_score, n_trials, best_pipeline, ensemble, ...), model.skops + model.json (the refit ensemble, a plain
scikit-learn estimator), anytime.png, and tune/ with Tune's trial folders and TensorBoard event files
(`tensorboard --logdir <out>/tune`). --out may be a URI (s3://, gs://, file://; endpoint and credentials as in
workloads/storage.py): Tune writes its trials there, the rest is copied there when the run ends, and
`--resume --out URI` continues from the store. Exit code 2 for bad input (before Ray starts, or a local --out on a
multi-node cluster), 1 for a failure.
"""

from __future__ import annotations

import sys

from workloads.automl import search
from workloads.automl.search import AutoMLConfig, run


def main(argv: list[str] | None = None) -> int:
    return search.main(AutoMLConfig, run, argv, prog="python -m workloads.automl")


if __name__ == "__main__":
    sys.exit(main())
