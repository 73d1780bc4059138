"""Read verbs (list, status, version, config get) through the in-memory facade: text, JSON and
YAML from one model, --no-headers, --color, errors."""

from __future__ import annotations

import json

import pytest
import yaml

from kubectl_emqx.kube import errors
from kubectl_emqx.kube.api import OperatorDeployment
from tests.unit.cli_helpers import condition, emqx, event, fake_with, run


def test_list_text_columns_and_rows() -> None:
    fake = fake_with(emqx("beta", replicants=0, ready=False), emqx("alpha"), emqx("gamma", namespace="prod"))
    result = run(fake, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "NAMESPACE", "IMAGE", "CORES", "REPLICANTS", "STATUS", "AGE"]
    assert lines[1].split()[:6] == ["alpha", "default", "emqx/emqx:5.7.2", "3/3", "3/3", "Ready"]
    assert lines[2].split()[:6] == ["beta", "default", "emqx/emqx:5.7.2", "0/3", "0/0", "Pending"]
    assert len(lines) == 3  # gamma lives in another namespace


def test_list_all_namespaces_and_no_headers() -> None:
    fake = fake_with(emqx("alpha"), emqx("gamma", namespace="prod"))
    result = run(fake, "list", "-A", "--no-headers")
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [["alpha", "default"], ["gamma", "prod"]]


def test_list_empty_says_so_on_stderr() -> None:
    result = run(fake_with(), "list", "-n", "void")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No EMQX clusters found in namespace void." in result.stderr


def test_list_json_and_yaml_carry_what_the_text_shows() -> None:
    fake = fake_with(emqx("alpha"))
    as_json = json.loads(run(fake, "list", "-o", "json").stdout)
    as_yaml = yaml.safe_load(run(fake, "list", "-o", "yaml").stdout)
    assert as_json == as_yaml
    assert as_json == [
        {
            "name": "alpha",
            "namespace": "default",
            "image": "emqx/emqx:5.7.2",
            "phase": "Ready",
            "cores": {"desired": 3, "ready": 3, "updated": 3},
            "replicants": {"desired": 3, "ready": 3, "updated": 3},
            "created": "2026-01-01T00:00:00Z",
        }
    ]


def test_status_text_sections() -> None:
    fake = fake_with(emqx())
    fake.events[("default", "demo")] = [
        event("Scaled", "cores 2 -> 3", when="2026-01-01T00:00:00Z"),
        event("ConfigApplied", "2 settings applied live", type_="Warning", when="2026-01-01T00:01:00Z", count=3),
    ]
    result = run(fake, "status", "demo")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Name:       default/demo\n" in text
    assert "Image:      emqx/emqx:5.7.2\n" in text
    assert "Phase:      Ready (all nodes running)\n" in text
    assert "Cores:      3/3 ready\n" in text
    assert "Replicants: 3/3 ready\n" in text
    assert "Conditions: Ready=True, Progressing=False\n" in text
    assert "NODE                 ROLE       STATUS    VERSION    OTP       UPTIME    CONNECTIONS" in text
    assert "demo-core-1          core       running   5.7.2      26.2.5-3  3h12m     10" in text
    assert "ConfigApplied  2 settings applied live (x3)" in text
    assert text.index("Nodes") < text.index("Events")
    assert "Errors" not in text
    assert result.stderr == ""


def test_status_json_yaml_and_text_come_from_one_model() -> None:
    fake = fake_with(emqx())
    fake.events[("default", "demo")] = [event("Scaled", "cores 2 -> 3")]
    as_json = json.loads(run(fake, "status", "demo", "-o", "json").stdout)
    assert as_json == yaml.safe_load(run(fake, "status", "demo", "-o", "yaml").stdout)
    text = run(fake, "status", "demo").stdout
    assert as_json["phase"] in text and as_json["message"] in text
    for node in as_json["nodes"]:
        assert node["pod"] in text and node["role"] in text and node["version"] in text
        assert str(node["connections"]) in text
    for item in as_json["conditions"]:
        assert f"{item['type']}={item['status']}" in text
    assert [e["reason"] for e in as_json["events"]] == ["Scaled"] and "cores 2 -> 3" in text
    assert as_json["cores"] == {"desired": 3, "ready": 3, "updated": 3}
    assert as_json["errors"] == []


def test_status_reports_failed_sources_last_instead_of_aborting() -> None:
    fake = fake_with(emqx())
    fake.failures["list_events"] = errors.Forbidden("list", "events", "default")
    result = run(fake, "status", "demo")
    assert result.exit_code == 0
    text = result.stdout
    assert text.index("Nodes") < text.index("Errors (parts of the status could not be read)")
    assert "- events: forbidden: you may not list events in namespace default" in text
    assert json.loads(run(fake, "status", "demo", "-o", "json").stdout)["errors"] == [
        "events: forbidden: you may not list events in namespace default; ask your cluster admin for RBAC access"
    ]


def test_status_of_a_resource_the_operator_has_not_seen() -> None:
    result = run(fake_with(emqx(ready=False)), "status", "demo")
    assert "Phase:      Pending (the operator has not reported on this resource yet)" in result.stdout
    assert "(EMQX has not reported any node yet)" in result.stdout


def test_status_shows_rollout_and_unhealthy_conditions() -> None:
    body = emqx()
    body["metadata"]["generation"] = 2
    body["spec"]["image"] = "emqx/emqx:5.7.2"
    body["status"].update(
        phase="Upgrading",
        message="core 2 of 3",
        currentImage="emqx/emqx:5.7.1",
        targetImage="emqx/emqx:5.7.2",
        conditions=[condition("Ready", "False", "Upgrading"), condition("Progressing", "True", "Upgrading")],
    )
    text = run(fake_with(body), "status", "demo").stdout
    assert "Image:      emqx/emqx:5.7.1 -> emqx/emqx:5.7.2" in text
    assert "Phase:      Upgrading (core 2 of 3)" in text
    assert "Conditions: Ready=False (Upgrading), Progressing=True (Upgrading)" in text
    assert "Generation: 2 (operator has seen 1)" in text


def test_color_always_and_never() -> None:
    fake = fake_with(emqx())
    assert "\x1b[32mReady\x1b[0m" in run(fake, "status", "demo", "--color", "always").stdout
    assert "\x1b[" not in run(fake, "status", "demo", "--color", "never").stdout
    assert "\x1b[" not in run(fake, "status", "demo").stdout  # auto: not a terminal


def test_status_no_headers_drops_titles_and_table_headers() -> None:
    text = run(fake_with(emqx()), "status", "demo", "--no-headers").stdout
    assert "NODE" not in text and "Nodes\n" not in text
    assert "demo-core-0" in text


def test_not_found_suggests_close_names_and_other_namespaces() -> None:
    fake = fake_with(emqx("production-mqtt"), emqx("edge", namespace="site-a"))
    result = run(fake, "status", "production-mqt")
    assert result.exit_code == 1
    assert result.stderr == (
        'error: EMQX cluster "production-mqt" not found in namespace default; did you mean "production-mqtt"?\n'
    )
    result = run(fake, "status", "edge")
    assert 'did you mean "edge" in namespace site-a (-n site-a)?' in result.stderr


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (errors.OperatorNotInstalled(), "error: the EMQX operator is not installed: run `kubectl emqx install`"),
        (
            errors.Forbidden("get", "emqxes.apps.emqx.io", "default", 'as User "bob"'),
            'error: forbidden: you may not get emqxes.apps.emqx.io in namespace default (as User "bob"); ask your '
            "cluster admin for RBAC access",
        ),
        (
            errors.ClusterUnreachable("cannot reach the Kubernetes API at https://127.0.0.1:1 (context dev): refused"),
            "error: cannot reach the Kubernetes API at https://127.0.0.1:1 (context dev): refused",
        ),
    ],
)
def test_api_failures_are_one_line_without_traceback(failure: errors.PluginError, message: str) -> None:
    fake = fake_with(emqx())
    fake.failures["get_emqx"] = failure
    result = run(fake, "status", "demo")
    assert result.exit_code == 1
    assert result.stderr == message + "\n"


def test_verbose_shows_the_traceback() -> None:
    fake = fake_with(emqx())
    fake.failures["get_emqx"] = errors.OperatorNotInstalled()
    result = run(fake, "status", "demo", "-v")
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.endswith("error: the EMQX operator is not installed: run `kubectl emqx install`\n")


def test_unexpected_errors_are_short_unless_verbose() -> None:
    fake = fake_with(emqx())
    fake.failures["get_emqx"] = RuntimeError("boom")  # type: ignore[assignment]
    result = run(fake, "status", "demo")
    assert result.exit_code == 1
    assert result.stderr == "error: unexpected failure: RuntimeError: boom\n  (run with -v for the traceback)\n"


def test_version_with_operator_and_skew_warning() -> None:
    fake = fake_with()
    fake.operators = [OperatorDeployment("emqx-operator-system", "emqx-operator", "0.2.0")]
    result = run(fake, "version")
    assert result.exit_code == 0
    assert result.stdout == "Plugin:   0.1.0\nOperator: 0.2.0 (emqx-operator-system/emqx-operator)\n"
    assert "warning: plugin 0.1.0 and operator 0.2.0 differ in minor version; upgrade the plugin" in result.stderr
    assert json.loads(run(fake, "version", "-o", "json").stdout) == {
        "plugin": "0.1.0",
        "operators": [{"namespace": "emqx-operator-system", "deployment": "emqx-operator", "version": "0.2.0"}],
        "error": None,
    }


def test_version_without_operator() -> None:
    result = run(fake_with(), "version")
    assert result.stdout == "Plugin:   0.1.0\nOperator: not installed (run `kubectl emqx install`)\n"
    assert result.stderr == ""


def test_version_when_the_cluster_cannot_be_asked() -> None:
    fake = fake_with()
    fake.failures["operator_deployments"] = errors.ClusterUnreachable("cannot reach the Kubernetes API")
    result = run(fake, "version")
    assert result.exit_code == 1
    assert result.stdout == "Plugin:   0.1.0\nOperator: unknown\n"
    assert result.stderr == "error: cannot reach the Kubernetes API\n"


def test_config_get_prints_the_resource_hocon() -> None:
    fake = fake_with(emqx(config="# tuned\nmqtt.max_packet_size = 2MB\n"))
    result = run(fake, "config", "get", "demo")
    assert result.stdout == "# tuned\nmqtt.max_packet_size = 2MB\n"
    as_yaml = yaml.safe_load(run(fake, "config", "get", "demo", "-o", "yaml").stdout)
    assert as_yaml["configField"] == "spec.config.data"
    assert as_yaml["settings"] == {"mqtt": {"max_packet_size": "2MB"}}


def test_config_get_reads_v2alpha1_bootstrap_config() -> None:
    body = emqx()
    body["spec"]["bootstrapConfig"] = "log.console.level = debug\n"
    result = run(fake_with(body), "config", "get", "demo", "-o", "json")
    assert json.loads(result.stdout)["configField"] == "spec.bootstrapConfig"
    assert json.loads(result.stdout)["settings"] == {"log": {"console": {"level": "debug"}}}


def test_config_get_live_shows_drift_as_comments() -> None:
    body = emqx(config="mqtt.max_packet_size = 2MB\nlog.console.level = debug\n")
    body["status"]["config"] = {"live": "mqtt {\n  max_packet_size = 1MB\n  max_clientid_len = 65535\n}\n"}
    fake = fake_with(body)
    result = run(fake, "config", "get", "demo", "--live")
    assert result.stdout == (
        "mqtt {\n  max_packet_size = 1MB\n  max_clientid_len = 65535\n}\n"
        "# Drift: settings in spec.config.data that EMQX does not run as written:\n"
        "#   mqtt.max_packet_size: resource 2MB, live 1MB\n"
        "#   log.console.level: resource debug, live absent\n"
    )
    drift = json.loads(run(fake, "config", "get", "demo", "--live", "-o", "json").stdout)["drift"]
    assert drift == [
        {"path": "mqtt.max_packet_size", "resource": "2MB", "live": "1MB"},
        {"path": "log.console.level", "resource": "debug", "live": None},
    ]


def test_config_get_live_before_the_operator_reported() -> None:
    result = run(fake_with(emqx(config="a = 1\n")), "config", "get", "demo", "--live")
    assert result.exit_code == 0
    assert "warning: the operator has not reported the live configuration yet" in result.stderr
