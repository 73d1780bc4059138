"""The sandbox is a real Kubernetes: schema validation, scheduling, controllers, GC, authn and RBAC."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import uuid
from typing import Any

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.integration

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def _pods(api_client: Any, namespace: str, selector: str) -> list[Any]:
    from kubernetes import client

    return list(client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=selector).items)


def _is_ready(pod: Any) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
    )


def test_nodes_are_ready(api_client: Any) -> None:
    from kubernetes import client

    nodes = client.CoreV1Api(api_client).list_node().items
    ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])]
    assert len(ready) >= 3


def test_crd_schema_rejects_invalid_object(api_client: Any, namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    group = f"smoke{uuid.uuid4().hex[:6]}.sandbox.local"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object", "required": ["size"],
                    "properties": {"size": {"type": "integer", "minimum": 1}},
                }}}},
            }],
        },
    }
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(crd)
    try:
        custom = client.CustomObjectsApi(api_client)

        def established() -> bool:
            got = ext.read_custom_resource_definition(f"widgets.{group}")
            return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

        wait_for(established, 30, "CRD established")
        body = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"size": 0}}
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)
        assert err.value.status == 422
        assert "spec.size" in err.value.body
        body["spec"]["size"] = 2
        custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


def test_deployment_pods_get_loopback_ips_that_a_process_can_serve(api_client: Any, namespace: str) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api_client)
    labels = {"app": "smoke"}
    apps.create_namespaced_deployment(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "smoke"},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "example.invalid/smoke:1"}]},
        }},
    })
    pods = wait_for(
        lambda: (p := _pods(api_client, namespace, "app=smoke")) and len(p) == 3 and all(map(_is_ready, p)) and p,
        20, "3 Running and Ready pods",
    )
    ips = [ipaddress.ip_address(p.status.pod_ip) for p in pods]
    assert all(ip in LOOPBACK for ip in ips), ips
    assert len(set(ips)) == 3

    target = str(ips[0])
    with socket.create_server((target, 0)) as server:
        port = server.getsockname()[1]
        accepted: list[str] = []

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                accepted.append(conn.recv(16).decode())
                conn.sendall(b"pong")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection((target, port), timeout=5) as conn:
            conn.sendall(b"ping")
            assert conn.recv(16) == b"pong"
        thread.join(5)
    assert accepted == ["ping"]


def test_statefulset_creates_ordinals_in_order(api_client: Any, namespace: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    labels = {"app": "ordered"}
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "ordered"},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 80}]},
    })
    apps.create_namespaced_stateful_set(namespace, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ordered"},
        "spec": {"replicas": 3, "serviceName": "ordered", "podManagementPolicy": "OrderedReady",
                 "selector": {"matchLabels": labels}, "template": {
                     "metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "c", "image": "example.invalid/smoke:1"}]}}},
    })
    pods = wait_for(
        lambda: (p := _pods(api_client, namespace, "app=ordered")) and len(p) == 3 and all(map(_is_ready, p)) and p,
        30, "3 ready StatefulSet pods",
    )
    by_creation = sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
    assert [p.metadata.name for p in by_creation] == ["ordered-0", "ordered-1", "ordered-2"]
    started = {p.metadata.name: p.status.start_time for p in pods}
    assert started["ordered-0"] <= started["ordered-1"] <= started["ordered-2"]


def test_deleting_an_owner_garbage_collects_dependents(api_client: Any, namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dependent", "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
    }]}})
    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(dependent_gone, 30, "the dependent ConfigMap to be garbage-collected")


def test_service_account_token_authenticates_and_rbac_denies(api_client: Any, namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "read-cm"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "read-cm"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    })
    token = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token

    config = client.Configuration()
    config.host = api_client.configuration.host
    config.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    as_reader = client.CoreV1Api(
        client.ApiClient(config, header_name="Authorization", header_value=f"Bearer {token}")
    )

    review = client.AuthenticationV1Api(api_client).create_token_review({"spec": {"token": token}})
    assert review.status.authenticated
    assert review.status.user.username == f"system:serviceaccount:{namespace}:reader"
    as_reader.list_namespaced_config_map(namespace)  # granted
    with pytest.raises(ApiException) as err:
        as_reader.create_namespaced_config_map(namespace, {"metadata": {"name": "nope"}})
    assert err.value.status == 403
    message = json.loads(err.value.body)["message"]
    assert f'User "system:serviceaccount:{namespace}:reader" cannot create resource "configmaps"' in message
