"""The operator process's shared objects: the API client, the scheduler and the options."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from emqx_operator.cluster_api import ClusterApi
from emqx_operator.scheduler import Scheduler


@dataclass
class Options:
    # How the operator reaches EMQX: "pod-ip" (a ready core pod's IP, as in-cluster) or
    # "service" (the dashboard Service's DNS name, for setups where pod IPs are not routable).
    emqx_address: str = "pod-ip"
    resync_seconds: float = 30.0
    busy_requeue_seconds: float = 2.0  # pod and resource events trigger a pass at once anyway
    emqx_timeout: float = 5.0
    excluded_namespaces: tuple[str, ...] = ()

    def manages(self, namespace: str) -> bool:
        return not any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.excluded_namespaces)


@dataclass
class OperatorState:
    api: ClusterApi
    scheduler: Scheduler
    options: Options


_state: OperatorState | None = None


def install(state: OperatorState) -> None:
    global _state
    _state = state


def current() -> OperatorState:
    if _state is None:
        raise RuntimeError("the operator runtime is not initialised (run through emqx_operator.main)")
    return _state
