"""The watch cache observe reads instead of listing: ordering by resourceVersion, seeding, tombstones."""

from __future__ import annotations

from typing import Any

from emqx_operator.cache import ObjectCache, trim

from kubectl_emqx.domain.vocabulary import LABEL_INSTANCE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def obj(kind: str, name: str, rv: int, instance: str = "emqx", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind,
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv),
                         "labels": {LABEL_INSTANCE: instance}}, **extra}


def names(items: list[dict[str, Any]] | None) -> list[str] | None:
    return None if items is None else [i["metadata"]["name"] for i in items]


def seeded(clock: Clock | None = None) -> ObjectCache:
    cache = ObjectCache(reseed_seconds=300, clock=clock or Clock())
    cache.event(None, obj("Service", "emqx-dashboard", 5))  # the watch is live
    cache.seed("Service", "ns", "emqx", [obj("Service", "emqx-dashboard", 5), obj("Service", "emqx-headless", 6)], 10)
    return cache


def test_nothing_is_served_before_the_watch_is_live_and_a_list_seeded_it() -> None:
    clock = Clock()
    cache = ObjectCache(clock=clock, watch_grace_seconds=60)
    cache.seed("Service", "ns", "emqx", [obj("Service", "a", 1)], 1)
    cache.seed("Deployment", "ns", "emqx", [], 1)
    assert cache.of_instance("Service", "ns", "emqx") is None, "no event of the kind yet: the watch may not run"
    cache.event("ADDED", obj("Service", "b", 2, instance="other"))
    assert names(cache.of_instance("Service", "ns", "emqx")) == ["a"]
    assert cache.of_instance("Service", "ns", "other") is None, "never listed: observe lists it"
    assert cache.of_instance("Deployment", "ns", "emqx") is None
    clock.now += 61  # no Deployment anywhere sends no event; after the grace the empty list counts
    cache.seed("Deployment", "ns", "emqx", [], 1)
    assert cache.of_instance("Deployment", "ns", "emqx") == []


def test_events_keep_the_copy_current_and_older_copies_never_win() -> None:
    cache = seeded()
    cache.event("MODIFIED", obj("Service", "emqx-dashboard", 12, status={"replicas": 2}))
    cache.put(obj("Service", "emqx-dashboard", 11, status={"replicas": 1}))  # a late copy
    served = cache.of_instance("Service", "ns", "emqx")
    assert served is not None and served[0]["metadata"]["resourceVersion"] == "12"
    served[0]["metadata"]["name"] = "changed by a reader"
    assert names(cache.of_instance("Service", "ns", "emqx")) == ["emqx-dashboard", "emqx-headless"], \
        "readers get copies"


def test_a_deletion_is_not_undone_by_a_late_copy() -> None:
    cache = seeded()
    cache.event("DELETED", obj("Service", "emqx-headless", 20))
    cache.put(obj("Service", "emqx-headless", 19))  # act's answer arriving after the DELETED event
    assert names(cache.of_instance("Service", "ns", "emqx")) == ["emqx-dashboard"]
    cache.event("ADDED", obj("Service", "emqx-headless", 25))  # created again
    assert names(cache.of_instance("Service", "ns", "emqx")) == ["emqx-dashboard", "emqx-headless"]


def test_a_list_drops_what_vanished_before_it_but_keeps_what_came_after() -> None:
    cache = seeded()
    cache.event("ADDED", obj("Service", "emqx-listeners", 40))
    cache.seed("Service", "ns", "emqx", [obj("Service", "emqx-dashboard", 5)], 30)
    assert names(cache.of_instance("Service", "ns", "emqx")) == ["emqx-dashboard", "emqx-listeners"], \
        "headless vanished before the list (rv 6 <= 30); listeners is newer than the list"


def test_a_seed_expires_so_that_lost_deletions_cannot_last() -> None:
    clock = Clock()
    cache = seeded(clock)
    clock.now += 299
    assert cache.of_instance("Service", "ns", "emqx") is not None
    clock.now += 2
    assert cache.of_instance("Service", "ns", "emqx") is None


def test_objects_of_other_clusters_and_kinds_stay_apart_and_forget_drops_a_cluster() -> None:
    cache = seeded()
    cache.event(None, obj("Pod", "other-core-0", 3, instance="other"))
    cache.event(None, obj("Secret", "emqx-cookie", 3))
    cache.put({"kind": "Pod", "metadata": {"name": "unlabelled", "namespace": "ns"}})
    assert len(cache) == 3
    cache.forget("ns", "emqx")
    assert cache.of_instance("Service", "ns", "emqx") is None
    assert len(cache) == 1


def test_trim_keeps_what_the_operator_reads_only() -> None:
    pod = obj("Pod", "emqx-core-0", 1, spec={
        "containers": [{"name": "emqx", "image": "emqx:5.8.6", "ports": [{"containerPort": 18083}],
                        "env": [{"name": "X", "value": "y" * 1000}]}],
        "volumes": [{"name": "data"}], "readinessGates": [{"conditionType": "apps.emqx.io/on-serving"}],
        "nodeName": "node-1"}, status={"phase": "Running"})
    pod["metadata"]["managedFields"] = [{"manager": "kubelet"}]
    pod["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"}
    small = trim(pod)
    assert small["spec"] == {"containers": [{"name": "emqx", "image": "emqx:5.8.6",
                                             "ports": [{"containerPort": 18083}]}],
                             "readinessGates": [{"conditionType": "apps.emqx.io/on-serving"}], "nodeName": "node-1"}
    assert small["metadata"]["annotations"] == {"a": "b"} and "managedFields" not in small["metadata"]
    assert small["status"] == {"phase": "Running"}


def test_a_pods_start_times_and_ids_are_no_reason_to_look_again() -> None:
    """The kubelet rewrites a starting pod's status several times; decide/pods.py reads the phase,
    the IP, Ready / ContainersReady / the readiness gate / an unmet PodScheduled, and per container
    the readiness, restarts, waiting reason and exits. Only a change of those makes a pass."""
    cache = seeded()
    cache.seed("Pod", "ns", "emqx", [], 10)
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-02T00:00:00Z"}
    pod = obj("Pod", "emqx-core-0", 80, spec={"containers": [{"name": "emqx", "image": "emqx:5.8.6"}]},
              status={"phase": "Pending", "conditions": [scheduled]})
    assert cache.event("ADDED", pod)

    def step(rv: int, status: dict[str, Any]) -> bool:
        return cache.event("MODIFIED", {**pod, "metadata": {**pod["metadata"], "resourceVersion": str(rv)},
                                        "status": status})

    initialized = {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-02T00:00:01Z"}
    assert not step(81, {"phase": "Pending", "conditions": [scheduled, initialized], "hostIP": "127.0.0.9",
                         "startTime": "2026-12-02T00:00:01Z"})
    waiting = {"name": "emqx", "ready": False, "restartCount": 0, "image": "emqx:5.8.6", "imageID": "",
               "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert step(82, {"phase": "Pending", "conditions": [scheduled, initialized], "containerStatuses": [waiting]})
    running = {**waiting, "containerID": "containerd://1", "started": True,
               "state": {"running": {"startedAt": "2026-12-02T00:00:03Z"}}}
    assert step(83, {"phase": "Running", "podIP": "127.0.0.9", "conditions": [scheduled, initialized],
                     "containerStatuses": [running]})
    assert not step(84, {"phase": "Running", "podIP": "127.0.0.9", "conditions": [scheduled, initialized],
                         "containerStatuses": [{**running, "imageID": "docker.io/emqx@sha256:1"}]})
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-02T00:00:09Z"}
    assert step(85, {"phase": "Running", "podIP": "127.0.0.9", "conditions": [scheduled, initialized, ready],
                     "containerStatuses": [{**running, "ready": True}]})
    kept = cache.of_instance("Pod", "ns", "emqx")
    assert kept is not None and kept[0]["status"] == {
        "phase": "Running", "podIP": "127.0.0.9", "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "emqx", "ready": True, "restartCount": 0, "state": {"running": {}}}]}
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
    assert trim({**pod, "status": {"phase": "Pending", "conditions": [unschedulable]}})["status"] == {
        "phase": "Pending", "conditions": [unschedulable]}
    crashed = {"name": "emqx", "ready": False, "restartCount": 2, "containerID": "containerd://2",
               "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
               "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "boom",
                                            "startedAt": "2026-12-02T00:00:03Z"}}}
    assert trim({**pod, "status": {"containerStatuses": [crashed]}})["status"]["containerStatuses"] == [
        {"name": "emqx", "ready": False, "restartCount": 2,
         "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
         "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "boom"}}}]


def test_a_workloads_replica_counts_are_no_reason_to_look_again() -> None:
    """The StatefulSet controller rewrites the status as each pod is created and turns Ready: each
    was a pass (the pods' own events say as much). decide reads the revision and observed generation
    of a StatefulSet, and of a Deployment also its updated replicas and progress deadline."""
    cache = seeded()
    sts = obj("StatefulSet", "emqx-core", 60, spec={"replicas": 1},
              status={"observedGeneration": 1, "updateRevision": "r1", "replicas": 0})
    assert cache.event("MODIFIED", sts)
    sts = {**sts, "metadata": {**sts["metadata"], "resourceVersion": "61"},
           "status": {**sts["status"], "replicas": 1, "currentReplicas": 1, "readyReplicas": 1}}
    assert not cache.event("MODIFIED", sts)
    assert trim(sts)["status"] == {"observedGeneration": 1, "updateRevision": "r1"}
    deployment = obj("Deployment", "emqx-replicant", 70, spec={"replicas": 2}, status={
        "observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 1, "conditions": [
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "progressing",
             "lastUpdateTime": "2026-12-02T00:00:01Z", "lastTransitionTime": "2026-12-02T00:00:00Z"}]})
    assert trim(deployment)["status"] == {"observedGeneration": 2, "updatedReplicas": 1, "conditions": [
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "progressing"}]}


def test_a_change_to_the_resource_but_not_its_status_makes_the_next_pass_list_again() -> None:
    cache = seeded()
    cache.resource_seen("ns", "emqx", '[1, {}, {}]')
    assert cache.of_instance("Service", "ns", "emqx") is None, "first sight of the resource"
    cache.seed("Service", "ns", "emqx", [obj("Service", "emqx-dashboard", 5)], 10)
    cache.resource_seen("ns", "emqx", '[1, {}, {}]')  # a status write of the operator's
    assert cache.of_instance("Service", "ns", "emqx") is not None
    cache.resource_seen("ns", "emqx", '[1, {}, {"test/poke": "1"}]')  # kubectl annotate
    assert cache.of_instance("Service", "ns", "emqx") is None


def test_services_and_budgets_keep_their_metadata_only() -> None:
    service = obj("Service", "emqx-dashboard", 1, spec={"ports": [{"port": 18083}]}, status={"loadBalancer": {}})
    service["metadata"]["annotations"] = {"apps.emqx.io/applied-hash": "abc"}
    assert trim(service) == {"apiVersion": "v1", "kind": "Service", "metadata": service["metadata"]}


def test_one_namespace_list_seeds_every_cluster_there_including_later_ones() -> None:
    clock = Clock()
    cache = ObjectCache(reseed_seconds=300, clock=clock)
    cache.event(None, obj("Service", "x", 1, instance="x"))  # the watch is live
    assert cache.namespace_seed_due("Service", "ns")
    started = cache.now()
    pages = [([obj("Service", "a-dashboard", 5, instance="a")], 20),
             ([obj("Service", "b-dashboard", 6, instance="b")], 20)]
    cache.seed_namespace("Service", "ns", iter(pages), started)
    assert not cache.namespace_seed_due("Service", "ns")
    assert names(cache.of_instance("Service", "ns", "a")) == ["a-dashboard"]
    assert names(cache.of_instance("Service", "ns", "b")) == ["b-dashboard"]
    assert names(cache.of_instance("Service", "ns", "x")) == [], "x's object was not in the LIST: gone before it"
    cache.resource_seen("ns", "new", "[1, {}, {}]")  # created after the LIST: first sight is covered
    assert cache.of_instance("Service", "ns", "new") == []
    cache.event("ADDED", obj("Service", "new-dashboard", 30, instance="new"))
    assert names(cache.of_instance("Service", "ns", "new")) == ["new-dashboard"]
    assert cache.of_instance("Service", "other-ns", "a") is None, "another namespace is not seeded"
    clock.now += 301
    assert cache.of_instance("Service", "ns", "a") is None and cache.namespace_seed_due("Service", "ns")


def test_a_namespace_seed_does_not_cover_a_resource_changed_or_recreated_after_it() -> None:
    clock = Clock()
    cache = ObjectCache(reseed_seconds=300, clock=clock)
    cache.event(None, obj("Service", "a-dashboard", 5, instance="a"))
    cache.resource_seen("ns", "a", "[1, {}, {}]")
    cache.seed_namespace("Service", "ns", iter([([obj("Service", "a-dashboard", 5, instance="a")], 10)]), cache.now())
    clock.now += 1
    cache.resource_seen("ns", "a", "[1, {}, {}]")  # a status write: no change
    assert names(cache.of_instance("Service", "ns", "a")) == ["a-dashboard"]
    cache.resource_seen("ns", "a", "[2, {}, {}]")  # the spec changed: observe lists a's objects itself
    assert cache.of_instance("Service", "ns", "a") is None
    assert not cache.namespace_seed_due("Service", "ns"), "the other clusters keep the namespace's seed"
    cache.seed("Service", "ns", "a", [obj("Service", "a-dashboard", 5, instance="a")], 11)
    assert names(cache.of_instance("Service", "ns", "a")) == ["a-dashboard"]
    cache.forget("ns", "a")  # deleted; a resource of that name created later lists its own objects
    cache.resource_seen("ns", "a", "[1, {}, {}]")
    assert cache.of_instance("Service", "ns", "a") is None


def test_a_namespace_list_drops_what_vanished_before_it_and_keeps_what_came_after() -> None:
    cache = seeded()
    cache.event("ADDED", obj("Service", "emqx-listeners", 30))
    pages = iter([([obj("Service", "emqx-dashboard", 5)], 20)])  # headless (rv 6) gone before the LIST at 20
    cache.seed_namespace("Service", "ns", pages, cache.now())
    assert names(cache.of_instance("Service", "ns", "emqx")) == ["emqx-dashboard", "emqx-listeners"]


def test_before_the_kinds_watch_is_live_a_namespace_list_counts_only_when_it_found_nothing() -> None:
    clock = Clock()
    cache = ObjectCache(clock=clock, watch_grace_seconds=60)
    assert cache.namespace_seed_due("Deployment", "ns")
    cache.seed_namespace("Deployment", "ns", iter([([], 20)]), cache.now())
    assert cache.of_instance("Deployment", "ns", "a") == [], "no Deployment there: nothing can vanish unseen"
    assert not cache.namespace_seed_due("Deployment", "ns")

    assert cache.namespace_seed_due("StatefulSet", "ns")
    cache.seed_namespace("StatefulSet", "ns", iter([([obj("StatefulSet", "a-core", 5, instance="a")], 20)]),
                         cache.now())
    assert cache.of_instance("StatefulSet", "ns", "a") is None, "a-core may be deleted before the watch lists"
    assert not cache.namespace_seed_due("StatefulSet", "ns"), "one early LIST per namespace, not one per pass"
    clock.now += 1
    cache.event(None, obj("StatefulSet", "a-core", 5, instance="a"))  # the watch's own listing: live now
    assert cache.namespace_seed_due("StatefulSet", "ns")
    started = cache.now()
    cache.seed_namespace("StatefulSet", "ns", iter([([obj("StatefulSet", "a-core", 5, instance="a")], 21)]),
                         started)
    assert names(cache.of_instance("StatefulSet", "ns", "a")) == ["a-core"]


def test_a_list_sent_before_the_watch_went_live_is_not_trusted_by_an_event_during_it() -> None:
    clock = Clock()
    cache = ObjectCache(clock=clock, watch_grace_seconds=60)
    started = cache.now()
    clock.now += 1
    cache.event(None, obj("Pod", "b-core-0", 7, instance="b"))  # arrives while the LIST is under way
    cache.seed_namespace("Pod", "ns", iter([([obj("Pod", "a-core-0", 5, instance="a")], 6)]), started)
    assert cache.of_instance("Pod", "ns", "a") is None
    assert cache.namespace_seed_due("Pod", "ns"), "live now: the next LIST counts"


def test_only_a_change_to_what_observe_reads_is_a_reason_to_look_again() -> None:
    cache = seeded()
    budget = obj("PodDisruptionBudget", "emqx-core", 40, spec={"maxUnavailable": 1}, status={"currentHealthy": 0})
    assert cache.event("ADDED", budget), "a new object"
    assert not cache.event("MODIFIED", {**budget, "metadata": {**budget["metadata"], "resourceVersion": "41"},
                                        "status": {"currentHealthy": 1}}), "a budget's status is not read"
    assert not cache.event("MODIFIED", budget), "older than the cached copy"
    applied = obj("StatefulSet", "emqx-core", 50, spec={"replicas": 3})
    cache.put(applied)  # act keeps what it wrote
    assert not cache.event("MODIFIED", applied), "the echo of the operator's own write"
    assert cache.event("MODIFIED", obj("StatefulSet", "emqx-core", 51, spec={"replicas": 3},
                                       status={"updateRevision": "r2"})), "a workload's revision is read"
    pod = obj("Pod", "emqx-core-0", 60, status={"phase": "Pending"})
    assert cache.event("ADDED", pod)
    assert cache.event("MODIFIED", obj("Pod", "emqx-core-0", 61, status={"phase": "Running"}))
    assert cache.event("DELETED", obj("Pod", "emqx-core-0", 62)), "a deletion always counts"
    assert cache.event("ADDED", {"kind": "Pod", "metadata": {"name": "x", "namespace": "ns"}}), "not kept: look"


def test_the_operators_secrets_are_kept_briefly_and_dropped_when_the_resource_changes() -> None:
    clock = Clock()
    cache = ObjectCache(clock=clock)
    cache.resource_seen("ns", "emqx", "[1, {}, {}]")
    assert cache.secret("ns", "emqx-cookie") is None, "never read: observe GETs it"
    cache.put_secret("ns", "emqx-cookie", "emqx", {"cookie": "c1"})
    kept = cache.secret("ns", "emqx-cookie")
    assert kept == {"cookie": "c1"}
    kept["cookie"] = "changed by a reader"
    clock.now += 59
    assert cache.secret("ns", "emqx-cookie") == {"cookie": "c1"}
    clock.now += 2
    assert cache.secret("ns", "emqx-cookie") is None, "older than a minute: read again (deleted by hand?)"
    cache.put_secret("ns", "emqx-cookie", "emqx", {"cookie": "c1"})
    cache.put_secret("ns", "other-cookie", "other", {"cookie": "c2"})
    cache.resource_seen("ns", "emqx", "[1, {}, {}]")  # a status write: kept
    assert cache.secret("ns", "emqx-cookie") is not None
    cache.resource_seen("ns", "emqx", "[1, {}, {\"a\": \"1\"}]")  # annotated: read everything again
    assert cache.secret("ns", "emqx-cookie") is None and cache.secret("ns", "other-cookie") is not None
    cache.forget("ns", "other")
    assert cache.secret("ns", "other-cookie") is None


def test_the_resource_is_the_newest_copy_a_watch_event_or_the_operators_write_brought() -> None:
    """A pass starts from this copy instead of a GET: ordered by resourceVersion, so the event of an
    earlier change arriving after the operator's own status write never takes the pass back, and a
    deletion is not undone by a late copy."""
    cache = ObjectCache()

    def emqx(rv: int, phase: str) -> dict[str, Any]:
        return {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX",
                "metadata": {"namespace": "ns", "name": "emqx", "resourceVersion": str(rv),
                             "managedFields": [{"manager": "kubectl"}]}, "status": {"phase": phase}}

    assert cache.resource("ns", "emqx") is None
    cache.put_resource(emqx(10, "Creating"))
    cache.put_resource(emqx(12, "Ready"))  # the operator's status write
    cache.put_resource(emqx(11, "Creating"))  # the event of the change before it, late
    kept = cache.resource("ns", "emqx")
    assert kept is not None and kept["status"] == {"phase": "Ready"} and "managedFields" not in kept["metadata"]
    kept["status"]["phase"] = "changed by a pass"
    assert cache.resource("ns", "emqx")["status"] == {"phase": "Ready"}, "a copy"  # type: ignore[index]
    cache.resource_deleted("ns", "emqx", 13)
    cache.put_resource(emqx(12, "Ready"))
    assert cache.resource("ns", "emqx") is None
    cache.put_resource(emqx(20, "Creating"))  # created again
    assert cache.resource("ns", "emqx")["status"] == {"phase": "Creating"}  # type: ignore[index]
    cache.forget("ns", "emqx")
    assert cache.resource("ns", "emqx") is None
