"""The operator's Prometheus exposition: reconcile counts, errors, durations, clusters, phases, leadership."""

from __future__ import annotations

import re
import urllib.request
from collections import Counter

from emqx_operator import __version__
from emqx_operator.metrics import DURATION_BUCKETS, Metrics, serve


def samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_reconcile_counts_errors_and_duration_histogram() -> None:
    metrics = Metrics()
    metrics.observe_reconcile("ns", "a", 0.02, "ok")
    metrics.observe_reconcile("ns", "a", 0.3, "ok")
    metrics.observe_reconcile("ns", "a", 100.0, "error")
    values = samples(metrics.render())
    assert values['emqx_operator_reconcile_total{namespace="ns",name="a",result="ok"}'] == 2
    assert values['emqx_operator_reconcile_total{namespace="ns",name="a",result="error"}'] == 1
    assert values['emqx_operator_reconcile_errors_total{namespace="ns",name="a"}'] == 1
    bucket = 'emqx_operator_reconcile_duration_seconds_bucket{namespace="ns",name="a",le="%s"}'
    assert values[bucket % "0.01"] == 0
    assert values[bucket % "0.025"] == 1
    assert values[bucket % "0.5"] == 2
    assert values[bucket % DURATION_BUCKETS[-1]] == 2
    assert values[bucket % "+Inf"] == 3
    assert values['emqx_operator_reconcile_duration_seconds_count{namespace="ns",name="a"}'] == 3
    assert values['emqx_operator_reconcile_duration_seconds_sum{namespace="ns",name="a"}'] == 100.32
    assert values['emqx_operator_reconcile_seconds_sum{namespace="ns",name="a"}'] == 100.32
    assert metrics.reconcile_count("ns", "a") == 3


def test_managed_clusters_phases_and_leadership() -> None:
    metrics = Metrics()
    metrics.set_phase("ns", "a", "Ready")
    metrics.set_phase("ns", "b", "Upgrading", "UpgradingCores")
    values = samples(metrics.render())
    assert values["emqx_operator_managed_clusters"] == 2
    assert values['emqx_operator_cluster_phase{namespace="ns",name="b",phase="Upgrading"}'] == 1
    assert values['emqx_operator_upgrade_phase{namespace="ns",name="a",phase="Idle"}'] == 1
    assert values['emqx_operator_upgrade_phase{namespace="ns",name="b",phase="UpgradingCores"}'] == 1
    assert values["emqx_operator_leader"] == 1, "without election the process always leads"
    assert values[f'emqx_operator_build_info{{version="{__version__}"}}'] == 1

    metrics.set_phase("ns", "a", None)
    assert samples(metrics.render())["emqx_operator_managed_clusters"] == 1
    metrics.set_leader(False)
    metrics.forget_clusters()
    values = samples(metrics.render())
    assert values["emqx_operator_leader"] == 0 and values["emqx_operator_managed_clusters"] == 0


def test_every_series_has_help_and_type_and_api_writes_are_read_at_scrape_time() -> None:
    class Api:
        writes: Counter[str] = Counter({"PATCH StatefulSet": 2, "PUT Lease": 5})

        def writes_snapshot(self) -> dict[str, int]:
            return dict(self.writes)

    metrics = Metrics()
    metrics.writes_source = Api()
    metrics.observe_reconcile("ns", "a", 0.1, "ok")
    metrics.set_phase("ns", "a", "Ready")
    text = metrics.render()
    values = samples(text)
    assert values['emqx_operator_api_writes_total{verb="PATCH",kind="StatefulSet"}'] == 2
    assert values['emqx_operator_api_writes_total{verb="PUT",kind="Lease"}'] == 5
    typed = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    for name in values:
        family = re.sub(r"(_bucket|_sum|_count)$", "", name.split("{")[0])
        assert family in typed or name.split("{")[0] in typed or name.startswith("emqx_operator_scrape"), name


def test_endpoint_serves_metrics_on_loopback() -> None:
    metrics_server = serve("127.0.0.1", 0)
    try:
        port = metrics_server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            assert b"emqx_operator_managed_clusters" in response.read()
    finally:
        metrics_server.shutdown()
        metrics_server.server_close()
