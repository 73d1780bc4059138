"""Builders for tests: EMQX pods and objects as the operator lays them out (docs/internals.md).

`emqx_pod` makes a bound, Running pod dict for unit tests that feed a World directly;
`cluster_manifests` makes the Secret/ConfigMap/Services/StatefulSet/Deployment to apply to the sandbox;
`StatusPatchApplier` stands in for the API server and the pod watch under the kubelet (kube.Kubelet).
"""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from typing import Any

from .podspec import StaticObjectSource

BOOTSTRAP_FILE = "/opt/emqx/data/bootstrap_api_key"
CLUSTER_DOMAIN = "cluster.local"
# The emqx.conf test pods mount. It replaces the image's file, whose `dashboard.listeners.http.bind`
# is the only source of the HTTP API listener (the schema has no default for it), so like every
# operator it sets the dashboard port.
TEST_EMQX_CONF = "dashboard.listeners.http.bind = 18083\n"

_ip_lock = threading.Lock()
# 127.252.0.0/16 stays clear of sandbox pod ranges (127.16-250.0.0/16); random start so parallel runs differ.
_ip_counter = itertools.count(random.randrange(1, 60000))


def next_test_ip() -> str:
    with _ip_lock:
        value = next(_ip_counter) % 65000 + 256
    return f"127.252.{value // 256}.{value % 256}"


def headless_name(instance: str, namespace: str) -> str:
    return f"{instance}-headless.{namespace}.svc.{CLUSTER_DOMAIN}"


def emqx_env(
    instance: str,
    namespace: str,
    role: str,
    role_env: str | None = "EMQX_NODE__ROLE",
    cookie: bool = True,
    bootstrap: bool = True,
    extra: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The container env of emqx-api.md §5.5 (role_env None leaves the role out)."""
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "EMQX_CLUSTER__DISCOVERY_STRATEGY", "value": "dns"},
        {"name": "EMQX_CLUSTER__DNS__RECORD_TYPE", "value": "srv"},
        {"name": "EMQX_CLUSTER__DNS__NAME", "value": headless_name(instance, namespace)},
    ]
    if role == "core":
        env.append({"name": "EMQX_HOST", "value": "$(POD_NAME).$(EMQX_CLUSTER__DNS__NAME)"})
    else:
        env.append({"name": "EMQX_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    env.append({"name": "EMQX_NODE__DATA_DIR", "value": "data"})
    if role_env:
        env.append({"name": role_env, "value": role})
    if cookie:
        env.append(
            {
                "name": "EMQX_NODE__COOKIE",
                "valueFrom": {"secretKeyRef": {"name": f"{instance}-node-cookie", "key": "node_cookie"}},
            }
        )
    if bootstrap:
        env.append({"name": "EMQX_API_KEY__BOOTSTRAP_FILE", "value": f'"{BOOTSTRAP_FILE}"'})
    return env + (extra or [])


def emqx_container(
    instance: str,
    namespace: str,
    role: str,
    image: str,
    role_env: str | None = "EMQX_NODE__ROLE",
    cookie: bool = True,
    bootstrap: bool = True,
    mount_api_keys: bool = True,
    extra_env: list[dict[str, Any]] | None = None,
    data_volume: str = "data",
) -> dict[str, Any]:
    mounts = [
        {"name": "emqx-config", "mountPath": "/opt/emqx/etc/emqx.conf", "subPath": "emqx.conf", "readOnly": True},
        {"name": data_volume, "mountPath": "/opt/emqx/data"},
        {"name": "log", "mountPath": "/opt/emqx/log"},
    ]
    if mount_api_keys:
        mounts.append(
            {"name": "bootstrap-api-key", "mountPath": BOOTSTRAP_FILE, "subPath": "bootstrap_api_key", "readOnly": True}
        )
    return {
        "name": "emqx",
        "image": image,
        "env": emqx_env(instance, namespace, role, role_env, cookie, bootstrap, extra_env),
        "ports": [{"name": "dashboard", "containerPort": 18083}],
        # As a kubelet would, the simulator reports Ready from this probe only.
        "readinessProbe": {"httpGet": {"path": "/status", "port": "dashboard"}, "initialDelaySeconds": 10,
                           "periodSeconds": 5},
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }


def emqx_volumes(instance: str, data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"name": "emqx-config", "configMap": {"name": f"{instance}-configs"}},
        {"name": "bootstrap-api-key", "secret": {"secretName": f"{instance}-bootstrap-api-key"}},
        {"name": "data", **(data or {"emptyDir": {}})},
        {"name": "log", "emptyDir": {}},
    ]


def emqx_pod(
    name: str,
    ip: str | None = None,
    namespace: str = "ns",
    instance: str = "emqx",
    role: str = "core",
    image: str = "emqx/emqx:5.8.9",
    uid: str | None = None,
    data: dict[str, Any] | None = None,
    **container_options: Any,
) -> dict[str, Any]:
    """A Running pod with an IP, laid out as the operator's StatefulSet/Deployment would make it."""
    spec: dict[str, Any] = {
        "containers": [emqx_container(instance, namespace, role, image, **container_options)],
        "volumes": emqx_volumes(instance, data),
    }
    if role == "core":
        spec["hostname"] = name
        spec["subdomain"] = f"{instance}-headless"
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or str(uuid.uuid4()),
            "labels": {
                "apps.emqx.io/instance": instance,
                "apps.emqx.io/managed-by": "kubectl-emqx",
                "apps.emqx.io/db-role": role,
            },
        },
        "spec": spec,
        "status": {"phase": "Running", "podIP": ip or next_test_ip()},
    }


def emqx_objects(
    namespace: str = "ns",
    instance: str = "emqx",
    cookie: str | None = "s3cret-cookie",
    api_keys: str | None = "operator-key:operator-secret\n",
    emqx_conf: str | None = TEST_EMQX_CONF,
) -> StaticObjectSource:
    """The Secrets and ConfigMap the pods refer to; None leaves one out."""
    source = StaticObjectSource()
    if cookie is not None:
        source.secrets[(namespace, f"{instance}-node-cookie")] = {"node_cookie": cookie}
    if api_keys is not None:
        source.secrets[(namespace, f"{instance}-bootstrap-api-key")] = {"bootstrap_api_key": api_keys}
    if emqx_conf is not None:
        source.config_maps[(namespace, f"{instance}-configs")] = {"emqx.conf": emqx_conf}
    return source


def cluster_manifests(
    namespace: str,
    instance: str = "emqx",
    image: str = "emqx/emqx:5.8.9",
    cores: int = 2,
    replicants: int = 2,
    replicant_image: str | None = None,
    cookie: str = "s3cret-cookie",
    api_keys: str = "operator-key:operator-secret\n",
    emqx_conf: str = TEST_EMQX_CONF,
    persistent: bool = False,
) -> list[dict[str, Any]]:
    """Hand-written objects for the sandbox: cookie + API key Secrets, config ConfigMap, headless Service,
    core StatefulSet and replicant Deployment. `persistent` gives the cores a data PVC each
    (volumeClaimTemplates, default StorageClass) instead of an emptyDir."""
    core_labels = {"apps.emqx.io/instance": instance, "apps.emqx.io/db-role": "core"}
    replicant_labels = {"apps.emqx.io/instance": instance, "apps.emqx.io/db-role": "replicant"}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{instance}-node-cookie", "namespace": namespace},
            "stringData": {"node_cookie": cookie},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{instance}-bootstrap-api-key", "namespace": namespace},
            "stringData": {"bootstrap_api_key": api_keys},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{instance}-configs", "namespace": namespace},
            "data": {"emqx.conf": emqx_conf},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{instance}-headless", "namespace": namespace},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": core_labels,
                "ports": [{"name": "ekka", "port": 4370}, {"name": "genrpc", "port": 5369}],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": f"{instance}-core", "namespace": namespace},
            "spec": {
                "replicas": cores,
                "serviceName": f"{instance}-headless",
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": core_labels},
                "template": {
                    "metadata": {"labels": core_labels},
                    "spec": {
                        "containers": [emqx_container(instance, namespace, "core", image)],
                        "volumes": [
                            volume for volume in emqx_volumes(instance) if not (persistent and volume["name"] == "data")
                        ],
                    },
                },
            },
        },
    ]
    if persistent:
        objects[-1]["spec"]["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Mi"}}},
            }
        ]
    if replicants:
        objects.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"{instance}-replicant", "namespace": namespace},
                "spec": {
                    "replicas": replicants,
                    "selector": {"matchLabels": replicant_labels},
                    "template": {
                        "metadata": {"labels": replicant_labels},
                        "spec": {
                            "containers": [emqx_container(instance, namespace, "replicant", replicant_image or image)],
                            "volumes": emqx_volumes(instance),
                        },
                    },
                },
            }
        )
    return objects


class Harness:
    """A World fed directly with pod dicts; `call` goes through the node's API without sockets
    unless `listen=True` (then nodes serve on their pod IPs). Nodes boot in the round their container
    starts unless `boot_seconds` is given (then set `world.monotonic` to drive the boot stages)."""

    def __init__(
        self,
        source: Any = None,
        listen: bool = False,
        retry_interval: float = 0.0,
        join_delay: tuple[float, float] = (0.0, 0.0),
        boot_seconds: float = 0.0,
    ):
        from .api import NodeHttpServer
        from .world import World

        self.source = source if source is not None else emqx_objects()
        self.world = World(
            retry_interval=retry_interval,
            server_factory=NodeHttpServer if listen else None,
            join_delay=join_delay,
            boot_seconds=boot_seconds,
        )

    def close(self) -> None:
        self.world.stop_all()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, *pods: dict[str, Any]) -> None:
        """Observe the pods and run one boot round."""
        for pod in pods:
            self.world.stop_servers(self.world.observe_pod(pod))
        self.boot()

    def boot(self) -> None:
        self.world.boot_due(lambda record: self.source)

    def delete(self, pod: dict[str, Any]) -> None:
        self.world.stop_servers(self.world.forget_pod(pod["metadata"]["uid"]))

    def record(self, ident: str) -> Any:
        record = self.world.find_record(ident)
        assert record is not None, f"no pod {ident}"
        return record

    def state(self, ident: str) -> str:
        state: str = self.record(ident).state
        return state

    def call(
        self,
        ident: str,
        method: str,
        path: str,
        auth: tuple[str, str] | None = ("operator-key", "operator-secret"),
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        import base64

        from .api import NodeApi, Request

        record = self.record(ident)
        assert record.node is not None, f"{ident} is not running: {record.state} {record.reason}"
        all_headers = {key.lower(): value for key, value in (headers or {}).items()}
        if auth is not None:
            all_headers["authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request = Request(
            method, path, dict(query or {}), all_headers, body.encode() if isinstance(body, str) else body
        )
        return NodeApi(record.node, self.world).handle(request)


class _Released:
    """A `_preload_content=False` response whose body nobody reads."""

    def drain_conn(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class StatusPatchApplier:
    """`patch_namespaced_pod_status` as the API server and the pod watch answer it, without HTTP: the
    pod's status takes the patch (conditions merged by type, nulls dropped) and the World observes the
    new pod. `patches` lists (namespace, name, status patch)."""

    def __init__(self, world: Any):
        self.world = world
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def patch_namespaced_pod_status(self, name: str, namespace: str, body: dict[str, Any], **_: Any) -> _Released:
        with self.world.lock:
            record = next(r for r in self.world.pods.values() if (r.namespace, r.name) == (namespace, name))
            pod = record.pod
        patch = body["status"]
        self.patches.append((namespace, name, patch))
        status = dict(pod.get("status") or {})
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        for condition in patch.get("conditions") or []:
            conditions[condition["type"]] = {k: v for k, v in condition.items() if v is not None}
        status.update({k: v for k, v in patch.items() if k != "conditions"}, conditions=list(conditions.values()))
        self.world.stop_servers(self.world.observe_pod({**pod, "status": status}))
        return _Released()
