"""`python -m cluster submit <workload> [args]`: run a workload as a Ray job, as `ray job submit` would.

The working directory is uploaded without run outputs, virtual environments or data (the same paths
.gitignore keeps out, which Ray also honours for `ray job submit --working-dir .`).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from pathlib import Path

from cluster import head
from cluster.head import job_client

PROJECT_ROOT = Path(__file__).resolve().parents[1]
UPLOAD_EXCLUDES = [
    ".venv/",
    "runs/",
    "data/",
    "registry/",
    ".git/",
    "**/__pycache__/",
    "*.egg-info/",
    "benchmarks/**/.venv/",
    "test-output/",
    ".dlwild/",
]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def available_workloads() -> list[str]:
    """Workload packages that can run as `python -m workloads.<name>` (they have a __main__ module)."""
    return sorted(p.parent.name for p in (PROJECT_ROOT / "workloads").glob("*/__main__.py"))


def default_address() -> str:
    """The dashboard of `cluster up` if it runs, else an http RAY_ADDRESS, else the local default."""
    state = head.load_state()
    if head.is_running(state):
        return state.dashboard_url
    address = os.environ.get("RAY_ADDRESS", "")
    return address if address.startswith("http") else f"http://{head.HOST}:{head.DEFAULT_DASHBOARD_PORT}"


def runtime_env(address: str) -> dict:
    """Upload the project; on a cluster of this machine, results go to the project's runs/ folder."""
    env = {"working_dir": str(PROJECT_ROOT), "excludes": UPLOAD_EXCLUDES}
    if "127.0.0.1" in address or "localhost" in address:
        env["env_vars"] = {"DLWILD_RUNS": os.environ.get("DLWILD_RUNS", str(PROJECT_ROOT / "runs"))}
    return env


def submit(workload: str, args: list[str], address: str | None = None, follow: bool = True) -> int:
    """Submit `python -m workloads.<workload> args`, print its id, stream its logs; exit code 0 iff it succeeded."""
    if workload not in available_workloads():
        raise ValueError(f"unknown workload {workload!r}; choose from: {', '.join(available_workloads())}")
    address = address or default_address()
    client = job_client(address)
    entrypoint = shlex.join(["python", "-m", f"workloads.{workload}", *args])
    submission_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env(address))
    print(f"submitted {submission_id} to {address}: {entrypoint}", flush=True)
    if not follow:
        return 0

    async def stream() -> None:
        async for lines in client.tail_job_logs(submission_id):
            print(lines, end="", flush=True)

    asyncio.run(stream())
    status = str(client.get_job_status(submission_id).value)
    while status not in TERMINAL:  # the log stream can end a moment before the status settles
        time.sleep(0.5)
        status = str(client.get_job_status(submission_id).value)
    print(f"job {submission_id} {status}", file=sys.stderr if status != "SUCCEEDED" else sys.stdout)
    return 0 if status == "SUCCEEDED" else 1
