"""The data one reconcile pass works on, as frozen values.

observe.py produces `World` (Kubernetes as it is) and `EmqxView` (EMQX's own answers, as data: no
client inside); decide/ turns them into a `Plan` (every write the pass wants, and the status to
write); act.py carries the plan out and returns an `Outcome`; decide.settle() folds the outcome of
EMQX calls into the status. Dicts inside these values are read-only by convention: decide copies
before it changes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubectl_emqx.domain.vocabulary import CONTAINER_NAME

Obj = Mapping[str, Any]


# What observe found ------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The resource, its owned objects and pods, and the Secrets it reads, as Kubernetes has them."""

    resource: Obj
    objects: Mapping[tuple[str, str], Obj] = field(default_factory=dict)
    core_pods: tuple[Obj, ...] = ()  # by ordinal
    replicant_pods: tuple[Obj, ...] = ()  # by name
    # Managed Secrets by name -> decoded data (absent when the Secret does not exist).
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Secrets named by bootstrapAPIKeys[].secretRef: (secret, key) -> value, None when missing.
    referenced: Mapping[tuple[str, str], str | None] = field(default_factory=dict)

    def live(self, kind: str, name: str) -> Obj | None:
        return self.objects.get((kind, name))

    def first(self, kind: str) -> Obj | None:
        return next((obj for (k, _), obj in self.objects.items() if k == kind), None)

    @property
    def generation(self) -> int:
        return int((self.resource.get("metadata") or {}).get("generation") or 1)


@dataclass(frozen=True)
class EmqxError:
    reason: str  # EMQXUnreachable | EMQXUnauthorized | EMQXAPIError
    message: str
    status: int | None = None


@dataclass(frozen=True)
class EmqxView:
    """What EMQX said during this pass. `nodes` None: nobody answered (see `error`)."""

    nodes: tuple[Obj, ...] | None = None
    error: EmqxError | None = None
    address: str = ""  # the base URL that answered (act sends its calls there)
    # node -> evacuation state from GET /load_rebalance/global_status; None when not read this pass
    # or when the edition has no such API.
    evacuations: Mapping[str, str] | None = None
    # rebalances[] of GET /load_rebalance/global_status (EMQX's entries as given) while spec.rebalance
    # is pending or running; None when not read this pass.
    rebalances: tuple[Obj, ...] | None = None
    # GET /api/v5/configs when read this pass (HOCON, or JSON before 5.1.1), else None.
    live_config: str | None = None
    live_config_format: str = "hocon"  # "hocon" or "json"

    @property
    def answered(self) -> bool:
        return self.nodes is not None

    def running(self) -> dict[str, Obj]:
        return {str(n.get("node")): n for n in self.nodes or () if n.get("node_status") == "running"}

    def evacuation_state(self, node: str) -> str:
        return (self.evacuations or {}).get(node, "disabled")


# What decide wants ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretWrite:
    """Create (`create=True`) or update a managed Secret to exactly `body`."""

    body: Obj
    create: bool


@dataclass(frozen=True)
class ForceLeave:
    node: str


@dataclass(frozen=True)
class EvacuationStart:
    node: str
    body: Obj


@dataclass(frozen=True)
class EvacuationStop:
    node: str


@dataclass(frozen=True)
class ConfigPut:
    text: str
    mode: str  # merge | replace
    ignore_readonly: bool | None
    hash: str  # of the body and mode: a body EMQX refused is never sent to the same release again
    target: str  # "<edition> <version>" the body is meant for (the rejected memory keys on it)


@dataclass(frozen=True)
class RebalanceStart:
    coordinator: str  # the node that runs the rebalance (POST /load_rebalance/{coordinator}/start)
    body: Obj


@dataclass(frozen=True)
class RebalanceStop:
    coordinator: str


EmqxCall = ForceLeave | EvacuationStart | EvacuationStop | ConfigPut | RebalanceStart | RebalanceStop


@dataclass(frozen=True)
class PodPatch:
    name: str
    patch: Obj
    subresource: str = ""
    strategic: bool = False  # strategic merge patch (pod conditions merge by type); else JSON merge


@dataclass(frozen=True)
class PodDeletion:
    name: str
    uid: str
    reason: str  # the Event message (reason NodeReplaced)
    after: EmqxCall | None = None  # delete only when this call succeeded in the same pass


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    secrets: tuple[SecretWrite, ...] = ()
    apply: tuple[Obj, ...] = ()  # server-side apply, skipped when the live object carries the same hash
    delete: tuple[tuple[str, str], ...] = ()  # (kind, name) of owned objects no longer wanted
    emqx_calls: tuple[EmqxCall, ...] = ()
    pod_patches: tuple[PodPatch, ...] = ()
    pod_deletions: tuple[PodDeletion, ...] = ()
    status: Mapping[str, Any] = field(default_factory=dict)  # the whole status, assuming every call succeeds
    events: tuple[Event, ...] = ()
    busy: bool = False  # something is in motion: look again soon
    # ... and all of it is pods a controller or the kubelet has still to move: their events say when
    waits_on_pods: bool = False


# What act achieved ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallError:
    status: int | None  # HTTP status; None when EMQX did not answer
    code: str
    message: str

    @property
    def verdict(self) -> bool:
        """EMQX judged the request: it answered with an error of its handler (4xx, and the 500s its
        config API gives for bodies it cannot take, with or without a body depending on the release).
        No answer, or a gateway/unavailable status, is an outage."""
        return self.status is not None and self.status not in (502, 503, 504)


@dataclass(frozen=True)
class Outcome:
    failures: tuple[tuple[EmqxCall, CallError], ...] = ()  # EMQX calls that failed, with EMQX's answer
    deleted_pods: tuple[str, ...] = ()
    changed: bool = False  # something was written to Kubernetes or asked of EMQX

    def error(self, call: EmqxCall) -> CallError | None:
        return next((error for failed, error in self.failures if failed == call), None)


def container_of(pod_or_template: Obj) -> Obj | None:
    """The emqx container of a pod, pod template or workload."""
    spec = pod_or_template.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or spec
    return next((c for c in pod_spec.get("containers") or [] if c.get("name") == CONTAINER_NAME), None)
