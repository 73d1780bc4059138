"""What a simulated EMQX node prints on its console (pure).

The kubelet loop (kube.py) sees a node boot, wait, fail or stop, and looks at its state (evacuation
progress, running config) between rounds; this module gives the lines EMQX would print for each, with
no hooks in the World: `boot_lines`, `failure_lines`, `shutdown_lines`, and `diff_lines` for what
changed between two `NodeLook`s. Texts and levels follow EMQX (file@tag in docs/fidelity-kubelet.md).
"""

from __future__ import annotations

import datetime
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
    """A node that refuses to boot: bin/emqx's `die`/`logerr` print `ERROR: ...` on stderr before exiting.
    Several lines are what the process printed (the World's termination record), written as they are."""
    if "\n" in reason:
        return [ulog(line, stream="stderr") for line in reason.splitlines() if line.strip()]
    return [ulog(reason if reason.startswith("ERROR") else f"ERROR: {reason}", stream="stderr")]


# emqx_machine_signal_handler.erl: from 5.8.1 a critical report plus a timestamped line; before, one line.
TERMINATE_REPORT_SINCE = (5, 8, 1)


def shutdown_lines(version: tuple[int, int, int] | None, ts: float) -> list[LogLine]:
    """SIGTERM: the signal handler's lines, then emqx_machine_boot stops the apps (notice)."""
    if version is not None and version >= TERMINATE_REPORT_SINCE:
        stamp = datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        lines = [slog("critical", "received_terminate_signal"),
                 ulog(f"{stamp} received_terminate_signal, shutting down now.")]
    else:
        lines = [ulog("Received terminate signal, shutting down now")]
    return lines + [slog("notice", "stopping_emqx_apps")]


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
