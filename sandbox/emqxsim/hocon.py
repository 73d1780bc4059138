"""HOCON in and out for the simulator: parse (pyhocon) to plain dicts, dump, deep-merge, env overrides."""

from __future__ import annotations

import copy
import datetime
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

ConfigDict = dict[str, Any]


class HoconParseError(Exception):
    def __init__(self, reason: str, line: int | None = None, column: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


def _duration_text(value: Any) -> str:
    # pyhocon turns "10s" into a (relative)timedelta; EMQX keeps durations as strings.
    if isinstance(value, datetime.timedelta):
        total_ms = int(value.total_seconds() * 1000)
    else:
        total_ms = int(
            ((value.days or 0) * 86400 + (value.hours or 0) * 3600 + (value.minutes or 0) * 60 + (value.seconds or 0))
            * 1000
            + (value.microseconds or 0) // 1000
        )
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if total_ms and total_ms % size == 0:
            return f"{total_ms // size}{unit}"
    return f"{total_ms}ms"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if type(value).__name__ in ("relativedelta", "timedelta"):
        return _duration_text(value)
    return value


def parse_hocon(text: str) -> ConfigDict:
    from pyhocon import ConfigFactory  # lazy: pyhocon/pyparsing import is slow

    try:
        tree = ConfigFactory.parse_string(text, resolve=True)
    except Exception as error:  # pyparsing and pyhocon raise several unrelated types
        reason = str(getattr(error, "msg", None) or error)
        raise HoconParseError(reason, getattr(error, "lineno", None), getattr(error, "col", None)) from None
    result = _plain(tree.as_plain_ordered_dict())
    assert isinstance(result, dict)
    return result


def parse_hocon_value(text: str) -> Any:
    """An env override's value is HOCON; values HOCON cannot parse are taken as plain strings."""
    try:
        return parse_hocon("value = " + text)["value"]
    except (HoconParseError, KeyError):
        return text


_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


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
    return "\n".join(f"{_key(key)}{_dump_member(value, 0)}" for key, value in config.items()) + "\n"


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


ENV_PREFIX = "EMQX_"


def env_overrides(env: Mapping[str, str], known_roots: Iterable[str]) -> tuple[ConfigDict, list[str]]:
    """EMQX_* env vars as a config overlay (`EMQX_` stripped, `__` -> `.`, lower-cased).

    Returns the overlay and the names that were ignored because their root is not in the schema
    (hocon logs those as unknown env vars and boots anyway).
    """
    roots = set(known_roots)
    overlay: ConfigDict = {}
    ignored: list[str] = []
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if path[0] not in roots or not all(path):
            ignored.append(name)
            continue
        set_path(overlay, path, parse_hocon_value(raw))
    return overlay, ignored
