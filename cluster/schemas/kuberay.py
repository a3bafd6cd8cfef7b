"""Strict JSON Schemas for the RayCluster, RayJob and RayService fields dlwild uses.

Written by hand, not generated from the CRDs: only the fields the project uses are allowed, and every object
refuses unknown keys, so a misspelt key fails here instead of being dropped silently by the API server.
A field we start using must be added here on purpose; the tests check our manifests against the official
CRDs too (tests/cluster/test_validate.py), so this schema cannot drift from KubeRay's.
"""

from __future__ import annotations

IMAGE = "dlwild/dlwild:0.1.0"
"""The project's image (Dockerfile at the repo root); the tag follows the version in pyproject.toml."""
GPU_IMAGE = f"{IMAGE}-gpu"
"""The same Dockerfile built on the CUDA variant of the Ray image, for GPU nodes."""
RAY_VERSION = "2.60.0"


def obj(properties: dict, required: tuple = ()) -> dict:
    """An object schema that refuses keys it does not list."""
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: dict, min_items: int = 0) -> dict:
    return {"type": "array", "items": items, "minItems": min_items}


def map_of(values: dict) -> dict:
    """A free-form map (labels, resource quantities, rayStartParams) with typed values."""
    return {"type": "object", "additionalProperties": values}


STRING = {"type": "string"}
BOOL = {"type": "boolean"}
NON_NEGATIVE_INT = {"type": "integer", "minimum": 0}
QUANTITY = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}]}
DNS_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}

RESOURCES = obj({"limits": map_of(QUANTITY), "requests": map_of(QUANTITY)})

ENV_VAR = obj(
    {
        "name": STRING,
        "value": STRING,
        "valueFrom": obj({"secretKeyRef": obj({"name": STRING, "key": STRING, "optional": BOOL}, ("name", "key"))}),
    },
    ("name",),
)

CONTAINER = obj(
    {
        "name": STRING,
        "image": {"enum": [IMAGE, GPU_IMAGE]},
        "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        "command": array(STRING),
        "args": array(STRING),
        "env": array(ENV_VAR),
        "ports": array(
            obj(
                {
                    "name": STRING,
                    "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "protocol": {"enum": ["TCP", "UDP"]},
                },
                ("containerPort",),
            )
        ),
        "resources": RESOURCES,
        "volumeMounts": array(obj({"name": STRING, "mountPath": STRING, "readOnly": BOOL}, ("name", "mountPath"))),
    },
    ("name", "image", "resources"),
)

POD_TEMPLATE = obj(
    {
        "metadata": obj({"labels": map_of(STRING), "annotations": map_of(STRING)}),
        "spec": obj(
            {
                "containers": array(CONTAINER, min_items=1),
                "nodeSelector": map_of(STRING),
                "tolerations": array(
                    obj(
                        {
                            "key": STRING,
                            "operator": {"enum": ["Exists", "Equal"]},
                            "value": STRING,
                            "effect": {"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
                        }
                    )
                ),
                "volumes": array(
                    obj({"name": STRING, "emptyDir": obj({"medium": STRING, "sizeLimit": QUANTITY})}, ("name",))
                ),
                "serviceAccountName": STRING,
            },
            ("containers",),
        ),
    },
    ("spec",),
)

RAY_START_PARAMS = map_of(STRING)  # KubeRay passes them as `ray start --key=value`: values must be strings

HEAD_GROUP = obj(
    {
        "rayStartParams": RAY_START_PARAMS,
        # ClusterIP only: the dashboard and Serve stay inside the cluster (kubectl port-forward to reach them).
        "serviceType": {"enum": ["ClusterIP"]},
        "template": POD_TEMPLATE,
    },
    ("rayStartParams", "template"),
)

WORKER_GROUP = obj(
    {
        "groupName": DNS_NAME,
        "replicas": NON_NEGATIVE_INT,
        "minReplicas": NON_NEGATIVE_INT,
        "maxReplicas": {"type": "integer", "minimum": 1},
        "idleTimeoutSeconds": NON_NEGATIVE_INT,
        "rayStartParams": RAY_START_PARAMS,
        "template": POD_TEMPLATE,
    },
    ("groupName", "minReplicas", "maxReplicas", "rayStartParams", "template"),
)

RAY_CLUSTER_SPEC = obj(
    {
        "rayVersion": {"const": RAY_VERSION},
        "enableInTreeAutoscaling": BOOL,
        "autoscalerOptions": obj(
            {
                "idleTimeoutSeconds": NON_NEGATIVE_INT,
                "upscalingMode": {"enum": ["Default", "Aggressive", "Conservative"]},
                "version": {"enum": ["v1", "v2"]},
                "resources": RESOURCES,
            }
        ),
        # Token authentication stays on: "disabled" is not an allowed value.
        "authOptions": obj({"mode": {"const": "token"}, "secretName": DNS_NAME}, ("mode",)),
        "headGroupSpec": HEAD_GROUP,
        "workerGroupSpecs": array(WORKER_GROUP, min_items=1),
    },
    ("rayVersion", "authOptions", "headGroupSpec", "workerGroupSpecs"),
)

METADATA = obj(
    {"name": DNS_NAME, "namespace": DNS_NAME, "labels": map_of(STRING), "annotations": map_of(STRING)}, ("name",)
)


def resource(kind: str, spec: dict) -> dict:
    return obj(
        {"apiVersion": {"const": "ray.io/v1"}, "kind": {"const": kind}, "metadata": METADATA, "spec": spec},
        ("apiVersion", "kind", "metadata", "spec"),
    )


SCHEMAS = {
    "RayCluster": resource("RayCluster", RAY_CLUSTER_SPEC),
    "RayJob": resource(
        "RayJob",
        obj(
            {
                "entrypoint": {"type": "string", "pattern": r"^python -m workloads\.[a-z_][a-z0-9_.]*( |$)"},
                "runtimeEnvYAML": STRING,
                "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "SidecarMode"]},
                "shutdownAfterJobFinishes": BOOL,
                "ttlSecondsAfterFinished": NON_NEGATIVE_INT,
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "backoffLimit": NON_NEGATIVE_INT,
                "rayClusterSpec": RAY_CLUSTER_SPEC,
            },
            ("entrypoint", "shutdownAfterJobFinishes", "rayClusterSpec"),
        ),
    ),
    "RayService": resource(
        "RayService",
        obj(
            {
                "serveConfigV2": {"type": "string", "minLength": 1},
                "rayClusterConfig": RAY_CLUSTER_SPEC,
            },
            ("serveConfigV2", "rayClusterConfig"),
        ),
    ),
}
