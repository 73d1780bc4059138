"""Booting as EMQX releases do: refused configs end the process with EMQX's output, app start
failures, the bootstrap key file, licences, joining, replicant upstreams, per-release API basics."""

from __future__ import annotations

import base64
import json
import time

import pytest

from sandbox.emqxsim.testing import TEST_EMQX_CONF, Harness, emqx_objects, emqx_pod

CORE0 = "ns/emqx-core-0"
CORE0_NAME = "emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local"
CORE1_NAME = "emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local"


def boot(image: str, conf: str = TEST_EMQX_CONF, api_keys: str | None = "operator-key:operator-secret\n", **options):
    harness = Harness(emqx_objects(emqx_conf=conf, api_keys=api_keys))
    harness.add(emqx_pod("emqx-core-0", image=image, **options))
    return harness


# ----------------------------------------------------------------------------- refused configuration


def test_a_value_the_schema_rejects_ends_the_process_with_emqx_output():
    with boot("emqx/emqx:5.8.9", conf=TEST_EMQX_CONF + "mqtt.max_packet_size = 300MB\n") as sim:
        record = sim.record(CORE0)
        assert record.state == "failed" and record.node is None
        termination = record.termination
        assert termination.exit_code == 1
        assert termination.log_tail[-3].endswith("[error] failed_to_check_schema: emqx_conf_schema")
        assert termination.log_tail[-2].endswith(
            '[error] #{kind => validation_error,path => "mqtt.max_packet_size",'
            "reason => #{cause => max_mqtt_packet_size_too_large,maximum => 268435455},value => 314572800}"
        )
        assert termination.log_tail[-1].startswith("ERROR: call_hocon_failed: -v -t ")
        assert termination.log_tail[-1].endswith(
            "-s emqx_conf_schema -c /opt/emqx/etc/base.hocon -c /opt/emqx/data/configs/cluster.hocon "
            "-c /opt/emqx/etc/emqx.conf -d /opt/emqx/data/configs generate"
        )
        view = sim.world.container_view(CORE0)
        assert (view["phase"], view["restart_count"], view["last_termination"]["exit_code"]) == ("waiting", 1, 1)
        # the kubelet starts it again (here at once): the same config fails the same way
        sim.boot()
        assert sim.record(CORE0).restart_count == 2


def test_env_overrides_are_checked_too_and_printed():
    env = [{"name": "EMQX_LOG__CONSOLE__LEVEL", "value": "loud"}]
    with boot("emqx/emqx:5.7.2", extra_env=env) as sim:
        tail = sim.record(CORE0).termination.log_tail
        assert "EMQX_LOG__CONSOLE__LEVEL [log.console.level]: loud" in tail
        assert tail[-2].endswith(
            '#{kind => validation_error,path => "log.console.level",'
            'reason => unable_to_convert_to_enum_symbol,value => <<"loud">>}'
        )


def test_log_console_and_listener_enable_are_unknown_fields_in_5_0():
    with boot("emqx/emqx:5.0.25", conf=TEST_EMQX_CONF + "log.console.level = info\n") as sim:
        assert (
            sim.record(CORE0)
            .termination.log_tail[-2]
            .endswith(
                '#{kind => validation_error,path => "log",reason => unknown_fields,unknown => "console",'
                'unmatched => "console_handler,file_handlers"}'
            )
        )
    with boot("emqx/emqx:5.0.25", conf=TEST_EMQX_CONF + "log.console_handler.level = info\n") as sim:
        assert sim.state(CORE0) == "running"
    conf = TEST_EMQX_CONF + "listeners.tcp.default { enable = true, bind = 1883 }\n"
    with boot("emqx/emqx:5.0.25", conf=conf) as sim:
        assert 'unknown => "enable"' in sim.record(CORE0).termination.log_tail[-2]
    with boot("emqx/emqx:5.1.1", conf=conf) as sim:
        assert sim.state(CORE0) == "running"


def test_a_bad_node_key_stops_bin_emqx_earlier_with_127():
    # node.role before 5.0.23: unknown field of the node root, read by `hocon multi_get`
    with boot("emqx/emqx:5.0.22", conf=TEST_EMQX_CONF + "node.role = replicant\n") as sim:
        termination = sim.record(CORE0).termination
        assert termination.exit_code == 127
        assert termination.log_tail[-3].startswith("escript: exception throw: {emqx_conf_schema,")
        assert 'unknown => "role"' in termination.log_tail[-3]
        assert termination.log_tail[-1].startswith(
            "ERROR: call_hocon_failed: -s emqx_conf_schema -c /opt/emqx/etc/emqx.conf multi_get node.data_dir"
        )


def test_an_unparsable_emqx_conf_ends_the_process():
    with boot("emqx/emqx:5.8.9", conf=TEST_EMQX_CONF + "mqtt.max_packet_size = 1.5MB\n") as sim:
        tail = sim.record(CORE0).termination.log_tail
        assert tail[-2].endswith(
            '[error] {parse_error,#{file => "/opt/emqx/etc/emqx.conf",line => 2,'
            'reason => "syntax error before: \\"MB\\""}}'
        )
    with boot("emqx/emqx:5.0.22", conf=TEST_EMQX_CONF + "x = _json\n") as sim:
        assert (
            sim.record(CORE0)
            .termination.log_tail[-2]
            .endswith(
                '[error] {scan_error,<<"illegal characters \\"_\\" line_number 2 in_file /opt/emqx/etc/emqx.conf">>}'
            )
        )


def test_without_a_dashboard_listener_in_the_mounted_file_there_is_no_api():
    with boot("emqx/emqx:5.8.9", conf="log.console.level = info\n") as sim:
        record = sim.record(CORE0)
        assert record.state == "running" and record.node.spec.dashboard_port == 0
    with boot("emqx/emqx:5.8.9", conf="dashboard.listeners.http { enable = false, bind = 18083 }\n") as sim:
        assert sim.record(CORE0).node.spec.dashboard_port == 18083  # `enable` is deprecated from 5.1.0
    with boot("emqx/emqx:5.0.26", conf="dashboard.listeners.http.enable = false\n") as sim:
        assert sim.record(CORE0).node.spec.dashboard_port == 0
    with boot("emqx/emqx:5.0.26", conf="dashboard.listeners.http { }\n") as sim:
        assert sim.record(CORE0).node.spec.dashboard_port == 18083  # bind defaulted to 18083 before 5.1.0


# ------------------------------------------------------------------------------ bootstrap key file


@pytest.mark.parametrize(("image", "fatal"), [("emqx/emqx:5.7.1", True), ("emqx/emqx:5.7.2", False)])
def test_a_missing_bootstrap_file_stops_the_node_before_5_7_2(image, fatal):
    with boot(image, mount_api_keys=False) as sim:
        record = sim.record(CORE0)
        if fatal:
            assert record.state == "failed" and record.termination.exit_code == 1
            assert record.termination.log_tail[0].endswith(
                '[critical] msg: failed_to_start_app, app: emqx_management, reason: "No such file or directory"'
            )
            assert record.log[-4].endswith(
                "msg: failed_to_open_the_bootstrap_file, file: /opt/emqx/data/bootstrap_api_key, "
                "reason: No such file or directory"
            )
        else:
            assert record.state == "running"
            assert sim.call(CORE0, "GET", "/api/v5/nodes").status == 401


def test_blank_lines_are_invalid_before_5_6_and_roles_need_5_4():
    with boot("emqx/emqx:5.5.1", api_keys="a:b\n\nc:d\n") as sim:
        assert 'line => 2,reason => "invalid_format"' in sim.record(CORE0).reason
    with boot("emqx/emqx:5.6.0", api_keys="a:b\n\nc:d\n") as sim:
        assert sim.call(CORE0, "GET", "/api/v5/nodes", auth=("c", "d")).status == 200
    # before 5.4.0 the line is key:secret, so "k:s:administrator" has the secret "s:administrator"
    with boot("emqx/emqx:5.3.2", api_keys="k:s:administrator\n") as sim:
        assert sim.call(CORE0, "GET", "/api/v5/nodes", auth=("k", "s:administrator")).status == 200
    with boot("emqx/emqx:5.4.0", api_keys="k:s:viewer\n") as sim:  # Community knows only administrator
        assert sim.state(CORE0) == "failed"


def test_replicants_load_the_bootstrap_file_until_5_8_2():
    def replicant_state(image):
        with Harness() as sim:
            sim.add(emqx_pod("emqx-core-0", image=image))
            sim.add(emqx_pod("emqx-replicant-a", role="replicant", image=image, mount_api_keys=False))
            return sim.state("ns/emqx-replicant-a")

    assert replicant_state("emqx/emqx-enterprise:5.7.1") == "failed"  # loaded, missing, fatal
    assert replicant_state("emqx/emqx-enterprise:5.8.3") == "running"  # cores only


# ---------------------------------------------------------------------------------------- licence


def test_licence_on_5_9():
    image = "emqx/emqx-enterprise:5.9.0"
    evaluation = [{"name": "EMQX_LICENSE__KEY", "value": "evaluation"}]
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", image=image, extra_env=evaluation))
        sim.add(emqx_pod("emqx-core-1", image=image, extra_env=evaluation))
        assert sim.state("ns/emqx-core-1") == "running"
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", image=image))
        sim.add(emqx_pod("emqx-core-1", image=image))
        termination = sim.record("ns/emqx-core-1").termination
        assert "SINGLE_NODE_LICENSE, make sure this node and peer nodes are configured with a valid license" in (
            termination.message
        )
    # the licence is cluster config: a node without one gets the cluster's when it syncs
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", image=image, extra_env=evaluation))
        assert sim.call(CORE0, "PUT", "/api/v5/configs", body='license.key = "evaluation"').status == 200
        sim.add(emqx_pod("emqx-core-1", image=image))
        assert sim.state("ns/emqx-core-1") == "running"
    # before 5.9 the default Enterprise licence allows clustering
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.8.9"))
        sim.add(emqx_pod("emqx-core-1", image="emqx/emqx-enterprise:5.8.9"))
        assert sim.state("ns/emqx-core-1") == "running"


# --------------------------------------------------------------------------------------- joining


def test_a_fresh_core_runs_alone_before_it_joins():
    with Harness(join_delay=(30.0, 30.0)) as sim:
        sim.add(emqx_pod("emqx-core-0"))
        sim.add(emqx_pod("emqx-core-1"))
        alone = json.loads(sim.call("ns/emqx-core-1", "GET", "/api/v5/nodes").body)
        assert [node["node"] for node in alone] == [CORE1_NAME]
        assert sim.record("ns/emqx-core-1").summary()["joining"] is True
        join = sim.world._joins[0]
        join.due = time.monotonic()
        sim.boot()
        together = json.loads(sim.call("ns/emqx-core-1", "GET", "/api/v5/nodes").body)
        assert sorted(node["node"] for node in together) == [CORE0_NAME, CORE1_NAME]
        assert [event["event"] for event in sim.world.events][-1] == "joined"
        # restarted with its data, the core is a member and rejoins at once
        pvc_pod = sim.record("ns/emqx-core-1").pod
        sim.world.stop_node("ns/emqx-core-1")
        sim.world.start_node("ns/emqx-core-1")
        sim.boot()
        assert sim.record("ns/emqx-core-1").summary()["joining"] is False
        assert pvc_pod


# ------------------------------------------------------------------------------------- replicants


def test_a_replicant_degrades_when_its_cores_change_application_version():
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.8.8"))
        sim.add(emqx_pod("emqx-replicant-a", role="replicant", image="emqx/emqx-enterprise:5.8.8"))
        assert sim.state("ns/emqx-replicant-a") == "running"
        core = sim.record(CORE0).pod
        core["spec"]["containers"][0]["image"] = "emqx/emqx-enterprise:5.8.9"
        sim.add(core)  # image changed in place: the core restarts on 5.8.9 (app vsn 5.5.5)
        replicant = sim.record("ns/emqx-replicant-a")
        assert replicant.state == "running" and replicant.node.degraded
        assert "replicant_degraded" in [event["event"] for event in sim.world.events]
        # 5.8.2+: emqx_machine_replicant_health_probe warns (every 30 s)
        warnings = [line for line in replicant.log if "no_available_core_node_at_same_version" in line]
        stopped = "#{probe_failure => {error,{erpc,noconnection}}}"
        assert warnings[0].endswith(f"known_cores: #{{'{CORE0_NAME}' => {stopped}}}")
        assert warnings[-1].endswith(f"known_cores: #{{'{CORE0_NAME}' => #{{version => \"5.5.5\"}}}}")
        # it keeps serving but no longer receives cluster config changes
        assert sim.call(CORE0, "PUT", "/api/v5/configs", body="log.console.level = info").status == 200
        assert replicant.node.running_config["log"]["console"]["level"] == "warning"
        sim.add(emqx_pod("emqx-core-1", image="emqx/emqx-enterprise:5.8.8"))
        assert not replicant.node.degraded


def test_no_health_probe_warning_before_5_8_2():
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.7.1"))
        sim.add(emqx_pod("emqx-replicant-a", role="replicant", image="emqx/emqx-enterprise:5.7.1"))
        core = sim.record(CORE0).pod
        core["spec"]["containers"][0]["image"] = "emqx/emqx-enterprise:5.7.2"
        sim.add(core)
        replicant = sim.record("ns/emqx-replicant-a")
        assert replicant.node.degraded
        assert not any("no_available_core_node_at_same_version" in line for line in replicant.log)


# ------------------------------------------------------------------------------------ API per release


def test_status_routes_of_5_0():
    def status(image, path):
        with boot(image) as sim:
            response = sim.call(CORE0, "GET", path, auth=None)
            return response.status, response.headers.get("retry-after")

    assert status("emqx/emqx:5.0.4", "/status")[0] == 404
    assert status("emqx/emqx:5.0.4", "/api/v5/status") == (200, None)
    assert status("emqx/emqx:5.0.6", "/api/v5/status")[0] == 404
    assert status("emqx/emqx:5.0.6", "/status") == (200, None)
    assert status("emqx/emqx:5.0.10", "/api/v5/status") == (200, "15")


def test_dashboard_users_authenticate_basic_requests_up_to_5_0_14():
    def nodes(image, user, password):
        with boot(image) as sim:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            response = sim.call(CORE0, "GET", "/api/v5/nodes", auth=None, headers={"Authorization": f"Basic {token}"})
            return response.status, json.loads(response.body).get("code") if response.status != 200 else None

    assert nodes("emqx/emqx:5.0.14", "admin", "public") == (200, None)
    assert nodes("emqx/emqx:5.0.14", "admin", "nope") == (401, "WRONG_USERNAME_OR_PWD")
    assert nodes("emqx/emqx:5.0.15", "admin", "public") == (401, "BAD_API_KEY_OR_SECRET")


@pytest.mark.parametrize(
    ("image", "stopped"),
    [
        ("emqx/emqx:5.0.17", None),
        ("emqx/emqx:5.0.18", {"node": CORE1_NAME, "node_status": "stopped"}),
        ("emqx/emqx-enterprise:5.0.1", {"node": CORE1_NAME, "node_status": "stopped"}),
        ("emqx/emqx:5.1.0", {"node": CORE1_NAME, "node_status": "stopped", "role": "core"}),
    ],
)
def test_stopped_cores_in_get_nodes_per_release(image, stopped):
    with Harness() as sim:
        core1 = emqx_pod("emqx-core-1", image=image)
        sim.add(emqx_pod("emqx-core-0", image=image), core1)
        sim.delete(core1)
        nodes = json.loads(sim.call(CORE0, "GET", "/api/v5/nodes").body)
        assert (nodes[1] if len(nodes) > 1 else None) == stopped
