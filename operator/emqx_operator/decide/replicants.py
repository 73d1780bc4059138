"""The replicants: their Deployment, held back until the cores are done, and paced (pure).

Replicants keep the image and restart hash they run until every core runs the new template, or, on
an upgrade to 5.6 or later, until one core runs the new release (decide/__init__.py says why).
Then the Deployment surges (updateStrategy.maxSurge, default 1; maxUnavailable 0); every new
replicant carries the readiness gate `apps.emqx.io/on-serving`, which the operator opens once EMQX
reports the node running and, while old replicants remain, only after the old replicant the
Deployment removes next (marked by pod-deletion-cost) has been drained through evacuation where the
edition allows it. Where it does not, `minReadySeconds` (= waitTakeover) gives its clients time to
reconnect; while a rollout finds no client on any old replicant it is 0 (and back to waitTakeover
once the old ones are gone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emqx_operator.decide import evacuation, pods
from emqx_operator.decide.facts import Facts, version_of
from emqx_operator.model import EmqxCall, Event, Obj, PodDeletion, PodPatch
from kubectl_emqx.domain import builders
from kubectl_emqx.domain.vocabulary import (
    ANNOTATION_DELETION_COST,
    ANNOTATION_RESTART_HASH,
    ANNOTATION_RESTARTED_AT,
    READINESS_GATE,
    format_time,
)

NEXT_TO_GO = "-1000"


@dataclass
class ReplicantResult:
    deployment: dict[str, Any] | None  # None: not yet (cores first)
    image: str
    calls: list[EmqxCall] = field(default_factory=list)
    patches: list[PodPatch] = field(default_factory=list)
    deletions: list[PodDeletion] = field(default_factory=list)  # replicants named by spec.restart.nodes
    events: list[Event] = field(default_factory=list)
    evacuation: dict[str, Any] | None = None  # status.upgrade.evacuation while draining a replicant
    draining: bool = False
    stalled: str = ""
    blocked: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    ready: list[Obj] = field(default_factory=list)
    on_target: list[Obj] = field(default_factory=list)
    settled: bool = False  # the Deployment is at its spec: every pod updated, the count right
    rolling: bool = False  # old-template replicants remain
    count: int = 0


def gate_open(pod: Obj) -> bool:
    gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
    if READINESS_GATE not in gates:
        return True  # a pod from before the gate existed
    return pods.condition_true(pod, READINESS_GATE)


def decide(facts: Facts, core_image: str, restart_hash: str, cores_done: bool) -> ReplicantResult:
    spec, world = facts.spec, facts.world
    strategy = spec.update_strategy
    desired = spec.replicant.replicas
    live = world.first("Deployment")
    if cores_done or live is None:
        image, template_hash = core_image, restart_hash
    else:  # hold replicants on what they run until every core runs the new template
        image = pods.container_image(live) or core_image
        template_hash = pods.template_annotation(live, ANNOTATION_RESTART_HASH) or restart_hash
    target = version_of(image)
    deployment = builders.build_deployment(spec, restart_hash=template_hash, image=image)
    if not (cores_done or live is None):  # a restart request waits for the cores too
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        held = pods.template_annotation(live, ANNOTATION_RESTARTED_AT)
        if held is None:
            annotations.pop(ANNOTATION_RESTARTED_AT, None)
        else:
            annotations[ANNOTATION_RESTARTED_AT] = held
    deployment["spec"]["minReadySeconds"] = strategy.evacuation.wait_takeover_seconds
    deployment["spec"]["progressDeadlineSeconds"] = max(strategy.node_ready_timeout_seconds, 1)
    wanted = live is not None or (desired > 0 and cores_done)
    result = ReplicantResult(builders.with_owner(deployment, facts.owner) if wanted else None, image)
    replicant_pods = [p for p in world.replicant_pods if not pods.terminating(p)]
    result.count = len(replicant_pods)

    restarted_at = deployment["spec"]["template"]["metadata"]["annotations"].get(ANNOTATION_RESTARTED_AT)

    def current(pod: Obj) -> bool:
        annotations = pods.annotations_of(pod)
        return (pods.container_image(pod) == image and annotations.get(ANNOTATION_RESTART_HASH) == template_hash
                and annotations.get(ANNOTATION_RESTARTED_AT) == restarted_at
                and not facts.restart_requested(pod, "replicant"))

    old_pods = [p for p in replicant_pods if not current(p)]
    if result.deployment is not None and old_pods and all(
            int((facts.emqx_info(p) or {"connections": 1}).get("connections") or 0) == 0 for p in old_pods):
        # waitTakeover gives clients of a replaced replicant time to reconnect elsewhere: with none
        # connected to any old replicant (as EMQX reports them), the surge need not wait for it.
        result.deployment["spec"]["minReadySeconds"] = 0
    _pace(facts, result, replicant_pods, current, desired, target)
    if cores_done and not result.patches and not result.calls:
        _restart_named(facts, result, replicant_pods, desired, target)
    result.ready = [p for p in replicant_pods if pods.ready(p)]
    status = (live or {}).get("status") or {}
    from emqx_operator.decide.cores import applied

    result.settled = (desired == 0 and not replicant_pods) or bool(
        live and result.deployment is not None and applied(live, result.deployment)
        and status.get("observedGeneration") == live["metadata"].get("generation")
        and status.get("updatedReplicas", 0) == desired and len(replicant_pods) == desired
    )
    result.on_target = [p for p in result.ready if (facts.emqx_info(p) or {}).get("version") == target]
    result.rolling = any(not current(p) for p in replicant_pods)
    for pod in replicant_pods:
        state = pods.state(pod)
        if current(pod) and state.definitive:
            result.blocked.append(f"{pods.name(pod)}: {state.message}")
        if pod not in result.on_target and pods.name(pod) not in result.waiting:
            result.waiting[pods.name(pod)] = _waiting_for(facts, pod, target, current(pod))
    deadline = next((c.get("message") for c in status.get("conditions") or []
                     if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"), None)
    if deadline and cores_done and result.rolling:
        not_ready = [pods.name(p) for p in replicant_pods if not pods.ready(p)]
        result.stalled = f"replicant {', '.join(not_ready) or '?'} not running {target} in time: {deadline}"
    if result.rolling and result.blocked and cores_done:
        result.stalled = result.blocked[0]
    return result


def _pace(facts: Facts, result: ReplicantResult, replicant_pods: list[Obj], current: Any, desired: int,
          target: str) -> None:
    """Open readiness gates of new replicants whose node runs. While old ones remain, each new one is
    paired with the old one the Deployment removes next (marked by deletion cost), and let in once
    that one is drained (where EMQX can drain it): up to `maxSurge` pairs at once, one drain at a time."""
    old = [p for p in replicant_pods if not current(p)]
    serving_new = [p for p in replicant_pods if current(p) and gate_open(p)]
    waiting = sorted((p for p in replicant_pods if current(p) and not gate_open(p) and facts.emqx_info(p) is not None),
                     key=pods.name)
    victims = sorted(old, key=lambda p: (pods.annotations_of(p).get(ANNOTATION_DELETION_COST) != NEXT_TO_GO,
                                         int((facts.emqx_info(p) or {}).get("connections") or 0), pods.name(p)))
    pairs = 0
    for pod in waiting:
        if len(serving_new) + len(old) < max(desired, 1) or not old:
            result.patches.append(_open_gate(facts, pod))
            serving_new.append(pod)
            continue
        if pairs >= max(facts.spec.update_strategy.max_surge, 1) or not victims:
            break
        victim = victims.pop(0)
        pairs += 1
        if pods.annotations_of(victim).get(ANNOTATION_DELETION_COST) != NEXT_TO_GO:
            result.patches.append(PodPatch(pods.name(victim),
                                           {"metadata": {"annotations": {ANNOTATION_DELETION_COST: NEXT_TO_GO}}}))
        node = facts.node_of(victim)
        if result.draining:  # one evacuation at a time: the next pair waits for it
            result.waiting[pods.name(pod)] = f"waits for {pods.name(victim)} to be drained"
            break
        drain = evacuation.drain(facts, node, pods.name(victim), keeps_volume=False, target_version=target)
        result.calls.extend(drain.calls)
        result.events.extend(drain.events)
        if drain.record is not None:
            result.evacuation = drain.record
            result.draining = True
        if drain.stalled:
            result.stalled = drain.stalled
            break
        if drain.ready_to_delete:
            if drain.stop_first is not None:
                result.calls.append(drain.stop_first)
            result.patches.append(_open_gate(facts, pod))
        else:
            result.waiting[pods.name(victim)] = drain.waiting
            result.waiting[pods.name(pod)] = f"waits for {pods.name(victim)} to be drained"


def _restart_named(facts: Facts, result: ReplicantResult, replicant_pods: list[Obj], desired: int,
                   target: str) -> None:
    """spec.restart.nodes names replicants: delete them one at a time (drained first where EMQX
    allows), each only when every other replicant serves; the Deployment makes a new one."""
    named = [p for p in replicant_pods if facts.restart_requested(p, "replicant")]
    if not named or len(replicant_pods) != desired or not all(pods.ready(p) for p in replicant_pods):
        return
    victim = min(named, key=pods.name)
    drain = evacuation.drain(facts, facts.node_of(victim), pods.name(victim), keeps_volume=False,
                             target_version=target)
    result.calls.extend(drain.calls)
    result.events.extend(drain.events)
    result.evacuation = drain.record
    if drain.stalled:
        result.stalled = drain.stalled
    elif drain.ready_to_delete:
        result.deletions.append(PodDeletion(pods.name(victim), pods.uid(victim),
                                            f"restarting replicant {pods.name(victim)} as spec.restart asks"))
    else:
        result.waiting[pods.name(victim)] = drain.waiting


def _open_gate(facts: Facts, pod: Obj) -> PodPatch:
    return PodPatch(pods.name(pod), {"status": {"conditions": [{
        "type": READINESS_GATE, "status": "True", "reason": "NodeRunning",
        "message": "EMQX reports the node running; the operator lets it take traffic",
        "lastTransitionTime": format_time(facts.now)}]}}, subresource="status", strategic=True)


def _waiting_for(facts: Facts, pod: Obj, target: str, current: bool) -> str:
    state = pods.state(pod)
    info = facts.emqx_info(pod)
    if state.state not in ("Running", "Booting"):
        return f"{state.state}: {state.message}"
    if info is None:
        return "booting: EMQX does not report it running yet"
    if not current:
        return f"waiting to be replaced (runs {info.get('version')})"
    if not gate_open(pod):
        return "waiting for the operator to let it take traffic"
    if info.get("version") != target:
        return f"EMQX reports it running {info.get('version')}, not {target}"
    return "settling"
