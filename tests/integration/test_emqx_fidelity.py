"""What a check against EMQX's source found (issue: work against real EMQX), proven on the sandbox
with the simulator following EMQX release by release (docs/fidelity.md): default listeners before
5.0.25, evacuations that cannot loop, rejected configuration retried by a new release, dashboard
settings live, 5.3.2's config errors, manifests as the official operator's users write them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.emqx_helpers import (
    condition,
    cr,
    create_emqx,
    custom_api,
    emqx_api,
    get_emqx,
    patch_emqx,
    pod_uids,
    pods,
    wait_events,
    wait_image,
    wait_ready,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
SEED = {"apiVersion": "apps.emqx.io/v2alpha1", "kind": "EMQX", "metadata": {"name": "emqx"},
        "spec": {"emqxTemplate": {"image": "emqx/emqx:5.0.6"}}}


def _fast_strategy(body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": 1, "waitHealthCheck": 1}, **extra}
    return body


def test_a_5_0_6_seed_cluster_serves_mqtt_on_every_node(api_client: Any, namespace: str, operator: Any) -> None:
    """Before 5.0.25 the listeners live only in the shipped emqx.conf, which ours replaces: the
    operator declares them, so EMQX's own listener API shows tcp:default on 1883 everywhere."""
    from kubernetes import client

    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2alpha1", namespace, "emqxes",
                                                           dict(SEED))
    wait_ready(api_client, namespace, "emqx", timeout=180)
    nodes = {n["node"] for n in get_emqx(api_client, namespace, "emqx")["status"]["emqxNodes"]}
    with emqx_api(api_client, namespace, "emqx", pods(api_client, namespace, "emqx")[0]) as api:
        listeners = {item["id"]: item for item in api.listeners()}
    tcp = listeners["tcp:default"]
    assert str(tcp["bind"]).rsplit(":", 1)[-1] == "1883", tcp["bind"]
    assert {s["node"] for s in tcp["node_status"] if s["status"]["running"] is True} == nodes
    service = client.CoreV1Api(api_client).read_namespaced_service("emqx-listeners", namespace)
    ports = {(p.port, p.protocol) for p in service.spec.ports}
    listening = {(int(str(item["bind"]).rsplit(":", 1)[-1]), "TCP") for item in listeners.values()}
    assert ports == listening, (ports, listening)


def test_a_single_enterprise_core_upgrades_with_connections(api_client: Any, namespace: str, operator: Any,
                                                            emqx_sim: Any) -> None:
    """No other node can take its sessions: no evacuation is started (EMQX refuses an empty
    migrate_to), the node is replaced and an Event says so."""
    body = _fast_strategy(cr("solo", image="emqx/emqx-enterprise:5.9.1", cores=1, replicants=0,
                             config='license.key = "evaluation"\n'))
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "solo")
    emqx_sim.set_connections(f"emqx@solo-core-0.solo-headless.{namespace}.svc.cluster.local", 25)
    before = pod_uids(api_client, namespace, "solo")
    patch_emqx(api_client, namespace, "solo", {"spec": {"image": "emqx/emqx-enterprise:5.10.0"}})
    wait_image(api_client, namespace, "solo", "emqx/emqx-enterprise:5.10.0", timeout=180)
    skipped = wait_events(api_client, namespace, "solo", "EvacuationSkipped")
    assert "no other running node" in skipped[0].message
    assert set(pod_uids(api_client, namespace, "solo").values()).isdisjoint(before.values())


@pytest.mark.parametrize(("source", "target"), [
    ("emqx/emqx-enterprise:5.6.1", "emqx/emqx-enterprise:5.7.2"),
    ("emqx/emqx-enterprise:5.7.2", "emqx/emqx-enterprise:5.8.0"),
])
def test_busy_cores_with_volumes_upgrade_each_replaced_once(api_client: Any, namespace: str, operator: Any,
                                                             emqx_sim: Any, source: str, target: str) -> None:
    """Evacuations persist on the volume: before 5.7 such a node would not start again, so the
    evacuation is ended before the core goes; from 5.7 it resumes and is ended once the node runs."""
    body = _fast_strategy(cr("vol", image=source, cores=2, replicants=0))
    body["spec"]["coreTemplate"]["spec"]["volumeClaimTemplates"] = {"resources": {"requests": {"storage": "1Gi"}}}
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "vol", timeout=120)
    for i in range(2):
        emqx_sim.set_connections(f"emqx@vol-core-{i}.vol-headless.{namespace}.svc.cluster.local", 30)
    before = pod_uids(api_client, namespace, "vol")
    patch_emqx(api_client, namespace, "vol", {"spec": {"image": target}})
    wait_image(api_client, namespace, "vol", target, timeout=300)
    after = pod_uids(api_client, namespace, "vol")
    assert set(after) == set(before) and set(after.values()).isdisjoint(before.values())
    assert len(wait_events(api_client, namespace, "vol", "NodeReplaced", count=2)) == 2
    import httpx

    wait_for(lambda: all(httpx.get(f"http://{p.status.pod_ip}:18083/api/v5/load_rebalance/availability_check",
                                   timeout=5).status_code == 200 for p in pods(api_client, namespace, "vol")),
             60, "no node left evacuating")


def test_enterprise_5_1_with_wait_takeover_zero_is_drained(api_client: Any, namespace: str, operator: Any,
                                                            emqx_sim: Any) -> None:
    body = cr("e51", image="emqx/emqx-enterprise:5.1.0", cores=2, replicants=0)
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": 0, "waitHealthCheck": 1}}
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "e51")
    for i in range(2):
        emqx_sim.set_connections(f"emqx@e51-core-{i}.e51-headless.{namespace}.svc.cluster.local", 20)
    before = pod_uids(api_client, namespace, "e51")
    patch_emqx(api_client, namespace, "e51", {"spec": {"image": "emqx/emqx-enterprise:5.1.1"}})
    obj = wait_image(api_client, namespace, "e51", "emqx/emqx-enterprise:5.1.1", timeout=300)
    assert set(pod_uids(api_client, namespace, "e51").values()).isdisjoint(before.values())
    assert condition(obj, "UpgradeStalled")["status"] == "False"
    assert len(wait_events(api_client, namespace, "e51", "EvacuatingNode", count=2)) == 2


def test_a_licence_key_refused_by_opensource_58_is_loaded_after_the_upgrade_to_59(
        api_client: Any, namespace: str, operator: Any) -> None:
    body = _fast_strategy(cr("lic", image="emqx/emqx:5.8.9", cores=2, replicants=0,
                             config='license.key = "evaluation"\nlog.console.level = warning\n'))
    create_emqx(api_client, namespace, body)
    obj = wait_ready(api_client, namespace, "lic", timeout=120)
    assert condition(obj, "ConfigApplied")["status"] == "True"
    patch_emqx(api_client, namespace, "lic", {"spec": {"config": {"data": (
        'license.key = "evaluation"\nlog.console.level = info\n')}}})
    applied = wait_for(lambda: (c := condition(get_emqx(api_client, namespace, "lic"), "ConfigApplied"))
                       and c["status"] == "True" and "generation 2" in c["message"] and c, 60, "generation 2 loaded")
    assert "left out license" in applied["message"]
    patch_emqx(api_client, namespace, "lic", {"spec": {"image": "emqx/emqx-enterprise:5.9.1"}})
    obj = wait_image(api_client, namespace, "lic", "emqx/emqx-enterprise:5.9.1", timeout=300)
    assert condition(obj, "ConfigApplied")["status"] == "True"


def test_a_dashboard_only_change_on_5_6_1_is_live_everywhere(api_client: Any, namespace: str,
                                                              operator: Any) -> None:
    from kubectl_emqx.domain import hocon

    create_emqx(api_client, namespace, cr("dsh", image="emqx/emqx:5.6.1", cores=2, replicants=1))
    wait_ready(api_client, namespace, "dsh")
    before = pod_uids(api_client, namespace, "dsh")
    patch_emqx(api_client, namespace, "dsh", {"spec": {"config": {"data": "dashboard.token_expired_time = 30m\n"}}})
    wait_for(lambda: (c := condition(get_emqx(api_client, namespace, "dsh"), "ConfigApplied"))
             and c["status"] == "True" and "generation 2" in c["message"], 60, "the dashboard change loaded")
    for pod in pods(api_client, namespace, "dsh"):
        with emqx_api(api_client, namespace, "dsh", pod) as api:
            live = hocon.parse(api.get_config_hocon())
        assert hocon.get_path(live, "dashboard.token_expired_time") == "30m", pod.metadata.name
    assert pod_uids(api_client, namespace, "dsh") == before


def test_5_3_2_config_errors_are_verdicts_and_emqx_conf_keeps_only_what_emqx_took(
        api_client: Any, namespace: str, operator: Any) -> None:
    """Only restart keys: nothing is PUT (an empty body is a 500 in EMQX). A value EMQX refuses is
    remembered, not re-sent, and never reaches emqx.conf, so a node that restarts still boots."""
    from kubernetes import client

    create_emqx(api_client, namespace, _fast_strategy(cr("v532", image="emqx/emqx:5.3.2", cores=2, replicants=0)))
    wait_ready(api_client, namespace, "v532")
    patch_emqx(api_client, namespace, "v532", {"spec": {"config": {"data": "node.process_limit = 2097152\n"}}})
    obj = wait_ready(api_client, namespace, "v532", timeout=180)
    assert condition(obj, "ConfigApplied")["status"] == "True"

    patch_emqx(api_client, namespace, "v532", {"spec": {"config": {"data": (
        "node.process_limit = 2097152\nmqtt.max_packet_size = 10abc\n")}}})
    rejected = wait_for(lambda: (c := condition(get_emqx(api_client, namespace, "v532"), "ConfigApplied"))
                        and c["reason"] == "ConfigRejected" and c, 60, "ConfigRejected")
    assert "max_packet_size" in rejected["message"] or "10abc" in rejected["message"], rejected
    configmap = client.CoreV1Api(api_client).read_namespaced_config_map("v532-configs", namespace)
    assert "10abc" not in configmap.data["emqx.conf"]
    client.CoreV1Api(api_client).delete_namespaced_pod("v532-core-1", namespace)
    wait_for(lambda: any(p.metadata.name == "v532-core-1" and p.status.phase == "Running"
                         and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
                         for p in pods(api_client, namespace, "v532")), 120, "the restarted core boots again")
    assert get_emqx(api_client, namespace, "v532")["status"]["config"]["rejected"]["target"] == "Opensource 5.3.2"


def test_the_official_sample_with_only_an_image_becomes_ready(api_client: Any, namespace: str,
                                                              operator: Any) -> None:
    create_emqx(api_client, namespace, {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX",
                                        "metadata": {"name": "sample"}, "spec": {"image": "emqx/emqx:latest"}})
    obj = wait_ready(api_client, namespace, "sample", timeout=180)
    assert obj["status"]["coreNodesStatus"]["replicas"] == 3 and obj["status"]["replicantNodesStatus"]["replicas"] == 0


def test_keys_the_operator_owns_are_refused_by_the_plugin_and_nothing_rolls(
        api_client: Any, namespace: str, operator: Any, kubeconfig: str) -> None:
    create_emqx(api_client, namespace, cr("own", cores=1, replicants=0))
    wait_ready(api_client, namespace, "own")
    before = pod_uids(api_client, namespace, "own")
    generation = get_emqx(api_client, namespace, "own")["metadata"]["generation"]
    plugin = str(Path(sys.executable).parent / "kubectl-emqx")
    result = subprocess.run([plugin, "config", "set", "own", "node.cookie=x", "-n", namespace, "--yes"],
                            capture_output=True, text=True, env=dict(os.environ, KUBECONFIG=kubeconfig), timeout=60)
    assert result.returncode != 0 and "node.cookie" in result.stderr and "EMQX_NODE__COOKIE" in result.stderr
    result = subprocess.run([plugin, "config", "set", "own", "cluster.discovery_strategy=static", "-n", namespace,
                             "--yes"], capture_output=True, text=True, env=dict(os.environ, KUBECONFIG=kubeconfig),
                            timeout=60)
    assert result.returncode != 0 and "EMQX_CLUSTER__DISCOVERY_STRATEGY" in result.stderr
    assert get_emqx(api_client, namespace, "own")["metadata"]["generation"] == generation
    assert pod_uids(api_client, namespace, "own") == before
