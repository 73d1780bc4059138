"""A connection rebalance across the nodes that serve clients, asked for in spec.rebalance (pure).

EMQX's own mechanism (emqx_node_rebalance.erl, emqx_node_rebalance_api.erl): one node coordinates;
on start it splits the participating nodes into donors (connections >= the average) and
recipients, answers `nothing_to_balance` when the averages are already within the thresholds, and
otherwise evicts connections, then disconnected sessions, from the donors until they are; then it
ends by itself and disappears from `GET /load_rebalance/global_status`. Its state lives in the
coordinator's memory only: a coordinator that restarts ends the rebalance.

What the operator does, and where the state lives (`status.rebalance`, keyed by the request's `at`):
- `Refused` (and the `RebalanceAllowed` condition False) where the edition has no rebalance
  (Opensource up to 5.8): nothing is sent.
- `Pending` until the cluster is Ready (a rollout and a rebalance would both use the nodes'
  eviction agents); then `POST /load_rebalance/{coordinator}/start` with `nodes` = the running
  replicants, or the cores when there are none (where the listeners Service sends clients), the
  coordinator being the lowest running core (stable name), and the strategy the user set.
- `Processing`: EMQX's entry for the coordinator is copied into `status.rebalance.progress` on
  every pass; when it is gone, `Completed` (or `Failed`, when the coordinator restarted or left).
- `stop: true`: `POST .../stop` to the coordinator, then `Stopped`.
EMQX's answers to the start are folded in by `settle()`: `nothing_to_balance` completes at once
(with EMQX's reason), `already_started` counts as started (an operator restarted between the call
and the status write asks again), any other refusal fails with EMQX's words; an outage retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emqx_operator.decide.facts import Facts
from emqx_operator.model import CallError, EmqxCall, Event, Obj, RebalanceStart, RebalanceStop
from kubectl_emqx.domain import versions
from kubectl_emqx.domain.vocabulary import format_time, parse_time

PENDING, PROCESSING, COMPLETED, STOPPED, FAILED, REFUSED = (
    "Pending", "Processing", "Completed", "Stopped", "Failed", "Refused")
FINAL = (COMPLETED, STOPPED, FAILED)
# A coordinator whose uptime began this long after the start restarted meanwhile (clock slack).
RESTART_SLACK_SECONDS = 5.0


@dataclass
class RebalanceResult:
    status: dict[str, Any] | None = None  # status.rebalance (None: no request, drop it)
    condition: tuple[bool, str, str] | None = None  # RebalanceAllowed (None: drop it)
    calls: list[EmqxCall] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    busy: bool = False  # look again soon


def status_due(spec_rebalance: Any, old_status: dict[str, Any]) -> bool:
    """Whether this pass should read EMQX's rebalance status: a request not yet finished."""
    if spec_rebalance is None:
        return False
    old = old_status.get("rebalance") or {}
    return old.get("at") != spec_rebalance.at or old.get("phase") in (PENDING, PROCESSING)


def decide(facts: Facts, ready: bool, edition: str, version: versions.Version) -> RebalanceResult:
    request = facts.spec.rebalance
    if request is None:
        return RebalanceResult()
    old = dict(facts.old_status.get("rebalance") or {})
    if old.get("at") != request.at:
        old = {}
    record: dict[str, Any] = {"at": request.at, **{k: v for k, v in old.items() if k != "at"}}
    refusal = versions.rebalance_refusal(edition, version)
    if refusal is not None:
        record.update(phase=REFUSED, message=f"{refusal}; nothing was sent to EMQX")
        for key in ("coordinator", "nodes", "startedAt", "progress"):
            record.pop(key, None)
        return RebalanceResult(record, (False, "RebalanceUnsupported", refusal))
    allowed = (True, "RebalanceSupported", f"EMQX {edition} {versions.format_version(version)} can rebalance")
    phase = record.get("phase")
    if phase == REFUSED:  # the cluster runs a release that can, now (an upgrade)
        phase = None
        record.pop("message", None)
    if phase in FINAL:
        return RebalanceResult(record, allowed)
    if phase == PROCESSING:
        return _follow(facts, record, request.stop, allowed)
    # Not started yet.
    if request.stop:
        record.update(phase=STOPPED, message="stopped before it started", completedAt=format_time(facts.now))
        return RebalanceResult(record, allowed)
    start = _start(facts, ready)
    if isinstance(start, str):
        record.update(phase=PENDING, message=start)
        return RebalanceResult(record, allowed, busy=False)
    record.update(phase=PROCESSING, coordinator=start.coordinator, nodes=list(start.body.get("nodes") or []),
                  startedAt=format_time(facts.now), message="started")
    record.pop("progress", None)
    event = Event("Normal", "RebalanceStarted",
                  f"rebalancing connections across {', '.join(record['nodes'])} (coordinator {start.coordinator})")
    return RebalanceResult(record, allowed, [start], [event], busy=True)


def _start(facts: Facts, ready: bool) -> RebalanceStart | str:
    """The start call, or why not yet."""
    if not ready:
        return "waiting for the cluster to be Ready (a rollout and a rebalance cannot share the nodes)"
    running = facts.running
    cores = sorted((node for node, info in running.items() if info.get("role") in ("core", None)),
                   key=lambda node: (facts.core_ordinal(node) is None, facts.core_ordinal(node) or 0, node))
    replicants = sorted(node for node, info in running.items() if info.get("role") == "replicant")
    if not cores:
        return "waiting for a running core to coordinate the rebalance"
    nodes = replicants or cores
    body = {**facts.spec.rebalance.body(), "nodes": nodes} if facts.spec.rebalance else {"nodes": nodes}
    return RebalanceStart(cores[0], body)


def _follow(facts: Facts, record: dict[str, Any], stop: bool, allowed: tuple[bool, str, str]) -> RebalanceResult:
    coordinator = str(record.get("coordinator") or "")
    rebalances = facts.emqx.rebalances
    if rebalances is None:  # not read (EMQX did not answer): nothing to judge
        calls: list[EmqxCall] = [RebalanceStop(coordinator)] if stop and facts.emqx.answered else []
        return RebalanceResult(record, allowed, calls, busy=True)
    entry = next((dict(e) for e in rebalances
                  if coordinator in (e.get("coordinator_node"), e.get("node"))), None)
    if entry is not None:
        record["progress"] = entry
        record["message"] = _progress_line(entry)
        if stop:
            return RebalanceResult(record, allowed, [RebalanceStop(coordinator)], busy=True)
        return RebalanceResult(record, allowed, busy=True)
    # EMQX lists it no more: finished, unless its coordinator went away with it.
    gone = _coordinator_gone(facts, coordinator, parse_time(record.get("startedAt")))
    record["completedAt"] = format_time(facts.now)
    if gone:
        record.update(phase=FAILED, message=f"{gone}: EMQX keeps a rebalance only in its coordinator's memory, "
                                            "so it ended there; ask again with `kubectl emqx rebalance`")
        return RebalanceResult(record, allowed, events=[Event("Warning", "RebalanceFailed", record["message"])])
    if stop:
        record.update(phase=STOPPED, message="stopped")
        return RebalanceResult(record, allowed, events=[Event("Normal", "RebalanceStopped", "rebalance stopped")])
    record.update(phase=COMPLETED, message="EMQX finished the rebalance: the donors are within the thresholds")
    return RebalanceResult(record, allowed, events=[Event("Normal", "RebalanceCompleted", record["message"])])


def _coordinator_gone(facts: Facts, coordinator: str, started: Any) -> str | None:
    info = facts.running.get(coordinator)
    if info is None:
        return f"the coordinator {coordinator} is not running"
    uptime = info.get("uptime")
    if started is not None and isinstance(uptime, int | float):
        booted = facts.now.timestamp() - float(uptime) / 1000.0
        if booted > started.timestamp() + RESTART_SLACK_SECONDS:
            return f"the coordinator {coordinator} restarted during the rebalance"
    return None


def _progress_line(entry: Obj) -> str:
    state = entry.get("state", "?")
    donors, recipients = entry.get("donors") or [], entry.get("recipients") or []
    line = f"{state}: {len(donors)} donor(s) -> {len(recipients)} recipient(s)"
    if entry.get("donor_conn_avg") is not None and entry.get("connection_goal") is not None:
        line += (f", donor connection average {float(entry['donor_conn_avg']):.0f}, "
                 f"goal {float(entry['connection_goal']):.0f}")
    return line


def settled(record: dict[str, Any], call: RebalanceStart | RebalanceStop, error: CallError | None,
            now_text: str) -> tuple[dict[str, Any], list[Event]]:
    """status.rebalance once EMQX answered `call` (act made it)."""
    record = dict(record)
    if error is None:
        if isinstance(call, RebalanceStop):
            record.update(phase=STOPPED, message="stopped", completedAt=now_text)
            return record, [Event("Normal", "RebalanceStopped", f"rebalance coordinated by {call.coordinator} stopped")]
        return record, []
    said = f"HTTP {error.status} {error.code}: {error.message}" if error.status else f"{error.code}: {error.message}"
    if isinstance(call, RebalanceStop):
        record["message"] = (f"EMQX refused to stop it ({said})" if error.verdict
                             else f"EMQX did not answer the stop ({said}); trying again")
        return record, []
    if error.verdict and "already_started" in error.message:
        record["message"] = "started (EMQX already runs it)"
        return record, []
    for key in ("coordinator", "nodes", "startedAt"):
        record.pop(key, None)
    if error.verdict and "nothing_to_balance" in error.message:
        record.update(phase=COMPLETED, completedAt=now_text,
                      message="EMQX found nothing to balance: the donors' connection and session averages are "
                              "already within the thresholds (absConnThreshold/relConnThreshold and the session "
                              "ones; EMQX's defaults are 1000 and 1.1)")
        return record, [Event("Normal", "RebalanceCompleted", record["message"])]
    if error.verdict:
        record.update(phase=FAILED, completedAt=now_text, message=f"EMQX refused the rebalance: {said}")
        return record, [Event("Warning", "RebalanceFailed", record["message"])]
    record.update(phase=PENDING, message=f"EMQX did not answer the start ({said}); trying again")
    return record, []
