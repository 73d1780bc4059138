"""The simulator's HOCON reader against emqx/hocon's grammar (hocon_scanner.xrl, hocon_parser.yrl,
hocon_token.erl, hocon.erl). Expected values are what the hocon library itself returns for the same
text (checked against the library at the tags named)."""

from __future__ import annotations

import pytest

from sandbox.emqxsim.erlterm import format_0p
from sandbox.emqxsim.hocon import Dialect, HoconError, parse, parse_env_value

OLD = Dialect((0, 39, 4))  # EMQX 5.0.25 / e5.0.4
NEW = Dialect((0, 44, 0))  # EMQX 5.8.9


def error(text: str, dialect: Dialect = NEW) -> str:
    with pytest.raises(HoconError) as raised:
        parse(text, dialect)
    return format_0p(raised.value.erlang_reason(dialect))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1MB", {"a": "1MB"}),
        ("a = 1mb", {"a": "1mb"}),
        ("a = 15s", {"a": "15s"}),
        ("a = 100ms", {"a": "100ms"}),
        ("a = 10%", {"a": "10%"}),
        ("a = 1.5", {"a": 1.5}),
        ("a = .5", {"a": 0.5}),
        ("a = -3", {"a": -3}),
        ("a = +3", {"a": 3}),
        ("a = 007", {"a": 7}),
        ("a = 1.0e5", {"a": 100000.0}),
        ("a = true", {"a": True}),
        ("a = true1", {"a": "true1"}),
        ("a = null", {"a": None}),
        (
            "a = emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local",
            {"a": "emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local"},
        ),
        ("a = x|y%z@w", {"a": "x|y%z@w"}),
        # value concatenation drops the whitespace between the parts
        ("a = abc def", {"a": "abcdef"}),
        ("a = 1h 30m", {"a": "1h30m"}),
        ('a = "x" y', {"a": "xy"}),
        ("a = 1Mb", {"a": "1Mb"}),  # duration "1M" then unquoted "b"
        ("a = [a b, c]", {"a": ["ab", "c"]}),
        ('a = "\\t\\q"', {"a": "\t\\q"}),
        ('a = "\\u00e9"', {"a": "\\u00e9"}),  # unicode escapes are not processed before hocon 0.46
        ('a = """x\\ny"""', {"a": "x\\ny"}),
        ("a.b.c = 1", {"a": {"b": {"c": 1}}}),
        ("a..b = 1", {"a": {"b": 1}}),
        ('"a.b" = 1', {"a.b": 1}),
        ("a {b = 1} a {c = 2}", {"a": {"b": 1, "c": 2}}),
        ("a = 1\na = {b = 1}", {"a": {"b": 1}}),
        ("a = {b = 1}\na = 2", {"a": 2}),
        ("a = [1,2,]", {"a": [1, 2]}),
        ("a : {b : 1}, c : [1,2,]", {"a": {"b": 1}, "c": [1, 2]}),
        ("a : [\n  {x = 1}\n  {y = 2}\n]", {"a": [{"x": 1}, {"y": 2}]}),
        ("{a = 1}", {"a": 1}),
        ("a = 1 # x\n   // y\nb = 2", {"a": 1, "b": 2}),
        ("", {}),
        ("a = 1\n\nb = 2", {"a": 1, "b": 2}),
        ("b = 1\na = ${b}", {"a": 1, "b": 1}),
        ("x = 1\na = ${x}\nx = 2", {"a": 2, "x": 2}),
        ("a = ${?nope}", {}),
        ("a.b: ${?nope}", {"a": {}}),
        ("a = [1, ${?nope}, 3]", {"a": [1, 3]}),
        ('include "not-there.conf"\na = 1', {"a": 1}),
    ],
)
def test_values_the_way_hocon_reads_them(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # an unquoted string must start with a letter
        ("a = _json", '{scan_error,#{line => 1,reason => "illegal characters \\"_\\""}}'),
        ("a = 1\nb = _x", '{scan_error,#{line => 2,reason => "illegal characters \\"_\\""}}'),
        ("a = /opt/emqx/data", '{scan_error,#{line => 1,reason => "illegal characters \\"/o\\""}}'),
        ("a = 5. \nb = 1", '{scan_error,#{line => 1,reason => "illegal characters \\". \\""}}'),
        ("a = 1.e5", '{scan_error,#{line => 1,reason => "illegal characters \\".e\\""}}'),
        ("a = -x", '{scan_error,#{line => 1,reason => "illegal characters \\"-x\\""}}'),
        ("a = [1]\na += 2", '{scan_error,#{line => 2,reason => "illegal characters \\"+=\\""}}'),
        (
            'a = "unterminated\nb = 1',
            '{scan_error,#{line => 1,reason => "illegal characters \\"\\\\\\"unterminated\\\\n\\""}}',
        ),
        ('a = "a\\" b = "c"', '{scan_error,#{line => 1,reason => "illegal characters \\"\\\\\\"\\""}}'),
        # only exact bytesize / duration tokens stand alone
        ("a = 1.5MB", '{parse_error,#{line => 1,reason => "syntax error before: \\"MB\\""}}'),
        ("a = 10abc", '{parse_error,#{line => 1,reason => "syntax error before: \\"abc\\""}}'),
        ("a = 1kB", '{parse_error,#{line => 1,reason => "syntax error before: \\"kB\\""}}'),
        ("a = 1TB", '{parse_error,#{line => 1,reason => "syntax error before: \\"TB\\""}}'),
        ("a = 1e5", '{parse_error,#{line => 1,reason => "syntax error before: \\"e5\\""}}'),
        ("a = 0x10", '{parse_error,#{line => 1,reason => "syntax error before: \\"x10\\""}}'),
        ("a = 0.0.0.0:1883", '{parse_error,#{line => 1,reason => "syntax error before: 0.0"}}'),
        ("a = 1 2", '{parse_error,#{line => 1,reason => "syntax error before: 2"}}'),
        ("a = ", '{parse_error,#{line => 1,reason => "syntax error before: "}}'),
        ("a = b = 1", '{parse_error,#{line => 1,reason => "syntax error before: {keypath,[<<\\"b\\">>]}"}}'),
        ("a = }", '{parse_error,#{line => 1,reason => "syntax error before: endobj"}}'),
        ("a = ]", '{parse_error,#{line => 1,reason => "syntax error before: endarr"}}'),
        ("a = 1,,b = 2", "{parse_error,#{line => 1,reason => \"syntax error before: ','\"}}"),
        ("a = {x = 1}\n  {y = 2}", "{parse_error,#{line => 2,reason => \"syntax error before: '{'\"}}"),
        ("not an object", '{parse_error,#{line => 1,reason => "syntax error before: \\"not\\""}}'),
        ("key with space = 1", '{parse_error,#{line => 1,reason => "syntax error before: \\"key\\""}}'),
        ("a = ${nope}", '{resolve_error,<<"failed_to_resolve <<\\"nope\\">> at_line 1">>}'),
        ("a = x [1]", '{concat_error,<<"failed_to_concat [<<\\"x\\">>,[1]] at_line 1">>}'),
        ('include required("x.conf")', '{enoent,<<"x.conf">>}'),
    ],
)
def test_errors_the_way_hocon_reports_them(text, expected):
    assert error(text) == expected


def test_error_shape_before_hocon_0_39_8_is_a_binary_with_the_line():
    assert error("a = 1.5MB", OLD) == '{parse_error,<<"syntax error before: \\"MB\\" line_number 1">>}'
    assert error("a = _json", OLD) == '{scan_error,<<"illegal characters \\"_\\" line_number 1">>}'
    # keys were plain strings (split on dots even when quoted) before 0.39.17
    assert error("a = b = 1", OLD) == '{parse_error,<<"syntax error before: \\"b\\" line_number 1">>}'
    assert parse('"a.b" = 1', OLD) == {"a": {"b": 1}}
    with pytest.raises(HoconError) as raised:
        parse("a = 1\nb = 1.5MB", OLD, file="/opt/emqx/etc/emqx.conf")
    assert format_0p(raised.value.erlang_reason(OLD)) == (
        '{parse_error,<<"syntax error before: \\"MB\\" line_number 2 in_file /opt/emqx/etc/emqx.conf">>}'
    )
    assert format_0p(raised.value.erlang_reason(NEW)) == (
        '{parse_error,#{file => "/opt/emqx/etc/emqx.conf",line => 2,reason => "syntax error before: \\"MB\\""}}'
    )


def test_objects_on_separate_lines_concatenate_before_hocon_0_39_16():
    text = "a = {x = 1}\n{y = 2}"
    assert parse(text, Dialect((0, 39, 14))) == {"a": {"x": 1, "y": 2}}
    with pytest.raises(HoconError):
        parse(text, Dialect((0, 39, 16)))


def test_triple_quoted_strings_unindent_from_hocon_0_41():
    text = 'a = """~\n    x\n      y\n    ~"""'
    assert parse(text, NEW) == {"a": "x\n  y\n"}


def test_plus_point_float_crashes_the_scanner():
    with pytest.raises(HoconError) as raised:
        parse("a = +.5")
    assert raised.value.kind == "crash"


def test_env_values_are_hocon_or_else_raw_text():
    assert parse_env_value("18083") == 18083
    assert parse_env_value("[emqx@a.b, emqx@c.d]") == ["emqx@a.b", "emqx@c.d"]
    assert parse_env_value('"/opt/emqx/data/bootstrap_api_key"') == "/opt/emqx/data/bootstrap_api_key"
    # not HOCON (scan error): hocon_tconf uses the text as it is
    assert parse_env_value("/opt/emqx/data/bootstrap_api_key") == "/opt/emqx/data/bootstrap_api_key"
    assert parse_env_value("1.5MB") == "1.5MB"
    assert parse_env_value("") == ""
