from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from kubectl_emqx.domain import builders, hocon, spec, validation, vocabulary
from kubectl_emqx.domain.builders import SecretValues
from kubectl_emqx.domain.hocon import ListenerPort

SEED: dict[str, Any] = {
    "apiVersion": "apps.emqx.io/v2alpha1",
    "kind": "EMQX",
    "metadata": {"name": "emqx"},
    "spec": {"emqxTemplate": {"image": "emqx/emqx:5.0.6"}},
}
VALUES = SecretValues(node_cookie="cookie123", api_key=vocabulary.OPERATOR_API_KEY_NAME, api_secret="secret456")
OWNER = {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": {"name": "emqx", "uid": "uid-1"}}


def cr(spec_body: dict[str, Any], name: str = "demo") -> dict[str, Any]:
    return {
        "apiVersion": "apps.emqx.io/v2beta1",
        "kind": "EMQX",
        "metadata": {"name": name, "namespace": "prod"},
        "spec": spec_body,
    }


def by_kind_and_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]["containers"][0]


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload)["env"]}


def decoded(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def all_objects(emqx: spec.EmqxSpec, values: SecretValues, replicants_running: bool = False) -> list[dict[str, Any]]:
    """Every object a resource owns, built the way the operator builds them."""
    ports = hocon.listener_ports(builders.effective_config(emqx))
    objects = [
        *builders.build_secrets(emqx, values),
        builders.build_configmap(emqx),
        builders.build_headless_service(emqx),
        builders.build_statefulset(emqx),
        builders.build_deployment(emqx),
        builders.build_dashboard_service(emqx),
        builders.build_listeners_service(emqx, ports, replicants_running),
        *builders.build_pdbs(emqx),
    ]
    return [o for o in objects if o is not None]


@pytest.fixture
def seed_objects() -> dict[tuple[str, str], dict[str, Any]]:
    return by_kind_and_name(all_objects(spec.normalize(SEED), VALUES))


def test_seed_objects_and_names() -> None:
    objects = all_objects(spec.normalize(SEED), VALUES)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Secret", "emqx-node-cookie"),
        ("Secret", "emqx-bootstrap-api-key"),
        ("ConfigMap", "emqx-configs"),
        ("Service", "emqx-headless"),
        ("StatefulSet", "emqx-core"),
        ("Deployment", "emqx-replicant"),
        ("Service", "emqx-dashboard"),
        ("Service", "emqx-listeners"),
        ("PodDisruptionBudget", "emqx-core"),
        ("PodDisruptionBudget", "emqx-replicant"),
    ]
    assert all(o["metadata"]["namespace"] == "default" for o in objects)


def test_seed_core_env_uses_db_role(seed_objects: dict) -> None:
    statefulset = seed_objects[("StatefulSet", "emqx-core")]
    assert statefulset["spec"]["replicas"] == 3
    env = env_of(statefulset)
    assert env == {
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "EMQX_CLUSTER__DISCOVERY_STRATEGY": "dns",
        "EMQX_CLUSTER__DNS__RECORD_TYPE": "srv",
        "EMQX_CLUSTER__DNS__NAME": "emqx-headless.default.svc.cluster.local",
        "EMQX_HOST": "$(POD_NAME).$(EMQX_CLUSTER__DNS__NAME)",
        "EMQX_NODE__DATA_DIR": "data",
        "EMQX_NODE__DB_ROLE": "core",
        "EMQX_NODE__COOKIE": {"secretKeyRef": {"name": "emqx-node-cookie", "key": "node_cookie"}},
        # 5.0.6 predates bootstrap API keys (5.0.14): the operator logs in as the dashboard admin.
        "EMQX_DASHBOARD__DEFAULT_PASSWORD": {"secretKeyRef": {
            "name": "emqx-bootstrap-api-key", "key": "dashboard_password", "optional": True}},
    }
    names = [e["name"] for e in container(statefulset)["env"]]
    assert names.index("POD_NAME") < names.index("EMQX_CLUSTER__DNS__NAME") < names.index("EMQX_HOST")


def test_seed_replicant_env(seed_objects: dict) -> None:
    deployment = seed_objects[("Deployment", "emqx-replicant")]
    assert deployment["spec"]["replicas"] == 3
    env = env_of(deployment)
    assert env["EMQX_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["EMQX_NODE__DB_ROLE"] == "replicant"
    assert env["EMQX_CLUSTER__DNS__NAME"] == "emqx-headless.default.svc.cluster.local"
    assert "EMQX_NODE__ROLE" not in env


def test_role_env_for_newer_versions() -> None:
    emqx = spec.normalize(cr({"image": "emqx/emqx-enterprise:5.8.9"}))
    assert env_of(builders.build_statefulset(emqx))["EMQX_NODE__ROLE"] == "core"
    assert env_of(builders.build_deployment(emqx))["EMQX_NODE__ROLE"] == "replicant"
    assert "EMQX_NODE__DB_ROLE" not in env_of(builders.build_statefulset(emqx))
    assert env_of(builders.build_statefulset(emqx))["EMQX_CLUSTER__DNS__NAME"] == "demo-headless.prod.svc.cluster.local"


def test_labels_and_selectors(seed_objects: dict) -> None:
    for (kind, _), obj in seed_objects.items():
        labels = obj["metadata"]["labels"]
        assert labels["apps.emqx.io/instance"] == "emqx" and labels["apps.emqx.io/managed-by"] == "kubectl-emqx", kind
    for kind, name, role in (("StatefulSet", "emqx-core", "core"), ("Deployment", "emqx-replicant", "replicant")):
        workload = seed_objects[(kind, name)]
        selector = {
            "apps.emqx.io/instance": "emqx",
            "apps.emqx.io/managed-by": "kubectl-emqx",
            "apps.emqx.io/db-role": role,
        }
        assert workload["spec"]["selector"] == {"matchLabels": selector}
        assert workload["spec"]["template"]["metadata"]["labels"] == selector
        assert container(workload)["name"] == "emqx"
    assert vocabulary.label_selector("emqx", "replicant") == "apps.emqx.io/instance=emqx,apps.emqx.io/db-role=replicant"


def test_pod_defaults(seed_objects: dict) -> None:
    statefulset = seed_objects[("StatefulSet", "emqx-core")]
    pod = statefulset["spec"]["template"]["spec"]
    emqx = container(statefulset)
    assert pod["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "fsGroupChangePolicy": "Always",
        "supplementalGroups": [1000],
    }
    assert emqx["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True}
    # A startup probe every second: Ready as soon as EMQX answers, no fixed delay per node.
    assert emqx["startupProbe"] == {
        "httpGet": {"path": "/status", "port": "dashboard"},
        "periodSeconds": 1,
        "failureThreshold": 300,
    }
    assert emqx["readinessProbe"] == {
        "httpGet": {"path": "/status", "port": "dashboard"},
        "periodSeconds": 2,
        "failureThreshold": 3,
    }
    assert emqx["livenessProbe"] == {
        "httpGet": {"path": "/status", "port": "dashboard"},
        "periodSeconds": 30,
        "failureThreshold": 3,
    }
    assert emqx["ports"] == [
        {"name": "dashboard", "containerPort": 18083, "protocol": "TCP"},
        {"name": "ekka", "containerPort": 4370, "protocol": "TCP"},
        {"name": "genrpc", "containerPort": 5369, "protocol": "TCP"},
    ]
    assert pod["enableServiceLinks"] is False
    assert emqx["volumeMounts"] == [
        {"name": "data", "mountPath": "/opt/emqx/data"},
        {"name": "log", "mountPath": "/opt/emqx/log"},
        {"name": "emqx-config", "mountPath": "/opt/emqx/etc/emqx.conf", "subPath": "emqx.conf", "readOnly": True},
        {
            "name": "bootstrap-api-key",
            "mountPath": "/opt/emqx/data/bootstrap_api_key",
            "subPath": "bootstrap_api_key",
            "readOnly": True,
        },
    ]
    assert pod["volumes"] == [
        {"name": "data", "emptyDir": {}},
        {"name": "log", "emptyDir": {}},
        {"name": "emqx-config", "configMap": {"name": "emqx-configs"}},
        {"name": "bootstrap-api-key", "secret": {"secretName": "emqx-bootstrap-api-key"}},
    ]


def test_statefulset_shape(seed_objects: dict) -> None:
    statefulset_spec = seed_objects[("StatefulSet", "emqx-core")]["spec"]
    assert statefulset_spec["serviceName"] == "emqx-headless"
    assert statefulset_spec["podManagementPolicy"] == "Parallel"
    assert statefulset_spec["updateStrategy"] == {"type": "OnDelete"}
    assert "volumeClaimTemplates" not in statefulset_spec


def test_statefulset_volume_claims() -> None:
    emqx = spec.normalize(
        cr(
            {
                "image": "emqx/emqx-enterprise:5.8.9",
                "coreTemplate": {
                    "spec": {
                        "volumeClaimTemplates": {
                            "storageClassName": "fast",
                            "resources": {"requests": {"storage": "5Gi"}},
                        }
                    }
                },
            }
        )
    )
    statefulset_spec = builders.build_statefulset(emqx)["spec"]
    (claim,) = statefulset_spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"] == {
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "5Gi"}},
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
    }
    assert statefulset_spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Delete"}
    volumes = [v["name"] for v in statefulset_spec["template"]["spec"]["volumes"]]
    assert "data" not in volumes
    replicant_volumes = builders.build_deployment(emqx)["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in replicant_volumes


def test_deployment_shape(seed_objects: dict) -> None:
    deployment_spec = seed_objects[("Deployment", "emqx-replicant")]["spec"]
    assert deployment_spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_image_override_and_env_follow_that_image() -> None:
    emqx = spec.normalize(cr({"image": "emqx/emqx:5.0.26"}))
    held = builders.build_deployment(emqx, image="emqx/emqx:5.0.25")
    assert container(held)["image"] == "emqx/emqx:5.0.25"
    assert env_of(held)["EMQX_NODE__DB_ROLE"] == "replicant"
    assert env_of(builders.build_deployment(emqx))["EMQX_NODE__ROLE"] == "replicant"
    assert container(builders.build_statefulset(emqx, image="emqx/emqx:5.0.25"))["image"] == "emqx/emqx:5.0.25"


def test_headless_service(seed_objects: dict) -> None:
    headless = seed_objects[("Service", "emqx-headless")]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert headless["selector"]["apps.emqx.io/db-role"] == "core"
    assert [(p["name"], p["port"]) for p in headless["ports"]] == [("ekka", 4370), ("genrpc", 5369)]


def test_dashboard_service(seed_objects: dict) -> None:
    dashboard = seed_objects[("Service", "emqx-dashboard")]["spec"]
    assert dashboard["selector"]["apps.emqx.io/db-role"] == "core"
    assert dashboard["ports"] == [{"name": "dashboard", "port": 18083, "targetPort": 18083, "protocol": "TCP"}]
    assert dashboard["type"] == "ClusterIP"


def test_dashboard_port_from_config() -> None:
    emqx = spec.normalize(
        cr(
            {
                "image": "emqx/emqx-enterprise:5.8.9",
                "config": {"data": 'dashboard.listeners.http.bind = "0.0.0.0:18084"'},
            }
        )
    )
    dashboard = builders.build_dashboard_service(emqx)
    assert dashboard is not None and dashboard["spec"]["ports"][0]["port"] == 18084
    assert container(builders.build_statefulset(emqx))["ports"][0] == {
        "name": "dashboard",
        "containerPort": 18084,
        "protocol": "TCP",
    }


def test_service_templates_merge() -> None:
    emqx = spec.normalize(
        cr(
            {
                "image": "emqx/emqx-enterprise:5.8.9",
                "dashboardServiceTemplate": {"enabled": False},
                "listenersServiceTemplate": {
                    "metadata": {"labels": {"expose": "public"}, "annotations": {"lb/class": "nlb"}},
                    "spec": {
                        "type": "LoadBalancer",
                        "selector": {"ignored": "yes"},
                        "ports": [
                            {
                                "name": "tcp-default",
                                "port": 1883,
                                "targetPort": 1883,
                                "nodePort": 31883,
                                "protocol": "TCP",
                            }
                        ],
                    },
                },
            }
        )
    )
    assert builders.build_dashboard_service(emqx) is None
    ports = [ListenerPort("tcp-default", "TCP", 1883), ListenerPort("quic-default", "UDP", 14567)]
    service = builders.build_listeners_service(emqx, ports, replicants_running=True)
    assert service is not None
    assert service["metadata"]["labels"]["expose"] == "public"
    assert service["metadata"]["annotations"] == {"lb/class": "nlb"}
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"]["apps.emqx.io/db-role"] == "replicant"
    assert "ignored" not in service["spec"]["selector"]
    assert service["spec"]["ports"] == [
        {"name": "quic-default", "port": 14567, "targetPort": 14567, "protocol": "UDP"},
        {"name": "tcp-default", "port": 1883, "targetPort": 1883, "nodePort": 31883, "protocol": "TCP"},
    ]
    objects = by_kind_and_name(all_objects(emqx, VALUES))
    assert ("Service", "demo-dashboard") not in objects


def test_listeners_service_selects_cores_without_replicants(seed_objects: dict) -> None:
    listeners = seed_objects[("Service", "emqx-listeners")]["spec"]
    assert listeners["selector"]["apps.emqx.io/db-role"] == "core"
    assert sorted(p["port"] for p in listeners["ports"]) == [1883, 8083, 8084, 8883]


def test_listeners_service_ports_from_config() -> None:
    emqx = spec.normalize(
        cr(
            {
                "image": "emqx/emqx-enterprise:5.8.9",
                "config": {"data": ("listeners.ssl.default.enable = false\nlisteners.quic.default.bind = 14567\n")},
            }
        )
    )
    service = by_kind_and_name(all_objects(emqx, VALUES, replicants_running=True))[
        ("Service", "demo-listeners")
    ]
    assert [(p["name"], p["protocol"], p["port"]) for p in service["spec"]["ports"]] == [
        ("quic-default", "UDP", 14567),
        ("tcp-default", "TCP", 1883),
        ("ws-default", "TCP", 8083),
        ("wss-default", "TCP", 8084),
    ]
    assert service["spec"]["selector"]["apps.emqx.io/db-role"] == "replicant"


def test_pdbs() -> None:
    emqx = spec.normalize(
        cr({"image": "emqx/emqx-enterprise:5.8.9", "replicantTemplate": {"spec": {"minAvailable": "50%"}}})
    )
    core, replicant = builders.build_pdbs(emqx)
    assert core["metadata"]["name"] == "demo-core" and core["apiVersion"] == "policy/v1"
    assert core["spec"]["maxUnavailable"] == 1 and "minAvailable" not in core["spec"]
    assert core["spec"]["selector"]["matchLabels"]["apps.emqx.io/db-role"] == "core"
    assert replicant["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in replicant["spec"]


def test_secrets() -> None:
    emqx = spec.normalize(
        cr(
            {
                "image": "emqx/emqx-enterprise:5.8.9",
                "bootstrapAPIKeys": [
                    {"key": "ci", "secret": "ci-secret"},
                    {
                        "secretRef": {
                            "key": {"secretName": "s", "secretKey": "k"},
                            "secret": {"secretName": "s", "secretKey": "v"},
                        }
                    },
                ],
            }
        )
    )
    cookie, api_keys = builders.build_secrets(emqx, VALUES, referenced_api_keys=[("fromref", "ref-secret")])
    assert cookie["metadata"]["name"] == "demo-node-cookie" and decoded(cookie, "node_cookie") == "cookie123"
    assert api_keys["metadata"]["name"] == "demo-bootstrap-api-key"
    assert (
        decoded(api_keys, "bootstrap_api_key")
        == f"{vocabulary.OPERATOR_API_KEY_NAME}:secret456\nci:ci-secret\nfromref:ref-secret\n"
    )
    assert cookie["type"] == "Opaque"


def test_new_secret_values() -> None:
    first, second = builders.new_secret_values(), builders.new_secret_values()
    assert first.api_key == vocabulary.OPERATOR_API_KEY_NAME
    assert first.node_cookie != second.node_cookie and first.api_secret != second.api_secret
    assert len(first.node_cookie) == 64 and first.api_secret.isalnum() and ":" not in first.api_secret
    configured = spec.normalize(cr({"image": "emqx/emqx:5.8.9", "config": {"data": "node.cookie = mine"}}))
    assert builders.new_secret_values(configured).node_cookie == "mine"


def test_configmap_holds_effective_config() -> None:
    user = "# my settings\nlog.console.level = debug\n"
    emqx = spec.normalize(cr({"image": "emqx/emqx-enterprise:5.8.9", "config": {"data": user}}))
    configmap = builders.build_configmap(emqx)
    assert configmap["metadata"]["name"] == "demo-configs"
    text = configmap["data"]["emqx.conf"]
    assert text.endswith(user)
    assert hocon.parse(text) == {
        "dashboard": {"listeners": {"http": {"bind": 18083}}},
        "log": {"console": {"level": "debug"}},
    }
    override = spec.normalize(
        cr({"image": "emqx/emqx-enterprise:5.8.9", "config": {"data": "dashboard.listeners.http.bind = 18090"}})
    )
    assert hocon.dashboard_port(hocon.parse(builders.build_configmap(override)["data"]["emqx.conf"])) == 18090
    seed = spec.normalize(SEED)
    empty = builders.build_configmap(seed)["data"]["emqx.conf"]
    assert hocon.parse(empty) == builders.boot_defaults(seed)


def test_emqx_conf_declares_the_shipped_listeners_and_acl_before_5_0_25() -> None:
    """Before 5.0.25 / e5.0.3 EMQX's schema has no listener defaults: only the shipped emqx.conf, which
    ours replaces, declares them (emqx_schema.erl@v5.0.6, apps/emqx/etc/emqx.conf@v5.0.6)."""
    old = builders.effective_config(spec.normalize(SEED))  # emqx/emqx:5.0.6
    assert hocon.get_path(old, "listeners.tcp.default.bind") == "0.0.0.0:1883"
    assert hocon.get_path(old, "listeners.ssl.default.ssl_options.certfile") == "/opt/emqx/etc/certs/cert.pem"
    assert {p.name: p.port for p in hocon.listener_ports(old)} == {
        "ssl-default": 8883, "tcp-default": 1883, "ws-default": 8083, "wss-default": 8084}
    assert hocon.get_path(old, "authorization.sources") == [
        {"type": "file", "enable": True, "path": "/opt/emqx/etc/acl.conf"}]
    for image in ("emqx/emqx:5.0.25", "emqx/emqx-enterprise:5.0.3", "emqx/emqx:5.8.9"):
        new = builders.boot_defaults(spec.normalize(cr({"image": image})))
        assert "listeners" not in new and "authorization" not in new, image
    # The resource's own listener and ACL settings are kept, and only what it leaves out is added.
    own = spec.normalize(cr({"image": "emqx/emqx:5.0.6", "config": {"data": (
        "listeners.tcp.default.bind = 11883\nauthorization.sources = []\n")}}))
    defaults = builders.boot_defaults(own)
    assert "tcp" not in defaults["listeners"] and "ssl" in defaults["listeners"]
    assert "authorization" not in defaults
    assert hocon.get_path(builders.effective_config(own), "listeners.tcp.default.bind") == 11883


def test_restart_hash_annotation() -> None:
    def pod_hash(config: str) -> str:
        emqx = spec.normalize(cr({"image": "emqx/emqx-enterprise:5.8.9", "config": {"data": config}}))
        statefulset = builders.build_statefulset(emqx)
        deployment = builders.build_deployment(emqx)
        value = statefulset["spec"]["template"]["metadata"]["annotations"][vocabulary.ANNOTATION_RESTART_HASH]
        assert deployment["spec"]["template"]["metadata"]["annotations"][vocabulary.ANNOTATION_RESTART_HASH] == value
        return value

    base = pod_hash("")
    assert pod_hash("log.console.level = debug") == base
    assert pod_hash("listeners.tcp.default.bind = 1884") == base
    assert pod_hash("dashboard.listeners.http.bind = 18083") == base
    assert pod_hash("node.max_ports = 2097152") != base
    assert pod_hash("dashboard.listeners.http.bind = 18084") != base
    explicit = builders.build_statefulset(spec.normalize(SEED), restart_hash="abc")
    assert explicit["spec"]["template"]["metadata"]["annotations"][vocabulary.ANNOTATION_RESTART_HASH] == "abc"


def test_template_pass_through() -> None:
    pod_settings = {
        "replicas": 2,
        "nodeSelector": {"disk": "ssd"},
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}],
        "command": ["/bin/sh"],
        "args": ["-c", "exec emqx foreground"],
        "ports": [{"name": "metrics", "containerPort": 9100}, {"name": "dashboard", "containerPort": 1}],
        "env": [{"name": "EMQX_NODE__DATA_DIR", "value": "other"}, {"name": "EXTRA", "value": "1"}],
        "envFrom": [{"secretRef": {"name": "license"}}],
        "resources": {"limits": {"memory": "1Gi"}},
        "podSecurityContext": {"runAsUser": 2000},
        "containerSecurityContext": {"readOnlyRootFilesystem": True},
        "initContainers": [{"name": "init", "image": "busybox"}],
        "extraContainers": [{"name": "sidecar", "image": "busybox"}],
        "extraVolumes": [{"name": "certs", "secret": {"secretName": "tls"}}],
        "extraVolumeMounts": [{"name": "certs", "mountPath": "/opt/emqx/etc/certs"}],
        "livenessProbe": {"tcpSocket": {"port": "dashboard"}},
        "readinessProbe": {"httpGet": {"path": "/status", "port": "dashboard"}, "periodSeconds": 2},
        "startupProbe": {"httpGet": {"path": "/status", "port": "dashboard"}, "failureThreshold": 60},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
    }
    emqx = spec.normalize(
        cr(
            {
                "image": "emqx/emqx-enterprise:5.8.9",
                "imagePullPolicy": "IfNotPresent",
                "imagePullSecrets": [{"name": "registry"}],
                "serviceAccountName": "emqx",
                "replicantTemplate": {
                    "metadata": {
                        "labels": {"team": "iot", "apps.emqx.io/db-role": "spoofed"},
                        "annotations": {"prometheus.io/scrape": "true"},
                    },
                    "spec": pod_settings,
                },
            }
        )
    )
    deployment = builders.build_deployment(emqx)
    template = deployment["spec"]["template"]
    pod = template["spec"]
    emqx_container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert template["metadata"]["labels"]["team"] == "iot"
    assert template["metadata"]["labels"]["apps.emqx.io/db-role"] == "replicant"
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["serviceAccountName"] == "emqx" and pod["imagePullSecrets"] == [{"name": "registry"}]
    for key in ("nodeSelector", "affinity", "tolerations", "topologySpreadConstraints", "initContainers"):
        assert pod[key] == pod_settings[key]
    assert pod["securityContext"] == {"runAsUser": 2000}
    assert [c["name"] for c in pod["containers"]] == ["emqx", "sidecar"]
    assert {"name": "certs", "secret": {"secretName": "tls"}} in pod["volumes"]
    assert emqx_container["imagePullPolicy"] == "IfNotPresent"
    assert emqx_container["command"] == ["/bin/sh"] and emqx_container["args"] == ["-c", "exec emqx foreground"]
    assert [p["name"] for p in emqx_container["ports"]] == ["dashboard", "ekka", "genrpc", "metrics"]
    assert emqx_container["ports"][0]["containerPort"] == 18083
    env_names = [e["name"] for e in emqx_container["env"]]
    assert env_names.count("EMQX_NODE__DATA_DIR") == 1 and env_names[-1] == "EXTRA"
    assert env_of(deployment)["EMQX_NODE__DATA_DIR"] == "other"
    assert env_names.index("EMQX_NODE__DATA_DIR") == 5
    assert emqx_container["envFrom"] == [{"secretRef": {"name": "license"}}]
    assert emqx_container["resources"] == {"limits": {"memory": "1Gi"}}
    assert emqx_container["securityContext"] == {"readOnlyRootFilesystem": True}
    for key in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
        assert emqx_container[key] == pod_settings[key]
    assert emqx_container["volumeMounts"][-1] == {"name": "certs", "mountPath": "/opt/emqx/etc/certs"}
    # The cores keep their defaults: templates are per role.
    core_pod = builders.build_statefulset(emqx)["spec"]["template"]["spec"]
    assert "nodeSelector" not in core_pod and core_pod["securityContext"]["runAsUser"] == 1000


def test_builders_are_deterministic_and_do_not_alias() -> None:
    body = cr(
        {
            "image": "emqx/emqx-enterprise:5.8.9",
            "coreTemplate": {"spec": {"env": [{"name": "A", "value": "1"}]}},
            "listenersServiceTemplate": {"spec": {"type": "NodePort"}},
            "config": {"data": "log.console.level = debug"},
        }
    )
    first = all_objects(spec.normalize(copy.deepcopy(body)), VALUES)
    emqx = spec.normalize(copy.deepcopy(body))
    second = all_objects(emqx, VALUES)
    assert first == second
    assert json.dumps(first) == json.dumps(second)
    for obj in second:  # mutate everything we got back
        obj["metadata"]["labels"]["mutated"] = "yes"
        if obj["kind"] in ("StatefulSet", "Deployment"):
            container(obj)["env"][-1]["value"] = "mutated"
        if obj["kind"] == "Service":
            obj["spec"]["type"] = "mutated"
    assert all_objects(emqx, VALUES) == first


def test_with_owner() -> None:
    configmap = builders.build_configmap(spec.normalize(SEED))
    owned = builders.with_owner(configmap, OWNER)
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps.emqx.io/v2beta1",
            "kind": "EMQX",
            "name": "emqx",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert "ownerReferences" not in configmap["metadata"]


def test_build_emqx_resource_defaults() -> None:
    body = builders.build_emqx_resource("mqtt", image="emqx/emqx-enterprise:5.8.9")
    assert body == {
        "apiVersion": "apps.emqx.io/v2beta1",
        "kind": "EMQX",
        "metadata": {"name": "mqtt"},
        "spec": {
            "image": "emqx/emqx-enterprise:5.8.9",
            "coreTemplate": {"spec": {"replicas": 3}},
            "replicantTemplate": {"spec": {"replicas": 3}},
        },
    }
    assert validation.validate(spec.normalize(body)) == []


def test_build_emqx_resource_picks_zero_replicants_where_needed() -> None:
    body = builders.build_emqx_resource("mqtt", "ns", image="emqx/emqx:5.8.9")
    assert body["spec"]["replicantTemplate"]["spec"]["replicas"] == 0
    assert body["metadata"] == {"name": "mqtt", "namespace": "ns"}
    assert validation.validate(spec.normalize(body)) == []
    explicit = builders.build_emqx_resource("mqtt", image="emqx/emqx:5.8.9", replicants=2)
    assert explicit["spec"]["replicantTemplate"]["spec"]["replicas"] == 2


def test_build_emqx_resource_options() -> None:
    body = builders.build_emqx_resource(
        "mqtt",
        image="emqx/emqx-enterprise:5.8.9",
        cores=1,
        replicants=2,
        config_text="log.console.level = debug",
        storage_class="fast",
        storage_size="5Gi",
        service_type="LoadBalancer",
    )
    assert body["spec"]["coreTemplate"]["spec"] == {
        "replicas": 1,
        "volumeClaimTemplates": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}},
            "storageClassName": "fast",
        },
    }
    assert body["spec"]["config"] == {"mode": "Merge", "data": "log.console.level = debug"}
    assert body["spec"]["listenersServiceTemplate"] == {"spec": {"type": "LoadBalancer"}}
    only_class = builders.build_emqx_resource("mqtt", image="emqx/emqx-enterprise:5.8.9", storage_class="fast")
    assert (
        only_class["spec"]["coreTemplate"]["spec"]["volumeClaimTemplates"]["resources"]["requests"]["storage"] == "1Gi"
    )
    emqx = spec.normalize(body)
    assert validation.validate(emqx) == []
    assert builders.build_statefulset(emqx)["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"


def test_probes_of_the_users_own_keep_their_timing() -> None:
    readiness = {"httpGet": {"path": "/status", "port": "dashboard"}, "initialDelaySeconds": 20, "periodSeconds": 7}
    emqx = spec.normalize(cr({"image": "emqx/emqx:5.8.9", "coreTemplate": {"spec": {"readinessProbe": readiness}}}))
    container = builders.build_statefulset(emqx)["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"] == readiness and "startupProbe" not in container
    assert container["livenessProbe"]["initialDelaySeconds"] == 60  # nothing else holds it back during boot
    old = spec.normalize(cr({"image": "emqx/emqx:5.0.4"}))
    probes = builders.build_statefulset(old)["spec"]["template"]["spec"]["containers"][0]
    assert {probes[k]["httpGet"]["path"] for k in ("startupProbe", "readinessProbe", "livenessProbe")} == {
        "/api/v5/status"}  # 5.0.0-5.0.4 have no /status


def test_only_objects_carrying_opaque_templates_are_refusable() -> None:
    """act dry-runs what Kubernetes could refuse of a valid spec: the workloads (pod templates) and the
    dashboard and listeners Services (Service templates); the rest is built from validated fields."""
    the_spec = spec.normalize(cr({"image": "emqx/emqx-enterprise:5.8.9"}))
    built = [builders.build_configmap(the_spec), builders.build_headless_service(the_spec),
             builders.build_dashboard_service(the_spec), builders.build_listeners_service(the_spec, [], True),
             *builders.build_pdbs(the_spec), builders.build_statefulset(the_spec), builders.build_deployment(the_spec)]
    refusable = {(o["kind"], o["metadata"]["name"]) for o in built if o and builders.refusable(the_spec, o)}
    assert refusable == {("Service", "demo-dashboard"), ("Service", "demo-listeners"),
                         ("StatefulSet", "demo-core"), ("Deployment", "demo-replicant")}


@pytest.mark.parametrize(("value", "ok"), [
    (0, True), (3, True), ("0%", True), ("50%", True), ("100%", True),
    (-1, False), ("101%", False), ("50", False), ("half", False), ("5.5%", False), (" 5%", False), (True, False),
])
def test_budget_values_as_kubernetes_takes_them(value: object, ok: bool) -> None:
    assert validation.budget_value_ok(value) is ok
    errors = validation.validate(spec.normalize(cr({"image": "emqx/emqx-enterprise:5.8.9",
                                                    "coreTemplate": {"spec": {"minAvailable": value}}})))
    assert any(e.field == "spec.coreTemplate.spec.minAvailable" for e in errors) is not ok, errors
