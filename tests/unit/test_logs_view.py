"""Merged node logs: parsing the API's timestamped lines, time order across fraction widths, the
follow reorder window, and the text / JSON renderings."""

from __future__ import annotations

import json

import click

from kubectl_emqx.view import logs


def test_record_splits_the_kubelet_timestamp_from_the_text() -> None:
    item = logs.record("2026-03-01T10:00:00.123456789Z 2026-03-01T10:00:00.123456+00:00 [warning] msg: x",
                       "demo-core-0", "emqx@demo-core-0.demo-headless.ns.svc.cluster.local", "core")
    assert item.time == "2026-03-01T10:00:00.123456789Z"
    assert item.text == "2026-03-01T10:00:00.123456+00:00 [warning] msg: x"
    assert logs.level(item.text) == "warning"


def test_a_line_without_timestamp_is_kept_whole() -> None:
    item = logs.record("Listener tcp:default on 0.0.0.0:1883 started.", "p", None, "core")
    assert item.time == "" and item.text == "Listener tcp:default on 0.0.0.0:1883 started."
    assert logs.level(item.text) is None


def test_time_order_does_not_depend_on_the_number_of_fraction_digits() -> None:
    stamps = ["2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00.123Z", "2026-03-01T10:00:00Z",
              "2026-03-01T10:00:00.123456789Z", "2026-03-01T09:59:59.999999999Z"]
    ordered = sorted(stamps, key=logs.sort_key)
    assert ordered == ["2026-03-01T09:59:59.999999999Z", "2026-03-01T10:00:00Z", "2026-03-01T10:00:00.123Z",
                       "2026-03-01T10:00:00.123456789Z", "2026-03-01T10:00:00.5Z"]


def test_merged_orders_by_time_then_arrival() -> None:
    a1 = logs.record("2026-03-01T10:00:02.000000000Z a1", "a", None, "core")
    b1 = logs.record("2026-03-01T10:00:01.000000000Z b1", "b", None, "core")
    a2 = logs.record("2026-03-01T10:00:02.000000000Z a2", "a", None, "core")
    assert [item.text for item in logs.merged([a1, b1, a2])] == ["b1", "a1", "a2"]


def test_json_level() -> None:
    assert logs.level('{"time":1718180000123456,"level":"error","msg":"x"}') == "error"
    assert logs.level("{not json") is None


def test_reorder_holds_lines_for_the_window_and_releases_them_in_time_order() -> None:
    reorder = logs.Reorder(0.3)
    late = logs.record("2026-03-01T10:00:02Z second", "a", None, "core")
    early = logs.record("2026-03-01T10:00:01Z first", "b", None, "core")
    reorder.push(late, arrived=10.0)
    reorder.push(early, arrived=10.2)  # arrives later, but is earlier in time
    assert reorder.due(10.25) == []  # the earliest line (in time) has waited only 0.05 s
    assert [item.text for item in reorder.due(10.5)] == ["first", "second"]
    assert len(reorder) == 0


def test_reorder_drain_gives_everything_in_order() -> None:
    reorder = logs.Reorder(10)
    for text in ("2026-03-01T10:00:03Z c", "2026-03-01T10:00:01Z a", "2026-03-01T10:00:02Z b"):
        reorder.push(logs.record(text, "p", None, "core"), arrived=0)
    assert [item.text for item in reorder.drain()] == ["a", "b", "c"]


def test_text_lines_pad_the_pod_and_colour_it_per_pod() -> None:
    formatter = logs.Formatter(color=False, timestamps=False, output=None)
    formatter.know(["demo-core-0", "demo-replicant-abc12"])
    line = formatter.line(logs.record("2026-03-01T10:00:00Z hello", "demo-core-0", None, "core"))
    assert line == "demo-core-0          hello"
    coloured = logs.Formatter(color=True, timestamps=True, output=None)
    coloured.know(["a", "b"])
    first = coloured.line(logs.record("2026-03-01T10:00:00Z x", "a", None, "core"))
    second = coloured.line(logs.record("2026-03-01T10:00:00Z y", "b", None, "core"))
    assert "\x1b[" in first and click.unstyle(first) == "a 2026-03-01T10:00:00Z x"
    assert first.split("a", 1)[0] != second.split("b", 1)[0]  # another colour for another pod


def test_json_lines_carry_pod_node_role_level_and_time() -> None:
    formatter = logs.Formatter(color=True, timestamps=False, output="json")
    item = logs.record("2026-03-01T10:00:00.1Z 2026-03-01T10:00:00.100000+00:00 [error] msg: boom", "demo-core-1",
                       "emqx@demo-core-1.demo-headless.ns.svc.cluster.local", "core")
    assert json.loads(formatter.line(item)) == {
        "time": "2026-03-01T10:00:00.1Z", "pod": "demo-core-1",
        "node": "emqx@demo-core-1.demo-headless.ns.svc.cluster.local", "role": "core", "level": "error",
        "message": "2026-03-01T10:00:00.100000+00:00 [error] msg: boom",
    }
