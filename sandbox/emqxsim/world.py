"""All simulated EMQX state: pods, nodes, clusters, data directories, faults and observations.

Everything here is thread-safe behind one lock and free of Kubernetes: pods come in as dicts,
ConfigMaps and Secrets through an ObjectSource. `observe_pod` records what the kubelet would run,
`boot_due` boots (or retries) what is due, the way a restarting container would, and runs the
timers (a fresh core joining its cluster, a replicant losing its upstream).

The container of a pod is in one of these situations (PodRecord.state):
- pending: not tried yet;
- starting: the container runs and EMQX boots; nothing answers yet (see "Boot duration" below);
- failed + `waiting_reason` (CreateContainerConfigError, ErrImagePull): the kubelet cannot start it;
- failed + `termination`: the EMQX process exited (bin/emqx refused the config, an app failed to
  start); `termination` holds the exit code and the last lines EMQX printed, `restart_count` counts
  the exits; it is started again after `restart_delay(restart_count)` seconds;
- waiting: the process runs but EMQX does not come up (a replicant without a usable core);
- hung: the image is configured never to boot (control API);
- running: EMQX is up (possibly still alone before joining its cluster: `joining`);
- stopped / crashed: stopped through the control API.
`container_view` gives the kubelet side all of it as one dict.

Boot duration (docs/fidelity.md, "Boot: how long it takes"): with `boot_seconds` > 0 a started container is
`starting` for that long (times `boot_scale(record)`, the kubelet's timing) before the node answers. The
first BOOT_PREPARE_SHARE of it is bin/emqx (short-lived BEAMs that read and check the configuration, then
the node's VM): its refusals end the container at that point. The rest is emqx_machine_boot starting the
applications, emqx_conf first (where a replicant waits for a core: that wait comes before this part),
the MQTT listeners with `emqx`, the HTTP API with `emqx_dashboard`; the node is admitted at the end.
With `boot_seconds` 0 a node boots in the round its container starts.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import pickle
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import configmodel, schema, versions
from .erlterm import Atom, Binary, Charlist, Tuple, format_0p
from .hocon import ConfigDict, get_path
from .node import SimClock, SimNode
from .nodespec import BootFailure, NodeSpec, build_node_spec, dashboard_port, log_time
from .podspec import ContainerConfigError, ObjectSource, emqx_container, resolve_container

log = logging.getLogger("emqxsim")

INSTANCE_LABEL = "apps.emqx.io/instance"
LOG_LINES_KEPT = 200

# Share of the boot duration spent before emqx_machine_boot starts the applications (an assumption, as
# the duration itself is): bin/emqx's config check and generate, each a short-lived BEAM, then the node's VM.
BOOT_PREPARE_SHARE = 0.5

SINGLE_NODE_LICENSE_ERROR = (
    "SINGLE_NODE_LICENSE, make sure this node and peer nodes are configured with a valid license"
)


class BootWait(Exception):
    """The node cannot boot yet and keeps retrying (e.g. a replicant without a usable core)."""


@dataclass(frozen=True)
class ClusterKey:
    """Nodes that can find (discovery) and talk to (cookie, cluster name) each other."""

    cookie: str
    cluster_name: str
    strategy: str
    scope: tuple[str, ...]


@dataclass
class DataDir:
    """What matters of a node's data directory (`/opt/emqx/data`), kept across restarts."""

    key: str
    cluster_hocon: ConfigDict = field(default_factory=dict)
    tnx_id: int = 0
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    admins: dict[str, str] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)
    evacuation: dict[str, Any] | None = None
    # data/backup/*.tar.gz: name -> (content, ctime)
    backups: dict[str, tuple[bytes, float]] = field(default_factory=dict)
    release: versions.Version | None = None
    # data/configs/cluster-override.conf (written by releases before 5.0.23 / e5.0.3; later releases
    # keep using it, and its precedence, when they find it) or cluster.hocon.
    override_file: str | None = None

    @property
    def deprecated_order(self) -> bool:
        return self.override_file == "cluster-override.conf"


@dataclass
class ClusterState:
    key: ClusterKey
    nodes: dict[str, SimNode] = field(default_factory=dict)
    # Cores that joined and have not been force-left: listed as stopped while not running.
    members: set[str] = field(default_factory=set)
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    admins: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    # A fresh core running alone until it joins (ekka autocluster): its own little cluster.
    standalone: bool = False

    @property
    def name(self) -> str:
        return self.key.cluster_name

    def running(self) -> list[SimNode]:
        return [self.nodes[name] for name in sorted(self.nodes)]

    def cores(self) -> list[SimNode]:
        return [node for node in self.running() if node.role == "core"]

    def stopped_cores(self) -> list[str]:
        return sorted(name for name in self.members if name not in self.nodes)

    def recipients_for(self, node: SimNode) -> list[str]:
        candidates = [other.name for other in self.running() if other.name != node.name and other.evacuation is None]
        if node.evacuation is not None and node.evacuation.migrate_to:
            return [name for name in node.evacuation.migrate_to if name in candidates]
        return candidates

    def total_sessions(self) -> int:
        return sum(node.current_counts()[0] for node in self.running())


@dataclass
class Termination:
    """How the EMQX process of a container ended (what the kubelet shows as `terminated`)."""

    exit_code: int
    message: str
    log_tail: list[str]
    started_at: float
    finished_at: float
    reason: str = "Error"

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "reason": self.reason,
            "message": self.message,
            "log_tail": list(self.log_tail),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass
class PodRecord:
    uid: str
    namespace: str
    name: str
    pod: dict[str, Any]
    image: str
    # pending | starting | waiting | failed | hung | running | stopped | crashed
    state: str = "pending"
    node: SimNode | None = None
    node_name: str | None = None
    reason: str = ""
    next_attempt: float = 0.0
    restart_at: float | None = None
    generation: int = 0
    booting: bool = False
    observed_ready: bool | None = None
    # kubelet-level reason the container cannot start (CreateContainerConfigError, ErrImagePull)
    waiting_reason: str = ""
    termination: Termination | None = None
    restart_count: int = 0
    started_at: float | None = None
    # What the EMQX process printed, this container run and the previous ones (capped).
    log: list[str] = field(default_factory=list)
    # Containers started so far (a boot in flight belongs to one of them), this container's boot duration,
    # when its next boot stage is due (monotonic) and bin/emqx's result while the applications start.
    container_run: int = 0
    boot_seconds: float = 0.0
    boot_at: float = 0.0
    boot_spec: NodeSpec | None = None
    # (state, container_run) when the boot loop took it: a boot that no longer matches is dropped
    boot_entry: tuple[str, int] = ("", 0)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ip(self) -> str:
        return (self.pod.get("status") or {}).get("podIP") or ""

    def summary(self) -> dict[str, Any]:
        node = self.node
        spec = node.spec if node else None
        return {
            "pod": self.key,
            "uid": self.uid,
            "ip": self.ip,
            "image": self.image,
            "state": self.state,
            "reason": self.reason,
            "node": self.node_name,
            "role": spec.role if spec else None,
            "version": versions.format_version(spec.version) if spec else None,
            "edition": spec.image.reported_edition.value if spec else None,
            "port": spec.dashboard_port if spec else None,
            "cluster": node.cluster.name if node else None,
            "evacuation": node.evacuation_state() if node else None,
            "sessions": node.current_counts()[0] if node else None,
            "live_connections": node.current_counts()[1] if node else None,
            "ready": self.observed_ready,
            "joining": bool(node and node.cluster.standalone),
            "degraded": bool(node and node.degraded),
            "exit_code": self.termination.exit_code if self.termination else None,
            "restart_count": self.restart_count,
        }


@dataclass
class Fault:
    id: int
    node: str | None
    status: int | None
    delay: float
    path_prefix: str
    remaining: int | None
    drop: bool
    namespace: str | None = None  # every pod of this namespace, also pods that appear later

    def matches(self, node_name: str, pod_key: str, path: str) -> bool:
        if self.namespace is not None and not pod_key.startswith(self.namespace + "/"):
            return False
        return (self.node is None or self.node in (node_name, pod_key)) and path.startswith(self.path_prefix)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "status": self.status,
            "delay": self.delay,
            "path_prefix": self.path_prefix,
            "remaining": self.remaining,
            "drop": self.drop,
            "namespace": self.namespace,
        }


@dataclass
class _Join:
    """A fresh core that found running peers: it runs alone, then joins (ekka autocluster)."""

    node: SimNode
    record: PodRecord
    due: float


ServerFactory = Callable[[SimNode, "World"], Any]

# emqx_mgmt_auth: `(.+):(.+)(?::(.+))?$` ungreedy from 5.4.0, `(.+):(.+$)` before.
_BOOTSTRAP_LINE_SINCE_5_4 = re.compile(r"^(.+?):(.+?)(?::(.+?))?$")
_BOOTSTRAP_LINE_BEFORE_5_4 = re.compile(r"^(.+?):(.+)$")
_POSIX = {"enoent": "No such file or directory", "eisdir": "Illegal operation on a directory"}


def _bootstrap_key_name(api_key: str) -> str:
    return "from_bootstrap_file_" + hashlib.sha512(api_key.encode()).hexdigest()[:16]


def _app_start_failure(app: str, reason: Any, before: list[str]) -> BootFailure:
    """An application that fails to start ends the node: emqx_machine_boot logs it, the kernel stops."""
    reason_text = format_0p(reason)
    lines = before + [
        f"{log_time()} [critical] msg: failed_to_start_app, app: {app}, reason: {reason_text}",
        "Kernel pid terminated (application_controller) "
        f'("{{application_start_failure,emqx_machine,{{{{shutdown,{{failed_to_start_child,emqx_machine_boot,'
        f'{{{{failed_to_start_app,{app},{reason_text}}}}}}}}}}}}}}}")',
        "Crash dump is being written to: /opt/emqx/log/erl_crash.dump...done",
    ]
    return BootFailure(f"failed_to_start_app {app}: {reason_text}", 1, lines)


class World:
    def __init__(
        self,
        clock: SimClock | None = None,
        retry_interval: float = 1.0,
        server_factory: ServerFactory | None = None,
        join_delay: tuple[float, float] = (0.0, 0.0),
        join_restart: float = 0.0,
        boot_seconds: float = 0.0,
    ):
        self.lock = threading.RLock()
        self.clock = clock or SimClock()
        # the timers' clock (boot stages, retries, restarts, joins); tests may replace it
        self.monotonic: Callable[[], float] = time.monotonic
        self.retry_interval = retry_interval
        # seconds from a container's start until its node answers (honest seconds), times boot_scale(record):
        # the kubelet side makes that its timing's scale (fast: 0.1)
        self.boot_seconds = boot_seconds
        self.boot_scale: Callable[[PodRecord], float] = lambda record: 1.0
        self.server_factory = server_factory
        # seconds a fresh core runs alone before joining (random in the range), and how long its
        # API is down while ekka restarts the apps for the join
        self.join_delay = join_delay
        self.join_restart = join_restart
        # seconds before an exited container is started again; the kubelet side may replace it with
        # CrashLoopBackOff's schedule (it gets the restart count)
        self.restart_delay: Callable[[int], float] = lambda restarts: self.retry_interval
        self.pods: dict[str, PodRecord] = {}
        self.clusters: dict[ClusterKey, ClusterState] = {}
        self.data_dirs: dict[str, DataDir] = {}
        self.events: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.never_boot_images: set[str] = set()
        self.request_counts: dict[str, Counter[str]] = {}
        self.namespace_requests: dict[str, Counter[str]] = {}  # the same, by the pod's namespace
        self.known_node_names: set[str] = set()
        self._joins: list[_Join] = []
        self._next_fault_id = 1
        # The simulated kubelet's say on (re)starting a pod's container (pending, failed, crashed records);
        # called under the lock, True = start it now. None: retry every retry_interval.
        self.container_gate: Callable[[PodRecord], bool] | None = None

    # ------------------------------------------------------------------ observations

    def record_event(self, event: str, record: PodRecord | None, **details: Any) -> None:
        entry: dict[str, Any] = {
            "seq": len(self.events) + 1,
            "time": time.time(),
            "event": event,
            "pod": record.key if record else None,
            "node": record.node_name if record else None,
            "image": record.image if record else None,
        }
        entry.update(details)
        self.events.append(entry)
        text = " ".join(f"{key}={value}" for key, value in entry.items() if key not in ("seq", "time", "log_tail"))
        warn = event in ("boot_failed", "crashed", "replicant_degraded")
        log.log(logging.WARNING if warn else logging.INFO, text)

    def count_request(self, node_name: str, method: str, path: str, namespace: str | None = None) -> None:
        with self.lock:
            self.request_counts.setdefault(node_name, Counter())[f"{method} {path}"] += 1
            if namespace is not None:
                self.namespace_requests.setdefault(namespace, Counter())[f"{method} {path}"] += 1

    @staticmethod
    def _print(record: PodRecord, lines: Iterable[str]) -> None:
        record.log.extend(lines)
        if len(record.log) > LOG_LINES_KEPT:
            del record.log[: len(record.log) - LOG_LINES_KEPT]

    # ------------------------------------------------------------------ pods

    def observe_pod(self, pod: Mapping[str, Any]) -> list[Any]:
        """Record the latest state of a pod. Returns servers to stop (call `stop_servers`)."""
        metadata = pod.get("metadata") or {}
        status = pod.get("status") or {}
        uid = metadata.get("uid", "")
        # Scheduled (kwok gave it an IP), not terminating and not finished: the kubelet runs its containers.
        runnable = (
            status.get("phase") in ("Pending", "Running")
            and bool(status.get("podIP"))
            and not metadata.get("deletionTimestamp")
        )
        if not runnable:
            reason = "pod terminating" if metadata.get("deletionTimestamp") else "pod not running"
            return self.forget_pod(uid, reason)
        try:
            image = emqx_container(pod).get("image", "")
        except ContainerConfigError:
            image = ""
        ready = next(
            (cond.get("status") == "True" for cond in status.get("conditions") or [] if cond.get("type") == "Ready"),
            None,
        )
        to_stop: list[Any] = []
        with self.lock:
            record = self.pods.get(uid)
            if record is None:
                record = PodRecord(
                    uid=uid,
                    namespace=metadata.get("namespace", "default"),
                    name=metadata.get("name", ""),
                    pod=copy.deepcopy(dict(pod)),
                    image=image,
                )
                self.pods[uid] = record
                log.info("pod %s observed (ip %s, image %s)", record.key, record.ip, image)
            else:
                record.pod = copy.deepcopy(dict(pod))
                if image != record.image:
                    # The kubelet restarts a container whose image was changed in place.
                    record.image = image
                    to_stop += self._stop_record(record, "stopped", "container image changed")
                    record.state = "pending"
                    record.next_attempt = 0.0
            record.observed_ready = ready
        return to_stop

    def forget_pod(self, uid: str, reason: str = "pod deleted") -> list[Any]:
        with self.lock:
            record = self.pods.pop(uid, None)
            if record is None:
                return []
            return self._stop_record(record, "stopped", reason)

    def known_pod_uids(self) -> set[str]:
        with self.lock:
            return set(self.pods)

    def records(self) -> list[PodRecord]:
        with self.lock:
            return list(self.pods.values())

    def find_record(self, ident: str) -> PodRecord | None:
        """A pod by node name (`emqx@host`), `namespace/pod` or pod uid."""
        with self.lock:
            for record in self.pods.values():
                if ident in (record.node_name, record.key, record.uid):
                    return record
        return None

    def container_view(self, ident: str) -> dict[str, Any]:
        """The EMQX container of a pod as the kubelet would report it.

        phase: waiting (cannot be started: `reason` CreateContainerConfigError / ErrImagePull,
        or the process exited and waits to be restarted: `last_termination` set), running, or
        terminated (stopped through the control API). Also: restart_count, ready (the node answers
        /status), last_termination (exit code, reason, message, log tail, times) and log (the lines
        the process printed, previous runs included).
        """
        with self.lock:
            record = self._require(ident)
            node = record.node
            view: dict[str, Any] = {
                "restart_count": record.restart_count,
                "started_at": record.started_at,
                "ready": bool(node and node.alive and node.server is not None),
                "last_termination": record.termination.as_dict() if record.termination else None,
                "log": list(record.log),
            }
            if record.state in ("running", "starting", "waiting", "hung"):
                view.update(phase="running", reason="", message="")
            elif record.state == "failed" and record.waiting_reason:
                view.update(phase="waiting", reason=record.waiting_reason, message=record.reason)
            elif record.state == "failed":
                view.update(phase="waiting", reason="Error", message=record.reason)
            elif record.state in ("stopped", "crashed"):
                view.update(phase="terminated", reason=record.state, message=record.reason)
            else:
                view.update(phase="waiting", reason="ContainerCreating", message="")
            return view

    # ------------------------------------------------------------------ booting

    def due_records(self) -> list[PodRecord]:
        now = self.monotonic()
        with self.lock:
            due = []
            for record in self.pods.values():
                if record.booting:
                    continue
                retry_due = record.state in ("pending", "waiting", "failed") and record.next_attempt <= now
                unhung = record.state == "hung" and record.image not in self.never_boot_images
                restart_due = record.state == "crashed" and record.restart_at is not None and record.restart_at <= now
                stage_due = record.state == "starting" and record.boot_at <= now
                container_start = (retry_due and record.state != "waiting") or restart_due
                if container_start and self.container_gate is not None and not self.container_gate(record):
                    continue
                if container_start and self._container_started(record, now):
                    continue  # booting: its first stage is due later
                if retry_due or unhung or restart_due or stage_due:
                    due.append(record)
            for record in due:
                record.booting = True
                record.boot_entry = (record.state, record.container_run)
            return due

    def _container_started(self, record: PodRecord, now: float) -> bool:
        """A new container of the pod runs: with a boot duration the node is `starting` (True) until its
        stages are due; without, it boots in this round (False)."""
        record.container_run += 1
        record.boot_spec = None
        record.boot_seconds = max(0.0, self.boot_seconds * self.boot_scale(record))
        if record.boot_seconds <= 0:
            return False
        record.state, record.reason, record.waiting_reason = "starting", "", ""
        record.started_at = time.time()
        record.boot_at = now + record.boot_seconds * BOOT_PREPARE_SHARE
        self.record_event("booting", record, seconds=round(record.boot_seconds, 3))
        return True

    def boot_due(self, source_for: Callable[[PodRecord], ObjectSource]) -> None:
        """Boot every pod that is due; `source_for(record)` gives the ConfigMaps/Secrets its container
        was created with."""
        self.tick()
        for record in self.due_records():
            try:
                self._boot(record, source_for(record))
            finally:
                with self.lock:
                    record.booting = False

    def _stale(self, record: PodRecord, entry: tuple[str, int]) -> bool:
        """The boot that started in `entry` (state, container run) no longer applies: the pod went away,
        or its container was stopped, killed or replaced meanwhile."""
        return record.uid not in self.pods or (record.state, record.container_run) != entry

    def _boot(self, record: PodRecord, source: ObjectSource) -> None:
        """The boot stage that is due: bin/emqx (read and check the configuration; a replicant then waits
        for a core in emqx_conf), then, after the applications' share of the boot duration, the node."""
        with self.lock:
            entry = record.boot_entry
            if self._stale(record, entry):
                return
            spec = record.boot_spec if record.state == "starting" else None
            if spec is None:
                if record.image in self.never_boot_images:
                    if record.state != "hung":
                        record.state, record.reason = "hung", "image configured never to boot"
                        self.record_event("boot_hung", record, reason=record.reason)
                    return
                pod = copy.deepcopy(record.pod)
        if spec is None:
            spec = self._bin_emqx(record, pod, source, entry)
            if spec is None:
                return
            with self.lock:
                if self._stale(record, entry):
                    return
                record.node_name = spec.node_name
                self.known_node_names.add(spec.node_name)
                wait = self._replicant_wait(spec, self._cluster_for(spec))
                if wait is not None:
                    self._boot_waiting(record, wait)
                    return
                apps = record.boot_seconds * (1 - BOOT_PREPARE_SHARE)
                if apps > 0:
                    # counted from the end of bin/emqx's share, or from now after a wait or a hang
                    since = record.boot_at if entry[0] == "starting" else self.monotonic()
                    record.state, record.reason, record.boot_spec = "starting", "", spec
                    record.boot_at = since + apps
                    return
        with self.lock:
            if self._stale(record, entry):
                return
            record.boot_spec = None
            record.node_name = spec.node_name
            self.known_node_names.add(spec.node_name)
            try:
                node = self._admit(record, spec)
            except BootWait as wait:
                self._boot_waiting(record, str(wait))
                return
            except BootFailure as failure:
                self._exited(record, failure)
                return
            record.node, record.state, record.reason, record.restart_at = node, "running", "", None
            record.waiting_reason = ""
            for warning in spec.warnings:
                log.warning("%s (%s): %s", spec.node_name, record.key, warning)
            self.record_event(
                "booted",
                record,
                role=spec.role,
                version=versions.format_version(spec.version),
                edition=spec.image.reported_edition.value,
                cluster=node.cluster.name,
                port=spec.dashboard_port,
                joining=node.cluster.standalone,
            )

    def _bin_emqx(
        self, record: PodRecord, pod: dict[str, Any], source: ObjectSource, entry: tuple[str, int]
    ) -> NodeSpec | None:
        """The container's environment and image, then bin/emqx's reading of the configuration: the
        node's spec, or None when the container cannot start or EMQX exited (recorded on `record`)."""
        try:
            runtime = resolve_container(pod, source)
            versions.parse_image(runtime.image)
        except ContainerConfigError as error:
            with self.lock:
                if not self._stale(record, entry):
                    waiting = (
                        "CreateContainerConfigError" if "CreateContainerConfig" in str(error) else "ContainerCreating"
                    )
                    self._cannot_start(record, waiting, str(error))
            return None
        except versions.ImageError as error:
            with self.lock:
                if not self._stale(record, entry):
                    self._cannot_start(record, "ErrImagePull", str(error))
            return None
        with self.lock:
            if self._stale(record, entry):
                return None
            if record.state not in ("waiting", "starting", "hung"):
                record.started_at = time.time()
        try:
            return build_node_spec(runtime)
        except BootFailure as failure:
            with self.lock:
                if not self._stale(record, entry):
                    self._exited(record, failure)
            return None

    def _cannot_start(self, record: PodRecord, waiting_reason: str, reason: str) -> None:
        changed = (record.state, record.reason) != ("failed", reason)
        record.state, record.reason, record.waiting_reason = "failed", reason, waiting_reason
        record.next_attempt = self.monotonic() + self.retry_interval
        if changed:
            self.record_event("boot_failed", record, reason=reason, waiting=waiting_reason)

    def _exited(self, record: PodRecord, failure: BootFailure) -> None:
        """The EMQX process ended while booting: a terminated container, restarted later."""
        self._print(record, failure.log_lines)
        changed = (record.state, record.reason) != ("failed", failure.reason)
        record.state, record.reason, record.waiting_reason = "failed", failure.reason, ""
        record.termination = Termination(
            exit_code=failure.exit_code,
            message=failure.reason,
            log_tail=failure.log_lines[-20:],
            started_at=record.started_at or time.time(),
            finished_at=time.time(),
        )
        record.restart_count += 1
        record.next_attempt = self.monotonic() + self.restart_delay(record.restart_count)
        if changed:
            self.record_event(
                "boot_failed",
                record,
                reason=failure.reason,
                exit_code=failure.exit_code,
                log_tail=failure.log_lines[-5:],
            )

    def _boot_waiting(self, record: PodRecord, reason: str) -> None:
        changed = (record.state, record.reason) != ("waiting", reason)
        record.state, record.reason, record.waiting_reason = "waiting", reason, ""
        record.next_attempt = self.monotonic() + self.retry_interval
        if changed:
            self.record_event("boot_waiting", record, reason=reason)

    def _cluster_for(self, spec: NodeSpec) -> ClusterState:
        key = ClusterKey(spec.cookie, spec.cluster_name, spec.discovery.strategy, spec.discovery.scope)
        cluster = self.clusters.get(key)
        if cluster is None:
            cluster = self.clusters[key] = ClusterState(key)
        return cluster

    @staticmethod
    def _describe(nodes: Iterable[SimNode]) -> str:
        return ", ".join(f"{node.name}={versions.format_version(node.version)}" for node in nodes) or "none"

    def _upstream_cores(self, spec: NodeSpec, cluster: ClusterState) -> list[SimNode]:
        """Cores a replicant can replicate from (mria_lb with emqx_machine's custom check, 5.6+)."""
        cores = cluster.cores()
        if spec.image.at_least(versions.REPLICANT_SAME_APP_VSN):
            return [core for core in cores if core.spec.image.emqx_app_vsn == spec.image.emqx_app_vsn]
        return cores

    def _check_peers(self, spec: NodeSpec, cluster: ClusterState) -> None:
        for peer in cluster.running():
            if peer.name == spec.node_name:
                raise BootFailure(f"node name {spec.node_name} is already used by a running node ({peer.spec.pod.key})")
        wait = self._replicant_wait(spec, cluster)
        if wait is not None:
            raise BootWait(wait)

    def _replicant_wait(self, spec: NodeSpec, cluster: ClusterState) -> str | None:
        """Why a replicant cannot go on yet, or None. emqx_conf, the first application emqx_machine_boot
        starts, waits for its tables (mria:wait_for_tables) and copies cluster.hocon from a core: a
        replicant stops there until it has a core to replicate from, older or as old as itself."""
        if spec.role != "replicant":
            return None
        cores = cluster.cores()
        if not self._upstream_cores(spec, cluster):
            if spec.image.at_least(versions.REPLICANT_SAME_APP_VSN) and cores:
                return (
                    f"replicant waiting for a running core of the same emqx application version "
                    f"{spec.image.emqx_app_vsn} (running cores: {self._describe(cores)})"
                )
            return "replicant waiting for a running core node to replicate from"
        if not any(core.version <= spec.version for core in cores):
            return "replicant waiting for a core to copy cluster.hocon from (all running cores are newer)"
        return None

    def _data_dir(self, record: PodRecord, spec: NodeSpec) -> DataDir:
        key = spec.data_storage_key or f"container:{record.uid}:{record.generation}"
        data_dir = self.data_dirs.get(key)
        if data_dir is None:
            data_dir = self.data_dirs[key] = DataDir(key)
        if data_dir.override_file is None:
            new = spec.image.at_least(versions.CLUSTER_HOCON)
            data_dir.override_file = "cluster.hocon" if new else "cluster-override.conf"
        return data_dir

    def effective_license(self, spec: NodeSpec, cluster_hocon: Mapping[str, Any]) -> str:
        """license.key the node runs with: emqx.conf/env, else the cluster's (synced), else "default"."""
        local = get_path(spec.local_config, "license.key")
        if local is not None:
            return str(local)
        synced = get_path(cluster_hocon, "license.key")
        return str(synced) if synced is not None else "default"

    def _admit(self, record: PodRecord, spec: NodeSpec) -> SimNode:
        cluster = self._cluster_for(spec)
        self._check_peers(spec, cluster)
        data_dir = self._data_dir(record, spec)
        rebalance = versions.has_rebalance_api(spec.image)
        if data_dir.evacuation is not None and rebalance and not spec.image.at_least(versions.EVACUATION_RESUME):
            # #12871: emqx_node_rebalance started before emqx_eviction_agent and crashed restoring
            # the evacuation from data/.evacuation
            raise _app_start_failure(
                "emqx_node_rebalance",
                Tuple((Atom("emqx_node_rebalance"), Tuple((Atom("bad_return"), Atom("noproc"))))),
                [f"{log_time()} [warning] msg: restoring_evacuation_state"],
            )
        # Config sync: copy cluster.hocon from the core with the highest tnx_id; never from a newer release.
        sources = [core for core in cluster.cores() if core.version <= spec.version]
        if sources:
            best = max(sources, key=lambda core: (self._core_data(core).tnx_id, core.uptime_ms()))
            best_dir = self._core_data(best)
            data_dir.cluster_hocon = copy.deepcopy(best_dir.cluster_hocon)
            data_dir.tnx_id = best_dir.tnx_id
        fresh_core = spec.role == "core" and not data_dir.members and bool(cluster.nodes)
        target = cluster
        peers_running = len(cluster.nodes) + 1
        if spec.image.at_least(versions.SINGLE_NODE_LICENSE):
            key = self.effective_license(spec, data_dir.cluster_hocon)
            single = key == "default"
            peer_single = [
                peer
                for peer in cluster.running()
                if peer.spec.image.at_least(versions.SINGLE_NODE_LICENSE) and peer.license_key == "default"
            ]
            if peers_running > 1 and (single or peer_single):
                raise _app_start_failure("emqx_license", Charlist(SINGLE_NODE_LICENSE_ERROR), [])
        else:
            key = self.effective_license(spec, data_dir.cluster_hocon) if "license" in schema.roots(spec.image) else ""
        layers = configmodel.Layers(
            defaults=schema.defaults(spec.image),
            conf_file=spec.conf_file,
            env=spec.env_layer,
            cluster=data_dir.cluster_hocon,
            deprecated_order=data_dir.deprecated_order,
        )
        running_config = configmodel.running_config(spec.image, layers)
        # The bootstrap API key file: every node until 5.8.2, cores only from 5.8.3; a load error
        # stops the node before 5.7.2.
        loads_keys = spec.role == "core" or not spec.image.at_least(versions.BOOTSTRAP_CORE_ONLY)
        keys, key_lines, key_error = self._read_bootstrap_keys(spec) if loads_keys else ({}, [], None)
        self._print(record, spec.boot_lines + key_lines)
        if key_error is not None and not spec.image.at_least(versions.BOOTSTRAP_ERRORS_NONFATAL):
            raise _app_start_failure("emqx_management", key_error, [])
        if fresh_core:
            cluster = ClusterState(
                ClusterKey(spec.cookie, spec.cluster_name, "standalone", (spec.node_name,)), standalone=True
            )
        if not cluster.nodes:
            # First node up: the cluster's replicated tables are whatever this core has on disk.
            cluster.members = set(data_dir.members)
            cluster.api_keys = copy.deepcopy(data_dir.api_keys)
            cluster.admins = dict(data_dir.admins)
            cluster.tokens = {}
        node = SimNode(
            spec=spec,
            cluster=cluster,
            clock=self.clock,
            running_config=running_config,
            booted_at=self.clock.now(),
            pod_uid=record.uid,
            data_dir_key=data_dir.key,
            license_key=key,
        )
        spec.dashboard_port = dashboard_port(spec.image, running_config)
        self._start_server(node)
        cluster.nodes[spec.node_name] = node
        if spec.role == "core":
            cluster.members.add(spec.node_name)
        for api_key, entry in keys.items():
            cluster.api_keys[api_key] = entry
        cluster.admins.setdefault("admin", spec.dashboard_password)
        data_dir.release = spec.version
        if data_dir.evacuation is not None and rebalance:
            node.start_evacuation(data_dir.evacuation, resumed=True)
            self._print(record, ["Node evacuation is enabled. The node will not receive connections."])
            log.warning("%s: Node evacuation is enabled. The node will not receive connections.", spec.node_name)
        self._print(record, self._started_lines(node))
        self._persist_cluster(cluster)
        if fresh_core:
            low, high = self.join_delay
            self._joins.append(_Join(node, record, self.monotonic() + random.uniform(low, high)))
            if high <= 0:
                self._join(self._joins.pop(), target)
        else:
            self._check_replicants(cluster)
        return node

    def _start_server(self, node: SimNode) -> None:
        spec = node.spec
        if not spec.dashboard_port:
            log.warning("%s: no dashboard HTTP listener configured; the node serves no API", spec.node_name)
            return
        if self.server_factory is None:
            return
        try:
            node.server = self.server_factory(node, self)
        except OSError as error:
            raise BootFailure(
                f"failed to start dashboard listener on {spec.pod.ip}:{spec.dashboard_port}: {error}"
            ) from None

    def _started_lines(self, node: SimNode) -> list[str]:
        lines = []
        for item in node.listeners():
            if item["running"]:
                lines.append(f"Listener {item['id']} on {item['bind']} started.")
        if node.spec.dashboard_port:
            lines.append(f"Listener http:dashboard on :{node.spec.dashboard_port} started.")
        description = "EMQX Enterprise" if node.spec.image.enterprise else "EMQX"
        lines.append(f"{description} {versions.format_version(node.version)} is running now!")
        return lines

    def _read_bootstrap_keys(self, spec: NodeSpec) -> tuple[dict[str, dict[str, Any]], list[str], Any]:
        """emqx_mgmt_auth:init_bootstrap_file/1: the keys, the log lines, and the error if any (the
        lines before the first bad one are kept)."""
        keys: dict[str, dict[str, Any]] = {}
        if not spec.image.at_least(versions.BOOTSTRAP_FILE) or not spec.bootstrap_file:
            return keys, [], None
        path = spec.bootstrap_file
        try:
            text = spec.read_file(path)
        except OSError as error:
            posix = "eisdir" if isinstance(error, IsADirectoryError) else "enoent"
            explained = _POSIX[posix]
            line = f"{log_time()} [error] msg: failed_to_open_the_bootstrap_file, file: {path}, reason: {explained}"
            return keys, [line], Charlist(explained)
        with_roles = spec.image.at_least(versions.BOOTSTRAP_ROLE)
        pattern = _BOOTSTRAP_LINE_SINCE_5_4 if with_roles else _BOOTSTRAP_LINE_BEFORE_5_4
        allowed_roles = (
            ("administrator", "viewer", "publisher") if versions.has_rbac(spec.image) else ("administrator",)
        )
        skip_blank = spec.image.at_least(versions.BOOTSTRAP_BLANK_LINES_SKIPPED)
        raw_lines = text.split("\n")
        if raw_lines and raw_lines[-1] == "":
            raw_lines.pop()
        for number, raw_line in enumerate(raw_lines, start=1):
            line = raw_line.strip() if skip_blank else raw_line.rstrip("\r")
            if skip_blank and not line:
                continue
            match = pattern.match(line)
            reason: Any = None
            if not match:
                reason = Charlist("invalid_format")
            else:
                role = (match.group(3) if with_roles else None) or "administrator"
                if role not in allowed_roles:
                    reason = Tuple((Charlist("invalid_role"), Binary(role)))
            if reason is not None:
                content = Binary(raw_line + "\n")
                failure = {
                    Atom("file"): Binary(path),
                    Atom("line"): number,
                    Atom("content"): content,
                    Atom("reason"): reason,
                }
                message = (
                    f"{log_time()} [error] msg: failed_to_load_bootstrap_file, file: {path}, line: {number}, "
                    f"content: {format_0p(content)}, reason: {format_0p(reason)}"
                )
                return keys, [message], failure
            assert match is not None
            api_key, secret = match.group(1), match.group(2)
            keys[api_key] = {
                "name": _bootstrap_key_name(api_key),
                "api_key": api_key,
                "api_secret": secret,
                "role": (match.group(3) if with_roles else None) or "administrator",
                "enable": True,
                "desc": "Bootstrapped From File",
                "expired_at": "infinity",
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            }
        return keys, [], None

    def _core_data(self, node: SimNode) -> DataDir:
        return self.data_dirs[node.data_dir_key]

    def _persist_cluster(self, cluster: ClusterState) -> None:
        """Mnesia disc copies: every running core keeps the replicated tables in its data dir."""
        if cluster.standalone:
            return
        for core in cluster.cores():
            data_dir = self._core_data(core)
            data_dir.members = set(cluster.members)
            data_dir.api_keys = copy.deepcopy(cluster.api_keys)
            data_dir.admins = dict(cluster.admins)

    # ------------------------------------------------------------------ timers

    def tick(self) -> None:
        """Run what is due: fresh cores joining their cluster."""
        now = self.monotonic()
        to_restart: list[SimNode] = []
        with self.lock:
            due = [join for join in self._joins if join.due <= now]
            self._joins = [join for join in self._joins if join.due > now]
            for join in due:
                node = join.node
                if not node.alive or join.record.node is not node:
                    continue
                key = ClusterKey(
                    node.spec.cookie, node.spec.cluster_name, node.spec.discovery.strategy, node.spec.discovery.scope
                )
                target = self.clusters.get(key)
                if target is None or not target.nodes:
                    # the peers went away: this core is the cluster now
                    target = self._cluster_for(node.spec)
                self._join(join, target)
                if node.server is not None and self.join_restart > 0:
                    to_restart.append(node)
        for node in to_restart:
            threading.Thread(target=self._restart_listener, args=(node,), daemon=True).start()

    def _join(self, join: _Join, target: ClusterState) -> None:
        """ekka autocluster joins the oldest node: mria copies the cluster's tables, the apps restart
        and sync cluster.hocon from a core, the bootstrap key file is loaded again."""
        node = join.node
        solo = node.cluster
        solo.nodes.pop(node.name, None)
        node.cluster = target
        target.nodes[node.name] = node
        target.members.add(node.name)
        data_dir = self.data_dirs[node.data_dir_key]
        sources = [core for core in target.cores() if core is not node and core.version <= node.version]
        if sources:
            best = max(sources, key=lambda core: (self._core_data(core).tnx_id, core.uptime_ms()))
            data_dir.cluster_hocon = copy.deepcopy(self._core_data(best).cluster_hocon)
            data_dir.tnx_id = self._core_data(best).tnx_id
            layers = configmodel.Layers(
                defaults=schema.defaults(node.spec.image),
                conf_file=node.spec.conf_file,
                env=node.spec.env_layer,
                cluster=data_dir.cluster_hocon,
                deprecated_order=data_dir.deprecated_order,
            )
            node.running_config = configmodel.running_config(node.spec.image, layers)
        for api_key, entry in solo.api_keys.items():
            if entry.get("desc") == "Bootstrapped From File":
                target.api_keys[api_key] = entry
        target.admins.setdefault("admin", node.spec.dashboard_password)
        self._persist_cluster(target)
        self.record_event("joined", join.record, cluster=target.name, peers=len(target.nodes) - 1)
        self._check_replicants(target)

    def _restart_listener(self, node: SimNode) -> None:
        """The apps restart after the join: the dashboard listener is down for a moment."""
        with self.lock:
            server = node.server
            node.server = None
        if server is not None:
            server.stop()
        time.sleep(self.join_restart)
        with self.lock:
            if not node.alive or self.server_factory is None:
                return
            try:
                node.server = self.server_factory(node, self)
            except OSError as error:
                log.error("%s: dashboard listener failed to restart after the join: %s", node.name, error)

    def _check_replicants(self, cluster: ClusterState) -> None:
        """mria_lb re-checks upstream cores all the time: a 5.6+ replicant left without a core of its
        own emqx application version stops replicating (stale config and keys) until one returns.
        From 5.8.2 emqx_machine_replicant_health_probe also logs a warning naming the known cores
        (every 30 s in EMQX; here each time the set of cores changes)."""
        for node in cluster.running():
            if node.role != "replicant":
                continue
            record = self.find_record(node.name)
            upstream = bool(self._upstream_cores(node.spec, cluster))
            if not upstream and record is not None and node.spec.image.at_least(versions.REPLICANT_HEALTH_PROBE):
                warning = self._no_core_at_same_version(cluster)
                if warning != node.last_probe_warning:
                    node.last_probe_warning = warning
                    self._print(record, [f"{log_time()} [warning] {warning}"])
            if upstream:
                node.last_probe_warning = ""
            if upstream == (not node.degraded):
                continue
            node.degraded = not upstream
            if record is None:
                continue
            if node.degraded:
                self.record_event(
                    "replicant_degraded",
                    record,
                    reason=f"no running core of emqx application version {node.spec.image.emqx_app_vsn} "
                    f"(running cores: {self._describe(cluster.cores())})",
                )
            else:
                self.record_event("replicant_recovered", record)

    @staticmethod
    def _no_core_at_same_version(cluster: ClusterState) -> str:
        """The text of emqx_machine_replicant_health_probe's warning: known cores are mria's core
        nodes (running ones with their emqx app vsn, stopped members with the erpc failure)."""
        known = {
            core.name: f"#{{version => {format_0p(Charlist(core.spec.image.emqx_app_vsn))}}}"
            for core in cluster.cores()
        }
        for name in cluster.stopped_cores():
            known[name] = "#{probe_failure => {error,{erpc,noconnection}}}"
        entries = ",".join(f"'{name}' => {value}" for name, value in sorted(known.items()))
        return (
            "msg: no_available_core_node_at_same_version, hint: There are no core EMQX nodes running the same "
            "version as this node. If you are performing a rolling upgrade, please keep different core node "
            "versions (both old and new) around until all replicant nodes are migrated., "
            f"known_cores: #{{{entries}}}"
        )

    # ------------------------------------------------------------------ stopping

    def _stop_record(self, record: PodRecord, event: str, reason: str) -> list[Any]:
        node = record.node
        record.node = None
        record.boot_spec = None
        if node is None:
            if record.state in ("starting", "waiting", "hung"):
                # its container ends before EMQX came up: this boot never reports `booted`
                self.record_event("boot_aborted", record, reason=reason, stage=record.state, stop=event)
            return []
        node.alive = False
        cluster = node.cluster
        if cluster.nodes.get(node.name) is node:
            del cluster.nodes[node.name]
        record.generation += 1
        self.record_event(event, record, reason=reason, role=node.role, version=versions.format_version(node.version))
        self._check_replicants(cluster)
        return [node.server] if node.server is not None else []

    @staticmethod
    def stop_servers(servers: Iterable[Any]) -> None:
        for server in servers:
            server.stop()

    def stop_node(self, ident: str, crash: bool = False, restart_after: float | None = None) -> dict[str, Any]:
        with self.lock:
            record = self._require(ident)
            servers = self._stop_record(record, "crashed" if crash else "stopped", "control API")
            record.state = "crashed" if crash else "stopped"
            record.reason = "crashed by control API" if crash else "stopped by control API"
            record.restart_at = self.monotonic() + restart_after if restart_after is not None else None
            summary = record.summary()
        self.stop_servers(servers)
        return summary

    def start_node(self, ident: str) -> dict[str, Any]:
        with self.lock:
            record = self._require(ident)
            if record.state in ("stopped", "crashed"):
                record.state, record.next_attempt, record.restart_at = "pending", 0.0, None
            return record.summary()

    def stop_all(self) -> None:
        with self.lock:
            servers: list[Any] = []
            for record in self.pods.values():
                servers += self._stop_record(record, "stopped", "simulator shutting down")
        self.stop_servers(servers)

    def _require(self, ident: str) -> PodRecord:
        record = self.find_record(ident)
        if record is None:
            raise KeyError(f"no simulated node or pod {ident!r}")
        return record

    # ------------------------------------------------------------------ cluster operations (API)

    def force_leave(self, cluster: ClusterState, node_name: str) -> None:
        with self.lock:
            cluster.members.discard(node_name)
            self._persist_cluster(cluster)

    def apply_config(self, cluster: ClusterState, roots: ConfigDict, mode: str) -> list[SimNode]:
        """A cluster-wide config transaction; returns nodes whose dashboard port changed.

        Replicants without an upstream core (degraded) do not receive it.
        """
        rebind: list[SimNode] = []
        with self.lock:
            cores = cluster.cores()
            next_tnx = max((self._core_data(core).tnx_id for core in cores), default=0) + 1
            for node in cluster.running():
                if node.degraded:
                    continue
                known = schema.roots(node.spec.image)
                applicable = {root: value for root, value in roots.items() if root in known}
                defaults = schema.defaults(node.spec.image)
                old_port = node.spec.dashboard_port
                node.running_config = schema.fill(
                    node.spec.image, configmodel.apply_roots(node.running_config, applicable, mode, defaults)
                )
                data_dir = self.data_dirs[node.data_dir_key]
                data_dir.cluster_hocon = configmodel.apply_roots(data_dir.cluster_hocon, applicable, mode, {})
                data_dir.tnx_id = next_tnx
                new_port = dashboard_port(node.spec.image, node.running_config)
                if new_port != old_port:
                    node.spec.dashboard_port = new_port
                    rebind.append(node)
        return rebind

    def import_backup(self, cluster: ClusterState, roots: ConfigDict, tables: Mapping[str, Any]) -> list[SimNode]:
        """Data import: each root a cluster-wide config update (replace, as emqx_conf:update/3 of the
        merged root), then the tables restored with keep_tables (archive records win, others stay)."""
        rebind: list[SimNode] = []
        with self.lock:
            for root, value in roots.items():
                rebind += self.apply_config(cluster, {root: value}, "replace")
            for name, record in (tables.get("emqx_app") or {}).items():
                cluster.api_keys[name] = dict(record)
            for name, password in (tables.get("emqx_admin") or {}).items():
                cluster.admins[name] = str(password)
            self._persist_cluster(cluster)
        return rebind

    def persist_cluster(self, cluster: ClusterState) -> None:
        with self.lock:
            self._persist_cluster(cluster)

    def backup_dir(self, node: SimNode) -> DataDir:
        return self.data_dirs[node.data_dir_key]

    # ------------------------------------------------------------------ faults and control

    def add_fault(
        self,
        node: str | None,
        status: int | None,
        delay: float,
        path_prefix: str,
        count: int | None,
        drop: bool,
        namespace: str | None = None,
    ) -> Fault:
        with self.lock:
            fault = Fault(self._next_fault_id, node, status, delay, path_prefix, count, drop, namespace)
            self._next_fault_id += 1
            self.faults.append(fault)
            return fault

    def clear_faults(self, node: str | None = None, namespace: str | None = None) -> None:
        """Remove every fault, those targeted at `node`, or those scoped to `namespace`."""
        with self.lock:
            if namespace is not None:
                self.faults = [fault for fault in self.faults if fault.namespace != namespace]
            else:
                self.faults = [fault for fault in self.faults if node is not None and fault.node != node]

    # ------------------------------------------------------------------ data directories across restarts

    def save_data(self, path: Path) -> None:
        """Write the nodes' data directories (what a volume keeps) so that a new simulator finds them."""
        with self.lock:
            payload = pickle.dumps(self.data_dirs)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)

    def load_data(self, path: Path) -> int:
        """Take the data directories a previous simulator saved; returns how many."""
        try:
            data_dirs = pickle.loads(path.read_bytes())  # noqa: S301 - our own file, in the sandbox directory
        except FileNotFoundError:
            return 0
        with self.lock:
            self.data_dirs.update(data_dirs)
        return len(data_dirs)

    def fault_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [fault.as_dict() for fault in self.faults]

    def take_fault(self, node: SimNode, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(node.name, node.spec.pod.key, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def set_connections(self, ident: str, connections: int, live_connections: int | None) -> dict[str, Any]:
        with self.lock:
            record = self._require(ident)
            if record.node is None:
                raise KeyError(f"{ident!r} is not running")
            record.node.sessions = connections
            record.node.live_connections = connections if live_connections is None else live_connections
            return record.summary()

    def node_status(self) -> list[dict[str, Any]]:
        with self.lock:
            return [record.summary() for record in self.pods.values()]

    def cluster_status(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "name": cluster.name,
                    "cookie_hash": hashlib.sha256(cluster.key.cookie.encode()).hexdigest()[:12],
                    "discovery": [cluster.key.strategy, *cluster.key.scope],
                    "running": [node.name for node in cluster.running()],
                    "stopped_cores": cluster.stopped_cores(),
                    "api_keys": sorted(cluster.api_keys),
                }
                for cluster in self.clusters.values()
                if cluster.nodes or cluster.members
            ]
