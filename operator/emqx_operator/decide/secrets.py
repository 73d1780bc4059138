"""The managed Secrets: the node cookie, the operator's API key, the dashboard password and the keys
of `spec.bootstrapAPIKeys` (pure; random values come in from the pass, never made here).

Generated values are made once and kept. A deleted Secret is created again with what the cluster
runs when that is known (the cookie has a copy in the API key Secret), so nodes keep clustering; a
recreated operator key reaches EMQX through a rolling restart of the cores, which load the key file
at boot. Keys named by `secretRef` are read from their Secrets on every pass, so a changed key list
(or a rotated secret) restarts the cores too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from emqx_operator.model import Event, SecretWrite, World
from kubectl_emqx.domain import builders, hocon
from kubectl_emqx.domain.builders import SecretValues
from kubectl_emqx.domain.spec import EmqxSpec
from kubectl_emqx.domain.validation import SpecError
from kubectl_emqx.domain.vocabulary import (
    API_KEY_SECRET_KEY,
    COOKIE_SECRET_KEY,
    DASHBOARD_PASSWORD_KEY,
    OPERATOR_API_KEY_NAME,
    object_names,
)

API_KEY_NAME = re.compile(r"[a-zA-Z0-9_-]+")


@dataclass(frozen=True)
class SecretPlan:
    writes: tuple[SecretWrite, ...]
    cookie: str
    api_key: str
    api_secret: str
    dashboard_password: str
    api_keys_hash: str  # of the whole key file (goes into the core pod template)
    problems: tuple[SpecError, ...] = ()
    events: tuple[Event, ...] = field(default_factory=tuple)


def missing(spec: EmqxSpec, world: World) -> bool:
    """Whether this pass needs fresh random values (some managed Secret or value is absent)."""
    names = object_names(spec.name)
    cookie = world.secrets.get(names.cookie_secret) or {}
    keys = world.secrets.get(names.api_key_secret) or {}
    return not (cookie.get(COOKIE_SECRET_KEY) and keys.get(API_KEY_SECRET_KEY) and keys.get(DASHBOARD_PASSWORD_KEY))


def plan(spec: EmqxSpec, world: World, fresh: SecretValues | None, cluster_exists: bool) -> SecretPlan:
    names = object_names(spec.name)
    cookie_data = world.secrets.get(names.cookie_secret)
    key_data = world.secrets.get(names.api_key_secret)
    fresh = fresh or SecretValues("", OPERATOR_API_KEY_NAME, "", "")
    events: list[Event] = []
    configured = hocon.get_path(spec.config, "node.cookie")
    cookie = ((cookie_data or {}).get(COOKIE_SECRET_KEY) or (key_data or {}).get(COOKIE_SECRET_KEY)
              or (str(configured) if configured else "") or fresh.node_cookie)
    api_secret = operator_secret((key_data or {}).get(API_KEY_SECRET_KEY)) or fresh.api_secret
    password = (key_data or {}).get(DASHBOARD_PASSWORD_KEY) or fresh.dashboard_password
    referenced, problems = _referenced_keys(spec, world)
    values = SecretValues(cookie, OPERATOR_API_KEY_NAME, api_secret, password)
    desired = [builders.with_owner(body, world.resource) for body in builders.build_secrets(spec, values, referenced)]
    writes = []
    for body, live in zip(desired, (cookie_data, key_data), strict=True):
        wanted = {k: builders.decode(v) for k, v in body["data"].items()}
        if live is None:
            writes.append(SecretWrite(body, create=True))
            if cluster_exists:
                events.append(Event("Warning", "SecretRecreated", (
                    f"Secret {body['metadata']['name']} was missing and is created again"
                    + ("" if body["metadata"]["name"] == names.cookie_secret or key_data is not None
                       else "; the cores restart one at a time to load the operator's new API key"))))
        elif dict(live) != wanted:
            writes.append(SecretWrite(body, create=False))
    file_text = builders.api_key_file(spec, values, referenced)
    return SecretPlan(tuple(writes), cookie, OPERATOR_API_KEY_NAME, api_secret, password,
                      hashlib.sha256(file_text.encode()).hexdigest()[:16], tuple(problems), tuple(events))


def operator_secret(file_text: str | None) -> str | None:
    for line in (file_text or "").splitlines():
        key, _, secret = line.partition(":")
        if key == OPERATOR_API_KEY_NAME and secret:
            return secret.split(":", 1)[0]
    return None


def _referenced_keys(spec: EmqxSpec, world: World) -> tuple[list[tuple[str, str]], list[SpecError]]:
    """(key, secret) pairs named by secretRef, checked against EMQX's `key:secret[:role]` lines."""
    pairs: list[tuple[str, str]] = []
    problems: list[SpecError] = []
    for index, item in enumerate(spec.bootstrap_api_keys):
        if item.secret_ref is None:
            continue
        field_prefix = f"spec.bootstrapAPIKeys[{index}].secretRef"
        key = item.key
        if item.key_ref is not None:
            key = world.referenced.get((item.key_ref.secret_name, item.key_ref.secret_key))
            if key is None:
                problems.append(_missing(f"{field_prefix}.key", item.key_ref.secret_name, item.key_ref.secret_key))
                continue
        secret = world.referenced.get((item.secret_ref.secret_name, item.secret_ref.secret_key))
        if secret is None:
            problems.append(_missing(f"{field_prefix}.secret", item.secret_ref.secret_name,
                                     item.secret_ref.secret_key))
            continue
        key, secret = (key or "").strip(), secret.strip()
        if not API_KEY_NAME.fullmatch(key) or key == OPERATOR_API_KEY_NAME:
            problems.append(SpecError(f"{field_prefix}.key", key,
                                      "an API key name may hold only letters, digits, '_' and '-' (and is not the "
                                      "operator's own)", "store another key name in that Secret"))
            continue
        if not secret or ":" in secret or "\n" in secret:
            problems.append(SpecError(f"{field_prefix}.secret", "<hidden>",
                                      "EMQX reads bootstrap API keys as key:secret lines, so a secret cannot be "
                                      "empty or contain ':' or a line break", "store another secret in that Secret"))
            continue
        pairs.append((key, secret))
    return pairs, problems


def _missing(field_path: str, secret: str, key: str) -> SpecError:
    return SpecError(field_path, f"{secret}/{key}", f"Secret {secret} has no key {key} (or does not exist)",
                     f"create Secret {secret} with key {key} in the resource's namespace")


def referenced_names(spec: EmqxSpec) -> set[tuple[str, str]]:
    """(secret, key) pairs observe must read for this resource."""
    refs = set()
    for item in spec.bootstrap_api_keys:
        for ref in (item.key_ref, item.secret_ref):
            if ref is not None:
                refs.add((ref.secret_name, ref.secret_key))
    return refs
