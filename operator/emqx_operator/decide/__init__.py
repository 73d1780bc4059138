"""decide(): from what one pass observed to everything it should do, and the status to write (pure).

No clock (the pass hands in `now`), no I/O, no randomness (fresh secret values come in when a
Secret must be created). The concerns are split by module:

  secrets.py     the managed Secrets (cookie, the operator's API key, bootstrapAPIKeys)
  config.py      emqx.conf, the restart hash, and the one PUT that loads a change into EMQX
  cores.py       the core StatefulSet and the next step of a rolling replacement
  replicants.py  the replicant Deployment, held back until the cores are done, and paced
  evacuation.py  draining a node before it goes
  rebalance.py   spec.rebalance: EMQX's connection rebalance, started, followed and stopped
  status.py      conditions, phase, message and the per-node waits

`settle()` folds what the EMQX calls answered (act.py makes them) into the status.
"""

from __future__ import annotations

import datetime
from typing import Any

from emqx_operator.decide import config, cores, pods, rebalance, replicants, secrets
from emqx_operator.decide.facts import Facts
from emqx_operator.decide.status import RECOVER, Conditions, pending_nodes, phase, upgrade_phase, with_pod_names
from emqx_operator.model import (
    ConfigPut,
    EmqxView,
    EvacuationStart,
    Event,
    ForceLeave,
    Outcome,
    Plan,
    RebalanceStart,
    RebalanceStop,
    World,
)
from kubectl_emqx.domain import builders, hocon, validation, versions
from kubectl_emqx.domain.builders import SecretValues
from kubectl_emqx.domain.spec import EmqxSpec
from kubectl_emqx.domain.vocabulary import (
    REPLICANT,
    ConditionType,
    Phase,
    format_time,
    label_selector,
    object_names,
)

C = ConditionType
# Ready's reason in the pass that loads a configuration into EMQX, before emqx.conf holds it.
CONFIG_FILE_PENDING = "ConfigFilePending"


def decide(spec: EmqxSpec, world: World, emqx: EmqxView, old_status: dict[str, Any], now: datetime.datetime,
           fresh: SecretValues | None = None) -> Plan:
    generation = world.generation
    old_status = dict(old_status or {})
    facts = Facts(spec, world, emqx, old_status, now, generation, world.resource)
    # A pass that gets as far as deciding met no 403: a Forbidden condition is stale.
    conditions = Conditions([c for c in old_status.get("conditions") or [] if c.get("type") != C.FORBIDDEN],
                            generation, now)
    cluster_exists = bool(world.objects) or bool(old_status.get("observedGeneration"))
    secret_plan = secrets.plan(spec, world, fresh, cluster_exists)

    problems = validation.validate(spec, cookie=secret_plan.cookie) + list(secret_plan.problems)
    if problems:
        return _invalid(old_status, conditions, generation, "; ".join(str(p) for p in problems))
    warnings = _ignored_fields(spec)
    conditions.set_with_event(C.VALID, True, "AcceptedWithWarnings" if warnings else "SpecValid",
                              "; ".join(warnings) if warnings else "the spec passes validation",
                              bad_when=False, quiet_first=not warnings)

    if emqx.error is not None:
        conditions.set_with_event(C.EMQX_REACHABLE, False, emqx.error.reason, emqx.error.message)
    elif emqx.answered:
        # Not which core answered: that changes with load and rollouts, and is no news worth a write.
        conditions.set_with_event(C.EMQX_REACHABLE, True, "APIAnswered", "EMQX's API answers")

    # --- guard rails before anything moves ---------------------------------------------------------
    live_sts = world.first("StatefulSet")
    # What the cluster runs: what it ran when last Ready; before that, the StatefulSet's image only
    # if some node of it runs (a cluster that never came up has no version to protect).
    running_image = pods.container_image(live_sts) if emqx.running() else None
    current_image = str(old_status.get("currentImage") or running_image or spec.image)
    violations = []
    if current_image != spec.image:
        violations = versions.check_upgrade(
            current_image, spec.image, allow_downgrade=spec.update_strategy.allow_downgrade,
            replicants=spec.replicant.replicas, cores=spec.core.replicas,
            license_configured=validation.license_configured(spec))
    if violations:
        rules = ", ".join(v.rule for v in violations)
        message = (f"upgrade {current_image} -> {spec.image} refused ({rules}): "
                   + "; ".join(v.message for v in violations))
        conditions.set(C.UPGRADE_ALLOWED, False, "UpgradePolicy", message)
        core_image = pods.container_image(live_sts) or current_image
    else:
        core_image = spec.image

    # --- what runs -----------------------------------------------------------------------------------
    config_plan = config.plan(spec, world, emqx, old_status, generation)
    core = cores.decide(facts, core_image, config_plan.restart_hash, secret_plan.api_keys_hash)
    replicant = replicants.decide(facts, core_image, config_plan.restart_hash,
                                  _replicants_may_follow(core, core_image, world.first("Deployment")))
    objects, deletions = _objects(facts, config_plan.configmap_text, core, replicant)

    # --- status ----------------------------------------------------------------------------------------
    desired_cores, desired_replicants = spec.core.replicas, spec.replicant.replicas
    running = facts.running
    rolled_out = core.done and replicant.settled and not replicant.rolling
    config_status, (config_ok, config_reason, config_message) = config.finish(
        spec, config_plan, emqx, old_status, generation, rolled_out, now)
    conditions.set(C.CONFIG_APPLIED, config_ok, config_reason, config_message)

    stalled = core.stalled or replicant.stalled
    blocked = [] if stalled else core.blocked + replicant.blocked
    replicants_ready = replicant.settled and len(replicant.on_target) == desired_replicants
    extra_running = len(running) - desired_cores - desired_replicants
    image_changing = current_image != spec.image
    # A replicant spec.restart names is not current while it runs (its Deployment is settled meanwhile).
    ready = (emqx.answered and core.done and replicants_ready and not replicant.rolling and extra_running <= 0
             and not violations and not core.departed and config_ok and not config_plan.file_pending
             and not blocked)
    if not violations:  # judged once `ready` is known: the pass that reaches Ready says no upgrade is pending
        conditions.set(C.UPGRADE_ALLOWED, True, "PolicyPassed",
                       "no upgrade pending" if current_image == spec.image or ready
                       else f"{current_image} -> {spec.image} passes the version policy")
    target_version = versions.format_version(versions.parse_image(core_image).version)
    conditions.set(C.CORES_READY, core.done, "CoresRunning" if core.done else "CoresNotReady",
                   f"{len(core.on_target)}/{desired_cores} cores running {core_image}")
    conditions.set(C.REPLICANTS_READY, replicants_ready,
                   "ReplicantsRunning" if replicants_ready else "ReplicantsNotReady",
                   f"{len(replicant.on_target)}/{desired_replicants} replicants running {replicant.image}")
    recover = (RECOVER.format(name=spec.name) if image_changing else
               f"fix the cause and re-apply the resource (a configuration: `kubectl emqx config edit {spec.name}`)")
    if stalled:
        conditions.set_with_event(C.UPGRADE_STALLED, True, "NodeNotRunning",
                                  f"{stalled}; no further node is touched: {recover}", bad_when=True)
    else:
        conditions.set_with_event(C.UPGRADE_STALLED, False, "NotStalled", "no node is stuck", bad_when=True)

    if ready:
        reason = "ClusterReady"
        message = f"{desired_cores} cores and {desired_replicants} replicants running {spec.image}"
        conditions.set(C.READY, True, reason, message)
        conditions.set(C.PROGRESSING, False, "Settled", "nothing to do")
    else:
        reason, message = _why_not_ready(facts, violations, stalled, blocked, core, replicant, extra_running,
                                         core_image, config_ok, config_reason, config_message, target_version,
                                         config_plan.file_pending)
        conditions.set(C.READY, False, reason, message)
        if blocked:
            conditions.set_with_event(C.PROGRESSING, False, _kube_reason(blocked[0]),
                                      f"{'; '.join(blocked)}; {recover}", bad_when=False)
        elif stalled or violations:
            conditions.set(C.PROGRESSING, False, reason, message)
        else:
            conditions.set(C.PROGRESSING, True, reason, message)

    upgrade = dict(core.upgrade)
    evacuation_record = core.evacuation if core.evacuation is not None else replicant.evacuation
    if evacuation_record is not None:
        upgrade["evacuation"] = evacuation_record
    upgrade.update({
        "phase": str(upgrade_phase(stalled=bool(stalled), refused=bool(violations), cores_rolling=core.rolling,
                                   replicants_rolling=replicant.rolling,
                                   image_changing=image_changing and not replicants_ready)),
        "fromImage": current_image, "toImage": core_image,
        "coresUpdated": len(core.on_target), "replicantsUpdated": len(replicant.on_target),
    })
    if upgrade["phase"] == "Idle" and ready:
        upgrade = {k: v for k, v in upgrade.items()
                   if k in ("phase", "lastCompleted", "coresReplaced") and v is not None}

    events: list[Event] = list(secret_plan.events) + list(config_plan.events) + core.events + replicant.events
    previous = old_status.get("currentImage")
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "targetImage": spec.image,
        "currentImage": spec.image if ready else (previous or None),
        "coreNodesStatus": {
            "replicas": desired_cores,
            "readyReplicas": len([p for p in world.core_pods if pods.ready(p)]),
            "updatedReplicas": len(world.core_pods) - len(core.outdated) if core.settled else 0,
        },
        "replicantNodesStatus": {
            "replicas": desired_replicants,
            "readyReplicas": len(replicant.ready),
            "updatedReplicas": int(((world.first("Deployment") or {}).get("status") or {}).get("updatedReplicas", 0)),
            "labelSelector": label_selector(spec.name, REPLICANT),
        },
        "upgrade": upgrade,
        "config": config_status,
    }
    if previous and previous != spec.image:
        status["previousImage"] = previous
        if ready:
            events.append(Event("Normal", "UpgradeCompleted", f"every node runs {spec.image} (was {previous})"))
    elif old_status.get("previousImage"):
        status["previousImage"] = old_status["previousImage"]
    restart_running = False
    if spec.restart is not None:
        restarting = core.rolling or replicant.rolling or bool(core.deletions or replicant.deletions)
        before = old_status.get("restart") or {}
        # Done stays Done for its request: a later change (a config, a scale) is no restart.
        done = (before.get("at") == spec.restart.at and before.get("phase") == "Done") or (ready and not restarting)
        restart_running = not done
        status["restart"] = {"at": spec.restart.at, "role": spec.restart.role, "nodes": list(spec.restart.nodes),
                             "phase": "Done" if done else "Restarting"}
    release = config.running_release(spec, emqx)
    balance = rebalance.decide(facts, bool(ready), release.edition, release.version)
    if balance.condition is None:
        conditions.drop(C.REBALANCE_ALLOWED)
    else:
        conditions.set_with_event(C.REBALANCE_ALLOWED, *balance.condition, bad_when=False)
    if balance.status is not None:
        status["rebalance"] = balance.status
    events.extend(balance.events)
    waiting = {pod: ("core", reason) for pod, reason in core.waiting.items()}
    waiting.update({pod: ("replicant", reason) for pod, reason in replicant.waiting.items()})
    if waiting and not ready:
        status["pendingNodes"] = pending_nodes(waiting, old_status.get("pendingNodes") or [], now)
    if emqx.nodes is not None:
        status["emqxNodes"] = with_pod_names(emqx.nodes, _pods_by_host(world))
        status["emqxNodesObservedAt"] = format_time(now)
    elif old_status.get("emqxNodes") is not None:
        status["emqxNodes"] = old_status["emqxNodes"]
        status["emqxNodesObservedAt"] = old_status.get("emqxNodesObservedAt")
    the_phase = phase(ready=ready, stalled=bool(stalled or blocked), refused=bool(violations),
                      creating=not previous, upgrading=bool(previous) and image_changing,
                      scaling=len(world.core_pods) != desired_cores or replicant.count != desired_replicants,
                      rolling=core.rolling or replicant.rolling or restart_running,
                      config_pending=not config_ok or config_plan.file_pending,
                      emqx_ok=emqx.answered)
    events.extend(conditions.events)
    status.update(phase=str(the_phase), message=message, conditions=conditions.items)
    busy = (not ready and not (stalled or blocked or violations or config_reason == "ConfigRejected"
                               or emqx.error is not None)) or balance.busy
    calls = tuple(core.calls + replicant.calls + ([config_plan.put] if config_plan.put else []) + balance.calls)
    return Plan(
        secrets=secret_plan.writes,
        apply=tuple(objects),
        delete=tuple(deletions),
        emqx_calls=calls,
        pod_patches=tuple(replicant.patches),
        pod_deletions=tuple(core.deletions + replicant.deletions),
        status=status,
        events=tuple(events),
        # Look again soon while things move; a verdict (stall, refusal, rejected config) waits for a
        # new spec, and an EMQX outage for the resync period (pod events still trigger passes).
        busy=busy,
        waits_on_pods=(busy and not balance.busy and not calls and not core.deletions and not replicant.deletions
                       and not replicant.patches and not config_plan.file_pending
                       and core.evacuation is None and replicant.evacuation is None and not core.departed
                       and not upgrade.get("step")  # a core in flight stalls at nodeReadyTimeoutSeconds
                       and extra_running <= 0 and _waits_on_pods(world, waiting)),
    )


# Pod states that end with a pod event: the pod is created, scheduled, its container started (or
# restarted), or its readiness probe passes. A node whose containers are ready waits for EMQX instead
# (a core's view of it, a replicant's gate), which no event announces.
_KUBE_WAITS = frozenset({"Creating", "Scheduling", "Starting", "CrashLooping"})


def _waits_on_pods(world: World, waiting: dict[str, tuple[str, str]]) -> bool:
    """Whether every node the cluster waits for is a pod still to be created, scheduled or started,
    or booting with its containers not ready yet. The pass that sees the next change is then
    triggered by that pod's event, and the look-again of a busy cluster is only a safety net. (The
    caller leaves out a core replacement in flight: it has a deadline, which no event announces.)"""
    if not waiting:
        return False
    by_name = {pods.name(p): p for p in world.core_pods + world.replicant_pods}
    for name in waiting:
        pod = by_name.get(name)
        state = pods.state(pod).state
        if state in _KUBE_WAITS:
            continue
        if state == "Booting" and pod is not None and not pods.condition_true(pod, "ContainersReady"):
            continue
        return False
    return True


def settle(plan: Plan, outcome: Outcome, old_status: dict[str, Any], now: datetime.datetime
           ) -> tuple[dict[str, Any], tuple[Event, ...]]:
    """The status and Events once act has run: EMQX's answers to the calls folded in."""
    status = dict(plan.status)
    events = list(plan.events)
    for deletion in plan.pod_deletions:
        if deletion.name in outcome.deleted_pods:
            events.append(Event("Normal", "NodeReplaced", deletion.reason))
    upgrade = dict(status.get("upgrade") or {})
    for call in plan.emqx_calls:
        error = outcome.error(call)
        if isinstance(call, ConfigPut) and error is not None:
            status, events = _config_failed(status, events, call, error, old_status, now)
        elif isinstance(call, EvacuationStart) and error is not None and error.verdict:
            record = dict(upgrade.get("evacuation") or {"node": call.node, "since": format_time(now)})
            upgrade["evacuation"] = {**record, "error": f"HTTP {error.status} {error.code}: {error.message}",
                                     "refusedAt": format_time(now)}
        elif isinstance(call, ForceLeave) and (error is None or error.verdict):
            # Gone from the cluster (or EMQX says it is no member): done; an outage is tried again.
            departed = [n for n in upgrade.get("departedCores") or [] if n != call.node]
            upgrade["departedCores"] = departed
            if not departed:
                upgrade.pop("departedCores")
    if status.get("upgrade") is not None:
        status["upgrade"] = upgrade
    for call in plan.emqx_calls:
        if isinstance(call, RebalanceStart | RebalanceStop) and status.get("rebalance") is not None:
            error = outcome.error(call)
            status["rebalance"], more = rebalance.settled(status["rebalance"], call, error, format_time(now))
            if error is not None and isinstance(call, RebalanceStart):
                events = [e for e in events if e.reason != "RebalanceStarted"]
            events.extend(more)
    return status, tuple(events)


def _config_failed(status: dict[str, Any], events: list[Event], put: ConfigPut, error: Any,
                   old_status: dict[str, Any], now: datetime.datetime) -> tuple[dict[str, Any], list[Event]]:
    generation = int(status.get("observedGeneration") or 1)
    config_status = dict(status.get("config") or {})
    for key, value in config.previous_applied(old_status).items():
        config_status[key] = value
    if "appliedHash" not in config.previous_applied(old_status):
        config_status.pop("appliedHash", None)
        config_status.pop("appliedGeneration", None)
    events = [e for e in events if e.reason != "ConfigApplied"]
    if error.verdict:
        message = (f"EMQX rejected the configuration (generation {generation}): "
                   f"{config.describe_config_error(error.message)}")
        config_status["rejected"] = {"hash": put.hash, "target": put.target, "message": message}
        reason = "ConfigRejected"
        events.append(Event("Warning", "ConfigRejected", message))
    else:
        message = f"could not load the configuration: EMQX did not answer ({error.code}: {error.message})"
        reason = "EMQXUnreachable"
    conditions = Conditions(old_status.get("conditions") or [], generation, now)
    conditions.items = [dict(c) for c in status.get("conditions") or []]
    conditions.set(C.CONFIG_APPLIED, False, reason, message)
    ready = next((c for c in conditions.items if c.get("type") == C.READY), {})
    # Ready, or held back only by this configuration (emqx.conf next, a restart next): it is this failure.
    if conditions.value(C.READY) or ready.get("reason") in (CONFIG_FILE_PENDING, "RollingRestart"):
        conditions.set(C.READY, False, reason, f"configuration not applied: {message}")
        conditions.set(C.PROGRESSING, reason != "ConfigRejected", reason, f"configuration not applied: {message}")
        status.update(phase=str(Phase.CONFIG_PENDING), message=f"configuration not applied: {message}",
                      currentImage=old_status.get("currentImage") or status.get("currentImage"))
    # Transition times are judged against the old status, not against this pass's optimistic plan.
    for item in conditions.items:
        before = next((c for c in old_status.get("conditions") or [] if c.get("type") == item.get("type")), None)
        if before is not None and before.get("status") == item.get("status"):
            item["lastTransitionTime"] = before.get("lastTransitionTime", item.get("lastTransitionTime"))
    status = {**status, "config": config_status, "conditions": conditions.items}
    return status, events


def _replicants_may_follow(core: cores.CoreResult, core_image: str, deployment: Any) -> bool:
    """Replicants move to the new template once every core runs it. An upgrade to 5.6 or later lets
    them follow as soon as one core runs the new release and the core rollout goes on unstalled: a
    replicant of that release replicates only from a core of its own release (EMQX checks it whenever
    it picks an upstream core), so the two rollouts overlap and the upgrade takes about the longer of
    them instead of their sum. Restarts (same image) keep cores strictly first."""
    if core.done:
        return True
    if deployment is None or pods.container_image(deployment) == core_image:
        return False
    version = versions.parse_image(core_image).version
    return (versions.replicant_needs_same_version_core(version) and bool(core.on_target)
            and not core.stalled and not core.blocked)


def _invalid(old_status: dict[str, Any], conditions: Conditions, generation: int, message: str) -> Plan:
    conditions.set_with_event(C.VALID, False, "InvalidSpec", message)
    conditions.set(C.READY, False, "InvalidSpec", "the spec is invalid: see the Valid condition")
    conditions.set(C.PROGRESSING, False, "InvalidSpec", message)
    status = {**old_status, "observedGeneration": generation, "phase": str(Phase.INVALID), "message": message,
              "conditions": conditions.items}
    return Plan(status=status, events=tuple(conditions.events))


def _ignored_fields(spec: EmqxSpec) -> list[str]:
    """Fields the operator accepts but does not follow, said out loud (a Warning condition message)."""
    warnings = []
    if spec.update_strategy.type == "Recreate":
        warnings.append("spec.updateStrategy.type Recreate (the official operator's blue-green replacement) is "
                        "served as RollingUpdate: nodes are replaced in place, one at a time, volumes kept")
    return warnings


def _objects(facts: Facts, configmap_text: str, core: cores.CoreResult, replicant: replicants.ReplicantResult
             ) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    spec, world = facts.spec, facts.world
    names = object_names(spec.name)

    def own(obj: dict[str, Any]) -> dict[str, Any]:
        return builders.with_owner(obj, facts.owner)

    objects = [own(builders.build_configmap(spec, configmap_text)), own(builders.build_headless_service(spec)),
               core.statefulset]
    deletions: list[tuple[str, str]] = []
    dashboard = builders.build_dashboard_service(spec)
    if dashboard is not None:
        objects.append(own(dashboard))
    elif world.live("Service", names.dashboard_service):
        deletions.append(("Service", names.dashboard_service))
    if replicant.deployment is not None:
        objects.append(replicant.deployment)
    try:
        ports = hocon.listener_ports(hocon.parse(configmap_text))
    except hocon.HoconError:
        ports = hocon.listener_ports(builders.effective_config(spec))
    serve_from_replicants = spec.replicant.replicas > 0 and bool(replicant.ready)
    listeners = builders.build_listeners_service(spec, ports, serve_from_replicants)
    if listeners is not None:
        objects.append(own(listeners))
    elif world.live("Service", names.listeners_service):
        deletions.append(("Service", names.listeners_service))
    budgets = builders.build_pdbs(spec)
    objects.extend(own(pdb) for pdb in budgets)
    built = {pdb["metadata"]["name"] for pdb in budgets}
    for name in (names.core_pdb, names.replicant_pdb):
        if name not in built and world.live("PodDisruptionBudget", name):
            deletions.append(("PodDisruptionBudget", name))
    return objects, deletions


def _pods_by_host(world: World) -> dict[str, str]:
    by_host = {pods.name(p): pods.name(p) for p in world.core_pods}
    by_host.update({str(pods.ip(p)): pods.name(p) for p in world.core_pods + world.replicant_pods if pods.ip(p)})
    return by_host


def _kube_reason(text: str) -> str:
    """The Kubernetes reason word in a blocked pod's description (`pod: Reason: message`)."""
    words = text.split(": ", 2)
    return words[1].split()[0].rstrip(":") if len(words) > 1 and words[1] else "PodFailing"


def _why_not_ready(facts: Facts, violations: list[Any], stalled: str, blocked: list[str], core: cores.CoreResult,
                   replicant: replicants.ReplicantResult, extra_running: int, image: str, config_ok: bool,
                   config_reason: str, config_message: str, target_version: str, file_pending: bool = False
                   ) -> tuple[str, str]:
    spec, emqx = facts.spec, facts.emqx
    if violations:
        return "UpgradeRefused", "the image change breaks the version policy: see the UpgradeAllowed condition"
    if stalled:
        return "UpgradeStalled", stalled
    if blocked:
        return _kube_reason(blocked[0]), "; ".join(blocked)
    if emqx.error is not None:
        return emqx.error.reason, emqx.error.message
    if core.outdated:
        names = ", ".join(sorted(pods.name(p) for p in core.outdated))
        return "RollingCores", f"replacing cores one at a time ({names} left)"
    if len(core.on_target) < spec.core.replicas or not core.done:
        return "WaitingForCores", f"{len(core.on_target)}/{spec.core.replicas} cores running {image}"
    if len(replicant.on_target) != spec.replicant.replicas or not replicant.settled:
        return ("WaitingForReplicants",
                f"{len(replicant.on_target)}/{spec.replicant.replicas} replicants running {replicant.image}")
    if replicant.rolling:
        return "RollingReplicants", "restarting replicants one at a time"
    if extra_running > 0:
        return "WaitingForScaleDown", f"{extra_running} node(s) above the desired count still running"
    if core.departed:
        return "WaitingForScaleDown", f"removing departed cores from the EMQX cluster: {', '.join(core.departed)}"
    if not config_ok:
        return config_reason, f"configuration not applied: {config_message}"
    if file_pending:
        return CONFIG_FILE_PENDING, f"{config_message}; emqx.conf gets it next"
    return "Progressing", "waiting for the cluster to settle"


__all__ = ["decide", "settle"]
