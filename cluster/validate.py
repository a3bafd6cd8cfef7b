"""Offline validation of the cluster configs dlwild ships: launcher YAML, KubeRay manifests, Serve configs.

`python -m cluster.validate PATH...` (also `python -m cluster validate PATH...`) checks files, or the *.yaml
files in folders, and prints one line per file. The kind of config is told from its content:

- a Ray cluster launcher config (it has `provider`) goes through Ray's own `prepare_config` and
  `validate_config` (for aws and gcp these only merge Ray's defaults.yaml: nothing talks to a cloud), then
  through the project's rules (head with 0 CPUs, worker min/max set, GPU types scale from 0, the project image,
  token authentication on, dashboard on localhost);
- a KubeRay manifest (`apiVersion: ray.io/v1`, kind RayCluster/RayJob/RayService) against our strict schema
  (cluster/schemas/kuberay.py) plus the cross-field rules the CRDs lack; a RayService's serveConfigV2 is checked
  as a Serve config too;
- a Serve config (it has `applications`, `http_options` or `proxy_location`) through
  `ray.serve.schema.ServeDeploySchema` plus a walk that refuses keys the schema does not know (pydantic drops
  misspelt keys silently).

Every error names the offending key as a dotted path, e.g. `spec.workerGroupSpecs[0].maxReplicas: ...`.
"""

from __future__ import annotations

import copy
import re
import sys
import types
import typing
from pathlib import Path

import jsonschema
import yaml

from cluster.schemas.kuberay import GPU_IMAGE, IMAGE, SCHEMAS

KUBERAY_API_VERSION = "ray.io/v1"
SERVE_KEYS = ("applications", "http_options", "proxy_location")
CLOUD_PROVIDERS = ("aws", "gcp", "azure")


class ConfigError(Exception):
    """A config that does not validate; the message names the file and the offending key."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader, node, deep=False):
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        keys.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str, where: str):
    """Parse one YAML document; a syntax error or duplicate key becomes a one-line ConfigError."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: {at}not valid YAML: {problem}") from None


def key_path(parts) -> str:
    """`("spec", "workerGroupSpecs", 0, "maxReplicas")` -> `spec.workerGroupSpecs[0].maxReplicas`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_error(error: jsonschema.ValidationError) -> str:
    """One line for a jsonschema error, with the path of the offending key (not just of its parent)."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        allowed = ", ".join(sorted(known)) or "none"
        return f"{key_path(path + extra[:1])}: unknown key (allowed here: {allowed})"
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"{key_path(path + missing[:1])}: required key is missing"
    return f"{key_path(path)}: {error.message}"


def check_schema(data, schema: dict) -> None:
    """Validate against a JSON Schema, reporting the most relevant error first."""
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(data))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(_schema_error(best) + more)


# --- Ray cluster launcher ---------------------------------------------------------------------------------


def validate_launcher(config: dict) -> None:
    """Ray's own preparation and schema, then the project's rules for cloud clusters."""
    from ray.autoscaler._private.docker import validate_docker_config
    from ray.autoscaler._private.util import (
        fill_node_type_min_max_workers,
        merge_setup_commands,
        prepare_config,
        validate_config,
    )

    provider = config.get("provider")
    if not isinstance(provider, dict) or not isinstance(provider.get("type"), str):
        raise ConfigError("provider.type: required, e.g. aws or gcp")
    try:
        try:
            # aws/gcp/azure: merges the provider's defaults.yaml; the cloud bootstrap (boto3, credentials) is
            # a separate step of `ray up` that we never call.
            prepared = prepare_config(copy.deepcopy(config))
        except FileNotFoundError:
            # fake_multinode: the wheel lacks the defaults file, so the config must be complete as written.
            prepared = copy.deepcopy(config)
            merge_setup_commands(prepared)
            validate_docker_config(prepared)
            fill_node_type_min_max_workers(prepared)
        validate_config(prepared)
    except jsonschema.ValidationError as e:
        raise ConfigError(_schema_error(e)) from None
    except (ValueError, KeyError, TypeError, AssertionError, RuntimeError, NotImplementedError) as e:
        raise ConfigError(f"rejected by Ray's validation: {e}") from None
    if provider["type"] in CLOUD_PROVIDERS:
        _launcher_rules(config)


def _launcher_rules(config: dict) -> None:
    """What Ray's schema allows but the project does not."""
    if "idle_timeout_minutes" not in config:
        raise ConfigError("idle_timeout_minutes: required key is missing (idle workers must go away)")
    docker = config.get("docker") or {}
    if docker.get("image") != IMAGE:
        raise ConfigError(f"docker.image: must be the project image {IMAGE!r}, got {docker.get('image')!r}")
    head = config["head_node_type"]
    head_cpus = config["available_node_types"][head].get("resources", {}).get("CPU")
    if head_cpus != 0:
        raise ConfigError(
            f"available_node_types.{head}.resources.CPU: must be 0 (no work on the head), got {head_cpus!r}"
        )
    head_start = " ".join(config.get("head_start_ray_commands", []))
    if "--num-cpus=0" not in head_start:
        raise ConfigError("head_start_ray_commands: `ray start --head` must pass --num-cpus=0")
    if re.search(r"--dashboard-host[= ]+0\.0\.0\.0", head_start):
        raise ConfigError(
            "head_start_ray_commands: --dashboard-host=0.0.0.0 exposes the dashboard; "
            "keep 127.0.0.1 and use `ray dashboard CONFIG` (ssh port-forward)"
        )
    for path, text in _strings(config, []):
        if "RAY_AUTH_MODE=disabled" in text:
            raise ConfigError(f"{key_path(path)}: token authentication must stay on (RAY_AUTH_MODE=disabled)")
    for name, node_type in config["available_node_types"].items():
        if name == head:
            continue
        where = f"available_node_types.{name}"
        for key in ("min_workers", "max_workers"):
            if key not in node_type:
                raise ConfigError(f"{where}.{key}: required key is missing (set both min and max)")
        if node_type["min_workers"] > node_type["max_workers"]:
            raise ConfigError(
                f"{where}.min_workers: {node_type['min_workers']} is more than max_workers {node_type['max_workers']}"
            )
        if node_type.get("resources", {}).get("GPU", 0) > 0:
            if node_type["min_workers"] != 0:
                raise ConfigError(f"{where}.min_workers: GPU nodes must scale from 0, got {node_type['min_workers']}")
            image = (node_type.get("docker") or {}).get("worker_image")
            if image != GPU_IMAGE:
                raise ConfigError(f"{where}.docker.worker_image: GPU nodes use {GPU_IMAGE!r}, got {image!r}")


def _strings(value, path: list):
    """Every string in a parsed config with its key path (commands, docker run options, ...)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, path + [key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, path + [i])


# --- KubeRay ----------------------------------------------------------------------------------------------


def validate_kuberay(manifest: dict, filename: str = "") -> None:
    """Our strict schema for the kind, then the cross-field rules the CRDs cannot express."""
    kind = manifest.get("kind")
    if kind not in SCHEMAS:
        raise ConfigError(f"kind: {kind!r} is not one of {', '.join(SCHEMAS)}")
    check_schema(manifest, SCHEMAS[kind])
    spec = manifest["spec"]
    cluster_key = {"RayCluster": None, "RayJob": "rayClusterSpec", "RayService": "rayClusterConfig"}[kind]
    _ray_cluster_rules(spec[cluster_key] if cluster_key else spec, f"spec.{cluster_key}" if cluster_key else "spec")
    if kind == "RayCluster" and not spec.get("enableInTreeAutoscaling"):
        raise ConfigError("spec.enableInTreeAutoscaling: must be true (worker groups scale between min and max)")
    if kind == "RayJob":
        stem = Path(filename).stem
        if stem.startswith("rayjob-"):
            workload = stem.removeprefix("rayjob-").replace("-", "_")
            module = spec["entrypoint"].split()[2]
            if module != f"workloads.{workload}" and not module.startswith(f"workloads.{workload}."):
                raise ConfigError(
                    f"spec.entrypoint: {filename} must run `python -m workloads.{workload}`, runs {module!r}"
                )
    if kind == "RayService":
        try:
            validate_serve(load_yaml(spec["serveConfigV2"], "spec.serveConfigV2"))
        except ConfigError as e:
            raise ConfigError(f"spec.serveConfigV2: {e}") from None


def _ray_cluster_rules(cluster: dict, where: str) -> None:
    num_cpus = cluster["headGroupSpec"]["rayStartParams"].get("num-cpus")
    if num_cpus != "0":
        raise ConfigError(
            f'{where}.headGroupSpec.rayStartParams.num-cpus: must be "0" (no work on the head), got {num_cpus!r}'
        )
    _image_rules(cluster["headGroupSpec"]["template"], f"{where}.headGroupSpec.template")
    for i, group in enumerate(cluster["workerGroupSpecs"]):
        at = f"{where}.workerGroupSpecs[{i}]"
        low, high = group["minReplicas"], group["maxReplicas"]
        if low > high:
            raise ConfigError(f"{at}.minReplicas: {low} is more than maxReplicas {high}")
        if "replicas" in group and not low <= group["replicas"] <= high:
            raise ConfigError(f"{at}.replicas: {group['replicas']} is outside minReplicas..maxReplicas ({low}..{high})")
        gpus = _image_rules(group["template"], f"{at}.template")
        if gpus and low != 0:
            raise ConfigError(f"{at}.minReplicas: GPU groups must scale from 0, got {low}")


def _image_rules(template: dict, where: str) -> bool:
    """GPU containers use the GPU image, the others the CPU image, none turns auth off; True if any asks for GPUs."""
    any_gpu = False
    for j, container in enumerate(template["spec"]["containers"]):
        gpu = "nvidia.com/gpu" in container["resources"].get("limits", {})
        any_gpu = any_gpu or gpu
        for k, env in enumerate(container.get("env", [])):
            if env["name"] == "RAY_AUTH_MODE" and env.get("value") != "token":
                raise ConfigError(
                    f"{where}.spec.containers[{j}].env[{k}].value: token authentication must stay "
                    f"on (RAY_AUTH_MODE={env.get('value')})"
                )
        want = GPU_IMAGE if gpu else IMAGE
        if container["image"] != want:
            raise ConfigError(
                f"{where}.spec.containers[{j}].image: must be {want!r} "
                f"({'with' if gpu else 'without'} nvidia.com/gpu), got {container['image']!r}"
            )
    return any_gpu


# --- Ray Serve --------------------------------------------------------------------------------------------


def validate_serve(config: dict) -> None:
    """Unknown keys first (pydantic would drop them), then Ray Serve's own ServeDeploySchema."""
    import pydantic
    from ray.serve.schema import ServeDeploySchema

    _unknown_keys(config, ServeDeploySchema, [])
    try:
        ServeDeploySchema.model_validate(config)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{key_path(first['loc'])}: {first['msg']}{more}") from None


def _model_in(annotation):
    """The pydantic model or list element type inside Optional[...], Union[dict, Model], Annotated[...]."""
    import pydantic

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if origin in (list, list):
        return ("list", typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found = [_model_in(arg) for arg in typing.get_args(annotation)]
        return next((f for f in found if f is not None), None)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    return None


def _unknown_keys(value, annotation, path: list) -> None:
    """Walk a dict along the pydantic model's fields and refuse keys the model does not define."""
    target = _model_in(annotation)
    if isinstance(target, tuple):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _unknown_keys(item, target[1], path + [i])
        return
    if target is None or not isinstance(value, dict) or target.model_config.get("extra") == "allow":
        return
    fields = {}
    for name, field in target.model_fields.items():
        fields[name] = field
        if field.alias:
            fields[field.alias] = field
    for key, item in value.items():
        if key not in fields:
            allowed = ", ".join(sorted(target.model_fields))
            raise ConfigError(f"{key_path(path + [key])}: unknown key (allowed here: {allowed})")
        _unknown_keys(item, fields[key].annotation, path + [key])


# --- entry points -----------------------------------------------------------------------------------------


def validate_data(data, filename: str = "") -> str:
    """Validate parsed YAML by its content; returns the kind of config it was."""
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level")
    if "provider" in data:
        validate_launcher(data)
        return "launcher"
    if str(data.get("apiVersion", "")).startswith("ray.io/"):
        if data["apiVersion"] != KUBERAY_API_VERSION:
            raise ConfigError(f"apiVersion: must be {KUBERAY_API_VERSION!r}, got {data['apiVersion']!r}")
        validate_kuberay(data, filename)
        return data["kind"]
    if any(key in data for key in SERVE_KEYS):
        validate_serve(data)
        return "serve"
    raise ConfigError(
        "not a launcher config (provider), a KubeRay manifest (apiVersion ray.io/v1) or a Serve config (applications)"
    )


def validate_path(path) -> None:
    """Validate one YAML file; raises ConfigError("PATH: key.path: reason") when it is not valid."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        validate_data(load_yaml(text, str(path)), path.name)
    except ConfigError as e:
        message = str(e)
        raise ConfigError(message if message.startswith(f"{path}:") else f"{path}: {message}") from None


def expand(paths) -> list[Path]:
    """Files as given; folders become their *.yaml files, sorted."""
    out = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) if p.is_dir() else [p])
    return out


def main(argv=None) -> int:
    """`validate PATH...`: one line per file, 0 when all are valid, 1 otherwise, 2 for a usage error."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: python -m cluster validate PATH... (YAML files, or folders of *.yaml)",
            file=sys.stdout if argv else sys.stderr,
        )
        return 0 if argv else 2
    files = expand(argv)
    if not files:
        print(f"error: no YAML files in {' '.join(argv)}", file=sys.stderr)
        return 1
    failed = 0
    for path in files:
        try:
            validate_path(path)
            print(f"ok  {path}")
        except ConfigError as e:
            failed += 1
            print(f"error: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
