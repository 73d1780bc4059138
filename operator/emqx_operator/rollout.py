"""decide(): from the observed world to the desired objects and the next step — pure, no I/O.

Rolling operations (image upgrades, restarts for restart-needing config, any template change) use
one mechanism: the core StatefulSet has `OnDelete` updates, so changing its template restarts
nothing; each pass replaces at most one outdated core pod, and only when every core is back, Ready
and reported `running` by EMQX. Replicants follow only once no core is outdated. Progress is the
pods' revisions themselves, so a restarted operator continues exactly where the last one stopped
and replaces every node once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emqx_operator.observe import Credentials, EmqxView, World, pod_ready
from kubectl_emqx import builders, hocon, versions
from kubectl_emqx import spec as spec_mod

REVISION_LABEL = "controller-revision-hash"


@dataclass
class Plan:
    objects: list[dict[str, Any]] = field(default_factory=list)
    delete_objects: list[tuple[str, str]] = field(default_factory=list)
    delete_pods: list[tuple[str, str, str]] = field(default_factory=list)  # (name, uid, why)
    force_leave: list[str] = field(default_factory=list)
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)
    status_fields: dict[str, Any] = field(default_factory=dict)
    phase: str = "Creating"
    message: str = ""
    busy: bool = True


def _core_node_name(spec: spec_mod.EmqxSpec, pod_name: str) -> str:
    return f"emqx@{pod_name}.{spec.name}-headless.{spec.namespace}.svc.{spec.cluster_domain}"


def _running(nodes: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {n["node"]: n for n in nodes or [] if n.get("node_status") == "running"}


def _target_version(spec: spec_mod.EmqxSpec) -> str:
    return versions.format_version(spec.image_info.version)


def decide(spec: spec_mod.EmqxSpec, world: World, view: EmqxView, creds: Credentials,
           old_status: dict[str, Any], owner: dict[str, Any]) -> Plan:
    plan = Plan()

    def own(obj: dict[str, Any]) -> dict[str, Any]:
        return builders.with_owner(obj, owner)

    ports = hocon.listener_ports(builders.effective_config(spec))
    restart_hash = builders.compute_restart_hash(spec)
    running = _running(view.nodes)
    target_version = _target_version(spec)

    plan.objects.append(own(builders.build_configmap(spec)))
    plan.objects.append(own(builders.build_headless_service(spec)))
    statefulset = own(builders.build_statefulset(spec, restart_hash=restart_hash))
    plan.objects.append(statefulset)
    dashboard = builders.build_dashboard_service(spec)
    if dashboard is not None:
        plan.objects.append(own(dashboard))
    elif world.live("Service", f"{spec.name}-dashboard"):
        plan.delete_objects.append(("Service", f"{spec.name}-dashboard"))

    # --- cores -------------------------------------------------------------------------------
    desired_cores = spec.core.replicas
    live_sts = world.statefulset
    sts_status = (live_sts or {}).get("status") or {}
    sts_settled = bool(
        live_sts
        and sts_status.get("observedGeneration") == live_sts["metadata"].get("generation")
        and sts_status.get("updateRevision")
    )
    update_revision = sts_status.get("updateRevision")
    core_pods = [p for p in world.core_pods if not p["metadata"].get("deletionTimestamp")]
    outdated = [p for p in core_pods if sts_settled
                and (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != update_revision]
    ready_cores = [p for p in core_pods if pod_ready(p)]
    cores_on_target = [
        p for p in ready_cores
        if (node := running.get(_core_node_name(spec, p["metadata"]["name"]))) is not None
        and node.get("version") == target_version
    ]
    template_pending = live_sts is not None and _template_changed(live_sts, statefulset)
    cores_healthy = (
        len(core_pods) == desired_cores and len(ready_cores) == desired_cores
        and all(_core_node_name(spec, p["metadata"]["name"]) in running for p in ready_cores)
    )
    core_rollout = bool(outdated) or template_pending or not sts_settled
    if outdated and cores_healthy and not template_pending:
        victim = max(outdated, key=lambda p: _ordinal(p["metadata"]["name"]))
        why = (f"replacing core {victim['metadata']['name']} to apply the new pod template "
               f"(image {spec.image})")
        plan.delete_pods.append((victim["metadata"]["name"], victim["metadata"]["uid"], why))

    # Cores removed by a scale-down stay listed as stopped until they leave the EMQX cluster.
    kept = {_core_node_name(spec, f"{spec.name}-core-{i}") for i in range(desired_cores)}
    for node in view.nodes or []:
        if node.get("role") == "core" and node.get("node_status") == "stopped" and node["node"] not in kept:
            plan.force_leave.append(node["node"])

    # --- replicants --------------------------------------------------------------------------
    desired_replicants = spec.replicant.replicas
    live_deploy = world.deployment
    replicant_pods = [p for p in world.replicant_pods if not p["metadata"].get("deletionTimestamp")]
    ready_replicants = [p for p in replicant_pods if pod_ready(p)]
    cores_done = cores_healthy and not core_rollout and len(cores_on_target) == desired_cores
    deployment = own(builders.build_deployment(spec, restart_hash=restart_hash))
    if live_deploy is None:
        if desired_replicants > 0 and cores_done:
            plan.objects.append(deployment)
    elif cores_done or not core_rollout:
        plan.objects.append(deployment)
    deploy_status = (live_deploy or {}).get("status") or {}
    deploy_settled = (
        desired_replicants == 0 and not replicant_pods
    ) or bool(
        live_deploy
        and deploy_status.get("observedGeneration") == live_deploy["metadata"].get("generation")
        and deploy_status.get("updatedReplicas", 0) == desired_replicants
        and len(replicant_pods) == desired_replicants
        and not _template_changed(live_deploy, deployment)
    )
    replicants_running = [
        p for p in ready_replicants
        if (node := running.get(f"emqx@{(p.get('status') or {}).get('podIP')}")) is not None
        and node.get("version") == target_version
    ]

    serve_from_replicants = desired_replicants > 0 and bool(ready_replicants)
    listeners = builders.build_listeners_service(spec, ports, serve_from_replicants)
    if listeners is not None:
        plan.objects.append(own(listeners))
    elif world.live("Service", f"{spec.name}-listeners"):
        plan.delete_objects.append(("Service", f"{spec.name}-listeners"))
    plan.objects.extend(own(pdb) for pdb in builders.build_pdbs(spec))

    # --- status ------------------------------------------------------------------------------
    emqx_ok = view.nodes is not None
    extra_running = len(running) - desired_cores - desired_replicants
    cores_ready = cores_healthy and not core_rollout and len(cores_on_target) == desired_cores
    replicants_ready = deploy_settled and len(replicants_running) == desired_replicants
    ready = emqx_ok and cores_ready and replicants_ready and extra_running <= 0

    plan.conditions.append(("CoresReady", cores_ready, "CoresRunning" if cores_ready else "CoresNotReady",
                            f"{len(cores_on_target)}/{desired_cores} cores running {spec.image}"))
    plan.conditions.append(("ReplicantsReady", replicants_ready,
                            "ReplicantsRunning" if replicants_ready else "ReplicantsNotReady",
                            f"{len(replicants_running)}/{desired_replicants} replicants running {spec.image}"))
    if ready:
        plan.conditions.append(("Ready", True, "ClusterReady",
                                f"{desired_cores} cores and {desired_replicants} replicants running {spec.image}"))
        plan.conditions.append(("Progressing", False, "Settled", "nothing to do"))
    else:
        reason, message = _why_not_ready(spec, view, core_rollout, outdated, cores_on_target, replicants_running,
                                         desired_cores, desired_replicants, cores_done, extra_running)
        plan.conditions.append(("Ready", False, reason, message))
        plan.conditions.append(("Progressing", True, reason, message))

    previous = old_status.get("currentImage")
    plan.status_fields = {
        "targetImage": spec.image,
        "currentImage": spec.image if ready else (previous or None),
        "coreNodesStatus": {
            "replicas": desired_cores,
            "readyReplicas": len(ready_cores),
            "updatedReplicas": len(core_pods) - len(outdated) if sts_settled else 0,
        },
        "replicantNodesStatus": {
            "replicas": desired_replicants,
            "readyReplicas": len(ready_replicants),
            "updatedReplicas": int(deploy_status.get("updatedReplicas", 0)),
            "labelSelector": f"apps.emqx.io/instance={spec.name},apps.emqx.io/db-role=replicant",
        },
    }
    if previous and previous != spec.image:
        plan.status_fields["previousImage"] = previous
    elif old_status.get("previousImage"):
        plan.status_fields["previousImage"] = old_status["previousImage"]
    plan.busy = not ready
    plan.phase = _phase(ready, old_status, spec, core_rollout, desired_cores, desired_replicants, emqx_ok,
                        len(core_pods), len(replicant_pods))
    plan.message = next(m for k, ok, _, m in plan.conditions if k == "Ready")
    return plan


def _phase(ready: bool, old: dict[str, Any], spec: spec_mod.EmqxSpec, core_rollout: bool, desired_cores: int,
           desired_replicants: int, emqx_ok: bool, core_count: int, replicant_count: int) -> str:
    if ready:
        return "Ready"
    if not old.get("currentImage"):
        return "Creating"
    if old.get("currentImage") != spec.image:
        return "Upgrading"
    if core_count != desired_cores or replicant_count != desired_replicants:
        return "Scaling"
    if core_rollout:
        return "Restarting"
    return "Degraded" if not emqx_ok else "Progressing"


def _why_not_ready(spec: spec_mod.EmqxSpec, view: EmqxView, core_rollout: bool, outdated: list[Any],
                   cores_on_target: list[Any], replicants_running: list[Any], desired_cores: int,
                   desired_replicants: int, cores_done: bool, extra_running: int) -> tuple[str, str]:
    if view.error:
        return view.error_reason or "EMQXUnreachable", view.error
    if outdated:
        names = ", ".join(p["metadata"]["name"] for p in outdated)
        return "RollingCores", f"replacing outdated cores one at a time ({names} left)"
    if len(cores_on_target) < desired_cores:
        return "WaitingForCores", f"{len(cores_on_target)}/{desired_cores} cores running {spec.image}"
    if not cores_done or core_rollout:
        return "WaitingForCores", "waiting for the core StatefulSet to settle"
    if len(replicants_running) != desired_replicants:
        return "WaitingForReplicants", (f"{len(replicants_running)}/{desired_replicants} replicants running "
                                        f"{spec.image}")
    if extra_running > 0:
        return "WaitingForScaleDown", f"{extra_running} node(s) above the desired count still running"
    return "Progressing", "waiting for the cluster to settle"


def _template_changed(live: dict[str, Any], desired: dict[str, Any]) -> bool:
    from emqx_operator.cluster_api import HASH_ANNOTATION, object_hash

    return (live["metadata"].get("annotations") or {}).get(HASH_ANNOTATION) != object_hash(desired)


def _ordinal(pod_name: str) -> int:
    tail = pod_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1
