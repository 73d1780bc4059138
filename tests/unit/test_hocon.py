from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_emqx.domain import hocon
from kubectl_emqx.domain.hocon import ConfigChange, HoconError, ListenerPort

SAMPLE = """
# EMQX settings
node {
  cookie = "s3cret"
  data_dir = data
}
cluster.discovery_strategy = dns
cluster.links = []
listeners.tcp.default.bind = "0.0.0.0:1883"
listeners.ssl.default.enable = false
mqtt.idle_timeout = 15s
mqtt.max_packet_size = 1MB
log.console.level = warning
"a.b" = 3
"""


def test_parse_plain_data() -> None:
    config = hocon.parse(SAMPLE)
    assert config["node"] == {"cookie": "s3cret", "data_dir": "data"}
    assert config["listeners"]["tcp"]["default"]["bind"] == "0.0.0.0:1883"
    assert config["listeners"]["ssl"]["default"]["enable"] is False
    # Durations and sizes stay strings, as EMQX reads them.
    assert config["mqtt"] == {"idle_timeout": "15s", "max_packet_size": "1MB"}
    assert config["a.b"] == 3
    assert type(config) is dict and type(config["node"]) is dict


def test_parse_values() -> None:
    config = hocon.parse('a = 1\nb = 1.5\nc = true\nd = null\ne = [1, 10s, {x = y}]\nf = "q#uoted"\ng = 10 seconds')
    assert config == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": None,
        "e": [1, "10s", {"x": "y"}],
        "f": "q#uoted",
        "g": "10 seconds",
    }


def test_objects_merge_and_later_keys_win() -> None:
    assert hocon.parse("a { b = 1, c = 2 }\na.c = 3\na { d = 4 }") == {"a": {"b": 1, "c": 3, "d": 4}}


def test_substitutions_stay_literal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_FOR_TEST", "/leak")
    config = hocon.parse("a = ${HOME_FOR_TEST}\nb = ${?MISSING}")
    assert config == {"a": "${HOME_FOR_TEST}", "b": "${?MISSING}"}


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("a = 1\nb {\n  c = [1, 2\n}\n", 4, 1, "]"),
        ("a {\n  b = 1\n}}\n", 3, 2, "unexpected '}'"),
        ('x = 1\ny = "unterminated\n', 2, 5, "unexpected"),
        ("a = 1\nb = {\n", 3, 1, "}"),
    ],
)
def test_parse_errors_carry_line_and_column(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(HoconError) as caught:
        hocon.parse(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert words in caught.value.message
    assert str(caught.value).startswith(f"line {line}, column {column}: ")


def test_include_is_refused_without_reading(tmp_path: Path) -> None:
    included = tmp_path / "other.conf"
    included.write_text("leaked = 1\n")
    for text in (
        f'a = 1\ninclude "{included}"',
        f'a {{\n  include file("{included}")\n}}',
        'include url("http://127.0.0.1:9/x")',
    ):
        with pytest.raises(HoconError) as caught:
            hocon.parse(text)
        assert "include is not supported" in caught.value.message
    with pytest.raises(HoconError) as caught:
        hocon.parse(f'a = 1\ninclude "{included}"')
    assert (caught.value.line, caught.value.column) == (2, 1)


def test_top_level_list_is_refused() -> None:
    with pytest.raises(HoconError):
        hocon.parse("[1, 2]")


def test_empty_text_is_empty_config() -> None:
    assert hocon.parse("") == {}
    assert hocon.parse("# only a comment\n") == {}


ROUND_TRIP = {
    "node": {"cookie": "abc", "data_dir": "data"},
    "listeners": {"tcp": {"default": {"bind": "0.0.0.0:1883", "max_connections": 1024000}}},
    "strings": {
        "keyword": "true",
        "keyword_prefix": "null-ish",
        "number_like": "1883",
        "float_like": "1.5",
        "spaces": "a b",
        "hash": "x#y",
        "slashes": "//not-a-comment",
        "path": "/opt/emqx/etc",
        "quote": 'say "hi"',
        "unicode": "grüße",
        "empty": "",
        "duration": "15s",
        "size": "1MB",
        "include": "include",
        "multi_line": "one\ntwo\tthree",
        "backslash": "c:\\x",
    },
    "numbers": {"int": -3, "float": 0.25, "big": 1e20},
    "flags": {"on": True, "off": False, "none": None},
    "lists": {"empty": [], "mixed": [1, "two", {"three": 3}, [4]]},
    "empty_object": {},
    "dotted.key": {"quoted key": 1},
}


def test_dump_round_trips() -> None:
    text = hocon.dump(ROUND_TRIP)
    assert hocon.parse(text) == ROUND_TRIP
    assert hocon.dump(ROUND_TRIP) == text
    assert text.endswith("\n")
    assert hocon.dump({}) == ""


def test_dump_is_readable() -> None:
    text = hocon.dump({"node": {"cookie": "abc"}, "mqtt": {"idle_timeout": "15s"}, "bind": "0.0.0.0:1883"})
    assert text == 'node {\n  cookie = abc\n}\nmqtt {\n  idle_timeout = 15s\n}\nbind = "0.0.0.0:1883"\n'


def test_split_and_join_path() -> None:
    assert hocon.split_path('a.b."c.d"') == ["a", "b", "c.d"]
    assert hocon.join_path(["a", "c.d"]) == 'a."c.d"'
    for bad in ("", "a..b", ".a", "a.", 'a."b'):
        with pytest.raises(ValueError):
            hocon.split_path(bad)


def test_flatten() -> None:
    flat = hocon.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "x.y": {"z": 1}})
    assert flat == {"a.b": 1, "a.c.d": [1, 2], "e": {}, '"x.y".z': 1}


def test_diff() -> None:
    old = {"log": {"console": {"level": "info"}}, "node": {"cookie": "a"}, "gone": 1}
    new = {"log": {"console": {"level": "debug"}}, "node": {"cookie": "a"}, "added": {"x": True}}
    assert hocon.diff(old, new) == [
        ConfigChange("added.x", None, True),
        ConfigChange("gone", 1, None),
        ConfigChange("log.console.level", "info", "debug"),
    ]
    assert hocon.diff(new, new) == []


def test_merge() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = hocon.merge(base, {"a": {"c": 3}, "d": [2]})
    assert merged == {"a": {"b": 1, "c": 3}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


@pytest.mark.parametrize(
    ("path", "restart"),
    [
        ("node.cookie", True),
        ("node.max_ports", True),
        ("rpc.port_discovery", True),
        ("cluster.discovery_strategy", True),
        ("cluster.dns.name", True),
        ("cluster", True),
        ("cluster.links", False),
        ("cluster.links.0.name", False),
        ("dashboard.listeners.http.bind", True),
        ("dashboard.listeners.http", True),
        ("dashboard.listeners.https.bind", False),
        ("dashboard.default_password", False),
        ("listeners.tcp.default.bind", False),
        ("log.console.level", False),
        ("mqtt.max_packet_size", False),
        ("authentication", False),
    ],
)
def test_needs_restart(path: str, restart: bool) -> None:
    assert hocon.needs_restart(path) is restart


def test_restart_and_live_keys() -> None:
    paths = ["log.console.level", "node.cookie", "cluster.links", "dashboard.listeners.http.bind"]
    assert hocon.restart_keys(paths) == ["node.cookie", "dashboard.listeners.http.bind"]
    assert hocon.live_keys(paths) == ["log.console.level", "cluster.links"]


def test_restart_relevant_subset() -> None:
    config = hocon.parse(
        SAMPLE + "dashboard { listeners.http.bind = 18084, default_password = x }\nrpc.port_discovery = manual\n"
    )
    assert hocon.restart_relevant_subset(config) == {
        "node": {"cookie": "s3cret", "data_dir": "data"},
        "rpc": {"port_discovery": "manual"},
        "cluster": {"discovery_strategy": "dns"},
        "dashboard": {"listeners": {"http": {"bind": 18084}}},
    }
    assert hocon.restart_relevant_subset({"log": {"level": "info"}}) == {}


def test_restart_hash_ignores_live_changes() -> None:
    base = hocon.parse(SAMPLE)
    live_change = hocon.merge(base, {"log": {"console": {"level": "debug"}}})
    restart_change = hocon.merge(base, {"node": {"cookie": "other"}})
    base_hash = hocon.stable_hash(hocon.restart_relevant_subset(base))
    assert hocon.stable_hash(hocon.restart_relevant_subset(live_change)) == base_hash
    assert hocon.stable_hash(hocon.restart_relevant_subset(restart_change)) != base_hash


def test_stable_hash() -> None:
    assert hocon.stable_hash({"a": 1, "b": {"c": 2}}) == hocon.stable_hash({"b": {"c": 2}, "a": 1})
    assert hocon.stable_hash({"a": 1}) != hocon.stable_hash({"a": 2})
    assert len(hocon.stable_hash({})) == 16


def test_live_subset_keeps_dashboard_but_its_port_and_cluster_links_from_58() -> None:
    config = {
        "node": {"cookie": "x"},
        "cluster": {"name": "c", "links": [{"name": "x"}]},
        "dashboard": {"token_expired_time": "30m", "listeners": {"http": {"bind": 18084, "num_acceptors": 4}}},
        "rpc": {},
        "log": {"level": "info"},
    }
    assert hocon.live_subset(config, (5, 8, 0)) == {
        "cluster": {"links": [{"name": "x"}]},
        "dashboard": {"token_expired_time": "30m", "listeners": {"http": {"num_acceptors": 4}}},
        "log": {"level": "info"},
    }
    # Before 5.8 all of cluster is read-only, links included.
    assert "cluster" not in hocon.live_subset(config, (5, 7, 2))
    assert hocon.live_subset({"node": {"a": 1}, "dashboard": {"listeners": {"http": {"bind": 1}}}}) == {}
    assert hocon.restart_relevant_subset(config, (5, 7, 2))["cluster"] == {"name": "c", "links": [{"name": "x"}]}
    assert hocon.restart_relevant_subset(config, (5, 8, 0))["cluster"] == {"name": "c"}


def test_listener_ports_defaults() -> None:
    assert hocon.listener_ports({}) == [
        ListenerPort("ssl-default", "TCP", 8883),
        ListenerPort("tcp-default", "TCP", 1883),
        ListenerPort("ws-default", "TCP", 8083),
        ListenerPort("wss-default", "TCP", 8084),
    ]


def test_listener_ports_from_config() -> None:
    config = hocon.parse(
        """
        listeners.tcp.default.bind = ":11883"
        listeners.ssl.default.enable = false
        listeners.ws.default { bind = 8080 }
        listeners.tcp.internal { bind = "127.0.0.1:11884" }
        listeners.tcp.Off_Line { bind = 11885, enable = false }
        listeners.quic.default { bind = "0.0.0.0:14567" }
        listeners.tcp.my_Listener { bind = "[::]:1999" }
        listeners.ws.zero { bind = 0 }
        gateway.coap { listeners.udp.default.bind = 5683 }
        gateway.stomp { enable = false, listeners.tcp.default.bind = 61613 }
        """
    )
    assert hocon.listener_ports(config) == [
        ListenerPort("coap-udp-default", "UDP", 5683),
        ListenerPort("quic-default", "UDP", 14567),
        ListenerPort("tcp-default", "TCP", 11883),
        ListenerPort("tcp-internal", "TCP", 11884),
        ListenerPort("tcp-my-listener", "TCP", 1999),
        ListenerPort("ws-default", "TCP", 8080),
        ListenerPort("wss-default", "TCP", 8084),
    ]


def test_listener_ports_deduplicate() -> None:
    config = {"listeners": {"tcp": {"a": {"bind": 1883}, "default": {"bind": 1883}, "A": {"bind": 2000}}}}
    ports = hocon.listener_ports(config)
    assert [(p.protocol, p.port) for p in ports].count(("TCP", 1883)) == 1
    names = [p.name for p in ports]
    assert len(names) == len(set(names))
    assert {"tcp-a", "tcp-a-2"} <= set(names)


@pytest.mark.parametrize(
    ("config", "port"),
    [
        ({}, 18083),
        ({"dashboard": {"listeners": {"http": {"bind": 18084}}}}, 18084),
        ({"dashboard": {"listeners": {"http": {"bind": "0.0.0.0:18085"}}}}, 18085),
        ({"dashboard": {"listeners": {"http": {"bind": ":18086"}}}}, 18086),
        ({"dashboard": {"listeners": {"http": {"bind": 0}}}}, 0),
        ({"dashboard": {"listeners": {"http": {"enable": False, "bind": 18083}}}}, 0),
        ({"dashboard": {"listeners": {"https": {"bind": 18084}}}}, 18083),
    ],
)
def test_dashboard_port(config: dict, port: int) -> None:
    assert hocon.dashboard_port(config) == port


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("-3", -3),
        ("1.5", 1.5),
        ("true", True),
        ("FALSE", False),
        ("null", None),
        ("15s", "15s"),
        ("1MB", "1MB"),
        ("0.0.0.0:1883", "0.0.0.0:1883"),
        ("foo#bar", "foo#bar"),
        ('"10"', "10"),
        ('"a, b"', "a, b"),
        ("[1, 2]", [1, 2]),
        ("{a = 1}", {"a": 1}),
    ],
)
def test_parse_value(text: str, value: object) -> None:
    assert hocon.parse_value(text) == value


def test_parse_value_errors_point_into_the_value() -> None:
    with pytest.raises(HoconError) as caught:
        hocon.parse_value('"unterminated')
    assert (caught.value.line, caught.value.column) == (1, 1)


def test_set_path_on_dict() -> None:
    original = {"log": {"console": {"level": "info"}}}
    updated = hocon.set_path(original, "log.console.level", "debug")
    assert updated == {"log": {"console": {"level": "debug"}}}
    assert original == {"log": {"console": {"level": "info"}}}
    assert hocon.set_path({}, "mqtt.max_packet_size", "1MB") == {"mqtt": {"max_packet_size": "1MB"}}
    assert hocon.set_path({"a": 1}, "a.b", "2") == {"a": {"b": 2}}


def test_set_path_on_text_rewrites_top_level_line() -> None:
    updated = hocon.set_path(SAMPLE, "log.console.level", "debug")
    assert "log.console.level = debug" in updated and "warning" not in updated
    assert "# EMQX settings" in updated
    assert hocon.parse(updated)["log"]["console"]["level"] == "debug"


def test_set_path_on_text_appends_when_not_top_level() -> None:
    text = "log {\n  console.level = info  # quiet\n}\n"
    updated = hocon.set_path(text, "log.console.level", "debug")
    assert updated == text + "log.console.level = debug\n"
    assert hocon.parse(updated) == {"log": {"console": {"level": "debug"}}}
    assert hocon.set_path("", "a.b", "1") == "a.b = 1\n"
    assert hocon.set_path("a = 1", "b", "x y") == 'a = 1\nb = "x y"\n'


def test_set_path_quotes_what_needs_quotes() -> None:
    updated = hocon.set_path("", "listeners.tcp.default.bind", "0.0.0.0:1884")
    assert hocon.parse(updated)["listeners"]["tcp"]["default"]["bind"] == "0.0.0.0:1884"
    updated = hocon.set_path("", "node.cookie", "abc#def")
    assert hocon.parse(updated)["node"]["cookie"] == "abc#def"


def test_set_path_refuses_bad_input() -> None:
    with pytest.raises(HoconError):
        hocon.set_path("a = {", "a.b", "1")
    with pytest.raises(ValueError):
        hocon.set_path("", "a..b", "1")


def test_importing_modules_does_not_import_pyhocon() -> None:
    code = (
        "import sys\n"
        "from kubectl_emqx.domain import builders, crd, hocon, spec, versions\n"
        "heavy = [m for m in ('pyhocon', 'pyparsing', 'yaml', 'kubernetes') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_text_read_once_in_a_while_is_parsed_without_filling_the_cache() -> None:
    text = "node.name = \"emqx@10.0.0.1\"\nlisteners.tcp.default.bind = \"0.0.0.0:1883\"\n# a live config\n"
    before = hocon._parse_cached.cache_info().currsize
    assert hocon.parse(text, remember=False) == hocon.parse(text)
    assert hocon._parse_cached.cache_info().currsize == before + 1  # only the remembered parse


# select_roots: scan EMQX's whole configuration, parse only the roots shown -------------------------

SELECT_CASES = {
    "blocks and dotted keys": (
        'node { name = "emqx@a", cookie = "x" }\nlisteners {\n  tcp { default { bind = "0.0.0.0:1883" } }\n'
        '  ssl.default.bind = 8883 # a comment { with a brace\n}\ndashboard.listeners.http.bind = 18083\n',
        ["listeners", "dashboard"]),
    "separators and comments": (
        '// head\nlog.console.level = debug, dashboard { token_expired_time = 60m }\n# dashboard { x = 1 }\n'
        'mqtt.max_packet_size = 1MB\n', ["dashboard", "mqtt"]),
    "quoted keys and strings with braces": (
        '"dashboard" { default_username = "ad}min" }\napi_key { bootstrap_file = "{" }\nlisteners = {}\n',
        ["dashboard", "api_key"]),
    "triple-quoted strings": (
        'license { key = """a\nb {\n}\n""" }\nlisteners.tcp.default.bind = 1883\n', ["listeners", "license"]),
    "object concatenation and arrays over lines": (
        'mqtt = {max_packet_size = 1MB} {max_clientid_len = 65535}\nauthentication = [\n  {mechanism = '
        'password_based}\n]\nlisteners { }\n', ["mqtt", "authentication", "listeners"]),
    "a root set twice merges": (
        'dashboard { a = 1 }\nnode.x = 2\ndashboard { b = 2 }\n', ["dashboard"]),
    "nothing wanted": ('node.name = "a@b"\n', ["listeners"]),
}


@pytest.mark.parametrize("text,roots", SELECT_CASES.values(), ids=SELECT_CASES.keys())
def test_select_roots_parses_to_the_wanted_roots_of_the_whole(text: str, roots: list[str]) -> None:
    whole = hocon.parse(text)
    assert hocon.parse(hocon.select_roots(text, roots)) == {k: v for k, v in whole.items() if k in roots}


@pytest.mark.parametrize("image", ["emqx/emqx:5.1.1", "emqx/emqx:5.7.2", "emqx/emqx-enterprise:5.8.3",
                                   "emqx/emqx:5.8"])
def test_select_roots_on_what_emqx_prints_for_a_whole_configuration(image: str) -> None:
    """The simulator's GET /configs text (EMQX's printer, every root of the version's schema)."""
    from sandbox.emqxsim import configmodel, schema, versions

    parsed_image = versions.parse_image(image)
    layers = configmodel.Layers(defaults=schema.defaults(parsed_image), conf_file={}, env={}, cluster={},
                                deprecated_order=False)
    text = configmodel.render_hocon(configmodel.running_config(parsed_image, layers))
    whole = hocon.parse(text)
    for roots in (["listeners", "dashboard"], ["mqtt", "log", "listeners", "dashboard"], sorted(whole)):
        selected = hocon.select_roots(text, roots)
        assert hocon.parse(selected) == {k: v for k, v in whole.items() if k in roots}
    assert len(hocon.select_roots(text, ["listeners", "dashboard"])) < len(text)
