"""status_model: building the model from a resource, judging --wait progress, config drift."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_emqx import status_model
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
    assert _progress(body) == status_model.Progress("failed", "BadImage: tag names no version", 6, 6)
    body = emqx()
    body["status"]["conditions"].append(condition("UpgradeStalled", "True", "NodeNotReady", "core 1 not ready"))
    assert _progress(body).reason == "NodeNotReady: core 1 not ready"
    body = emqx()
    body["status"].update(phase="Failed", message="quota exceeded")
    assert _progress(body) == status_model.Progress("failed", "quota exceeded", 6, 6)


def test_blocking_conditions_of_the_new_generation_fail_even_before_it_is_observed() -> None:
    body = emqx(generation=2)
    body["status"]["observedGeneration"] = 1
    body["status"]["conditions"].append(condition("Forbidden", "True", "Forbidden", "cannot patch pods", generation=2))
    assert _progress(body) == status_model.Progress("failed", "Forbidden: cannot patch pods", 6, 6)


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
    from kubectl_emqx import spec

    body = {"metadata": {"name": "x"}, "spec": spec_body}
    image = spec.get_field(body, spec.image_field_path(body))
    assert status_model.desired_image(body) == (str(image) if image else None)
    normalized = spec.normalize(body) if isinstance(spec_body, dict) and "coreTemplate" in spec_body else None
    if normalized is not None:
        assert status_model.desired_replicas(body) == (normalized.core.replicas, normalized.replicant.replicas)
    assert (status_model.DEFAULT_CORES, status_model.DEFAULT_REPLICANTS) == (spec.DEFAULT_CORES,
                                                                             spec.DEFAULT_REPLICANTS)


def test_running_nodes_uptime_is_extrapolated_from_when_the_operator_read_it() -> None:
    import datetime

    from kubectl_emqx import status_model

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
