"""EMQX's boot and clustering rules in the simulator (emqx-api.md §1.3, §3.6, §5.2, §5.3, §7.2, §7.3)."""

from __future__ import annotations

import json

import pytest

from sandbox.emqxsim.testing import Harness, emqx_objects, emqx_pod


@pytest.fixture
def sim():
    with Harness() as harness:
        yield harness


def _nodes(sim, ident):
    response = sim.call(ident, "GET", "/api/v5/nodes")
    assert response.status == 200
    return json.loads(response.body)


def test_cores_and_replicants_sharing_cookie_and_dns_name_form_one_cluster(sim):
    image = "emqx/emqx-enterprise:5.8.9"
    sim.add(
        emqx_pod("emqx-core-0", image=image),
        emqx_pod("emqx-core-1", image=image),
        emqx_pod("emqx-replicant-a", "127.252.200.1", role="replicant", image=image),
    )
    sim.boot()  # the replicant may have been tried before any core was up
    nodes = _nodes(sim, "ns/emqx-core-0")
    assert sorted((n["node"], n["role"], n["version"], n["edition"]) for n in nodes) == [
        ("emqx@127.252.200.1", "replicant", "5.8.9", "Enterprise"),
        ("emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local", "core", "5.8.9", "Enterprise"),
        ("emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local", "core", "5.8.9", "Enterprise"),
    ]
    # Every node serves the whole cluster's view.
    assert [n["node"] for n in _nodes(sim, "ns/emqx-replicant-a")] == [n["node"] for n in nodes]


def test_different_cookie_or_dns_name_means_separate_clusters(sim):
    other_ns = emqx_objects(namespace="other")
    sim.source.secrets.update(other_ns.secrets)
    sim.source.config_maps.update(other_ns.config_maps)
    sim.add(emqx_pod("emqx-core-0"), emqx_pod("emqx-core-0", namespace="other"), emqx_pod("emqx-core-1", cookie=False))
    assert [n["node"] for n in _nodes(sim, "ns/emqx-core-0")] == ["emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local"]
    assert [n["node"] for n in _nodes(sim, "ns/emqx-core-1")] == ["emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local"]


def test_replicant_without_cookie_never_finds_a_core(sim):
    sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.7.2"))
    sim.add(emqx_pod("emqx-replicant-a", role="replicant", image="emqx/emqx:5.7.2", cookie=False))
    assert sim.state("ns/emqx-replicant-a") == "waiting"


def test_replicant_waits_for_a_same_version_core_from_56(sim):
    sim.add(emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.8.8"))
    sim.add(emqx_pod("emqx-replicant-a", role="replicant", image="emqx/emqx-enterprise:5.8.9"))
    record = sim.record("ns/emqx-replicant-a")
    assert record.state == "waiting"
    assert "emqx application version 5.5.5" in record.reason
    sim.add(emqx_pod("emqx-core-1", image="emqx/emqx-enterprise:5.8.9"))
    sim.boot()
    assert sim.state("ns/emqx-replicant-a") == "running"


def test_same_version_rule_compares_the_emqx_application_version(sim):
    # e5.9.1 and e5.10.0 both ship the emqx application 5.5.4 (apps/emqx/src/emqx.app.src)
    license_env = [{"name": "EMQX_LICENSE__KEY", "value": "evaluation"}]
    sim.add(emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.9.1", extra_env=license_env))
    sim.add(emqx_pod("emqx-replicant-a", role="replicant", image="emqx/emqx-enterprise:5.10.0", extra_env=license_env))
    assert sim.state("ns/emqx-replicant-a") == "running"
    sim.add(emqx_pod("emqx-replicant-b", role="replicant", image="emqx/emqx-enterprise:5.10.1", extra_env=license_env))
    assert sim.state("ns/emqx-replicant-b") == "waiting"


def test_replicant_before_56_needs_any_core(sim):
    sim.add(emqx_pod("emqx-replicant-a", role="replicant", image="emqx/emqx:5.5.1"))
    assert sim.state("ns/emqx-replicant-a") == "waiting"
    sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.5.0"))
    sim.boot()
    assert sim.state("ns/emqx-replicant-a") == "running"


def test_cores_of_distant_releases_still_cluster(sim):
    # EMQX has no "one minor step" rule: that is the operator's caution (emqx-api.md corrections)
    sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.6.1"))
    sim.add(emqx_pod("emqx-core-1", image="emqx/emqx:5.8.9"))
    assert sim.state("ns/emqx-core-1") == "running"
    assert len(_nodes(sim, "ns/emqx-core-0")) == 2


def test_59_multi_node_cluster_needs_a_license(sim):
    image = "emqx/emqx-enterprise:5.9.0"
    sim.add(emqx_pod("emqx-core-0", image=image))
    assert sim.state("ns/emqx-core-0") == "running"  # a single node runs on the community license
    sim.add(emqx_pod("emqx-core-1", image=image))
    assert "SINGLE_NODE_LICENSE" in sim.record("ns/emqx-core-1").reason
    license_env = [{"name": "EMQX_LICENSE__KEY", "value": "trial-key"}]
    sim.add(emqx_pod("emqx-core-2", image=image, extra_env=license_env))
    assert sim.state("ns/emqx-core-2") == "failed"  # the running peer has no license either


def test_licensed_59_nodes_cluster(sim):
    license_env = [{"name": "EMQX_LICENSE__KEY", "value": "trial-key"}]
    image = "emqx/emqx-enterprise:5.9.0"
    sim.add(
        emqx_pod("emqx-core-0", image=image, extra_env=license_env),
        emqx_pod("emqx-core-1", image=image, extra_env=license_env),
    )
    assert len(_nodes(sim, "ns/emqx-core-0")) == 2


def test_stopped_core_is_listed_until_force_leave_and_pod_recreation_boots_again(sim):
    core0, core1 = emqx_pod("emqx-core-0"), emqx_pod("emqx-core-1")
    sim.add(core0, core1)
    sim.delete(core1)
    nodes = _nodes(sim, "ns/emqx-core-0")
    assert nodes[-1] == {
        "node": "emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local",
        "node_status": "stopped",
        "role": "core",
    }
    assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes/" + nodes[-1]["node"]).status == 404
    sim.add(emqx_pod("emqx-core-1"))  # same name, new uid
    assert [n["node_status"] for n in _nodes(sim, "ns/emqx-core-0")] == ["running", "running"]
    sim.delete(sim.record("ns/emqx-core-1").pod)
    name = "emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local"
    assert sim.call("ns/emqx-core-0", "DELETE", f"/api/v5/cluster/{name}/force_leave").status == 204
    assert len(_nodes(sim, "ns/emqx-core-0")) == 1
    self_leave = sim.call(
        "ns/emqx-core-0", "DELETE", "/api/v5/cluster/emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local/force_leave"
    )
    assert self_leave.status == 400


def test_stopped_replicants_are_not_listed(sim):
    image = "emqx/emqx:5.7.2"
    replicant = emqx_pod("emqx-replicant-a", role="replicant", image=image)
    sim.add(emqx_pod("emqx-core-0", image=image))
    sim.add(replicant)
    sim.delete(replicant)
    assert [n["role"] for n in _nodes(sim, "ns/emqx-core-0")] == ["core"]


def test_bootstrap_keys_load_on_cores_only_and_replicants_see_them_by_replication(sim):
    image = "emqx/emqx:5.7.2"
    sim.add(emqx_pod("emqx-replicant-a", role="replicant", image=image))
    sim.source.secrets[("ns", "emqx-bootstrap-api-key")] = {"bootstrap_api_key": "other:secret"}
    sim.add(emqx_pod("emqx-core-0", image=image))
    sim.boot()
    assert sim.call("ns/emqx-replicant-a", "GET", "/api/v5/nodes", auth=("other", "secret")).status == 200
    assert sim.call("ns/emqx-replicant-a", "GET", "/api/v5/nodes").status == 401


def test_bootstrap_file_aborts_at_first_bad_line_and_roles_follow_edition():
    keys = "good:one\n\n  second:two  \nbroken-line\nafter:bad\n"
    with Harness(emqx_objects(api_keys=keys)) as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.8.9"))
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("good", "one")).status == 200
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("second", "two")).status == 200
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("after", "bad")).status == 401
    roles = "admin:a:administrator\nview:v:viewer\nlater:l\n"
    with Harness(emqx_objects(api_keys=roles)) as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.8.9"))  # CE: viewer is not a role -> abort
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("admin", "a")).status == 200
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("later", "l")).status == 401
    with Harness(emqx_objects(api_keys=roles)) as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.8.9"))
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("view", "v")).status == 200
        denied = sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", auth=("view", "v"), body="log {}")
        assert denied.status == 403
        assert json.loads(denied.body)["code"] == "UNAUTHORIZED_ROLE"
    with Harness(emqx_objects(api_keys="k:s:administrator\n")) as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.3.2"))  # before 5.4 the third field is the secret's
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("k", "s:administrator")).status == 200


def test_bootstrap_file_needs_5_0_14():
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.0.13"))
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes").status == 401
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-1", image="emqx/emqx:5.0.14"))
        assert sim.call("ns/emqx-core-1", "GET", "/api/v5/nodes").status == 200


def test_missing_api_key_file_boots_but_rejects_the_key():
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", mount_api_keys=False))
        assert sim.state("ns/emqx-core-0") == "running"
        response = sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes")
        assert response.status == 401
        assert json.loads(response.body) == {"code": "BAD_API_KEY_OR_SECRET", "message": "Check api_key/api_secret"}


def test_keys_and_membership_persist_on_a_pvc(sim):
    pvc = {"persistentVolumeClaim": {"claimName": "data-emqx-core-0"}}
    core = emqx_pod("emqx-core-0", data=pvc)
    sim.add(core)
    sim.delete(core)
    sim.source.secrets[("ns", "emqx-bootstrap-api-key")] = {"bootstrap_api_key": "new:key"}
    sim.add(emqx_pod("emqx-core-0", data=pvc))
    # The old key is still in the DB on the volume; removing a line does not delete a key.
    assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes").status == 200
    assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("new", "key")).status == 200


def test_missing_secret_leaves_pod_unbooted_until_it_appears(sim):
    sim.source.secrets.pop(("ns", "emqx-node-cookie"))
    sim.add(emqx_pod("emqx-core-0"))
    record = sim.record("ns/emqx-core-0")
    assert record.state == "failed"
    assert 'secret "emqx-node-cookie" not found' in record.reason
    sim.source.secrets[("ns", "emqx-node-cookie")] = {"node_cookie": "c"}
    sim.boot()
    assert sim.state("ns/emqx-core-0") == "running"


def test_image_changed_in_place_restarts_the_node(sim):
    pod = emqx_pod("emqx-core-0", image="emqx/emqx:5.7.2")
    sim.add(pod)
    pod["spec"]["containers"][0]["image"] = "emqx/emqx:5.8.0"
    sim.add(pod)
    assert _nodes(sim, "ns/emqx-core-0")[0]["version"] == "5.8.0"
    assert [event["event"] for event in sim.world.events] == ["booted", "stopped", "booted"]


def test_never_boot_image_hangs_until_allowed(sim):
    sim.world.never_boot_images.add("emqx/emqx:5.8.9")
    sim.add(emqx_pod("emqx-core-0"))
    assert sim.state("ns/emqx-core-0") == "hung"
    sim.world.never_boot_images.clear()
    sim.boot()
    assert sim.state("ns/emqx-core-0") == "running"


def test_boot_log_records_order_and_failures(sim):
    sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.9.9"))
    sim.add(emqx_pod("emqx-core-1"))
    sim.world.stop_node("ns/emqx-core-1", crash=True)
    events = [(e["event"], e["pod"]) for e in sim.world.events]
    assert events == [("boot_failed", "ns/emqx-core-0"), ("booted", "ns/emqx-core-1"), ("crashed", "ns/emqx-core-1")]
    assert "manifest" in sim.world.events[0]["reason"]
    times = [e["time"] for e in sim.world.events]
    assert times == sorted(times)
    sim.boot()  # a repeated identical failure is not logged again
    assert len(sim.world.events) == 3


def test_data_directories_survive_a_new_simulator(tmp_path):
    """A restarted simulator (every node reboots) finds what the volumes kept: cluster.hocon here."""
    pvc = {"persistentVolumeClaim": {"claimName": "data-emqx-core-0"}}
    core = emqx_pod("emqx-core-0", data=pvc)
    state = tmp_path / "emqxsim-data.pickle"
    with Harness() as first:
        first.add(core)
        assert first.call("ns/emqx-core-0", "PUT", "/api/v5/configs", body="log.console.level = debug\n",
                          headers={"content-type": "text/plain"}).status == 200
        first.world.save_data(state)
    with Harness() as second:
        assert second.world.load_data(state) >= 1
        second.add(core)
        live = second.call("ns/emqx-core-0", "GET", "/api/v5/configs").body.decode()
        assert "debug" in live.split("console", 1)[1][:200]
    with Harness() as fresh:
        fresh.add(core)
        live = fresh.call("ns/emqx-core-0", "GET", "/api/v5/configs").body.decode()
        assert "debug" not in live.split("console", 1)[1][:200]


def test_faults_scoped_to_a_namespace_match_its_pods_only():
    from sandbox.emqxsim.world import Fault

    fault = Fault(1, None, 503, 0.0, "/api/v5/", None, False, namespace="ns")
    assert fault.matches("emqx@10.0.0.1", "ns/emqx-replicant-abc", "/api/v5/nodes")
    assert not fault.matches("emqx@10.0.0.2", "other/emqx-core-0", "/api/v5/nodes")
    assert not fault.matches("emqx@10.0.0.1", "ns/emqx-core-0", "/status")
