"""From the container the kubelet would start to the EMQX node it would boot (pure).

Reproduces the Docker entrypoint (node name from EMQX_NAME/EMQX_HOST or the pod's hosts entry) and what
`bin/emqx foreground` does before the Erlang VM runs: read the boot keys of etc/emqx.conf with
`hocon multi_get` (node.*, cluster.*, and license.* on Enterprise), then `hocon generate`, which checks
the whole config (emqx.conf and EMQX_* env vars; data/configs/cluster.hocon from 5.6.0) against the
schema. A file hocon cannot parse, or a value the schema rejects, ends the process with EMQX's own
output (BootFailure); the kubelet then shows a terminated container.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import schema, versions
from .erlterm import Atom, Charlist, Tuple, format_0p, format_p
from .hocon import ConfigDict, Dialect, HoconError, deep_merge, get_path, parse, parse_env_value, set_path
from .podspec import ContainerRuntime, PodIdentity
from .versions import EmqxImage, Version

EMQX_HOME = "/opt/emqx"
EMQX_ETC_DIR = f"{EMQX_HOME}/etc"
EMQX_CONF_PATH = f"{EMQX_ETC_DIR}/emqx.conf"
DEFAULT_COOKIE = "emqxsecretcookie"
CLUSTER_DOMAIN = "cluster.local"
ENV_PREFIX = "EMQX_"

# The etc/emqx.conf the official images ship (apps/emqx_conf/etc/emqx_conf.conf + the per-app etc
# files merged at build time), replaced when a file is mounted over it. Before 5.0.25 / e5.0.3 it
# also carries the default MQTT listeners and the file ACL, which the schema does not.
_SHIPPED_COMMON: ConfigDict = {
    "node": {"name": "emqx@127.0.0.1", "cookie": DEFAULT_COOKIE, "data_dir": "data"},
    "cluster": {"name": "emqxcl", "discovery_strategy": "manual"},
    "dashboard": {"listeners": {"http": {"bind": 18083}}},
}
_SHIPPED_OLD_EXTRA: ConfigDict = {
    "listeners": {
        "tcp": {"default": {"bind": "0.0.0.0:1883", "max_connections": 1024000}},
        "ssl": {"default": {"bind": "0.0.0.0:8883", "max_connections": 512000}},
        "ws": {"default": {"bind": "0.0.0.0:8083", "max_connections": 1024000, "websocket": {"mqtt_path": "/mqtt"}}},
        "wss": {"default": {"bind": "0.0.0.0:8084", "max_connections": 512000, "websocket": {"mqtt_path": "/mqtt"}}},
    },
    "authorization": {
        "deny_action": "ignore",
        "no_match": "allow",
        "sources": [{"type": "file", "enable": True, "path": f"{EMQX_ETC_DIR}/acl.conf"}],
    },
}


def shipped_emqx_conf(image: EmqxImage) -> ConfigDict:
    if image.at_least(versions.SCHEMA_DEFAULT_LISTENERS):
        return deep_merge(_SHIPPED_COMMON, {"authorization": {"deny_action": "ignore", "no_match": "allow"}})
    return deep_merge(_SHIPPED_COMMON, _SHIPPED_OLD_EXTRA)


class BootFailure(Exception):
    """The EMQX process exits while booting: its exit code and the last lines it printed."""

    def __init__(self, reason: str, exit_code: int = 1, log_lines: list[str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.log_lines = list(log_lines or [reason])


# Historical name, kept for callers and tests.
BootError = BootFailure


def log_time() -> str:
    """logger_formatter's default time (RFC 3339, microseconds, local offset) as hocon_cli prints it."""
    now = time.time()
    micros = int((now % 1) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{micros:06d}+00:00"


def hocon_log(level: str, message: str) -> str:
    return f"{log_time()} [{level}] {message}"


def now_time() -> str:
    """`hocon now_time`: the -t argument of `hocon generate` (date +'%Y.%m.%d.%H.%M.%S')."""
    return time.strftime("%Y.%m.%d.%H.%M.%S", time.gmtime())


def die(message: str) -> str:
    """bin/emqx die/logerr: `ERROR: ...` on stderr (TERM is dumb in a container)."""
    return f"ERROR: {message}"


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
    # emqx.conf (mounted or shipped) and the EMQX_* env overlay, the two local boot layers.
    conf_file: ConfigDict
    env_layer: ConfigDict
    license_key: str | None
    bootstrap_file: str
    data_dir: str
    data_storage_key: str | None
    dashboard_password: str
    mounted_conf: bool = True
    # Set by the World from the running config (0: no HTTP dashboard listener).
    dashboard_port: int = 0
    files: dict[str, str] = field(default_factory=dict)
    directories: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    # What bin/emqx printed before the VM started (env overrides, warnings).
    boot_lines: list[str] = field(default_factory=list)

    @property
    def version(self) -> Version:
        return self.image.version

    @property
    def local_config(self) -> ConfigDict:
        """emqx.conf overlaid by env: the layers that win over cluster.hocon at every boot (5.0.23+)."""
        return deep_merge(self.conf_file, self.env_layer)

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


_SENSITIVE_PATHS = ("node.cookie", "dashboard.default_password", "license.key")


def env_overlay(env: Mapping[str, str], image: EmqxImage) -> tuple[ConfigDict, list[str], list[str]]:
    """EMQX_* variables as hocon_tconf applies them (collect_envs/check_env/parse_env).

    Returns the overlay, the lines `hocon generate -v` prints for the applied ones, and the names
    of variables under a known root that match no schema field (logged as unknown_env_vars and
    ignored). Variables of unknown roots are ignored silently.
    """
    model = schema.Schema(image)
    dialect = Dialect(image.hocon_version)
    overlay: ConfigDict = {}
    lines: list[str] = []
    unknown: list[str] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part for part in name[len(ENV_PREFIX) :].lower().split("__") if part]
        if not path or "__" not in name:
            continue
        known = model.env_path_known(path)
        if known is None:
            continue
        if known is False:
            unknown.append(name)
            continue
        value = parse_env_value(env[name], dialect)
        set_path(overlay, path, value)
        dotted = ".".join(path)
        if dotted in _SENSITIVE_PATHS:
            shown = "******"
        elif isinstance(value, str):
            shown = value
        elif isinstance(value, dict):
            shown = "{...}"
        elif isinstance(value, list):
            shown = "[...]" if value else "[]"
        else:
            shown = format_0p(value)
        lines.append(f"{name} [{dotted}]: {shown}")
    return overlay, lines, unknown


def _discovery(config: Mapping[str, Any], node_name: str) -> Discovery:
    strategy = str(get_path(config, "cluster.discovery_strategy", "manual"))
    if strategy == "dns":
        record_type = str(get_path(config, "cluster.dns.record_type", "a"))
        host = node_name.split("@", 1)[1]
        if record_type in ("a", "aaaa") and not _is_ip(host):
            # Before 5.6.0 nothing checks this (5.6.0+ refuse it in generate): ekka_cluster_dns
            # finds name@IP nodes, none of which is this node's name, so it never clusters.
            return Discovery("dns-name-mismatch", (node_name,))
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
    return Discovery(strategy, (node_name,))


def _conf_keys(image: EmqxImage) -> list[str]:
    keys = ["node.data_dir", "node.name", "node.cookie", "node.db_backend", "cluster.proto_dist"]
    if image.version >= (5, 0, 23) or image.enterprise:
        keys.append("node.dist_net_ticktime")
    if image.enterprise and image.version < (5, 9, 0) or image.version >= (5, 9, 0):
        keys.append("license.key")
    return keys


def _schema_errors_exit(
    image: EmqxImage, errors: list[dict[Any, Any]], lines: list[str], stage: str, args: str
) -> BootFailure:
    """How a schema error ends bin/emqx: in `multi_get` the escript crashes on the uncaught throw
    (exit 127); in `generate` hocon_cli logs failed_to_check_schema and stops with 1."""
    if stage == "multi_get":
        term = Tuple((Atom(image.schema_module), errors))
        lines = lines + [
            f"escript: exception throw: {format_p(term, 27)}",
            "  in function  hocon_tconf:assert/2 (hocon_tconf.erl)",
            die(f"call_hocon_failed: {args}"),
        ]
        return BootFailure(_first_reason(errors), 127, lines)
    lines = lines + [hocon_log("error", f"failed_to_check_schema: {image.schema_module}")]
    lines += [hocon_log("error", format_0p(error)) for error in errors]
    lines.append(die(f"call_hocon_failed: {args}"))
    return BootFailure(_first_reason(errors), 1, lines)


def _first_reason(errors: list[dict[Any, Any]]) -> str:
    first = errors[0]
    reason = first.get(Atom("reason"))
    path = first.get(Atom("path"), first.get(Atom("validation_name")))
    text = str(reason) if isinstance(reason, str) else format_0p(reason)
    return f"failed_to_check_schema: {path}: {text}"


def build_node_spec(runtime: ContainerRuntime) -> NodeSpec:
    """Raises versions.ImageError (image cannot be pulled) or BootFailure (the node exits)."""
    image = versions.parse_image(runtime.image)
    model = schema.Schema(image)
    dialect = Dialect(image.hocon_version)
    env = dict(runtime.env)
    # bin/emqx copies the legacy names to their HOCON form.
    for legacy, modern in (("EMQX_NODE_NAME", "EMQX_NODE__NAME"), ("EMQX_NODE_COOKIE", "EMQX_NODE__COOKIE")):
        if env.get(legacy) and not env.get(modern):
            env[modern] = env[legacy]
    entrypoint_name = _entrypoint_node_name(env, runtime.pod)
    if entrypoint_name is not None:
        env["EMQX_NODE__NAME"] = entrypoint_name

    # bin/emqx: `[ -f etc/emqx.conf ] || die`, then `hocon multi_get` of the boot keys.
    if EMQX_CONF_PATH in runtime.directories:
        raise BootFailure(
            f"emqx.conf is not found in {EMQX_ETC_DIR}", 1, [die(f"emqx.conf is not found in {EMQX_ETC_DIR}")]
        )
    text = runtime.files.get(EMQX_CONF_PATH)
    mounted = text is not None
    multi_get_args = f"-s {image.schema_module} -c {EMQX_CONF_PATH} multi_get " + " ".join(_conf_keys(image))
    if text is None:
        conf_file = shipped_emqx_conf(image)
    else:
        try:
            conf_file = parse(text, dialect, file=EMQX_CONF_PATH)
        except HoconError as error:
            reason = error.erlang_reason(dialect)
            lines = [hocon_log("error", format_0p(reason)), die(f"call_hocon_failed: {multi_get_args}")]
            raise BootFailure(f"{error.kind}: {error.reason} ({EMQX_CONF_PATH} line {error.line})", 1, lines) from None
    env_layer, env_lines, unknown_env = env_overlay(env, image)
    warnings: list[str] = []
    boot_lines: list[str] = []
    if unknown_env:
        # hocon_tconf warns through `hocon generate -v`'s logger: "[warning] <message>" on stderr
        message = f"unknown_env_vars: {format_p([Charlist(name) for name in sorted(unknown_env)], 19)}"
        boot_lines.append(f"[warning] {message}")
        warnings.append(message)
    local = deep_merge(conf_file, env_layer)
    boot_roots = ["node", "cluster"] + (["license"] if "license.key" in _conf_keys(image) else [])
    errors = [error for root in boot_roots if root in local for error in model.check_root(root, local[root])]
    if errors:
        raise _schema_errors_exit(image, errors, boot_lines, "multi_get", multi_get_args)

    data_dir = str(get_path(local, "node.data_dir", "data"))
    data_path = data_dir.rstrip("/") if data_dir.startswith("/") else f"{EMQX_HOME}/{data_dir.rstrip('/')}"
    # `hocon -v generate`: the whole config, env overrides printed as they are applied.
    generate_files = ([f"{EMQX_ETC_DIR}/base.hocon"] if image.at_least(versions.BASE_HOCON) else []) + (
        [f"{data_path}/configs/cluster.hocon"] if image.at_least(versions.GENERATE_READS_CLUSTER_HOCON) else []
    )
    generate_args = (
        f"-v -t {now_time()} -s {image.schema_module} "
        + "".join(f"-c {path} " for path in generate_files + [EMQX_CONF_PATH])
        + f"-d {data_path}/configs generate"
    )
    boot_lines += env_lines
    errors = model.check(local) or model.integrity(local)
    if errors:
        raise _schema_errors_exit(image, errors, boot_lines, "generate", generate_args)

    node_name = str(get_path(local, "node.name", "emqx@127.0.0.1"))
    if node_name.count("@") != 1 or not all(node_name.split("@")):
        raise BootFailure(f"node.name: bad node name {node_name!r}, expected name@host")
    cookie = str(get_path(local, "node.cookie", DEFAULT_COOKIE))
    if cookie == DEFAULT_COOKIE:
        warnings.append("Default cookie 'emqxsecretcookie' is used; set node.cookie (EMQX_NODE__COOKIE)")
    node_conf = get_path(local, "node", {}) or {}
    role = str(node_conf.get("role", node_conf.get("db_role", "core")))
    discovery = _discovery(local, node_name)
    license_key = get_path(local, "license.key") if "license" in model.roots else None
    if not mounted:
        warnings.append(f"no {EMQX_CONF_PATH} mounted; using the image's shipped file")
    unknown_roots = [key for key in conf_file if key not in model.roots]
    if unknown_roots and image.at_least(versions.UNKNOWN_ROOT_WARNING):
        # emqx_config:init_load/2 -> warning_deprecated_root_key/1 (the files only, before env);
        # hocon_tconf drops unknown roots silently, and so do releases before 5.1.0.
        message = f"msg: config_key_not_recognized, unknown_config_keys: {','.join(unknown_roots)}"
        boot_lines.append(hocon_log("warning", message))
        warnings.append(message)
    return NodeSpec(
        pod=runtime.pod,
        image=image,
        node_name=node_name,
        role=role,
        cookie=cookie,
        cluster_name=str(get_path(local, "cluster.name", "emqxcl")),
        discovery=discovery,
        conf_file=conf_file,
        env_layer=env_layer,
        license_key=str(license_key) if license_key is not None else None,
        bootstrap_file=str(get_path(local, "api_key.bootstrap_file", "") or ""),
        data_dir=data_path,
        data_storage_key=runtime.storage_key_for(data_path),
        dashboard_password=str(get_path(local, "dashboard.default_password", "public")),
        mounted_conf=mounted,
        files=dict(runtime.files),
        directories=set(runtime.directories),
        warnings=warnings,
        boot_lines=boot_lines,
    )


def dashboard_port(image: EmqxImage, config: Mapping[str, Any]) -> int:
    """The port the HTTP dashboard listener binds with this config (0: none).

    `dashboard.listeners.http` has no default: absent, there is no listener. Up to 5.0.x its `bind`
    defaults to 18083 and `enable = false` disables it; from 5.1.0 `bind` defaults to 0, which
    disables it, and `enable` is deprecated (ignored).
    """
    http = get_path(config, "dashboard.listeners.http")
    if not isinstance(http, Mapping):
        return 0
    if image.at_least(versions.DASHBOARD_BIND_ZERO_DISABLES):
        bind = http.get("bind", 0)
    else:
        if http.get("enable", True) in (False, "false"):
            return 0
        bind = http.get("bind", 18083)
    parsed, _ = schema.ip_port(bind)
    return parsed[1] if parsed is not None else 0
