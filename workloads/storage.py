"""Where runs, shards, registries and experiments live: a local folder or any URI pyarrow knows.

The one place that turns `runs/x`, `s3://bucket/runs/x`, `gs://...` or `file:///shared/x` into a pyarrow
filesystem and a path on it, so that every workload and app reads and writes storage the same way.

Endpoints and credentials are pyarrow's (`pyarrow.fs.FileSystem.from_uri`), with one addition:
- an S3-compatible store other than AWS (MinIO, Ceph, moto, ...) is named in the URI,
  `s3://bucket/x?endpoint_override=http://host:9000` (also `region=`, `scheme=`, `allow_bucket_creation=`), or by the
  standard AWS variable `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, which this module writes into an s3:// URI as its
  `endpoint_override`: the filesystem then carries the endpoint wherever it is pickled to (Tune's trials on other
  nodes), and pyarrow releases that ignore the variables reach the same store;
- credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, ~/.aws, or the node's
  role (GCS: `GOOGLE_APPLICATION_CREDENTIALS` or the node's service account). Keep them out of the URI: it is
  printed and saved in summary.json.

A run on a multi-node Ray cluster writes from every node, so a plain local path is refused there
(`require_shared`); `file:///path` says "this path is on storage every node mounts" (NFS, a shared volume).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pyarrow.fs as pafs

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # the AWS SDKs' order: S3's own first


def is_uri(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def with_endpoint(uri: str) -> str:
    """`uri` with `endpoint_override=` from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL added, for an s3:// URI that
    names no endpoint itself while one of them is set; any other location unchanged."""
    uri = str(uri)
    parts = urlsplit(uri)
    if parts.scheme != "s3" or "endpoint_override" in dict(parse_qsl(parts.query)):
        return uri
    endpoint = next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), "")
    if not endpoint:
        return uri
    return f"{uri}{'&' if parts.query else '?'}endpoint_override={quote(endpoint, safe='')}"


def filesystem(location: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path on it) for a local folder (made absolute) or a URI such as s3://bucket/x.

    Raises ValueError (pyarrow.ArrowInvalid) for a URI pyarrow cannot use, e.g. an unknown scheme."""
    if is_uri(location):
        return pafs.FileSystem.from_uri(with_endpoint(str(location)))
    return pafs.LocalFileSystem(), os.path.abspath(location)


def join(location: str | os.PathLike, *parts: str) -> str:
    """`location/part/...` for a local folder or a URI (a URI's ?query stays at the end)."""
    location = str(location)
    if not is_uri(location):
        return os.path.join(location, *parts)
    base, sep, query = location.partition("?")
    return posixpath.join(base.rstrip("/"), *parts) + sep + query


def exists(location: str | os.PathLike) -> bool:
    fs, path = filesystem(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str | os.PathLike) -> bytes | None:
    """The contents of the file at `location`, or None when there is none."""
    fs, path = filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def upload(local_dir: str | os.PathLike, location: str | os.PathLike, names: list[str] | None = None) -> list[str]:
    """Copy the files under `local_dir` (only the top-level entries in `names`, if given) to the same relative
    paths under `location`; returns the relative paths copied. Existing files there are overwritten."""
    local_dir = Path(local_dir)
    fs, root = filesystem(location)
    entries = [local_dir / n for n in names] if names is not None else sorted(local_dir.iterdir())
    files = sorted(f for e in entries for f in ([e] if e.is_file() else e.rglob("*") if e.is_dir() else []))
    copied = []
    for file in files:
        if not file.is_file():
            continue
        relative = file.relative_to(local_dir).as_posix()
        target = posixpath.join(root, relative)
        fs.create_dir(posixpath.dirname(target), recursive=True)
        with file.open("rb") as src, fs.open_output_stream(target) as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
        copied.append(relative)
    return copied


def download(location: str | os.PathLike, local_dir: str | os.PathLike, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy every file under `location` to `local_dir` (keeping relative paths), except those under the top-level
    entries named in `skip`; returns the relative paths copied (none when `location` does not exist)."""
    fs, root = filesystem(location)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return []
    copied = []
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        relative = posixpath.relpath(info.path, root)
        if info.type != pafs.FileType.File or relative.split("/", 1)[0] in skip:
            continue
        target = Path(local_dir, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src:
            target.write_bytes(src.read())
        copied.append(relative)
    return sorted(copied)


def check_writable(location: str | os.PathLike) -> None:
    """Write and delete a small marker file in `location` (made if missing): raises OSError when the store cannot
    be reached or written (a missing bucket, wrong endpoint or credentials), ValueError for a URI pyarrow cannot
    use. Cheap enough to run before any work starts."""
    fs, root = filesystem(location)
    marker = posixpath.join(root, ".dlwild-write-check")
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(marker) as f:
        f.write(b"ok\n")
    fs.delete_file(marker)


def alive_nodes(nodes: list[dict] | None = None) -> int:
    """How many nodes of the connected Ray cluster are alive (`nodes`: `ray.nodes()`, read when not given;
    0 when Ray is not initialised)."""
    if nodes is None:
        import ray

        if not ray.is_initialized():
            return 0
        nodes = ray.nodes()
    return sum(1 for node in nodes if node.get("Alive"))


def require_shared(location: str | os.PathLike, flag: str = "--out", nodes: list[dict] | None = None) -> None:
    """Refuse a plain local path while Ray spans more than one alive node: the other nodes would write their part
    (Tune trial checkpoints, shards, ...) to folders of their own that nobody reads, and Ray refuses checkpoints
    from them. Raises UsageError (exit 2) naming `flag` and what to pass instead; a URI (file:// included) passes.

    `nodes` is `ray.nodes()` (read from the connected cluster when not given)."""
    from workloads.contract import UsageError

    if is_uri(location):
        return
    count = alive_nodes(nodes)
    if count > 1:
        raise UsageError(
            f"{flag} {location} is a local folder that the other nodes of this {count}-node Ray cluster cannot "
            f"reach; pass a shared URI to {flag}: s3://bucket/path, gs://bucket/path, or file:///path on storage "
            "that every node mounts"
        )
