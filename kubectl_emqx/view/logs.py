"""Merged node logs (pure): one record per log line, ordering by the kubelet's timestamps, and the
text / JSON renderings `kubectl emqx logs` prints.

Each line is fetched with `timestamps=true`, so it starts with the time the container runtime
received it (RFC 3339 with nanoseconds): that orders lines across nodes, whatever the format EMQX
writes (text or JSON, and the lines EMQX prints without a time of its own). A finished log is sorted
as a whole; a followed one goes through `Reorder`, which holds lines for a short window so that
bursts arriving from several nodes at once come out in time order.
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
from collections.abc import Iterable
from json.encoder import encode_basestring
from typing import NamedTuple

import click

# A level as EMQX's text formatter writes it after the time: `2024-06-12T08:13:20.123456+00:00 [warning] ...`.
_LEVEL = re.compile(r"^\S+ \[([a-z]+)\] ")
PALETTE = ("cyan", "green", "yellow", "blue", "magenta", "bright_cyan", "bright_green", "bright_yellow",
           "bright_blue", "bright_magenta")


class LogRecord(NamedTuple):
    """One log line. Ordered by (key, seq): the time, then arrival (seq is unique)."""

    key: str  # the kubelet's timestamp, normalised to fixed width (sorts as text); "" when none
    seq: int  # arrival order, for equal timestamps
    time: str  # the kubelet's timestamp as sent ("" when the line had none)
    pod: str
    node: str | None
    role: str
    text: str


_counter = itertools.count()
_quote = encode_basestring  # a JSON string literal (the json module's C encoder, as ensure_ascii=False)
_FIXED_WIDTH = len("2026-03-01T10:00:00.123456789Z")


def record(raw: str, pod: str, node: str | None, role: str) -> LogRecord:
    """A line as the API sends it with timestamps=true: `<RFC3339Nano> <text>`."""
    stamp, sep, text = raw.partition(" ")
    if not sep or len(stamp) < 20 or stamp[10] != "T" or stamp[4] != "-":
        stamp, text = "", raw
    if text.endswith("\r"):
        text = text[:-1]
    return LogRecord(sort_key(stamp), next(_counter), stamp, pod, node, role, text)


def sort_key(stamp: str) -> str:
    """RFC 3339 UTC times as fixed-width text (nine fraction digits), so that they sort as strings
    whatever the number of fraction digits sent. The kubelet sends nine already (RFC3339NanoFixed)."""
    if len(stamp) == _FIXED_WIDTH and stamp[19] == "." and stamp[-1] == "Z":
        return stamp
    if not stamp:
        return ""
    body = stamp.rstrip("Z")
    seconds, _, fraction = body.partition(".")
    digits = "".join(itertools.takewhile(str.isdigit, fraction))
    return f"{seconds}.{(digits + '000000000')[:9]}Z"


def level(text: str) -> str | None:
    """The level of an EMQX text-format line, or of a JSON-format one; None for other lines."""
    match = _LEVEL.match(text)
    if match:
        return match.group(1)
    if text.startswith("{"):
        try:
            value = json.loads(text).get("level")
        except (ValueError, AttributeError):
            return None
        return str(value) if value else None
    return None


def merged(records: Iterable[LogRecord]) -> list[LogRecord]:
    return sorted(records)


class Reorder:
    """Holds followed lines for `window` seconds and releases them in timestamp order."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._heap: list[tuple[LogRecord, float]] = []

    def push(self, item: LogRecord, arrived: float) -> None:
        heapq.heappush(self._heap, (item, arrived))

    def due(self, now: float) -> list[LogRecord]:
        """Lines to print now, in time order: the earliest held line goes once it has waited `window`
        (a line that arrived late but is earlier in time holds the later ones back until then)."""
        out = []
        while self._heap and now - self._heap[0][1] >= self.window:
            out.append(heapq.heappop(self._heap)[0])
        return out

    def drain(self) -> list[LogRecord]:
        return [heapq.heappop(self._heap)[0] for _ in range(len(self._heap))]

    def __len__(self) -> int:
        return len(self._heap)


class Formatter:
    """`<pod>  <text>` with the pod padded to the widest seen and coloured per pod; or one JSON
    object per line (time, pod, node, role, level, message)."""

    def __init__(self, *, color: bool, timestamps: bool, output: str | None) -> None:
        self.color = color
        self.timestamps = timestamps
        self.output = output
        self.width = 0
        self._colors: dict[str, str] = {}
        self._prefixes: dict[str, str] = {}
        self._json_fields: dict[str, str] = {}

    def know(self, pods: Iterable[str]) -> None:
        for pod in pods:
            if pod in self._colors:
                continue
            self._colors[pod] = PALETTE[len(self._colors) % len(PALETTE)]
            if len(pod) > self.width:
                self.width = len(pod)
                self._prefixes.clear()

    def _prefix(self, pod: str) -> str:
        prefix = self._prefixes.get(pod)
        if prefix is None:
            self.know([pod])
            prefix = pod.ljust(self.width)
            if self.color:
                prefix = click.style(prefix, fg=self._colors[pod])
            self._prefixes[pod] = prefix
        return prefix

    def line(self, item: LogRecord) -> str:
        if self.output == "json":
            fields = self._json_fields.get(item.pod)
            if fields is None:
                fields = json.dumps({"pod": item.pod, "node": item.node, "role": item.role})[1:-1]
                self._json_fields[item.pod] = fields
            found = level(item.text)
            return (f'{{"time": {_quote(item.time) if item.time else "null"}, {fields}, '
                    f'"level": {_quote(found) if found else "null"}, "message": {_quote(item.text)}}}')
        if self.timestamps and item.time:
            return f"{self._prefix(item.pod)} {item.time} {item.text}"
        return f"{self._prefix(item.pod)} {item.text}"
