"""The fault matrix's worst cells (bench/faults.py), as tests: an outage in the middle of a rollout, and
the cluster still converges with every node replaced exactly once and every volume kept.

Each test waits for a precise point of the rollout (a core in flight), injects the fault there, and
judges the outcome by what ran: the simulator's boot log (which node booted which image), the pods'
UIDs and the PVCs' UIDs, and the resource's own account (Ready for the generation, the conditions).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sandbox import cluster
from tests.emqx_helpers import condition, cr, create_emqx, get_emqx, patch_emqx, pod_uids, wait_image, wait_ready
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

OLD, NEW = "emqx/emqx-enterprise:5.8.5", "emqx/emqx-enterprise:5.8.6"


def _cluster(name: str) -> dict[str, Any]:
    body = cr(name, image=OLD, cores=3, replicants=2)
    body["spec"]["coreTemplate"]["spec"]["volumeClaimTemplates"] = {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": 0}}
    return body


def _pvcs(api_client: Any, namespace: str) -> dict[str, str]:
    from kubernetes import client

    claims = client.CoreV1Api(api_client).list_namespaced_persistent_volume_claim(namespace).items
    return {c.metadata.name: c.metadata.uid for c in claims}


def _first_core_in_flight(api_client: Any, namespace: str, name: str, before: dict[str, str]) -> None:
    """Until the operator has deleted the first core (core-2) and recorded it as its step."""
    def in_flight() -> bool:
        now = pod_uids(api_client, namespace, name)
        step = ((get_emqx(api_client, namespace, name).get("status") or {}).get("upgrade") or {}).get("step") or {}
        return now.get(f"{name}-core-2") != before[f"{name}-core-2"] and step.get("pod") == f"{name}-core-2"

    wait_for(in_flight, 90, "the first core to be in flight", interval=0.05)


def _boots(emqx_sim: Any, since: int, namespace: str, image: str | None = None) -> list[str]:
    return [str(e["pod"]).split("/", 1)[1] for e in emqx_sim.boot_log(since=since)
            if e["event"] == "booted" and str(e.get("pod") or "").startswith(f"{namespace}/")
            and (image is None or e.get("image") == image)]


def _replaced_once(api_client: Any, namespace: str, name: str, before: dict[str, str]) -> None:
    after = pod_uids(api_client, namespace, name)
    assert not set(before.values()) & set(after.values()), "every pod was replaced"
    assert sorted(n for n in after if "-core-" in n) == [f"{name}-core-{i}" for i in range(3)]
    assert len([n for n in after if "-replicant-" in n]) == 2


def test_api_server_restart_mid_upgrade_converges_each_node_replaced_once_volumes_kept(
    api_client: Any, sandbox: cluster.SandboxState, solo_namespace: str, solo_operator: Any, emqx_sim: Any
) -> None:
    namespace = solo_namespace
    solo_operator()
    create_emqx(api_client, namespace, _cluster("api"))
    wait_ready(api_client, namespace, "api", timeout=180)
    before, claims = pod_uids(api_client, namespace, "api"), _pvcs(api_client, namespace)
    mark = emqx_sim.last_seq()
    patch_emqx(api_client, namespace, "api", {"spec": {"image": NEW}})
    _first_core_in_flight(api_client, namespace, "api", before)

    cluster.restart_component(sandbox, "kube-apiserver")

    obj = wait_image(api_client, namespace, "api", NEW, timeout=300)
    boots = _boots(emqx_sim, mark, namespace, NEW)
    assert sorted(b for b in boots if "-core-" in b) == ["api-core-0", "api-core-1", "api-core-2"], boots
    assert len([b for b in boots if "-replicant-" in b]) == 2, boots
    _replaced_once(api_client, namespace, "api", before)
    assert _pvcs(api_client, namespace) == claims, "no volume lost or re-created"
    assert {n["version"] for n in obj["status"]["emqxNodes"]} == {"5.8.6"}
    assert condition(obj, "UpgradeStalled")["status"] == "False"


def test_simulator_restart_mid_upgrade_every_node_reboots_and_each_is_replaced_once(
    api_client: Any, sandbox: cluster.SandboxState, solo_namespace: str, solo_operator: Any, emqx_sim: Any
) -> None:
    """Every EMQX node reboots at once (the simulator restarts) while a core is in flight: the
    operator waits for the nodes to come back, replaces each outdated node once, and takes no
    rebooting node for a broken one to replace twice."""
    from kubernetes import client, watch

    namespace = solo_namespace
    solo_operator()
    create_emqx(api_client, namespace, _cluster("sim"))
    wait_ready(api_client, namespace, "sim", timeout=180)
    before, claims = pod_uids(api_client, namespace, "sim"), _pvcs(api_client, namespace)
    seen: dict[str, set[str]] = {}
    core = client.CoreV1Api(api_client)
    stop = threading.Event()

    def record(pod: Any) -> None:
        # A pod counts once a node ran in it (its container started): the sandbox's kwok now and then
        # deletes a StatefulSet's fresh replacement by name, and the controller makes another at once.
        statuses = pod.status.container_statuses or [] if pod.status else []
        if any(c.state.running or c.state.terminated or c.restart_count for c in statuses):
            key = pod.metadata.name if "-core-" in pod.metadata.name else "replicant"
            seen.setdefault(key, set()).add(pod.metadata.uid)

    def follow() -> None:  # every pod that ran a node, by name (cores) or role (replicants)
        selector = "apps.emqx.io/instance=sim"
        while not stop.is_set():
            try:
                listing = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=10)
                for pod in listing.items:
                    record(pod)
                for event in watch.Watch().stream(core.list_namespaced_pod, namespace, label_selector=selector,
                                                  resource_version=listing.metadata.resource_version,
                                                  timeout_seconds=30, _request_timeout=40):
                    record(event["object"])
                    if stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - relist
                stop.wait(0.2)

    threading.Thread(target=follow, daemon=True).start()
    patch_emqx(api_client, namespace, "sim", {"spec": {"image": NEW}})
    _first_core_in_flight(api_client, namespace, "sim", before)

    cluster.restart_component(sandbox, "emqx-simulator")

    obj = wait_image(api_client, namespace, "sim", NEW, timeout=300)
    stop.set()
    _replaced_once(api_client, namespace, "sim", before)
    for ordinal in range(3):
        assert len(seen[f"sim-core-{ordinal}"]) == 2, f"core {ordinal}: {seen}"  # the old pod and one new
    assert len(seen["replicant"]) == 4, seen  # 2 old, 2 new
    assert _pvcs(api_client, namespace) == claims, "no volume lost or re-created"
    assert {n["version"] for n in obj["status"]["emqxNodes"]} == {"5.8.6"}
    replaced = [e.message for e in core.list_namespaced_event(
        namespace, field_selector="involvedObject.kind=EMQX").items if e.reason == "NodeReplaced"]
    assert sorted(m.split()[2] for m in replaced if m.startswith("replacing core")) == [
        "sim-core-0", "sim-core-1", "sim-core-2"], replaced


def test_operator_killed_during_a_restart_needing_config_roll_restarts_each_node_once(
    api_client: Any, solo_namespace: str, solo_operator: Any, emqx_sim: Any
) -> None:
    namespace = solo_namespace
    op = solo_operator()
    create_emqx(api_client, namespace, _cluster("roll"))
    wait_ready(api_client, namespace, "roll", timeout=180)
    before, claims = pod_uids(api_client, namespace, "roll"), _pvcs(api_client, namespace)
    mark = emqx_sim.last_seq()
    patched = patch_emqx(api_client, namespace, "roll", {"spec": {"config": {
        "data": "log.console.level = info\nnode.process_limit = 1048576\n"}}})
    _first_core_in_flight(api_client, namespace, "roll", before)
    op.kill()
    op.start()

    obj = wait_ready(api_client, namespace, "roll", timeout=300)
    assert obj["metadata"]["generation"] == patched["metadata"]["generation"]
    boots = _boots(emqx_sim, mark, namespace)
    assert sorted(b for b in boots if "-core-" in b) == ["roll-core-0", "roll-core-1", "roll-core-2"], boots
    assert len([b for b in boots if "-replicant-" in b]) == 2, boots
    _replaced_once(api_client, namespace, "roll", before)
    assert _pvcs(api_client, namespace) == claims
    assert condition(obj, "ConfigApplied")["status"] == "True"
    assert obj["status"]["config"]["appliedGeneration"] == patched["metadata"]["generation"]
