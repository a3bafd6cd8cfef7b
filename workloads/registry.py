"""The model registry that training jobs publish to and Serve apps load from, with the code version.

Registry layout: `<registry>/<task>/<name>/<version>/` with the weights (`weights.pt` or `model.skops`) and
`metadata.json` (classes, training data, metrics, code version, the command that trained it). `<registry>` is a
local folder or a pyarrow filesystem URI (`s3://bucket/models`, `gs://...`, `file:///...`). Names and versions
that come from requests or flags are checked against a strict pattern before they reach any path, so
`../../etc` can never leave the registry.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from workloads.contract import field, flag
from workloads.storage import filesystem

DEFAULT_REGISTRY = "registry"
BUILTIN_REGISTRY = str(Path(__file__).parent / "builtin")  # small committed models, trained by our own job
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
_VERSION = re.compile(r"^v[0-9]{1,6}$")
_FILE = re.compile(r"^[a-z0-9_\-]{1,64}\.[a-z]{1,8}$")


class RegistryError(ValueError):
    """A bad model name or version, or a model that is not in the registry (the message says which)."""


def registry_root() -> str:
    """The registry a run or an app uses when none is given: $DLWILD_REGISTRY, else `registry/`."""
    return os.environ.get("DLWILD_REGISTRY") or DEFAULT_REGISTRY


def check_name(name: str, what: str = "model name") -> str:
    """Return `name` if it is a plain identifier (lower case, digits, '_' or '-'); else raise RegistryError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise RegistryError(f"invalid {what} {name!r}: use 1-64 characters of a-z, 0-9, '_' or '-'")
    return name


def _check_file(filename: str) -> str:
    if not _FILE.match(filename):
        raise RegistryError(f"invalid file name {filename!r} in a model's metadata")
    return filename


def _versions(store, base: str) -> list[str]:
    infos = store.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    names = [Path(i.path).name for i in infos if i.type == pafs.FileType.Directory]
    return sorted((n for n in names if _VERSION.match(n)), key=lambda v: int(v[1:]))


def list_models(root: str, task: str) -> list[str]:
    """Names of the models of a task that have at least one version."""
    store, base = filesystem(root)
    infos = store.get_file_info(pafs.FileSelector(f"{base}/{check_name(task, 'task')}", allow_not_found=True))
    return sorted(
        Path(i.path).name
        for i in infos
        if i.type == pafs.FileType.Directory and _NAME.match(Path(i.path).name) and _versions(store, i.path)
    )


def resolve(root: str, task: str, name: str, version: str = "latest") -> str | None:
    """The concrete version (`v3`) of a model, or None when the registry does not hold it."""
    store, base = filesystem(root)
    path = f"{base}/{check_name(task, 'task')}/{check_name(name)}"
    versions = _versions(store, path)
    if version == "latest":
        return versions[-1] if versions else None
    if not _VERSION.match(str(version)):
        raise RegistryError(f"invalid version {version!r}: use 'latest' or v<number>")
    return version if version in versions else None


def save_model(root: str, task: str, name: str, files: dict[str, bytes], metadata: dict) -> str:
    """Write a new version (one more than the newest) of `<task>/<name>`; returns it, e.g. 'v2'.

    Files go first and `metadata.json` last, so a version whose metadata exists is complete.
    """
    store, base = filesystem(root)
    path = f"{base}/{check_name(task, 'task')}/{check_name(name)}"
    versions = _versions(store, path)
    version = f"v{int(versions[-1][1:]) + 1 if versions else 1}"
    folder = f"{path}/{version}"
    store.create_dir(folder, recursive=True)
    for filename, data in files.items():
        with store.open_output_stream(f"{folder}/{_check_file(filename)}") as f:
            f.write(data)
    meta = dict(
        metadata,
        task=task,
        name=name,
        version=version,
        files=sorted(files),
        code_version=metadata.get("code_version") or code_version(),
    )
    with store.open_output_stream(f"{folder}/metadata.json") as f:
        f.write(json.dumps(meta, indent=2, default=str).encode())
    return version


def load_model(root: str, task: str, name: str, version: str = "latest") -> tuple[dict[str, bytes], dict]:
    """(files, metadata) of a model version; RegistryError when it is not there."""
    concrete = resolve(root, task, name, version)
    if concrete is None:
        raise RegistryError(f"no model {task}/{name} ({version}) in registry {root}")
    store, base = filesystem(root)
    folder = f"{base}/{task}/{name}/{concrete}"
    with store.open_input_stream(f"{folder}/metadata.json") as f:
        meta = json.loads(f.read())
    files = {}
    for filename in meta["files"]:
        with store.open_input_stream(f"{folder}/{_check_file(filename)}") as f:
            files[filename] = f.read()
    return files, meta


def find_model(task: str, name: str, version: str = "latest", root: str | None = None):
    """Look in the registry first, then among the committed builtin models; None when neither has it."""
    for where in (root or registry_root(), BUILTIN_REGISTRY):
        try:
            if resolve(where, task, name, version):
                return load_model(where, task, name, version)
        except OSError:  # an unreachable remote registry falls back to the builtin models
            continue
    return None


def torch_bytes(state_dict) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return buf.getvalue()


def torch_state(data: bytes):
    """A state dict loaded safely: tensors and plain containers only (`weights_only=True`)."""
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def code_version() -> str:
    """`git describe` of the checkout when there is one, else the installed package version."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"dlwild {version('dlwild')}"
    except PackageNotFoundError:
        return "unknown"


@dataclasses.dataclass
class PublishesModels:
    """Config fields of a workload that publishes what it trained to the registry; a mixin of its config:
    `class Config(PublishesModels, WorkloadConfig)`."""

    registry: str = field("", help="model registry folder or URI (default $DLWILD_REGISTRY or registry/)")
    publish: bool = field(True, help="write the trained model to the registry")

    def publish_model(self, task: str, name: str, files: dict[str, bytes], metadata: dict) -> dict[str, str]:
        """Save `files` as a new version of `<registry>/<task>/<name>/`; the metadata gets the command that
        reproduces this run. Returns the summary's `registry` entry: root, model and version."""
        root = self.registry or registry_root()
        meta = dict(metadata, command=metadata.get("command") or command_line(self))
        return dict(root=root, model=f"{task}/{name}", version=save_model(root, task, name, files, meta))


def command_line(config: Any) -> str:
    """`python -m workloads.<workload>` with the flags that give a config its non-default values."""
    words = [f"python -m workloads.{config.workload}"]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if value == default:
            continue
        if isinstance(value, bool):
            words.append(flag(f.name) if value else flag(f"no_{f.name}"))
        else:
            words.append(f"{flag(f.name)} {shlex.quote(str(value))}")
    return " ".join(words)
