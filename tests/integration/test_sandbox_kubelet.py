"""Simulated EMQX pods as Kubernetes shows them: the simulator acts as their kubelet (container states,
back-offs, probes, phase and conditions) and kwok serves `kubectl logs` and `kubectl port-forward`
through the real API server."""

from __future__ import annotations

import copy
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest

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


def _pod(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    response = _core(api_client).read_namespaced_pod(name, namespace, _preload_content=False)
    import json

    data: dict[str, Any] = json.loads(response.data)
    return data


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in pod["status"].get("conditions") or [] if c["type"] == kind), {})


def _emqx_status(pod: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in pod["status"].get("containerStatuses") or [] if c["name"] == "emqx"), {})


def _waiting(pod: dict[str, Any]) -> dict[str, Any]:
    return (_emqx_status(pod).get("state") or {}).get("waiting") or {}


def _ready(pod: dict[str, Any]) -> bool:
    return _condition(pod, "Ready").get("status") == "True"


def _one_pod_manifests(namespace: str, name: str = "emqx-core-0", **changes: Any) -> list[dict[str, Any]]:
    """A single bare core pod plus what it mounts (ConfigMap, Secrets, headless Service)."""
    objects = cluster_manifests(namespace, image=changes.pop("image", "emqx/emqx:5.7.2"), cores=1, replicants=0)
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    template = copy.deepcopy(sts["spec"]["template"])
    others = [o for o in objects if o["kind"] not in ("StatefulSet", "Deployment")]
    spec = template["spec"]
    spec.update(changes.pop("pod_spec", {}))
    spec["containers"][0].update(changes.pop("container", {}))
    spec.setdefault("hostname", name)
    spec.setdefault("subdomain", sts["spec"]["serviceName"])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": template["metadata"]["labels"]},
           "spec": spec}
    assert not changes, changes
    return [*others, pod]


def _wait_pod(api_client: Any, namespace: str, name: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
    return wait_for(lambda: (p := _pod(api_client, namespace, name)) and check(p) and p, timeout, f"{name}: {what}")


def _watch_pod(api_client: Any, namespace: str, name: str, check: Any, timeout: float, what: str) -> dict[str, Any]:
    """Like _wait_pod, but sees every status the pod had, not only those a poll happens to catch: for
    short-lived states (ErrImagePull lasts until the next sync, about a second)."""
    from kubernetes import watch

    listed = _core(api_client).list_namespaced_pod(namespace, field_selector=f"metadata.name={name}",
                                                   _preload_content=False)
    import json
    answer = json.loads(listed.data)
    for item in answer["items"]:
        if check(item):
            return dict(item)
    version = answer["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        stream = watch.Watch().stream(_core(api_client).list_namespaced_pod, namespace,
                                      field_selector=f"metadata.name={name}", resource_version=version,
                                      timeout_seconds=max(1, int(left)))
        for event in stream:
            item = event["raw_object"]
            version = item["metadata"]["resourceVersion"]
            if event["type"] != "DELETED" and check(item):
                return dict(item)
    raise AssertionError(f"timed out after {timeout:.0f}s watching {name}: {what}")


# ---------------------------------------------------------------------------------------------- logs, port-forward


def test_kubectl_logs_follow_previous_and_port_forward(api_client, namespace, emqx_sim, kubectl, sandbox):
    _apply(api_client, namespace, _one_pod_manifests(namespace))
    pod = _wait_pod(api_client, namespace, "emqx-core-0", _ready, 60, "Ready")
    uid = pod["metadata"]["uid"]

    logs = wait_for(lambda: "is running now!" in (out := kubectl("logs", "-n", namespace, "emqx-core-0").stdout)
                    and out, 30, "the boot lines in kubectl logs")
    assert "Listener http:dashboard on :18083 started." in logs
    assert "EMQX 5.7.2 is running now!" in logs
    log_file = Path(sandbox.directory) / "podlogs" / f"{namespace}_emqx-core-0_{uid}" / "emqx" / "0.log"
    first = log_file.read_text().splitlines()[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z stdout F ", first), first

    # -f keeps streaming: a config change at debug level shows up while following.
    follow = subprocess.Popen(
        [str(Path(sandbox.bin_dir) / "kubectl"), f"--kubeconfig={sandbox.kubeconfig}", "logs", "-f", "-n", namespace,
         "emqx-core-0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert follow.stdout is not None
        wait_for(lambda: "is running now!" in follow.stdout.readline(), 30, "-f to print the existing lines")
        ip = pod["status"]["podIP"]
        put = httpx.put(f"http://{ip}:18083/api/v5/configs", auth=AUTH, content="log.console.level = debug",
                        timeout=10, trust_env=False)
        assert put.status_code == 200, put.text
        wait_for(lambda: "msg: cluster_rpc_apply_ok" in follow.stdout.readline(), 30, "the followed config line")
    finally:
        follow.kill()
        follow.wait(10)

    # A crashed container restarts; --previous shows the first container's log, the new one its own.
    emqx_sim.crash(f"{namespace}/emqx-core-0", restart_after=0)
    _wait_pod(api_client, namespace, "emqx-core-0", lambda p: _emqx_status(p).get("restartCount") == 1 and _ready(p),
              60, "restarted and Ready")
    previous = wait_for(lambda: "cluster_rpc_apply_ok" in (
        out := kubectl("logs", "--previous", "-n", namespace, "emqx-core-0", check=False).stdout) and out,
        30, "kubectl logs --previous")
    assert "EMQX 5.7.2 is running now!" in previous
    current = wait_for(lambda: "is running now!" in (out := kubectl("logs", "-n", namespace, "emqx-core-0").stdout)
                       and out, 30, "the new container's boot lines")
    assert "cluster_rpc_apply_ok" not in current

    forward = subprocess.Popen(
        [str(Path(sandbox.bin_dir) / "kubectl"), f"--kubeconfig={sandbox.kubeconfig}", "port-forward", "-n", namespace,
         "pod/emqx-core-0", ":18083"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert forward.stdout is not None
        line = wait_for(lambda: "Forwarding from 127.0.0.1:" in (text := forward.stdout.readline()) and text, 30,
                        "kubectl port-forward to listen")
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as response:
            body = response.read().decode()
        assert response.status == 200
        assert body == f"Node emqx@emqx-core-0.emqx-headless.{namespace}.svc.cluster.local is started\nemqx is running"
    finally:
        forward.kill()
        forward.wait(10)


# ---------------------------------------------------------------------------------------------- images and config


def test_unknown_tag_shows_err_image_pull_then_image_pull_back_off(api_client, namespace, emqx_sim, kubectl):
    created = time.monotonic()
    _apply(api_client, namespace, _one_pod_manifests(namespace, image="emqx/emqx:5.7.3"))
    pod = _watch_pod(api_client, namespace, "emqx-core-0", lambda p: _waiting(p).get("reason") == "ErrImagePull", 60,
                     "ErrImagePull")
    print(f"ErrImagePull visible {time.monotonic() - created:.1f}s after the pod was created")
    assert "manifest for emqx/emqx:5.7.3 not found" in _waiting(pod)["message"]
    assert pod["status"]["phase"] == "Pending" and pod["status"]["podIP"]
    assert _condition(pod, "Ready")["reason"] == "ContainersNotReady"
    assert _condition(pod, "ContainersReady")["status"] == "False"
    pod = _wait_pod(api_client, namespace, "emqx-core-0", lambda p: _waiting(p).get("reason") == "ImagePullBackOff",
                    30, "ImagePullBackOff")
    message = _waiting(pod)["message"]
    assert message.startswith('Back-off pulling image "emqx/emqx:5.7.3": ErrImagePull: ')
    assert "manifest for emqx/emqx:5.7.3 not found" in message
    assert _emqx_status(pod)["restartCount"] == 0 and "containerID" not in _emqx_status(pod)
    assert emqx_sim.node(f"{namespace}/emqx-core-0")["state"] == "pending"
    # No container ever ran: there is no log to show (a kubelet says the container is waiting to start).
    assert kubectl("logs", "-n", namespace, "emqx-core-0", check=False).returncode != 0


def test_malformed_image_is_invalid_image_name(api_client, namespace):
    _apply(api_client, namespace, _one_pod_manifests(namespace, image="emqx/emqx:5.7.2!"))
    pod = _wait_pod(api_client, namespace, "emqx-core-0", lambda p: _waiting(p).get("reason") == "InvalidImageName",
                    30, "InvalidImageName")
    assert _waiting(pod)["message"] == ('Failed to apply default image tag "emqx/emqx:5.7.2!": couldn\'t parse image '
                                        'name "emqx/emqx:5.7.2!": invalid reference format')


def test_missing_secret_key_is_create_container_config_error(api_client, namespace):
    env = {"name": "EMQX_EXTRA", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}
    objects = _one_pod_manifests(namespace)
    objects[-1]["spec"]["containers"][0]["env"].append(env)
    _apply(api_client, namespace, objects)
    pod = _wait_pod(api_client, namespace, "emqx-core-0",
                    lambda p: _waiting(p).get("reason") == "CreateContainerConfigError", 30, "a config error")
    assert _waiting(pod)["message"] == 'secret "nope" not found'
    assert pod["status"]["phase"] == "Pending"


# ---------------------------------------------------------------------------------------------- crashes


def test_boot_failure_crash_loops_with_the_error_in_last_state(api_client, namespace, honest_kubelet):
    # EMQX 5.8 Community refuses to run as a replicant: the container exits at every start.
    objects = _one_pod_manifests(namespace, image="emqx/emqx:5.8.9")
    env = objects[-1]["spec"]["containers"][0]["env"]
    for item in env:
        if item["name"] == "EMQX_NODE__ROLE":
            item["value"] = "replicant"
    _apply(api_client, namespace, objects)
    pod = _wait_pod(api_client, namespace, "emqx-core-0",
                    lambda p: _emqx_status(p).get("restartCount", 0) >= 2
                    and _waiting(p).get("reason") == "CrashLoopBackOff", 90, "CrashLoopBackOff after 2 restarts")
    status = _emqx_status(pod)
    uid = pod["metadata"]["uid"]
    assert _waiting(pod)["message"] in (
        f"back-off {s} restarting failed container=emqx pod=emqx-core-0_{namespace}({uid})" for s in ("10s", "20s"))
    terminated = status["lastState"]["terminated"]
    # bin/emqx exits 127 when its config stage (multi_get) refuses the role (sandbox/emqxsim/nodespec.py).
    assert terminated["exitCode"] == 127 and terminated["reason"] == "Error"
    assert "only allowed in Enterprise edition since 5.8.0" in terminated["message"]
    assert terminated["startedAt"] <= terminated["finishedAt"]
    assert pod["status"]["phase"] == "Running"
    assert not status["ready"] and not status["started"]


def test_liveness_failures_restart_the_container(api_client, namespace, emqx_sim):
    liveness = {"httpGet": {"path": "/status", "port": "dashboard"}, "periodSeconds": 10, "failureThreshold": 3}
    _apply(api_client, namespace, _one_pod_manifests(namespace, container={"livenessProbe": liveness}))
    _wait_pod(api_client, namespace, "emqx-core-0", _ready, 60, "Ready")
    emqx_sim.fail_api(f"{namespace}/emqx-core-0", status=503, path_prefix="/status")
    pod = _wait_pod(api_client, namespace, "emqx-core-0", lambda p: _emqx_status(p).get("restartCount", 0) >= 1, 60,
                    "a restart after liveness failures")
    assert _emqx_status(pod)["lastState"]["terminated"]["exitCode"] == 137
    emqx_sim.clear_faults()
    _wait_pod(api_client, namespace, "emqx-core-0", _ready, 60, "Ready again")


# ---------------------------------------------------------------------------------------------- readiness


def test_containers_ready_while_a_readiness_gate_is_closed(api_client, namespace):
    gate = "example.com/let-in"
    _apply(api_client, namespace, _one_pod_manifests(namespace, pod_spec={"readinessGates": [{"conditionType": gate}]}))
    pod = _wait_pod(api_client, namespace, "emqx-core-0",
                    lambda p: _condition(p, "ContainersReady").get("status") == "True", 60, "ContainersReady")
    ready = _condition(pod, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    assert ready["message"] == f'corresponding condition of pod readiness gate "{gate}" does not exist.'
    _core(api_client).patch_namespaced_pod_status(
        "emqx-core-0", namespace, {"status": {"conditions": [{"type": gate, "status": "True"}]}})
    _wait_pod(api_client, namespace, "emqx-core-0", _ready, 30, "Ready once the gate is open")


def test_readiness_waits_for_initial_delay_in_honest_mode(api_client, namespace, honest_kubelet):
    _apply(api_client, namespace, _one_pod_manifests(namespace))
    pod = _wait_pod(api_client, namespace, "emqx-core-0", _ready, 60, "Ready")
    started = _emqx_status(pod)["state"]["running"]["startedAt"]
    ready_at = _condition(pod, "Ready")["lastTransitionTime"]
    from datetime import datetime

    delay = (datetime.fromisoformat(ready_at) - datetime.fromisoformat(started)).total_seconds()
    print(f"Ready {delay:.0f}s after the container started (initialDelaySeconds 10)")
    assert delay >= 10
    assert _emqx_status(pod)["ready"] and _emqx_status(pod)["started"]
    assert _emqx_status(pod)["containerID"].startswith("containerd://")
    assert _emqx_status(pod)["imageID"].startswith("docker.io/emqx/emqx@sha256:")


# ---------------------------------------------------------------------------------------------- scheduling


@pytest.mark.parametrize("pod_spec", [
    {"nodeSelector": {"sandbox.local/no-such-node": "true"}},
    {"containers": None},  # replaced below: requests larger than every fake node
])
def test_unschedulable_pods_stay_pending_and_never_run(api_client, namespace, emqx_sim, pod_spec):
    objects = _one_pod_manifests(namespace)
    spec = objects[-1]["spec"]
    if "nodeSelector" in pod_spec:
        spec.update(pod_spec)
    else:
        spec["containers"][0]["resources"] = {"requests": {"cpu": "64"}}
    _apply(api_client, namespace, objects)
    pod = _wait_pod(api_client, namespace, "emqx-core-0",
                    lambda p: _condition(p, "PodScheduled").get("reason") == "Unschedulable", 60, "Unschedulable")
    assert _condition(pod, "PodScheduled")["status"] == "False"
    assert pod["status"]["phase"] == "Pending"
    assert not pod["status"].get("podIP") and not pod["status"].get("containerStatuses")
    assert f"{namespace}/emqx-core-0" not in {n["pod"] for n in emqx_sim.nodes()}


def test_missing_volume_source_keeps_the_container_creating(api_client, namespace, emqx_sim):
    objects = _one_pod_manifests(namespace)
    objects[-1]["spec"]["volumes"].append({"name": "extra", "configMap": {"name": "nope"}})
    objects[-1]["spec"]["containers"][0]["volumeMounts"].append({"name": "extra", "mountPath": "/extra"})
    _apply(api_client, namespace, objects)
    pod = _wait_pod(api_client, namespace, "emqx-core-0", lambda p: _waiting(p).get("reason") == "ContainerCreating"
                    and p["status"].get("phase") == "Pending" and _emqx_status(p).get("image", "").startswith(
                        "docker.io/"), 30, "ContainerCreating from the simulated kubelet")
    assert emqx_sim.node(f"{namespace}/emqx-core-0")["state"] == "pending"
    from kubernetes import client

    client.CoreV1Api(api_client).create_namespaced_config_map(namespace, {"metadata": {"name": "nope"}, "data": {}})
    _wait_pod(api_client, namespace, "emqx-core-0", _ready, 60, "Ready once the ConfigMap exists")
    assert pod["status"]["podIP"]
