"""The cores: their StatefulSet, and the next step of a rolling replacement (pure).

The StatefulSet updates `OnDelete`, so a new template restarts nothing; each pass replaces at most
one outdated core (highest ordinal first, a broken one before healthy ones), only when every other
core is Ready and reported `running` by EMQX, after the previous replacement has come back on the
target version and (when it had clients) `waitTakeover` has passed. Busy nodes are drained through
evacuation first where the edition supports it. The core in flight is `status.upgrade.step`, so a
restarted operator continues where the last one stopped and replaces every core exactly once.

A replacement that fails definitively (the image cannot be pulled, the node crashes on start)
stalls the rollout at once, quoting Kubernetes; one that is merely slow stalls after
`nodeReadyTimeoutSeconds`. Nothing else is touched while stalled; a new spec (a fix or a rollback)
starts a new judgement.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from emqx_operator.decide import evacuation, pods
from emqx_operator.decide.facts import Facts, version_of
from emqx_operator.model import EmqxCall, Event, ForceLeave, Obj, PodDeletion
from kubectl_emqx.domain import builders
from kubectl_emqx.domain.vocabulary import (
    ANNOTATION_APPLIED_HASH,
    core_pod_name,
    format_time,
    parse_time,
    pod_ordinal,
)


@dataclass
class CoreResult:
    statefulset: dict[str, Any]
    calls: list[EmqxCall] = field(default_factory=list)
    deletions: list[PodDeletion] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    upgrade: dict[str, Any] = field(default_factory=dict)  # status.upgrade fields cores own
    stalled: str = ""  # the rollout cannot go on (UpgradeStalled)
    blocked: list[str] = field(default_factory=list)  # definitive failures of pods the cluster waits on
    waiting: dict[str, str] = field(default_factory=dict)  # pod -> what it waits for
    outdated: list[Obj] = field(default_factory=list)
    on_target: list[Obj] = field(default_factory=list)
    healthy: list[Obj] = field(default_factory=list)
    rolling: bool = False  # a template change is not yet on every core
    settled: bool = False  # the StatefulSet controller has seen the current template
    done: bool = False  # every desired core runs the target, Ready, nothing in flight
    departed: list[str] = field(default_factory=list)  # nodes being removed from the EMQX cluster
    evacuation: dict[str, Any] | None = None  # status.upgrade.evacuation while draining a core


def applied(live: Obj | None, desired: Obj) -> bool:
    """The live object was last applied from exactly `desired` (the apply path's hash annotation)."""
    from emqx_operator.cluster_api import object_hash

    return live is not None and pods.annotations_of(live).get(ANNOTATION_APPLIED_HASH) == object_hash(dict(desired))


def decide(facts: Facts, core_image: str, restart_hash: str, api_keys_hash: str | None = None) -> CoreResult:
    spec, world = facts.spec, facts.world
    target = version_of(core_image)
    statefulset = builders.with_owner(
        builders.build_statefulset(spec, restart_hash=restart_hash, image=core_image, api_keys_hash=api_keys_hash),
        facts.owner)
    result = CoreResult(statefulset)
    upgrade = dict(facts.old_status.get("upgrade") or {})
    draining = (upgrade.pop("evacuation", None) or {}).get("node")
    live = world.first("StatefulSet")
    status = (live or {}).get("status") or {}
    template_pending = live is not None and not applied(live, statefulset)
    settled = bool(live and not template_pending
                   and status.get("observedGeneration") == live["metadata"].get("generation")
                   and status.get("updateRevision"))
    revision = status.get("updateRevision")
    core_pods = [p for p in world.core_pods if not pods.terminating(p)]
    terminating = [p for p in world.core_pods if pods.terminating(p)]
    result.outdated = [p for p in core_pods
                       if settled and (pods.revision(p) != revision or facts.restart_requested(p, "core"))]
    result.healthy = [p for p in core_pods if pods.ready(p) and facts.emqx_info(p) is not None]
    if facts.emqx.error is not None and facts.emqx.error.reason == "EMQXUnauthorized":
        # EMQX refuses the operator's key (its Secret was recreated): a core restarted with the new
        # key file lets it in again, so Kubernetes' readiness stands in for EMQX's word meanwhile.
        result.healthy = [p for p in core_pods if pods.ready(p)]
    result.on_target = [p for p in core_pods if p not in result.outdated and facts.runs(p, target)]
    result.rolling = bool(result.outdated) or template_pending or not settled or bool(terminating)
    result.settled = settled
    desired = spec.core.replicas

    step = _follow_step(facts, result, upgrade, core_pods, target)
    if not step and not result.stalled and result.outdated and not template_pending:
        step = _next_victim(facts, result, upgrade, core_pods, target)
    if settled and not template_pending:
        for pod in core_pods:
            state = pods.state(pod)
            if pod not in result.outdated and state.definitive and pods.name(pod) != step.get("pod"):
                result.blocked.append(f"{pods.name(pod)}: {state.message}")

    if result.evacuation is not None:
        draining = result.evacuation.get("node")
    elif step or result.deletions:
        draining = None  # the drained core is being replaced: it may resume its evacuation, which is ended
    # else: a replicant may be draining (replicants.py keeps its record)
    result.calls.extend(evacuation.resumed_evacuations(facts, draining, target))
    _departed(facts, result, upgrade, desired)

    result.done = (not result.rolling and not step and len(result.on_target) == desired == len(core_pods)
                   and len(result.healthy) == desired)
    for pod in core_pods:
        if pod not in result.on_target and pods.name(pod) not in result.waiting:
            result.waiting[pods.name(pod)] = _waiting_for(facts, pod, target, pod in result.outdated)
    result.upgrade = upgrade
    if step:
        upgrade["step"] = step
    else:
        upgrade.pop("step", None)
    return result


def _follow_step(facts: Facts, result: CoreResult, upgrade: dict[str, Any], core_pods: list[Obj],
                 target: str) -> dict[str, Any]:
    """The core being replaced right now: done, still coming, or stalled."""
    step = dict(upgrade.get("step") or {})
    if not step:
        return {}
    if step.get("generation") != facts.generation:
        # A new spec (a fix, a rollback): the pod in flight is judged afresh, as outdated or current.
        return {}
    pod = next((p for p in core_pods if pods.name(p) == step.get("pod")), None)
    replaced = pod is not None and pods.uid(pod) != step.get("uid")
    if replaced and pod is not None and pod not in result.outdated and facts.runs(pod, target):
        upgrade["lastCompleted"] = format_time(facts.now)
        upgrade["lastConnections"] = int(step.get("connections") or 0)
        if step.get("stalled"):
            result.events.append(Event("Normal", "UpgradeResumed", f"{step['pod']} runs {target} again"))
        return {}
    timeout = facts.spec.update_strategy.node_ready_timeout_seconds
    state = pods.state(pod if replaced else None)
    node = facts.core_node(str(step.get("pod")))
    reported = (facts.running.get(node) or {}).get("version")
    if replaced and state.definitive:
        step["stalled"] = f"{step['pod']}: {state.message}"
    elif facts.seconds_since(parse_time(step.get("since"))) > timeout:
        step["stalled"] = (f"EMQX reports {node} running {reported}, not {target}, after {timeout}s" if reported
                           else f"{step['pod']} is not running {target} after {timeout}s: {state.message}")
    if step.get("stalled"):
        result.stalled = str(step["stalled"])
    result.waiting[str(step.get("pod"))] = _replacement_waiting(state, reported, target)
    return step


def _replacement_waiting(state: pods.PodState, reported: Any, target: str) -> str:
    if state.state == "Running":
        return f"EMQX reports it running {reported}" if reported else "waiting for EMQX to report it running"
    return f"{state.state}: {state.message}"


def _next_victim(facts: Facts, result: CoreResult, upgrade: dict[str, Any], core_pods: list[Obj],
                 target: str) -> dict[str, Any]:
    """Replace the next outdated core (or drain it first); returns the new step, if one started."""
    spec = facts.spec
    desired = spec.core.replicas
    others_healthy = all(p in result.healthy for p in core_pods if p not in result.outdated)
    # Broken: not Ready, or EMQX reports the node stopped. A Ready core the view does not list at all
    # is unknown (a view from a node that has not joined yet), never a reason to act.
    broken = [p for p in result.outdated if not pods.ready(p) or facts.reported_stopped(p)]
    candidates = broken or (result.outdated if len(result.healthy) == desired else [])
    if not (others_healthy and candidates and len(core_pods) == desired):
        return {}
    wait_until = _next_step_at(facts, upgrade)
    victim = max(candidates, key=lambda p: pod_ordinal(pods.name(p)) or -1)
    name = pods.name(victim)
    if wait_until is not None and facts.now < wait_until:
        seconds = int((wait_until - facts.now).total_seconds()) + 1
        result.waiting[name] = f"next in line: waiting {seconds}s for clients of the last replaced node to reconnect"
        return {}
    node = facts.core_node(name)
    info = facts.running.get(node) or {}
    keeps_volume = spec.core.volume_claim_template is not None
    drain = (evacuation.Drain(ready_to_delete=True) if victim in broken
             else evacuation.drain(facts, node, name, keeps_volume, target))
    result.events.extend(drain.events)
    result.calls.extend(drain.calls)
    result.evacuation = drain.record
    if drain.stalled:
        result.stalled = drain.stalled
        return {}
    if not drain.ready_to_delete:
        result.waiting[name] = drain.waiting
        return {}
    why = (f"restarting core {name} as spec.restart asks" if facts.restart_requested(victim, "core")
           else f"replacing core {name} ({info.get('version', '?')} -> {target})")
    if drain.stop_first is not None:
        result.calls.append(drain.stop_first)
    result.deletions.append(PodDeletion(name, pods.uid(victim), why, after=drain.stop_first))
    result.evacuation = None
    upgrade["coresReplaced"] = int(upgrade.get("coresReplaced") or 0) + 1
    result.waiting[name] = "being replaced"
    return {"pod": name, "uid": pods.uid(victim), "since": format_time(facts.now), "generation": facts.generation,
            "connections": facts.clients(info)}


def _next_step_at(facts: Facts, upgrade: dict[str, Any]) -> datetime.datetime | None:
    """When the next core may go: the last replaced one has been running `initialDelaySeconds`, and
    its clients (when it had any and was not drained) got `waitTakeover` to reconnect elsewhere."""
    completed = parse_time(upgrade.get("lastCompleted"))
    if completed is None:
        return None
    strategy = facts.spec.update_strategy
    takeover = strategy.evacuation.wait_takeover_seconds if int(upgrade.get("lastConnections", 1) or 0) > 0 else 0
    return completed + datetime.timedelta(seconds=max(strategy.initial_delay_seconds, takeover))


def _departed(facts: Facts, result: CoreResult, upgrade: dict[str, Any], desired: int) -> None:
    """Cores removed by a scale-down stay members of the EMQX cluster (listed as stopped from 5.0.18)
    until they are told to leave: force_leave each once its pod is gone."""
    spec = facts.spec
    kept = {facts.core_node(core_pod_name(spec.name, i)) for i in range(desired)}
    pending = set(upgrade.get("departedCores") or [])
    for pod in facts.world.core_pods:
        ordinal = pod_ordinal(pods.name(pod))
        if ordinal is not None and ordinal >= desired:
            pending.add(facts.core_node(pods.name(pod)))
    for listed in facts.emqx.nodes or ():
        node = str(listed.get("node"))
        # Before 5.1.0 stopped cores have no role: they are matched by name against the ordinals.
        if (listed.get("node_status") == "stopped" and node not in kept
                and listed.get("role") in ("core", None) and facts.core_ordinal(node) is not None):
            pending.add(node)
    pending -= kept
    present = {facts.core_node(pods.name(p)) for p in facts.world.core_pods}
    for node in sorted(pending):
        if node in present or node in facts.running:
            continue  # still there: it leaves once its pod is gone
        result.calls.append(ForceLeave(node))
    result.departed = sorted(pending)
    if pending:
        upgrade["departedCores"] = sorted(pending)
    else:
        upgrade.pop("departedCores", None)


def _waiting_for(facts: Facts, pod: Obj, target: str, outdated: bool) -> str:
    state = pods.state(pod)
    info = facts.emqx_info(pod)
    if state.state != "Running":
        return f"{state.state}: {state.message}"
    if info is None:
        return "EMQX does not report it running yet"
    if outdated:
        return f"waiting to be replaced (runs {info.get('version')})"
    if info.get("version") != target:
        return f"EMQX reports it running {info.get('version')}, not {target}"
    return "settling"
