"""HOCON helpers for EMQX configuration: parse with positions, dump, diff, restart-vs-live keys,
listener and dashboard ports (pure).

pyhocon is imported inside the functions that need it, so importing this module stays cheap.
Parsed configuration is plain JSON-like data: dicts, lists, str, int, float, bool, None.
Durations and byte sizes (`15s`, `1MB`) stay strings, as EMQX's own schema reads them.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_emqx.domain.versions import Version

Config = dict[str, Any]

DEFAULT_DASHBOARD_PORT = 18083

# EMQX's schema defaults for the four standard MQTT listeners.
DEFAULT_LISTENERS: dict[tuple[str, str], int] = {
    ("tcp", "default"): 1883,
    ("ssl", "default"): 8883,
    ("ws", "default"): 8083,
    ("wss", "default"): 8084,
}
LISTENER_PROTOCOLS = {"tcp": "TCP", "ssl": "TCP", "ws": "TCP", "wss": "TCP", "quic": "UDP"}
GATEWAY_UDP_LISTENER_TYPES = {"udp", "dtls"}

DASHBOARD_HTTP_BIND = "dashboard.listeners.http.bind"


class HoconError(ValueError):
    """Invalid HOCON, with the 1-based line and column where parsing failed."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.message = message
        self.line = line
        self.column = column


# Parsing -------------------------------------------------------------------------------------

_pyhocon_adapted = False
# pyhocon switches pyparsing's global default whitespace while it builds its grammar, so two
# threads parsing at once (kopf runs sync handlers in threads) could corrupt each other's grammar.
_parse_lock = threading.Lock()


def _adapt_pyhocon() -> None:
    """Make pyhocon read configuration the way EMQX needs, and without I/O.

    Two process-wide adjustments to pyhocon's parser module, applied once (kubectl-emqx is its only
    user): durations stay strings (pyhocon would turn `15s` into a relativedelta that cannot be
    written back unchanged), and `include` never reads a file or URL (configuration comes from users
    of the cluster; the operator must not fetch anything on their behalf).
    """
    global _pyhocon_adapted
    if _pyhocon_adapted:
        return
    from pyhocon import config_parser
    from pyparsing import NoMatch

    class _NoIncludeFactory(config_parser.ConfigFactory):
        @classmethod
        def parse_file(cls, *args: Any, **kwargs: Any) -> Any:
            raise _IncludeRefused()

        @classmethod
        def parse_URL(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 - pyhocon's name
            raise _IncludeRefused()

    config_parser.get_period_expr = NoMatch
    config_parser.ConfigFactory = _NoIncludeFactory
    _pyhocon_adapted = True


class _IncludeRefused(Exception):
    pass


_INCLUDE_STATEMENT = re.compile(r'(?:^|[\s{,])(include)\s*(?:"|url\s*\(|file\s*\(|package\s*\(|required\s*\()', re.M)


def _line_and_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def parse(text: str, *, remember: bool = True) -> Config:
    """HOCON text -> plain dict. Raises HoconError (with line and column) for invalid input.

    Substitutions (`${VAR}`) are kept as the literal string "${VAR}": EMQX resolves them from its
    own environment, which the operator does not share. Results are cached by text (the operator
    parses the same configuration on every pass, and pyhocon rebuilds its grammar each time);
    `remember=False` for text read once in a while, such as EMQX's whole live configuration, whose
    trees would crowd out the small ones that are parsed on every pass.
    """
    if not remember:
        return _parse_cached.__wrapped__(text)  # a fresh tree nobody else holds
    return copy.deepcopy(_parse_cached(text))


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str) -> Config:
    import pyparsing
    from pyhocon import config_parser
    from pyhocon.exceptions import ConfigException

    try:
        with _parse_lock:
            _adapt_pyhocon()
            tree = config_parser.ConfigParser.parse(text, resolve=False, unresolved_value=config_parser.NO_SUBSTITUTION)
            _keep_substitutions_literal(tree)
    except pyparsing.ParseBaseException as error:
        raise HoconError(_describe_parse_error(error), error.lineno, error.col) from None
    except _IncludeRefused:
        match = _INCLUDE_STATEMENT.search(text)
        line, column = _line_and_column(text, match.start(1)) if match else (1, 1)
        raise HoconError("include is not supported; put the settings into this configuration", line, column) from None
    except RecursionError:
        raise HoconError("nested too deeply (more than about 40 levels of objects or arrays)", 1, 1) from None
    except ConfigException as error:
        raise HoconError(str(error), 1, 1) from None
    if not isinstance(tree, Mapping):
        raise HoconError("the configuration must be an object, not a list", 1, 1)
    return _plain(tree)


def _keep_substitutions_literal(tree: Any) -> None:
    from pyhocon import config_parser

    parser = config_parser.ConfigParser
    for substitution in parser._find_substitutions(tree):
        marker = "?" if substitution.optional else ""
        parser._do_substitute(substitution, f"${{{marker}{substitution.variable}}}", False)
    parser._final_fixup(tree)


def _describe_parse_error(error: Any) -> str:
    message = str(getattr(error, "msg", "") or "syntax error")
    found = error.line[error.col - 1 : error.col] if error.line and 0 < error.col <= len(error.line) else ""
    if message.startswith("Expected {") or len(message) > 160:  # pyparsing printing its grammar
        return f"unexpected {found!r}" if found else "syntax error"
    if message.startswith("Expected end of text"):
        # pyparsing gives up at the first character no statement can start with.
        if not found:
            return "unexpected end of input"
        return f"unexpected {found!r} (unbalanced braces or brackets, or an unterminated string?)"
    if found and "found" not in message:
        message += f", found {found!r}"
    return message


def _plain(value: Any) -> Any:
    from pyhocon.config_tree import ConfigTree, NoneValue

    if isinstance(value, ConfigTree):
        return {_unquote_key(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, NoneValue) or value is None:
        return None
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    # pyhocon leaves \uXXXX escapes undecoded; dump() writes only these two.
    return text.replace("\\u2028", "\u2028").replace("\\u2029", "\u2029") if "\\u202" in text else text


def _unquote_key(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] == '"':
        return str(json.loads(key))
    return key


def parse_value(text: str) -> Any:
    """A value as typed on a command line (`config set key=value`) -> its HOCON value.

    Numbers and booleans become numbers and booleans, `null` None, "quoted" text a string,
    `[...]` / `{...}` a list / object, anything else (durations, sizes, addresses) a string.
    """
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if stripped.lower() == "null":
        return None
    if re.fullmatch(r"[+-]?\d+", stripped):
        return int(stripped)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", stripped):
        return float(stripped)
    if stripped[:1] in ('"', "[", "{"):
        prefix = "value = "
        try:
            return parse(prefix + stripped)["value"]
        except HoconError as error:
            column = error.column - len(prefix) if error.line == 1 else error.column
            raise HoconError(error.message, error.line, max(column, 1)) from None
    return text


# Dumping -------------------------------------------------------------------------------------

# What EMQX's HOCON scanner (emqx/hocon, hocon_scanner.xrl, the same rules in every EMQX 5 release)
# reads as one unquoted string: a letter, then letters, digits, `_` and `-` (it allows a few more
# characters; we quote those); and the exact byte-size and duration tokens (`1MB`, `15s`, `100ms`).
# Anything else (`_json`, `1.5MB`, `10abc`) is quoted, which HOCON reads back as the same text.
_BARE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_BARE_STRING = re.compile(r"[A-Za-z][A-Za-z0-9_-]*|[0-9]+(?:kb|KB|mb|MB|gb|GB|ms|MS|d|D|h|H|m|M|s|S)")
_KEYWORDS = ("true", "false", "null", "include")
_SUBSTITUTION = re.compile(r"\$\{\??[A-Za-z][A-Za-z0-9_.@%|-]*\}")


def dump(config: Mapping[str, Any]) -> str:
    """Plain dict -> HOCON text (deterministic; `parse(dump(c)) == c`)."""
    lines: list[str] = []
    _dump_members(config, 0, lines)
    return "\n".join(lines) + ("\n" if lines else "")


def _dump_members(config: Mapping[str, Any], depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    for key, value in config.items():
        rendered_key = _render_key(str(key))
        if isinstance(value, Mapping) and value:
            lines.append(f"{indent}{rendered_key} {{")
            _dump_members(value, depth + 1, lines)
            lines.append(f"{indent}}}")
        elif isinstance(value, list | tuple) and value and not _flat_safe(value):
            lines.append(f"{indent}{rendered_key} = [")
            _dump_items(value, depth + 1, lines)
            lines.append(f"{indent}]")
        elif "\\" in rendered_key:  # nothing quoted may follow it on its line (see _flat_safe)
            lines.append(f"{indent}{rendered_key} =")
            lines.append(f"{indent}  {render_value(value)}")
        else:
            lines.append(f"{indent}{rendered_key} = {render_value(value)}")


def _dump_items(items: Any, depth: int, lines: list[str]) -> None:
    """Array elements one per line, comma-separated (EMQX's parser wants the commas)."""
    indent = "  " * depth
    for index, item in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if isinstance(item, Mapping) and item:
            lines.append(f"{indent}{{")
            _dump_members(item, depth + 1, lines)
            lines.append(f"{indent}}}{comma}")
        elif isinstance(item, list | tuple) and item and not _flat_safe(item):
            lines.append(f"{indent}[")
            _dump_items(item, depth + 1, lines)
            lines.append(f"{indent}]{comma}")
        else:
            lines.append(f"{indent}{render_value(item)}{comma}")


def _flat_safe(items: Any) -> bool:
    """Whether a list can be written on one line. EMQX's scanner reads a quoted string that ends in a
    backslash together with the rest of its line up to the next quote (its string rule is ambiguous
    and the longest match wins), so nothing may follow such a string on its line: lists holding
    objects, lists, or strings with a backslash are written one element per line."""
    return all(not isinstance(item, Mapping | list | tuple) and not (isinstance(item, str) and "\\" in item)
               for item in items)


def _render_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) and key.lower() not in _KEYWORDS else _quote(key)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
            "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _quote(text: str) -> str:
    """A HOCON quoted string with the escapes both EMQX's scanner and pyhocon read back; every other
    character is written as itself (EMQX also ends lines at U+2028/U+2029, so those are escaped)."""
    return '"' + "".join(_ESCAPES.get(char, char) for char in text) + '"'


def _render_float(value: float) -> str:
    """EMQX's scanner reads an exponent only after a fraction (`1.0e-05`, not `1e-05`)."""
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


def render_value(value: Any) -> str:
    """One value as HOCON (single line)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"HOCON has no representation for {value}")
        return _render_float(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_render_key(str(k))} = {render_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_value(item) for item in value) + "]"
    text = str(value)
    if _SUBSTITUTION.fullmatch(text):
        return text
    if _BARE_STRING.fullmatch(text) and not text.lower().startswith(_KEYWORDS):
        return text
    return _quote(text)


# Paths, diff, merge --------------------------------------------------------------------------


_PATH_SEGMENT = re.compile(r'"((?:[^"\\]|\\.)*)"|([^."]+)')


def split_path(path: str) -> list[str]:
    """'a.b."c.d"' -> ['a', 'b', 'c.d']. Raises ValueError for malformed paths."""
    segments: list[str] = []
    position = 0
    while True:
        match = _PATH_SEGMENT.match(path, position)
        bare = match.group(2).strip() if match and match.group(2) is not None else None
        if not match or bare == "":
            raise ValueError(f"not a configuration path: {path!r} (expected e.g. mqtt.max_packet_size)")
        segment = bare if bare is not None else json.loads(f'"{match.group(1)}"')
        if any(ord(char) < 32 or ord(char) == 127 for char in segment):
            raise ValueError(f"not a configuration path: {path!r} holds a control character")
        segments.append(segment)
        position = match.end()
        if position == len(path):
            return segments
        if path[position] != ".":
            raise ValueError(f"not a configuration path: {path!r} (expected e.g. mqtt.max_packet_size)")
        position += 1


def _render_path_segment(segment: str) -> str:
    return segment if "." not in segment and '"' not in segment else json.dumps(segment)


def join_path(segments: Iterable[str]) -> str:
    return ".".join(_render_path_segment(segment) for segment in segments)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}. Lists and empty objects are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{_render_path_segment(key)}" if prefix else _render_path_segment(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


@dataclass(frozen=True)
class ConfigChange:
    path: str
    old: Any  # None when the path was absent
    new: Any  # None when the path is removed


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ConfigChange]:
    """Leaf-level differences, sorted by path."""
    old_flat, new_flat = flatten(old), flatten(new)
    return [
        ConfigChange(path, old_flat.get(path), new_flat.get(path))
        for path in sorted(old_flat.keys() | new_flat.keys())
        if path not in old_flat or path not in new_flat or old_flat[path] != new_flat[path]
    ]


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Config:
    """HOCON object merge: objects merge recursively, anything else in `override` wins."""
    merged: Config = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_path(config: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = config
    for segment in split_path(path):
        if not isinstance(node, Mapping) or segment not in node:
            return default
        node = node[segment]
    return node


# Restart-relevant vs live --------------------------------------------------------------------


def needs_restart(path: str, version: Version | None = None) -> bool:
    """Whether a change at `path` only takes effect when nodes restart (on EMQX `version`; None: the
    newest rules).

    EMQX refuses node.*, rpc.* and cluster.* at runtime (`cluster.links` is changeable from 5.8);
    the dashboard HTTP port is baked into the pods (container port, probes), so it needs new pods
    as well. Every other dashboard setting is applied live.
    """
    segments = split_path(path)
    root = segments[0]
    if root in ("node", "rpc"):
        return True
    if root == "cluster":
        return len(segments) == 1 or segments[1] != "links" or not _links_live(version)
    return _is_prefix_either_way(segments, split_path(DASHBOARD_HTTP_BIND))


def _links_live(version: Version | None) -> bool:
    return version is None or version >= (5, 8, 0)


def _is_prefix_either_way(segments: list[str], target: list[str]) -> bool:
    shorter = min(len(segments), len(target))
    return segments[:shorter] == target[:shorter]


def restart_keys(paths: Iterable[str], version: Version | None = None) -> list[str]:
    """The paths (e.g. from diff()) that need a rolling restart, in input order."""
    return [path for path in paths if needs_restart(path, version)]


def live_keys(paths: Iterable[str], version: Version | None = None) -> list[str]:
    """The paths EMQX applies at runtime (PUT /api/v5/configs)."""
    return [path for path in paths if not needs_restart(path, version)]


def restart_relevant_subset(config: Mapping[str, Any], version: Version | None = None) -> Config:
    """Exactly the part of `config` that needs a restart to change (hash it to detect such changes)."""
    subset: Config = {}
    for root in ("node", "rpc"):
        if root in config:
            subset[root] = copy.deepcopy(config[root])
    cluster = config.get("cluster")
    if isinstance(cluster, Mapping):
        kept = {key: copy.deepcopy(value) for key, value in cluster.items()
                if key != "links" or not _links_live(version)}
        if kept:
            subset["cluster"] = kept
    elif "cluster" in config:
        subset["cluster"] = copy.deepcopy(cluster)
    bind = get_path(config, DASHBOARD_HTTP_BIND)
    if bind is not None:
        subset["dashboard"] = {"listeners": {"http": {"bind": bind}}}
    return subset


def live_subset(config: Mapping[str, Any], version: Version | None = None) -> Config:
    """`config` without what needs a restart: what `PUT /api/v5/configs` can load (empty objects left
    behind by the removal are dropped too)."""
    live: Config = {}
    for root, value in config.items():
        if root in ("node", "rpc"):
            continue
        if root == "cluster":
            if isinstance(value, Mapping) and _links_live(version) and "links" in value:
                live["cluster"] = {"links": copy.deepcopy(value["links"])}
            continue
        if root == "dashboard" and isinstance(value, Mapping):
            value = _without_path(value, split_path(DASHBOARD_HTTP_BIND)[1:])
            if not value:
                continue
        live[root] = copy.deepcopy(value)
    return live


def _without_path(config: Mapping[str, Any], segments: list[str]) -> Config:
    result: Config = {}
    for key, value in config.items():
        if key != segments[0]:
            result[key] = copy.deepcopy(value)
        elif len(segments) > 1 and isinstance(value, Mapping):
            inner = _without_path(value, segments[1:])
            if inner:
                result[key] = inner
    return result


def stable_hash(config: Any) -> str:
    """Short hash of JSON-like data, independent of key order."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Ports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenerPort:
    name: str  # e.g. "tcp-default", "coap-udp-default"; a valid Service port name
    protocol: str  # "TCP" or "UDP"
    port: int


def bind_port(bind: Any) -> int | None:
    """Port of a bind value: 1883, "1883", ":1883", "0.0.0.0:1883", "[::]:1883". None if unreadable."""
    if isinstance(bind, bool):
        return None
    if isinstance(bind, int):
        return bind if 0 <= bind <= 65535 else None
    if not isinstance(bind, str):
        return None
    text = bind.strip()
    port_text = text.rsplit(":", 1)[-1] if ":" in text else text
    if not port_text.isdigit():
        return None
    port = int(port_text)
    return port if 0 <= port <= 65535 else None


def _enabled(settings: Mapping[str, Any]) -> bool:
    return settings.get("enable", True) not in (False, "false")


def listener_ports(config: Mapping[str, Any]) -> list[ListenerPort]:
    """Enabled MQTT and gateway listeners of a configuration, with EMQX's defaults for the four
    standard listeners where the configuration does not override them. Sorted by name.

    Disabled listeners (`enable = false`) and `bind = 0` are left out. Two listeners on the same
    port and protocol keep only the first (a Service cannot carry both).
    """
    found: list[tuple[str, str, int]] = []
    listeners = config.get("listeners")
    listeners = listeners if isinstance(listeners, Mapping) else {}
    seen_standard: set[tuple[str, str]] = set()
    for listener_type, named in listeners.items():
        if listener_type not in LISTENER_PROTOCOLS or not isinstance(named, Mapping):
            continue
        for listener_name, settings in named.items():
            if not isinstance(settings, Mapping):
                continue
            seen_standard.add((listener_type, listener_name))
            if not _enabled(settings):
                continue
            default_port = DEFAULT_LISTENERS.get((listener_type, listener_name))
            port = bind_port(settings.get("bind", default_port))
            if port:
                found.append((f"{listener_type}-{listener_name}", LISTENER_PROTOCOLS[listener_type], port))
    for (listener_type, listener_name), port in DEFAULT_LISTENERS.items():
        if (listener_type, listener_name) not in seen_standard:
            found.append((f"{listener_type}-{listener_name}", "TCP", port))

    gateways = config.get("gateway")
    for gateway_name, gateway in gateways.items() if isinstance(gateways, Mapping) else ():
        if not isinstance(gateway, Mapping) or not _enabled(gateway):
            continue
        gateway_listeners = gateway.get("listeners")
        if not isinstance(gateway_listeners, Mapping):
            continue
        for listener_type, named in gateway_listeners.items():
            if not isinstance(named, Mapping):
                continue
            protocol = "UDP" if listener_type in GATEWAY_UDP_LISTENER_TYPES else "TCP"
            for listener_name, settings in named.items():
                if isinstance(settings, Mapping) and _enabled(settings):
                    port = bind_port(settings.get("bind"))
                    if port:
                        found.append((f"{gateway_name}-{listener_type}-{listener_name}", protocol, port))

    ports: list[ListenerPort] = []
    used_names: set[str] = set()
    used_ports: set[tuple[str, int]] = set()
    for raw_name, protocol, port in sorted(found):
        if (protocol, port) in used_ports:
            continue
        name = _unique_port_name(raw_name, used_names)
        used_names.add(name)
        used_ports.add((protocol, port))
        ports.append(ListenerPort(name, protocol, port))
    return sorted(ports, key=lambda p: p.name)


def _unique_port_name(raw_name: str, used: set[str]) -> str:
    """A DNS label (Service port names must be one) derived from a listener id."""
    base = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw_name.lower())).strip("-")[:63].rstrip("-") or "listener"
    name, counter = base, 2
    while name in used:
        suffix = f"-{counter}"
        name = base[: 63 - len(suffix)].rstrip("-") + suffix
        counter += 1
    return name


def dashboard_port(config: Mapping[str, Any]) -> int:
    """The dashboard/REST API HTTP port (default 18083); 0 when the HTTP listener is disabled."""
    http = get_path(config, "dashboard.listeners.http")
    if isinstance(http, Mapping) and not _enabled(http):
        return 0
    bind = get_path(config, DASHBOARD_HTTP_BIND)
    if bind is None:
        return DEFAULT_DASHBOARD_PORT
    port = bind_port(bind)
    return DEFAULT_DASHBOARD_PORT if port is None else port


# Editing -------------------------------------------------------------------------------------


def set_path(config: str | Mapping[str, Any], path: str, value_text: str) -> Any:
    """`config set path=value`: returns the configuration with `path` set to the typed value.

    A dict comes back as a new dict. Text comes back as text with the user's comments and layout
    kept: a top-level `path = ...` line is rewritten in place, otherwise one line is appended
    (later assignments win in HOCON).
    """
    segments = split_path(path)
    value = parse_value(value_text)
    if isinstance(config, Mapping):
        updated = copy.deepcopy(dict(config))
        node = updated
        for segment in segments[:-1]:
            child = node.get(segment)
            if not isinstance(child, dict):
                child = {}
                node[segment] = child
            node = child
        node[segments[-1]] = value
        return updated

    text = config
    parse(text)  # refuse to edit text that is already invalid
    line = f"{join_path(segments)} = {render_value(value)}"
    rewritten = _rewrite_top_level_assignment(text, segments, line)
    if rewritten is not None and get_path(parse(rewritten), join_path(segments)) == value:
        return rewritten
    separator = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{separator}{line}\n"


def _rewrite_top_level_assignment(text: str, segments: list[str], new_line: str) -> str | None:
    """Replace the last single-line `path = value` statement at nesting depth 0, if any."""
    lines = text.split("\n")
    depths = _depth_at_line_starts(text)
    key_pattern = re.compile(
        r"^\s*" + r"\s*\.\s*".join(_segment_pattern(s) for s in segments) + r"\s*[=:]\s*(?P<value>.*)$"
    )
    for index in range(len(lines) - 1, -1, -1):
        match = key_pattern.match(lines[index])
        if not match or depths[index] != 0:
            continue
        value_part = match.group("value").strip()
        if not value_part or value_part[0] in "{[" or value_part.startswith('"""') or value_part.endswith("\\"):
            return None
        lines[index] = new_line
        return "\n".join(lines)
    return None


def _segment_pattern(segment: str) -> str:
    quoted = re.escape(json.dumps(segment))
    return f"(?:{re.escape(segment)}|{quoted})" if _BARE_KEY.fullmatch(segment) else quoted


def select_roots(text: str, roots: Iterable[str]) -> str:
    """The top-level statements of HOCON `text` whose key starts with one of `roots` (`listeners {...}`,
    `listeners.tcp.default.bind = ...`), as text; everything else is skipped unparsed. EMQX's whole
    configuration is large and parsing it costs far more than scanning it; the operator shows a few
    roots. `parse(select_roots(t, r))` equals `parse(t)` restricted to `r` (tests/unit/test_hocon.py)."""
    wanted = set(roots)
    kept = [chunk for chunk in _top_level_statements(text) if _first_key_segment(chunk) in wanted]
    return "\n".join(kept) + ("\n" if kept else "")


def _top_level_statements(text: str) -> list[str]:
    """Split `text` into its depth-0 statements (skipping strings and comments while counting braces)."""
    statements: list[str] = []
    depth, index, length = 0, 0, len(text)
    start: int | None = None
    while index < length:
        char = text[index]
        if start is None and depth == 0:
            if char in " \t\r\n,":
                index += 1
                continue
            if char == "#" or text.startswith("//", index):
                newline = text.find("\n", index)
                index = length if newline < 0 else newline
                continue
            start = index
        skipped = _skip_string_or_comment(text, index)
        if skipped is not None:
            index = skipped
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth = max(0, depth - 1)
            if depth == 0 and start is not None and char == "}" and _ends_statement(text, index + 1):
                statements.append(text[start:index + 1])
                start = None
        elif char in "\n," and depth == 0 and start is not None:
            statements.append(text[start:index])
            start = None
        index += 1
    if start is not None:
        statements.append(text[start:])
    return statements


def _skip_string_or_comment(text: str, index: int) -> int | None:
    """Where the string (triple-quoted or quoted) or comment (# or //, up to the newline) that starts
    at `index` ends; None when none starts there. An unterminated quoted string ends at its line's end."""
    length = len(text)
    if text.startswith('"""', index):
        end = text.find('"""', index + 3)
        index = length if end < 0 else end + 3
        while index < length and text[index] == '"':  # a closing """ may end in more quotes
            index += 1
        return index
    if text[index] == '"':
        index += 1
        while index < length and text[index] not in '"\n':
            index += 2 if text[index] == "\\" else 1
        return index + 1 if index < length and text[index] == '"' else index
    if text[index] == "#" or text.startswith("//", index):
        newline = text.find("\n", index)
        return length if newline < 0 else newline
    return None


def _ends_statement(text: str, index: int) -> bool:
    """After a depth-0 closing brace: only blanks, a comment or a separator until the line ends
    (otherwise the value goes on, e.g. `a = {x = 1} {y = 2}` merges two objects)."""
    rest = re.match(r"[ \t]*(?:[\r\n,]|#|//|$)", text[index:index + 64])
    return rest is not None


def _first_key_segment(statement: str) -> str:
    stripped = statement.lstrip()
    if stripped.startswith('"'):
        match = re.match(r'"((?:[^"\\]|\\.)*)"', stripped)
        if match is None:
            return ""
        try:
            return str(json.loads(f'"{match.group(1)}"'))
        except ValueError:
            return match.group(1)
    match = re.match(r"[^.=:{\s+\[]+", stripped)
    return match.group(0) if match else ""


def _depth_at_line_starts(text: str) -> list[int]:
    """Brace/bracket nesting depth at the start of every line, skipping strings and comments."""
    depths = [0]
    depth = 0
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        skipped = _skip_string_or_comment(text, index)
        if skipped is not None:
            depths.extend([depth] * text.count("\n", index, skipped))  # lines inside a """ string
            index = skipped
            continue
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth = max(0, depth - 1)
        elif char == "\n":
            depths.append(depth)
        index += 1
    return depths
