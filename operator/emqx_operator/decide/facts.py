"""What every part of decide needs to know about one pass, computed once (pure)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from emqx_operator.decide import pods
from emqx_operator.model import EmqxView, Obj, World
from kubectl_emqx.domain import versions
from kubectl_emqx.domain.spec import EmqxSpec
from kubectl_emqx.domain.vocabulary import core_node_name, core_pod_name, parse_time, replicant_node_name


@dataclass(frozen=True)
class Facts:
    spec: EmqxSpec
    world: World
    emqx: EmqxView
    old_status: dict[str, Any]
    now: datetime.datetime
    generation: int
    owner: Obj

    @property
    def running(self) -> dict[str, Obj]:
        return self.emqx.running()

    def core_node(self, pod_name: str) -> str:
        return core_node_name(self.spec.name, self.spec.namespace, self.spec.cluster_domain, pod_name)

    def node_of(self, pod: Obj) -> str:
        """The EMQX node name a pod runs (cores by name, replicants by IP)."""
        if pod in self.world.core_pods:
            return self.core_node(pods.name(pod))
        return replicant_node_name(pods.ip(pod) or "")

    def core_ordinal(self, node: str) -> int | None:
        """The StatefulSet ordinal of one of this cluster's core node names (None for other names)."""
        prefix, _, suffix = self.core_node(core_pod_name(self.spec.name, 0)).partition("-core-0.")
        if not (node.startswith(prefix + "-core-") and node.endswith("." + suffix)):
            return None
        middle = node[len(prefix) + len("-core-"):-(len(suffix) + 1)]
        return int(middle) if middle.isdigit() else None

    @staticmethod
    def clients(info: Obj | None) -> int:
        """Clients connected to a node now (`live_connections` from 5.1; sessions before)."""
        info = info or {}
        value = info.get("live_connections", info.get("connections"))
        return int(value or 0)

    def reported_stopped(self, pod: Obj) -> bool:
        node = self.node_of(pod)
        return any(str(n.get("node")) == node and n.get("node_status") == "stopped" for n in self.emqx.nodes or ())

    def emqx_info(self, pod: Obj) -> Obj | None:
        return self.running.get(self.node_of(pod))

    def runs(self, pod: Obj, version: str) -> bool:
        """Ready, and EMQX reports its node running `version`."""
        info = self.emqx_info(pod)
        return pods.ready(pod) and info is not None and info.get("version") == version

    def can_evacuate(self, info: Obj | None) -> bool:
        """Draining a node through evacuation is worth it and possible: it has connections, and its
        edition and version have the load_rebalance API (EMQX told us so this pass)."""
        if not info or int(info.get("connections") or 0) <= 0 or self.emqx.evacuations is None:
            return False
        try:
            version = versions.parse_version(str(info.get("version", "0.0.0")))
        except ValueError:
            return False
        return versions.supports_evacuation(str(info.get("edition", "")), version)

    def evacuation_targets(self, node: str) -> list[str]:
        """Nodes that may receive `node`'s sessions: running, and not evacuating themselves."""
        return sorted(other for other in self.running
                      if other != node and self.emqx.evacuation_state(other) == "disabled")

    def restart_requested(self, pod: Obj, role: str) -> bool:
        """spec.restart names this pod, and the pod started before the request."""
        restart = self.spec.restart
        if restart is None or not restart.nodes or not restart.covers(role):
            return False
        if pod["metadata"]["name"] not in restart.nodes:
            return False
        asked, created = parse_time(restart.at), parse_time(pod["metadata"].get("creationTimestamp"))
        return asked is not None and (created is None or created < asked)

    def seconds_since(self, moment: datetime.datetime | None) -> float:
        return float("inf") if moment is None else (self.now - moment).total_seconds()


def version_of(image: str) -> str:
    return versions.format_version(versions.parse_image(image).version)
