"""How long a simulated node takes to boot: nothing answers for `boot_seconds` after its container
starts (bin/emqx's share, then the applications'), on every start; the kubelet's timing scales it."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox.emqxsim import kubelet
from sandbox.emqxsim.__main__ import BOOT_SECONDS_ENV, build_parser
from sandbox.emqxsim.kube import Kubelet
from sandbox.emqxsim.testing import TEST_EMQX_CONF, Harness, emqx_objects, emqx_pod
from sandbox.emqxsim.world import BOOT_PREPARE_SHARE

CORE0 = "ns/emqx-core-0"
REPLICANT = "ns/emqx-replicant-a"


class ManualClock:
    """The World's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _harness(boot_seconds: float = 5.0, listen: bool = False, **options) -> tuple[Harness, ManualClock]:
    harness = Harness(boot_seconds=boot_seconds, listen=listen, **options)
    clock = ManualClock()
    harness.world.monotonic = clock
    return harness, clock


def _at(harness: Harness, clock: ManualClock, seconds: float, start: float = 1000.0) -> None:
    """Move to `seconds` after `start` and run a boot round."""
    clock.now = start + seconds
    harness.boot()


def _events(harness: Harness, pod: str = CORE0) -> list[str]:
    return [event["event"] for event in harness.world.events if event["pod"] == pod]


def _answers(pod: dict) -> int | None:
    """GET /status on the node's dashboard port: the status code, or None when the port refuses."""
    try:
        return httpx.get(f"http://{pod['status']['podIP']}:18083/status", timeout=2).status_code
    except httpx.ConnectError:
        return None


def test_nothing_answers_until_boot_seconds_after_the_container_started():
    harness, clock = _harness(listen=True)
    with harness:
        pod = emqx_pod("emqx-core-0")
        harness.add(pod)
        record = harness.record(CORE0)
        assert (record.state, record.node) == ("starting", None)
        assert _answers(pod) is None  # connection refused, as from a port nobody listens on
        assert harness.world.container_view(CORE0)["phase"] == "running"  # the container runs meanwhile
        _at(harness, clock, 5.0 * BOOT_PREPARE_SHARE)  # bin/emqx done: the applications start now
        assert record.state == "starting" and record.boot_spec is not None and _answers(pod) is None
        _at(harness, clock, 4.99)
        assert record.state == "starting" and _answers(pod) is None
        _at(harness, clock, 5.0)
        assert record.state == "running" and _answers(pod) == 200
        assert json.loads(harness.call(CORE0, "GET", "/api/v5/nodes").body)[0]["node_status"] == "running"
        assert _events(harness) == ["booting", "booted"]
        assert harness.world.events[0]["seconds"] == 5.0


def test_a_restarted_node_boots_again_with_the_same_delay():
    harness, clock = _harness(listen=True)
    with harness:
        pod = emqx_pod("emqx-core-0")
        harness.add(pod)
        _at(harness, clock, 2.5)
        _at(harness, clock, 5.0)
        assert _answers(pod) == 200
        harness.world.stop_node(CORE0, crash=True, restart_after=1.0)
        assert _answers(pod) is None
        _at(harness, clock, 6.0)  # the kubelet starts a new container: it boots from scratch
        record = harness.record(CORE0)
        assert record.state == "starting" and record.container_run == 2 and _answers(pod) is None
        _at(harness, clock, 8.5)
        _at(harness, clock, 10.99)
        assert record.state == "starting" and _answers(pod) is None
        _at(harness, clock, 11.0)
        assert record.state == "running" and _answers(pod) == 200
        assert _events(harness) == ["booting", "booted", "crashed", "booting", "booted"]


def test_a_node_killed_while_booting_never_reports_booted():
    harness, clock = _harness()
    with harness:
        harness.add(emqx_pod("emqx-core-0"))
        _at(harness, clock, 3.0)  # bin/emqx done, the applications are starting
        harness.world.stop_node(CORE0, crash=True)
        _at(harness, clock, 60.0)
        assert harness.state(CORE0) == "crashed"
        assert _events(harness) == ["booting", "boot_aborted"]
        assert harness.world.events[-1]["stage"] == "starting"
        # a boot stage already running when the container is killed does not bring the node up either
        harness.world.start_node(CORE0)
        _at(harness, clock, 61.0)
        _at(harness, clock, 63.5)
        clock.now = 1066.0
        (due,) = harness.world.due_records()
        harness.world.stop_node(CORE0)
        harness.world._boot(due, harness.source)
        due.booting = False
        assert harness.state(CORE0) == "stopped" and due.node is None
        assert "booted" not in _events(harness)


def test_bin_emqx_refuses_a_config_after_its_share_of_the_boot_and_every_restart_boots_again():
    source = emqx_objects(emqx_conf=TEST_EMQX_CONF + "mqtt.max_packet_size = 300MB\n")
    harness, clock = _harness(source=source)
    with harness:
        harness.add(emqx_pod("emqx-core-0"))
        _at(harness, clock, 2.49)
        assert harness.state(CORE0) == "starting"
        _at(harness, clock, 2.5)
        record = harness.record(CORE0)
        assert record.state == "failed" and record.termination.exit_code == 1
        _at(harness, clock, 2.5)  # restarted (at once without a kubelet): booting again
        assert record.state == "starting" and record.restart_count == 1
        _at(harness, clock, 5.0)
        assert record.state == "failed" and record.restart_count == 2
        assert _events(harness) == ["booting", "boot_failed", "booting", "boot_failed"]


def test_a_replicant_waits_for_a_core_in_emqx_conf_then_starts_its_applications():
    harness, clock = _harness(boot_seconds=4.0)
    with harness:
        image = "emqx/emqx:5.7.2"
        harness.add(emqx_pod("emqx-core-0", image=image), emqx_pod("emqx-replicant-a", role="replicant", image=image))
        _at(harness, clock, 2.0)
        assert harness.state(REPLICANT) == "waiting" and harness.state(CORE0) == "starting"
        _at(harness, clock, 4.0)
        assert harness.state(CORE0) == "running"
        _at(harness, clock, 4.0)  # the retry finds the core: emqx_conf goes on, the other apps follow
        assert harness.state(REPLICANT) == "starting"
        _at(harness, clock, 5.99)
        assert harness.state(REPLICANT) == "starting"
        _at(harness, clock, 6.0)
        assert harness.state(REPLICANT) == "running"
        assert _events(harness, REPLICANT) == ["booting", "boot_waiting", "booted"]


def test_a_never_booting_image_hangs_after_bin_emqx_and_boots_the_rest_once_allowed():
    harness, clock = _harness()
    with harness:
        harness.world.never_boot_images.add("emqx/emqx:5.8.9")
        harness.add(emqx_pod("emqx-core-0"))
        _at(harness, clock, 2.5)
        assert harness.state(CORE0) == "hung"
        harness.world.never_boot_images.clear()
        _at(harness, clock, 10.0)
        assert harness.state(CORE0) == "starting"
        _at(harness, clock, 12.5)
        assert harness.state(CORE0) == "running"


def test_zero_boot_seconds_boots_in_the_round_the_container_starts():
    harness, _ = _harness(boot_seconds=0.0)
    with harness:
        harness.add(emqx_pod("emqx-core-0"))
        assert harness.state(CORE0) == "running"
        assert _events(harness) == ["booted"]


@pytest.mark.parametrize(("timing", "expected"), [("honest", 5.0), ("fast", 0.5)])
def test_the_kubelets_timing_scales_the_boot(timing, expected):
    harness, clock = _harness()
    with harness:
        sim_kubelet = Kubelet(None, None, harness.world, None, kubelet.timing_named(timing), None)
        pod = emqx_pod("emqx-core-0")
        harness.world.observe_pod(pod)
        uid = pod["metadata"]["uid"]
        pk = sim_kubelet.pods[uid] = kubelet.PodKubelet(uid, "ns", "emqx-core-0", sim_kubelet.timing)
        pk.start_pending = True  # the kubelet decided to start the container
        harness.boot()
        record = harness.record(CORE0)
        assert pk.running is not None and record.state == "starting"
        assert record.boot_seconds == pytest.approx(expected)
        _at(harness, clock, expected - 0.01)
        assert record.state == "starting"
        _at(harness, clock, expected)
        assert record.state == "running"


def test_boot_seconds_option_and_environment(monkeypatch):
    monkeypatch.delenv(BOOT_SECONDS_ENV, raising=False)
    assert build_parser().parse_args(["--kubeconfig", "k"]).boot_seconds == 5.0
    assert build_parser().parse_args(["--kubeconfig", "k", "--boot-seconds", "0.5"]).boot_seconds == 0.5
    monkeypatch.setenv(BOOT_SECONDS_ENV, "2")
    assert build_parser().parse_args(["--kubeconfig", "k"]).boot_seconds == 2.0
    assert build_parser().parse_args(["--kubeconfig", "k", "--boot-seconds", "0"]).boot_seconds == 0.0
    for bad in ("-1", "soon", "nan", "inf"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--kubeconfig", "k", "--boot-seconds", bad])
