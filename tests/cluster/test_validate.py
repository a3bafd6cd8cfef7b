"""Offline validation of the shipped cluster configs (no Ray cluster needed).

Every launcher YAML, KubeRay manifest and Serve config the project ships validates; the KubeRay manifests also
validate against KubeRay's official CRDs (made strict), and our hand-written schema only uses fields those CRDs
define; each negative fixture fails with the offending key named.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from cluster import validate
from cluster.schemas.kuberay import GPU_IMAGE, IMAGE, RAY_VERSION, SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT.parent / "shared" / "schemas" / "kuberay"
CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayService": "ray.io_rayservices.yaml",
}
LAUNCHER = sorted((ROOT / "cluster" / "launcher").glob("*"))
KUBERAY = sorted((ROOT / "cluster" / "kuberay").glob("*.yaml"))
SERVE_CONFIG = ROOT / "serving" / "config.yaml"
INVALID = sorted((ROOT / "tests" / "fixtures" / "invalid").glob("*.yaml"))


def load(path: Path):
    return yaml.safe_load(path.read_text())


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_layout():
    assert {p.name for p in LAUNCHER} >= {"aws.yaml", "gcp.yaml"}
    assert all(p.suffix == ".yaml" and "provider" in load(p) for p in LAUNCHER), "cluster/launcher/: launcher YAML only"
    kinds = {load(p)["kind"] for p in KUBERAY}
    assert kinds == {"RayCluster", "RayJob", "RayService"}
    assert SERVE_CONFIG.is_file()
    assert len(INVALID) >= 6


@pytest.mark.parametrize("path", LAUNCHER + KUBERAY + [SERVE_CONFIG], ids=rel)
def test_shipped_config_validates(path):
    validate.validate_path(path)


def test_kinds_are_told_by_content():
    assert {validate.validate_data(load(p)) for p in LAUNCHER} == {"launcher"}
    assert validate.validate_data(load(SERVE_CONFIG)) == "serve"
    assert validate.validate_data(load(ROOT / "cluster/kuberay/raycluster.yaml")) == "RayCluster"


def test_launcher_configs_keep_the_project_rules():
    for path in LAUNCHER:
        config = load(path)
        head = config["available_node_types"][config["head_node_type"]]
        assert head["resources"]["CPU"] == 0
        gpu_types = [t for t in config["available_node_types"].values() if t["resources"].get("GPU", 0) > 0]
        assert gpu_types and all(t["min_workers"] == 0 < t["max_workers"] for t in gpu_types)
        assert any(
            t["resources"].get("CPU", 0) > 0 and "GPU" not in t["resources"]
            for t in config["available_node_types"].values()
        )
        assert config["idle_timeout_minutes"] > 0
        assert any("pip install" in c for c in config["setup_commands"])
        assert "RAY_AUTH_MODE=disabled" not in path.read_text()


def test_one_image_name_everywhere():
    """The image tag follows the package version, the Dockerfile's base follows Ray's, and every config uses it."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert IMAGE == f"dlwild/dlwild:{version}" and GPU_IMAGE == f"{IMAGE}-gpu"
    import ray

    assert ray.__version__ == RAY_VERSION
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE=rayproject/ray:{RAY_VERSION}-py311\n" in dockerfile
    assert "-c constraints.txt" in dockerfile
    images = set()
    for path in LAUNCHER + KUBERAY:
        images |= set(re.findall(r"(?:image|worker_image|head_image):\s*(\S+)", path.read_text()))
    assert images == {IMAGE, GPU_IMAGE}


def test_rayservice_serves_serving_config():
    """serveConfigV2 is serving/config.yaml, except that Serve listens on 0.0.0.0 inside the pod."""
    service = load(ROOT / "cluster/kuberay/rayservice.yaml")
    expected = load(SERVE_CONFIG)
    expected.setdefault("http_options", {})["host"] = "0.0.0.0"
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == expected, (
        "cluster/kuberay/rayservice.yaml: copy serving/config.yaml into spec.serveConfigV2 "
        "(with http_options.host: 0.0.0.0)"
    )


# --- the official KubeRay CRDs, made strict -------------------------------------------------------------------


def strict(node):
    """The CRD schema as JSON Schema that refuses unknown keys wherever the CRD lists properties."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {key: strict(value) for key, value in node.items()}
    if node.pop("x-kubernetes-int-or-string", False):
        node.pop("type", None)
        node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    return node


@pytest.fixture(scope="module")
def crd_schemas():
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {CRD_DIR} (reference data outside the repository)")
    schemas = {}
    for kind, name in CRD_FILES.items():
        crd = yaml.load((CRD_DIR / name).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        assert crd["spec"]["names"]["kind"] == kind
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schemas[kind] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


@pytest.mark.parametrize("path", KUBERAY, ids=rel)
def test_manifest_matches_official_crd(path, crd_schemas):
    manifest = load(path)
    errors = [
        f"{validate.key_path(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(crd_schemas[manifest["kind"]]).iter_errors(manifest)
    ]
    assert not errors, errors


def test_strict_crd_rejects_a_misspelt_key(crd_schemas):
    manifest = load(ROOT / "cluster/kuberay/raycluster.yaml")
    manifest["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    errors = list(jsonschema.Draft7Validator(crd_schemas["RayCluster"]).iter_errors(manifest))
    assert any("maxReplica'" in e.message for e in errors)


def _fields(ours: dict, crd: dict, path: str, missing: list) -> None:
    """Every property our schema allows must exist, at the same place, in the CRD's schema.

    An object the CRD leaves open (the top-level `metadata`, validated by the API server as ObjectMeta) is skipped.
    """
    if crd.get("type") == "object" and "properties" not in crd:
        return
    for key, sub in ours.get("properties", {}).items():
        if key not in crd.get("properties", {}):
            missing.append(f"{path}.{key}")
        else:
            _fields(sub, crd["properties"][key], f"{path}.{key}", missing)
    if "items" in ours and "items" in crd:
        _fields(ours["items"], crd["items"], f"{path}[]", missing)


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_our_schema_uses_only_crd_fields(kind, crd_schemas):
    missing = []
    _fields(SCHEMAS[kind], crd_schemas[kind], kind, missing)
    assert not missing, f"fields our schema allows but KubeRay's CRD does not define: {missing}"


# --- negative fixtures and the command line --------------------------------------------------------------------


def expected_key(path: Path) -> str:
    match = re.search(r"^# expect: (.+)$", path.read_text(), re.MULTILINE)
    assert match, f"{path} needs a '# expect: KEY' comment"
    return match.group(1).strip()


@pytest.mark.parametrize("path", INVALID, ids=rel)
def test_invalid_fixture_fails_naming_the_key(path):
    with pytest.raises(validate.ConfigError) as info:
        validate.validate_path(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected_key(path) in message
    assert "\n" not in message


def test_main_prints_one_line_per_file(capsys):
    assert validate.main([str(ROOT / "cluster" / "kuberay"), str(SERVE_CONFIG)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(KUBERAY) + 1 and all(line.startswith("ok  ") for line in lines)
    assert validate.main([str(ROOT / "cluster/kuberay/raycluster.yaml"), str(INVALID[0])]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok  ") and lines[1].startswith(f"error: {INVALID[0]}: ")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cluster.validate", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_cli_broken_yaml(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("applications: [\n  - name: x\n")
    result = run_cli(str(broken))
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip().splitlines()
    assert len(output) == 1 and output[0].startswith(f"error: {broken}: ") and "not valid YAML" in output[0]
    missing = run_cli(str(tmp_path / "nope.yaml"))
    assert missing.returncode != 0 and "cannot read" in missing.stdout and "Traceback" not in missing.stderr


def test_cli_names_the_key_of_a_bad_manifest():
    path = ROOT / "tests/fixtures/invalid/raycluster-min-above-max.yaml"
    result = run_cli(str(path.relative_to(ROOT)))
    assert result.returncode == 1
    assert result.stdout.strip().endswith("spec.workerGroupSpecs[0].minReplicas: 5 is more than maxReplicas 4")
