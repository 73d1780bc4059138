"""observe -> decide -> apply -> status, for one EMQX resource. Every pass is idempotent.

The pass reads the resource, its owned objects and pods, and EMQX's own view of the cluster
(`GET /api/v5/nodes` on a ready core); computes the desired objects with the pure builders shared
with the plugin; applies only what differs (cluster_api owns that); takes at most one step of a
rolling operation (replacing one outdated core pod); and writes status only when it changed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from emqx_operator import config_sync, observe, rollout
from emqx_operator.cluster_api import ApiError, ClusterApi
from emqx_operator.conditions import now_rfc3339, set_condition, without_times
from emqx_operator.metrics import METRICS
from emqx_operator.runtime import Options
from emqx_operator.scheduler import FORGET
from kubectl_emqx.domain import spec as spec_mod
from kubectl_emqx.domain import validation, versions, vocabulary
from kubectl_emqx.emqx.api import EmqxApiError

log = logging.getLogger("emqx_operator.reconcile")

# Fields of GET /api/v5/nodes that change on every read; refreshing them alone is not worth a write.
VOLATILE_NODE_FIELDS = frozenset({
    "uptime", "load1", "load5", "load15", "memory_total", "memory_used", "process_used", "process_available",
    "connections", "live_connections", "cluster_sessions", "max_fds",
})
STATUS_REFRESH_SECONDS = 300.0


@dataclass
class Pass:
    """What one reconcile pass learned and decided; turned into status at the end."""

    body: dict[str, Any]
    generation: int
    old_status: dict[str, Any]
    conditions: list[dict[str, Any]]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    busy: bool = False

    def condition(self, kind: str, ok: bool, reason: str, message: str) -> None:
        self.conditions = set_condition(self.conditions, kind, ok, reason, message, self.generation)

    def event_on_change(self, kind: str, ok: bool, reason: str, message: str, event_type: str = "Warning") -> None:
        """Post an Event only when the condition's status or message changes (no Event storms)."""
        old = next((c for c in self.old_status.get("conditions", []) if c.get("type") == kind), None)
        value = "True" if ok else "False"
        changed = old is None or old.get("status") != value or old.get("message") != message
        if changed and not (ok and old is None):
            self.events.append((event_type, reason, message))
        self.condition(kind, ok, reason, message)


class Reconciler:
    def __init__(self, api: ClusterApi, options: Options) -> None:
        self.api = api
        self.options = options

    def reconcile(self, namespace: str, name: str) -> float:
        started = time.monotonic()
        result = "ok"
        try:
            return self._reconcile(namespace, name)
        except ApiError as exc:
            if exc.not_found and self.api.get("EMQX", namespace, name) is None:
                observe.forget_clients(namespace, name)
                return FORGET  # deleted while this pass ran
            if exc.forbidden and "being terminated" in exc.message:
                return FORGET  # its namespace is going away with everything in it
            result = "error"
            if exc.forbidden:
                self._report_forbidden(namespace, name, exc)
                return 30.0
            if exc.status == 422:
                self._report_refused(namespace, name, exc)
                return self.options.resync_seconds
            raise
        except Exception:
            result = "error"
            raise
        finally:
            METRICS.observe_reconcile(namespace, name, time.monotonic() - started, result)

    # ------------------------------------------------------------------------------------------

    def _reconcile(self, namespace: str, name: str) -> float:
        body = self.api.get("EMQX", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            METRICS.set_phase(namespace, name, None)
            observe.forget_clients(namespace, name)
            return FORGET
        status = dict(body.get("status") or {})
        # A pass that gets as far as writing status met no 403: a Forbidden condition is stale.
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Forbidden"]
        run = Pass(body, int(body["metadata"].get("generation", 1)), status, conditions)

        spec = spec_mod.normalize(body, namespace)
        problems = validation.validate(spec)
        if problems:
            message = "; ".join(str(p) for p in problems)
            run.event_on_change("Valid", False, "InvalidSpec", message)
            run.condition("Ready", False, "InvalidSpec", "the spec is invalid: see the Valid condition")
            self._finish(run, spec, phase="Invalid", message=message, observed=None)
            return self.options.resync_seconds
        run.condition("Valid", True, "SpecValid", "the spec passes validation")

        credentials = observe.ensure_secrets(self.api, body, spec)
        world = observe.observe(self.api, spec)
        emqx_view = observe.emqx_view(spec, world, credentials, self.options)
        if emqx_view.error is not None:
            run.event_on_change("EMQXReachable", False, emqx_view.error_reason, emqx_view.error)
        elif emqx_view.nodes is not None:
            run.event_on_change("EMQXReachable", True, "APIAnswered",
                                f"EMQX answered at {emqx_view.address}", event_type="Normal")

        if emqx_view.client is not None and self._rollout_may_move(spec, run):
            observe.observe_evacuations(emqx_view)
        plan = rollout.decide(spec, world, emqx_view, status, body, run.generation)
        self._act(run, spec, world, emqx_view, plan)
        outcome = config_sync.sync(spec, emqx_view, status, run.generation,
                                   cluster_settled=plan.cores_settled and emqx_view.nodes is not None,
                                   versions_mixed=plan.versions_mixed)
        if outcome.applied:
            config_sync.refresh_live(spec, emqx_view, outcome.status)
        ok, reason, message = outcome.condition
        run.condition("ConfigApplied", ok, reason, message)
        run.events.extend(outcome.events)
        plan.status_fields["config"] = outcome.status
        run.busy = plan.busy
        for kind, cond_ok, cond_reason, cond_message in plan.conditions:
            run.condition(kind, cond_ok, cond_reason, cond_message)
        run.events.extend(plan.events)
        if not ok and plan.phase == "Ready":
            run.condition("Ready", False, reason, f"configuration not applied: {message}")
            plan.phase, plan.message = "ConfigPending", message
            plan.busy = reason not in ("ConfigRejected",)
        self._finish(run, spec, phase=plan.phase, message=plan.message, observed=(world, emqx_view, plan))
        return self.options.busy_requeue_seconds if plan.busy else self.options.resync_seconds

    def _act(self, run: Pass, spec: spec_mod.EmqxSpec, world: observe.World, view: observe.EmqxView,
             plan: rollout.Plan) -> None:
        namespace = spec.namespace
        for obj in plan.objects:
            self.api.apply(obj, existing=world.live(obj["kind"], obj["metadata"]["name"]))
        for kind, obj_name in plan.delete_objects:
            self.api.delete(kind, namespace, obj_name)
        for node in plan.force_leave:
            observe.force_leave(view, node)
            log.info("%s/%s: removed departed core %s from the EMQX cluster", namespace, spec.name, node)
        evacuation = spec.update_strategy.evacuation
        for node in plan.evacuate:
            targets = [n["node"] for n in view.nodes or [] if n.get("node_status") == "running" and n["node"] != node]
            body = {"conn_evict_rate": evacuation.conn_evict_rate, "sess_evict_rate": evacuation.sess_evict_rate,
                    "wait_takeover": evacuation.wait_takeover_seconds, "migrate_to": targets}
            try:
                if view.client is not None:
                    view.client.evacuation_start(node, body)
                    run.events.append(("Normal", "EvacuatingNode", f"draining {node} before replacing it"))
            except EmqxApiError as exc:
                log.warning("evacuation of %s failed: %s", node, exc)
        for node in plan.stop_evacuation:
            try:
                if view.client is not None:
                    view.client.evacuation_stop(node)
            except EmqxApiError as exc:
                log.warning("ending the evacuation of %s failed: %s", node, exc)
        for pod_name in plan.mark_next_to_go:
            self.api.merge_patch("Pod", namespace, pod_name,
                                 {"metadata": {"annotations": {rollout.DELETION_COST: "-1000"}}})
        for pod_name in plan.open_gates:
            self.api.strategic_patch("Pod", namespace, pod_name, {"status": {"conditions": [{
                "type": vocabulary.READINESS_GATE, "status": "True", "reason": "NodeRunning",
                "message": "EMQX reports the node running; the operator lets it take traffic",
                "lastTransitionTime": now_rfc3339()}]}}, subresource="status")
        for pod_name, uid, reason in plan.delete_pods:
            if self.api.delete("Pod", namespace, pod_name, uid=uid):
                run.events.append(("Normal", "NodeReplaced", reason))

    @staticmethod
    def _rollout_may_move(spec: spec_mod.EmqxSpec, run: Pass) -> bool:
        """Evacuation status is only worth a request while a rollout can be in progress."""
        if not versions.supports_evacuation(spec.image_info.edition, spec.image_info.version):
            return False
        ready: dict[str, Any] = next(
            (c for c in run.old_status.get("conditions") or [] if c.get("type") == "Ready"), {})
        return ready.get("status") != "True" or run.old_status.get("observedGeneration") != run.generation

    # ------------------------------------------------------------------------------------------

    def _finish(self, run: Pass, spec: spec_mod.EmqxSpec, phase: str, message: str, observed: Any) -> None:
        namespace, name = spec.namespace, spec.name
        old = run.old_status
        new: dict[str, Any] = {
            "observedGeneration": run.generation,
            "phase": phase,
            "message": message,
            "conditions": run.conditions,
        }
        if observed is not None:
            world, emqx_view, plan = observed
            new.update(plan.status_fields)
            if emqx_view.nodes is not None:
                new["emqxNodes"] = _with_pod_names(emqx_view.nodes, world)
                new["emqxNodesObservedAt"] = now_rfc3339()
        if not self._status_changed(old, new):
            METRICS.set_phase(namespace, name, phase, (new.get("upgrade") or old.get("upgrade") or {}).get("phase"))
            return
        self.api.patch_status(namespace, name, _merge_patch(old, new, removable=_OWNED_STATUS_KEYS))
        for event_type, reason, text in run.events:
            try:
                self.api.post_event(run.body, reason, text, event_type)
            except ApiError as exc:
                log.warning("could not post Event %s: %s", reason, exc)
        METRICS.set_phase(namespace, name, phase, (new.get("upgrade") or {}).get("phase"))

    @staticmethod
    def _status_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
        changed = Reconciler._changed_status_key(old, new)
        if changed:
            log.debug("status changed: %s", changed)
        return changed is not None

    @staticmethod
    def _changed_status_key(old: dict[str, Any], new: dict[str, Any]) -> str | None:
        for key, value in new.items():
            if key == "conditions":
                if without_times(value) != without_times(old.get("conditions") or []):
                    return key
            elif key == "emqxNodes":
                if _stable_nodes(value) != _stable_nodes(old.get("emqxNodes") or []):
                    return key
            elif key == "emqxNodesObservedAt":
                if _age_seconds(old.get(key)) > STATUS_REFRESH_SECONDS:
                    return key
            elif old.get(key) != value:
                return f"{key}: {old.get(key)!r} -> {value!r}"
        return next((k for k in _OWNED_STATUS_KEYS if old.get(k) is not None and k not in new), None)

    def _report_forbidden(self, namespace: str, name: str, exc: ApiError) -> None:
        message = (f"the operator is not allowed to {exc.method} {exc.path}: {exc.message} — grant it in the "
                   "operator's ClusterRole or Role (`kubectl emqx install` regenerates them)")
        self._report_condition(namespace, name, "Forbidden", True, "Forbidden", message, phase="Forbidden")

    def _report_refused(self, namespace: str, name: str, exc: ApiError) -> None:
        """Kubernetes refused an object built from the spec (e.g. a change to an immutable field)."""
        message = (f"Kubernetes refused {exc.method} {exc.path}: {exc.message} — revert that change in the "
                   "resource (for instance, a StatefulSet's volumeClaimTemplates cannot change after creation)")
        self._report_condition(namespace, name, "Valid", False, "RefusedByKubernetes", message, phase="Invalid")

    def _report_condition(self, namespace: str, name: str, kind: str, value: bool, reason: str, message: str,
                          phase: str) -> None:
        log.error("%s/%s: %s", namespace, name, message)
        try:
            body = self.api.get("EMQX", namespace, name)
            if body is None:
                return
            status = body.get("status") or {}
            generation = int(body["metadata"].get("generation", 1))
            conditions = set_condition(list(status.get("conditions") or []), "Ready", False, reason, message,
                                       generation)
            conditions = set_condition(conditions, kind, value, reason, message, generation)
            if without_times(conditions) != without_times(status.get("conditions") or []):
                self.api.patch_status(namespace, name, {"conditions": conditions, "phase": phase,
                                                        "message": message})
                self.api.post_event(body, reason, message, "Warning")
        except ApiError as nested:
            log.error("%s/%s: cannot report the %s error either: %s", namespace, name, reason, nested)


_OWNED_STATUS_KEYS = ("emqxNodes", "emqxNodesObservedAt", "upgrade", "config")


def _merge_patch(old: dict[str, Any], new: dict[str, Any], removable: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A JSON merge patch turning `old` into `new`: nested objects are diffed, so keys we dropped
    inside them are removed (null), while top-level keys are removed only when `removable`."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = _merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif before != value:
            patch[key] = value
    for key in old:
        if key not in new and (removable is None or key in removable):
            patch[key] = None
    return patch


def _with_pod_names(nodes: list[dict[str, Any]], world: observe.World) -> list[dict[str, Any]]:
    """EMQX's node entries as EMQX gives them, plus the pod each runs in (by host name or IP)."""
    by_host = {p["metadata"]["name"]: p["metadata"]["name"] for p in world.core_pods}
    by_host.update({(p.get("status") or {}).get("podIP"): p["metadata"]["name"]
                    for p in world.core_pods + world.replicant_pods if (p.get("status") or {}).get("podIP")})
    named = []
    for node in nodes:
        host = str(node.get("node", "")).partition("@")[2]
        pod = by_host.get(host) or by_host.get(host.split(".", 1)[0])
        named.append({**node, "podName": pod} if pod else dict(node))
    return named


def _stable_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in n.items() if k not in VOLATILE_NODE_FIELDS} for n in nodes]


def _age_seconds(timestamp: Any) -> float:
    import datetime

    if not timestamp:
        return float("inf")
    try:
        then = datetime.datetime.strptime(str(timestamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return float("inf")
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds()


