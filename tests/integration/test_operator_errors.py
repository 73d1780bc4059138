"""Domain errors become a condition and an Event naming the problem and the fix; never a crash loop."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emqx_helpers import (
    condition,
    cr,
    create_emqx,
    events_for,
    get_emqx,
    patch_emqx,
    pods,
    wait_condition,
    wait_ready,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _event_with(api_client: Any, namespace: str, name: str, reason: str, text: str) -> Any:
    return wait_for(
        lambda: next((e for e in events_for(api_client, namespace, name)
                      if e.reason == reason and text in (e.message or "")), None),
        30, f"an Event {reason} mentioning {text!r}",
    )


def test_invalid_hocon_is_reported_and_nothing_is_built(api_client: Any, namespace: str, operator: Any) -> None:
    from kubernetes import client

    broken = "listeners.tcp.default {\n bind = \n"
    create_emqx(api_client, namespace, cr("badconf", cores=1, replicants=0, config=broken))
    cond = wait_condition(api_client, namespace, "badconf", "Valid", "False")
    assert "config.data" in cond["message"] and "line" in cond["message"], cond
    assert condition(get_emqx(api_client, namespace, "badconf"), "Ready")["status"] == "False"
    _event_with(api_client, namespace, "badconf", "InvalidSpec", "config.data")
    assert client.AppsV1Api(api_client).list_namespaced_stateful_set(namespace).items == []

    patch_emqx(api_client, namespace, "badconf", {"spec": {"config": {"data": "log.console.level = info\n"}}})
    wait_ready(api_client, namespace, "badconf")
    assert condition(get_emqx(api_client, namespace, "badconf"), "Valid")["status"] == "True"


def test_replicants_on_opensource_58_are_refused(api_client: Any, namespace: str, operator: Any) -> None:
    create_emqx(api_client, namespace, cr("ce58", image="emqx/emqx:5.8.9", cores=1, replicants=2))
    cond = wait_condition(api_client, namespace, "ce58", "Valid", "False")
    assert "replicant" in cond["message"] and "5.8" in cond["message"], cond
    _event_with(api_client, namespace, "ce58", "InvalidSpec", "replicant")
    assert pods(api_client, namespace, "ce58") == []

    patch_emqx(api_client, namespace, "ce58", {"spec": {"replicantTemplate": {"spec": {"replicas": 0}}}})
    wait_ready(api_client, namespace, "ce58")


def test_emqx_api_401_and_unreachable_then_recovery(
    api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    create_emqx(api_client, namespace, cr("auth", cores=1, replicants=0))
    wait_ready(api_client, namespace, "auth")
    node = f"emqx@auth-core-0.auth-headless.{namespace}.svc.cluster.local"
    try:
        emqx_sim.fail_api(node, status=401)
        cond = wait_condition(api_client, namespace, "auth", "EMQXReachable", "False")
        assert cond["reason"] == "EMQXUnauthorized" and "credentials" in cond["message"], cond
        _event_with(api_client, namespace, "auth", "EMQXUnauthorized", "credentials")
        assert condition(get_emqx(api_client, namespace, "auth"), "Ready")["status"] == "False"

        emqx_sim.clear_faults(node)
        wait_condition(api_client, namespace, "auth", "EMQXReachable", "True")
        wait_ready(api_client, namespace, "auth")

        emqx_sim.fail_api(node, status=None, drop=True)
        cond = wait_condition(api_client, namespace, "auth", "EMQXReachable", "False")
        assert cond["reason"] == "EMQXUnreachable", cond
    finally:
        emqx_sim.clear_faults(node)
    wait_ready(api_client, namespace, "auth")
    restarts = [p.status.container_statuses[0].restart_count for p in pods(api_client, namespace, "auth")]
    assert restarts == [0]


def test_a_change_kubernetes_refuses_is_reported_and_reverting_it_recovers(
    api_client: Any, namespace: str, operator: Any
) -> None:
    body = cr("immutable", cores=1, replicants=0)
    body["spec"]["coreTemplate"]["spec"]["volumeClaimTemplates"] = {"resources": {"requests": {"storage": "20Mi"}}}
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "immutable")
    patch_emqx(api_client, namespace, "immutable", {"spec": {"coreTemplate": {"spec": {
        "volumeClaimTemplates": {"resources": {"requests": {"storage": "40Mi"}}}}}}})
    cond = wait_condition(api_client, namespace, "immutable", "Valid", "False")
    assert cond["reason"] == "RefusedByKubernetes" and "volumeClaimTemplates" in cond["message"], cond
    _event_with(api_client, namespace, "immutable", "RefusedByKubernetes", "statefulsets")
    patch_emqx(api_client, namespace, "immutable", {"spec": {"coreTemplate": {"spec": {
        "volumeClaimTemplates": {"resources": {"requests": {"storage": "20Mi"}}}}}}})
    wait_ready(api_client, namespace, "immutable")
    assert condition(get_emqx(api_client, namespace, "immutable"), "Valid")["status"] == "True"
