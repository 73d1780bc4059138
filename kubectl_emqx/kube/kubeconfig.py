"""The plugin's one kubeconfig resolver: kubectl's rules, applied once, for both transports.

`resolve(flags)` reads the kubeconfig the way kubectl does and returns one `Endpoint` -- server,
TLS material, credentials, namespace, context name, impersonation, proxy -- or raises
`errors.KubeconfigError` with one line naming what is wrong and how to fix it. The light read
session (rest.py) serves an Endpoint directly; the `kubernetes` client session (client.py) is
configured from the same Endpoint. `Endpoint.needs_client` says, with the reason, when only the
client can serve it (credential plugins: `exec`, `auth-provider`; a proxy).

The rules (kubectl's, from client-go's clientcmd):
- files: `--kubeconfig FILE` (must exist), else every existing file of the $KUBECONFIG path list,
  else ~/.kube/config. Merged in order: the first cluster/user/context of a name wins, and so does
  the first `current-context`. Relative file paths in a file (certificate-authority,
  client-certificate, client-key, tokenFile, an exec command with a slash) are relative to that
  file's directory; paths given as flags are relative to the working directory.
- no kubeconfig (or only empty ones), no --server, --context, --cluster or --user, inside a pod:
  the in-cluster configuration (service host and port, ServiceAccount token and CA); -n, else
  $POD_NAMESPACE, else the ServiceAccount's namespace.
- the context: --context, else current-context; --cluster and --user replace its cluster and
  user; -n replaces its namespace (else "default").
- the cluster: --server replaces the server (and drops the file's tls-server-name unless
  --tls-server-name is given too); --certificate-authority replaces the CA and turns
  insecure-skip-tls-verify off; --insecure-skip-tls-verify drops the CA.
- the user: token wins over tokenFile (read at once, whitespace trimmed); --token replaces the
  user's credentials. Impersonation: --as and --as-group, else the user's as / as-groups (and its
  as-uid, as-user-extra).
- proxy: the cluster's proxy-url, else $HTTPS_PROXY or $HTTP_PROXY (by the server's scheme)
  unless $NO_PROXY matches; never for localhost and loopback addresses.

Standard library only (yaml is imported only for a kubeconfig that is not JSON): `--help` and
argument errors never pay for it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from kubectl_emqx.kube import errors

DEFAULT_REQUEST_TIMEOUT = 30.0
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
FLAGS_CONTEXT = "(flags)"
IN_CLUSTER_CONTEXT = "in-cluster"

# Keys holding file paths, per entry kind: relative ones are relative to the file naming them.
CLUSTER_FILES = ("certificate-authority",)
USER_FILES = ("client-certificate", "client-key", "tokenFile")


@dataclass(frozen=True)
class KubeFlags:
    """kubectl's global flags, which a plugin must parse itself (kubectl passes them through)."""

    kubeconfig: str | None = None
    context: str | None = None
    cluster: str | None = None
    user: str | None = None
    namespace: str | None = None
    as_user: str | None = None
    as_groups: tuple[str, ...] = ()
    request_timeout: float | None = None  # seconds; 0 = no limit (as kubectl); None = default
    server: str | None = None
    token: str | None = None
    certificate_authority: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None

    @property
    def effective_request_timeout(self) -> float | None:
        if self.request_timeout is None:
            return DEFAULT_REQUEST_TIMEOUT
        return self.request_timeout or None


class Pem(NamedTuple):
    """TLS material: a file to read, or the bytes themselves (a kubeconfig's *-data, decoded)."""

    file: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Impersonation:
    user: str
    uid: str | None = None
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()  # (key, value) pairs; a key may repeat

    def headers(self) -> list[tuple[str, str]]:
        """The request headers, in order; Impersonate-Group and -Extra-* repeat per value."""
        from urllib.parse import quote

        found = [("Impersonate-User", self.user)]
        if self.uid:
            found.append(("Impersonate-Uid", self.uid))
        found += [("Impersonate-Group", group) for group in self.groups]
        found += [(f"Impersonate-Extra-{quote(key, safe='')}", value) for key, value in self.extra]
        return found


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send requests: the kubeconfig and the flags, resolved."""

    server: str  # scheme://host[:port][/prefix], no trailing slash
    context_name: str
    namespace: str
    ca: Pem | None = None  # None: the default trust store (certifi's bundle, as the client)
    insecure: bool = False  # insecure-skip-tls-verify
    tls_server_name: str | None = None
    client_certificate: Pem | None = None
    client_key: Pem | None = None
    token: str | None = None
    basic_auth: tuple[str, str] | None = None  # (username, password)
    # {"exec": {...}} or {"auth-provider": {...}}: only the client runs these
    credential_plugin: Mapping[str, Any] | None = field(default=None, repr=False)
    proxy: str | None = None
    impersonation: Impersonation | None = None

    @property
    def needs_client(self) -> str | None:
        """Why only the `kubernetes` client can serve this endpoint, or None when rest.py can."""
        if self.credential_plugin:
            kind = next(iter(self.credential_plugin))
            return f"the user's credentials come from an {kind} plugin, which only the kubernetes client runs"
        if self.proxy:
            return "requests go through a proxy, which only the kubernetes client speaks"
        return None

    @property
    def secure(self) -> bool:
        return self.server.startswith("https:")


def resolve(flags: KubeFlags) -> Endpoint:
    """The Endpoint kubectl would use for `flags`, or KubeconfigError naming the problem."""
    config = _load(flags)
    if config is None or config.empty():
        if not (flags.server or flags.context or flags.cluster or flags.user):
            in_cluster = _in_cluster(flags)
            if in_cluster is not None:
                return in_cluster
            where = _paths_text(flags)
            if config is None:
                raise errors.KubeconfigError(f"no kubeconfig found at {where}; set KUBECONFIG or pass --kubeconfig")
            raise errors.KubeconfigError(f"the kubeconfig {where} is empty; set KUBECONFIG or pass --kubeconfig")
        config = config or _Merged()
    context_name, context = _select_context(config, flags)
    cluster_name, user_name = context.get("cluster"), context.get("user")
    cluster = config.get("clusters", cluster_name, "cluster")
    user = config.get("users", user_name, "user")
    _override_cluster(cluster, flags)
    server = _server(cluster, cluster_name)
    return Endpoint(
        server=server,
        context_name=context_name,
        namespace=flags.namespace or context.get("namespace") or "default",
        **(_tls(cluster, user, flags, cluster_name, user_name) if server.startswith("https:") else {}),
        **_credentials(user, flags, user_name),
        proxy=_proxy(server, cluster.get("proxy-url")),
        impersonation=_impersonation(user, flags),
    )


# --- reading and merging the files ------------------------------------------------------------


class _Merged:
    """Clusters, users and contexts by name (the first file naming one wins), each entry's body
    with its relative paths already resolved, and the first current-context."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, dict[str, Any]]] = {"clusters": {}, "users": {}, "contexts": {}}
        self.current_context: str | None = None

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str | None, body_key: str) -> dict[str, Any]:
        if not name:
            return {}
        return dict(self.entries[kind].get(name, {}).get(body_key) or {})

    def has(self, kind: str, name: str) -> bool:
        return name in self.entries[kind]

    def empty(self) -> bool:
        return self.current_context is None and not any(self.entries.values())


def _paths_text(flags: KubeFlags) -> str:
    return flags.kubeconfig or os.environ.get("KUBECONFIG") or os.path.join("~", ".kube", "config")


def _files(flags: KubeFlags) -> list[str]:
    if flags.kubeconfig:
        path = os.path.expanduser(flags.kubeconfig)
        if not os.path.exists(path):
            raise errors.KubeconfigError(f"--kubeconfig {flags.kubeconfig}: no such file")
        return [path]
    listed = os.environ.get("KUBECONFIG") or os.path.join("~", ".kube", "config")
    found: list[str] = []
    for entry in listed.split(os.pathsep):
        path = os.path.expanduser(entry) if entry else ""
        if path and os.path.exists(path) and path not in found:
            found.append(path)
    return found


def _load(flags: KubeFlags) -> _Merged | None:
    """The merged kubeconfig, or None when no file exists."""
    merged = _Merged()
    found = _files(flags)
    for path in found:
        document = _read(path)
        base = os.path.dirname(os.path.abspath(path))
        for kind, body_key, files in (("clusters", "cluster", CLUSTER_FILES), ("users", "user", USER_FILES),
                                      ("contexts", "context", ())):
            entries = document.get(kind) or []
            if not isinstance(entries, list):
                raise errors.KubeconfigError(f"kubeconfig {path}: {kind} must be a list")
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                    raise errors.KubeconfigError(f"kubeconfig {path}: {kind}[{index}] has no name")
                body = entry.get(body_key) or {}
                if not isinstance(body, dict):
                    raise errors.KubeconfigError(
                        f"kubeconfig {path}: {kind}[{index}] ({entry['name']}): {body_key} must be a mapping")
                if entry["name"] not in merged.entries[kind]:
                    merged.entries[kind][entry["name"]] = {body_key: _resolve_paths(body, files, base)}
        current = document.get("current-context")
        if current and merged.current_context is None:
            merged.current_context = str(current)
    return merged if found else None


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.KubeconfigError(f"cannot read kubeconfig {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    document: Any = None
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)  # what many tools write; JSON is YAML too, and much cheaper to read
        except ValueError:
            document = None
    if document is None and text.strip():
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            document = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise errors.KubeconfigError(f"cannot parse kubeconfig {path}: {problem}{where}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise errors.KubeconfigError(
            f"kubeconfig {path} is not a kubeconfig (a mapping with clusters, users and contexts)")
    return document


def _resolve_paths(body: dict[str, Any], keys: tuple[str, ...], base: str) -> dict[str, Any]:
    resolved = dict(body)
    for key in keys:
        value = resolved.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            resolved[key] = os.path.join(base, value)
    plugin = resolved.get("exec")
    if isinstance(plugin, dict):
        command = plugin.get("command")
        if isinstance(command, str) and os.sep in command and not os.path.isabs(command):
            resolved["exec"] = {**plugin, "command": os.path.join(base, command)}
    return resolved


# --- context, cluster, user -------------------------------------------------------------------


def _select_context(config: _Merged, flags: KubeFlags) -> tuple[str, dict[str, Any]]:
    """The context to use, with --cluster/--user applied on top (kubectl's override order)."""
    listing = ", ".join(config.names("contexts")) or "none"
    name = flags.context or config.current_context
    if not name:
        if not (flags.server or (flags.cluster and flags.user)):
            raise errors.KubeconfigError(f"the kubeconfig has no current context; pass --context (contexts: {listing})")
        name, context = FLAGS_CONTEXT, {}
    elif not config.has("contexts", name):
        raise errors.KubeconfigError(f'context "{name}" not found in the kubeconfig (contexts: {listing})')
    else:
        context = config.get("contexts", name, "context")
    if flags.cluster:
        context["cluster"] = flags.cluster
    if flags.user:
        context["user"] = flags.user
    for kind in ("cluster", "user"):
        wanted = context.get(kind)
        if wanted and not config.has(kind + "s", wanted):
            raise errors.KubeconfigError(f'{kind} "{wanted}" not found in the kubeconfig')
    if not context.get("cluster") and not flags.server:
        raise errors.KubeconfigError(f'context "{name}" names no cluster; pass --cluster or --server')
    return name, context


def _server(cluster: dict[str, Any], cluster_name: str | None) -> str:
    if not cluster.get("server"):
        raise errors.KubeconfigError(f'cluster "{cluster_name}" has no server; pass --server or fix the kubeconfig')
    server = str(cluster["server"]).rstrip("/")
    parts = urlsplit(server)
    try:
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # a port that is no number
        valid = False
    if not valid:
        raise errors.KubeconfigError(f"server {server!r} is not an http(s) URL (example: https://127.0.0.1:6443)")
    return server


def _override_cluster(cluster: dict[str, Any], flags: KubeFlags) -> None:
    """--server, --tls-server-name, --certificate-authority, --insecure-skip-tls-verify (clientcmd's rules)."""
    if flags.server or flags.tls_server_name:
        cluster["tls-server-name"] = flags.tls_server_name
    if flags.server:
        cluster["server"] = flags.server
    if flags.certificate_authority or flags.insecure_skip_tls_verify:
        cluster["insecure-skip-tls-verify"] = bool(flags.insecure_skip_tls_verify)
        cluster["certificate-authority"] = flags.certificate_authority
        cluster.pop("certificate-authority-data", None)


def _tls(cluster: dict[str, Any], user: dict[str, Any], flags: KubeFlags, cluster_name: str | None,
         user_name: str | None) -> dict[str, Any]:
    ca_flag = "--certificate-authority" if flags.certificate_authority else None
    found: dict[str, Any] = {
        "ca": _pem(cluster, "certificate-authority", ca_flag or f'cluster "{cluster_name}"'),
        "insecure": _boolean(cluster.get("insecure-skip-tls-verify"), "insecure-skip-tls-verify"),
        "tls_server_name": cluster.get("tls-server-name") or None,
    }
    if not flags.token:  # --token replaces the user's credentials, client certificates included
        owner = f'user "{user_name}"'
        certificate, key = _pem(user, "client-certificate", owner), _pem(user, "client-key", owner)
        if (certificate is None) != (key is None):
            given, missing = ("client-certificate", "client-key")
            if certificate is None:
                given, missing = missing, given
            raise errors.KubeconfigError(f"{owner} has a {given} but no {missing} (or {missing}-data); give both")
        found.update(client_certificate=certificate, client_key=key)
    return found


def _pem(entry: dict[str, Any], key: str, owner: str) -> Pem | None:
    """A kubeconfig's FileOrData: `key-data` (base64) wins over the file `key`."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return Pem(data=base64.b64decode(str(data), validate=True))
        except (binascii.Error, ValueError):
            raise errors.KubeconfigError(f"{key}-data of {owner} is not valid base64") from None
    path = entry.get(key)
    if not path:
        return None
    _check_readable(str(path), key, owner)
    return Pem(file=str(path))


def _check_readable(path: str, key: str, owner: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        what = owner if owner.startswith("--") else f"the kubeconfig's {key}"
        raise errors.KubeconfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def _credentials(user: dict[str, Any], flags: KubeFlags, user_name: str | None) -> dict[str, Any]:
    if flags.token:
        return {"token": flags.token}
    found: dict[str, Any] = {}
    if user.get("token"):
        found["token"] = str(user["token"])
    elif user.get("tokenFile"):
        found["token"] = read_token_file(str(user["tokenFile"])) or None
    if user.get("username") or user.get("password"):
        found["basic_auth"] = (str(user.get("username") or ""), str(user.get("password") or ""))
    for kind in ("exec", "auth-provider"):
        if user.get(kind):
            if not isinstance(user[kind], dict):
                raise errors.KubeconfigError(f'{kind} of user "{user_name}" must be a mapping')
            found["credential_plugin"] = {kind: user[kind]}
            break
    return found


def read_token_file(path: str) -> str:
    """A tokenFile's token without the surrounding whitespace, as kubectl reads it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise errors.KubeconfigError(f"cannot read the kubeconfig's tokenFile {path}: {reason}") from exc


def _impersonation(user: dict[str, Any], flags: KubeFlags) -> Impersonation | None:
    name = flags.as_user or user.get("as")
    groups = tuple(flags.as_groups) or tuple(str(group) for group in user.get("as-groups") or ())
    uid = user.get("as-uid") or None
    extra = tuple((str(key), str(value)) for key, values in (user.get("as-user-extra") or {}).items()
                  for value in (values if isinstance(values, list) else [values]))
    if not name:
        if groups or uid or extra:
            what = "--as-group" if flags.as_groups else "the kubeconfig's as-groups/as-uid/as-user-extra"
            raise errors.KubeconfigError(f"{what} impersonates no user: pass --as USER too")
        return None
    return Impersonation(user=str(name), uid=str(uid) if uid else None, groups=groups, extra=extra)


def _boolean(value: Any, key: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise errors.KubeconfigError(f"{key}: {value!r} is not true or false")


# --- in-cluster -------------------------------------------------------------------------------


def _in_cluster(flags: KubeFlags) -> Endpoint | None:
    """The in-cluster configuration when this process runs in a pod (clientcmd's "possible": the
    service variables are set and the ServiceAccount token exists), else None."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token_file = os.path.join(SERVICE_ACCOUNT_DIR, "token")
    if not host or not port or not os.path.isfile(token_file):
        return None
    if ":" in host:
        host = f"[{host}]"
    cluster: dict[str, Any] = {"server": f"https://{host}:{port}"}
    ca_file = os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")
    if os.path.isfile(ca_file):
        cluster["certificate-authority"] = ca_file
    _override_cluster(cluster, flags)
    server = _server(cluster, IN_CLUSTER_CONTEXT)
    return Endpoint(
        server=server,
        context_name=IN_CLUSTER_CONTEXT,
        namespace=flags.namespace or os.environ.get("POD_NAMESPACE") or _service_account_namespace() or "default",
        **(_tls(cluster, {}, flags, IN_CLUSTER_CONTEXT, None) if server.startswith("https:") else {}),
        token=flags.token or read_token_file(token_file) or None,
        proxy=_proxy(server, None),
        impersonation=_impersonation({}, flags),
    )


def _service_account_namespace() -> str | None:
    try:
        with open(os.path.join(SERVICE_ACCOUNT_DIR, "namespace"), encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


# --- proxies ----------------------------------------------------------------------------------


def _proxy(server: str, proxy_url: Any) -> str | None:
    """The proxy for requests to `server`: the cluster's proxy-url, else the environment's, as Go's
    http.ProxyFromEnvironment decides (NO_PROXY; never for localhost or a loopback address)."""
    if proxy_url:
        return str(proxy_url)
    parts = urlsplit(server)
    names = ("HTTPS_PROXY", "https_proxy") if parts.scheme == "https" else ("HTTP_PROXY", "http_proxy")
    proxy = next((os.environ[name] for name in names if os.environ.get(name)), None)
    if not proxy:
        return None
    host = (parts.hostname or "").lower()
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    if not _proxied(host, port, os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _proxied(host: str, port: str, no_proxy: str) -> bool:
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or (address is not None and address.is_loopback):
        return False
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return False
        if "/" in entry:
            try:
                if address is not None and address in ipaddress.ip_network(entry, strict=False):
                    return False
            except ValueError:
                pass
            continue
        entry_host, entry_port = entry, ""
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            entry_host, _, entry_port = entry.rpartition(":")
        entry_host = entry_host.strip("[]")
        if entry_port and entry_port != port:
            continue
        try:
            entry_address = ipaddress.ip_address(entry_host)
        except ValueError:
            entry_address = None
        if entry_address is not None:
            if address == entry_address:
                return False
            continue
        if address is None:
            if entry_host.startswith("*."):
                entry_host = entry_host[1:]
            if host.endswith(entry_host if entry_host.startswith(".") else "." + entry_host) or host == entry_host:
                return False
    return True
