"""decide(): from the observed world to the desired objects and the next step — pure, no I/O.

Rolling operations (image upgrades, restarts for restart-needing config, any template change) use
one mechanism: the core StatefulSet has `OnDelete` updates, so changing its template restarts
nothing; each pass replaces at most one outdated core pod, and only when every other core is back,
Ready and reported `running` by EMQX on the target version. Replicants (a Deployment that surges
first) follow only once no core is outdated. Progress is the pods' revisions themselves plus a few
timestamps in `status.upgrade`, so a restarted operator continues exactly where the last one
stopped and replaces every node once.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from emqx_operator.cluster_api import HASH_ANNOTATION, object_hash
from emqx_operator.observe import EmqxView, World, container_image, pod_ready
from kubectl_emqx.domain import builders, hocon, validation, versions, vocabulary
from kubectl_emqx.domain import spec as spec_mod

REVISION_LABEL = "controller-revision-hash"


@dataclass
class Plan:
    objects: list[dict[str, Any]] = field(default_factory=list)
    delete_objects: list[tuple[str, str]] = field(default_factory=list)
    delete_pods: list[tuple[str, str, str]] = field(default_factory=list)  # (name, uid, why)
    force_leave: list[str] = field(default_factory=list)
    evacuate: list[str] = field(default_factory=list)
    open_gates: list[str] = field(default_factory=list)  # replicant pods allowed to become Ready
    mark_next_to_go: list[str] = field(default_factory=list)  # old replicants the Deployment removes first
    stop_evacuation: list[str] = field(default_factory=list)
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    status_fields: dict[str, Any] = field(default_factory=dict)
    phase: str = "Creating"
    message: str = ""
    busy: bool = True
    core_image: str = ""
    cores_settled: bool = False
    versions_mixed: bool = False


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def core_node_name(spec: spec_mod.EmqxSpec, pod_name: str) -> str:
    return f"emqx@{pod_name}.{spec.name}-headless.{spec.namespace}.svc.{spec.cluster_domain}"


def _ordinal(pod_name: str) -> int:
    tail = pod_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _version_of(image: str) -> str:
    return versions.format_version(versions.parse_image(image).version)


def _live_annotation(obj: dict[str, Any] | None, key: str) -> str | None:
    template = ((obj or {}).get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(key)


def _applied(live: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    if not live:
        return False
    return bool((live["metadata"].get("annotations") or {}).get(HASH_ANNOTATION) == object_hash(desired))


def _pod_problem(pod: dict[str, Any] | None) -> str:
    """Kubernetes' own words for why a pod is not ready."""
    if pod is None:
        return "the pod does not exist"
    status = pod.get("status") or {}
    for cstatus in status.get("containerStatuses") or []:
        waiting = (cstatus.get("state") or {}).get("waiting")
        if waiting:
            detail = f"{waiting.get('reason')} {waiting.get('message', '')}".strip()
            return f"container {cstatus.get('name')} waiting: {detail}"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") != "True":
            return f"pod not Ready ({cond.get('reason') or 'no reason given'})"
    return f"pod phase {status.get('phase')}"


def decide(spec: spec_mod.EmqxSpec, world: World, view: EmqxView, old_status: dict[str, Any],
           owner: dict[str, Any], generation: int) -> Plan:
    plan = Plan()

    def own(obj: dict[str, Any]) -> dict[str, Any]:
        return builders.with_owner(obj, owner)

    effective = builders.effective_config(spec)
    ports = hocon.listener_ports(effective)
    restart_hash = rollout_restart_hash(spec)
    running = {n["node"]: n for n in view.nodes or [] if n.get("node_status") == "running"}
    upgrade = dict(old_status.get("upgrade") or {})
    strategy = spec.update_strategy
    moment = now()

    live_sts = world.statefulset
    live_deploy = world.deployment
    current_image = old_status.get("currentImage") or container_image(live_sts) or spec.image

    # --- guard rails before anything moves ------------------------------------------------------
    violations = []
    if current_image != spec.image:
        violations = versions.check_upgrade(
            current_image, spec.image, allow_downgrade=strategy.allow_downgrade,
            replicants=spec.replicant.replicas, cores=spec.core.replicas,
            license_configured=validation.license_configured(spec),
        )
    if violations:
        rules = ", ".join(v.rule for v in violations)
        message = (f"upgrade {current_image} -> {spec.image} refused ({rules}): "
                   + "; ".join(v.message for v in violations))
        plan.conditions.append(("UpgradeAllowed", False, "UpgradePolicy", message))
        core_image = container_image(live_sts) or current_image
    else:
        plan.conditions.append(("UpgradeAllowed", True, "PolicyPassed",
                                "no upgrade pending" if current_image == spec.image
                                else f"{current_image} -> {spec.image} passes the version policy"))
        core_image = spec.image
    plan.core_image = core_image
    target_version = _version_of(core_image)

    plan.objects.append(own(builders.build_configmap(spec)))
    plan.objects.append(own(builders.build_headless_service(spec)))
    statefulset = own(builders.build_statefulset(spec, restart_hash=restart_hash, image=core_image))
    plan.objects.append(statefulset)
    dashboard = builders.build_dashboard_service(spec)
    if dashboard is not None:
        plan.objects.append(own(dashboard))
    elif world.live("Service", f"{spec.name}-dashboard"):
        plan.delete_objects.append(("Service", f"{spec.name}-dashboard"))

    # --- cores ------------------------------------------------------------------------------------
    desired_cores = spec.core.replicas
    sts_status = (live_sts or {}).get("status") or {}
    template_pending = live_sts is not None and not _applied(live_sts, statefulset)
    sts_settled = bool(
        live_sts and not template_pending
        and sts_status.get("observedGeneration") == live_sts["metadata"].get("generation")
        and sts_status.get("updateRevision")
    )
    update_revision = sts_status.get("updateRevision")
    core_pods = [p for p in world.core_pods if not p["metadata"].get("deletionTimestamp")]
    terminating = [p for p in world.core_pods if p["metadata"].get("deletionTimestamp")]
    outdated = [p for p in core_pods
                if sts_settled and (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != update_revision]

    def core_on_target(pod: dict[str, Any]) -> bool:
        node = running.get(core_node_name(spec, pod["metadata"]["name"]))
        return pod_ready(pod) and node is not None and node.get("version") == target_version

    healthy_cores = [p for p in core_pods if pod_ready(p) and core_node_name(spec, p["metadata"]["name"]) in running]
    cores_on_target = [p for p in core_pods if p not in outdated and core_on_target(p)]
    core_rollout = bool(outdated) or template_pending or not sts_settled or bool(terminating)

    # The node being replaced right now, if any (kept in status: survives operator restarts).
    step = dict(upgrade.get("step") or {})
    if step:
        pod = next((p for p in core_pods if p["metadata"]["name"] == step.get("pod")), None)
        if pod is not None and pod["metadata"].get("uid") != step.get("uid") and core_on_target(pod) \
                and pod not in outdated:
            upgrade["lastCompleted"] = timestamp(moment)
            step = {}
        elif step.get("generation") != generation and pod is not None and pod in outdated:
            step = {}  # the spec changed again (e.g. a rollback): this pod is simply outdated now
        else:
            started = parse_timestamp(step.get("since")) or moment
            if (moment - started).total_seconds() > strategy.node_ready_timeout_seconds \
                    and step.get("generation") == generation:
                node = core_node_name(spec, step["pod"])
                emqx_word = running.get(node, {}).get("version")
                reason = (f"EMQX reports {node} running {emqx_word}, not {target_version}" if emqx_word
                          else f"EMQX does not report {node} running; Kubernetes: {_pod_problem(pod)}")
                step["stalled"] = reason
    stalled = step.get("stalled")

    victim = None
    if outdated and not stalled and not step and not template_pending:
        others_healthy = all(p in healthy_cores for p in core_pods if p not in outdated)
        broken = [p for p in outdated if p not in healthy_cores]
        candidates = broken or (outdated if len(healthy_cores) == desired_cores else [])
        # Without evacuation, clients of the last replaced node get waitTakeover seconds to reconnect.
        last_completed = parse_timestamp(upgrade.get("lastCompleted"))
        taken_over = last_completed is None or moment >= last_completed + datetime.timedelta(
            seconds=strategy.evacuation.wait_takeover_seconds)
        if others_healthy and candidates and len(core_pods) == desired_cores and taken_over:
            victim = max(candidates, key=lambda p: _ordinal(p["metadata"]["name"]))
    if victim is not None:
        victim_name = victim["metadata"]["name"]
        node = core_node_name(spec, victim_name)
        info = running.get(node) or {}
        evacuation_state = view.evacuations.get(node)
        can_evacuate = (
            info and int(info.get("connections") or 0) > 0 and view.evacuations_known
            and versions.supports_evacuation(str(info.get("edition", "")),
                                             versions.parse_version(str(info.get("version", "0.0.0"))))
        )
        if can_evacuate and evacuation_state != "prohibiting":
            if evacuation_state in (None, "disabled"):
                plan.evacuate.append(node)  # otherwise draining: wait for it
        else:
            why = f"replacing core {victim_name} ({info.get('version', '?')} -> {target_version})"
            plan.delete_pods.append((victim_name, victim["metadata"]["uid"], why))
            step = {"pod": victim_name, "uid": victim["metadata"]["uid"], "since": timestamp(moment),
                    "generation": generation}
            upgrade["coresReplaced"] = int(upgrade.get("coresReplaced") or 0) + 1
    # A core restarted on its old volume resumes an evacuation (EMQX persists it): end it.
    for node, state in view.evacuations.items():
        if state and state != "disabled" and node not in plan.evacuate and node in running \
                and running[node].get("version") == target_version and not core_rollout:
            plan.stop_evacuation.append(node)

    # Cores removed by a scale-down stay listed as stopped until they leave the EMQX cluster.
    kept = {core_node_name(spec, f"{spec.name}-core-{i}") for i in range(desired_cores)}
    for listed in view.nodes or []:
        if listed.get("role") == "core" and listed.get("node_status") == "stopped" and listed["node"] not in kept:
            plan.force_leave.append(listed["node"])

    # --- replicants ---------------------------------------------------------------------------------
    desired_replicants = spec.replicant.replicas
    cores_done = (not core_rollout and len(cores_on_target) == desired_cores == len(core_pods)
                  and len(healthy_cores) == desired_cores)
    plan.cores_settled = cores_done
    if cores_done or live_deploy is None:
        replicant_image, replicant_hash = core_image, restart_hash
    else:  # hold replicants on what they run until every core runs the new template
        replicant_image = container_image(live_deploy) or core_image
        replicant_hash = _live_annotation(live_deploy, vocabulary.ANNOTATION_RESTART_HASH) or restart_hash
    deployment = own(builders.build_deployment(spec, restart_hash=replicant_hash, image=replicant_image))
    deployment["spec"]["minReadySeconds"] = strategy.evacuation.wait_takeover_seconds
    deployment["spec"]["progressDeadlineSeconds"] = max(strategy.node_ready_timeout_seconds, 1)
    if live_deploy is not None or (desired_replicants > 0 and cores_done):
        plan.objects.append(deployment)
    replicant_pods = [p for p in world.replicant_pods if not p["metadata"].get("deletionTimestamp")]
    _pace_replicants(plan, spec, view, running, replicant_pods, replicant_image, replicant_hash,
                     desired_replicants)
    ready_replicants = [p for p in replicant_pods if pod_ready(p)]
    deploy_status = (live_deploy or {}).get("status") or {}
    deploy_settled = (desired_replicants == 0 and not replicant_pods) or bool(
        live_deploy and _applied(live_deploy, deployment)
        and deploy_status.get("observedGeneration") == live_deploy["metadata"].get("generation")
        and deploy_status.get("updatedReplicas", 0) == desired_replicants
        and len(replicant_pods) == desired_replicants
    )
    replicants_on_target = [
        p for p in ready_replicants
        if (replicant := running.get(f"emqx@{(p.get('status') or {}).get('podIP')}")) is not None
        and replicant.get("version") == target_version
    ]
    deploy_stalled = next((c.get("message") for c in deploy_status.get("conditions") or []
                           if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"),
                          None)
    if deploy_stalled and cores_done and not stalled:
        not_ready = [p["metadata"]["name"] for p in replicant_pods if not pod_ready(p)]
        stalled = (f"replicant {', '.join(not_ready) or '?'} not running {target_version} in time: "
                   f"{deploy_stalled}")

    serve_from_replicants = desired_replicants > 0 and bool(ready_replicants)
    listeners = builders.build_listeners_service(spec, ports, serve_from_replicants)
    if listeners is not None:
        plan.objects.append(own(listeners))
    elif world.live("Service", f"{spec.name}-listeners"):
        plan.delete_objects.append(("Service", f"{spec.name}-listeners"))
    plan.objects.extend(own(pdb) for pdb in builders.build_pdbs(spec))

    # --- status -------------------------------------------------------------------------------------
    emqx_ok = view.nodes is not None
    node_versions = {n.get("version") for n in running.values()}
    plan.versions_mixed = len(node_versions) > 1
    extra_running = len(running) - desired_cores - desired_replicants
    cores_ready = cores_done
    replicants_ready = deploy_settled and len(replicants_on_target) == desired_replicants
    ready = (emqx_ok and cores_ready and replicants_ready and extra_running <= 0 and not violations
             and not plan.force_leave)

    plan.conditions.append(("CoresReady", cores_ready, "CoresRunning" if cores_ready else "CoresNotReady",
                            f"{len(cores_on_target)}/{desired_cores} cores running {core_image}"))
    plan.conditions.append(("ReplicantsReady", replicants_ready,
                            "ReplicantsRunning" if replicants_ready else "ReplicantsNotReady",
                            f"{len(replicants_on_target)}/{desired_replicants} replicants running {core_image}"))
    if stalled:
        plan.conditions.append(("UpgradeStalled", True, "NodeNotRunning",
                                f"{stalled}; no further node is touched: fix the cause, or roll back with "
                                "`kubectl emqx upgrade <name> --rollback`"))
    else:
        plan.conditions.append(("UpgradeStalled", False, "NotStalled", "no node is stuck"))

    rolling = current_image != core_image or bool(outdated) or (cores_done and not replicants_ready
                                                               and replicant_image != container_image(live_deploy))
    if stalled:
        upgrade_phase = "Stalled"
    elif violations:
        upgrade_phase = "Refused"
    elif rolling and not cores_done:
        upgrade_phase = "Cores"
    elif rolling or (current_image != core_image and not replicants_ready):
        upgrade_phase = "Replicants"
    else:
        upgrade_phase = "Idle"
    if step:
        upgrade["step"] = step
    else:
        upgrade.pop("step", None)
    upgrade.update({
        "phase": upgrade_phase,
        "fromImage": current_image,
        "toImage": core_image,
        "coresUpdated": len(cores_on_target),
        "replicantsUpdated": len(replicants_on_target),
    })
    if upgrade_phase == "Idle" and ready:
        upgrade = {"phase": "Idle", "lastCompleted": upgrade.get("lastCompleted"),
                   "coresReplaced": upgrade.get("coresReplaced", 0)}
        upgrade = {k: v for k, v in upgrade.items() if v is not None}

    if ready:
        plan.conditions.append(("Ready", True, "ClusterReady",
                                f"{desired_cores} cores and {desired_replicants} replicants running {spec.image}"))
        plan.conditions.append(("Progressing", False, "Settled", "nothing to do"))
    else:
        reason, message = _why_not_ready(view, violations, stalled, outdated, cores_on_target, replicants_on_target,
                                         desired_cores, desired_replicants, cores_done, extra_running, core_image,
                                         plan.force_leave)
        plan.conditions.append(("Ready", False, reason, message))
        plan.conditions.append(("Progressing", not stalled and not violations, reason, message))

    previous = old_status.get("currentImage")
    plan.status_fields = {
        "targetImage": spec.image,
        "currentImage": spec.image if ready else (previous or None),
        "coreNodesStatus": {
            "replicas": desired_cores,
            "readyReplicas": len([p for p in core_pods if pod_ready(p)]),
            "updatedReplicas": len(core_pods) - len(outdated) if sts_settled else 0,
        },
        "replicantNodesStatus": {
            "replicas": desired_replicants,
            "readyReplicas": len(ready_replicants),
            "updatedReplicas": int(deploy_status.get("updatedReplicas", 0)),
            "labelSelector": vocabulary.label_selector(spec.name, vocabulary.REPLICANT),
        },
        "upgrade": upgrade,
    }
    # previousImage: what the cluster ran before the latest image change — the target of --rollback,
    # also while that change is still rolling out or stalled.
    if previous and previous != spec.image:
        plan.status_fields["previousImage"] = previous
        if ready:
            plan.events.append(("Normal", "UpgradeCompleted", f"every node runs {spec.image} (was {previous})"))
    elif old_status.get("previousImage"):
        plan.status_fields["previousImage"] = old_status["previousImage"]
    plan.busy = not ready and not (stalled or violations)
    plan.phase = _phase(ready, old_status, spec, core_rollout, stalled, violations, desired_cores,
                        desired_replicants, emqx_ok, len(core_pods), len(replicant_pods))
    plan.message = next(m for k, _, _, m in plan.conditions if k == "Ready")
    return plan


DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def gate_open(pod: dict[str, Any]) -> bool:
    gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
    if vocabulary.READINESS_GATE not in gates:
        return True  # a pod from before the gate existed
    return any(c.get("type") == vocabulary.READINESS_GATE and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _pace_replicants(plan: Plan, spec: spec_mod.EmqxSpec, view: EmqxView, running: dict[str, dict[str, Any]],
                     pods: list[dict[str, Any]], image: str, restart_hash: str, desired: int) -> None:
    """Open readiness gates of replicants whose node runs. While old replicants remain, each new one
    is let in only after the old one the Deployment removes next (marked by deletion cost) has been
    drained through evacuation, where the edition supports it and the node has connections."""

    def node_of(pod: dict[str, Any]) -> str:
        return f"emqx@{(pod.get('status') or {}).get('podIP')}"

    def current(pod: dict[str, Any]) -> bool:
        annotations = pod["metadata"].get("annotations") or {}
        return container_image(pod) == image and annotations.get(vocabulary.ANNOTATION_RESTART_HASH) == restart_hash

    old = [p for p in pods if not current(p)]
    serving_new = [p for p in pods if current(p) and gate_open(p)]
    waiting = sorted((p for p in pods if current(p) and not gate_open(p) and node_of(p) in running),
                     key=lambda p: p["metadata"]["name"])
    for pod in waiting:
        if len(serving_new) + len(old) < max(desired, 1) or not old:
            plan.open_gates.append(pod["metadata"]["name"])
            serving_new.append(pod)
            continue
        victim = min(old, key=lambda p: (
            (p["metadata"].get("annotations") or {}).get(DELETION_COST) != "-1000",
            int((running.get(node_of(p)) or {}).get("connections") or 0), p["metadata"]["name"]))
        if (victim["metadata"].get("annotations") or {}).get(DELETION_COST) != "-1000":
            plan.mark_next_to_go.append(victim["metadata"]["name"])
        info = running.get(node_of(victim)) or {}
        drainable = (
            view.evacuations_known and int(info.get("connections") or 0) > 0
            and versions.supports_evacuation(str(info.get("edition", "")),
                                             versions.parse_version(str(info.get("version", "0.0.0"))))
        )
        state = view.evacuations.get(node_of(victim))
        if drainable and state != "prohibiting":
            if state in (None, "disabled"):
                plan.evacuate.append(node_of(victim))
        else:
            plan.open_gates.append(pod["metadata"]["name"])
        break  # one old replicant at a time


def rollout_restart_hash(spec: spec_mod.EmqxSpec) -> str:
    """What forces a pod restart: restart-needing keys, or every key where EMQX has no config API."""
    if not versions.supports_config_put(spec.image_info.version):
        return hocon.stable_hash(builders.effective_config(spec))
    return builders.compute_restart_hash(spec)


def _phase(ready: bool, old: dict[str, Any], spec: spec_mod.EmqxSpec, core_rollout: bool, stalled: Any,
           violations: list[Any], desired_cores: int, desired_replicants: int, emqx_ok: bool,
           core_count: int, replicant_count: int) -> str:
    if ready:
        return "Ready"
    if stalled:
        return "Stalled"
    if violations:
        return "UpgradeRefused"
    if not old.get("currentImage"):
        return "Creating"
    if old.get("currentImage") != spec.image:
        return "Upgrading"
    if core_count != desired_cores or replicant_count != desired_replicants:
        return "Scaling"
    if core_rollout:
        return "Restarting"
    return "Degraded" if not emqx_ok else "Progressing"


def _why_not_ready(view: EmqxView, violations: list[Any], stalled: Any, outdated: list[Any],
                   cores_on_target: list[Any], replicants_on_target: list[Any], desired_cores: int,
                   desired_replicants: int, cores_done: bool, extra_running: int, image: str,
                   departing: list[str]) -> tuple[str, str]:
    if violations:
        return "UpgradeRefused", "the image change breaks the version policy: see the UpgradeAllowed condition"
    if stalled:
        return "UpgradeStalled", str(stalled)
    if view.error:
        return view.error_reason or "EMQXUnreachable", view.error
    if outdated:
        names = ", ".join(sorted(p["metadata"]["name"] for p in outdated))
        return "RollingCores", f"replacing cores one at a time ({names} left)"
    if len(cores_on_target) < desired_cores or not cores_done:
        return "WaitingForCores", f"{len(cores_on_target)}/{desired_cores} cores running {image}"
    if len(replicants_on_target) != desired_replicants:
        return "WaitingForReplicants", f"{len(replicants_on_target)}/{desired_replicants} replicants running {image}"
    if extra_running > 0:
        return "WaitingForScaleDown", f"{extra_running} node(s) above the desired count still running"
    if departing:
        return "WaitingForScaleDown", f"removing departed cores from the EMQX cluster: {', '.join(departing)}"
    return "Progressing", "waiting for the cluster to settle"
