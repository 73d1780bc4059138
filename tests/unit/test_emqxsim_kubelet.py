"""The simulated kubelet's pure rules: back-offs, image checks, probe scheduling, pod status."""

from __future__ import annotations

import pytest

from sandbox.emqxsim import kubelet
from sandbox.emqxsim.kubelet import Backoff, PodKubelet, go_duration, parse_probe

HONEST = kubelet.TIMINGS["honest"]
FAST = kubelet.TIMINGS["fast"]


def test_go_duration_prints_like_time_duration():
    assert [go_duration(s) for s in (10, 20, 40, 80, 160, 300, 1, 2.5, 0.5, 3725)] == [
        "10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "1s", "2.5s", "500ms", "1h2m5s"]


def test_crash_backoff_doubles_from_10s_caps_at_5m_and_resets_after_10m_of_running():
    backoff = Backoff(10, 300, stable_after=600)
    seen = []
    now = 0.0
    for _ in range(7):
        backoff.next(now, now)
        seen.append(backoff.get())
        now += backoff.get()
    assert seen == [10, 20, 40, 80, 160, 300, 300]
    # A container that ran 10 minutes (exit - last restart > 600 s) starts over at 10 s.
    last_restart = now
    backoff.next(last_restart + 601, last_restart + 601)
    assert backoff.get() == 10


def test_in_backoff_since_counts_from_the_exit():
    backoff = Backoff(10, 300)
    assert not backoff.in_backoff_since(0, 1)
    backoff.next(0, 0)
    assert backoff.in_backoff_since(5, 14.9) and not backoff.in_backoff_since(5, 15)


def _pod(**container_extra):
    container = {"name": "emqx", "image": "emqx/emqx:5.7.2", **container_extra}
    return {"metadata": {"name": "emqx-core-0", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [container]}, "status": {}}


def test_first_exit_restarts_at_once_then_crash_loop_backoff_with_the_kubelets_message():
    pk = PodKubelet("u1", "ns", "emqx-core-0", HONEST)
    container = _pod()["spec"]["containers"][0]
    pk.container_started(0, 1000, container)
    pk.container_exited(1, 1001, 1, "boom")
    assert pk.crash_backoff_wait(2) is None  # first restart is immediate
    pk.container_started(2, 1002, container)
    assert pk.restart_count == 1
    pk.container_exited(3, 1003, 1, "boom")
    wait = pk.crash_backoff_wait(4)
    assert wait is not None and wait.reason == "CrashLoopBackOff"
    assert wait.message == "back-off 10s restarting failed container=emqx pod=emqx-core-0_ns(u1)"
    assert pk.next_sync == 13
    assert pk.crash_backoff_wait(13) is None


def test_status_while_crash_looping_keeps_last_state_and_phase_running():
    pk = PodKubelet("u1", "ns", "emqx-core-0", HONEST)
    pod = _pod(terminationMessagePolicy="FallbackToLogsOnError")
    pk.container_started(0, 1000, pod["spec"]["containers"][0])
    pk.container_exited(1, 1001, 1, "ERROR: failed_to_load_config")
    pk.wait(kubelet.StartDecision(False, "CrashLoopBackOff", "back-off 10s ..."))
    status = kubelet.pod_status(pk, pod)
    emqx = status["containerStatuses"][0]
    assert status["phase"] == "Running"
    assert emqx["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s ..."}}
    assert emqx["lastState"]["terminated"]["exitCode"] == 1
    assert emqx["lastState"]["terminated"]["reason"] == "Error"
    assert emqx["lastState"]["terminated"]["message"] == "ERROR: failed_to_load_config"
    assert emqx["ready"] is False and emqx["started"] is False


def test_image_pull_errors_then_backoff_with_the_previous_error():
    pk = PodKubelet("u1", "ns", "emqx-core-0", HONEST)
    image = "emqx/emqx:5.7.3"
    error = f'failed to pull image "{image}": manifest for emqx/emqx:5.7.3 not found'
    first = pk.pull(image, 0, error, None)
    assert first is not None and first.reason == "ErrImagePull"
    assert "manifest for emqx/emqx:5.7.3 not found" in first.message
    second = pk.pull(image, 1, error, None)
    assert second is not None and second.reason == "ImagePullBackOff"
    assert second.message.startswith(f'Back-off pulling image "{image}": ErrImagePull: rpc error')
    assert pk.pull(image, 10, error, None).reason == "ErrImagePull"  # type: ignore[union-attr]
    assert pk.image_backoff.get() == 20
    status = kubelet.pod_status(pk, _pod(image=image))
    assert status["phase"] == "Pending"
    assert status["conditions"][3] == {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady",
                                       "message": "containers with unready status: [emqx]"}


@pytest.mark.parametrize("image", ["emqx/emqx:5.7.2", "docker.io/emqx/emqx-enterprise:5.8.1", "emqx/emqx",
                                   "registry.local:5000/team/emqx@sha256:" + "a" * 64])
def test_valid_references(image):
    assert kubelet.reference_error(image) is None


@pytest.mark.parametrize("image, error", [
    ("emqx/emqx:5.7.2!", "invalid reference format"),
    ("emqx/EMQX:5.7.2", "invalid reference format: repository name must be lowercase"),
    ("emqx/emqx::5", "invalid reference format"),
])
def test_invalid_references(image, error):
    assert kubelet.reference_error(image) == error
    decision = PodKubelet("u", "ns", "p", HONEST).pull(image, 0, None, error)
    assert decision is not None and decision.reason == "InvalidImageName"
    assert decision.message == (
        f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": {error}')


def test_normalized_image_and_id():
    assert kubelet.normalized_image("emqx/emqx:5.7.2") == "docker.io/emqx/emqx:5.7.2"
    assert kubelet.normalized_image("busybox") == "docker.io/library/busybox:latest"
    assert kubelet.image_id("emqx/emqx:5.7.2").startswith("docker.io/emqx/emqx@sha256:")


def test_probe_defaults_and_named_ports():
    container = {"name": "emqx", "ports": [{"name": "dashboard", "containerPort": 18083}],
                 "readinessProbe": {"httpGet": {"path": "/status", "port": "dashboard"}, "initialDelaySeconds": 10,
                                    "periodSeconds": 5, "failureThreshold": 12},
                 "livenessProbe": {"tcpSocket": {"port": 18083}}}
    readiness = parse_probe("readinessProbe", container)
    assert readiness is not None
    assert (readiness.port, readiness.initial_delay, readiness.period, readiness.timeout) == (18083, 10, 5, 1)
    assert (readiness.success_threshold, readiness.failure_threshold) == (1, 12)
    liveness = parse_probe("livenessProbe", container)
    assert liveness is not None and (liveness.handler, liveness.period, liveness.failure_threshold) == ("tcp", 10, 3)
    assert parse_probe("startupProbe", container) is None


def _probe_container(**probes):
    return {"name": "emqx", "image": "emqx/emqx:5.7.2", **probes}


def test_no_readiness_probe_before_initial_delay_then_every_period():
    container = _probe_container(readinessProbe={"httpGet": {"path": "/status", "port": 18083},
                                                 "initialDelaySeconds": 10, "periodSeconds": 5})
    pk = PodKubelet("u", "ns", "p", HONEST)
    pk.container_started(100, 0, container)
    times = [t for t in range(100, 131) if pk.due_probes(t)]
    assert times == [110, 115, 120, 125, 130]


def test_fast_timing_scales_delays_by_a_tenth():
    container = _probe_container(readinessProbe={"httpGet": {"path": "/status", "port": 18083},
                                                 "initialDelaySeconds": 10, "periodSeconds": 5})
    pk = PodKubelet("u", "ns", "p", FAST)
    pk.container_started(0, 0, container)
    assert not pk.due_probes(0.5)
    assert pk.due_probes(1.0)
    assert pk.crash_backoff.initial == 1.0 and pk.crash_backoff.maximum == 30.0


def test_readiness_thresholds():
    container = _probe_container(readinessProbe={"httpGet": {"path": "/", "port": 1}, "successThreshold": 2,
                                                 "failureThreshold": 3})
    pk = PodKubelet("u", "ns", "p", HONEST)
    pk.container_started(0, 0, container)
    assert not pk.ready()
    pk.probe_result("readinessProbe", True)
    assert not pk.ready()
    pk.probe_result("readinessProbe", True)
    assert pk.ready()
    pk.probe_result("readinessProbe", False)
    pk.probe_result("readinessProbe", False)
    assert pk.ready()
    pk.probe_result("readinessProbe", False)
    assert not pk.ready()


def test_startup_probe_gates_readiness_and_liveness():
    container = _probe_container(
        startupProbe={"httpGet": {"path": "/", "port": 1}, "periodSeconds": 2, "failureThreshold": 30},
        readinessProbe={"httpGet": {"path": "/", "port": 1}, "periodSeconds": 1},
        livenessProbe={"httpGet": {"path": "/", "port": 1}, "periodSeconds": 1},
    )
    pk = PodKubelet("u", "ns", "p", HONEST)
    pk.container_started(0, 0, container)
    assert [spec.kind for spec in pk.due_probes(0)] == ["startupProbe"]
    assert not pk.started()
    assert not pk.probe_result("startupProbe", True)
    assert pk.started() and not pk.ready()
    assert sorted(spec.kind for spec in pk.due_probes(2)) == ["livenessProbe", "readinessProbe"]


def test_liveness_failures_reaching_the_threshold_kill_the_container():
    container = _probe_container(livenessProbe={"httpGet": {"path": "/", "port": 1}, "failureThreshold": 3})
    pk = PodKubelet("u", "ns", "p", HONEST)
    pk.container_started(0, 0, container)
    assert [pk.probe_result("livenessProbe", False) for _ in range(3)] == [False, False, True]
    assert not pk.due_probes(100)  # on hold until the container restarts


def test_ready_needs_containers_and_gates_but_containers_ready_does_not():
    container = _probe_container()
    pod = _pod()
    pod["spec"]["readinessGates"] = [{"conditionType": "apps.emqx.io/on-serving"}]
    pk = PodKubelet("u1", "ns", "emqx-core-0", HONEST)
    pk.container_started(0, 0, container)
    conditions = {c["type"]: c for c in kubelet.pod_status(pk, pod)["conditions"]}
    assert conditions["ContainersReady"]["status"] == "True"
    assert conditions["Ready"] == {
        "type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady",
        "message": 'corresponding condition of pod readiness gate "apps.emqx.io/on-serving" does not exist.'}
    pod["status"]["conditions"] = [{"type": "apps.emqx.io/on-serving", "status": "True"}]
    conditions = {c["type"]: c for c in kubelet.pod_status(pk, pod)["conditions"]}
    assert conditions["Ready"]["status"] == "True"


def test_status_differs_ignores_transition_times_and_empty_last_state():
    pk = PodKubelet("u1", "ns", "emqx-core-0", HONEST)
    pod = _pod()
    wanted = kubelet.with_transition_times(kubelet.pod_status(pk, pod), pod, 1000)
    pod["status"] = {k: v for k, v in wanted.items()}
    pod["status"]["containerStatuses"] = [{k: v for k, v in s.items() if v != {}} for s in wanted["containerStatuses"]]
    assert not kubelet.status_differs(kubelet.pod_status(pk, pod), pod)
    pk.container_started(0, 0, pod["spec"]["containers"][0])
    assert kubelet.status_differs(kubelet.pod_status(pk, pod), pod)


def test_timing_names():
    assert kubelet.timing_named(None).name == "honest"
    assert kubelet.timing_named("FAST").scale == 0.1
    with pytest.raises(ValueError, match="EMQX_SIM_PROBE_TIMING"):
        kubelet.timing_named("quick")


def test_a_pod_found_running_after_a_simulator_restart_restarts_its_container_counted():
    image = "emqx/emqx:5.8.9"
    pk = PodKubelet("uid", "ns", "p", HONEST)
    pk.adopt({"name": "emqx", "restartCount": 2, "image": kubelet.normalized_image(image), "imageID": "sha",
              "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}}, image)
    assert pk.pull(image, 0.0, None, None) is None, "the image is on the node already"
    pk.container_started(1.0, 1.0, {"name": "emqx", "image": image})
    assert pk.restart_count == 3
    fresh = PodKubelet("uid2", "ns", "q", HONEST)
    fresh.adopt({"name": "emqx", "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}, image)
    fresh.container_started(1.0, 1.0, {"name": "emqx", "image": image})
    assert fresh.restart_count == 0, "a container that never ran is no restart"
