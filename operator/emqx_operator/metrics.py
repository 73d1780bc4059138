"""The operator's Prometheus metrics (prometheus_client, on a registry of its own).

Series (all prefixed emqx_operator_, each with HELP and TYPE):
  reconcile_total{namespace,name,result}            counter, result ok|error
  reconcile_errors_total{namespace,name}            counter
  reconcile_duration_seconds{namespace,name}        histogram (_bucket, _sum, _count)
  managed_clusters                                  gauge: EMQX resources this process manages
  cluster_phase{namespace,name,phase}               gauge, 1 for the current phase
  upgrade_phase{namespace,name,phase}               gauge, 1 for the current upgrade phase (Idle when none)
  leader                                            gauge: 1 while this process holds the Lease
  api_writes_total{verb,kind}                       counter: Kubernetes API writes (Lease renewals
                                                    included, kind="Lease"), read from the API client
  build_info{version}                               gauge, always 1
and the process's own process_* series (resident memory, CPU seconds, open file descriptors: read
from /proc at scrape time). The registry holds nothing else: no platform or garbage-collector
series, no *_created series.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from emqx_operator import __version__

PREFIX = "emqx_operator"
# Seconds. A settled pass is a handful of API reads (tens of ms); a slow one waits on EMQX timeouts.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RESOURCE_LABELS = ("namespace", "name")

Key = tuple[str, str]

disable_created_metrics()  # a *_created series per counter doubles the exposition for nothing


class Metrics:
    """What the reconciler, the leader elector and the API client report; exposed by `serve`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._phase: dict[Key, str] = {}
        self._upgrade_phase: dict[Key, str] = {}
        self.writes_source: Any = None  # a ClusterApi (writes_snapshot()), read at scrape time
        self._reconciles = Counter(f"{PREFIX}_reconcile", "Reconciles by resource and result.",
                                   (*RESOURCE_LABELS, "result"), registry=self.registry)
        self._errors = Counter(f"{PREFIX}_reconcile_errors", "Reconciles that failed, by resource.",
                               RESOURCE_LABELS, registry=self.registry)
        self._duration = Histogram(f"{PREFIX}_reconcile_duration_seconds", "Time spent in one reconcile pass.",
                                   RESOURCE_LABELS, buckets=DURATION_BUCKETS, registry=self.registry)
        self._leader = Gauge(f"{PREFIX}_leader", "1 while this process holds the leader Lease and reconciles.",
                             registry=self.registry)
        self._leader.set(1)  # without leader election the process always leads
        Info(f"{PREFIX}_build", "The operator's version.", registry=self.registry).info({"version": __version__})
        self.registry.register(_StateCollector(self))
        ProcessCollector(registry=self.registry)

    # --- what the operator reports -----------------------------------------------------------

    def observe_reconcile(self, namespace: str, name: str, seconds: float, result: str) -> None:
        self._reconciles.labels(namespace, name, result).inc()
        if result == "error":
            self._errors.labels(namespace, name).inc()
        self._duration.labels(namespace, name).observe(seconds)

    def set_phase(self, namespace: str, name: str, phase: str | None, upgrade_phase: str | None = None) -> None:
        """The resource's phase and upgrade phase (Idle when None); phase None: no longer managed."""
        with self._lock:
            if phase is None:
                self._phase.pop((namespace, name), None)
                self._upgrade_phase.pop((namespace, name), None)
                return
            self._phase[(namespace, name)] = phase
            self._upgrade_phase[(namespace, name)] = upgrade_phase or "Idle"

    def set_leader(self, leading: bool) -> None:
        self._leader.set(1 if leading else 0)

    def forget_resource(self, namespace: str, name: str) -> None:
        """The resource is gone: drop its series (they would otherwise accumulate with every resource
        ever reconciled, a slow leak where clusters come and go)."""
        self.set_phase(namespace, name, None)
        for result in ("ok", "error"):
            with contextlib.suppress(KeyError):
                self._reconciles.remove(namespace, name, result)
        for metric in (self._errors, self._duration):
            with contextlib.suppress(KeyError):
                metric.remove(namespace, name)

    def forget_clusters(self) -> None:
        """Clusters are no longer managed by this process (it lost the lead); counters stay."""
        with self._lock:
            self._phase.clear()
            self._upgrade_phase.clear()

    # --- reading -----------------------------------------------------------------------------

    def reconcile_count(self, namespace: str, name: str) -> int:
        return int(sum(
            sample.value
            for family in self._reconciles.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
            and (sample.labels["namespace"], sample.labels["name"]) == (namespace, name)
        ))

    def render(self) -> str:
        """The text exposition (format 0.0.4), as a scrape gets it."""
        return generate_latest(self.registry).decode()


class _StateCollector(Collector):
    """Series computed at scrape time from the operator's state: managed clusters and their phases,
    and the API client's write and read counts."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        metrics = self._metrics
        with metrics._lock:
            phases = sorted(metrics._phase.items())
            upgrade_phases = sorted(metrics._upgrade_phase.items())
        yield GaugeMetricFamily(f"{PREFIX}_managed_clusters", "EMQX resources this process currently manages.",
                                value=len(phases))
        for metric_name, text, items in (
            ("cluster_phase", "Phase of each EMQX resource (1 for the current phase).", phases),
            ("upgrade_phase", "Upgrade phase of each EMQX resource (Idle when none).", upgrade_phases),
        ):
            family = GaugeMetricFamily(f"{PREFIX}_{metric_name}", text, labels=(*RESOURCE_LABELS, "phase"))
            for (namespace, name), phase in items:
                family.add_metric((namespace, name, phase), 1)
            yield family
        writes = CounterMetricFamily(f"{PREFIX}_api_writes", "Kubernetes API writes by verb and kind.",
                                     labels=("verb", "kind"))
        source = metrics.writes_source
        for key, value in sorted((source.writes_snapshot() if source is not None else {}).items()):
            verb, _, kind = key.partition(" ")
            writes.add_metric((verb, kind), value)
        yield writes
        reads = CounterMetricFamily(f"{PREFIX}_api_reads", "Kubernetes API reads (GET, LIST) by kind.",
                                    labels=("verb", "kind"))
        for key, value in sorted((source.reads_snapshot() if source is not None else {}).items()):
            verb, _, kind = key.partition(" ")
            reads.add_metric((verb, kind), value)
        yield reads

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return iter(())  # names are checked at collect time only (they depend on nothing registered)


METRICS = Metrics()


def serve(host: str, port: int, metrics: Metrics = METRICS) -> Any:
    """Serve `metrics` on http://host:port/metrics in daemon threads; returns the server
    (server_address, shutdown(), server_close())."""
    server, _ = start_http_server(port, addr=host, registry=metrics.registry)
    return server
