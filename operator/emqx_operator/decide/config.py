"""The configuration: what emqx.conf holds, what forces a restart, and when to load it into EMQX (pure).

One rule above all: the mounted emqx.conf holds only configuration EMQX has accepted, or that a
rolling restart is introducing (the first node to boot with it proves it; a node that refuses it
stalls the rollout there). So a change EMQX can load at runtime is loaded first, with one
`PUT /api/v5/configs`, and reaches the ConfigMap only once EMQX accepted it; restart-needing keys
(node, rpc, cluster, the dashboard port) reach the pods through the restart hash after that; and
before 5.1.1, which has no config API, every change is a rolling restart.

A refusal is remembered with the EMQX release that refused it, so the same body is never sent to
the same release twice, and a new release (an upgrade) gets it again.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from emqx_operator.model import ConfigPut, EmqxView, Event, World
from kubectl_emqx.domain import builders, hocon, versions
from kubectl_emqx.domain.redact import REDACTED, SENSITIVE_CONFIG_KEY, redact_config
from kubectl_emqx.domain.spec import EmqxSpec
from kubectl_emqx.domain.versions import Version
from kubectl_emqx.domain.vocabulary import CONFIG_KEY, format_time, object_names, parse_time

LIVE_REFRESH_SECONDS = 600.0
LIVE_PARSES_KEPT = 16  # distinct live texts whose parse is kept (see _live_shown)
# Roots shown in status.config.live beside those the resource sets: what users look at most.
ALWAYS_SHOWN_ROOTS = ("listeners", "dashboard")
# What 5.0.x answers GET /configs with (JSON, these roots only).
LEGACY_JSON_ROOTS = ("dashboard", "alarm", "sys_topics", "sysmon", "log", "broker")


@dataclass(frozen=True)
class Release:
    """The EMQX the cluster runs (what EMQX reports when every node agrees, else the image's)."""

    edition: str
    version: Version

    @property
    def label(self) -> str:
        return f"{self.edition} {versions.format_version(self.version)}"


def running_release(spec: EmqxSpec, emqx: EmqxView) -> Release:
    running = emqx.running()
    reported = {(str(n.get("edition") or ""), str(n.get("version") or "")) for n in running.values()}
    if len(reported) == 1:
        edition, version_text = next(iter(reported))
        try:
            version = versions.parse_version(version_text)
        except ValueError:
            version = spec.image_info.version
        if edition not in versions.EDITIONS:  # before 5.0.12 EMQX does not report its edition
            edition = spec.image_info.edition
        return Release(edition, version)
    return Release(spec.image_info.edition, spec.image_info.version)


@dataclass(frozen=True)
class ConfigPlan:
    configmap_text: str  # the whole emqx.conf
    restart_hash: str  # for the pod templates
    put: ConfigPut | None
    status: dict[str, Any]  # status.config, as if `put` succeeds
    condition: tuple[bool, str, str] | None  # ConfigApplied, when already known (else after the rollout)
    events: tuple[Event, ...] = ()
    omitted_roots: tuple[str, ...] = ()
    live_part_empty: bool = False
    # emqx.conf keeps older text this pass (until EMQX accepts the new one): not Ready yet, whatever
    # EMQX runs, so that nothing is left to write once the resource says it is.
    file_pending: bool = False


def spec_hash(spec: EmqxSpec) -> str:
    return hocon.stable_hash(spec.config)


def plan(spec: EmqxSpec, world: World, emqx: EmqxView, old_status: dict[str, Any], generation: int) -> ConfigPlan:
    old = dict(old_status.get("config") or {})
    desired = spec_hash(spec)
    release = running_release(spec, emqx)
    status: dict[str, Any] = {k: v for k, v in old.items()
                              if k in ("appliedHash", "appliedGeneration", "rejected", "live", "liveObservedAt",
                                       "liveHash")}
    live_configmap = world.live("ConfigMap", object_names(spec.name).configmap)
    live_text = ((live_configmap or {}).get("data") or {}).get(CONFIG_KEY)
    desired_text = builders.config_file_text(spec)

    def with_text(text: str) -> str:
        """restart hash of a ConfigMap text (ours: parse it back; the resource's: no parsing needed)."""
        if text == desired_text:
            return builders.config_restart_hash(spec)
        try:
            return builders.config_restart_hash(spec, hocon.parse(text))
        except hocon.HoconError:
            return builders.config_restart_hash(spec)

    if not versions.supports_config_put(release.version) or not versions.supports_config_put(spec.image_info.version):
        # No config API: every change is a rolling restart with the new file (finish() judges it).
        status["method"] = "RollingRestart"
        return ConfigPlan(desired_text, builders.config_restart_hash(spec), None, status, None)

    status["method"] = "API"
    live_part = hocon.live_subset(spec.config, release.version)
    omitted = tuple(versions.unknown_roots(release.edition, live_part))
    for root in omitted:
        live_part.pop(root, None)
    applied = old.get("appliedHash") == desired
    if applied or live_configmap is None or not live_part:
        # Nothing to load live: already loaded, a new cluster (nodes boot with the file), or only
        # restart-needing keys changed (no PUT: an empty body is an error in EMQX).
        if not applied:
            status.update(appliedHash=desired, appliedGeneration=generation)
            status.pop("rejected", None)
            status.pop("liveObservedAt", None)
        return ConfigPlan(desired_text, builders.config_restart_hash(spec), None, status, None,
                          omitted_roots=omitted, live_part_empty=not live_part)

    # A change EMQX can load at runtime: the file keeps what EMQX accepted until EMQX accepts this.
    kept_text = live_text if live_text is not None else desired_text
    restart = with_text(kept_text)
    mode = spec.config_mode.lower()
    body = hocon.dump(live_part)
    body_hash = hocon.stable_hash([body, mode])
    rejected = old.get("rejected") or {}
    pending = kept_text != desired_text
    if rejected.get("hash") == body_hash and rejected.get("target") == release.label:
        message = str(rejected.get("message") or "EMQX rejected the configuration")
        return ConfigPlan(kept_text, restart, None, status, (False, "ConfigRejected", message), omitted_roots=omitted,
                          file_pending=pending)
    waiting = _why_not_now(spec, emqx)
    if waiting is not None:
        return ConfigPlan(kept_text, restart, None, status, waiting, omitted_roots=omitted, file_pending=pending)
    put = ConfigPut(
        text=body, mode=mode,
        ignore_readonly=True if versions.supports_ignore_readonly(release.version) else None,
        hash=body_hash, target=release.label,
    )
    status.update(appliedHash=desired, appliedGeneration=generation)
    status.pop("rejected", None)
    status.pop("liveObservedAt", None)  # read the live config again right away
    message = f"configuration of generation {generation} loaded into the cluster ({mode} mode)"
    if omitted:
        message += _omitted_note(omitted, release)
    condition = (True, "Applied", message)
    if restart != builders.config_restart_hash(spec):
        # Restart keys changed too: they reach the nodes by a rolling restart, which starts once EMQX
        # took the rest (the next pass writes the new file and restart hash).
        condition = (False, "RollingRestart", f"{message}; node, rpc, cluster or dashboard port settings restart "
                     "the nodes next")
    return ConfigPlan(kept_text, restart, put, status, condition, events=(Event("Normal", "ConfigApplied", message),),
                      omitted_roots=omitted, file_pending=pending)


def _why_not_now(spec: EmqxSpec, emqx: EmqxView) -> tuple[bool, str, str] | None:
    """A configuration is loaded only into a whole cluster of one release: EMQX copies the cluster
    config to nodes that join later, and mixed versions may read it differently."""
    if not emqx.answered:
        return False, "WaitingForCluster", "waiting for EMQX's API to load the configuration"
    running = emqx.running()
    releases = sorted({str(n.get("version")) for n in running.values()})
    if len(releases) > 1:
        return False, "WaitingForUpgrade", ("configuration changes wait while nodes run mixed versions "
                                            f"({', '.join(releases)})")
    cores = [n for n in running.values() if n.get("role") == "core"]
    if len(cores) < spec.core.replicas:
        return False, "WaitingForCluster", (f"waiting for every core to run before loading the configuration "
                                            f"({len(cores)}/{spec.core.replicas})")
    return None


def _omitted_note(roots: tuple[str, ...], release: Release) -> str:
    return (f"; left out {', '.join(roots)}: EMQX {release.label} has no such root (it stays in emqx.conf, "
            "which EMQX reads with a warning at boot)")


def previous_applied(old_status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dict(old_status.get("config") or {}).items() if k in ("appliedHash", "appliedGeneration")}


def finish(spec: EmqxSpec, plan_: ConfigPlan, emqx: EmqxView, old_status: dict[str, Any], generation: int,
           rolled_out: bool, now: Any) -> tuple[dict[str, Any], tuple[bool, str, str]]:
    """The ConfigApplied condition for changes applied by restart (and the live view), once the
    rollout's state is known. `rolled_out`: every pod runs the current restart hash and is back."""
    status = dict(plan_.status)
    _record_live(spec, emqx, status, now)
    release = running_release(spec, emqx)
    if plan_.condition is not None:
        return status, plan_.condition
    desired = spec_hash(spec)
    if status.get("method") == "RollingRestart":
        what = f"EMQX {versions.format_version(release.version)} has no config API (before 5.1.1): "
        if not rolled_out:
            return status, (False, "RollingRestart", what + "applying the configuration by a rolling restart")
        status.update(appliedHash=desired, appliedGeneration=generation)
        drift = overridden(spec, emqx, status) if release.version < (5, 0, 23) else []
        if drift:
            return status, (False, "OverriddenInEMQX", (
                "EMQX runs other values than the resource sets for " + ", ".join(drift)
                + ": before 5.0.23 settings changed through the Dashboard or API win over emqx.conf; change "
                "them there too (or remove data/configs/cluster-override.conf)"))
        return status, (True, "AppliedByRestart", what + "the configuration is applied by a rolling restart")
    if not rolled_out and not emqx.running():
        return status, (False, "NodesStarting", "the nodes start with this configuration (emqx.conf in the ConfigMap)")
    if not rolled_out:
        return status, (False, "RollingRestart", "restarting nodes for node, rpc, cluster or dashboard port settings")
    message = _applied_message(old_status, generation)
    if plan_.omitted_roots:
        message += _omitted_note(plan_.omitted_roots, release)
    return status, (True, "Applied", message)


def _applied_message(old_status: dict[str, Any], generation: int) -> str:
    old: dict[str, Any] = next((c for c in old_status.get("conditions") or [] if c.get("type") == "ConfigApplied"),
                               {})
    if old.get("status") == "True" and old.get("reason") == "Applied" and old.get("message"):
        return str(old["message"])
    return f"the configuration of generation {generation} is applied"


def live_read_due(old_status: dict[str, Any], now: Any) -> bool:
    """Whether observe should read GET /configs this pass (status.config.live is refreshed when the
    applied configuration changed, and at most every LIVE_REFRESH_SECONDS otherwise)."""
    config = old_status.get("config") or {}
    observed = parse_time(config.get("liveObservedAt"))
    if observed is None or config.get("liveHash") != config.get("appliedHash"):
        return True
    return (now - observed).total_seconds() >= LIVE_REFRESH_SECONDS


def _record_live(spec: EmqxSpec, emqx: EmqxView, status: dict[str, Any], now: Any) -> None:
    if emqx.live_config is None:
        return
    roots = set(spec.config) | set(ALWAYS_SHOWN_ROOTS)
    live = _live_shown(emqx, roots)
    if live is None:
        return
    status["live"] = hocon.dump(redact_config({k: v for k, v in live.items() if k in roots}))
    status["liveObservedAt"] = format_time(now)
    status["liveHash"] = status.get("appliedHash")


def parse_live(emqx: EmqxView, roots: Iterable[str] | None = None) -> dict[str, Any] | None:
    """EMQX's live configuration as data; with `roots`, at least those roots (HOCON text is scanned
    and only their statements parsed: the whole text is large, and parsing it was most of the CPU a
    pass spent on a new cluster)."""
    if emqx.live_config is None:
        return None
    try:
        if emqx.live_config_format == "json":
            data = json.loads(emqx.live_config)
            return dict(data) if isinstance(data, dict) else None
        if roots is not None:
            try:
                return hocon.parse(hocon.select_roots(emqx.live_config, roots), remember=False)
            except hocon.HoconError:
                pass  # the scan misread the text: parse it whole
        return hocon.parse(emqx.live_config, remember=False)
    except (ValueError, hocon.HoconError):
        return None


def _live_shown(emqx: EmqxView, roots: set[str]) -> dict[str, Any] | None:
    """The roots of the live configuration that status.config.live shows, before redaction. EMQX's
    HOCON answer holds the dashboard's generated password in clear (emqx_conf_cli:get_config/0 fills
    defaults and obfuscates nothing, 5.1.1-5.8.9), so no two clusters send the same text; with the
    secret-looking values masked first (status.config.live redacts them anyway), clusters that run
    the same listeners and dashboard settings share one parse. A parse costs ~20 ms (pyhocon builds
    its grammar each time): a fifth of the operator's CPU while 500 new clusters were created."""
    if emqx.live_config is not None and emqx.live_config_format != "json":
        try:
            return copy.deepcopy(_parse_masked(masked_secrets(hocon.select_roots(emqx.live_config, roots))))
        except hocon.HoconError:
            pass  # the scan misread the text: parse_live parses it whole
    return parse_live(emqx, roots)


# `key = value` at the start of a line (EMQX prints one setting per line): a secret-looking key's
# scalar value. Objects and arrays are left to redact_config.
_SETTING = re.compile(r'^(?P<lead>[ \t]*(?:[\w-]+\.)*(?P<key>[\w-]+|"[^"\n]*")[ \t]*[=:][ \t]*)'
                      r'(?P<value>"(?:[^"\\\n]|\\.)*"|[^\s"{\[][^\n,}#]*)', re.M)


def masked_secrets(text: str) -> str:
    """HOCON text with the scalar values of secret-looking keys replaced by REDACTED, so that
    redact_config(parse(masked_secrets(t))) == redact_config(parse(t)). Text with multi-line strings
    is left as it is (a line inside one is not a setting)."""
    if '"""' in text:
        return text

    def mask(match: re.Match[str]) -> str:
        if SENSITIVE_CONFIG_KEY.search(match.group("key").strip('"')):
            return f'{match.group("lead")}"{REDACTED}"'
        return match.group(0)

    return _SETTING.sub(mask, text)


@functools.lru_cache(maxsize=LIVE_PARSES_KEPT)
def _parse_masked(text: str) -> dict[str, Any]:
    """Kept apart from hocon.parse's cache, whose entries are the small texts parsed every pass."""
    return hocon.parse(text, remember=False)


def overridden(spec: EmqxSpec, emqx: EmqxView, status: dict[str, Any]) -> list[str]:
    """Paths the resource sets that EMQX runs with another value (read back from GET /configs)."""
    live = parse_live(emqx, spec.config)
    if live is None:
        return []
    wanted = hocon.flatten({k: v for k, v in spec.config.items() if k in live})
    running = hocon.flatten(live)
    return sorted(path for path, value in wanted.items()
                  if path in running and _normal(running[path]) != _normal(value))


def _normal(value: Any) -> str:
    return str(value).strip().strip('"').lower()


def describe_config_error(text: str) -> str:
    """EMQX's PUT /configs error body, readable: JSON is compacted, Erlang charlists (lists of
    character codes, as 5.3.2 returns `path` and other fields) become text."""
    try:
        body = json.loads(text)
    except ValueError:
        return " ".join(text.split())
    body = body.get("errors", body) if isinstance(body, dict) else body
    readable = _charlists_to_text(body)
    if isinstance(readable, str):
        return " ".join(readable.split())
    return json.dumps(readable, sort_keys=True, ensure_ascii=False)


def _charlists_to_text(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(c, int) and not isinstance(c, bool) and 9 <= c < 0x110000
                                                 for c in value):
        try:
            return "".join(chr(c) for c in value)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_charlists_to_text(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _charlists_to_text(v) for k, v in value.items()}
    return value


