"""Fan-out of a workload's independent steps: Ray tasks of one CPU each, or plain calls in this process.

A config that mixes in `FansOut` (`class Config(FansOut, WorkloadConfig)`) gets the `--ray/--no-ray` flag;
with `--no-ray` `contract.main` starts no Ray and `tasks()` runs every step one by one in the driver (no
cluster, for debugging). The same code runs either way:

    remote, get, put = cfg.tasks()
    refs = [remote(step)(x) for x in xs]
    results = get(refs)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from workloads.contract import field


@dataclasses.dataclass
class FansOut:
    """The `--ray/--no-ray` field and the (remote, get, put) triple it picks."""

    ray: bool = field(
        True,
        help="run the steps (renders, trainings) as Ray tasks; --no-ray runs them one by one "
        "in this process (no cluster, for debugging)",
    )

    def ray_options(self) -> dict[str, Any] | None:
        return {} if self.ray else None

    def tasks(self) -> tuple[Callable, Callable, Callable]:
        """(remote, get, put): `remote(fn)(*args)` starts a one-CPU Ray task (or calls `fn` at once),
        `get` waits for results, `put` stores a large argument once."""
        if not self.ray:
            return (lambda fn: lambda *a: fn(*a)), (lambda x: x), (lambda x: x)
        import ray

        return (lambda fn: ray.remote(num_cpus=1)(fn).remote), ray.get, ray.put
