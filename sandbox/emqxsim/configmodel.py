"""EMQX's configuration as a node assembles it and as the management API exposes it (emqx-api.md §3).

- Boot layers (emqx_config:init_load/3): from 5.0.23 / e5.0.3 `defaults < cluster.hocon < emqx.conf <
  env`; before, and on any node whose data dir still holds data/configs/cluster-override.conf
  (has_deprecated_file/0), `defaults < emqx.conf < env < cluster-override.conf`: there changes made
  through the API beat the mounted file even after a restart.
- GET /configs: JSON of most roots in 5.0.x, of six roots from 5.1.0, HOCON by default from 5.1.1.
- PUT /configs (5.1.1+): each release's own checks and answer, which changed several times: see
  `put_configs`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import schema, versions
from .erlterm import Atom, Binary, Charlist, NotJson, Tuple, best_effort_json, format_0p, format_p, jsx_encode
from .hocon import ConfigDict, Dialect, HoconError, deep_merge, dump_hocon, parse
from .schema import erl
from .versions import EmqxImage

HIDDEN_ROOTS = frozenset({"trace", "stats", "broker", "plugins", "zones", "persistent_session_store"})
SENSITIVE_KEYS = frozenset({"default_password", "key", "password", "cookie"})
# GET /configs (JSON) in 5.0.x: every root but these (emqx_mgmt_api_configs ?EXCLUDES, 5.0.20).
_JSON_EXCLUDES_50 = frozenset(
    {
        "exhook",
        "gateway",
        "plugins",
        "bridges",
        "rule_engine",
        "authorization",
        "authentication",
        "rpc",
        "db",
        "connectors",
        "slow_subs",
        "psk_authentication",
        "topic_metrics",
        "rewrite",
        "auto_subscribe",
        "retainer",
        "statsd",
        "delayed",
        "event_message",
        "prometheus",
        "telemetry",
        "listeners",
        "license",
        "api_key",
        "mqtt",
        "stats",
        "flapping_detect",
        "force_shutdown",
        "force_gc",
        "conn_congestion",
        "overload_protection",
    }
)


def json_roots(image: EmqxImage) -> tuple[str, ...]:
    """Roots of GET /configs as JSON (5.1.0+) and of the per-root GET/PUT /configs/{root}."""
    roots: tuple[str, ...] = ("dashboard", "alarm", "sys_topics", "sysmon", "log")
    if image.version >= (5, 5, 0):
        roots += ("broker",)
    if image.enterprise and image.version >= (5, 1, 0):
        roots += ("file_transfer",)
    return roots


# ------------------------------------------------------------------------------------------ layers


@dataclass
class Layers:
    """The config sources of one node at boot."""

    defaults: ConfigDict
    conf_file: ConfigDict
    env: ConfigDict
    # data/configs/cluster.hocon (5.0.23+) or cluster-override.conf (older, or upgraded from older)
    cluster: ConfigDict
    deprecated_order: bool

    def raw(self) -> ConfigDict:
        if self.deprecated_order:
            ordered = [self.conf_file, self.env, self.cluster]
        else:
            ordered = [self.cluster, self.conf_file, self.env]
        config = copy.deepcopy(self.defaults)
        for layer in ordered:
            config = deep_merge(config, layer)
        return config


def running_config(image: EmqxImage, layers: Layers) -> ConfigDict:
    return schema.fill(image, layers.raw())


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


def render_json(image: EmqxImage, config: ConfigDict, root: str | None = None) -> dict[str, Any]:
    if image.version < (5, 1, 0):
        roots = [key for key in config if key not in _JSON_EXCLUDES_50]
    else:
        roots = [key for key in json_roots(image) if key in config]
    return {key: _masked(config[key]) for key in roots if root is None or key == root}


# --------------------------------------------------------------------------------------- PUT /configs


@dataclass
class PutOutcome:
    """The answer to PUT /api/v5/configs and, when it applies anything, the roots to apply."""

    status: int
    content_type: str | None
    body: str
    apply: ConfigDict = field(default_factory=dict)
    # roots whose update fails after the checks (applied nowhere)
    failed: list[str] = field(default_factory=list)


def _group(image: EmqxImage) -> str:
    version, ee = image.version, image.edition is versions.Edition.ENTERPRISE and image.version < (5, 9, 0)
    if version < (5, 1, 2) and not ee:
        return "5.1.1"
    if version < (5, 4, 0):
        return "5.1.2"
    if version < (5, 5, 0):
        return "5.4"
    if version < (5, 7, 0):
        return "5.5"
    if version < (5, 7, 2):
        return "5.7.0"
    return "5.7.2"


# The top stack frames of a PUT with no body: (first line of emqx_conf_cli:load_config/2, line of
# the call in emqx_mgmt_api_configs:configs/3, line of erlang:apply/3 in minirest_handler), from
# the first release with those numbers on. minirest formats the exception as "~p, ~0p, ~0p" of
# class, reason and stacktrace (frames below minirest are left out here).
_FRAMES_CE: list[tuple[versions.Version, tuple[int, int, int]]] = [
    ((5, 1, 1), (194, 345, 111)),
    ((5, 1, 2), (194, 347, 111)),
    ((5, 3, 0), (212, 347, 123)),
    ((5, 3, 2), (212, 356, 123)),
    ((5, 4, 0), (217, 356, 137)),
    ((5, 4, 1), (217, 375, 137)),
    ((5, 5, 0), (217, 364, 137)),
    ((5, 6, 0), (223, 365, 152)),
    ((5, 7, 0), (224, 369, 152)),
    ((5, 7, 1), (225, 369, 158)),
    ((5, 8, 0), (316, 369, 158)),
    ((5, 8, 1), (316, 369, 177)),
    ((5, 8, 2), (318, 369, 177)),
    ((5, 8, 5), (319, 369, 177)),
    ((5, 8, 7), (319, 369, 192)),
]
_FRAMES_EE: list[tuple[versions.Version, tuple[int, int, int]]] = [
    ((5, 1, 1), (194, 347, 111)),
    ((5, 3, 0), (212, 347, 123)),
    ((5, 3, 2), (212, 356, 123)),
    ((5, 4, 0), (217, 375, 137)),
    ((5, 5, 0), (217, 364, 137)),
    ((5, 6, 0), (223, 365, 152)),
    # e5.7.x-e5.8.7 are not in the mirror: as the Community release of the same number
    ((5, 7, 0), (224, 369, 152)),
    ((5, 7, 1), (225, 369, 158)),
    ((5, 8, 0), (316, 369, 158)),
    ((5, 8, 1), (316, 369, 177)),
    ((5, 8, 2), (318, 369, 177)),
    ((5, 8, 5), (319, 369, 177)),
    ((5, 8, 7), (319, 369, 192)),
    ((5, 9, 0), (304, 331, 177)),
    ((5, 9, 1), (307, 331, 192)),
    ((5, 10, 0), (306, 331, 192)),
    ((5, 10, 4), (321, 336, 192)),
]


def _frame_lines(image: EmqxImage) -> tuple[int, int, int]:
    table = _FRAMES_EE if image.edition is versions.Edition.ENTERPRISE else _FRAMES_CE
    lines = table[0][1]
    for since, item in table:
        if image.version >= since:
            lines = item
    return lines


def _internal_error(message: str) -> PutOutcome:
    return PutOutcome(500, "application/json", json.dumps({"code": "INTERNAL_ERROR", "message": message}))


def _exception_message(kind: str, reason: Any, frames: list[Any]) -> str:
    return f"{format_p(Atom(kind))}, {format_0p(reason)}, {format_0p(frames)}"


def _function_clause(image: EmqxImage, group: str, mode: str, ignore_readonly: bool | None) -> PutOutcome:
    opts: dict[Any, Any] = {Atom("log"): Atom("none"), Atom("mode"): Atom(mode)}
    if group in ("5.7.0", "5.7.2"):
        opts[Atom("ignore_readonly")] = bool(ignore_readonly)
    args: Any = Atom(mode) if group == "5.1.1" else opts
    cli_line, api_line, minirest_line = _frame_lines(image)

    def frame(module: str, function: str, arity_or_args: Any, file: str, line: int) -> Tuple:
        location = [Tuple((Atom("file"), Charlist(file))), Tuple((Atom("line"), line))]
        return Tuple((Atom(module), Atom(function), arity_or_args, location))

    frames = [
        frame("emqx_conf_cli", "load_config", [{}, args], "emqx_conf_cli.erl", cli_line),
        frame("emqx_mgmt_api_configs", "configs", 3, "emqx_mgmt_api_configs.erl", api_line),
        frame("minirest_handler", "apply_callback", 3, "minirest_handler.erl", minirest_line),
    ]
    return _internal_error(_exception_message("error", Atom("function_clause"), frames))


def _thrown(image: EmqxImage, errors: list[Any]) -> PutOutcome:
    """An uncaught throw from emqx_config:fill_defaults/1 (5.4.0+), caught by minirest."""
    term = Tuple((Atom(image.schema_module), errors))
    frame = Tuple((Atom("hocon_tconf"), Atom("assert"), 2, []))
    return _internal_error(_exception_message("throw", term, [frame]))


def _readonly_keys(image: EmqxImage, roots: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(root keys, cluster sub-keys) the release refuses to change at runtime."""
    if image.at_least(versions.READONLY_CLUSTER_SUBKEYS):
        root_keys = [key for key in ("rpc", "node") if key in roots]
        cluster = roots.get("cluster")
        sub = sorted(f"cluster.{key}" for key in cluster if key != "links") if isinstance(cluster, Mapping) else []
        return root_keys, sub
    return [key for key in ("cluster", "rpc", "node") if key in roots], []


def _schema_errors(model: schema.Schema, roots: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """check_config_schema/1: per root in sorted order, a compacted error (hocon's first error with
    unshown_errors_count), or {root_key_not_found, Key}; accumulated newest first."""
    errors: list[tuple[str, Any]] = []
    for key in sorted(roots):
        if key not in model.roots:
            errors.insert(0, (key, Tuple((Atom("root_key_not_found"), Binary(key)))))
            continue
        found = model.check_root(key, roots[key])
        if found:
            first = dict(found[0])
            if len(found) > 1:
                first[Atom("unshown_errors_count")] = len(found) - 1
            errors.insert(0, (key, first))
    return errors


def _parse_reason(image: EmqxImage, error: HoconError) -> Any:
    return error.erlang_reason(Dialect(image.hocon_version))


def put_configs(
    image: EmqxImage,
    body: bytes | None,
    mode: str,
    ignore_readonly: bool,
    current: ConfigDict,
) -> PutOutcome:
    """PUT /api/v5/configs as emqx_mgmt_api_configs + emqx_conf_cli of the release answer it.

    `body` None means no body at all (Content-Length 0): minirest then passes an empty map, which
    emqx_conf_cli:load_config/2 has no clause for.
    """
    group = _group(image)
    model = schema.Schema(image)
    if body is None:
        return _function_clause(image, group, mode, ignore_readonly)
    text = body.decode("utf-8", "replace")
    try:
        parsed = parse(text, Dialect(image.hocon_version))
    except HoconError as error:
        reason = _parse_reason(image, error)
        if group == "5.1.1":
            return _update_failed(format_p(reason))
        if group in ("5.1.2", "5.4", "5.5"):
            # minirest cannot encode the tuple body: the handler crashes, Cowboy answers 500, no body
            return PutOutcome(500, None, "")
        if group == "5.7.0" or error.kind not in ("scan_error", "parse_error"):
            return _errors_400(reason)
        detail = {"line": error.line or 0, "reason": error.reason, "type": error.kind}
        return PutOutcome(400, "text/plain", json.dumps({"errors": detail}, separators=(",", ":")))

    allow_ignore = image.at_least(versions.IGNORE_READONLY) and ignore_readonly
    if group in ("5.4", "5.5"):
        # 5.4-5.6 fill defaults first, unguarded: an unknown field is an uncaught throw (500)
        thrown = _first_unknown_fields(model, parsed)
        if thrown is not None:
            return _thrown(image, thrown)
    root_keys, cluster_keys = _readonly_keys(image, parsed)
    if root_keys or cluster_keys:
        if allow_ignore:
            parsed = {key: value for key, value in parsed.items() if key not in root_keys}
            if cluster_keys:
                links = {key: value for key, value in parsed["cluster"].items() if key == "links"}
                parsed["cluster"] = links
                if not links:
                    parsed.pop("cluster")
        else:
            return _readonly_error(group, root_keys or cluster_keys)
    if group in ("5.7.0", "5.7.2"):
        thrown = _first_unknown_fields(model, parsed)
        if thrown is not None:
            return _thrown(image, thrown)
    errors = _schema_errors(model, parsed)
    if errors:
        return _schema_error_response(group, errors)
    to_apply = {key: value for key, value in parsed.items() if key != "cluster" or group == "5.7.2"}
    failures = _apply_failures(to_apply, current)
    if failures and group != "5.1.1":
        text = "".join(
            _failure_text(group, key, to_apply[key], current.get(key), mode, reason) for key, reason in failures
        )
        if group in ("5.7.0", "5.7.2"):
            return PutOutcome(
                400,
                "text/plain",
                best_effort_json({Atom("errors"): Binary(text)}),
                {k: v for k, v in to_apply.items() if k not in dict(failures)},
                [key for key, _ in failures],
            )
        return PutOutcome(
            400,
            "text/plain",
            text,
            {k: v for k, v in to_apply.items() if k not in dict(failures)},
            [key for key, _ in failures],
        )
    # 5.1.1 ignores failed roots (lists:foreach) and answers 200 all the same
    applied = {key: value for key, value in to_apply.items() if key not in dict(failures)}
    return PutOutcome(200, None, "", applied, [key for key, _ in failures])


def _update_failed(message: str) -> PutOutcome:
    return PutOutcome(400, "application/json", json.dumps({"code": "UPDATE_FAILED", "message": message}))


def _errors_400(errors: Any) -> PutOutcome:
    return PutOutcome(400, "text/plain", best_effort_json({Atom("errors"): errors}))


def _first_unknown_fields(model: schema.Schema, parsed: Mapping[str, Any]) -> list[Any] | None:
    for key, value in parsed.items():
        if key in model.roots:
            found = model.unknown_field_errors(key, value)
            if found:
                return found
    return None


def _readonly_error(group: str, keys: list[str]) -> PutOutcome:
    if group == "5.1.1":
        return _update_failed(format_p(Charlist("update_readonly_keys_prohibited")))
    if group in ("5.1.2", "5.4"):
        return PutOutcome(400, "text/plain", jsx_encode(Charlist("update_readonly_keys_prohibited")))
    if group == "5.5":
        return PutOutcome(400, "text/plain", "update_readonly_keys_prohibited")
    return _errors_400(Binary(f"Cannot update read-only key '{','.join(keys)}'."))


def _schema_error_response(group: str, errors: list[tuple[str, Any]]) -> PutOutcome:
    if group == "5.1.1":
        term = errors[0][1] if len(errors) == 1 else [Tuple((Binary(key), reason)) for key, reason in errors]
        return _update_failed(format_p(term))
    if group == "5.1.2":
        term = [Tuple((Binary(key), reason)) for key, reason in errors]
        try:
            return PutOutcome(400, "text/plain", jsx_encode(term))
        except NotJson:
            return PutOutcome(500, "text/plain", "invalid json term: " + format_p(term, 20))
    if group in ("5.4", "5.5"):
        jsonable = {Binary(key): _binary_strings(reason) for key, reason in errors}
        try:
            return PutOutcome(400, "text/plain", jsx_encode(jsonable))
        except NotJson:
            return PutOutcome(500, "text/plain", "invalid json term: " + format_p(jsonable, 20))
    return _errors_400([Tuple((Binary(key), reason)) for key, reason in errors])


def _binary_strings(term: Any) -> Any:
    """emqx_utils_maps:jsonable_map/2 with binary_string/1: printable charlists become binaries."""
    if isinstance(term, Mapping):
        return {(Binary(k) if isinstance(k, Charlist) else k): _binary_strings(v) for k, v in term.items()}
    if isinstance(term, Charlist):
        return Binary(term) if term else []
    if isinstance(term, list):
        return [_binary_strings(item) for item in term]
    return term


def _apply_failures(roots: Mapping[str, Any], current: ConfigDict) -> list[tuple[str, Any]]:
    """Roots whose update the config handler refuses after the schema check. Modelled: enabling the
    dashboard's HTTPS listener without certificate files (emqx_dashboard_listener_config
    ensure_ssl_cert: <<"ssl_cert_not_found">>)."""
    failures: list[tuple[str, Any]] = []
    dashboard = roots.get("dashboard")
    if isinstance(dashboard, Mapping):
        merged = deep_merge(current.get("dashboard") or {}, dashboard)
        https = (merged.get("listeners") or {}).get("https") or {}
        if isinstance(https, Mapping) and https.get("bind", 0) not in (0, "0"):
            ssl = https.get("ssl_options") or {}
            if not (isinstance(ssl, Mapping) and ssl.get("certfile") and ssl.get("keyfile")):
                failures.append(("dashboard", Binary("ssl_cert_not_found")))
    return failures


def _failure_text(group: str, key: str, new: Any, old: Any, mode: str, reason: Any) -> str:
    """emqx_conf_cli:check_res/5's message for a root that failed to update (hocon_pp approximated)."""
    warning = f"Can't {mode} the new configurations!\nRoot key: {key}\nReason: {format_p(reason, 9)}\n"
    active = f"The effective configurations:\n```\n{dump_hocon({key: old or {}})}```\n\n"
    failed = f"Try to {mode} with:\n```\n{dump_hocon({key: new})}```\n"
    message = active + failed
    if group == "5.1.2":
        return warning + message
    return message + "\n" + warning


def apply_roots(config: ConfigDict, roots: Mapping[str, Any], mode: str, defaults: Mapping[str, Any]) -> ConfigDict:
    updated = dict(config)
    for root, value in roots.items():
        if mode == "merge" and isinstance(value, Mapping) and isinstance(updated.get(root), Mapping):
            updated[root] = deep_merge(updated[root], value)
        elif root == "dashboard" and isinstance(value, Mapping) and isinstance(updated.get(root), Mapping):
            # the dashboard handler deep-merges whatever the mode (pre_config_update/3)
            updated[root] = deep_merge(updated[root], value)
        elif isinstance(value, Mapping) and isinstance(defaults.get(root), Mapping):
            updated[root] = deep_merge(defaults[root], value)
        else:
            updated[root] = copy.deepcopy(value)
    return updated


# ------------------------------------------------------------------------ PUT /configs/{root} (JSON)


def check_root_update(image: EmqxImage, root: str, value: Any) -> str | None:
    """The UPDATE_FAILED message of PUT /configs/{root} (`~p` of the compacted error), or None."""
    errors = schema.Schema(image).check_root(root, value)
    if not errors:
        return None
    first = dict(errors[0])
    if len(errors) > 1:
        first[Atom("unshown_errors_count")] = len(errors) - 1
    return format_p(first)


def as_erlang(value: Any) -> Any:
    return erl(value)
