"""Data sets for the AutoML workload: CSV files and named sets, cleaned into a numeric matrix, split once.

This module imports only numpy, pandas and scikit-learn, so the FLAML/TPOT side-by-side benchmark
(benchmarks/automl_peers, its own virtual environment) imports `load_dataset` and `split_data` from here and
evaluates on exactly the same training and test rows.

Named data sets: scikit-learn's `digits`, `breast_cancer`, `wine`, `diabetes` and the AutoML-challenge files
`sylvine`, `jasmine`, `cadata`, read from `$DLWILD_DATA_DIR/automl/` or else `../shared/data/automl/` beside
the project root. Their target column and task are known, so `--target` and `--task` may be left out.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TASKS = ("binary", "multiclass", "regression")
HEADERS = ("auto", "yes", "no")  # does a CSV have a header row: guess, yes, no
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# name -> (file, target column (name or index), header row?, task)
CHALLENGE_FILES = {
    "sylvine": ("sylvine.csv", "0", "no", "binary"),
    "jasmine": ("jasmine.csv", "class", "yes", "binary"),
    "cadata": ("cadata.csv", "median_house_value", "yes", "regression"),
}
SKLEARN_SETS = {"digits": "multiclass", "breast_cancer": "binary", "wine": "multiclass", "diabetes": "regression"}
NAMED = sorted([*SKLEARN_SETS, *CHALLENGE_FILES])
MAX_CLASSES = 100  # more distinct labels than this is almost surely a continuous target


class DataError(ValueError):
    """Bad data or a mismatch between data and flags; the message says how to fix it."""


@dataclass
class Dataset:
    """A cleaned data set: float features (NaNs allowed, imputed in the pipeline) and an encoded target."""

    name: str
    X: np.ndarray
    y: np.ndarray  # class codes 0..C-1 for classification, floats for regression
    task: str
    target: str
    feature_names: list[str]
    classes: list | None = None  # original labels, index = code
    notes: list[str] = field(default_factory=list)  # what cleaning did (dropped columns, rows, ...)


def data_dir() -> Path:
    """Where the named challenge files live: `$DLWILD_DATA_DIR/automl`, else `<root>/../shared/data/automl`."""
    base = os.environ.get("DLWILD_DATA_DIR")
    return Path(base) / "automl" if base else PROJECT_ROOT.parent / "shared" / "data" / "automl"


def load_dataset(data: str, target: str | None = None, task: str | None = None, header: str = "auto") -> Dataset:
    """Load a named data set or a CSV file and clean it (see `clean`); raises DataError with a reason."""
    if task not in (None, "", "auto", *TASKS):
        raise DataError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    task = None if task in (None, "", "auto") else task
    if data in SKLEARN_SETS:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{data}")(as_frame=True)
        frame = bunch.frame
        return clean(frame, target or bunch.target.name, task or SKLEARN_SETS[data], name=data)
    if data in CHALLENGE_FILES:
        file, default_target, default_header, default_task = CHALLENGE_FILES[data]
        path = data_dir() / file
        if not path.is_file():
            raise DataError(
                f"data set {data!r} needs {path}; put the AutoML files there "
                "or set DLWILD_DATA_DIR to the folder that holds automl/"
            )
        return load_csv(path, target or default_target, task or default_task, default_header, name=data)
    path = Path(data)
    if path.suffix.lower() not in (".csv", ".txt") and not path.exists():
        raise DataError(f"--data {data!r} is neither a CSV file nor a named data set ({', '.join(NAMED)})")
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if not target:
        raise DataError("--target is required for a CSV file (a column name, or an index such as 0 or -1)")
    return load_csv(path, target, task, header, name=path.stem)


def _is_number(text) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def load_csv(path: Path, target: str, task: str | None, header: str = "auto", name: str = "") -> Dataset:
    """Read a CSV with or without a header row (auto: a first row without any number is a header)."""
    try:
        raw = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from None
    if header not in HEADERS:
        raise DataError(f"--header must be auto, yes or no, not {header!r}")
    first = [c for c in raw.iloc[0].tolist() if isinstance(c, str) and c.strip()]
    has_header = header == "yes" or (header == "auto" and bool(first) and not any(map(_is_number, first)))
    if has_header:
        names = [str(c).strip() if isinstance(c, str) else f"col{i}" for i, c in enumerate(raw.iloc[0])]
        raw = raw.iloc[1:].reset_index(drop=True)
    else:
        names = [f"col{i}" for i in range(raw.shape[1])]
    raw.columns = names
    if target not in names:
        try:
            index = int(target)
            target = names[index]
        except (ValueError, IndexError):
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise DataError(
                f"target column {target!r} not found in {path.name} (columns: {shown}; "
                f"or give an index from 0 to {len(names) - 1})"
            ) from None
    return clean(raw, target, task, name=name or path.stem)


def clean(frame: pd.DataFrame, target: str, task: str | None, name: str) -> Dataset:
    """Numeric features from a frame: rows without a target are dropped, mostly non-numeric columns are
    dropped, stray non-numeric cells become NaN (imputed later), constant columns are dropped."""
    if len(frame) == 0:
        raise DataError(f"{name}: no rows")
    notes = []
    y_raw = frame[target]
    keep = y_raw.notna() & (y_raw.astype(str).str.strip() != "")
    if not keep.all():
        notes.append(f"dropped {int((~keep).sum())} row(s) without a target")
    frame, y_raw = frame[keep], y_raw[keep]
    features = {}
    junk, constant, coerced = [], [], []
    for column in frame.columns:
        if column == target:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        present = frame[column].notna().sum()
        bad = int((values.isna() & frame[column].notna()).sum())
        if present and bad > present / 2:
            junk.append(str(column))
        elif values.nunique(dropna=True) <= 1:
            constant.append(str(column))
        else:
            if bad:
                coerced.append(str(column))
            features[str(column)] = values.astype(float)
    if junk:
        notes.append(f"dropped {len(junk)} non-numeric column(s): {', '.join(junk[:5])}")
    if coerced:
        notes.append(f"non-numeric cells set to missing in {len(coerced)} column(s): {', '.join(coerced[:5])}")
    if constant:
        notes.append(f"dropped {len(constant)} constant column(s)")
    if not features:
        raise DataError(f"{name}: no usable numeric feature column besides the target {target!r}")
    X = np.column_stack(list(features.values())).astype(np.float64)
    task = infer_task(y_raw, target, task)
    if task == "regression":
        y = pd.to_numeric(y_raw, errors="coerce")
        if y.isna().any():
            raise DataError(f"target {target!r} is not numeric; use --task binary or --task multiclass")
        return Dataset(name, X, y.to_numpy(np.float64), task, str(target), list(features), None, notes)
    numeric = pd.to_numeric(y_raw, errors="coerce")
    labels = numeric if numeric.notna().all() else y_raw.astype(str).str.strip()
    classes, y = np.unique(labels.to_numpy(), return_inverse=True)
    counts = np.bincount(y)
    if counts.min() < 2:
        raise DataError(
            f"class {classes[counts.argmin()]!r} of {target!r} has only {counts.min()} row; "
            "every class needs at least 2 rows for a stratified split"
        )
    classes = [c.item() if hasattr(c, "item") else c for c in classes]
    return Dataset(name, X, y.astype(np.int64), task, str(target), list(features), classes, notes)


def infer_task(y_raw: pd.Series, target: str, task: str | None) -> str:
    """Check the task against the target (or infer it): many distinct numbers mean regression."""
    numeric = pd.to_numeric(y_raw, errors="coerce")
    is_numeric = bool(numeric.notna().all())
    distinct = int(y_raw.nunique())
    continuous = is_numeric and (distinct > MAX_CLASSES or (distinct > 20 and (numeric % 1 != 0).any()))
    if task is None:
        return "regression" if is_numeric and distinct > 20 else ("binary" if distinct == 2 else "multiclass")
    if task == "regression":
        if not is_numeric:
            raise DataError(f"target {target!r} is not numeric; use --task binary or --task multiclass")
        return task
    if continuous:
        raise DataError(f"target {target!r} looks continuous ({distinct} distinct values); use --task regression")
    if task == "binary" and distinct != 2:
        raise DataError(f"--task binary needs 2 classes but target {target!r} has {distinct}; use --task multiclass")
    if distinct < 2:
        raise DataError(f"target {target!r} has a single class; nothing to learn")
    return task


def split_data(y: np.ndarray, task: str, seed: int = 0, test_size: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Training and test row indices: a holdout split with a fixed seed, stratified for classification."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    train, test = train_test_split(
        rows, test_size=test_size, random_state=seed, stratify=None if task == "regression" else y
    )
    return np.sort(train), np.sort(test)


def split_fingerprint(test_rows: np.ndarray) -> str:
    """A short hash of the test rows, printed by us and by the peer benchmark to show the splits are equal."""
    return hashlib.sha256(np.asarray(test_rows, dtype=np.int64).tobytes()).hexdigest()[:12]


def meta_features(X: np.ndarray, y: np.ndarray, task: str) -> dict[str, float]:
    """The few meta-features the warm start compares: size, dimensionality, classes, balance, missing values."""
    classify = task != "regression"
    counts = np.bincount(y) if classify else np.array([1])
    return {
        "log_rows": math.log10(len(X)),
        "log_features": math.log10(X.shape[1]),
        "classes": float(len(counts)) if classify else 0.0,
        "minority_fraction": float(counts.min() / counts.sum()) if classify else 0.0,
        "missing_fraction": float(np.isnan(X).mean()),
    }
