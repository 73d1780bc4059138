"""act: carry a Plan out. The one module that writes to Kubernetes or to EMQX.

Order: a dry run of every owned object the pass creates or changes that Kubernetes could refuse
although the spec passed validation (it validates them all before the first write, so a spec it
refuses writes nothing), then Secrets, owned objects
(server-side apply, skipped when the live object carries the same hash), deletions of objects no
longer wanted, EMQX calls, pod patches, and last pod deletions (a deletion that depends on an EMQX
call happens only when that call succeeded). The outcome of EMQX calls goes back to
decide.settle(); Kubernetes errors propagate to the reconciler.

Requests that do not depend on each other go out together (`ClusterApi.each`): the dry runs; the
Secrets, ConfigMap, Services and budgets; then the workloads, whose pods need the ConfigMap and
Secrets. A new cluster's first pass thus waits for 3 round trips of writes instead of 18.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from emqx_operator.cache import ObjectCache
from emqx_operator.cluster_api import ApiError, ClusterApi
from emqx_operator.emqx_clients import ClientPool
from emqx_operator.model import (
    CallError,
    ConfigPut,
    EmqxCall,
    EvacuationStart,
    EvacuationStop,
    ForceLeave,
    Obj,
    Outcome,
    Plan,
    RebalanceStart,
    RebalanceStop,
    SecretWrite,
    World,
)
from emqx_operator.observe import access_for, decoded
from kubectl_emqx.domain import builders
from kubectl_emqx.domain.spec import EmqxSpec
from kubectl_emqx.emqx.api import EmqxApi, EmqxApiError

log = logging.getLogger("emqx_operator.act")


def carry_out(api: ClusterApi, pool: ClientPool, spec: EmqxSpec, world: World, address: str, plan: Plan,
              cache: ObjectCache | None = None) -> Outcome:
    namespace = spec.namespace
    remember = cache.put if cache is not None else (lambda obj: None)
    validate_first(api, spec, world, plan)
    changed = bool(plan.secrets or plan.delete or plan.emqx_calls or plan.pod_patches or plan.pod_deletions)
    first, then = waves(plan.apply)
    answers = api.each([partial(_write_secret, api, write) for write in plan.secrets]
                       + [partial(_apply, api, world, obj, False) for obj in first])
    for write, answer in zip(plan.secrets, answers, strict=False):
        if answer is not None and cache is not None:
            cache.put_secret(namespace, write.body["metadata"]["name"], spec.name, decoded(answer))
    changed = _kept(answers[len(plan.secrets):], remember) or changed
    changed = _kept(api.each([partial(_apply, api, world, obj, False) for obj in then]), remember) or changed
    for kind, name in plan.delete:
        api.delete(kind, namespace, name)
        if cache is not None:
            cache.delete(kind, namespace, name)

    failures: list[tuple[EmqxCall, CallError]] = []
    client = pool.client(access_for(spec, world, address)) if address and plan.emqx_calls else None
    for call in plan.emqx_calls:
        error = _call(client, call)
        if error is not None:
            log.warning("%s/%s: %s failed: HTTP %s %s %s", namespace, spec.name, type(call).__name__,
                        error.status, error.code, error.message)
            failures.append((call, error))
        else:
            log.info("%s/%s: %s", namespace, spec.name, _describe(call))

    for patch in plan.pod_patches:
        try:
            if patch.strategic:
                remember(api.strategic_patch("Pod", namespace, patch.name, dict(patch.patch),
                                             subresource=patch.subresource))
            else:
                remember(api.merge_patch("Pod", namespace, patch.name, dict(patch.patch),
                                         subresource=patch.subresource))
        except ApiError as exc:
            if not exc.not_found:  # the pod went away meanwhile: the next pass looks again
                raise
    failed = [call for call, _ in failures]
    deleted = []
    for deletion in plan.pod_deletions:
        if deletion.after is not None and deletion.after in failed:
            continue
        answer = api.delete("Pod", namespace, deletion.name, uid=deletion.uid)
        if answer is not None:
            log.info("%s/%s: %s", namespace, spec.name, deletion.reason)
            deleted.append(deletion.name)
            if answer.get("kind") == "Pod":
                remember(answer)  # terminating now: the next pass must not pick it again
    return Outcome(failures=tuple(failures), deleted_pods=tuple(deleted), changed=changed)


def _kept(answers: Sequence[dict[str, Any] | None], remember: Callable[[dict[str, Any]], Any]) -> bool:
    """Put what was written into the watch copy; whether anything was."""
    written = [answer for answer in answers if answer is not None]
    for obj in written:
        remember(obj)
    return bool(written)


def validate_first(api: ClusterApi, spec: EmqxSpec, world: World, plan: Plan) -> None:
    """Have the API server validate (dryRun=All) every owned object this pass would apply that it
    could refuse, before writing anything: what the CRD keeps opaque (pod labels, probes, volumes,
    Service templates...) can still be refused, and a refusal must not leave half a cluster behind
    (Secrets and a ConfigMap without their StatefulSet). The ApiError (422) goes to the reconciler,
    which reports it as Valid=False. An object already as applied is skipped, so a settled pass
    costs nothing. Not dry-run: the Secrets (written first, so their own refusal stops the pass
    before anything else is written; they hold generated values) and what `builders.refusable` says
    is built from validated fields only (the ConfigMap, the headless Service, the budgets): a new
    cluster of 3 cores and 3 replicants costs 4 dry runs instead of 8."""
    checks: list[Callable[[], Any]] = [partial(_apply, api, world, obj, True) for obj in plan.apply
                                       if builders.refusable(spec, obj)]
    api.each(checks)


WORKLOADS = ("StatefulSet", "Deployment")


def waves(objects: Sequence[Obj]) -> tuple[list[Obj], list[Obj]]:
    """The owned objects in the two groups that are applied together, in order: everything but the
    workloads (with the Secrets), then the workloads (their pods mount the ConfigMap and read the
    Secrets)."""
    first = [obj for obj in objects if obj["kind"] not in WORKLOADS]
    then = [obj for obj in objects if obj["kind"] in WORKLOADS]
    return first, then


def _write_secret(api: ClusterApi, write: SecretWrite) -> dict[str, Any] | None:
    """The Secret the API server returned; None when it existed already (created meanwhile)."""
    try:
        if write.create:
            return api.create(dict(write.body))
        return api.apply(dict(write.body))
    except ApiError as exc:
        if not (write.create and exc.conflict):  # created meanwhile (by an earlier pass): nothing to do
            raise
        return None


def _apply(api: ClusterApi, world: World, obj: Obj, dry_run: bool) -> dict[str, Any] | None:
    live = world.live(obj["kind"], obj["metadata"]["name"])
    return api.apply(dict(obj), existing=dict(live) if live is not None else None, dry_run=dry_run)


def _describe(call: EmqxCall) -> str:
    if isinstance(call, ForceLeave):
        return f"removed departed core {call.node} from the EMQX cluster"
    if isinstance(call, EvacuationStart):
        return f"evacuating {call.node} to {', '.join(call.body.get('migrate_to') or [])}"
    if isinstance(call, EvacuationStop):
        return f"ended the evacuation of {call.node}"
    if isinstance(call, RebalanceStart):
        return f"started a rebalance coordinated by {call.coordinator} over {', '.join(call.body.get('nodes') or [])}"
    if isinstance(call, RebalanceStop):
        return f"stopped the rebalance coordinated by {call.coordinator}"
    return f"loaded the configuration ({call.mode} mode, for {call.target})"


def _call(client: EmqxApi | None, call: EmqxCall) -> CallError | None:
    if client is None:
        return CallError(None, "NoAddress", "no ready core to send the request to")
    try:
        if isinstance(call, ForceLeave):
            client.force_leave(call.node)
        elif isinstance(call, EvacuationStart):
            client.evacuation_start(call.node, dict(call.body))
        elif isinstance(call, EvacuationStop):
            client.evacuation_stop(call.node)
        elif isinstance(call, ConfigPut):
            client.put_config_hocon(call.text, mode=call.mode, ignore_readonly=call.ignore_readonly)
        elif isinstance(call, RebalanceStart):
            client.rebalance_start(call.coordinator, dict(call.body))
        elif isinstance(call, RebalanceStop):
            client.rebalance_stop(call.coordinator)
    except EmqxApiError as exc:
        return CallError(exc.status, exc.code, exc.message)
    return None
