"""Leader election on a coordination.k8s.io/v1 Lease: one operator process reconciles, the others wait.

The algorithm is client-go's: the holder renews `spec.renewTime` every retry period; a candidate
takes the Lease over only when its record has not changed for `leaseDurationSeconds` as measured
by the candidate's own monotonic clock (so clock skew between machines does not matter), or when
the holder released it (empty holderIdentity). Every write carries the resourceVersion it was
computed from, so two candidates racing for an expired Lease cannot both win. A leader that cannot
renew for the renew deadline (shorter than the lease duration) stops reconciling before anyone else
may start.

`Leadership` connects an elector to the scheduler: the scheduler only takes work while this process
leads, and gaining the lead queues every EMQX resource for a full resync.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from emqx_operator.cluster_api import ApiError, ClusterApi, resource_path
from emqx_operator.metrics import METRICS
from emqx_operator.scheduler import Scheduler

log = logging.getLogger("emqx_operator.leader")

LEASE_API_VERSION = "coordination.k8s.io/v1"
DEFAULT_LEASE_NAME = "emqx-operator"
DEFAULT_LEASE_SECONDS = 15


class Attempt(enum.Enum):
    LEADING = "leading"  # acquired or renewed
    FOLLOWING = "following"  # another live holder has it
    FAILED = "failed"  # the API failed or another candidate wrote first: try again


@dataclass(frozen=True)
class Timing:
    """client-go's proportions (15 s lease, 10 s renew deadline, 2 s retry), scaled to the lease."""

    lease_seconds: int = DEFAULT_LEASE_SECONDS

    @property
    def renew_deadline(self) -> float:
        return self.lease_seconds * 2 / 3

    @property
    def retry_period(self) -> float:
        return max(0.1, self.lease_seconds / 7.5)


def micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self, api: ClusterApi, namespace: str, name: str, identity: str, timing: Timing | None = None,
        on_started_leading: Callable[[], None] = lambda: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing or Timing()
        self.leading = False
        self.holder: str | None = None  # as last read from the Lease
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._observed_record: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renewed = -math.inf
        self._last_problem = ""

    # --- one attempt (synchronous: the API client blocks) ----------------------------------------

    def try_acquire_or_renew(self) -> Attempt:
        path = resource_path("Lease", self.namespace, self.name)
        try:
            lease = self.api.request("GET", path, kind="Lease")
        except ApiError as exc:
            if not exc.not_found:
                raise
            return self._create()
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        self.holder = holder or None
        self._observe(spec)
        lease_seconds = spec.get("leaseDurationSeconds") or self.timing.lease_seconds
        expired = self._monotonic() >= self._observed_at + lease_seconds
        if holder and holder != self.identity and not expired:
            return Attempt.FOLLOWING
        now = micro_time(self._wall_clock())
        renewing = holder == self.identity
        lease["spec"] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.timing.lease_seconds,
            "acquireTime": spec.get("acquireTime") if renewing and spec.get("acquireTime") else now,
            "renewTime": now,
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if renewing else 1),
        }
        try:
            # PUT with the resourceVersion just read: a concurrent writer makes this a 409.
            updated = self.api.request("PUT", path, body=lease, kind="Lease")
        except ApiError as exc:
            if exc.conflict:
                return Attempt.FAILED
            raise
        if not renewing:
            log.info("took over Lease %s/%s from %r", self.namespace, self.name, holder or "(released)")
        self._observe(updated.get("spec") or {})
        self.holder = self.identity
        return Attempt.LEADING

    def _create(self) -> Attempt:
        now = micro_time(self._wall_clock())
        body = {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {"app.kubernetes.io/name": "emqx-operator"}},
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.timing.lease_seconds,
                     "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
        }
        try:
            created = self.api.request("POST", resource_path("Lease", self.namespace), body=body, kind="Lease")
        except ApiError as exc:
            if exc.conflict:  # another candidate created it first
                return Attempt.FAILED
            raise
        log.info("created Lease %s/%s", self.namespace, self.name)
        self._observe(created.get("spec") or {})
        self.holder = self.identity
        return Attempt.LEADING

    def _observe(self, spec: dict[str, Any]) -> None:
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"),
                  spec.get("leaseTransitions"))
        if record != self._observed_record:
            self._observed_record = record
            self._observed_at = self._monotonic()

    def release(self) -> bool:
        """Give the Lease up (on shutdown) so that a waiting candidate takes over at its next retry."""
        if not self.leading:
            return False
        self._set_leading(False)
        path = resource_path("Lease", self.namespace, self.name)
        try:
            lease = self.api.request("GET", path, kind="Lease")
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return False
            now = micro_time(self._wall_clock())
            lease["spec"] = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
                             "renewTime": now, "leaseTransitions": spec.get("leaseTransitions") or 0}
            self.api.request("PUT", path, body=lease, kind="Lease")
        except ApiError as exc:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        log.info("released Lease %s/%s", self.namespace, self.name)
        return True

    # --- the loop ------------------------------------------------------------------------------

    def step(self, attempt: Attempt) -> None:
        """Act on one attempt's outcome: start or stop leading."""
        if attempt is Attempt.LEADING:
            self._last_renewed = self._monotonic()
            if not self.leading:
                self._set_leading(True)
        elif self.leading and (attempt is Attempt.FOLLOWING
                               or self._monotonic() - self._last_renewed >= self.timing.renew_deadline):
            log.warning("lost the Lease %s/%s (holder now %r); stopping reconciles",
                        self.namespace, self.name, self.holder)
            self._set_leading(False)

    async def run(self) -> None:
        while True:
            try:
                attempt = await asyncio.to_thread(self.try_acquire_or_renew)
                self._last_problem = ""
            except Exception as exc:  # 403, 5xx, connection refused: keep trying, say it once
                attempt = Attempt.FAILED
                problem = f"cannot read or write Lease {self.namespace}/{self.name}: {exc}"
                if problem != self._last_problem:
                    log.error("%s", problem)
                    self._last_problem = problem
            self.step(attempt)
            # Jitter keeps candidates started together from colliding on every retry.
            await asyncio.sleep(self.timing.retry_period * random.uniform(1.0, 1.2))

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        METRICS.set_leader(leading)
        if leading:
            log.info("leading as %r (Lease %s/%s)", self.identity, self.namespace, self.name)
            self._on_started()
        else:
            self._on_stopped()


class Leadership:
    """The scheduler takes work only while this process leads; leading starts with a full resync."""

    def __init__(self, api: ClusterApi, scheduler: Scheduler, namespaces: Sequence[str],
                 manages: Callable[[str], bool] = lambda _namespace: True) -> None:
        self.api = api
        self.scheduler = scheduler
        self.manages = manages
        self.namespaces: list[str | None] = list(namespaces) or [None]  # None: every namespace
        self._resync: asyncio.Task[None] | None = None

    def started(self) -> None:
        self.scheduler.set_enabled(True)
        self._resync = asyncio.get_running_loop().create_task(self.resync())

    def stopped(self) -> None:
        self.scheduler.set_enabled(False)
        if self._resync is not None:
            self._resync.cancel()
        METRICS.forget_clusters()  # another process manages them now

    async def resync(self) -> None:
        """Queue every EMQX resource: watch events seen while following may be incomplete."""
        for namespace in self.namespaces:
            try:
                items = await asyncio.to_thread(self.api.list, "EMQX", namespace)
            except ApiError as exc:
                log.error("resync: cannot list EMQX resources%s: %s",
                          f" in {namespace}" if namespace else "", exc)
                continue
            for item in items:
                meta = item.get("metadata") or {}
                if self.manages(meta.get("namespace") or ""):
                    self.scheduler.trigger(meta.get("namespace") or "", meta.get("name") or "")
