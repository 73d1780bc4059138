"""Prometheus text exposition of the operator's counters (stdlib HTTP server, no extra dependency)."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reconciles: Counter[tuple[str, str, str]] = Counter()  # (namespace, name, result)
        self.duration_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.phase: dict[tuple[str, str], str] = {}
        self.upgrade_phase: dict[tuple[str, str], str] = {}
        self.writes_source: Any = None  # a ClusterApi, read at scrape time

    def observe_reconcile(self, namespace: str, name: str, seconds: float, result: str) -> None:
        with self._lock:
            self.reconciles[(namespace, name, result)] += 1
            self.duration_sum[(namespace, name)] += seconds

    def set_phase(self, namespace: str, name: str, phase: str | None, upgrade_phase: str | None = None) -> None:
        with self._lock:
            if phase is None:
                self.phase.pop((namespace, name), None)
                self.upgrade_phase.pop((namespace, name), None)
                return
            self.phase[(namespace, name)] = phase
            self.upgrade_phase[(namespace, name)] = upgrade_phase or "Idle"

    def reconcile_count(self, namespace: str, name: str) -> int:
        with self._lock:
            return sum(v for (ns, n, _), v in self.reconciles.items() if (ns, n) == (namespace, name))

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            lines += ["# HELP emqx_operator_reconcile_total Reconciles by resource and result.",
                      "# TYPE emqx_operator_reconcile_total counter"]
            for (ns, name, result), value in sorted(self.reconciles.items()):
                labels = f'namespace="{ns}",name="{name}",result="{result}"'
                lines.append(f"emqx_operator_reconcile_total{{{labels}}} {value}")
            lines += ["# HELP emqx_operator_reconcile_seconds_sum Time spent reconciling, by resource.",
                      "# TYPE emqx_operator_reconcile_seconds_sum counter"]
            for (ns, name), seconds in sorted(self.duration_sum.items()):
                lines.append(f'emqx_operator_reconcile_seconds_sum{{namespace="{ns}",name="{name}"}} {seconds:.6f}')
            lines += ["# HELP emqx_operator_managed_clusters EMQX resources currently managed.",
                      "# TYPE emqx_operator_managed_clusters gauge",
                      f"emqx_operator_managed_clusters {len(self.phase)}",
                      "# HELP emqx_operator_cluster_phase Phase of each EMQX resource (1 for the current phase).",
                      "# TYPE emqx_operator_cluster_phase gauge"]
            for (ns, name), phase in sorted(self.phase.items()):
                lines.append(f'emqx_operator_cluster_phase{{namespace="{ns}",name="{name}",phase="{phase}"}} 1')
            lines += ["# HELP emqx_operator_upgrade_phase Upgrade phase of each EMQX resource.",
                      "# TYPE emqx_operator_upgrade_phase gauge"]
            for (ns, name), phase in sorted(self.upgrade_phase.items()):
                lines.append(f'emqx_operator_upgrade_phase{{namespace="{ns}",name="{name}",phase="{phase}"}} 1')
        source = self.writes_source
        if source is not None:
            lines += ["# HELP emqx_operator_api_writes_total Kubernetes API writes by verb and kind.",
                      "# TYPE emqx_operator_api_writes_total counter"]
            for key, value in sorted(source.writes.items()):
                verb, _, kind = key.partition(" ")
                lines.append(f'emqx_operator_api_writes_total{{verb="{verb}",kind="{kind}"}} {value}')
        lines.append(f"emqx_operator_scrape_timestamp_seconds {time.time():.3f}")
        return "\n".join(lines) + "\n"


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
