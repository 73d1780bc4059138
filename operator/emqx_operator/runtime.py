"""The operator process's shared objects: the API client, the scheduler and the options."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from emqx_operator.cache import ObjectCache
from emqx_operator.cluster_api import ClusterApi
from emqx_operator.scheduler import Scheduler

# A settled cluster is looked at again this often: each pass asks EMQX `GET /nodes` once, so this
# keeps a quiet cluster under one EMQX request a minute (the live config is read every 10 minutes).
RESYNC_SECONDS = 75.0


@dataclass
class Options:
    # How the operator reaches EMQX: "pod-ip" (a ready core pod's IP, as in-cluster) or
    # "service" (the dashboard Service's DNS name, for setups where pod IPs are not routable).
    emqx_address: str = "pod-ip"
    resync_seconds: float = RESYNC_SECONDS
    busy_requeue_seconds: float = 2.0  # pod and resource events trigger a pass at once anyway
    emqx_timeout: float = 5.0
    excluded_namespaces: tuple[str, ...] = ()

    def manages(self, namespace: str) -> bool:
        return not any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.excluded_namespaces)


@dataclass
class OperatorState:
    """What the kopf handlers need, carried in kopf's memo (main.py builds it, `kopf.operator(memo=...)`;
    kopf hands every handler the memo, or a shallow copy of it): no process-wide globals."""

    api: ClusterApi
    scheduler: Scheduler
    options: Options
    login: Any = None  # kopf.ConnectionInfo the api was built from (kopf's login handler returns it)
    cache: ObjectCache | None = None  # the watches' copy of owned objects and pods (cache.py)


def state_of(memo: Any) -> OperatorState:
    """The OperatorState in a kopf memo."""
    state = memo.get("state") if hasattr(memo, "get") else None
    if not isinstance(state, OperatorState):
        raise RuntimeError("the kopf memo carries no OperatorState (run the operator through emqx_operator.main)")
    return state
