"""The embedded head node: `python -m cluster up|down|status`.

`up` runs `ray start --head --block` in a process session of its own and records that process in a state file,
so `down` stops exactly what `up` started (by PID, never `ray stop`, which matches process names machine-wide).
Everything binds to 127.0.0.1 and keeps Ray's token authentication on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

HOST = "127.0.0.1"
DEFAULT_GCS_PORT = 6379
DEFAULT_DASHBOARD_PORT = 8265
AUTOSCALING_TEMPLATE = Path(__file__).parent / "local" / "autoscaling.yaml"


def state_dir() -> Path:
    """Where dlwild keeps what it started: `$DLWILD_HOME` or `~/.dlwild`."""
    return Path(os.environ.get("DLWILD_HOME", Path.home() / ".dlwild"))


def state_file() -> Path:
    return state_dir() / "cluster.json"


def token_path() -> Path:
    """Ray's token file: `$RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token` (written by the first `ray start`)."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))


@dataclass
class HeadState:
    """What `up` started, as saved in the state file."""

    pid: int
    gcs_address: str
    dashboard_url: str
    temp_dir: str
    log_file: str
    autoscale: bool
    started_at: float


def load_state() -> HeadState | None:
    try:
        return HeadState(**json.loads(state_file().read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def is_running(state: HeadState | None) -> bool:
    if state is None:
        return False
    try:
        proc = psutil.Process(state.pid)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def auth_headers() -> dict[str, str]:
    """The bearer token header the dashboard asks for when token authentication is on."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    token = os.environ.get("RAY_AUTH_TOKEN")
    if not token and token_path().exists():
        token = token_path().read_text().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def job_client(address: str):
    """A JobSubmissionClient that authenticates as the `ray` CLI does.

    The CLI turns token mode on when a token file exists and RAY_AUTH_MODE is unset; the SDK alone does not,
    so without this step it would send no token to a cluster that requires one.
    """
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    from ray.job_submission import JobSubmissionClient

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    return JobSubmissionClient(address)


def dashboard_get(url: str, timeout: float = 5.0) -> dict:
    """GET a dashboard JSON endpoint with the token header."""
    request = urllib.request.Request(url, headers=auth_headers())
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (local URL)
        return json.loads(response.read().decode())


def _wait_for_dashboard(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with code {proc.returncode}")
        try:
            dashboard_get(f"{url}/api/version", timeout=2)
            return
        except (urllib.error.URLError, OSError, json.JSONDecodeError):
            time.sleep(0.5)
    raise RuntimeError(f"the dashboard did not answer at {url} within {timeout_s:.0f} s")


def _autoscaling_config(gcs_address: str, target: Path) -> Path:
    """Render the project's fake multi-node config with this head's GCS address."""
    import yaml

    config = yaml.safe_load(AUTOSCALING_TEMPLATE.read_text())
    config["provider"]["gcs_address"] = gcs_address
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def up(
    num_cpus: int | None = None,
    port: int = DEFAULT_GCS_PORT,
    dashboard_port: int = DEFAULT_DASHBOARD_PORT,
    autoscale: bool = False,
    timeout_s: float = 90.0,
) -> tuple[HeadState, bool]:
    """Start the head node unless ours is already running; returns (state, started_now)."""
    state = load_state()
    if is_running(state):
        return state, False
    for p in (port, dashboard_port):
        if _port_in_use(p):
            raise RuntimeError(f"port {p} on {HOST} is taken by another process; pass --port/--dashboard-port")
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_bin is None:
        raise RuntimeError("the `ray` command was not found; install the project (make install)")
    gcs_address = f"{HOST}:{port}"
    dashboard_url = f"http://{HOST}:{dashboard_port}"
    temp_dir = Path(tempfile.gettempdir()) / f"dlwild-{port}"
    state_dir().mkdir(parents=True, exist_ok=True)
    log_file = state_dir() / f"head-{port}.log"
    cmd = [
        ray_bin,
        "start",
        "--head",
        "--block",
        f"--node-ip-address={HOST}",
        f"--port={port}",
        f"--dashboard-host={HOST}",
        f"--dashboard-port={dashboard_port}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        "--include-dashboard=true",
    ]
    env = dict(os.environ)
    # Jobs run `python -m workloads...`: make that `python` the one this project is installed in.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if autoscale:
        # Demand beyond the head's CPUs is met by fake worker nodes that the autoscaler adds and removes.
        autoscaling = _autoscaling_config(gcs_address, state_dir() / "autoscaling.yaml")
        cmd += ["--num-cpus=0", f"--autoscaling-config={autoscaling}"]
        env.update({"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"})
    else:
        cmd.append(f"--num-cpus={num_cpus or os.cpu_count()}")
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    state = HeadState(
        pid=proc.pid,
        gcs_address=gcs_address,
        dashboard_url=dashboard_url,
        temp_dir=str(temp_dir),
        log_file=str(log_file),
        autoscale=autoscale,
        started_at=time.time(),
    )
    state_file().write_text(json.dumps(asdict(state), indent=2))
    try:
        _wait_for_dashboard(dashboard_url, proc, timeout_s)
    except Exception:
        down()
        raise
    return state, True


def _our_processes(state: HeadState) -> list[psutil.Process]:
    """The `ray start` process, its descendants, and any process bound to our GCS address or temp dir."""
    found: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(state.pid)
        found[root.pid] = root
        found.update({p.pid: p for p in root.children(recursive=True)})
    except psutil.NoSuchProcess:
        pass
    markers = (state.gcs_address, state.temp_dir)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if proc.pid != os.getpid() and any(m in cmdline for m in markers):
            found.setdefault(proc.pid, proc)
    return list(found.values())


def down(timeout_s: float = 30.0) -> int:
    """Stop what `up` started: SIGTERM to `ray start --block` (it stops its children), then stragglers.

    Returns the number of processes that were stopped.
    """
    state = load_state()
    if state is None:
        return 0
    procs = _our_processes(state)
    try:
        os.kill(state.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _gone, alive = psutil.wait_procs(procs, timeout=timeout_s / 2)
    for signal_all in (psutil.Process.terminate, psutil.Process.kill):  # what ignored SIGTERM gets SIGKILL
        for proc in alive:
            try:
                signal_all(proc)
            except psutil.NoSuchProcess:
                pass
        _gone, alive = psutil.wait_procs(alive, timeout=timeout_s / 4)
    leftovers = [p for p in _our_processes(state) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    if leftovers:
        raise RuntimeError(f"{len(leftovers)} Ray process(es) did not stop: {[p.pid for p in leftovers]}")
    state_file().unlink(missing_ok=True)
    return len(procs)


def status() -> dict:
    """The dashboard URL, the cluster's resources and its jobs, as a dict (empty when nothing runs)."""
    state = load_state()
    if not is_running(state):
        return {}
    info: dict = {
        "dashboard_url": state.dashboard_url,
        "gcs_address": state.gcs_address,
        "autoscale": state.autoscale,
        "pid": state.pid,
        "token_file": str(token_path()),
    }
    try:
        nodes = dashboard_get(f"{state.dashboard_url}/nodes?view=summary")["data"]["summary"]
        alive = [n for n in nodes if n.get("raylet", {}).get("state") == "ALIVE"]
        totals: dict[str, float] = {}
        for node in alive:
            for key, value in node.get("raylet", {}).get("resourcesTotal", {}).items():
                if key in ("CPU", "GPU", "memory", "object_store_memory"):
                    totals[key] = totals.get(key, 0.0) + value
        info["nodes"] = len(alive)
        info["resources"] = totals
    except (urllib.error.URLError, OSError, KeyError, json.JSONDecodeError) as exc:
        info["resources_error"] = str(exc)
    try:
        jobs = job_client(state.dashboard_url).list_jobs()
        info["jobs"] = [
            {"submission_id": j.submission_id, "status": str(j.status.value), "entrypoint": j.entrypoint}
            for j in jobs
            if j.submission_id
        ]
    except Exception as exc:  # the job list is informative; its absence must not break `status`
        info["jobs_error"] = str(exc).splitlines()[0]
    return info
