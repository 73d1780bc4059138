"""render.py: durations, tables, the status block (snapshot), structured output, colours."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from kubectl_emqx.view import render, status_model
from tests.unit.cli_helpers import condition, emqx, event

NOW = datetime(2026, 1, 1, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (61, "1m1s"),
        (725, "12m5s"),
        (3600, "1h"),
        (11_520, "3h12m"),
        (11_521, "3h12m"),
        (86_400 * 2 + 3600 * 4 + 5, "2d4h"),
        (86_400 * 400, "400d"),
    ],
)
def test_format_duration(seconds: int | None, text: str) -> None:
    assert render.format_duration(seconds) == text


@pytest.mark.parametrize(
    ("node", "short"),
    [
        ("emqx@demo-core-0.demo-headless.default.svc.cluster.local", "emqx@demo-core-0"),
        ("emqx@10.0.0.5", "emqx@10.0.0.5"),
        ("emqx@fd00::5", "emqx@fd00::5"),
        ("nohost", "nohost"),
    ],
)
def test_short_node_name(node: str, short: str) -> None:
    assert render.short_node_name(node) == short


def test_status_text_snapshot() -> None:
    body = emqx(replicants=1)
    body["metadata"]["generation"] = 2
    body["status"]["phase"] = "Upgrading"
    body["status"]["message"] = "core 1 of 3"
    body["status"]["currentImage"] = "emqx/emqx:5.7.1"
    body["status"]["targetImage"] = "emqx/emqx:5.7.2"
    body["status"]["emqxNodes"][2].update(node_status="stopped", uptime=None, connections=None)
    body["status"]["emqxNodes"][2].pop("podName")
    body["status"]["conditions"] = [
        condition("Ready", "False", "Upgrading"),
        condition("Progressing", "True", "Rolling"),
    ]
    events = [
        event("Upgrading", "replacing demo-core-2", when="2026-01-01T03:11:00Z"),
        event("NodeDown", "demo-core-2 stopped", type_="Warning", when="2026-01-01T03:11:30Z", count=2),
    ]
    status = status_model.cluster_status(body, events, ["pods: forbidden"])
    assert render.status_text(status, render.Style(), now=NOW) == (
        "Name:       default/demo\n"
        "Image:      emqx/emqx:5.7.1 -> emqx/emqx:5.7.2\n"
        "Phase:      Upgrading (core 1 of 3)\n"
        "Cores:      3/3 ready\n"
        "Replicants: 1/1 ready\n"
        "Conditions: Ready=False (Upgrading), Progressing=True (Rolling)\n"
        "Generation: 2 (operator has seen 1)\n"
        "\n"
        "Nodes\n"
        "NODE                 ROLE       STATUS    VERSION    OTP       UPTIME    CONNECTIONS\n"
        "demo-core-0          core       running   5.7.2      26.2.5-3  3h12m     0\n"
        "demo-core-1          core       running   5.7.2      26.2.5-3  3h12m     10\n"
        "emqx@demo-core-2     core       stopped   5.7.2      26.2.5-3  -         -\n"
        "demo-replicant-abc0  replicant  running   5.7.2      26.2.5-3  3h12m     0\n"
        "\n"
        "Events\n"
        "LAST SEEN    TYPE     REASON     MESSAGE\n"
        "1m           Normal   Upgrading  replacing demo-core-2\n"
        "30s          Warning  NodeDown   demo-core-2 stopped (x2)\n"
        "\n"
        "Errors (parts of the status could not be read)\n"
        "- pods: forbidden\n"
    )


def test_list_text_snapshot() -> None:
    rows = [status_model.summarize(emqx("a")), status_model.summarize(emqx("b", replicants=0, ready=False))]
    assert render.list_text(rows, render.Style(), now=NOW) == (
        "NAME    NAMESPACE    IMAGE            CORES    REPLICANTS    STATUS    AGE\n"
        "a       default      emqx/emqx:5.7.2  3/3      3/3           Ready     3h12m\n"
        "b       default      emqx/emqx:5.7.2  0/3      0/0           Pending   3h12m\n"
    )
    assert render.list_text(rows, render.Style(), no_headers=True, now=NOW).splitlines()[0].startswith("a ")


def test_list_text_with_colour() -> None:
    rows = [status_model.summarize(emqx("a", ready=False))]
    text = render.list_text(rows, render.Style(color=True), now=NOW)
    assert "\x1b[31m0/3\x1b[0m" in text  # not all cores ready: red
    assert "\x1b[33mPending\x1b[0m" in text
    # tabulate aligns on the visible width, so the colour codes do not shift the columns
    header, row = text.splitlines()
    visible = re.sub(r"\x1b\[\d+m", "", row)
    assert header.index("STATUS") == visible.index("Pending")


def test_structured_json_and_yaml_agree() -> None:
    status = status_model.cluster_status(emqx(), [event("A", "b")])
    as_json = json.loads(render.structured(status, "json"))
    assert as_json == yaml.safe_load(render.structured(status, "yaml"))
    assert as_json["nodes"][0]["uptimeSeconds"] == 11_520
    assert as_json["events"] == [
        {"type": "Normal", "reason": "A", "message": "b", "count": 1, "lastSeen": "2026-01-01T00:00:00Z"}
    ]


def test_use_color() -> None:
    assert render.use_color("always", isatty=False, environ={})
    assert not render.use_color("never", isatty=True, environ={})
    assert render.use_color("auto", isatty=True, environ={})
    assert not render.use_color("auto", isatty=False, environ={})
    assert not render.use_color("auto", isatty=True, environ={"NO_COLOR": "1"})
    assert not render.use_color("auto", isatty=True, environ={"TERM": "dumb"})


def test_progress_line() -> None:
    progress = status_model.Progress("progressing", "Scaling: adding replicant 4", 4, 6)
    assert render.progress_line("demo", progress, NOW) == (
        "2026-01-01T03:12:00Z demo: progressing, nodes on target 4/6: Scaling: adding replicant 4"
    )


def test_image_line_before_the_first_rollout_and_during_one() -> None:
    creating = emqx(ready=False)
    creating["status"] = {"targetImage": "emqx/emqx:5.7.2", "phase": "Creating"}
    summary = render.summary_block(status_model.cluster_status(creating), render.Style())
    assert "Image:      emqx/emqx:5.7.2\n" in summary
    upgrading = emqx(image="emqx/emqx:5.7.3")
    upgrading["status"]["currentImage"] = "emqx/emqx:5.7.2"
    upgrading["status"]["targetImage"] = None  # the operator has not picked the change up yet
    assert "Image:      emqx/emqx:5.7.2 -> emqx/emqx:5.7.3\n" in render.summary_block(
        status_model.cluster_status(upgrading), render.Style()
    )


def _upgrading() -> dict[str, Any]:
    return {
        "apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX",
        "metadata": {"name": "u", "namespace": "ns", "generation": 2},
        "spec": {"image": "emqx/emqx:5.0.7", "coreTemplate": {"spec": {"replicas": 2}},
                 "replicantTemplate": {"spec": {"replicas": 1}}},
        "status": {
            "observedGeneration": 2, "phase": "Upgrading", "currentImage": "emqx/emqx:5.0.6",
            "targetImage": "emqx/emqx:5.0.7", "message": "replacing cores one at a time (u-core-0 left)",
            "emqxNodes": [
                {"node": "emqx@10.0.0.9", "node_status": "running", "role": "replicant", "version": "5.0.6",
                 "podName": "u-replicant-x"},
                {"node": "emqx@u-core-1.x", "node_status": "running", "role": "core", "version": "5.0.7",
                 "podName": "u-core-1"},
                {"node": "emqx@u-core-0.x", "node_status": "stopped", "role": "core", "podName": "u-core-0"},
                {"node": "emqx@u-core-2.x", "node_status": "stopped", "role": "core"},  # a departed core
            ],
            "pendingNodes": [
                {"pod": "u-replicant-x", "role": "replicant", "waitingFor": "waits for the cores",
                 "since": "2026-01-01T03:10:00Z"},
                {"pod": "u-core-0", "role": "core",
                 "waitingFor": 'ErrImagePull: failed to pull image "emqx/emqx:5.0.7": manifest unknown',
                 "since": "2026-01-01T03:11:48Z"},
            ],
            "upgrade": {"phase": "Cores", "step": {"pod": "u-core-0", "since": "2026-01-01T03:11:00Z"}},
        },
    }


def test_progress_rows_say_what_each_node_waits_for_and_since_when() -> None:
    rows = render.progress_rows(status_model.cluster_status(_upgrading()), NOW)
    assert rows == [
        ("emqx@u-core-2", "core", "stopped", "", "waiting"),
        ("u-core-0", "core", "stopped", "12s",
         'ErrImagePull: failed to pull image "emqx/emqx:5.0.7": manifest unknown'),
        ("u-core-1", "core", "running 5.0.7", "", "done"),
        ("u-replicant-x", "replicant", "running 5.0.6", "2m", "waits for the cores"),
    ]


def test_progress_view_wraps_long_reasons_into_the_width_and_names_the_operators_deadline() -> None:
    status = status_model.cluster_status(_upgrading())
    progress = status_model.progress(_upgrading(), 2)
    view = render.progress_view(status, progress, render.Style(), 72, now=NOW, width=80)
    lines = view.splitlines()
    assert lines[:4] == [
        "Waiting for ns/u (1m12s): Upgrading, nodes on target 1/3",
        "  Upgrading: replacing cores one at a time (u-core-0 left)",
        "  the operator gives up on u-core-0 in 9m unless it is replaced",
        "    (nodeReadyTimeoutSeconds 600)",
    ]
    assert all(len(line) <= 79 for line in lines), view
    assert lines[4] == "NODE           ROLE       EMQX           WAITED  STATE"
    core0 = next(index for index, line in enumerate(lines) if line.startswith("u-core-0 "))
    assert lines[core0].startswith("u-core-0       core       stopped        12s     ErrImagePull: failed")
    wrapped = [lines[core0][49:]]
    index = core0 + 1
    while lines[index].startswith(" " * 49):
        wrapped.append(lines[index][49:].strip())
        index += 1
    assert len(wrapped) > 1  # the reason is wrapped under its column, not cut
    assert " ".join(wrapped) == 'ErrImagePull: failed to pull image "emqx/emqx:5.0.7": manifest unknown'


def test_a_stalled_step_shows_no_countdown_and_a_passed_one_says_the_verdict_is_due() -> None:
    body = _upgrading()
    body["status"]["upgrade"]["step"]["since"] = "2026-01-01T03:01:00Z"
    assert render.in_flight_text(status_model.cluster_status(body), NOW) == (
        "the operator's time for u-core-0 to be replaced is up (nodeReadyTimeoutSeconds 600): its verdict is due")
    body["status"]["upgrade"]["step"]["stalled"] = "u-core-0: ErrImagePull"
    assert render.in_flight_text(status_model.cluster_status(body), NOW) == ""


def test_status_text_lists_the_waiting_nodes_and_the_deadline() -> None:
    text = render.status_text(status_model.cluster_status(_upgrading()), render.Style(), now=NOW)
    assert ("In flight:  the operator gives up on u-core-0 in 9m unless it is replaced "
            "(nodeReadyTimeoutSeconds 600, at 2026-01-01T03:21:00Z)\n") in text
    waiting = text.split("\nWaiting\n", 1)[1].splitlines()
    assert waiting[0].split() == ["NODE", "ROLE", "WAITED", "WAITING", "FOR"]
    assert waiting[1].split()[:4] == ["u-core-0", "core", "12s", "ErrImagePull:"]


def test_fit_keeps_colour_codes_and_closes_them() -> None:
    painted = render.Style(color=True).bad("x" * 30)
    cut = render.fit(painted, 10)
    assert render._SGR.sub("", cut) == "xxxxxxx..."
    assert cut.endswith("\x1b[0m")
    assert render.fit("short", 10) == "short"
