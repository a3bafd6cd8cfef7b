"""Where runs, shards, registries and experiments live: a local folder or any URI pyarrow knows.

The one place that turns `runs/x`, `s3://bucket/runs/x`, `gs://...` or `file:///shared/x` into a pyarrow
filesystem and a path on it, so that every workload and app reads and writes storage the same way.
"""

from __future__ import annotations

import os

import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    return "://" in str(location)


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path on it) for a local folder (made absolute) or a URI such as s3://bucket/x."""
    if is_uri(location):
        return pafs.FileSystem.from_uri(str(location))
    return pafs.LocalFileSystem(), os.path.abspath(location)
