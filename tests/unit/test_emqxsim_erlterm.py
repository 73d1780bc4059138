"""Erlang term printers behind EMQX's error texts (expected strings are what OTP prints)."""

from __future__ import annotations

from sandbox.emqxsim.erlterm import (
    Atom,
    Binary,
    Charlist,
    Tuple,
    best_effort_json,
    format_0p,
    format_deep_0p,
    format_float,
    format_p,
    jsx_encode,
)

A, B, C, T = Atom, Binary, Charlist, Tuple

ENUM_ERROR = {
    A("kind"): A("validation_error"),
    A("path"): C("log.console.level"),
    A("reason"): A("unable_to_convert_to_enum_symbol"),
    A("value"): B("erro1r"),
}


def test_one_line_forms():
    assert format_0p(ENUM_ERROR) == (
        '#{kind => validation_error,path => "log.console.level",'
        'reason => unable_to_convert_to_enum_symbol,value => <<"erro1r">>}'
    )
    assert (
        format_0p([A("emqx@10.0.0.1"), A("core"), A("Quoted"), A("maybe")]) == "['emqx@10.0.0.1',core,'Quoted',maybe]"
    )
    assert format_0p(C("tab\there")) == '"tab\\there"'
    assert format_0p(C("")) == "[]"
    assert format_0p(T((A("line"), 213))) == "{line,213}"


def test_floats_print_shortest_and_prefer_decimal():
    assert [format_float(value) for value in (100000.0, 123456789.0, 0.001, 1e-4, 12345.678, 0.0, 100.0, 1000.0)] == [
        "1.0e5",
        "123456789.0",
        "0.001",
        "0.0001",
        "12345.678",
        "0.0",
        "100.0",
        "1.0e3",
    ]


def test_pretty_printing_follows_io_lib_pretty():
    assert format_p(ENUM_ERROR) == (
        '#{kind => validation_error,path => "log.console.level",\n'
        '  reason => unable_to_convert_to_enum_symbol,value => <<"erro1r">>}'
    )
    pairs = [T((B(key), T((A("root_key_not_found"), B(key))))) for key in ("a", "b")]
    assert format_p(pairs) == ('[{<<"a">>,{root_key_not_found,<<"a">>}},\n {<<"b">>,{root_key_not_found,<<"b">>}}]')
    thrown = T(
        (
            A("emqx_conf_schema"),
            [
                {
                    A("kind"): A("validation_error"),
                    A("path"): C("mqtt.max_packet_size"),
                    A("reason"): {A("cause"): A("max_mqtt_packet_size_too_large"), A("maximum"): 268435455},
                    A("value"): 314572800,
                }
            ],
        )
    )
    assert format_p(thrown) == (
        '{emqx_conf_schema,[#{kind => validation_error,path => "mqtt.max_packet_size",\n'
        "                     reason =>\n"
        "                         #{cause => max_mqtt_packet_size_too_large,\n"
        "                           maximum => 268435455},\n"
        "                     value => 314572800}]}"
    )
    long_names = [
        A("emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local"),
        A("emqx@emqx-core-2.emqx-headless.ns.svc.cluster.local"),
    ]
    assert "Nodes unavailable: " + format_p(long_names, 20) == (
        "Nodes unavailable: ['emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local',\n"
        "                    'emqx@emqx-core-2.emqx-headless.ns.svc.cluster.local']"
    )


def test_deep_char_list_of_io_lib_format():
    # io_lib:format("error on node ~p: ~p", ...) printed with ~0p, as e5.0.x answered rebalance errors
    rendered = format_deep_0p(["error on node ", A("emqx@a"), ": ", A("not_started")])
    assert rendered == '[101,114,114,111,114,32,111,110,32,110,111,100,101,32,"emqx@a",58,32,"not_started"]'


def test_jsx_keeps_charlists_as_integer_lists_and_refuses_tuples():
    assert jsx_encode([T((B("log"), ENUM_ERROR))]) == (
        '{"log":{"kind":"validation_error","path":[108,111,103,46,99,111,110,115,111,108,101,46,108,101,118,'
        '101,108],"reason":"unable_to_convert_to_enum_symbol","value":"erro1r"}}'
    )
    try:
        jsx_encode([T((B("a"), T((A("root_key_not_found"), B("a")))))])
    except Exception as error:  # NotJson: jsx:is_term/1 is false
        assert type(error).__name__ == "NotJson"
    else:
        raise AssertionError("a tuple value is no JSON term")


def test_best_effort_json_turns_charlists_to_strings_and_terms_to_text():
    assert best_effort_json({A("errors"): [T((B("log"), ENUM_ERROR))]}) == (
        '{"errors":{"log":{"kind":"validation_error","path":"log.console.level",'
        '"reason":"unable_to_convert_to_enum_symbol","value":"erro1r"}}}'
    )
    assert best_effort_json({A("errors"): [T((B("a"), T((A("root_key_not_found"), B("a")))))]}) == (
        '{"errors":{"a":"{root_key_not_found,<<\\"a\\">>}"}}'
    )
