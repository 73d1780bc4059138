"""Malformed and hostile input, one row each, for tests/integration/test_bad_input.py: resources created
through the API (refused by the API server's CRD schema, or accepted and refused by the operator's
validation) and plugin invocations (refused by the plugin). Every row names the field (or parameter)
its one-line error must name. The CRD-only rows of tests/unit/bad_crs.py are thrown as well.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kubectl_emqx.domain.spec import MAX_CONFIG_BYTES
from kubectl_emqx.domain.vocabulary import MAX_NAME_LENGTH

EE = "emqx/emqx-enterprise:5.8.5"
DIGEST = "sha256:" + "0123456789abcdef" * 4


@dataclass(frozen=True)
class BadInput:
    what: str
    field: str  # the one-line error must contain this
    refused_by: str  # "apiserver" | "operator" | "plugin"
    body: dict[str, Any] | None = None  # created through the API (metadata.name filled in when absent)
    argv: tuple[str, ...] = ()  # `kubectl emqx <argv> -n NS`; {dir} is a directory holding `files`
    files: dict[str, str] = field(default_factory=dict)


def cr(spec: dict[str, Any] | None = None, name: str | None = None, api_version: str = "apps.emqx.io/v2beta1",
       **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": api_version, "kind": "EMQX", "metadata": {},
                            "spec": {"image": EE, "coreTemplate": {"spec": {"replicas": 1}},
                                     "replicantTemplate": {"spec": {"replicas": 0}}, **copy.deepcopy(spec or {})}}
    if name is not None:
        body["metadata"]["name"] = name
    body.update(extra)
    return body


def config(text: str, **spec: Any) -> dict[str, Any]:
    return cr({"config": {"data": text}, **spec})


def nested(depth: int) -> str:
    return "a {" * depth + " b = 1 " + "}" * depth + "\n"


INCLUDE_CHAIN = "".join(f'include "conf.d/part-{i}.conf"\n' for i in range(2000))
TOO_BIG = "# " + "x" * MAX_CONFIG_BYTES + "\n"
LONG_NAME = "e" * (MAX_NAME_LENGTH + 1)

API: list[BadInput] = [
    BadInput("name one character too long for the derived names", "metadata.name", "apiserver", cr(name=LONG_NAME)),
    BadInput("name with a dot (Services cannot have one)", "metadata.name", "apiserver", cr(name="my.emqx")),
    BadInput("name with unicode", "metadata.name", "apiserver", cr(name="émqx")),
    BadInput("name with a control character", "metadata.name", "apiserver", cr(name="em\tqx")),
    BadInput("name of 300 characters", "metadata.name", "apiserver", cr(name="e" * 300)),
    BadInput("configuration over the size limit", "spec.config.data", "apiserver", config(TOO_BIG)),
    BadInput("v2alpha1 bootstrapConfig over the size limit", "spec.bootstrapConfig", "apiserver",
             cr({"bootstrapConfig": TOO_BIG})),
    BadInput("env name with a line break", "spec.coreTemplate.spec.env[0].name", "apiserver",
             cr({"coreTemplate": {"spec": {"replicas": 1, "env": [{"name": "A\nB", "value": "1"}]}}})),
    BadInput("env name with '='", "spec.replicantTemplate.spec.env[0].name", "apiserver",
             cr({"replicantTemplate": {"spec": {"replicas": 0, "env": [{"name": "A=B", "value": "1"}]}}})),
    BadInput("replicas beyond int32", "spec.coreTemplate.spec.replicas", "apiserver",
             cr({"coreTemplate": {"spec": {"replicas": 9_999_999_999}}})),
    BadInput("replicas as a fraction", "spec.coreTemplate.spec.replicas", "apiserver",
             cr({"coreTemplate": {"spec": {"replicas": 2.5}}})),
    BadInput("replicants as a list", "spec.replicantTemplate.spec.replicas", "apiserver",
             cr({"replicantTemplate": {"spec": {"replicas": [1]}}})),
    BadInput("image of 600 characters", "spec.image", "apiserver", cr({"image": "emqx/" + "e" * 600 + ":5.8.5"})),
    BadInput("image with a control character", "spec.image", "apiserver", cr({"image": "emqx/emqx:5.8.5\x07"})),
    BadInput("image with unicode", "spec.image", "apiserver", cr({"image": "emqx/émqx:5.8.5"})),
    BadInput("image with an upper-case path under an odd registry", "spec.image", "apiserver",
             cr({"image": "Registry.Example.com:5000/Mirror/emqx-enterprise:5.8.5"})),
    BadInput("image digest too short", "spec.image", "apiserver", cr({"image": "emqx/emqx:5.8.5@sha256:abc"})),
    BadInput("image as a number", "spec.image", "apiserver", cr({"image": 585})),
    BadInput("65 bootstrap API keys", "spec.bootstrapAPIKeys", "apiserver",
             cr({"bootstrapAPIKeys": [{"key": f"k{i}", "secret": "secret-value"} for i in range(65)]})),
    BadInput("bootstrap API key name in unicode", "spec.bootstrapAPIKeys[0].key", "apiserver",
             cr({"bootstrapAPIKeys": [{"key": "ключ", "secret": "secret-value"}]})),
    BadInput("restart.at that is no time", "spec.restart.at", "apiserver", cr({"restart": {"at": "yesterday"}})),
    BadInput("restart.role unknown", "spec.restart.role", "apiserver",
             cr({"restart": {"at": "2026-12-01T10:00:00Z", "role": "some"}})),
    BadInput("config as a string", "spec.config", "apiserver", cr({"config": "log.console.level = debug"})),
    BadInput("coreTemplate.spec as a list", "spec.coreTemplate.spec", "apiserver", cr({"coreTemplate": {"spec": [1]}})),
    BadInput("clusterDomain of 300 characters", "spec.clusterDomain", "apiserver",
             cr({"clusterDomain": ("a" * 60 + ".") * 5})),
    BadInput("nodeReadyTimeoutSeconds zero", "spec.updateStrategy.nodeReadyTimeoutSeconds", "apiserver",
             cr({"updateStrategy": {"nodeReadyTimeoutSeconds": 0}})),
    BadInput("waitTakeover beyond int32", "spec.updateStrategy.evacuationStrategy.waitTakeover", "apiserver",
             cr({"updateStrategy": {"evacuationStrategy": {"waitTakeover": 2**40}}})),
    BadInput("imagePullSecrets entry without a name", "spec.imagePullSecrets[0].name", "apiserver",
             cr({"imagePullSecrets": [{}]})),
    BadInput("no spec at all", "spec", "apiserver", {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX",
                                                     "metadata": {}}),
    # Accepted by the schema, refused by the operator's validation: Valid=False naming the field,
    # and no owned object written.
    BadInput("image of an unknown repository under an odd registry", "spec.image", "operator",
             cr({"image": "quay.io:443/someone/mqtt-broker:5.8.5"})),
    BadInput("image by digest only (no version)", "spec.image", "operator", cr({"image": f"emqx/emqx@{DIGEST}"})),
    BadInput("EMQX 4 image", "spec.image", "operator", cr({"image": "emqx/emqx:4.4.19"})),
    BadInput("image tag that is no version", "spec.image", "operator", cr({"image": "emqx/emqx-enterprise:stable"})),
    BadInput("HOCON syntax error", "spec.config.data", "operator", config("log.console.level = [debug,\n")),
    BadInput("HOCON bomb: nested 60 deep", "spec.config.data", "operator", config(nested(60))),
    BadInput("HOCON bomb: arrays nested 80 deep", "spec.config.data", "operator",
             config("a = " + "[" * 80 + "1" + "]" * 80 + "\n")),
    BadInput("HOCON bomb: 2000 includes", "spec.config.data", "operator", config(INCLUDE_CHAIN)),
    BadInput("HOCON include of a local file", "spec.config.data", "operator",
             config('include file("/var/run/secrets/kubernetes.io/serviceaccount/token")\n')),
    BadInput("HOCON include of a URL", "spec.config.data", "operator",
             config('include url("http://169.254.169.254/latest/meta-data/")\n')),
    BadInput("U+2028 in a configuration string", "spec.config.data", "operator",
             config('log.console.formatter = "te\u2028xt"\n')),
    BadInput("node.name set in the configuration", "spec.config.data", "operator", config("node.name = x@y\n")),
    BadInput("discovery strategy set in the configuration", "spec.config.data", "operator",
             config("cluster.discovery_strategy = static\n")),
    BadInput("dashboard listener disabled", "spec.config.data", "operator",
             config("dashboard.listeners.http.bind = 0\n")),
    BadInput("listener on the Erlang distribution port", "spec.config.data", "operator",
             config("listeners.tcp.default.bind = 4370\n")),
    BadInput("v2alpha1 configuration with a syntax error", "spec.bootstrapConfig", "operator",
             {**cr(api_version="apps.emqx.io/v2alpha1"),
              "spec": {"emqxTemplate": {"image": EE}, "bootstrapConfig": "a = {"}}),
    BadInput("replicants on Opensource 5.8", "spec.replicantTemplate.spec.replicas", "operator",
             cr({"image": "emqx/emqx:5.8.9", "replicantTemplate": {"spec": {"replicas": 2}}})),
    BadInput("two nodes of 5.9 without a licence", "spec.coreTemplate.spec.env", "operator",
             cr({"image": "emqx/emqx-enterprise:5.9.1", "coreTemplate": {"spec": {"replicas": 2}}})),
    BadInput("a dotted key before 5.3.1", "spec.config.data", "operator",
             config('authorization.sources = []\n"a.b" = 1\n', image="emqx/emqx:5.0.26")),
    BadInput("the operator's own API key name", "spec.bootstrapAPIKeys[0].key", "operator",
             cr({"bootstrapAPIKeys": [{"key": "kubectl-emqx-operator", "secret": "secret-value"}]})),
    BadInput("an API key from a Secret that does not exist", "spec.bootstrapAPIKeys[0].secretRef.secret",
             "operator", cr({"bootstrapAPIKeys": [{"key": "ci", "secretRef": {
                 "secret": {"secretName": "nowhere", "secretKey": "s"}}}]})),
    BadInput("a budget of half the cores, in words", "spec.coreTemplate.spec.minAvailable", "operator",
             cr({"coreTemplate": {"spec": {"replicas": 1, "minAvailable": "half"}}})),
    BadInput("a budget of more than 100%", "spec.coreTemplate.spec.maxUnavailable", "operator",
             cr({"coreTemplate": {"spec": {"replicas": 1, "maxUnavailable": "150%"}}})),
    BadInput("a pod label Kubernetes refuses (the CRD keeps labels opaque)", "spec.template.labels",
             "operator", cr({"coreTemplate": {"metadata": {"labels": {"bad key!": "x"}}, "spec": {"replicas": 1}}})),
    BadInput("a probe Kubernetes refuses (opaque in the CRD)", "readinessProbe", "operator",
             cr({"coreTemplate": {"spec": {"replicas": 1, "readinessProbe": {"periodSeconds": -5,
                                                                             "tcpSocket": {"port": 1883}}}}})),
]

TARGET = "target"  # the plugin rows' existing resource (emqx/emqx-enterprise:5.8.5, 1 core)

PLUGIN: list[BadInput] = [
    BadInput("create: name one character too long", "NAME", "plugin", argv=("create", LONG_NAME)),
    BadInput("create: name with unicode", "NAME", "plugin", argv=("create", "émqx")),
    BadInput("create: name with a line break", "NAME", "plugin", argv=("create", "em\nqx")),
    BadInput("create: name with a dot", "NAME", "plugin", argv=("create", "my.emqx")),
    BadInput("create: zero cores", "--cores", "plugin", argv=("create", "p1", "--cores", "0")),
    BadInput("create: negative replicants", "--replicants", "plugin", argv=("create", "p1", "--replicants", "-2")),
    BadInput("create: cores beyond int32", "spec.coreTemplate.spec.replicas", "plugin",
             argv=("create", "p1", "--cores", "99999999999")),
    BadInput("create: image with a space", "spec.image", "plugin", argv=("create", "p1", "--image", "emqx/emqx:5.8 9")),
    BadInput("create: image of an unknown repository", "spec.image", "plugin",
             argv=("create", "p1", "--image", "quay.io:443/someone/mqtt:5.8.5")),
    BadInput("create: image by digest only", "spec.image", "plugin",
             argv=("create", "p1", "--image", f"emqx/emqx@{DIGEST}")),
    BadInput("create: EMQX 4", "spec.image", "plugin", argv=("create", "p1", "--image", "emqx/emqx:4.4.19")),
    BadInput("create: replicants on Opensource 5.8", "spec.replicantTemplate.spec.replicas", "plugin",
             argv=("create", "p1", "--image", "emqx/emqx:5.8.9", "--replicants", "2")),
    BadInput("create: 5.9 cluster without a licence", "spec.coreTemplate.spec.env", "plugin",
             argv=("create", "p1", "--image", "emqx/emqx-enterprise:5.9.1", "--cores", "3")),
    BadInput("create: an owned key", "spec.config.data", "plugin", argv=("create", "p1", "--set", "node.name=a@b")),
    BadInput("create: U+2028 in a value", "spec.config.data", "plugin",
             argv=("create", "p1", "--set", 'log.console.formatter="a\u2028b"')),
    BadInput("create: a setting without '='", "KEY=VALUE", "plugin", argv=("create", "p1", "--set", "novalue")),
    BadInput("create: a config file nested 60 deep", "nested too deeply", "plugin",
             argv=("create", "p1", "--config-file", "{dir}/deep.conf"), files={"deep.conf": nested(60)}),
    BadInput("create: a config file of 2000 includes", "include is not supported", "plugin",
             argv=("create", "p1", "--config-file", "{dir}/includes.conf"), files={"includes.conf": INCLUDE_CHAIN}),
    BadInput("create: a config file over the size limit", "spec.config.data", "plugin",
             argv=("create", "p1", "--config-file", "{dir}/big.conf"), files={"big.conf": TOO_BIG}),
    BadInput("create: storage size that is no quantity", "--storage-size", "plugin",
             argv=("create", "p1", "--storage-size", "10XB")),
    BadInput("create: unknown Service type", "--service-type", "plugin",
             argv=("create", "p1", "--service-type", "Ingress")),
    BadInput("scale: zero cores", "N", "plugin", argv=("scale", "cores", TARGET, "0", "--yes")),
    BadInput("scale: replicants as text", "N", "plugin", argv=("scale", "replicants", TARGET, "many")),
    BadInput("scale: replicants beyond int32", "spec.replicantTemplate.spec.replicas", "plugin",
             argv=("scale", "replicants", TARGET, "99999999999", "--yes")),
    BadInput("config set: the node cookie", "spec.config.data", "plugin",
             argv=("config", "set", TARGET, "node.cookie=stolen", "--yes")),
    BadInput("config set: a listener on the gen_rpc port", "spec.config.data", "plugin",
             argv=("config", "set", TARGET, "listeners.tcp.default.bind=5369", "--yes")),
    BadInput("config set: a key with a control character", "KEY=VALUE", "plugin",
             argv=("config", "set", TARGET, "lo\x07g.console.level=debug", "--yes")),
    BadInput("config set: a value that breaks the syntax", "log.console.level=[debug", "plugin",
             argv=("config", "set", TARGET, "log.console.level=[debug", "--yes")),
    BadInput("upgrade: a major jump back to EMQX 4", "spec.image", "plugin",
             argv=("upgrade", TARGET, "--image", "emqx/emqx-enterprise:4.4.19", "--yes")),
    BadInput("upgrade: an image that is no reference", "spec.image", "plugin",
             argv=("upgrade", TARGET, "--image", "not an image", "--yes")),
    BadInput("upgrade: a downgrade without --allow-downgrade", "allow-downgrade", "plugin",
             argv=("upgrade", TARGET, "--image", "emqx/emqx-enterprise:5.8.4", "--yes")),
    BadInput("upgrade: to another edition's repository", "spec.image", "plugin",
             argv=("upgrade", TARGET, "--image", "quay.io:443/someone/mqtt:5.8.6", "--yes")),
]
