"""The operator's install manifests, from one source (pure: plain dicts, no API calls).

`kubectl emqx install` applies them or prints them (`--dry-run -o yaml | kubectl apply -f -`),
`kubectl emqx uninstall` finds what they created by their labels, the Helm chart's templates are
generated from them (dist_tools/helm_chart.py; values: install_values.py), and the tests run the
operator on exactly these permissions. The RBAC rules list every call the operator makes, and nothing more:
change them together with operator/emqx_operator (cluster_api, observe, reconcile, leader).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubectl_emqx import __version__
from kubectl_emqx.domain import crd
from kubectl_emqx.domain.vocabulary import (
    APP_INSTANCE_LABEL,
    APP_MANAGED_BY_LABEL,
    APP_NAME_LABEL,
    APP_VERSION_LABEL,
    GROUP,
    MANAGED_BY,
    OPERATOR_NAME,
    PLUGIN_FIELD_MANAGER,
    PLURAL,
)

NAME = OPERATOR_NAME
DEFAULT_NAMESPACE = "emqx-operator-system"
DEFAULT_IMAGE_REPOSITORY = "ghcr.io/kubectl-emqx/emqx-operator"
DEFAULT_IMAGE = f"{DEFAULT_IMAGE_REPOSITORY}:{__version__}"
ENTRY_POINT = "emqx-operator"  # the console script the image's ENTRYPOINT runs
LEADER_ELECTION_ROLE = f"{NAME}-leader-election"
FIELD_MANAGER = PLUGIN_FIELD_MANAGER

NAME_LABEL = APP_NAME_LABEL
INSTANCE_LABEL = APP_INSTANCE_LABEL  # the operator's namespace: one install per namespace
VERSION_LABEL = APP_VERSION_LABEL  # read by `kubectl emqx version`
MANAGED_BY_LABEL = APP_MANAGED_BY_LABEL
HELM_MANAGED_BY = "Helm"  # the chart's managed-by label ({{ .Release.Service }})
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"  # Helm puts it on every object of a release

HEALTH_PORT = 8080
METRICS_PORT = 9090
METRICS_SERVICE = f"{NAME}-metrics"
RUN_AS_USER = 65532  # the image's non-root user (Dockerfile)
LOG_LEVELS = ("debug", "info", "warning", "error")  # the operator's --log-level
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
SERVICE_MONITOR_API = "monitoring.coreos.com/v1"  # the Prometheus Operator's
SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"

# Kinds `install` writes, in the order they are applied (and reversed for removal).
KIND_ORDER = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Role",
              "ClusterRoleBinding", "RoleBinding", "Service", "Deployment", "ServiceMonitor")
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# What a later install removes when it no longer makes it (a narrower scope, a switched-off Service).
PRUNED_KINDS = (*RBAC_KINDS, "Service", "ServiceMonitor")

# Requests: what the operator uses idle with a few clusters (~122 MiB RSS measured, README "Numbers"),
# so the scheduler reserves it; memory limit: the RSS measured with 100 clusters (210 MiB) plus headroom
# for reconcile bursts; a CPU limit of one core keeps start-up (imports, first list) unthrottled.
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "320Mi"},
}
DEFAULT_POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
DEFAULT_CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_USER,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@dataclass(frozen=True)
class Rule:
    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    resource_names: tuple[str, ...] = ()

    def as_policy_rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"apiGroups": [self.api_group], "resources": list(self.resources)}
        if self.resource_names:
            rule["resourceNames"] = list(self.resource_names)
        rule["verbs"] = list(self.verbs)
        return rule


# Where the EMQX clusters live (a ClusterRole, or a Role per watched namespace).
WORKLOAD_RULES: tuple[Rule, ...] = (
    Rule(GROUP, (PLURAL,), ("get", "list", "watch"),
         "kopf lists and watches EMQX resources; each reconcile reads its resource; leading starts with a list"),
    Rule(GROUP, (f"{PLURAL}/status",), ("patch",), "status is the operator's only write to the resource"),
    Rule(GROUP, (f"{PLURAL}/finalizers",), ("update",),
         "owned objects carry blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement admission "
         "plugin (OpenShift, hardened clusters) allows only to who may update the owner's finalizers"),
    Rule("", ("secrets",), ("get", "create", "patch"),
         "the node cookie and API key Secrets (created once, updated when spec.bootstrapAPIKeys changes) and the "
         "Secrets that bootstrapAPIKeys[].secretRef names are read by name (never listed)"),
    # Owned objects: kopf watches them (labelled) into the operator's cache, which observe seeds with
    # a list; apply is a server-side apply PATCH (after a get when the object was not observed), which
    # the API authorizes as `create` when the object is missing.
    Rule("", ("configmaps",), ("get", "list", "watch", "create", "patch"), "the EMQX config file"),
    Rule("", ("services",), ("get", "list", "watch", "create", "patch", "delete"),
         "headless, dashboard and listeners Services; dashboard and listeners are deleted when disabled"),
    Rule("apps", ("statefulsets", "deployments"), ("get", "list", "watch", "create", "patch"),
         "cores (StatefulSet) and replicants (Deployment)"),
    Rule("policy", ("poddisruptionbudgets",), ("get", "list", "watch", "create", "patch", "delete"),
         "one PDB per node role that has nodes; the replicants' is deleted when they are scaled to none"),
    Rule("", ("pods",), ("list", "watch", "patch", "delete"),
         "kopf watches EMQX pods (labelled) into the operator's cache; rollouts replace a core by deleting it and "
         "mark the next old replicant to go (pod-deletion-cost annotation)"),
    Rule("", ("pods/status",), ("patch",),
         "opens a replicant's readiness gate (apps.emqx.io/on-serving) once it may take traffic"),
    Rule("", ("events",), ("create",), "Events on the EMQX resource (the reconciler posts them; kopf's are off)"),
)


# What a user of the plugin needs, in the namespace of their EMQX clusters (nothing cluster-wide).
# Documented by `kubectl emqx install --help` and the README; the RBAC integration test runs the
# plugin's verbs as a user holding exactly these rules.
USER_READ_RULES: tuple[Rule, ...] = (
    Rule(GROUP, (PLURAL,), ("get", "list", "watch"), "list, status [-w], every verb reads the resource"),
    Rule("", ("events",), ("list",), "status and report show the resource's Events"),
    Rule("", ("pods",), ("get", "list", "watch"), "logs and dashboard find (and follow) the nodes' pods"),
    Rule("", ("pods/log",), ("get",), "logs, report --logs"),
    Rule("", ("configmaps", "services", "persistentvolumeclaims"), ("list",), "report: the owned objects"),
    Rule("apps", ("statefulsets", "deployments", "replicasets"), ("list",), "report: the owned objects"),
    Rule("policy", ("poddisruptionbudgets",), ("list",), "report: the owned objects"),
)
USER_DASHBOARD_RULES: tuple[Rule, ...] = (
    Rule("", ("pods/portforward",), ("get", "create"),
         "dashboard forwards a local port through the API server (a WebSocket GET, also authorized as create)"),
)
USER_OPTIONAL_RULES: tuple[Rule, ...] = (
    Rule("", ("secrets",), ("list",),
         "report lists the owned Secrets by name and keys (and scrubs their values from the archive); "
         "dashboard --show-password reads one (get)"),
    Rule("apps", ("deployments",), ("list",),
         "cluster-wide (a ClusterRole): version and report find the operator's Deployment"),
)
USER_WRITE_RULES: tuple[Rule, ...] = (
    Rule(GROUP, (PLURAL,), ("create", "patch", "delete"),
         "create, scale, config set|edit|apply, upgrade, restart, rebalance, delete"),
)
# backup and restore reach EMQX through a port-forward (USER_DASHBOARD_RULES) with the operator's
# API key or the dashboard password, both in the Secret NAME-bootstrap-api-key.
USER_BACKUP_RULES: tuple[Rule, ...] = (
    Rule("", ("secrets",), ("get",),
         "backup and restore read NAME-bootstrap-api-key (the operator's API key, the dashboard password)"),
)


def user_role(namespace: str, name: str = "emqx-user", *, dashboard: bool = True,
              write: bool = False, backup: bool = False) -> dict[str, Any]:
    """A Role granting the plugin's verbs in `namespace`: reading, the dashboard and optionally
    changes and backup/restore."""
    rules = [*USER_READ_RULES, *(USER_DASHBOARD_RULES if dashboard or backup else ()),
             *(USER_WRITE_RULES if write else ()), *(USER_BACKUP_RULES if backup else ())]
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [rule.as_policy_rule() for rule in rules]}


def leader_election_rules(lease_name: str = NAME) -> tuple[Rule, ...]:
    return (
        # RBAC cannot restrict `create` by name: the Lease does not exist before it is created.
        Rule("coordination.k8s.io", ("leases",), ("create",), "the first instance creates the leader Lease"),
        Rule("coordination.k8s.io", ("leases",), ("get", "update"),
             "every instance reads the Lease; the leader renews it, a candidate takes an expired one over",
             resource_names=(lease_name,)),
    )


@dataclass(frozen=True)
class InstallOptions:
    """Everything an install can vary; the Helm chart's values map onto these (install_values.py).
    Empty mappings and lists leave their field out of the manifests."""

    namespace: str = DEFAULT_NAMESPACE  # where the operator runs (and its Lease lives)
    watch_namespaces: tuple[str, ...] = ()  # empty: every namespace (ClusterRole); kept sorted
    image: str = DEFAULT_IMAGE
    replicas: int = 1
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    lease_name: str = NAME
    log_level: str = "info"
    resources: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_RESOURCES))
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_POD_SECURITY_CONTEXT))
    container_security_context: dict[str, Any] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_CONTAINER_SECURITY_CONTEXT))
    extra_env: tuple[dict[str, Any], ...] = ()  # EnvVar objects added after the operator's own
    metrics_service: bool = True  # a ClusterIP Service in front of :9090/metrics
    service_monitor: bool = False  # a Prometheus Operator ServiceMonitor for that Service
    service_monitor_interval: str = "30s"
    service_monitor_labels: dict[str, str] = field(default_factory=dict)  # e.g. what Prometheus selects
    version: str = __version__  # the app.kubernetes.io/version label (`kubectl emqx version` reads it)
    managed_by: str = MANAGED_BY  # the chart's objects say Helm

    def __post_init__(self) -> None:
        object.__setattr__(self, "watch_namespaces", tuple(sorted(set(self.watch_namespaces))))

    @property
    def cluster_wide(self) -> bool:
        return not self.watch_namespaces


def labels(options: InstallOptions) -> dict[str, str]:
    return {
        NAME_LABEL: NAME,
        INSTANCE_LABEL: options.namespace,
        VERSION_LABEL: options.version,
        MANAGED_BY_LABEL: options.managed_by,
    }


def selector_labels(options: InstallOptions) -> dict[str, str]:
    """What the Deployment, the metrics Service and the ServiceMonitor select on (never changes)."""
    return {NAME_LABEL: NAME, INSTANCE_LABEL: options.namespace}


def selector(namespace: str) -> str:
    """Label selector for what an install into `namespace` created (uninstall, pruning)."""
    return f"{NAME_LABEL}={NAME},{INSTANCE_LABEL}={namespace}"


def _meta(options: InstallOptions, name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels(options)
    return meta


def build_namespace(options: InstallOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(options, options.namespace)}


def build_crd() -> dict[str, Any]:
    return crd.build_crd()


def build_service_account(options: InstallOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(options, NAME, options.namespace)}


def _subjects(options: InstallOptions) -> list[dict[str, Any]]:
    return [{"kind": "ServiceAccount", "name": NAME, "namespace": options.namespace}]


def build_rbac(options: InstallOptions) -> list[dict[str, Any]]:
    rbac = "rbac.authorization.k8s.io"
    workload_rules = [rule.as_policy_rule() for rule in WORKLOAD_RULES]
    objects: list[dict[str, Any]] = []
    if options.cluster_wide:
        objects.append({"apiVersion": f"{rbac}/v1", "kind": "ClusterRole", "metadata": _meta(options, NAME),
                        "rules": workload_rules})
        objects.append({
            "apiVersion": f"{rbac}/v1", "kind": "ClusterRoleBinding", "metadata": _meta(options, NAME),
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": NAME},
            "subjects": _subjects(options),
        })
    else:
        for watched in options.watch_namespaces:
            objects.append({"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": _meta(options, NAME, watched),
                            "rules": workload_rules})
            objects.append({
                "apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": _meta(options, NAME, watched),
                "roleRef": {"apiGroup": rbac, "kind": "Role", "name": NAME},
                "subjects": _subjects(options),
            })
    objects.append({
        "apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": _meta(options, LEADER_ELECTION_ROLE, options.namespace),
        "rules": [rule.as_policy_rule() for rule in leader_election_rules(options.lease_name)],
    })
    objects.append({
        "apiVersion": f"{rbac}/v1", "kind": "RoleBinding",
        "metadata": _meta(options, LEADER_ELECTION_ROLE, options.namespace),
        "roleRef": {"apiGroup": rbac, "kind": "Role", "name": LEADER_ELECTION_ROLE},
        "subjects": _subjects(options),
    })
    return objects


def scope_args(options: InstallOptions) -> list[str]:
    return [f"--namespace={ns}" for ns in options.watch_namespaces] or ["--all-namespaces"]


def operator_args(options: InstallOptions) -> list[str]:
    return [*scope_args(options), "--leader-elect=true", f"--lease-name={options.lease_name}",
            f"--log-level={options.log_level}"]


def _set_if(target: dict[str, Any], key: str, value: Any) -> None:
    """Only non-empty values: an empty mapping or list leaves the field out (as the chart's `with` does)."""
    if value:
        target[key] = copy.deepcopy(value)


def build_deployment(options: InstallOptions) -> dict[str, Any]:
    pod_labels = labels(options)
    def probe(**timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": "/healthz", "port": "health"}, "timeoutSeconds": 5, **timing}

    container: dict[str, Any] = {
        "name": "operator",
        "image": options.image,
        "imagePullPolicy": options.image_pull_policy,
        # No `command`: the image's ENTRYPOINT is the emqx-operator console script.
        "args": operator_args(options),
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "EMQX_OPERATOR_LIVENESS", "value": f"http://0.0.0.0:{HEALTH_PORT}/healthz"},
            {"name": "EMQX_OPERATOR_METRICS", "value": f"0.0.0.0:{METRICS_PORT}"},
            *copy.deepcopy(list(options.extra_env)),
        ],
        "ports": [
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": probe(initialDelaySeconds=15, periodSeconds=20, failureThreshold=3),
        "readinessProbe": probe(periodSeconds=10, failureThreshold=3),
    }
    _set_if(container, "resources", options.resources)
    _set_if(container, "securityContext", options.container_security_context)
    # The root filesystem is read-only; Python's tempfile falls back to /tmp.
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
    }
    _set_if(pod_spec, "imagePullSecrets", [{"name": secret} for secret in options.image_pull_secrets])
    _set_if(pod_spec, "securityContext", options.pod_security_context)
    _set_if(pod_spec, "nodeSelector", options.node_selector)
    _set_if(pod_spec, "tolerations", list(options.tolerations))
    _set_if(pod_spec, "affinity", options.affinity)
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(options, NAME, options.namespace),
        "spec": {
            "replicas": options.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(options)},
            # A stopping operator releases its Lease, so the new pod takes over at once.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def build_metrics_service(options: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(options, METRICS_SERVICE, options.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(options),
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }


def build_service_monitor(options: InstallOptions) -> dict[str, Any]:
    """For the Prometheus Operator (its CRD must exist): scrape the metrics Service's `metrics` port."""
    meta = _meta(options, NAME, options.namespace)
    meta["labels"] = {**meta["labels"], **options.service_monitor_labels}
    return {
        "apiVersion": SERVICE_MONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector_labels(options)},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": options.service_monitor_interval}],
        },
    }


def _order(obj: dict[str, Any]) -> tuple[int, str, str]:
    meta = obj["metadata"]
    return KIND_ORDER.index(obj["kind"]), meta.get("namespace") or "", meta["name"]


def build_manifests(options: InstallOptions, crds: str = "include") -> list[dict[str, Any]]:
    """Every object of an install, in apply order (kind, then namespace and name: the same options
    always give the same list). `crds`: "include", "only" (the CRD alone) or "skip" (all but it)."""
    if crds == "only":
        return [build_crd()]
    objects = [build_namespace(options), build_service_account(options), *build_rbac(options),
               build_deployment(options)]
    if crds == "include":
        objects.append(build_crd())
    if options.metrics_service:
        objects.append(build_metrics_service(options))
    if options.service_monitor:
        objects.append(build_service_monitor(options))
    return sorted(objects, key=_order)


def option_problems(options: InstallOptions) -> list[str]:
    """What the API server would accept but the install cannot work with, one line each."""
    problems = []
    if options.service_monitor and not options.metrics_service:
        problems.append("serviceMonitor.enabled needs metrics.service.enabled: the ServiceMonitor scrapes that "
                        "Service (enable it, or drop --service-monitor)")
    if options.log_level not in LOG_LEVELS:
        problems.append(f"logLevel {options.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    if options.image_pull_policy not in PULL_POLICIES:
        problems.append(f"image.pullPolicy {options.image_pull_policy!r} is not one of {', '.join(PULL_POLICIES)}")
    return problems


def object_ref(obj: dict[str, Any]) -> str:
    """kind/name as kubectl prints it, and the namespace for namespaced objects."""
    meta = obj.get("metadata") or {}
    where = f" in namespace {meta['namespace']}" if meta.get("namespace") else ""
    return f"{obj['kind'].lower()}/{meta.get('name', '')}{where}"


def render(objects: Sequence[dict[str, Any]], output: str) -> str:
    """yaml: documents separated by ---; json: a v1 List. Both feed `kubectl apply -f -`."""
    if output == "json":
        import json

        return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}, indent=2) + "\n"
    import yaml

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return "".join("---\n" + yaml.dump(obj, Dumper=NoAliases, sort_keys=False, width=120) for obj in objects)
