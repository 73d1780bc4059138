"""A light session for the verbs that only read (`status`, `list`, cluster-name completion): the
kubeconfig read with json (or yaml), requests made with http.client, no `kubernetes` client.

Importing the `kubernetes` client costs ~0.3 s, several times what `kubectl get` takes in total;
these verbs need a few GET requests. `connect()` takes only the kubeconfigs it can serve exactly as
kube.KubernetesClusterApi would -- client certificates, bearer tokens (inline or tokenFile), CA data
or file, insecure-skip-tls-verify, tls-server-name -- and returns None for anything else (exec or
auth-provider credentials, basic auth, proxies, in-cluster configuration, a kubeconfig it cannot
read), so that the caller falls back to the full client, which also reports every kubeconfig
problem. Kubeconfig merging and context selection follow kube.py (and share its code); API
statuses become the same errors.PluginError through kube._status_error.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from kubectl_emqx import __version__
from kubectl_emqx.domain.vocabulary import KIND, RESOURCE, kind_path
from kubectl_emqx.kube import errors
from kubectl_emqx.kube.client import (
    DEFAULT_REQUEST_TIMEOUT,
    KUBECONFIG_USER_FILES,
    KubeFlags,
    WatchEvent,
    _absolute_paths,
    _select_context,
    _short_reason,
    _status_error,
    kubeconfig_paths,
    override_cluster,
    read_token_file,
    watch_event,
)

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
# What the light session understands in a kubeconfig's user and cluster entries; any other key
# (exec, auth-provider, username/password, as/as-groups, proxy-url, ...) means "use the client".
USER_KEYS = frozenset({"client-certificate", "client-certificate-data", "client-key", "client-key-data",
                       "token", "tokenFile", "extensions"})
CLUSTER_KEYS = frozenset({"server", "certificate-authority", "certificate-authority-data",
                          "insecure-skip-tls-verify", "tls-server-name", "extensions"})


class Unsupported(Exception):
    """The kubeconfig needs the full client (or has a problem the full client reports)."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send requests: everything resolved from the kubeconfig and the flags."""

    server: str  # as the client reports it (scheme://host:port/prefix, no trailing slash)
    context_name: str
    namespace: str
    token: str | None = None
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    cert: tuple[str, str] | None = None  # (file or PEM data, "file"|"data") for the certificate...
    key: tuple[str, str] | None = None  # ... and the key
    verify: bool = True
    tls_server_name: str | None = None


def connect(flags: KubeFlags) -> RestClusterApi | None:
    """A light session for `flags`, or None when only the full client can serve them."""
    try:
        endpoint = resolve(flags)
        return RestClusterApi(endpoint, flags)
    except (Unsupported, errors.PluginError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# --- kubeconfig ------------------------------------------------------------------------------


class _Node:
    """The shape kube._select_context reads: `.value` holding the merged document."""

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value


def _read_document(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)  # what the sandbox and many tools write; a JSON document is YAML too
        except ValueError:
            pass
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise Unsupported(f"{path}: {exc}") from exc  # the client words the error


def resolve(flags: KubeFlags) -> Endpoint:
    """The endpoint kube._load_configuration would configure, or Unsupported."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        raise Unsupported("proxy settings: the client handles them")
    paths = kubeconfig_paths(flags)
    if flags.kubeconfig and not os.path.exists(os.path.expanduser(flags.kubeconfig)):
        raise Unsupported("missing --kubeconfig")
    # Merge as kubernetes.config.KubeConfigMerger: every existing file in the list; the first entry
    # of each name wins; current-context from the first file that sets it (kube.py's rule).
    merged: dict[str, Any] | None = None
    origin: dict[tuple[str, str], str] = {}  # (kind, name) -> file the entry came from
    current_context: str | None = None
    for path in paths.split(os.pathsep):
        if not path:
            continue
        path = os.path.expanduser(path)
        if not os.path.exists(path):
            continue
        document = _read_document(path)
        if not isinstance(document, dict):
            raise Unsupported(f"{path} is not a kubeconfig")
        if merged is None:
            merged = {**document, "clusters": [], "contexts": [], "users": []}
        for kind in ("clusters", "contexts", "users"):
            for entry in document.get(kind) or []:
                if (kind, entry["name"]) not in origin:
                    origin[(kind, entry["name"])] = path
                    merged[kind].append(entry)
        if document.get("current-context") and current_context is None:
            current_context = document["current-context"]
    if merged is None:
        if not flags.server or os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise Unsupported("no kubeconfig: in-cluster configuration or the client's error")
        merged = {"clusters": [], "contexts": [], "users": []}
    else:
        merged["current-context"] = current_context

    context_name, context = _select_context(_Node(merged), flags)
    cluster, cluster_file = _entry(merged, origin, "clusters", "cluster", context.get("cluster"))
    user, user_file = _entry(merged, origin, "users", "user", context.get("user"))
    # Relative paths in a kubeconfig are relative to its directory, as kube.py makes them.
    _absolute_paths(cluster, ("certificate-authority",), cluster_file)
    _absolute_paths(user, KUBECONFIG_USER_FILES, user_file)
    override_cluster(cluster, flags)
    if flags.token:
        user = {"token": flags.token}
    if set(cluster) - CLUSTER_KEYS or set(user) - USER_KEYS:
        raise Unsupported("credentials or settings only the client handles")
    if not cluster.get("server"):
        raise Unsupported("no server")
    server = str(cluster["server"]).rstrip("/")
    cluster_base = user_base = ""  # what is still relative came from a flag: the working directory

    token = _file_or_data(user, "tokenFile", "token", user_base)
    token_text: str | None = None
    if token is not None:
        token_text = token[0] if token[1] == "data" else read_token_file(_existing(token[0]))
    settings: dict[str, Any] = {}
    if server.startswith("https"):
        ca = _file_or_data(cluster, "certificate-authority", "certificate-authority-data", cluster_base)
        if ca is not None and ca[1] == "file":
            settings["ca_file"] = _existing(ca[0])
        elif ca is not None:
            settings["ca_data"] = base64.standard_b64decode(ca[0]).decode("ascii")
        cert = _file_or_data(user, "client-certificate", "client-certificate-data", cluster_base)
        key = _file_or_data(user, "client-key", "client-key-data", cluster_base)
        for name, item in (("cert", cert), ("key", key)):
            if item is not None:
                settings[name] = (_existing(item[0]), "file") if item[1] == "file" else item
    return Endpoint(
        server=server,
        context_name=context_name,
        namespace=flags.namespace or context.get("namespace") or "default",
        token=token_text or None,
        verify=not cluster.get("insecure-skip-tls-verify", False),
        tls_server_name=cluster.get("tls-server-name"),
        **settings,
    )


def _entry(
    merged: dict[str, Any], origin: dict[tuple[str, str], str], kind: str, key: str, name: str | None
) -> tuple[dict[str, Any], str | None]:
    if not name:
        return {}, None
    for entry in merged.get(kind) or []:
        if entry.get("name") == name:
            return dict(entry.get(key) or {}), origin.get((kind, name))
    return {}, None


def _file_or_data(entry: dict[str, Any], file_key: str, data_key: str, base: str) -> tuple[str, str] | None:
    """kubernetes.config's FileOrData: the data key wins when present (even empty)."""
    if data_key in entry:
        data = entry[data_key]
        return (str(data), "data") if data else None
    if file_key in entry:
        return os.path.normpath(os.path.join(base, str(entry[file_key]))), "file"
    return None


def _existing(path: str) -> str:
    if not os.path.isfile(path):
        raise Unsupported(f"{path} does not exist (the client reports it)")
    return path


# --- requests --------------------------------------------------------------------------------


class _Unreachable(Exception):
    """A transport failure, tagged with the phase it happened in."""

    def __init__(self, cause: BaseException, connecting: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.connecting = connecting


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPSConnection whose TLS server name may differ from the host (kubeconfig tls-server-name)."""

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext, server_name: str,
                 timeout: float | None) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._tls_context = context
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._tls_context.wrap_socket(self.sock, server_hostname=self._server_name)


class RestClusterApi:
    """The read half of kube.ClusterApi (kube.ClusterReader), over one kept-alive connection."""

    def __init__(self, endpoint: Endpoint, flags: KubeFlags) -> None:
        self.endpoint = endpoint
        self.namespace = endpoint.namespace
        self.context_name = endpoint.context_name
        self.server = endpoint.server
        self._timeout = flags.effective_request_timeout
        parts = urlsplit(endpoint.server)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        headers = [("Accept", "application/json"), ("User-Agent", f"kubectl-emqx/{__version__}")]
        if endpoint.token:
            headers.append(("Authorization", f"Bearer {endpoint.token}"))
        if flags.as_user:
            headers.append(("Impersonate-User", flags.as_user))
        headers += [("Impersonate-Group", group) for group in flags.as_groups]  # one header per group
        self._headers = headers
        self._connection: http.client.HTTPConnection | None = None
        self._ssl_context = self._tls() if self._https else None  # bad TLS material: connect() falls back

    # --- kube.ClusterReader ------------------------------------------------------------------

    def get_emqx(self, name: str, namespace: str) -> dict[str, Any]:
        return self._get_json(_emqx_path(namespace, name), {}, "get", namespace, name)

    def list_emqx(self, namespace: str | None) -> list[dict[str, Any]]:
        return list(self._get_json(_emqx_path(namespace), {}, "list", namespace).get("items", []))

    def list_events(self, name: str, namespace: str) -> list[dict[str, Any]]:
        query = {"fieldSelector": f"involvedObject.kind={KIND},involvedObject.name={name}"}
        path = f"/api/v1/namespaces/{quote(namespace)}/events"
        return list(self._get_json(path, query, "list", namespace, resource="events").get("items", []))

    def watch_emqx(
        self, name: str, namespace: str, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]:
        query = {
            "allowWatchBookmarks": "true",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
            "watch": "true",
        }
        # The read timeout spans the quiet gaps between events: the server closes the watch after
        # timeout_seconds, so allow that plus a margin (as kube.py does).
        read_timeout = timeout_seconds + (self._timeout or DEFAULT_REQUEST_TIMEOUT)
        response = self._send(_emqx_path(namespace), query, read_timeout)
        if response.status >= 400:
            raise self._failure(response, self._read(response), "watch", namespace, name, RESOURCE)
        finished = False
        try:
            while True:
                line = response.readline()
                if not line:
                    finished = True
                    return
                event = watch_event(line, namespace, name)
                if event is not None:
                    yield event
        except (OSError, http.client.HTTPException):
            # A watch that goes quiet or is cut ends like one the server closed: the caller
            # re-reads the object and watches again.
            return
        finally:
            if finished and self._connection is not None and self._connection.sock is not None:
                self._connection.sock.settimeout(self._timeout)
            else:
                self._discard()  # left mid-stream: this connection cannot carry another request

    # --- plumbing ----------------------------------------------------------------------------

    def _get_json(
        self, path: str, query: dict[str, Any], verb: str, namespace: str | None, name: str = "",
        resource: str = RESOURCE,
    ) -> dict[str, Any]:
        response = self._send(path, query)
        data = self._read(response)
        if response.status >= 400:
            raise self._failure(response, data, verb, namespace, name, resource)
        result = json.loads(data) if data else {}
        return dict(result) if isinstance(result, dict) else {}

    def _send(self, path: str, query: dict[str, Any], read_timeout: float | None = None) -> http.client.HTTPResponse:
        """GET path?query and return the response (headers read). A kept-alive connection that the
        server closed meanwhile is replaced once; any other transport failure is ClusterUnreachable."""
        url = self._prefix + path + ("?" + urlencode(query) if query else "")
        for attempt in (1, 2):
            reused = self._connection is not None
            try:
                connection = self._open()
                try:
                    connection.putrequest("GET", url, skip_accept_encoding=True)
                    for header, value in self._headers:
                        connection.putheader(header, value)
                    connection.endheaders()
                    if read_timeout is not None and connection.sock is not None:
                        connection.sock.settimeout(read_timeout)
                    return connection.getresponse()
                except (OSError, http.client.HTTPException) as exc:
                    self._discard()
                    stale = isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError)
                    if reused and stale and attempt == 1:
                        continue
                    raise _Unreachable(exc, connecting=False) from exc
            except _Unreachable as failure:
                raise self._unreachable(failure) from failure.cause
        raise AssertionError("not reached")

    def _read(self, response: http.client.HTTPResponse) -> bytes:
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._discard()
            raise self._unreachable(_Unreachable(exc, connecting=False)) from exc

    def _open(self) -> http.client.HTTPConnection:
        if self._connection is not None:
            return self._connection
        connection: http.client.HTTPConnection
        if self._https:
            assert self._ssl_context is not None
            connection = _TLSConnection(
                self._host, self._port, context=self._ssl_context,
                server_name=self.endpoint.tls_server_name or self._host, timeout=self._timeout,
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            raise _Unreachable(exc, connecting=True) from exc
        self._connection = connection
        return connection

    def _discard(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _tls(self) -> ssl.SSLContext:
        endpoint = self.endpoint
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if not endpoint.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif endpoint.ca_file or endpoint.ca_data:
            context.load_verify_locations(cafile=endpoint.ca_file, cadata=endpoint.ca_data)
        else:
            context.load_verify_locations(cafile=_default_ca_bundle())
        if endpoint.cert and endpoint.key:
            _load_client_certificate(context, endpoint.cert, endpoint.key)
        return context

    def _failure(
        self, response: http.client.HTTPResponse, data: bytes, verb: str, namespace: str | None, name: str,
        resource: str,
    ) -> errors.PluginError:
        try:
            status = json.loads(data) if data else {}
        except ValueError:
            status = {}
        if not isinstance(status, dict):
            status = {}
        status.setdefault("code", response.status)
        status.setdefault("message", response.reason or "")
        return _status_error(status, verb, namespace, name, resource)

    def _unreachable(self, failure: _Unreachable) -> errors.PluginError:
        # As kube.py words it: a read timeout is "did not answer", anything else "cannot reach".
        if isinstance(failure.cause, TimeoutError) and not failure.connecting:
            return errors.ClusterUnreachable(
                f"the Kubernetes API at {self.server} did not answer within "
                f"{self._timeout or DEFAULT_REQUEST_TIMEOUT:g}s "
                "(raise --request-timeout, or check the cluster)"
            )
        return errors.ClusterUnreachable(
            f"cannot reach the Kubernetes API at {self.server} (context {self.context_name}): "
            f"{_short_reason(failure.cause)}; check --context/--kubeconfig and your network"
        )


def _emqx_path(namespace: str | None, name: str | None = None) -> str:
    return kind_path(KIND, namespace, name)


def _default_ca_bundle() -> str | None:
    """Without a CA in the kubeconfig the client verifies against certifi's bundle."""
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def _load_client_certificate(context: ssl.SSLContext, cert: tuple[str, str], key: tuple[str, str]) -> None:
    """load_cert_chain reads only files: inline (base64) data goes through a private directory
    (mode 0700) that is removed at once. (os alone: tempfile and shutil cost start-up time.)"""
    if cert[1] == "file" and key[1] == "file":
        context.load_cert_chain(cert[0], key[0])
        return
    base = os.environ.get("TMPDIR") or "/tmp"
    directory = os.path.join(base, f"kubectl-emqx-{os.getpid()}-{os.urandom(8).hex()}")
    os.mkdir(directory, 0o700)
    written: list[str] = []
    try:
        paths = []
        for label, (value, kind) in (("cert", cert), ("key", key)):
            if kind == "file":
                paths.append(value)
                continue
            path = os.path.join(directory, label)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                written.append(path)
                handle.write(base64.standard_b64decode(value))
            paths.append(path)
        context.load_cert_chain(paths[0], paths[1])
    finally:
        for path in written:
            os.unlink(path)
        os.rmdir(directory)
