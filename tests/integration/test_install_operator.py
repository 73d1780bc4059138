"""Shipping the operator: the install manifests applied to a real API server, the operator run on
exactly the permissions they grant, and uninstall leaving EMQX running and namespaces deletable."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubectl_emqx import __version__
from tests.emqx_helpers import cr, custom_api, get_emqx, pods, ready_pods, wait_ready
from tests.helpers import metric_key
from tests.install_helpers import (
    InstalledOperator,
    deployment_container,
    finalizers_in,
    other_namespaces,
    plugin,
    service_account_kubeconfig,
    wait_namespace_gone,
)

pytestmark = pytest.mark.integration

SEED = {
    "apiVersion": "apps.emqx.io/v2alpha1",
    "kind": "EMQX",
    "metadata": {"name": "emqx"},
    "spec": {"emqxTemplate": {"image": "emqx/emqx:5.0.6"}},
}


@pytest.fixture
def operator_namespace(kubeconfig: str) -> Iterator[str]:
    """A fresh namespace name for an install; whatever was installed there is uninstalled afterwards."""
    name = f"solo-op-{uuid.uuid4().hex[:8]}"
    yield name
    plugin(kubeconfig, "uninstall", "-n", name, check=False)


def test_dry_run_manifests_applied_by_kubectl_run_the_seed_to_ready(
    api_client: Any, kubeconfig: str, kubectl: Any, sandbox: Any, solo_namespace: str, operator_namespace: str,
    tmp_path: Path,
) -> None:
    manifests = plugin(kubeconfig, "install", "-n", operator_namespace, "--dry-run", "-o", "yaml").stdout
    kubectl("apply", "-f", "-", stdin=manifests)

    token_kubeconfig = service_account_kubeconfig(api_client, kubeconfig, operator_namespace, "emqx-operator",
                                                  tmp_path)
    container = deployment_container(api_client, operator_namespace)
    assert "--all-namespaces" in container["args"]
    # Cluster-wide, as the Deployment runs it; other tests' namespaces in this shared sandbox are excluded.
    exclusions = [f"--exclude-namespace={ns}" for ns in other_namespaces(api_client, solo_namespace)]
    operator = InstalledOperator(sandbox, token_kubeconfig, container, operator_namespace, extra_args=exclusions)
    try:
        kubectl("apply", "-n", solo_namespace, "-f", "-", stdin=json.dumps(SEED))
        kubectl("wait", "-n", solo_namespace, "--for=condition=Ready", "emqx/emqx", "--timeout=90s")

        status = get_emqx(api_client, solo_namespace, "emqx")["status"]
        assert status["currentImage"] == "emqx/emqx:5.0.6"
        assert len(ready_pods(api_client, solo_namespace, "emqx")) == 6
        log = operator.log_text()
        assert "forbidden" not in log.lower(), log
        metrics = operator.metrics()
        assert metrics["emqx_operator_leader"] == 1
        assert metrics["emqx_operator_managed_clusters"] == 1
        assert operator.reconciles(solo_namespace, "emqx") > 0
        phase = metric_key("emqx_operator_cluster_phase", namespace=solo_namespace, name="emqx", phase="Ready")
        assert metrics[phase] == 1
        assert metrics[metric_key("emqx_operator_api_writes_total", verb="PUT", kind="Lease")] >= 1
        holder = json.loads(kubectl("get", "lease", "emqx-operator", "-n", operator_namespace, "-o", "json").stdout)
        assert holder["spec"]["holderIdentity"] == operator.pod_name

        version = plugin(kubeconfig, "version").stdout
        assert f"Operator: {__version__} ({operator_namespace}/emqx-operator)" in version
    finally:
        operator.stop()


def test_reinstall_prunes_rbac_and_uninstall_leaves_emqx_running_and_namespaces_deletable(
    api_client: Any, kubeconfig: str, kubectl: Any, sandbox: Any, solo_namespace: str, operator_namespace: str,
    tmp_path: Path,
) -> None:
    installed = plugin(kubeconfig, "install", "-n", operator_namespace, "--wait", "--timeout", "60s")
    assert "clusterrole/emqx-operator applied" in installed.stderr
    token_kubeconfig = service_account_kubeconfig(api_client, kubeconfig, operator_namespace, "emqx-operator",
                                                  tmp_path)
    exclusions = [f"--exclude-namespace={ns}" for ns in other_namespaces(api_client, solo_namespace)]
    operator = InstalledOperator(sandbox, token_kubeconfig, deployment_container(api_client, operator_namespace),
                                 operator_namespace, extra_args=exclusions)
    try:
        custom_api(api_client).create_namespaced_custom_object(
            "apps.emqx.io", "v2beta1", solo_namespace, "emqxes", cr("keep", cores=2, replicants=1))
        wait_ready(api_client, solo_namespace, "keep")
        assert finalizers_in(api_client, solo_namespace, "keep") == {}, "the operator adds no finalizers"
    finally:
        operator.stop()  # as deleting the Deployment would

    # Narrowing the scope swaps the ClusterRole for a Role in the watched namespace.
    narrowed = plugin(kubeconfig, "install", "-n", operator_namespace, "--watch-namespace", solo_namespace)
    assert "clusterrole/emqx-operator deleted (no longer needed)" in narrowed.stderr
    assert kubectl("get", "clusterrole", "emqx-operator", check=False).returncode != 0
    kubectl("get", "role,rolebinding", "emqx-operator", "-n", solo_namespace)

    before = {p.metadata.name: p.metadata.uid for p in pods(api_client, solo_namespace, "keep")}
    removed = plugin(kubeconfig, "uninstall", "-n", operator_namespace)
    assert "EMQX cluster(s) keep running, unmanaged" in removed.stderr
    for kind, name, where in (("deployment", "emqx-operator", operator_namespace),
                              ("serviceaccount", "emqx-operator", operator_namespace),
                              ("role", "emqx-operator", solo_namespace),
                              ("rolebinding", "emqx-operator", solo_namespace)):
        assert kubectl("get", kind, name, "-n", where, check=False).returncode != 0, kind
    kubectl("get", "crd", "emqxes.apps.emqx.io")

    # EMQX keeps running without the operator: same pods, all Ready, resource and status intact.
    assert {p.metadata.name: p.metadata.uid for p in ready_pods(api_client, solo_namespace, "keep")} == before
    assert get_emqx(api_client, solo_namespace, "keep")["status"]["phase"] == "Ready"

    # No finalizer holds the namespace: deleting it completes with no operator around.
    kubectl("delete", "namespace", solo_namespace, "--wait=false")
    wait_namespace_gone(api_client, solo_namespace)
    wait_namespace_gone(api_client, operator_namespace)  # install made it: uninstall removed it


def test_purge_explains_and_asks_and_a_refusal_changes_nothing(
    api_client: Any, kubeconfig: str, kubectl: Any, solo_namespace: str, operator_namespace: str,
) -> None:
    plugin(kubeconfig, "install", "-n", operator_namespace)
    custom_api(api_client).create_namespaced_custom_object(
        "apps.emqx.io", "v2beta1", solo_namespace, "emqxes", cr("precious", cores=1, replicants=0))

    refused = plugin(kubeconfig, "uninstall", "-n", operator_namespace, "--purge", stdin="n\n", check=False)
    assert refused.returncode == 1
    explanation = " ".join(refused.stderr.split())
    assert "Deleting a CRD deletes every resource of that kind in every namespace" in explanation
    assert f"{solo_namespace}/precious" in explanation
    assert "nothing was changed" in explanation
    kubectl("get", "crd", "emqxes.apps.emqx.io")
    kubectl("get", "deployment", "emqx-operator", "-n", operator_namespace)
    assert get_emqx(api_client, solo_namespace, "precious")["metadata"]["name"] == "precious"
