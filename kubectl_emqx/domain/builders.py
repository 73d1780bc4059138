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

from kubectl_emqx.domain import hocon, versions
from kubectl_emqx.domain.hocon import ListenerPort
from kubectl_emqx.domain.podtemplate import (
    DASHBOARD_PORT_NAME,
    DATA_VOLUME,
    ERLANG_DIST_PORT_NAME,
    GEN_RPC_PORT_NAME,
    dashboard_port,
    pod_template,
)
from kubectl_emqx.domain.spec import DEFAULT_CORES, ERLANG_DIST_PORT, GEN_RPC_PORT, EmqxSpec, ServiceTemplate
from kubectl_emqx.domain.versions import parse_image, replicants_allowed
from kubectl_emqx.domain.vocabulary import (
    ANNOTATION_API_KEYS_HASH,
    API_KEY_SECRET_KEY,
    API_VERSION,
    CONFIG_KEY,
    COOKIE_SECRET_KEY,
    CORE,
    DASHBOARD_PASSWORD_KEY,
    KIND,
    OPERATOR_API_KEY_NAME,
    REPLICANT,
    instance_labels,
    object_names,
    selector_labels,
)

CONFIG_HEADER = "# Written by kubectl-emqx from the EMQX resource; edits here are overwritten.\n"
# Files of the EMQX image that the shipped etc/emqx.conf refers to.
ACL_FILE = "/opt/emqx/etc/acl.conf"
CERTS_DIR = "/opt/emqx/etc/certs"
DEFAULT_LISTENER_BINDS = (("tcp", 1883), ("ssl", 8883), ("ws", 8083), ("wss", 8084))


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


def decode(value: str) -> str:
    """A Secret's data value as text."""
    return base64.b64decode(value).decode()


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
                # A copy: a deleted cookie Secret is recreated with the cookie the nodes run with.
                COOKIE_SECRET_KEY: _b64(values.node_cookie),
            },
        },
    ]


def boot_defaults(spec: EmqxSpec) -> dict[str, Any]:
    """What every emqx.conf we write starts with: the settings the shipped etc/emqx.conf provides (ours
    replaces it) that EMQX's schema does not.

    - The dashboard HTTP port: the schema's default (0) would disable the API the operator needs.
    - Before 5.0.25 / e5.0.3 the schema has no listeners and no authorization source: without them
      the node serves no MQTT at all. The shipped file's tcp, ssl, ws and wss default listeners and
      its file authorization source (the image's acl.conf) are declared unless the resource's
      configuration sets them itself.
    """
    defaults: dict[str, Any] = {"dashboard": {"listeners": {"http": {"bind": hocon.DEFAULT_DASHBOARD_PORT}}}}
    info = spec.image_info
    if versions.schema_has_default_listeners(info.edition, info.version):
        return defaults
    configured = spec.config.get("listeners")
    user_listeners: Mapping[str, Any] = configured if isinstance(configured, Mapping) else {}
    listeners: dict[str, Any] = {}
    for listener_type, port in DEFAULT_LISTENER_BINDS:
        named = user_listeners.get(listener_type)
        if isinstance(named, Mapping) and "default" in named:
            continue
        listener: dict[str, Any] = {"bind": f"0.0.0.0:{port}"}
        if listener_type in ("ssl", "wss"):
            listener["ssl_options"] = {
                "keyfile": f"{CERTS_DIR}/key.pem", "certfile": f"{CERTS_DIR}/cert.pem",
                "cacertfile": f"{CERTS_DIR}/cacert.pem",
            }
        listeners[listener_type] = {"default": listener}
    if listeners:
        defaults["listeners"] = listeners
    if hocon.get_path(spec.config, "authorization.sources") is None:
        defaults["authorization"] = {"sources": [{"type": "file", "enable": True, "path": ACL_FILE}]}
    return defaults


def effective_config(spec: EmqxSpec) -> dict[str, Any]:
    """What EMQX boots with from our emqx.conf: boot_defaults() with the resource's config on top."""
    return hocon.merge(boot_defaults(spec), spec.config)


def config_file_text(spec: EmqxSpec, user_text: str | None = None) -> str:
    """emqx.conf: the defaults, then the resource's HOCON verbatim (later keys win in HOCON).
    `user_text` replaces the resource's text (the operator keeps the last text EMQX accepted)."""
    text = spec.config_text if user_text is None else user_text
    text = text if text.endswith("\n") or not text else text + "\n"
    return CONFIG_HEADER + hocon.dump(boot_defaults(spec)) + ("\n" + text if text else "")


def config_restart_hash(spec: EmqxSpec, config: Mapping[str, Any] | None = None) -> str:
    """Hash of the configuration (default: the effective one) that needs a restart to change: node,
    rpc, cluster and the dashboard port; every key before 5.1.1, which has no config API."""
    config = effective_config(spec) if config is None else config
    version = spec.image_info.version
    if not versions.supports_config_put(version):
        return hocon.stable_hash(config)
    return hocon.stable_hash(hocon.restart_relevant_subset(config, version))


def build_configmap(spec: EmqxSpec, text: str | None = None) -> dict[str, Any]:
    """The emqx.conf ConfigMap; `text` (a whole file) replaces config_file_text(spec)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, object_names(spec.name).configmap, instance_labels(spec.name)),
        "data": {CONFIG_KEY: config_file_text(spec) if text is None else text},
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
    port = dashboard_port(spec)
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


def _workload_metadata(spec: EmqxSpec, name: str, role: str) -> dict[str, Any]:
    return _metadata(spec, name, selector_labels(spec.name, role))


def build_statefulset(spec: EmqxSpec, restart_hash: str | None = None, image: str | None = None,
                      api_keys_hash: str | None = None) -> dict[str, Any]:
    """The cores. updateStrategy OnDelete: pods change only when the operator deletes them, one at
    a time. `image` overrides spec.image, so the operator can hold or roll back the cores' image.
    `api_keys_hash` (of the bootstrap API key file, which cores load at boot) goes into the pod
    template, so a changed key list restarts the cores one at a time."""
    image = image or spec.image
    restart_hash = restart_hash if restart_hash is not None else config_restart_hash(spec)
    claim = spec.core.volume_claim_template
    statefulset_spec: dict[str, Any] = {
        "replicas": spec.core.replicas,
        "serviceName": object_names(spec.name).headless_service,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": selector_labels(spec.name, CORE)},
        "updateStrategy": {"type": "OnDelete"},
        "revisionHistoryLimit": spec.revision_history_limit,
        "template": pod_template(spec, CORE, image, restart_hash, data_from_claim=claim is not None),
    }
    if api_keys_hash:
        statefulset_spec["template"]["metadata"]["annotations"][ANNOTATION_API_KEYS_HASH] = api_keys_hash
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
    image until the cores run the new one. Rolls with maxUnavailable 0 (no serving capacity is
    dropped) and maxSurge `updateStrategy.maxSurge` (default 1: one extra replicant at a time)."""
    image = image or spec.image
    restart_hash = restart_hash if restart_hash is not None else config_restart_hash(spec)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _workload_metadata(spec, object_names(spec.name).replicant_deployment, REPLICANT),
        "spec": {
            "replicas": spec.replicant.replicas,
            "selector": {"matchLabels": selector_labels(spec.name, REPLICANT)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": max(spec.update_strategy.max_surge, 1), "maxUnavailable": 0}},
            "revisionHistoryLimit": spec.revision_history_limit,
            "template": pod_template(spec, REPLICANT, image, restart_hash, data_from_claim=False),
        },
    }


def build_pdbs(spec: EmqxSpec) -> list[dict[str, Any]]:
    """One PodDisruptionBudget per role that has nodes; maxUnavailable 1 unless the template says
    otherwise. (A budget over no pods protects nothing, and the disruption controller still keeps
    its status.)"""
    names = object_names(spec.name)
    budgets = []
    for role, name, template in ((CORE, names.core_pdb, spec.core), (REPLICANT, names.replicant_pdb, spec.replicant)):
        if role == REPLICANT and template.replicas == 0:
            continue
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


def refusable(spec: EmqxSpec, obj: Mapping[str, Any]) -> bool:
    """Whether Kubernetes could refuse this owned object of a spec that passed validation: the
    workloads carry the pod templates and the dashboard and listeners Services the Service templates,
    which the CRD keeps opaque. The ConfigMap (HOCON within the CRD's length limit), the headless
    Service and the PodDisruptionBudgets are built from the validated name and fields only."""
    kind = obj.get("kind")
    if kind in ("ConfigMap", "PodDisruptionBudget"):
        return False
    name = (obj.get("metadata") or {}).get("name")
    return not (kind == "Service" and name == object_names(spec.name).headless_service)


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
