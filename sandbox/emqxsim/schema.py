"""A small model of EMQX's config schema: the keys the simulator cares about, checked the way
hocon_tconf checks them, with each release's error terms.

Only some structs are strict about unknown fields (the simulator knows their complete field list);
everything else is accepted as is. Errors are Erlang terms (erlterm) shaped like hocon's
`#{kind => validation_error, path => "...", reason => ..., value => ...}` maps, because EMQX puts
exactly those into its PUT /configs bodies and boot logs.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import versions
from .erlterm import Atom, Binary, Charlist
from .hocon import ConfigDict, deep_merge
from .versions import EmqxImage

# Roots of emqx_conf_schema / emqx_enterprise_schema (5.8, approximately); api_key from 5.0.14,
# license only where the license app is (Enterprise, and every 5.9+ build).
BASE_ROOTS = (
    "listeners",
    "mqtt",
    "sys_topics",
    "force_shutdown",
    "overload_protection",
    "durable_storage",
    "force_gc",
    "conn_congestion",
    "sysmon",
    "alarm",
    "flapping_detect",
    "durable_sessions",
    "crl_cache",
    "banned",
    "node",
    "cluster",
    "log",
    "rpc",
    "authentication",
    "authorization",
    "bridges",
    "connectors",
    "actions",
    "sources",
    "retainer",
    "auto_subscribe",
    "delayed",
    "topic_metrics",
    "rewrite",
    "plugins",
    "dashboard",
    "gateway",
    "prometheus",
    "rule_engine",
    "exhook",
    "psk_authentication",
    "limiter",
    "slow_subs",
    "broker",
    "zones",
    "stats",
    "trace",
)
ENTERPRISE_ROOTS = ("license", "file_transfer", "schema_registry", "opentelemetry")

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency", "all")

_NODE_FIELDS_50 = [
    "name",
    "cookie",
    "process_limit",
    "max_ports",
    "dist_buffer_size",
    "max_ets_tables",
    "data_dir",
    "config_files",
    "global_gc_interval",
    "crash_dump_file",
    "crash_dump_seconds",
    "crash_dump_bytes",
    "dist_net_ticktime",
    "backtrace_depth",
    "applications",
    "etc_dir",
    "cluster_call",
    "db_backend",
    "db_role",
    "rpc_module",
    "tlog_push_mode",
    "default_shard_transport",
    "shard_transports",
]
# Listener fields of 5.0.x (base_listener/1 + mqtt_listener/1 + mqtt_tcp_listener) for `unmatched`.
_TCP_LISTENER_FIELDS_50 = [
    "enabled",
    "bind",
    "acceptors",
    "max_connections",
    "mountpoint",
    "zone",
    "limiter",
    "enable_authn",
    "access_rules",
    "proxy_protocol",
    "proxy_protocol_timeout",
    "tcp_options",
]
_DASHBOARD_HTTP_FIELDS = [
    "enable",
    "bind",
    "num_acceptors",
    "max_connections",
    "backlog",
    "send_timeout",
    "inet6",
    "ipv6_v6only",
]
_AUTHZ_FIELDS = ["no_match", "deny_action", "cache", "sources"]
# log_handler_common_confs/2 (console handler), 5.8.9; older releases lack the last three
_LOG_CONSOLE_FIELDS = [
    "level",
    "enable",
    "formatter",
    "timestamp_format",
    "time_offset",
    "chars_limit",
    "single_line",
    "sync_mode_qlen",
    "drop_mode_qlen",
    "flush_qlen",
    "overload_kill",
    "burst_limit",
    "supervisor_reports",
    "max_depth",
    "with_mfa",
    "payload_encode",
]

# Atoms an EMQX node has (the hocon enum converter only turns a string into an *existing* atom:
# a known one gives not_a_enum_symbol, any other unable_to_convert_to_enum_symbol).
_KNOWN_ATOMS = frozenset(
    set(LOG_LEVELS)
    | {
        "allow",
        "deny",
        "ignore",
        "disconnect",
        "core",
        "replicant",
        "manual",
        "static",
        "dns",
        "etcd",
        "k8s",
        "mcast",
        "singleton",
        "a",
        "aaaa",
        "srv",
        "true",
        "false",
        "undefined",
        "infinity",
        "none",
        "text",
        "json",
        "default",
        "evaluation",
        "ip",
        "hostname",
        "tcp",
        "ssl",
        "ws",
        "wss",
        "quic",
        "enable",
        "disable",
        "merge",
        "replace",
        "node",
        "cluster",
        "local",
        "stateless",
        "async",
        "sync",
        "inet_tcp",
        "inet6_tcp",
        "inet_tls",
        "rlog",
        "mnesia",
        "gen_rpc",
        "rpc",
    }
)


def roots(image: EmqxImage) -> frozenset[str]:
    names = set(BASE_ROOTS)
    if image.at_least(versions.BOOTSTRAP_FILE):
        names.add("api_key")
    if image.at_least(versions.LICENSE_ROOT):
        names.update(ENTERPRISE_ROOTS)
    else:
        names.add("telemetry")
    return frozenset(names)


def node_fields(image: EmqxImage) -> list[str]:
    fields = list(_NODE_FIELDS_50)
    if image.at_least(versions.NODE_ROLE_FIELD):
        fields[fields.index("db_role")] = "role"
    if image.version >= (5, 2, 0):
        fields += ["broker_pool_size", "generic_pool_size", "channel_cleanup_batch_size"]
    if image.version >= (5, 3, 0):
        fields.insert(fields.index("broker_pool_size"), "default_bootstrap_batch_size")
    return fields


# ------------------------------------------------------------------------------------ error terms


def validation_error(path: str, reason: Any, value: Any = ..., **extra: Any) -> dict[Any, Any]:
    error: dict[Any, Any] = {Atom("kind"): Atom("validation_error"), Atom("path"): Charlist(path)}
    error[Atom("reason")] = reason
    if value is not ...:
        error[Atom("value")] = value
    for key, item in extra.items():
        error[Atom(key)] = item
    return error


def fmt_field_names(names: list[str], hocon: tuple[int, int, int]) -> Any:
    """hocon_tconf:fmt_field_names/1: sorted, at most two, then an ellipsis; charlists from hocon
    0.35.0 (binaries, and "..." without a comma, before)."""
    ordered = sorted(names)
    if not ordered:
        return Atom("none")
    if len(ordered) <= 2:
        text = ",".join(ordered)
    else:
        text = ",".join(ordered[:2]) + (",..." if hocon >= (0, 35, 0) else "...")
    return Charlist(text) if hocon >= (0, 35, 0) else Binary(text)


def _ip_family(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def unknown_fields(
    path: str, unknown: list[str], expected: list[str], present: list[str], hocon: tuple[int, int, int] = (0, 44, 0)
) -> dict[Any, Any]:
    unmatched = [name for name in expected if name not in present]
    return validation_error(
        path,
        Atom("unknown_fields"),
        unknown=fmt_field_names(unknown, hocon),
        unmatched=fmt_field_names(unmatched, hocon),
    )


def erl(value: Any) -> Any:
    """A parsed HOCON value as the Erlang term hocon gives (strings are binaries)."""
    if isinstance(value, bool) or value is None:
        return Atom("null") if value is None else value
    if isinstance(value, str):
        return Binary(value)
    if isinstance(value, list):
        return [erl(item) for item in value]
    if isinstance(value, dict):
        return {Binary(key): erl(item) for key, item in value.items()}
    return value


@dataclass
class Rendering:
    """How a release's hocon library reports a value it could not convert."""

    hocon: tuple[int, int, int]

    def type_mismatch(self, path: str, type_name: str, value: Any, conversion_error: str | None) -> dict[Any, Any]:
        if conversion_error is not None and self.hocon >= (0, 44, 0):
            # hocon_schema_builtin:convert/2 throws the converter's error (0.44.0+)
            return validation_error(path, _reason_term(conversion_error), erl(value))
        key = "expected" if self.hocon >= (0, 39, 10) else "expected_type"
        shown = Charlist(value) if isinstance(value, str) else erl(value)
        return validation_error(path, {Atom(key): Charlist(type_name)}, shown)

    def failed_string(self, value: Any) -> Any:
        """A string the converter left alone is a charlist before hocon 0.44.0."""
        if isinstance(value, str) and self.hocon < (0, 44, 0):
            return Charlist(value)
        return erl(value)


def _reason_term(text: str) -> Any:
    if re.fullmatch(r"[a-z][a-z0-9_]*", text):
        return Atom(text)
    return Charlist(text)


# ----------------------------------------------------------------------------------- conversions

_BYTESIZE = re.compile(r"^\s*([0-9]+)(b|B|kb|KB|mb|MB|gb|GB)$")
_DURATION_PART = re.compile(r"([0-9.]+)(ms|MS|f|F|w|W|d|D|h|H|m|M|s|S)")
_DURATION_MS = {
    "f": 14 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}


def bytesize(value: Any) -> int | None:
    """hocon_postprocess:bytesize/1 then string:to_integer/1 (emqx_schema:to_bytesize/1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    match = _BYTESIZE.match(value)
    if match:
        unit = match.group(2).lower()
        return int(match.group(1)) * {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}[unit]
    return int(value) if re.fullmatch(r"[+-]?[0-9]+", value) else None


def duration_ms(value: Any) -> int | None:
    """hocon_postprocess:duration/1 (a sum like `1h30m` is fine) or a plain integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    text, total, pos = value, 0.0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            break
        total += float(match.group(1)) * _DURATION_MS[match.group(2).lower()]
        pos = match.end()
    if pos == len(text) and pos > 0:
        return round(total)
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else None


def parse_port(text: str) -> tuple[int | None, str | None]:
    stripped = text.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", stripped):
        return None, "bad_port_number"
    port = int(stripped)
    if port < 0:
        return None, "port_number_must_be_positive"
    if port > 65535:
        return None, "port_number_too_large"
    return port, None


def ip_port(value: Any) -> tuple[tuple[str, int] | None, str | None]:
    """emqx_schema:to_ip_port/1: `PORT`, `IP:PORT` or `[IPv6]:PORT` -> (host, port)."""
    if isinstance(value, bool):
        return None, "bad_ip_port"
    if isinstance(value, int):
        return ("", value), None
    if not isinstance(value, str):
        return None, "bad_ip_port"
    text = value.replace(" ", "")
    host, sep, port_text = text.rpartition(":")
    if not sep:
        port, error = parse_port(text)
        return (("", port), None) if port is not None else (None, "bad_ip_port")
    if host.startswith("["):
        if not host.endswith("]"):
            return None, "bad_ip_port"
        host = host[1:-1]
    port, error = parse_port(port_text)
    if port is None or not _is_ip(host):
        return None, "bad_ip_port"
    return (host, port), None


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------- checks

Checker = Callable[[str, Any], list[dict[Any, Any]]]


class Schema:
    """The checks of one release (an EmqxImage)."""

    def __init__(self, image: EmqxImage):
        self.image = image
        self.render = Rendering(image.hocon_version)
        self.roots = roots(image)

    # ---- primitives
    def enum(
        self, path: str, value: Any, symbols: tuple[str, ...], validator: Callable[[str], Any] | None = None
    ) -> list[dict[Any, Any]]:
        if isinstance(value, bool):
            converted: Any = Atom("true" if value else "false")
        elif isinstance(value, int):
            converted = value
        elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value):
            converted = int(value)
        elif isinstance(value, str) and (value in _KNOWN_ATOMS or value in symbols):
            converted = Atom(value)
        elif isinstance(value, str):
            converted = None
        else:
            return [validation_error(path, Atom("unable_to_convert_to_enum_symbol"), erl(value))]
        if validator is not None and converted is not None:
            problem = validator(str(converted))
            if problem is not None:
                return [validation_error(path, Charlist(problem), converted)]
        if converted is None:
            return [validation_error(path, Atom("unable_to_convert_to_enum_symbol"), Binary(value))]
        if isinstance(converted, Atom) and converted in symbols:
            return []
        return [validation_error(path, Atom("not_a_enum_symbol"), converted)]

    def boolean(self, path: str, value: Any) -> list[dict[Any, Any]]:
        if isinstance(value, bool) or value in ("true", "false"):
            return []
        return [self.render.type_mismatch(path, "boolean()", value, None)]

    def bytesize_field(
        self, path: str, value: Any, validator: Callable[[Any], Any] | None = None
    ) -> list[dict[Any, Any]]:
        size = bytesize(value)
        if validator is not None:
            # user validators run before the type check, on the converted value (or the raw string)
            problem = validator(size if size is not None else value)
            if problem is not None:
                shown = size if size is not None else self.render.failed_string(value)
                if size is None and self.render.hocon >= (0, 44, 0):
                    return [validation_error(path, Charlist("Not a valid bytesize"), erl(value))]
                return [validation_error(path, problem, shown)]
        if size is None:
            return [self.render.type_mismatch(path, "emqx_schema:bytesize()", value, "Not a valid bytesize")]
        return []

    def duration_field(self, path: str, value: Any, infinity: bool = False) -> list[dict[Any, Any]]:
        if infinity and value == "infinity":
            return []
        if duration_ms(value) is None:
            return [self.render.type_mismatch(path, "emqx_schema:duration()", value, "Not a valid duration")]
        return []

    def ip_port_field(self, path: str, value: Any) -> list[dict[Any, Any]]:
        parsed, error = ip_port(value)
        if parsed is None:
            return [self.render.type_mismatch(path, "emqx_schema:ip_port()", value, error or "bad_ip_port")]
        return []

    # ---- structs
    def strict(self, path: str, value: Mapping[str, Any], fields: list[str]) -> list[dict[Any, Any]]:
        unknown = [key for key in value if key not in fields]
        if unknown:
            return [unknown_fields(path, unknown, fields, list(value), self.render.hocon)]
        return []

    def check_root(self, root: str, value: Any) -> list[dict[Any, Any]]:
        """The validation errors of one root's raw value (hocon stops a struct at unknown fields)."""
        check = getattr(self, f"_check_{root}", None)
        if check is None or not isinstance(value, Mapping):
            return []
        errors: list[dict[Any, Any]] = check(value)
        return errors

    def unknown_field_errors(self, root: str, value: Any) -> list[dict[Any, Any]]:
        """What filling defaults (make_serializable) already rejects: unknown fields only."""
        return [error for error in self.check_root(root, value) if error.get(Atom("reason")) == "unknown_fields"]

    def check(self, config: Mapping[str, Any]) -> list[dict[Any, Any]]:
        errors: list[dict[Any, Any]] = []
        for root in sorted(config):
            if root in self.roots:
                errors += self.check_root(root, config[root])
        return errors

    def integrity(self, config: Mapping[str, Any]) -> list[dict[Any, Any]]:
        """The schema's whole-config validations (hocon_tconf:assert_integrity/3), run by `generate`
        after the field checks: 5.6.0+ check_node_name_and_discovery_strategy."""
        if not self.image.at_least(versions.DNS_NODE_NAME_CHECK):
            return []
        if not isinstance(config.get("node"), Mapping) or not isinstance(config.get("cluster"), Mapping):
            return []
        cluster = config["cluster"]
        if str(cluster.get("discovery_strategy", "manual")) != "dns":
            return []
        dns = cluster.get("dns") if isinstance(cluster.get("dns"), Mapping) else {}
        record_type = str(dns.get("record_type", "a"))
        if record_type == "srv":
            return []
        host = str(config["node"].get("name", "emqx@127.0.0.1")).split("@", 1)[-1]
        if _ip_family(host) == {"a": 4, "aaaa": 6}.get(record_type):
            return []
        explain = (
            f"Node name must be of name@IP format for DNS cluster discovery strategy with '{record_type}' record type."
        )
        return [
            {
                Atom("kind"): Atom("validation_error"),
                Atom("reason"): Atom("integrity_validation_failure"),
                Atom("result"): {Atom("domain"): Charlist(host), Atom("explain"): Charlist(explain)},
                Atom("validation_name"): Atom("check_node_name_and_discovery_strategy"),
            }
        ]

    # ---- roots
    def _check_node(self, node: Mapping[str, Any]) -> list[dict[Any, Any]]:
        fields = node_fields(self.image)
        if self.image.at_least(versions.NODE_ROLE_FIELD):
            fields = fields + ["db_role"]
        errors = self.strict("node", node, fields)
        if errors:
            return errors
        key = "role" if "role" in node else "db_role"
        if key in node:
            path = "node.role" if self.image.at_least(versions.NODE_ROLE_FIELD) else "node.db_role"
            errors += self.enum(path, node[key], self.role_symbols(), self.role_validator())
        return errors

    def role_symbols(self) -> tuple[str, ...]:
        if self.image.at_least(versions.CE_REPLICANT_REJECTED) and not self.image.enterprise:
            return ("core",)
        return ("core", "replicant")

    def role_validator(self) -> Callable[[str], str | None] | None:
        if not self.image.at_least(versions.CE_REPLICANT_EXPLICIT_MESSAGE) or self.image.enterprise:
            return None

        def validate(role: str) -> str | None:
            if role == "core":
                return None
            if role == "replicant":
                return "Node role 'replicant' is only allowed in Enterprise edition since 5.8.0"
            return f"Invalid node role: {role}"

        return validate

    def _check_cluster(self, cluster: Mapping[str, Any]) -> list[dict[Any, Any]]:
        errors: list[dict[Any, Any]] = []
        strategies = ("manual", "static", "dns", "etcd", "k8s") + (
            ("singleton",) if self.image.version >= (5, 7, 0) else ("mcast",)
        )
        if "discovery_strategy" in cluster:
            errors += self.enum("cluster.discovery_strategy", cluster["discovery_strategy"], strategies)
        dns = cluster.get("dns")
        if isinstance(dns, Mapping) and "record_type" in dns:
            errors += self.enum("cluster.dns.record_type", dns["record_type"], ("a", "aaaa", "srv"))
        return errors

    def _check_log(self, log: Mapping[str, Any]) -> list[dict[Any, Any]]:
        # `log.console` / `log.file` from 5.0.26 (aliases of the older names); only
        # `log.console_handler` / `log.file_handlers` before (e5.0.x too)
        if self.image.version >= (5, 0, 26) and not (self.image.enterprise and self.image.version < (5, 1, 0)):
            fields = ["console", "console_handler", "file", "file_handlers", "throttling", "audit"]
        else:
            fields = ["console_handler", "file_handlers"]
        errors = self.strict("log", log, fields)
        if errors:
            return errors
        name = "console" if "console" in log else "console_handler"
        console = log.get(name)
        if isinstance(console, Mapping):
            fields = [
                field_name
                for field_name in _LOG_CONSOLE_FIELDS
                if self.image.version >= (5, 6, 0)
                or field_name not in ("timestamp_format", "with_mfa", "payload_encode")
            ]
            errors += self.strict(f"log.{name}", console, fields)
            if errors:
                return errors
            if "level" in console:
                errors += self.enum(f"log.{name}.level", console["level"], LOG_LEVELS)
            if "enable" in console:
                errors += self.boolean(f"log.{name}.enable", console["enable"])
        return errors

    def _check_dashboard(self, dashboard: Mapping[str, Any]) -> list[dict[Any, Any]]:
        listeners = dashboard.get("listeners")
        if not isinstance(listeners, Mapping):
            return []
        http = listeners.get("http")
        if not isinstance(http, Mapping):
            return []
        fields = list(_DASHBOARD_HTTP_FIELDS) + (["proxy_header"] if self.image.version >= (5, 0, 22) else [])
        errors = self.strict("dashboard.listeners.http", http, fields)
        if errors:
            return errors
        if "bind" in http:
            bind = http["bind"]
            if self.image.at_least(versions.DASHBOARD_BIND_ZERO_DISABLES) or not (
                isinstance(bind, int) and not isinstance(bind, bool) and bind >= 0
            ):
                errors += self.ip_port_field("dashboard.listeners.http.bind", bind)
        if "enable" in http:
            errors += self.boolean("dashboard.listeners.http.enable", http["enable"])
        return errors

    def _check_listeners(self, listeners: Mapping[str, Any]) -> list[dict[Any, Any]]:
        errors: list[dict[Any, Any]] = []
        for kind in ("tcp", "ssl", "ws", "wss"):
            named = listeners.get(kind)
            if not isinstance(named, Mapping):
                continue
            for name, listener in named.items():
                if not isinstance(listener, Mapping):
                    continue
                path = f"listeners.{kind}.{name}"
                if "enable" in listener and not self.image.at_least(versions.LISTENER_ENABLE_ALIAS):
                    # the field is `enabled` up to 5.0.x; 5.1.0 aliases `enable`, 5.1.1 renames it
                    errors.append(
                        unknown_fields(path, ["enable"], _TCP_LISTENER_FIELDS_50, list(listener), self.render.hocon)
                    )
                    continue
                if "bind" in listener:
                    errors += self.ip_port_field(f"{path}.bind", listener["bind"])
                for flag in ("enable", "enabled"):
                    if flag in listener:
                        errors += self.boolean(f"{path}.{flag}", listener[flag])
        return errors

    def _check_mqtt(self, mqtt: Mapping[str, Any]) -> list[dict[Any, Any]]:
        errors: list[dict[Any, Any]] = []
        if "max_packet_size" in mqtt:
            errors += self.bytesize_field("mqtt.max_packet_size", mqtt["max_packet_size"], self.max_packet_validator())
        if "idle_timeout" in mqtt:
            errors += self.duration_field("mqtt.idle_timeout", mqtt["idle_timeout"], infinity=True)
        return errors

    def max_packet_validator(self) -> Callable[[Any], Any] | None:
        if self.image.at_least(versions.MAX_PACKET_VALIDATOR_V2):
            limit = 268435455

            def validate_v2(size: Any) -> Any:
                if isinstance(size, int) and size < 1:
                    return {Atom("cause"): Atom("max_mqtt_packet_size_too_small"), Atom("minimum"): 1}
                if isinstance(size, int) and size > limit:
                    return {Atom("cause"): Atom("max_mqtt_packet_size_too_large"), Atom("maximum"): limit}
                return None if isinstance(size, int) else Atom("invalid_packet_size")

            return validate_v2
        if self.image.at_least(versions.MAX_PACKET_VALIDATOR):

            def validate_v1(size: Any) -> Any:
                if isinstance(size, int) and size < 1:
                    return {Atom("reason"): Atom("max_mqtt_packet_size_too_small"), Atom("minimum"): 1}
                if isinstance(size, int) and size > 268435456:
                    return {Atom("reason"): Atom("max_mqtt_packet_size_too_large"), Atom("maximum"): Charlist("256M")}
                return None if isinstance(size, int) else Atom("invalid_packet_size")

            return validate_v1
        return None

    def _check_authorization(self, authz: Mapping[str, Any]) -> list[dict[Any, Any]]:
        errors = self.strict("authorization", authz, _AUTHZ_FIELDS)
        if errors:
            return errors
        if "no_match" in authz:
            errors += self.enum("authorization.no_match", authz["no_match"], ("allow", "deny"))
        if "deny_action" in authz:
            errors += self.enum("authorization.deny_action", authz["deny_action"], ("ignore", "disconnect"))
        return errors

    def _check_api_key(self, api_key: Mapping[str, Any]) -> list[dict[Any, Any]]:
        return self.strict("api_key", api_key, ["bootstrap_file"])

    def _check_license(self, license_: Mapping[str, Any]) -> list[dict[Any, Any]]:
        return self.strict(
            "license",
            license_,
            ["key", "connection_low_watermark", "connection_high_watermark", "dynamic_max_connections"],
        )

    # ---- env
    def struct_fields(self, path: tuple[str, ...]) -> list[str] | None:
        """Field names (aliases included) of a struct the simulator knows completely, else None."""
        image = self.image
        if path == ("node",):
            fields = node_fields(image)
            return fields + ["db_role"] if image.at_least(versions.NODE_ROLE_FIELD) else fields
        if path == ("log",):
            modern = image.version >= (5, 0, 26) and not (image.enterprise and image.version < (5, 1, 0))
            if modern:
                return ["console", "console_handler", "file", "file_handlers", "throttling", "audit"]
            return ["console_handler", "file_handlers"]
        if path in (("log", "console"), ("log", "console_handler")):
            return list(_LOG_CONSOLE_FIELDS)
        if path == ("dashboard", "listeners", "http"):
            return list(_DASHBOARD_HTTP_FIELDS) + (["proxy_header"] if image.version >= (5, 0, 22) else [])
        if path == ("authorization",):
            return list(_AUTHZ_FIELDS)
        if path == ("api_key",):
            return ["bootstrap_file"]
        if path == ("license",):
            return ["key", "connection_low_watermark", "connection_high_watermark", "dynamic_max_connections"]
        return None

    def env_path_known(self, path: list[str]) -> bool | None:
        """hocon_tconf:check_env/4: True (apply), False (warn: unknown path of a known root),
        None (unknown root: silently ignored)."""
        if not path or path[0] not in self.roots:
            return None
        for depth in range(1, len(path)):
            fields = self.struct_fields(tuple(path[:depth]))
            if fields is not None and path[depth] not in fields:
                return False
        listener_enable = path[0] == "listeners" and len(path) >= 4 and path[1] in ("tcp", "ssl", "ws", "wss")
        # `enable` is no listener field before 5.1.0 (it is `enabled`)
        return not (listener_enable and path[3] == "enable" and not self.image.at_least(versions.LISTENER_ENABLE_ALIAS))


# --------------------------------------------------------------------------------------- defaults

# Schema defaults of the roots the simulator renders (a subset of 5.8's).
_DEFAULTS: ConfigDict = {
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
    "listeners": {},
    "mqtt": {"max_packet_size": "1MB", "max_clientid_len": 65535, "max_topic_levels": 128, "idle_timeout": "15s"},
    "api_key": {"bootstrap_file": ""},
    "authentication": [],
    "authorization": {
        "no_match": "allow",
        "deny_action": "ignore",
        "cache": {"enable": True, "max_size": 32},
        "sources": [],
    },
    "retainer": {"enable": True, "max_payload_size": "1MB", "msg_expiry_interval": "0s"},
    "prometheus": {"enable_basic_auth": False},
}
_ENTERPRISE_DEFAULTS: ConfigDict = {
    "license": {"key": "default", "connection_low_watermark": "75%", "connection_high_watermark": "80%"},
    "file_transfer": {"enable": False},
}
DEFAULT_BINDS = {"tcp": "0.0.0.0:1883", "ssl": "0.0.0.0:8883", "ws": "0.0.0.0:8083", "wss": "0.0.0.0:8084"}
LISTENER_DEFAULT_PORTS = {"tcp": 1883, "ssl": 8883, "ws": 8083, "wss": 8084}


def default_listener(image: EmqxImage, kind: str) -> ConfigDict:
    """emqx_schema:default_listener/1 (what ensure_default_listener adds from 5.0.25 / e5.0.3)."""
    listener: ConfigDict = {"bind": DEFAULT_BINDS[kind]}
    if kind in ("ws", "wss"):
        listener["websocket"] = {"mqtt_path": "/mqtt"}
    if kind in ("ssl", "wss"):
        listener["ssl_options"] = {
            "cacertfile": "${EMQX_ETC_DIR}/certs/cacert.pem",
            "certfile": "${EMQX_ETC_DIR}/certs/cert.pem",
            "keyfile": "${EMQX_ETC_DIR}/certs/key.pem",
        }
    return listener


def listener_field_defaults(image: EmqxImage, kind: str) -> ConfigDict:
    enable = "enable" if image.at_least(versions.LISTENER_FIELD_ENABLE) else "enabled"
    if image.at_least(versions.LISTENER_MAX_CONN_5M) and not image.at_least(versions.LISTENER_MAX_CONN_INFINITY_AGAIN):
        max_connections: Any = 5_000_000
    else:
        max_connections = "infinity"
    return {enable: True, "bind": LISTENER_DEFAULT_PORTS[kind], "acceptors": 16, "max_connections": max_connections}


def defaults(image: EmqxImage) -> ConfigDict:
    """Schema defaults of the roots the simulator renders, for this release."""
    result = copy.deepcopy(_DEFAULTS)
    if image.at_least(versions.LICENSE_ROOT):
        result.update(copy.deepcopy(_ENTERPRISE_DEFAULTS))
    if not image.at_least(versions.NODE_ROLE_FIELD):
        result["node"]["db_role"] = result["node"].pop("role")
    if image.version < (5, 0, 26) or (image.enterprise and image.version < (5, 1, 0)):
        log = result["log"]
        log["console_handler"] = log.pop("console")
        log["file_handlers"] = log.pop("file")
    if image.at_least(versions.SCHEMA_DEFAULT_LISTENERS):
        result["authorization"]["sources"] = [{"type": "file", "enable": True, "path": "${EMQX_ETC_DIR}/acl.conf"}]
    return result


def fill(image: EmqxImage, raw: Mapping[str, Any]) -> ConfigDict:
    """The raw config with defaults filled as hocon_tconf would (the subset the simulator models)."""
    result = deep_merge(defaults(image), raw)
    listeners = result.setdefault("listeners", {})
    if image.at_least(versions.SCHEMA_DEFAULT_LISTENERS):
        for kind in ("tcp", "ssl", "ws", "wss"):
            named = listeners.get(kind)
            if not isinstance(named, dict):
                named = listeners[kind] = {}
            if "default" not in named:
                named["default"] = default_listener(image, kind)
    for kind, named in list(listeners.items()):
        if kind not in LISTENER_DEFAULT_PORTS or not isinstance(named, dict):
            continue
        for name, listener in list(named.items()):
            if isinstance(listener, dict):
                named[name] = deep_merge(listener_field_defaults(image, kind), listener)
            elif listener in ("marked_for_deletion",):
                del named[name]
    return result
