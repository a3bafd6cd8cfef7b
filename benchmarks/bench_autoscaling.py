"""How long local autoscaling takes: first worker after demand, and back to the head after the work ends.

    python -m benchmarks.bench_autoscaling [--rounds 2]

Starts its own autoscaling head (fake multi-node provider) on ports of its own and stops only that.
"""

import argparse
import os
import statistics
import tempfile

from cluster import autoscale_check, head


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    os.environ["DLWILD_HOME"] = tempfile.mkdtemp(prefix="dlwild-bench-")
    state, _ = head.up(port=6394, dashboard_port=8279, autoscale=True)
    try:
        rounds = [autoscale_check.exercise(state, task_seconds=6, cpu_tasks=4) for _ in range(args.rounds)]
    finally:
        head.down()
    for i, r in enumerate(rounds):
        print(
            f"round {i}: first worker {r['first_worker_s']:.1f} s after demand, peak {r['peak_workers']} workers, "
            f"work done at {r['work_done_s']:.1f} s, back to head {r['scale_down_s']:.1f} s after the work"
        )
    print(
        f"median scale-up {statistics.median(r['first_worker_s'] for r in rounds):.1f} s, "
        f"median scale-down {statistics.median(r['scale_down_s'] for r in rounds):.1f} s "
        f"(idle_timeout_minutes=0.1 in cluster/local/autoscaling.yaml)"
    )


if __name__ == "__main__":
    main()
