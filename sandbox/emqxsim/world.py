"""All simulated EMQX state: pods, nodes, clusters, data directories, faults and observations.

Everything here is thread-safe behind one lock and free of Kubernetes: pods come in as dicts,
ConfigMaps and Secrets through an ObjectSource. `observe_pod` records what the kubelet would run,
`boot_due` boots (or retries) what is due, the way a restarting container would.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import configmodel, versions
from .hocon import ConfigDict
from .node import SimClock, SimNode
from .nodespec import BootError, NodeSpec, build_node_spec, config_roots
from .podspec import ContainerConfigError, ObjectSource, emqx_container, resolve_container

log = logging.getLogger("emqxsim")

INSTANCE_LABEL = "apps.emqx.io/instance"


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
    release: versions.Version | None = None


@dataclass
class ClusterState:
    key: ClusterKey
    nodes: dict[str, SimNode] = field(default_factory=dict)
    # Cores that joined and have not been force-left: listed as stopped while not running.
    members: set[str] = field(default_factory=set)
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    admins: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)

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
class PodRecord:
    uid: str
    namespace: str
    name: str
    pod: dict[str, Any]
    image: str
    # pending | waiting | failed | hung | running | stopped | crashed
    state: str = "pending"
    node: SimNode | None = None
    node_name: str | None = None
    reason: str = ""
    next_attempt: float = 0.0
    restart_at: float | None = None
    generation: int = 0
    booting: bool = False
    observed_ready: bool | None = None

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
            "ready": self.observed_ready,
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

    def matches(self, node_name: str, pod_key: str, path: str) -> bool:
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
        }


ServerFactory = Callable[[SimNode, "World"], Any]

_BOOTSTRAP_LINE_SINCE_5_4 = re.compile(r"^(.+?):(.+?)(?::(.+?))?$")
_BOOTSTRAP_LINE_BEFORE_5_4 = re.compile(r"^(.+?):(.+)$")


def _bootstrap_key_name(api_key: str) -> str:
    return "from_bootstrap_file_" + hashlib.sha512(api_key.encode()).hexdigest()[:16]


class World:
    def __init__(
        self,
        clock: SimClock | None = None,
        retry_interval: float = 1.0,
        server_factory: ServerFactory | None = None,
    ):
        self.lock = threading.RLock()
        self.clock = clock or SimClock()
        self.retry_interval = retry_interval
        self.server_factory = server_factory
        self.pods: dict[str, PodRecord] = {}
        self.clusters: dict[ClusterKey, ClusterState] = {}
        self.data_dirs: dict[str, DataDir] = {}
        self.events: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.never_boot_images: set[str] = set()
        self.request_counts: dict[str, Counter[str]] = {}
        self.known_node_names: set[str] = set()
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
        text = " ".join(f"{key}={value}" for key, value in entry.items() if key not in ("seq", "time") and value)
        log.log(logging.WARNING if event in ("boot_failed", "crashed") else logging.INFO, text)

    def count_request(self, node_name: str, method: str, path: str) -> None:
        with self.lock:
            self.request_counts.setdefault(node_name, Counter())[f"{method} {path}"] += 1

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

    # ------------------------------------------------------------------ booting

    def due_records(self) -> list[PodRecord]:
        now = time.monotonic()
        with self.lock:
            due = []
            for record in self.pods.values():
                if record.booting:
                    continue
                retry_due = record.state in ("pending", "waiting", "failed") and record.next_attempt <= now
                unhung = record.state == "hung" and record.image not in self.never_boot_images
                restart_due = record.state == "crashed" and record.restart_at is not None and record.restart_at <= now
                container_start = (retry_due and record.state != "waiting") or restart_due
                if container_start and self.container_gate is not None and not self.container_gate(record):
                    continue
                if retry_due or unhung or restart_due:
                    due.append(record)
            for record in due:
                record.booting = True
            return due

    def boot_due(self, source_for: Callable[[str], ObjectSource]) -> None:
        """Boot every pod that is due; `source_for(namespace)` reads ConfigMaps/Secrets like the kubelet."""
        for record in self.due_records():
            try:
                self._boot(record, source_for(record.namespace))
            finally:
                with self.lock:
                    record.booting = False

    def _boot(self, record: PodRecord, source: ObjectSource) -> None:
        with self.lock:
            if record.uid not in self.pods:
                return
            if record.image in self.never_boot_images:
                if record.state != "hung":
                    record.state, record.reason = "hung", "image configured never to boot"
                    self.record_event("boot_hung", record, reason=record.reason)
                return
            pod = copy.deepcopy(record.pod)
        try:
            runtime = resolve_container(pod, source)
            spec = build_node_spec(runtime)
        except (ContainerConfigError, versions.ImageError, BootError) as error:
            with self.lock:
                self._boot_failed(record, "failed", str(error))
            return
        with self.lock:
            if record.uid not in self.pods or record.pod.get("metadata", {}).get("uid") != pod["metadata"].get("uid"):
                return
            record.node_name = spec.node_name
            self.known_node_names.add(spec.node_name)
            try:
                node = self._admit(record, spec)
            except BootWait as wait:
                self._boot_failed(record, "waiting", str(wait))
                return
            except BootError as error:
                self._boot_failed(record, "failed", str(error))
                return
            record.node, record.state, record.reason, record.restart_at = node, "running", "", None
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
            )

    def _boot_failed(self, record: PodRecord, state: str, reason: str) -> None:
        changed = (record.state, record.reason) != (state, reason)
        record.state, record.reason = state, reason
        record.next_attempt = time.monotonic() + self.retry_interval
        if changed:
            self.record_event("boot_waiting" if state == "waiting" else "boot_failed", record, reason=reason)

    def _cluster_for(self, spec: NodeSpec) -> ClusterState:
        key = ClusterKey(spec.cookie, spec.cluster_name, spec.discovery.strategy, spec.discovery.scope)
        cluster = self.clusters.get(key)
        if cluster is None:
            cluster = self.clusters[key] = ClusterState(key)
        return cluster

    def _check_peers(self, spec: NodeSpec, cluster: ClusterState) -> None:
        peers = cluster.running()
        for peer in peers:
            if peer.name == spec.node_name:
                raise BootError(f"node name {spec.node_name} is already used by a running node ({peer.spec.pod.key})")
            if not versions.can_cluster_together(peer.version, spec.version):
                raise BootError(
                    f"failed to join cluster: peer {peer.name} runs {versions.format_version(peer.version)}; "
                    f"{versions.format_version(spec.version)} only clusters with the same or an adjacent "
                    "minor release"
                )
        if spec.version >= versions.SINGLE_NODE_LICENSE_SINCE and peers:
            unlicensed_peers = [
                peer for peer in peers if peer.version >= versions.SINGLE_NODE_LICENSE_SINCE and not peer.spec.licensed
            ]
            if not spec.licensed or unlicensed_peers:
                raise BootError(SINGLE_NODE_LICENSE_ERROR)
        if spec.role == "replicant":
            cores = cluster.cores()
            if spec.version >= versions.REPLICANT_SAME_VERSION_CORE_SINCE:
                if not any(core.version == spec.version for core in cores):
                    release = versions.format_version(spec.version)
                    raise BootWait(
                        f"replicant waiting for a running core of release {release}"
                        f" (running cores: {self._describe(cores)})"
                    )
            elif not cores:
                raise BootWait("replicant waiting for a running core node to replicate from")

    @staticmethod
    def _describe(nodes: Iterable[SimNode]) -> str:
        return ", ".join(f"{node.name}={versions.format_version(node.version)}" for node in nodes) or "none"

    def _data_dir(self, record: PodRecord, spec: NodeSpec) -> DataDir:
        key = spec.data_storage_key or f"container:{record.uid}:{record.generation}"
        data_dir = self.data_dirs.get(key)
        if data_dir is None:
            data_dir = self.data_dirs[key] = DataDir(key)
        return data_dir

    def _admit(self, record: PodRecord, spec: NodeSpec) -> SimNode:
        cluster = self._cluster_for(spec)
        self._check_peers(spec, cluster)
        data_dir = self._data_dir(record, spec)
        rebalance = versions.has_rebalance_api(spec.image.edition, spec.version)
        if data_dir.evacuation is not None and rebalance and spec.version < versions.EVACUATION_RESUME_SINCE:
            raise BootError(
                "emqx_node_rebalance failed to start: data/.evacuation present (evacuation in progress "
                "before the restart); this release cannot resume it (fixed in e5.7.0, #12871)"
            )
        # Config sync: copy cluster.hocon from the core with the highest tnx_id; never from a newer release.
        sources = [core for core in cluster.cores() if core.version <= spec.version]
        if spec.role == "replicant" and not sources:
            raise BootWait("replicant waiting for a core to copy cluster.hocon from (all running cores are newer)")
        if sources:
            best = max(sources, key=lambda core: (self._core_data(core).tnx_id, core.uptime_ms()))
            best_dir = self._core_data(best)
            data_dir.cluster_hocon = copy.deepcopy(best_dir.cluster_hocon)
            data_dir.tnx_id = best_dir.tnx_id
        if not cluster.nodes:
            # First node up: the cluster's replicated tables are whatever this core has on disk.
            cluster.members = set(data_dir.members)
            cluster.api_keys = copy.deepcopy(data_dir.api_keys)
            cluster.admins = dict(data_dir.admins)
            cluster.tokens = {}
        enterprise = spec.image.reported_edition is versions.Edition.ENTERPRISE
        node = SimNode(
            spec=spec,
            cluster=cluster,
            clock=self.clock,
            running_config=configmodel.running_config(enterprise, data_dir.cluster_hocon, spec.local_config),
            booted_at=self.clock.now(),
            pod_uid=record.uid,
            data_dir_key=data_dir.key,
        )
        if spec.dashboard_port:
            if self.server_factory is not None:
                try:
                    node.server = self.server_factory(node, self)
                except OSError as error:
                    raise BootError(
                        f"failed to start dashboard listener on {spec.pod.ip}:{spec.dashboard_port}: {error}"
                    ) from None
        else:
            log.warning("%s: dashboard.listeners.http is disabled; the node serves no API", spec.node_name)
        cluster.nodes[spec.node_name] = node
        if spec.role == "core":
            cluster.members.add(spec.node_name)
            self._load_bootstrap_keys(node)
        cluster.admins.setdefault("admin", spec.dashboard_password)
        data_dir.release = spec.version
        if data_dir.evacuation is not None and rebalance:
            node.start_evacuation(data_dir.evacuation, resumed=True)
            log.warning("%s: Node evacuation is enabled. The node will not receive connections.", spec.node_name)
        self._persist_cluster(cluster)
        return node

    def _core_data(self, node: SimNode) -> DataDir:
        return self.data_dirs[node.data_dir_key]

    def _persist_cluster(self, cluster: ClusterState) -> None:
        """Mnesia disc copies: every running core keeps the replicated tables in its data dir."""
        for core in cluster.cores():
            data_dir = self._core_data(core)
            data_dir.members = set(cluster.members)
            data_dir.api_keys = copy.deepcopy(cluster.api_keys)
            data_dir.admins = dict(cluster.admins)

    def _load_bootstrap_keys(self, node: SimNode) -> None:
        spec = node.spec
        if spec.version < versions.BOOTSTRAP_FILE_SINCE or not spec.bootstrap_file:
            return
        path = spec.bootstrap_file
        try:
            text = spec.read_file(path)
        except OSError as error:
            reason = "eisdir" if isinstance(error, IsADirectoryError) else "enoent"
            log.error("%s: failed_to_open_the_bootstrap_file file=%s reason=%s", spec.node_name, path, reason)
            return
        with_roles = spec.version >= versions.BOOTSTRAP_ROLE_SINCE
        pattern = _BOOTSTRAP_LINE_SINCE_5_4 if with_roles else _BOOTSTRAP_LINE_BEFORE_5_4
        allowed_roles = (
            ("administrator", "viewer", "publisher")
            if versions.has_rbac(spec.image.edition, spec.version)
            else ("administrator",)
        )
        for number, raw_line in enumerate(text.splitlines(), start=1):
            line = raw_line.strip()
            if not line:
                continue
            match = pattern.match(line)
            if not match:
                log.error(
                    "%s: failed_to_load_bootstrap_file file=%s line=%d reason=invalid_format",
                    spec.node_name,
                    path,
                    number,
                )
                return
            api_key, secret = match.group(1), match.group(2)
            role = (match.group(3) if with_roles else None) or "administrator"
            if role not in allowed_roles:
                log.error(
                    "%s: failed_to_load_bootstrap_file file=%s line=%d reason=invalid_role %s",
                    spec.node_name,
                    path,
                    number,
                    role,
                )
                return
            node.cluster.api_keys[api_key] = {
                "name": _bootstrap_key_name(api_key),
                "api_key": api_key,
                "api_secret": secret,
                "role": role,
                "enable": True,
                "desc": "Bootstrapped From File",
                "expired_at": "infinity",
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            }

    # ------------------------------------------------------------------ stopping

    def _stop_record(self, record: PodRecord, event: str, reason: str) -> list[Any]:
        node = record.node
        record.node = None
        if node is None:
            return []
        node.alive = False
        cluster = node.cluster
        if cluster.nodes.get(node.name) is node:
            del cluster.nodes[node.name]
        record.generation += 1
        self.record_event(event, record, reason=reason, role=node.role, version=versions.format_version(node.version))
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
            record.restart_at = time.monotonic() + restart_after if restart_after is not None else None
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
        """A cluster-wide config transaction; returns nodes whose dashboard port changed."""
        rebind: list[SimNode] = []
        with self.lock:
            cores = cluster.cores()
            next_tnx = max((self._core_data(core).tnx_id for core in cores), default=0) + 1
            for node in cluster.running():
                enterprise = node.edition is versions.Edition.ENTERPRISE
                defaults = configmodel.schema_defaults(enterprise)
                known = config_roots(node.spec.image)
                applicable = {root: value for root, value in roots.items() if root in known}
                old_port = node.spec.dashboard_port
                node.running_config = configmodel.apply_roots(node.running_config, applicable, mode, defaults)
                data_dir = self.data_dirs[node.data_dir_key]
                data_dir.cluster_hocon = configmodel.apply_roots(data_dir.cluster_hocon, applicable, mode, {})
                data_dir.tnx_id = next_tnx
                bind = ((node.running_config.get("dashboard") or {}).get("listeners") or {}).get("http") or {}
                port_text = str(bind.get("bind", old_port)).rsplit(":", 1)[-1]
                if port_text.isdigit() and int(port_text) != old_port and int(port_text) > 0:
                    node.spec.dashboard_port = int(port_text)
                    rebind.append(node)
        return rebind

    # ------------------------------------------------------------------ faults and control

    def add_fault(
        self,
        node: str | None,
        status: int | None,
        delay: float,
        path_prefix: str,
        count: int | None,
        drop: bool,
    ) -> Fault:
        with self.lock:
            fault = Fault(self._next_fault_id, node, status, delay, path_prefix, count, drop)
            self._next_fault_id += 1
            self.faults.append(fault)
            return fault

    def clear_faults(self, node: str | None = None) -> None:
        with self.lock:
            self.faults = [fault for fault in self.faults if node is not None and fault.node != node]

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
