"""The resource's status: conditions, phase, one-line message, per-node waits (pure).

Conditions follow metav1.Condition and carry the generation they judged; a transition time moves
only when a condition's status flips; Events are posted only when a condition changes.
"""

from __future__ import annotations

import datetime
from typing import Any

from emqx_operator.model import Event, Obj
from kubectl_emqx.domain.vocabulary import ConditionType, Phase, UpgradePhase, format_time

# Fields of GET /api/v5/nodes that change on every read; refreshing them alone is not worth a write.
VOLATILE_NODE_FIELDS = frozenset({
    "uptime", "load1", "load5", "load15", "memory_total", "memory_used", "process_used", "process_available",
    "connections", "live_connections", "cluster_sessions", "max_fds",
})
STATUS_REFRESH_SECONDS = 300.0
# The counters whose change is worth a status refresh (at most every STATUS_REFRESH_SECONDS): what
# clients do. Uptime, load and memory move on every read: refreshing them made every settled cluster
# write once per 5 min (100 writes a minute with 500 clusters); status shows them as of
# emqxNodesObservedAt (the plugin extrapolates uptime from it).
CLIENT_COUNTERS = ("connections", "live_connections", "cluster_sessions")
OWNED_STATUS_KEYS = ("emqxNodes", "emqxNodesObservedAt", "upgrade", "config", "pendingNodes", "previousImage",
                     "currentImage", "restart", "rebalance")
RECOVER = "`kubectl emqx upgrade {name} --rollback`"


def find(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


class Conditions:
    """The new condition list, built on the old one (transition times, Events on change)."""

    def __init__(self, old: list[dict[str, Any]], generation: int, now: datetime.datetime) -> None:
        self.old = [dict(c) for c in old]
        self.items = [dict(c) for c in old]
        self.generation = generation
        self.stamp = format_time(now)
        self.events: list[Event] = []

    def set(self, kind: str, ok: bool, reason: str, message: str) -> None:
        value = "True" if ok else "False"
        before = find(self.items, kind)
        changed = before is None or before.get("status") != value
        new = {"type": kind, "status": value, "reason": reason, "message": message,
               "observedGeneration": self.generation,
               "lastTransitionTime": self.stamp if changed or before is None
               else before.get("lastTransitionTime", self.stamp)}
        self.items = [c for c in self.items if c.get("type") != kind] + [new]

    def changed(self, kind: str, ok: bool, message: str) -> bool:
        before = find(self.old, kind)
        return before is None or before.get("status") != ("True" if ok else "False") or before.get("message") != message

    def set_with_event(self, kind: str, ok: bool, reason: str, message: str, bad_when: bool = False,
                       quiet_first: bool = True) -> None:
        """Set a condition and post an Event when its status or message changed: a Warning when it
        turned to `bad_when`, a Normal one when it recovered (not for a first, good value)."""
        if self.changed(kind, ok, message):
            first = find(self.old, kind) is None
            if ok == bad_when:
                self.events.append(Event("Warning", reason, message))
            elif not (first and quiet_first):
                self.events.append(Event("Normal", reason, message))
        self.set(kind, ok, reason, message)

    def drop(self, kind: str) -> None:
        self.items = [c for c in self.items if c.get("type") != kind]

    def value(self, kind: str) -> bool | None:
        item = find(self.items, kind)
        return None if item is None else item.get("status") == "True"


def without_times(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions),
                  key=lambda c: str(c.get("type")))


def pending_nodes(waiting: dict[str, tuple[str, str]], old: list[dict[str, Any]], now: datetime.datetime
                  ) -> list[dict[str, Any]]:
    """status.pendingNodes: every pod that is not done, what it waits for, and since when."""
    since = {str(item.get("pod")): item.get("since") for item in old or []}
    return [{"pod": pod, "role": role, "waitingFor": reason, "since": since.get(pod) or format_time(now)}
            for pod, (role, reason) in sorted(waiting.items())]


def with_pod_names(nodes: tuple[Obj, ...], pod_by_host: dict[str, str]) -> list[dict[str, Any]]:
    """EMQX's node entries as EMQX gives them, plus the pod each runs in (by host name or IP)."""
    named = []
    for node in nodes:
        host = str(node.get("node", "")).partition("@")[2]
        pod = pod_by_host.get(host) or pod_by_host.get(host.split(".", 1)[0])
        named.append({**node, "podName": pod} if pod else dict(node))
    return named


def _client_counters(nodes: Any) -> list[tuple[Any, ...]]:
    return [(n.get("node"), *(n.get(k) for k in CLIENT_COUNTERS)) for n in nodes or []]


def stable_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in n.items() if k not in VOLATILE_NODE_FIELDS} for n in nodes]


def phase(*, ready: bool, stalled: bool, refused: bool, creating: bool, upgrading: bool, scaling: bool,
          rolling: bool, config_pending: bool, emqx_ok: bool) -> Phase:
    if ready:
        return Phase.READY
    if stalled:
        return Phase.STALLED
    if refused:
        return Phase.UPGRADE_REFUSED
    if creating:
        return Phase.CREATING
    if upgrading:
        return Phase.UPGRADING
    if scaling:
        return Phase.SCALING
    if rolling:
        return Phase.RESTARTING
    if not emqx_ok:
        return Phase.DEGRADED
    if config_pending:
        return Phase.CONFIG_PENDING
    return Phase.PROGRESSING


def upgrade_phase(*, stalled: bool, refused: bool, cores_rolling: bool, replicants_rolling: bool,
                  image_changing: bool) -> UpgradePhase:
    if stalled:
        return UpgradePhase.STALLED
    if refused:
        return UpgradePhase.REFUSED
    if cores_rolling:
        return UpgradePhase.CORES
    if replicants_rolling or image_changing:
        return UpgradePhase.REPLICANTS
    return UpgradePhase.IDLE


def changed_key(old: dict[str, Any], new: dict[str, Any], now: datetime.datetime) -> str | None:
    """The first status key whose change is worth a write (None: write nothing)."""
    from kubectl_emqx.domain.vocabulary import age_seconds

    for key, value in new.items():
        if key == "conditions":
            if without_times(value) != without_times(old.get("conditions") or []):
                return key
        elif key == "emqxNodes":
            if stable_nodes(value) != stable_nodes(old.get("emqxNodes") or []):
                return key
        elif key == "emqxNodesObservedAt":
            age = age_seconds(old.get(key), now)
            if age is None or (age > STATUS_REFRESH_SECONDS
                               and _client_counters(new.get("emqxNodes")) != _client_counters(old.get("emqxNodes"))):
                return key
        elif old.get(key) != value:
            return f"{key}: {old.get(key)!r} -> {value!r}"
    return next((k for k in OWNED_STATUS_KEYS if old.get(k) is not None and k not in new), None)


def merge_patch(old: dict[str, Any], new: dict[str, Any], removable: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A JSON merge patch turning `old` into `new`: nested objects are diffed, so keys dropped inside
    them are removed (null), while top-level keys are removed only when `removable`."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif before != value:
            patch[key] = value
    for key in old:
        if key not in new and (removable is None or key in removable):
            patch[key] = None
    return patch


__all__ = ["ConditionType", "Conditions", "OWNED_STATUS_KEYS", "RECOVER", "changed_key", "merge_patch",
           "pending_nodes", "phase", "upgrade_phase", "with_pod_names"]
