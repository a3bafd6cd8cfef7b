"""Exercise autoscaling on a running `cluster up --autoscale` head: create demand, watch nodes come and go.

How to run (after `python -m cluster up --autoscale`):
    python -m cluster.autoscale_check            # prints when workers were added and removed, as JSON

Demand: CPU tasks needing more CPUs than the head has (it has 0) and one task asking for `num_gpus=1`, which
only the fake GPU worker type can take. The tasks run in a driver subprocess, so the caller may already have a
Ray of its own initialised (as the test session does).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from cluster import head

DRIVER = textwrap.dedent("""
    import json, socket, sys, time
    import ray
    ray.init(address=sys.argv[1], log_to_driver=False)

    @ray.remote(num_cpus=1)
    def cpu_work(seconds):
        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=1, num_gpus=1)
    def gpu_work(seconds):
        time.sleep(seconds)
        return ray.get_runtime_context().get_node_id(), [str(g) for g in ray.get_gpu_ids()]

    seconds = float(sys.argv[2])
    cpu_nodes = ray.get([cpu_work.remote(seconds) for _ in range(int(sys.argv[3]))], timeout=240)
    gpu_node, gpu_ids = ray.get(gpu_work.remote(seconds), timeout=240)
    print(json.dumps({"cpu_nodes": sorted(set(cpu_nodes)), "gpu_node": gpu_node, "gpu_ids": gpu_ids}))
""")


def worker_nodes(dashboard_url: str) -> int:
    """Alive nodes other than the head, as the dashboard reports them."""
    summary = head.dashboard_get(f"{dashboard_url}/nodes?view=summary")["data"]["summary"]
    alive = [n for n in summary if n.get("raylet", {}).get("state") == "ALIVE"]
    return sum(1 for n in alive if not n.get("raylet", {}).get("isHeadNode", False))


def exercise(
    state: head.HeadState, task_seconds: float = 8.0, cpu_tasks: int = 4, scale_down_timeout_s: float = 120.0
) -> dict:
    """Run the demand and return timings: first worker added, peak workers, work done, back to the head."""
    start = time.monotonic()
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, state.gcs_address, str(task_seconds), str(cpu_tasks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_up = None
    peak = 0
    while driver.poll() is None:
        count = worker_nodes(state.dashboard_url)
        peak = max(peak, count)
        if count and first_up is None:
            first_up = time.monotonic() - start
        if time.monotonic() - start > 300:
            driver.kill()
            raise TimeoutError("the demand did not finish within 300 s")
        time.sleep(0.5)
    stdout, stderr = driver.communicate()
    if driver.returncode != 0:
        raise RuntimeError(f"the driver failed: {stderr.strip().splitlines()[-1] if stderr.strip() else '?'}")
    work_done = time.monotonic() - start
    placement = json.loads(stdout.strip().splitlines()[-1])
    back_to_head = None
    while time.monotonic() - start - work_done < scale_down_timeout_s:
        if worker_nodes(state.dashboard_url) == 0:
            back_to_head = time.monotonic() - start - work_done
            break
        time.sleep(0.5)
    return {
        "first_worker_s": first_up,
        "peak_workers": peak,
        "work_done_s": work_done,
        "scale_down_s": back_to_head,
        **placement,
    }


if __name__ == "__main__":
    current = head.load_state()
    if not head.is_running(current) or not current.autoscale:
        print("error: start an autoscaling head first: python -m cluster up --autoscale", file=sys.stderr)
        raise SystemExit(1)
    print(json.dumps(exercise(current), indent=2))
