"""`kubectl emqx install|uninstall` against an in-memory API (generic objects + EMQX resources)."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from click.testing import CliRunner, Result

from kubectl_emqx.cli.main import cli
from kubectl_emqx.cli.options import AppState
from kubectl_emqx.domain import install, vocabulary
from kubectl_emqx.kube import errors
from kubectl_emqx.kube.api import OperatorDeployment
from kubectl_emqx.kube.kubeconfig import KubeFlags

Key = tuple[str, str | None, str]  # kind, namespace, name


class FakeInstallCluster:
    """Enough of KubernetesClusterApi for install/uninstall: server-side apply merges, CRDs establish."""

    namespace = "default"

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.emqx: list[dict[str, Any]] = []
        self.log: list[tuple[str, str, str | None, str]] = []  # (verb, kind, namespace, name)
        self.connected = False

    def connect(self, flags: KubeFlags) -> FakeInstallCluster:
        self.connected = True
        return self

    def seed(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta.get("namespace"), meta["name"])] = copy.deepcopy(obj)

    def has(self, kind: str, name: str, namespace: str | None = None) -> bool:
        return (kind, namespace, name) in self.objects

    # ManifestApi
    def apply_object(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace"), meta["name"])
        self.log.append(("apply", *key))
        stored = copy.deepcopy(obj)
        if obj["kind"] == "CustomResourceDefinition":
            stored["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
        if obj["kind"] == "Deployment":
            stored["metadata"]["generation"] = 1
            stored["status"] = {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 1}
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def list_objects(self, kind: str, namespace: str | None = None,
                     label_selector: str | None = None) -> list[dict[str, Any]]:
        wanted = dict(part.split("=") for part in label_selector.split(",")) if label_selector else {}
        return [copy.deepcopy(obj) for (k, ns, _), obj in sorted(self.objects.items(), key=str)
                if k == kind and (namespace is None or ns == namespace)
                and wanted.items() <= (obj["metadata"].get("labels") or {}).items()]

    def delete_object(self, kind: str, name: str, namespace: str | None = None) -> bool:
        self.log.append(("delete", kind, namespace, name))
        return self.objects.pop((kind, namespace, name), None) is not None

    # the parts of ClusterApi the verbs use
    def list_emqx(self, namespace: str | None) -> list[dict[str, Any]]:
        if not self.has("CustomResourceDefinition", vocabulary.CRD_NAME):
            raise errors.OperatorNotInstalled()
        return [copy.deepcopy(c) for c in self.emqx if namespace in (None, c["metadata"]["namespace"])]

    def operator_deployments(self) -> list[OperatorDeployment]:
        return [OperatorDeployment(ns or "", name, (obj["metadata"].get("labels") or {}).get(install.VERSION_LABEL))
                for (kind, ns, name), obj in self.objects.items()
                if kind == "Deployment" and (obj["metadata"].get("labels") or {}).get(install.NAME_LABEL)
                == install.NAME]


def run(fake: FakeInstallCluster, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), obj=AppState(connect=fake.connect), input=input,
                              prog_name="kubectl emqx")


def cluster(namespace: str, name: str, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": namespace, "name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": meta}


def installed_keys(fake: FakeInstallCluster) -> set[Key]:
    return {key for key in fake.objects if key[0] != "Lease"}


def manifest_keys(options: install.InstallOptions) -> set[Key]:
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in install.build_manifests(options)}


# --- install ----------------------------------------------------------------------------------


def test_dry_run_prints_the_manifests_without_touching_the_cluster() -> None:
    fake = FakeInstallCluster()
    result = run(fake, "install", "--dry-run", "-o", "yaml", "--image", "registry.local/op:9")
    assert result.exit_code == 0, result.output
    assert not fake.connected
    assert list(yaml.safe_load_all(result.stdout)) == install.build_manifests(
        install.InstallOptions(image="registry.local/op:9"))
    listing = run(fake, "install", "--dry-run", "-n", "ops", "--watch-namespace", "mqtt")
    assert listing.exit_code == 0 and listing.stdout == ""
    assert "role/emqx-operator in namespace mqtt (dry run)" in listing.stderr
    assert not fake.connected


def test_install_applies_every_object_in_order_then_switching_scope_prunes_rbac() -> None:
    fake = FakeInstallCluster()
    result = run(fake, "install", "--wait")
    assert result.exit_code == 0, result.output
    assert installed_keys(fake) == manifest_keys(install.InstallOptions())
    applied_kinds = [kind for verb, kind, _, _ in fake.log if verb == "apply"]
    assert applied_kinds == [kind for kind in install.KIND_ORDER if kind != "ServiceMonitor"]  # not asked for
    assert "clusterrole/emqx-operator applied" in result.stderr

    again = run(fake, "install", "--watch-namespace", "mqtt")
    assert again.exit_code == 0, again.output
    options = install.InstallOptions(watch_namespaces=("mqtt",))
    assert installed_keys(fake) == manifest_keys(options)
    assert "clusterrole/emqx-operator deleted (no longer needed)" in again.stderr
    assert "clusterrolebinding/emqx-operator deleted (no longer needed)" in again.stderr


def test_install_keeps_an_existing_namespace_as_it_is() -> None:
    fake = FakeInstallCluster()
    fake.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops", "labels": {"team": "mq"}}})
    result = run(fake, "install", "-n", "ops")
    assert result.exit_code == 0, result.output
    assert fake.objects[("Namespace", None, "ops")]["metadata"]["labels"] == {"team": "mq"}
    assert "namespace/ops exists (kept as it is)" in result.stderr
    assert fake.has("Deployment", "emqx-operator", "ops")


def test_install_warns_about_an_operator_in_another_namespace() -> None:
    fake = FakeInstallCluster()
    assert run(fake, "install", "-n", "old").exit_code == 0
    result = run(fake, "install", "-n", "new")
    assert result.exit_code == 0
    assert "an EMQX operator also runs in old/emqx-operator" in result.stderr
    assert "kubectl emqx uninstall -n old" in result.stderr


def test_a_service_monitor_needs_the_prometheus_operators_crd_and_nothing_is_written_without_it() -> None:
    fake = FakeInstallCluster()
    refused = run(fake, "install", "--service-monitor")
    assert refused.exit_code == 1
    assert f"needs the Prometheus Operator's CRD {install.SERVICE_MONITOR_CRD}" in refused.stderr
    assert not [entry for entry in fake.log if entry[0] == "apply"]
    fake.seed({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": install.SERVICE_MONITOR_CRD}})
    result = run(fake, "install", "--service-monitor")
    assert result.exit_code == 0, result.output
    assert fake.has("ServiceMonitor", "emqx-operator", "emqx-operator-system")
    assert fake.has("Service", "emqx-operator-metrics", "emqx-operator-system")


def test_reinstall_without_the_metrics_service_prunes_it(tmp_path: Any) -> None:
    fake = FakeInstallCluster()
    assert run(fake, "install").exit_code == 0
    assert fake.has("Service", "emqx-operator-metrics", "emqx-operator-system")
    values = tmp_path / "values.yaml"
    values.write_text("metrics: {service: {enabled: false}}\n")
    result = run(fake, "install", "--values", str(values))
    assert result.exit_code == 0, result.output
    assert "service/emqx-operator-metrics in namespace emqx-operator-system deleted (no longer needed)" in result.stderr
    assert not fake.has("Service", "emqx-operator-metrics", "emqx-operator-system")


def test_crds_only_applies_the_crd_alone_and_skip_crds_everything_else() -> None:
    fake = FakeInstallCluster()
    result = run(fake, "install", "--crds-only")
    assert result.exit_code == 0, result.output
    assert set(fake.objects) == {("CustomResourceDefinition", None, vocabulary.CRD_NAME)}
    fake = FakeInstallCluster()
    result = run(fake, "install", "--skip-crds")
    assert result.exit_code == 0, result.output
    assert not fake.has("CustomResourceDefinition", vocabulary.CRD_NAME)
    assert fake.has("Deployment", "emqx-operator", "emqx-operator-system")
    assert "the operator cannot start until it is (kubectl emqx install --crds-only)" in result.stderr


def helm_release(fake: FakeInstallCluster, namespace: str = "emqx-operator-system") -> None:
    """What `helm install ops-emqx charts/emqx-operator -n NAMESPACE` leaves: the same objects, Helm's marks."""
    options = install.InstallOptions(namespace=namespace, managed_by=install.HELM_MANAGED_BY)
    for obj in install.build_manifests(options, crds="skip"):
        if obj["kind"] != "Namespace":
            obj["metadata"]["annotations"] = {install.HELM_RELEASE_ANNOTATION: "ops-emqx"}
            fake.seed(obj)


def test_an_operator_helm_installed_is_left_to_helm() -> None:
    fake = FakeInstallCluster()
    helm_release(fake)
    before = copy.deepcopy(fake.objects)
    installed = run(fake, "install", "--replicas", "2")
    assert installed.exit_code == 1
    assert ("the EMQX operator in namespace emqx-operator-system was installed by Helm (release ops-emqx): "
            "change it with `helm upgrade ops-emqx -n emqx-operator-system`") in installed.stderr
    removed = run(fake, "uninstall")
    assert removed.exit_code == 1
    assert "remove it with `helm uninstall ops-emqx -n emqx-operator-system`" in removed.stderr
    assert fake.objects == before
    crds = run(fake, "install", "--crds-only")  # how Helm users upgrade the CRD (Helm never does)
    assert crds.exit_code == 0, crds.output
    assert fake.has("CustomResourceDefinition", vocabulary.CRD_NAME)


# --- uninstall --------------------------------------------------------------------------------


def test_uninstall_keeps_the_crd_and_every_cluster() -> None:
    fake = FakeInstallCluster()
    assert run(fake, "install").exit_code == 0
    fake.seed({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {
        "name": "emqx-operator", "namespace": "emqx-operator-system", "labels": {install.NAME_LABEL: install.NAME}}})
    fake.emqx = [cluster("prod", "a"), cluster("dev", "b")]
    result = run(fake, "uninstall")
    assert result.exit_code == 0, result.output
    assert set(fake.objects) == {("CustomResourceDefinition", None, vocabulary.CRD_NAME)}
    assert "2 EMQX cluster(s) keep running, unmanaged" in result.stderr
    deleted = [kind for verb, kind, _, _ in fake.log if verb == "delete"]
    assert deleted[0] == "Deployment", "the operator stops before its permissions go"
    assert deleted[-1] == "Namespace"


def test_uninstall_keeps_a_namespace_install_did_not_create_or_that_holds_clusters() -> None:
    fake = FakeInstallCluster()
    fake.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shared"}})
    assert run(fake, "install", "-n", "shared").exit_code == 0
    assert run(fake, "uninstall", "-n", "shared").exit_code == 0
    assert fake.has("Namespace", "shared")

    assert run(fake, "install", "-n", "ops").exit_code == 0
    fake.emqx = [cluster("ops", "in-the-operator-namespace")]
    result = run(fake, "uninstall", "-n", "ops")
    assert result.exit_code == 0
    assert fake.has("Namespace", "ops") and "namespace/ops kept: EMQX clusters run in it" in result.stderr


def test_purge_explains_and_asks_before_deleting_the_crd() -> None:
    fake = FakeInstallCluster()
    assert run(fake, "install").exit_code == 0
    fake.emqx = [cluster("prod", "a"), cluster("dev", "b")]
    before = copy.deepcopy(fake.objects)

    refused = run(fake, "uninstall", "--purge", input="n\n")
    assert refused.exit_code != 0
    assert "deletes every EMQX cluster" in refused.stderr.replace("\n", " ")
    assert "2 EMQX cluster(s) will be DELETED" in refused.stderr and "prod/a" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert fake.objects == before

    accepted = run(fake, "uninstall", "--purge", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert fake.objects == {}
    assert "Kubernetes is deleting every EMQX cluster" in accepted.stderr


def test_purge_with_yes_does_not_ask() -> None:
    fake = FakeInstallCluster()
    assert run(fake, "install").exit_code == 0
    result = run(fake, "uninstall", "--purge", "--yes")
    assert result.exit_code == 0, result.output
    assert not fake.has("CustomResourceDefinition", vocabulary.CRD_NAME)
    assert "no EMQX clusters exist right now" in result.stderr


def test_uninstall_with_nothing_installed_points_at_the_right_namespace() -> None:
    fake = FakeInstallCluster()
    assert run(fake, "install", "-n", "elsewhere").exit_code == 0
    result = run(fake, "uninstall")
    assert result.exit_code == 1
    assert "no EMQX operator installed by kubectl emqx in namespace emqx-operator-system" in result.stderr
    assert "kubectl emqx uninstall -n elsewhere" in result.stderr


def test_uninstall_warns_about_finalizers_nobody_will_remove() -> None:
    fake = FakeInstallCluster()
    assert run(fake, "install").exit_code == 0
    fake.emqx = [cluster("prod", "a", finalizers=["example.com/hold"])]
    result = run(fake, "uninstall")
    assert result.exit_code == 0
    assert "prod/a (example.com/hold)" in result.stderr and "finalizers" in result.stderr
