"""The project's one vocabulary: API coordinates, labels and annotations, object and node names,
the kind -> URL path table, phases and condition types, and RFC 3339 timestamps.

Builders, the operator, the plugin and the status model all spell these names from here, so a name
changes in one place. Standard library only (the plugin's `--help` and `list` import it).
The EMQX simulator keeps its own copies on purpose: an oracle must not share the product's bugs.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from urllib.parse import quote

# The custom resource -------------------------------------------------------------------------

GROUP = "apps.emqx.io"
VERSION = "v2beta1"  # the stored version
SERVED_VERSIONS = ("v2beta1", "v2alpha1")
KIND = "EMQX"
PLURAL = "emqxes"
SINGULAR = "emqx"
API_VERSION = f"{GROUP}/{VERSION}"
SERVED_API_VERSIONS = tuple(f"{GROUP}/{version}" for version in SERVED_VERSIONS)
RESOURCE = f"{PLURAL}.{GROUP}"  # as RBAC and kubectl name it; also the CRD's name
CRD_NAME = RESOURCE

# Who writes what (server-side apply field managers, Event sources).
OPERATOR_FIELD_MANAGER = "emqx-operator"
PLUGIN_FIELD_MANAGER = "kubectl-emqx"

# Labels and annotations on what the operator owns ---------------------------------------------

MANAGED_BY = "kubectl-emqx"
LABEL_INSTANCE = f"{GROUP}/instance"
LABEL_MANAGED_BY = f"{GROUP}/managed-by"
LABEL_DB_ROLE = f"{GROUP}/db-role"
# Pod-template annotation: hash of the restart-relevant configuration; a change rolls the pods.
ANNOTATION_RESTART_HASH = f"{GROUP}/restart-hash"
# Pod-template annotation: the spec.restart request a workload's pods were restarted for.
ANNOTATION_RESTARTED_AT = f"{GROUP}/restarted-at"
# Core pod-template annotation: hash of the bootstrap API key file, which EMQX loads on cores at boot.
ANNOTATION_API_KEYS_HASH = f"{GROUP}/api-keys-hash"
# Annotation on every applied object: hash of what was last applied (an unchanged object is not written).
ANNOTATION_APPLIED_HASH = f"{GROUP}/applied-hash"
# Replicant pods are Ready only once the operator opens this gate (it paces replicant rollouts).
READINESS_GATE = f"{GROUP}/on-serving"
# Kubernetes' own names the operator reads or writes.
ANNOTATION_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
LABEL_REVISION = "controller-revision-hash"
# The installed operator's objects (`kubectl emqx install`).
OPERATOR_NAME = "emqx-operator"
APP_NAME_LABEL = "app.kubernetes.io/name"
APP_INSTANCE_LABEL = "app.kubernetes.io/instance"
APP_VERSION_LABEL = "app.kubernetes.io/version"
APP_MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
OPERATOR_SELECTOR = f"{APP_NAME_LABEL}={OPERATOR_NAME}"

CORE = "core"
REPLICANT = "replicant"
ROLES = (CORE, REPLICANT)
CONTAINER_NAME = "emqx"

# Secret and ConfigMap keys.
COOKIE_SECRET_KEY = "node_cookie"
API_KEY_SECRET_KEY = "bootstrap_api_key"
DASHBOARD_PASSWORD_KEY = "dashboard_password"
DASHBOARD_USERNAME = "admin"
CONFIG_KEY = "emqx.conf"
# The API key the operator provisions for itself through the bootstrap file.
OPERATOR_API_KEY_NAME = "kubectl-emqx-operator"


def instance_labels(name: str) -> dict[str, str]:
    return {LABEL_INSTANCE: name, LABEL_MANAGED_BY: MANAGED_BY}


def selector_labels(name: str, role: str) -> dict[str, str]:
    return {**instance_labels(name), LABEL_DB_ROLE: role}


def label_selector(name: str, role: str | None = None) -> str:
    """A label selector string: every pod of the cluster, or those of one role."""
    selector = f"{LABEL_INSTANCE}={name}"
    return selector + (f",{LABEL_DB_ROLE}={role}" if role else "")


# Object and node names ------------------------------------------------------------------------


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


# The longest resource name whose derived names all work: the core StatefulSet NAME-core labels its
# pods controller-revision-hash=NAME-core-<10-char hash>, a label value (at most 63 bytes), so the
# StatefulSet name may have at most 52 characters (Kubernetes refuses the pods otherwise), and NAME
# at most 47. Services NAME-headless/-dashboard/-listeners must be DNS labels: no dots in NAME.
MAX_NAME_LENGTH = 63 - len("-") - 10 - len("-core")
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def object_names(name: str) -> ObjectNames:
    """The names of everything an EMQX resource named `name` owns (docs/internals.md)."""
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


def core_pod_name(name: str, ordinal: int) -> str:
    return f"{object_names(name).core_statefulset}-{ordinal}"


def pod_ordinal(pod_name: str) -> int | None:
    """The StatefulSet ordinal at the end of a pod name, None when there is none."""
    tail = pod_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def headless_dns_name(name: str, namespace: str, cluster_domain: str) -> str:
    return f"{object_names(name).headless_service}.{namespace}.svc.{cluster_domain}"


def core_node_name(name: str, namespace: str, cluster_domain: str, pod_name: str) -> str:
    """The Erlang node name of a core: `emqx@<pod>.<headless service DNS name>`."""
    return f"emqx@{pod_name}.{headless_dns_name(name, namespace, cluster_domain)}"


def replicant_node_name(pod_ip: str) -> str:
    """Replicants are named by their pod IP."""
    return f"emqx@{pod_ip}"


# Kind -> URL path ------------------------------------------------------------------------------

# kind: (API path prefix, plural, namespaced)
KIND_PATHS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Secret": ("/api/v1", "secrets", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Pod": ("/api/v1", "pods", True),
    "Event": ("/api/v1", "events", True),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ServiceMonitor": ("/apis/monitoring.coreos.com/v1", "servicemonitors", True),  # Prometheus Operator's
    KIND: (f"/apis/{API_VERSION}", PLURAL, True),
}


def kind_path(kind: str, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
    """The URL path of a kind's collection (every namespace when `namespace` is None), an object in
    it, or one of its subresources."""
    prefix, plural, namespaced = KIND_PATHS[kind]
    path = prefix + (f"/namespaces/{quote(namespace)}" if namespaced and namespace else "") + f"/{plural}"
    if name:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


def resource_name(kind: str) -> str:
    """plural.group, as RBAC and kubectl name a kind (e.g. clusterroles.rbac.authorization.k8s.io)."""
    prefix, plural, _ = KIND_PATHS[kind]
    parts = prefix.strip("/").split("/")
    return f"{plural}.{parts[1]}" if parts[0] == "apis" else plural


# Phases and conditions ---------------------------------------------------------------------------


class Phase(enum.StrEnum):
    """`status.phase`: one word for the whole cluster."""

    PENDING = "Pending"  # never written: the plugin's word for a resource with no status yet
    CREATING = "Creating"
    READY = "Ready"
    SCALING = "Scaling"
    UPGRADING = "Upgrading"
    RESTARTING = "Restarting"
    CONFIG_PENDING = "ConfigPending"
    STALLED = "Stalled"
    UPGRADE_REFUSED = "UpgradeRefused"
    INVALID = "Invalid"
    FORBIDDEN = "Forbidden"
    DEGRADED = "Degraded"
    PROGRESSING = "Progressing"


# Phases that need the user: --wait stops on them, `list` and `status` highlight them.
FAILED_PHASES = frozenset({Phase.STALLED, Phase.UPGRADE_REFUSED, Phase.INVALID, Phase.FORBIDDEN})
# Phases worth a warning colour: failed ones, and a cluster EMQX does not answer for.
BAD_PHASES = FAILED_PHASES | {Phase.DEGRADED}


class UpgradePhase(enum.StrEnum):
    """`status.upgrade.phase`."""

    IDLE = "Idle"
    CORES = "Cores"
    REPLICANTS = "Replicants"
    STALLED = "Stalled"
    REFUSED = "Refused"


class ConditionType(enum.StrEnum):
    """Condition types in `status.conditions` (metav1.Condition shape)."""

    READY = "Ready"
    CORES_READY = "CoresReady"
    REPLICANTS_READY = "ReplicantsReady"
    PROGRESSING = "Progressing"
    VALID = "Valid"
    EMQX_REACHABLE = "EMQXReachable"
    CONFIG_APPLIED = "ConfigApplied"
    UPGRADE_ALLOWED = "UpgradeAllowed"
    UPGRADE_STALLED = "UpgradeStalled"
    FORBIDDEN = "Forbidden"
    REBALANCE_ALLOWED = "RebalanceAllowed"  # only while spec.rebalance asks for one


# RFC 3339 timestamps (as Kubernetes writes them: UTC, whole seconds, "Z") -------------------------

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime(RFC3339)


def now_rfc3339() -> str:
    return format_time(utc_now())


def parse_time(text: object) -> datetime.datetime | None:
    """A Kubernetes timestamp (also with fractional seconds or an offset); None when unreadable."""
    if not text:
        return None
    value = str(text)
    try:
        return datetime.datetime.strptime(value, RFC3339).replace(tzinfo=datetime.UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def age_seconds(text: object, now: datetime.datetime | None = None) -> float | None:
    """Seconds since a timestamp; None when there is none."""
    moment = parse_time(text)
    if moment is None:
        return None
    return ((now or utc_now()) - moment).total_seconds()
