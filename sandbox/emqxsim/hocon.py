"""HOCON the way EMQX reads it: a strict scanner and parser written from emqx/hocon's grammar.

Not pyhocon, which is far more lenient: EMQX's scanner (hocon_scanner.xrl) only knows unquoted strings
that start with a letter, integers, floats, `true`/`false`/`null`, quoted and triple-quoted strings,
`${var}` / `${?var}`, and exact bytesize (`1MB`), percent (`10%`) and duration (`15s`, `100ms`) tokens;
it takes the longest match at each position. So `_json`, `/path` and `5.` are scan errors, `1.5MB` and
`10abc` are a number followed by a string (a parse error), and `a b` is the string `ab`. The token
rewriting (keys, end-of-value markers) and grammar follow hocon_token.erl and hocon_parser.yrl; the
result is a plain dict like `hocon:binary(Text, #{format => map})` returns. Behaviour that changed
between emqx/hocon releases is selected by a `Dialect` (the hocon tag a release was built with).

Also here: env overrides as hocon_tconf applies them, and HOCON output for GET /configs.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .erlterm import Atom, Binary, Charlist, Tuple, format_0p, format_float

ConfigDict = dict[str, Any]
HoconVersion = tuple[int, int, int]


@dataclass(frozen=True)
class Dialect:
    """Parsing details that differ between emqx/hocon tags."""

    hocon: HoconVersion = (0, 44, 0)

    @property
    def error_maps(self) -> bool:
        """Scan/parse errors are `{Type, #{line, reason[, file]}}` (0.39.8+), a binary before."""
        return self.hocon >= (0, 39, 8)

    @property
    def split_quoted_keys(self) -> bool:
        """`"a.b" = 1` is a path too before 0.39.17."""
        return self.hocon < (0, 39, 17)

    @property
    def newline_separates_objects(self) -> bool:
        """`}` and `{` on different lines are not concatenated from 0.39.16."""
        return self.hocon >= (0, 39, 16)

    @property
    def keeps_empty_objects(self) -> bool:
        """`a = {}` gives `a => #{}` from 0.38.0 (the key was dropped before)."""
        return self.hocon >= (0, 38, 0)

    @property
    def triple_quotes_raw(self) -> bool:
        """No escape processing inside triple quotes from 0.42.0."""
        return self.hocon >= (0, 42, 0)

    @property
    def triple_quotes_unindent(self) -> bool:
        """`\"\"\"~` ... `~\"\"\"` strips the common indentation from 0.41.0."""
        return self.hocon >= (0, 41, 0)


DEFAULT_DIALECT = Dialect()


class HoconError(Exception):
    """What hocon:binary/2 or hocon:files/2 return as `{error, Reason}` (or the exception it raises).

    kind: scan_error | parse_error | resolve_error | concat_error | enoent | crash
    """

    def __init__(self, kind: str, reason: str, line: int | None = None, file: str | None = None):
        super().__init__(f"{kind}: {reason}" + (f" (line {line})" if line else ""))
        self.kind = kind
        self.reason = reason
        self.line = line
        self.file = file

    def erlang_reason(self, dialect: Dialect = DEFAULT_DIALECT) -> Any:
        """The Erlang term EMQX gets as the error reason, for the given hocon dialect."""
        if self.kind in ("scan_error", "parse_error"):
            if dialect.error_maps:
                detail: dict[Any, Any] = {Atom("line"): self.line or 0, Atom("reason"): Charlist(self.reason)}
                if self.file is not None:
                    detail[Atom("file")] = Charlist(self.file)
                return Tuple((Atom(self.kind), detail))
            text = f"{self.reason} line_number {self.line}"
            if self.file is not None:
                text += f" in_file {self.file}"
            return Tuple((Atom(self.kind), Binary(text)))
        if self.kind in ("resolve_error", "concat_error"):
            return Tuple((Atom(self.kind), Binary(self.reason)))
        if self.kind == "enoent":
            return Tuple((Atom("enoent"), Binary(self.reason)))
        return Tuple((Atom(self.kind), Binary(self.reason)))


# ------------------------------------------------------------------------------------------- scanner

_WHITESPACE = frozenset("\t\x0b\x0c \xa0")
_LINEFEED = frozenset("\n\r\u2028\u2029")
_PUNCT = frozenset("{}[],:=")
_LETTER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGIT = frozenset("0123456789")
_UNQUOTED_REST = _LETTER | _DIGIT | frozenset("_.@%-|")
_HEX = _DIGIT | frozenset("abcdefABCDEF")
_ESCAPE = frozenset('"\\bfnrt')
_BYTESIZE_UNITS = ("kb", "KB", "mb", "MB", "gb", "GB")
_DURATION_UNITS = ("ms", "MS", "d", "D", "h", "H", "m", "M", "s", "S")


@dataclass
class Token:
    kind: str
    line: int
    value: Any = None


def _run_digits(text: str, pos: int) -> int:
    end = pos
    while end < len(text) and text[end] in _DIGIT:
        end += 1
    return end - pos


# Each matcher returns (accepted length or -1, length consumed while the automaton was alive).


def _match_literal(text: str, pos: int, word: str) -> tuple[int, int]:
    for index, char in enumerate(word):
        if pos + index >= len(text):
            return -1, index
        if text[pos + index] != char:
            return -1, index
    return len(word), len(word)


def _match_unquoted(text: str, pos: int) -> tuple[int, int]:
    if pos >= len(text) or text[pos] not in _LETTER:
        return -1, 0
    end = pos + 1
    while end < len(text) and text[end] in _UNQUOTED_REST:
        end += 1
    return end - pos, end - pos


def _match_integer(text: str, pos: int) -> tuple[int, int]:
    start = pos
    if pos < len(text) and text[pos] in "+-":
        pos += 1
    digits = _run_digits(text, pos)
    if digits == 0:
        return -1, pos - start
    return pos + digits - start, pos + digits - start


def _match_float(text: str, pos: int) -> tuple[int, int]:
    """{Integer}?{Fraction} | {Integer}{Fraction}{Exponent}."""
    start = pos
    if pos < len(text) and text[pos] in "+-":
        pos += 1
    int_digits = _run_digits(text, pos)
    pos += int_digits
    if pos >= len(text) or text[pos] != ".":
        return -1, pos - start
    pos += 1
    frac = _run_digits(text, pos)
    if frac == 0:
        return -1, pos - start
    pos += frac
    accepted = pos - start
    if int_digits and pos < len(text) and text[pos] in "eE":
        probe = pos + 1
        if probe < len(text) and text[probe] in "+-":
            probe += 1
        exp = _run_digits(text, probe)
        if exp:
            return probe + exp - start, probe + exp - start
        return accepted, probe - start
    return accepted, accepted


def _match_suffixed(text: str, pos: int, units: Iterable[str]) -> tuple[int, int]:
    digits = _run_digits(text, pos)
    if digits == 0:
        return -1, 0
    best, alive = -1, digits
    for unit in units:
        if text.startswith(unit, pos + digits):
            best = max(best, digits + len(unit))
            alive = max(alive, digits + len(unit))
        else:
            # how far the unit could be followed before failing
            common = 0
            while (
                common < len(unit) and pos + digits + common < len(text) and text[pos + digits + common] == unit[common]
            ):
                common += 1
            alive = max(alive, digits + common)
    return best, alive


def _match_percent(text: str, pos: int) -> tuple[int, int]:
    return _match_suffixed(text, pos, ("%",))


def _match_string(text: str, pos: int) -> tuple[int, int]:
    """ "{Char}*" where Char = [^"LF] | \\Escape | \\uXXXX, longest match."""
    if pos >= len(text) or text[pos] != '"':
        return -1, 0
    # NFA states: "in" (inside, expecting Char or closing quote), "esc" (after a backslash taken as
    # an escape), ("u", n) inside a unicode escape.
    states: set[Any] = {"in"}
    best, index = -1, pos + 1
    while states and index < len(text):
        char = text[index]
        nxt: set[Any] = set()
        for state in states:
            if state == "in":
                if char == '"':
                    best = index + 1 - pos
                elif char not in _LINEFEED:
                    nxt.add("in")
                    if char == "\\":
                        nxt.add("esc")
            elif state == "esc":
                if char in _ESCAPE:
                    nxt.add("in")
                elif char == "u":
                    nxt.add(("u", 0))
            else:
                count = state[1]
                if char in _HEX:
                    nxt.add("in" if count == 3 else ("u", count + 1))
        if not nxt:
            return best, index - pos
        states = nxt
        index += 1
    return best, index - pos


def _match_triple(text: str, pos: int) -> tuple[int, int]:
    '"""{MultilineChar}*""" with MultilineChar = [^"] | "[^"] | ""[^"] | escapes, longest match.'
    if not text.startswith('"""', pos):
        alive = 0
        while alive < 3 and pos + alive < len(text) and text[pos + alive] == '"':
            alive += 1
        return -1, alive
    states: set[Any] = {"body"}
    best, index = -1, pos + 3
    while states and index < len(text):
        char = text[index]
        nxt: set[Any] = set()
        for state in states:
            if state == "body":
                if char == '"':
                    nxt.add("q1")
                else:
                    nxt.add("body")
                    if char == "\\":
                        nxt.add("esc")
            elif state == "q1":
                if char == '"':
                    nxt.add("q2")
                else:
                    nxt.add("body")
            elif state == "q2":
                if char == '"':
                    best = index + 1 - pos
                else:
                    nxt.add("body")
            elif state == "esc":
                if char in _ESCAPE:
                    nxt.add("body")
                elif char == "u":
                    nxt.add(("u", 0))
            else:
                count = state[1]
                if char in _HEX:
                    nxt.add("body" if count == 3 else ("u", count + 1))
        if not nxt:
            return best, index - pos
        states = nxt
        index += 1
    return best, index - pos


def _match_variable(text: str, pos: int, maybe: bool) -> tuple[int, int]:
    prefix = "${?" if maybe else "${"
    accepted, alive = _match_literal(text, pos, prefix)
    if accepted < 0:
        return -1, alive
    name_len, name_alive = _match_unquoted(text, pos + len(prefix))
    if name_len < 0:
        return -1, len(prefix) + name_alive
    end = pos + len(prefix) + name_len
    if end < len(text) and text[end] == "}":
        return end + 1 - pos, end + 1 - pos
    return -1, end - pos


def _match_required(text: str, pos: int) -> tuple[int, int]:
    accepted, alive = _match_literal(text, pos, "required(")
    if accepted < 0:
        return -1, alive
    string_len, string_alive = _match_string(text, pos + accepted)
    if string_len < 0:
        return -1, accepted + string_alive
    end = pos + accepted + string_len
    if end < len(text) and text[end] == ")":
        return end + 1 - pos, end + 1 - pos
    return -1, end - pos


def _match_comment(text: str, pos: int) -> tuple[int, int]:
    if text.startswith("#", pos):
        start = pos + 1
    elif text.startswith("//", pos):
        start = pos + 2
    elif text.startswith("/", pos):
        return -1, 1
    else:
        return -1, 0
    end = start
    while end < len(text) and text[end] not in _LINEFEED:
        end += 1
    return end - pos, end - pos


# Rule order of hocon_scanner.xrl (an earlier rule wins a tie on length).
_RULES: list[tuple[str, Any]] = [
    ("comment", _match_comment),
    ("bool_true", lambda t, p: _match_literal(t, p, "true")),
    ("bool_false", lambda t, p: _match_literal(t, p, "false")),
    ("null", lambda t, p: _match_literal(t, p, "null")),
    ("unqstr", _match_unquoted),
    ("integer", _match_integer),
    ("float", _match_float),
    ("string", _match_string),
    ("triple", _match_triple),
    ("bytesize", lambda t, p: _match_suffixed(t, p, _BYTESIZE_UNITS)),
    ("percent", _match_percent),
    ("duration", lambda t, p: _match_suffixed(t, p, _DURATION_UNITS)),
    ("variable", lambda t, p: _match_variable(t, p, False)),
    ("maybe_variable", lambda t, p: _match_variable(t, p, True)),
    ("required", _match_required),
]


def _unescape(body: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            mapped = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(following)
            if mapped is not None:
                out.append(mapped)
                index += 2
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _unindent(chars: str) -> str:
    if chars.startswith("~\r\n"):
        body = chars[3:]
    elif chars.startswith("~\n"):
        body = chars[2:]
    else:
        return chars
    lines = body.split("\n")
    if lines and lines[-1].endswith("~"):
        lines[-1] = lines[-1][:-1]

    def indent(line: str) -> int | None:
        if line in ("", "\r"):
            return None
        return len(line) - len(line.lstrip(" "))

    if len(lines) == 1:
        minimum = indent(lines[0]) or 0
    else:
        last, rest = lines[-1], lines[:-1]
        indents = [i for i in (indent(line) for line in rest) if i is not None]
        min_rest = min(indents) if indents else 0
        if last and all(c == " " for c in last):
            minimum = min_rest
        else:
            last_indent = indent(last)
            minimum = min(last_indent if last_indent is not None else min_rest, min_rest)

    def trim(line: str) -> str:
        if line in ("", "\r"):
            return line
        strip = 0
        while strip < minimum and strip < len(line) and line[strip] == " ":
            strip += 1
        return line[strip:]

    return "\n".join(trim(line) for line in lines)


def _triple_value(chars: str, line: int, dialect: Dialect) -> str:
    body = chars[3:]
    strip = 0
    while strip < 3 and body.endswith('"'):
        body = body[:-1]
        strip += 1
    if dialect.triple_quotes_raw:
        if body.endswith("\\") and strip == 3 and chars.endswith('"' * 4):
            raise HoconError("scan_error", "four_closing_quotes", line)
        value = body
    else:
        value = _unescape(body)
    return _unindent(value) if dialect.triple_quotes_unindent else value


def _to_float(chars: str) -> float:
    if chars.startswith("."):
        chars = "0" + chars
    if chars[0] in "+-" and chars[1:2] == ".":
        # list_to_float/1 raises badarg: hocon crashes on "+.5" and "-.5"
        raise HoconError("crash", f"badarg list_to_float {chars}")
    return float(chars)


def scan(text: str, dialect: Dialect = DEFAULT_DIALECT) -> list[Token]:
    tokens: list[Token] = []
    pos, line = 0, 1
    while pos < len(text):
        char = text[pos]
        if char in _WHITESPACE or char in _LINEFEED:
            if char == "\n":
                line += 1
            pos += 1
            continue
        if char in _PUNCT:
            tokens.append(Token(char, line))
            pos += 1
            continue
        best_rule, best_len, alive = "", -1, 0
        for rule, matcher in _RULES:
            accepted, rule_alive = matcher(text, pos)
            alive = max(alive, rule_alive)
            if accepted > best_len:
                best_rule, best_len = rule, accepted
        if best_len <= 0:
            illegal = text[pos : min(len(text), pos + alive + 1)]
            raise HoconError("scan_error", f"illegal characters {format_0p(Charlist(illegal))}", line)
        chars = text[pos : pos + best_len]
        start_line = line
        line += chars.count("\n")
        pos += best_len
        if best_rule == "comment":
            continue
        if best_rule in ("bool_true", "bool_false"):
            tokens.append(Token("bool", start_line, best_rule == "bool_true"))
        elif best_rule == "null":
            tokens.append(Token("null", start_line, None))
        elif best_rule == "unqstr":
            tokens.append(Token("include", start_line) if chars == "include" else Token("unqstr", start_line, chars))
        elif best_rule == "integer":
            tokens.append(Token("integer", start_line, int(chars)))
        elif best_rule == "float":
            tokens.append(Token("float", start_line, _to_float(chars)))
        elif best_rule == "string":
            tokens.append(Token("string", start_line, _unescape(chars[1:-1])))
        elif best_rule == "triple":
            tokens.append(Token("string", start_line, _triple_value(chars, start_line, dialect)))
        elif best_rule in ("bytesize", "percent", "duration"):
            tokens.append(Token("string", start_line, chars))
        elif best_rule == "variable":
            tokens.append(Token("variable", start_line, (chars[2:-1].strip(), True)))
        elif best_rule == "maybe_variable":
            tokens.append(Token("variable", start_line, (chars[3:-1].strip(), False)))
        elif best_rule == "required":
            tokens.append(Token("required", start_line))
            # the scanner pushes the quoted file name back and scans it again
            inner = chars[len("required(") : -1].strip()
            pos -= best_len
            line = start_line
            text = text[:pos] + inner + text[pos + best_len :]
    return tokens


# ------------------------------------------------------------------------------- token rewriting


def _rm_trailing_comma(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for index, token in enumerate(tokens):
        if token.kind == "," and index + 1 < len(tokens) and tokens[index + 1].kind in ("}", "]"):
            continue
        out.append(token)
    return out


def _split_key(value: str) -> list[str]:
    return [part for part in value.split(".") if part]


def _trans_key(tokens: list[Token], dialect: Dialect) -> list[Token]:
    acc: list[Token] = []

    def mark_previous() -> None:
        if acc and acc[-1].kind == "unqstr":
            acc[-1] = Token("key", acc[-1].line, ("path", _split_key(acc[-1].value), acc[-1].value))
        elif acc and acc[-1].kind == "string":
            value = acc[-1].value
            key = ("path", _split_key(value), value) if dialect.split_quoted_keys else ("quoted", value, value)
            acc[-1] = Token("key", acc[-1].line, key)

    for token in tokens:
        if token.kind in (":", "="):
            mark_previous()
        elif token.kind == "{":
            mark_previous()
            acc.append(token)
        else:
            acc.append(token)
    return _trans_splice_end(acc, dialect)


def _end_of_run(seq: list[Token]) -> list[Token]:
    """The last string/variable/closing bracket of a run becomes its end-of-value form."""
    if not seq:
        return seq
    last = seq[-1]
    mapping = {"unqstr": "endstr", "string": "endstr", "variable": "endvar", "}": "endobj", "]": "endarr"}
    if last.kind in mapping:
        seq = seq[:-1] + [Token(mapping[last.kind], last.line, last.value)]
    return seq


def _trans_splice_end(tokens: list[Token], dialect: Dialect) -> list[Token]:
    out: list[Token] = []
    seq: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.kind in ("key", "include", ","):
            out += _end_of_run(seq) + [token]
            seq = []
        elif (
            dialect.newline_separates_objects
            and token.kind == "}"
            and index + 1 < len(tokens)
            and tokens[index + 1].kind == "{"
            and tokens[index + 1].line != token.line
        ):
            # a virtual comma keeps objects on different lines apart
            tokens = tokens[: index + 1] + [Token(",", token.line)] + tokens[index + 1 :]
            out += _end_of_run(seq)
            seq = [token]
        elif token.kind in ("}", "]"):
            out += _end_of_run(seq)
            seq = [token]
        else:
            seq.append(token)
        index += 1
    out += _end_of_run(seq)
    return out


# ------------------------------------------------------------------------------------------ parser


@dataclass
class _Prim:
    value: Any
    line: int


@dataclass
class _Var:
    name: str
    required: bool
    line: int


@dataclass
class _Obj:
    # parser: (path, value, line) triples and includes; after _expand: _Field and _Include
    fields: list[Any]
    line: int


@dataclass
class _Arr:
    items: list[Any]
    line: int


@dataclass
class _Concat:
    parts: list[Any]
    line: int


@dataclass
class _Include:
    filename: str
    required: bool
    line: int


def _token_text(token: Token | None, raw_keys: bool = False) -> str:
    """How yecc names the token a syntax error is before (yeccpre.hrl yecctoken2string)."""
    if token is None:
        return ""
    kind, value = token.kind, token.value
    if kind == "integer":
        return str(value)
    if kind == "float":
        return format_float(value)
    if kind in ("string", "unqstr", "endstr"):
        return format_0p(Charlist(value))
    if kind == "key":
        style, key, raw = value
        if style == "path" and not raw_keys:
            return format_0p(Tuple((Atom("keypath"), [Binary(part) for part in key])))
        return format_0p(Charlist(raw))
    if kind in ("variable", "endvar"):
        name, required = value
        return format_0p(Binary(name) if required else Tuple((Atom("maybe"), Binary(name))))
    if kind == "bool":
        return "true" if value else "false"
    if kind == "null":
        return "null"
    if kind in ("{", "}", "[", "]", ","):
        return f"'{kind}'"
    return kind  # endobj, endarr, include, required


class _Parser:
    _VALUE_START = frozenset(
        {"null", "bool", "integer", "float", "endstr", "endvar", "unqstr", "string", "variable", "{", "["}
    )

    def __init__(self, tokens: list[Token], dialect: Dialect):
        self.tokens = tokens
        self.pos = 0
        # before hocon 0.39.17 quoted and unquoted strings were one token type, keys kept as text
        self.raw_keys = dialect.split_quoted_keys

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def fail(self) -> HoconError:
        token = self.peek()
        line = token.line if token is not None else (self.tokens[-1].line if self.tokens else 1)
        return HoconError("parse_error", f"syntax error before: {_token_text(token, self.raw_keys)}", line)

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.fail()
        self.pos += 1
        return token

    def kind(self, offset: int = 0) -> str | None:
        token = self.peek(offset)
        return token.kind if token is not None else None

    def document(self) -> _Obj:
        if self.kind() == "{":
            start = self.take()
            if self.kind() == "endobj":
                self.take()
                fields: list[Any] = []
            else:
                fields = self.fields()
                if self.kind() != "endobj":
                    raise self.fail()
                self.take()
            obj = _Obj(fields, start.line)
        else:
            obj = _Obj(self.fields(), 0)
        if self.peek() is not None:
            raise self.fail()
        return obj

    def fields(self) -> list[Any]:
        fields = [self.field()]
        while True:
            if self.kind() == ",":
                self.take()
                fields.append(self.field())
            elif self.kind() in ("key", "include"):
                fields.append(self.field())
            else:
                return fields

    def field(self) -> Any:
        token = self.peek()
        if token is None:
            raise self.fail()
        if token.kind == "key":
            self.take()
            style, key, _raw = token.value
            path = key if style == "path" else [key]
            return (path, self.value(), token.line)
        if token.kind == "include":
            self.take()
            required = False
            if self.kind() == "required":
                self.take()
                required = True
            name = self.peek()
            if name is None or name.kind not in ("unqstr", "string", "endstr"):
                raise self.fail()
            self.take()
            return _Include(str(name.value), required, name.line)
        raise self.fail()

    def value(self) -> Any:
        token = self.peek()
        if token is None:
            raise self.fail()
        if token.kind in ("null", "bool", "integer", "float"):
            self.take()
            return _Prim(token.value, token.line)
        return self.partials()

    def partials(self) -> _Concat:
        parts: list[Any] = []
        first = self.peek()
        line = first.line if first is not None else 0
        while True:
            token = self.peek()
            if token is None:
                raise self.fail()
            if token.kind == "endstr":
                self.take()
                parts.append(_Prim(str(token.value), token.line))
                return _Concat(parts, line)
            if token.kind == "endvar":
                self.take()
                parts.append(_Var(token.value[0], token.value[1], token.line))
                return _Concat(parts, line)
            if token.kind in ("unqstr", "string"):
                self.take()
                parts.append(_Prim(str(token.value), token.line))
                continue
            if token.kind == "variable":
                self.take()
                parts.append(_Var(token.value[0], token.value[1], token.line))
                continue
            if token.kind == "{":
                self.take()
                if self.kind() in ("endobj", "}"):
                    closing = self.take()
                    parts.append(_Obj([], token.line))
                else:
                    fields = self.fields()
                    if self.kind() not in ("endobj", "}"):
                        raise self.fail()
                    closing = self.take()
                    parts.append(_Obj(fields, token.line))
                if closing.kind == "endobj":
                    return _Concat(parts, line)
                continue
            if token.kind == "[":
                self.take()
                if self.kind() in ("endarr", "]"):
                    closing = self.take()
                    parts.append(_Arr([], token.line))
                else:
                    items = self.elements()
                    if self.kind() not in ("endarr", "]"):
                        raise self.fail()
                    closing = self.take()
                    parts.append(_Arr(items, token.line))
                if closing.kind == "endarr":
                    return _Concat(parts, line)
                continue
            raise self.fail()

    def elements(self) -> list[Any]:
        items = [self.value()]
        while True:
            if self.kind() == ",":
                self.take()
                items.append(self.value())
            elif self.kind() in self._VALUE_START:
                items.append(self.value())
            else:
                return items


# ------------------------------------------------------------------------- evaluation to a dict
# hocon.erl works on the parsed field lists: expand/1 nests dotted keys, resolve/1 substitutes one
# variable at a time (a lookup sees every definition of the path, later resolved ones winning and
# objects merging), concat/1 joins partial values, transform merges duplicate keys. Unresolved
# required variables anywhere fail the document, even in a field a later one overrides.


class _Sentinel:
    """A marker that survives copy.deepcopy (substituted values are copied)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Sentinel:
        return self


_UNRESOLVABLE = _Sentinel()


@dataclass
class _Field:
    key: str
    value: Any
    line: int


def _expand(node: Any) -> Any:
    if isinstance(node, _Obj):
        fields: list[Any] = []
        for item in node.fields:
            if isinstance(item, _Include):
                fields.append(item)
                continue
            path, value, line = item
            value = _expand(value)
            for part in reversed(path[1:]):
                value = _Concat([_Field(part, value, line)], line)
            fields.append(_Field(path[0], value, line))
        return _Obj(fields, node.line)
    if isinstance(node, _Arr):
        return _Arr([_expand(item) for item in node.items], node.line)
    if isinstance(node, _Concat):
        return _Concat([_expand(part) for part in node.parts], node.line)
    return node


def _has_var(node: Any) -> bool:
    if isinstance(node, _Var):
        return True
    if isinstance(node, _Field):
        return _has_var(node.value)
    if isinstance(node, _Obj):
        return any(_has_var(item) for item in node.fields)
    if isinstance(node, _Arr):
        return any(_has_var(item) for item in node.items)
    if isinstance(node, _Concat):
        return any(_has_var(part) for part in node.parts)
    return False


def _children(node: Any) -> list[Any] | None:
    if isinstance(node, _Obj):
        return node.fields
    if isinstance(node, _Arr):
        return node.items
    if isinstance(node, _Concat):
        return node.parts
    return None


def _is_object(parts: list[Any]) -> bool:
    if not parts:
        return False
    first = parts[0]
    if isinstance(first, _Concat):
        return _is_object(first.parts)
    return isinstance(first, _Obj)


def _maybe_merge(old: Any, new: Any) -> Any:
    if isinstance(old, _Concat) and isinstance(new, _Concat) and _is_object(old.parts) and _is_object(new.parts):
        return _Concat(old.parts + new.parts, new.line)
    return new


def _lookup(path: list[str], items: Any, found: Any) -> Any:
    if isinstance(items, _Concat):
        return _lookup(path, items.parts, found)
    if not isinstance(items, list):
        return found
    for item in items:
        if isinstance(item, _Field) and path and item.key == path[0]:
            if len(path) == 1:
                if not _has_var(item.value):
                    found = _maybe_merge(found, item.value)
            else:
                found = _lookup(path[1:], item.value, found)
        elif isinstance(item, _Concat | _Obj):
            found = _lookup(path, _children(item), found)
    return found


class _Evaluator:
    def __init__(self, file: str | None):
        self.file = file

    def location(self, line: int) -> str:
        return f"at_line {line}" + (f" in_file {self.file}" if self.file else "")

    def evaluate(self, root: _Obj) -> ConfigDict:
        root = _expand(root)
        root = _Obj([item for item in root.fields if not self._include(item)], root.line)
        while True:
            unresolved: list[_Var] = []
            changed = self._resolve_list(root.fields, root.fields, unresolved)
            if changed:
                continue
            if unresolved:
                names = ", ".join(f"{format_0p(Binary(var.name))} {self.location(var.line)}" for var in unresolved)
                raise HoconError("resolve_error", f"failed_to_resolve {names}")
            break
        return self._transform([self._verify(item) for item in root.fields])

    def _include(self, item: Any) -> bool:
        if isinstance(item, _Include):
            if item.required:
                raise HoconError("enoent", item.filename)
            return True
        return False

    def _resolve_list(self, items: list[Any], root: list[Any], unresolved: list[_Var]) -> bool:
        """Substitute the first resolvable variable in `items` (in place); collect the unresolvable."""
        for index, item in enumerate(items):
            target = item.value if isinstance(item, _Field) else item
            if isinstance(target, _Var):
                path = [part for part in target.name.split(".") if part]
                found = _lookup(path, root, None)
                if found is None:
                    if target.required:
                        unresolved.append(target)
                        continue
                    replacement: Any = _UNRESOLVABLE
                else:
                    replacement = copy.deepcopy(found)
                if isinstance(item, _Field):
                    item.value = replacement
                else:
                    items[index] = replacement
                return True
            children = _children(target)
            if children is not None and self._resolve_list(children, root, unresolved):
                return True
        return False

    def _verify(self, item: _Field) -> _Field:
        return _Field(item.key, self._concat_value(item.value), item.line)

    def _concat_value(self, node: Any) -> Any:
        """concat/1: join a value's partials; _UNRESOLVABLE when only `${?missing}` made it up (the
        field holding it disappears when the object is turned into a map)."""
        if isinstance(node, _Field):
            return self._verify(node)
        if isinstance(node, _Concat):
            parts = [self._concat_value(part) for part in node.parts]
            if parts and all(part is _UNRESOLVABLE for part in parts):
                return _UNRESOLVABLE
            return self._join([part for part in parts if part is not _UNRESOLVABLE], node.line)
        if isinstance(node, _Obj):
            return _Obj([self._verify(item) for item in node.fields], node.line)
        if isinstance(node, _Arr):
            return _Arr([self._concat_value(item) for item in node.items], node.line)
        return node

    def _join(self, parts: list[Any], line: int) -> Any:
        if not parts:
            return _Obj([], line)
        flat: list[Any] = []
        for part in parts:
            if isinstance(part, _Obj):
                flat += part.fields
            else:
                flat.append(part)
        if all(isinstance(part, _Field) for part in flat):
            return _Obj(flat, line)
        if len(flat) == 1:
            return flat[0]
        if all(isinstance(part, _Prim) and isinstance(part.value, str) for part in flat):
            return _Prim("".join(part.value for part in flat), line)
        if all(isinstance(part, _Arr) for part in flat):
            return _Arr([item for part in flat for item in part.items], line)
        rendered = format_0p([self._token_term(part) for part in flat])
        raise HoconError("concat_error", f"failed_to_concat {rendered} {self.location(line)}")

    def _token_term(self, node: Any) -> Any:
        if isinstance(node, _Field):
            return Tuple((Binary(node.key), self._token_term(node.value)))
        if isinstance(node, _Arr):
            return [self._token_term(item) for item in node.items]
        if isinstance(node, _Obj):
            return [self._token_term(item) for item in node.fields]
        if isinstance(node, _Prim):
            value = node.value
            if isinstance(value, str):
                return Binary(value)
            return Atom("null") if value is None else value
        return Atom("undefined")

    def _transform(self, fields: list[_Field]) -> ConfigDict:
        result: ConfigDict = {}
        for item in fields:
            if item.value is _UNRESOLVABLE:
                continue
            value = self._plain(item.value)
            if isinstance(value, dict) and isinstance(result.get(item.key), dict):
                result[item.key] = deep_merge(result[item.key], value)
            else:
                result[item.key] = value
        return result

    def _plain(self, node: Any) -> Any:
        if isinstance(node, _Obj):
            return self._transform([item for item in node.fields if isinstance(item, _Field)])
        if isinstance(node, _Arr):
            return [self._plain(item) for item in node.items if item is not _UNRESOLVABLE]
        if isinstance(node, _Prim):
            return node.value
        return None


def _drop_empty_objects(value: Any) -> Any:
    """Before hocon 0.38.0 a key whose value is `{}` disappeared."""
    if isinstance(value, dict):
        return {
            key: _drop_empty_objects(item) for key, item in value.items() if not (isinstance(item, dict) and not item)
        }
    if isinstance(value, list):
        return [_drop_empty_objects(item) for item in value]
    return value


def parse(text: str, dialect: Dialect = DEFAULT_DIALECT, file: str | None = None) -> ConfigDict:
    """hocon:binary/2 (or hocon:files/2 with `file`): the config as a dict, or HoconError."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        tokens = _trans_key(_rm_trailing_comma(scan(text, dialect)), dialect)
    except HoconError as error:
        error.file = file if error.kind in ("scan_error", "parse_error") else error.file
        raise
    if not tokens:
        return {}
    try:
        root = _Parser(tokens, dialect).document()
    except HoconError as error:
        error.file = file
        raise
    result = _Evaluator(file).evaluate(root)
    return result if dialect.keeps_empty_objects else _drop_empty_objects(result)


def parse_env_value(raw: str, dialect: Dialect = DEFAULT_DIALECT) -> Any:
    """hocon_tconf:parse_env/3: the value as HOCON (`fake_key=` + value), else the raw string."""
    if raw == "":
        return ""
    try:
        parsed = parse("fake_key=" + raw, dialect)
    except HoconError:
        return raw
    return parsed.get("fake_key", raw)


# ---------------------------------------------------------------------------------- dict helpers


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> ConfigDict:
    merged: ConfigDict = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_path(config: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_path(config: ConfigDict, path: Iterable[str], value: Any) -> None:
    parts = list(path)
    node = config
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


# ------------------------------------------------------------------------------------------ output

_BARE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value))


def _dump_value(value: Any, indent: int) -> str:
    pad = "  " * indent
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        lines = [f"{pad}  {_key(key)}{_dump_member(item, indent + 1)}" for key, item in value.items()]
        return "{\n" + "\n".join(lines) + f"\n{pad}}}"
    if isinstance(value, list):
        return "[" + ", ".join(_dump_value(item, indent) for item in value) + "]"
    return _scalar(value)


def _dump_member(value: Any, indent: int) -> str:
    if isinstance(value, Mapping):
        return " " + _dump_value(value, indent)
    return " = " + _dump_value(value, indent)


def dump_hocon(config: Mapping[str, Any]) -> str:
    """HOCON text of a config dict (strings always quoted, so it parses back unchanged)."""
    return "\n".join(f"{_key(key)}{_dump_member(value, 0)}" for key, value in config.items()) + "\n"


@dataclass
class EnvOverlay:
    """EMQX_* variables as hocon_tconf applies them: the overlay, and the names it warns about."""

    overlay: ConfigDict = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)


ENV_PREFIX = "EMQX_"
