"""Domain rules the CRD schema cannot express, as errors naming the field, the value and the fix (pure).

The plugin refuses to write a resource that has such errors; the operator reports them as the
`Valid` condition and an Event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_emqx.domain import hocon
from kubectl_emqx.domain.spec import (
    CONFIG_MODES,
    ERLANG_DIST_PORT,
    GEN_RPC_PORT,
    LICENSE_ENV,
    EmqxSpec,
    NodeTemplate,
    dotted,
)
from kubectl_emqx.domain.versions import (
    COMMUNITY_LICENSE_KEY,
    ENTERPRISE_REPOSITORY,
    OPENSOURCE_REPOSITORY,
    format_version,
    needs_license_for_cluster,
    replicants_allowed,
)
from kubectl_emqx.domain.vocabulary import MAX_NAME_LENGTH, NAME_PATTERN, OPERATOR_API_KEY_NAME


@dataclass(frozen=True)
class SpecError:
    field: str  # e.g. "spec.replicantTemplate.spec.replicas"
    value: Any
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (value: {self.value!r}). Fix: {self.fix}"


def license_configured(spec: EmqxSpec, template: NodeTemplate | None = None) -> bool:
    """Whether a license key reaches the nodes of `template` (of every template with nodes when None).

    Looks at `license.key` in the configuration and EMQX_LICENSE__KEY in the template env. An
    `envFrom` source may carry the variable too; it cannot be inspected here, so it counts.
    """
    key = hocon.get_path(spec.config, "license.key")
    if key and str(key) != COMMUNITY_LICENSE_KEY:  # "default" is the single-node community licence
        return True
    templates = [template] if template is not None else [t for t in (spec.core, spec.replicant) if t.replicas > 0]
    return all(_license_in_env(t) for t in templates)


def _license_in_env(template: NodeTemplate) -> bool:
    named = any(isinstance(var, Mapping) and str(var.get("name", "")).upper() == LICENSE_ENV for var in template.env)
    return named or bool(template.env_from)


def validate(spec: EmqxSpec, cookie: str | None = None) -> list[SpecError]:
    """Domain rules the CRD schema cannot express. Empty list: the spec can be deployed.
    `cookie`: the cluster's node cookie (the operator knows it), checked against node.cookie."""
    errors: list[SpecError] = []
    errors += name_errors(spec.name)
    errors += _image_errors(spec)
    errors += _config_errors(spec)
    errors += _topology_errors(spec)
    errors += _api_key_errors(spec)
    errors += owned_key_errors(spec, cookie)
    return errors


def name_errors(name: str) -> list[SpecError]:
    """The resource's name must leave every derived name valid (vocabulary.MAX_NAME_LENGTH)."""
    if re.fullmatch(NAME_PATTERN, name) is None:
        return [SpecError("metadata.name", name, "the name must be a DNS label: lower-case letters, digits and '-', "
                          "starting and ending with a letter or digit (it names the Services NAME-headless, "
                          "NAME-dashboard and NAME-listeners)", "choose a name such as my-emqx")]
    if len(name) > MAX_NAME_LENGTH:
        return [SpecError("metadata.name", name, f"the name has {len(name)} characters, at most {MAX_NAME_LENGTH} "
                          f"work: the core StatefulSet {name}-core labels its pods with its name and a 10-character "
                          "hash, and a label value has at most 63", f"choose a name of at most {MAX_NAME_LENGTH} "
                          "characters")]
    return []


# Settings the pods set through their environment, which EMQX reads over emqx.conf: a value in the
# configuration would be ignored (and, being a restart key, would roll every node for nothing).
# path -> (what sets it, how to change it)
OWNED_KEYS: dict[str, tuple[str, str]] = {
    "node.name": ("the pod: EMQX_HOST is the pod's DNS name (cores) or IP (replicants)",
                  "node names follow the pods and cannot be set"),
    "node.cookie": ("Secret <name>-node-cookie through EMQX_NODE__COOKIE",
                    "every node must share one cookie, so it cannot change on a running cluster"),
    "node.data_dir": ("the pod layout: EMQX_NODE__DATA_DIR=data (the data volume at /opt/emqx/data)",
                      "use spec.coreTemplate.spec.volumeClaimTemplates for the volume"),
    "node.role": ("the template: EMQX_NODE__ROLE is core in coreTemplate and replicant in replicantTemplate",
                  "scale spec.coreTemplate / spec.replicantTemplate instead"),
    "node.db_role": ("the template: EMQX_NODE__ROLE is core in coreTemplate and replicant in replicantTemplate",
                     "scale spec.coreTemplate / spec.replicantTemplate instead"),
    "cluster.discovery_strategy": ("the pods: EMQX_CLUSTER__DISCOVERY_STRATEGY=dns through the headless Service",
                                   "discovery is fixed to DNS SRV records of <name>-headless"),
    "cluster.dns.name": ("the pods: EMQX_CLUSTER__DNS__NAME is the headless Service's DNS name",
                         "it follows spec.clusterDomain"),
    "cluster.dns.record_type": ("the pods: EMQX_CLUSTER__DNS__RECORD_TYPE=srv", "it cannot be changed"),
    "api_key.bootstrap_file": ("the pods: EMQX_API_KEY__BOOTSTRAP_FILE (the operator's key and spec.bootstrapAPIKeys)",
                               "add keys in spec.bootstrapAPIKeys"),
    "dashboard.default_password": ("Secret <name>-bootstrap-api-key (key dashboard_password) through "
                                   "EMQX_DASHBOARD__DEFAULT_PASSWORD",
                                   "change the admin password in the Dashboard (EMQX reads it only on first boot)"),
}


def environment_value(spec: EmqxSpec, path: str) -> object:
    """The value the pods' environment gives an owned key, when it is a constant (else None)."""
    return {
        "node.data_dir": "data",
        "cluster.discovery_strategy": "dns",
        "cluster.dns.record_type": "srv",
        "cluster.dns.name": f"{spec.name}-headless.{spec.namespace}.svc.{spec.cluster_domain}",
    }.get(path)


def owned_key_errors(spec: EmqxSpec, cookie: str | None = None) -> list[SpecError]:
    """Owned keys set in the configuration with another value than the pods' environment gives them.
    node.cookie is checked against `cookie` (the cluster's Secret) when given, else left alone."""
    errors = []
    config_field = dotted(spec.config_field)
    for path, (owner, fix) in OWNED_KEYS.items():
        value = hocon.get_path(spec.config, path)
        if value is None:
            continue
        expected = cookie if path == "node.cookie" else environment_value(spec, path)
        if path == "node.cookie" and cookie is None:
            continue
        if expected is not None and str(value) == str(expected):
            continue
        shown = "<hidden>" if path in ("node.cookie", "dashboard.default_password") else value
        errors.append(SpecError(
            config_field, f"{path} = {shown}",
            f"{path} is set by {owner.replace('<name>', spec.name)}, which EMQX reads over emqx.conf",
            f"remove {path} from {config_field}; {fix}",
        ))
    return errors


def changed_cookie(before: EmqxSpec | None, after: EmqxSpec) -> list[SpecError]:
    """A resource may name its cookie when it is created; it cannot change it later."""
    new = hocon.get_path(after.config, "node.cookie")
    if before is None or new is None:
        return []
    old = hocon.get_path(before.config, "node.cookie")
    if old is not None and str(old) == str(new):
        return []
    owner, fix = OWNED_KEYS["node.cookie"]
    config_field = dotted(after.config_field)
    return [SpecError(config_field, "node.cookie = <hidden>",
                      f"node.cookie is set by {owner.replace('<name>', after.name)}, which EMQX reads over emqx.conf",
                      f"remove node.cookie from {config_field}; {fix}")]


def _image_errors(spec: EmqxSpec) -> list[SpecError]:
    image_field = dotted(spec.image_field)
    info = spec.image_info
    if not spec.image:
        return [
            SpecError("spec.image", None, "no EMQX image is set", f"set spec.image, e.g. {ENTERPRISE_REPOSITORY}:5.8.9")
        ]
    errors = []
    if not info.repository_known:
        errors.append(
            SpecError(
                image_field,
                spec.image,
                f"unknown image repository {info.repository!r}: the edition (and so the replicant, license "
                "and evacuation rules) cannot be told",
                f"use {OPENSOURCE_REPOSITORY} (Opensource) or {ENTERPRISE_REPOSITORY} (Enterprise); any registry "
                "prefix is fine, e.g. registry.example.com/mirror/emqx/emqx-enterprise:5.8.9",
            )
        )
    if not info.version_known:
        errors.append(
            SpecError(
                image_field,
                spec.image,
                "the image tag does not name an EMQX version, so version-dependent settings cannot be chosen",
                "use a version tag such as 5.8.9 (a digest may follow: emqx/emqx:5.8.9@sha256:...)",
            )
        )
    elif info.version[0] < 5:
        errors.append(
            SpecError(
                image_field,
                spec.image,
                f"EMQX {info.version_string} is not supported (kubectl-emqx manages EMQX 5 and later)",
                "use an EMQX 5 image, e.g. emqx/emqx:5.8.9; EMQX 4 clusters cannot be upgraded in place",
            )
        )
    return errors


def _config_errors(spec: EmqxSpec) -> list[SpecError]:
    config_field = dotted(spec.config_field)
    errors = []
    if spec.config_mode not in CONFIG_MODES:
        errors.append(SpecError("spec.config.mode", spec.config_mode, "unknown config mode", "use Merge or Replace"))
    if spec.config_problem is not None and spec.config_problem.line == 0:
        errors.append(SpecError(config_field, f"{len(spec.config_text.encode())} bytes", spec.config_problem.message,
                                "keep the configuration to what differs from EMQX's defaults (certificates and "
                                "large files belong in Secrets mounted through extraVolumes)"))
        return errors
    if spec.config_problem is not None:
        problem = spec.config_problem
        errors.append(
            SpecError(
                config_field,
                f"line {problem.line}, column {problem.column}",
                f"invalid HOCON at line {problem.line}, column {problem.column}: {problem.message}",
                f"correct {config_field} at line {problem.line}, column {problem.column}",
            )
        )
        return errors
    if spec.image_info.version < (5, 3, 1):
        dotted_key = _dotted_key_path(spec.config)
        if dotted_key is not None:
            errors.append(SpecError(config_field, dotted_key,
                                    f"EMQX {spec.image_info.version_string} reads a quoted key with a dot as a path "
                                    "(before 5.3.1, emqx/hocon before 0.39.17), so this key cannot be written",
                                    "rename the key without '.', or use EMQX 5.3.1 or later"))
    separator = _line_separator_path(spec.config)
    if separator is not None:
        errors.append(SpecError(config_field, separator,
                                "a string holds U+2028 or U+2029, which EMQX's HOCON reads as the end of a line",
                                f"remove that character from {separator}"))
    port = hocon.dashboard_port(spec.config)
    if port == 0:
        errors.append(
            SpecError(
                config_field,
                hocon.get_path(spec.config, "dashboard.listeners.http"),
                "the dashboard HTTP listener is disabled; the operator manages EMQX through its REST API there",
                "remove dashboard.listeners.http.enable = false / bind = 0 (18083 is the default port)",
            )
        )
    reserved = {ERLANG_DIST_PORT: "Erlang distribution (ekka)", GEN_RPC_PORT: "gen_rpc"}
    if port:
        reserved[port] = "the dashboard"
    for listener in hocon.listener_ports(spec.config):
        if listener.port in reserved and listener.protocol == "TCP":
            errors.append(
                SpecError(
                    config_field,
                    listener.port,
                    f"listener {listener.name} uses port {listener.port}, which {reserved[listener.port]} uses",
                    f"bind listener {listener.name} to another port",
                )
            )
    return errors


def _dotted_key_path(config: Any, path: str = "") -> str | None:
    """The first key (at any depth) that itself holds a dot."""
    if isinstance(config, dict):
        for key, value in config.items():
            inner = f"{path}.{hocon.join_path([str(key)])}" if path else hocon.join_path([str(key)])
            if "." in str(key):
                return inner
            found = _dotted_key_path(value, inner)
            if found:
                return found
    elif isinstance(config, list):
        for index, item in enumerate(config):
            found = _dotted_key_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _line_separator_path(config: Any, path: str = "") -> str | None:
    if isinstance(config, dict):
        for key, value in config.items():
            inner = f"{path}.{key}" if path else str(key)
            if any(c in str(key) for c in "\u2028\u2029"):
                return inner
            found = _line_separator_path(value, inner)
            if found:
                return found
    elif isinstance(config, list):
        for index, item in enumerate(config):
            found = _line_separator_path(item, f"{path}[{index}]")
            if found:
                return found
    elif isinstance(config, str) and any(c in config for c in "\u2028\u2029"):
        return path
    return None


def _topology_errors(spec: EmqxSpec) -> list[SpecError]:
    errors = []
    info = spec.image_info
    if spec.core.replicas < 1:
        errors.append(
            SpecError(
                "spec.coreTemplate.spec.replicas",
                spec.core.replicas,
                "a cluster needs at least one core node",
                "set spec.coreTemplate.spec.replicas to 1 or more (odd numbers tolerate failures best)",
            )
        )
    if spec.replicant.replicas < 0:
        errors.append(
            SpecError(
                "spec.replicantTemplate.spec.replicas",
                spec.replicant.replicas,
                "the replicant count cannot be negative",
                "set spec.replicantTemplate.spec.replicas to 0 or more",
            )
        )
    if spec.replicant.replicas > 0 and not replicants_allowed(info.edition, info.version):
        errors.append(
            SpecError(
                "spec.replicantTemplate.spec.replicas",
                spec.replicant.replicas,
                f"EMQX Opensource {info.version_string} refuses to run replicant nodes (since 5.8.0 only the "
                "Enterprise edition has them)",
                f"set spec.replicantTemplate.spec.replicas to 0 (all nodes are cores), or use "
                f"{ENTERPRISE_REPOSITORY}:{info.version_string}",
            )
        )
    if spec.total_nodes > 1 and needs_license_for_cluster(info.version):
        for template_name, template in (("coreTemplate", spec.core), ("replicantTemplate", spec.replicant)):
            if template.replicas > 0 and not license_configured(spec, template):
                errors.append(
                    SpecError(
                        f"spec.{template_name}.spec.env",
                        None,
                        f"EMQX {format_version(info.version)} starts a cluster of more than one node only with a "
                        f"license key on every node ({spec.total_nodes} nodes requested)",
                        f"set license.key in {dotted(spec.config_field)}, or {LICENSE_ENV} in "
                        f"spec.{template_name}.spec.env (e.g. from a Secret); or run a single core node",
                    )
                )
                break
    for template_name, template in (("coreTemplate", spec.core), ("replicantTemplate", spec.replicant)):
        for key, value in (("minAvailable", template.min_available), ("maxUnavailable", template.max_unavailable)):
            if value is not None and not budget_value_ok(value):
                errors.append(
                    SpecError(
                        f"spec.{template_name}.spec.{key}",
                        value,
                        "a PodDisruptionBudget takes a whole number of nodes (0 or more) or a percentage "
                        "of at most 100%",
                        f'set spec.{template_name}.spec.{key} to e.g. 1 or "50%"',
                    )
                )
        if template.min_available is not None and template.max_unavailable is not None:
            errors.append(
                SpecError(
                    f"spec.{template_name}.spec.minAvailable",
                    template.min_available,
                    "minAvailable and maxUnavailable are both set; a PodDisruptionBudget takes one",
                    f"remove spec.{template_name}.spec.minAvailable or spec.{template_name}.spec.maxUnavailable",
                )
            )
    return errors


_PERCENT = re.compile(r"[0-9]+%")


def budget_value_ok(value: object) -> bool:
    """A PodDisruptionBudget's minAvailable/maxUnavailable as Kubernetes takes it
    (ValidatePositiveIntOrPercent and IsNotMoreThan100Percent): an integer of 0 or more, or digits
    followed by % of at most 100."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and _PERCENT.fullmatch(value) is not None and int(value[:-1]) <= 100


def _api_key_errors(spec: EmqxSpec) -> list[SpecError]:
    errors = []
    for index, api_key in enumerate(spec.bootstrap_api_keys):
        field_prefix = f"spec.bootstrapAPIKeys[{index}]"
        has_literal = api_key.secret is not None
        has_ref = api_key.secret_ref is not None
        if has_literal == has_ref:
            errors.append(
                SpecError(
                    field_prefix,
                    None,
                    "an API key needs exactly one of secret and secretRef.secret",
                    f"set {field_prefix}.secret, or {field_prefix}.secretRef.secret (and .key) naming a Secret",
                )
            )
        if api_key.key is None and api_key.key_ref is None:
            errors.append(
                SpecError(
                    f"{field_prefix}.key",
                    None,
                    "the API key has no name",
                    f"set {field_prefix}.key or {field_prefix}.secretRef.key",
                )
            )
        if api_key.key == OPERATOR_API_KEY_NAME:
            errors.append(
                SpecError(
                    f"{field_prefix}.key",
                    api_key.key,
                    f"{OPERATOR_API_KEY_NAME!r} is the operator's own API key",
                    "choose another key name",
                )
            )
        if api_key.secret is not None and (":" in api_key.secret or "\n" in api_key.secret):
            errors.append(
                SpecError(
                    f"{field_prefix}.secret",
                    "<hidden>",
                    "EMQX reads bootstrap API keys as key:secret lines, so a secret cannot contain ':' or a newline",
                    "choose a secret without ':' and line breaks",
                )
            )
    return errors
