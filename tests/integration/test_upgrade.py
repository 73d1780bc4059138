"""Orchestrated upgrades: cores first, one at a time, proven through EMQX; stalls stop; rollback works."""

from __future__ import annotations

import itertools
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
    get_emqx,
    is_ready,
    patch_emqx,
    pod_uids,
    pods,
    selector_matches,
    wait_condition,
    wait_events,
    wait_image,
    wait_ready,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _cluster(name: str, image: str, cores: int, replicants: int, takeover: int = 0, **strategy: Any) -> dict[str, Any]:
    body = cr(name, image=image, cores=cores, replicants=replicants)
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": takeover}, **strategy}
    return body


def _events_in(emqx_sim: Any, since: int, namespace: str) -> list[dict[str, Any]]:
    return [e for e in emqx_sim.boot_log(since=since) if str(e.get("pod") or "").startswith(f"{namespace}/")]


def _short(event: dict[str, Any]) -> str:
    return str(event["pod"]).split("/", 1)[1]


def test_patch_upgrade_cores_first_each_pod_once_capacity_kept(
    api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    from kubernetes import client

    create_emqx(api_client, namespace, _cluster("up", "emqx/emqx:5.0.6", 3, 3, takeover=1))
    wait_ready(api_client, namespace, "up")
    before = pod_uids(api_client, namespace, "up")
    # Clients on every core: waitTakeover (1 s) applies only to a replaced node that had clients.
    for i in range(3):
        emqx_sim.set_connections(f"emqx@up-core-{i}.up-headless.{namespace}.svc.cluster.local", 5)
    mark = emqx_sim.last_seq()
    core_api = client.CoreV1Api(api_client)
    patch_emqx(api_client, namespace, "up", {"spec": {"image": "emqx/emqx:5.0.7"}})

    listener_samples: list[int] = []

    def settled_while_sampling() -> dict[str, Any] | None:
        svc = core_api.read_namespaced_service("up-listeners", namespace)
        ready = [p for p in pods(api_client, namespace, "up") if is_ready(p)]
        listener_samples.append(len(selector_matches(svc.spec.selector, ready)))
        obj = get_emqx(api_client, namespace, "up")
        if obj["status"].get("currentImage") == "emqx/emqx:5.0.7" and condition(obj, "Ready")["status"] == "True":
            return obj
        return None

    obj = wait_for(settled_while_sampling, 120, "the upgrade to 5.0.7", interval=0.05)
    assert min(listener_samples) >= 1, "the listeners Service must always select a Ready pod"
    assert {n["version"] for n in obj["status"]["emqxNodes"]} == {"5.0.7"}
    assert obj["status"]["previousImage"] == "emqx/emqx:5.0.6"

    after = pod_uids(api_client, namespace, "up")
    assert not set(before.values()) & set(after.values()), "every pod was replaced"
    events = _events_in(emqx_sim, mark, namespace)
    new_boots = [_short(e) for e in events if e["event"] == "booted" and e.get("image") == "emqx/emqx:5.0.7"]
    core_boots = [p for p in new_boots if "-core-" in p]
    replicant_boots = [p for p in new_boots if "-replicant-" in p]
    assert sorted(core_boots) == ["up-core-0", "up-core-1", "up-core-2"], new_boots  # once each
    assert len(replicant_boots) == 3 and len(set(replicant_boots)) == 3, new_boots
    assert max(new_boots.index(p) for p in core_boots) < min(new_boots.index(p) for p in replicant_boots)

    running_cores = 3
    lowest = running_cores
    for event in events:
        if "-core-" not in _short(event):
            continue
        if event["event"] == "booted":
            running_cores += 1
        elif event["event"] in ("stopped", "crashed"):
            running_cores -= 1
            lowest = min(lowest, running_cores)
    assert lowest >= 2, "never fewer than 2 of 3 cores running"
    core_boot_times = [e["time"] for e in events if e["event"] == "booted" and "-core-" in _short(e)]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(core_boot_times)), "waitTakeover between cores"
    assert len(wait_events(api_client, namespace, "up", "NodeReplaced", count=3)) == 3


def test_never_booting_image_stalls_after_first_core_and_rollback_restores(
    api_client: Any, namespace: str, operator: Any, emqx_sim: Any, kubeconfig: str
) -> None:
    create_emqx(api_client, namespace, _cluster("stall", "emqx/emqx:5.0.6", 3, 1, nodeReadyTimeoutSeconds=3))
    wait_ready(api_client, namespace, "stall")
    before = pod_uids(api_client, namespace, "stall")
    emqx_sim.never_boot("emqx/emqx:5.0.8")
    patch_emqx(api_client, namespace, "stall", {"spec": {"image": "emqx/emqx:5.0.8"}})

    cond = wait_condition(api_client, namespace, "stall", "UpgradeStalled", "True", timeout=60)
    assert "stall-core-2" in cond["message"], cond
    obj = get_emqx(api_client, namespace, "stall")
    assert obj["status"]["phase"] == "Stalled"
    assert obj["status"]["previousImage"] == "emqx/emqx:5.0.6"
    operator.wait_reconciles(namespace, "stall", count=3)
    now = pod_uids(api_client, namespace, "stall")
    untouched = {n: u for n, u in before.items() if n != "stall-core-2"}
    assert {n: now.get(n) for n in untouched} == untouched, "no node other than the first core may be touched"

    env = dict(os.environ, KUBECONFIG=kubeconfig)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubectl-emqx"), "upgrade", "stall", "--rollback", "--yes", "-n", namespace],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    obj = wait_image(api_client, namespace, "stall", "emqx/emqx:5.0.6")
    assert condition(obj, "UpgradeStalled")["status"] == "False"
    final = pod_uids(api_client, namespace, "stall")
    assert {n: final.get(n) for n in untouched} == untouched


def test_version_policy_refusals(api_client: Any, namespace: str, operator: Any) -> None:
    create_emqx(api_client, namespace, _cluster("policy", "emqx/emqx:5.6.1", 1, 1))
    wait_ready(api_client, namespace, "policy")
    before = pod_uids(api_client, namespace, "policy")

    patch_emqx(api_client, namespace, "policy", {"spec": {"image": "emqx/emqx:5.6.0"}})
    cond = wait_condition(api_client, namespace, "policy", "UpgradeAllowed", "False")
    assert "downgrade" in cond["message"] and "allowDowngrade" in cond["message"], cond
    assert get_emqx(api_client, namespace, "policy")["status"]["phase"] == "UpgradeRefused"
    assert pod_uids(api_client, namespace, "policy") == before

    patch_emqx(api_client, namespace, "policy", {"spec": {"image": "emqx/emqx:5.8.0"}})
    cond = wait_condition(api_client, namespace, "policy", "Valid", "False")
    assert "replicant" in cond["message"], cond

    patch_emqx(api_client, namespace, "policy", {"spec": {"replicantTemplate": {"spec": {"replicas": 0}}}})
    cond = wait_for(lambda: (c := condition(get_emqx(api_client, namespace, "policy"), "UpgradeAllowed"))
                    and "one-minor-step" in c["message"] and c, 30, "the two-minor jump to be refused")
    assert cond["status"] == "False"
    cores_now = {n: u for n, u in pod_uids(api_client, namespace, "policy").items() if "-core-" in n}
    assert cores_now == {n: u for n, u in before.items() if "-core-" in n}

    patch_emqx(api_client, namespace, "policy", {"spec": {
        "image": "emqx/emqx:5.6.0", "updateStrategy": {"allowDowngrade": True}}})
    wait_image(api_client, namespace, "policy", "emqx/emqx:5.6.0")


def test_config_change_waits_while_versions_are_mixed(
    api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    create_emqx(api_client, namespace, _cluster("mixed", "emqx/emqx:5.6.0", 3, 0))
    wait_ready(api_client, namespace, "mixed")
    stuck = f"emqx@mixed-core-2.mixed-headless.{namespace}.svc.cluster.local"
    emqx_sim.fail_api(stuck, status=503, path_prefix="/status")
    patch_emqx(api_client, namespace, "mixed", {"spec": {"image": "emqx/emqx:5.6.1"}})
    wait_for(lambda: any(n.get("node") == stuck and n.get("version") == "5.6.1"
                         for n in get_emqx(api_client, namespace, "mixed")["status"].get("emqxNodes", [])),
             60, "core-2 running 5.6.1 beside 5.6.0 cores")
    patch_emqx(api_client, namespace, "mixed", {"spec": {"config": {"data": "log.console.level = debug\n"}}})
    cond = wait_for(lambda: (c := condition(get_emqx(api_client, namespace, "mixed"), "ConfigApplied"))
                    and c["reason"] == "WaitingForUpgrade" and c, 30, "the config change to wait")
    assert "mixed versions" in cond["message"]

    emqx_sim.clear_faults(stuck)
    wait_image(api_client, namespace, "mixed", "emqx/emqx:5.6.1")
    wait_condition(api_client, namespace, "mixed", "ConfigApplied", "True")


@pytest.mark.parametrize("kill_when", ["first-core-deleted", "cores-half-done", "replicants-rolling"])
def test_operator_killed_mid_upgrade_converges_replacing_each_node_once(
    api_client: Any, solo_namespace: str, solo_operator: Any, emqx_sim: Any, kill_when: str
) -> None:
    namespace = solo_namespace
    op = solo_operator()
    create_emqx(api_client, namespace, _cluster("kill", "emqx/emqx:5.0.6", 3, 2))
    wait_ready(api_client, namespace, "kill")
    before = pod_uids(api_client, namespace, "kill")
    mark = emqx_sim.last_seq()
    patch_emqx(api_client, namespace, "kill", {"spec": {"image": "emqx/emqx:5.0.7"}})

    def replaced_cores() -> int:
        now = pod_uids(api_client, namespace, "kill")
        return sum(1 for n, u in before.items() if "-core-" in n and now.get(n) not in (None, u))

    def new_replicants() -> int:
        return sum(1 for n in pod_uids(api_client, namespace, "kill") if "-replicant-" in n and n not in before)

    if kill_when == "first-core-deleted":
        wait_for(lambda: "kill-core-2" not in pod_uids(api_client, namespace, "kill")
                 or pod_uids(api_client, namespace, "kill")["kill-core-2"] != before["kill-core-2"],
                 60, "the first core to be replaced", interval=0.02)
    elif kill_when == "cores-half-done":
        wait_for(lambda: replaced_cores() >= 2, 60, "two cores replaced", interval=0.02)
    else:
        wait_for(lambda: new_replicants() >= 1, 60, "the first new replicant", interval=0.02)
    op.kill()
    op.start()
    wait_image(api_client, namespace, "kill", "emqx/emqx:5.0.7")

    boots = [_short(e) for e in _events_in(emqx_sim, mark, namespace)
             if e["event"] == "booted" and e.get("image") == "emqx/emqx:5.0.7"]
    assert sorted(b for b in boots if "-core-" in b) == ["kill-core-0", "kill-core-1", "kill-core-2"], boots
    assert len([b for b in boots if "-replicant-" in b]) == 2, boots


def test_enterprise_cores_are_evacuated_before_replacement(
    api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    create_emqx(api_client, namespace, _cluster("ee", "emqx/emqx-enterprise:5.7.2", 2, 0))
    wait_ready(api_client, namespace, "ee")
    emqx_sim.set_clock_speed(20)
    busy = [f"emqx@ee-core-{i}.ee-headless.{namespace}.svc.cluster.local" for i in range(2)]
    for node in busy:
        emqx_sim.set_connections(node, 40)
    emqx_sim.reset_request_counts()
    patch_emqx(api_client, namespace, "ee", {"spec": {"image": "emqx/emqx-enterprise:5.8.0"}})
    obj = wait_image(api_client, namespace, "ee", "emqx/emqx-enterprise:5.8.0")
    evacuating = wait_events(api_client, namespace, "ee", "EvacuatingNode", count=len(busy))
    assert {node for node in busy if any(node in (e.message or "") for e in evacuating)} == set(busy)
    counts = emqx_sim.request_counts()
    starts = sum(v for node_counts in counts.values() for k, v in node_counts["by_endpoint"].items()
                 if k.startswith("POST") and k.endswith("/evacuation/start"))
    assert starts >= 2, counts
    states = {n["node"]: n.get("node_status") for n in obj["status"]["emqxNodes"]}
    assert all(states[node] == "running" for node in busy)

    import httpx

    def all_available() -> bool:  # a core back on its old volume resumes evacuating until told to stop
        return all(httpx.get(f"http://{p.status.pod_ip}:18083/api/v5/load_rebalance/availability_check",
                             timeout=5).status_code == 200 for p in pods(api_client, namespace, "ee"))

    wait_for(all_available, 30, "every replaced core to accept connections again")


def test_enterprise_replicants_are_drained_one_at_a_time_before_removal(
    api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    from kubernetes import client

    create_emqx(api_client, namespace, _cluster("eer", "emqx/emqx-enterprise:5.7.2", 1, 2))
    wait_ready(api_client, namespace, "eer")
    emqx_sim.set_clock_speed(20)
    old = {p.metadata.name: p.status.pod_ip for p in pods(api_client, namespace, "eer", "replicant")}
    for ip in old.values():
        emqx_sim.set_connections(f"emqx@{ip}", 30)
    mark = emqx_sim.last_seq()
    emqx_sim.reset_request_counts()
    patch_emqx(api_client, namespace, "eer", {"spec": {"image": "emqx/emqx-enterprise:5.8.0"}})
    wait_image(api_client, namespace, "eer", "emqx/emqx-enterprise:5.8.0")

    counts = emqx_sim.request_counts()
    started = {k.split("/")[4] for c in counts.values() for k in c["by_endpoint"]
               if k.startswith("POST") and k.endswith("/evacuation/start")}
    assert {f"emqx@{ip}" for ip in old.values()} <= started, started
    events = _events_in(emqx_sim, mark, namespace)
    stops = [_short(e) for e in events if e["event"] == "stopped" and _short(e) in old]
    assert sorted(stops) == sorted(old), events
    replicant_boots = [_short(e) for e in events if e["event"] == "booted" and "-replicant-" in _short(e)]
    assert len(replicant_boots) == 2, events
    ready = [p for p in pods(api_client, namespace, "eer", "replicant") if is_ready(p)]
    gates = [c for p in ready for c in p.status.conditions if c.type == "apps.emqx.io/on-serving"]
    assert len(gates) == 2 and all(c.status == "True" for c in gates)
    deployment = client.AppsV1Api(api_client).read_namespaced_deployment("eer-replicant", namespace)
    assert deployment.status.ready_replicas == 2
