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
from dataclasses import dataclass, field

import click

# A level as EMQX's text formatter writes it after the time: `2024-06-12T08:13:20.123456+00:00 [warning] ...`.
_LEVEL = re.compile(r"^\S+ \[([a-z]+)\] ")
PALETTE = ("cyan", "green", "yellow", "blue", "magenta", "bright_cyan", "bright_green", "bright_yellow",
           "bright_blue", "bright_magenta")


@dataclass(frozen=True, order=True)
class LogRecord:
    key: tuple[str, int]  # (seconds part of the timestamp, nanoseconds): sorts across fraction widths
    seq: int  # arrival order, for equal timestamps
    time: str = field(compare=False)  # the kubelet's timestamp as sent ("" when the line had none)
    pod: str = field(compare=False)
    node: str | None = field(compare=False)
    role: str = field(compare=False)
    text: str = field(compare=False)


_counter = itertools.count()


def record(raw: str, pod: str, node: str | None, role: str) -> LogRecord:
    """A line as the API sends it with timestamps=true: `<RFC3339Nano> <text>`."""
    stamp, sep, text = raw.partition(" ")
    if not sep or not _looks_like_time(stamp):
        stamp, text = "", raw
    return LogRecord(sort_key(stamp), next(_counter), stamp, pod, node, role, text.rstrip("\r"))


def _looks_like_time(text: str) -> bool:
    return len(text) >= 20 and text[4] == "-" and text[10] == "T"


def sort_key(stamp: str) -> tuple[str, int]:
    """RFC 3339 UTC times ordered correctly whatever the number of fraction digits."""
    if not stamp:
        return ("", 0)
    body = stamp.rstrip("Z")
    seconds, _, fraction = body.partition(".")
    digits = "".join(itertools.takewhile(str.isdigit, fraction))
    return (seconds, int((digits + "000000000")[:9]) if digits else 0)


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
    object per line."""

    def __init__(self, *, color: bool, timestamps: bool, output: str | None) -> None:
        self.color = color
        self.timestamps = timestamps
        self.output = output
        self.width = 0
        self._colors: dict[str, str] = {}

    def know(self, pods: Iterable[str]) -> None:
        for pod in pods:
            self.width = max(self.width, len(pod))
            if pod not in self._colors:
                self._colors[pod] = PALETTE[len(self._colors) % len(PALETTE)]

    def line(self, item: LogRecord) -> str:
        if self.output == "json":
            return json.dumps({
                "time": item.time or None, "pod": item.pod, "node": item.node, "role": item.role,
                "level": level(item.text), "message": item.text,
            }, ensure_ascii=False)
        self.know([item.pod])
        prefix = item.pod.ljust(self.width)
        if self.color:
            prefix = click.style(prefix, fg=self._colors[item.pod])
        stamp = f"{item.time} " if self.timestamps and item.time else ""
        return f"{prefix} {stamp}{item.text}"
