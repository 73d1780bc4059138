"""What the day-2 verbs read from an EMQX pod (pure): readiness, the container's state and restarts,
the dashboard port, the role and the EMQX node name."""

from __future__ import annotations

from typing import Any

from kubectl_emqx.domain.vocabulary import (
    CONTAINER_NAME,
    CORE,
    LABEL_DB_ROLE,
    core_node_name,
    pod_ordinal,
    replicant_node_name,
)

DEFAULT_DASHBOARD_PORT = 18083
DASHBOARD_PORT_NAME = "dashboard"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def name(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def uid(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("uid", ""))


def role(pod: dict[str, Any]) -> str:
    return str(((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_DB_ROLE, ""))


def terminating(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def ready(pod: dict[str, Any]) -> bool:
    """Running, Ready=True and not being deleted: a pod worth sending traffic to."""
    status = pod.get("status") or {}
    if terminating(pod) or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def container_status(pod: dict[str, Any], container: str = CONTAINER_NAME) -> dict[str, Any]:
    for item in (pod.get("status") or {}).get("containerStatuses") or []:
        if item.get("name") == container:
            return dict(item)
    return {}


def container_started(pod: dict[str, Any], container: str = CONTAINER_NAME) -> bool:
    """The container runs or ran (has a log); False while it waits to be created."""
    state = container_status(pod, container).get("state") or {}
    return state.get("running") is not None or state.get("terminated") is not None


def container_running(pod: dict[str, Any], container: str = CONTAINER_NAME) -> bool:
    return (container_status(pod, container).get("state") or {}).get("running") is not None


def restart_count(pod: dict[str, Any], container: str = CONTAINER_NAME) -> int:
    return int(container_status(pod, container).get("restartCount") or 0)


def has_previous(pod: dict[str, Any], container: str = CONTAINER_NAME) -> bool:
    return (container_status(pod, container).get("lastState") or {}).get("terminated") is not None


def dashboard_port(pod: dict[str, Any]) -> int:
    """The emqx container's port named `dashboard` (the operator names it), else EMQX's default."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") != CONTAINER_NAME:
            continue
        for port in container.get("ports") or []:
            if port.get("name") == DASHBOARD_PORT_NAME and port.get("containerPort"):
                return int(port["containerPort"])
    return DEFAULT_DASHBOARD_PORT


def node_name(pod: dict[str, Any], cluster: str, namespace: str, cluster_domain: str) -> str | None:
    """The EMQX node name the pod runs as (docs/internals.md): cores by their stable DNS name,
    replicants by pod IP (None until the pod has one)."""
    if role(pod) == CORE:
        return core_node_name(cluster, namespace, cluster_domain, name(pod))
    ip = (pod.get("status") or {}).get("podIP")
    return replicant_node_name(str(ip)) if ip else None


def cluster_domain(body: dict[str, Any]) -> str:
    return str((body.get("spec") or {}).get("clusterDomain") or DEFAULT_CLUSTER_DOMAIN)


def by_ordinal(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cores first by ordinal (core-0, core-1, ...), then the rest by name."""
    def key(pod: dict[str, Any]) -> tuple[int, int, str]:
        ordinal = pod_ordinal(name(pod))
        return (0 if role(pod) == CORE else 1, ordinal if ordinal is not None else 1 << 30, name(pod))

    return sorted(pods, key=key)
