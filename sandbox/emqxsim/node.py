"""A running simulated EMQX node: reported data, connections and the evacuation state machine."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import schema, versions
from .hocon import ConfigDict
from .nodespec import NodeSpec

if TYPE_CHECKING:
    from .rebalance import Rebalance
    from .world import ClusterState


class SimClock:
    """Monotonic seconds that tests can speed up (evacuation timers, uptime)."""

    def __init__(self, speed: float = 1.0):
        self._lock = threading.Lock()
        self._speed = speed
        self._base_real = time.monotonic()
        self._base_sim = 0.0

    def now(self) -> float:
        with self._lock:
            return self._base_sim + (time.monotonic() - self._base_real) * self._speed

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        now = self.now()
        with self._lock:
            self._base_real = time.monotonic()
            self._base_sim = now
            self._speed = speed


EVACUATION_DEFAULTS: dict[str, Any] = {
    "conn_evict_rate": 500,
    "sess_evict_rate": 500,
    "wait_health_check": 60.0,
    "wait_takeover": 60.0,
}


@dataclass
class Evacuation:
    started_at: float
    conn_evict_rate: int
    sess_evict_rate: int
    wait_health_check: float
    wait_takeover: float
    migrate_to: list[str] | None
    initial_connected: int
    initial_sessions: int
    # Resumed from data/.evacuation at boot: starts straight in evicting_conns.
    resumed: bool = False

    def persisted_options(self) -> dict[str, Any]:
        return {
            "conn_evict_rate": self.conn_evict_rate,
            "sess_evict_rate": self.sess_evict_rate,
            "wait_health_check": self.wait_health_check,
            "wait_takeover": self.wait_takeover,
            "migrate_to": self.migrate_to,
        }

    def progress(self, now: float, has_recipients: bool) -> tuple[str, int, int]:
        """(state, current_connected, current_sessions).

        As in EMQX, each eviction state evicts `rate` clients on entry and again every second, and moves on
        at the first tick that finds nothing left.
        """
        elapsed = now - self.started_at
        health_wait = 0.0 if self.resumed else self.wait_health_check
        if elapsed < health_wait:
            return "waiting_health_check", self.initial_connected, self.initial_sessions
        elapsed -= health_wait
        conn_seconds = max(1, math.ceil(self.initial_connected / self.conn_evict_rate))
        if elapsed < conn_seconds:
            evicted = (int(elapsed) + 1) * self.conn_evict_rate
            return "evicting_conns", max(0, self.initial_connected - evicted), self.initial_sessions
        elapsed -= conn_seconds
        if elapsed < self.wait_takeover:
            return "waiting_takeover", 0, self.initial_sessions
        elapsed -= self.wait_takeover
        if not has_recipients and self.initial_sessions > 0:
            # No node to migrate sessions to: EMQX retries every 30 s, forever.
            return "evicting_sessions", 0, self.initial_sessions
        sess_seconds = max(1, math.ceil(self.initial_sessions / self.sess_evict_rate))
        if elapsed < sess_seconds:
            evicted = (int(elapsed) + 1) * self.sess_evict_rate
            return "evicting_sessions", 0, max(0, self.initial_sessions - evicted)
        return "prohibiting", 0, 0


def _kmg(value: float) -> str:
    for unit, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}"


@dataclass
class SimNode:
    spec: NodeSpec
    cluster: ClusterState
    clock: SimClock
    running_config: ConfigDict
    booted_at: float
    pod_uid: str
    data_dir_key: str = ""
    sessions: int = 0
    live_connections: int = 0
    evacuation: Evacuation | None = None
    # the rebalance this node coordinates (emqx_node_rebalance's gen_statem: memory only)
    rebalance: Rebalance | None = None
    alive: bool = True
    server: Any = None
    # license.key in effect (5.9+: "default" is the single-node community licence)
    license_key: str = ""
    # a 5.6+ replicant whose cores all run another emqx application version: no upstream
    degraded: bool = False
    last_probe_warning: str = ""
    _seed: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._seed = int(hashlib.sha256(self.spec.node_name.encode()).hexdigest()[:8], 16)

    @property
    def name(self) -> str:
        return self.spec.node_name

    @property
    def role(self) -> str:
        return self.spec.role

    @property
    def version(self) -> versions.Version:
        return self.spec.version

    @property
    def edition(self) -> versions.Edition:
        return self.spec.image.reported_edition

    @property
    def has_rebalance_api(self) -> bool:
        return versions.has_rebalance_api(self.spec.image)

    def uptime_ms(self) -> int:
        return max(0, int((self.clock.now() - self.booted_at) * 1000))

    def current_counts(self) -> tuple[int, int]:
        """(sessions, live connections) after any evacuation progress."""
        if self.evacuation is None:
            return self.sessions, self.live_connections
        _, connected, sessions = self.evacuation.progress(self.clock.now(), bool(self.cluster.recipients_for(self)))
        return sessions, connected

    def rebalance_coordinator(self) -> SimNode | None:
        """The coordinator of a running rebalance this node is a donor of (its agent is enabled)."""
        for other in self.cluster.running():
            if other.rebalance is not None and self.name in other.rebalance.donors:
                return other
        return None

    def agent_busy(self) -> bool:
        """The eviction agent is enabled (an evacuation, or a rebalance donor): unavailable for another."""
        return self.evacuation is not None or self.rebalance_coordinator() is not None

    def evacuation_state(self) -> str:
        if self.evacuation is None:
            return "disabled"
        state, _, _ = self.evacuation.progress(self.clock.now(), bool(self.cluster.recipients_for(self)))
        return state

    def node_info(self) -> dict[str, Any]:
        """One item of GET /api/v5/nodes, fields gated by version (emqx-api.md §2.1)."""
        sessions, live = self.current_counts()
        load = 0.1 + (self._seed % 40) / 100
        memory_total = 15.53 * 1024**3
        memory_used = (2.5 + (self._seed % 100) / 100) * 1024**3
        info: dict[str, Any] = {
            "node": self.name,
            "node_status": "running",
            "role": self.role,
            "version": versions.format_version(self.version),
        }
        if self.spec.image.at_least(versions.EDITION_FIELD):
            info["edition"] = self.edition.value
        info["otp_release"] = versions.otp_release(self.version)
        info["uptime"] = self.uptime_ms()
        info["connections"] = sessions
        if self.spec.image.at_least(versions.LIVE_CONNECTIONS):
            info["live_connections"] = live
        if self.spec.image.at_least(versions.CLUSTER_SESSIONS):
            info["cluster_sessions"] = self.cluster.total_sessions()
        info.update(
            {
                "load1": round(load, 2),
                "load5": round(load + 0.03, 2),
                "load15": round(load + 0.06, 2),
                "memory_total": _kmg(memory_total),
                "memory_used": _kmg(memory_used),
                "max_fds": 1048576,
                "process_available": 2097152,
                "process_used": 700 + self._seed % 300 + live,
                "sys_path": "/opt/emqx",
                "log_path": "log.file.enable is false, not logging to file.",
            }
        )
        return info

    def listeners(self) -> list[dict[str, Any]]:
        return node_listeners(self)

    def evacuation_item(self) -> dict[str, Any]:
        assert self.evacuation is not None
        evacuation = self.evacuation
        state, connected, sessions = evacuation.progress(self.clock.now(), bool(self.cluster.recipients_for(self)))
        return {
            "node": self.name,
            "state": state,
            "connection_eviction_rate": evacuation.conn_evict_rate,
            "session_eviction_rate": evacuation.sess_evict_rate,
            "connection_goal": 0,
            "session_goal": 0,
            "session_recipients": self.cluster.recipients_for(self),
            "stats": {
                "initial_connected": evacuation.initial_connected,
                "current_connected": connected,
                "initial_sessions": evacuation.initial_sessions,
                "current_sessions": sessions,
            },
        }

    def start_evacuation(self, options: dict[str, Any], resumed: bool = False) -> None:
        sessions, live = self.current_counts()
        merged = {**EVACUATION_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
        self.evacuation = Evacuation(
            started_at=self.clock.now(),
            conn_evict_rate=int(merged["conn_evict_rate"]),
            sess_evict_rate=int(merged["sess_evict_rate"]),
            wait_health_check=float(merged["wait_health_check"]),
            wait_takeover=float(merged["wait_takeover"]),
            migrate_to=merged.get("migrate_to"),
            initial_connected=live,
            initial_sessions=sessions,
            resumed=resumed,
        )

    def stop_evacuation(self) -> None:
        self.sessions, self.live_connections = self.current_counts()
        self.evacuation = None


def format_bind(image: versions.EmqxImage, bind: Any) -> str:
    """emqx_listeners:format_bind/1: a bare port shows as ":PORT"; up to 5.0.9 so did 0.0.0.0."""
    parsed, _ = schema.ip_port(bind)
    if parsed is None:
        return str(bind)
    host, port = parsed
    old_format = image.edition is versions.Edition.OPENSOURCE and image.version < (5, 0, 10)
    if not host or (host in ("0.0.0.0", "::") and old_format):
        return f":{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def node_listeners(node: SimNode) -> list[dict[str, Any]]:
    """The MQTT listeners this node runs, as emqx_listeners:list_raw/0 reports them, id order."""
    items: list[dict[str, Any]] = []
    config = node.running_config.get("listeners") or {}
    image = node.spec.image
    sessions, live = node.current_counts()
    for kind in sorted(config):
        named = config[kind]
        if kind not in schema.LISTENER_DEFAULT_PORTS or not isinstance(named, dict):
            continue
        for name in sorted(named):
            listener = named[name]
            if not isinstance(listener, dict):
                continue
            enabled = listener.get("enable", listener.get("enabled", True)) not in (False, "false")
            max_connections = listener.get("max_connections", "infinity")
            if isinstance(max_connections, str) and max_connections.isdigit():
                max_connections = int(max_connections)
            items.append(
                {
                    "id": f"{kind}:{name}",
                    "type": kind,
                    "name": name,
                    "enable": enabled,
                    "running": enabled,
                    "bind": format_bind(image, listener.get("bind", schema.LISTENER_DEFAULT_PORTS[kind])),
                    "acceptors": listener.get("acceptors", 16),
                    "max_connections": max_connections,
                    "current_connections": live if enabled and f"{kind}:{name}" == "tcp:default" else 0,
                }
            )
    return sorted(items, key=lambda item: item["id"])
