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


class RecordingApi:
    """Just enough of ClusterApi for act.carry_out: records every call; refuses dry runs of one kind."""

    def __init__(self, refuse_kind: str) -> None:
        self.refuse_kind = refuse_kind
        self.calls: list[tuple[str, str, bool]] = []

    def _call(self, verb: str, obj: dict[str, Any], dry_run: bool) -> None:
        from emqx_operator.cluster_api import ApiError

        self.calls.append((verb, obj["kind"], dry_run))
        if dry_run and obj["kind"] == self.refuse_kind:
            message = f'{obj["kind"]} "x" is invalid: spec.template.metadata.labels: Invalid value'
            raise ApiError(422, "Invalid", message,
                           "PATCH", "/apis/apps/v1/namespaces/ns/statefulsets/x")

    def create(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        self._call("create", obj, dry_run)
        return obj

    def apply(self, obj: dict[str, Any], existing: Any = None, dry_run: bool = False) -> bool:
        self._call("apply", obj, dry_run)
        return True

    def each(self, calls: list[Any]) -> list[Any]:
        """ClusterApi.each, one after the other: every call runs, the first failure is raised."""
        results, failure = [], None
        for call in calls:
            try:
                results.append(call())
            except Exception as exc:  # noqa: BLE001
                failure = failure or exc
        if failure is not None:
            raise failure
        return results


def test_a_spec_kubernetes_refuses_writes_nothing_not_even_the_secrets() -> None:
    """A pod label Kubernetes refuses (the CRD keeps template labels opaque): the pass wrote the
    Secrets, the ConfigMap and the headless Service, then the StatefulSet was refused, leaving half a
    cluster behind. Every object is now validated (dry run) before the first write."""
    import pytest
    from emqx_operator import act
    from emqx_operator.cluster_api import ApiError
    from emqx_operator.emqx_clients import ClientPool

    cluster = Cluster(extra_spec={"coreTemplate": {"metadata": {"labels": {"bad key!": "x"}},
                                                   "spec": {"replicas": 3}}})
    plan = cluster.decide()
    assert plan.secrets and plan.apply
    api = RecordingApi("StatefulSet")
    with pytest.raises(ApiError):
        act.carry_out(api, ClientPool(5.0), cluster.spec, cluster.world(), "", plan)  # type: ignore[arg-type]
    assert api.calls and all(dry_run for _, _, dry_run in api.calls), api.calls
    fine = RecordingApi("Nothing")
    act.carry_out(fine, ClientPool(5.0), cluster.spec, cluster.world(), "", plan)  # type: ignore[arg-type]
    written = [(verb, kind) for verb, kind, dry_run in fine.calls if not dry_run]
    checked = [(verb, kind) for verb, kind, dry_run in fine.calls if dry_run]
    assert sorted(checked) == [("apply", "Service"), ("apply", "Service"), ("apply", "StatefulSet")], \
        "each object Kubernetes could refuse validated once, before all; the Secrets, written first, are not"
    assert sorted(call for call in written if call[1] not in ("Secret", "ConfigMap", "PodDisruptionBudget")) == \
        [("apply", "Service")] * 3 + [("apply", "StatefulSet")], "the headless Service is built from the name only"
    assert ("apply", "StatefulSet") in written and ("create", "Secret") in written
    kinds = [kind for _, kind in written]
    workloads = [i for i, kind in enumerate(kinds) if kind in ("StatefulSet", "Deployment")]
    assert min(workloads) > max(i for i, kind in enumerate(kinds) if kind in ("Secret", "ConfigMap")), \
        f"the pods' ConfigMap and Secrets are written before their workloads: {kinds}"
    first_write = next(i for i, call in enumerate(fine.calls) if not call[2])
    assert all(call[2] for call in fine.calls[:first_write]) and len(fine.calls[:first_write]) == len(checked)


def test_emqx_answering_through_another_core_is_no_change_worth_a_write() -> None:
    """EMQXReachable said which core answered ("EMQX answered at http://<ip>:18083"): when another
    core answered (the first one busy joining, slow, or replaced), a settled cluster wrote its status
    and posted an Event, and again when the first one answered once more."""
    cluster = settled()
    assert writes_nothing(cluster)
    cluster.address = "http://10.0.0.2:18083"
    plan = cluster.decide()
    assert changed_key(cluster.status, dict(plan.status), cluster.now) is None
    assert not plan.events


def test_the_pass_after_an_upgrade_became_ready_writes_nothing() -> None:
    """UpgradeAllowed said "<old> -> <new> passes the version policy" in the pass that wrote Ready
    (currentImage was still the old image) and "no upgrade pending" in the next: a status write after
    every upgrade and rollback had settled."""
    for target in ("emqx/emqx-enterprise:5.7.2", "emqx/emqx-enterprise:5.8.0"):
        cluster = settled(image="emqx/emqx-enterprise:5.7.1" if target.endswith("5.7.2") else
                          "emqx/emqx-enterprise:5.7.2")
        cluster.set_image(target)
        cluster.converge(passes=200, seconds=11)
        assert cluster.status["currentImage"] == target
        assert cond(cluster.status, "UpgradeAllowed")["message"] == "no upgrade pending"
        assert writes_nothing(cluster)
