"""Read Ray Tune experiments from a run storage (a local folder or a pyarrow filesystem URI) for the dashboard.

Tune 2.60 writes, per experiment folder, `experiment_state-<session>.json` (every trial's config, status and
last result; one file per session, so a restored experiment has several), the searcher's state, `tuner.pkl`
and one folder per trial with `params.json`, `result.json` (JSON lines) and `progress.csv`. The driver writes
into a staging folder and syncs it to the storage about every 10 s (`TUNE_GLOBAL_CHECKPOINT_S`), so that is
how fresh a running experiment can look here.

Only JSON is read (never pickles). Parsed files are cached by (mtime, size), and `result.json` files are read
incrementally from where the last read stopped, so polling a 500-trial experiment costs a few stats.
Experiment names come from the listing only: a requested name must match `NAME_RE` *and* be in the listing
before any path is built from it.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from workloads.storage import filesystem

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}$")
STATE_RE = re.compile(r"^experiment_state-.*\.json$")
MAX_DEPTH = 6  # runs/automl-compare/<ts>/<data set>/<searcher>/tune is 5 below the storage
RUNNING_WINDOW_S = 120.0  # a state file older than this with unfinished trials: the run was interrupted
MAX_JSON_BYTES = 64 * 2**20
MAX_PANELS = 24
METADATA_KEYS = (
    "workload",
    "searcher",
    "dataset",
    "metric",
    "mode",
    "budget_s",
    "group",
    "label",
    "started",
    "status",
    "curve_x",
    "curve_y",
    "group_by",
)
CURVE_Y = ("env_runners/episode_return_mean", "episode_return_mean", "episode_reward_mean", "episode_return")
CURVE_X = (
    "num_env_steps_sampled_lifetime",
    "env_runners/num_env_steps_sampled_lifetime",
    "env_steps",
    "timesteps_total",
    "training_iteration",
)
MIN_WORDS = ("loss", "error", "mse", "rmse", "mae", "regret", "time")
UNFINISHED = {"RUNNING", "PENDING", "PAUSED"}


def valid_name(name: str) -> bool:
    """A dashboard experiment name: letters, digits, `_.=+-`, no `..`, nothing path-like."""
    return bool(NAME_RE.match(name)) and ".." not in name


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = value
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """Config values as JSON: numbers (non-finite as None), strings, bools, None; anything else as its repr."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        return _number(value)
    return str(value)


def _parse_state(raw: bytes) -> tuple[dict, list[dict]]:
    """An experiment_state file: its runner data and stats, and per trial what the dashboard shows."""
    state = json.loads(raw)
    trials = []
    for pair in state.pop("trial_data", None) or []:
        trial, runtime = (json.loads(part) if isinstance(part, str) else part for part in pair)
        last = runtime.get("last_result") or {}
        trials.append(
            {
                "trial_id": trial.get("trial_id") or last.get("trial_id"),
                "trainable": trial.get("trainable_name"),
                "status": trial.get("status"),
                "config": {k: _jsonable(v) for k, v in _flatten(trial.get("config") or {}).items()},
                "last": _flatten(last),
                "start_time": runtime.get("start_time"),
                "result_time": runtime.get("last_result_time"),
                "folder": trial.get("relative_logdir"),
            }
        )
    return state, trials


@dataclass
class _Result:
    """What the dashboard keeps of one trial's result.json: the curve points, read incrementally."""

    offset: int = 0
    points: list = field(default_factory=list)


@dataclass
class _Entry:
    name: str
    path: str
    state_files: list  # FileInfo of experiment_state-*.json, oldest first


class ExperimentStore:
    """The experiments under one storage root, parsed on demand and cached; safe to share between threads."""

    def __init__(self, storage: str, listing_ttl_s: float = 1.0):
        self.storage = storage
        self.fs, self.root = filesystem(storage)
        self.listing_ttl_s = listing_ttl_s
        self._lock = threading.Lock()
        self._json: dict[str, tuple[tuple, Any]] = {}
        self._results: dict[str, _Result] = {}
        self._searchers: dict[str, str] = {}
        self._listing: tuple[float, dict[str, _Entry]] = (0.0, {})

    # -- files -----------------------------------------------------------------------------------------------

    def _info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(paths)

    def _read_json(self, info: pafs.FileInfo, parse=json.loads) -> Any:
        """`parse` of a file's bytes, cached by (mtime, size); None when missing or too big; when the file is
        caught mid-write (it does not parse), the previous value stands."""
        if info.type != pafs.FileType.File or info.size > MAX_JSON_BYTES:
            return None
        key = (info.mtime_ns, info.size)
        cached = self._json.get(info.path)
        if cached and cached[0] == key:
            return cached[1]
        try:
            with self.fs.open_input_stream(info.path) as stream:
                value = parse(stream.read())
        except (OSError, ValueError, TypeError):
            return cached[1] if cached else None
        self._json[info.path] = (key, value)
        return value

    def _read_results(self, info: pafs.FileInfo, x_keys: tuple, y_keys: tuple) -> list:
        """(x, y) points of a trial's result.json, reading only the bytes appended since the last call."""
        cached = self._results.get(info.path)
        if cached is None or info.size < cached.offset:
            cached = self._results[info.path] = _Result()
        if info.size > cached.offset:
            with self.fs.open_input_file(info.path) as handle:
                handle.seek(cached.offset)
                chunk = handle.read(info.size - cached.offset)
            end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
            for line in chunk[:end].splitlines():
                try:
                    row = _flatten(json.loads(line))
                except ValueError:
                    continue
                y = next((_number(row.get(k)) for k in y_keys if k in row), None)
                x = next((_number(row.get(k)) for k in x_keys if k in row), None)
                if x is not None and y is not None:
                    cached.points.append([x, round(y, 6)])
            cached.offset += end
        return cached.points

    # -- listing ---------------------------------------------------------------------------------------------

    def _scan(self) -> dict[str, _Entry]:
        """Folders holding experiment_state-*.json, down to MAX_DEPTH below the root (not inside experiments)."""
        found: dict[str, _Entry] = {}
        frontier = [(self.root, 0)]
        while frontier:
            folder, depth = frontier.pop()
            try:
                children = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
            except OSError:
                continue
            # Oldest session first, by the session timestamp in the name: a restore re-uploads the older
            # files, so their mtimes say nothing.
            states = sorted(
                (c for c in children if c.type == pafs.FileType.File and STATE_RE.match(c.base_name)),
                key=lambda c: c.base_name,
            )
            if states:
                rel = folder[len(self.root) :].strip("/")
                name = rel.replace("/", ".") if rel else folder.rstrip("/").rsplit("/", 1)[-1]
                if valid_name(name) and name not in found:
                    found[name] = _Entry(name, folder, states)
                continue
            if depth < MAX_DEPTH:
                frontier.extend(
                    (c.path, depth + 1)
                    for c in children
                    if c.type == pafs.FileType.Directory and not c.base_name.startswith(".")
                )
        return found

    def _entries(self) -> dict[str, _Entry]:
        stamp, entries = self._listing
        if time.monotonic() - stamp > self.listing_ttl_s:
            entries = self._scan()
            self._listing = (time.monotonic(), entries)
        return entries

    # -- one experiment --------------------------------------------------------------------------------------

    def _metadata(self, entry: _Entry, state: dict) -> dict[str, Any]:
        """Workload facts: Tune's own files first, then the run's config/summary/state.json, then dlwild.json."""
        parent = entry.path.rstrip("/").rsplit("/", 1)[0]
        files = [
            f"{parent}/config.json",
            f"{parent}/state.json",
            f"{parent}/summary.json",
            f"{parent}/dlwild.json",
            f"{entry.path}/dlwild.json",
        ]
        meta: dict[str, Any] = {"metric": (state.get("runner_data") or {}).get("_metric")}
        rel = entry.path[len(self.root) :].strip("/").split("/")
        if len(rel) >= 3:  # runs/<workload>/<timestamp>/... as workloads.contract.run_dir lays it out
            meta["workload"] = rel[0]
        if len(rel) >= 5:  # <out>/<data set>/<searcher>/tune, as workloads.automl.compare lays it out
            meta["group"] = "/".join(rel[:-2])
        for info, doc in zip(self._info(files), files):
            data = self._read_json(info)
            if not isinstance(data, dict):
                continue
            if doc.endswith("config.json"):
                data = {"searcher": data.get("searcher"), "dataset": data.get("data"), "budget_s": data.get("budget_s")}
            elif doc.endswith("summary.json"):
                data = {k: data.get(k) for k in ("workload", "dataset", "searcher", "budget_s")}
            meta.update({k: _jsonable(data[k]) for k in METADATA_KEYS if data.get(k) is not None})
        if not meta.get("searcher"):
            if entry.path not in self._searchers:
                self._searchers[entry.path] = self._searcher_from_state(entry)
            meta["searcher"] = self._searchers[entry.path]
        if meta.get("mode") not in ("max", "min"):
            metric = str(meta.get("metric") or "").lower()
            meta["mode"] = "min" if any(w in metric for w in MIN_WORDS) else "max"
        return meta

    def _searcher_from_state(self, entry: _Entry) -> str:
        """Tune's searcher, from the names of the state files it saves next to the experiment state."""
        try:
            names = [c.base_name for c in self.fs.get_file_info(pafs.FileSelector(entry.path))]
        except OSError:
            return ""
        if any(n.startswith("basic-variant-state") for n in names):
            return "random/grid"
        return "searcher" if any(n.startswith("search_gen_state") for n in names) else ""

    def _trials(self, entry: _Entry) -> tuple[dict, list[dict]]:
        """(newest experiment state without its trial data, trials as the dashboard shows them)."""
        return self._read_json(entry.state_files[-1], _parse_state) or ({}, [])

    def _started(self, entry: _Entry, meta: dict, trials: list[dict]) -> float | None:
        """The experiment's first start (a restored run keeps its time axis): the workload's, else the oldest
        session's, else the earliest trial's."""
        if _number(meta.get("started")) is not None:
            return float(meta["started"])
        first, _ = self._read_json(entry.state_files[0], _parse_state) or ({}, [])
        start = _number((first.get("stats") or {}).get("start_time"))
        starts = [t["start_time"] for t in trials if _number(t["start_time"]) is not None]
        return start if start is not None else (min(starts) if starts else None)

    def _summarise(self, entry: _Entry) -> tuple[dict, list[dict], dict]:
        state, trials = self._trials(entry)
        meta = self._metadata(entry, state)
        metric, mode = meta.get("metric"), meta["mode"]
        if not metric:  # a grid without a Tune metric (e.g. RL): score by the episode return if reported
            metric = next((k for t in trials for k in CURVE_Y if k in t["last"]), None)
        started = self._started(entry, meta, trials)
        for t in trials:
            t["score"] = _number(t["last"].get(metric)) if metric else None
            t["fit_time"] = _number(t["last"].get("fit_time", t["last"].get("time_total_s")))
            end = next(
                (
                    _number(v)
                    for v in (t["last"].get("end_time"), t["result_time"], t["last"].get("timestamp"))
                    if _number(v) is not None
                ),
                None,
            )
            t["end_s"] = round(end - started, 3) if end is not None and started is not None else None
        scores = [t["score"] for t in trials if t["score"] is not None]
        best = (max if mode == "max" else min)(scores) if scores else None
        done = sum(t["status"] in ("TERMINATED", "ERROR") for t in trials)
        state_age = time.time() - entry.state_files[-1].mtime_ns / 1e9
        if meta.get("status"):
            status = meta["status"]
        elif any(t["status"] in UNFINISHED for t in trials) or not trials:
            status = "running" if state_age < RUNNING_WINDOW_S else "interrupted"
        else:
            status = "finished"
        ends = [t["end_s"] for t in trials if t["end_s"] is not None]
        summary = {
            "name": entry.name,
            "path": entry.path[len(self.root) :].strip("/") or entry.name,
            "workload": meta.get("workload") or "",
            "searcher": meta.get("searcher") or "",
            "dataset": meta.get("dataset") or "",
            "metric": metric or "",
            "mode": mode,
            "status": status,
            "best_score": best,
            "trials_done": done,
            "trials_total": len(trials),
            "elapsed_s": round(max(ends), 1) if ends else 0.0,
            "budget_s": _number(meta.get("budget_s")),
            "started": started,
            "updated": entry.state_files[-1].mtime_ns / 1e9,
            "sessions": len(entry.state_files),
        }
        return summary, trials, meta

    # -- public ----------------------------------------------------------------------------------------------

    def list_experiments(self) -> list[dict]:
        """Every experiment's summary, newest first (by start time, else by last update)."""
        with self._lock:
            rows = [self._summarise(e)[0] for e in self._entries().values()]
        return sorted(rows, key=lambda r: (r["started"] or r["updated"], r["name"]), reverse=True)

    def experiment(self, name: str) -> dict | None:
        """One experiment's trials, anytime series, per-hyperparameter data and learning curves; None if unknown."""
        if not valid_name(name):
            return None
        with self._lock:
            entries = self._entries()
            entry = entries.get(name)
            if entry is None:
                return None
            summary, trials, meta = self._summarise(entry)
            series = [self._anytime(summary["searcher"] or name, trials, summary["mode"])]
            if meta.get("group"):
                for other in entries.values():
                    if other.name == name:
                        continue
                    o_summary, o_trials, o_meta = self._summarise(other)
                    if o_meta.get("group") == meta["group"]:
                        series.append(self._anytime(o_summary["searcher"] or other.name, o_trials, o_summary["mode"]))
            curves = self._curves(entry, trials, meta)
        rows = [
            {
                "trial_id": t["trial_id"],
                "status": t["status"],
                "score": t["score"],
                "fit_time": t["fit_time"],
                "end_s": t["end_s"],
                "config": t["config"],
            }
            for t in trials
        ]
        return {
            **summary,
            "group": meta.get("group") or "",
            "trials": rows,
            "anytime": series,
            "params": self._params(trials),
            "curves": curves,
        }

    # -- derived views ---------------------------------------------------------------------------------------

    @staticmethod
    def _anytime(label: str, trials: list[dict], mode: str) -> dict:
        """Best score so far against seconds since start, one point per finished trial (step curve)."""
        finished = sorted(
            (
                t
                for t in trials
                if t["status"] in ("TERMINATED", "ERROR") and t["score"] is not None and t["end_s"] is not None
            ),
            key=lambda t: t["end_s"],
        )
        points, best = [], None
        for t in finished:
            if best is None or (t["score"] > best if mode == "max" else t["score"] < best):
                best = t["score"]
            points.append([t["end_s"], best])
        return {"label": label, "points": points}

    @staticmethod
    def _params(trials: list[dict]) -> list[dict]:
        """Per hyperparameter: its kind and one value per trial (None where a conditional one is absent)."""
        keys: dict[str, None] = {}
        for t in trials:
            keys.update(dict.fromkeys(t["config"]))
        params = []
        for key in keys:
            values = [t["config"].get(key) for t in trials]
            present = [v for v in values if v is not None]
            if len(set(map(str, present))) < 2:
                continue  # constant: nothing to see against the score
            numeric = all(_number(v) is not None for v in present)
            params.append(
                {
                    "name": key,
                    "kind": "numeric" if numeric else "categorical",
                    "values": values if numeric else [None if v is None else str(v) for v in values],
                }
            )
        return params[:MAX_PANELS]

    def _curves(self, entry: _Entry, trials: list[dict], meta: dict) -> list[dict]:
        """RL learning curves (return against env steps), one per trial, labelled by algorithm; [] when the
        results have no return metric."""
        y_keys = (meta["curve_y"],) if meta.get("curve_y") else CURVE_Y
        x_keys = (meta["curve_x"],) if meta.get("curve_x") else CURVE_X
        candidates = [t for t in trials if t["folder"] and any(k in t["last"] for k in y_keys)]
        if not candidates:
            return []
        infos = self._info([f"{entry.path}/{t['folder']}/result.json" for t in candidates])
        group_by = meta.get("group_by")
        curves = []
        for t, info in zip(candidates, infos):
            if info.type != pafs.FileType.File:
                continue
            algo_key = group_by or next((k for k in t["config"] if k == "algo" or k.endswith("/algo")), None)
            algo = (t["config"].get(algo_key) if algo_key else None) or t["trainable"]
            curves.append(
                {"trial_id": t["trial_id"], "algorithm": str(algo), "points": self._read_results(info, x_keys, y_keys)}
            )
        return curves
