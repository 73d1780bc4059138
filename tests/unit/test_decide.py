"""decide() world by world, with a fixed clock and no cluster (tests/unit/operator_world.py plays
Kubernetes and EMQX). Each test builds one or more worlds and checks the whole decision: what is
written, what EMQX is asked, the conditions, the phase."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from emqx_operator.decide import config as config_rules
from emqx_operator.decide import settle
from emqx_operator.decide.status import changed_key
from emqx_operator.model import (
    CallError,
    ConfigPut,
    EmqxError,
    EmqxView,
    EvacuationStart,
    EvacuationStop,
    ForceLeave,
    Outcome,
    Plan,
    RebalanceStart,
    RebalanceStop,
)

from kubectl_emqx.domain.builders import SecretValues
from kubectl_emqx.domain.vocabulary import ANNOTATION_API_KEYS_HASH, ANNOTATION_DELETION_COST, ANNOTATION_RESTART_HASH
from tests.unit.operator_world import NOW, Cluster

EE = "emqx/emqx-enterprise"


def settled(**kwargs: Any) -> Cluster:
    cluster = Cluster(**kwargs)
    cluster.converge()
    return cluster


def cond(plan_or_status: Plan | dict[str, Any], kind: str) -> dict[str, Any]:
    status = plan_or_status.status if isinstance(plan_or_status, Plan) else plan_or_status
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def calls(plan: Plan, kind: type) -> list[Any]:
    return [c for c in plan.emqx_calls if isinstance(c, kind)]


def deleted(plan: Plan) -> list[str]:
    return [d.name for d in plan.pod_deletions]


def applied(plan: Plan, kind: str) -> dict[str, Any]:
    return next(dict(o) for o in plan.apply if o["kind"] == kind)


def template_annotation(obj: dict[str, Any], key: str) -> str | None:
    return obj["spec"]["template"]["metadata"]["annotations"].get(key)


def roll_until(cluster: Cluster, predicate: Any, passes: int = 80, seconds: float = 1.0) -> Plan:
    for _ in range(passes):
        plan = cluster.step(seconds)
        if predicate(plan):
            return plan
    raise AssertionError(f"never happened; phase {cluster.status.get('phase')}: {cluster.status.get('message')}")


def start_upgrade(cluster: Cluster, image: str) -> None:
    cluster.set_image(image)
    roll_until(cluster, lambda plan: bool(plan.pod_deletions))


# --- creation and steady state -------------------------------------------------------------------------


def test_a_new_resource_gets_its_secrets_and_core_objects_but_no_replicants_yet() -> None:
    plan = Cluster().decide()
    assert [(w.body["metadata"]["name"], w.create) for w in plan.secrets] == [
        ("demo-node-cookie", True), ("demo-bootstrap-api-key", True)]
    kinds = [(o["kind"], o["metadata"]["name"]) for o in plan.apply]
    assert ("StatefulSet", "demo-core") in kinds and ("ConfigMap", "demo-configs") in kinds
    assert ("Deployment", "demo-replicant") not in kinds  # cores first
    listeners = next(o for o in plan.apply if o["metadata"]["name"] == "demo-listeners")
    assert listeners["spec"]["selector"]["apps.emqx.io/db-role"] == "core"  # no replicant serves yet
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == "cr-uid" for o in plan.apply)
    assert all(w.body["metadata"]["ownerReferences"][0]["uid"] == "cr-uid" for w in plan.secrets)
    assert plan.status["phase"] == "Creating" and not plan.emqx_calls and plan.busy
    assert cond(plan, "ConfigApplied")["reason"] == "NodesStarting", "nothing is restarted on creation"


def _starting(pod: dict[str, Any], reason: str = "ContainerCreating") -> None:
    pod["status"] = {"phase": "Pending", "podIP": pod["status"].get("podIP"), "conditions": [],
                     "containerStatuses": [{"name": "emqx", "ready": False, "restartCount": 0,
                                            "state": {"waiting": {"reason": reason}}}]}


def test_a_cluster_waiting_only_for_its_pods_to_start_is_woken_by_their_events() -> None:
    """Nodes still to be created, scheduled, started, or booting with their containers not ready:
    each next step is a pod event, so the 2 s look-again is only a safety net (waits_on_pods). A
    node whose containers are ready waits for EMQX instead, which no event announces."""
    import dataclasses

    from emqx_operator.decide import decide

    cluster = Cluster(replicants=0)
    assert not cluster.decide().waits_on_pods, "the first pass: nothing exists yet to wait for"
    cluster.step()
    for name in cluster.core_pods():
        _starting(cluster.pod(name))
    plan = cluster.decide()
    assert plan.busy and plan.waits_on_pods, plan.status.get("pendingNodes")
    first = cluster.pod(cluster.core_pods()[0])
    first["status"].update(phase="Running", conditions=[{"type": "ContainersReady", "status": "False"},
                                                        {"type": "Ready", "status": "False"}],
                           containerStatuses=[{"name": "emqx", "ready": False, "restartCount": 0,
                                               "state": {"running": {}}}])
    assert cluster.decide().waits_on_pods, "booting: the readiness probe's pass is a pod event"
    cluster.controllers()  # every pod runs and is Ready
    unseen = decide(cluster.spec, cluster.world(), EmqxView(), copy.deepcopy(cluster.status), NOW, cluster.fresh)
    assert unseen.busy and not unseen.waits_on_pods, "Ready pods EMQX does not report yet: look again soon"
    _starting(cluster.pod(cluster.core_pods()[2]), "CrashLoopBackOff")
    assert not decide(cluster.spec, cluster.world(), EmqxView(), copy.deepcopy(cluster.status), NOW,
                      cluster.fresh).waits_on_pods, "one node waits for EMQX: that decides"

    with_replicants = Cluster(replicants=2)
    with_replicants.converge()
    replicant = with_replicants.pod(with_replicants.replicant_pods()[0])
    replicant["status"]["conditions"] = [c for c in replicant["status"]["conditions"]
                                         if c["type"] != "apps.emqx.io/on-serving"]
    for condition in replicant["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition["status"] = "False"
    view = with_replicants.view()
    cores_only = dataclasses.replace(view, nodes=tuple(n for n in view.nodes or () if n["role"] == "core"))
    gate = decide(with_replicants.spec, with_replicants.world(), cores_only, copy.deepcopy(with_replicants.status),
                  NOW, with_replicants.fresh)
    assert gate.busy and not gate.waits_on_pods, "containers ready, gate closed: EMQX's word opens it"

    rolling = Cluster(cores=1, replicants=0)
    rolling.converge()
    rolling.set_image("emqx/emqx-enterprise:5.7.3")
    for _ in range(10):
        if rolling.step().pod_deletions:
            break
    assert (rolling.status.get("upgrade") or {}).get("step"), rolling.status.get("upgrade")
    replaced = str(rolling.status["upgrade"]["step"]["pod"])
    _starting(rolling.pod(replaced))
    in_flight = rolling.decide()
    assert in_flight.busy and not in_flight.waits_on_pods, "a core in flight has a deadline no event announces"


def test_a_settled_cluster_decides_nothing_new() -> None:
    cluster = settled()
    plan = cluster.decide()
    assert not plan.secrets and not plan.emqx_calls and not plan.pod_deletions and not plan.pod_patches
    assert not plan.delete and not plan.busy
    assert changed_key(cluster.status, dict(plan.status), NOW) is None
    assert plan.status["phase"] == "Ready" and cond(plan, "Ready")["observedGeneration"] == 1


def test_invalid_hocon_writes_nothing_and_keeps_what_status_knew() -> None:
    cluster = settled()
    cluster.set_spec(config={"data": "a = [1,"})
    plan = cluster.decide()
    assert not plan.apply and not plan.secrets and not plan.emqx_calls
    assert cond(plan, "Valid")["status"] == "False" and "line 1" in cond(plan, "Valid")["message"]
    assert plan.status["phase"] == "Invalid" and "upgrade" in plan.status and "emqxNodes" in plan.status
    assert [e.reason for e in plan.events] == ["InvalidSpec"]


def test_official_sample_with_only_an_image_runs_three_cores_and_no_replicants() -> None:
    cluster = Cluster(image="emqx/emqx:latest")
    del cluster.body["spec"]["coreTemplate"], cluster.body["spec"]["replicantTemplate"]
    cluster.converge()
    assert len(cluster.core_pods()) == 3 and not cluster.replicant_pods()
    assert cluster.status["message"] == "3 cores and 0 replicants running emqx/emqx:latest"


def test_replicants_asked_for_on_opensource_58_are_refused_by_name() -> None:
    plan = Cluster(image="emqx/emqx:5.8.9", replicants=2).decide()
    assert cond(plan, "Valid")["status"] == "False"
    assert "spec.replicantTemplate.spec.replicas" in cond(plan, "Valid")["message"] and not plan.apply


def test_recreate_strategy_is_served_in_place_and_said_so() -> None:
    plan = Cluster(extra_spec={"updateStrategy": {"type": "Recreate"}}).decide()
    valid = cond(plan, "Valid")
    assert valid["status"] == "True" and valid["reason"] == "AcceptedWithWarnings"
    assert "Recreate" in valid["message"] and any(e.reason == "AcceptedWithWarnings" for e in plan.events)


def test_conditions_carry_the_generation_they_judged() -> None:
    cluster = settled()
    cluster.set_spec(replicantTemplate={"spec": {"replicas": 4}})
    plan = cluster.decide()
    assert {c["observedGeneration"] for c in plan.status["conditions"]} == {2}
    assert plan.status["observedGeneration"] == 2 and plan.status["phase"] == "Scaling"


def test_volatile_node_counters_alone_are_not_worth_a_write() -> None:
    cluster = settled()
    cluster.connections = {n["node"]: 7 for n in cluster.status["emqxNodes"]}
    plan = cluster.decide()
    later = NOW + datetime.timedelta(seconds=60)
    assert changed_key(cluster.status, dict(plan.status), later) is None
    much_later = later + datetime.timedelta(seconds=340)
    assert changed_key(cluster.status, dict(plan.status), much_later) == "emqxNodesObservedAt"


def test_a_settled_cluster_without_client_changes_never_refreshes_its_counters() -> None:
    cluster = settled()
    plan = cluster.decide()
    ticking = dict(plan.status, emqxNodes=[dict(n, uptime=int(n.get("uptime") or 0) + 3600, memory_used="512M",
                                                 load1=9.9) for n in plan.status["emqxNodes"]])
    an_hour_later = NOW + datetime.timedelta(hours=1)
    assert changed_key(cluster.status, ticking, an_hour_later) is None


# --- Secrets and keys the operator owns ----------------------------------------------------------------


def test_a_deleted_cookie_secret_comes_back_with_the_cookie_the_nodes_run() -> None:
    cluster = settled()
    cookie = cluster.secrets["demo-node-cookie"]["node_cookie"]
    del cluster.secrets["demo-node-cookie"]
    plan = cluster.decide()
    (write,) = plan.secrets
    assert write.create and write.body["metadata"]["name"] == "demo-node-cookie"
    assert cluster_decode(write.body["data"]["node_cookie"]) == cookie
    assert [e.reason for e in plan.events if e.type == "Warning"] == ["SecretRecreated"]


def cluster_decode(value: str) -> str:
    import base64

    return base64.b64decode(value).decode()


def test_a_deleted_api_key_secret_gets_a_new_key_and_the_cores_restart_to_load_it() -> None:
    cluster = settled()
    before = template_annotation(applied(cluster.decide(), "StatefulSet"), ANNOTATION_API_KEYS_HASH)
    del cluster.secrets["demo-bootstrap-api-key"]
    cluster.fresh = SecretValues("x", "kubectl-emqx-operator", "another-secret", "another-pw")
    plan = cluster.decide()
    assert [w.body["metadata"]["name"] for w in plan.secrets] == ["demo-bootstrap-api-key"]
    assert "another-secret" in cluster_decode(plan.secrets[0].body["data"]["bootstrap_api_key"])
    assert template_annotation(applied(plan, "StatefulSet"), ANNOTATION_API_KEYS_HASH) != before
    assert "restart one at a time" in next(e.message for e in plan.events if e.reason == "SecretRecreated")


def test_emqx_refusing_the_key_does_not_block_the_restart_that_fixes_it() -> None:
    cluster = settled(image=f"{EE}:5.7.2")
    del cluster.secrets["demo-bootstrap-api-key"]
    cluster.fresh = SecretValues("x", "kubectl-emqx-operator", "another-secret", "another-pw")
    cluster.step()
    cluster.emqx_error = EmqxError("EMQXUnauthorized", "401 BAD_API_KEY_OR_SECRET")
    plan = roll_until(cluster, lambda p: bool(p.pod_deletions), passes=10)
    assert deleted(plan) == ["demo-core-2"]


def test_bootstrap_api_keys_added_later_update_the_secret_and_roll_the_cores() -> None:
    cluster = settled()
    cluster.set_spec(bootstrapAPIKeys=[{"key": "ci", "secret": "ci-secret"}])
    plan = cluster.decide()
    (write,) = plan.secrets
    assert not write.create and "ci:ci-secret" in cluster_decode(write.body["data"]["bootstrap_api_key"])
    assert plan.status["phase"] != "Invalid"


def test_secret_ref_keys_are_resolved_and_a_missing_one_is_named() -> None:
    keys = [{"key": "svc", "secretRef": {"secret": {"secretName": "creds", "secretKey": "token"}}}]
    cluster = Cluster(extra_spec={"bootstrapAPIKeys": keys})
    plan = cluster.decide()
    assert cond(plan, "Valid")["status"] == "False"
    assert "spec.bootstrapAPIKeys[0].secretRef.secret" in cond(plan, "Valid")["message"]
    assert "creds" in cond(plan, "Valid")["message"] and not plan.apply
    cluster.referenced = {("creds", "token"): "s3cret"}
    plan = cluster.decide()
    file = cluster_decode(next(w for w in plan.secrets if "api" in w.body["metadata"]["name"]).body["data"][
        "bootstrap_api_key"])
    assert file.splitlines()[1:] == ["svc:s3cret"]
    cluster.referenced = {("creds", "token"): "a:b"}
    assert "cannot be" in cond(cluster.decide(), "Valid")["message"]


def test_keys_the_pods_environment_sets_are_refused_with_the_owner_named() -> None:
    plan = Cluster(config="cluster.discovery_strategy = static\n").decide()
    message = cond(plan, "Valid")["message"]
    assert cond(plan, "Valid")["status"] == "False" and "EMQX_CLUSTER__DISCOVERY_STRATEGY" in message
    assert Cluster(config="cluster.discovery_strategy = dns\n").decide().status["phase"] != "Invalid"


def test_node_cookie_in_the_config_must_be_the_clusters() -> None:
    cluster = Cluster(config="node.cookie = mine\n")
    cluster.converge()
    assert cluster.secrets["demo-node-cookie"]["node_cookie"] == "mine"
    cluster.set_spec(config={"data": "node.cookie = other\n"})
    plan = cluster.decide()
    assert cond(plan, "Valid")["status"] == "False" and "node.cookie" in cond(plan, "Valid")["message"]
    assert "other" not in cond(plan, "Valid")["message"]  # never shown


# --- core rollouts -------------------------------------------------------------------------------------


def test_an_image_change_first_applies_the_template_then_replaces_the_highest_core() -> None:
    cluster = settled()
    cluster.set_image(f"{EE}:5.8.0")
    first = cluster.step()
    assert not first.pod_deletions  # the StatefulSet controller has not seen the template yet
    assert applied(first, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"] == f"{EE}:5.8.0"
    second = cluster.decide()
    assert deleted(second) == ["demo-core-2"]
    step = second.status["upgrade"]["step"]
    assert (step["pod"], step["generation"]) == ("demo-core-2", 2) and second.status["upgrade"]["coresReplaced"] == 1
    assert second.status["phase"] == "Upgrading"
    deployment = applied(second, "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{EE}:5.7.2"  # held back


def test_a_broken_outdated_core_goes_first() -> None:
    cluster = settled(image=f"{EE}:5.7.1")
    cluster.set_image(f"{EE}:5.7.2")
    cluster.step()
    cluster.not_ready.add("demo-core-0")
    cluster.controllers()
    assert deleted(cluster.decide()) == ["demo-core-0"]


def test_one_core_at_a_time_and_every_core_once() -> None:
    cluster = settled()
    cluster.set_image(f"{EE}:5.8.0")
    cluster.converge(passes=120, seconds=11)
    assert cluster.deleted == ["demo-core-2", "demo-core-1", "demo-core-0"]
    assert set(cluster.images().values()) == {f"{EE}:5.8.0"}
    assert cluster.status["currentImage"] == f"{EE}:5.8.0" and cluster.status["previousImage"] == f"{EE}:5.7.2"


def test_the_next_core_waits_for_takeover_only_when_the_last_one_had_clients() -> None:
    cluster = settled(image="emqx/emqx:5.7.1", replicants=0)
    cluster.connections = {n["node"]: 5 for n in cluster.status["emqxNodes"]}
    start_upgrade(cluster, "emqx/emqx:5.7.2")
    plan = roll_until(cluster, lambda p: "lastCompleted" in p.status["upgrade"])
    assert not plan.pod_deletions and "reconnect" in str(plan.status.get("pendingNodes"))
    cluster.now += datetime.timedelta(seconds=11)
    assert deleted(cluster.decide()) == ["demo-core-1"]

    quiet = settled(image="emqx/emqx:5.7.1", replicants=0)
    start_upgrade(quiet, "emqx/emqx:5.7.2")
    plan = roll_until(quiet, lambda p: "lastCompleted" in p.status["upgrade"])
    assert deleted(plan) == ["demo-core-1"]  # no clients: the next goes in the same pass


def test_initial_delay_keeps_a_replaced_node_running_a_while_before_the_next() -> None:
    cluster = settled(image=f"{EE}:5.7.1", replicants=0, extra_spec={"updateStrategy": {"initialDelaySeconds": 30}})
    start_upgrade(cluster, f"{EE}:5.7.2")
    roll_until(cluster, lambda p: "lastCompleted" in p.status["upgrade"])
    cluster.now += datetime.timedelta(seconds=20)
    assert not cluster.decide().pod_deletions
    cluster.now += datetime.timedelta(seconds=11)
    assert deleted(cluster.decide()) == ["demo-core-1"]


def test_a_tag_that_cannot_be_pulled_stalls_at_once_with_the_pull_error() -> None:
    cluster = settled()
    start_upgrade(cluster, f"{EE}:5.7.9")
    plan = cluster.step()
    stalled = cond(plan, "UpgradeStalled")
    assert stalled["status"] == "True" and "ErrImagePull" in stalled["message"]
    assert "manifest unknown" in stalled["message"] and "--rollback" in stalled["message"]
    assert plan.status["phase"] == "Stalled" and not plan.busy
    assert [e.reason for e in plan.events if e.type == "Warning"] == ["NodeNotRunning"]
    assert not cluster.step().pod_deletions  # nothing else is touched


def test_a_node_crashing_on_start_stalls_with_its_last_words() -> None:
    cluster = settled(image=f"{EE}:5.7.1")
    start_upgrade(cluster, f"{EE}:5.7.2")
    cluster.crash.add("demo-core-2")
    cluster.controllers()
    stalled = cond(cluster.decide(), "UpgradeStalled")
    assert stalled["status"] == "True" and "CrashLoopBackOff" in stalled["message"]
    assert "failed_to_check_schema" in stalled["message"]


def test_a_merely_slow_node_stalls_after_the_node_timeout() -> None:
    cluster = settled(image=f"{EE}:5.7.1", extra_spec={"updateStrategy": {"nodeReadyTimeoutSeconds": 60}})
    start_upgrade(cluster, f"{EE}:5.7.2")
    cluster.not_ready.add("demo-core-2")
    cluster.controllers()
    cluster.now += datetime.timedelta(seconds=30)
    assert cond(cluster.decide(), "UpgradeStalled")["status"] == "False"
    assert "demo-core-2" in str(cluster.decide().status["pendingNodes"])
    cluster.now += datetime.timedelta(seconds=31)
    stalled = cond(cluster.decide(), "UpgradeStalled")
    assert stalled["status"] == "True" and "after 60s" in stalled["message"]


def test_a_rollback_clears_the_stall_in_the_same_pass_and_replaces_the_broken_core() -> None:
    cluster = settled()
    start_upgrade(cluster, f"{EE}:5.7.9")
    cluster.step()
    assert cluster.status["phase"] == "Stalled"
    cluster.set_image(f"{EE}:5.7.2")
    plan = cluster.step()
    assert cond(plan, "UpgradeStalled")["status"] == "False"
    assert plan.status["phase"] != "Stalled" and cond(plan, "Progressing")["status"] == "True"
    assert any(e.reason == "NotStalled" and e.type == "Normal" for e in plan.events)
    plan = roll_until(cluster, lambda p: bool(p.pod_deletions))
    assert deleted(plan) == ["demo-core-2"]
    cluster.converge()
    assert set(cluster.images().values()) == {f"{EE}:5.7.2"}


@pytest.mark.parametrize(("image", "rule"), [
    (f"{EE}:5.9.1", "one-minor-step"), (f"{EE}:5.6.1", "downgrade"), (f"{EE}:6.0.1", "major-change"),
])
def test_upgrades_the_policy_refuses_move_nothing(image: str, rule: str) -> None:
    cluster = settled(config='license.key = "evaluation"\n')
    cluster.set_image(image)
    plan = cluster.decide()
    allowed = cond(plan, "UpgradeAllowed")
    assert allowed["status"] == "False" and rule in allowed["message"]
    assert plan.status["phase"] == "UpgradeRefused" and not plan.pod_deletions
    sts = applied(plan, "StatefulSet")
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == f"{EE}:5.7.2"


def test_a_downgrade_is_allowed_when_asked_for() -> None:
    cluster = settled()
    cluster.set_spec(image=f"{EE}:5.7.1", updateStrategy={"allowDowngrade": True})
    assert cond(cluster.decide(), "UpgradeAllowed")["status"] == "True"


# --- evacuation ----------------------------------------------------------------------------------------


def busy(cluster: Cluster, connections: int = 40) -> None:
    cluster.connections = {n["node"]: connections for n in cluster.status["emqxNodes"]}


def test_a_busy_enterprise_core_is_drained_before_it_goes() -> None:
    cluster = settled(image=f"{EE}:5.7.1")
    busy(cluster)
    cluster.set_image(f"{EE}:5.7.2")
    cluster.step()
    plan = cluster.decide()
    (start,) = calls(plan, EvacuationStart)
    assert start.node.startswith("emqx@demo-core-2.") and not plan.pod_deletions
    assert start.body["migrate_to"] and start.node not in start.body["migrate_to"]
    assert start.body["wait_health_check"] == 60 and start.body["wait_takeover"] == 10
    assert plan.status["upgrade"]["evacuation"]["node"] == start.node
    cluster.step()
    assert deleted(cluster.decide()) == ["demo-core-2"]  # drained (prohibiting): it goes now


def test_a_single_core_is_replaced_without_evacuation_and_said_so() -> None:
    cluster = settled(image=f"{EE}:5.9.1", cores=1, replicants=0, config='license.key = "evaluation"\n')
    busy(cluster)
    start_upgrade(cluster, f"{EE}:5.10.0")
    assert not any(isinstance(c, EvacuationStart) for c in cluster.calls)
    assert cluster.deleted == ["demo-core-0"]


def test_nodes_that_evacuate_themselves_are_no_targets() -> None:
    cluster = settled(image=f"{EE}:5.7.1", replicants=0)
    busy(cluster)
    for node in [n["node"] for n in cluster.status["emqxNodes"] if "core-2" not in n["node"]]:
        cluster.evacuations[node] = "evicting_conns"
    cluster.set_image(f"{EE}:5.7.2")
    cluster.step()
    plan = cluster.decide()
    assert not calls(plan, EvacuationStart) and deleted(plan) == ["demo-core-2"]
    assert any(e.reason == "EvacuationSkipped" for e in plan.events)


def test_enterprise_before_5_1_1_gets_a_positive_wait_takeover() -> None:
    for image, expected in ((f"{EE}:5.1.0", 1), (f"{EE}:5.1.1", 0)):
        cluster = settled(image=image, extra_spec={"updateStrategy": {"evacuationStrategy": {"waitTakeover": 0}}})
        busy(cluster)
        cluster.set_spec(config={"data": "node.process_limit = 2097152\n"})  # restart-needing: a roll
        plan = roll_until(cluster, lambda p: bool(calls(p, EvacuationStart)))
        (start,) = calls(plan, EvacuationStart)
        assert start.body["wait_takeover"] == expected, image


def test_before_5_7_a_core_with_a_volume_gets_its_evacuation_ended_before_it_goes() -> None:
    claim = {"resources": {"requests": {"storage": "1Gi"}}}
    cluster = settled(image=f"{EE}:5.6.1", replicants=0, extra_spec={"coreTemplate": {
        "spec": {"replicas": 2, "volumeClaimTemplates": claim}}})
    busy(cluster)
    cluster.set_image(f"{EE}:5.6.0")
    cluster.set_spec(updateStrategy={"allowDowngrade": True})
    cluster.step()
    cluster.step()  # evacuation started; EMQX drains it at once here
    plan = cluster.decide()
    (stop,) = calls(plan, EvacuationStop)
    (deletion,) = plan.pod_deletions
    assert deletion.after == stop and stop.node.startswith("emqx@demo-core-1.")
    cluster.failures[EvacuationStop] = CallError(503, "RPC_ERROR", "RPC error")
    cluster.step()
    assert "demo-core-1" not in cluster.deleted  # not without the stop


def test_a_core_that_resumed_its_evacuation_gets_it_ended_once_it_runs_the_target() -> None:
    cluster = settled(image=f"{EE}:5.8.0", replicants=0)
    start_upgrade(cluster, f"{EE}:5.8.1")
    node = next(n["node"] for n in cluster.status["emqxNodes"] if "core-2" in n["node"])
    cluster.step()
    cluster.evacuations[node] = "evicting_conns"  # the new pod resumed it from its volume
    plan = cluster.decide()
    assert EvacuationStop(node) in calls(plan, EvacuationStop)


def test_a_refused_evacuation_is_shown_retried_and_stalls_after_the_timeout() -> None:
    cluster = settled(image=f"{EE}:5.7.1", replicants=0,
                      extra_spec={"updateStrategy": {"nodeReadyTimeoutSeconds": 90}})
    busy(cluster)
    cluster.failures[EvacuationStart] = CallError(400, "BAD_REQUEST", "Nodes unavailable: [x]")
    cluster.set_image(f"{EE}:5.7.2")
    cluster.step()
    cluster.step()
    record = cluster.status["upgrade"]["evacuation"]
    assert "Nodes unavailable" in record["error"]
    plan = cluster.decide()
    assert not calls(plan, EvacuationStart)  # not again at once
    assert "refused by EMQX" in str(plan.status["pendingNodes"])
    cluster.now += datetime.timedelta(seconds=31)
    assert calls(cluster.decide(), EvacuationStart)  # retried, still shown
    cluster.now += datetime.timedelta(seconds=90)
    stalled = cond(cluster.decide(), "UpgradeStalled")
    assert stalled["status"] == "True" and "Nodes unavailable" in stalled["message"]


def test_opensource_cores_are_not_drained() -> None:
    cluster = settled(image="emqx/emqx:5.7.1", replicants=0)
    busy(cluster)
    cluster.evacuations = {}
    start_upgrade(cluster, "emqx/emqx:5.7.2")
    assert not any(isinstance(c, EvacuationStart) for c in cluster.calls)


# --- replicants ---------------------------------------------------------------------------------------


def test_replicants_follow_only_once_every_core_is_done_and_one_at_a_time() -> None:
    cluster = settled(image="emqx/emqx:5.5.0")  # before 5.6 a replicant may pick a core of any release
    cluster.set_image("emqx/emqx:5.5.1")
    images_seen = []
    for _ in range(200):
        plan = cluster.step(11)
        deployment = next((o for o in plan.apply if o["kind"] == "Deployment"), None)
        if deployment is not None:
            images_seen.append((deployment["spec"]["template"]["spec"]["containers"][0]["image"],
                                sorted(set(cluster.images()[p] for p in cluster.core_pods()))))
        assert len(cluster.replicant_pods()) <= 4  # never more than one extra replicant
        if cluster.ready():
            break
    new_deployments = [cores for image, cores in images_seen if image == "emqx/emqx:5.5.1"]
    assert new_deployments and all(cores == ["emqx/emqx:5.5.1"] for cores in new_deployments)
    assert set(cluster.images().values()) == {"emqx/emqx:5.5.1"}


def test_from_5_6_replicants_start_once_one_core_runs_the_new_release() -> None:
    """A 5.6+ replicant replicates only from a core of its own release, so replicants need not wait
    for the last core: the rollouts overlap, never with more than one extra replicant."""
    cluster = settled(image=f"{EE}:5.7.2")
    cluster.set_image(f"{EE}:5.8.0")
    overlapped = False
    for _ in range(200):
        plan = cluster.step(11)
        deployment = next((o for o in plan.apply if o["kind"] == "Deployment"), None)
        core_images = {cluster.images()[p] for p in cluster.core_pods()}
        released = deployment is not None and f"{EE}:5.8.0" in str(deployment["spec"]["template"])
        if released and len(core_images) > 1:
            assert f"{EE}:5.8.0" in core_images  # at least one core runs the release first
            overlapped = True
        assert len(cluster.replicant_pods()) <= 4
        if cluster.ready():
            break
    assert overlapped and set(cluster.images().values()) == {f"{EE}:5.8.0"}
    assert sorted(cluster.deleted)[:3] == ["demo-core-0", "demo-core-1", "demo-core-2"]


def test_a_new_replicant_waits_until_the_old_one_going_next_is_drained() -> None:
    cluster = settled(image=f"{EE}:5.7.1", cores=1, replicants=2)
    busy(cluster)
    cluster.set_image(f"{EE}:5.7.2")
    plan = roll_until(cluster, lambda p: any(c.node.startswith("emqx@10.") for c in calls(p, EvacuationStart)),
                      seconds=11)
    (start,) = calls(plan, EvacuationStart)  # a replicant (named by IP), marked to go next
    assert any(ANNOTATION_DELETION_COST in str(x.patch) for x in plan.pod_patches) or any(
        ANNOTATION_DELETION_COST in str(p["metadata"].get("annotations")) for p in cluster.pods.values())
    gates = [p for p in plan.pod_patches if p.subresource == "status"]
    assert not gates  # not before the drain


def test_opensource_replicants_are_let_in_without_a_drain() -> None:
    cluster = settled(image="emqx/emqx:5.7.1", cores=1, replicants=2)
    cluster.set_image("emqx/emqx:5.7.2")
    plan = roll_until(cluster, lambda p: any(x.subresource == "status" for x in p.pod_patches))
    assert not calls(plan, EvacuationStart)
    cluster.converge(passes=80, seconds=11)


@pytest.mark.parametrize(("connections", "expected"), [(0, 0), (3, 10)])
def test_the_surge_waits_for_takeover_only_while_old_replicants_have_clients(connections: int, expected: int) -> None:
    cluster = settled(image="emqx/emqx:5.7.1", cores=1, replicants=2)
    cluster.connections = {n["node"]: connections for n in cluster.status["emqxNodes"]}
    cluster.set_image("emqx/emqx:5.7.2")
    plan = roll_until(cluster, lambda p: any(o["kind"] == "Deployment" and "5.7.2" in str(o) for o in p.apply))
    deployment = next(o for o in plan.apply if o["kind"] == "Deployment")
    assert deployment["spec"]["minReadySeconds"] == expected
    cluster.converge(passes=80, seconds=11)
    assert cluster.objects[("Deployment", "demo-replicant")]["spec"]["minReadySeconds"] == 10, \
        "back to waitTakeover once no old replicant is left (a settled cluster keeps one value)"


def test_scaling_replicants_up_opens_the_new_gates() -> None:
    cluster = settled(replicants=1)
    cluster.set_spec(replicantTemplate={"spec": {"replicas": 3}})
    assert cluster.decide().status["phase"] == "Scaling"
    cluster.converge()
    assert len(cluster.replicant_pods()) == 3


# --- scale-down -----------------------------------------------------------------------------------------


def test_departed_cores_are_force_left_once_their_pod_is_gone() -> None:
    cluster = settled(replicants=0)
    node = next(n["node"] for n in cluster.status["emqxNodes"] if "core-2" in n["node"])
    cluster.set_spec(coreTemplate={"spec": {"replicas": 2}})
    cluster.step()  # the StatefulSet scales down; the pod goes
    cluster.stopped_cores = [node]
    plan = cluster.decide()
    assert ForceLeave(node) in calls(plan, ForceLeave) and cond(plan, "Ready")["status"] == "False"
    cluster.step()
    assert "departedCores" not in cluster.status["upgrade"]
    cluster.converge()


def test_a_5_0_6_stopped_core_without_role_is_matched_by_name() -> None:
    cluster = settled(image="emqx/emqx:5.0.6", replicants=0)
    node = next(n["node"] for n in cluster.status["emqxNodes"] if "core-2" in n["node"])
    cluster.set_spec(coreTemplate={"spec": {"replicas": 2}})
    cluster.step()
    view_nodes = cluster.view
    cluster.stopped_cores = [node]

    def without_role() -> Any:
        view = view_nodes()
        nodes = tuple({k: v for k, v in n.items() if k != "role" or n["node_status"] == "running"}
                      for n in view.nodes or ())
        return type(view)(nodes=nodes, address=view.address, evacuations=view.evacuations)

    cluster.view = without_role  # type: ignore[method-assign]
    assert ForceLeave(node) in calls(cluster.decide(), ForceLeave)


def test_cores_emqx_does_not_list_when_stopped_are_force_left_too() -> None:
    cluster = settled(image="emqx/emqx:5.0.6", replicants=0)
    node = next(n["node"] for n in cluster.status["emqxNodes"] if "core-2" in n["node"])
    cluster.set_spec(coreTemplate={"spec": {"replicas": 2}})
    plan = cluster.decide()  # core-2 still exists: it is recorded as departing
    cluster.step()
    assert node in cluster.status["upgrade"]["departedCores"] or ForceLeave(node) in calls(plan, ForceLeave)
    plan = cluster.decide()  # 5.0.17 and older do not list stopped cores: the record carries it
    assert ForceLeave(node) in calls(plan, ForceLeave) or "departedCores" not in cluster.status.get("upgrade", {})


# --- configuration -------------------------------------------------------------------------------------


def put_of(plan: Plan) -> ConfigPut:
    (put,) = calls(plan, ConfigPut)
    return put


def test_a_live_change_is_loaded_first_and_reaches_emqx_conf_once_accepted() -> None:
    cluster = settled(config="log.console.level = warning\n")
    old_text = applied(cluster.decide(), "ConfigMap")["data"]["emqx.conf"]
    cluster.set_spec(config={"data": "log.console.level = debug\n"})
    plan = cluster.decide()
    put = put_of(plan)
    assert put.text == "log {\n  console {\n    level = debug\n  }\n}\n" and put.mode == "merge"
    assert put.ignore_readonly is True and put.target == "Enterprise 5.7.2"
    assert applied(plan, "ConfigMap")["data"]["emqx.conf"] == old_text  # not before EMQX accepts it
    cluster.step()
    plan = cluster.decide()
    assert "debug" in applied(plan, "ConfigMap")["data"]["emqx.conf"] and not calls(plan, ConfigPut)
    assert cond(plan, "ConfigApplied")["status"] == "True"


def test_a_rejected_configuration_is_remembered_and_never_sent_twice() -> None:
    cluster = settled()
    cluster.failures[ConfigPut] = CallError(400, "BAD_CONFIG", '{"errors": {"log": "bad level"}}')
    cluster.set_spec(config={"data": "log.console.level = erro1r\n"})
    cluster.step()
    assert cluster.status["config"]["rejected"]["target"] == "Enterprise 5.7.2"
    assert cond(cluster.status, "ConfigApplied")["reason"] == "ConfigRejected"
    assert cond(cluster.status, "Ready")["status"] == "False" and cluster.status["phase"] == "ConfigPending"
    plan = cluster.step()
    assert not calls(plan, ConfigPut) and not plan.busy
    assert "erro1r" not in applied(plan, "ConfigMap")["data"]["emqx.conf"]
    cluster.failures.clear()
    cluster.set_spec(config={"data": "log.console.level = notice\n"})
    cluster.converge()


def test_a_rejection_is_retried_when_the_cluster_runs_another_release() -> None:
    cluster = settled(image="emqx/emqx:5.8.0", replicants=0)
    cluster.failures[ConfigPut] = CallError(400, "BAD_CONFIG", "unknown")
    cluster.set_spec(config={"data": "mqtt.max_packet_size = 2MB\n"})
    cluster.step()
    assert not calls(cluster.decide(), ConfigPut)
    cluster.failures.clear()
    cluster.set_image("emqx/emqx:5.8.1")
    cluster.converge(passes=120, seconds=11)
    assert cluster.status["config"]["appliedHash"] == config_rules.spec_hash(cluster.spec)
    assert any(isinstance(c, ConfigPut) and c.target == "Opensource 5.8.1" for c in cluster.calls)


def test_roots_the_edition_does_not_know_are_left_out_and_named() -> None:
    cluster = settled(image="emqx/emqx:5.8.9", replicants=0)
    cluster.set_spec(config={"data": 'license.key = "MjAy"\nlog.console.level = debug\n'})
    plan = cluster.decide()
    assert "license" not in put_of(plan).text
    assert "left out license" in cond(plan, "ConfigApplied")["message"]


def test_a_change_of_restart_keys_only_sends_no_body_and_rolls() -> None:
    cluster = settled()
    before = template_annotation(applied(cluster.decide(), "StatefulSet"), ANNOTATION_RESTART_HASH)
    cluster.set_spec(config={"data": "node.process_limit = 2097152\n"})
    plan = cluster.decide()
    assert not calls(plan, ConfigPut)
    assert template_annotation(applied(plan, "StatefulSet"), ANNOTATION_RESTART_HASH) != before
    assert "process_limit" in applied(plan, "ConfigMap")["data"]["emqx.conf"]
    cluster.converge(passes=120, seconds=11)
    assert cluster.deleted[:3] == ["demo-core-2", "demo-core-1", "demo-core-0"]


def test_dashboard_settings_are_live_but_its_port_rolls() -> None:
    cluster = settled(image=f"{EE}:5.6.1")
    restart = template_annotation(applied(cluster.decide(), "StatefulSet"), ANNOTATION_RESTART_HASH)
    cluster.set_spec(config={"data": "dashboard.token_expired_time = 30m\n"})
    plan = cluster.decide()
    assert "token_expired_time" in put_of(plan).text and put_of(plan).ignore_readonly is None
    assert template_annotation(applied(plan, "StatefulSet"), ANNOTATION_RESTART_HASH) == restart
    cluster.set_spec(config={"data": "dashboard.listeners.http.bind = 18084\n"})
    plan = cluster.decide()
    assert not calls(plan, ConfigPut)
    assert template_annotation(applied(plan, "StatefulSet"), ANNOTATION_RESTART_HASH) != restart


LIVE_TEXT = """dashboard {
  default_username = "admin"
  default_password = "kSBMLd6t1BJ5VVknqAl0Rtm16pCiby8c"
  listeners {
    http {
      bind = 18083
    }
  }
}
listeners {
  ssl {
    default {
      bind = "0.0.0.0:8883"
      ssl_options {password = "inline", keyfile = "/etc/key.pem"}
      ssl_options.cookie = plain-word  # a comment
      "token" = "a \\"quoted\\" one"
      key = 12
      secrets = ["not", "masked"]
    }
  }
}
node.cookie = "emqxsecretcookie"
"""


def test_live_settings_are_shown_redacted_whatever_the_text_looks_like() -> None:
    from kubectl_emqx.domain import hocon
    from kubectl_emqx.domain.redact import redact_config

    masked = config_rules.masked_secrets(LIVE_TEXT)
    assert "kSBMLd6t" not in masked and "plain-word" not in masked and "emqxsecretcookie" not in masked
    assert redact_config(hocon.parse(masked)) == redact_config(hocon.parse(LIVE_TEXT))
    multiline = 'a.sql = """\npassword = "kept: inside a string"\n"""\n'
    assert config_rules.masked_secrets(multiline) == multiline


def test_clusters_with_the_same_live_listeners_share_one_parse() -> None:
    """EMQX's GET /configs holds each cluster's generated dashboard password: the texts differ, the
    settings shown do not. Parsing each (~20 ms) was a fifth of the operator's CPU for 500 new clusters."""
    config_rules._parse_masked.cache_clear()
    cluster = settled(image=f"{EE}:5.6.1")
    shown = []
    for password in ("first-cluster-password", "second-cluster-password"):
        view = EmqxView(live_config=LIVE_TEXT.replace("kSBMLd6t1BJ5VVknqAl0Rtm16pCiby8c", password))
        status = {"appliedHash": "h"}
        config_rules._record_live(cluster.spec, view, status, NOW)
        shown.append(status["live"])
    assert shown[0] == shown[1] and "password" in shown[0] and "cluster-password" not in shown[0]
    assert config_rules._parse_masked.cache_info().misses == 1
    status = {}
    config_rules._record_live(cluster.spec, EmqxView(live_config=LIVE_TEXT.replace("8883", "8884")), status, NOW)
    assert "8884" in status["live"] and config_rules._parse_masked.cache_info().misses == 2


def test_configuration_waits_while_versions_are_mixed() -> None:
    cluster = settled()
    start_upgrade(cluster, f"{EE}:5.8.0")
    cluster.step()
    cluster.step()
    cluster.set_spec(config={"data": "log.console.level = debug\n"})
    plan = cluster.decide()
    assert not calls(plan, ConfigPut)
    assert cond(plan, "ConfigApplied")["reason"] in ("WaitingForUpgrade", "WaitingForCluster")


def test_without_a_config_api_every_change_rolls() -> None:
    cluster = settled(image="emqx/emqx:5.0.6", replicants=0)
    cluster.set_spec(config={"data": "log.console.level = debug\n"})
    plan = cluster.decide()
    assert not calls(plan, ConfigPut) and plan.status["config"]["method"] == "RollingRestart"
    assert cond(plan, "ConfigApplied")["reason"] == "RollingRestart"
    cluster.converge(passes=120, seconds=11)
    assert cond(cluster.status, "ConfigApplied")["reason"] == "AppliedByRestart"
    assert len(cluster.deleted) == 3


@pytest.mark.parametrize(("error", "verdict"), [
    (CallError(500, "", '{"log":{"kind":"validation_error"}}'), True),  # 5.3.2 answers 500 with a body
    (CallError(400, "BAD_REQUEST", "parse error"), True),
    (CallError(500, "", ""), True),  # 5.1.2-5.6 answer a parse error with an empty 500
    (CallError(503, "SERVICE_UNAVAILABLE", "RPC error"), False),
    (CallError(None, "ReadTimeout", "timed out"), False),
])
def test_an_answer_with_a_body_is_emqxs_verdict_and_silence_is_an_outage(error: CallError, verdict: bool) -> None:
    cluster = settled()
    cluster.set_spec(config={"data": "log.console.level = debug\n"})
    plan = cluster.decide()
    status, events = settle(plan, Outcome(failures=((put_of(plan), error),)), copy.deepcopy(cluster.status), NOW)
    applied_condition = cond(status, "ConfigApplied")
    assert applied_condition["status"] == "False"
    assert ("rejected" in status["config"]) is verdict
    assert applied_condition["reason"] == ("ConfigRejected" if verdict else "EMQXUnreachable")
    assert ("ConfigRejected" in [e.reason for e in events]) is verdict


def test_emqx_error_bodies_with_charlists_become_text() -> None:
    body = '{"log":{"kind":"validation_error","path":[108,111,103],"reason":[98,97,100]}}'
    described = config_rules.describe_config_error(body)
    assert '"path": "log"' in described and '"reason": "bad"' in described
    assert config_rules.describe_config_error('{"errors":"Cannot update read-only key \'node\'."}') == (
        "Cannot update read-only key 'node'.")


def test_an_empty_configuration_sends_nothing() -> None:
    cluster = settled(config="log.console.level = warning\n")
    cluster.set_spec(config={"data": ""})
    assert not calls(cluster.decide(), ConfigPut)


# --- definitive failures outside rollouts ------------------------------------------------------------------


def test_creating_with_an_image_that_cannot_be_pulled_fails_fast_and_recovers() -> None:
    cluster = Cluster(image=f"{EE}:5.7.9")
    for _ in range(3):
        plan = cluster.step()
    progressing = cond(plan, "Progressing")
    assert progressing["status"] == "False" and progressing["reason"] == "ErrImagePull"
    assert plan.status["phase"] == "Stalled" and "manifest unknown" in progressing["message"]
    cluster.set_image(f"{EE}:5.7.2")
    for pod in list(cluster.pods):
        del cluster.pods[pod]  # the user deletes the stuck pods (or the StatefulSet controller replaces them)
    cluster.converge()


def test_a_view_from_a_core_that_has_not_joined_yet_moves_nothing() -> None:
    """A fresh core runs alone for a moment before it joins (ekka's autocluster): its GET /nodes
    knows only itself. The other cores are not broken for that."""
    cluster = settled(replicants=0)
    start_upgrade(cluster, f"{EE}:5.8.0")
    cluster.step()
    full = cluster.view()
    lone = tuple(n for n in full.nodes or () if "core-2" in n["node"])
    cluster.view = lambda: type(full)(nodes=lone, address=full.address,  # type: ignore[method-assign]
                                      evacuations=full.evacuations)
    plan = cluster.decide()
    assert not plan.pod_deletions and plan.status["phase"] != "Ready"


# --- restarts (spec.restart) ---------------------------------------------------------------------------


def restart(cluster: Cluster, **request: Any) -> None:
    cluster.now += datetime.timedelta(seconds=5)
    cluster.set_spec(restart={"at": (cluster.now).strftime("%Y-%m-%dT%H:%M:%SZ"), **request})


def test_a_restart_of_every_node_goes_one_at_a_time_cores_first_each_once() -> None:
    cluster = settled()
    before = dict(cluster.pods)
    restart(cluster)
    plan = cluster.decide()
    assert plan.status["restart"]["phase"] == "Restarting"
    cluster.converge(passes=150, seconds=11)
    assert cluster.deleted == ["demo-core-2", "demo-core-1", "demo-core-0"]
    assert not set(before) & set(cluster.replicant_pods())  # replicants replaced by the Deployment, after
    assert cluster.status["restart"]["phase"] == "Done" and cluster.status["phase"] == "Ready"
    assert not cluster.decide().pod_deletions  # done is done


def test_a_restart_of_the_cores_leaves_the_replicants_alone() -> None:
    cluster = settled()
    replicants = cluster.replicant_pods()
    restart(cluster, role="cores")
    cluster.converge(passes=150, seconds=11)
    assert cluster.replicant_pods() == replicants and len(cluster.deleted) == 3


def test_a_restart_of_named_nodes_restarts_only_those_once() -> None:
    cluster = settled()
    victim_replicant = cluster.replicant_pods()[0]
    others = set(cluster.pods) - {"demo-core-1", victim_replicant}
    restart(cluster, nodes=["demo-core-1", victim_replicant])
    assert [d.name for d in cluster.decide().pod_deletions] == ["demo-core-1"]  # the core first
    cluster.converge(passes=100, seconds=11)
    assert sorted(cluster.deleted) == sorted(["demo-core-1", victim_replicant])
    assert others <= set(cluster.pods)
    for _ in range(3):
        assert not cluster.step().pod_deletions


def test_a_named_replicant_being_restarted_keeps_the_cluster_restarting_not_ready() -> None:
    cluster = settled()
    victim = cluster.replicant_pods()[0]
    cluster.not_ready.add(victim)  # it must wait: every replicant is to be ready before one goes
    cluster.step()
    cluster.not_ready.discard(victim)
    restart(cluster, nodes=[victim])
    plan = cluster.decide()
    assert plan.status["phase"] == "Restarting" and cond(plan, "Ready")["status"] == "False"
    assert plan.status["restart"]["phase"] == "Restarting"
    cluster.converge(passes=40)
    assert cluster.status["restart"]["phase"] == "Done" and victim in cluster.deleted


# --- rebalance (spec.rebalance) ----------------------------------------------------------------------------


def rebalance(cluster: Cluster, **request: Any) -> None:
    cluster.now += datetime.timedelta(seconds=5)
    cluster.set_spec(rebalance={"at": cluster.now.strftime("%Y-%m-%dT%H:%M:%SZ"), **request})


def test_rebalance_is_refused_where_the_edition_has_none_and_nothing_is_sent() -> None:
    cluster = settled(image="emqx/emqx:5.7.2")
    rebalance(cluster)
    plan = cluster.step()
    assert not calls(plan, RebalanceStart)
    allowed = cond(plan, "RebalanceAllowed")
    assert allowed["status"] == "False" and allowed["reason"] == "RebalanceUnsupported"
    assert "Opensource 5.7.2" in allowed["message"] and "5.9.0" in allowed["message"]
    assert plan.status["rebalance"]["phase"] == "Refused"
    assert any(e.type == "Warning" and e.reason == "RebalanceUnsupported" for e in plan.events)
    assert cond(plan, "Ready")["status"] == "True"  # the cluster itself is fine
    cluster.set_spec(rebalance=None)
    plan = cluster.step()
    assert "rebalance" not in plan.status and not cond(plan, "RebalanceAllowed")


def test_rebalance_starts_once_ready_on_the_replicants_coordinated_by_the_first_core_and_completes() -> None:
    cluster = settled(image=f"{EE}:5.8.0")
    for pod in cluster.replicant_pods():
        cluster.connections[cluster.node(cluster.pod(pod))] = 0
    busy = cluster.node(cluster.pod(cluster.replicant_pods()[0]))
    cluster.connections[busy] = 3000
    rebalance(cluster, strategy={"connEvictRate": 10, "relConnThreshold": "1.5", "absConnThreshold": 5})
    plan = cluster.step()
    [start] = calls(plan, RebalanceStart)
    replicants = sorted(cluster.node(cluster.pod(p)) for p in cluster.replicant_pods())
    assert start.coordinator == cluster.node(cluster.pod("demo-core-0"))
    assert start.body == {"conn_evict_rate": 10, "abs_conn_threshold": 5, "rel_conn_threshold": 1.5,
                          "nodes": replicants}
    assert cluster.status["rebalance"]["phase"] == "Processing"
    assert any(e.reason == "RebalanceStarted" for e in plan.events)
    plan = cluster.step()
    assert not calls(plan, RebalanceStart)  # started once
    progress = cluster.status["rebalance"]["progress"]
    assert progress["donors"] == [busy] and cluster.status["rebalance"]["message"].startswith("wait_health_check")
    assert plan.busy
    cluster.rebalances = []  # EMQX finished: it lists the rebalance no more
    plan = cluster.step()
    assert cluster.status["rebalance"]["phase"] == "Completed"
    assert any(e.reason == "RebalanceCompleted" for e in plan.events)
    for _ in range(3):
        assert not cluster.step().emqx_calls


def test_rebalance_waits_while_a_rollout_runs() -> None:
    cluster = settled(image=f"{EE}:5.7.2")
    start_upgrade(cluster, f"{EE}:5.8.0")
    rebalance(cluster)
    plan = cluster.step()
    assert not calls(plan, RebalanceStart)
    assert cluster.status["rebalance"]["phase"] == "Pending"
    assert "Ready" in cluster.status["rebalance"]["message"]
    roll_until(cluster, lambda plan: bool(calls(plan, RebalanceStart)), passes=200, seconds=11)


@pytest.mark.parametrize(("status", "message", "phase", "words"), [
    (400, "error on node 'emqx@x': nothing_to_balance", "Completed", "nothing to balance"),
    (400, "Nodes unavailable: ['emqx@x']", "Failed", "Nodes unavailable"),
    (400, "error on node 'emqx@x': already_started", "Processing", "already"),
    (503, "RPC error on node", "Pending", "did not answer"),
])
def test_emqx_answers_to_a_rebalance_start(status: int, message: str, phase: str, words: str) -> None:
    cluster = settled(image=f"{EE}:5.8.0", replicants=0)
    cluster.failures[RebalanceStart] = CallError(status, "BAD_REQUEST", message)
    rebalance(cluster)
    plan = cluster.step()
    assert calls(plan, RebalanceStart)
    assert cluster.status["rebalance"]["phase"] == phase
    assert words in cluster.status["rebalance"]["message"]
    if phase == "Failed":
        assert message in cluster.status["rebalance"]["message"]  # EMQX's own words
        assert not cluster.step().emqx_calls  # a verdict is not retried
    if phase == "Pending":
        del cluster.failures[RebalanceStart]
        assert calls(cluster.step(), RebalanceStart)


def test_stopping_a_running_rebalance_asks_its_coordinator() -> None:
    cluster = settled(image=f"{EE}:5.8.0", replicants=0)
    cluster.connections[cluster.node(cluster.pod("demo-core-2"))] = 900
    rebalance(cluster)
    cluster.step()
    at = cluster.body["spec"]["rebalance"]["at"]
    cluster.set_spec(rebalance={"at": at, "stop": True})
    plan = cluster.step()
    [stop] = calls(plan, RebalanceStop)
    assert stop.coordinator == cluster.node(cluster.pod("demo-core-0"))
    assert cluster.status["rebalance"]["phase"] == "Stopped" and not cluster.rebalances
    assert not cluster.step().emqx_calls


def test_a_rebalance_whose_coordinator_restarted_failed() -> None:
    cluster = settled(image=f"{EE}:5.8.0", replicants=0)
    rebalance(cluster)
    cluster.step()
    coordinator = cluster.node(cluster.pod("demo-core-0"))
    cluster.step(seconds=30)
    cluster.rebalances = []
    cluster.uptime_ms[coordinator] = 1000  # it booted a second ago
    plan = cluster.step()
    assert cluster.status["rebalance"]["phase"] == "Failed"
    assert "restarted" in cluster.status["rebalance"]["message"]
    assert any(e.type == "Warning" and e.reason == "RebalanceFailed" for e in plan.events)


def test_a_restart_shows_as_restarting_throughout_and_stays_done_after() -> None:
    cluster = settled()
    restart(cluster, role="cores")
    phases = set()
    for _ in range(60):
        cluster.step(seconds=11)
        phases.add(cluster.status["phase"])
        if cluster.status["restart"]["phase"] == "Done":
            break
    assert phases <= {"Restarting", "Ready"}, phases  # never ConfigPending while a core comes back
    cluster.set_spec(config={"data": "node.process_limit = 1000000"})  # a restart key: a rolling restart
    plan = cluster.step()
    assert cond(plan, "Ready")["status"] == "False"
    assert plan.status["restart"]["phase"] == "Done"  # a later change is no restart request


def test_a_role_without_nodes_has_no_disruption_budget_and_scaling_to_none_removes_it() -> None:
    cluster = settled(replicants=2)
    assert ("PodDisruptionBudget", "demo-replicant") in cluster.objects
    cluster.set_spec(replicantTemplate={"spec": {"replicas": 0}})
    cluster.converge()
    assert ("PodDisruptionBudget", "demo-replicant") not in cluster.objects
    assert ("PodDisruptionBudget", "demo-core") in cluster.objects and cluster.ready()
    fresh = Cluster(replicants=0).decide()
    assert [o["metadata"]["name"] for o in fresh.apply if o["kind"] == "PodDisruptionBudget"] == ["demo-core"]
