"""Issue 18: the Helm chart with the real Helm (built from Go modules like the control plane).

`helm lint` and the values schema; `helm template` equals `kubectl emqx install --dry-run -o yaml`
object by object for the same values file; the rendered manifests pass the API server's dry run;
`helm install` into the sandbox, then the operator run from the working tree as the chart's
Deployment runs it (its args and env, its ServiceAccount's token) takes an EMQX cluster to Ready;
`helm upgrade` to a changed value and `helm uninstall` leave the cluster running; `helm install
--take-ownership` adopts what `kubectl emqx install` made.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_emqx.domain import install
from sandbox import build as sandbox_build
from sandbox import operator_process
from tests.emqx_helpers import cr, custom_api, get_emqx, patch_emqx, pod_uids, ready_pods, wait_ready
from tests.helm_helpers import CHART, Helm
from tests.helpers import wait_for
from tests.install_helpers import (
    InstalledOperator,
    deployment_container,
    plugin,
    service_account_kubeconfig,
    wait_namespace_gone,
)

pytestmark = pytest.mark.integration

Key = tuple[str, str, str]

# A stand-in for the Prometheus Operator's ServiceMonitor CRD (monitoring.coreos.com/v1), typed for the
# fields the chart sets (selector, endpoints[].port/path/interval) as its API reference describes them.
SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": install.SERVICE_MONITOR_CRD},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors",
                  "singular": "servicemonitor"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {
                "type": "object", "required": ["selector"],
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {
                    "selector": {"type": "object", "properties": {
                        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                    "endpoints": {"type": "array", "items": {"type": "object", "properties": {
                        "port": {"type": "string"}, "path": {"type": "string"},
                        "interval": {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?"
                                                                  r"(([0-9]+)ms)?)$"}}}},
                },
            }},
        }}}],
    },
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "watched-scheduled-monitored": {
        "image": {"repository": "registry.local/emqx-operator", "tag": "dev"},
        "imagePullSecrets": [{"name": "registry"}],
        "replicaCount": 2,
        "watchNamespaces": ["mqtt-b", "mqtt-a", "mqtt-b"],
        "logLevel": "debug",
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "podSecurityContext": {"fsGroup": 65532},
        "nodeSelector": {"kubernetes.io/os": "linux", "pool": "ops"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {
                "matchLabels": {"app.kubernetes.io/name": "emqx-operator"}}}}]}},
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.local:3128"},
                     {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}},
    },
    "bare": {
        "image": {"digest": "sha256:" + "0123456789abcdef" * 4},
        "resources": None,
        "podSecurityContext": None,
        "containerSecurityContext": {},  # an empty mapping merges: the defaults stay
        "metrics": {"service": {"enabled": False}},
    },
}


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    path = sandbox_build.bin_dir() / "helm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make build` (python -m sandbox build)")
    return path


@pytest.fixture
def helm(helm_binary: Path, kubeconfig: str, tmp_path: Path) -> Helm:
    return Helm(helm_binary, tmp_path / "helm-home", kubeconfig)


@pytest.fixture(scope="module")
def service_monitor_crd(kubectl: Any) -> Iterator[None]:
    existed = kubectl("get", "crd", install.SERVICE_MONITOR_CRD, check=False).returncode == 0
    if not existed:
        kubectl("apply", "-f", "-", stdin=json.dumps(SERVICE_MONITOR_CRD))
        kubectl("wait", "--for=condition=Established", f"crd/{install.SERVICE_MONITOR_CRD}", "--timeout=60s")
    yield
    if not existed:
        kubectl("delete", "crd", install.SERVICE_MONITOR_CRD, "--wait=false", check=False)


def by_key(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    keyed = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}
    assert len(keyed) == len(objects), "no object twice"
    return keyed


def helm_labels_as_install_labels(obj: Any) -> Any:
    """The one intended difference: Helm's objects say app.kubernetes.io/managed-by: Helm."""
    if isinstance(obj, dict):
        return {key: (install.MANAGED_BY if key == install.MANAGED_BY_LABEL and value == install.HELM_MANAGED_BY
                      else helm_labels_as_install_labels(value)) for key, value in obj.items()}
    if isinstance(obj, list):
        return [helm_labels_as_install_labels(item) for item in obj]
    return obj


def test_helm_lint_passes_and_the_schema_refuses_bad_values(helm: Helm) -> None:
    linted = helm.run("lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in linted.stdout, linted.stdout
    for flag, field in (("replicaCount=0", "replicaCount"), ("logLevel=trace", "logLevel"),
                        ("replicas=2", "replicas")):
        refused = helm.run("lint", str(CHART), "--set", flag, check=False)
        assert refused.returncode != 0 and field in refused.stdout + refused.stderr, (flag, refused.stdout)
    monitor_alone = helm.run("template", "x", str(CHART), "--set", "serviceMonitor.enabled=true",
                             "--set", "metrics.service.enabled=false", check=False)
    assert monitor_alone.returncode != 0
    assert "serviceMonitor.enabled needs metrics.service.enabled" in monitor_alone.stderr


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_template_equals_install_dry_run_object_by_object(
    helm: Helm, kubeconfig: str, tmp_path: Path, value_set: str,
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(VALUE_SETS[value_set]))
    rendered = by_key(helm.template("ops", values=values))
    printed = by_key(list(yaml.safe_load_all(
        plugin(kubeconfig, "install", "-n", "ops", "--values", str(values), "--dry-run", "-o", "yaml").stdout)))

    # Helm does not make the release namespace (`helm install --create-namespace` does); install does.
    assert set(printed) - set(rendered) == {("Namespace", "", "ops")}
    assert set(rendered) == set(printed) - {("Namespace", "", "ops")}
    for key, obj in rendered.items():
        labels = obj["metadata"].get("labels") or {}
        if key[0] != "CustomResourceDefinition":
            assert labels[install.MANAGED_BY_LABEL] == install.HELM_MANAGED_BY, key
        assert helm_labels_as_install_labels(obj) == printed[key], key


def test_helm_template_output_passes_the_api_servers_dry_run(
    helm: Helm, kubectl: Any, solo_namespace: str, service_monitor_crd: None, tmp_path: Path,
) -> None:
    cluster_wide = helm.run("template", "emqx-operator", str(CHART), "-n", solo_namespace, "--include-crds",
                            "--set", "serviceMonitor.enabled=true").stdout
    applied = kubectl("apply", "--dry-run=server", "-f", "-", stdin=cluster_wide)
    for expected in ("customresourcedefinition.apiextensions.k8s.io/emqxes.apps.emqx.io",
                     "clusterrole.rbac.authorization.k8s.io/emqx-operator", "deployment.apps/emqx-operator",
                     "service/emqx-operator-metrics", "servicemonitor.monitoring.coreos.com/emqx-operator"):
        assert expected in applied.stdout, applied.stdout
    values = tmp_path / "values.yaml"
    watched = {**VALUE_SETS["watched-scheduled-monitored"], "watchNamespaces": [solo_namespace]}
    values.write_text(yaml.safe_dump(watched))
    per_namespace = helm.run("template", "emqx-operator", str(CHART), "-n", solo_namespace, "-f", str(values)).stdout
    applied = kubectl("apply", "--dry-run=server", "-f", "-", stdin=per_namespace)
    assert "role.rbac.authorization.k8s.io/emqx-operator" in applied.stdout
    assert "clusterrole" not in applied.stdout


def test_helm_install_runs_emqx_to_ready_and_upgrade_and_uninstall_leave_it_running(
    helm: Helm, api_client: Any, kubeconfig: str, kubectl: Any, sandbox: Any, solo_namespace: str, tmp_path: Path,
) -> None:
    release_namespace = f"solo-helm-{uuid.uuid4().hex[:8]}"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"watchNamespaces": [solo_namespace]}))
    operator_process.install_crd(sandbox)  # already there, as in most clusters: Helm skips crds/ then
    operator: InstalledOperator | None = None
    try:
        installed = helm.run("install", "emqx-operator", str(CHART), "-n", release_namespace, "--create-namespace",
                             "-f", str(values), "--wait", "--timeout", "3m")
        assert "STATUS: deployed" in installed.stdout, installed.stdout
        assert f"clusters in {solo_namespace}." in installed.stdout, installed.stdout  # NOTES.txt
        kubectl("get", "role,rolebinding", "emqx-operator", "-n", solo_namespace)
        assert kubectl("get", "clusterrole", "emqx-operator", check=False).returncode != 0

        def run_operator() -> InstalledOperator:
            token = service_account_kubeconfig(api_client, kubeconfig, release_namespace, "emqx-operator", tmp_path)
            return InstalledOperator(sandbox, token, deployment_container(api_client, release_namespace),
                                     release_namespace)

        operator = run_operator()
        assert operator.alive()
        body = cr("charted", cores=2, replicants=1)
        custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", solo_namespace, "emqxes",
                                                               body)
        wait_ready(api_client, solo_namespace, "charted")
        assert "forbidden" not in operator.log_text().lower(), operator.log_text()
        assert operator.metrics()["emqx_operator_leader"] == 1
        version = plugin(kubeconfig, "version").stdout
        assert f"({release_namespace}/emqx-operator)" in version, version
        # Helm's release is Helm's: kubectl emqx points there instead of fighting it.
        refused = plugin(kubeconfig, "uninstall", "-n", release_namespace, check=False)
        assert refused.returncode == 1 and f"helm uninstall emqx-operator -n {release_namespace}" in refused.stderr

        running = pod_uids(api_client, solo_namespace, "charted")
        upgraded = helm.run("upgrade", "emqx-operator", str(CHART), "-n", release_namespace, "-f", str(values),
                            "--set", "logLevel=debug", "--wait", "--timeout", "3m")
        assert "STATUS: deployed" in upgraded.stdout and "REVISION: 2" in upgraded.stdout, upgraded.stdout
        container = deployment_container(api_client, release_namespace)
        assert "--log-level=debug" in container["args"]
        operator.stop()  # the Deployment's rollout replaces the pod: the new one runs the new args
        operator = run_operator()
        assert pod_uids(api_client, solo_namespace, "charted") == running, "EMQX untouched by the upgrade"
        assert len(ready_pods(api_client, solo_namespace, "charted")) == 3
        patch_emqx(api_client, solo_namespace, "charted", {"spec": {"replicantTemplate": {"spec": {"replicas": 2}}}})
        wait_ready(api_client, solo_namespace, "charted")
        assert len(ready_pods(api_client, solo_namespace, "charted", "replicant")) == 2
        wait_for(lambda: "DEBUG" in operator.log_text(), 30, "debug lines in the operator's log")

        running = pod_uids(api_client, solo_namespace, "charted")
        operator.stop()  # as deleting the Deployment would
        removed = helm.run("uninstall", "emqx-operator", "-n", release_namespace, "--wait", "--timeout", "2m")
        assert "uninstalled" in removed.stdout, removed.stdout
        for kind, name, where in (("deployment", "emqx-operator", release_namespace),
                                  ("serviceaccount", "emqx-operator", release_namespace),
                                  ("service", "emqx-operator-metrics", release_namespace),
                                  ("role", "emqx-operator-leader-election", release_namespace),
                                  ("role", "emqx-operator", solo_namespace),
                                  ("rolebinding", "emqx-operator", solo_namespace)):
            assert kubectl("get", kind, name, "-n", where, check=False).returncode != 0, (kind, name)
        kubectl("get", "crd", "emqxes.apps.emqx.io")  # crds/ are never deleted by Helm
        assert pod_uids(api_client, solo_namespace, "charted") == running
        assert len(ready_pods(api_client, solo_namespace, "charted")) == 4
        assert get_emqx(api_client, solo_namespace, "charted")["status"]["phase"] == "Ready"
        assert helm.run("list", "-n", release_namespace, "-q").stdout.strip() == ""
    finally:
        if operator is not None:
            operator.stop()
        helm.run("uninstall", "emqx-operator", "-n", release_namespace, "--ignore-not-found", check=False)
        kubectl("delete", "namespace", release_namespace, "--wait=false", check=False)
    wait_namespace_gone(api_client, release_namespace)


def test_helm_takes_over_an_operator_kubectl_emqx_installed(
    helm: Helm, api_client: Any, kubeconfig: str, kubectl: Any, solo_namespace: str, tmp_path: Path,
) -> None:
    """Moving to Helm: the same objects, adopted in place (no second operator, nothing deleted)."""
    release_namespace = f"solo-adopt-{uuid.uuid4().hex[:8]}"
    plugin(kubeconfig, "install", "-n", release_namespace, "--watch-namespace", solo_namespace, "--skip-crds")
    try:
        before = json.loads(kubectl("get", "deployment", "emqx-operator", "-n", release_namespace, "-o",
                                    "json").stdout)["metadata"]["uid"]
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump({"watchNamespaces": [solo_namespace]}))
        adopted = helm.run("install", "emqx-operator", str(CHART), "-n", release_namespace, "-f", str(values),
                           "--take-ownership", "--force-conflicts")
        assert "STATUS: deployed" in adopted.stdout, adopted.stdout
        deployment = json.loads(kubectl("get", "deployment", "emqx-operator", "-n", release_namespace, "-o",
                                        "json").stdout)
        assert deployment["metadata"]["uid"] == before
        assert deployment["metadata"]["labels"][install.MANAGED_BY_LABEL] == install.HELM_MANAGED_BY
        assert deployment["metadata"]["annotations"][install.HELM_RELEASE_ANNOTATION] == "emqx-operator"
        role = json.loads(kubectl("get", "role", "emqx-operator", "-n", solo_namespace, "-o", "json").stdout)
        assert role["metadata"]["labels"][install.MANAGED_BY_LABEL] == install.HELM_MANAGED_BY
        refused = plugin(kubeconfig, "install", "-n", release_namespace, check=False)
        assert refused.returncode == 1 and f"helm upgrade emqx-operator -n {release_namespace}" in refused.stderr

        helm.run("uninstall", "emqx-operator", "-n", release_namespace, "--wait", "--timeout", "2m")
        assert kubectl("get", "deployment", "emqx-operator", "-n", release_namespace, check=False).returncode != 0
        assert kubectl("get", "role", "emqx-operator", "-n", solo_namespace, check=False).returncode != 0
    finally:
        helm.run("uninstall", "emqx-operator", "-n", release_namespace, "--ignore-not-found", check=False)
        plugin(kubeconfig, "uninstall", "-n", release_namespace, check=False)
        kubectl("delete", "namespace", release_namespace, "--wait=false", check=False)
