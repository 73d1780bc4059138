"""The operator's install manifests, from one source (pure: plain dicts, no API calls).

`kubectl emqx install` applies them or prints them (`--dry-run -o yaml | kubectl apply -f -`),
`kubectl emqx uninstall` finds what they created by their labels, and the tests run the operator
on exactly these permissions. The RBAC rules list every call the operator makes, and nothing more:
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
DEFAULT_IMAGE = f"ghcr.io/kubectl-emqx/emqx-operator:{__version__}"
ENTRY_POINT = "emqx-operator"  # the console script the image's ENTRYPOINT runs
LEADER_ELECTION_ROLE = f"{NAME}-leader-election"
FIELD_MANAGER = PLUGIN_FIELD_MANAGER

NAME_LABEL = APP_NAME_LABEL
INSTANCE_LABEL = APP_INSTANCE_LABEL  # the operator's namespace: one install per namespace
VERSION_LABEL = APP_VERSION_LABEL  # read by `kubectl emqx version`
MANAGED_BY_LABEL = APP_MANAGED_BY_LABEL

HEALTH_PORT = 8080
METRICS_PORT = 9090
RUN_AS_USER = 65532  # the image's non-root user (Dockerfile)

# Kinds `install` writes, in the order they are applied (and reversed for removal).
KIND_ORDER = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Role",
              "ClusterRoleBinding", "RoleBinding", "Deployment")
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


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
    Rule("", ("secrets",), ("get", "create"),
         "the node cookie and API key Secrets are read every pass and created once (never listed or changed)"),
    # Owned objects: observe lists them; apply is a server-side apply PATCH (after a get when the
    # object was not observed), which the API authorizes as `create` when the object is missing.
    Rule("", ("configmaps",), ("get", "list", "create", "patch"), "the EMQX config file"),
    Rule("", ("services",), ("get", "list", "create", "patch", "delete"),
         "headless, dashboard and listeners Services; dashboard and listeners are deleted when disabled"),
    Rule("apps", ("statefulsets", "deployments"), ("get", "list", "create", "patch"),
         "cores (StatefulSet) and replicants (Deployment)"),
    Rule("policy", ("poddisruptionbudgets",), ("get", "list", "create", "patch"), "one PDB per node role"),
    Rule("", ("pods",), ("list", "watch", "patch", "delete"),
         "kopf watches EMQX pods (labelled); observe lists them; rollouts replace a core by deleting it and "
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
    Rule(GROUP, (PLURAL,), ("create", "patch", "delete"), "create, scale, config set|edit|apply, upgrade, delete"),
)


def user_role(namespace: str, name: str = "emqx-user", *, dashboard: bool = True,
              write: bool = False) -> dict[str, Any]:
    """A Role granting the plugin's verbs in `namespace`: reading, the dashboard and optionally changes."""
    rules = [*USER_READ_RULES, *(USER_DASHBOARD_RULES if dashboard else ()), *(USER_WRITE_RULES if write else ())]
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
    namespace: str = DEFAULT_NAMESPACE  # where the operator runs (and its Lease lives)
    watch_namespaces: tuple[str, ...] = ()  # empty: every namespace (ClusterRole)
    image: str = DEFAULT_IMAGE
    replicas: int = 1
    image_pull_policy: str = "IfNotPresent"
    lease_name: str = NAME
    resources: dict[str, Any] = field(default_factory=lambda: {
        "requests": {"cpu": "50m", "memory": "96Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    })

    @property
    def cluster_wide(self) -> bool:
        return not self.watch_namespaces


def labels(options: InstallOptions) -> dict[str, str]:
    return {
        NAME_LABEL: NAME,
        INSTANCE_LABEL: options.namespace,
        VERSION_LABEL: __version__,
        MANAGED_BY_LABEL: MANAGED_BY,
    }


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


def operator_args(options: InstallOptions) -> list[str]:
    scope = [f"--namespace={ns}" for ns in options.watch_namespaces] or ["--all-namespaces"]
    return [*scope, "--leader-elect=true", f"--lease-name={options.lease_name}"]


def build_deployment(options: InstallOptions) -> dict[str, Any]:
    pod_labels = labels(options)
    def probe(**timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": "/healthz", "port": "health"}, "timeoutSeconds": 5, **timing}

    container = {
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
        ],
        "ports": [
            {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "livenessProbe": probe(initialDelaySeconds=15, periodSeconds=20, failureThreshold=3),
        "readinessProbe": probe(periodSeconds=10, failureThreshold=3),
        "resources": copy.deepcopy(options.resources),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # The root filesystem is read-only; Python's tempfile falls back to /tmp.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(options, NAME, options.namespace),
        "spec": {
            "replicas": options.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {NAME_LABEL: NAME, INSTANCE_LABEL: options.namespace}},
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
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def build_manifests(options: InstallOptions) -> list[dict[str, Any]]:
    """Every object of an install, in apply order."""
    objects = [build_namespace(options), build_crd(), build_service_account(options), *build_rbac(options),
               build_deployment(options)]
    return sorted(objects, key=lambda obj: KIND_ORDER.index(obj["kind"]))


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
