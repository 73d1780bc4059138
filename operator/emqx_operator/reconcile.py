"""One reconcile pass for one EMQX resource: observe -> decide -> act -> status. Idempotent.

observe.py reads (Kubernetes, then EMQX through a ready core); decide/ computes every write and
the status with pure functions; act.py makes the writes; decide.settle() folds EMQX's answers into
the status, which is written (with its Events) only when it changed.
"""

from __future__ import annotations

import datetime
import logging
import time
from functools import partial
from typing import Any

from emqx_operator import act, observe
from emqx_operator.cache import ObjectCache
from emqx_operator.cluster_api import ApiError, ClusterApi
from emqx_operator.decide import decide, settle
from emqx_operator.decide import secrets as secret_rules
from emqx_operator.decide.status import OWNED_STATUS_KEYS, Conditions, changed_key, merge_patch, without_times
from emqx_operator.emqx_clients import ClientPool
from emqx_operator.metrics import METRICS
from emqx_operator.model import EmqxView, Event
from emqx_operator.runtime import Options
from emqx_operator.scheduler import FORGET
from kubectl_emqx.domain import builders, validation
from kubectl_emqx.domain import spec as spec_mod
from kubectl_emqx.domain.vocabulary import KIND, ConditionType, Phase, utc_now

log = logging.getLogger("emqx_operator.reconcile")


BUSY_PATIENT_PASSES = 3  # busy passes in a row that change nothing before the look-again interval grows
BUSY_MAX_SECONDS = 16.0
# A cluster that waits only for pods to be created, scheduled, started or to pass their readiness
# probe is looked at again by those pods' events; without one, this late. At 200 clusters created at
# once, the 2 s look-again of such clusters was a fifth of all passes and changed nothing.
PODS_WAIT_SECONDS = BUSY_MAX_SECONDS


def busy_requeue(base: float, quiet_passes: int, resync: float) -> float:
    """When a busy resource (creating, rolling, draining) is looked at again with no event: every
    `base` seconds while its passes change something, then, after BUSY_PATIENT_PASSES passes in a
    row that changed nothing (no write, no status change, no EMQX call), twice as long each time up
    to BUSY_MAX_SECONDS. Pod and resource events still trigger a pass at once; the look-again only
    catches what has no event (EMQX's own view of its nodes, a deadline). Without the back-off,
    hundreds of clusters waiting for slow pods were each looked at every 2 s, and that load made the
    pods slower still."""
    extra = max(0, quiet_passes - BUSY_PATIENT_PASSES + 1)
    return min(base * 2 ** extra, max(base, BUSY_MAX_SECONDS), resync)


class Reconciler:
    def __init__(self, api: ClusterApi, options: Options, pool: ClientPool | None = None,
                 cache: ObjectCache | None = None) -> None:
        self.api = api
        self.cache = cache
        self.options = options
        self.pool = pool or ClientPool(options.emqx_timeout, getattr(api, "http", None))
        self._idle_passes: dict[tuple[str, str], int] = {}  # busy passes in a row that changed nothing

    def reconcile(self, namespace: str, name: str) -> float:
        started = time.monotonic()
        result = "ok"
        try:
            return self._reconcile(namespace, name)
        except ApiError as exc:
            if exc.not_found and self.api.get(KIND, namespace, name) is None:
                self.forget(namespace, name)
                return FORGET  # deleted while this pass ran
            if exc.forbidden and "being terminated" in exc.message:
                return FORGET  # its namespace is going away with everything in it
            result = "error"
            if exc.forbidden:
                self._report_forbidden(namespace, name, exc)
                return 30.0
            if exc.status in (400, 422):  # an object built from the spec is invalid (or cannot be decoded)
                self._report_refused(namespace, name, exc)
                return self.options.resync_seconds
            raise
        except Exception:
            result = "error"
            raise
        finally:
            METRICS.observe_reconcile(namespace, name, time.monotonic() - started, result)

    def forget(self, namespace: str, name: str) -> None:
        self._idle_passes.pop((namespace, name), None)
        METRICS.forget_resource(namespace, name)
        self.pool.forget(namespace, name)
        if self.cache is not None:
            self.cache.forget(namespace, name)

    def _reconcile(self, namespace: str, name: str) -> float:
        # The resource as its watch or the operator's own last status write brought it, and those of
        # the operator's Secrets (named after it) the cache does not keep; what is not at hand is read
        # at once, together.
        kept = {secret_name: self.cache.secret(namespace, secret_name) if self.cache is not None else None
                for secret_name in observe.managed_secret_names(name)}
        unread = [secret_name for secret_name, data in kept.items() if data is None]
        watched = self.cache.resource(namespace, name) if self.cache is not None else None
        body, *found = self.api.each(
            [(lambda: watched) if watched is not None else partial(self.api.get, KIND, namespace, name)]
            + [partial(observe.managed_secret, self.api, self.cache, namespace, name, secret_name)
               for secret_name in unread])
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return FORGET
        kept.update(zip(unread, found, strict=True))
        secrets = {secret_name: data for secret_name, data in kept.items() if data is not None}
        old_status = dict(body.get("status") or {})
        now = utc_now()
        spec = spec_mod.normalize(body, namespace)
        world = observe.world(self.api, spec, body, secrets, self.cache)
        valid = not validation.validate(spec)
        emqx = observe.emqx(spec, world, old_status, now, self.options, self.pool) if valid else EmqxView()
        fresh = builders.new_secret_values(spec) if secret_rules.missing(spec, world) else None
        plan = decide(spec, world, emqx, old_status, now, fresh)
        outcome = act.carry_out(self.api, self.pool, spec, world, emqx.address, plan, self.cache)
        status, events = settle(plan, outcome, old_status, now)
        wrote_status = self._write_status(body, old_status, status, events, now)
        upgrade_phase = (status.get("upgrade") or {}).get("phase")
        METRICS.set_phase(namespace, name, status.get("phase"), upgrade_phase)
        # EMQX did not answer a call: back off to the resync period rather than retry every few seconds.
        outage = any(not error.verdict for _, error in outcome.failures)
        key = (namespace, name)
        if not plan.busy or outage:
            self._idle_passes.pop(key, None)
            return self.options.resync_seconds
        quiet = 0 if (wrote_status or events or outcome.changed) else self._idle_passes.get(key, 0) + 1
        self._idle_passes[key] = quiet
        delay = busy_requeue(self.options.busy_requeue_seconds, quiet, self.options.resync_seconds)
        if plan.waits_on_pods:  # their events trigger the next pass: the look-again is a safety net
            delay = max(delay, min(PODS_WAIT_SECONDS, self.options.resync_seconds))
        return delay

    def _patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        written = self.api.patch_status(namespace, name, status)
        if self.cache is not None and written:
            self.cache.put_resource(written)  # the next pass starts from it, not from a late event

    def _write_status(self, body: dict[str, Any], old: dict[str, Any], new: dict[str, Any],
                      events: tuple[Event, ...], now: datetime.datetime) -> bool:
        changed = changed_key(old, new, now)
        meta = body["metadata"]
        if changed is not None:
            log.debug("%s/%s: status changed: %s", meta["namespace"], meta["name"], changed)
            self._patch_status(meta["namespace"], meta["name"], merge_patch(old, new, removable=OWNED_STATUS_KEYS))
        # Events come from condition changes (which change status) and from one-off actions (a node
        # replaced, a Secret recreated), which may not.
        for event in events:
            try:
                self.api.post_event(body, event.reason, event.message, event.type)
            except ApiError as exc:
                log.warning("could not post Event %s: %s", event.reason, exc)
        return changed is not None

    def _report_forbidden(self, namespace: str, name: str, exc: ApiError) -> None:
        message = (f"the operator is not allowed to {exc.method} {exc.path}: {exc.message} — grant it in the "
                   "operator's ClusterRole or Role (`kubectl emqx install` regenerates them)")
        self._report_condition(namespace, name, ConditionType.FORBIDDEN, True, "Forbidden", message, Phase.FORBIDDEN)

    def _report_refused(self, namespace: str, name: str, exc: ApiError) -> None:
        """Kubernetes refused an object built from the spec (e.g. a change to an immutable field)."""
        message = (f"Kubernetes refused {exc.method} {exc.path}: {exc.message} — revert that change in the "
                   "resource (for instance, a StatefulSet's volumeClaimTemplates cannot change after creation)")
        self._report_condition(namespace, name, ConditionType.VALID, False, "RefusedByKubernetes", message,
                               Phase.INVALID)

    def _report_condition(self, namespace: str, name: str, kind: str, value: bool, reason: str, message: str,
                          phase: str) -> None:
        log.error("%s/%s: %s", namespace, name, message)
        try:
            body = self.api.get(KIND, namespace, name)
            if body is None:
                return
            status = body.get("status") or {}
            generation = int(body["metadata"].get("generation", 1))
            conditions = Conditions(list(status.get("conditions") or []), generation, utc_now())
            conditions.set(ConditionType.READY, False, reason, message)
            conditions.set(kind, value, reason, message)
            if without_times(conditions.items) != without_times(status.get("conditions") or []):
                self._patch_status(namespace, name, {"conditions": conditions.items, "phase": str(phase),
                                                     "message": message})
                self.api.post_event(body, reason, message, "Warning")
        except ApiError as nested:
            log.error("%s/%s: cannot report the %s error either: %s", namespace, name, reason, nested)
