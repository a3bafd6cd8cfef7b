"""A TPOT-style genetic search over the CASH space, written as a Ray Tune `Searcher`.

Generation 0 is `population_size` random pipelines (warm-start points first). Once `population_size` results of
a generation are in, the pool of current survivors plus the new offspring is cut to the top `survival` fraction
(20%): offspring compete with their parents, so a good parent survives until something better appears.
New offspring are made from the survivors by block crossover (a whole pipeline step with its hyperparameters
from either parent) and/or mutation (one gene: a step's choice or a hyperparameter), and always differ from
their parents and from every pipeline tried before.

With `objective="score_time"` survivors are chosen by NSGA-II (non-dominated fronts on high score and low fit
time, then crowding distance) instead of by score alone.

The searcher does not wait for stragglers: Tune asks for a trial whenever a slot is free, and offspring are bred
from the survivors of the moment, so no CPU idles at a generation boundary.
"""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from workloads.automl import space


class EvolutionSearch(Searcher):
    """Genetic programming over pipelines: population, top-20% survival, crossover, mutation."""

    def __init__(
        self,
        task: str,
        metric: str = "cv_score",
        mode: str = "max",
        population_size: int = 12,
        survival: float = 0.2,
        crossover_rate: float = 0.5,
        objective: str = "score",
        points_to_evaluate: list[dict] | None = None,
        seed: int = 0,
    ):
        super().__init__(metric=metric, mode=mode)
        if objective not in ("score", "score_time"):
            raise ValueError(f"objective must be 'score' or 'score_time', not {objective!r}")
        self.task = task
        self.population_size = population_size
        self.n_survivors = max(2, math.ceil(survival * population_size))
        self.crossover_rate = crossover_rate
        self.objective = objective
        self.rng = np.random.default_rng(seed)
        self.to_seed = [space.prune(p, task) for p in points_to_evaluate or []]
        self.generation = 0
        self.survivors: list[dict] = []  # individuals: config, score, fit_time, generation, parents, trial_id
        self.fresh: list[dict] = []  # completed since the last selection
        self.pending: dict[str, dict] = {}
        self.history: list[dict] = []  # every completed individual, in completion order
        self.seen: set[str] = set()

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        """Accept Tune's metric/mode; the space is ours, so a `param_space` is refused."""
        if config:
            return False
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    # -- Tune's interface --------------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any]:
        if self.to_seed:
            config, parents = self.to_seed.pop(0), ()
        elif len(self.survivors) < 2:  # generation 0: random pipelines
            config, parents = self._new(lambda: space.sample(self.task, space.random_draw(self.rng))), ()
        else:
            config, parents = self._offspring()
        self.seen.add(_key(config))
        self.pending[trial_id] = {
            "config": config,
            "generation": self.generation,
            "parents": parents,
            "trial_id": trial_id,
        }
        return dict(config)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        individual = self.pending.pop(trial_id, None)
        if individual is None:
            return
        score = (result or {}).get(self._metric)
        bad = error or score is None or not math.isfinite(score)
        sign = 1.0 if self._mode == "max" else -1.0
        individual["score"] = -math.inf if bad else sign * float(score)
        individual["fit_time"] = float((result or {}).get("fit_time", math.inf))
        self.history.append(individual)
        self.fresh.append(individual)
        if len(self.fresh) >= self.population_size:
            self._select()

    # -- evolution ---------------------------------------------------------------------------------------
    def _select(self) -> None:
        """Survivors := the best `n_survivors` of parents + offspring; the next generation begins."""
        pool = self.survivors + self.fresh
        self.survivors = (
            _nsga2(pool, self.n_survivors)
            if self.objective == "score_time"
            else sorted(pool, key=lambda ind: ind["score"], reverse=True)[: self.n_survivors]
        )
        self.fresh = []
        self.generation += 1

    def _offspring(self) -> tuple[dict, tuple]:
        """A child of one or two survivors that differs from its parents and from everything tried."""
        ranked = self.survivors
        a = ranked[int(self.rng.integers(len(ranked)))]
        if self.rng.random() < self.crossover_rate:
            b = ranked[int(self.rng.integers(len(ranked)))]
            parents = (a["trial_id"], b["trial_id"])

            def make():
                child = space.crossover(a["config"], b["config"], self.task, self.rng)
                return child if self.rng.random() < 0.5 else space.mutate(child, self.task, self.rng)
        else:
            parents = (a["trial_id"],)

            def make():
                return space.mutate(a["config"], self.task, self.rng)

        return self._new(make), parents

    def _new(self, make) -> dict:
        """Call `make` until it yields a pipeline not tried before (mutating further if it keeps repeating)."""
        child = make()
        for _ in range(50):
            if _key(child) not in self.seen:
                break
            child = space.mutate(child, self.task, self.rng)
        return child

    # -- Tune checkpoints the searcher, so `--resume` continues the same evolution --------------------------
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _nsga2(pool: list[dict], k: int) -> list[dict]:
    """NSGA-II survival: fill with whole non-dominated fronts (max score, min fit time), break the last front
    by crowding distance."""
    points = [(ind["score"], -ind["fit_time"]) for ind in pool]
    remaining = list(range(len(pool)))
    chosen: list[int] = []
    while remaining and len(chosen) < k:
        front = [
            i
            for i in remaining
            if not any(
                points[j][0] >= points[i][0] and points[j][1] >= points[i][1] and points[j] != points[i]
                for j in remaining
            )
        ]
        if len(chosen) + len(front) > k:
            front = sorted(front, key=lambda i: _crowding(front, points)[i], reverse=True)[: k - len(chosen)]
        chosen += front
        remaining = [i for i in remaining if i not in front]
    return [pool[i] for i in chosen]


def _crowding(front: list[int], points: list[tuple]) -> dict[int, float]:
    distance = {i: 0.0 for i in front}
    for axis in range(2):
        order = sorted(front, key=lambda i: points[i][axis])
        span = points[order[-1]][axis] - points[order[0]][axis]
        distance[order[0]] = distance[order[-1]] = math.inf
        for lo, mid, hi in zip(order, order[1:], order[2:]):
            if span > 0 and math.isfinite(span):
                distance[mid] += (points[hi][axis] - points[lo][axis]) / span
    return distance
