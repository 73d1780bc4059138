"""The operator on its own ServiceAccount (a TokenRequest token), with the Role `kubectl emqx install
--watch-namespace` grants and the Deployment's exact args: it creates, scales, reconfigures and
upgrades; and with one rule removed it reports Forbidden, naming the permission, and carries on."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emqx_helpers import (
    condition,
    cr,
    custom_api,
    emqx_nodes,
    events_for,
    get_emqx,
    patch_emqx,
    ready_pods,
    wait_condition,
    wait_image,
    wait_ready,
)
from tests.helpers import metric_key, wait_for
from tests.install_helpers import InstalledOperator, deployment_container, plugin, service_account_kubeconfig

pytestmark = pytest.mark.integration


@pytest.fixture
def installed(api_client: Any, kubeconfig: str, sandbox: Any, solo_namespace: str,
              tmp_path: Path) -> Iterator[tuple[str, InstalledOperator]]:
    """`kubectl emqx install --watch-namespace <solo>` and the operator running as its Deployment would."""
    operator_namespace = f"solo-op-{uuid.uuid4().hex[:8]}"
    plugin(kubeconfig, "install", "-n", operator_namespace, "--watch-namespace", solo_namespace)
    operator = None
    try:
        token_kubeconfig = service_account_kubeconfig(api_client, kubeconfig, operator_namespace, "emqx-operator",
                                                      tmp_path)
        operator = InstalledOperator(sandbox, token_kubeconfig, deployment_container(api_client, operator_namespace),
                                     operator_namespace)
        yield operator_namespace, operator
    finally:
        if operator is not None:
            operator.stop()
        plugin(kubeconfig, "uninstall", "-n", operator_namespace, check=False)


def test_operator_on_its_service_account_creates_scales_reconfigures_and_upgrades(
    api_client: Any, solo_namespace: str, installed: tuple[str, InstalledOperator],
) -> None:
    _, operator = installed
    body = cr("rbac", image="emqx/emqx:5.7.1", cores=2, replicants=1)
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": 0}}
    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", solo_namespace, "emqxes", body)
    wait_ready(api_client, solo_namespace, "rbac")

    patch_emqx(api_client, solo_namespace, "rbac", {"spec": {"coreTemplate": {"spec": {"replicas": 3}},
                                                              "replicantTemplate": {"spec": {"replicas": 2}}}})
    wait_ready(api_client, solo_namespace, "rbac")
    assert len(ready_pods(api_client, solo_namespace, "rbac", "core")) == 3
    assert len(ready_pods(api_client, solo_namespace, "rbac", "replicant")) == 2

    patch_emqx(api_client, solo_namespace, "rbac", {"spec": {"config": {"data": "mqtt.max_packet_size = 2MB\n"}}})
    applied = wait_ready(api_client, solo_namespace, "rbac")
    assert condition(applied, "ConfigApplied")["status"] == "True", condition(applied, "ConfigApplied")

    # A patch upgrade (5.7.2 is the last 5.7 release, which the simulator knows like EMQX's registry).
    patch_emqx(api_client, solo_namespace, "rbac", {"spec": {"image": "emqx/emqx:5.7.2"}})
    upgraded = wait_image(api_client, solo_namespace, "rbac", "emqx/emqx:5.7.2")
    assert upgraded["status"]["previousImage"] == "emqx/emqx:5.7.1"
    assert {n["version"] for n in emqx_nodes(api_client, solo_namespace, "rbac")} == {"5.7.2"}

    log = operator.log_text()
    assert "forbidden" not in log.lower(), log
    assert operator.metrics()["emqx_operator_leader"] == 1


@pytest.mark.parametrize(("resource", "group"), [
    ("poddisruptionbudgets", "policy"),  # only the reconciler needs it
    ("pods", ""),  # kopf's watch needs it too: kopf must keep retrying rather than exit
])
def test_a_missing_permission_is_reported_as_forbidden_naming_it_and_the_operator_carries_on(
    api_client: Any, kubeconfig: str, kubectl: Any, solo_namespace: str, installed: tuple[str, InstalledOperator],
    resource: str, group: str,
) -> None:
    operator_namespace, operator = installed
    custom_api(api_client).create_namespaced_custom_object(
        "apps.emqx.io", "v2beta1", solo_namespace, "emqxes", cr("denied", cores=1, replicants=0))
    wait_ready(api_client, solo_namespace, "denied")

    role = json.loads(kubectl("get", "role", "emqx-operator", "-n", solo_namespace, "-o", "json").stdout)
    role["rules"] = [rule for rule in role["rules"] if resource not in rule["resources"]]
    kubectl("replace", "-f", "-", stdin=json.dumps(role))
    kubectl("annotate", "emqx/denied", "-n", solo_namespace, "test/poke=1")  # look again now

    forbidden = wait_condition(api_client, solo_namespace, "denied", "Forbidden", "True", timeout=30)
    message = forbidden["message"]
    assert f'cannot list resource "{resource}" in API group "{group}"' in message, message
    assert "system:serviceaccount:" + operator_namespace + ":emqx-operator" in message, message
    ready = condition(get_emqx(api_client, solo_namespace, "denied"), "Ready")
    assert ready["status"] == "False" and ready["reason"] == "Forbidden", ready
    wait_for(lambda: any(e.reason == "Forbidden" and f'"{resource}"' in (e.message or "")
                         for e in events_for(api_client, solo_namespace, "denied")), 10, "a Forbidden Event")
    assert operator.alive(), "a missing permission must not crash the operator"
    with urllib.request.urlopen(operator.liveness_url, timeout=5) as response:
        assert response.status == 200
    errors = metric_key("emqx_operator_reconcile_errors_total", namespace=solo_namespace, name="denied")
    assert operator.metrics()[errors] >= 1

    # Installing again restores the rule; the condition clears and the cluster is Ready again.
    plugin(kubeconfig, "install", "-n", operator_namespace, "--watch-namespace", solo_namespace)
    kubectl("annotate", "emqx/denied", "-n", solo_namespace, "test/poke=2", "--overwrite")
    wait_ready(api_client, solo_namespace, "denied", timeout=60)
    assert condition(get_emqx(api_client, solo_namespace, "denied"), "Forbidden") is None
