"""status_model: building the model from a resource, judging --wait progress, config drift."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_emqx.view import status_model
from tests.unit.cli_helpers import condition, emqx, event, node


def test_summary_defaults_follow_spec_defaults() -> None:
    body = emqx(ready=False)
    del body["spec"]["coreTemplate"]
    del body["spec"]["replicantTemplate"]
    summary = status_model.summarize(body)
    assert (summary.cores.desired, summary.replicants.desired, summary.phase) == (3, 3, "Pending")


def test_summary_reads_emqx_template_image() -> None:
    body = emqx()
    del body["spec"]["image"]
    body["spec"]["emqxTemplate"] = {"image": "emqx/emqx:5.0.6"}
    assert status_model.summarize(body).image == "emqx/emqx:5.0.6"


def test_nodes_sorted_cores_first_with_uptime_in_seconds() -> None:
    body = emqx(cores=2, replicants=1)
    body["status"]["emqxNodes"].reverse()
    nodes = status_model.cluster_status(body).nodes
    assert [n.pod for n in nodes] == ["demo-core-0", "demo-core-1", "demo-replicant-abc0"]
    assert nodes[1].uptime_seconds == 11_521
    assert nodes[1].otp_release == "26.2.5-3/14.2.5"


def test_stopped_core_as_emqx_lists_it() -> None:
    body = emqx(cores=1, replicants=0)
    body["status"]["emqxNodes"] = [{"node": "emqx@x", "node_status": "stopped", "role": "core"}]
    (only,) = status_model.cluster_status(body).nodes
    assert (only.status, only.version, only.uptime_seconds, only.connections, only.pod) == (
        "stopped", None, None, None, None,
    )


def test_recent_events_are_the_last_ten_by_time() -> None:
    events = [event(f"R{i}", "m", when=f"2026-01-01T00:00:{i:02d}Z") for i in range(15)]
    events.reverse()
    recent = status_model.recent_events(events)
    assert [e.reason for e in recent] == [f"R{i}" for i in range(5, 15)]


def test_event_time_falls_back_to_event_time_and_series() -> None:
    item = {"type": "Normal", "reason": "X", "message": " m ", "eventTime": "2026-01-01T00:00:01Z",
            "series": {"count": 4, "lastObservedTime": "2026-01-01T00:00:09Z"}}
    (parsed,) = status_model.recent_events([item])
    assert (parsed.last_seen, parsed.count, parsed.message) == ("2026-01-01T00:00:09Z", 4, "m")


def _progress(body: dict[str, Any], generation: int | None = None) -> status_model.Progress:
    return status_model.progress(body, generation)


def test_progress_done_needs_the_observed_generation() -> None:
    body = emqx(generation=2)
    body["status"]["observedGeneration"] = 1
    assert _progress(body).state == "progressing"
    assert _progress(body).reason == "waiting for the operator to observe generation 2"
    body["status"]["observedGeneration"] = 2
    body["status"]["conditions"] = [condition("Ready", "True", "AllNodesReady", generation=1)]
    assert _progress(body).state == "progressing"  # Ready is about the old generation
    body["status"]["conditions"] = [condition("Ready", "True", "AllNodesReady", generation=2)]
    assert _progress(body) == status_model.Progress("done", "all nodes running", 6, 6)


def test_progress_failures() -> None:
    body = emqx()
    body["status"]["conditions"].append(condition("Valid", "False", "BadImage", "tag names no version"))
    assert _progress(body) == status_model.Progress("failed", "BadImage: tag names no version", 6, 6, "Valid")
    body = emqx()
    body["status"]["conditions"].append(condition("UpgradeStalled", "True", "NodeNotReady", "core 1 not ready"))
    assert _progress(body).reason == "NodeNotReady: core 1 not ready"
    body = emqx()
    body["status"].update(phase="Stalled", message="quota exceeded")
    assert _progress(body) == status_model.Progress("failed", "quota exceeded", 6, 6, "phase")


def test_blocking_conditions_of_the_new_generation_fail_even_before_it_is_observed() -> None:
    body = emqx(generation=2)
    body["status"]["observedGeneration"] = 1
    body["status"]["conditions"].append(condition("Forbidden", "True", "Forbidden", "cannot patch pods", generation=2))
    assert _progress(body) == status_model.Progress("failed", "Forbidden: cannot patch pods", 6, 6, "Forbidden")


def test_blocking_conditions_of_an_older_generation_are_stale() -> None:
    body = emqx(generation=2)
    body["status"]["conditions"].append(condition("Valid", "False", "InvalidSpec", "bad image", generation=1))
    assert _progress(body).state == "done"
    body["status"]["observedGeneration"] = 1
    assert _progress(body).state == "progressing"


def test_progress_while_degraded_keeps_waiting() -> None:
    body = emqx()
    body["status"].update(phase="Degraded", message="1 core down")
    body["status"]["conditions"] = [condition("Ready", "False", "NodeDown")]
    assert _progress(body) == status_model.Progress("progressing", "Degraded: 1 core down", 6, 6)


def test_nodes_on_target_counts_running_nodes_on_the_target_version() -> None:
    body = emqx(cores=3, replicants=0)
    body["status"]["targetImage"] = "emqx/emqx:5.7.3"
    body["status"]["emqxNodes"] = [
        node("demo", "core", 0, version="5.7.3"),
        node("demo", "core", 1, version="5.7.3", status="stopped"),
        node("demo", "core", 2, version="5.7.2"),
    ]
    assert status_model.nodes_on_target(body) == (1, 3)


def test_nodes_on_target_without_a_version_tag_uses_updated_replicas() -> None:
    body = emqx(image="registry.local/emqx/emqx@sha256:" + "a" * 64)
    body["status"]["targetImage"] = body["spec"]["image"]
    body["status"]["coreNodesStatus"]["updatedReplicas"] = 2
    body["status"]["replicantNodesStatus"]["updatedReplicas"] = 1
    assert status_model.nodes_on_target(body) == (3, 6)


def test_config_drift_ignores_emqx_defaults() -> None:
    drift = status_model.config_drift(
        {"mqtt": {"max_packet_size": "2MB"}, "log": {"level": "debug"}},
        {"mqtt": {"max_packet_size": "2MB", "max_qos_allowed": 2}, "log": {"level": "warning"}},
    )
    assert drift == [status_model.Drift("log.level", "debug", "warning")]


def test_config_view_reports_invalid_resource_hocon() -> None:
    view = status_model.config_view(emqx(config="a = {\n"))
    assert view.settings is None
    assert view.errors == ["spec.config.data is not valid HOCON: line 2, column 1: Expected '}'"]


def test_to_data_camel_cases_keys() -> None:
    data = status_model.to_data(status_model.NodeCounts(desired=1, ready=0, updated=None))
    assert data == {"desired": 1, "ready": 0, "updated": None}
    assert status_model.to_data([status_model.Drift("a.b", 1, None)]) == [{"path": "a.b", "resource": 1, "live": None}]
    assert "lastTransitionTime" in status_model.to_data(status_model.cluster_status(emqx()))["conditions"][0]


def test_age_seconds() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC)
    assert status_model.age_seconds("2026-01-01T00:00:00Z", now) == 60
    assert status_model.age_seconds(None, now) is None
    assert status_model.age_seconds("yesterday", now) is None


@pytest.mark.parametrize(
    "spec_body",
    [
        {"image": "emqx/emqx:5.7.2"},
        {"emqxTemplate": {"image": "emqx/emqx:5.0.6"}},
        {"image": "emqx/emqx:5.7.2", "emqxTemplate": {"image": "emqx/emqx:5.0.6"}},
        {"image": None, "emqxTemplate": {"image": "emqx/emqx:5.0.6"}},
        {"emqxTemplate": {"image": None}},
        {"emqxTemplate": "not a mapping"},
        {},
        None,
        "not a mapping",
        {"coreTemplate": {"spec": {"replicas": 5}}, "replicantTemplate": {"spec": {"replicas": 0}}},
        {"coreTemplate": {"spec": {"replicas": True}}, "replicantTemplate": {"spec": {"replicas": "2"}}},
        {"coreTemplate": {"spec": {"replicas": "many"}}, "replicantTemplate": {"spec": {"replicas": 2.0}}},
    ],
)
def test_spec_fields_read_as_spec_py_reads_them(spec_body: Any) -> None:
    """status_model reads the image and replica counts itself (importing spec.py costs start-up): it
    must agree with spec.py on every form."""
    from kubectl_emqx.domain import spec

    body = {"metadata": {"name": "x"}, "spec": spec_body}
    image = spec.get_field(body, spec.image_field_path(body))
    assert status_model.desired_image(body) == (str(image) if image else None)
    normalized = spec.normalize(body) if isinstance(spec_body, dict) else None
    if normalized is not None:
        assert status_model.desired_replicas(body) == (normalized.core.replicas, normalized.replicant.replicas)
    assert status_model.DEFAULT_CORES == spec.DEFAULT_CORES


@pytest.mark.parametrize(("image", "replicants"), [
    ("emqx/emqx:5.0.6", 3), ("emqx/emqx:5.7.2", 3), ("emqx/emqx:5.8.0", 0), ("emqx/emqx:latest", 0),
    ("emqx/emqx-enterprise:5.8.9", 3), ("emqx/emqx-enterprise:latest", 3),
])
def test_replicants_default_to_what_the_image_can_run(image: str, replicants: int) -> None:
    """The official operator's sample sets only `image: emqx/emqx:latest`: Opensource 5.8 runs no
    replicants, so none are asked for unless the resource says so."""
    from kubectl_emqx.domain import spec

    body = {"metadata": {"name": "x"}, "spec": {"image": image}}
    assert spec.normalize(body).replicant.replicas == replicants
    assert status_model.desired_replicas(body) == (3, replicants)


def test_running_nodes_uptime_is_extrapolated_from_when_the_operator_read_it() -> None:
    import datetime

    from kubectl_emqx.view import status_model

    read_at = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": {"name": "u", "namespace": "ns"},
        "spec": {"image": "emqx/emqx:5.7.2"},
        "status": {"emqxNodesObservedAt": read_at, "emqxNodes": [
            {"node": "emqx@a", "node_status": "running", "role": "core", "uptime": 60_000, "podName": "u-core-0"},
            {"node": "emqx@b", "node_status": "stopped", "role": "core"},
        ]},
    }
    nodes = {n.node: n for n in status_model.cluster_status(body).nodes}
    assert 180 <= nodes["emqx@a"].uptime_seconds <= 182
    assert nodes["emqx@a"].pod == "u-core-0"
    assert nodes["emqx@b"].uptime_seconds is None


# --- judging a change of one generation ------------------------------------------------------


def _stalled(generation: int) -> dict[str, Any]:
    """An upgrade to 5.7.3 stalled by the operator at `generation` (the pull failed)."""
    body = emqx(image="emqx/emqx:5.7.3", generation=generation)
    body["status"].update(
        observedGeneration=generation, phase="Stalled", currentImage="emqx/emqx:5.7.2",
        previousImage="emqx/emqx:5.7.2", targetImage="emqx/emqx:5.7.3",
        message="demo-core-2: ErrImagePull: manifest unknown",
        conditions=[
            condition("Ready", "False", "UpgradeStalled", generation=generation),
            condition("UpgradeStalled", "True", "NodeNotRunning",
                      "demo-core-2: ErrImagePull: manifest unknown; no further node is touched: "
                      "`kubectl emqx upgrade demo --rollback`", generation=generation),
            condition("Progressing", "False", "UpgradeStalled", generation=generation),
        ],
    )
    return body


def test_a_stall_fails_the_wait_and_names_the_rollback() -> None:
    body = _stalled(2)
    judged = _progress(body, 2)
    assert (judged.state, judged.verdict) == ("failed", "UpgradeStalled")
    assert judged.reason.startswith("NodeNotRunning: demo-core-2: ErrImagePull: manifest unknown")
    assert status_model.recovery_command(body, judged) == "kubectl emqx upgrade demo -n default --rollback --yes --wait"
    assert status_model.cluster_status(body).recovery == "kubectl emqx upgrade demo -n default --rollback --yes --wait"


def test_the_stall_of_an_older_generation_never_fails_the_rollback() -> None:
    """The rollback wrote generation 3; until the operator judged it, the stall is about generation 2."""
    body = _stalled(2)
    body["metadata"]["generation"] = 3
    body["spec"]["image"] = "emqx/emqx:5.7.2"
    judged = _progress(body, 3)
    assert (judged.state, judged.reason) == ("progressing", "waiting for the operator to observe generation 3")
    # Conditions without observedGeneration are judged by the status's: still generation 2.
    for item in body["status"]["conditions"]:
        del item["observedGeneration"]
    assert _progress(body, 3).state == "progressing"


def test_progressing_false_with_kubernetes_reason_fails_a_create_and_names_a_known_image() -> None:
    body = emqx(image="emqx/emqx:5.7.3", ready=False)
    body["status"] = {
        "observedGeneration": 1, "phase": "Stalled", "targetImage": "emqx/emqx:5.7.3",
        "message": "demo-core-0: ErrImagePull: manifest unknown",
        "conditions": [condition("Progressing", "False", "ErrImagePull",
                                 "demo-core-0: ErrImagePull: manifest unknown; fix the cause and re-apply")],
    }
    judged = _progress(body, 1)
    assert (judged.state, judged.verdict) == ("failed", "Progressing")
    assert judged.reason == "ErrImagePull: demo-core-0: ErrImagePull: manifest unknown; fix the cause and re-apply"
    assert status_model.recovery_command(body, judged) == (
        "kubectl emqx upgrade demo -n default --image emqx/emqx:5.7.2 --yes --wait")


def test_progressing_false_settled_is_no_failure() -> None:
    assert _progress(emqx()).state == "done"  # the helper's Ready status carries Progressing=False Settled


def test_a_rejected_configuration_names_the_editor() -> None:
    body = emqx()
    body["status"]["conditions"].append(condition("ConfigApplied", "False", "ConfigRejected", "bad value"))
    judged = _progress(body)
    assert judged.verdict == "ConfigApplied"
    assert status_model.recovery_command(body, judged) == "kubectl emqx config edit demo -n default --wait"


def test_in_flight_is_the_step_with_the_operators_timeout() -> None:
    body = emqx()
    body["spec"]["updateStrategy"] = {"nodeReadyTimeoutSeconds": 120}
    body["status"]["upgrade"] = {"step": {"pod": "demo-core-2", "since": "2026-01-01T00:00:00Z"}}
    assert status_model.in_flight(body) == status_model.InFlight(
        "demo-core-2", "replaced", "2026-01-01T00:00:00Z", "2026-01-01T00:02:00Z", 120)
    body["status"]["upgrade"]["step"]["stalled"] = "demo-core-2: ErrImagePull"
    assert status_model.in_flight(body) is None
    body["status"]["upgrade"] = {
        "evacuation": {"node": "emqx@x", "pod": "demo-core-1", "since": "2026-01-01T00:00:00Z"}}
    assert status_model.in_flight(body).action == "evacuated"  # type: ignore[union-attr]


@pytest.mark.parametrize("strategy", [None, {}, {"nodeReadyTimeoutSeconds": 30}, {"nodeReadyTimeoutSeconds": "45"},
                                      {"nodeReadyTimeoutSeconds": True}, {"nodeReadyTimeoutSeconds": "soon"}, "x"])
def test_node_ready_timeout_read_as_spec_py_reads_it(strategy: Any) -> None:
    from kubectl_emqx.domain import spec

    body = {"metadata": {"name": "x"}, "spec": {"image": "emqx/emqx:5.7.2", "updateStrategy": strategy}}
    assert status_model.node_ready_timeout(body) == spec.normalize(body).update_strategy.node_ready_timeout_seconds


def test_pending_nodes_cores_first() -> None:
    body = emqx()
    body["status"]["pendingNodes"] = [
        {"pod": "demo-replicant-a", "role": "replicant", "waitingFor": "booting", "since": "2026-01-01T00:00:00Z"},
        {"pod": "demo-core-1", "role": "core", "waitingFor": "being replaced"},
    ]
    assert [(p.pod, p.since) for p in status_model.cluster_status(body).pending] == [
        ("demo-core-1", None), ("demo-replicant-a", "2026-01-01T00:00:00Z")]


@pytest.mark.parametrize(("reported", "image", "matches"), [
    ("5.8.9", "emqx/emqx:5.8.9", True), ("5.8.8", "emqx/emqx:5.8.9", False),
    ("5.8.12", "emqx/emqx:5.8", True), ("5.7.2", "emqx/emqx:5.8", False),
    ("5.8.9", "emqx/emqx-enterprise:e5.8.9", True), (None, "emqx/emqx:5.8.9", False),
    ("5.8.9", "registry.local/emqx/emqx@sha256:" + "a" * 64, True),
])
def test_version_matches_what_the_tag_names(reported: Any, image: str, matches: bool) -> None:
    assert status_model.version_matches(reported, image) is matches


def test_not_yet_on_needs_every_node_on_the_version_and_the_operators_record() -> None:
    body = emqx(image="emqx/emqx:5.7.2", cores=2, replicants=1)
    assert status_model.not_yet_on(body, "emqx/emqx:5.7.2") is None
    body["status"]["emqxNodes"][1]["version"] = "5.6.1"
    assert status_model.not_yet_on(body, "emqx/emqx:5.7.2") == "EMQX reports 2/3 nodes running 5.7.2 (others run 5.6.1)"
    body = emqx(image="emqx/emqx:5.7.2", cores=2, replicants=1)
    body["status"]["currentImage"] = "emqx/emqx:5.6.1"
    assert status_model.not_yet_on(body, "emqx/emqx:5.7.2") == (
        "the operator has not recorded emqx/emqx:5.7.2 as what the cluster runs yet")


def test_a_resource_without_status_serialises_to_yaml() -> None:
    """The plugin's own "Pending" phase is an enum member: -o yaml must print it as a string."""
    from kubectl_emqx.view import render

    body = emqx(ready=False)
    assert "phase: Pending\n" in render.structured(status_model.summarize(body), "yaml")
    assert "phase: Pending\n" in render.structured(status_model.cluster_status(body), "yaml")
