"""Pure parts of the operator's hot configuration: what is PUT, and what status may show."""

from __future__ import annotations

from emqx_operator import config_sync

from kubectl_emqx import spec


def _spec(image: str, config: str) -> spec.EmqxSpec:
    return spec.normalize({
        "apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": {"name": "x", "namespace": "ns"},
        "spec": {"image": image, "config": {"data": config}},
    })


def test_payload_uses_ignore_readonly_from_57() -> None:
    text, flags = config_sync.payload(_spec("emqx/emqx:5.7.2", "node.cookie = abc\nlog.console.level = debug\n"))
    assert flags == {"ignore_readonly": "true"}
    assert "node" in text and "debug" in text


def test_payload_strips_read_only_roots_before_57() -> None:
    text, flags = config_sync.payload(_spec("emqx/emqx:5.6.1", "node.cookie = abc\nlog.console.level = debug\n"))
    assert flags is None
    assert "cookie" not in text and "debug" in text


def test_redact_hides_secrets_at_any_depth() -> None:
    live = {"dashboard": {"default_password": "p", "listeners": {"http": {"bind": 18083}}},
            "license": {"key": "LIC"}, "node": {"cookie": "c"}, "authn": [{"secret": "s", "keyfile": "/k"}]}
    assert config_sync.redact(live) == {
        "dashboard": {"default_password": "******", "listeners": {"http": {"bind": 18083}}},
        "license": {"key": "******"}, "node": {"cookie": "******"},
        "authn": [{"secret": "******", "keyfile": "/k"}],
    }
