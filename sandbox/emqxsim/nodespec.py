"""From the container the kubelet would start to the EMQX node it would boot (pure).

Reproduces the Docker entrypoint (node name from EMQX_NAME/EMQX_HOST or the pod's hosts entry), the
config layers EMQX reads at boot (shipped or mounted `etc/emqx.conf`, overlaid by `EMQX_*` env vars) and
the boot-time checks that depend on nothing but this one node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import versions
from .hocon import ConfigDict, HoconParseError, deep_merge, env_overrides, get_path, parse_hocon
from .podspec import ContainerRuntime, PodIdentity
from .versions import EmqxImage, Version

EMQX_HOME = "/opt/emqx"
EMQX_CONF_PATH = f"{EMQX_HOME}/etc/emqx.conf"
DEFAULT_COOKIE = "emqxsecretcookie"
DEFAULT_DASHBOARD_PORT = 18083
CLUSTER_DOMAIN = "cluster.local"

# The etc/emqx.conf the official images ship, replaced when a file is mounted over it.
SHIPPED_EMQX_CONF: ConfigDict = {
    "node": {"name": "emqx@127.0.0.1", "cookie": DEFAULT_COOKIE, "data_dir": "data"},
    "cluster": {"name": "emqxcl", "discovery_strategy": "manual"},
    "dashboard": {"listeners": {"http": {"bind": DEFAULT_DASHBOARD_PORT}}},
}

# Config roots of 5.8 (emqx-api.md §3.2); `license` only where the license app exists.
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
ENTERPRISE_ROOTS = ("license", "file_transfer", "schema_registry", "opentelemetry", "telemetry")


def config_roots(image: EmqxImage) -> tuple[str, ...]:
    roots = list(BASE_ROOTS)
    if image.version >= versions.BOOTSTRAP_FILE_SINCE:
        roots.append("api_key")
    if image.reported_edition is versions.Edition.ENTERPRISE:
        roots.extend(ENTERPRISE_ROOTS)
    else:
        roots.append("telemetry")
    return tuple(roots)


class BootError(Exception):
    """EMQX refuses to start; the message is what the node would log."""


@dataclass(frozen=True)
class Discovery:
    strategy: str
    # What peers must share to find each other (DNS name, seed list, k8s service, ...).
    scope: tuple[str, ...]


@dataclass
class NodeSpec:
    pod: PodIdentity
    image: EmqxImage
    node_name: str
    role: str
    cookie: str
    cluster_name: str
    discovery: Discovery
    dashboard_port: int
    # emqx.conf overlaid by env: the layers that win over cluster.hocon at every boot.
    local_config: ConfigDict
    license_key: str | None
    bootstrap_file: str
    data_dir: str
    data_storage_key: str | None
    dashboard_password: str
    files: dict[str, str] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    @property
    def version(self) -> Version:
        return self.image.version

    @property
    def licensed(self) -> bool:
        return bool(self.license_key) and self.license_key != "default"

    def read_file(self, path: str) -> str:
        """Read a file the container sees; raises OSError like file:open would."""
        if path in self.directories:
            raise IsADirectoryError(path)
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]


def _emqx_conf(runtime: ContainerRuntime) -> tuple[ConfigDict, bool]:
    if EMQX_CONF_PATH in runtime.directories:
        raise BootError(f"failed_to_load_config: {EMQX_CONF_PATH}: eisdir (illegal operation on a directory)")
    text = runtime.files.get(EMQX_CONF_PATH)
    if text is None:
        return dict(SHIPPED_EMQX_CONF), False
    try:
        return parse_hocon(text), True
    except HoconParseError as error:
        where = f" line {error.line}" if error.line else ""
        raise BootError(f"failed_to_load_config: {EMQX_CONF_PATH}{where}: parse_error: {error.reason}") from None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _entrypoint_node_name(env: Mapping[str, str], pod: PodIdentity) -> str | None:
    """docker-entrypoint.sh: EMQX_NODE_NAME from EMQX_NAME@EMQX_HOST unless a node name is given."""
    if env.get("EMQX_NODE__NAME") or env.get("EMQX_NODE_NAME"):
        return None
    name = env.get("EMQX_NAME") or "emqx"
    host = env.get("EMQX_HOST")
    strategy = env.get("EMQX_CLUSTER__DISCOVERY_STRATEGY")
    if not host and strategy == "dns" and env.get("EMQX_CLUSTER__DNS__RECORD_TYPE") == "srv":
        # The entrypoint greps /etc/hosts for "$(hostname).$EMQX_CLUSTER__DNS__NAME"; the kubelet writes
        # the pod's FQDN there only when the pod has a subdomain.
        candidate = f"{pod.hostname}.{env.get('EMQX_CLUSTER__DNS__NAME', '')}"
        if pod.subdomain and candidate == f"{pod.hostname}.{pod.subdomain}.{pod.namespace}.svc.{CLUSTER_DOMAIN}":
            host = candidate
    if not host and strategy == "k8s" and env.get("EMQX_CLUSTER__K8S__NAMESPACE"):
        address_type = env.get("EMQX_CLUSTER__K8S__ADDRESS_TYPE")
        if address_type == "dns":
            suffix = env.get("EMQX_CLUSTER__K8S__SUFFIX") or f"pod.{CLUSTER_DOMAIN}"
            host = f"{pod.ip.replace('.', '-')}.{env['EMQX_CLUSTER__K8S__NAMESPACE']}.{suffix}"
        elif address_type == "hostname" and pod.subdomain:
            host = f"{pod.hostname}.{pod.subdomain}.{pod.namespace}.svc.{CLUSTER_DOMAIN}"
    return f"{name}@{host or pod.ip}"


def _dashboard_port(config: Mapping[str, Any]) -> int:
    http = get_path(config, "dashboard.listeners.http", {}) or {}
    if http.get("enable", True) in (False, "false"):
        return 0
    bind = http.get("bind", DEFAULT_DASHBOARD_PORT)
    text = str(bind)
    port_text = text.rsplit(":", 1)[-1]
    if not port_text.isdigit():
        raise BootError(f"dashboard.listeners.http.bind: invalid value {bind!r}")
    return int(port_text)


def _discovery(config: Mapping[str, Any], node_name: str) -> Discovery:
    strategy = str(get_path(config, "cluster.discovery_strategy", "manual"))
    if strategy == "dns":
        record_type = str(get_path(config, "cluster.dns.record_type", "a"))
        host = node_name.split("@", 1)[1]
        if record_type in ("a", "aaaa") and not _is_ip(host):
            raise BootError(
                f"Node name must be of name@IP format for DNS cluster discovery strategy with "
                f"'{record_type}' record type."
            )
        return Discovery("dns", (str(get_path(config, "cluster.dns.name", "localhost")),))
    if strategy == "static":
        seeds = get_path(config, "cluster.static.seeds", [])
        if isinstance(seeds, str):
            seeds = [seed.strip() for seed in seeds.strip("[]").split(",") if seed.strip()]
        return Discovery("static", tuple(sorted(str(seed) for seed in seeds)))
    if strategy == "k8s":
        return Discovery(
            "k8s",
            (
                str(get_path(config, "cluster.k8s.namespace", "default")),
                str(get_path(config, "cluster.k8s.service_name", "emqx")),
            ),
        )
    if strategy == "etcd":
        return Discovery(
            "etcd",
            (
                str(get_path(config, "cluster.etcd.server", "")),
                str(get_path(config, "cluster.etcd.prefix", "")),
            ),
        )
    if strategy in ("manual", "singleton"):
        return Discovery(strategy, (node_name,))
    raise BootError(f"cluster.discovery_strategy: unable_to_convert_to_enum_symbol: {strategy}")


def _role(image: EmqxImage, conf_file: Mapping[str, Any], env_layer: Mapping[str, Any], warnings: list[str]) -> str:
    node_conf = get_path(deep_merge(conf_file, env_layer), "node", {}) or {}
    if image.version >= versions.NODE_ROLE_FIELD_SINCE:
        role = node_conf.get("role", node_conf.get("db_role", "core"))
    else:
        if "role" in (get_path(conf_file, "node", {}) or {}):
            raise BootError("emqx_conf_schema: unknown_fields: node.role (this release reads node.db_role)")
        if "role" in (get_path(env_layer, "node", {}) or {}):
            warnings.append("unknown env var EMQX_NODE__ROLE ignored (this release reads EMQX_NODE__DB_ROLE)")
        role = node_conf.get("db_role", "core")
    role = str(role)
    if role not in ("core", "replicant"):
        raise BootError(f"node.role: unable_to_convert_to_enum_symbol: {role}")
    if (
        role == "replicant"
        and image.reported_edition is versions.Edition.OPENSOURCE
        and image.version >= versions.CE_REPLICANT_REJECTED_SINCE
    ):
        raise BootError("Node role 'replicant' is only allowed in Enterprise edition since 5.8.0")
    return role


def build_node_spec(runtime: ContainerRuntime) -> NodeSpec:
    """Raises versions.ImageError (image cannot be pulled) or BootError (node refuses to start)."""
    image = versions.parse_image(runtime.image)
    warnings: list[str] = []
    conf_file, mounted = _emqx_conf(runtime)
    env = dict(runtime.env)
    # bin/emqx copies the legacy names to their HOCON form.
    for legacy, modern in (("EMQX_NODE_NAME", "EMQX_NODE__NAME"), ("EMQX_NODE_COOKIE", "EMQX_NODE__COOKIE")):
        if env.get(legacy) and not env.get(modern):
            env[modern] = env[legacy]
    entrypoint_name = _entrypoint_node_name(env, runtime.pod)
    if entrypoint_name is not None:
        env["EMQX_NODE__NAME"] = entrypoint_name
    env_layer, ignored = env_overrides(env, config_roots(image))
    warnings.extend(f"unknown env var {name} ignored" for name in ignored)
    local_config = deep_merge(conf_file, env_layer)

    node_name = str(get_path(local_config, "node.name", "emqx@127.0.0.1"))
    if node_name.count("@") != 1 or not all(node_name.split("@")):
        raise BootError(f"node.name: bad node name {node_name!r}, expected name@host")
    cookie = str(get_path(local_config, "node.cookie", DEFAULT_COOKIE))
    if cookie == DEFAULT_COOKIE:
        warnings.append("Default cookie 'emqxsecretcookie' is used; set node.cookie (EMQX_NODE__COOKIE)")
    role = _role(image, conf_file, env_layer, warnings)
    discovery = _discovery(local_config, node_name)
    data_dir = str(get_path(local_config, "node.data_dir", "data"))
    data_path = data_dir if data_dir.startswith("/") else f"{EMQX_HOME}/{data_dir}"
    license_key = get_path(local_config, "license.key") if "license" in config_roots(image) else None
    if not mounted:
        warnings.append(f"no {EMQX_CONF_PATH} mounted; using the image's shipped file")
    return NodeSpec(
        pod=runtime.pod,
        image=image,
        node_name=node_name,
        role=role,
        cookie=cookie,
        cluster_name=str(get_path(local_config, "cluster.name", "emqxcl")),
        discovery=discovery,
        dashboard_port=_dashboard_port(deep_merge(SHIPPED_EMQX_CONF, local_config)),
        local_config=local_config,
        license_key=str(license_key) if license_key is not None else None,
        bootstrap_file=str(get_path(local_config, "api_key.bootstrap_file", "") or ""),
        data_dir=data_path,
        data_storage_key=runtime.storage_key_for(data_path),
        dashboard_password=str(get_path(local_config, "dashboard.default_password", "public")),
        files=dict(runtime.files),
        directories=set(runtime.directories),
        warnings=warnings,
    )
