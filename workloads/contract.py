"""The workload contract: what every `python -m workloads.<name>` does the same way.

A workload is a config dataclass (a `WorkloadConfig`) and a `run(cfg, out) -> dict` function, tied together by
`main(Config, run)`:

1. flags become the config; each field declares its help, `choices` and `minimum`/`maximum` once (as
   scikit-learn declares `_parameter_constraints`), and `validate()` adds the cross-field rules;
2. `--smoke-test` applies the config's one `smoke()` method (the small sizes) before validation;
3. the run folder is `--out` or `runs/<workload>/<UTC timestamp>/`;
4. Ray is joined (`RAY_ADDRESS`, as under `ray job submit`) or started embedded, unless the config says no;
5. `run` does the work and returns its own summary keys; `summary.json` gets the common keys `workload`,
   `config`, `started`, `wall_s`, `status`, `outputs` besides them;
6. exit codes: 0 done, 2 usage error (one line on stderr), 1 failure (the run's `status` says why).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
import time
import traceback
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

C = TypeVar("C", bound="WorkloadConfig")

USAGE_EXIT = 2
FAILURE_EXIT = 1
SUMMARY_KEYS = ("workload", "config", "started", "wall_s", "status", "outputs")


class UsageError(ValueError):
    """A user mistake (bad flag, missing file, ...) that ends the program with a one-line message and exit 2."""


def fail(message: str, code: int = USAGE_EXIT) -> NoReturn:
    """Print `error: <message>` on one line to stderr and exit non-zero (no traceback)."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(code)


def field(
    default: Any = dataclasses.MISSING,
    help: str = "",
    choices: list | tuple | None = None,  # noqa: A002
    minimum: float | None = None,
    maximum: float | None = None,
    **kwargs: Any,
) -> Any:
    """A config field whose help, allowed values and bounds are declared once: they become the flag's help and
    argparse choices, and `check_constraints` enforces them on every config, however it was built."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "minimum": minimum, "maximum": maximum}
    if default is not dataclasses.MISSING and isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_constraints(config: Any) -> None:
    """Raise UsageError naming the flag of the first field outside its declared choices or bounds."""
    for f in dataclasses.fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            raise UsageError(f"{flag(f.name)} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if meta.get("minimum") is not None and not value >= meta["minimum"]:
            raise UsageError(f"{flag(f.name)} must be at least {meta['minimum']:g}, got {value:g}")
        if meta.get("maximum") is not None and not value <= meta["maximum"]:
            raise UsageError(f"{flag(f.name)} must be at most {meta['maximum']:g}, got {value:g}")


@dataclasses.dataclass
class WorkloadConfig:
    """Fields and hooks every workload config has. Subclasses add their own fields (all with defaults)."""

    workload: ClassVar[str] = ""  # the name under workloads/ and runs/
    uses_ray: ClassVar[bool] = True  # main() joins or starts Ray before run()

    out: str = field("", help="run folder (default runs/<workload>/<UTC timestamp>/)")
    seed: int = field(0, help="random seed")
    smoke_test: bool = field(False, help="a tiny run of every feature (about a minute on 2 CPUs)")

    def smoke(self: C) -> C:
        """The --smoke-test sizes (override; the default is the config unchanged)."""
        return self

    def capped(self: C, **caps: float) -> C:
        """A copy with each named field at most its cap: the usual shape of `smoke()` sizes."""
        return dataclasses.replace(self, **{name: min(getattr(self, name), cap) for name, cap in caps.items()})

    def validate(self) -> None:
        """Cross-field rules beyond the declared constraints (override; raise UsageError)."""

    def ray_options(self) -> dict[str, Any] | None:
        """Keyword arguments for `init_ray`, or None when this run needs no Ray (override)."""
        return {} if self.uses_ray else None

    def checked(self: C) -> C:
        """The config ready to run: smoke sizes applied, constraints and cross-field rules checked."""
        config = self.smoke() if self.smoke_test else self
        check_constraints(config)
        config.validate()
        return config


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2, like `fail`
        fail(f"{message} (see --help)")


def _flag_type(tp: Any):
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "types.UnionType":
        return _flag_type(next(a for a in typing.get_args(tp) if a is not type(None)))
    return tp


def build_parser(cls: type, description: str | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one `--kebab-case` flag per dataclass field; bools get `--x/--no-x`."""
    parser = _Parser(
        prog=prog,
        description=description or (cls.__doc__ or "").strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _flag_type(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        if tp is bool:
            parser.add_argument(
                flag(f.name),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=f.metadata.get("help", ""),
            )
        else:
            parser.add_argument(
                flag(f.name),
                dest=f.name,
                type=tp if tp in (int, float, str) else str,
                default=default,
                help=f.metadata.get("help", ""),
                choices=f.metadata.get("choices"),
                required=required,
            )
    return parser


def parse_config(
    cls: type[C], argv: list[str] | None = None, description: str | None = None, prog: str | None = None
) -> C:
    """Fill the config dataclass `cls` from flags; a bad flag or value ends the program with exit 2."""
    namespace = build_parser(cls, description, prog).parse_args(argv)
    try:
        config = cls(**vars(namespace))
        return config.checked() if isinstance(config, WorkloadConfig) else _legacy_checked(config)
    except UsageError as exc:
        fail(str(exc))


def _legacy_checked(config: Any) -> Any:
    """Plain dataclass configs (sub-commands such as evaluate): constraints, then their `validate()` if any."""
    check_constraints(config)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build a config from a dict (e.g. a saved config.json), refusing keys the dataclass does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown config key(s) for {cls.__name__}: {', '.join(unknown)}")
    return cls(**values)


def init_ray(num_cpus: int | None = None, num_gpus: float | None = None, **kwargs: Any):
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
    return ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus or None, **kwargs)


def run_dir(workload: str, out: str | os.PathLike | None = None) -> Path:
    """The run's output folder: `out` if given, else `$DLWILD_RUNS/<workload>/<UTC timestamp>/`; created if missing.

    `DLWILD_RUNS` defaults to `runs` under the current folder; `python -m cluster submit` points it at the
    project's runs/ so that a job on the local cluster leaves its results there, not in Ray's working-dir copy.
    A URI `out` (s3://, gs://, file://) gets the default local run folder: the workload writes what belongs in
    storage to the URI itself (e.g. workloads.pages its shards) and keeps summary.json and plots local.
    """
    if out and "://" not in str(out):
        path = Path(out)
    else:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
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


def summarise(cfg: WorkloadConfig, started: float, status: str, own: dict[str, Any]) -> dict[str, Any]:
    """The summary: the common keys first, then the workload's own (`outputs` taken from them if present)."""
    own = dict(own)
    return {
        "workload": cfg.workload,
        "config": dataclasses.asdict(cfg),
        "started": _dt.datetime.fromtimestamp(started, _dt.UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.time() - started, 3),
        "status": status,
        "outputs": own.pop("outputs", {}),
        **own,
    }


def _finish(cfg: WorkloadConfig, out: Path, summary: dict[str, Any]) -> None:
    """summary.json in the run folder, and its copy at `--json PATH` for configs that have that field."""
    write_summary(out, summary)
    if getattr(cfg, "json", ""):
        write_json(cfg.json, summary)


def execute(cfg: C, run: Callable[[C, Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    """Run a checked config: its run folder, Ray, `run`, then summary.json (and its `--json` copy).

    Returns (run folder, summary). A UsageError or any other exception is recorded in summary.json (`status`
    usage_error or failed, and `error`) and raised again. `main` is this behind the command line; Python callers
    that run several configs (e.g. a comparison grid) call it directly.
    """
    started = time.time()
    out = run_dir(cfg.workload, cfg.out or None)
    try:
        ray_options = cfg.ray_options()
        if ray_options is not None:
            init_ray(**ray_options)
        own = dict(run(cfg, out) or {})
    except UsageError as exc:
        _finish(cfg, out, summarise(cfg, started, "usage_error", {"error": str(exc)}))
        raise
    except Exception as exc:
        _finish(cfg, out, summarise(cfg, started, "failed", {"error": f"{type(exc).__name__}: {exc}"}))
        raise
    summary = summarise(cfg, started, own.pop("status", "ok"), own)
    _finish(cfg, out, summary)
    return out, summary


def main(
    config_cls: type[C],
    run: Callable[[C, Path], dict[str, Any]],
    argv: list[str] | None = None,
    prog: str | None = None,
) -> int:
    """The command line of a workload: parse the flags, `execute`, and exit by the contract's codes.

    `run` returns the workload's own summary keys; a `status` other than "ok" among them (e.g. an --as-test
    criterion missed) makes the exit code 1. UsageError from `run` exits 2, any other exception exits 1; both
    leave a summary.json whose `status` and `error` say what happened.
    """
    cfg = parse_config(config_cls, argv, prog=prog or f"python -m workloads.{config_cls.workload}")
    try:
        out, summary = execute(cfg, run)
    except UsageError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded in summary.json by execute, printed, exit 1
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return FAILURE_EXIT
    print(f"summary: {out / 'summary.json'} ({summary['status']})")
    return 0 if summary["status"] == "ok" else FAILURE_EXIT
