"""`make demo`: the platform in one command, at smoke size.

Starts the embedded cluster (unless one from `python -m cluster up` is already running), submits every workload
as a Ray job with `--smoke-test`, deploys the Serve applications of serving/config.yaml and calls each once,
prints a summary, and stops what it started.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from cluster import head, jobs

SERVE_CONFIG = jobs.PROJECT_ROOT / "serving" / "config.yaml"


def run_jobs(dashboard_url: str, workloads: list[str], timeout_s: float) -> list[dict]:
    """Submit each workload's smoke test, one after the other (2 cores), and wait for each."""
    client = head.job_client(dashboard_url)
    results = []
    for name in workloads:
        start = time.monotonic()
        entrypoint = f"python -m workloads.{name} --smoke-test"
        submission_id = client.submit_job(entrypoint=entrypoint, runtime_env=jobs.runtime_env(dashboard_url))
        print(f"[demo] {name}: submitted {submission_id}", flush=True)
        status = client.get_job_status(submission_id).value
        while status not in jobs.TERMINAL and time.monotonic() - start < timeout_s:
            time.sleep(2)
            status = client.get_job_status(submission_id).value
        if status not in jobs.TERMINAL:
            client.stop_job(submission_id)
            status = "TIMEOUT"
        logs = client.get_job_logs(submission_id)
        tail = logs.strip().splitlines()[-3:]
        print(f"[demo] {name}: {status} in {time.monotonic() - start:.0f} s", flush=True)
        results.append(
            {
                "workload": name,
                "submission_id": submission_id,
                "status": str(status),
                "seconds": round(time.monotonic() - start, 1),
                "log_tail": tail,
            }
        )
    return results


def serve_apps(dashboard_url: str) -> list[dict]:
    """Deploy serving/config.yaml and call each application's OpenAPI route once."""
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    apps = config.get("applications") or []
    if not apps:
        return []
    serve_bin = str(Path(sys.executable).parent / "serve")
    subprocess.run([serve_bin, "deploy", str(SERVE_CONFIG), "-a", dashboard_url], check=True)
    http = config.get("http_options", {})
    base = f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}"
    results = []
    for app in apps:
        url = f"{base}{app.get('route_prefix', '/')}".rstrip("/") + "/openapi.json"
        status, deadline = None, time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (local URL)
                    status = response.status
                    break
            except OSError:
                time.sleep(2)
        results.append({"app": app["name"], "url": url, "status": status})
        print(f"[demo] serve {app['name']}: {url} -> {status}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.demo", description=__doc__)
    parser.add_argument("--job-timeout-s", type=float, default=300)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    args = parser.parse_args(argv)

    os.environ.setdefault("DLWILD_RUNS", str(jobs.PROJECT_ROOT / "runs"))
    start = time.monotonic()
    state, started = head.up()
    print(f"[demo] cluster {'started' if started else 'already running'}: dashboard {state.dashboard_url}")
    try:
        job_results = run_jobs(state.dashboard_url, jobs.available_workloads(), args.job_timeout_s)
        serve_results = serve_apps(state.dashboard_url)
    finally:
        if started and not args.keep:
            head.down()
    summary = {
        "dashboard_url": state.dashboard_url,
        "jobs": job_results,
        "serve": serve_results,
        "results_folder": os.environ["DLWILD_RUNS"],
        "seconds": round(time.monotonic() - start, 1),
    }
    Path(os.environ["DLWILD_RUNS"]).mkdir(parents=True, exist_ok=True)
    (Path(os.environ["DLWILD_RUNS"]) / "demo-summary.json").write_text(json.dumps(summary, indent=2))
    print("\n== dlwild demo summary ==")
    http = (yaml.safe_load(SERVE_CONFIG.read_text()) or {}).get("http_options", {})
    stopped = "" if args.keep or not started else " (stopped now; `python -m cluster.demo --keep` leaves them up)"
    print(f"Ray dashboard:  {state.dashboard_url}{stopped}")
    print(
        f"Tune dashboard: http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}/tune   "
        "(TensorBoard: python -m cluster tensorboard -> http://127.0.0.1:6006)"
    )
    for job in job_results:
        print(f"  job {job['workload']:<10} {job['status']:<10} {job['seconds']:>6.0f} s  {job['submission_id']}")
    for app in serve_results:
        print(f"  app {app['app']:<10} {app['status']}  {app['url']}")
    print(
        f"results: {summary['results_folder']}/<workload>/<timestamp>/ ; summary: "
        f"{summary['results_folder']}/demo-summary.json ; took {summary['seconds']:.0f} s"
    )
    ok = all(j["status"] == "SUCCEEDED" for j in job_results) and all(a["status"] == 200 for a in serve_results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
