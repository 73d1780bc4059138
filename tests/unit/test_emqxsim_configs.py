"""Configuration as EMQX releases assemble and change it: PUT /configs answers per release
(emqx_mgmt_api_configs + emqx_conf_cli + minirest), boot layers, listeners (emqx-api.md §3)."""

from __future__ import annotations

import json

import pytest

from sandbox.emqxsim.testing import TEST_EMQX_CONF, Harness, emqx_objects, emqx_pod

CORE0 = "ns/emqx-core-0"
ADMIN = ("admin", "public")


def single(image: str, conf: str = TEST_EMQX_CONF, **pod_options) -> Harness:
    harness = Harness(emqx_objects(emqx_conf=conf))
    harness.add(emqx_pod("emqx-core-0", image=image, **pod_options))
    return harness


def put(sim: Harness, text: str | bytes, **query: str):
    response = sim.call(CORE0, "PUT", "/api/v5/configs", body=text, query=query or None)
    return response.status, response.content_type, response.body.decode()


def get_hocon(sim: Harness, key: str) -> str:
    return sim.call(CORE0, "GET", "/api/v5/configs", query={"key": key}).body.decode()


# --------------------------------------------------------------------------------- PUT per release

EMPTY = b""
UNKNOWN_ROOT = "a = 1"
PARSE_ERROR = "mqtt.max_packet_size = 1.5MB"
UNKNOWN_FIELD = "log.console.levle = debug"
BAD_VALUE = "log.console.level = erro1r"
OVERSIZE = "mqtt.max_packet_size = 300MB"


def _internal(status_type_body):
    status, content_type, text = status_type_body
    assert (status, content_type) == (500, "application/json")
    payload = json.loads(text)
    assert payload["code"] == "INTERNAL_ERROR"
    return payload["message"]


def test_put_5_1_1_answers_update_failed_with_erlang_terms():
    with single("emqx/emqx:5.1.1") as sim:
        # no body: minirest passes #{}, emqx_conf_cli:load_config/2 has no clause for it
        message = _internal(put(sim, EMPTY))
        assert message.startswith(
            'error, function_clause, [{emqx_conf_cli,load_config,[#{},merge],[{file,"emqx_conf_cli.erl"},{line,194}]},'
            '{emqx_mgmt_api_configs,configs,3,[{file,"emqx_mgmt_api_configs.erl"},{line,345}]}'
        )

        def failed(text):
            status, content_type, body = put(sim, text)
            assert (status, content_type) == (400, "application/json")
            payload = json.loads(body)
            assert payload["code"] == "UPDATE_FAILED"
            return payload["message"]

        assert failed(UNKNOWN_ROOT) == '{root_key_not_found,<<"a">>}'
        assert failed(PARSE_ERROR) == '{parse_error,#{line => 1,reason => "syntax error before: \\"MB\\""}}'
        assert failed(UNKNOWN_FIELD) == (
            '#{kind => validation_error,path => "log.console",reason => unknown_fields,\n'
            '  unknown => "levle",unmatched => "burst_limit,chars_limit,..."}'
        )
        assert failed(BAD_VALUE) == (
            '#{kind => validation_error,path => "log.console.level",\n'
            '  reason => unable_to_convert_to_enum_symbol,value => <<"erro1r">>}'
        )
        # no max_packet_size validator before 5.1.6
        assert put(sim, OVERSIZE)[0] == 200


def test_put_5_1_1_answers_200_when_a_root_fails_to_apply():
    with single("emqx/emqx:5.1.1") as sim:
        # the dashboard handler refuses HTTPS without certificates; load_config_from_raw ignores it
        assert put(sim, "dashboard.listeners.https.bind = 18084\nlog.console.level = info") == (200, None, "")
        assert "https" not in get_hocon(sim, "dashboard")
        assert 'level = "info"' in get_hocon(sim, "log")
    with single("emqx/emqx:5.1.2") as sim:
        status, content_type, text = put(sim, "dashboard.listeners.https.bind = 18084")
        assert (status, content_type) == (400, "text/plain")
        assert text.startswith("Can't merge the new configurations!\nRoot key: dashboard\n")
        assert '<<"ssl_cert_not_found">>' in text


@pytest.mark.parametrize("image", ["emqx/emqx:5.3.2", "emqx/emqx-enterprise:5.1.1"])
def test_put_5_1_2_to_5_3_hands_minirest_raw_terms(image):
    with single(image) as sim:
        assert "function_clause" in _internal(put(sim, EMPTY))
        # the unknown root's tuple is no JSON term: minirest answers 500 with its text
        assert put(sim, UNKNOWN_ROOT) == (
            500,
            "text/plain",
            'invalid json term: [{<<"a">>,{root_key_not_found,<<"a">>}}]',
        )
        # a tuple body cannot be encoded at all: the handler crashes, Cowboy answers 500 without a body
        assert put(sim, PARSE_ERROR) == (500, None, "")
        status, content_type, text = put(sim, BAD_VALUE)
        assert (status, content_type) == (400, "text/plain")
        assert json.loads(text) == {
            "log": {
                "kind": "validation_error",
                "path": [ord(char) for char in "log.console.level"],
                "reason": "unable_to_convert_to_enum_symbol",
                "value": "erro1r",
            }
        }
        assert json.loads(put(sim, UNKNOWN_FIELD)[2])["log"]["reason"] == "unknown_fields"
        status, _, text = put(sim, OVERSIZE)
        if image == "emqx/emqx-enterprise:5.1.1":
            assert status == 200  # validate_packet_size arrived in 5.1.6 / e5.2.0
            return
        assert status == 400
        assert json.loads(text)["mqtt"]["reason"] == {
            "maximum": [ord(char) for char in "256M"],
            "reason": "max_mqtt_packet_size_too_large",
        }


@pytest.mark.parametrize("image", ["emqx/emqx:5.4.0", "emqx/emqx:5.6.1"])
def test_put_5_4_to_5_6_fill_defaults_first(image):
    with single(image) as sim:
        # unknown fields are thrown by emqx_config:fill_defaults/1, outside any catch
        message = _internal(put(sim, UNKNOWN_FIELD))
        assert message.startswith(
            'throw, {emqx_conf_schema,[#{kind => validation_error,path => "log.console",reason => unknown_fields,'
        )
        assert put(sim, UNKNOWN_ROOT) == (
            500,
            "text/plain",
            'invalid json term: #{<<"a">> => {root_key_not_found,<<"a">>}}',
        )
        assert put(sim, PARSE_ERROR) == (500, None, "")
        status, _, text = put(sim, BAD_VALUE)
        assert status == 400
        assert json.loads(text)["log"]["path"] == "log.console.level"  # jsonable_map turned it into a string


def test_put_5_7_0_wraps_everything_in_errors():
    with single("emqx/emqx:5.7.0") as sim:
        assert put(sim, PARSE_ERROR) == (
            400,
            "text/plain",
            '{"errors":"{parse_error,#{line => 1,reason => \\"syntax error before: \\\\\\"MB\\\\\\"\\"}}"}',
        )
        assert put(sim, UNKNOWN_ROOT) == (400, "text/plain", '{"errors":{"a":"{root_key_not_found,<<\\"a\\">>}"}}')
        assert "throw, {emqx_conf_schema" in _internal(put(sim, UNKNOWN_FIELD))


@pytest.mark.parametrize(
    ("image", "not_bytesize"),
    [
        # hocon 0.43: the validator sees the unconverted string
        ("emqx/emqx:5.8.8", {"reason": "invalid_packet_size", "value": "10abc"}),
        # hocon 0.44: the converter's own error
        ("emqx/emqx:5.8.9", {"reason": "Not a valid bytesize", "value": "10abc"}),
    ],
)
def test_put_5_8(image, not_bytesize):
    with single(image) as sim:
        assert put(sim, PARSE_ERROR) == (
            400,
            "text/plain",
            '{"errors":{"line":1,"reason":"syntax error before: \\"MB\\"","type":"parse_error"}}',
        )
        status, _, text = put(sim, OVERSIZE)
        assert status == 400
        assert json.loads(text)["errors"]["mqtt"] == {
            "kind": "validation_error",
            "path": "mqtt.max_packet_size",
            "reason": {"cause": "max_mqtt_packet_size_too_large", "maximum": 268435455},
            "value": 314572800,
        }
        error = json.loads(put(sim, 'mqtt.max_packet_size = "10abc"')[2])["errors"]["mqtt"]
        assert {key: error[key] for key in ("reason", "value")} == not_bytesize
        assert put(sim, "   ") == (200, None, "")  # a body with nothing in it changes nothing


def test_licence_root_only_where_the_licence_app_is():
    with single("emqx/emqx:5.8.9") as sim:
        status, _, text = put(sim, 'license.key = "evaluation"')
        assert (status, json.loads(text)) == (400, {"errors": {"license": '{root_key_not_found,<<"license">>}'}})
    with single("emqx/emqx-enterprise:5.8.9") as sim:
        assert put(sim, 'license.key = "evaluation"')[0] == 200
    # at boot an unknown root is only a warning: a Community node with a licence in emqx.conf boots
    # (emqx_config:warning_deprecated_root_key/1, from 5.1.0; silently dropped before)
    with single("emqx/emqx:5.8.9", conf=TEST_EMQX_CONF + 'license.key = "x"\n') as sim:
        assert sim.state(CORE0) == "running"
        warning = "[warning] msg: config_key_not_recognized, unknown_config_keys: license"
        assert any(line.endswith(warning) for line in sim.record(CORE0).log)
    with single("emqx/emqx:5.0.26", conf=TEST_EMQX_CONF + 'license.key = "x"\n') as sim:
        assert sim.state(CORE0) == "running"
        assert not any("config_key_not_recognized" in line for line in sim.record(CORE0).log)


def test_dashboard_is_not_read_only_and_its_listener_moves():
    with Harness(emqx_objects(), listen=True) as sim:
        pod = emqx_pod("emqx-core-0", image="emqx/emqx:5.8.9")
        sim.add(pod)
        assert put(sim, "dashboard { listeners.http.bind = 18090, token_expired_time = 30m }")[0] == 200
        node = sim.record(CORE0).node
        assert node.spec.dashboard_port == 18090
        assert "token_expired_time" in get_hocon(sim, "dashboard")
        assert 'token_expired_time = "30m"' in get_hocon(sim, "dashboard")


# ----------------------------------------------------------------------------------------- layers


def test_before_5_0_23_changes_through_the_api_beat_the_mounted_file():
    pvc = {"persistentVolumeClaim": {"claimName": "data-emqx-core-0"}}
    conf = TEST_EMQX_CONF + "sysmon.vm.long_schedule = 100ms\n"
    with Harness(emqx_objects(emqx_conf=conf)) as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.0.22", data=pvc))
        update = sim.call(CORE0, "PUT", "/api/v5/configs/sysmon", body=json.dumps({"vm": {"long_schedule": "500ms"}}))
        assert update.status == 200

        def long_schedule():
            config = json.loads(sim.call(CORE0, "GET", "/api/v5/configs").body)
            return config["sysmon"]["vm"]["long_schedule"]

        sim.delete(sim.record(CORE0).pod)
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.0.22", data=pvc))
        assert long_schedule() == "500ms"  # cluster-override.conf wins over emqx.conf
        # an upgraded node still finds cluster-override.conf and keeps that order
        sim.delete(sim.record(CORE0).pod)
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.0.26", data=pvc))
        assert long_schedule() == "500ms"
    with Harness(emqx_objects(emqx_conf=conf)) as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.0.26", data=pvc))
        sim.call(CORE0, "PUT", "/api/v5/configs/sysmon", body=json.dumps({"vm": {"long_schedule": "500ms"}}))
        sim.delete(sim.record(CORE0).pod)
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.0.26", data=pvc))
        config = json.loads(sim.call(CORE0, "GET", "/api/v5/configs").body)
        assert config["sysmon"]["vm"]["long_schedule"] == "100ms"  # cluster.hocon < emqx.conf


# -------------------------------------------------------------------------------------- listeners


def _listeners(sim: Harness, auth=("operator-key", "operator-secret")):
    response = sim.call(CORE0, "GET", "/api/v5/listeners", auth=auth)
    assert response.status == 200
    return json.loads(response.body)


def test_before_5_0_25_a_mounted_emqx_conf_leaves_no_mqtt_listener():
    with single("emqx/emqx:5.0.24") as sim:
        assert _listeners(sim) == []
        config = json.loads(sim.call(CORE0, "GET", "/api/v5/configs").body)
        assert "listeners" not in config and "authorization" not in config  # excluded from JSON in 5.0.x
        assert sim.record(CORE0).node.running_config["authorization"] == {
            "no_match": "allow",
            "deny_action": "ignore",
            "cache": {"enable": True, "max_size": 32},
            "sources": [],
        }
    with single("emqx/emqx:5.0.24", conf=TEST_EMQX_CONF + "listeners.tcp.default.bind = 1883\n") as sim:
        (tcp,) = _listeners(sim)
        assert (tcp["id"], tcp["bind"], tcp["status"]["max_connections"]) == ("tcp:default", ":1883", "infinity")
    with single("emqx/emqx-enterprise:5.0.2") as sim:
        assert _listeners(sim) == []


def test_schema_default_listeners_from_5_0_25_and_e5_0_3():
    for image, max_connections in (
        ("emqx/emqx:5.0.25", 5000000),
        ("emqx/emqx-enterprise:5.0.3", 5000000),
        ("emqx/emqx:5.8.9", "infinity"),
    ):
        with single(image) as sim:
            items = _listeners(sim)
            assert [item["id"] for item in items] == ["ssl:default", "tcp:default", "ws:default", "wss:default"]
            tcp = items[1]
            assert set(tcp) == {"acceptors", "bind", "enable", "id", "name", "node_status", "number", "status", "type"}
            assert (tcp["bind"], tcp["enable"], tcp["status"]["max_connections"]) == (
                "0.0.0.0:1883",
                True,
                max_connections,
            )
            assert sim.record(CORE0).node.running_config["authorization"]["sources"][0]["type"] == "file"


def test_listeners_of_the_whole_cluster_and_the_shipped_file():
    with Harness() as sim:
        sim.add(emqx_pod("emqx-core-0", image="emqx/emqx:5.8.9"), emqx_pod("emqx-core-1", image="emqx/emqx:5.8.9"))
        sim.world.set_connections(CORE0, 5, 5)
        tcp = next(item for item in _listeners(sim) if item["id"] == "tcp:default")
        assert tcp["number"] == 2 and tcp["status"]["current_connections"] == 5
        assert [status["node"] for status in tcp["node_status"]] == [
            "emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local",
            "emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local",
        ]
        ws = sim.call(CORE0, "GET", "/api/v5/listeners", query={"type": "ws"})
        assert [item["id"] for item in json.loads(ws.body)] == ["ws:default"]
        assert "tcp" in get_hocon(sim, "listeners")
    # no emqx.conf mounted: 5.0.x images ship the default listeners in their etc/emqx.conf
    source = emqx_objects(emqx_conf=None)
    with Harness(source) as sim:
        pod = emqx_pod("emqx-core-0", image="emqx/emqx:5.0.6")
        pod["spec"]["containers"][0]["volumeMounts"] = [
            mount for mount in pod["spec"]["containers"][0]["volumeMounts"] if mount["name"] != "emqx-config"
        ]
        sim.add(pod)
        ids = [item["id"] for item in _listeners(sim, auth=ADMIN)]
        assert ids == ["ssl:default", "tcp:default", "ws:default", "wss:default"]
        assert _listeners(sim, auth=ADMIN)[1]["bind"] == ":1883"  # 0.0.0.0 shown as ":PORT" up to 5.0.9
