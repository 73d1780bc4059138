"""--wait and status --watch: followed through the facade's watch (scripted in FakeCluster), no sleeps."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubectl_emqx.cli import wait
from kubectl_emqx.kube import errors
from kubectl_emqx.view import render
from tests.unit.cli_helpers import condition, emqx, fake_with, node, ready_status, run
from tests.unit.fake_cluster import FakeCluster

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    cluster = fake_with(emqx())
    monkeypatch.setattr(wait, "monotonic", cluster.clock)
    return cluster


def scaling(generation: int, message: str = "adding replicants") -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "phase": "Scaling",
        "message": message,
        "conditions": [
            condition("Ready", "False", "Scaling", generation=generation),
            condition("Progressing", "True", "Scaling", generation=generation),
        ],
    }


def interrupt(body: dict[str, Any]) -> None:
    raise KeyboardInterrupt


def test_wait_follows_the_watch_until_ready(fake: FakeCluster) -> None:
    fake.script_watch(
        scaling(2),
        {"emqxNodes": ready_status(replicants=4)["emqxNodes"], "replicantNodesStatus": {"readyReplicas": 4}},
        ready_status(replicants=5, generation=2),
    )
    result = run(fake, "scale", "replicants", "demo", "5", "--wait")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "default/demo: replicants 3 -> 5"
    assert [re.sub(STAMP, "T", line) for line in lines[1:]] == [
        "T demo: progressing, nodes on target 6/8: waiting for the operator to observe generation 2",
        "T demo: progressing, nodes on target 6/8: Scaling: adding replicants",
        "T demo: progressing, nodes on target 7/8: Scaling: adding replicants",
        "T demo: done, nodes on target 8/8: all nodes running",
        "default/demo is Ready: cores 3/3, replicants 5/5, image emqx/emqx:5.7.2",
    ]


def test_ready_of_an_older_generation_does_not_count(fake: FakeCluster) -> None:
    # The operator has not seen our write yet: its Ready=True is about generation 1.
    fake.script_watch(ready_status(generation=1), ready_status(replicants=4, generation=2))
    result = run(fake, "scale", "replicants", "demo", "4", "--wait")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("done,") == 1


def test_wait_fails_with_the_operators_reason(fake: FakeCluster) -> None:
    fake.script_watch(
        scaling(2),
        {"phase": "Stalled", "message": "cannot pull emqx/emqx:5.7.9"},
    )
    result = run(fake, "upgrade", "demo", "--image", "emqx/emqx:5.7.9", "--yes", "--wait")
    assert result.exit_code == 3
    assert result.stderr.endswith("error: default/demo failed: cannot pull emqx/emqx:5.7.9\n")


def test_wait_fails_when_the_operator_finds_the_spec_invalid(fake: FakeCluster) -> None:
    invalid = scaling(2)
    invalid["conditions"].append(condition("Valid", "False", "LicenseMissing", "set license.key", generation=2))
    fake.script_watch(invalid)
    result = run(fake, "scale", "replicants", "demo", "4", "--wait")
    assert result.exit_code == 3
    assert "error: default/demo failed: LicenseMissing: set license.key" in result.stderr


def test_wait_times_out_with_the_last_state(fake: FakeCluster) -> None:
    fake.script_watch(scaling(2, "replicant 4 not ready"))
    result = run(fake, "scale", "replicants", "demo", "4", "--wait", "--timeout", "2m")
    assert result.exit_code == 4
    assert result.stderr.endswith(
        "error: timed out after 2m waiting for default/demo to become Ready; last state: Scaling: replicant 4 not "
        "ready; the change stays applied, follow it with `kubectl emqx status demo -n default -w`\n"
    )


def test_ctrl_c_says_the_change_stays(fake: FakeCluster) -> None:
    fake.script_watch(scaling(2), interrupt)
    result = run(fake, "scale", "replicants", "demo", "4", "--wait")
    assert result.exit_code == 130
    assert "error: interrupted: the change stays applied; follow it with `kubectl emqx status demo" in result.stderr
    assert fake.stored("demo")["spec"]["replicantTemplate"]["spec"]["replicas"] == 4


def test_deleted_while_waiting(fake: FakeCluster) -> None:
    fake.script_watch("DELETE")
    result = run(fake, "scale", "replicants", "demo", "4", "--wait")
    assert result.exit_code == 3
    assert "error: default/demo was deleted while waiting for it" in result.stderr


def test_delete_wait_ends_when_the_resource_is_gone(fake: FakeCluster) -> None:
    fake.script_watch({"phase": "Terminating"}, "DELETE")
    result = run(fake, "delete", "demo", "--yes", "--wait")
    assert result.exit_code == 0
    assert result.stderr.endswith("default/demo deletion requested\ndefault/demo deleted\n")


def test_create_wait(fake: FakeCluster) -> None:
    fake.script_watch(scaling(1, "creating"), ready_status("fresh"))
    result = run(fake, "create", "fresh", "--wait")
    assert result.exit_code == 0, result.output
    assert result.stderr.endswith("default/fresh is Ready: cores 3/3, replicants 3/3, image emqx/emqx:5.7.2\n")


def test_observe_rereads_after_each_window_and_after_expiry(fake: FakeCluster) -> None:
    reads = []
    original_get = fake.get_emqx

    def counting_get(name: str, namespace: str) -> dict[str, Any]:
        reads.append(name)
        return original_get(name, namespace)

    fake.get_emqx = counting_get  # type: ignore[method-assign]
    expired = iter([True])

    def watch(name: str, namespace: str, *, resource_version: str, timeout_seconds: int) -> Any:
        if next(expired, False):
            raise errors.WatchExpired("too old resource version")
        fake.clock.now += timeout_seconds
        return iter(())

    fake.watch_emqx = watch  # type: ignore[method-assign]
    deadline = fake.clock.now + 600
    seen = list(wait.observe(fake, "demo", "default", deadline))
    assert all(body is not None for body in seen)
    # first read, re-read after the expired watch, then one per 300 s window until the deadline
    assert len(reads) == len(seen) == 4


def test_live_view_redraws_in_place(fake: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    reporter = wait.ProgressReporter("demo", live=True, style=render.Style(color=False))
    body = emqx()
    body["status"]["phase"] = "Upgrading"
    from kubectl_emqx.view import status_model

    reporter.show(body, status_model.progress(body, 1))
    first = capsys.readouterr().err
    assert first.startswith("Waiting for default/demo (0s): Upgrading, nodes on target 6/6\n")
    assert "demo-core-0" in first
    body["status"]["emqxNodes"][0] = node("demo", "core", 0, status="stopped")
    reporter.show(body, status_model.progress(body, 1))
    second = capsys.readouterr().err
    assert second.startswith(f"\x1b[{first.count(chr(10))}F\x1b[J")
    reporter.show(body, status_model.progress(body, 1))
    assert capsys.readouterr().err == ""  # nothing changed, nothing drawn


def test_status_watch_prints_each_change_until_interrupted(fake: FakeCluster) -> None:
    fake.script_watch(scaling(1, "one"), scaling(1, "two"), interrupt)
    result = run(fake, "status", "demo", "-w", "--no-headers")
    assert result.exit_code == 0
    assert result.stdout.count("Name:") == 3
    assert "Phase:      Scaling (one)" in result.stdout and "Phase:      Scaling (two)" in result.stdout


def test_status_watch_yaml_separates_documents(fake: FakeCluster) -> None:
    fake.script_watch(scaling(1, "one"), interrupt)
    result = run(fake, "status", "demo", "-w", "-o", "yaml")
    assert result.stdout.count("\n---\n") == 1
