"""The support report's contents (pure): what `kubectl emqx report` collected -> the files of the
archive, every one redacted (domain/redact.py), plus a README.txt saying what is where."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from kubectl_emqx.domain import redact
from kubectl_emqx.domain.vocabulary import format_time, parse_time

README = """\
EMQX support report for {namespace}/{name}
Created {created} by kubectl-emqx {version}: kubectl emqx report {name} -n {namespace}{flags}

Phase: {phase}
{message}
What is where
  summary.txt                    `kubectl emqx status {name}`: phase, nodes as EMQX reports them, conditions
                                 (the reason of a stalled upgrade or a refused change), recent Events
  emqx.yaml                      the EMQX resource: spec and the operator's status
  config/spec.conf               the configuration in the resource (spec.config.data)
  config/live.conf               the live configuration, as the operator last read it from EMQX (status.config.live)
  config/emqx.conf               the configuration file the nodes boot with (ConfigMap {name}-configs)
  events.txt, events.yaml        Events of the resource and of everything it owns, oldest first
  objects/<Kind>/<name>.yaml     every object the cluster owns: StatefulSet, Deployment, ReplicaSets, Services,
                                 ConfigMap, PodDisruptionBudgets, PersistentVolumeClaims, Secrets
  pods/<pod>.yaml                each pod's spec and status
  logs/<pod>.log                 each node's log{logs_note}
  logs/<pod>.previous.log        the log of the container before its last restart, where there is one
  operator/version.txt           the operator's version and where it runs
  operator/<namespace>/deployment.yaml, operator/<namespace>/pods/<pod>.yaml, operator/<namespace>/logs/<pod>.log
                                 the operator's Deployment, pods and recent log (when it runs in the cluster)
  errors.txt                     what could not be collected, and why
Files that could not be collected are missing; errors.txt says why.

Redaction
  No Secret value is in this archive. Secrets appear as their name, type, labels and key names only.
  Configuration values whose keys look secret (password, secret, token, cookie, key, ...) read "{redacted}".
  Literal env values whose names look secret (PASSWORD, SECRET, TOKEN, KEY, COOKIE, ...), secret-looking
  --flag=value arguments and last-applied-configuration annotations are replaced; managedFields are dropped.
  Finally every file is searched for the values of the namespace's Secrets that could be read (also
  base64-encoded) and any occurrence is replaced by "{redacted}".
"""


@dataclass
class Collected:
    """What the report collected from the cluster (raw: redaction happens in `files`)."""

    name: str
    namespace: str
    created: datetime.datetime
    version: str
    flags: str = ""
    resource: dict[str, Any] | None = None
    summary: str = ""  # the status text
    events: list[dict[str, Any]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)  # owned objects except pods
    pods: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)  # archive path -> text
    operator_version: str = ""
    operator_objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # archive path -> object
    errors: list[str] = field(default_factory=list)
    secrets: list[dict[str, Any]] = field(default_factory=list)  # read for scrubbing only, never written
    logs_requested: bool = False


def files(collected: Collected) -> dict[str, str]:
    """Archive path -> text, redacted and scrubbed."""
    import yaml

    def dump(obj: Any) -> str:
        return str(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True))

    out: dict[str, str] = {}
    resource = redact.redact_object(collected.resource) if collected.resource else None
    status = (collected.resource or {}).get("status") or {}
    if resource is not None:
        out["emqx.yaml"] = dump(resource)
        spec_config = ((resource.get("spec") or {}).get("config") or {}).get("data")
        if isinstance(spec_config, str):
            out["config/spec.conf"] = spec_config
        live = ((resource.get("status") or {}).get("config") or {}).get("live")
        if isinstance(live, str):
            out["config/live.conf"] = live
    if collected.summary:
        out["summary.txt"] = collected.summary
    if collected.events:
        ordered = sorted(collected.events, key=_event_time)
        out["events.yaml"] = dump([redact.redact_object(event) for event in ordered])
        out["events.txt"] = events_text(ordered)
    for obj in collected.objects:
        clean = redact.redact_object(obj)
        kind, name = obj.get("kind", "Object"), (obj.get("metadata") or {}).get("name", "unnamed")
        out[f"objects/{kind}/{name}.yaml"] = dump(clean)
        if kind == "ConfigMap":
            conf = (clean.get("data") or {}).get("emqx.conf")
            if isinstance(conf, str):
                out["config/emqx.conf"] = conf
    for pod in collected.pods:
        out[f"pods/{(pod.get('metadata') or {}).get('name', 'unnamed')}.yaml"] = dump(redact.redact_object(pod))
    out.update(collected.logs)
    if collected.operator_version:
        out["operator/version.txt"] = collected.operator_version
    for path, obj in collected.operator_objects.items():
        out[path] = dump(redact.redact_object(obj))
    if collected.errors:
        out["errors.txt"] = "".join(f"{line}\n" for line in collected.errors)
    out["README.txt"] = readme(collected, status)

    scrubber = redact.Scrubber()
    for secret in collected.secrets:
        for value in redact.secret_values(secret):
            scrubber.add(value)
    everything = [collected.resource or {}, *collected.objects, *collected.pods,
                  *collected.operator_objects.values()]
    for value in redact.literal_secret_env_values(everything):
        scrubber.add(value)
    return {path: scrubber.scrub(text) for path, text in out.items()}


def readme(collected: Collected, status: dict[str, Any]) -> str:
    message = str(status.get("message") or "")
    return README.format(
        namespace=collected.namespace, name=collected.name, created=format_time(collected.created),
        version=collected.version, flags=collected.flags, phase=status.get("phase") or "(no status yet)",
        message=(message + "\n") if message else "",
        logs_note="" if collected.logs_requested else " (only with --logs; this report was made without)",
        redacted=redact.REDACTED,
    )


def _event_time(event: dict[str, Any]) -> str:
    """When the Event was last seen, as RFC 3339 in whole seconds (Events carry lastTimestamp, or
    only a microsecond eventTime when posted through events.k8s.io)."""
    raw = (event.get("lastTimestamp") or event.get("eventTime") or (event.get("series") or {}).get("lastObservedTime")
           or (event.get("metadata") or {}).get("creationTimestamp"))
    moment = parse_time(raw)
    return format_time(moment) if moment else str(raw or "")


def events_text(events: list[dict[str, Any]]) -> str:
    lines = ["LAST SEEN             TYPE     REASON                 OBJECT                                  MESSAGE"]
    for event in events:
        involved = event.get("involvedObject") or {}
        lines.append(
            f"{_event_time(event):<21} {event.get('type', ''):<8} {event.get('reason', ''):<22} "
            f"{(involved.get('kind', '') + '/' + involved.get('name', '')):<39} "
            f"{' '.join(str(event.get('message', '')).split())}"
            + (f" (x{event['count']})" if (event.get("count") or 1) > 1 else "")
        )
    return "\n".join(lines) + "\n"
