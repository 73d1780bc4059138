"""The day-2 operation verbs' pure parts (restart order, rebalance request and preview, backup
archives, EMQX's import rules) and their writes against the in-memory cluster."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from kubectl_emqx.domain import spec as spec_mod
from kubectl_emqx.domain import versions
from kubectl_emqx.view import backup as backup_view
from kubectl_emqx.view import rebalance as rebalance_view
from kubectl_emqx.view import restart as restart_view
from tests.unit.cli_helpers import emqx, fake_with, run


def pod(name: str, role: str, ready: bool = True, ip: str = "10.0.0.1") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"apps.emqx.io/db-role": role}},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


PODS = [pod("demo-core-0", "core"), pod("demo-core-1", "core", ready=False), pod("demo-core-2", "core"),
        pod("demo-replicant-abc0", "replicant", ip="127.16.0.10"), pod("demo-replicant-abc1", "replicant",
                                                                          ip="127.16.0.11")]


# --- restart ---------------------------------------------------------------------------------------


def test_restart_order_is_the_operators_broken_core_first_then_highest_ordinal_then_replicants() -> None:
    body = emqx(cores=3, replicants=2)
    body["status"]["emqxNodes"][3]["connections"] = 50  # replicant abc0 is busier
    the_plan = restart_view.plan(body, PODS, "all", ())
    assert the_plan.cores == ("demo-core-1", "demo-core-2", "demo-core-0")
    assert the_plan.replicants == ("demo-replicant-abc1", "demo-replicant-abc0")  # fewest connections first
    text = "\n".join(the_plan.lines())
    assert "each back and running per EMQX before the next" in text and "(50 connections)" in text
    assert restart_view.plan(body, PODS, "cores", ()).replicants == ()


def test_restart_of_named_nodes_by_pod_or_emqx_name_and_refusals() -> None:
    body = emqx(cores=3, replicants=2)
    the_plan = restart_view.plan(body, PODS, "all", ("emqx@127.16.0.11", "demo-core-2"))
    assert the_plan.pods == ("demo-core-2", "demo-replicant-abc1") and the_plan.named
    with pytest.raises(restart_view.RestartError, match="--node demo-core-9: no such node in default/demo"):
        restart_view.plan(body, PODS, "all", ("demo-core-9",))
    with pytest.raises(restart_view.RestartError, match="demo-core-0 is a core, which --role replicants leaves out"):
        restart_view.plan(body, PODS, "replicants", ("demo-core-0",))


def test_restart_progress_is_judged_on_its_own_request() -> None:
    body = emqx()
    body["spec"]["restart"] = {"at": "2026-01-01T00:00:10Z"}
    assert restart_view.in_progress(body) and restart_view.done(body, "2026-01-01T00:00:10Z")
    body["status"]["restart"] = {"at": "2026-01-01T00:00:10Z", "phase": "Done"}
    assert restart_view.in_progress(body) is None and restart_view.done(body, "2026-01-01T00:00:10Z") is None
    assert restart_view.done(body, "2026-01-01T00:00:11Z") == "waiting for the operator to take the restart request"


# --- rebalance -------------------------------------------------------------------------------------


def test_the_official_rebalance_manifest_maps_onto_spec_rebalance() -> None:
    manifest = {"apiVersion": "apps.emqx.io/v2beta1", "kind": "Rebalance", "metadata": {"name": "rb"},
                "spec": {"instanceName": "demo", "rebalanceStrategy": {"connEvictRate": 10, "relConnThreshold": "1.5"}}}
    assert rebalance_view.from_manifest(manifest) == ("demo", {"connEvictRate": 10, "relConnThreshold": "1.5"})
    for broken, words in [({"kind": "EMQX"}, "expected a Rebalance"),
                          ({**manifest, "spec": {"rebalanceStrategy": {}}}, "spec.instanceName is missing"),
                          ({**manifest, "spec": {"instanceName": "x", "instanceKind": "EmqxEnterprise"}}, "only EMQX"),
                          ({**manifest, "spec": {"instanceName": "x", "rebalanceStrategy": {"speed": 1}}},
                           "rebalanceStrategy.speed is not a rebalance option")]:
        with pytest.raises(rebalance_view.ManifestError, match=words):
            rebalance_view.from_manifest(broken)
    with pytest.raises(rebalance_view.ManifestError, match="must be greater than 1.0"):
        rebalance_view.check_strategy({"relSessThreshold": "1.0"})
    request = spec_mod.normalize({"spec": {"rebalance": {"at": "2026-01-01T00:00:00Z", "strategy": {
        "connEvictRate": 10, "relConnThreshold": "1.5", "waitTakeover": 0}}}}).rebalance
    assert request is not None and request.body() == {"conn_evict_rate": 10, "wait_takeover": 0,
                                                      "rel_conn_threshold": 1.5}


def test_rebalance_preview_applies_emqxs_donor_rule() -> None:
    body = emqx(image="emqx/emqx-enterprise:5.8.0", cores=2, replicants=3)  # sessions count too
    replicants = [n for n in body["status"]["emqxNodes"] if n["role"] == "replicant"]
    for node, count in zip(replicants, (3000, 0, 0), strict=True):
        node["connections"] = node["live_connections"] = count
    preview = rebalance_view.preview(body, {})
    assert preview is not None
    assert preview.coordinator.startswith("emqx@demo-core-0.") and preview.donors == (replicants[0]["node"],)
    assert preview.nothing_to_balance is None
    balanced = rebalance_view.preview(body, {"absConnThreshold": 5000, "absSessThreshold": 5000})
    assert balanced is not None and "within the thresholds" in str(balanced.nothing_to_balance)


def test_rebalance_writes_its_request_and_is_refused_on_opensource_without_a_write() -> None:
    fake = fake_with(emqx(image="emqx/emqx:5.7.2", replicants=0))
    result = run(fake, "rebalance", "demo")
    assert result.exit_code == 1 and "Opensource 5.7.2 has no connection rebalance" in result.stderr
    assert not fake.writes
    enterprise = emqx(image="emqx/emqx-enterprise:5.8.0", replicants=0)
    for node in enterprise["status"]["emqxNodes"]:
        node["edition"] = "Enterprise"
    fake = fake_with(enterprise)
    result = run(fake, "rebalance", "demo", "--conn-evict-rate", "20", "--rel-conn-threshold", "1.25")
    assert result.exit_code == 0, result.output
    request = fake.stored("demo")["spec"]["rebalance"]
    assert request["strategy"] == {"connEvictRate": 20, "relConnThreshold": "1.25"} and request["at"]
    assert run(fake, "rebalance", "demo").exit_code == 1  # one at a time
    result = run(fake, "rebalance", "demo", "--stop")
    assert result.exit_code == 0 and fake.stored("demo")["spec"]["rebalance"]["stop"] is True
    assert "no rebalance is running" in run(fake, "rebalance", "demo", "--stop").stderr
    bad = run(fake, "rebalance", "demo", "--rel-conn-threshold", "1.0")
    assert bad.exit_code == 2 and "must be greater than 1.0" in bad.stderr


# --- backup ----------------------------------------------------------------------------------------


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_an_archive_is_read_before_anything_is_sent() -> None:
    base = "emqx-export-2026-01-01-00-00-00.123"
    data = archive({f"{base}/META.hocon": b'edition = ce\nversion = "5.8.9"\n',
                    f"{base}/cluster.hocon": b"sysmon {vm {long_gc = 200ms}}\nnode {cookie = x}\n",
                    f"{base}/mnesia/emqx_app": b"..", f"{base}/mnesia/emqx_admin": b".."})
    info = backup_view.read(data)
    assert (info.name, info.edition, info.version) == (f"{base}.tar.gz", "ce", "5.8.9")
    assert info.roots == ("sysmon", "node") and info.tables == ("emqx_admin", "emqx_app")
    text = "\n".join(info.lines())
    assert "configuration (cluster.hocon): sysmon" in text and "not imported by EMQX: node" in text
    assert "API keys (emqx_app)" in text
    for broken, words in [(b"junk", "not a gzip tar"),
                          (archive({"a/META.hocon": b"", "b/x": b""}), "not all under one directory"),
                          (archive({f"{base}/cluster.hocon": b""}), "META.hocon is missing"),
                          (archive({f"{base}/META.hocon": b"x = 1"}), "names no edition and version")]:
        with pytest.raises(backup_view.ArchiveError, match=words):
            backup_view.read(broken)


@pytest.mark.parametrize(("archive_edition", "archive_version", "edition", "version", "refused"), [
    ("ce", "5.8.9", versions.OPENSOURCE, (5, 8, 0), None),  # the patch is not compared
    ("ce", "5.8.0", versions.OPENSOURCE, (5, 7, 2), "newer than the cluster's 5.7.2"),
    ("ee", "5.7.2", versions.OPENSOURCE, (5, 8, 9), "Enterprise"),
    ("ce", "5.7.2", versions.ENTERPRISE, (5, 8, 0), None),
    ("ee", "5.9.1", versions.ENTERPRISE, (5, 10, 0), None),
    ("xx", "5.7.2", versions.ENTERPRISE, (5, 8, 0), "neither ce nor ee"),
])
def test_emqxs_import_rules(archive_edition: str, archive_version: str, edition: str, version: Any,
                            refused: str | None) -> None:
    answer = versions.backup_importable(archive_edition, archive_version, edition, version)
    assert (answer is None) if refused is None else (refused in str(answer))


def test_release_gates_of_backup_and_rebalance() -> None:
    assert versions.data_backup_refusal(versions.OPENSOURCE, (5, 3, 2))
    assert versions.data_backup_refusal(versions.OPENSOURCE, (5, 4, 0)) is None
    assert versions.rebalance_refusal(versions.OPENSOURCE, (5, 8, 9))
    assert versions.rebalance_refusal(versions.ENTERPRISE, (5, 0, 4)) is None
    assert versions.rebalance_refusal(versions.ENTERPRISE, (5, 9, 0)) is None
    restricted = [v for v in [(5, 8, 10), (5, 8, 11), (5, 9, 2), (5, 9, 3), (5, 10, 3), (5, 10, 4)]
                  if versions.api_key_backup_restricted(versions.ENTERPRISE, v)]
    assert restricted == [(5, 8, 11), (5, 9, 3), (5, 10, 4)]
    assert not versions.api_key_backup_restricted(versions.OPENSOURCE, (5, 8, 9))


def test_rebalance_wait_follows_the_running_one_to_emqxs_end_and_fails_on_a_refusal() -> None:
    body = emqx(image="emqx/emqx-enterprise:5.8.0", replicants=0)
    for node in body["status"]["emqxNodes"]:
        node["edition"] = "Enterprise"
    at = "2026-01-01T00:00:05Z"
    body["spec"]["rebalance"] = {"at": at}
    body["status"]["rebalance"] = {"at": at, "phase": "Processing", "message": "wait_health_check: 1 donor(s)"}
    fake = fake_with(body)
    fake.script_watch({"rebalance": {"message": "evicting_conns: 1 donor(s) -> 2 recipient(s)"}},
                      {"rebalance": {"phase": "Completed", "message": "EMQX finished the rebalance"}})
    result = run(fake, "rebalance", "demo", "--wait")
    assert result.exit_code == 0, result.output
    assert "following the rebalance asked at 2026-01-01T00:00:05Z" in result.stderr
    assert "rebalance Processing: evicting_conns" in result.stderr and "rebalance Completed" in result.stderr
    assert not fake.writes  # following writes nothing
    fake = fake_with(body)
    fake.script_watch({"rebalance": {"phase": "Failed", "message": "EMQX refused the rebalance: HTTP 400 x"}})
    failed = run(fake, "rebalance", "demo", "--wait")
    assert failed.exit_code == 3 and "rebalance failed: EMQX refused the rebalance: HTTP 400 x" in failed.stderr
