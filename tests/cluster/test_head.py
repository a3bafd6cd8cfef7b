"""The embedded cluster end to end: up, up again, job submission (ray CLI and ours), status, down.

Token authentication stays on here, as in the product: every subprocess shares one token through
RAY_AUTH_TOKEN. Ports differ from the defaults so a cluster the user runs is never touched.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
PORT, DASHBOARD_PORT = 6392, 8277
DASHBOARD = f"http://127.0.0.1:{DASHBOARD_PORT}"


def run(args, env, timeout=300):
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(
        {
            "DLWILD_HOME": str(tmp_path_factory.mktemp("dlwild-home")),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "DLWILD_RUNS": str(tmp_path_factory.mktemp("runs")),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    up = run(
        [
            sys.executable,
            "-m",
            "cluster",
            "up",
            "--num-cpus",
            "2",
            "--port",
            str(PORT),
            "--dashboard-port",
            str(DASHBOARD_PORT),
        ],
        env,
    )
    assert up.returncode == 0, up.stderr
    yield env
    run([sys.executable, "-m", "cluster", "down"], env)


def get(path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(DASHBOARD + path, headers=headers), timeout=10) as resp:
        return json.loads(resp.read())


def test_up_twice_says_already_running(cluster_env):
    again = run(
        [sys.executable, "-m", "cluster", "up", "--port", str(PORT), "--dashboard-port", str(DASHBOARD_PORT)],
        cluster_env,
    )
    assert again.returncode == 0
    assert "already running" in again.stdout
    heads = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "--head" in (p.info["cmdline"] or []) and f"--port={PORT}" in (p.info["cmdline"] or [])
    ]
    assert len(heads) == 1


def test_dashboard_requires_the_token(cluster_env):
    with pytest.raises(urllib.error.HTTPError) as err:
        get("/api/jobs/")
    assert err.value.code == 401
    assert isinstance(get("/api/jobs/", cluster_env["RAY_AUTH_TOKEN"]), list)


def test_ray_job_submit_runs_the_doctor_and_lists_it(cluster_env):
    result = run(
        [
            "ray",
            "job",
            "submit",
            "--address",
            DASHBOARD,
            "--working-dir",
            ".",
            "--",
            "python",
            "-m",
            "workloads.doctor",
        ],
        cluster_env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "healthy: 1 node(s)" in result.stdout
    jobs = get("/api/jobs/", cluster_env["RAY_AUTH_TOKEN"])
    doctor = [j for j in jobs if j["entrypoint"] == "python -m workloads.doctor"]
    assert doctor and doctor[0]["status"] == "SUCCEEDED"


def test_cluster_submit_streams_logs_and_exits_with_job_status(cluster_env, tmp_path):
    report = tmp_path / "doctor.json"
    result = run([sys.executable, "-m", "cluster", "submit", "doctor", "--json", str(report)], cluster_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "submitted raysubmit_" in result.stdout
    assert "SUCCEEDED" in result.stdout
    data = json.loads(report.read_text())
    assert data["healthy"] and data["nodes"][0]["project_importable"]["envs"] is True
    assert list(Path(cluster_env["DLWILD_RUNS"]).glob("doctor/*/summary.json"))  # results outside Ray's copy


def test_failing_job_gives_nonzero_exit(cluster_env):
    result = run([sys.executable, "-m", "cluster", "submit", "doctor", "--no-such-flag"], cluster_env)
    assert result.returncode != 0
    assert "FAILED" in result.stderr


def test_status_shows_dashboard_resources_and_jobs(cluster_env):
    result = run([sys.executable, "-m", "cluster", "status"], cluster_env)
    assert result.returncode == 0, result.stderr
    assert DASHBOARD in result.stdout and "CPU 2" in result.stdout
    assert "python -m workloads.doctor" in result.stdout


def test_bad_input_gives_one_line_errors(cluster_env, tmp_path):
    unknown = run([sys.executable, "-m", "cluster", "submit", "nosuchworkload"], cluster_env)
    assert unknown.returncode != 0
    assert unknown.stderr.strip().count("\n") == 0 and "unknown workload" in unknown.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: RayCluster\napiVersion: ray.io/v1\nspec: [unclosed\n")
    invalid = run([sys.executable, "-m", "cluster", "validate", str(broken)], cluster_env)
    assert invalid.returncode != 0
    assert "broken.yaml" in invalid.stdout + invalid.stderr


def test_down_leaves_no_ray_process_behind(cluster_env):
    state = json.loads((Path(cluster_env["DLWILD_HOME"]) / "cluster.json").read_text())
    result = run([sys.executable, "-m", "cluster", "down"], cluster_env)
    assert result.returncode == 0, result.stderr
    markers = (state["gcs_address"], state["temp_dir"])
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(m in " ".join(p.info["cmdline"] or []) for m in markers) and p.pid != os.getpid()
    ]
    assert left == []
    assert not psutil.pid_exists(state["pid"]) or psutil.Process(state["pid"]).status() == psutil.STATUS_ZOMBIE
