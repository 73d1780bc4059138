"""What `kubectl emqx restart` will do, before it does it (pure): which pods the request names, in
which order the operator restarts them, and whether a restart is still under way.

The order is the operator's (operator/emqx_operator/decide/cores.py, replicants.py): cores one at a
time, a broken one (not Ready) first, then the highest ordinal first, each back and reported running
by EMQX before the next; replicants only once every core is done. A restart of every replicant goes
through their Deployment (a new replicant first, then an old one removed, the one with the fewest
connections first); named replicants are deleted one at a time and the Deployment replaces each.
Busy nodes are drained through evacuation first where the edition has it (Enterprise, every 5.9+).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubectl_emqx.domain.vocabulary import CORE, REPLICANT, pod_ordinal
from kubectl_emqx.view import pods as pod_view

ROLE_CHOICES = ("all", "cores", "replicants")


class RestartError(ValueError):
    """A request that cannot be made (an unknown node, a node outside --role): one line."""


@dataclass(frozen=True)
class RestartPlan:
    cores: tuple[str, ...] = ()
    replicants: tuple[str, ...] = ()
    named: bool = False  # only the nodes given with --node
    evacuates: bool = False
    connections: dict[str, int] = field(default_factory=dict)

    @property
    def pods(self) -> tuple[str, ...]:
        return self.cores + self.replicants

    def lines(self) -> list[str]:
        lines = []
        drain = " (busy nodes are evacuated first)" if self.evacuates else ""
        if self.cores:
            lines.append(f"cores, one at a time, each back and running per EMQX before the next{drain}:")
            lines += [f"  {index}. {name}" for index, name in enumerate(self.cores, 1)]
        if self.replicants:
            then = "then " if self.cores else ""
            if self.named:
                lines.append(f"{then}replicants, one at a time (each deleted, its Deployment starts a new one){drain}:")
            else:
                lines.append(f"{then}replicants, one at a time (a new replicant starts, then an old one is "
                             f"removed, the fewest connections first){drain}:")
            start = len(self.cores) + 1
            lines += [f"  {index}. {name}{self._clients(name)}" for index, name in enumerate(self.replicants, start)]
        return lines

    def _clients(self, name: str) -> str:
        count = self.connections.get(name)
        return f" ({count} connections)" if count is not None else ""


def plan(body: dict[str, Any], pods: list[dict[str, Any]], role: str, nodes: tuple[str, ...]) -> RestartPlan:
    """The pods `spec.restart {role, nodes}` restarts, in the operator's order. Raises RestartError
    for a --node that is no pod (or EMQX node) of the cluster, or that --role excludes."""
    metadata = body.get("metadata") or {}
    cluster, namespace = str(metadata.get("name", "")), str(metadata.get("namespace", ""))
    domain = pod_view.cluster_domain(body)
    live = [pod for pod in pods if not pod_view.terminating(pod)]
    by_name: dict[str, dict[str, Any]] = {}
    for pod in live:
        by_name[pod_view.name(pod)] = pod
        emqx_name = pod_view.node_name(pod, cluster, namespace, domain)
        if emqx_name:
            by_name.setdefault(emqx_name, pod)
    connections = _connections(body)
    chosen: list[dict[str, Any]] = []
    for node in nodes:
        found = by_name.get(node)
        if found is None:
            known = ", ".join(sorted(pod_view.name(p) for p in live)) or "none"
            raise RestartError(f"--node {node}: no such node in {namespace}/{cluster} (pods: {known})")
        pod = found
        wanted_role = {"cores": CORE, "replicants": REPLICANT}.get(role)
        if wanted_role and pod_view.role(pod) != wanted_role:
            raise RestartError(f"--node {node} is a {pod_view.role(pod)}, which --role {role} leaves out")
        if pod not in chosen:
            chosen.append(pod)
    selected = chosen if nodes else [p for p in live if role == "all" or pod_view.role(p) == _role_of(role)]
    cores = [p for p in selected if pod_view.role(p) == CORE]
    replicants = [p for p in selected if pod_view.role(p) == REPLICANT]
    cores.sort(key=lambda p: (pod_view.ready(p), -(pod_ordinal(pod_view.name(p)) or 0)))
    if nodes:
        replicants.sort(key=pod_view.name)
    else:
        replicants.sort(key=lambda p: (connections.get(pod_view.name(p), 0), pod_view.name(p)))
    return RestartPlan(
        cores=tuple(pod_view.name(p) for p in cores),
        replicants=tuple(pod_view.name(p) for p in replicants),
        named=bool(nodes),
        evacuates=_evacuates(body),
        connections={name: count for name, count in connections.items()
                     if name in {pod_view.name(p) for p in replicants}},
    )


def _role_of(role: str) -> str:
    return CORE if role == "cores" else REPLICANT


def _connections(body: dict[str, Any]) -> dict[str, int]:
    """Connections per pod as status.emqxNodes last reported them."""
    found = {}
    for node in (body.get("status") or {}).get("emqxNodes") or []:
        pod = node.get("podName")
        if pod:
            found[str(pod)] = int(node.get("live_connections", node.get("connections")) or 0)
    return found


def _evacuates(body: dict[str, Any]) -> bool:
    from kubectl_emqx.domain import versions

    for node in (body.get("status") or {}).get("emqxNodes") or []:
        try:
            version = versions.parse_version(str(node.get("version", "")))
        except ValueError:
            continue
        if versions.supports_evacuation(str(node.get("edition", "")), version):
            return True
    return False


def in_progress(body: dict[str, Any]) -> str | None:
    """A restart the operator has not finished: 'asked at X, N node(s) to go' (None when done)."""
    request = (body.get("spec") or {}).get("restart") or {}
    if not request.get("at"):
        return None
    status = (body.get("status") or {}).get("restart") or {}
    if status.get("at") == request["at"] and status.get("phase") == "Done":
        return None
    return f"a restart asked at {request['at']} is still under way (phase {status.get('phase') or 'not yet seen'})"


def done(body: dict[str, Any], at: str) -> str | None:
    """None once the operator reports the restart asked at `at` done; else what it waits for."""
    status = (body.get("status") or {}).get("restart") or {}
    if status.get("at") != at:
        return "waiting for the operator to take the restart request"
    if status.get("phase") != "Done":
        return "restarting nodes one at a time"
    return None
