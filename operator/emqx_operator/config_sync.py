"""Hot configuration: load the resource's HOCON into the running cluster through EMQX's API.

EMQX replicates a `PUT /api/v5/configs` to every node, so one call on one core is enough; nodes
that boot later read emqx.conf from the ConfigMap (and copy the cluster config from a core).
Restart-needing keys are not EMQX's business here: they are in the pods' restart hash, so the
rollout restarts the nodes for them. A config is PUT once per change (tracked by hash in status),
which is why changes made through the Dashboard to keys the resource does not set survive.
"""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from emqx_operator.observe import EmqxView
from kubectl_emqx.domain import hocon, versions
from kubectl_emqx.domain import spec as spec_mod
from kubectl_emqx.emqx.api import EmqxApiError

log = logging.getLogger("emqx_operator.config_sync")
LIVE_REFRESH_SECONDS = 300.0
# Roots shown in status.config.live beside those the resource sets: what users look at most.
ALWAYS_SHOWN_ROOTS = ("listeners", "dashboard")


@dataclass
class ConfigOutcome:
    status: dict[str, Any]
    condition: tuple[bool, str, str]
    events: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return self.condition[0]


def payload(spec: spec_mod.EmqxSpec) -> tuple[str, dict[str, str] | None]:
    """The HOCON to PUT and the query flags, per the targeted EMQX version's rules."""
    version = spec.image_info.version
    config = spec.config
    if versions.supports_ignore_readonly(version):
        return hocon.dump(config), {"ignore_readonly": "true"}
    return hocon.dump(hocon.read_only_roots_stripped(config, version)), None


def sync(spec: spec_mod.EmqxSpec, view: EmqxView, old_status: dict[str, Any], generation: int,
         cluster_settled: bool, versions_mixed: bool) -> ConfigOutcome:
    old = dict(old_status.get("config") or {})
    desired_hash = hocon.stable_hash(spec.config)
    version = spec.image_info.version
    status = {k: v for k, v in old.items() if k in ("appliedHash", "appliedGeneration", "rejectedHash", "live",
                                                    "liveObservedAt", "method")}
    old_message = next((c.get("message", "") for c in old_status.get("conditions") or []
                        if c.get("type") == "ConfigApplied"), "")

    if not versions.supports_config_put(version):
        status["method"] = "RollingRestart"
        if cluster_settled:
            status.update(appliedHash=desired_hash, appliedGeneration=generation)
            return ConfigOutcome(status, (True, "AppliedByRestart",
                                          f"EMQX {versions.format_version(version)} has no config API (before 5.1.1): "
                                          "the configuration is applied by a rolling restart with the new ConfigMap"))
        return ConfigOutcome(status, (False, "RollingRestart",
                                      f"EMQX {versions.format_version(version)} has no config API (before 5.1.1): "
                                      "applying the configuration by a rolling restart"))
    status["method"] = "API"
    if old.get("appliedHash") == desired_hash:
        return ConfigOutcome(status, (True, "Applied", old_message or "the configuration is applied"))
    if old.get("rejectedHash") == desired_hash:
        return ConfigOutcome(status, (False, "ConfigRejected", old_message))
    if view.client is None or view.nodes is None:
        return ConfigOutcome(status, (False, "WaitingForCluster", "waiting for EMQX's API to load the configuration"))
    if versions_mixed:
        running = sorted({str(n.get("version")) for n in view.nodes if n.get("node_status") == "running"})
        message = f"configuration changes wait while nodes run mixed versions ({', '.join(running)})"
        return ConfigOutcome(status, (False, "WaitingForUpgrade", message))
    if not cluster_settled:
        return ConfigOutcome(status, (False, "WaitingForCluster", "waiting for every core to run before loading"))
    if not spec.config:
        status.update(appliedHash=desired_hash, appliedGeneration=generation)
        status.pop("rejectedHash", None)
        return ConfigOutcome(status, (True, "Applied", "no configuration to load beyond emqx.conf"))

    text, flags = payload(spec)
    mode = spec.config_mode.lower()
    try:
        view.client.put_config_hocon(text, mode=mode, ignore_readonly=bool(flags))
    except EmqxApiError as exc:
        if exc.status == 400:
            status["rejectedHash"] = desired_hash
            message = f"EMQX rejected the configuration (generation {generation}): {exc.message}"
            return ConfigOutcome(status, (False, "ConfigRejected", message),
                                 [("Warning", "ConfigRejected", message)])
        return ConfigOutcome(status, (False, "EMQXUnreachable", f"could not load the configuration: {exc}"))
    status.update(appliedHash=desired_hash, appliedGeneration=generation)
    status.pop("rejectedHash", None)
    status.pop("liveObservedAt", None)  # read the live config again right away
    message = f"configuration of generation {generation} loaded into the cluster ({mode} mode)"
    return ConfigOutcome(status, (True, "Applied", message), [("Normal", "ConfigApplied", message)])


SENSITIVE_KEY = re.compile(r"(password|passwd|secret|cookie|token)$|^key$", re.IGNORECASE)
REDACTED = "******"


def redact(config: Any) -> Any:
    """Status is readable by anyone who may read the resource: never copy secrets into it."""
    if isinstance(config, dict):
        return {k: REDACTED if SENSITIVE_KEY.search(str(k)) and not isinstance(v, dict) else redact(v)
                for k, v in config.items()}
    if isinstance(config, list):
        return [redact(item) for item in config]
    return config


def refresh_live(spec: spec_mod.EmqxSpec, view: EmqxView, status: dict[str, Any]) -> None:
    """Record what EMQX runs, for the roots the resource sets, at most every LIVE_REFRESH_SECONDS."""
    if view.client is None:
        return
    observed = status.get("liveObservedAt")
    if observed:
        try:
            then = datetime.datetime.strptime(observed, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
            if (datetime.datetime.now(datetime.UTC) - then).total_seconds() < LIVE_REFRESH_SECONDS:
                return
        except ValueError:
            pass
    try:
        live_text = view.client.get_config_hocon()
        live = hocon.parse(live_text)
    except (EmqxApiError, hocon.HoconError) as exc:
        log.warning("%s/%s: could not read the live configuration: %s", spec.namespace, spec.name, exc)
        return
    roots = set(spec.config) | set(ALWAYS_SHOWN_ROOTS)
    status["live"] = hocon.dump(redact({k: v for k, v in live.items() if k in roots}))
    status["liveObservedAt"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

