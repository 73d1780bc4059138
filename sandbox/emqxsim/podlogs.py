"""Container log files of simulated EMQX pods, as a container runtime writes them (CRI lines).

Layout (what `kubectl logs` reads through kwok's Logs resources, and what `kubectl emqx logs` may read
directly): `<root>/<namespace>_<pod>_<uid>/emqx/<restartCount>.log`, one file per container start; the
previous container's file is kept for `kubectl logs --previous` (the kubelet keeps one), older ones are
removed. Each line is `<RFC3339Nano> stdout F <text>` (cri-client pkg/logs, the containerd format).

The text is EMQX's console output: the logger's text formatter (`emqx_logger_textfmt`, RFC3339 time with
microseconds and the system offset, `[level]`, then `key: value` pairs with `msg` first) for records at or
above `log.console.level` (default warning), and the lines EMQX prints with `io:format(user, ...)`
(listener start lines, "... is running now!", the terminate-signal line) with neither time nor level.
"""

from __future__ import annotations

import datetime
import os
import shutil
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
DEFAULT_CONSOLE_LEVEL = "warning"
CONTAINER = "emqx"
# kubelet: terminationMessagePolicy FallbackToLogsOnError takes the last 80 lines, at most 2048 bytes
# (pkg/kubelet/container/runtime.go MaxContainerTerminationMessageLogLines/Length @v1.37.2).
TERMINATION_LOG_LINES = 80
TERMINATION_LOG_BYTES = 2048


def rfc3339_nano(ts: float) -> str:
    """The CRI log timestamp: RFC3339Nano in UTC (containerd writes time.RFC3339Nano)."""
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    nanos = int(round((ts - int(ts)) * 1e9)) % 1_000_000_000
    text = f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{nanos:09d}".rstrip("0").rstrip(".")
    return text + "Z"


def cri_line(ts: float, text: str, stream: str = "stdout") -> str:
    """One full (`F`) CRI log line; a text with newlines becomes several lines, as the runtime splits them."""
    stamp = rfc3339_nano(ts)
    return "".join(f"{stamp} {stream} F {part}\n" for part in (text.split("\n") if text else [""]))


def emqx_time(ts: float) -> str:
    """`calendar:system_time_to_rfc3339(Ts, [{unit, microsecond}, {offset, ""}])` with a UTC system clock."""
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def format_value(value: Any) -> str:
    """`~0p`-like rendering of report values: atoms bare, node names quoted, strings raw."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'" if "@" in value else value
    if isinstance(value, Mapping):
        return "#{" + ",".join(f"{key} => {format_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    return str(value)


def report_line(ts: float, level: str, msg: str, fields: Iterable[tuple[str, Any]] = ()) -> str:
    """A structured (`?SLOG`) record as emqx_logger_textfmt prints it (5.6+: no mfa)."""
    parts = [f"msg: {msg}"] + [f"{key}: {format_value(value)}" for key, value in fields]
    return f"{emqx_time(ts)} [{level}] {', '.join(parts)}"


def text_line(ts: float, level: str, text: str) -> str:
    """A format-string (non-report) record: printed as is after the level."""
    return f"{emqx_time(ts)} [{level}] {text}"


def visible(level: str, console_level: str) -> bool:
    try:
        return LEVELS.index(level) >= LEVELS.index(console_level)
    except ValueError:
        return True


@dataclass(frozen=True)
class LogLine:
    """What EMQX prints: `level` None for `io:format(user, ...)` lines (always shown, no time or level)."""

    text: str
    level: str | None = None
    report: tuple[tuple[str, Any], ...] | None = None
    stream: str = "stdout"

    def render(self, ts: float) -> str:
        if self.level is None:
            return self.text
        if self.report is not None:
            return report_line(ts, self.level, self.text, self.report)
        return text_line(ts, self.level, self.text)


def ulog(text: str, stream: str = "stdout") -> LogLine:
    return LogLine(text, stream=stream)


def slog(level: str, msg: str, **fields: Any) -> LogLine:
    return LogLine(msg, level, tuple(fields.items()))


def flog(level: str, text: str) -> LogLine:
    return LogLine(text, level)


class ContainerLogs:
    """The log files of one pod's `emqx` container across restarts."""

    def __init__(self, root: Path, namespace: str, pod: str, uid: str):
        self.directory = root / f"{namespace}_{pod}_{uid}" / CONTAINER
        self.restart_count: int | None = None
        self._lock = threading.Lock()

    def path(self, restart_count: int) -> Path:
        return self.directory / f"{restart_count}.log"

    @property
    def current(self) -> Path | None:
        return None if self.restart_count is None else self.path(self.restart_count)

    @property
    def previous(self) -> Path | None:
        if self.restart_count is None or self.restart_count == 0:
            return None
        return self.path(self.restart_count - 1)

    def start(self, restart_count: int) -> Path:
        """A new container: a new, empty file; the one before it stays, older ones go."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.restart_count = restart_count
            path = self.path(restart_count)
            path.touch()
            for old in self.directory.glob("*.log"):
                stem = old.stem
                if stem.isdigit() and int(stem) < restart_count - 1:
                    old.unlink(missing_ok=True)
            return path

    def write(self, lines: Iterable[LogLine], ts: float, console_level: str = DEFAULT_CONSOLE_LEVEL) -> None:
        with self._lock:
            path = self.current
            if path is None:
                return
            text = "".join(
                cri_line(ts, line.render(ts), line.stream)
                for line in lines
                if line.level is None or visible(line.level, console_level)
            )
            if text:
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(text)

    def tail_message(self) -> str:
        """The termination message FallbackToLogsOnError would give: the current file's last lines."""
        with self._lock:
            path = self.current
            if path is None or not path.exists():
                return ""
            return termination_message(path.read_text(encoding="utf-8", errors="replace"))

    def remove(self) -> None:
        shutil.rmtree(self.directory.parent, ignore_errors=True)


def termination_message(cri_text: str) -> str:
    """The last 80 lines (at most 2048 bytes) of a container's output, without the CRI prefixes."""
    texts = []
    for line in cri_text.splitlines():
        parts = line.split(" ", 3)
        texts.append(parts[3] if len(parts) == 4 else line)
    message = "\n".join(texts[-TERMINATION_LOG_LINES:])
    data = message.encode()
    if len(data) > TERMINATION_LOG_BYTES:
        message = data[-TERMINATION_LOG_BYTES:].decode("utf-8", "replace")
    return message


def pod_log_root(sandbox_dir: str | os.PathLike[str]) -> Path:
    return Path(sandbox_dir) / "podlogs"
