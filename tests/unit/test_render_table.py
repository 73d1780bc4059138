"""render.table, the plugin's one table engine (importing tabulate cost more than `status` spends
on everything else): its output must be tabulate's "plain" format exactly -- tabulate stays a
test-only oracle -- except where tabulate (without wcwidth) miscounts what a terminal shows."""

from __future__ import annotations

import random
from typing import Any

import click
import pytest
from tabulate import tabulate

from kubectl_emqx.view import render

HEADERS = ("NODE", "ROLE", "STATUS", "VERSION", "OTP", "UPTIME", "CONNECTIONS")


def _tabulate(rows: list[list[Any]], headers: tuple[str, ...], no_headers: bool) -> str:
    if no_headers:
        return str(tabulate(rows, tablefmt="plain", disable_numparse=True))
    return str(tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True))


def _cell(rng: random.Random) -> str:
    text = "".join(rng.choice("abcXYZ019-@./:_ ") for _ in range(rng.randint(0, 24)))
    roll = rng.random()
    if roll < 0.2:
        return click.style(text, fg=rng.choice(["green", "red", "yellow"]))
    if roll < 0.3:
        return click.style(text, bold=True)
    if roll < 0.4:
        return f"  {text} "
    return text


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("no_headers", [False, True])
def test_same_text_as_tabulate(seed: int, no_headers: bool) -> None:
    rng = random.Random(seed)
    rows = [[_cell(rng) for _ in HEADERS] for _ in range(rng.randint(0, 8))]
    assert render.table(rows, HEADERS, no_headers) == _tabulate(rows, HEADERS, no_headers)


@pytest.mark.parametrize(
    "rows",
    [
        [["emqx@n-core-0", "core", "running", "5.7.2", "26.2.5-1", "3h12m", "10"]],
        [["", "", "", "", "", "", ""]],
        [["a" * 40, "b", "c", "d", "e", "f", "g"], ["x", "y" * 30, "z", "", "", "", "1234567890123"]],
    ],
)
def test_fixed_tables(rows: list[list[str]]) -> None:
    for no_headers in (False, True):
        assert render.table(rows, HEADERS, no_headers) == _tabulate(rows, HEADERS, no_headers)


@pytest.mark.parametrize(
    "rows",
    [
        [["ünïcode", "core", "running", "5.7.2", "-", "-", "-"]],  # non-ASCII, one column per character
        [["two\nlines", "core", "running\r\nnow", "5.7.2", "-", "-", "-"], ["x", "", "", "", "", "", "y"]],
        [[None, "core", 3, 1.5, "-", "-", "-"]],  # not text
        [],  # headers only
    ],
)
def test_other_cells_as_tabulate(rows: list[list[Any]]) -> None:
    assert render.table(rows, HEADERS) == _tabulate(rows, HEADERS, False)


def test_upgrade_table_with_arrows() -> None:
    rows = [("emqx@u-core-0.x", "core", "5.0.6 → 5.0.7", "waiting"),
            ("emqx@10.0.0.9", "replicant", "? → 5.0.7", "done")]
    assert render.table(rows, ("NODE", "ROLE", "FROM → TO", "STATE")) == "\n".join([
        "NODE             ROLE       FROM → TO      STATE",
        "emqx@u-core-0.x  core       5.0.6 → 5.0.7  waiting",
        "emqx@10.0.0.9    replicant  ? → 5.0.7      done",
    ])


def test_columns_follow_what_a_terminal_shows() -> None:
    """Wide (CJK) characters take two columns, combining marks none: the next column stays aligned
    (tabulate without the optional wcwidth counts characters and misaligns these)."""
    rows = [["節点-1", "core"], ["e\u0301mqx", "replicant"], ["plain", click.style("red", fg="red")]]
    lines = render.table(rows, ("NODE", "ROLE")).splitlines()
    assert lines == ["NODE    ROLE", "節点-1  core", "e\u0301mqx    replicant",
                     "plain   " + click.style("red", fg="red")]


def test_short_rows_are_padded() -> None:
    assert render.table([["a"], ["b", "c"]], ("X", "Y")) == "X    Y\na\nb    c"
