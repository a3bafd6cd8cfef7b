"""Check a Ray cluster from the inside: versions, CPUs and GPUs seen by Ray and by torch, object store, imports.

How to run:
    python -m workloads.doctor                      # embedded local Ray
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m workloads.doctor

Results to expect: one row per alive node (also in <out>/nodes.txt) and summary.json with the common
keys of workloads/contract.py and `driver`, `cluster_resources`, `nodes`, `problems`, `healthy`; the exit code
is 1 when a node cannot import the project or runs other Ray/Python versions than the driver (status
`unhealthy`), so it can gate deployments, and 2 for a bad flag. The doctor is quick anyway: `--smoke-test` runs
the same checks and only waits at most 60 s for the nodes' answers.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from workloads import contract
from workloads.contract import WorkloadConfig, field

PACKAGES = (
    "ray",
    "torch",
    "numpy",
    "scikit-learn",
    "pyarrow",
    "optuna",
    "gymnasium",
    "pettingzoo",
    "opencv-python-headless",
)
PROJECT_MODULES = ("cluster", "envs", "workloads", "serving")


@dataclass
class DoctorConfig(WorkloadConfig):
    """Check every node of the cluster and write the findings as a table and JSON."""

    workload: ClassVar[str] = "doctor"

    json: str = field("", help="also write the report (driver, nodes, problems, healthy) to this JSON file")
    timeout_s: float = field(300.0, help="how long to wait for every node's answer", minimum=1)
    smoke_test: bool = field(False, help="the same quick checks, waiting at most 60 s for the nodes")

    def smoke(self) -> DoctorConfig:
        return replace(self, timeout_s=min(self.timeout_s, 60.0))


def probe() -> dict:
    """Runs on one node: what this worker process sees."""
    import importlib
    import importlib.metadata as md
    import os
    import socket

    import ray

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    importable = {}
    for module in PROJECT_MODULES:
        try:
            importlib.import_module(module)
            importable[module] = True
        except Exception as exc:  # report any import failure, whatever its kind
            importable[module] = f"{type(exc).__name__}: {exc}"
    try:
        import torch

        torch_info = {
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "cuda_devices": torch.cuda.device_count(),
        }
    except ImportError:
        torch_info = {"threads": None, "cuda": False, "cuda_devices": 0}
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "versions": versions,
        "os_cpus": os.cpu_count(),
        "ray_gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "torch": torch_info,
        "project_importable": importable,
    }


def diagnose(timeout_s: float = 300.0) -> dict:
    """Probe every alive node (pinned by node id) and compare what they see with the driver."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n["Alive"]]
    refs = []
    for node in nodes:
        gpus = node["Resources"].get("GPU", 0)
        remote = ray.remote(num_cpus=0, num_gpus=gpus)(probe)
        refs.append(
            remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote()
        )
    reports = ray.get(refs, timeout=timeout_s)
    for node, report in zip(nodes, reports):
        report["ray_resources"] = {k: v for k, v in node["Resources"].items() if k in ("CPU", "GPU", "memory")}
        report["object_store_bytes"] = node["Resources"].get("object_store_memory", 0)
        report["address"] = node["NodeManagerAddress"]
    driver = {"python": platform.python_version(), "ray": ray.__version__}
    problems = []
    for report in reports:
        if report["python"] != driver["python"] or report["versions"]["ray"] != driver["ray"]:
            problems.append(
                f"node {report['node_id'][:8]} runs Python {report['python']} / Ray "
                f"{report['versions']['ray']}, the driver {driver['python']} / {driver['ray']}"
            )
        for module, ok in report["project_importable"].items():
            if ok is not True:
                problems.append(f"node {report['node_id'][:8]} cannot import {module}: {ok}")
    return {
        "driver": driver,
        "cluster_resources": ray.cluster_resources(),
        "nodes": reports,
        "problems": problems,
        "healthy": not problems,
    }


def format_table(result: dict) -> str:
    header = [
        "node",
        "address",
        "python",
        "ray",
        "torch",
        "CPU (ray/os/torch)",
        "GPU (ray/torch)",
        "object store",
        "project",
    ]
    rows = []
    for n in result["nodes"]:
        importable = all(v is True for v in n["project_importable"].values())
        rows.append(
            [
                n["node_id"][:8],
                n["address"],
                n["python"],
                n["versions"]["ray"] or "-",
                n["versions"]["torch"] or "-",
                f"{n['ray_resources'].get('CPU', 0):g}/{n['os_cpus']}/{n['torch']['threads']}",
                f"{n['ray_resources'].get('GPU', 0):g}/{n['torch']['cuda_devices']}",
                f"{n['object_store_bytes'] / 2**30:.2f} GiB",
                "ok" if importable else "MISSING",
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(cfg: DoctorConfig, out: Path) -> dict:
    """Probe the cluster, print and save the table; the report is the summary's own keys (status `unhealthy`, exit
    code 1, when a node has a problem)."""
    result = diagnose(cfg.timeout_s)
    table = format_table(result)
    print(table)
    (out / "nodes.txt").write_text(table + "\n")
    for problem in result["problems"]:
        print(f"problem: {problem}", file=sys.stderr)
    print(f"{'healthy' if result['healthy'] else 'UNHEALTHY'}: {len(result['nodes'])} node(s); report in {out}")
    return {
        **result,
        "status": "ok" if result["healthy"] else "unhealthy",
        "outputs": {"table": str(out / "nodes.txt"), **({"json": cfg.json} if cfg.json else {})},
    }


def main(argv: list[str] | None = None) -> int:
    return contract.main(DoctorConfig, run, argv, prog="python -m workloads.doctor")
