"""The day-2 verbs' own logic without a cluster: which core the dashboard forwards to, how to log in,
which pods `logs` follows (and from where), usage errors, and the report's files."""

from __future__ import annotations

import base64
import datetime
import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest
from click.testing import CliRunner

from kubectl_emqx.cli import dashboard, logs, report
from kubectl_emqx.cli.main import cli
from kubectl_emqx.kube.client import WatchEvent
from kubectl_emqx.view import logs as log_view
from kubectl_emqx.view import pods as pod_view
from kubectl_emqx.view import report as report_view


def pod(name: str, role: str = "core", *, ready: bool = True, restarts: int = 0, running: bool = True,
        uid: str | None = None, ip: str = "127.1.0.9", port: int = 18083, env: list[Any] | None = None,
        deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": "1",
                                "labels": {"apps.emqx.io/instance": "demo", "apps.emqx.io/db-role": role}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "emqx", "ports": [{"name": "dashboard", "containerPort": port}],
                                 "env": env or []}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "emqx", "restartCount": restarts,
                                          "state": {"running": {}} if running else {"waiting": {}}}]},
    }


# --- pods ---------------------------------------------------------------------------------------


def test_pod_readings() -> None:
    core = pod("demo-core-1", port=18084)
    assert pod_view.ready(core) and pod_view.dashboard_port(core) == 18084
    assert not pod_view.ready(pod("demo-core-2", deleting=True))
    assert not pod_view.ready(pod("demo-core-2", ready=False))
    assert pod_view.node_name(core, "demo", "ns", "cluster.local") == \
        "emqx@demo-core-1.demo-headless.ns.svc.cluster.local"
    assert pod_view.node_name(pod("demo-replicant-x", "replicant"), "demo", "ns", "c.l") == "emqx@127.1.0.9"
    order = pod_view.by_ordinal([pod("demo-replicant-a", "replicant"), pod("demo-core-10"), pod("demo-core-2")])
    assert [pod_view.name(p) for p in order] == ["demo-core-2", "demo-core-10", "demo-replicant-a"]


# --- dashboard ----------------------------------------------------------------------------------


class FakePods:
    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods
        self.events: list[WatchEvent] = []
        self.logs: dict[str, list[str]] = {}
        self.log_calls: list[tuple[str, dict[str, Any]]] = []

    def list_pods(self, namespace: str, selector: str) -> tuple[list[dict[str, Any]], str]:
        role = selector.partition("apps.emqx.io/db-role=")[2]
        return [p for p in self.pods if not role or pod_view.role(p) == role], "1"

    def follow_pods(self, namespace: str, selector: str, stop: threading.Event) -> Iterator[WatchEvent]:
        for item in self.list_pods(namespace, selector)[0]:
            yield WatchEvent("ADDED", item)
        while not stop.is_set():
            if self.events:
                yield self.events.pop(0)
            else:
                time.sleep(0.01)

    def log(self, namespace: str, name: str, **options: Any) -> Iterator[str]:
        self.log_calls.append((name, options))
        return iter(self.logs.get(name, []))


def test_core_target_keeps_its_core_and_moves_when_it_fails_or_goes() -> None:
    now = [100.0]
    switches: list[tuple[str, str | None]] = []
    fake = FakePods([pod("demo-core-1"), pod("demo-core-0"), pod("demo-replicant-a", "replicant")])
    target = dashboard.CoreTarget(fake, "ns", "demo", on_switch=lambda new, old: switches.append((new, old)),  # type: ignore[arg-type]
                                  clock=lambda: now[0])
    assert target.pick() == ("demo-core-0", 18083)
    target.failed("demo-core-0", "refused")
    assert target.pick() == ("demo-core-1", 18083)
    fake.pods = [pod("demo-core-0"), pod("demo-core-1", deleting=True)]
    now[0] += dashboard.FAILED_PENALTY_SECONDS
    assert target.pick() == ("demo-core-0", 18083)
    fake.pods = []
    assert target.pick() is None
    assert switches == [("demo-core-0", None), ("demo-core-1", "demo-core-0"), ("demo-core-0", "demo-core-1")]


def test_login_lines_name_the_user_and_the_command_but_not_the_password() -> None:
    env = [{"name": "EMQX_DASHBOARD__DEFAULT_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "demo-bootstrap-api-key", "key": "dashboard_password"}}}]

    class Api:
        def get_object(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
            assert (kind, name, namespace) == ("Secret", "demo-bootstrap-api-key", "ns")
            return {"data": {"dashboard_password": base64.b64encode(b"s3cret-pw").decode()}}

    lines = dashboard.login_lines(Api(), "ns", pod("demo-core-0", env=env), show_password=False)
    text = "\n".join(lines)
    assert "Log in as admin." in text and "s3cret-pw" not in text
    assert ("kubectl get secret demo-bootstrap-api-key -n ns -o jsonpath='{.data.dashboard_password}' | base64 -d"
            in text)
    shown = dashboard.login_lines(Api(), "ns", pod("demo-core-0", env=env), show_password=True)
    assert shown[-1] == "  s3cret-pw"
    literal = dashboard.login_lines(Api(), "ns", pod("p", env=[{"name": "EMQX_DASHBOARD__DEFAULT_PASSWORD",
                                                               "value": "lit-pw-1"}]), show_password=False)
    assert "lit-pw-1" not in "\n".join(literal)
    assert "EMQX's default (public)" in "\n".join(dashboard.login_lines(Api(), "ns", pod("p"), False))


def test_no_console_browser_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert dashboard.open_browser("http://127.0.0.1:1") is False


# --- logs ---------------------------------------------------------------------------------------


def _selection(**kwargs: Any) -> logs.Selection:
    return logs.Selection("demo", "ns", {"spec": {}}, kwargs.pop("role", None), kwargs.pop("nodes", ()))


def test_selection_by_role_pod_or_node_name() -> None:
    core, replicant = pod("demo-core-0"), pod("demo-replicant-a", "replicant", ip="127.1.0.7")
    assert _selection(role="replicant").wanted(replicant) and not _selection(role="replicant").wanted(core)
    assert _selection(nodes=("emqx@127.1.0.7",)).wanted(replicant)
    assert _selection(nodes=("demo-core-0",)).wanted(core)
    with pytest.raises(Exception, match="--node demo-core-9: no such node in ns/demo "
                                        r"\(pods: demo-core-0, demo-replicant-a\)"):
        _selection(nodes=("demo-core-9",)).check([core, replicant])


def test_follower_attaches_new_pods_from_their_first_line_and_restarts_once() -> None:
    fake = FakePods([pod("demo-core-0")])
    fake.logs = {"demo-core-0": ["2026-03-01T10:00:01Z core line"],
                 "demo-replicant-b": ["2026-03-01T10:00:02Z booting", "2026-03-01T10:00:03Z running"]}
    formatter = log_view.Formatter(color=False, timestamps=False, output=None)
    follower = logs.Follower(fake, _selection(), logs.LogOptions(tail_lines=10), formatter)  # type: ignore[arg-type]
    out = io.StringIO()
    runner = threading.Thread(target=lambda: follower.run(fake.list_pods("ns", "")[0]))
    with redirect_stdout(out):
        runner.start()
        fake.events.append(WatchEvent("ADDED", pod("demo-replicant-b", "replicant", running=False)))
        fake.events.append(WatchEvent("MODIFIED", pod("demo-replicant-b", "replicant")))
        fake.events.append(WatchEvent("MODIFIED", pod("demo-replicant-b", "replicant")))  # same container
        deadline = time.monotonic() + 10
        while "running" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        follower.stop.set()
        runner.join(10)
    assert out.getvalue().splitlines() == ["demo-core-0      core line", "demo-replicant-b booting",
                                           "demo-replicant-b running"]
    calls = {name: options for name, options in fake.log_calls}
    assert calls["demo-core-0"]["tail_lines"] == 10  # the pods there at the start: as asked
    assert calls["demo-replicant-b"]["tail_lines"] is None  # a pod that came later: from its first line
    assert [name for name, _ in fake.log_calls].count("demo-replicant-b") == 1


@pytest.mark.parametrize(("args", "line"), [
    (["logs", "demo", "-f", "-p"], "error: Invalid value for --previous: cannot be combined with -f (a previous "
                                   "container has ended) (see `kubectl emqx logs --help`)"),
    (["logs", "demo", "--tail", "-2"], "error: Invalid value for --tail: must be -1 (all) or more "
                                       "(see `kubectl emqx logs --help`)"),
    (["dashboard", "demo", "--port", "70000"], "error: Invalid value for '--port': 70000 is not in the range "
                                               "0<=x<=65535. (see `kubectl emqx dashboard --help`)"),
])
def test_day2_usage_errors_are_one_line(args: list[str], line: str) -> None:
    result = CliRunner().invoke(cli, args, prog_name="kubectl emqx")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [line]


# --- report -------------------------------------------------------------------------------------


def test_report_files_hold_no_secret_value_and_say_what_is_where() -> None:
    secret_values = {"node_cookie": "cookie-value-abcdef", "dashboard_password": "dash-pw-123456"}
    secret = {"kind": "Secret", "metadata": {"name": "demo-node-cookie"},
              "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret_values.items()}}
    leaky_pod = pod("demo-core-0", env=[{"name": "API_TOKEN", "value": "literal-token-777"}])
    resource = {"kind": "EMQX", "metadata": {"name": "demo", "namespace": "ns", "uid": "u"},
                "spec": {"config": {"data": 'dashboard.default_password = "in-spec-pw-42"'}},
                "status": {"phase": "Stalled", "message": "core demo-core-2 did not come up within 30s",
                           "config": {"live": "log.console.level = warning\n"}}}
    collected = report_view.Collected(
        name="demo", namespace="ns", created=datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC), version="0.1.0",
        resource=resource, summary="Phase: Stalled\n", objects=[secret], pods=[leaky_pod],
        logs={"logs/demo-core-0.log": "boot with dash-pw-123456 and literal-token-777 "
                                      + base64.b64encode(b"cookie-value-abcdef").decode() + "\n"},
        secrets=[secret], logs_requested=True,
        events=[{"kind": "Event", "reason": "UpgradeStalled", "message": "core demo-core-2 did not come up",
                 "involvedObject": {"kind": "EMQX", "name": "demo"}, "lastTimestamp": "2026-03-01T00:00:00Z"}],
    )
    files = report_view.files(collected)
    everything = "\n".join(files.values())
    for value in [*secret_values.values(), "literal-token-777", "in-spec-pw-42"]:
        assert value not in everything
        assert base64.b64encode(value.encode()).decode() not in everything
    assert set(files) >= {"README.txt", "emqx.yaml", "summary.txt", "events.txt", "events.yaml",
                          "objects/Secret/demo-node-cookie.yaml", "pods/demo-core-0.yaml", "logs/demo-core-0.log",
                          "config/spec.conf", "config/live.conf"}
    assert "Phase: Stalled\ncore demo-core-2 did not come up within 30s" in files["README.txt"]
    assert "node_cookie" in files["objects/Secret/demo-node-cookie.yaml"]
    for path in files:  # README.txt says what every file is
        assert path == "README.txt" or path in files["README.txt"] or path.split("/")[0] + "/" in files["README.txt"]


def test_report_zip_is_written_atomically(tmp_path: Any) -> None:
    target = tmp_path / "r.zip"
    size = report.write_zip(str(target), {"b.txt": "b", "README.txt": "r"},
                            datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC))
    assert size == target.stat().st_size
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist() == ["README.txt", "b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.zip"]
    with pytest.raises(Exception, match="does not exist"):
        report.write_zip(str(tmp_path / "missing" / "r.zip"), {}, datetime.datetime(2026, 3, 1))


def test_json_of_a_line_without_node() -> None:
    line = log_view.Formatter(color=False, timestamps=False, output="json").line(
        log_view.record("x", "demo-replicant-a", None, "replicant"))
    assert json.loads(line)["node"] is None


def test_follower_retries_a_log_that_is_refused_at_first() -> None:
    from kubectl_emqx.kube import errors

    fake = FakePods([pod("demo-core-0")])
    refusals = [errors.ApiServerError("container emqx is waiting to start (HTTP 400)")]

    def log(namespace: str, name: str, **options: Any) -> Iterator[str]:
        if refusals:
            raise refusals.pop()
        return iter(["2026-03-01T10:00:01Z hello"])

    fake.log = log  # type: ignore[method-assign]
    follower = logs.Follower(fake, _selection(), logs.LogOptions(),  # type: ignore[arg-type]
                             log_view.Formatter(color=False, timestamps=False, output=None))
    out = io.StringIO()
    runner = threading.Thread(target=lambda: follower.run(fake.list_pods("ns", "")[0]))
    with redirect_stdout(out):
        runner.start()
        deadline = time.monotonic() + 10
        while "hello" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        follower.stop.set()
        runner.join(10)
    assert out.getvalue().splitlines() == ["demo-core-0 hello"]
