"""Draining a node through EMQX's evacuation before it goes away (pure).

One node is drained at a time (`status.upgrade.evacuation`), cores during the core rollout and
replicants during theirs. EMQX's rules (emqx_node_rebalance_api.erl, emqx_node_rebalance_evacuation.erl):
- `migrate_to` must be a non-empty list of running nodes that are not evacuating themselves;
  without one, the node is replaced without evacuation (and an Event says so);
- `wait_takeover` must be positive before e5.2.0;
- an evacuation persists on the node's volume and resumes after a restart: the operator ends it
  once the node runs again (and, before 5.7.0, where such a node would not even start, before
  deleting a core that keeps its volume);
- a refusal (4xx) is shown with EMQX's words, retried now and then, and stalls the rollout after
  `nodeReadyTimeoutSeconds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emqx_operator.decide.facts import Facts
from emqx_operator.model import EvacuationStart, EvacuationStop, Event
from kubectl_emqx.domain import versions
from kubectl_emqx.domain.vocabulary import format_time, parse_time

RETRY_REFUSED_SECONDS = 30.0


@dataclass(frozen=True)
class Drain:
    """What to do about a node that should be drained before it is deleted."""

    ready_to_delete: bool  # drained (or not drainable): delete it now
    calls: tuple[Any, ...] = ()  # EvacuationStart / EvacuationStop to send this pass
    stop_first: EvacuationStop | None = None  # send, and delete only if it succeeded
    record: dict[str, Any] | None = None  # status.upgrade.evacuation to keep (None: clear it)
    events: tuple[Event, ...] = ()
    waiting: str = ""  # what the node waits for, for status
    stalled: str = ""  # a refusal that outlived the node timeout


def body(facts: Facts, node: str, info: Any, targets: list[str]) -> dict[str, Any]:
    strategy = facts.spec.update_strategy.evacuation
    edition = str(info.get("edition", ""))
    version = versions.parse_version(str(info.get("version", "0.0.0")))
    request: dict[str, Any] = {
        "conn_evict_rate": strategy.conn_evict_rate,
        "sess_evict_rate": strategy.sess_evict_rate,
        "wait_takeover": max(strategy.wait_takeover_seconds, versions.min_wait_takeover(edition, version)),
        "migrate_to": targets,
    }
    if versions.evacuation_has_health_check(version):
        request["wait_health_check"] = strategy.wait_health_check_seconds
    return request


def drain(facts: Facts, node: str, pod_name: str, keeps_volume: bool, target_version: str) -> Drain:
    info = facts.running.get(node)
    state = facts.emqx.evacuation_state(node)
    record = dict((facts.old_status.get("upgrade") or {}).get("evacuation") or {})
    if record.get("node") != node:
        record = {}
    if state == "disabled" and not facts.can_evacuate(info):
        return Drain(ready_to_delete=True)
    timeout = facts.spec.update_strategy.node_ready_timeout_seconds
    since = parse_time(record.get("since"))
    if state == "prohibiting":  # drained: EMQX refuses new connections until the node goes
        stop = EvacuationStop(node)
        if keeps_volume and versions.evacuation_blocks_boot(versions.parse_version(target_version)):
            # A node of this version does not start with an evacuation on its volume: end it first.
            return Drain(ready_to_delete=True, stop_first=stop, record=record or None)
        return Drain(ready_to_delete=True, record=record or None)
    if state != "disabled":  # draining
        waited = facts.seconds_since(since)
        left = _connections_left(info)
        if since is not None and waited > timeout:
            return Drain(False, record=record, stalled=(
                f"evacuation of {node} did not finish within {timeout}s (state {state}, {left} connections left)"))
        going = {"node": node, "pod": pod_name, "since": record.get("since") or format_time(facts.now)}
        return Drain(False, record=going, waiting=f"being evacuated ({state}, {left} connections left)")
    # Not started yet.
    targets = facts.evacuation_targets(node)
    if not targets:
        message = (f"replacing {pod_name} without evacuation: no other running node can take its sessions "
                   f"({_connections_left(info)} connections)")
        return Drain(ready_to_delete=True, events=(Event("Warning", "EvacuationSkipped", message),))
    error = record.get("error")
    if error:
        if since is not None and facts.seconds_since(since) > timeout:
            return Drain(False, record=record, stalled=f"EMQX refused to evacuate {node}: {error}")
        if facts.seconds_since(parse_time(record.get("refusedAt"))) < RETRY_REFUSED_SECONDS:
            return Drain(False, record=record, waiting=f"evacuation refused by EMQX, retrying: {error}")
    start = EvacuationStart(node, body(facts, node, info, targets))
    kept = {"node": node, "pod": pod_name, "since": record.get("since") or format_time(facts.now)}
    if error:  # kept until EMQX accepts a start: the refusal stays visible meanwhile
        kept.update(error=error, refusedAt=record.get("refusedAt"))
    events = () if error else (Event("Normal", "EvacuatingNode", f"draining {node} ({pod_name}) before replacing it"),)
    return Drain(False, calls=(start,), record=kept, events=events,
                 waiting=f"being evacuated (starting, {_connections_left(info)} connections left)")


def _connections_left(info: Any) -> int:
    return int((info or {}).get("connections") or 0)


def refused(record: dict[str, Any], message: str, now: Any) -> dict[str, Any]:
    """status.upgrade.evacuation after EMQX refused the start."""
    return {**record, "error": message, "refusedAt": format_time(now)}


def resumed_evacuations(facts: Facts, draining: str | None, target_version: str) -> list[EvacuationStop]:
    """Nodes that run the target version with an evacuation going that the operator did not start
    (a core restarted on its volume resumes it): end them at once."""
    stops = []
    for node, info in facts.running.items():
        state = facts.emqx.evacuation_state(node)
        if state != "disabled" and node != draining and info.get("version") == target_version:
            stops.append(EvacuationStop(node))
    return stops
