from __future__ import annotations

import copy
from typing import Any

import pytest

from kubectl_emqx.domain import spec, validation, vocabulary
from kubectl_emqx.domain.spec import normalize
from kubectl_emqx.domain.validation import validate
from kubectl_emqx.domain.versions import ENTERPRISE, OPENSOURCE

SEED: dict[str, Any] = {
    "apiVersion": "apps.emqx.io/v2alpha1",
    "kind": "EMQX",
    "metadata": {"name": "emqx"},
    "spec": {"emqxTemplate": {"image": "emqx/emqx:5.0.6"}},
}


def cr(spec_body: dict[str, Any], name: str = "demo", namespace: str | None = "prod") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": metadata, "spec": spec_body}


def fields(errors: list[validation.SpecError]) -> list[str]:
    return [error.field for error in errors]


def test_seed_defaults() -> None:
    emqx = normalize(SEED)
    assert (emqx.name, emqx.namespace) == ("emqx", "default")
    assert emqx.image == "emqx/emqx:5.0.6"
    assert emqx.image_field == ("spec", "emqxTemplate", "image")
    assert (emqx.edition, emqx.version) == (OPENSOURCE, (5, 0, 6))
    assert (emqx.core.replicas, emqx.replicant.replicas) == (3, 3)
    assert emqx.config_mode == "Merge" and emqx.config_text == "" and emqx.config == {}
    assert emqx.cluster_domain == "cluster.local"
    assert emqx.dashboard_service.enabled and emqx.listeners_service.enabled
    assert validate(emqx) == []


def test_namespace_argument_fills_missing_namespace() -> None:
    assert normalize(SEED, namespace="team-a").namespace == "team-a"
    assert normalize(cr({"image": "emqx/emqx:5.8.9"}), namespace="ignored").namespace == "prod"


def test_v2beta1_fields() -> None:
    body = cr(
        {
            "image": "emqx/emqx-enterprise:5.8.9",
            "imagePullPolicy": "Always",
            "imagePullSecrets": [{"name": "registry"}],
            "serviceAccountName": "emqx-sa",
            "config": {"mode": "Replace", "data": "log.console.level = debug"},
            "clusterDomain": "example.internal",
            "revisionHistoryLimit": 5,
            "bootstrapAPIKeys": [
                {"key": "ci", "secret": "secret1"},
                {
                    "secretRef": {
                        "key": {"secretName": "k", "secretKey": "name"},
                        "secret": {"secretName": "k", "secretKey": "s"},
                    }
                },
            ],
            "updateStrategy": {
                "type": "Recreate",
                "initialDelaySeconds": 3,
                "evacuationStrategy": {"waitTakeover": 7, "connEvictRate": 10, "sessEvictRate": 20},
                "allowDowngrade": True,
            },
            "coreTemplate": {
                "metadata": {"labels": {"team": "iot"}, "annotations": {"note": "x"}},
                "spec": {
                    "replicas": 5,
                    "toleRations": [{"key": "a"}],
                    "tolerations": [{"key": "b"}],
                    "env": [{"name": "A", "value": "1"}],
                    "volumeClaimTemplates": {"resources": {"requests": {"storage": "2Gi"}}},
                    "maxUnavailable": 2,
                },
            },
            "replicantTemplate": {"spec": {"replicas": 0, "volumeClaimTemplates": {"ignored": True}}},
            "dashboardServiceTemplate": {"enabled": False},
            "listenersServiceTemplate": {"metadata": {"annotations": {"lb": "yes"}}, "spec": {"type": "LoadBalancer"}},
        }
    )
    emqx = normalize(body)
    assert emqx.image_field == ("spec", "image") and emqx.edition == ENTERPRISE
    assert emqx.image_pull_policy == "Always" and emqx.image_pull_secrets == [{"name": "registry"}]
    assert emqx.service_account_name == "emqx-sa"
    assert emqx.config_mode == "Replace" and emqx.config == {"log": {"console": {"level": "debug"}}}
    assert emqx.config_field == ("spec", "config", "data")
    assert emqx.cluster_domain == "example.internal" and emqx.revision_history_limit == 5
    assert emqx.bootstrap_api_keys[0] == spec.BootstrapApiKey(key="ci", secret="secret1")
    assert emqx.bootstrap_api_keys[1].secret_ref == spec.SecretKeyRef("k", "s")
    assert emqx.update_strategy.type == "Recreate" and emqx.update_strategy.allow_downgrade
    assert emqx.update_strategy.evacuation == spec.EvacuationStrategy(7, 10, 20, 60)
    assert emqx.core.replicas == 5 and emqx.core.labels == {"team": "iot"}
    assert emqx.core.tolerations == [{"key": "a"}, {"key": "b"}]
    assert emqx.core.volume_claim_template == {"resources": {"requests": {"storage": "2Gi"}}}
    assert emqx.core.max_unavailable == 2
    assert emqx.replicant.replicas == 0 and emqx.replicant.volume_claim_template is None
    assert not emqx.dashboard_service.enabled
    assert emqx.listeners_service.annotations == {"lb": "yes"}
    assert emqx.listeners_service.spec == {"type": "LoadBalancer"}
    assert validate(emqx) == []


def test_normalize_does_not_alias_the_body() -> None:
    body = cr({"image": "emqx/emqx:5.8.9", "coreTemplate": {"spec": {"env": [{"name": "A", "value": "1"}]}}})
    before = copy.deepcopy(body)
    emqx = normalize(body)
    emqx.core.env[0]["value"] = "changed"
    assert body == before


def test_v2alpha1_bootstrap_config() -> None:
    body = {**SEED, "spec": {**SEED["spec"], "bootstrapConfig": "node.cookie = abc"}}
    emqx = normalize(body)
    assert emqx.config_field == ("spec", "bootstrapConfig")
    assert emqx.config == {"node": {"cookie": "abc"}}


def test_null_templates_get_defaults() -> None:
    emqx = normalize(
        cr({"image": "emqx/emqx-enterprise:5.8.9", "replicantTemplate": None, "coreTemplate": {"spec": None}})
    )
    assert (emqx.core.replicas, emqx.replicant.replicas) == (3, 3)


def test_field_paths() -> None:
    assert spec.image_field_path(SEED) == ("spec", "emqxTemplate", "image")
    assert spec.image_field_path(cr({"image": "x"})) == ("spec", "image")
    assert spec.image_field_path(cr({})) == ("spec", "image")
    assert spec.config_field_path(SEED) == ("spec", "config", "data")
    assert spec.config_field_path(cr({"bootstrapConfig": "a = 1", "config": {"mode": "Merge"}})) == (
        "spec",
        "bootstrapConfig",
    )
    assert spec.config_field_path(cr({"config": {"data": "a = 1"}})) == ("spec", "config", "data")
    assert spec.dotted(("spec", "emqxTemplate", "image")) == "spec.emqxTemplate.image"
    assert spec.merge_patch(("spec", "emqxTemplate", "image"), "emqx/emqx:5.0.7") == {
        "spec": {"emqxTemplate": {"image": "emqx/emqx:5.0.7"}}
    }
    assert spec.get_field(SEED, ("spec", "emqxTemplate", "image")) == "emqx/emqx:5.0.6"
    assert spec.get_field(SEED, ("spec", "missing", "x")) is None


def test_invalid_hocon_is_reported_with_position() -> None:
    emqx = normalize(
        cr(
            {
                "image": "emqx/emqx:5.8.9",
                "replicantTemplate": {"spec": {"replicas": 0}},
                "config": {"data": "log {\n  console.level = info\n}}\n"},
            }
        )
    )
    (error,) = validate(emqx)
    assert error.field == "spec.config.data"
    assert "line 3, column 2" in error.message and error.value == "line 3, column 2"
    assert "line 3" in error.fix


def test_invalid_bootstrap_config_names_that_field() -> None:
    body = {**SEED, "spec": {**SEED["spec"], "bootstrapConfig": "a = [1,"}}
    assert fields(validate(normalize(body))) == ["spec.bootstrapConfig"]


def test_replicants_on_opensource_58() -> None:
    assert validate(normalize(cr({"image": "emqx/emqx:5.8.9"}))) == []  # none asked for: none by default
    (error,) = validate(normalize(cr({"image": "emqx/emqx:5.8.9", "replicantTemplate": {"spec": {"replicas": 3}}})))
    assert error.field == "spec.replicantTemplate.spec.replicas" and error.value == 3
    assert "replicas to 0" in error.fix and "emqx/emqx-enterprise:5.8.9" in error.fix
    assert validate(normalize(cr({"image": "emqx/emqx:5.8.9", "replicantTemplate": {"spec": {"replicas": 0}}}))) == []
    assert validate(normalize(cr({"image": "emqx/emqx:5.7.2"}))) == []
    assert validate(normalize(cr({"image": "emqx/emqx-enterprise:5.8.9"}))) == []


def test_license_needed_from_59_for_more_than_one_node() -> None:
    unlicensed = normalize(cr({"image": "emqx/emqx-enterprise:5.9.0"}))
    (error,) = validate(unlicensed)
    assert error.field == "spec.coreTemplate.spec.env" and "license" in error.message
    assert "license.key" in error.fix
    single = cr(
        {
            "image": "emqx/emqx-enterprise:5.9.0",
            "coreTemplate": {"spec": {"replicas": 1}},
            "replicantTemplate": {"spec": {"replicas": 0}},
        }
    )
    assert validate(normalize(single)) == []
    in_config = cr({"image": "emqx/emqx-enterprise:5.9.0", "config": {"data": 'license.key = "abc"'}})
    assert validate(normalize(in_config)) == []
    env = [{"name": "EMQX_LICENSE__KEY", "valueFrom": {"secretKeyRef": {"name": "lic", "key": "key"}}}]
    cores_only_env = cr({"image": "emqx/emqx-enterprise:5.9.0", "coreTemplate": {"spec": {"env": env}}})
    assert fields(validate(normalize(cores_only_env))) == ["spec.replicantTemplate.spec.env"]
    both = cr(
        {
            "image": "emqx/emqx-enterprise:5.9.0",
            "coreTemplate": {"spec": {"env": env}},
            "replicantTemplate": {"spec": {"envFrom": [{"secretRef": {"name": "lic"}}]}},
        }
    )
    assert validate(normalize(both)) == []
    assert validation.license_configured(normalize(both))
    assert not validation.license_configured(unlicensed)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("mycorp/broker:5.8.9", "unknown image repository"),
        ("emqx/emqx-enterprise:nightly", "does not name an EMQX version"),
        ("emqx/emqx-enterprise@sha256:" + "b" * 64, "does not name an EMQX version"),
        ("emqx/emqx:4.4.19", "not supported"),
    ],
)
def test_image_problems(image: str, words: str) -> None:
    errors = validate(normalize(cr({"image": image, "replicantTemplate": {"spec": {"replicas": 0}}})))
    assert any(e.field == "spec.image" and words in e.message for e in errors), errors


def test_missing_image() -> None:
    errors = validate(normalize(cr({})))
    assert errors[0].field == "spec.image" and "no EMQX image" in errors[0].message


def test_emqx_template_image_errors_name_that_field() -> None:
    body = {**SEED, "spec": {"emqxTemplate": {"image": "mycorp/broker:5.0.6"}}}
    assert fields(validate(normalize(body))) == ["spec.emqxTemplate.image"]


def test_dashboard_and_port_conflicts() -> None:
    base = {"image": "emqx/emqx-enterprise:5.8.9"}
    disabled = normalize(cr({**base, "config": {"data": "dashboard.listeners.http.bind = 0"}}))
    assert "dashboard HTTP listener is disabled" in validate(disabled)[0].message
    clash = normalize(cr({**base, "config": {"data": "listeners.tcp.default.bind = 4370"}}))
    (error,) = validate(clash)
    assert error.value == 4370 and "tcp-default" in error.message
    dashboard_clash = normalize(cr({**base, "config": {"data": "listeners.ws.default.bind = 18083"}}))
    assert "the dashboard" in validate(dashboard_clash)[0].message


def test_topology_and_pdb_rules() -> None:
    errors = validate(
        normalize(
            cr(
                {
                    "image": "emqx/emqx-enterprise:5.8.9",
                    "coreTemplate": {"spec": {"replicas": 0, "minAvailable": 1, "maxUnavailable": 1}},
                    "replicantTemplate": {"spec": {"replicas": -1}},
                }
            )
        )
    )
    assert fields(errors) == [
        "spec.coreTemplate.spec.replicas",
        "spec.replicantTemplate.spec.replicas",
        "spec.coreTemplate.spec.minAvailable",
    ]


def test_config_mode() -> None:
    errors = validate(normalize(cr({"image": "emqx/emqx-enterprise:5.8.9", "config": {"mode": "Patch"}})))
    assert fields(errors) == ["spec.config.mode"]


def test_api_key_rules() -> None:
    keys = [
        {"key": "ok", "secret": "fine-secret"},
        {"key": "both", "secret": "x12", "secretRef": {"secret": {"secretName": "s", "secretKey": "k"}}},
        {"secret": "nameless"},
        {"key": vocabulary.OPERATOR_API_KEY_NAME, "secret": "mine"},
        {"key": "colon", "secret": "a:b"},
    ]
    errors = validate(normalize(cr({"image": "emqx/emqx-enterprise:5.8.9", "bootstrapAPIKeys": keys})))
    assert fields(errors) == [
        "spec.bootstrapAPIKeys[1]",
        "spec.bootstrapAPIKeys[2].key",
        "spec.bootstrapAPIKeys[3].key",
        "spec.bootstrapAPIKeys[4].secret",
    ]
    assert all("a:b" not in str(error) for error in errors)


def test_spec_error_text_names_field_value_and_fix() -> None:
    (error,) = validate(normalize(cr({"image": "emqx/emqx:5.8.9", "replicantTemplate": {"spec": {"replicas": 3}}})))
    text = str(error)
    assert text.startswith("spec.replicantTemplate.spec.replicas: ")
    assert "(value: 3)" in text and "Fix: " in text


def test_normalize_is_deterministic() -> None:
    assert normalize(copy.deepcopy(SEED)) == normalize(copy.deepcopy(SEED))
