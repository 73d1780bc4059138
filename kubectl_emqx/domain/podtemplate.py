"""The pod template both workloads share: the EMQX container, its environment, ports, volumes and
probes, and the pod around it (pure and deterministic).

Names, env and mounts follow docs/internals.md; the EMQX simulator relies on them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from kubectl_emqx.domain import hocon
from kubectl_emqx.domain.spec import ERLANG_DIST_PORT, GEN_RPC_PORT, EmqxSpec, NodeTemplate
from kubectl_emqx.domain.versions import has_status_endpoint, parse_image, role_env_name, supports_bootstrap_api_keys
from kubectl_emqx.domain.vocabulary import (
    ANNOTATION_RESTART_HASH,
    ANNOTATION_RESTARTED_AT,
    API_KEY_SECRET_KEY,
    CONFIG_KEY,
    CONTAINER_NAME,
    COOKIE_SECRET_KEY,
    CORE,
    DASHBOARD_PASSWORD_KEY,
    READINESS_GATE,
    REPLICANT,
    headless_dns_name,
    object_names,
    selector_labels,
)

DATA_DIR = "/opt/emqx/data"
LOG_DIR = "/opt/emqx/log"
CONFIG_FILE = "/opt/emqx/etc/emqx.conf"
API_KEY_FILE = f"{DATA_DIR}/bootstrap_api_key"

DATA_VOLUME = "data"
LOG_VOLUME = "log"
CONFIG_VOLUME = "emqx-config"
API_KEY_VOLUME = "bootstrap-api-key"

DASHBOARD_PORT_NAME = "dashboard"
ERLANG_DIST_PORT_NAME = "ekka"
GEN_RPC_PORT_NAME = "genrpc"

EMQX_UID = 1000
DEFAULT_POD_SECURITY_CONTEXT = {
    "runAsUser": EMQX_UID,
    "runAsGroup": EMQX_UID,
    "fsGroup": EMQX_UID,
    "fsGroupChangePolicy": "Always",
    "supplementalGroups": [EMQX_UID],
}
DEFAULT_CONTAINER_SECURITY_CONTEXT = {"runAsUser": EMQX_UID, "runAsGroup": EMQX_UID, "runAsNonRoot": True}
# A booting node is asked every second (for up to five minutes) by a startup probe, so it is Ready
# as soon as EMQX answers, instead of after a fixed initial delay paid by every node of a rolling
# upgrade; readiness and liveness only start once it has answered (the kubelet holds them back).
DEFAULT_STARTUP_PROBE = {
    "httpGet": {"path": "/status", "port": DASHBOARD_PORT_NAME},
    "periodSeconds": 1,
    "failureThreshold": 300,
}
DEFAULT_READINESS_PROBE = {
    "httpGet": {"path": "/status", "port": DASHBOARD_PORT_NAME},
    "periodSeconds": 2,
    "failureThreshold": 3,
}
DEFAULT_LIVENESS_PROBE = {
    "httpGet": {"path": "/status", "port": DASHBOARD_PORT_NAME},
    "periodSeconds": 30,
    "failureThreshold": 3,
}


def _default_probe(probe: dict[str, Any], image: str) -> dict[str, Any]:
    """Our probes ask `GET /status`, which EMQX has from 5.0.5; before, `/api/v5/status` answers it."""
    if has_status_endpoint(parse_image(image).version):
        return probe
    return {**probe, "httpGet": {**probe["httpGet"], "path": "/api/v5/status"}}


def dashboard_port(spec: EmqxSpec) -> int:
    return hocon.dashboard_port(spec.config) or hocon.DEFAULT_DASHBOARD_PORT


def _dns_name(spec: EmqxSpec) -> str:
    return headless_dns_name(spec.name, spec.namespace, spec.cluster_domain)


def _env(spec: EmqxSpec, role: str, image: str) -> list[dict[str, Any]]:
    version = parse_image(image).version
    host: dict[str, Any] = (
        {"name": "EMQX_HOST", "value": "$(POD_NAME).$(EMQX_CLUSTER__DNS__NAME)"}
        if role == CORE
        else {"name": "EMQX_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    )
    ours: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "EMQX_CLUSTER__DISCOVERY_STRATEGY", "value": "dns"},
        {"name": "EMQX_CLUSTER__DNS__RECORD_TYPE", "value": "srv"},
        {"name": "EMQX_CLUSTER__DNS__NAME", "value": _dns_name(spec)},
        host,
        {"name": "EMQX_NODE__DATA_DIR", "value": "data"},
        {"name": role_env_name(version), "value": role},
        {
            "name": "EMQX_NODE__COOKIE",
            "valueFrom": {"secretKeyRef": {"name": object_names(spec.name).cookie_secret, "key": COOKIE_SECRET_KEY}},
        },
        {
            "name": "EMQX_DASHBOARD__DEFAULT_PASSWORD",
            "valueFrom": {"secretKeyRef": {
                "name": object_names(spec.name).api_key_secret, "key": DASHBOARD_PASSWORD_KEY, "optional": True}},
        },
    ]
    if supports_bootstrap_api_keys(version):
        # The quotes are part of the value: EMQX reads env values as HOCON, and a bare path is no string.
        ours.append({"name": "EMQX_API_KEY__BOOTSTRAP_FILE", "value": f'"{API_KEY_FILE}"'})
    template = spec.core if role == CORE else spec.replicant
    return _merge_named(ours, template.env)


def _merge_named(ours: list[dict[str, Any]], theirs: Sequence[Any]) -> list[dict[str, Any]]:
    """Entries of `theirs` replace ours with the same name in place (order matters for $(VAR)
    references); new names are appended."""
    merged = [copy.deepcopy(item) for item in ours]
    positions = {item["name"]: index for index, item in enumerate(merged)}
    for item in theirs:
        if not isinstance(item, Mapping):
            continue
        item = copy.deepcopy(dict(item))
        if item.get("name") in positions:
            merged[positions[item["name"]]] = item
        else:
            positions[item.get("name")] = len(merged)
            merged.append(item)
    return merged


def _container_ports(spec: EmqxSpec, template: NodeTemplate) -> list[dict[str, Any]]:
    # Listener ports are deliberately absent: EMQX changes listeners at runtime, and declaring them
    # here would roll the pods on every listener change (Services target port numbers anyway).
    ours = [
        {"name": DASHBOARD_PORT_NAME, "containerPort": dashboard_port(spec), "protocol": "TCP"},
        {"name": ERLANG_DIST_PORT_NAME, "containerPort": ERLANG_DIST_PORT, "protocol": "TCP"},
        {"name": GEN_RPC_PORT_NAME, "containerPort": GEN_RPC_PORT, "protocol": "TCP"},
    ]
    taken_names = {p["name"] for p in ours}
    taken_ports = {(p["containerPort"], p["protocol"]) for p in ours}
    extra = [
        copy.deepcopy(p)
        for p in template.ports
        if isinstance(p, Mapping)
        and p.get("name") not in taken_names
        and (p.get("containerPort"), p.get("protocol", "TCP")) not in taken_ports
    ]
    return ours + extra


def _volume_mounts(template: NodeTemplate) -> list[dict[str, Any]]:
    # Parents before the file mounted inside them.
    ours: list[dict[str, Any]] = [
        {"name": DATA_VOLUME, "mountPath": DATA_DIR},
        {"name": LOG_VOLUME, "mountPath": LOG_DIR},
        {"name": CONFIG_VOLUME, "mountPath": CONFIG_FILE, "subPath": CONFIG_KEY, "readOnly": True},
        {"name": API_KEY_VOLUME, "mountPath": API_KEY_FILE, "subPath": API_KEY_SECRET_KEY, "readOnly": True},
    ]
    return ours + [copy.deepcopy(m) for m in template.extra_volume_mounts]


def _volumes(spec: EmqxSpec, template: NodeTemplate, data_from_claim: bool) -> list[dict[str, Any]]:
    names = object_names(spec.name)
    volumes: list[dict[str, Any]] = []
    if not data_from_claim:
        volumes.append({"name": DATA_VOLUME, "emptyDir": {}})
    volumes += [
        {"name": LOG_VOLUME, "emptyDir": {}},
        {"name": CONFIG_VOLUME, "configMap": {"name": names.configmap}},
        {"name": API_KEY_VOLUME, "secret": {"secretName": names.api_key_secret}},
    ]
    return volumes + [copy.deepcopy(v) for v in template.extra_volumes]


def pod_template(spec: EmqxSpec, role: str, image: str, restart_hash: str, data_from_claim: bool) -> dict[str, Any]:
    template = spec.core if role == CORE else spec.replicant
    container: dict[str, Any] = {"name": CONTAINER_NAME, "image": image}
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    if template.command is not None:
        container["command"] = copy.deepcopy(template.command)
    if template.args is not None:
        container["args"] = copy.deepcopy(template.args)
    container["ports"] = _container_ports(spec, template)
    container["env"] = _env(spec, role, image)
    if template.env_from:
        container["envFrom"] = copy.deepcopy(template.env_from)
    if template.resources is not None:
        container["resources"] = copy.deepcopy(template.resources)
    container["securityContext"] = copy.deepcopy(
        template.container_security_context
        if template.container_security_context is not None
        else DEFAULT_CONTAINER_SECURITY_CONTEXT
    )
    readiness = template.readiness_probe or _default_probe(DEFAULT_READINESS_PROBE, image)
    container["readinessProbe"] = copy.deepcopy(readiness)
    startup = template.startup_probe
    if startup is None and template.readiness_probe is None and template.liveness_probe is None:
        # Ours: only beside our own readiness and liveness probes (a user's probes keep their timing).
        startup = _default_probe(DEFAULT_STARTUP_PROBE, image)
    liveness = template.liveness_probe or _default_probe(DEFAULT_LIVENESS_PROBE, image)
    if template.liveness_probe is None and startup is None:
        liveness = {**liveness, "initialDelaySeconds": 60}  # nothing holds it back while the node boots
    container["livenessProbe"] = copy.deepcopy(liveness)
    if startup is not None:
        container["startupProbe"] = copy.deepcopy(startup)
    if template.lifecycle is not None:
        container["lifecycle"] = copy.deepcopy(template.lifecycle)
    container["volumeMounts"] = _volume_mounts(template)

    pod_spec: dict[str, Any] = {}
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = copy.deepcopy(spec.image_pull_secrets)
    # Service links would put EMQX_<SERVICE>_... variables into the pod for Services named
    # emqx-*; EMQX reads every EMQX_ variable as configuration.
    pod_spec["enableServiceLinks"] = False
    pod_spec["securityContext"] = copy.deepcopy(
        template.pod_security_context if template.pod_security_context is not None else DEFAULT_POD_SECURITY_CONTEXT
    )
    for key, value in (
        ("nodeSelector", template.node_selector),
        ("nodeName", template.node_name),
        ("affinity", template.affinity),
    ):
        if value is not None:
            pod_spec[key] = copy.deepcopy(value)
    for key, items in (
        ("tolerations", template.tolerations),
        ("topologySpreadConstraints", template.topology_spread_constraints),
        ("initContainers", template.init_containers),
    ):
        if items:
            pod_spec[key] = copy.deepcopy(items)
    pod_spec["containers"] = [container] + copy.deepcopy(template.extra_containers)
    pod_spec["volumes"] = _volumes(spec, template, data_from_claim)
    if role == REPLICANT:
        pod_spec["readinessGates"] = [{"conditionType": READINESS_GATE}]

    labels = {**template.labels, **selector_labels(spec.name, role)}
    annotations = {**template.annotations, ANNOTATION_RESTART_HASH: restart_hash}
    if spec.restart is not None and not spec.restart.nodes and spec.restart.covers(role):
        annotations[ANNOTATION_RESTARTED_AT] = spec.restart.at
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}
