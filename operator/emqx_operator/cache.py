"""What the watches saw: owned objects and pods of every EMQX cluster, kept from kopf's events.

observe.py reads a cluster's objects from here instead of listing them on every pass: one LIST per
kind per pass and cluster would be most of the operator's API traffic with many clusters. Bodies
are trimmed to what the operator reads (no managedFields, no pod volumes or env), which keeps the
cache small.

A cluster's objects of one kind are served from here only when
- that kind's watch is live: kopf has delivered at least one of its events, or the operator has run
  for `watch_grace_seconds` (kopf opens every watch at start-up; a kind with no objects anywhere sends
  no event, and a watch that failed is bounded by the re-seeding), or a namespace LIST sent before
  then found none of the kind's objects in the namespace (nothing there could vanish unseen before
  the watch's own listing: what is created later, that listing or an event brings), and
- observe has seeded them with a LIST of its own less than `reseed_seconds` ago: either a LIST of
  that cluster's objects, or one LIST of the kind's operator-managed objects in the whole namespace
  (paged), which seeds every cluster of the namespace at once, those not created yet included. A
  namespace seed does not count for a cluster whose resource changed (or was deleted) after it: that
  cluster lists its own objects again. With 500 clusters in a namespace, a start or a burst of new
  clusters costs 6 LISTs rather than 3,000 (each of which the API server answers by scanning the
  namespace).
The LIST-then-events seeding covers what a watch alone cannot promise: objects that existed before
the operator's watch started, and deletions lost when a watch restarts from a fresh listing (kopf
re-lists after "410 Gone" without DELETED events for what vanished meanwhile). Objects are ordered
by resourceVersion, so an event or LIST older than what is cached never replaces it, and a deletion
leaves a tombstone so that a late copy of the object (act's own write racing its DELETED event)
does not bring it back. act.py puts what it applied in at once, so the next pass never re-applies
an object only because its watch event has not arrived yet.

The operator's own two Secrets (the cookie, the API keys) are not watched: a watch or LIST of
Secrets would need RBAC to read every Secret of a namespace. What a GET or the operator's own write
answered is kept for `SECRET_MEMO_SECONDS` instead, so the passes of a cluster being created or
rolled (every few seconds) do not read both again each time: 2 GETs per pass were two thirds of the
operator's reads while 500 clusters were created. A Secret deleted by hand is therefore noticed
within that time; a change to the resource (a `kubectl annotate` too) drops its copies at once.
Only found Secrets are kept: a pass that found one missing reads it again.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from kubectl_emqx.domain.vocabulary import LABEL_INSTANCE, READINESS_GATE

Key = tuple[str, str, str]  # kind, namespace, name
Group = tuple[str, str, str]  # kind, namespace, instance
Scope = tuple[str, str]  # kind, namespace
CACHED_KINDS = ("Pod", "ConfigMap", "Service", "StatefulSet", "Deployment", "PodDisruptionBudget")
# A safety net only: kopf lists again whenever a watch stream restarts, and a change to the resource
# re-seeds its groups at once. Every 5 min it cost 6 LISTs per cluster (600 a minute with 500 clusters).
RESEED_SECONDS = 1800.0
WATCH_GRACE_SECONDS = 60.0
TOMBSTONES = 2048
SECRET_MEMO_SECONDS = 60.0
SECRETS_KEPT = 4096


class ObjectCache:
    def __init__(self, reseed_seconds: float = RESEED_SECONDS, clock: Callable[[], float] = time.monotonic,
                 watch_grace_seconds: float = WATCH_GRACE_SECONDS) -> None:
        self._lock = threading.Lock()
        self._objects: dict[Key, dict[str, Any]] = {}
        self._groups: dict[Group, set[str]] = defaultdict(set)
        self._seeded: dict[Group, float] = {}
        self._namespace_seeded: dict[Scope, float] = {}
        self._changed: dict[tuple[str, str], float] = {}  # (namespace, instance) -> when its resource changed
        self._seeding: dict[Scope, threading.Lock] = defaultdict(threading.Lock)
        self._tombstones: OrderedDict[Key, int] = OrderedDict()
        self._live: dict[str, float] = {}  # kind -> when its watch's first event came
        self._early: set[Scope] = set()  # namespaces listed once before the kind's watch was live
        self._resources: dict[tuple[str, str], str] = {}  # (namespace, name) -> what resource_seen got
        # (namespace, name) -> the newest resource, as (resourceVersion, its JSON): a few KB of text
        # rather than a tree of Python objects several times that size
        self._bodies: dict[tuple[str, str], tuple[int | None, str]] = {}
        self._secrets: OrderedDict[tuple[str, str], tuple[str, float, dict[str, str]]] = OrderedDict()
        self._reseed = reseed_seconds
        self._clock = clock
        self._all_live_at = clock() + watch_grace_seconds

    # watch events and act's writes ------------------------------------------------------------

    def event(self, event_type: str | None, obj: dict[str, Any]) -> bool:
        """A kopf watch event (type None for the watch's initial listing). Whether it changed what
        observe reads (a deletion always counts; so does an object this cache does not keep): a
        status update of a Service or a budget (kept as metadata only), or the echo of the operator's
        own write (already put in by act), is no reason to look at the cluster again."""
        kind = str(obj.get("kind") or "")
        if kind not in CACHED_KINDS:
            return True
        with self._lock:
            self._live.setdefault(kind, self._clock())
        if event_type == "DELETED":
            meta = obj.get("metadata") or {}
            self.delete(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""), resource_version(obj))
            return True
        return self.put(obj)

    def put(self, obj: dict[str, Any], kind: str | None = None) -> bool:
        """Keep (trimmed) a copy newer than the cached one; whether what observe reads changed."""
        kind = kind or str(obj.get("kind") or "")
        meta = obj.get("metadata") or {}
        instance = (meta.get("labels") or {}).get(LABEL_INSTANCE)
        if kind not in CACHED_KINDS or not instance:
            return True
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        rv = resource_version(obj)
        trimmed = trim(obj, kind)
        with self._lock:
            dead = self._tombstones.get(key)
            if dead is not None and rv is not None and rv <= dead:
                return False  # a copy older than its deletion
            old = self._objects.get(key)
            old_rv = resource_version(old) if old is not None else None
            if old_rv is not None and rv is not None and old_rv > rv:
                return False  # older than what is cached
            self._unindex(key, old)
            self._objects[key] = trimmed
            self._groups[(kind, key[1], instance)].add(key[2])
            return old is None or _without_version(old) != _without_version(trimmed)

    def delete(self, kind: str, namespace: str, name: str, rv: int | None = None) -> None:
        key = (kind, namespace, name)
        with self._lock:
            old = self._objects.get(key)
            old_rv = resource_version(old) if old is not None else None
            if old_rv is not None and rv is not None and old_rv > rv:
                return  # a newer object of that name exists already
            self._unindex(key, self._objects.pop(key, None))
            self._bury(key, rv)

    # observe ------------------------------------------------------------------------------------

    def of_instance(self, kind: str, namespace: str, instance: str) -> list[dict[str, Any]] | None:
        """The cluster's objects of a kind (copies), or None when observe should LIST them."""
        group = (kind, namespace, instance)
        with self._lock:
            now = self._clock()
            # A cluster's own LIST counts once the watch is live; a namespace seed is only kept when
            # it can be trusted (seed_namespace).
            seeded = self._seeded.get(group) if self._live_at(kind, now) else None
            scope = self._namespace_seeded.get((kind, namespace))
            if scope is not None and scope > self._changed.get((namespace, instance), float("-inf")):
                seeded = scope if seeded is None else max(seeded, scope)
            if seeded is None or now - seeded > self._reseed:
                return None
            names = sorted(self._groups.get(group, ()))
            return [copy.deepcopy(self._objects[(kind, namespace, name)]) for name in names]

    def namespace_seed_due(self, kind: str, namespace: str) -> bool:
        """Whether a namespace-wide LIST of `kind` is due: the namespace has no seed of it younger than
        `reseed_seconds`. Before the kind's watch is live, once per namespace only: the LIST counts if
        it finds none of the kind's objects (a kind nobody uses, such as Deployments while no cluster
        has replicants), and otherwise the clusters list their own objects until the watch is live."""
        with self._lock:
            now = self._clock()
            scope = self._namespace_seeded.get((kind, namespace))
            if scope is not None and now - scope <= self._reseed:
                return False
            return self._live_at(kind, now) or (kind, namespace) not in self._early

    def seeding(self, kind: str, namespace: str) -> threading.Lock:
        """Held while one pass lists `kind` in `namespace` for everyone; the others wait and reuse it."""
        with self._lock:
            return self._seeding[(kind, namespace)]

    def now(self) -> float:
        return self._clock()

    def seed_namespace(self, kind: str, namespace: str, pages: Iterable[tuple[list[dict[str, Any]], int | None]],
                       started: float) -> None:
        """What a LIST of every operator-managed object of `kind` in `namespace`, sent at `started`
        (`now()`), returned, page by page (items, the snapshot's resourceVersion): each page is kept
        (trimmed) before the next is read. A resource that changed after `started` is not covered.
        A LIST sent before the kind's watch was live seeds nothing unless it found nothing: an object
        it returned might be deleted before the watch's own listing, and no event would say so."""
        listed = set()
        list_rv: int | None = None
        for items, version in pages:
            list_rv = version
            for item in items:
                listed.add(str((item.get("metadata") or {}).get("name") or ""))
                self.put(item, kind)
        with self._lock:
            for group in [g for g in self._groups if g[0] == kind and g[1] == namespace]:
                self._drop_unlisted(group, listed, list_rv)
            if not self._live_at(kind, started) and listed:
                self._early.add((kind, namespace))
                return
            self._namespace_seeded[(kind, namespace)] = started
            # A change older than every kind's namespace seed no longer matters.
            oldest = min(self._namespace_seeded.get((k, namespace), float("-inf")) for k in CACHED_KINDS)
            for changed in [c for c, at in self._changed.items() if c[0] == namespace and at < oldest]:
                del self._changed[changed]

    def seed(self, kind: str, namespace: str, instance: str, items: Iterable[dict[str, Any]],
             list_rv: int | None) -> None:
        """What a LIST of the cluster's objects of `kind` returned (at resourceVersion `list_rv`)."""
        items = list(items)
        listed = {str((i.get("metadata") or {}).get("name") or "") for i in items}
        for item in items:
            self.put(item, kind)
        group = (kind, namespace, instance)
        with self._lock:
            self._drop_unlisted(group, listed, list_rv)
            self._seeded[group] = self._clock()

    # the operator's Secrets ----------------------------------------------------------------------

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A managed Secret's data (decoded) as last read or written, if that was less than
        SECRET_MEMO_SECONDS ago; else None (observe reads it)."""
        with self._lock:
            kept = self._secrets.get((namespace, name))
            if kept is None:
                return None
            if self._clock() - kept[1] > SECRET_MEMO_SECONDS:
                del self._secrets[(namespace, name)]
                return None
            return dict(kept[2])

    def put_secret(self, namespace: str, name: str, instance: str, data: dict[str, str]) -> None:
        """Keep what a GET or the operator's own write of the Secret answered (found: never an absence)."""
        with self._lock:
            self._secrets[(namespace, name)] = (instance, self._clock(), dict(data))
            self._secrets.move_to_end((namespace, name))
            while len(self._secrets) > SECRETS_KEPT:
                self._secrets.popitem(last=False)

    def _drop_secrets(self, namespace: str, instance: str) -> None:
        """Called with the lock held."""
        for key in [k for k, kept in self._secrets.items() if k[0] == namespace and kept[0] == instance]:
            del self._secrets[key]

    def resource_seen(self, namespace: str, name: str, marker: str) -> bool:
        """The EMQX resource's watch event: when its spec or metadata changed (`marker`: generation,
        labels and annotations; status-only changes keep it), its objects are listed afresh on the next
        pass. A user's `kubectl annotate` is thus also a way to make the operator look at everything
        again (a permission restored, an object changed by hand). Whether it is the first sight or a
        change."""
        with self._lock:
            previous = self._resources.get((namespace, name))
            if previous == marker:
                return False
            self._resources[(namespace, name)] = marker
            if previous is not None:  # a change, not the first sight (a namespace seed covers that)
                self._changed[(namespace, name)] = self._clock()
                self._drop_secrets(namespace, name)
            for group in [g for g in self._seeded if g[1] == namespace and g[2] == name]:
                del self._seeded[group]
            return True

    def put_resource(self, obj: dict[str, Any]) -> None:
        """The newest copy of an EMQX resource (without managedFields): what its watch event carried or
        what the operator's own status write answered, ordered by resourceVersion (a late event never
        replaces a newer write, nor brings back a deleted resource). A pass reads it instead of a GET."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        rv = resource_version(obj)
        text = json.dumps({**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}},
                          separators=(",", ":"))
        with self._lock:
            dead = self._tombstones.get(("EMQX", *key))
            if dead is not None and (rv is None or rv <= dead):
                return
            old = self._bodies.get(key)
            if old is not None and old[0] is not None and (rv is None or old[0] > rv):
                return
            self._bodies[key] = (rv, text)

    def resource(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The newest copy of the EMQX resource the watch or the operator's write brought (a copy of
        its own), or None: not seen yet, or deleted (the pass then reads it)."""
        with self._lock:
            kept = self._bodies.get((namespace, name))
        return json.loads(kept[1]) if kept is not None else None

    def resource_deleted(self, namespace: str, name: str, rv: int | None) -> None:
        with self._lock:
            self._bodies.pop((namespace, name), None)
            self._bury(("EMQX", namespace, name), rv)

    def forget(self, namespace: str, instance: str) -> None:
        """Drop a deleted cluster's groups (its objects go with their DELETED events)."""
        with self._lock:
            self._resources.pop((namespace, instance), None)
            self._bodies.pop((namespace, instance), None)
            self._drop_secrets(namespace, instance)
            # A resource of that name created again lists its own objects (the old ones may linger).
            self._changed[(namespace, instance)] = self._clock()
            for group in [g for g in self._seeded if g[1] == namespace and g[2] == instance]:
                del self._seeded[group]
                for name in self._groups.pop(group, set()):
                    self._objects.pop((group[0], namespace, name), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def _live_at(self, kind: str, when: float) -> bool:
        """Whether the kind's watch was live at `when`. Called with the lock held."""
        return self._live.get(kind, float("inf")) <= when or when >= self._all_live_at

    def _drop_unlisted(self, group: Group, listed: set[str], list_rv: int | None) -> None:
        """Drop the group's objects a LIST at `list_rv` did not return and no event since has shown
        (gone before the LIST). Called with the lock held."""
        kind, namespace, _ = group
        for name in list(self._groups.get(group, ())):
            key = (kind, namespace, name)
            cached_rv = resource_version(self._objects.get(key))
            if name not in listed and (list_rv is None or cached_rv is None or cached_rv <= list_rv):
                self._unindex(key, self._objects.pop(key, None))

    def _bury(self, key: Key, rv: int | None) -> None:
        """A deletion's tombstone: no copy of `key` at or before `rv` comes back. Called with the lock held."""
        if rv is None:
            return
        self._tombstones[key] = rv
        self._tombstones.move_to_end(key)
        while len(self._tombstones) > TOMBSTONES:
            self._tombstones.popitem(last=False)

    def _unindex(self, key: Key, old: dict[str, Any] | None) -> None:
        if old is None:
            return
        instance = ((old.get("metadata") or {}).get("labels") or {}).get(LABEL_INSTANCE) or ""
        group = (key[0], key[1], instance)
        names = self._groups.get(group)
        if names is not None:
            names.discard(key[2])
            if not names and group not in self._seeded:
                del self._groups[group]


def _without_version(trimmed: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (trimmed.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**trimmed, "metadata": meta}


def resource_version(obj: dict[str, Any] | None) -> int | None:
    """An object's resourceVersion as a number. resourceVersions are opaque to clients, but the
    API server's are etcd revisions; anything else makes ordering unknown (None)."""
    try:
        return int(((obj or {}).get("metadata") or {})["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


_CONTAINER_KEYS = ("name", "image", "ports")
_CONDITION_KEYS = ("type", "status", "reason", "message")
_EXIT_KEYS = ("exitCode", "reason", "message")
# The pod conditions decide/pods.py reads: Ready and the replicants' readiness gate, PodScheduled when
# it is False (the scheduler's reason). ContainersReady is kept too: a replicant whose containers turn
# ready is the moment to ask EMQX whether its gate can open.
_POD_CONDITIONS = frozenset({"Ready", "ContainersReady", READINESS_GATE})
_WORKLOAD_STATUS = {"StatefulSet": ("observedGeneration", "updateRevision"),
                    "Deployment": ("observedGeneration", "updatedReplicas")}


def trim(obj: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """A copy with only what the operator reads."""
    kind = kind or obj.get("kind")
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    trimmed: dict[str, Any] = {"apiVersion": obj.get("apiVersion"), "kind": kind, "metadata": copy.deepcopy(meta)}
    spec = obj.get("spec") or {}
    if kind == "Pod":
        trimmed["spec"] = {
            "containers": [{k: copy.deepcopy(v) for k, v in c.items() if k in _CONTAINER_KEYS}
                           for c in spec.get("containers") or []],
            "readinessGates": copy.deepcopy(spec.get("readinessGates") or []),
            "nodeName": spec.get("nodeName"),
        }
        if "status" in obj:
            trimmed["status"] = _pod_status(obj.get("status") or {})
        return trimmed
    elif kind in ("StatefulSet", "Deployment"):
        template = spec.get("template") or {}
        trimmed["spec"] = {
            "replicas": spec.get("replicas"),
            "template": {
                "metadata": copy.deepcopy(template.get("metadata") or {}),
                "spec": {"containers": [{k: copy.deepcopy(v) for k, v in c.items() if k in _CONTAINER_KEYS}
                                        for c in (template.get("spec") or {}).get("containers") or []]},
            },
        }
        # What decide reads of a workload's status: the controller has seen the template (and which
        # revision), the Deployment's updated replicas and progress deadline. Its replica counts change
        # with every pod and would make a pass each (the pods' own events already do).
        status = obj.get("status") or {}
        trimmed["status"] = {key: copy.deepcopy(status[key]) for key in _WORKLOAD_STATUS[kind] if key in status}
        if kind == "Deployment" and status.get("conditions"):
            trimmed["status"]["conditions"] = [{k: c.get(k) for k in ("type", "status", "reason", "message")}
                                               for c in status["conditions"]]
        return trimmed
    elif kind in ("Service", "PodDisruptionBudget"):
        return trimmed  # the operator reads their existence and the applied-hash annotation only
    else:
        trimmed["spec"] = copy.deepcopy(spec)
    for field in ("data", "status"):
        if field in obj:
            trimmed[field] = copy.deepcopy(obj[field])
    return trimmed


def _pod_status(status: dict[str, Any]) -> dict[str, Any]:
    """What decide/pods.py reads of a pod's status: its phase and IP, the conditions above without
    their times, and per container its name, readiness, restarts, the waiting reason or the exit
    (current and last). The kubelet rewrites the rest as a pod starts (start times, container and
    image IDs, PodScheduled, Initialized...): none of that was reason for a pass of its own."""
    trimmed: dict[str, Any] = {key: status[key] for key in ("phase", "podIP") if key in status}
    conditions = [{k: c[k] for k in _CONDITION_KEYS if c.get(k) is not None}
                  for c in status.get("conditions") or []
                  if c.get("type") in _POD_CONDITIONS
                  or (c.get("type") == "PodScheduled" and c.get("status") != "True")]
    if conditions:
        trimmed["conditions"] = conditions
    containers = []
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        kept: dict[str, Any] = {"name": container.get("name"), "ready": bool(container.get("ready")),
                                "restartCount": int(container.get("restartCount") or 0), "state": {}}
        if state.get("waiting") is not None:
            kept["state"]["waiting"] = {k: state["waiting"][k] for k in ("reason", "message") if k in state["waiting"]}
        elif state.get("terminated") is not None:
            kept["state"]["terminated"] = {k: state["terminated"][k] for k in _EXIT_KEYS if k in state["terminated"]}
        elif state.get("running") is not None:
            kept["state"]["running"] = {}
        last = (container.get("lastState") or {}).get("terminated")
        if last:
            kept["lastState"] = {"terminated": {k: last[k] for k in _EXIT_KEYS if k in last}}
        containers.append(kept)
    if containers:
        trimmed["containerStatuses"] = containers
    return trimmed
