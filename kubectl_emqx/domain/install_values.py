"""The Helm chart's values, as InstallOptions (pure).

One schema serves three readers: the chart's values.yaml and values.schema.json (written by
`python -m dist_tools.helm_chart`; Helm validates values against the schema), and
`kubectl emqx install --values FILE`, which reads the same file into the same InstallOptions the
chart's templates were generated from. So `helm template -f v.yaml` and
`kubectl emqx install --values v.yaml --dry-run -o yaml` give the same objects.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from kubectl_emqx import __version__
from kubectl_emqx.domain import install

# Kubernetes object fields the chart passes through as they are (the API server validates them).
_K8S_OBJECT = {"type": "object"}
_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # a namespace (DNS label)
_SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # a Secret (DNS subdomain)
_DURATION_PATTERN = r"^[0-9]+(ms|s|m|h)$"  # a Prometheus scrape interval


def _object(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def _string_map(description: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string"}, "description": description}


SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "emqx-operator chart values (kubectl_emqx/domain/install_values.py)",
    **_object({
        "global": {"type": "object", "description": "Set by a parent chart; unused."},
        "image": _object({
            "repository": {"type": "string", "minLength": 1},
            "tag": {"type": "string", "description": "Default: the chart's appVersion."},
            "digest": {"type": "string", "pattern": r"^$|^[a-z0-9]+:[a-fA-F0-9]{32,}$",
                       "description": "sha256:...; wins over tag."},
            "pullPolicy": {"type": "string", "enum": list(install.PULL_POLICIES)},
        }, required=("repository", "pullPolicy")),
        "imagePullSecrets": {"type": "array", "items": _object(
            {"name": {"type": "string", "pattern": _SECRET_NAME_PATTERN}}, required=("name",))},
        "replicaCount": {"type": "integer", "minimum": 1, "maximum": 9,
                         "description": "Operator pods; one leads through a Lease, the others stand by."},
        "watchNamespaces": {"type": "array", "items": {"type": "string", "pattern": _NAME_PATTERN},
                            "description": "Empty: every namespace (a ClusterRole); else a Role in each."},
        "logLevel": {"type": "string", "enum": list(install.LOG_LEVELS)},
        "resources": _K8S_OBJECT,
        "podSecurityContext": _K8S_OBJECT,
        "containerSecurityContext": _K8S_OBJECT,
        "nodeSelector": _string_map("Pod nodeSelector."),
        "tolerations": {"type": "array", "items": _K8S_OBJECT},
        "affinity": _K8S_OBJECT,
        "extraEnv": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                 "properties": {"name": {"type": "string", "minLength": 1}}},
                     "description": "EnvVar objects added to the operator container."},
        "metrics": _object({
            "service": _object({"enabled": {"type": "boolean"}}, required=("enabled",)),
        }, required=("service",)),
        "serviceMonitor": _object({
            "enabled": {"type": "boolean",
                        "description": "Needs the Prometheus Operator's CRD and metrics.service.enabled."},
            "interval": {"type": "string", "pattern": _DURATION_PATTERN},
            "labels": _string_map("Added to the ServiceMonitor (e.g. what your Prometheus selects)."),
        }, required=("enabled", "interval")),
    }, required=("image", "replicaCount", "logLevel", "metrics", "serviceMonitor")),
}


def default_values() -> dict[str, Any]:
    """values.yaml: what InstallOptions() installs."""
    options = install.InstallOptions()
    return {
        "image": {"repository": install.DEFAULT_IMAGE_REPOSITORY, "tag": "", "digest": "",
                  "pullPolicy": options.image_pull_policy},
        "imagePullSecrets": [],
        "replicaCount": options.replicas,
        "watchNamespaces": [],
        "logLevel": options.log_level,
        "resources": copy.deepcopy(options.resources),
        "podSecurityContext": copy.deepcopy(options.pod_security_context),
        "containerSecurityContext": copy.deepcopy(options.container_security_context),
        "nodeSelector": {},
        "tolerations": [],
        "affinity": {},
        "extraEnv": [],
        "metrics": {"service": {"enabled": options.metrics_service}},
        "serviceMonitor": {"enabled": options.service_monitor, "interval": options.service_monitor_interval,
                           "labels": {}},
    }


def merge(base: dict[str, Any], override: dict[str, Any], *, keep_nulls: bool = False) -> dict[str, Any]:
    """Helm's coalescing of values over the defaults: mappings merge key by key, anything else
    replaces, and null removes the key. Values files merged with one another (`keep_nulls`) keep their
    nulls, so that a later file's null still removes a default."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None and not keep_nulls:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value, keep_nulls=keep_nulls)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "integer": (int,),
}


def problems(value: Any, schema: dict[str, Any] = SCHEMA, path: str = "") -> list[str]:
    """The JSON-schema subset SCHEMA uses, each problem naming the field and the value."""
    where = path or "values"
    kind = schema.get("type")
    if kind and (not isinstance(value, _TYPES[kind]) or (kind == "integer" and isinstance(value, bool))):
        return [f"{where}: {value!r} is not {'an' if kind[0] in 'aeiou' else 'a'} {kind}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {', '.join(map(str, schema['enum']))}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minLength" in schema and len(value) < schema["minLength"]:
        found.append(f"{where}: must not be empty")
    if "minimum" in schema and value < schema["minimum"]:
        found.append(f"{where}: {value} is less than {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        found.append(f"{where}: {value} is more than {schema['maximum']}")
    if kind == "object":
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{path + '.' if path else ''}{key}: missing")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            field = f"{path}.{key}" if path else str(key)
            if key in properties:
                found += problems(item, properties[key], field)
            elif extra is False:
                found.append(f"{field}: unknown value (known: {', '.join(properties)})")
            elif isinstance(extra, dict):
                found += problems(item, extra, field)
    if kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], f"{where}[{index}]")
    return found


class ValuesError(ValueError):
    pass


def image_reference(image: dict[str, Any], app_version: str) -> str:
    """repository@digest, else repository:tag (the tag defaults to the chart's appVersion)."""
    if image.get("digest"):
        return f"{image['repository']}@{image['digest']}"
    return f"{image['repository']}:{image.get('tag') or app_version}"


def options_from_values(values: dict[str, Any], namespace: str) -> install.InstallOptions:
    """InstallOptions for the chart's values merged over its defaults, in release namespace `namespace`."""
    merged = merge(default_values(), values)
    found = problems(merged)
    if found:
        raise ValuesError("; ".join(found))
    monitor = merged["serviceMonitor"]
    options = install.InstallOptions(
        namespace=namespace,
        watch_namespaces=tuple(merged.get("watchNamespaces") or ()),
        image=image_reference(merged["image"], __version__),
        replicas=merged["replicaCount"],
        image_pull_policy=merged["image"]["pullPolicy"],
        image_pull_secrets=tuple(item["name"] for item in merged.get("imagePullSecrets") or ()),
        log_level=merged["logLevel"],
        resources=merged.get("resources") or {},
        node_selector=merged.get("nodeSelector") or {},
        tolerations=tuple(merged.get("tolerations") or ()),
        affinity=merged.get("affinity") or {},
        pod_security_context=merged.get("podSecurityContext") or {},
        container_security_context=merged.get("containerSecurityContext") or {},
        extra_env=tuple(merged.get("extraEnv") or ()),
        metrics_service=merged["metrics"]["service"]["enabled"],
        service_monitor=monitor["enabled"],
        service_monitor_interval=monitor["interval"],
        service_monitor_labels=monitor.get("labels") or {},
    )
    found = install.option_problems(options)
    if found:
        raise ValuesError("; ".join(found))
    return options
