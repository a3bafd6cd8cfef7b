"""The plumbing every workload shares: flags into a config dataclass, Ray connection, run folders, summaries.

Kept in one small module so that `python -m workloads.<name>` behaves the same for every workload:
unknown flags are refused with a one-line reason, `RAY_ADDRESS` (as set by `ray job submit`) selects an existing
cluster and an embedded local Ray is started otherwise, and every run writes `summary.json` into its own folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, NoReturn, TypeVar

C = TypeVar("C")


class UsageError(ValueError):
    """A user mistake (bad flag, missing file, ...) that should end the program with a one-line message."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: <message>` on one line to stderr and exit non-zero (no traceback)."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(code)


def field(default: Any = dataclasses.MISSING, help: str = "", choices: list | tuple | None = None,  # noqa: A002
          **kwargs: Any) -> Any:
    """A dataclass field whose `help` (and `choices`, if given) become the flag's help text and allowed values."""
    metadata = {"help": help, "choices": choices}
    if default is not dataclasses.MISSING and isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2, like `fail`
        fail(f"{message} (see --help)")


def _flag_type(tp: Any):
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _flag_type(args[0])
    return tp


def build_parser(cls: type, description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one `--kebab-case` flag per dataclass field; bools get `--x/--no-x`."""
    parser = _Parser(prog=prog, description=description or (cls.__doc__ or "").strip(),
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter, allow_abbrev=False)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        tp = _flag_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=tp if tp in (int, float, str) else str,
                                default=default, help=help_text, choices=choices,
                                required=default is None and f.default is dataclasses.MISSING
                                and f.default_factory is dataclasses.MISSING)
    return parser


def parse_config(cls: type[C], argv: list[str] | None = None, description: str | None = None,
                 prog: str | None = None) -> C:
    """Fill the config dataclass `cls` from command-line flags; unknown flags end the program with a reason.

    The dataclass may define `validate(self)` that raises `UsageError`; its message is shown on one line.
    """
    parser = build_parser(cls, description, prog)
    namespace = parser.parse_args(argv)
    config = cls(**vars(namespace))
    validate = getattr(config, "validate", None)
    if validate is not None:
        try:
            validate()
        except UsageError as exc:
            fail(str(exc))
    return config


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build a config from a dict (e.g. a saved summary), refusing keys the dataclass does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown config key(s) for {cls.__name__}: {', '.join(unknown)}")
    return cls(**values)


def init_ray(num_cpus: int | None = None, num_gpus: int | None = None, **kwargs: Any):
    """Connect to the cluster in RAY_ADDRESS (e.g. under `ray job submit`) or start an embedded local Ray.

    `address="local"` matters: a bare `ray.init()` silently joins any cluster started on this machine.
    """
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    kwargs.setdefault("log_to_driver", True)
    if os.environ.get("RAY_ADDRESS"):
        return ray.init(**kwargs)
    kwargs.setdefault("include_dashboard", False)
    return ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)


def run_dir(workload: str, out: str | os.PathLike | None = None) -> Path:
    """The run's output folder: `out` if given, else `$DLWILD_RUNS/<workload>/<UTC timestamp>/`; created if missing.

    `DLWILD_RUNS` defaults to `runs` under the current folder; `python -m cluster submit` points it at the
    project's runs/ so that a job on the local cluster leaves its results there, not in Ray's working-dir copy.
    """
    if out:
        path = Path(out)
    else:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        path = Path(os.environ.get("DLWILD_RUNS", "runs")) / workload / stamp
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically (temp file, then rename) so a killed run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def write_summary(out_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Write `<out_dir>/summary.json`, the one file every workload leaves behind."""
    return write_json(Path(out_dir) / "summary.json", summary)
