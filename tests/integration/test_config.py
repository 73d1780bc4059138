"""Hot configuration: HOCON in the resource reaches every node without restarts; restart keys roll."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubectl_emqx.domain import hocon
from tests.emqx_helpers import (
    condition,
    cr,
    create_emqx,
    emqx_api,
    get_emqx,
    live_config,
    patch_emqx,
    pod_uids,
    pods,
    wait_events,
    wait_ready,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.integration


def _wait_applied(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    def applied() -> dict[str, Any] | None:
        obj = get_emqx(api_client, namespace, name)
        cond = condition(obj, "ConfigApplied")
        config = (obj.get("status") or {}).get("config") or {}
        if cond and cond["status"] == "True" and config.get("appliedGeneration") == obj["metadata"]["generation"]:
            return obj
        return None

    return wait_for(applied, 60, f"the configuration of {namespace}/{name} to be applied")


def _level(config: dict[str, Any]) -> Any:
    return hocon.get_path(config, "log.console.level")


def test_live_change_reaches_every_node_without_restarts_and_new_nodes_boot_with_it(
    api_client: Any, namespace: str, operator: Any, kubeconfig: str
) -> None:
    create_emqx(api_client, namespace, cr("hot", cores=2, replicants=1, config="log.console.level = warning\n"))
    wait_ready(api_client, namespace, "hot")
    before = pod_uids(api_client, namespace, "hot")

    patch_emqx(api_client, namespace, "hot", {"spec": {"config": {"data": "log.console.level = debug\n"}}})
    _wait_applied(api_client, namespace, "hot")
    wait_ready(api_client, namespace, "hot")
    for pod in pods(api_client, namespace, "hot"):
        assert _level(live_config(api_client, namespace, "hot", pod)) == "debug", pod.metadata.name
    assert pod_uids(api_client, namespace, "hot") == before, "a live key must not restart pods"
    status = get_emqx(api_client, namespace, "hot")["status"]
    assert "debug" in status["config"]["live"]
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "kubectl-emqx"), "config", "get", "hot", "--live", "-n", namespace],
        capture_output=True, text=True, env=dict(os.environ, KUBECONFIG=kubeconfig), timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "level = debug" in shown.stdout and "18083" in shown.stdout, shown.stdout
    wait_events(api_client, namespace, "hot", "ConfigApplied")

    patch_emqx(api_client, namespace, "hot", {"spec": {"replicantTemplate": {"spec": {"replicas": 2}}}})
    wait_ready(api_client, namespace, "hot")
    newcomer = [p for p in pods(api_client, namespace, "hot") if p.metadata.name not in before]
    assert len(newcomer) == 1
    assert _level(live_config(api_client, namespace, "hot", newcomer[0])) == "debug"


def test_restart_key_rolls_each_node_once_cores_first(
    api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    body = cr("roll", cores=3, replicants=2)
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": 0}}
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "roll")
    before = pod_uids(api_client, namespace, "roll")
    mark = emqx_sim.last_seq()

    patch_emqx(api_client, namespace, "roll", {"spec": {"config": {"data": "node.process_limit = 1048576\n"}}})
    wait_for(lambda: get_emqx(api_client, namespace, "roll")["status"]["observedGeneration"] == 2, 30, "gen 2")
    wait_ready(api_client, namespace, "roll", timeout=120)
    after = pod_uids(api_client, namespace, "roll")
    cores = [n for n in before if "-core-" in n]
    assert all(after[n] != before[n] for n in cores), "every core restarted"
    assert not set(before) - set(cores) & set(after), "every replicant replaced"

    boots = [e for e in emqx_sim.boot_log(since=mark)
             if e.get("event") == "booted" and e.get("namespace", namespace) == namespace
             and f"{namespace}/" in str(e.get("pod", ""))]
    booted_pods = [str(e["pod"]).split("/", 1)[1] for e in boots]
    core_boots = [p for p in booted_pods if "-core-" in p]
    replicant_boots = [p for p in booted_pods if "-replicant-" in p]
    assert sorted(core_boots) == sorted(cores), booted_pods  # each core exactly once
    assert len(replicant_boots) == 2, booted_pods
    assert max(booted_pods.index(p) for p in core_boots) < min(booted_pods.index(p) for p in replicant_boots)


def test_dashboard_change_survives_and_rejection_is_reported(
    api_client: Any, namespace: str, operator: Any
) -> None:
    create_emqx(api_client, namespace, cr("keep", cores=1, replicants=0, config="log.console.level = warning\n"))
    wait_ready(api_client, namespace, "keep")
    core = pods(api_client, namespace, "keep", "core")[0]
    with emqx_api(api_client, namespace, "keep", core) as api:
        api.put_config_hocon('log.file.default.level = error\n', mode="merge")
    operator.wait_reconciles(namespace, "keep", count=2)
    patch_emqx(api_client, namespace, "keep", {"spec": {"config": {"data": "log.console.level = info\n"}}})
    _wait_applied(api_client, namespace, "keep")
    live = live_config(api_client, namespace, "keep", core)
    assert _level(live) == "info"
    assert hocon.get_path(live, "log.file.default.level") == "error", "a change made through EMQX's API was lost"

    patch_emqx(api_client, namespace, "keep", {"spec": {"config": {"data": "log.console.level = erro1r\n"}}})
    cond = wait_for(
        lambda: (c := condition(get_emqx(api_client, namespace, "keep"), "ConfigApplied"))
        and c["reason"] == "ConfigRejected" and c, 30, "ConfigApplied=False ConfigRejected")
    assert cond["status"] == "False" and "erro1r" in cond["message"], cond
    assert condition(get_emqx(api_client, namespace, "keep"), "Ready")["status"] == "False"
    wait_events(api_client, namespace, "keep", "ConfigRejected")

    patch_emqx(api_client, namespace, "keep", {"spec": {"config": {"data": "log.console.level = notice\n"}}})
    _wait_applied(api_client, namespace, "keep")
    wait_ready(api_client, namespace, "keep")
    assert _level(live_config(api_client, namespace, "keep", core)) == "notice"


def test_before_511_config_is_applied_by_rolling_restart(api_client: Any, namespace: str, operator: Any) -> None:
    # Before 5.0.26 the console log handler is log.console_handler (emqx_conf_schema.erl@v5.0.6).
    body = cr("old", image="emqx/emqx:5.0.6", cores=2, replicants=0, config="log.console_handler.level = warning\n")
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": 0}}
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "old")
    before = pod_uids(api_client, namespace, "old")
    patch_emqx(api_client, namespace, "old", {"spec": {"config": {"data": "log.console_handler.level = debug\n"}}})
    wait_for(lambda: get_emqx(api_client, namespace, "old")["status"]["observedGeneration"] == 2, 30, "gen 2")
    obj = wait_ready(api_client, namespace, "old", timeout=120)
    assert obj["status"]["config"]["method"] == "RollingRestart"
    assert "rolling restart" in condition(obj, "ConfigApplied")["message"]
    after = pod_uids(api_client, namespace, "old")
    assert all(after[n] != before[n] for n in before)
    for pod in pods(api_client, namespace, "old"):
        assert hocon.get_path(live_config(api_client, namespace, "old", pod), "log.console_handler.level") == "debug"


def test_dashboard_port_change_rolls_nodes_and_moves_the_service(
    api_client: Any, namespace: str, operator: Any
) -> None:
    from kubernetes import client

    body = cr("dash", cores=2, replicants=1)
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": 0}}
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "dash")
    before = pod_uids(api_client, namespace, "dash")
    patch_emqx(api_client, namespace, "dash", {"spec": {"config": {"data": "dashboard.listeners.http.bind = 18084\n"}}})
    wait_for(lambda: get_emqx(api_client, namespace, "dash")["status"]["observedGeneration"] == 2, 30, "gen 2")
    wait_ready(api_client, namespace, "dash", timeout=120)
    after = pod_uids(api_client, namespace, "dash")
    assert not set(before.values()) & set(after.values()), "the dashboard port needs every node restarted"
    svc = client.CoreV1Api(api_client).read_namespaced_service("dash-dashboard", namespace)
    assert [p.port for p in svc.spec.ports] == [18084]
    # The operator reads EMQX on the new port: after the roll only 18084 answers, and the status lists the
    # new pods' nodes as EMQX reported them (the condition's message names no address: that would be a write).
    resource = get_emqx(api_client, namespace, "dash")
    assert condition(resource, "EMQXReachable")["status"] == "True"
    wait_for(lambda: {n.get("podName") for n in get_emqx(api_client, namespace, "dash")["status"].get("emqxNodes")
                      or []} == set(after), 60, "emqxNodes name the new pods")
