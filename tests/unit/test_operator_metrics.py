"""The operator's Prometheus exposition (prometheus_client): reconcile counts, errors, durations,
clusters, phases, leadership, API writes -- read back with prometheus_client's own parser, so that
what a Prometheus server scrapes is what is checked."""

from __future__ import annotations

import urllib.request
from collections import Counter

from emqx_operator import __version__
from emqx_operator.metrics import DURATION_BUCKETS, Metrics, serve
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


def scrape(metrics: Metrics) -> dict[str, dict[Labels, float]]:
    """{sample name: {labels: value}}, parsed from the text a scrape gets."""
    found: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())


def test_reconcile_counts_errors_and_duration_histogram() -> None:
    metrics = Metrics()
    metrics.observe_reconcile("ns", "a", 0.02, "ok")
    metrics.observe_reconcile("ns", "a", 0.3, "ok")
    metrics.observe_reconcile("ns", "a", 100.0, "error")
    values = scrape(metrics)
    assert values["emqx_operator_reconcile_total"] == {
        labels(namespace="ns", name="a", result="ok"): 2, labels(namespace="ns", name="a", result="error"): 1}
    assert values["emqx_operator_reconcile_errors_total"] == {labels(namespace="ns", name="a"): 1}
    histogram = values["emqx_operator_reconcile_duration_seconds_bucket"]
    buckets = {dict(key)["le"]: value for key, value in histogram.items()}
    assert (buckets["0.01"], buckets["0.025"], buckets["0.5"], buckets[str(DURATION_BUCKETS[-1])], buckets["+Inf"]) == (
        0, 1, 2, 2, 3)
    assert values["emqx_operator_reconcile_duration_seconds_count"] == {labels(namespace="ns", name="a"): 3}
    assert values["emqx_operator_reconcile_duration_seconds_sum"] == {labels(namespace="ns", name="a"): 100.32}
    assert metrics.reconcile_count("ns", "a") == 3
    assert metrics.reconcile_count("ns", "b") == 0


def test_managed_clusters_phases_and_leadership() -> None:
    metrics = Metrics()
    metrics.set_phase("ns", "a", "Ready")
    metrics.set_phase("ns", "b", "Upgrading", "Cores")
    values = scrape(metrics)
    assert values["emqx_operator_managed_clusters"] == {labels(): 2}
    assert values["emqx_operator_cluster_phase"] == {
        labels(namespace="ns", name="a", phase="Ready"): 1, labels(namespace="ns", name="b", phase="Upgrading"): 1}
    assert values["emqx_operator_upgrade_phase"] == {
        labels(namespace="ns", name="a", phase="Idle"): 1, labels(namespace="ns", name="b", phase="Cores"): 1}
    assert values["emqx_operator_leader"] == {labels(): 1}, "without election the process always leads"
    assert values["emqx_operator_build_info"] == {labels(version=__version__): 1}

    metrics.set_phase("ns", "b", "Ready")  # a phase change replaces the series, it does not add one
    assert scrape(metrics)["emqx_operator_cluster_phase"] == {
        labels(namespace="ns", name="a", phase="Ready"): 1, labels(namespace="ns", name="b", phase="Ready"): 1}
    metrics.set_phase("ns", "a", None)
    assert scrape(metrics)["emqx_operator_managed_clusters"] == {labels(): 1}
    metrics.set_leader(False)
    metrics.forget_clusters()
    values = scrape(metrics)
    assert values["emqx_operator_leader"] == {labels(): 0}
    assert values["emqx_operator_managed_clusters"] == {labels(): 0}
    assert "emqx_operator_cluster_phase" not in values


def test_api_writes_are_read_at_scrape_time() -> None:
    class Api:
        writes: Counter[str] = Counter({"PATCH StatefulSet": 2, "PUT Lease": 5})

        def writes_snapshot(self) -> dict[str, int]:
            return dict(self.writes)

        def reads_snapshot(self) -> dict[str, int]:
            return {"LIST Pod": 3, "GET Secret": 4}

    metrics = Metrics()
    api = Api()
    metrics.writes_source = api
    assert scrape(metrics)["emqx_operator_api_writes_total"] == {
        labels(verb="PATCH", kind="StatefulSet"): 2, labels(verb="PUT", kind="Lease"): 5}
    api.writes["PUT Lease"] += 1
    assert scrape(metrics)["emqx_operator_api_writes_total"][labels(verb="PUT", kind="Lease")] == 6
    assert scrape(metrics)["emqx_operator_api_reads_total"] == {
        labels(verb="LIST", kind="Pod"): 3, labels(verb="GET", kind="Secret"): 4}


def test_every_family_has_help_and_type_and_nothing_else_is_exposed() -> None:
    metrics = Metrics()
    metrics.writes_source = type("Api", (), {"writes_snapshot": lambda self: {"PUT Lease": 1},
                                             "reads_snapshot": lambda self: {"GET EMQX": 1}})()
    metrics.observe_reconcile("ns", "a", 0.1, "ok")
    metrics.set_phase("ns", "a", "Ready")
    text = metrics.render()
    families = list(text_string_to_metric_families(text))
    for family in families:
        assert family.documentation and family.type in ("counter", "gauge", "histogram"), family
        assert f"# HELP {family.name}" in text and f"# TYPE {family.name}" in text
    names = {family.name for family in families}
    operator = {name for name in names if name.startswith("emqx_operator_")}
    assert operator == {f"emqx_operator_{name}" for name in (
        "reconcile", "reconcile_errors", "reconcile_duration_seconds", "leader", "build_info", "managed_clusters",
        "cluster_phase", "upgrade_phase", "api_writes", "api_reads")}
    assert names - operator <= {"process_virtual_memory_bytes", "process_resident_memory_bytes",
                                "process_start_time_seconds", "process_cpu_seconds", "process_open_fds",
                                "process_max_fds"}
    assert "process_resident_memory_bytes" in names  # the RSS budget, watched from outside
    assert "_created" not in text


def test_endpoint_serves_metrics_on_loopback() -> None:
    metrics = Metrics()
    metrics.set_phase("ns", "a", "Ready")
    metrics_server = serve("127.0.0.1", 0, metrics)
    try:
        port = metrics_server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            body = response.read().decode()
        assert 'emqx_operator_cluster_phase{name="a",namespace="ns",phase="Ready"} 1.0' in body
    finally:
        metrics_server.shutdown()
        metrics_server.server_close()


def test_a_deleted_resource_leaves_no_series_behind() -> None:
    """Series of every resource ever reconciled stayed, growing the operator's memory where clusters
    come and go (the fault matrix creates and deletes 192 of them)."""
    metrics = Metrics()
    for name in ("a", "b"):
        metrics.observe_reconcile("ns", name, 0.02, "ok")
        metrics.observe_reconcile("ns", name, 0.02, "error")
        metrics.set_phase("ns", name, "Ready")
    metrics.forget_resource("ns", "a")
    metrics.forget_resource("ns", "never-seen")
    values = scrape(metrics)
    for family in ("emqx_operator_reconcile_total", "emqx_operator_reconcile_errors_total",
                   "emqx_operator_reconcile_duration_seconds_count", "emqx_operator_cluster_phase"):
        assert {dict(key)["name"] for key in values[family]} == {"b"}, family
    assert values["emqx_operator_managed_clusters"] == {labels(): 1}
