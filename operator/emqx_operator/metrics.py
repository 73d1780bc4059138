"""Prometheus text exposition of the operator's counters (stdlib HTTP server, no extra dependency).

Series (all prefixed emqx_operator_):
  reconcile_total{namespace,name,result}            counter, result ok|error
  reconcile_errors_total{namespace,name}            counter
  reconcile_duration_seconds{namespace,name}        histogram (_bucket, _sum, _count)
  reconcile_seconds_sum{namespace,name}             counter: the histogram's _sum, older name
  managed_clusters                                  gauge: EMQX resources this process manages
  cluster_phase{namespace,name,phase}               gauge, 1 for the current phase
  upgrade_phase{namespace,name,phase}               gauge, 1 for the current upgrade phase (Idle when none)
  leader                                            gauge: 1 while this process holds the Lease
  api_writes_total{verb,kind}                       counter: Kubernetes API writes (Lease renewals
                                                    included, kind="Lease")
  build_info{version}                               gauge, always 1
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emqx_operator import __version__

# Seconds. A settled pass is a handful of API reads (tens of ms); a slow one waits on EMQX timeouts.
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Key = tuple[str, str]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reconciles: Counter[tuple[str, str, str]] = Counter()  # (namespace, name, result)
        self.duration_sum: dict[Key, float] = defaultdict(float)
        self.duration_buckets: dict[Key, list[int]] = {}  # per bucket, not cumulative; last = +Inf
        self.phase: dict[Key, str] = {}
        self.upgrade_phase: dict[Key, str] = {}
        self.leader = True  # without leader election the process always leads
        self.writes_source: Any = None  # a ClusterApi, read at scrape time

    def observe_reconcile(self, namespace: str, name: str, seconds: float, result: str) -> None:
        key = (namespace, name)
        with self._lock:
            self.reconciles[(namespace, name, result)] += 1
            self.duration_sum[key] += seconds
            counts = self.duration_buckets.setdefault(key, [0] * (len(DURATION_BUCKETS) + 1))
            counts[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1

    def set_phase(self, namespace: str, name: str, phase: str | None, upgrade_phase: str | None = None) -> None:
        with self._lock:
            if phase is None:
                self.phase.pop((namespace, name), None)
                self.upgrade_phase.pop((namespace, name), None)
                return
            self.phase[(namespace, name)] = phase
            self.upgrade_phase[(namespace, name)] = upgrade_phase or "Idle"

    def set_leader(self, leading: bool) -> None:
        with self._lock:
            self.leader = leading

    def forget_clusters(self) -> None:
        """Clusters are no longer managed by this process (it lost the lead); counters stay."""
        with self._lock:
            self.phase.clear()
            self.upgrade_phase.clear()

    def reconcile_count(self, namespace: str, name: str) -> int:
        with self._lock:
            return sum(v for (ns, n, _), v in self.reconciles.items() if (ns, n) == (namespace, name))

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            lines += _header("reconcile_total", "counter", "Reconciles by resource and result.")
            for (ns, name, result), value in sorted(self.reconciles.items()):
                lines.append(f'emqx_operator_reconcile_total{{{_labels(ns, name)},result="{result}"}} {value}')
            lines += _header("reconcile_errors_total", "counter", "Reconciles that failed, by resource.")
            for (ns, name, result), value in sorted(self.reconciles.items()):
                if result == "error":
                    lines.append(f"emqx_operator_reconcile_errors_total{{{_labels(ns, name)}}} {value}")
            lines += _header("reconcile_duration_seconds", "histogram", "Time spent in one reconcile pass.")
            for key, counts in sorted(self.duration_buckets.items()):
                labels = _labels(*key)
                cumulative = 0
                for bound, count in zip((*DURATION_BUCKETS, "+Inf"), counts, strict=True):
                    cumulative += count
                    lines.append(f'emqx_operator_reconcile_duration_seconds_bucket{{{labels},le="{bound}"}} '
                                 f"{cumulative}")
                lines.append(f"emqx_operator_reconcile_duration_seconds_sum{{{labels}}} "
                             f"{self.duration_sum[key]:.6f}")
                lines.append(f"emqx_operator_reconcile_duration_seconds_count{{{labels}}} {cumulative}")
            # The histogram's _sum under its older name (bench/operator_bench.py reads it).
            lines += _header("reconcile_seconds_sum", "counter", "Time spent reconciling, by resource.")
            for key, seconds in sorted(self.duration_sum.items()):
                lines.append(f"emqx_operator_reconcile_seconds_sum{{{_labels(*key)}}} {seconds:.6f}")
            lines += _header("managed_clusters", "gauge", "EMQX resources this process currently manages.")
            lines.append(f"emqx_operator_managed_clusters {len(self.phase)}")
            lines += _header("cluster_phase", "gauge", "Phase of each EMQX resource (1 for the current phase).")
            for (ns, name), phase in sorted(self.phase.items()):
                lines.append(f'emqx_operator_cluster_phase{{{_labels(ns, name)},phase="{phase}"}} 1')
            lines += _header("upgrade_phase", "gauge", "Upgrade phase of each EMQX resource (Idle when none).")
            for (ns, name), phase in sorted(self.upgrade_phase.items()):
                lines.append(f'emqx_operator_upgrade_phase{{{_labels(ns, name)},phase="{phase}"}} 1')
            lines += _header("leader", "gauge", "1 while this process holds the leader Lease and reconciles.")
            lines.append(f"emqx_operator_leader {int(self.leader)}")
        source = self.writes_source
        if source is not None:
            lines += _header("api_writes_total", "counter", "Kubernetes API writes by verb and kind.")
            for key, value in sorted(source.writes_snapshot().items()):
                verb, _, kind = key.partition(" ")
                lines.append(f'emqx_operator_api_writes_total{{verb="{verb}",kind="{kind}"}} {value}')
        lines += _header("build_info", "gauge", "The operator's version.")
        lines.append(f'emqx_operator_build_info{{version="{__version__}"}} 1')
        lines.append(f"emqx_operator_scrape_timestamp_seconds {time.time():.3f}")
        return "\n".join(lines) + "\n"


def _header(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP emqx_operator_{name} {text}", f"# TYPE emqx_operator_{name} {kind}"]


def _labels(namespace: str, name: str) -> str:
    # Namespaces and names are DNS labels: nothing to escape.
    return f'namespace="{namespace}",name="{name}"'


METRICS = Metrics()


def serve(host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = METRICS.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
