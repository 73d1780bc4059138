"""Operator core against the real apiserver + kwok + the EMQX simulator: create, scale, route, report."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.emqx_helpers import (
    cr,
    custom_api,
    emqx_nodes,
    get_emqx,
    patch_emqx,
    pods,
    ready_pods,
    selector_matches,
    wait_ready,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

SEED = {
    "apiVersion": "apps.emqx.io/v2alpha1",
    "kind": "EMQX",
    "metadata": {"name": "emqx"},
    "spec": {"emqxTemplate": {"image": "emqx/emqx:5.0.6"}},
}


def test_seed_manifest_gives_six_running_nodes(api_client: Any, namespace: str, operator: Any, kubectl: Any) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(SEED))
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "emqx/emqx", "--timeout=90s")

    core_pods = sorted(p.metadata.name for p in pods(api_client, namespace, "emqx", "core"))
    assert core_pods == ["emqx-core-0", "emqx-core-1", "emqx-core-2"]
    replicants = pods(api_client, namespace, "emqx", "replicant")
    assert len(replicants) == 3
    assert all(p.metadata.name.startswith("emqx-replicant-") for p in replicants)

    nodes = emqx_nodes(api_client, namespace, "emqx")
    assert len(nodes) == 6
    assert {n["node_status"] for n in nodes} == {"running"}
    assert {n["version"] for n in nodes} == {"5.0.6"}
    cores = sorted(n["node"] for n in nodes if n["role"] == "core")
    assert cores == [f"emqx@emqx-core-{i}.emqx-headless.{namespace}.svc.cluster.local" for i in range(3)]
    replicant_names = sorted(n["node"] for n in nodes if n["role"] == "replicant")
    assert replicant_names == sorted(f"emqx@{p.status.pod_ip}" for p in replicants)
    for node in nodes:
        assert node["otp_release"]

    status = get_emqx(api_client, namespace, "emqx")["status"]
    assert status["coreNodesStatus"]["readyReplicas"] == 3
    assert status["replicantNodesStatus"]["readyReplicas"] == 3
    assert status["currentImage"] == "emqx/emqx:5.0.6"
    metadata = get_emqx(api_client, namespace, "emqx")["metadata"]
    assert status["observedGeneration"] == metadata["generation"]
    # kopf writes nothing to the resource (only stateless event handlers): no progress or
    # last-handled annotations, no finalizer.
    assert not [key for key in metadata.get("annotations") or {} if "kopf" in key], metadata.get("annotations")
    assert not metadata.get("finalizers"), metadata.get("finalizers")


def test_scale_replicants_and_cores_and_listeners_follow(
    api_client: Any, namespace: str, operator: Any, kubectl: Any
) -> None:
    body = cr("scale", image="emqx/emqx:5.7.2", cores=3, replicants=3)
    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", body)
    wait_ready(api_client, namespace, "scale")

    def listeners_select(role: str) -> bool:
        svc = kubectl("get", "svc", "scale-listeners", "-n", namespace, "-o", "json").stdout
        selector = json.loads(svc)["spec"]["selector"]
        return bool(selector.get("apps.emqx.io/db-role") == role)

    assert listeners_select("replicant")
    for replicas in (5, 0):
        patch_emqx(api_client, namespace, "scale", {"spec": {"replicantTemplate": {"spec": {"replicas": replicas}}}})
        wait_ready(api_client, namespace, "scale")
        assert len(ready_pods(api_client, namespace, "scale", "replicant")) == replicas
        assert len([n for n in emqx_nodes(api_client, namespace, "scale") if n["role"] == "replicant"]) == replicas
    wait_for(lambda: listeners_select("core"), 30, "the listeners Service to select cores")

    kubectl("scale", "-n", namespace, "emqx/scale", "--replicas=2")  # the scale subresource drives replicants
    wait_ready(api_client, namespace, "scale")
    assert len(ready_pods(api_client, namespace, "scale", "replicant")) == 2
    wait_for(lambda: listeners_select("replicant"), 30, "the listeners Service to select replicants again")

    for cores in (4, 3):
        patch_emqx(api_client, namespace, "scale", {"spec": {"coreTemplate": {"spec": {"replicas": cores}}}})
        wait_ready(api_client, namespace, "scale")
        assert len(ready_pods(api_client, namespace, "scale", "core")) == cores
        running = [n for n in emqx_nodes(api_client, namespace, "scale") if n["role"] == "core"]
        assert len(running) == cores, running  # the removed core is force-left, not listed as stopped


def test_services_route_by_role(api_client: Any, namespace: str, operator: Any) -> None:
    from kubernetes import client

    body = cr("route", image="emqx/emqx:5.7.2", cores=2, replicants=2)
    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", body)
    wait_ready(api_client, namespace, "route")
    core = client.CoreV1Api(api_client)
    all_pods = pods(api_client, namespace, "route")
    dashboard = core.read_namespaced_service("route-dashboard", namespace)
    listeners = core.read_namespaced_service("route-listeners", namespace)
    headless = core.read_namespaced_service("route-headless", namespace)
    assert selector_matches(dashboard.spec.selector, all_pods) == sorted(
        p.metadata.name for p in all_pods if p.metadata.labels["apps.emqx.io/db-role"] == "core")
    assert selector_matches(listeners.spec.selector, all_pods) == sorted(
        p.metadata.name for p in all_pods if p.metadata.labels["apps.emqx.io/db-role"] == "replicant")
    assert selector_matches(headless.spec.selector, all_pods) == selector_matches(dashboard.spec.selector, all_pods)
    assert headless.spec.cluster_ip == "None" and headless.spec.publish_not_ready_addresses
    assert {p.port for p in headless.spec.ports} == {4370, 5369}
    assert {p.port for p in dashboard.spec.ports} == {18083}
    assert {(p.port, p.protocol) for p in listeners.spec.ports} >= {(1883, "TCP")}


def test_listener_port_changes_reach_the_listeners_service(api_client: Any, namespace: str, operator: Any) -> None:
    from kubernetes import client

    body = cr("ports", image="emqx/emqx:5.7.2", cores=1, replicants=1)
    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", body)
    wait_ready(api_client, namespace, "ports")
    patch_emqx(api_client, namespace, "ports", {"spec": {"config": {"data": (
        "listeners.tcp.default.bind = \"0.0.0.0:11883\"\n"
        "listeners.quic.default {enable = true, bind = \"0.0.0.0:14567\"}\n"
    )}}})
    core = client.CoreV1Api(api_client)

    def ports() -> set[tuple[int, str]]:
        svc = core.read_namespaced_service("ports-listeners", namespace)
        return {(p.port, p.protocol) for p in svc.spec.ports}

    wait_for(lambda: {(11883, "TCP"), (14567, "UDP")} <= ports() and (1883, "TCP") not in ports(), 30,
             "listener ports 11883/TCP and 14567/UDP on the listeners Service")


def test_core_volume_claims_are_bound(api_client: Any, namespace: str, operator: Any) -> None:
    from kubernetes import client

    body = cr("pvc", image="emqx/emqx:5.7.2", cores=3, replicants=0)
    body["spec"]["coreTemplate"]["spec"]["volumeClaimTemplates"] = {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Mi"}},
    }
    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", body)
    wait_ready(api_client, namespace, "pvc")
    core = client.CoreV1Api(api_client)
    claims = wait_for(
        lambda: (c := core.list_namespaced_persistent_volume_claim(namespace).items)
        and len(c) == 3 and all(x.status.phase == "Bound" for x in c) and c,
        30, "3 bound PVCs",
    )
    assert sorted(c.metadata.name for c in claims) == [f"data-pvc-core-{i}" for i in range(3)]


def test_delete_removes_everything_and_settled_cluster_makes_no_writes(
    api_client: Any, namespace: str, operator: Any, kubectl: Any
) -> None:
    from kubernetes import client

    body = cr("quiet", image="emqx/emqx:5.7.2", cores=2, replicants=1)
    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", body)
    wait_ready(api_client, namespace, "quiet")
    operator.wait_reconciles(namespace, "quiet", count=1)

    def operator_footprint() -> dict[str, Any]:
        """What only the operator writes: the resource's status, and per owned object its spec
        generation, applied hash and the time of the operator's last apply. (Controllers keep
        updating the workloads' status, so resourceVersions of those would prove nothing.)"""
        out = json.loads(kubectl(
            "get", "statefulset,deployment,service,configmap,secret,pdb", "-n", namespace,
            "-l", "apps.emqx.io/instance=quiet", "-o", "json", "--show-managed-fields").stdout)
        footprint: dict[str, Any] = {}
        for item in out["items"]:
            meta = item["metadata"]
            applied = [(f.get("operation"), f.get("time")) for f in meta.get("managedFields", [])
                       if f.get("manager") == "emqx-operator"]
            footprint[f"{item['kind']}/{meta['name']}"] = (
                meta.get("generation"), (meta.get("annotations") or {}).get("apps.emqx.io/applied-hash"), applied)
        footprint["EMQX/quiet"] = get_emqx(api_client, namespace, "quiet")["metadata"]["resourceVersion"]
        return footprint

    before = operator_footprint()
    assert len(before) == 11, sorted(before)
    assert all(v[2] for k, v in before.items() if k != "EMQX/quiet" and not k.startswith("Secret/")), before
    operator.wait_reconciles(namespace, "quiet", count=3)
    assert operator_footprint() == before, "a settled cluster must not be written to"
    sts = client.AppsV1Api(api_client).read_namespaced_stateful_set("quiet-core", namespace)
    assert sts.metadata.generation == 1

    kubectl("delete", "-n", namespace, "emqx/quiet", "--wait=true", "--timeout=60s")
    wait_for(lambda: not json.loads(kubectl(
        "get", "statefulset,deployment,replicaset,service,configmap,secret,pdb,pod", "-n", namespace,
        "-l", "apps.emqx.io/instance=quiet", "-o", "json",
    ).stdout)["items"], 60, "every owned object and pod to be gone")


def test_clusters_created_together_share_one_list_per_kind_of_their_namespace(
    api_client: Any, solo_namespace: str, solo_operator: Any
) -> None:
    """The operator's copy of owned objects is seeded by one LIST per kind and namespace for every
    cluster there, not by a LIST per kind and cluster (3,000 LISTs for 500 clusters, each a scan of
    the namespace by the API server)."""
    from tests.helpers import parse_metrics

    namespace = solo_namespace
    op = solo_operator().handle

    def lists() -> dict[str, float]:
        prefix = "emqx_operator_api_reads_total{"
        return {key: value for key, value in parse_metrics(op.metrics()).items()
                if key.startswith(prefix) and 'verb="LIST"' in key}

    api = custom_api(api_client)
    api.create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes",
                                        cr("first", cores=1, replicants=1))
    wait_ready(api_client, namespace, "first")  # every owned kind has sent the operator an event now
    before = lists()
    names = [f"burst-{i}" for i in range(4)]
    for name in names:
        api.create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes",
                                            cr(name, cores=1, replicants=1))
    for name in names:
        wait_ready(api_client, namespace, name)
    after = lists()
    grown = {key: after.get(key, 0) - before.get(key, 0) for key in after if after.get(key, 0) != before.get(key, 0)}
    assert all(count <= 1 for count in grown.values()), f"LISTs made for 4 new clusters, by kind: {grown}"
    kinds = {key.split('kind="')[1].split('"')[0] for key in after}
    assert kinds == {"Pod", "ConfigMap", "Service", "StatefulSet", "Deployment", "PodDisruptionBudget"}, after
    assert all(count <= 2 for count in after.values()), f"LISTs made for 5 clusters, by kind: {after}"


def test_a_fresh_operator_lists_each_kind_of_a_namespace_once_even_a_kind_nobody_uses(
    api_client: Any, solo_namespace: str, solo_operator: Any
) -> None:
    """Right after start no watch has sent an event yet, and a kind without objects (Deployments, while
    no cluster has replicants) never sends one: each cluster used to list such kinds itself on every
    pass (500 LISTs of Deployments after a restart with 500 clusters). A namespace LIST that finds
    nothing is safe to serve from at once."""
    from tests.helpers import parse_metrics

    namespace = solo_namespace
    api = custom_api(api_client)
    names = [f"early-{i}" for i in range(3)]
    op = solo_operator().handle
    for name in names:
        api.create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes",
                                            cr(name, cores=1, replicants=0))
    for name in names:
        wait_ready(api_client, namespace, name)
    operator_lists = {key: value for key, value in parse_metrics(op.metrics()).items()
                      if key.startswith("emqx_operator_api_reads_total{") and 'verb="LIST"' in key}
    deployments = sum(value for key, value in operator_lists.items() if 'kind="Deployment"' in key)
    assert deployments == 1, f"one LIST of the namespace's Deployments: {operator_lists}"
    assert all(value <= 2 for value in operator_lists.values()), operator_lists
