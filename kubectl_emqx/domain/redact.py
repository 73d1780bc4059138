"""Redaction (pure): what may leave the cluster in a support report.

- EMQX configuration (HOCON): values of keys that look secret (`password`, `secret`, `token`,
  `cookie`, ... and `key`) become "******" -- the rule the operator applies to `status.config.live`.
- Kubernetes objects: Secrets are reduced to name, type, labels and the names of their keys;
  literal env values whose names look secret (PASSWORD, SECRET, TOKEN, KEY, COOKIE, ...) and
  secret-looking `--flag=value` arguments are replaced; `last-applied-configuration` annotations
  (which repeat a whole manifest, Secret data included) and managedFields are dropped; HOCON held by
  the EMQX resource (`spec.config.data`, `spec.bootstrapConfig`, `status.config.live`) and by the
  `emqx.conf` ConfigMap is redacted as above.
- `Scrubber`: a last pass over every file's text that replaces known secret values (the namespace's
  Secret values, decoded, and the secret-looking literal env values), also in base64 form, wherever
  they still appear (a log line, an Event message).
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "******"
# Configuration keys (the operator's rule for status.config.live).
SENSITIVE_CONFIG_KEY = re.compile(r"(password|passwd|secret|cookie|token)$|^key$", re.IGNORECASE)
# Environment variable names: any of these words as a part of the name (API_KEY, EMQX_NODE__COOKIE, ...).
SENSITIVE_ENV_NAME = re.compile(
    r"(^|[_.-])(PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN|KEY|COOKIE|CREDENTIALS?|PRIVATE|APIKEY|AUTH)([_.-]|$)",
    re.IGNORECASE,
)
SENSITIVE_FLAG = re.compile(r"^(--?[\w.-]*(password|passwd|secret|token|key|cookie|credential)[\w.-]*=)(.+)$",
                            re.IGNORECASE)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CONFIG_MAP_HOCON_KEYS = ("emqx.conf",)
MIN_SCRUB_LENGTH = 6  # shorter values ("true", "1") would garble the text and are not secrets worth the name


def redact_config(config: Any) -> Any:
    if isinstance(config, dict):
        return {key: REDACTED if SENSITIVE_CONFIG_KEY.search(str(key)) and not isinstance(value, dict)
                else redact_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [redact_config(item) for item in config]
    return config


def redact_hocon_text(text: str) -> str:
    """HOCON text with secret-looking values replaced (re-rendered, so comments are lost); text that
    does not parse is withheld entirely."""
    from kubectl_emqx.domain import hocon

    if not text.strip():
        return text
    try:
        tree = hocon.parse(text)
    except ValueError:
        return "# withheld: this configuration does not parse as HOCON, so it could not be redacted\n"
    return hocon.dump(redact_config(tree))


def sensitive_env_name(name: str) -> bool:
    return bool(SENSITIVE_ENV_NAME.search(name))


def redact_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Kubernetes object (or the EMQX resource) fit for a report."""
    kind = obj.get("kind")
    if kind == "Secret":
        return secret_summary(obj)
    result = copy.deepcopy(obj)
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            annotations[LAST_APPLIED] = "(removed: it repeats the manifest, which may hold secret values)"
    _redact_env_and_args(result)
    if kind == "EMQX":
        _redact_emqx(result)
    elif kind == "ConfigMap":
        data = result.get("data")
        if isinstance(data, dict):
            for key in CONFIG_MAP_HOCON_KEYS:
                if isinstance(data.get(key), str):
                    data[key] = redact_hocon_text(data[key])
    return result


def secret_summary(secret: dict[str, Any]) -> dict[str, Any]:
    """A Secret as name, type, labels, owners and key names; never a value."""
    metadata = secret.get("metadata") or {}
    keys = sorted({*(secret.get("data") or {}), *(secret.get("stringData") or {})})
    summary_meta = {name: metadata[name] for name in ("name", "namespace", "uid", "creationTimestamp",
                                                      "labels", "ownerReferences") if name in metadata}
    if metadata.get("annotations"):
        summary_meta["annotations"] = {key: "(value withheld)" for key in metadata["annotations"]}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": summary_meta, "type": secret.get("type"),
            "keys": keys, "values": "(withheld: a report never contains Secret values)"}


def _redact_emqx(body: dict[str, Any]) -> None:
    spec = body.get("spec")
    if isinstance(spec, dict):
        config = spec.get("config")
        if isinstance(config, dict) and isinstance(config.get("data"), str):
            config["data"] = redact_hocon_text(config["data"])
        if isinstance(spec.get("bootstrapConfig"), str):
            spec["bootstrapConfig"] = redact_hocon_text(spec["bootstrapConfig"])
    status_config = (body.get("status") or {}).get("config")
    if isinstance(status_config, dict) and isinstance(status_config.get("live"), str):
        status_config["live"] = redact_hocon_text(status_config["live"])


def _redact_env_and_args(node: Any) -> None:
    """Walk the object: every `env` list entry with a literal value and a secret-looking name, and
    every secret-looking `--flag=value` in `command`/`args`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                for entry in value:
                    if (isinstance(entry, dict) and "value" in entry
                            and sensitive_env_name(str(entry.get("name", "")))):
                        entry["value"] = REDACTED
            elif key in ("command", "args") and isinstance(value, list):
                node[key] = [_redact_flag(item) if isinstance(item, str) else item for item in value]
            else:
                _redact_env_and_args(value)
    elif isinstance(node, list):
        for item in node:
            _redact_env_and_args(item)


def _redact_flag(text: str) -> str:
    match = SENSITIVE_FLAG.match(text)
    return match.group(1) + REDACTED if match else text


def literal_secret_env_values(objects: Iterable[dict[str, Any]]) -> list[str]:
    """The literal values of secret-looking env variables anywhere in these objects."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "env" and isinstance(value, list):
                    for entry in value:
                        if (isinstance(entry, dict) and isinstance(entry.get("value"), str)
                                and sensitive_env_name(str(entry.get("name", "")))):
                            found.append(entry["value"])
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for obj in objects:
        walk(obj)
    return found


def secret_values(secret: dict[str, Any]) -> list[str]:
    """Every value of a Secret, decoded, plus its lines and `name:secret` halves (the bootstrap API
    key file holds `key:secret` lines)."""
    values: list[str] = []
    raw = dict(secret.get("stringData") or {})
    for key, encoded in (secret.get("data") or {}).items():
        try:
            raw[key] = base64.b64decode(encoded).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
    for value in raw.values():
        if not isinstance(value, str):
            continue
        values.append(value)
        for line in value.splitlines():
            values.append(line)
            _, sep, tail = line.partition(":")
            if sep:
                values.append(tail)
    return values


class Scrubber:
    """Replaces known secret values (and their base64 forms) in text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._needles: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, value: str) -> None:
        value = value.strip()
        if len(value) < MIN_SCRUB_LENGTH:
            return
        self._needles.add(value)
        encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
        self._needles.add(encoded)
        self._needles.add(encoded.rstrip("="))

    def __len__(self) -> int:
        return len(self._needles)

    def scrub(self, text: str) -> str:
        # Longest first, so a value is replaced before any part of it is.
        for needle in sorted(self._needles, key=len, reverse=True):
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text
