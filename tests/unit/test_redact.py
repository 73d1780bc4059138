"""Redaction for the support report: Secrets to names and keys, secret-looking env values and flags,
HOCON secrets, last-applied annotations, and the final scrub of known values."""

from __future__ import annotations

import base64
import json
from typing import Any

from kubectl_emqx.domain import redact


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRET = {
    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
    "metadata": {"name": "demo-bootstrap-api-key", "namespace": "ns", "uid": "u1", "labels": {"a": "b"},
                 "annotations": {redact.LAST_APPLIED: '{"data":{"k":"c2VjcmV0"}}'},
                 "managedFields": [{"manager": "x"}]},
    "data": {"bootstrap_api_key": _b64("kubectl-emqx-operator:Sup3rS3cretValue\n"),
             "dashboard_password": _b64("P4ssw0rdP4ssw0rd")},
}


def test_a_secret_becomes_its_name_type_and_keys() -> None:
    summary = redact.redact_object(SECRET)
    text = json.dumps(summary)
    assert summary["keys"] == ["bootstrap_api_key", "dashboard_password"]
    assert summary["metadata"]["name"] == "demo-bootstrap-api-key" and summary["type"] == "Opaque"
    assert "data" not in summary and "c2VjcmV0" not in text and "managedFields" not in text
    assert summary["metadata"]["annotations"] == {redact.LAST_APPLIED: "(value withheld)"}


def _pod(env: list[dict[str, Any]], args: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "emqx", "env": env}
    if args is not None:
        container["args"] = args
    return {"kind": "Pod", "metadata": {"name": "p", "annotations": {redact.LAST_APPLIED: "{...}"}},
            "spec": {"containers": [container]}}


def test_secret_looking_literal_env_values_and_flags_are_replaced() -> None:
    pod = _pod([
        {"name": "EMQX_LICENSE__KEY", "value": "license-text-123"},
        {"name": "DB_PASSWORD", "value": "hunter2hunter2"},
        {"name": "EMQX_NODE__COOKIE", "valueFrom": {"secretKeyRef": {"name": "c", "key": "k"}}},
        {"name": "EMQX_LOG__CONSOLE__LEVEL", "value": "debug"},
        {"name": "MY_TOKEN", "value": "tok-abcdef"},
    ], args=["--api-token=abcdef123", "--verbose", "--name=x"])
    clean = redact.redact_object(pod)
    env = {item["name"]: item for item in clean["spec"]["containers"][0]["env"]}
    assert env["EMQX_LICENSE__KEY"]["value"] == redact.REDACTED
    assert env["DB_PASSWORD"]["value"] == redact.REDACTED
    assert env["MY_TOKEN"]["value"] == redact.REDACTED
    assert env["EMQX_LOG__CONSOLE__LEVEL"]["value"] == "debug"
    assert env["EMQX_NODE__COOKIE"]["valueFrom"]["secretKeyRef"] == {"name": "c", "key": "k"}
    assert clean["spec"]["containers"][0]["args"] == ["--api-token=" + redact.REDACTED, "--verbose", "--name=x"]
    assert "{...}" not in json.dumps(clean)
    assert redact.literal_secret_env_values([pod]) == ["license-text-123", "hunter2hunter2", "tok-abcdef"]


def test_env_names_that_only_contain_a_word_are_not_secret() -> None:
    assert not redact.sensitive_env_name("EMQX_AUTHENTICATION__1__MECHANISM")
    assert not redact.sensitive_env_name("BYPASS_MODE")
    assert redact.sensitive_env_name("EMQX_DASHBOARD__DEFAULT_PASSWORD")
    assert redact.sensitive_env_name("aws_secret_access_key")


def test_hocon_in_the_resource_and_the_configmap_is_redacted() -> None:
    conf = 'dashboard { default_password = "pw-in-config-1" }\n' \
           'authentication = [{password_hash_algorithm {name = sha256}}]\n' \
           'bridges.mqtt.b1 { server = "h:1883", password = "bridge-pass-9", ssl {key = "/k.pem"} }\n'
    body = {"kind": "EMQX", "metadata": {"name": "demo"},
            "spec": {"config": {"data": conf}},
            "status": {"config": {"live": 'node { cookie = "livecookie1" }\n'}}}
    clean = redact.redact_object(body)
    data = clean["spec"]["config"]["data"]
    assert "pw-in-config-1" not in data and "bridge-pass-9" not in data and "/k.pem" not in data
    assert "sha256" in data and "h:1883" in data
    assert "livecookie1" not in clean["status"]["config"]["live"]
    configmap = redact.redact_object({"kind": "ConfigMap", "metadata": {"name": "demo-configs"},
                                      "data": {"emqx.conf": conf, "other": "kept"}})
    assert "bridge-pass-9" not in configmap["data"]["emqx.conf"] and configmap["data"]["other"] == "kept"


def test_unparseable_hocon_is_withheld() -> None:
    assert "withheld" in redact.redact_hocon_text('password = "x" {{{')


def test_scrubber_replaces_known_values_and_their_base64_forms() -> None:
    values = redact.secret_values(SECRET)
    assert "Sup3rS3cretValue" in values and "P4ssw0rdP4ssw0rd" in values
    scrubber = redact.Scrubber(values)
    text = (f"login with P4ssw0rdP4ssw0rd; key kubectl-emqx-operator:Sup3rS3cretValue; "
            f"b64 {_b64('P4ssw0rdP4ssw0rd')}; short ok")
    scrubbed = scrubber.scrub(text)
    assert "P4ssw0rdP4ssw0rd" not in scrubbed and "Sup3rS3cretValue" not in scrubbed
    assert _b64("P4ssw0rdP4ssw0rd") not in scrubbed and "short ok" in scrubbed


def test_scrubber_ignores_values_too_short_to_be_secrets() -> None:
    scrubber = redact.Scrubber(["true", "1", "admin"])
    assert len(scrubber) == 0
    assert scrubber.scrub("true 1 admin") == "true 1 admin"
