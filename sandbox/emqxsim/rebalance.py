"""EMQX's node rebalance (Enterprise from e5.0.4, every 5.9+ image), as facts read in
apps/emqx_node_rebalance/src/emqx_node_rebalance.erl, emqx_node_rebalance_status.erl and
emqx_node_rebalance_api.erl (e5.0.4, e5.8.9, e5.9.0):

- A coordinator node runs one rebalance (a gen_statem, in memory only: a restart loses it). On
  start it counts the connections (live) and sessions of the participating nodes; donors have at
  least the average number of connections, recipients the rest. Either side empty, or both the
  connection and the session averages within the thresholds -> `nothing_to_balance`.
- Donors' eviction agents are enabled (their availability_check answers 503, and no evacuation or
  other rebalance may use them), then: `wait_health_check` seconds, `evicting_conns` (at once and
  every second: done when `donor_avg <= recipient_avg + abs` or `donor_avg <= recipient_avg * rel`,
  else every donor above the recipient average evicts `conn_evict_rate` connections), `wait_takeover`
  seconds, `evicting_sessions` (the same on disconnected sessions, sent to the recipients), then
  the agents are disabled and the rebalance is gone from global_status.
- Evicted clients reconnect through the load balancer, which the donors now refuse: here each goes
  to the recipient with the fewest connections, taking its session along (takeover).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .node import SimNode

DEFAULTS: dict[str, Any] = {
    "conn_evict_rate": 500,
    "sess_evict_rate": 500,
    "wait_health_check": 60.0,
    "wait_takeover": 60.0,
    "abs_conn_threshold": 1000,
    "rel_conn_threshold": 1.1,
    "abs_sess_threshold": 1000,
    "rel_sess_threshold": 1.1,
    "conn_evict_rpc_timeout": 15000,
    "sess_evict_rpc_timeout": 15000,
}
EVICT_INTERVAL = 1.0


def avg(values: list[int]) -> float:
    return sum(values) / len(values)


def within(value: float, goal: float, absolute: float, relative: float) -> bool:
    return value <= goal + absolute or value <= goal * relative


def counts(nodes: list[SimNode]) -> tuple[dict[str, int], dict[str, int]]:
    """(live connections, sessions) per node, after any evacuation progress."""
    conns, sessions = {}, {}
    for node in nodes:
        node_sessions, live = node.current_counts()
        conns[node.name], sessions[node.name] = live, node_sessions
    return conns, sessions


def split(nodes: list[SimNode], opts: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """(donors, recipients), or None for nothing_to_balance (enable_rebalance/need_rebalance)."""
    conns, sessions = counts(nodes)
    average = avg(list(conns.values()))
    donors = [node.name for node in nodes if conns[node.name] >= average]
    recipients = [node.name for node in nodes if conns[node.name] < average]
    if not donors or not recipients:
        return None
    conn_ok = within(avg([conns[n] for n in donors]), avg([conns[n] for n in recipients]),
                     opts["abs_conn_threshold"], opts["rel_conn_threshold"])
    sess_ok = within(avg([sessions[n] for n in donors]), avg([sessions[n] for n in recipients]),
                     opts["abs_sess_threshold"], opts["rel_sess_threshold"])
    if conn_ok and sess_ok:
        return None
    return donors, recipients


@dataclass
class Rebalance:
    coordinator: SimNode
    opts: dict[str, Any]
    donors: list[str]
    recipients: list[str]
    state: str
    next_at: float
    stats: dict[str, float] = field(default_factory=dict)
    rpc_timeouts: bool = False  # e5.9.0+ lists connection/session_eviction_rpc_timeout
    initial: dict[str, tuple[int, int]] = field(default_factory=dict)  # node -> (sessions, connections) at start

    def advance(self, now: float) -> bool:
        """Run every timer due by `now`; False once the rebalance ended (disabled)."""
        while self.next_at <= now:
            at = self.next_at
            nodes = self._participants()
            if nodes is None:  # a participant went away: the coordinator's multicall fails, it restarts
                return False
            if self.state == "wait_health_check":
                self.state, self.next_at = "evicting_conns", at
            elif self.state == "evicting_conns":
                if self._evict(nodes, "conn"):
                    self.state, self.next_at = "wait_takeover", at + float(self.opts["wait_takeover"])
                else:
                    self.next_at = at + EVICT_INTERVAL
            elif self.state == "wait_takeover":
                self.state, self.next_at = "evicting_sessions", at
            elif self.state == "evicting_sessions":
                if self._evict(nodes, "sess"):
                    return False
                self.next_at = at + EVICT_INTERVAL
        return True

    def _participants(self) -> dict[str, SimNode] | None:
        cluster = self.coordinator.cluster
        found = {}
        for name in self.donors + self.recipients:
            node = cluster.nodes.get(name)
            if node is None or not node.alive:
                return None
            found[name] = node
        return found

    def _evict(self, nodes: dict[str, SimNode], kind: str) -> bool:
        """One eviction round (evict_conns/evict_sessions); True when within the thresholds."""
        conns, sessions = counts(list(nodes.values()))
        values = conns if kind == "conn" else {name: sessions[name] - conns[name] for name in sessions}
        donor_avg = avg([values[n] for n in self.donors])
        recipient_avg = avg([values[n] for n in self.recipients])
        if kind == "conn":
            self.stats.update(donor_conn_avg=donor_avg, recipient_conn_avg=recipient_avg)
        else:
            self.stats.update(donor_sess_avg=donor_avg, recipient_sess_avg=recipient_avg)
        if within(donor_avg, recipient_avg, self.opts[f"abs_{kind}_threshold"], self.opts[f"rel_{kind}_threshold"]):
            return True
        rate = int(self.opts[f"{kind}_evict_rate"])
        for name in self.donors:
            if values[name] <= recipient_avg:
                continue
            for _ in range(min(rate, values[name])):
                target = min(self.recipients, key=lambda n: (nodes[n].live_connections, nodes[n].sessions, n))
                donor, recipient = nodes[name], nodes[target]
                donor.sessions -= 1
                recipient.sessions += 1
                if kind == "conn":  # the client reconnects elsewhere and takes its session over
                    donor.live_connections -= 1
                    recipient.live_connections += 1
        return False

    def donor_entry(self, node: SimNode) -> dict[str, Any]:
        """donor_rebalance/2 (GET /load_rebalance/status on a donor)."""
        sessions, live = node.current_counts()
        initial_sessions, initial_conns = self.initial.get(node.name, (0, 0))
        entry: dict[str, Any] = {
            "state": self.state,
            "coordinator_node": self.coordinator.name,
            "connection_eviction_rate": self.opts["conn_evict_rate"],
            "session_eviction_rate": self.opts["sess_evict_rate"],
            "recipients": list(self.recipients),
            "stats": {
                "initial_connected": initial_conns,
                "initial_sessions": initial_sessions,
                "current_connected": live,
                "current_sessions": sessions,
                "current_disconnected_sessions": sessions - live,
            },
        }
        if "recipient_conn_avg" in self.stats:
            entry["connection_goal"] = self.stats["recipient_conn_avg"]
        if "recipient_sess_avg" in self.stats:
            entry["disconnected_session_goal"] = self.stats["recipient_sess_avg"]
        return entry

    def status_entry(self) -> dict[str, Any]:
        """coordinator_rebalance/1 plus `node` (GET /load_rebalance/global_status rebalances[])."""
        entry: dict[str, Any] = {
            "state": self.state,
            "coordinator_node": self.coordinator.name,
            "connection_eviction_rate": self.opts["conn_evict_rate"],
            "session_eviction_rate": self.opts["sess_evict_rate"],
            "recipients": list(self.recipients),
            "donors": list(self.donors),
        }
        if self.rpc_timeouts:
            entry["connection_eviction_rpc_timeout"] = self.opts["conn_evict_rpc_timeout"]
            entry["session_eviction_rpc_timeout"] = self.opts["sess_evict_rpc_timeout"]
        for key, name in (("recipient_conn_avg", "connection_goal"),
                          ("recipient_sess_avg", "disconnected_session_goal"),
                          ("donor_conn_avg", "donor_conn_avg"), ("donor_sess_avg", "donor_sess_avg")):
            if key in self.stats:
                entry[name] = self.stats[key]
        entry["node"] = self.coordinator.name
        return entry
