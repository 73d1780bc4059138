"""The sandbox's fault hooks: restarting etcd (data kept), kube-apiserver and the EMQX simulator (every
simulated node reboots on its data), a client identity of its own, and the proxy that cuts watches."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox import cluster
from sandbox.faultproxy import TcpProxy
from tests.emqx_helpers import cr, create_emqx, emqx_api, is_ready, pods, wait_ready
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _core(api_client: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client)


@pytest.mark.parametrize("component", ["etcd", "kube-apiserver"])
def test_a_restarted_control_plane_component_comes_back_with_its_data(
    sandbox: cluster.SandboxState, api_client: Any, namespace: str, component: str
) -> None:
    core = _core(api_client)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept"}, "data": {"a": "1"}})
    before = next(c.pid for c in sandbox.components if c.name == component)
    restarted = cluster.restart_component(sandbox, component)
    assert restarted.pid != before
    saved = cluster.SandboxState.load(Path(sandbox.directory))
    assert saved is not None and {c.name: c.pid for c in saved.components}[component] == restarted.pid
    found = wait_for(lambda: core.read_namespaced_config_map("kept", namespace), 60, "the API to answer again")
    assert found.data == {"a": "1"}


def test_a_scheduler_that_exits_is_started_again_and_schedules(
    sandbox: cluster.SandboxState, api_client: Any, namespace: str
) -> None:
    """kube-scheduler exits by design on a corrupted cache (seen after an API server restart mid-bind);
    a kubelet restarts such a static pod, and so does the sandbox's supervisor."""
    import os
    import signal
    import subprocess

    comp = next(c for c in sandbox.components if c.name == "kube-scheduler")
    assert comp.supervised
    children = subprocess.run(["pgrep", "-P", str(comp.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)
    wait_for(lambda: subprocess.run(["pgrep", "-P", str(comp.pid)], capture_output=True, text=True).stdout.split()
             not in ([], children), 30, "a new kube-scheduler process")
    core = _core(api_client)
    # (403 until the namespace's default ServiceAccount exists: KCM makes it)
    wait_for(lambda: core.create_namespaced_pod(namespace, {"metadata": {"name": "after-exit"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}], "tolerations": [{"operator": "Exists"}]}}),
        60, "the pod to be created")
    wait_for(lambda: core.read_namespaced_pod("after-exit", namespace).spec.node_name, 60, "the pod to be scheduled")
    assert "starting it again" in Path(comp.log).read_text()


def test_a_restarted_simulator_reboots_every_node_on_its_data(
    sandbox: cluster.SandboxState, api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    body = cr("reboot", image="emqx/emqx-enterprise:5.8.5", cores=1, replicants=1)
    body["spec"]["coreTemplate"]["spec"]["volumeClaimTemplates"] = {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "reboot")
    core_pod = pods(api_client, namespace, "reboot", "core")[0]
    with emqx_api(api_client, namespace, "reboot", core_pod) as api:  # into cluster.hocon, on the volume
        api.put_config_hocon("log.console.level = debug\n", mode="merge")
    uids = {p.metadata.name: p.metadata.uid for p in pods(api_client, namespace, "reboot")}
    restarts = {p.metadata.name: p.status.container_statuses[0].restart_count for p in pods(api_client, namespace,
                                                                                                   "reboot")}
    time.sleep(6)  # the simulator writes the data directories every 5 s (and when it stops)

    cluster.restart_component(sandbox, "emqx-simulator")
    assert emqx_sim.healthy(), "the control API is back at the same address"

    def rebooted() -> bool:
        now = pods(api_client, namespace, "reboot")
        return (len(now) == 2 and all(is_ready(p) for p in now)
                and all(p.status.container_statuses[0].restart_count == restarts[p.metadata.name] + 1 for p in now))

    wait_for(rebooted, 120, "every node to reboot in its pod and be Ready again")
    assert {p.metadata.name: p.metadata.uid for p in pods(api_client, namespace, "reboot")} == uids, "same pods"
    booted = {str(e["pod"]) for e in emqx_sim.boot_log() if e["event"] == "booted"}
    assert {f"{namespace}/{name}" for name in uids} <= booted
    core_pod = pods(api_client, namespace, "reboot", "core")[0]
    with emqx_api(api_client, namespace, "reboot", core_pod) as api:
        live = api.get_config_hocon()
    assert "debug" in live.split("console", 1)[1][:300], "the core booted on its volume's cluster.hocon"
    wait_ready(api_client, namespace, "reboot")


def test_the_proxy_cuts_a_watch_of_its_own_client_only(
    sandbox: cluster.SandboxState, api_client: Any, namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client, config, watch

    with TcpProxy(("127.0.0.1", sandbox.api_port)) as proxy:
        kubeconfig = cluster.client_kubeconfig(sandbox, "fault-proxy-test", tmp_path / "kubeconfig",
                                               server=f"https://{proxy.address}")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        review = client.AuthenticationV1Api(api).create_self_subject_review({"apiVersion": "authentication.k8s.io/v1",
                                                                            "kind": "SelfSubjectReview"})
        assert review.status.user_info.username == "fault-proxy-test"
        core = client.CoreV1Api(api)
        ended = threading.Event()
        seen: list[str] = []

        def follow() -> None:
            try:
                for event in watch.Watch().stream(core.list_namespaced_config_map, namespace, timeout_seconds=120):
                    seen.append(event["object"].metadata.name)
            except Exception:  # noqa: BLE001, S110 - the cut surfaces as a protocol/connection error, or an end
                pass
            ended.set()

        threading.Thread(target=follow, daemon=True).start()
        admin = _core(api_client)  # straight to the API server, not through the proxy
        admin.create_namespaced_config_map(namespace, {"metadata": {"name": "before-cut"}})
        wait_for(lambda: "before-cut" in seen, 30, "the watch (through the proxy) to see an event")
        assert proxy.cut() >= 1
        assert ended.wait(10), "the watch ended when its connection was cut"
        admin.create_namespaced_config_map(namespace, {"metadata": {"name": "after-cut"}})
        time.sleep(1)
        assert "after-cut" not in seen
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "through-proxy"}})  # new connections pass
        assert proxy.accepted >= 2
