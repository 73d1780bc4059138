"""Erlang terms as EMQX prints them in error bodies and logs.

EMQX's error texts are Erlang terms run through one of a few printers, and the printer decides what a
client sees: `io_lib:format("~p")` (pretty, 80 columns), `~0p` (one line), jsx (minirest's JSON
encoder: a charlist is a list of integers), emqx_logger_jsonfmt:best_effort_json_obj (charlists become
strings, other terms `~p` text). This module models the few term types those texts contain and
implements the printers from their documented behaviour.

Python values stand for Erlang terms: int, float, list, dict (map), `Atom`, `Binary` (a binary holding
UTF-8 text), `Charlist` (a string Erlang holds as a list of code points) and `Tuple`. Python's True /
False / None are the atoms true / false / undefined.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any


class Atom(str):
    """An Erlang atom."""


class Binary(str):
    """An Erlang binary holding the UTF-8 encoding of this text."""


class Charlist(str):
    """An Erlang string: a list of code points."""


class Tuple(tuple[Any, ...]):
    """An Erlang tuple."""


LINE_LENGTH = 80

_UNQUOTED_ATOM = re.compile(r"^[a-z][A-Za-z0-9_@]*$")
_RESERVED = frozenset(
    [
        "after",
        "and",
        "andalso",
        "band",
        "begin",
        "bnot",
        "bor",
        "bsl",
        "bsr",
        "bxor",
        "case",
        "catch",
        "cond",
        "div",
        "end",
        "fun",
        "if",
        "let",
        "not",
        "of",
        "or",
        "orelse",
        "receive",
        "rem",
        "try",
        "when",
        "xor",
    ]
)


def _atom_text(name: str) -> str:
    if _UNQUOTED_ATOM.match(name) and name not in _RESERVED:
        return name
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _string_escape(text: str, quote: str) -> str:
    out = []
    for char in text:
        if char == quote:
            out.append("\\" + quote)
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif char == "\x0b":
            out.append("\\v")
        elif char == "\b":
            out.append("\\b")
        elif char == "\f":
            out.append("\\f")
        elif char == "\x1b":
            out.append("\\e")
        elif char == "\x7f":
            out.append("\\d")
        elif ord(char) < 32:
            out.append(f"\\^{chr(ord(char) + 64)}")
        else:
            out.append(char)
    return "".join(out)


def _printable(text: str) -> bool:
    return all(char in "\n\r\t\x0b\b\f\x1b" or (ord(char) >= 32 and ord(char) != 0x7F) for char in text)


def format_float(value: float) -> str:
    """io_lib:write/1 of a float: the shortest round-trip digits, decimal or scientific, whichever is
    shorter (decimal on a tie)."""
    if math.isinf(value) or math.isnan(value):
        return repr(value)
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    text = repr(abs(value))
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0") or "0"
    # decimal exponent of the first significant digit
    if int_part.strip("0"):
        point = len(int_part.lstrip("0")) + exponent
    else:
        point = -(len(frac_part) - len(frac_part.lstrip("0"))) + exponent
    digits = digits.rstrip("0") or "0"
    # scientific form d.ddd e(point-1)
    sci = digits[0] + "." + (digits[1:] or "0") + "e" + str(point - 1)
    if point <= 0:
        dec = "0." + "0" * (-point) + digits
    elif point >= len(digits):
        dec = digits + "0" * (point - len(digits)) + ".0"
    else:
        dec = digits[:point] + "." + digits[point:]
    return sign + (dec if len(dec) <= len(sci) else sci)


def _rank(term: Any) -> int:
    if isinstance(term, bool) or term is None or isinstance(term, Atom):
        return 1
    if isinstance(term, int | float):
        return 0
    if isinstance(term, Tuple):
        return 6
    if isinstance(term, Mapping):
        return 7
    if isinstance(term, Binary):
        return 10
    if isinstance(term, Charlist | list):
        return 8 if len(term) == 0 else 9
    return 10


def _atom_name(term: Any) -> str:
    if term is True:
        return "true"
    if term is False:
        return "false"
    if term is None:
        return "undefined"
    return str(term)


def sort_key(term: Any) -> Any:
    """Erlang term order, enough to order map keys as small maps iterate them."""
    rank = _rank(term)
    if rank == 1:
        return (rank, _atom_name(term))
    if rank == 0:
        return (rank, term)
    if isinstance(term, Binary):
        return (rank, term.encode())
    if isinstance(term, Charlist):
        return (rank, [ord(char) for char in term])
    if isinstance(term, Tuple):
        return (rank, len(term), [sort_key(item) for item in term])
    if isinstance(term, list):
        return (rank, [sort_key(item) for item in term])
    return (rank, str(term))


def map_items(term: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    return sorted(term.items(), key=lambda item: sort_key(item[0]))


def format_0p(term: Any) -> str:
    """`~0p`: one line, strings and printable binaries as text."""
    if isinstance(term, bool) or term is None or isinstance(term, Atom):
        return _atom_text(_atom_name(term))
    if isinstance(term, int):
        return str(term)
    if isinstance(term, float):
        return format_float(term)
    if isinstance(term, Binary):
        if _printable(term):
            return '<<"' + _string_escape(term, '"') + '">>'
        return "<<" + ",".join(str(byte) for byte in term.encode()) + ">>"
    if isinstance(term, Charlist):
        if term and _printable(term):
            return '"' + _string_escape(term, '"') + '"'
        return "[" + ",".join(str(ord(char)) for char in term) + "]"
    if isinstance(term, Tuple):
        return "{" + ",".join(format_0p(item) for item in term) + "}"
    if isinstance(term, Mapping):
        return "#{" + ",".join(f"{format_0p(key)} => {format_0p(value)}" for key, value in map_items(term)) + "}"
    if isinstance(term, list):
        return "[" + ",".join(format_0p(item) for item in term) + "]"
    if isinstance(term, str):
        return format_0p(Binary(term))
    raise TypeError(f"not an Erlang term: {term!r}")


# `~p`: io_lib_pretty's layout. A node is (what, length): `what` is the flat text of an atomic term,
# or ("list", nodes) / ("tuple", tagged, nodes) / ("map", pairs) with pairs (("pair", k, v), length).


class _NoGood(Exception):
    pass


def _node(term: Any) -> tuple[Any, int]:
    if isinstance(term, Tuple):
        if not term:
            return "{}", 2
        items = [_node(item) for item in term]
        tagged = len(term) > 1 and (isinstance(term[0], Atom | bool) or term[0] is None)
        return ("tuple", tagged, items), 2 + sum(length for _, length in items) + len(items) - 1
    if isinstance(term, Mapping):
        if not term:
            return "#{}", 3
        pairs = []
        for key, value in map_items(term):
            key_node, value_node = _node(key), _node(value)
            pairs.append((("pair", key_node, value_node), key_node[1] + 4 + value_node[1]))
        return ("map", pairs), 3 + sum(length for _, length in pairs) + len(pairs) - 1
    if isinstance(term, list) and not isinstance(term, str):
        if not term:
            return "[]", 2
        items = [_node(item) for item in term]
        return ("list", items), 2 + sum(length for _, length in items) + len(items) - 1
    text = format_0p(term)
    return text, len(text)


def _atomic(node: tuple[Any, int]) -> bool:
    return isinstance(node[0], str)


def _atomic_pair(pair: tuple[Any, int]) -> bool:
    _, key, value = pair[0]
    return _atomic(key) and _atomic(value)


def _write(node: tuple[Any, int]) -> str:
    what = node[0]
    if isinstance(what, str):
        return what
    if what[0] == "list":
        return "[" + ",".join(_write(item) for item in what[1]) + "]"
    if what[0] == "tuple":
        return "{" + ",".join(_write(item) for item in what[2]) + "}"
    return "#{" + ",".join(_write_pair(pair) for pair in what[1]) + "}"


def _write_pair(pair: tuple[Any, int]) -> str:
    _, key, value = pair[0]
    return _write(key) + " => " + _write(value)


def _last_depth(rest: list[Any], depth: int) -> int:
    return 0 if rest else depth + 1


def _fits(length: int, col: int, ll: int, m: int, ld: int, w: int) -> bool:
    return length < ll - col - ld and length + w + ld <= m


def _tail_fits(elen: int, col: int, ll: int, m: int, ld1: int, w: int) -> bool:
    if ld1 == 0:
        return elen + 1 < ll - col and w + elen + 1 <= m
    return elen < ll - col - ld1 and w + elen + ld1 <= m


class _Pretty:
    def __init__(self, ll: int, m: int):
        self.ll = ll
        self.m = m

    # ---- layout
    def pp(self, node: Any, col: int, tind: int, ind: str, ld: int, w: int) -> str:
        what, length = node
        if _fits(length, col, self.ll, self.m, ld, w) or isinstance(what, str):
            return _write(node)
        if what[0] == "list":
            return "[" + self.pp_list(what[1], col + 1, tind, ind + " ", ld, w + 1) + "]"
        if what[0] == "tuple" and what[1]:
            return "{" + self.pp_tag_tuple(what[2], col, tind, ind, ld, w + 1) + "}"
        if what[0] == "tuple":
            return "{" + self.pp_list(what[2], col + 1, tind, ind + " ", ld, w + 1) + "}"
        return "#{" + self.pp_map(what[1], col + 2, tind, ind + "  ", ld, w + 1) + "}"

    def pp_tag_tuple(self, items: list[Any], col: int, tind: int, ind: str, ld: int, w: int) -> str:
        tag, rest = items[0], items[1:]
        tlen = tag[1]
        tag_ind = tlen + 2
        tcol = col + tag_ind
        if tind > 0 and tag_ind > tind:
            return _write(tag) + self.pp_tail(rest, col + tind, tcol, tind, ind + " " * tind, ld, w + tlen)
        return _write(tag) + "," + self.pp_list(rest, tcol, tind, ind + " " * tag_ind, ld, w + tlen + 1)

    def pp_map(self, pairs: list[Any], col: int, tind: int, ind: str, ld: int, w: int) -> str:
        text, width = self.pp_pair(pairs[0], col, tind, ind, _last_depth(pairs[1:], ld), w)
        return text + self.pp_pairs_tail(pairs[1:], col, col + width, tind, ind, ld, width)

    def pp_pairs_tail(self, pairs: list[Any], col0: int, col: int, tind: int, ind: str, ld: int, w: int) -> str:
        out = ""
        for index, pair in enumerate(pairs):
            ld1 = _last_depth(pairs[index + 1 :], ld)
            elen = 1 + pair[1]
            if _tail_fits(elen, col, self.ll, self.m, ld1, w) and _atomic_pair(pair):
                out += "," + _write_pair(pair)
                col, w = col + elen, w + elen
            else:
                text, width = self.pp_pair(pair, col0, tind, ind, ld1, 0)
                out += ",\n" + ind + text
                col, w = col0 + width, width
        return out

    def pp_pair(self, pair: Any, col: int, tind: int, ind: str, ld: int, w: int) -> tuple[str, int]:
        if _fits(pair[1], col, self.ll, self.m, ld, w):
            return _write_pair(pair), (pair[1] if _atomic_pair(pair) else self.ll)
        _, key, value = pair[0]
        indent = tind if tind > 0 else 4
        inner = ind + " " * indent
        text = self.pp(key, col, tind, ind, ld, w) + " =>\n" + inner + self.pp(value, col + indent, tind, inner, ld, 0)
        return text, self.ll

    def pp_list(self, items: list[Any], col0: int, tind: int, ind: str, ld: int, w: int) -> str:
        text, width = self.pp_element(items[0], col0, tind, ind, _last_depth(items[1:], ld), w)
        return text + self.pp_tail(items[1:], col0, col0 + width, tind, ind, ld, w + width)

    def pp_tail(self, items: list[Any], col0: int, col: int, tind: int, ind: str, ld: int, w: int) -> str:
        out = ""
        for index, item in enumerate(items):
            ld1 = _last_depth(items[index + 1 :], ld)
            elen = 1 + item[1]
            if _tail_fits(elen, col, self.ll, self.m, ld1, w) and _atomic(item):
                out += "," + _write(item)
                col, w = col + elen, w + elen
            else:
                text, width = self.pp_element(item, col0, tind, ind, ld1, 0)
                out += ",\n" + ind + text
                col, w = col0 + width, width
        return out

    def pp_element(self, node: Any, col: int, tind: int, ind: str, ld: int, w: int) -> tuple[str, int]:
        if _fits(node[1], col, self.ll, self.m, ld, w) and _atomic(node):
            return _write(node), node[1]
        return self.pp(node, col, tind, ind, ld, w), self.ll

    # ---- indentation of tagged tuples (cind): raises _NoGood when it would exceed half the line
    def cind(self, node: Any, col: int, ind: int, ld: int, w: int) -> None:
        what, length = node
        if _fits(length, col, self.ll, self.m, ld, w) or isinstance(what, str):
            return
        if what[0] == "list":
            self.cind_list(what[1], col + 1, ind, ld, w + 1)
        elif what[0] == "tuple" and what[1]:
            self.cind_tag_tuple(what[2], col, ind, ld, w + 1)
        elif what[0] == "tuple":
            self.cind_list(what[2], col + 1, ind, ld, w + 1)
        else:
            self.cind_map(what[1], col + 2, ind, ld, w + 2)

    def cind_tag_tuple(self, items: list[Any], col: int, ind: int, ld: int, w: int) -> None:
        tlen = items[0][1]
        tag_ind = tlen + 2
        tcol = col + tag_ind
        if ind > 0 and tag_ind > ind:
            col1 = col + ind
            if self.m + col1 <= self.ll or col1 <= self.ll // 2:
                self.cind_tail(items[1:], col1, tcol, ind, ld, w + tlen)
            else:
                raise _NoGood()
        elif self.m + tcol < self.ll or tcol < self.ll // 2:
            self.cind_list(items[1:], tcol, ind, ld, w + tlen + 1)
        else:
            raise _NoGood()

    def cind_map(self, pairs: list[Any], col: int, ind: int, ld: int, w: int) -> None:
        width = self.cind_pair(pairs[0], col, ind, _last_depth(pairs[1:], ld), w)
        col0, col, w = col, col + width, w + width
        for index, pair in enumerate(pairs[1:], start=1):
            ld1 = _last_depth(pairs[index + 1 :], ld)
            elen = 1 + pair[1]
            if _tail_fits(elen, col, self.ll, self.m, ld1, w) and _atomic_pair(pair):
                col, w = col + elen, w + elen
            else:
                width = self.cind_pair(pair, col0, ind, ld1, 0)
                col, w = col0 + width, width

    def cind_pair(self, pair: Any, col: int, ind: int, ld: int, w: int) -> int:
        if _fits(pair[1], col, self.ll, self.m, ld, w):
            return pair[1] if _atomic_pair(pair) else self.ll
        _, key, value = pair[0]
        self.cind(key, col, ind, ld, w)
        self.cind(value, col + (ind if ind > 0 else 4), ind, ld, 0)
        return self.ll

    def cind_list(self, items: list[Any], col0: int, ind: int, ld: int, w: int) -> None:
        width = self.cind_element(items[0], col0, ind, _last_depth(items[1:], ld), w)
        self.cind_tail(items[1:], col0, col0 + width, ind, ld, w + width)

    def cind_tail(self, items: list[Any], col0: int, col: int, ind: int, ld: int, w: int) -> None:
        for index, item in enumerate(items):
            ld1 = _last_depth(items[index + 1 :], ld)
            elen = 1 + item[1]
            if _tail_fits(elen, col, self.ll, self.m, ld1, w) and _atomic(item):
                col, w = col + elen, w + elen
            else:
                width = self.cind_element(item, col0, ind, ld1, 0)
                col, w = col0 + width, width

    def cind_element(self, node: Any, col: int, ind: int, ld: int, w: int) -> int:
        if _fits(node[1], col, self.ll, self.m, ld, w) and _atomic(node):
            return node[1]
        self.cind(node, col, ind, ld, w)
        return self.ll


def format_p(term: Any, col: int = 1) -> str:
    """`~p` as io_lib:format prints it starting at column `col` (io_lib_pretty's 80-column layout)."""
    node = _node(term)
    length = node[1]
    if length < LINE_LENGTH - col or isinstance(node[0], str):
        return _write(node)
    printer = _Pretty(LINE_LENGTH, length)
    tind = 1
    for candidate in (-1, 4):
        try:
            printer.cind(node, col, candidate, 0, 0)
        except _NoGood:
            continue
        tind = candidate
        break
    return printer.pp(node, col, tind, " " * (col - 1), 0, 0)


def format_deep_0p(pieces: list[Any]) -> str:
    """`~0p` of the deep char list io_lib:format returns for "text ~p ..." (e5.0.x rebalance errors):
    literal characters as integers, each `~p` expansion as the string it printed."""
    out: list[str] = []
    for piece in pieces:
        if type(piece) is str:
            out += [str(ord(char)) for char in piece]
        else:
            out.append(format_0p(Charlist(format_p(piece))))
    return "[" + ",".join(out) + "]"


# --------------------------------------------------------------------------------------- JSON forms


class NotJson(Exception):
    """jsx:is_term/1 is false for the term."""


def _jsx(term: Any) -> Any:
    if term is True or term is False or term is None:
        return term if term is not None else "undefined"
    if isinstance(term, Atom):
        return {"true": True, "false": False, "null": None}.get(term, str(term))
    if isinstance(term, int | float):
        return term
    if isinstance(term, Binary):
        return str(term)
    if isinstance(term, Charlist):
        return [ord(char) for char in term]
    if isinstance(term, Tuple):
        raise NotJson()
    if isinstance(term, Mapping):
        return {_jsx_key(key): _jsx(value) for key, value in map_items(term)}
    if isinstance(term, list):
        if term and all(isinstance(item, Tuple) and len(item) == 2 for item in term):
            return {_jsx_key(key): _jsx(value) for key, value in term}
        if term == []:
            return []
        return [_jsx(item) for item in term]
    if isinstance(term, str):
        return str(term)
    raise NotJson()


def _jsx_key(key: Any) -> str:
    if isinstance(key, Atom | Binary):
        return str(key)
    if isinstance(key, Charlist):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    if isinstance(key, str):
        return str(key)
    raise NotJson()


def jsx_encode(term: Any) -> str:
    """minirest's JSON body (jsx:encode/1); NotJson when jsx:is_term/1 would refuse it."""
    return json.dumps(_jsx(term), separators=(",", ":"), ensure_ascii=False)


def _best_effort(term: Any) -> Any:
    if term is True or term is False:
        return term
    if term is None:
        return "undefined"
    if isinstance(term, Atom):
        return {"true": True, "false": False, "null": None}.get(term, str(term))
    if isinstance(term, int | float):
        return term
    if isinstance(term, Binary | Charlist):
        return str(term)
    if isinstance(term, Mapping):
        return {_best_key(key): _best_effort(value) for key, value in map_items(term)}
    if isinstance(term, list) and not isinstance(term, str):
        if term and isinstance(term[0], Tuple) and len(term[0]) == 2:
            if all(isinstance(item, Tuple) and len(item) == 2 for item in term):
                keys = [_best_key(key) for key, _ in term]
                if len(set(keys)) == len(keys):
                    return {key: _best_effort(value) for key, (_, value) in zip(keys, term, strict=True)}
            return [_best_effort(item) for item in term]
        return [_best_effort(item) for item in term]
    if isinstance(term, str):
        return str(term)
    return _single_line(format_p(term))


def _best_key(key: Any) -> str:
    if key is True:
        return "true"
    if key is False:
        return "false"
    return str(key)


def _single_line(text: str) -> str:
    return re.sub(r",?\r?\n\s*", ", ", text).strip()


def best_effort_json(term: Any) -> str:
    """emqx_logger_jsonfmt:best_effort_json_obj/1 encoded (what PUT /configs answers from 5.7.0)."""
    return json.dumps(_best_effort(term), separators=(",", ":"), ensure_ascii=False)
