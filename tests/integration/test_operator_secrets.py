"""The managed Secrets and spec.bootstrapAPIKeys against the sandbox: keys named by secretRef and
keys added after creation reach EMQX (proven with EMQX's own API), and a deleted Secret is created
again and the operator gets back in instead of failing auth forever."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.emqx_helpers import (
    condition,
    cr,
    create_emqx,
    get_emqx,
    patch_emqx,
    patient_transport,
    pod_uids,
    pods,
    wait_events,
    wait_ready,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _verdict(pod: Any, key: str, secret: str) -> str:
    """What EMQX on `pod` says to `key`: "accepted", or "refused" (401); no answer at all raises."""
    from kubectl_emqx.emqx.api import EmqxApi, EmqxApiError

    with EmqxApi(f"http://{pod.status.pod_ip}:18083", key, secret, timeout=5, transport=patient_transport()) as api:
        try:
            api.nodes()
        except EmqxApiError as error:
            if error.unauthorized:
                return "refused"
            raise
        return "accepted"


def test_keys_from_secret_refs_and_keys_added_later_reach_emqx(api_client: Any, namespace: str, operator: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="ci-creds"), string_data={"name": "ci", "token": "ci-token-1"}))
    body = cr("keys", cores=2, replicants=0)
    body["spec"]["bootstrapAPIKeys"] = [{"secretRef": {"key": {"secretName": "ci-creds", "secretKey": "name"},
                                                       "secret": {"secretName": "ci-creds", "secretKey": "token"}}}]
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "keys")
    core_pod = pods(api_client, namespace, "keys")[0]
    assert _verdict(core_pod, "ci", "ci-token-1") == "accepted"
    assert _verdict(core_pod, "ops", "ops-token") == "refused"

    before = pod_uids(api_client, namespace, "keys")
    patch_emqx(api_client, namespace, "keys", {"spec": {"bootstrapAPIKeys": [
        *body["spec"]["bootstrapAPIKeys"], {"key": "ops", "secret": "ops-token"}]}})
    # EMQX loads the key file at boot: the cores restart one at a time, each exactly once.
    wait_for(lambda: all(uid != before.get(name) for name, uid in pod_uids(api_client, namespace, "keys").items())
             and len(pod_uids(api_client, namespace, "keys")) == 2, 240, "both cores replaced")
    wait_ready(api_client, namespace, "keys")
    assert len(wait_events(api_client, namespace, "keys", "NodeReplaced", count=2)) == 2
    for pod in pods(api_client, namespace, "keys"):
        assert (_verdict(pod, "ops", "ops-token"), _verdict(pod, "ci", "ci-token-1")) == ("accepted", "accepted")


def test_a_missing_secret_ref_is_named_and_creating_it_recovers(api_client: Any, namespace: str, operator: Any) -> None:
    from kubernetes import client

    body = cr("refs", cores=1, replicants=0)
    body["spec"]["bootstrapAPIKeys"] = [{"key": "svc", "secretRef": {
        "secret": {"secretName": "later", "secretKey": "token"}}}]
    create_emqx(api_client, namespace, body)
    valid = wait_for(lambda: (c := condition(get_emqx(api_client, namespace, "refs"), "Valid"))
                     and c["status"] == "False" and c, 60, "Valid=False")
    assert "Secret later has no key token" in valid["message"] and "bootstrapAPIKeys[0]" in valid["message"]
    client.CoreV1Api(api_client).create_namespaced_secret(namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="later"), string_data={"token": "svc-token"}))
    wait_ready(api_client, namespace, "refs")
    assert _verdict(pods(api_client, namespace, "refs")[0], "svc", "svc-token") == "accepted"


def test_deleted_secrets_come_back_and_the_operator_gets_back_in(api_client: Any, namespace: str,
                                                                 operator: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    create_emqx(api_client, namespace, cr("lost", cores=2, replicants=1))
    wait_ready(api_client, namespace, "lost")
    cookie = base64.b64decode(core.read_namespaced_secret("lost-node-cookie", namespace).data["node_cookie"])
    old_key = core.read_namespaced_secret("lost-bootstrap-api-key", namespace).data["bootstrap_api_key"]

    core.delete_namespaced_secret("lost-node-cookie", namespace)
    wait_events(api_client, namespace, "lost", "SecretRecreated", timeout=120)
    recreated = core.read_namespaced_secret("lost-node-cookie", namespace)
    # The cookie the nodes run with, from its copy in the other Secret: restarted nodes still cluster.
    assert base64.b64decode(recreated.data["node_cookie"]) == cookie

    core.delete_namespaced_secret("lost-bootstrap-api-key", namespace)
    wait_events(api_client, namespace, "lost", "SecretRecreated", count=2, timeout=120)
    assert core.read_namespaced_secret("lost-bootstrap-api-key", namespace).data["bootstrap_api_key"] != old_key
    # EMQX refuses the new key until a core loaded it at boot: the operator restarts the cores.
    obj = wait_ready(api_client, namespace, "lost", timeout=300)
    assert condition(obj, "EMQXReachable")["status"] == "True"
    assert len(pods(api_client, namespace, "lost")) == 3
