"""AutoML as CASH search on Ray Tune: random, Bayesian (TPE) and evolutionary search over scikit-learn pipelines.

Run with `python -m workloads.automl --help`; compare the searchers with `python -m workloads.automl.compare`.
This package's `__init__` imports nothing heavy, so the peer benchmark can import `workloads.automl.data` alone.
"""
