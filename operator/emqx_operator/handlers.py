"""kopf wiring only: watch events become "look again" triggers for the scheduler, and the owned
objects and pods they carry go into the operator's cache (cache.py), which observe reads instead of
listing them on every pass.

Only stateless event handlers (`kopf.on.event`) are used: kopf adds finalizers only for deletion
handlers and writes progress and last-handled-configuration annotations only for change-detecting
handlers (create/update/resume/delete/field), so it writes nothing to the resources; the operator
makes no writes of its own when nothing changed, and deleting a namespace or the operator never
blocks on it. The scheduler, the API client and the options come in kopf's memo (main.py).

Events are the operator's busiest path (about 25 per new cluster), so the handlers are coroutines
(no hop through kopf's thread pool and back to the loop), and kopf's diff-base, which it builds for
every event by deep-copying the whole object but reads only for change-detecting handlers, is
replaced by an empty one (`NoDiffBase`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import kopf

from emqx_operator import runtime
from emqx_operator.cache import resource_version
from kubectl_emqx.domain.vocabulary import GROUP, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY, PLURAL, VERSION

INSTANCE_LABEL = LABEL_INSTANCE
MANAGED_BY_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
# The kinds an EMQX cluster is made of, as kopf selects them (the handlers below say the same).
WATCHED: tuple[tuple[str, str] | tuple[str, str, str], ...] = (
    ("v1", "pods"), ("v1", "configmaps"), ("v1", "services"), ("apps", "v1", "statefulsets"),
    ("apps", "v1", "deployments"), ("policy", "v1", "poddisruptionbudgets"))
log = logging.getLogger("emqx_operator.handlers")
OWNED_CHANGE_DELAY = 0.2  # coalesces the burst of events one rollout step makes


class RetryForever:
    """kopf's API retry backoffs with no last attempt. kopf retries 403s and 5xx, then gives up and
    the operator exits; a watch that is Forbidden (RBAC being fixed) or an API server that is away
    must not stop the operator: the reconciler reports Forbidden conditions meanwhile."""

    def __iter__(self) -> Iterator[float]:
        yield from (1, 1, 2, 3, 5, 8, 13, 21)
        yield from itertools.repeat(30)


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf compares an object's "essence" with the last handled one to find creations and updates
    for change-detecting handlers, and builds that essence (a deep copy of the object) for every
    event whatever the handlers. This operator has event handlers only: nothing is ever compared
    or stored, so the essence is empty."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # Events are posted by the reconciler, with reasons of its own
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = RetryForever()
    settings.scanning.disabled = True
    for selector in WATCHED:  # server-side: only what the operator manages is sent
        settings.watching.label_selectors[selector] = MANAGED_BY_SELECTOR
    scheduler = runtime.state_of(memo).scheduler
    scheduler.bind()  # before any handler thread can trigger
    task = asyncio.create_task(scheduler.run())
    task.add_done_callback(_reconcile_loop_ended)
    memo["scheduler_task"] = task


def _reconcile_loop_ended(task: asyncio.Task[None]) -> None:
    """The reconcile loop never returns: an exception that ends it is logged at once (the liveness
    probe then fails within a minute, and the kubelet restarts the operator)."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("the reconcile loop stopped", exc_info=task.exception())


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> Any:
    """The credentials the operator's own client uses (kubeconn.py): one interpretation for both."""
    return runtime.state_of(memo).login


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("scheduler_task")
    if task is not None:
        task.cancel()


def _trigger(memo: kopf.Memo, namespace: str, name: str, delay: float = 0.0) -> None:
    state = runtime.state_of(memo)
    if state.options.manages(namespace):
        state.scheduler.trigger(namespace, name, delay)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def emqx_changed(body: kopf.Body, memo: kopf.Memo, event: Any = None, **_: Any) -> None:
    """The resource was seen first, changed (spec, labels, annotations) or is going: look at it. A
    change of its status alone is no reason: that is the operator's own write, and a pass that leaves
    work to do asks to be looked at again itself."""
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    cache = runtime.state_of(memo).cache
    changed = True
    deleted = (event or {}).get("type") == "DELETED"
    if cache is not None:
        raw = (event or {}).get("object") or dict(body)
        if deleted:
            cache.resource_deleted(namespace, name, resource_version(raw))
        else:
            cache.put_resource(dict(raw))  # the pass reads this copy instead of a GET
        marker = json.dumps([body.metadata.get("generation"), dict(body.metadata.labels),
                             dict(body.metadata.annotations)], sort_keys=True)
        changed = cache.resource_seen(namespace, name, marker)
    going = deleted or bool(body.metadata.get("deletionTimestamp"))
    if changed or going:
        _trigger(memo, namespace, name)


_OWNED: dict[str, Any] = {INSTANCE_LABEL: kopf.PRESENT}  # selected server-side by managed-by as well


@kopf.on.event("v1", "pods", id="owned-pods", labels=_OWNED)
@kopf.on.event("v1", "configmaps", id="owned-configmaps", labels=_OWNED)
@kopf.on.event("v1", "services", id="owned-services", labels=_OWNED)
@kopf.on.event("apps", "v1", "statefulsets", id="owned-statefulsets", labels=_OWNED)
@kopf.on.event("apps", "v1", "deployments", id="owned-deployments", labels=_OWNED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", id="owned-poddisruptionbudgets", labels=_OWNED)
async def owned_changed(body: kopf.Body, memo: kopf.Memo, event: Any = None, **_: Any) -> None:
    """A pod or owned object changed: keep its copy, and look at its cluster again (a pod turning
    Ready is the next step of a rollout; a deleted Service is put back at once) unless nothing the
    operator reads changed (a budget's status, the echo of the operator's own apply)."""
    state = runtime.state_of(memo)
    if (state.cache is not None and event is not None
            and not state.cache.event(event.get("type"), dict(event.get("object") or {}))):
        return
    instance = body.metadata.labels.get(INSTANCE_LABEL)
    if instance:
        _trigger(memo, body.metadata.namespace or "", instance, delay=OWNED_CHANGE_DELAY)


@kopf.on.probe(id="scheduler_idle_seconds")
def scheduler_alive(memo: kopf.Memo, **_: Any) -> float:
    idle = time.monotonic() - runtime.state_of(memo).scheduler.last_loop
    if idle > 60:
        raise kopf.PermanentError(f"the reconcile loop has not run for {idle:.0f}s")
    return round(idle, 1)
