"""Container log files: CRI lines, EMQX's console format, one previous container kept."""

from __future__ import annotations

import datetime

from sandbox import cluster
from sandbox.emqxsim import podlogs, scribe
from sandbox.emqxsim.kube import port_forward_body

TS = datetime.datetime(2024, 5, 1, 10, 0, 0, 123456, datetime.UTC).timestamp()


def test_cri_lines_parse_like_cri_client():
    line = podlogs.cri_line(TS, "hello")
    stamp, stream, tag, text = line.rstrip("\n").split(" ", 3)
    assert (stream, tag, text) == ("stdout", "F", "hello")
    assert stamp.startswith("2024-05-01T10:00:00.123456") and stamp.endswith("Z")
    datetime.datetime.fromisoformat(stamp[:26] + "+00:00")
    assert podlogs.cri_line(TS, "a\nb", "stderr").count(" stderr F ") == 2


def test_emqx_text_format():
    assert podlogs.report_line(TS, "warning", "node_evacuation_started", [("opts", {"wait_takeover": 60})]) == (
        "2024-05-01T10:00:00.123456+00:00 [warning] msg: node_evacuation_started, opts: #{wait_takeover => 60}")
    assert podlogs.text_line(TS, "info", "Ekka(AutoCluster): joining with 'emqx@a'") == (
        "2024-05-01T10:00:00.123456+00:00 [info] Ekka(AutoCluster): joining with 'emqx@a'")


def test_console_level_filters_but_user_lines_always_show(tmp_path):
    logs = podlogs.ContainerLogs(tmp_path, "ns", "emqx-core-0", "u1")
    logs.start(0)
    logs.write([podlogs.slog("info", "hidden"), podlogs.slog("warning", "shown"), podlogs.ulog("always")], TS)
    text = logs.path(0).read_text()
    assert "hidden" not in text and "msg: shown" in text and " stdout F always\n" in text
    assert logs.directory == tmp_path / "ns_emqx-core-0_u1" / "emqx"


def test_one_previous_file_is_kept_and_termination_message_is_the_tail(tmp_path):
    logs = podlogs.ContainerLogs(tmp_path, "ns", "p", "u")
    for restart in range(3):
        logs.start(restart)
        logs.write([podlogs.ulog(f"container {restart}")], TS)
    assert sorted(p.name for p in logs.directory.iterdir()) == ["1.log", "2.log"]
    assert logs.previous == logs.path(1)
    logs.write([podlogs.ulog(f"line {i}") for i in range(100)], TS)
    message = logs.tail_message()
    assert message.splitlines()[-1] == "line 99" and len(message.splitlines()) == 80
    assert len(podlogs.termination_message("x y z " + "a" * 5000).encode()) == 2048


def test_boot_and_evacuation_lines():
    config = {"listeners": {"tcp": {"default": {"bind": "0.0.0.0:1883"}}, "ssl": {"default": {"enable": False}}},
              "log": {"console": {"level": "warning"}}}
    lines = scribe.boot_lines("Enterprise", "5.7.2", config, 18083, ["emqx@core-0"], [])
    texts = [line.render(TS) for line in lines if line.level is None]
    assert texts == ["Listener tcp:default on 0.0.0.0:1883 started.", "Listener http:dashboard on :18083 started.",
                     "EMQX Enterprise 5.7.2 is running now!"]
    assert scribe.console_level(config) == "warning"
    before = scribe.NodeLook("disabled", "a")
    after = scribe.NodeLook("waiting_health_check", "a")
    assert [line.text for line in scribe.diff_lines(before, after)] == ["node_evacuation_started"]
    assert scribe.failure_lines("bad")[0].stream == "stderr"


def test_port_forward_targets_the_pods_own_ip():
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "status": {"podIP": "127.40.0.5"},
           "spec": {"containers": [{"name": "emqx", "ports": [{"containerPort": 4370}]}]}}
    body = port_forward_body(pod)
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u"
    forwards = {f["ports"][0]: f["target"] for f in body["spec"]["forwards"]}
    assert forwards[18083] == {"address": "127.40.0.5", "port": 18083}
    assert 4370 in forwards and 1883 in forwards


def test_kwok_stages_keep_emqx_pods_out_of_pod_ready():
    import yaml

    defaults = (
        "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata: {name: pod-ready}\n"
        "spec: {resourceRef: {apiGroup: v1, kind: Pod}, selector: {matchExpressions: []}, next: {}}\n"
    )
    stages = list(yaml.safe_load_all(cluster.kwok_stages(defaults)))
    ready = next(s for s in stages if s["metadata"]["name"] == "pod-ready")
    expressions = ready["spec"]["selector"]["matchExpressions"]
    assert {"key": cluster.EMQX_INSTANCE_KEY, "operator": "DoesNotExist"} in expressions
    emqx = next(s for s in stages if s["metadata"]["name"] == "emqx-pod-sandbox")
    assert "phase: Pending" in emqx["spec"]["next"]["statusTemplate"]
    assert "Running" not in emqx["spec"]["next"]["statusTemplate"]
