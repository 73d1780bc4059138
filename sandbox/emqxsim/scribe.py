"""What a simulated EMQX node prints on its console, derived from the World (pure).

The World records boot events (booted, boot_failed, boot_waiting, stopped, crashed) and keeps node state
(evacuation progress, running config); this module turns them into the lines EMQX would
print, without hooks in the World: `event_lines` for an event, `NodeDiff` for state that changed between
two looks. Message texts and levels follow EMQX (file@tag in docs/fidelity-kubelet.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .podlogs import DEFAULT_CONSOLE_LEVEL, LogLine, flog, slog, ulog

# emqx_release ?EMQX_DESCS: "EMQX" for the Community edition, "EMQX Enterprise" otherwise.
_DESCRIPTION = {"Opensource": "EMQX", "Enterprise": "EMQX Enterprise"}


def console_level(config: Mapping[str, Any] | None) -> str:
    """log.console.level (5.0.26+) or log.console_handler.level (older), default warning."""
    log = (config or {}).get("log") or {}
    for key in ("console", "console_handler"):
        handler = log.get(key)
        if isinstance(handler, Mapping) and handler.get("level"):
            return str(handler["level"])
    return DEFAULT_CONSOLE_LEVEL


def _bind_text(bind: Any) -> str:
    # emqx_listeners:format_bind/1: a bare port prints as ":PORT".
    text = str(bind)
    return f":{text}" if text.isdigit() else text


def listener_lines(config: Mapping[str, Any], dashboard_port: int) -> list[LogLine]:
    """`Listener ~ts on ~ts started.` for every enabled listener, then the dashboard's (emqx_listeners.erl,
    emqx_dashboard.erl listener_name/1)."""
    lines = []
    listeners = config.get("listeners") or {}
    for kind in sorted(listeners):
        for name, listener in sorted((listeners.get(kind) or {}).items()):
            if not isinstance(listener, Mapping) or listener.get("enable", True) in (False, "false"):
                continue
            lines.append(ulog(f"Listener {kind}:{name} on {_bind_text(listener.get('bind', ''))} started."))
    if dashboard_port:
        lines.append(ulog(f"Listener http:dashboard on :{dashboard_port} started."))
    return lines


def boot_lines(
    edition: str, version: str, config: Mapping[str, Any], dashboard_port: int, peers: list[str], warnings: list[str]
) -> list[LogLine]:
    lines: list[LogLine] = [slog("notice", "(re)starting_emqx_apps")]
    lines += [flog("warning", text) for text in warnings]
    if peers:
        # ekka_autocluster:maybe_join/1 joins the oldest discovered node (info).
        lines.append(flog("info", f"Ekka(AutoCluster): joining with '{peers[0]}'"))
    lines += listener_lines(config, dashboard_port)
    lines.append(ulog(f"{_DESCRIPTION.get(edition, 'EMQX')} {version} is running now!"))
    return lines


def failure_lines(reason: str) -> list[LogLine]:
    """A node that refuses to boot: bin/emqx's `die`/`logerr` print `ERROR: ...` on stderr before exiting."""
    return [ulog(f"ERROR: {reason}", stream="stderr")]


def shutdown_lines() -> list[LogLine]:
    """SIGTERM: emqx_machine_signal_handler prints this line, then emqx_machine_boot stops the apps."""
    return [ulog("Received terminate signal, shutting down now"), slog("notice", "stopping_emqx_apps")]


def event_lines(event: Mapping[str, Any]) -> list[LogLine]:
    """Lines for World events that need no node state (boot failures, waits, stops)."""
    kind = event.get("event")
    reason = str(event.get("reason") or "")
    if kind == "boot_failed":
        return failure_lines(reason)
    if kind == "boot_waiting":
        return [flog("warning", reason)]
    if kind == "stopped" and reason in ("pod deleted", "pod terminating", "container image changed"):
        return shutdown_lines()
    return []


# emqx_node_rebalance_evacuation.erl@v5.7.2: the warning each state change of an evacuation logs.
_EVACUATION_MESSAGES = {
    ("disabled", "waiting_health_check"): "node_evacuation_started",
    ("disabled", "evicting_conns"): "node_evacuation_started",
    ("waiting_health_check", "evicting_conns"): "node_evacuation_evict_conns",
    ("evicting_conns", "waiting_takeover"): "node_evacuation_evict_conns_done",
    ("waiting_takeover", "evicting_sessions"): "node_evacuation_waiting_takeover_done",
    ("evicting_sessions", "prohibiting"): "node_evacuation_evict_sessions_over",
    ("waiting_takeover", "prohibiting"): "node_evacuation_evict_sessions_over",
}


def config_digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class NodeLook:
    """What the scribe remembers of a running node between two looks."""

    evacuation: str
    config_digest: str


def diff_lines(before: NodeLook, after: NodeLook) -> list[LogLine]:
    lines: list[LogLine] = []
    if before.evacuation != after.evacuation:
        if after.evacuation == "disabled":
            lines.append(slog("warning", "node_evacuation_stopped"))
        else:
            message = _EVACUATION_MESSAGES.get((before.evacuation, after.evacuation))
            if message is not None:
                lines.append(slog("warning", message))
    if before.config_digest != after.config_digest:
        # emqx_cluster_rpc:apply_mfa logs a successful config transaction at debug.
        lines.append(slog("debug", "cluster_rpc_apply_ok", result="ok"))
    return lines
