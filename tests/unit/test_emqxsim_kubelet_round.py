"""The simulated kubelet's round (kube.Kubelet) against a World whose nodes listen, with the API server and
pod watch stood in for by StatusPatchApplier: a round recomputes a pod's status only when the pod or the
kubelet's state of it changed, and every change still reaches the pod status."""

from __future__ import annotations

import copy
import time

import pytest

from sandbox.emqxsim import kubelet
from sandbox.emqxsim.kube import Kubelet
from sandbox.emqxsim.testing import Harness, StatusPatchApplier, emqx_pod

CORE0 = "ns/emqx-core-0"
FAST = kubelet.TIMINGS["fast"]


@pytest.fixture
def rig(tmp_path):
    harness = Harness(listen=True)
    core = StatusPatchApplier(harness.world)
    kl = Kubelet(None, core, harness.world, harness.source, FAST, tmp_path)
    kl.kwok = None
    try:
        yield harness, core, kl
    finally:
        kl.stop()
        harness.close()


def _pod() -> dict:
    pod = emqx_pod("emqx-core-0")
    pod["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/status", "port": "dashboard"},
                                                      "periodSeconds": 1}
    pod["status"] = {"phase": "Pending", "podIP": pod["status"]["podIP"]}
    return pod


def _ready(core: StatusPatchApplier) -> str | None:
    if not core.patches:
        return None
    return next(c["status"] for c in core.patches[-1][2]["conditions"] if c["type"] == "Ready")


def _drive(harness: Harness, kl: Kubelet, until, timeout: float = 20.0) -> None:
    """Kubelet rounds and boot rounds, as the simulator's two loops run them, until `until()`."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        kl._round()
        harness.boot()
        time.sleep(0.02)


def test_a_settled_pod_costs_no_status_computation_and_changes_still_reach_its_status(rig, monkeypatch):
    harness, core, kl = rig
    harness.world.observe_pod(_pod())
    _drive(harness, kl, lambda: _ready(core) == "True")
    kl._round()  # judges the pod the Ready patch made
    computed = []
    pod_status = kubelet.pod_status
    monkeypatch.setattr(kubelet, "pod_status", lambda pk, pod: computed.append(pod) or pod_status(pk, pod))
    patches = len(core.patches)
    for _ in range(10):  # a second: ten readiness probes, all successful
        kl._round()
        time.sleep(0.1)
    assert computed == [] and len(core.patches) == patches
    # the node crashes: the container exits, the readiness probe is gone with it
    harness.world.stop_node(CORE0, crash=True)
    _drive(harness, kl, lambda: _ready(core) == "False")
    state = core.patches[-1][2]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 1
    assert computed


def test_a_changed_pod_is_judged_again(rig):
    harness, core, kl = rig
    harness.world.observe_pod(_pod())
    _drive(harness, kl, lambda: _ready(core) == "True")
    record = harness.world.find_record(CORE0)
    gated = copy.deepcopy(record.pod)
    gated["spec"]["readinessGates"] = [{"conditionType": "example.com/gate"}]
    harness.world.observe_pod(gated)
    _drive(harness, kl, lambda: _ready(core) == "False")
    ready = next(c for c in core.patches[-1][2]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ReadinessGatesNotReady"
