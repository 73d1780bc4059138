"""One status model built from the EMQX resource (and its Events).

Every read verb builds these dataclasses once; render.py turns the same objects into text, JSON
or YAML, so `-o json` never lacks what the text shows. `progress()` is the one judgement of
"is the change done, still going, or failed" used by `--wait`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from kubectl_emqx.domain import vocabulary
from kubectl_emqx.domain.versions import default_replicants
from kubectl_emqx.domain.vocabulary import FAILED_PHASES, ConditionType, Phase

RECENT_EVENTS = 10
PENDING_PHASE = Phase.PENDING  # no status yet: the operator has not picked the resource up



@dataclass(frozen=True)
class NodeCounts:
    desired: int
    ready: int
    updated: int | None = None


@dataclass(frozen=True)
class Node:
    node: str  # the Erlang node name as EMQX reports it
    pod: str | None
    role: str
    status: str
    version: str | None
    otp_release: str | None
    uptime_seconds: int | None
    connections: int | None


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str | None
    observed_generation: int | None


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str
    count: int
    last_seen: str | None


@dataclass(frozen=True)
class ClusterSummary:
    """One row of `list`."""

    name: str
    namespace: str
    image: str | None
    phase: str
    cores: NodeCounts
    replicants: NodeCounts
    created: str | None


@dataclass(frozen=True)
class PendingNode:
    """A pod the operator still waits on (status.pendingNodes), in Kubernetes'/EMQX's words."""

    pod: str
    role: str
    waiting_for: str
    since: str | None  # RFC 3339: since when it waits for this


@dataclass(frozen=True)
class InFlight:
    """The node a rollout is replacing or draining now, and when the operator gives up on it."""

    pod: str
    action: str  # "replaced" | "evacuated"
    since: str | None
    gives_up_at: str | None  # since + spec.updateStrategy.nodeReadyTimeoutSeconds
    timeout_seconds: int


@dataclass(frozen=True)
class ClusterStatus:
    """Everything `status` shows."""

    name: str
    namespace: str
    image: str | None  # what the spec asks for
    current_image: str | None
    target_image: str | None
    previous_image: str | None
    phase: str
    message: str
    generation: int | None
    observed_generation: int | None
    cores: NodeCounts
    replicants: NodeCounts
    conditions: list[Condition]
    nodes: list[Node]
    events: list[Event] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # sources that could not be read
    created: str | None = None
    pending: list[PendingNode] = field(default_factory=list)
    in_flight: InFlight | None = None
    recovery: str | None = None  # the command that gets a failed change going again, when one does


@dataclass(frozen=True)
class Progress:
    """Where a change stands, as `--wait` sees it. `verdict` names what ended a failed wait: the
    condition type (e.g. UpgradeStalled) or "phase"."""

    state: Literal["done", "progressing", "failed"]
    reason: str
    nodes_on_target: int
    nodes_desired: int
    verdict: str = ""


# --- building ---------------------------------------------------------------------------------


def summarize(body: dict[str, Any]) -> ClusterSummary:
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    cores, replicants = _node_counts(body)
    return ClusterSummary(
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace", ""),
        image=desired_image(body),
        phase=status.get("phase") or PENDING_PHASE,
        cores=cores,
        replicants=replicants,
        created=metadata.get("creationTimestamp"),
    )


def cluster_status(
    body: dict[str, Any], events: list[dict[str, Any]] | None = None, errors: list[str] | None = None
) -> ClusterStatus:
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    cores, replicants = _node_counts(body)
    phase = status.get("phase") or PENDING_PHASE
    message = status.get("message") or ""
    if not status:
        message = "the operator has not reported on this resource yet"
    return ClusterStatus(
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace", ""),
        image=desired_image(body),
        current_image=status.get("currentImage"),
        target_image=status.get("targetImage"),
        previous_image=status.get("previousImage"),
        phase=phase,
        message=message,
        generation=metadata.get("generation"),
        observed_generation=status.get("observedGeneration"),
        cores=cores,
        replicants=replicants,
        conditions=[_condition(item) for item in status.get("conditions") or []],
        nodes=sorted((_node(item, _age_seconds(status.get("emqxNodesObservedAt")))
                      for item in status.get("emqxNodes") or []), key=_node_order),
        events=recent_events(events or []),
        errors=list(errors or []),
        created=metadata.get("creationTimestamp"),
        pending=pending_nodes(body),
        in_flight=in_flight(body),
        recovery=recovery_command(body, progress(body, None)) if status else None,
    )


def pending_nodes(body: dict[str, Any]) -> list[PendingNode]:
    """status.pendingNodes, cores first; empty once Ready (the operator drops it then)."""
    items = [
        PendingNode(
            pod=str(item.get("pod", "")),
            role=str(item.get("role", "")),
            waiting_for=str(item.get("waitingFor", "")),
            since=item.get("since"),
        )
        for item in _field(body, "status", "pendingNodes") or []
        if isinstance(item, Mapping)
    ]
    return sorted(items, key=lambda item: (item.role != "core", item.pod))


DEFAULT_NODE_READY_TIMEOUT = 600  # spec.py's UpdateStrategy.node_ready_timeout_seconds


def node_ready_timeout(body: dict[str, Any]) -> int:
    """spec.updateStrategy.nodeReadyTimeoutSeconds, read as spec.py reads it."""
    value = _field(body, "spec", "updateStrategy", "nodeReadyTimeoutSeconds")
    if isinstance(value, bool) or value is None:
        return DEFAULT_NODE_READY_TIMEOUT
    try:
        return int(value)
    except (TypeError, ValueError):
        return DEFAULT_NODE_READY_TIMEOUT


def in_flight(body: dict[str, Any]) -> InFlight | None:
    """The core being replaced (status.upgrade.step) or the node being drained (upgrade.evacuation),
    with the moment the operator stalls the rollout if it is not done by then; None when nothing is
    in flight or the step already stalled (UpgradeStalled says why)."""
    upgrade = _field(body, "status", "upgrade")
    if not isinstance(upgrade, Mapping):
        return None
    timeout = node_ready_timeout(body)
    for key, action in (("step", "replaced"), ("evacuation", "evacuated")):
        record = upgrade.get(key)
        if not isinstance(record, Mapping) or not record.get("pod") or record.get("stalled"):
            continue
        since = record.get("since")
        start = vocabulary.parse_time(since)
        gives_up = vocabulary.format_time(start + timedelta(seconds=timeout)) if start else None
        return InFlight(str(record["pod"]), action, since, gives_up, timeout)
    return None


def recent_events(items: list[dict[str, Any]], limit: int = RECENT_EVENTS) -> list[Event]:
    events = [_event(item) for item in items]
    events.sort(key=lambda event: event.last_seen or "")
    return events[-limit:]


# The few spec fields the read verbs show, read here rather than through spec.py: importing spec
# (its dataclasses and hocon) costs `status` and `list` ~15 ms. tests/unit/test_status_model.py holds
# these to spec.image_field_path and spec.DEFAULT_* on every form the CRD accepts.
DEFAULT_CORES = 3


def _field(body: Any, *path: str) -> Any:
    node = body
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def desired_image(body: dict[str, Any]) -> str | None:
    """spec.image, or spec.emqxTemplate.image (the v2alpha1 form) when spec.image is absent."""
    spec = _field(body, "spec")
    image = _field(body, "spec", "image")
    if not (isinstance(spec, Mapping) and "image" in spec):
        alpha = _field(body, "spec", "emqxTemplate", "image")
        image = alpha if alpha is not None else image
    return str(image) if image else None


def desired_replicas(body: dict[str, Any]) -> tuple[int, int]:
    """(cores, replicants) the spec asks for, with spec.py's defaults.

    Reads the two fields the way spec.normalize() does, without normalising the whole body (that
    parses the HOCON config, which `list` should not pay for every cluster)."""

    def replicas(template: str, default: int) -> int:
        value = _field(body, "spec", template, "spec", "replicas")
        if isinstance(value, bool) or value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            return default

    image = desired_image(body) or ""
    return replicas("coreTemplate", DEFAULT_CORES), replicas("replicantTemplate", default_replicants(image))


def _node_counts(body: dict[str, Any]) -> tuple[NodeCounts, NodeCounts]:
    status = body.get("status") or {}
    desired_cores, desired_replicants = desired_replicas(body)

    def counts(key: str, desired: int) -> NodeCounts:
        reported = status.get(key) or {}
        return NodeCounts(
            desired=desired,
            ready=int(reported.get("readyReplicas") or 0),
            updated=reported.get("updatedReplicas"),
        )

    return counts("coreNodesStatus", desired_cores), counts("replicantNodesStatus", desired_replicants)


def _condition(item: dict[str, Any]) -> Condition:
    return Condition(
        type=str(item.get("type", "")),
        status=str(item.get("status", "Unknown")),
        reason=str(item.get("reason", "")),
        message=str(item.get("message", "")),
        last_transition_time=item.get("lastTransitionTime"),
        observed_generation=item.get("observedGeneration"),
    )


def _age_seconds(timestamp: Any) -> int:
    """Seconds since an RFC 3339 timestamp; 0 when absent or unreadable."""
    return age_seconds(timestamp) or 0


def _node(item: dict[str, Any], observed_age: int = 0) -> Node:
    """`observed_age`: how long ago the operator read the node; a settled cluster's status is not
    rewritten just because uptime grew, so a running node's uptime is extrapolated."""
    uptime_ms = item.get("uptime")
    if isinstance(uptime_ms, int | float) and item.get("node_status") == "running":
        uptime_ms = uptime_ms + observed_age * 1000
    connections = item.get("connections")
    return Node(
        node=str(item.get("node", "")),
        pod=item.get("podName"),
        role=str(item.get("role", "")),
        status=str(item.get("node_status", "unknown")),
        version=item.get("version"),
        otp_release=item.get("otp_release"),
        uptime_seconds=int(uptime_ms) // 1000 if isinstance(uptime_ms, int | float) else None,
        connections=int(connections) if isinstance(connections, int | float) else None,
    )


def _node_order(node: Node) -> tuple[int, str]:
    return (0 if node.role == "core" else 1, node.pod or node.node)


def _event(item: dict[str, Any]) -> Event:
    series = item.get("series") or {}
    last_seen = (
        series.get("lastObservedTime")
        or item.get("lastTimestamp")
        or item.get("eventTime")
        or (item.get("metadata") or {}).get("creationTimestamp")
    )
    return Event(
        type=str(item.get("type", "")),
        reason=str(item.get("reason", "")),
        message=str(item.get("message", "")).strip(),
        count=int(item.get("count") or series.get("count") or 1),
        last_seen=last_seen,
    )


# --- judging progress -------------------------------------------------------------------------


def condition(body: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None


# Verdicts that mean "this generation cannot become Ready without someone acting": (condition,
# status, the reasons that count -- None: every reason). Progressing=False is one too unless the
# cluster settled: the operator sets it with Kubernetes' reason (ErrImagePull, ...) when a pod the
# cluster waits on failed definitively, or with the reason of a stall, a refusal, a rejection.
BLOCKING_CONDITIONS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    (ConditionType.VALID, "False", None),
    (ConditionType.FORBIDDEN, "True", None),
    (ConditionType.UPGRADE_ALLOWED, "False", None),
    (ConditionType.UPGRADE_STALLED, "True", None),
    (ConditionType.CONFIG_APPLIED, "False", ("ConfigRejected",)),
)
SETTLED_REASON = "Settled"
WAITING_FOR_OPERATOR = "waiting for the operator to observe"


def progress(body: dict[str, Any], generation: int | None) -> Progress:
    """Has the operator finished reconciling `generation` (the one our write produced)?

    Nothing older than `generation` is judged: a condition counts only when its observedGeneration
    (or, lacking one, the status's) has reached it, so the stall of a previous target never fails
    the wait for the rollback that cures it."""
    status = body.get("status") or {}
    on_target, desired = nodes_on_target(body)

    def result(state: Literal["done", "progressing", "failed"], reason: str, verdict: str = "") -> Progress:
        return Progress(state, reason, on_target, desired, verdict)

    observed = status.get("observedGeneration")
    wanted = generation or (body.get("metadata") or {}).get("generation") or 0
    status_current = isinstance(observed, int) and observed >= wanted

    def current(item: dict[str, Any]) -> bool:
        # A condition carries the generation it judged; without one, trust the status as a whole.
        judged = item.get("observedGeneration")
        return judged >= wanted if isinstance(judged, int) else status_current

    for type_, blocking, reasons in BLOCKING_CONDITIONS:
        item = condition(body, type_)
        if item and item.get("status") == blocking and current(item) and (
            reasons is None or item.get("reason") in reasons
        ):
            return result("failed", _because(item, type_), type_)
    moving = condition(body, ConditionType.PROGRESSING)
    if moving and moving.get("status") == "False" and moving.get("reason") != SETTLED_REASON and current(moving):
        return result("failed", _because(moving, ConditionType.PROGRESSING), ConditionType.PROGRESSING)
    if not status_current:
        return result("progressing", f"{WAITING_FOR_OPERATOR} generation {wanted}")
    phase = status.get("phase") or PENDING_PHASE
    ready = condition(body, "Ready")
    if phase in FAILED_PHASES:
        return result("failed", status.get("message") or (ready and _because(ready, "")) or phase, "phase")
    if ready and ready.get("status") == "True" and current(ready):
        return result("done", status.get("message") or "Ready")
    detail = status.get("message") or (ready and ready.get("message")) or ""
    return result("progressing", f"{phase}: {detail}" if detail else phase)


PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")


def recovery_command(body: dict[str, Any], judged: Progress) -> str | None:
    """The plugin command that gets a failed change going again, when there is one to name: a
    rollback for a stalled image change, another image for a cluster whose image never ran, the
    editor for a configuration EMQX rejected. Otherwise the operator's message says what to fix."""
    if judged.state != "failed":
        return None
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    where = f"{metadata.get('name')} -n {metadata.get('namespace')}"
    image = desired_image(body)
    current = status.get("currentImage")
    if judged.verdict == ConditionType.UPGRADE_STALLED:
        if current and image and current != image and status.get("previousImage"):
            return f"kubectl emqx upgrade {where} --rollback --yes --wait"
        return None
    if judged.verdict == ConditionType.CONFIG_APPLIED:
        return f"kubectl emqx config edit {where} --wait"
    if not current and image and any(word in judged.reason for word in PULL_FAILURES):
        from kubectl_emqx.domain.versions import known_release_like

        return f"kubectl emqx upgrade {where} --image {known_release_like(image) or 'IMAGE'} --yes --wait"
    return None


def _because(item: dict[str, Any], fallback: str) -> str:
    reason = item.get("reason") or ""
    message = item.get("message") or fallback
    return f"{reason}: {message}" if reason and message else (message or reason)


def nodes_on_target(body: dict[str, Any]) -> tuple[int, int]:
    """(running nodes on the target version, desired nodes)."""
    cores, replicants = desired_replicas(body)
    desired = cores + replicants
    status = body.get("status") or {}
    # The spec's image: status.targetImage is the operator's copy, stale until it sees a new write.
    target = image_version(desired_image(body) or status.get("targetImage"))
    nodes = status.get("emqxNodes") or []
    if target:
        count = sum(1 for node in nodes if node.get("node_status") == "running" and node.get("version") == target)
    else:  # a tag that names no version: pods on the current template that are ready
        count = sum(
            min(int((status.get(key) or {}).get("updatedReplicas") or 0),
                int((status.get(key) or {}).get("readyReplicas") or 0))
            for key in ("coreNodesStatus", "replicantNodesStatus")
        )
    return min(count, desired), desired


def version_matches(reported: Any, image: str) -> bool:
    """EMQX's `version` is what `image`'s tag names: equal for a full tag (5.8.9), the same prefix for
    a partial one (5.8); any version for a tag that names none (a digest, a custom tag)."""
    from kubectl_emqx.domain.versions import parse_image, parse_version

    info = parse_image(image)
    if not info.version_known or not info.tag or info.tag == "latest":
        return True
    try:
        wanted = parse_version(info.tag)
    except ValueError:
        return True
    given = len([part for part in info.tag.lstrip("ve").split("-")[0].split(".") if part])
    try:
        actual = parse_version(str(reported))
    except ValueError:
        return False
    return actual[:given] == wanted[:given]


def not_yet_on(body: dict[str, Any], image: str) -> str | None:
    """None when EMQX reports every desired node running `image`'s version (and the operator took
    `image` as what the cluster runs); else what is still missing, in one line."""
    status = body.get("status") or {}
    cores, replicants = desired_replicas(body)
    desired = cores + replicants
    nodes = status.get("emqxNodes") or []
    running = [node for node in nodes if node.get("node_status") == "running"]
    on = [node for node in running if version_matches(node.get("version"), image)]
    if len(on) < desired or len(on) != len(running):
        others = sorted({str(node.get("version")) for node in running if node not in on})
        extra = f" (others run {', '.join(others)})" if others else ""
        return f"EMQX reports {len(on)}/{desired} nodes running {image_version(image) or image}{extra}"
    if status.get("currentImage") != image:
        return f"the operator has not recorded {image} as what the cluster runs yet"
    return None


def image_version(image: str | None) -> str | None:
    """`emqx/emqx:5.7.2` -> `5.7.2`, as EMQX reports `version`; None when the tag names none."""
    if not image:
        return None
    from kubectl_emqx.domain.versions import parse_image

    info = parse_image(image)
    return info.version_string if info.version_known else None


# --- serialising ------------------------------------------------------------------------------


def to_data(model: Any) -> Any:
    """Dataclasses -> plain JSON-able data with Kubernetes-style camelCase keys."""
    if dataclasses.is_dataclass(model) and not isinstance(model, type):
        return {
            _camel(item.name): to_data(getattr(model, item.name)) for item in dataclasses.fields(model)
        }
    if isinstance(model, list | tuple):
        return [to_data(item) for item in model]
    if isinstance(model, str):
        return str(model)  # a StrEnum (Phase.PENDING) as the plain string YAML can represent
    return model


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def age_seconds(timestamp: Any, now: datetime | None = None) -> int | None:
    age = vocabulary.age_seconds(timestamp, now)
    return None if age is None else max(0, int(age))


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    path: str
    resource: Any  # the value the EMQX resource asks for
    live: Any  # what EMQX runs (None: absent)


@dataclass(frozen=True)
class ConfigView:
    """What `config get` shows: the resource's HOCON and, with --live, what EMQX runs."""

    name: str
    namespace: str
    config_field: str  # spec.config.data or spec.bootstrapConfig
    text: str
    settings: dict[str, Any] | None  # parsed text; None when it does not parse
    live: str | None = None
    drift: list[Drift] | None = None
    errors: list[str] = field(default_factory=list)


def config_view(body: dict[str, Any], include_live: bool = False) -> ConfigView:
    from kubectl_emqx.domain import hocon, spec

    metadata = body.get("metadata") or {}
    path = spec.config_field_path(body)
    text = str(spec.get_field(body, path) or "")
    problems: list[str] = []
    settings: dict[str, Any] | None
    try:
        settings = hocon.parse(text)
    except hocon.HoconError as exc:
        settings = None
        problems.append(f"{spec.dotted(path)} is not valid HOCON: line {exc.line}, column {exc.column}: {exc.message}")
    live_text: str | None = None
    drift: list[Drift] | None = None
    if include_live:
        live_text = ((body.get("status") or {}).get("config") or {}).get("live")
        if live_text is None:
            problems.append("the operator has not reported the live configuration yet (status.config.live)")
        elif settings is not None:
            try:
                drift = config_drift(settings, hocon.parse(live_text))
            except hocon.HoconError as exc:
                problems.append(f"status.config.live does not parse: line {exc.line}: {exc.message}")
    return ConfigView(
        name=metadata.get("name", ""),
        namespace=metadata.get("namespace", ""),
        config_field=spec.dotted(path),
        text=text,
        settings=settings,
        live=live_text,
        drift=drift,
        errors=problems,
    )


def config_drift(resource: dict[str, Any], live: dict[str, Any]) -> list[Drift]:
    """Settings the resource asks for that EMQX does not run as written (EMQX's defaults for
    everything the resource leaves out are not drift)."""
    from kubectl_emqx.domain import hocon

    wanted = hocon.flatten(resource)
    running = hocon.flatten(live)
    return [Drift(path, value, running.get(path)) for path, value in wanted.items() if running.get(path) != value]
