"""EmqxSpec -> the Kubernetes objects that run it, as plain dicts (pure and deterministic).

Same inputs give identical dicts, so the operator can compare and skip writes. Builders never
generate randomness: secret values come in as SecretValues (see new_secret_values()).
Names, labels, env and mounts follow docs/internals.md; the EMQX simulator relies on them.
"""

from __future__ import annotations

import base64
import copy
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_emqx import hocon
from kubectl_emqx.hocon import ListenerPort
from kubectl_emqx.spec import (
    API_VERSION,
    DEFAULT_CORES,
    ERLANG_DIST_PORT,
    GEN_RPC_PORT,
    KIND,
    OPERATOR_API_KEY_NAME,
    EmqxSpec,
    NodeTemplate,
    ServiceTemplate,
)
from kubectl_emqx.versions import parse_image, replicants_allowed, role_env_name, supports_bootstrap_api_keys

MANAGED_BY = "kubectl-emqx"
LABEL_INSTANCE = "apps.emqx.io/instance"
LABEL_MANAGED_BY = "apps.emqx.io/managed-by"
LABEL_DB_ROLE = "apps.emqx.io/db-role"
# Pod-template annotation: hash of the restart-relevant configuration; a change rolls the pods.
ANNOTATION_RESTART_HASH = "apps.emqx.io/restart-hash"
# Replicant pods are Ready only once the operator opens this gate: it paces replicant rollouts
# (draining the next old replicant through evacuation first) the way it paces cores by deleting them.
READINESS_GATE = "apps.emqx.io/on-serving"

CORE = "core"
REPLICANT = "replicant"
CONTAINER_NAME = "emqx"

COOKIE_SECRET_KEY = "node_cookie"
API_KEY_SECRET_KEY = "bootstrap_api_key"
# EMQX before 5.0.14 has no bootstrap API keys: the operator logs in as the dashboard admin instead,
# with a generated password (never EMQX's well-known default).
DASHBOARD_PASSWORD_KEY = "dashboard_password"
DASHBOARD_USERNAME = "admin"
CONFIG_KEY = "emqx.conf"

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
DEFAULT_READINESS_PROBE = {
    "httpGet": {"path": "/status", "port": DASHBOARD_PORT_NAME},
    "initialDelaySeconds": 10,
    "periodSeconds": 5,
    "failureThreshold": 12,
}
DEFAULT_LIVENESS_PROBE = {
    "httpGet": {"path": "/status", "port": DASHBOARD_PORT_NAME},
    "initialDelaySeconds": 60,
    "periodSeconds": 30,
    "failureThreshold": 3,
}

# Settings every emqx.conf we write starts with. The shipped etc/emqx.conf, which ours replaces,
# sets the dashboard port; EMQX's schema default (0) would disable the API the operator needs.
BOOT_DEFAULTS: dict[str, Any] = {"dashboard": {"listeners": {"http": {"bind": hocon.DEFAULT_DASHBOARD_PORT}}}}
CONFIG_HEADER = "# Written by kubectl-emqx from the EMQX resource; edits here are overwritten.\n"


@dataclass(frozen=True)
class ObjectNames:
    cookie_secret: str
    api_key_secret: str
    configmap: str
    headless_service: str
    core_statefulset: str
    replicant_deployment: str
    dashboard_service: str
    listeners_service: str
    core_pdb: str
    replicant_pdb: str


def object_names(name: str) -> ObjectNames:
    return ObjectNames(
        cookie_secret=f"{name}-node-cookie",
        api_key_secret=f"{name}-bootstrap-api-key",
        configmap=f"{name}-configs",
        headless_service=f"{name}-headless",
        core_statefulset=f"{name}-core",
        replicant_deployment=f"{name}-replicant",
        dashboard_service=f"{name}-dashboard",
        listeners_service=f"{name}-listeners",
        core_pdb=f"{name}-core",
        replicant_pdb=f"{name}-replicant",
    )


def owned_object_refs(name: str) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of every object an EMQX resource can own, in apply order, so the
    operator can delete those owned_objects() no longer returns (e.g. a disabled Service)."""
    names = object_names(name)
    return [
        ("v1", "Secret", names.cookie_secret),
        ("v1", "Secret", names.api_key_secret),
        ("v1", "ConfigMap", names.configmap),
        ("v1", "Service", names.headless_service),
        ("apps/v1", "StatefulSet", names.core_statefulset),
        ("apps/v1", "Deployment", names.replicant_deployment),
        ("v1", "Service", names.dashboard_service),
        ("v1", "Service", names.listeners_service),
        ("policy/v1", "PodDisruptionBudget", names.core_pdb),
        ("policy/v1", "PodDisruptionBudget", names.replicant_pdb),
    ]


# Labels --------------------------------------------------------------------------------------


def instance_labels(name: str) -> dict[str, str]:
    return {LABEL_INSTANCE: name, LABEL_MANAGED_BY: MANAGED_BY}


def selector_labels(name: str, role: str) -> dict[str, str]:
    return {**instance_labels(name), LABEL_DB_ROLE: role}


def label_selector(name: str, role: str) -> str:
    """The selector string for status (`replicantNodesStatus.labelSelector`, used by the scale subresource)."""
    return f"{LABEL_INSTANCE}={name},{LABEL_DB_ROLE}={role}"


def _metadata(
    spec: EmqxSpec, name: str, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": spec.namespace, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


# Secrets and configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class SecretValues:
    """Generated once by the operator and kept in the Secrets; passed back in on every build."""

    node_cookie: str
    api_key: str
    api_secret: str
    dashboard_password: str = ""


def new_secret_values(spec: EmqxSpec | None = None) -> SecretValues:
    """Fresh random cookie and operator API secret (the only non-pure function here).

    A `node.cookie` in the resource's configuration is kept, as emqx-operator does.
    """
    alphabet = string.ascii_letters + string.digits
    configured_cookie = hocon.get_path(spec.config, "node.cookie") if spec is not None else None
    cookie = str(configured_cookie) if configured_cookie else "".join(secrets.choice(alphabet) for _ in range(64))
    return SecretValues(
        node_cookie=cookie,
        api_key=OPERATOR_API_KEY_NAME,
        api_secret="".join(secrets.choice(alphabet) for _ in range(64)),
        dashboard_password="".join(secrets.choice(alphabet) for _ in range(32)),
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def api_key_file(spec: EmqxSpec, values: SecretValues, referenced_api_keys: Sequence[tuple[str, str]] = ()) -> str:
    """Content of the bootstrap API key file: the operator's key first, then the resource's keys
    with literal secrets, then `referenced_api_keys` (key, secret) the operator read from the
    Secrets that `secretRef`s name."""
    lines = [f"{values.api_key}:{values.api_secret}"]
    lines += [f"{key.key}:{key.secret}" for key in spec.bootstrap_api_keys if key.key and key.secret is not None]
    lines += [f"{key}:{secret}" for key, secret in referenced_api_keys]
    return "\n".join(lines) + "\n"


def build_secrets(
    spec: EmqxSpec, values: SecretValues, referenced_api_keys: Sequence[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    names = object_names(spec.name)
    labels = instance_labels(spec.name)
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(spec, names.cookie_secret, labels),
            "type": "Opaque",
            "data": {COOKIE_SECRET_KEY: _b64(values.node_cookie)},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(spec, names.api_key_secret, labels),
            "type": "Opaque",
            "data": {
                API_KEY_SECRET_KEY: _b64(api_key_file(spec, values, referenced_api_keys)),
                DASHBOARD_PASSWORD_KEY: _b64(values.dashboard_password),
            },
        },
    ]


def effective_config(spec: EmqxSpec) -> dict[str, Any]:
    """What EMQX boots with from our emqx.conf: BOOT_DEFAULTS with the resource's config on top."""
    return hocon.merge(BOOT_DEFAULTS, spec.config)


def effective_config_text(spec: EmqxSpec) -> str:
    """emqx.conf: the defaults, then the resource's HOCON verbatim (later keys win in HOCON)."""
    user_text = spec.config_text if spec.config_text.endswith("\n") or not spec.config_text else spec.config_text + "\n"
    return CONFIG_HEADER + hocon.dump(BOOT_DEFAULTS) + ("\n" + user_text if user_text else "")


def compute_restart_hash(spec: EmqxSpec) -> str:
    """Hash of the configuration that needs a restart to change (node, rpc, cluster, dashboard port)."""
    return hocon.stable_hash(hocon.restart_relevant_subset(effective_config(spec)))


def build_configmap(spec: EmqxSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, object_names(spec.name).configmap, instance_labels(spec.name)),
        "data": {CONFIG_KEY: effective_config_text(spec)},
    }


# Services ------------------------------------------------------------------------------------


def build_headless_service(spec: EmqxSpec) -> dict[str, Any]:
    """Core-only headless Service: DNS SRV discovery and stable core node names."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, object_names(spec.name).headless_service, selector_labels(spec.name, CORE)),
        "spec": {
            "clusterIP": "None",
            # Peers must find each other before they are Ready, or the cluster never forms.
            "publishNotReadyAddresses": True,
            "selector": selector_labels(spec.name, CORE),
            "ports": [
                _service_port(ERLANG_DIST_PORT_NAME, ERLANG_DIST_PORT),
                _service_port(GEN_RPC_PORT_NAME, GEN_RPC_PORT),
            ],
        },
    }


def _service_port(name: str, port: int, protocol: str = "TCP") -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": port, "protocol": protocol}


def _merged_ports(ours: list[dict[str, Any]], template_ports: Any) -> list[dict[str, Any]]:
    """Template ports win where they share a name or a port/protocol with ours."""
    template_ports = [copy.deepcopy(p) for p in template_ports or [] if isinstance(p, Mapping)]
    taken_names = {p.get("name") for p in template_ports}
    taken_ports = {(p.get("port"), p.get("protocol", "TCP")) for p in template_ports}
    kept = [p for p in ours if p["name"] not in taken_names and (p["port"], p["protocol"]) not in taken_ports]
    return kept + template_ports


def _templated_service(
    spec: EmqxSpec,
    name: str,
    template: ServiceTemplate,
    selector: dict[str, str],
    ports: list[dict[str, Any]],
) -> dict[str, Any] | None:
    if not template.enabled:
        return None
    service_spec = copy.deepcopy(template.spec)
    service_spec["selector"] = selector
    service_spec["ports"] = _merged_ports(ports, template.spec.get("ports"))
    service_spec.setdefault("type", "ClusterIP")
    labels = {**template.labels, **instance_labels(spec.name)}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, name, labels, template.annotations),
        "spec": service_spec,
    }


def build_dashboard_service(spec: EmqxSpec) -> dict[str, Any] | None:
    """Dashboard and REST API on the cores; None when dashboardServiceTemplate.enabled is false."""
    port = _dashboard_port(spec)
    return _templated_service(
        spec,
        object_names(spec.name).dashboard_service,
        spec.dashboard_service,
        selector_labels(spec.name, CORE),
        [_service_port(DASHBOARD_PORT_NAME, port)],
    )


def build_listeners_service(
    spec: EmqxSpec, listener_ports: Sequence[ListenerPort], replicants_running: bool
) -> dict[str, Any] | None:
    """MQTT listeners (UDP ones included) on the replicants, or on the cores while no replicant
    runs; None when listenersServiceTemplate.enabled is false."""
    role = REPLICANT if replicants_running else CORE
    return _templated_service(
        spec,
        object_names(spec.name).listeners_service,
        spec.listeners_service,
        selector_labels(spec.name, role),
        [_service_port(p.name, p.port, p.protocol) for p in listener_ports],
    )


# Workloads -----------------------------------------------------------------------------------


def _dashboard_port(spec: EmqxSpec) -> int:
    return hocon.dashboard_port(spec.config) or hocon.DEFAULT_DASHBOARD_PORT


def _dns_name(spec: EmqxSpec) -> str:
    return f"{object_names(spec.name).headless_service}.{spec.namespace}.svc.{spec.cluster_domain}"


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
        {"name": DASHBOARD_PORT_NAME, "containerPort": _dashboard_port(spec), "protocol": "TCP"},
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


def _pod_template(spec: EmqxSpec, role: str, image: str, restart_hash: str, data_from_claim: bool) -> dict[str, Any]:
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
    container["readinessProbe"] = copy.deepcopy(template.readiness_probe or DEFAULT_READINESS_PROBE)
    container["livenessProbe"] = copy.deepcopy(template.liveness_probe or DEFAULT_LIVENESS_PROBE)
    if template.startup_probe is not None:
        container["startupProbe"] = copy.deepcopy(template.startup_probe)
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
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


def _workload_metadata(spec: EmqxSpec, name: str, role: str) -> dict[str, Any]:
    return _metadata(spec, name, selector_labels(spec.name, role))


def build_statefulset(
    spec: EmqxSpec,
    restart_hash: str | None = None,
    partition: int | None = None,
    image: str | None = None,
) -> dict[str, Any]:
    """The cores. `partition` None: updateStrategy OnDelete (pods change only when the operator
    deletes them); an int: RollingUpdate with that partition (ordinals >= partition roll).
    `image` overrides spec.image, so the operator can hold or roll back the cores' image."""
    image = image or spec.image
    restart_hash = restart_hash if restart_hash is not None else compute_restart_hash(spec)
    claim = spec.core.volume_claim_template
    update_strategy: dict[str, Any] = (
        {"type": "OnDelete"}
        if partition is None
        else {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    )
    statefulset_spec: dict[str, Any] = {
        "replicas": spec.core.replicas,
        "serviceName": object_names(spec.name).headless_service,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": selector_labels(spec.name, CORE)},
        "updateStrategy": update_strategy,
        "revisionHistoryLimit": spec.revision_history_limit,
        "template": _pod_template(spec, CORE, image, restart_hash, data_from_claim=claim is not None),
    }
    if claim is not None:
        claim_spec = copy.deepcopy(claim)
        claim_spec.setdefault("accessModes", ["ReadWriteOnce"])
        claim_spec.setdefault("volumeMode", "Filesystem")
        statefulset_spec["volumeClaimTemplates"] = [
            {"metadata": {"name": DATA_VOLUME, "labels": selector_labels(spec.name, CORE)}, "spec": claim_spec}
        ]
        # Keep data when the resource is deleted by mistake; drop the volume of a core removed by
        # scale-down, which has left the cluster and whose Mnesia copy would be stale on return.
        statefulset_spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Delete"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _workload_metadata(spec, object_names(spec.name).core_statefulset, CORE),
        "spec": statefulset_spec,
    }


def build_deployment(spec: EmqxSpec, restart_hash: str | None = None, image: str | None = None) -> dict[str, Any]:
    """The replicants. `image` overrides spec.image: the operator keeps replicants on the old
    image until every core runs the new one. Rolls with maxSurge 1 / maxUnavailable 0, so no
    serving capacity is dropped."""
    image = image or spec.image
    restart_hash = restart_hash if restart_hash is not None else compute_restart_hash(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _workload_metadata(spec, object_names(spec.name).replicant_deployment, REPLICANT),
        "spec": {
            "replicas": spec.replicant.replicas,
            "selector": {"matchLabels": selector_labels(spec.name, REPLICANT)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": spec.revision_history_limit,
            "template": _pod_template(spec, REPLICANT, image, restart_hash, data_from_claim=False),
        },
    }


def build_pdbs(spec: EmqxSpec) -> list[dict[str, Any]]:
    """One PodDisruptionBudget per role; maxUnavailable 1 unless the template says otherwise."""
    names = object_names(spec.name)
    budgets = []
    for role, name, template in ((CORE, names.core_pdb, spec.core), (REPLICANT, names.replicant_pdb, spec.replicant)):
        pdb_spec: dict[str, Any] = {"selector": {"matchLabels": selector_labels(spec.name, role)}}
        if template.min_available is not None:
            pdb_spec["minAvailable"] = template.min_available
        else:
            pdb_spec["maxUnavailable"] = template.max_unavailable if template.max_unavailable is not None else 1
        # A node that never gets ready must not block draining the Kubernetes node it sits on.
        pdb_spec["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
        budgets.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _metadata(spec, name, selector_labels(spec.name, role)),
                "spec": pdb_spec,
            }
        )
    return budgets


def owned_objects(
    spec: EmqxSpec,
    secret_values: SecretValues,
    *,
    restart_hash: str | None = None,
    listener_ports: Sequence[ListenerPort] | None = None,
    replicants_running: bool = False,
    partition: int | None = None,
    core_image: str | None = None,
    replicant_image: str | None = None,
    referenced_api_keys: Sequence[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """Every object the resource should own right now, in apply order.

    `listener_ports` default to those of the resource's configuration; the operator may pass the
    ones it read from EMQX. Disabled Services are absent (see owned_object_refs() for pruning).
    """
    restart_hash = restart_hash if restart_hash is not None else compute_restart_hash(spec)
    ports = list(listener_ports) if listener_ports is not None else hocon.listener_ports(effective_config(spec))
    objects: list[dict[str, Any] | None] = [
        *build_secrets(spec, secret_values, referenced_api_keys),
        build_configmap(spec),
        build_headless_service(spec),
        build_statefulset(spec, restart_hash, partition, core_image),
        build_deployment(spec, restart_hash, replicant_image),
        build_dashboard_service(spec),
        build_listeners_service(spec, ports, replicants_running),
        *build_pdbs(spec),
    ]
    return [obj for obj in objects if obj is not None]


def with_owner(obj: Mapping[str, Any], owner_body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` owned (controller reference) by the EMQX resource `owner_body`."""
    owner_metadata = owner_body["metadata"]
    reference = {
        "apiVersion": owner_body.get("apiVersion", API_VERSION),
        "kind": owner_body.get("kind", KIND),
        "name": owner_metadata["name"],
        "uid": owner_metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    owned = copy.deepcopy(dict(obj))
    owned.setdefault("metadata", {})["ownerReferences"] = [reference]
    return owned


# The resource itself (kubectl emqx create) ---------------------------------------------------


def build_emqx_resource(
    name: str,
    namespace: str | None = None,
    *,
    image: str,
    cores: int = DEFAULT_CORES,
    replicants: int | None = None,
    config_text: str | None = None,
    storage_class: str | None = None,
    storage_size: str | None = None,
    service_type: str | None = None,
) -> dict[str, Any]:
    """An apps.emqx.io/v2beta1 EMQX resource.

    `replicants` None means 3 where the edition runs replicants and 0 where it does not
    (Opensource from 5.8). `storage_class` / `storage_size` give the cores a persistent volume
    (size defaults to 1Gi); `service_type` applies to the MQTT listeners Service.
    """
    info = parse_image(image)
    if replicants is None:
        replicants = 3 if replicants_allowed(info.edition, info.version) else 0
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    core_spec: dict[str, Any] = {"replicas": cores}
    if storage_class or storage_size:
        claim: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage_size or "1Gi"}},
        }
        if storage_class:
            claim["storageClassName"] = storage_class
        core_spec["volumeClaimTemplates"] = claim
    spec: dict[str, Any] = {
        "image": image,
        "coreTemplate": {"spec": core_spec},
        "replicantTemplate": {"spec": {"replicas": replicants}},
    }
    if config_text:
        spec["config"] = {"mode": "Merge", "data": config_text}
    if service_type:
        spec["listenersServiceTemplate"] = {"spec": {"type": service_type}}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
