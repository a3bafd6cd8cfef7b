"""Every workload `python -m cluster submit` can run keeps the one contract of workloads/contract.py.

For each registered workload (a package under workloads/ with a __main__): `--help` works, a bad flag and a
value outside a declared constraint exit 2 with one line naming the flag, and `--smoke-test` finishes with a
summary.json that holds the common keys and files that exist.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.jobs import PROJECT_ROOT, available_workloads
from workloads import contract

WORKLOADS = available_workloads()


def config_class(name: str) -> type[contract.WorkloadConfig]:
    importlib.import_module(f"workloads.{name}.__main__")
    found = [c for c in _subclasses(contract.WorkloadConfig) if c.workload == name]
    assert len(found) == 1, f"workloads.{name} needs exactly one WorkloadConfig with workload = {name!r}"
    return found[0]


def _subclasses(cls: type) -> list[type]:
    return [s for c in cls.__subclasses__() for s in (c, *_subclasses(c))]


def cli(name: str, *args: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        DLWILD_RUNS=str(tmp_path / "runs"),
        DLWILD_REGISTRY=str(tmp_path / "registry"),
        RAY_AUTH_MODE="disabled",
    )
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", f"workloads.{name}", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_workload_is_registered():
    assert {"automl", "doctor", "face", "pages", "qc", "rl", "vision"} <= set(WORKLOADS)


@pytest.mark.parametrize("name", WORKLOADS)
def test_help_lists_the_common_flags(name, tmp_path):
    result = cli(name, "--help", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in ("--out", "--seed", "--smoke-test"):
        assert flag in result.stdout


@pytest.mark.parametrize("name", WORKLOADS)
def test_a_bad_flag_exits_2_with_one_line(name, tmp_path):
    result = cli(name, "--no-such-flag", "1", tmp_path=tmp_path)
    assert result.returncode == contract.USAGE_EXIT
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "--no-such-flag" in lines[0]


@pytest.mark.parametrize("name", WORKLOADS)
def test_declared_constraints_are_enforced(name, tmp_path):
    """A value below a declared minimum (or outside declared choices) is refused naming the flag."""
    fields = dataclasses.fields(config_class(name))
    bounded = [f for f in fields if f.metadata.get("minimum") is not None]
    chosen = [f for f in fields if f.metadata.get("choices")]
    assert bounded or chosen, f"{name}: declare constraints on its config fields (minimum=, choices=)"
    if bounded:
        f = bounded[0]
        bad = str(f.metadata["minimum"] - 1)
    else:
        f = chosen[0]
        bad = "not-a-choice"
    flag = contract.flag(f.name)
    result = cli(name, flag, bad, tmp_path=tmp_path)
    assert result.returncode == contract.USAGE_EXIT, result.stderr
    assert flag in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", WORKLOADS)
def test_smoke_test_leaves_a_complete_summary(name, tmp_path):
    out = tmp_path / "run"
    result = cli(name, "--smoke-test", "--out", str(out), tmp_path=tmp_path, timeout=420)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(contract.SUMMARY_KEYS) <= set(summary)
    assert summary["workload"] == name and summary["status"] == "ok"
    assert summary["config"]["smoke_test"] is True and summary["wall_s"] > 0
    assert isinstance(summary["outputs"], dict)
    for key, path in summary["outputs"].items():
        if isinstance(path, str) and "://" not in path and path.startswith("/"):
            assert Path(path).exists(), f"outputs.{key} = {path} does not exist"


@dataclasses.dataclass
class ToyConfig(contract.WorkloadConfig):
    """A workload that needs no Ray, to test the runner itself."""

    workload = "toy"
    uses_ray = False
    steps: int = contract.field(3, help="steps", minimum=1)
    mode: str = contract.field("ok", help="what run() does", choices=("ok", "miss", "usage", "crash"))

    def smoke(self):
        return dataclasses.replace(self, steps=1)


def toy_run(cfg: ToyConfig, out: Path) -> dict:
    if cfg.mode == "usage":
        raise contract.UsageError("bad input found late")
    if cfg.mode == "crash":
        raise RuntimeError("boom")
    (out / "result.txt").write_text(str(cfg.steps))
    return {
        "steps_done": cfg.steps,
        "status": "ok" if cfg.mode == "ok" else "criterion_missed",
        "outputs": {"result": str(out / "result.txt")},
    }


@pytest.mark.parametrize(
    ("mode", "code", "status"),
    [("ok", 0, "ok"), ("miss", 1, "criterion_missed"), ("usage", 2, "usage_error"), ("crash", 1, "failed")],
)
def test_the_runner_exit_codes_and_summary(mode, code, status, tmp_path, capsys):
    out = tmp_path / mode
    try:
        got = contract.main(ToyConfig, toy_run, ["--mode", mode, "--out", str(out), "--smoke-test"])
    except SystemExit as exc:
        got = exc.code
    assert got == code
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == status and summary["workload"] == "toy"
    assert list(summary)[:6] == list(contract.SUMMARY_KEYS)
    if mode == "ok":
        assert summary["steps_done"] == 1 and summary["outputs"] == {"result": str(out / "result.txt")}
    if mode in ("usage", "crash"):
        assert summary["error"]


def test_constraints_hold_however_a_config_is_built():
    with pytest.raises(contract.UsageError, match="--steps must be at least 1"):
        ToyConfig(steps=0).checked()
    with pytest.raises(contract.UsageError, match="--mode must be one of"):
        ToyConfig(mode="fast").checked()
    assert ToyConfig(steps=5, smoke_test=True).checked().steps == 1
