"""The EMQX simulator against the real local control plane: hand-written StatefulSet + headless Service +
Deployment carrying the env and mounts of emqx-api.md §5.5 (issue 3 "done when")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.emqxsim import hocon
from sandbox.emqxsim.testing import cluster_manifests
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

AUTH = ("operator-key", "operator-secret")


def _core(api_client: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client)


def _apply(api_client: Any, namespace: str, objects: list[dict[str, Any]]) -> None:
    from kubernetes import utils

    utils.create_from_yaml(api_client, yaml_objects=objects, namespace=namespace)


def _pods(api_client: Any, namespace: str) -> list[Any]:
    return [p for p in _core(api_client).list_namespaced_pod(namespace).items if p.metadata.deletion_timestamp is None]


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _wait_pods(
    api_client: Any, namespace: str, count: int, ready: bool | None = True, timeout: float = 60
) -> list[Any]:
    def check() -> list[Any] | None:
        pods = [p for p in _pods(api_client, namespace) if p.status.phase == "Running" and p.status.pod_ip]
        if len(pods) != count:
            return None
        if ready is not None and any(_ready(p) != ready for p in pods):
            return None
        return pods

    return wait_for(check, timeout, f"{count} pods in {namespace} with Ready={ready}")


def _manifests(namespace: str, **options: Any) -> list[dict[str, Any]]:
    return cluster_manifests(namespace, **options)


def _container(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    workload = next(o for o in objects if o["kind"] == kind)
    container: dict[str, Any] = workload["spec"]["template"]["spec"]["containers"][0]
    return container


def _drop_env(container: dict[str, Any], name: str) -> None:
    container["env"] = [item for item in container["env"] if item["name"] != name]


def _nodes_via(ip: str, auth: tuple[str, str] = AUTH) -> httpx.Response:
    return httpx.get(f"http://{ip}:18083/api/v5/nodes", auth=auth, timeout=5, trust_env=False)


def test_nodes_lists_every_node_with_role_version_and_name(api_client, namespace, emqx_sim):
    _apply(api_client, namespace, _manifests(namespace, image="emqx/emqx-enterprise:5.8.9"))
    pods = _wait_pods(api_client, namespace, 4)
    by_name = {p.metadata.name: p for p in pods}
    core_ip = by_name["emqx-core-0"].status.pod_ip
    nodes = wait_for(
        lambda: (r := _nodes_via(core_ip)).status_code == 200 and len(r.json()) == 4 and r.json(),
        20,
        "4 nodes in GET /api/v5/nodes",
    )
    replicant_ips = sorted(p.status.pod_ip for p in pods if p.metadata.name.startswith("emqx-replicant"))
    expected = sorted(
        [(f"emqx@emqx-core-{i}.emqx-headless.{namespace}.svc.cluster.local", "core") for i in range(2)]
        + [(f"emqx@{ip}", "replicant") for ip in replicant_ips]
    )
    assert sorted((n["node"], n["role"]) for n in nodes) == expected
    assert {(n["version"], n["edition"], n["node_status"]) for n in nodes} == {("5.8.9", "Enterprise", "running")}
    status = httpx.get(f"http://{core_ip}:18083/status", timeout=5, trust_env=False)
    assert (
        status.text == f"Node emqx@emqx-core-0.emqx-headless.{namespace}.svc.cluster.local is started\nemqx is running"
    )
    from kubernetes import client

    # the StatefulSet controller counts Ready pods on its own schedule; a fresh core's join also
    # restarts its listener for a moment (ekka), which this sandbox's probe may see
    wait_for(
        lambda: (
            client.AppsV1Api(api_client).read_namespaced_stateful_set("emqx-core", namespace).status.ready_replicas == 2
        ),
        30,
        "2 Ready cores in the StatefulSet status",
    )
    assert all(cs.ready for p in pods for cs in p.status.container_statuses)


def test_missing_role_env_boots_the_replicant_as_a_core(api_client, namespace, emqx_sim):
    objects = _manifests(namespace, image="emqx/emqx-enterprise:5.8.9", cores=1, replicants=1)
    _drop_env(_container(objects, "Deployment"), "EMQX_NODE__ROLE")
    _apply(api_client, namespace, objects)
    pods = _wait_pods(api_client, namespace, 2)
    core_ip = next(p.status.pod_ip for p in pods if p.metadata.name == "emqx-core-0")
    nodes = wait_for(lambda: len(r := _nodes_via(core_ip).json()) == 2 and r, 20, "2 nodes")
    assert [n["role"] for n in nodes] == ["core", "core"]


def test_missing_cookie_isolates_the_node(api_client, namespace, emqx_sim):
    objects = _manifests(namespace, image="emqx/emqx-enterprise:5.8.9", cores=1, replicants=1)
    _drop_env(_container(objects, "Deployment"), "EMQX_NODE__COOKIE")
    _apply(api_client, namespace, objects)
    pods = wait_for(
        lambda: len(ps := [p for p in _pods(api_client, namespace) if p.status.pod_ip]) == 2 and ps,
        60,
        "2 pods with IPs",
    )
    replicant = next(p for p in pods if p.metadata.name.startswith("emqx-replicant"))
    wait_for(
        lambda: emqx_sim.node(f"{namespace}/{replicant.metadata.name}")["state"] == "waiting",
        30,
        "the cookie-less replicant to wait for a core",
    )
    core = wait_for(
        lambda: next((p for p in _pods(api_client, namespace) if p.metadata.name == "emqx-core-0" and _ready(p)), None),
        30,
        "the core to be Ready",
    )
    assert len(_nodes_via(core.status.pod_ip).json()) == 1
    assert not _ready(_core(api_client).read_namespaced_pod(replicant.metadata.name, namespace))


def test_missing_api_key_file_gives_401(api_client, namespace, emqx_sim):
    objects = _manifests(namespace, cores=1, replicants=0)
    container = _container(objects, "StatefulSet")
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "bootstrap-api-key"]
    _apply(api_client, namespace, objects)
    (pod,) = _wait_pods(api_client, namespace, 1)
    response = _nodes_via(pod.status.pod_ip)
    assert response.status_code == 401
    assert response.json() == {"code": "BAD_API_KEY_OR_SECRET", "message": "Check api_key/api_secret"}


def test_missing_secret_blocks_boot_until_created(api_client, namespace, emqx_sim):
    objects = [o for o in _manifests(namespace, cores=1, replicants=0) if o["metadata"]["name"] != "emqx-node-cookie"]
    _apply(api_client, namespace, objects)
    # The kubelet never creates the container: CreateContainerConfigError, and the node never boots.
    pod = wait_for(
        lambda: (p := _core(api_client).read_namespaced_pod("emqx-core-0", namespace)).status.container_statuses
        and p.status.container_statuses[0].state.waiting
        and p.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError"
        and p,
        30,
        "CreateContainerConfigError",
    )
    assert pod.status.container_statuses[0].state.waiting.message == 'secret "emqx-node-cookie" not found'
    assert not _ready(pod)
    assert emqx_sim.node(f"{namespace}/emqx-core-0")["state"] == "pending"
    cookie = next(o for o in _manifests(namespace) if o["metadata"]["name"] == "emqx-node-cookie")
    _apply(api_client, namespace, [cookie])
    _wait_pods(api_client, namespace, 1)


def test_opensource_58_replicant_never_becomes_ready(api_client, namespace, emqx_sim):
    _apply(api_client, namespace, _manifests(namespace, image="emqx/emqx:5.8.9", cores=1, replicants=1))
    pods = wait_for(
        lambda: len(ps := [p for p in _pods(api_client, namespace) if p.status.pod_ip]) == 2 and ps,
        60,
        "2 pods with IPs",
    )
    replicant = next(p for p in pods if p.metadata.name.startswith("emqx-replicant"))
    summary = wait_for(
        lambda: (n := emqx_sim.node(f"{namespace}/{replicant.metadata.name}"))["reason"] and n,
        30,
        "the replicant's boot failure",
    )
    assert "only allowed in Enterprise edition since 5.8.0" in summary["reason"]
    assert summary["state"] == "failed"


def test_pod_deletion_stops_the_node_and_the_recreated_pod_boots(api_client, namespace, emqx_sim):
    _apply(api_client, namespace, _manifests(namespace, cores=2, replicants=0))
    _wait_pods(api_client, namespace, 2)
    since = emqx_sim.last_seq()
    _core(api_client).delete_namespaced_pod("emqx-core-1", namespace, grace_period_seconds=0)
    node = f"emqx@emqx-core-1.emqx-headless.{namespace}.svc.cluster.local"

    def stopped_then_booted() -> bool:
        events = [(e["event"], e["node"]) for e in emqx_sim.boot_log(since) if e["pod"] == f"{namespace}/emqx-core-1"]
        # after the stop, the new pod's node boots (a "joined" may follow it)
        return ("stopped", node) in events and ("booted", node) in events[events.index(("stopped", node)):]

    wait_for(stopped_then_booted, 60, "emqx-core-1 to stop and boot again")
    _wait_pods(api_client, namespace, 2)


def test_fault_controls_drive_readiness_and_the_api(api_client, namespace, emqx_sim):
    _apply(api_client, namespace, _manifests(namespace, cores=1, replicants=0))
    (pod,) = _wait_pods(api_client, namespace, 1)
    ident = f"{namespace}/emqx-core-0"
    try:
        emqx_sim.fail_api(ident, status=503, path_prefix="/status")
        _wait_pods(api_client, namespace, 1, ready=False, timeout=20)
        emqx_sim.clear_faults(ident)
        _wait_pods(api_client, namespace, 1, timeout=20)
        emqx_sim.fail_api(ident, status=500, count=1)
        assert _nodes_via(pod.status.pod_ip).status_code == 500
        assert _nodes_via(pod.status.pod_ip).status_code == 200
        emqx_sim.reset_request_counts()
        _nodes_via(pod.status.pod_ip)
        assert emqx_sim.request_counts(ident)["by_endpoint"] == {"GET /api/v5/nodes": 1}
        emqx_sim.crash(ident)
        _wait_pods(api_client, namespace, 1, ready=False, timeout=20)
        emqx_sim.start(ident)
        _wait_pods(api_client, namespace, 1, timeout=20)
    finally:
        emqx_sim.clear_faults(ident)


def test_never_boot_image_stays_not_ready(api_client, namespace, emqx_sim):
    image = "emqx/emqx:5.7.1"
    emqx_sim.never_boot(image)
    try:
        _apply(api_client, namespace, _manifests(namespace, image=image, cores=1, replicants=0))
        wait_for(lambda: emqx_sim.node(f"{namespace}/emqx-core-0")["state"] == "hung", 30, "a hung boot")
        assert not _ready(_core(api_client).read_namespaced_pod("emqx-core-0", namespace))
    finally:
        emqx_sim.allow_boot(image)
    _wait_pods(api_client, namespace, 1)


# ---------------------------------------------------------------------------- issue 12: EMQX as it really is


def _configmap(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "ConfigMap")


def _replace_conf(api_client: Any, namespace: str, emqx_conf: str) -> None:
    cm = _configmap(_manifests(namespace, emqx_conf=emqx_conf))
    _core(api_client).patch_namespaced_config_map(cm["metadata"]["name"], namespace, {"data": cm["data"]})


def test_schema_rejected_emqx_conf_exits_the_node_until_fixed(api_client, namespace, emqx_sim):
    """EMQX checks emqx.conf against its schema before starting (emqx_conf_schema generate): a bad value
    ends the process with exit code 1 and the failed_to_check_schema lines; the pod never gets Ready."""
    bad = "dashboard.listeners.http.bind = 18083\nmqtt.max_packet_size = 1.5MB\n"
    _apply(api_client, namespace, _manifests(namespace, image="emqx/emqx:5.8.9", cores=1, replicants=0, emqx_conf=bad))
    ident = f"{namespace}/emqx-core-0"
    container = wait_for(
        lambda: (c := emqx_sim.container(ident))["last_termination"] and c,
        60,
        "the node to exit",
    )
    termination = container["last_termination"]
    assert termination["exit_code"] == 1
    assert any("parse_error" in line or "failed_to_check_schema" in line for line in termination["log_tail"])
    assert container["phase"] == "waiting" and not container["ready"]
    assert not _ready(_core(api_client).read_namespaced_pod("emqx-core-0", namespace))

    _replace_conf(api_client, namespace, "dashboard.listeners.http.bind = 18083\nmqtt.max_packet_size = 2MB\n")
    wait_for(lambda: emqx_sim.container(ident)["phase"] == "running", 90, "the node to boot with the fixed config")
    (pod,) = _wait_pods(api_client, namespace, 1, timeout=60)
    text = httpx.get(f"http://{pod.status.pod_ip}:18083/api/v5/configs", auth=AUTH, timeout=5, trust_env=False).text
    assert hocon.parse(text)["mqtt"]["max_packet_size"] == "2MB"
    assert emqx_sim.container(ident)["restart_count"] >= 1


def test_bad_value_in_schema_fails_with_the_schema_check_text(api_client, namespace, emqx_sim):
    bad = "dashboard.listeners.http.bind = 18083\nlog.console.level = loud\n"
    _apply(api_client, namespace, _manifests(namespace, image="emqx/emqx:5.8.9", cores=1, replicants=0, emqx_conf=bad))
    ident = f"{namespace}/emqx-core-0"
    termination = wait_for(
        lambda: emqx_sim.container(ident)["last_termination"], 60, "the node to exit on a schema error"
    )
    tail = "\n".join(termination["log_tail"])
    assert termination["exit_code"] == 1
    assert "failed_to_check_schema" in tail and "loud" in tail and "log.console.level" in tail


def test_fresh_core_runs_alone_then_joins(api_client, namespace, emqx_sim):
    """ekka's autocluster: a new core boots as a cluster of its own and joins its peers after discovery."""
    _apply(api_client, namespace, _manifests(namespace, image="emqx/emqx:5.8.9", cores=1, replicants=0))
    (first,) = _wait_pods(api_client, namespace, 1)
    since = emqx_sim.last_seq()
    from kubernetes import client

    client.AppsV1Api(api_client).patch_namespaced_stateful_set_scale("emqx-core", namespace, {"spec": {"replicas": 2}})
    pod = f"{namespace}/emqx-core-1"

    def events() -> list[dict[str, Any]]:
        return [e for e in emqx_sim.boot_log(since) if e["pod"] == pod]

    booted = wait_for(lambda: next((e for e in events() if e["event"] == "booted"), None), 60, "emqx-core-1 to boot")
    assert booted["joining"] is True
    wait_for(lambda: any(e["event"] == "joined" for e in events()), 30, "emqx-core-1 to join")
    nodes = wait_for(lambda: len(r := _nodes_via(first.status.pod_ip).json()) == 2 and r, 30, "2 nodes after the join")
    assert {n["node_status"] for n in nodes} == {"running"}


def test_put_dashboard_bind_moves_the_listener(api_client, namespace, emqx_sim):
    """`dashboard` is not a read-only root: a new http bind restarts the dashboard listener on that port."""
    _apply(api_client, namespace, _manifests(namespace, image="emqx/emqx:5.8.9", cores=1, replicants=0))
    (pod,) = _wait_pods(api_client, namespace, 1)
    ip = pod.status.pod_ip
    response = httpx.put(
        f"http://{ip}:18083/api/v5/configs?mode=merge",
        content=b"dashboard.listeners.http.bind = 18084\n",
        headers={"content-type": "text/plain"},
        auth=AUTH,
        timeout=5,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    moved = wait_for(lambda: _get_quiet(f"http://{ip}:18084/api/v5/nodes"), 20, "the dashboard listener on port 18084")
    assert moved.status_code == 200
    assert _get_quiet(f"http://{ip}:18083/api/v5/nodes") is None


def _get_quiet(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, auth=AUTH, timeout=3, trust_env=False)
    except httpx.TransportError:
        return None


def test_listeners_come_from_the_mounted_conf_before_5_0_25(api_client, namespace, emqx_sim):
    """Before 5.0.25 listener defaults exist only in the shipped emqx.conf, which the mount replaces."""
    _apply(api_client, namespace, _manifests(namespace, image="emqx/emqx:5.0.20", cores=1, replicants=0))
    (pod,) = _wait_pods(api_client, namespace, 1)
    listeners = httpx.get(f"http://{pod.status.pod_ip}:18083/api/v5/listeners", auth=AUTH, timeout=5, trust_env=False)
    assert listeners.status_code == 200 and listeners.json() == []


def test_evacuation_survives_a_recreated_pod_on_the_same_volume(api_client, namespace, emqx_sim):
    """EE 5.7.0+ restores the evacuation from data/.evacuation after a restart (emqx_node_rebalance_evacuation)."""
    objects = _manifests(namespace, image="emqx/emqx-enterprise:5.8.9", cores=2, replicants=0, persistent=True)
    _apply(api_client, namespace, objects)
    pods = _wait_pods(api_client, namespace, 2, timeout=90)
    ip = {p.metadata.name: p.status.pod_ip for p in pods}
    node1 = f"emqx@emqx-core-1.emqx-headless.{namespace}.svc.cluster.local"
    node0 = f"emqx@emqx-core-0.emqx-headless.{namespace}.svc.cluster.local"
    wait_for(lambda: len(_nodes_via(ip["emqx-core-0"]).json()) == 2, 30, "2 cores in one cluster")
    started = httpx.post(
        f"http://{ip['emqx-core-0']}:18083/api/v5/load_rebalance/{node1}/evacuation/start",
        json={"migrate_to": [node0], "conn_evict_rate": 10},
        auth=AUTH,
        timeout=5,
        trust_env=False,
    )
    assert started.status_code == 200, started.text
    since = emqx_sim.last_seq()
    _core(api_client).delete_namespaced_pod("emqx-core-1", namespace, grace_period_seconds=0)
    wait_for(
        lambda: any(
            e["event"] == "booted" and e["pod"] == f"{namespace}/emqx-core-1" for e in emqx_sim.boot_log(since)
        ),
        90,
        "emqx-core-1 to boot again",
    )
    new_ip = wait_for(
        lambda: next((p.status.pod_ip for p in _pods(api_client, namespace) if p.metadata.name == "emqx-core-1"), None),
        60,
        "the recreated pod's IP",
    )
    check = wait_for(
        lambda: _get_quiet(f"http://{new_ip}:18083/api/v5/load_rebalance/availability_check"),
        30,
        "the availability check",
    )
    assert check.status_code == 503
    assert emqx_sim.node(f"{namespace}/emqx-core-1")["evacuation"] is not None


def test_evacuation_file_stops_a_pre_5_7_node_from_starting(api_client, namespace, emqx_sim):
    """EMQX #12871: before e5.7.0 a node finding data/.evacuation crashes emqx_node_rebalance and exits."""
    objects = _manifests(namespace, image="emqx/emqx-enterprise:5.6.1", cores=2, replicants=0, persistent=True)
    _apply(api_client, namespace, objects)
    pods = _wait_pods(api_client, namespace, 2, timeout=90)
    ip = {p.metadata.name: p.status.pod_ip for p in pods}
    node1 = f"emqx@emqx-core-1.emqx-headless.{namespace}.svc.cluster.local"
    node0 = f"emqx@emqx-core-0.emqx-headless.{namespace}.svc.cluster.local"
    wait_for(lambda: len(_nodes_via(ip["emqx-core-0"]).json()) == 2, 30, "2 cores in one cluster")
    started = httpx.post(
        f"http://{ip['emqx-core-0']}:18083/api/v5/load_rebalance/{node1}/evacuation/start",
        json={"migrate_to": [node0]},
        auth=AUTH,
        timeout=5,
        trust_env=False,
    )
    assert started.status_code == 200, started.text
    _core(api_client).delete_namespaced_pod("emqx-core-1", namespace, grace_period_seconds=0)
    termination = wait_for(
        lambda: (c := emqx_sim.container(f"{namespace}/emqx-core-1"))["last_termination"] and c["last_termination"],
        90,
        "emqx-core-1 to exit",
    )
    assert termination["exit_code"] == 1
    assert any("emqx_node_rebalance" in line for line in termination["log_tail"])


def test_replicant_degrades_when_its_cores_change_emqx_version(api_client, namespace, emqx_sim):
    """5.6+: a replicant only replicates from cores of its own `emqx` application version (mria_lb)."""
    objects = _manifests(namespace, image="emqx/emqx-enterprise:5.8.9", cores=1, replicants=1)
    _apply(api_client, namespace, objects)
    pods = _wait_pods(api_client, namespace, 2)
    replicant = next(p.metadata.name for p in pods if p.metadata.name.startswith("emqx-replicant"))
    since = emqx_sim.last_seq()
    from kubernetes import client

    client.AppsV1Api(api_client).patch_namespaced_stateful_set(
        "emqx-core",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "emqx", "image": "emqx/emqx-enterprise:5.7.2"}]}}}},
    )
    wait_for(
        lambda: any(
            e["event"] == "replicant_degraded" and e["pod"] == f"{namespace}/{replicant}"
            for e in emqx_sim.boot_log(since)
        ),
        90,
        "the replicant to lose its upstream",
    )
    assert emqx_sim.node(f"{namespace}/{replicant}")["degraded"] is True
