"""Status model -> text tables, JSON or YAML; colours; the `--wait` progress view.

Tables are laid out here (`table`), in the layout of tabulate's "plain" format that the plugin
always printed, for every table: importing tabulate cost more than `status` spends on everything
else it prints. yaml is imported inside the function that needs it, so verbs that fail early (or
print help) never load it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from kubectl_emqx.domain.vocabulary import BAD_PHASES, Phase, format_time
from kubectl_emqx.view.status_model import (
    ClusterStatus,
    ClusterSummary,
    Node,
    NodeCounts,
    Progress,
    age_seconds,
    to_data,
)

OUTPUT_FORMATS = ("json", "yaml")
SETTLED_PHASES = frozenset({Phase.READY})
NODE_HEADERS = ("NODE", "ROLE", "STATUS", "VERSION", "OTP", "UPTIME", "CONNECTIONS")
LIST_HEADERS = ("NAME", "NAMESPACE", "IMAGE", "CORES", "REPLICANTS", "STATUS", "AGE")
EVENT_HEADERS = ("LAST SEEN", "TYPE", "REASON", "MESSAGE")


@dataclass(frozen=True)
class Style:
    """Colours on or off; every helper returns the text unchanged when off."""

    color: bool = False

    def _paint(self, text: str, **style: Any) -> str:
        return click.style(text, **style) if self.color else text

    def heading(self, text: str) -> str:
        return self._paint(text, bold=True)

    def good(self, text: str) -> str:
        return self._paint(text, fg="green")

    def warn(self, text: str) -> str:
        return self._paint(text, fg="yellow")

    def bad(self, text: str) -> str:
        return self._paint(text, fg="red")

    def phase(self, phase: str) -> str:
        if phase in SETTLED_PHASES:
            return self.good(phase)
        if phase in BAD_PHASES:
            return self.bad(phase)
        return self.warn(phase)

    def counts(self, counts: NodeCounts) -> str:
        text = f"{counts.ready}/{counts.desired}"
        return self.good(text) if counts.ready == counts.desired else self.bad(text)

    def condition_status(self, status: str, healthy: bool) -> str:
        return self.good(status) if healthy else self.bad(status)


def use_color(choice: str, isatty: bool, environ: dict[str, str] | None = None) -> bool:
    """--color auto|always|never; auto means a terminal and no NO_COLOR (no-color.org)."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    import os

    env = os.environ if environ is None else environ
    return isatty and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


# --- durations --------------------------------------------------------------------------------


def format_duration(seconds: int | float | None) -> str:
    """3h12m, 2d4h, 12m5s, 45s: the two largest units, as kubectl's AGE column."""
    if seconds is None:
        return "-"
    remaining = int(seconds)
    if remaining < 60:
        return f"{remaining}s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, remaining = divmod(remaining, size)
        if amount or parts:
            parts.append(f"{amount}{unit}")
        if len(parts) == 2:
            break
    if len(parts) == 2 and parts[1].startswith("0"):
        parts.pop()
    return "".join(parts)


# --- structured output ------------------------------------------------------------------------


def structured(model: Any, output: str) -> str:
    """-o json|yaml of a status-model object (or list of them, or plain data)."""
    data = to_data(model)
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    if output == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))
    raise ValueError(f"unknown output format {output!r}")


# --- tables -----------------------------------------------------------------------------------


_SGR = re.compile(r"\x1b\[[0-9;]*m")  # what click.style writes
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
HEADER_ROOM = 2  # headers get two extra columns of room (tabulate's MIN_PADDING)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], no_headers: bool = False) -> str:
    """Left-aligned columns two spaces apart, no trailing blanks: tabulate's "plain" format.

    Cells are text (None is empty, anything else str()), stripped; widths are what a terminal
    shows: colour codes take no room, East Asian wide characters two columns, combining marks and
    other zero-width characters none; a cell with line breaks spans as many lines. Rows shorter
    than the headers are padded with empty cells."""
    head = [] if no_headers else [[str(header) for header in headers]]
    body = [["" if cell is None else str(cell).strip() for cell in row] for row in rows]
    if not head and not body:
        return ""
    columns = max(len(row) for row in head + body)
    # Each cell as its lines; rows padded to every column.
    grid = [[_LINE_BREAK.split(cell) for cell in row] + [[""]] * (columns - len(row)) for row in head + body]
    widths = [max(_width(line) for row in grid for line in row[column]) for column in range(columns)]
    for column, header in enumerate(head[0] if head else []):
        widths[column] = max(widths[column], _width(header) + HEADER_ROOM)
    printed = []
    for row in grid:
        for index in range(max((len(cell) for cell in row), default=1)):
            parts = [cell[index] if index < len(cell) else "" for cell in row]
            padded = (part + " " * (size - _width(part)) for part, size in zip(parts, widths, strict=True))
            printed.append("  ".join(padded).rstrip())
    return "\n".join(printed)


def _width(text: str) -> int:
    plain = _SGR.sub("", text)
    if plain.isascii():
        return len(plain)
    import unicodedata

    def columns(char: str) -> int:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf", "Cc"):
            return 0
        return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1

    return sum(columns(char) for char in plain)


def list_text(
    rows: Sequence[ClusterSummary], style: Style, no_headers: bool = False, now: datetime | None = None
) -> str:
    if not rows:
        return ""
    body = [
        (
            row.name,
            row.namespace,
            row.image or "-",
            style.counts(row.cores),
            style.counts(row.replicants) if row.replicants.desired else "0/0",
            style.phase(row.phase),
            format_duration(age_seconds(row.created, now)),
        )
        for row in rows
    ]
    return table(body, LIST_HEADERS, no_headers) + "\n"


def node_rows(nodes: Sequence[Node], style: Style) -> list[tuple[str, ...]]:
    return [
        (
            node.pod or short_node_name(node.node),
            node.role,
            style.good(node.status) if node.status == "running" else style.bad(node.status),
            node.version or "-",
            (node.otp_release or "-").split("/", 1)[0],
            format_duration(node.uptime_seconds),
            "-" if node.connections is None else str(node.connections),
        )
        for node in nodes
    ]


def short_node_name(node: str) -> str:
    """emqx@n-core-0.n-headless.ns.svc.cluster.local -> emqx@n-core-0; IP hosts stay whole."""
    name, _, host = node.partition("@")
    if not host:
        return node
    try:
        ipaddress.ip_address(host)
        return node
    except ValueError:
        return f"{name}@{host.split('.', 1)[0]}"


def status_text(
    status: ClusterStatus, style: Style, no_headers: bool = False, now: datetime | None = None
) -> str:
    now = now or datetime.now(UTC)
    sections = [summary_block(status, style, now)]

    def section(title: str, content: str) -> None:
        if not content:
            return
        sections.append(content if no_headers else f"{style.heading(title)}\n{content}")

    if status.nodes:
        section("Nodes", table(node_rows(status.nodes, style), NODE_HEADERS, no_headers))
    else:
        section("Nodes", "(EMQX has not reported any node yet)")
    if status.pending:
        section("Waiting", table(pending_rows(status, now), PENDING_HEADERS, no_headers))
    if status.events:
        event_rows = [
            (
                format_duration(age_seconds(event.last_seen, now)),
                style.warn(event.type) if event.type == "Warning" else event.type,
                event.reason,
                event.message + (f" (x{event.count})" if event.count > 1 else ""),
            )
            for event in status.events
        ]
        section("Events", table(event_rows, EVENT_HEADERS, no_headers))
    if status.errors:
        section(
            "Errors (parts of the status could not be read)",
            "\n".join(style.bad(f"- {error}") for error in status.errors),
        )
    return "\n\n".join(sections) + "\n"


PENDING_HEADERS = ("NODE", "ROLE", "WAITED", "WAITING FOR")


def pending_rows(status: ClusterStatus, now: datetime) -> list[tuple[str, ...]]:
    """status.pendingNodes: every pod the operator still waits on, in Kubernetes'/EMQX's words."""
    return [
        (item.pod, item.role, format_duration(age_seconds(item.since, now)), item.waiting_for)
        for item in status.pending
    ]


def summary_block(status: ClusterStatus, style: Style, now: datetime | None = None) -> str:
    # current -> target while a rollout moves the nodes; before the first rollout (creation) there
    # is no current image yet.
    target = status.target_image or status.image
    image = status.current_image or target or "-"
    if status.current_image and target and target != status.current_image:
        image = f"{status.current_image} -> {target}"
    phase = style.phase(status.phase)
    if status.message:
        phase += f" ({status.message})"
    replicants = style.counts(status.replicants) if status.replicants.desired else "none"
    pairs = [
        ("Name", f"{status.namespace}/{status.name}"),
        ("Image", image),
        ("Phase", phase),
        ("Cores", f"{style.counts(status.cores)} ready"),
        ("Replicants", replicants if replicants == "none" else f"{replicants} ready"),
        ("Conditions", condition_summary(status, style) or "-"),
    ]
    if (
        status.generation is not None
        and status.observed_generation is not None
        and status.observed_generation < status.generation
    ):
        pairs.append(
            ("Generation", style.warn(f"{status.generation} (operator has seen {status.observed_generation})"))
        )
    flight = in_flight_text(status, now or datetime.now(UTC))
    if flight:
        pairs.append(("In flight", flight))
    if status.recovery:
        pairs.append(("Recover", style.warn(status.recovery)))
    width = max(len(key) for key, _ in pairs) + 1
    return "\n".join(f"{(key + ':').ljust(width)} {value}" for key, value in pairs)


def condition_summary(status: ClusterStatus, style: Style) -> str:
    # Progressing/UpgradeStalled read the other way round: True is the notable state.
    inverted = {"Progressing", "UpgradeStalled"}
    parts = []
    for item in status.conditions:
        healthy = (item.status == "True") != (item.type in inverted)
        text = f"{item.type}={item.status}"
        if not healthy and item.reason:
            text += f" ({item.reason})"
        parts.append(style.good(text) if healthy else style.warn(text))
    return ", ".join(parts)


# --- --wait progress --------------------------------------------------------------------------


def stamped(line: str, now: datetime | None = None) -> str:
    return f"{format_time(now or datetime.now(UTC))} {line}"


def progress_line(name: str, progress: Progress, now: datetime | None = None, stamp: bool = True) -> str:
    """The plain (non-TTY) progress line: timestamped, one per change."""
    counts = f"{progress.nodes_on_target}/{progress.nodes_desired}"
    line = f"{name}: {progress.state}, nodes on target {counts}: {progress.reason}"
    return stamped(line, now) if stamp else line


def progress_view(
    status: ClusterStatus,
    progress: Progress,
    style: Style,
    elapsed: float,
    now: datetime | None = None,
    width: int | None = None,
    title: str = "",
) -> str:
    """The live (TTY) view, redrawn on every change and every tick: phase, nodes on target, when
    the operator gives up on the node in flight, and every node with what it waits for and how
    long it has waited. Long text is wrapped (and the view kept to `width`) by the view itself, so
    that its line count is exact and it can be redrawn in place."""
    now = now or datetime.now(UTC)
    width = width or 10_000
    lines = [fit(title, width - 1)] if title else []
    lines.append(fit(
        f"Waiting for {status.namespace}/{status.name} ({format_duration(elapsed)}): "
        f"{style.phase(status.phase)}, nodes on target {progress.nodes_on_target}/{progress.nodes_desired}",
        width - 1,
    ))
    lines.extend(wrapped(progress.reason, width - 1, "  "))
    deadline = in_flight_text(status, now, short=True)
    if deadline:
        lines.extend(wrapped(deadline, width - 1, "  "))
    rows = progress_rows(status, now)
    if rows:
        lines.extend(_progress_table(rows, style, width - 1))
    return "\n".join(lines) + "\n"


PROGRESS_HEADERS = ("NODE", "ROLE", "EMQX", "WAITED", "STATE")
MAX_STATE_LINES = 4


def progress_rows(status: ClusterStatus, now: datetime) -> list[tuple[str, str, str, str, str]]:
    """One row per pod the operator waits on or EMQX lists, cores first: what EMQX reports for it
    and, while it is not done, how long it has waited and what for ("done" once it runs the target)."""
    from kubectl_emqx.view.status_model import image_version

    target = image_version(status.image or status.target_image)  # the spec: targetImage lags a new write
    pending = {item.pod: item for item in status.pending}
    nodes = {node.pod or short_node_name(node.node): node for node in status.nodes}
    roles = {key: node.role for key, node in nodes.items()} | {pod: item.role for pod, item in pending.items()}
    rows = []
    for key in sorted(roles, key=lambda pod: (roles[pod] != "core", pod)):
        node = nodes.get(key)
        emqx = f"{node.status} {node.version or ''}".strip() if node else "-"
        waiting = pending.get(key)
        if waiting is not None:
            waited, state = format_duration(age_seconds(waiting.since, now)), waiting.waiting_for
        elif node is not None and node.status == "running" and (target is None or node.version == target):
            waited, state = "", "done"
        else:
            waited, state = "", "waiting"
        rows.append((key, roles[key], emqx, waited, state))
    return rows


def _progress_table(rows: Sequence[tuple[str, str, str, str, str]], style: Style, width: int) -> list[str]:
    """The node rows under their headers, the STATE column wrapped into the width that is left."""
    widths = [max(len(header), *(len(row[column]) for row in rows)) for column, header in
              enumerate(PROGRESS_HEADERS[:-1])]
    indent = sum(widths) + 2 * len(widths)
    room = max(20, width - indent)

    def line(cells: Sequence[str]) -> str:
        return "".join(cell.ljust(size + 2) for cell, size in zip(cells, widths, strict=False))

    out = [fit(line(PROGRESS_HEADERS[:-1]) + PROGRESS_HEADERS[-1], width)]
    for row in rows:
        state = row[-1]
        paint = style.good if state == "done" else style.warn if row[3] else str
        parts = wrapped(state, room, "")[:MAX_STATE_LINES] or [""]
        if len(wrapped(state, room, "")) > MAX_STATE_LINES:
            parts[-1] = fit(parts[-1] + " ...", room)
        out.append(fit(line(row[:-1]) + paint(parts[0]), width))
        out.extend(" " * indent + paint(part) for part in parts[1:])
    return out


def wrapped(text: str, width: int, indent: str) -> list[str]:
    """`text` wrapped to `width` columns, every line starting with `indent`."""
    import textwrap

    return textwrap.wrap(text, width=max(10, width), initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False) or [indent]


def in_flight_text(status: ClusterStatus, now: datetime, short: bool = False) -> str:
    """When the operator gives up on the node it replaces (or drains) now."""
    flight = status.in_flight
    if flight is None or not flight.gives_up_at:
        return ""
    from kubectl_emqx.domain.vocabulary import parse_time

    moment = parse_time(flight.gives_up_at)
    if moment is None:
        return ""
    left = int((moment - now).total_seconds())
    timeout = f"nodeReadyTimeoutSeconds {flight.timeout_seconds}"
    if left <= 0:
        return f"the operator's time for {flight.pod} to be {flight.action} is up ({timeout}): its verdict is due"
    text = f"the operator gives up on {flight.pod} in {format_duration(left)} unless it is {flight.action} ({timeout}"
    return text + (")" if short else f", at {flight.gives_up_at})")


def fit(line: str, width: int) -> str:
    """`line` cut to `width` visible characters (colour codes kept, and closed when cut)."""
    if width <= 0 or len(_SGR.sub("", line)) <= width:
        return line
    out, shown, index = [], 0, 0
    while index < len(line) and shown < width - 3:
        match = _SGR.match(line, index)
        if match:
            out.append(match.group())
            index = match.end()
            continue
        out.append(line[index])
        shown += 1
        index += 1
    suffix = "\x1b[0m" if "\x1b[" in line else ""
    return "".join(out) + "..." + suffix
