"""Shapes and status codes of the simulated management API (emqx-api.md §8 checklist)."""

from __future__ import annotations

import base64
import json

import pytest

from sandbox.emqxsim import api
from sandbox.emqxsim.testing import Harness, emqx_objects, emqx_pod

CORE0 = "emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local"
CORE1 = "emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local"


def cluster(image: str, cores: int = 2, source=None) -> Harness:
    harness = Harness(source)
    harness.add(*[emqx_pod(f"emqx-core-{index}", image=image) for index in range(cores)])
    return harness


def body(response):
    return json.loads(response.body)


# §8.1 status ------------------------------------------------------------------------------------


def test_status_text_without_auth_and_without_trailing_newline():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        for path in ("/status", "/api/v5/status"):
            response = sim.call("ns/emqx-core-0", "GET", path, auth=None)
            assert response.status == 200
            assert response.body == f"Node {CORE0} is started\nemqx is running".encode()
            assert response.content_type == "text/plain"
            assert response.headers["retry-after"] == "15"


def test_status_json_from_5_0_25_and_status_route_from_5_0_5():
    with cluster("emqx/emqx-enterprise:5.8.9", cores=1) as sim:
        response = sim.call("ns/emqx-core-0", "GET", "/status", auth=None, query={"format": "json"})
        assert body(response) == {
            "node_name": CORE0,
            "rel_vsn": "e5.8.9",
            "broker_status": "started",
            "app_status": "running",
        }
    with cluster("emqx/emqx:5.0.24", cores=1) as sim:
        response = sim.call("ns/emqx-core-0", "GET", "/status", auth=None, query={"format": "json"})
        assert response.body.startswith(b"Node ")
    with cluster("emqx/emqx:5.0.4", cores=1) as sim:
        assert sim.call("ns/emqx-core-0", "GET", "/status", auth=None).status == 404
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/status", auth=None).status == 200


def test_fault_on_status_is_emqx_shaped_503():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        response = api.fault_response(sim.record("ns/emqx-core-0").node, "/status", 503)
        assert response.status == 503
        assert response.headers["retry-after"] == "15"
        assert response.body.endswith(b"emqx is not_running")


# §8.2/§8.3 auth and errors ------------------------------------------------------------------------


def test_auth_errors():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        missing = sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=None)
        assert missing.status == 401
        assert body(missing) == {
            "code": "AUTHORIZATION_HEADER_ERROR",
            "message": "Support authorization: basic/bearer ",
        }
        wrong = sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("operator-key", "nope"))
        assert wrong.status == 401
        assert body(wrong)["code"] == "BAD_API_KEY_OR_SECRET"
        assert wrong.headers["WWW-Authenticate"] == 'Basic Realm="emqx-dashboard"'
        # Dashboard users are not valid for Basic auth.
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("admin", "public")).status == 401
        not_allowed = sim.call("ns/emqx-core-0", "GET", "/api/v5/api_key")
        assert body(not_allowed)["code"] == "API_KEY_NOT_ALLOW"


def test_bearer_token_from_login():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        login = sim.call(
            "ns/emqx-core-0",
            "POST",
            "/api/v5/login",
            auth=None,
            body=json.dumps({"username": "admin", "password": "public"}),
        )
        assert login.status == 200
        token = body(login)["token"]
        assert body(login)["version"] == "5.8.9"
        bad = sim.call(
            "ns/emqx-core-0",
            "POST",
            "/api/v5/login",
            auth=None,
            body=json.dumps({"username": "admin", "password": "x"}),
        )
        assert body(bad) == {"code": "BAD_USERNAME_OR_PWD", "message": "Auth failed"}
        keys = sim.call(
            "ns/emqx-core-0", "GET", "/api/v5/api_key", auth=None, headers={"Authorization": f"Bearer {token}"}
        )
        assert keys.status == 200
        assert body(keys)[0]["name"].startswith("from_bootstrap_file_")
        assert "api_secret" not in body(keys)[0]
        stale = sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=None, headers={"Authorization": "Bearer x"})
        assert body(stale)["code"] == "BAD_TOKEN"


@pytest.mark.parametrize(
    ("accept", "content_type", "expected"),
    [
        ("application/json", "application/json", b'{"code": "NOT_FOUND", "message": "Request Path Not Found"}'),
        ("text/plain", "text/plain", b"404 - NOT FOUND"),
        ("*/*", "text/html", None),
    ],
)
def test_unknown_path_is_404_without_auth_shaped_by_accept(accept, content_type, expected):
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        response = sim.call("ns/emqx-core-0", "GET", "/api/v5/no/such/thing", auth=None, headers={"Accept": accept})
        assert response.status == 404
        assert response.content_type == content_type
        if expected is not None:
            assert response.body == expected


def test_wrong_method_is_405_with_allow():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        response = sim.call("ns/emqx-core-0", "POST", "/api/v5/nodes")
        assert response.status == 405
        assert response.body == b""
        assert response.headers["allow"] == "GET"


# §8.4 nodes --------------------------------------------------------------------------------------


def test_node_fields_are_version_gated():
    expectations = {
        "emqx/emqx:5.0.6": (False, False, False),
        "emqx/emqx:5.0.12": (True, False, False),
        "emqx/emqx:5.1.0": (True, True, False),
        "emqx/emqx:5.8.9": (True, True, True),
    }
    for image, (edition, live, sessions) in expectations.items():
        with cluster(image, cores=1, source=emqx_objects()) as sim:
            # 5.0.6 has no bootstrap file (no API key): read what GET /nodes would serve directly.
            node = sim.record("ns/emqx-core-0").node.node_info()
            assert ("edition" in node) is edition, image
            assert ("live_connections" in node) is live, image
            assert ("cluster_sessions" in node) is sessions, image
            assert isinstance(node["uptime"], int)
            assert isinstance(node["memory_total"], str) and node["memory_total"].endswith("G")
            assert node["version"] == image.rsplit(":", 1)[1]
            assert node["otp_release"].count("/") == 1


def test_get_node_and_cluster():
    with cluster("emqx/emqx:5.8.9") as sim:
        one = sim.call("ns/emqx-core-0", "GET", f"/api/v5/nodes/{CORE1}")
        assert body(one)["node"] == CORE1
        encoded = sim.call(
            "ns/emqx-core-0", "GET", "/api/v5/nodes/emqx%40emqx-core-1.emqx-headless.ns.svc.cluster.local"
        )
        assert encoded.status == 200
        missing = sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes/emqx@nowhere")
        assert missing.status == 404
        assert body(missing) == {"code": "NOT_FOUND", "message": "Node not found: emqx@nowhere"}
        assert body(sim.call("ns/emqx-core-1", "GET", "/api/v5/cluster")) == {
            "name": "emqxcl",
            "nodes": [CORE0, CORE1],
            "self": CORE1,
        }


def test_topology_from_5_1_2():
    # emqx_mgmt_api_cluster.erl: "/cluster/topology" first in v5.1.2 and e5.1.1
    for image in ("emqx/emqx:5.1.1", "emqx/emqx-enterprise:5.1.0"):
        with cluster(image, cores=1) as sim:
            assert sim.call("ns/emqx-core-0", "GET", "/api/v5/cluster/topology").status == 404
    for image in ("emqx/emqx:5.1.2", "emqx/emqx-enterprise:5.1.1"):
        with cluster(image, cores=1) as sim:
            assert body(sim.call("ns/emqx-core-0", "GET", "/api/v5/cluster/topology")) == [
                {"core_node": CORE0, "replicant_nodes": []}
            ]
    with cluster("emqx/emqx:5.2.0", cores=1) as sim:
        assert body(sim.call("ns/emqx-core-0", "GET", "/api/v5/cluster/topology")) == [
            {"core_node": CORE0, "replicant_nodes": []}
        ]


# §8.5/§8.6 configs ---------------------------------------------------------------------------------


def test_get_configs_hocon_by_default_json_on_request():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        hocon = sim.call("ns/emqx-core-0", "GET", "/api/v5/configs")
        assert hocon.content_type == "text/plain"
        text = hocon.body.decode()
        assert 'discovery_strategy = "dns"' in text and "bind = 18083" in text
        assert "k8s {" not in text  # inactive discovery strategies are dropped
        assert "\nbroker " not in text  # hidden root
        as_json = body(sim.call("ns/emqx-core-0", "GET", "/api/v5/configs", headers={"Accept": "application/json"}))
        assert sorted(as_json) == ["alarm", "broker", "dashboard", "log", "sys_topics", "sysmon"]
        assert as_json["dashboard"]["default_password"] == "******"
        keyed = sim.call("ns/emqx-core-0", "GET", "/api/v5/configs", query={"key": "log"})
        assert keyed.body.decode().startswith("log {")
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/configs", query={"key": "nope"}).status == 400


def test_put_configs_merge_replace_and_visible_on_all_nodes():
    with cluster("emqx/emqx:5.8.9") as sim:
        ok = sim.call(
            "ns/emqx-core-0",
            "PUT",
            "/api/v5/configs",
            body="log.console.level = debug\n",
            headers={"Content-Type": "text/plain"},
        )
        assert (ok.status, ok.body) == (200, b"")
        on_other = body(sim.call("ns/emqx-core-1", "GET", "/api/v5/configs", headers={"Accept": "application/json"}))
        assert on_other["log"]["console"]["level"] == "debug"
        assert on_other["log"]["console"]["formatter"] == "text"  # merge keeps siblings
        sim.call(
            "ns/emqx-core-1",
            "PUT",
            "/api/v5/configs",
            query={"mode": "replace"},
            body="log { console { level = error } }",
        )
        replaced = body(sim.call("ns/emqx-core-0", "GET", "/api/v5/configs", headers={"Accept": "application/json"}))
        assert replaced["log"]["console"]["level"] == "error"
        assert replaced["log"]["console"]["formatter"] == "text"  # defaults fill the rest
        assert replaced["log"]["file"]["default"]["enable"] is False


def test_new_node_copies_cluster_config_from_a_core():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", body="sysmon.os.cpu_check_interval = 10s")
        sim.add(emqx_pod("emqx-core-1"))
        copied = body(sim.call("ns/emqx-core-1", "GET", "/api/v5/configs", headers={"Accept": "application/json"}))
        assert copied["sysmon"]["os"]["cpu_check_interval"] == "10s"


def test_env_and_emqx_conf_win_again_after_restart():
    source = emqx_objects(emqx_conf="log.console.level = info\n")
    with cluster("emqx/emqx:5.8.9", cores=1, source=source) as sim:
        sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", body="log.console.level = debug")
        sim.world.stop_node("ns/emqx-core-0")
        sim.world.start_node("ns/emqx-core-0")
        sim.boot()
        config = body(sim.call("ns/emqx-core-0", "GET", "/api/v5/configs", headers={"Accept": "application/json"}))
        assert config["log"]["console"]["level"] == "info"


@pytest.mark.parametrize(
    ("image", "content_type", "expected"),
    [
        # 5.8: rpc/node roots are checked before the cluster.* sub-keys, one error at a time
        ("emqx/emqx:5.8.9", "text/plain", {"errors": "Cannot update read-only key 'node'."}),
        # 5.7.0: ?READONLY_KEYS = [cluster, rpc, node], whole roots, in that order
        ("emqx/emqx:5.7.0", "text/plain", {"errors": "Cannot update read-only key 'cluster,node'."}),
        ("emqx/emqx:5.5.1", "text/plain", "update_readonly_keys_prohibited"),
        # 5.4.0: still a charlist, which minirest's jsx encoder turns into a list of integers
        ("emqx/emqx:5.4.0", "text/plain", [ord(char) for char in "update_readonly_keys_prohibited"]),
        (
            "emqx/emqx:5.1.1",
            "application/json",
            {"code": "UPDATE_FAILED", "message": '"update_readonly_keys_prohibited"'},
        ),
    ],
)
def test_read_only_roots_rejected_with_version_specific_errors(image, content_type, expected):
    with cluster(image, cores=1) as sim:
        response = sim.call(
            "ns/emqx-core-0",
            "PUT",
            "/api/v5/configs",
            body='node.cookie = x\ncluster.dns.name = "y"\nlog.console.level = debug',
        )
        assert response.status == 400
        assert response.content_type == content_type
        payload = response.body.decode()
        assert (payload if isinstance(expected, str) else json.loads(payload)) == expected


def test_cluster_sub_keys_are_read_only_from_5_8_except_links():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        response = sim.call(
            "ns/emqx-core-0", "PUT", "/api/v5/configs", body="cluster { autoheal = false, autoclean = 1h }"
        )
        assert body(response) == {"errors": "Cannot update read-only key 'cluster.autoclean,cluster.autoheal'."}


def test_ignore_readonly_from_5_7():
    conf = "node.cookie = x\ncluster { links = [], autoheal = false }\nlog.console.level = debug"
    with cluster("emqx/emqx:5.7.0", cores=1) as sim:
        ok = sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", query={"ignore_readonly": "true"}, body=conf)
        assert ok.status == 200
        config = body(sim.call("ns/emqx-core-0", "GET", "/api/v5/configs", headers={"Accept": "application/json"}))
        assert config["log"]["console"]["level"] == "debug"
        hocon = sim.call("ns/emqx-core-0", "GET", "/api/v5/configs", query={"key": "node"}).body.decode()
        assert 'cookie = "s3cret-cookie"' in hocon
    with cluster("emqx/emqx:5.6.1", cores=1) as sim:
        response = sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", query={"ignore_readonly": "true"}, body=conf)
        assert response.status == 400


def test_put_configs_errors_and_absence_before_5_1_1():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        parse = sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", body="log {{{")
        assert parse.status == 400 and parse.content_type == "text/plain"
        assert body(parse) == {"errors": {"line": 1, "reason": "syntax error before: '{'", "type": "parse_error"}}
        unknown = sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", body="a = 1")
        assert unknown.body.decode() == '{"errors":{"a":"{root_key_not_found,<<\\"a\\">>}"}}'
        invalid = sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", body="log.console.level = erro1r")
        assert body(invalid) == {
            "errors": {
                "log": {
                    "kind": "validation_error",
                    "path": "log.console.level",
                    "reason": "unable_to_convert_to_enum_symbol",
                    "value": "erro1r",
                }
            }
        }
    with cluster("emqx/emqx:5.1.0", cores=1) as sim:
        assert sim.call("ns/emqx-core-0", "PUT", "/api/v5/configs", body="log {}").status == 405
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/configs").content_type == "application/json"


def test_per_root_config_endpoints_only_for_six_roots():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        assert body(sim.call("ns/emqx-core-0", "GET", "/api/v5/configs/log"))["console"]["level"] == "warning"
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/configs/node").status == 404
        put = sim.call(
            "ns/emqx-core-0", "PUT", "/api/v5/configs/sys_topics", body=json.dumps({"sys_msg_interval": "2m"})
        )
        assert put.status == 200 and body(put)["sys_msg_interval"] == "2m"


# §8.7 load_rebalance ------------------------------------------------------------------------------


def test_rebalance_endpoints_404_on_opensource_until_5_9():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        for path in (
            "/api/v5/load_rebalance/availability_check",
            "/api/v5/load_rebalance/global_status",
            f"/api/v5/load_rebalance/{CORE0}/evacuation/start",
        ):
            assert sim.call("ns/emqx-core-0", "GET", path, auth=None).status == 404
    with cluster("emqx/emqx-enterprise:5.9.0", cores=1) as sim:
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/load_rebalance/availability_check", auth=None).status == 200


def test_evacuation_state_machine_to_terminal_prohibiting():
    with cluster("emqx/emqx-enterprise:5.8.9") as sim:
        sim.world.set_connections("ns/emqx-core-0", 1200, 1000)
        start = sim.call(
            "ns/emqx-core-0",
            "POST",
            f"/api/v5/load_rebalance/{CORE0}/evacuation/start",
            body=json.dumps(
                {
                    "conn_evict_rate": 500,
                    "sess_evict_rate": 600,
                    "wait_health_check": "2s",
                    "wait_takeover": 3,
                    "migrate_to": [CORE1],
                }
            ),
        )
        assert (start.status, body(start)) == (200, {})
        node = sim.record("ns/emqx-core-0").node
        evacuation = node.evacuation
        t0 = evacuation.started_at
        expected = [
            (1.0, "waiting_health_check", 1000, 1200),
            (2.0, "evicting_conns", 500, 1200),
            (3.5, "evicting_conns", 0, 1200),
            (4.5, "waiting_takeover", 0, 1200),
            (7.5, "evicting_sessions", 0, 600),
            (8.5, "evicting_sessions", 0, 0),
            (9.0, "prohibiting", 0, 0),
            (1000.0, "prohibiting", 0, 0),
        ]
        for offset, state, connected, sessions in expected:
            assert evacuation.progress(t0 + offset, True) == (state, connected, sessions), offset
        status = body(sim.call("ns/emqx-core-1", "GET", "/api/v5/load_rebalance/global_status"))
        item = status["evacuations"][0]
        assert item["node"] == CORE0 and item["session_recipients"] == [CORE1]
        assert set(item["stats"]) == {"initial_connected", "current_connected", "initial_sessions", "current_sessions"}
        assert status["purges"] == [] and status["rebalances"] == []
        check = sim.call("ns/emqx-core-0", "GET", "/api/v5/load_rebalance/availability_check", auth=None)
        assert (check.status, body(check)) == (503, {"code": "NODE_EVACUATING", "message": "Node Evacuating"})
        assert sim.call("ns/emqx-core-1", "GET", "/api/v5/load_rebalance/availability_check", auth=None).status == 200
        again = sim.call("ns/emqx-core-1", "POST", f"/api/v5/load_rebalance/{CORE0}/evacuation/start")
        assert (again.status, body(again)) == (
            400,
            {"code": "BAD_REQUEST", "message": f"error on node '{CORE0}': already_started"},
        )
        stop = sim.call("ns/emqx-core-0", "POST", f"/api/v5/load_rebalance/{CORE0}/evacuation/stop")
        assert stop.status == 200
        not_started = sim.call("ns/emqx-core-0", "POST", f"/api/v5/load_rebalance/{CORE0}/evacuation/stop")
        assert body(not_started)["message"] == f"error on node '{CORE0}': not_started"


def test_evacuation_without_recipients_never_finishes():
    with cluster("emqx/emqx-enterprise:5.8.9", cores=1) as sim:
        sim.world.set_connections("ns/emqx-core-0", 10, 0)
        sim.call(
            "ns/emqx-core-0",
            "POST",
            f"/api/v5/load_rebalance/{CORE0}/evacuation/start",
            body=json.dumps({"wait_health_check": 0, "wait_takeover": 0}),
        )
        evacuation = sim.record("ns/emqx-core-0").node.evacuation
        assert evacuation.progress(evacuation.started_at + 10_000, False)[0] == "evicting_sessions"


def test_evacuation_start_validation():
    with cluster("emqx/emqx-enterprise:5.8.9") as sim:

        def start(payload, node=CORE0):
            response = sim.call(
                "ns/emqx-core-1", "POST", f"/api/v5/load_rebalance/{node}/evacuation/start", body=json.dumps(payload)
            )
            return response.status, body(response)

        assert start({}, node="emqx@ghost") == (404, {"code": "NOT_FOUND", "message": "Node not found: emqx@ghost"})
        # the body is checked before the node is looked up (emqx_dashboard_swagger filter)
        assert start({"bogus": 1}, node="emqx@ghost") == (
            400,
            {
                "code": "BAD_REQUEST",
                "message": '{"kind":"validation_error","path":"root","reason":"unknown_fields",'
                '"unknown":"bogus","unmatched":"conn_evict_rate,migrate_to,..."}',
            },
        )
        assert start({"migrate_to": []}) == (
            400,
            {
                "code": "BAD_REQUEST",
                "message": '{"kind":"validation_error","path":"root.migrate_to",'
                '"reason":{"expected":"[binary(),...]"},"value":[]}',
            },
        )
        assert start({"migrate_to": ["emqx@never-seen"]}) == (
            400,
            {"code": "BAD_REQUEST", "message": 'Invalid nodes: [<<"emqx@never-seen">>]'},
        )
        assert start({"wait_takeover": 0, "wait_health_check": "10s"})[0] == 200
        sim.call("ns/emqx-core-1", "POST", f"/api/v5/load_rebalance/{CORE0}/evacuation/stop")
        sim.delete(sim.record("ns/emqx-core-1").pod)
        response = sim.call(
            "ns/emqx-core-0",
            "POST",
            f"/api/v5/load_rebalance/{CORE0}/evacuation/start",
            body=json.dumps({"migrate_to": [CORE1]}),
        )
        assert (response.status, body(response)) == (
            400,
            {"code": "NOT_FOUND", "message": f"Nodes unavailable: ['{CORE1}']"},
        )


def test_evacuation_target_that_is_itself_evacuating_is_unavailable():
    with cluster("emqx/emqx-enterprise:5.8.9") as sim:
        sim.call("ns/emqx-core-0", "POST", f"/api/v5/load_rebalance/{CORE1}/evacuation/start")
        response = sim.call(
            "ns/emqx-core-0",
            "POST",
            f"/api/v5/load_rebalance/{CORE0}/evacuation/start",
            body=json.dumps({"migrate_to": [CORE1]}),
        )
        assert (response.status, body(response)["code"]) == (400, "NOT_FOUND")


def test_evacuation_body_rules_of_enterprise_50_and_51():
    with cluster("emqx/emqx-enterprise:5.0.4", cores=1) as sim:

        def start(payload):
            response = sim.call(
                "ns/emqx-core-0", "POST", f"/api/v5/load_rebalance/{CORE0}/evacuation/start", body=json.dumps(payload)
            )
            return response.status, body(response)

        # wait_health_check arrived in e5.1.0; hocon 0.39.4 still says expected_type
        status, payload = start({"wait_health_check": 1})
        assert status == 400 and '"reason":"unknown_fields"' in payload["message"]
        assert start({"wait_takeover": 0}) == (
            400,
            {
                "code": "BAD_REQUEST",
                "message": '{"kind":"validation_error","path":"root.wait_takeover",'
                '"reason":{"expected_type":"pos_integer()"},"value":0}',
            },
        )
        assert start({"wait_takeover": 5})[0] == 200
        # e5.0.x renders io_lib:format's deep char list with ~0p (binfmt arrived in e5.1.0)
        status, payload = start({})
        prefix = "error on node "
        assert status == 400
        assert payload["message"] == (
            "[" + ",".join(str(ord(char)) for char in prefix) + f',"\'{CORE0}\'",58,32,"already_started"]'
        )
    with cluster("emqx/emqx-enterprise:5.1.0", cores=1) as sim:
        response = sim.call(
            "ns/emqx-core-0",
            "POST",
            f"/api/v5/load_rebalance/{CORE0}/evacuation/start",
            body=json.dumps({"wait_takeover": 0}),
        )
        assert response.status == 400  # still pos_integer() in e5.1.0; 0 and "10s" are fine from e5.1.1
    with cluster("emqx/emqx-enterprise:5.1.1", cores=1) as sim:
        response = sim.call(
            "ns/emqx-core-0",
            "POST",
            f"/api/v5/load_rebalance/{CORE0}/evacuation/start",
            body=json.dumps({"wait_takeover": 0}),
        )
        assert response.status == 200


@pytest.mark.parametrize(
    ("image", "resumes"), [("emqx/emqx-enterprise:5.7.0", True), ("emqx/emqx-enterprise:5.6.1", False)]
)
def test_evacuation_flag_survives_restart_on_the_same_volume(image, resumes):
    pvc = {"persistentVolumeClaim": {"claimName": "data-emqx-core-0"}}
    with Harness() as sim:
        core = emqx_pod("emqx-core-0", image=image, data=pvc)
        sim.add(core)
        sim.call("ns/emqx-core-0", "POST", f"/api/v5/load_rebalance/{CORE0}/evacuation/start")
        sim.delete(core)
        sim.add(emqx_pod("emqx-core-0", image=image, data=pvc))
        record = sim.record("ns/emqx-core-0")
        if resumes:
            assert record.state == "running"
            assert record.node.evacuation_state() == "evicting_conns"
            assert sim.call("ns/emqx-core-0", "GET", "/api/v5/load_rebalance/availability_check").status == 503
            sim.call("ns/emqx-core-0", "POST", f"/api/v5/load_rebalance/{CORE0}/evacuation/stop")
            sim.delete(record.pod)
            sim.add(emqx_pod("emqx-core-0", image=image, data=pvc))
            assert sim.record("ns/emqx-core-0").node.evacuation is None
        else:
            # before #12871 (e5.7.0) emqx_node_rebalance crashed restoring data/.evacuation: the node exits
            assert record.state == "failed"
            assert record.termination.exit_code == 1
            assert "failed_to_start_app, app: emqx_node_rebalance" in "\n".join(record.termination.log_tail)
            assert record.log[-1].startswith("Crash dump is being written to")


def test_viewer_key_is_read_only_on_enterprise():
    with cluster("emqx/emqx-enterprise:5.8.9", cores=1, source=emqx_objects(api_keys="v:s:viewer\n")) as sim:
        assert sim.call("ns/emqx-core-0", "GET", "/api/v5/nodes", auth=("v", "s")).status == 200
        assert (
            sim.call(
                "ns/emqx-core-0", "POST", f"/api/v5/load_rebalance/{CORE0}/evacuation/start", auth=("v", "s")
            ).status
            == 403
        )


def test_basic_header_garbage_is_rejected():
    with cluster("emqx/emqx:5.8.9", cores=1) as sim:
        response = sim.call(
            "ns/emqx-core-0",
            "GET",
            "/api/v5/nodes",
            auth=None,
            headers={"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        )
        assert response.status == 401
