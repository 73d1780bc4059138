"""The EMQX CustomResourceDefinition as a dict; `python -m kubectl_emqx.domain.crd` prints crds/emqx.yaml.

One structural schema serves v2beta1 (stored) and v2alpha1 (served, deprecated). Kubernetes
types inside the templates (affinity, probes, volumes, ...) are kept as preserve-unknown-fields
objects; the fields kubectl-emqx reads or validates are typed.
"""

from __future__ import annotations

from typing import Any

from kubectl_emqx.domain.spec import (
    CONFIG_MODES,
    DEFAULT_CLUSTER_DOMAIN,
    DEFAULT_CORES,
    DEFAULT_REPLICANTS,
    MAX_CONFIG_BYTES,
    RESTART_ROLES,
    UPDATE_STRATEGY_TYPES,
)
from kubectl_emqx.domain.vocabulary import (
    CRD_NAME,
    GROUP,
    KIND,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    PLURAL,
    SINGULAR,
    VERSION,
)

# A container image reference: [registry[:port]/]path[:tag][@digest]. RE2 syntax (no lookarounds).
IMAGE_PATTERN = (
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?"
    r"(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,})?$"
)
DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
API_KEY_NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"
# EMQX reads the bootstrap file as key:secret lines.
API_SECRET_PATTERN = r"^[^:\r\n]+$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
ENV_NAME_PATTERN = r"^[ -<>-~]+$"  # printable ASCII without '='


def _object(properties: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    if properties is not None:
        schema["properties"] = properties
    schema.update(extra)
    return schema


def _opaque_object(description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if description:
        schema["description"] = description
    return schema


def _opaque_list(description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": _opaque_object()}
    if description:
        schema["description"] = description
    return schema


def _string(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


def _integer(**extra: Any) -> dict[str, Any]:
    return {"type": "integer", "format": "int32", **extra}


def _rebalance() -> dict[str, Any]:
    relative = {
        "type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$",
        "x-kubernetes-validations": [{"rule": "double(self) > 1.0", "message": "must be greater than 1.0"}],
    }
    return _object(
        {
            "at": _string(format="date-time", description=(
                "When the rebalance was asked for (RFC 3339); a new value starts a new one "
                "(`kubectl emqx rebalance` sets it).")),
            "stop": {"type": "boolean", "description": "End the running rebalance (`kubectl emqx rebalance --stop`)."},
            "strategy": _object(
                {
                    "connEvictRate": _integer(minimum=1, description="Connections evicted per second per donor."),
                    "sessEvictRate": _integer(minimum=1, description="Sessions evicted per second per donor."),
                    "waitTakeover": _integer(minimum=0, description="Seconds between connection and session eviction."),
                    "waitHealthCheck": _integer(
                        minimum=0, description="Seconds for load balancers to see the donors unavailable."),
                    "absConnThreshold": _integer(minimum=1, description="Balanced when donor average <= "
                                                 "recipient average + this many connections."),
                    "relConnThreshold": {**relative, "description": "Balanced when donor average <= recipient "
                                         "average x this (a decimal string > 1.0, e.g. \"1.1\")."},
                    "absSessThreshold": _integer(minimum=1, description="As absConnThreshold, for sessions."),
                    "relSessThreshold": {**relative, "description": "As relConnThreshold, for sessions."},
                },
                description="EMQX's rebalance options (the official operator's rebalanceStrategy fields); "
                "EMQX's defaults apply to those left out.",
            ),
        },
        description="A connection rebalance across the nodes that serve clients (Enterprise, and every build "
        "from 5.9).",
    )


def _string_map() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def _int_or_string(description: str) -> dict[str, Any]:
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        "description": description,
    }


def _template_metadata() -> dict[str, Any]:
    return _object(
        {"name": _string(), "labels": _string_map(), "annotations": _string_map()},
        description="Labels and annotations for the pods.",
    )


def _image(field: str) -> dict[str, Any]:
    return _string(
        pattern=IMAGE_PATTERN,
        maxLength=512,
        description=f"{field}: EMQX image, e.g. emqx/emqx-enterprise:5.8.9 or emqx/emqx:5.8.9 (any registry prefix).",
    )


def _image_pull_policy() -> dict[str, Any]:
    return _string(enum=["Always", "IfNotPresent", "Never"])


def _env_var() -> dict[str, Any]:
    # Kubernetes takes printable ASCII but '=' in a pod's variable names (RelaxedEnvironmentVariableValidation);
    # refused here, a bad name would stop the StatefulSet, not the resource.
    return _object(
        {"name": _string(minLength=1, maxLength=1024, pattern=ENV_NAME_PATTERN), "value": _string(),
         "valueFrom": _opaque_object()},
        required=["name"],
    )


def _node_template_spec(role: str, minimum_replicas: int, default_replicas: int | None) -> dict[str, Any]:
    path = f"spec.{role}Template.spec"
    replicas = (
        _integer(minimum=minimum_replicas, default=default_replicas,
                 description=f"Number of {role} nodes (default {default_replicas}).")
        if default_replicas is not None
        else _integer(minimum=minimum_replicas, description=(
            f"Number of {role} nodes. Default: {DEFAULT_REPLICANTS} where the image runs replicants "
            "(Enterprise, and Opensource before 5.8), else 0."))
    )
    properties: dict[str, Any] = {
        "replicas": replicas,
        "nodeSelector": _string_map(),
        "nodeName": _string(),
        "affinity": _opaque_object(),
        "tolerations": _opaque_list(),
        "toleRations": _opaque_list("Deprecated spelling kept from emqx-operator; appended to tolerations."),
        "topologySpreadConstraints": _opaque_list(),
        "command": {"type": "array", "items": _string()},
        "args": {"type": "array", "items": _string()},
        "ports": _opaque_list("Extra container ports."),
        "env": {
            "type": "array",
            "items": _env_var(),
            "description": "Extra environment; a variable named like one kubectl-emqx sets replaces it.",
        },
        "envFrom": _opaque_list(),
        "resources": _opaque_object(),
        "podSecurityContext": _opaque_object("Default: uid/gid 1000, fsGroup 1000."),
        "containerSecurityContext": _opaque_object("Default: uid/gid 1000, runAsNonRoot."),
        "initContainers": _opaque_list(),
        "extraContainers": _opaque_list(),
        "extraVolumes": _opaque_list(),
        "extraVolumeMounts": _opaque_list(),
        "livenessProbe": _opaque_object("Default: GET /status on port dashboard, 60s delay, every 30s."),
        "readinessProbe": _opaque_object("Default: GET /status on port dashboard, 10s delay, every 5s."),
        "startupProbe": _opaque_object(),
        "lifecycle": _opaque_object(),
        "minAvailable": _int_or_string("PodDisruptionBudget minAvailable (exclusive with maxUnavailable)."),
        "maxUnavailable": _int_or_string("PodDisruptionBudget maxUnavailable (default 1)."),
    }
    if role == "core":
        properties["volumeClaimTemplates"] = _opaque_object(
            "A PersistentVolumeClaimSpec for each core's data volume (one spec, not a list, as in emqx-operator)."
        )
    return _object(
        properties,
        default={},
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.minAvailable) && has(self.maxUnavailable))",
                    "message": f"{path}.minAvailable and {path}.maxUnavailable cannot both be set; choose one",
                }
            ]
        },
    )


def _node_template(role: str, minimum_replicas: int, default_replicas: int | None) -> dict[str, Any]:
    return _object(
        {
            "metadata": _template_metadata(),
            "spec": _node_template_spec(role, minimum_replicas, default_replicas),
        },
        default={},
    )


def _service_template(description: str) -> dict[str, Any]:
    return _object(
        {
            "enabled": {"type": "boolean", "default": True},
            "metadata": _template_metadata(),
            "spec": _opaque_object("A ServiceSpec merged under the generated one (selector and our ports are set)."),
        },
        description=description,
    )


def _secret_key_selector() -> dict[str, Any]:
    return _object(
        {"secretName": _string(minLength=1, maxLength=253), "secretKey": _string(pattern=SECRET_KEY_PATTERN)},
        required=["secretName", "secretKey"],
    )


def _bootstrap_api_keys() -> dict[str, Any]:
    item = _object(
        {
            "key": _string(pattern=API_KEY_NAME_PATTERN, maxLength=128),
            "secret": _string(minLength=3, maxLength=128, pattern=API_SECRET_PATTERN),
            "secretRef": _object(
                {"key": _secret_key_selector(), "secret": _secret_key_selector()},
                required=["secret"],
            ),
        },
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.secret) != has(self.secretRef)",
                    "message": "each spec.bootstrapAPIKeys entry needs exactly one of secret and secretRef",
                },
                {
                    "rule": "has(self.key) || (has(self.secretRef) && has(self.secretRef.key))",
                    "message": "each spec.bootstrapAPIKeys entry needs a name: key or secretRef.key",
                },
            ]
        },
    )
    return {
        "type": "array",
        "maxItems": 64,
        "items": item,
        "description": "Extra EMQX API keys provisioned through the bootstrap file.",
    }


def _update_strategy() -> dict[str, Any]:
    return _object(
        {
            "type": _string(
                enum=list(UPDATE_STRATEGY_TYPES),
                description="RollingUpdate: one node at a time, cores first (Recreate is accepted as an alias).",
            ),
            "initialDelaySeconds": _integer(minimum=0, description=(
                "Seconds a replaced node must have been running (per EMQX) before the next node is taken down "
                "(default 0).")),
            "nodeReadyTimeoutSeconds": _integer(
                minimum=1, description="Seconds a restarted node may take to be ready before the rollout stalls."
            ),
            "evacuationStrategy": _object(
                {
                    "waitTakeover": _integer(minimum=0, description=(
                        "Seconds the clients of a replaced node get to reconnect elsewhere before the next node "
                        "goes (default 10; skipped when it had none, and given to EMQX when it drains the node).")),
                    "waitHealthCheck": _integer(minimum=0, description=(
                        "Seconds EMQX reports an evacuating node unavailable before it disconnects clients "
                        "(Enterprise 5.1+; default 60).")),
                    "connEvictRate": _integer(minimum=1, description="Connections per second."),
                    "sessEvictRate": _integer(minimum=1, description="Sessions per second."),
                }
            ),
            "allowDowngrade": {"type": "boolean", "description": "Permit moving to an older EMQX version."},
            "maxSurge": _integer(minimum=1, maximum=32, description=(
                "Replicants added (and old ones drained) at once during a rollout (default 1: one extra "
                "replicant's worth of capacity).")),
        }
    )


def spec_schema() -> dict[str, Any]:
    return _object(
        {
            "image": _image("spec.image"),
            "emqxTemplate": _object(
                {"image": _image("spec.emqxTemplate.image"), "imagePullPolicy": _image_pull_policy()},
                description="Older form: spec.emqxTemplate.image instead of spec.image.",
            ),
            "imagePullPolicy": _image_pull_policy(),
            "imagePullSecrets": {
                "type": "array",
                "items": _object({"name": _string()}, required=["name"]),
            },
            "serviceAccountName": _string(),
            "bootstrapAPIKeys": _bootstrap_api_keys(),
            "config": _object(
                {
                    "mode": _string(enum=list(CONFIG_MODES), default="Merge"),
                    "data": _string(maxLength=MAX_CONFIG_BYTES, description="HOCON, like etc/emqx.conf."),
                },
                default={},
            ),
            "bootstrapConfig": _string(maxLength=MAX_CONFIG_BYTES, description="v2alpha1 form of spec.config.data."),
            "clusterDomain": _string(
                default=DEFAULT_CLUSTER_DOMAIN,
                pattern=DNS_NAME_PATTERN,
                maxLength=253,
                **{
                    "x-kubernetes-validations": [
                        {
                            "rule": "self == oldSelf",
                            "message": "spec.clusterDomain is immutable: it is part of every core node's name",
                        }
                    ]
                },
            ),
            "revisionHistoryLimit": _integer(minimum=0),
            "updateStrategy": _update_strategy(),
            "restart": _object(
                {
                    "at": _string(format="date-time", description=(
                        "When the restart was asked for (RFC 3339); a new value restarts again. Nodes are "
                        "restarted one at a time, as in an upgrade (`kubectl emqx restart` sets it).")),
                    "role": _string(enum=list(RESTART_ROLES), default="all",
                                    description="Which nodes: all, cores or replicants."),
                    "nodes": {"type": "array", "items": _string(), "maxItems": 64,
                              "description": "Only these pods (by name)."},
                },
                description="A rolling restart request.",
            ),
            "rebalance": _rebalance(),
            "coreTemplate": _node_template("core", 1, DEFAULT_CORES),
            # No schema default: the operator picks one that the image can run (spec.default_replicants).
            "replicantTemplate": _node_template("replicant", 0, None),
            "dashboardServiceTemplate": _service_template("The dashboard/REST API Service (selects cores)."),
            "listenersServiceTemplate": _service_template(
                "The MQTT listeners Service (selects replicants, cores while there are none)."
            ),
        },
        **{
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.image) != (has(self.emqxTemplate) && has(self.emqxTemplate.image))",
                    "message": "exactly one of spec.image and spec.emqxTemplate.image must be set",
                },
                {
                    "rule": "!(has(self.bootstrapConfig) && has(self.config) && has(self.config.data))",
                    "message": "set spec.config.data or spec.bootstrapConfig, not both",
                },
            ]
        },
    )


def openapi_schema() -> dict[str, Any]:
    return _object(
        {
            "apiVersion": _string(),
            "kind": _string(),
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": _opaque_object("Written by the operator; see docs/internals.md."),
        },
        required=["spec"],
        **{
            "x-kubernetes-validations": [
                {
                    "rule": f"self.metadata.name.matches('{NAME_PATTERN}')",
                    "message": "metadata.name must be a DNS label: lower-case letters, digits and '-', starting and "
                               "ending with a letter or digit, no dots (it names the Services NAME-headless, "
                               "NAME-dashboard and NAME-listeners)",
                },
                {
                    "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
                    "message": f"metadata.name may have at most {MAX_NAME_LENGTH} characters: the core StatefulSet "
                               "NAME-core labels its pods with its name and a 10-character hash, and a label value "
                               "has at most 63",
                },
            ]
        },
    )


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Image", "type": "string", "jsonPath": ".status.currentImage"},
    {"name": "Cores", "type": "integer", "jsonPath": ".spec.coreTemplate.spec.replicas"},
    {"name": "Cores Ready", "type": "integer", "jsonPath": ".status.coreNodesStatus.readyReplicas"},
    {"name": "Replicants", "type": "integer", "jsonPath": ".spec.replicantTemplate.spec.replicas"},
    {"name": "Replicants Ready", "type": "integer", "jsonPath": ".status.replicantNodesStatus.readyReplicas"},
    {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Target Image", "type": "string", "jsonPath": ".status.targetImage", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]

SCALE_SUBRESOURCE: dict[str, str] = {
    "specReplicasPath": ".spec.replicantTemplate.spec.replicas",
    "statusReplicasPath": ".status.replicantNodesStatus.replicas",
    "labelSelectorPath": ".status.replicantNodesStatus.labelSelector",
}


def _version(name: str, *, storage: bool, deprecation_warning: str | None = None) -> dict[str, Any]:
    version: dict[str, Any] = {"name": name, "served": True, "storage": storage}
    if deprecation_warning:
        version["deprecated"] = True
        version["deprecationWarning"] = deprecation_warning
    version["schema"] = {"openAPIV3Schema": openapi_schema()}
    version["subresources"] = {"status": {}, "scale": dict(SCALE_SUBRESOURCE)}
    version["additionalPrinterColumns"] = [dict(column) for column in PRINTER_COLUMNS]
    return version


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME, "labels": {"app.kubernetes.io/part-of": "kubectl-emqx"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": ["emqx"],
            },
            "scope": "Namespaced",
            "versions": [
                _version(VERSION, storage=True),
                _version(
                    "v2alpha1",
                    storage=False,
                    deprecation_warning=f"{GROUP}/v2alpha1 EMQX is deprecated; use {GROUP}/v2beta1",
                ),
            ],
        },
    }


def render_yaml() -> str:
    import yaml

    header = "# Generated by `python -m kubectl_emqx.domain.crd > crds/emqx.yaml`; do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


if __name__ == "__main__":
    print(render_yaml(), end="")
