"""decide() worlds for what the fault matrix (bench/faults.py) found: each test is one operator bug the
matrix showed, reproduced without a cluster (tests/unit/operator_world.py plays Kubernetes and EMQX)."""

from __future__ import annotations

from typing import Any

from emqx_operator.cluster_api import object_hash
from emqx_operator.decide.status import changed_key
from emqx_operator.model import ConfigPut, Plan

from tests.unit.operator_world import Cluster


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def puts(plan: Plan) -> list[ConfigPut]:
    return [c for c in plan.emqx_calls if isinstance(c, ConfigPut)]


def settled(**kwargs: Any) -> Cluster:
    cluster = Cluster(**kwargs)
    cluster.converge()
    return cluster


def writes_nothing(cluster: Cluster) -> bool:
    """The next pass would write nothing: every object as applied, the status unchanged."""
    plan = cluster.decide()
    objects_same = all(
        object_hash(dict(obj)) == cluster.objects[(obj["kind"], obj["metadata"]["name"])]["metadata"]["annotations"][
            "apps.emqx.io/applied-hash"] for obj in plan.apply)
    return (objects_same and not plan.secrets and not plan.emqx_calls and not plan.pod_deletions
            and not plan.pod_patches and changed_key(cluster.status, dict(plan.status), cluster.now) is None)


def test_a_change_of_live_and_restart_keys_is_not_ready_before_the_nodes_restart() -> None:
    """The pass that loaded the live part (PUT) wrote Ready=True for the new generation although the
    restart keys had reached no node yet: `--wait` returned at once; the next pass started the roll."""
    cluster = settled(config="log.console.level = warning\n")
    cluster.set_spec(config={"data": "log.console.level = info\nnode.process_limit = 1048576\n"})
    plan = cluster.step()
    assert puts(plan), "the live part is loaded first"
    assert cond(cluster.status, "Ready")["status"] == "False" and plan.busy
    assert cond(cluster.status, "ConfigApplied")["status"] == "False"
    assert cond(cluster.status, "ConfigApplied")["reason"] == "RollingRestart"
    restarted: set[str] = set()
    for _ in range(200):
        cluster.step(11)
        restarted.update(cluster.deleted)
        if cluster.ready():
            break
    assert cluster.ready()
    assert {"demo-core-0", "demo-core-1", "demo-core-2"} <= restarted, "Ready only once every core restarted"
    assert cond(cluster.status, "ConfigApplied")["status"] == "True"


def test_a_live_change_is_ready_only_with_emqx_conf_holding_it() -> None:
    """EMQX took the PUT and the pass wrote Ready; emqx.conf (the ConfigMap) got the text only in the
    next pass: a write after the resource said it was settled, and a moment in which a restarted
    node would have booted on the old file."""
    cluster = settled(config="log.console.level = warning\n")
    cluster.set_spec(config={"data": "log.console.level = debug\n"})
    plan = cluster.step()
    assert puts(plan) and plan.busy
    assert cond(cluster.status, "Ready")["status"] == "False"
    assert cond(cluster.status, "ConfigApplied")["status"] == "True", "EMQX runs it already"
    cluster.converge(passes=3)
    assert "debug" in cluster.objects[("ConfigMap", "demo-configs")]["data"]["emqx.conf"]
    assert writes_nothing(cluster), "nothing is written once Ready"
