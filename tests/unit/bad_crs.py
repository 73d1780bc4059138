"""EMQX resources the CRD schema must reject, each with a substring of the apiserver's error that
names the offending field. Shared by the unit tests and the integration test against a real
apiserver (which applies each body and expects the substring in the error)."""

from __future__ import annotations

import copy
from typing import Any

API_VERSION = "apps.emqx.io/v2beta1"
IMAGE = "emqx/emqx-enterprise:5.8.9"


def _cr(spec: dict[str, Any], name: str = "bad", api_version: str = API_VERSION) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "EMQX", "metadata": {"name": name}, "spec": copy.deepcopy(spec)}


# (description, body, expected substring of the rejection)
BAD_CRS: list[tuple[str, dict[str, Any], str]] = [
    (
        "no image in either form",
        _cr({"coreTemplate": {"spec": {"replicas": 1}}}),
        "exactly one of spec.image and spec.emqxTemplate.image must be set",
    ),
    (
        "both spec.image and spec.emqxTemplate.image",
        _cr({"image": IMAGE, "emqxTemplate": {"image": "emqx/emqx:5.0.6"}}),
        "exactly one of spec.image and spec.emqxTemplate.image must be set",
    ),
    (
        "v2alpha1 body without any image",
        _cr({"bootstrapConfig": "log.console.level = info"}, api_version="apps.emqx.io/v2alpha1"),
        "exactly one of spec.image and spec.emqxTemplate.image must be set",
    ),
    ("image with a space", _cr({"image": "emqx/emqx:5.8 .1"}), "spec.image"),
    ("image with an upper-case repository", _cr({"image": "emqx/EMQX:5.8.9"}), "spec.image"),
    ("malformed emqxTemplate.image", _cr({"emqxTemplate": {"image": "emqx/emqx::5.0.6"}}), "spec.emqxTemplate.image"),
    (
        "no core nodes",
        _cr({"image": IMAGE, "coreTemplate": {"spec": {"replicas": 0}}}),
        "spec.coreTemplate.spec.replicas",
    ),
    (
        "negative replicants",
        _cr({"image": IMAGE, "replicantTemplate": {"spec": {"replicas": -1}}}),
        "spec.replicantTemplate.spec.replicas",
    ),
    (
        "core replicas as a string",
        _cr({"image": IMAGE, "coreTemplate": {"spec": {"replicas": "three"}}}),
        "spec.coreTemplate.spec.replicas",
    ),
    ("config mode in lower case", _cr({"image": IMAGE, "config": {"mode": "merge"}}), "spec.config.mode"),
    (
        "config.data and bootstrapConfig together",
        _cr({"image": IMAGE, "config": {"data": "a = 1"}, "bootstrapConfig": "a = 2"}),
        "set spec.config.data or spec.bootstrapConfig, not both",
    ),
    (
        "bootstrap API key name with a space",
        _cr({"image": IMAGE, "bootstrapAPIKeys": [{"key": "my key", "secret": "secret123"}]}),
        "spec.bootstrapAPIKeys[0].key",
    ),
    (
        "bootstrap API secret too short",
        _cr({"image": IMAGE, "bootstrapAPIKeys": [{"key": "ci", "secret": "ab"}]}),
        "spec.bootstrapAPIKeys[0].secret",
    ),
    (
        "bootstrap API secret containing ':'",
        _cr({"image": IMAGE, "bootstrapAPIKeys": [{"key": "ci", "secret": "abc:def"}]}),
        "spec.bootstrapAPIKeys[0].secret",
    ),
    (
        "bootstrap API key with both secret and secretRef",
        _cr(
            {
                "image": IMAGE,
                "bootstrapAPIKeys": [
                    {
                        "key": "ci",
                        "secret": "secret123",
                        "secretRef": {"secret": {"secretName": "keys", "secretKey": "ci"}},
                    }
                ],
            }
        ),
        "each spec.bootstrapAPIKeys entry needs exactly one of secret and secretRef",
    ),
    (
        "bootstrap API key without a name",
        _cr({"image": IMAGE, "bootstrapAPIKeys": [{"secret": "secret123"}]}),
        "each spec.bootstrapAPIKeys entry needs a name: key or secretRef.key",
    ),
    (
        "core PDB with minAvailable and maxUnavailable",
        _cr({"image": IMAGE, "coreTemplate": {"spec": {"minAvailable": 2, "maxUnavailable": 1}}}),
        "spec.coreTemplate.spec.minAvailable and spec.coreTemplate.spec.maxUnavailable cannot both be set",
    ),
    (
        "replicant PDB with minAvailable and maxUnavailable",
        _cr({"image": IMAGE, "replicantTemplate": {"spec": {"minAvailable": "50%", "maxUnavailable": "50%"}}}),
        "spec.replicantTemplate.spec.minAvailable and spec.replicantTemplate.spec.maxUnavailable cannot both be set",
    ),
    (
        "unknown update strategy type",
        _cr({"image": IMAGE, "updateStrategy": {"type": "BlueGreen"}}),
        "spec.updateStrategy.type",
    ),
    (
        "zero connection eviction rate",
        _cr({"image": IMAGE, "updateStrategy": {"evacuationStrategy": {"connEvictRate": 0}}}),
        "spec.updateStrategy.evacuationStrategy.connEvictRate",
    ),
    (
        "negative initial delay",
        _cr({"image": IMAGE, "updateStrategy": {"initialDelaySeconds": -5}}),
        "spec.updateStrategy.initialDelaySeconds",
    ),
    (
        "allowDowngrade as a string",
        _cr({"image": IMAGE, "updateStrategy": {"allowDowngrade": "yes"}}),
        "spec.updateStrategy.allowDowngrade",
    ),
    ("unknown imagePullPolicy", _cr({"image": IMAGE, "imagePullPolicy": "Sometimes"}), "spec.imagePullPolicy"),
    (
        "clusterDomain that is no DNS name",
        _cr({"image": IMAGE, "clusterDomain": "Cluster_Local"}),
        "spec.clusterDomain",
    ),
    (
        "dashboardServiceTemplate.enabled as a string",
        _cr({"image": IMAGE, "dashboardServiceTemplate": {"enabled": "no"}}),
        "spec.dashboardServiceTemplate.enabled",
    ),
    (
        "env entry without a name",
        _cr({"image": IMAGE, "coreTemplate": {"spec": {"env": [{"value": "x"}]}}}),
        "spec.coreTemplate.spec.env[0].name",
    ),
]

# Resources the schema must accept (the apiserver fills in the defaults).
GOOD_CRS: list[tuple[str, dict[str, Any]]] = [
    (
        "v2alpha1 seed",
        _cr({"emqxTemplate": {"image": "emqx/emqx:5.0.6"}}, name="emqx", api_version="apps.emqx.io/v2alpha1"),
    ),
    ("minimal v2beta1", _cr({"image": IMAGE}, name="minimal")),
    (
        "everything typed",
        _cr(
            {
                "image": "registry.example.com:5000/mirror/emqx/emqx-enterprise:5.8.9@sha256:" + "a" * 64,
                "imagePullPolicy": "IfNotPresent",
                "imagePullSecrets": [{"name": "registry"}],
                "serviceAccountName": "emqx",
                "bootstrapAPIKeys": [
                    {"key": "ci-key_1", "secret": "s3cret-value"},
                    {
                        "secretRef": {
                            "key": {"secretName": "keys", "secretKey": "name"},
                            "secret": {"secretName": "keys", "secretKey": "secret"},
                        }
                    },
                ],
                "config": {"mode": "Replace", "data": "log.console.level = warning"},
                "clusterDomain": "cluster.local",
                "revisionHistoryLimit": 2,
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "initialDelaySeconds": 5,
                    "nodeReadyTimeoutSeconds": 300,
                    "evacuationStrategy": {"waitTakeover": 5, "connEvictRate": 500, "sessEvictRate": 500},
                    "allowDowngrade": True,
                },
                "coreTemplate": {
                    "metadata": {"labels": {"team": "iot"}, "annotations": {"a": "b"}},
                    "spec": {
                        "replicas": 1,
                        "maxUnavailable": 1,
                        "env": [{"name": "EMQX_LOG__CONSOLE__LEVEL", "value": "debug"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                        "volumeClaimTemplates": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                        "toleRations": [{"key": "dedicated", "operator": "Exists"}],
                    },
                },
                "replicantTemplate": {"spec": {"replicas": 0, "minAvailable": "50%"}},
                "dashboardServiceTemplate": {"enabled": False},
                "listenersServiceTemplate": {"spec": {"type": "LoadBalancer"}},
            },
            name="full",
        ),
    ),
]
