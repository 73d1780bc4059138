"""The kubelet's view of a simulated EMQX pod (pure): container states, back-offs, probes, pod status.

`PodKubelet` keeps one pod's `emqx` container as a kubelet does (kubernetes@v1.37.2, pkg/kubelet):
image pull with its back-off (ErrImagePull, ImagePullBackOff, InvalidImageName), configuration errors
(CreateContainerConfigError; missing volume sources keep ContainerCreating), container starts and exits
(restartCount, lastState.terminated, CrashLoopBackOff with the exponential back-off), the probe workers
(startup, readiness, liveness: initial delay, period, thresholds) and the pod status the kubelet would
write (phase, conditions, containerStatuses). It does no I/O: the caller (kube.py) runs the probes, reads
the World and writes the status. Times are `time.monotonic()` seconds plus wall-clock stamps for the API.

Durations are multiplied by `Timing.scale`: 1 ("honest", the kubelet's own numbers) or 0.1 ("fast").
"""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EMQX_CONTAINER = "emqx"

# pkg/kubelet/kubelet.go@v1.37.2
CRASH_BACKOFF_INITIAL = 10.0  # initialCrashLoopBackOff
CRASH_BACKOFF_MAX = 300.0  # MaxCrashLoopBackOff (v1beta1.MaxContainerBackOff)
CRASH_BACKOFF_RESET = 600.0  # crashLoopBackOff.HasExpiredFunc: stable after 10 minutes
IMAGE_BACKOFF_INITIAL = 10.0  # imageBackOffPeriod
IMAGE_BACKOFF_MAX = 300.0  # MaxImageBackOff
SYNC_ERROR_REQUEUE = 10.0  # backOffPeriod: a pod worker whose sync failed runs again after this
PLEG_RELIST = 1.0  # genericPlegRelistPeriod: container events reach the pod worker within this
# pkg/volume/util/nestedpendingoperations exponentialbackoff: 500 ms doubling to 2m2s per mount.
MOUNT_BACKOFF_INITIAL = 0.5
MOUNT_BACKOFF_MAX = 122.0

TIMING_ENV = "EMQX_SIM_PROBE_TIMING"


@dataclass(frozen=True)
class Timing:
    """How kubelet durations map to real seconds: honest (as a kubelet) or fast (one tenth)."""

    name: str
    scale: float

    def __call__(self, seconds: float) -> float:
        return seconds * self.scale


TIMINGS = {"honest": Timing("honest", 1.0), "fast": Timing("fast", 0.1)}


def timing_named(name: str | None) -> Timing:
    key = (name or "honest").strip().lower()
    if key not in TIMINGS:
        raise ValueError(f"{TIMING_ENV}={name!r}: expected one of {', '.join(TIMINGS)}")
    return TIMINGS[key]


def go_duration(seconds: float) -> str:
    """time.Duration.String() for the durations the kubelet prints (10s, 1m20s, 5m0s, 2.5s)."""
    if 0 < seconds < 1:
        text = f"{seconds * 1000:.3f}".rstrip("0").rstrip(".")
        return f"{text}ms"
    if seconds < 60:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".") or "0"
    return (f"{hours}h" if hours else "") + f"{minutes}m{rest_text}s"


def wall_stamp(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Backoff:
    """client-go util/flowcontrol.Backoff for one key (no jitter, as the kubelet configures it)."""

    def __init__(self, initial: float, maximum: float, stable_after: float | None = None):
        self.initial = initial
        self.maximum = maximum
        # Default HasExpiredFunc: eventTime - lastUpdate > 2 * max.
        self.stable_after = stable_after if stable_after is not None else 2 * maximum
        self.backoff: float | None = None
        self.last_update = 0.0

    def _expired(self, event_time: float) -> bool:
        return event_time - self.last_update > self.stable_after

    def next(self, event_time: float, now: float) -> None:
        if self.backoff is None or self._expired(event_time):
            self.backoff = self.initial
        else:
            self.backoff = min(self.backoff * 2, self.maximum)
        self.last_update = now

    def in_backoff_since(self, event_time: float, now: float) -> bool:
        if self.backoff is None or self._expired(event_time):
            return False
        return now - event_time < self.backoff

    def in_backoff_since_update(self, now: float) -> bool:
        if self.backoff is None or self._expired(now):
            return False
        return now - self.last_update < self.backoff

    def get(self) -> float:
        return self.backoff or 0.0


# ---------------------------------------------------------------------------------------------- images

# github.com/distribution/reference: name components, optional domain, tag, digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{_TAG})?(?:@{_DIGEST})?$")


def reference_error(image: str) -> str | None:
    """The error ParseNormalizedNamed gives for a malformed image reference, or None."""
    if _REFERENCE.match(image):
        return None
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    repository = name[: len(name) - len(last)] + last.split(":", 1)[0]
    if repository != repository.lower() and _REFERENCE.match(image.lower()):
        return "invalid reference format: repository name must be lowercase"
    return "invalid reference format"


def normalized_image(image: str) -> str:
    """The image as containerd reports it in containerStatuses[].image (docker.io/library/... form)."""
    name = image
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + ("library/" + name if "/" not in name else name)
    return name


def image_id(image: str) -> str:
    repository = normalized_image(image).split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: repository.rfind(":")]
    return f"{repository}@sha256:{hashlib.sha256(normalized_image(image).encode()).hexdigest()}"


def pull_error_message(image: str, registry_error: str) -> str:
    """What the kubelet shows for a failed pull: the runtime's error text (here worded as the Docker
    daemon words a missing tag, behind the gRPC status the CRI call returns)."""
    match = re.search(r"manifest for (\S+) not found", registry_error)
    if match:
        reference = match.group(1)
        detail = f"Error response from daemon: manifest for {reference} not found: manifest unknown: manifest unknown"
    else:
        detail = registry_error
    return f"rpc error: code = Unknown desc = {detail}"


# ---------------------------------------------------------------------------------------------- probes

PROBE_KINDS = ("startupProbe", "readinessProbe", "livenessProbe")
WAITING = "ContainerCreating"


@dataclass(frozen=True)
class ProbeSpec:
    kind: str  # startupProbe | readinessProbe | livenessProbe
    handler: str  # http | tcp | exec | grpc
    host: str
    port: int
    path: str
    scheme: str
    headers: tuple[tuple[str, str], ...]
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


class ProbeConfigError(ValueError):
    pass


def _resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for item in container.get("ports") or []:
        if item.get("name") == text:
            return int(item.get("containerPort", 0))
    raise ProbeConfigError(f"port {text!r} is not a named port of container {container.get('name')}")


def parse_probe(kind: str, container: Mapping[str, Any]) -> ProbeSpec | None:
    """The probe of `kind` with the API server's defaults filled in (pkg/apis/core/v1/defaults.go)."""
    probe = container.get(kind)
    if not isinstance(probe, Mapping):
        return None
    handler, host, port, path, scheme = "exec", "", 0, "", "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    if "httpGet" in probe:
        action = probe["httpGet"]
        handler, host, path = "http", str(action.get("host") or ""), str(action.get("path") or "/")
        port = _resolve_port(action.get("port"), container)
        scheme = str(action.get("scheme") or "HTTP")
        headers = tuple((str(h.get("name")), str(h.get("value", ""))) for h in action.get("httpHeaders") or [])
    elif "tcpSocket" in probe:
        action = probe["tcpSocket"]
        handler, host = "tcp", str(action.get("host") or "")
        port = _resolve_port(action.get("port"), container)
    elif "grpc" in probe:
        handler, port = "grpc", int(probe["grpc"].get("port", 0))
    success = int(probe.get("successThreshold") or 1)
    if kind != "readinessProbe":
        success = 1  # liveness and startup probes must have successThreshold 1
    return ProbeSpec(
        kind=kind,
        handler=handler,
        host=host,
        port=port,
        path=path if path.startswith("/") else "/" + path,
        scheme=scheme,
        headers=headers,
        initial_delay=float(probe.get("initialDelaySeconds") or 0),
        period=float(probe.get("periodSeconds") or 10),
        timeout=float(probe.get("timeoutSeconds") or 1),
        success_threshold=success,
        failure_threshold=int(probe.get("failureThreshold") or 3),
    )


@dataclass
class ProbeWorker:
    """pkg/kubelet/prober/worker.go: one probe of one container, ticking every period from the start."""

    spec: ProbeSpec
    timing: Timing
    started_at: float
    next_tick: float = 0.0
    last_outcome: bool | None = None
    run: int = 0
    result: bool | None = None
    on_hold: bool = False

    def __post_init__(self) -> None:
        self.next_tick = self.started_at
        # Initial results: readiness Failure, liveness Success, startup Unknown (prober/worker.go newWorker).
        self.result = {"readinessProbe": False, "livenessProbe": True}.get(self.spec.kind)

    def due(self, now: float) -> bool:
        """Advance the ticker; True if a probe runs at this tick (not before initialDelaySeconds)."""
        if self.on_hold or now < self.next_tick:
            return False
        period = max(self.timing(self.spec.period), 0.05)
        while self.next_tick <= now:
            self.next_tick += period
        # worker.go doProbe: skipped while time since the container started < InitialDelaySeconds.
        return now - self.started_at >= self.timing(self.spec.initial_delay)

    def record(self, outcome: bool) -> bool | None:
        """Count an outcome against the thresholds; returns the (possibly new) result."""
        if outcome == self.last_outcome:
            self.run += 1
        else:
            self.last_outcome, self.run = outcome, 1
        threshold = self.spec.success_threshold if outcome else self.spec.failure_threshold
        if self.run < threshold:
            return self.result
        self.result = outcome
        if not outcome and self.spec.kind in ("livenessProbe", "startupProbe"):
            # The container is restarted; the worker waits for the new one.
            self.on_hold, self.run = True, 0
        return self.result


# ---------------------------------------------------------------------------------------------- lifecycle


@dataclass
class Terminated:
    exit_code: int
    reason: str
    message: str
    started_at: float  # wall clock
    finished_at: float  # wall clock
    finished_mono: float
    container_id: str

    def as_api(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": wall_stamp(self.started_at),
            "finishedAt": wall_stamp(self.finished_at),
            "containerID": self.container_id,
        }
        if self.message:
            state["message"] = self.message
        return {"terminated": state}


@dataclass
class Running:
    container_id: str
    started_at: float  # wall clock
    started_mono: float


@dataclass
class StartDecision:
    """What a sync decided: start the container now, or why not (the waiting reason and message)."""

    start: bool
    reason: str = ""
    message: str = ""


@dataclass
class PodKubelet:
    uid: str
    namespace: str
    name: str
    timing: Timing
    restart_count: int = 0
    running: Running | None = None
    # The last container that exited: state.terminated until the next sync, then lastState.terminated.
    terminated: Terminated | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    next_sync: float = 0.0
    start_pending: bool = False
    image: str = ""
    pulled_images: set[str] = field(default_factory=set)
    prev_pull_error: str = ""
    probes: dict[str, ProbeWorker] = field(default_factory=dict)
    crash_backoff: Backoff = field(init=False)
    image_backoff: Backoff = field(init=False)
    mount_backoff: Backoff = field(init=False)
    ever_started: bool = False

    def __post_init__(self) -> None:
        t = self.timing
        self.crash_backoff = Backoff(t(CRASH_BACKOFF_INITIAL), t(CRASH_BACKOFF_MAX), t(CRASH_BACKOFF_RESET))
        self.image_backoff = Backoff(t(IMAGE_BACKOFF_INITIAL), t(IMAGE_BACKOFF_MAX))
        self.mount_backoff = Backoff(t(MOUNT_BACKOFF_INITIAL), t(MOUNT_BACKOFF_MAX))

    @property
    def pod_desc(self) -> str:
        """format.Pod: name_namespace(uid)."""
        return f"{self.name}_{self.namespace}({self.uid})"

    # ------------------------------------------------------------------ decisions

    def crash_backoff_wait(self, now: float) -> StartDecision | None:
        """kuberuntime doBackOff: CrashLoopBackOff while in the back-off window of the last exit."""
        last = self.terminated
        if last is None:
            return None
        if self.crash_backoff.in_backoff_since(last.finished_mono, now):
            backoff = self.crash_backoff.get()
            self.next_sync = last.finished_mono + backoff
            message = (
                f"back-off {go_duration(backoff)} restarting failed container={EMQX_CONTAINER} pod={self.pod_desc}"
            )
            return StartDecision(False, "CrashLoopBackOff", message)
        self.crash_backoff.next(last.finished_mono, now)
        return None

    def pull(self, image: str, now: float, registry_error: str | None, invalid: str | None) -> StartDecision | None:
        """images.EnsureImageExists (pull policy IfNotPresent): None when the image is present."""
        if invalid is not None:
            self.next_sync = now + self.timing(SYNC_ERROR_REQUEUE)
            return StartDecision(False, "InvalidImageName", f'Failed to apply default image tag "{image}": '
                                 f'couldn\'t parse image name "{image}": {invalid}')
        if image in self.pulled_images:
            return None
        if self.image_backoff.in_backoff_since_update(now):
            # One sync a PLEG relist after the failure, then one per back-off period of the pod worker.
            self.next_sync = now + self.timing(SYNC_ERROR_REQUEUE)
            message = f'Back-off pulling image "{image}"'
            if self.prev_pull_error:
                message += f": {self.prev_pull_error}"
            return StartDecision(False, "ImagePullBackOff", message)
        if registry_error is not None:
            self.image_backoff.next(now, now)
            message = pull_error_message(image, registry_error)
            self.prev_pull_error = f"ErrImagePull: {message}"
            self.next_sync = now + self.timing(PLEG_RELIST)
            return StartDecision(False, "ErrImagePull", message)
        self.pulled_images.add(image)
        return None

    def config_error(self, now: float, reason: str, message: str) -> StartDecision:
        if reason == "FailedMount":
            # The volume manager keeps retrying the mount; the container stays ContainerCreating.
            self.mount_backoff.next(now, now)
            self.next_sync = now + self.mount_backoff.get()
            return StartDecision(False, "ContainerCreating", "")
        self.next_sync = now + self.timing(SYNC_ERROR_REQUEUE)
        return StartDecision(False, "CreateContainerConfigError", message)

    def wait(self, decision: StartDecision) -> None:
        self.waiting_reason, self.waiting_message = decision.reason, decision.message

    def adopt(self, previous: Mapping[str, Any] | None, image: str) -> None:
        """A pod found with a container from before this kubelet started (the simulator restarted: a
        node reboot). That container is gone: the next one is a restart of it (restartCount + 1), and
        its image is already on the node."""
        if not previous or not (previous.get("state") or {}).keys() & {"running", "terminated"}:
            return
        self.restart_count = int(previous.get("restartCount") or 0)
        self.ever_started = True
        if previous.get("imageID") and previous.get("image") == normalized_image(image):
            self.pulled_images.add(image)

    # ------------------------------------------------------------------ transitions

    def container_started(self, now: float, wall: float, container: Mapping[str, Any]) -> None:
        if self.ever_started:
            self.restart_count += 1
        self.ever_started = True
        self.start_pending = False
        self.running = Running("containerd://" + secrets.token_hex(32), wall, now)
        self.waiting_reason = self.waiting_message = ""
        self.probes = {}
        for kind in PROBE_KINDS:
            try:
                spec = parse_probe(kind, container)
            except ProbeConfigError:
                spec = None
            if spec is not None:
                self.probes[kind] = ProbeWorker(spec, self.timing, now)

    def container_exited(self, now: float, wall: float, exit_code: int, message: str) -> None:
        running = self.running
        if running is None:
            return
        reason = "Completed" if exit_code == 0 else "Error"
        self.terminated = Terminated(exit_code, reason, message, running.started_at, wall, now, running.container_id)
        self.running = None
        self.probes = {}
        self.waiting_reason, self.waiting_message = "", ""
        self.next_sync = now + self.timing(PLEG_RELIST)

    # ------------------------------------------------------------------ probes

    def started(self) -> bool:
        if self.running is None:
            return False
        startup = self.probes.get("startupProbe")
        return startup is None or startup.result is True

    def ready(self) -> bool:
        if not self.started():
            return False
        readiness = self.probes.get("readinessProbe")
        return readiness is None or readiness.result is True

    def due_probes(self, now: float) -> list[ProbeSpec]:
        """Probes to run now. Readiness and liveness wait for the startup probe (worker.go)."""
        if self.running is None:
            return []
        due = []
        started = self.started()
        for kind, worker in self.probes.items():
            if kind != "startupProbe" and not started:
                continue
            if kind == "startupProbe" and started:
                continue
            if worker.due(now):
                due.append(worker.spec)
        return due

    def probe_result(self, kind: str, outcome: bool) -> bool:
        """Record a probe outcome; True when the container must be killed (liveness/startup failed)."""
        worker = self.probes.get(kind)
        if worker is None:
            return False
        result = worker.record(outcome)
        return kind in ("livenessProbe", "startupProbe") and result is False

    # ------------------------------------------------------------------ status

    def emqx_status(self, image: str) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": EMQX_CONTAINER,
            "image": normalized_image(image),
            "imageID": image_id(image) if image in self.pulled_images else "",
            "ready": self.ready(),
            "started": self.started(),
            "restartCount": self.restart_count,
        }
        running, terminated = self.running, self.terminated
        if running is not None:
            status["containerID"] = running.container_id
            status["state"] = {"running": {"startedAt": wall_stamp(running.started_at)}}
            status["lastState"] = terminated.as_api() if terminated is not None else {}
        elif terminated is not None and not self.waiting_reason:
            status["containerID"] = terminated.container_id
            status["state"] = terminated.as_api()
            status["lastState"] = {}
        else:
            waiting: dict[str, Any] = {"reason": self.waiting_reason or "ContainerCreating"}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            status["state"] = {"waiting": waiting}
            status["lastState"] = terminated.as_api() if terminated is not None else {}
        return status


def phase_of(kubelet: PodKubelet) -> str:
    """getPhase for a pod whose containers are `emqx` (+ sidecars that run): Pending until a container
    has run; restartPolicy Always keeps it Running through restarts."""
    if kubelet.running is not None or kubelet.terminated is not None:
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": "True" if ok else "False"}
    if not ok and reason:
        condition["reason"] = reason
    if not ok and message:
        condition["message"] = message
    return condition


def pod_status(kubelet: PodKubelet, pod: Mapping[str, Any]) -> dict[str, Any]:
    """The status fields this kubelet owns: phase, its conditions (not PodScheduled nor readiness gates),
    containerStatuses, initContainerStatuses. lastTransitionTime is added by `with_transition_times`."""
    spec = pod.get("spec") or {}
    existing = {c.get("name"): c for c in (pod.get("status") or {}).get("containerStatuses") or []}
    statuses = []
    unready = []
    for container in spec.get("containers") or []:
        name = container.get("name")
        if name == EMQX_CONTAINER:
            status = kubelet.emqx_status(container.get("image", ""))
        else:
            # Sidecars are not simulated: they run and are ready from the first container start.
            previous = existing.get(name) or {}
            started_at = ((previous.get("state") or {}).get("running") or {}).get("startedAt") or wall_stamp(
                kubelet.running.started_at if kubelet.running else 0
            )
            running = kubelet.ever_started
            status = {
                "name": name,
                "image": normalized_image(container.get("image", "")),
                "imageID": image_id(container.get("image", "")) if running else "",
                "ready": running,
                "started": running,
                "restartCount": 0,
                "state": {"running": {"startedAt": started_at}} if running else {"waiting": {"reason": WAITING}},
                "lastState": {},
            }
            if running:
                status["containerID"] = previous.get("containerID") or "containerd://" + secrets.token_hex(32)
        if not status["ready"]:
            unready.append(name)
        statuses.append(status)
    containers_ready = not unready
    message = f"containers with unready status: [{' '.join(unready)}]"
    gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
    current = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    gate_messages = []
    for gate in gates:
        condition = current.get(gate)
        if condition is None:
            gate_messages.append(f'corresponding condition of pod readiness gate "{gate}" does not exist.')
        elif condition.get("status") != "True":
            gate_status = condition.get("status")
            gate_messages.append(f'the status of pod readiness gate "{gate}" is not "True", but {gate_status}')
    if not containers_ready:
        ready = _condition("Ready", False, "ContainersNotReady", message)
    elif gate_messages:
        ready = _condition("Ready", False, "ReadinessGatesNotReady", ", ".join(gate_messages))
    else:
        ready = _condition("Ready", True)
    conditions = [
        _condition("PodReadyToStartContainers", True),
        _condition("Initialized", True),
        ready,
        _condition("ContainersReady", containers_ready, "ContainersNotReady", message),
    ]
    init_statuses = [
        {
            "name": c.get("name"),
            "image": normalized_image(c.get("image", "")),
            "imageID": image_id(c.get("image", "")),
            "ready": True,
            "started": False,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            "lastState": {},
        }
        for c in spec.get("initContainers") or []
    ]
    result: dict[str, Any] = {"phase": phase_of(kubelet), "conditions": conditions, "containerStatuses": statuses}
    if init_statuses:
        result["initContainerStatuses"] = init_statuses
    return result


def with_transition_times(status: dict[str, Any], pod: Mapping[str, Any], wall: float) -> dict[str, Any]:
    """Keep lastTransitionTime of conditions whose status did not change (status_manager.go)."""
    current = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    stamp = wall_stamp(wall)
    for condition in status["conditions"]:
        previous = current.get(condition["type"])
        same = previous is not None and previous.get("status") == condition["status"]
        condition["lastTransitionTime"] = previous.get("lastTransitionTime") if same and previous else stamp
        condition.setdefault("reason", None)
        condition.setdefault("message", None)
    return status


def status_differs(wanted: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether the pod's status lacks any of the fields `wanted` sets (ignoring transition times)."""
    current = pod.get("status") or {}
    if current.get("phase") != wanted.get("phase"):
        return True
    have = {c.get("type"): c for c in current.get("conditions") or []}
    for condition in wanted.get("conditions") or []:
        old = have.get(condition["type"]) or {}
        for key in ("status", "reason", "message"):
            if (old.get(key) or None) != (condition.get(key) or None):
                return True
    for key in ("containerStatuses", "initContainerStatuses"):
        if _strip(current.get(key) or []) != _strip(wanted.get(key) or []):
            return True
    return False


def _strip(statuses: list[Any]) -> list[Any]:
    """Container statuses compared without empty lastState maps the API server may drop."""
    out = []
    for status in statuses:
        item = {k: v for k, v in dict(status).items() if v not in ({}, None, "")}
        out.append(item)
    return out
