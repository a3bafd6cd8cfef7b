"""A Ray of this process alone, for tests and benchmarks.

`address="local"` starts a new Ray instead of joining one that `ray start` left on the machine (a bare
`ray.init()` would join it), and a temp dir of its own keeps its sockets and logs apart from any other Ray here.
"""

from __future__ import annotations

import tempfile


def start(temp_prefix: str = "dlwild-ray-", object_store_mb: int = 200, num_cpus: int = 2):
    """Start (or keep) a local Ray with `num_cpus` CPUs, no dashboard and a small object store."""
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context()
    return ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=object_store_mb * 1024**2,
        _temp_dir=tempfile.mkdtemp(prefix=temp_prefix),
        log_to_driver=False,
    )
