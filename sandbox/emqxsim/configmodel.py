"""EMQX's configuration as the management API exposes it: defaults, GET rendering, PUT checks (§3)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import versions
from .hocon import ConfigDict, HoconParseError, deep_merge, dump_hocon, parse_hocon
from .versions import Version

# Schema defaults of the roots the simulator fills in (a plausible subset of 5.8's).
SCHEMA_DEFAULTS: ConfigDict = {
    "node": {
        "name": "emqx@127.0.0.1",
        "cookie": "emqxsecretcookie",
        "data_dir": "data",
        "role": "core",
        "process_limit": 2097152,
        "max_ports": 1048576,
        "dist_buffer_size": "8MB",
        "global_gc_interval": "15m",
    },
    "cluster": {
        "name": "emqxcl",
        "discovery_strategy": "manual",
        "autoclean": "24h",
        "autoheal": True,
        "proto_dist": "inet_tcp",
        "dns": {"name": "localhost", "record_type": "a"},
        "static": {"seeds": []},
        "k8s": {
            "apiserver": "https://kubernetes.default.svc:443",
            "service_name": "emqx",
            "address_type": "ip",
            "namespace": "default",
            "suffix": "pod.local",
        },
        "etcd": {"server": "", "prefix": "emqxcl", "node_ttl": "1m"},
    },
    "rpc": {"mode": "async", "port_discovery": "stateless", "server_port": 5369, "tcp_client_num": 10},
    "log": {
        "console": {"enable": True, "level": "warning", "formatter": "text", "time_offset": "system"},
        "file": {
            "default": {
                "enable": False,
                "level": "warning",
                "path": "/opt/emqx/log/emqx.log",
                "rotation_count": 10,
                "rotation_size": "50MB",
            }
        },
    },
    "dashboard": {
        "listeners": {
            "http": {
                "enable": True,
                "bind": 18083,
                "num_acceptors": 2,
                "max_connections": 512,
                "backlog": 1024,
            },
            "https": {"enable": False, "bind": 0},
        },
        "default_username": "admin",
        "default_password": "public",
        "sample_interval": "10s",
        "token_expired_time": "60m",
        "cors": False,
        "swagger_support": True,
        "i18n_lang": "en",
    },
    "alarm": {"actions": ["log", "publish"], "size_limit": 1000, "validity_period": "24h"},
    "sys_topics": {
        "sys_msg_interval": "1m",
        "sys_heartbeat_interval": "30s",
        "sys_event_messages": {
            "client_connected": True,
            "client_disconnected": True,
            "client_subscribed": False,
            "client_unsubscribed": False,
        },
    },
    "sysmon": {
        "os": {
            "cpu_check_interval": "60s",
            "cpu_high_watermark": "80%",
            "cpu_low_watermark": "60%",
            "mem_check_interval": "60s",
            "sysmem_high_watermark": "70%",
            "procmem_high_watermark": "5%",
        },
        "vm": {"process_check_interval": "30s", "long_gc": "disabled", "long_schedule": "240ms"},
    },
    "broker": {
        "enable_session_registry": True,
        "session_locking_strategy": "quorum",
        "shared_subscription_strategy": "round_robin",
        "routing": {"storage_schema": "v2"},
    },
    "listeners": {
        "tcp": {"default": {"enable": True, "bind": "0.0.0.0:1883", "max_connections": "infinity"}},
        "ssl": {"default": {"enable": True, "bind": "0.0.0.0:8883", "max_connections": "infinity"}},
        "ws": {"default": {"enable": True, "bind": "0.0.0.0:8083", "websocket": {"mqtt_path": "/mqtt"}}},
        "wss": {"default": {"enable": True, "bind": "0.0.0.0:8084", "websocket": {"mqtt_path": "/mqtt"}}},
    },
    "mqtt": {
        "max_packet_size": "1MB",
        "max_clientid_len": 65535,
        "max_topic_levels": 128,
        "idle_timeout": "15s",
    },
    "api_key": {"bootstrap_file": ""},
    "authentication": [],
    "authorization": {
        "no_match": "allow",
        "deny_action": "ignore",
        "cache": {"enable": True, "max_size": 32},
    },
    "retainer": {"enable": True, "max_payload_size": "1MB", "msg_expiry_interval": "0s"},
    "prometheus": {"enable_basic_auth": False},
}

ENTERPRISE_DEFAULTS: ConfigDict = {
    "license": {"key": "default", "connection_low_watermark": "75%", "connection_high_watermark": "80%"},
    "file_transfer": {"enable": False},
}

HIDDEN_ROOTS = frozenset({"trace", "stats", "broker", "plugins", "zones"})
JSON_ROOTS = ("dashboard", "alarm", "sys_topics", "sysmon", "log", "broker")
READONLY_ROOTS = ("node", "rpc")
SENSITIVE_KEYS = frozenset({"default_password", "key", "password", "cookie"})
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency", "all", "none")


def schema_defaults(enterprise: bool) -> ConfigDict:
    defaults = copy.deepcopy(SCHEMA_DEFAULTS)
    if enterprise:
        defaults.update(copy.deepcopy(ENTERPRISE_DEFAULTS))
    return defaults


def json_roots(enterprise: bool) -> tuple[str, ...]:
    return JSON_ROOTS + (("file_transfer",) if enterprise else ())


def running_config(enterprise: bool, cluster_hocon: Mapping[str, Any], local_config: Mapping[str, Any]) -> ConfigDict:
    """Boot layers since 5.0.23: schema defaults < cluster.hocon < emqx.conf < env."""
    return deep_merge(deep_merge(schema_defaults(enterprise), cluster_hocon), local_config)


def _without_inactive_discovery(config: ConfigDict) -> ConfigDict:
    cluster = config.get("cluster")
    if not isinstance(cluster, dict):
        return config
    active = cluster.get("discovery_strategy")
    trimmed = {
        key: value for key, value in cluster.items() if key not in ("dns", "static", "k8s", "etcd") or key == active
    }
    return {**config, "cluster": trimmed}


def render_hocon(config: ConfigDict, root: str | None = None) -> str:
    visible = {key: value for key, value in config.items() if key not in HIDDEN_ROOTS}
    visible = _without_inactive_discovery(visible)
    if root is not None:
        visible = {root: visible[root]} if root in visible else {}
    return dump_hocon(visible)


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "******" if key in SENSITIVE_KEYS and isinstance(item, str) else _masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value


def render_json(config: ConfigDict, enterprise: bool, root: str | None = None) -> dict[str, Any]:
    roots = json_roots(enterprise)
    selected = {key: _masked(config[key]) for key in roots if key in config and (root is None or key == root)}
    return selected


@dataclass
class ConfigUpdateError(Exception):
    status: int
    content_type: str
    body: str


def _errors_response(version: Version, errors: Any, text: str) -> ConfigUpdateError:
    if version >= versions.CONFIG_ERRORS_JSON_SINCE:
        return ConfigUpdateError(400, "text/plain", json.dumps({"errors": errors}))
    if version >= versions.CONFIG_ERRORS_TEXT_SINCE:
        return ConfigUpdateError(400, "text/plain", text)
    return ConfigUpdateError(400, "application/json", json.dumps({"code": "UPDATE_FAILED", "message": text}))


def _validation_errors(roots: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, Any] = {}

    def enum_check(root: str, path: str, value: Any, allowed: tuple[str, ...]) -> None:
        if str(value) not in allowed:
            errors[root] = {
                "kind": "validation_error",
                "path": path,
                "reason": "unable_to_convert_to_enum_symbol",
                "value": value,
            }

    log = roots.get("log")
    if isinstance(log, Mapping):
        console = log.get("console")
        if isinstance(console, Mapping) and "level" in console:
            enum_check("log", "log.console.level", console["level"], LOG_LEVELS)
        files = log.get("file")
        if isinstance(files, Mapping):
            for name, handler in files.items():
                if isinstance(handler, Mapping) and "level" in handler:
                    enum_check("log", f"log.file.{name}.level", handler["level"], LOG_LEVELS)
    dashboard = roots.get("dashboard")
    if isinstance(dashboard, Mapping):
        http = (
            (dashboard.get("listeners") or {}).get("http") if isinstance(dashboard.get("listeners"), Mapping) else None
        )
        if isinstance(http, Mapping) and "bind" in http:
            bind = str(http["bind"])
            if not bind.rsplit(":", 1)[-1].isdigit():
                errors["dashboard"] = {
                    "kind": "validation_error",
                    "path": "dashboard.listeners.http.bind",
                    "reason": "Invalid port",
                    "value": http["bind"],
                }
    return errors


def parse_config_update(body: str, version: Version, known_roots: tuple[str, ...], ignore_readonly: bool) -> ConfigDict:
    """Checks a `PUT /api/v5/configs` body; returns the roots to apply or raises ConfigUpdateError."""
    try:
        parsed = parse_hocon(body)
    except HoconParseError as error:
        detail = {"line": error.line or 1, "reason": error.reason, "type": "parse_error"}
        raise _errors_response(version, detail, f"parse_error: {error.reason}") from None
    unknown = [root for root in parsed if root not in known_roots]
    if unknown:
        errors = {root: f'{{root_key_not_found,<<"{root}">>}}' for root in unknown}
        raise _errors_response(version, errors, f"root_key_not_found: {','.join(unknown)}")
    readonly = [root for root in READONLY_ROOTS if root in parsed]
    cluster = parsed.get("cluster")
    if isinstance(cluster, Mapping):
        readonly += sorted(f"cluster.{key}" for key in cluster if key != "links")
    if readonly:
        if ignore_readonly and version >= versions.IGNORE_READONLY_SINCE:
            for root in READONLY_ROOTS:
                parsed.pop(root, None)
            if isinstance(cluster, Mapping):
                links = {key: value for key, value in cluster.items() if key == "links"}
                if links:
                    parsed["cluster"] = links
                else:
                    parsed.pop("cluster", None)
        else:
            message = f"Cannot update read-only key '{','.join(readonly)}'."
            raise _errors_response(version, message, message)
    errors = _validation_errors(parsed)
    if errors:
        raise _errors_response(version, errors, json.dumps(errors))
    return parsed


def apply_roots(config: ConfigDict, roots: Mapping[str, Any], mode: str, defaults: Mapping[str, Any]) -> ConfigDict:
    updated = dict(config)
    for root, value in roots.items():
        if mode == "merge" and isinstance(value, Mapping) and isinstance(updated.get(root), Mapping):
            updated[root] = deep_merge(updated[root], value)
        elif isinstance(value, Mapping) and isinstance(defaults.get(root), Mapping):
            updated[root] = deep_merge(defaults[root], value)
        else:
            updated[root] = copy.deepcopy(value)
    return updated
