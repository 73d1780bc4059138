"""A light session for the verbs that only read (`status`, `list`, cluster-name completion):
requests made with http.client, no `kubernetes` client.

Importing the `kubernetes` client costs ~0.3 s, several times what `kubectl get` takes in total;
these verbs need a few GET requests. The session serves the Endpoint kubeconfig.resolve() made of
the flags -- the same one the client session is configured from -- and declines (connect() returns
None) only when the Endpoint says it needs the client (a credential plugin, a proxy). Kubeconfig
problems are raised as they are; any other exception is a bug and surfaces, never a silent switch to
the client. API statuses and transport failures go through the same translator as the client's
(errors.from_response, errors.unreachable).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from kubectl_emqx import __version__
from kubectl_emqx.domain.vocabulary import KIND, RESOURCE, kind_path
from kubectl_emqx.kube import errors, kubeconfig
from kubectl_emqx.kube.api import WatchEvent, watch_event
from kubectl_emqx.kube.kubeconfig import DEFAULT_REQUEST_TIMEOUT, Endpoint, KubeFlags, Pem


def connect(flags: KubeFlags, endpoint: Endpoint | None = None) -> RestClusterApi | None:
    """A light session for `flags` (resolved here unless the caller did), or None when the endpoint
    needs the client (Endpoint.needs_client says why)."""
    endpoint = endpoint or kubeconfig.resolve(flags)
    if endpoint.needs_client:
        return None
    return RestClusterApi(endpoint, flags)


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
    """The read half of api.ClusterApi (api.ClusterReader), over one kept-alive connection."""

    def __init__(self, endpoint: Endpoint, flags: KubeFlags) -> None:
        if endpoint.needs_client:
            raise ValueError(f"rest.RestClusterApi cannot serve this endpoint: {endpoint.needs_client}")
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
        elif endpoint.basic_auth:
            pair = ":".join(endpoint.basic_auth).encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))
        if endpoint.impersonation is not None:
            headers += endpoint.impersonation.headers()  # Impersonate-Group: one header per group
        self._headers = headers
        self._connection: http.client.HTTPConnection | None = None
        self._ssl_context = self._tls() if self._https else None

    # --- api.ClusterReader -------------------------------------------------------------------

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
        # timeout_seconds, so allow that plus a margin (as client.py does).
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
        try:
            if endpoint.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif endpoint.ca is not None:
                cadata = endpoint.ca.data.decode("ascii", "replace") if endpoint.ca.data is not None else None
                context.load_verify_locations(cafile=endpoint.ca.file, cadata=cadata)
            else:
                context.load_verify_locations(cafile=_default_ca_bundle())
            if endpoint.client_certificate is not None and endpoint.client_key is not None:
                _load_client_certificate(context, endpoint.client_certificate, endpoint.client_key)
        except (ssl.SSLError, OSError) as exc:
            raise errors.KubeconfigError(
                f"context {endpoint.context_name}: unusable TLS certificate or key: {errors.short_reason(exc)}"
            ) from exc
        return context

    def _failure(
        self, response: http.client.HTTPResponse, data: bytes, verb: str, namespace: str | None, name: str,
        resource: str,
    ) -> errors.PluginError:
        return errors.from_response(response.status, response.reason, data, verb, namespace, name, resource)

    def _unreachable(self, failure: _Unreachable) -> errors.PluginError:
        # As client.py words it: a read timeout is "did not answer", anything else "cannot reach".
        timed_out = isinstance(failure.cause, TimeoutError) and not failure.connecting
        return errors.unreachable(
            self.server, self.context_name, failure.cause,
            timed_out_after=(self._timeout or DEFAULT_REQUEST_TIMEOUT) if timed_out else None,
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


def _load_client_certificate(context: ssl.SSLContext, cert: Pem, key: Pem) -> None:
    """load_cert_chain reads only files: inline data goes through a private directory (mode 0700)
    that is removed at once. (os alone: tempfile and shutil cost start-up time.)"""
    if cert.file and key.file:
        context.load_cert_chain(cert.file, key.file)
        return
    base = os.environ.get("TMPDIR") or "/tmp"
    directory = os.path.join(base, f"kubectl-emqx-{os.getpid()}-{os.urandom(8).hex()}")
    os.mkdir(directory, 0o700)
    written: list[str] = []
    try:
        paths = []
        for label, pem in (("cert", cert), ("key", key)):
            if pem.file:
                paths.append(pem.file)
                continue
            path = os.path.join(directory, label)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                written.append(path)
                handle.write(pem.data or b"")
            paths.append(path)
        context.load_cert_chain(paths[0], paths[1])
    finally:
        for path in written:
            os.unlink(path)
        os.rmdir(directory)
