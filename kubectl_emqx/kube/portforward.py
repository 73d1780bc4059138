"""Port forwarding to pods through the API server, as `kubectl port-forward` does: no network path
to the pods is needed, only `create` on `pods/portforward`.

Three layers, each usable alone:
- `Connector.open(namespace, pod, port)` -> `PodStream`: one TCP connection to `pod:port`, carried by
  one WebSocket (`/api/v1/namespaces/NS/pods/POD/portforward?ports=PORT`, subprotocol
  `v4.channel.k8s.io`: binary frames whose first byte is the channel, 0 = data, 1 = errors; the
  first frame on each channel is the port, little-endian). The WebSocket carries the session's
  credentials and impersonation headers (the client's own `kubernetes.stream.portforward` sends only
  the Authorization header, so `--as` would be ignored).
- `Forwarder`: a local listening socket; every accepted connection gets its own stream to the pod
  the `Target` names at that moment, so a pod that goes away is replaced for the next connection.
- `request(connector, namespace, pod, port, method, path)`: one HTTP request through a stream,
  without a local port.

Responses must be delimited (Content-Length or chunked): a connection the pod closes is not always
passed on through the API server (kwok does not), so "read until close" would hang until the timeout.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

from kubectl_emqx.kube import errors

if TYPE_CHECKING:
    from kubectl_emqx.kube.client import KubernetesClusterApi

SUBPROTOCOL = "v4.channel.k8s.io"
DATA_CHANNEL = 0
ERROR_CHANNEL = 1
RESOURCE = "pods/portforward"
CHUNK = 64 * 1024


class PodGone(errors.PluginError):
    """The pod to forward to does not exist (any more)."""


class StreamError(errors.PluginError):
    """The pod end of a stream failed (nothing listens on the port, the pod stopped, ...): the
    kubelet's words from the error channel, or the WebSocket's."""


# --- one stream -------------------------------------------------------------------------------


class PodStream:
    """One TCP connection to a pod's port over one WebSocket. `send` may be called from one thread
    while another blocks in `recv`; `close` from any thread ends both."""

    def __init__(self, websocket: Any, pod: str, port: int) -> None:
        self._ws = websocket
        self.pod = pod
        self.port = port
        self._initialized = [False, False]
        self._closed = threading.Event()
        self.error: str | None = None

    def send(self, data: bytes) -> None:
        import websocket

        try:
            self._ws.send_binary(bytes((DATA_CHANNEL,)) + data)
        except (OSError, websocket.WebSocketException) as exc:
            raise StreamError(f"forwarding to {self.pod}:{self.port} failed: {exc}") from exc

    def recv(self) -> bytes:
        """The next bytes from the pod; b"" when the stream ended. Raises StreamError with the
        kubelet's message when the pod end failed."""
        import websocket

        while True:
            if self._closed.is_set():
                return b""
            try:
                opcode, frame = self._ws.recv_data_frame(False)
            except (OSError, websocket.WebSocketException) as exc:
                if self._closed.is_set():
                    return b""
                if isinstance(exc, websocket.WebSocketConnectionClosedException):
                    return b""
                raise StreamError(f"forwarding to {self.pod}:{self.port} failed: {exc}") from exc
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return b""
            data = bytes(frame.data or b"")
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel > ERROR_CHANNEL:
                continue
            if not self._initialized[channel]:
                self._initialized[channel] = True  # the port number, once per channel
                continue
            if channel == ERROR_CHANNEL:
                if payload:
                    self.error = (self.error or "") + payload.decode("utf-8", "replace")
                    raise StreamError(f"forwarding to {self.pod}:{self.port} failed: {self.error.strip()}")
                continue
            if payload:
                return payload

    def settimeout(self, timeout: float | None) -> None:
        self._ws.settimeout(timeout)

    def abort(self) -> None:
        """End the stream from any thread: a close frame, then the socket shut down, which wakes a
        thread blocked in recv. The file descriptor stays open: `close()` releases it, once no
        other thread uses the stream (an SSL object reads by descriptor number, so a descriptor
        released under a reader would be read again once the number is reused)."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            if self._ws.connected:
                self._ws.send_close()
        except Exception:  # noqa: BLE001 - best effort: the socket is shut down next
            pass
        self._ws.abort()

    def close(self) -> None:
        """abort(), and release the socket: only when no other thread reads or sends."""
        self.abort()
        self._ws.shutdown()

    def __enter__(self) -> PodStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# --- opening streams ----------------------------------------------------------------------------


@dataclass
class Connector:
    """Opens streams with a session's server, credentials, TLS settings and impersonation."""

    server: str  # https://host:port[/prefix]
    configuration: Any  # kubernetes.client.Configuration (TLS files, token and its refresh hook)
    extra_headers: list[str] = field(default_factory=list)  # impersonation, user agent
    connect_timeout: float = 30.0

    @classmethod
    def for_api(cls, api: KubernetesClusterApi) -> Connector:
        from kubectl_emqx.kube.pods import session_parts

        api_client, request_timeout = session_parts(api)
        impersonation = api.endpoint.impersonation
        headers = [f"{name}: {value}" for name, value in (impersonation.headers() if impersonation else [])]
        headers.append(f"User-Agent: {api_client.user_agent}")
        timeout = request_timeout or 30.0
        return cls(api.server, api_client.configuration, headers, timeout)

    def url(self, namespace: str, pod: str, port: int) -> str:
        parts = urlsplit(self.server)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"
        return f"{scheme}://{parts.netloc}{path}?ports={port}"

    def _headers(self) -> list[str]:
        headers = list(self.extra_headers)
        token = (self.configuration.auth_settings().get("BearerToken") or {}).get("value")
        if token:
            headers.append(f"Authorization: {token}")
        return headers

    def _ssl_context(self) -> ssl.SSLContext:
        cfg = self.configuration
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or _default_ca_bundle())
        if not cfg.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif cfg.assert_hostname is False:
            context.check_hostname = False
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        return context

    def open(self, namespace: str, pod: str, port: int) -> PodStream:
        """A stream to pod:port. Raises PodGone (404), Forbidden, Unauthorized, ClusterUnreachable."""
        import websocket

        url = self.url(namespace, pod, port)
        options: dict[str, Any] = {"header": self._headers(), "subprotocols": [SUBPROTOCOL]}
        cfg = self.configuration
        if cfg.proxy:
            proxy = urlsplit(cfg.proxy)
            options.update(http_proxy_host=proxy.hostname, http_proxy_port=proxy.port, proxy_type="http")
            if cfg.no_proxy:
                options["http_no_proxy"] = cfg.no_proxy.split(",")
        sslopt: dict[str, Any] = {}
        if url.startswith("wss://"):
            context = self._ssl_context()
            sslopt["context"] = context
            sslopt["check_hostname"] = context.check_hostname
            if cfg.tls_server_name:
                sslopt["server_hostname"] = cfg.tls_server_name
        ws = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True, enable_multithread=True)
        ws.settimeout(self.connect_timeout)
        try:
            ws.connect(url, **options)
        except websocket.WebSocketBadStatusException as exc:
            raise _handshake_error(exc, namespace, pod) from None
        except (OSError, websocket.WebSocketException) as exc:
            raise errors.ClusterUnreachable(
                f"cannot open a port-forward through the Kubernetes API at {self.server}: {_short(exc)}"
            ) from exc
        ws.settimeout(None)
        return PodStream(ws, pod, port)


def _handshake_error(exc: Any, namespace: str, pod: str) -> errors.PluginError:

    body = exc.resp_body or b""
    try:
        status = json.loads(body) if body else {}
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    code = int(exc.status_code)
    status.setdefault("code", code)
    status.setdefault("message", (body.decode("utf-8", "replace").strip() if body else "") or exc.status_message or "")
    if code == 404:
        return PodGone(f'pod "{pod}" not found in namespace {namespace}')
    if code == 403:
        return forbidden(str(status.get("message") or ""), namespace)
    return errors.from_status(status, "create", namespace, pod, RESOURCE)


def forbidden(message: str, namespace: str) -> errors.Forbidden:
    """A refused port-forward, naming the verb the API server checked. A WebSocket port-forward is
    authorized twice (Kubernetes >= 1.30, AuthorizePodWebsocketUpgradeCreatePermission): `get`
    (the request is a GET) and `create` (that second refusal names no user or verb)."""
    import re

    match = re.search(r'User "([^"]+)" cannot (\w+) resource', message)
    verb = match.group(2) if match else "create"
    subject = f'as User "{match.group(1)}"; ' if match else ""
    return errors.Forbidden(verb, RESOURCE, namespace, f"{subject}port-forwarding needs get and create on it")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.split(" -+-+- ")[0]


def _default_ca_bundle() -> str | None:
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


# --- one HTTP request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _StreamReader(io.RawIOBase):
    def __init__(self, stream: PodStream) -> None:
        self._stream = stream
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if not self._buffer:
            self._buffer = self._stream.recv()
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


class _StreamSocket:
    """What http.client.HTTPResponse needs from a socket: makefile("rb")."""

    def __init__(self, stream: PodStream) -> None:
        self._stream = stream

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_StreamReader(self._stream))


def request(
    connector: Connector, namespace: str, pod: str, port: int, method: str, path: str, *,
    headers: dict[str, str] | None = None, body: bytes = b"", timeout: float = 30.0,
) -> HttpResponse:
    """One HTTP/1.1 request to pod:port through a fresh stream (closed afterwards)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {pod}:{port}", "Connection: close",
             f"Content-Length: {len(body)}", "Accept-Encoding: identity"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with connector.open(namespace, pod, port) as stream:
        stream.settimeout(timeout)
        stream.send(payload)
        response = http.client.HTTPResponse(_StreamSocket(stream), method=method)  # type: ignore[arg-type]
        try:
            response.begin()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise StreamError(f"HTTP {method} {path} through the forward to {pod}:{port} failed: {exc}") from exc
        return HttpResponse(response.status, response.reason, {k.lower(): v for k, v in response.getheaders()},
                            data)


# --- a local port -------------------------------------------------------------------------------


class Target(Protocol):
    """Where the next connection goes: (pod, port), or None when there is nowhere to go now.
    `failed` reports a pod whose stream could not be opened or broke at once."""

    def pick(self) -> tuple[str, int] | None: ...

    def failed(self, pod: str, reason: str) -> None: ...


@dataclass(frozen=True)
class FixedTarget:
    pod: str
    port: int

    def pick(self) -> tuple[str, int] | None:
        return self.pod, self.port

    def failed(self, pod: str, reason: str) -> None:
        return None


class Forwarder:
    """Listens on address:port (0 = any free port) and forwards each connection to the target
    through its own stream. `start()` binds and returns; `stop()` closes the listener and every
    open connection. `on_event(text)` receives one-line notes (a connection refused, a failed pod)."""

    OPEN_ATTEMPTS = 3

    def __init__(self, connector: Connector, namespace: str, target: Target, *, address: str = "127.0.0.1",
                 port: int = 0, on_event: Callable[[str], None] | None = None) -> None:
        self.connector = connector
        self.namespace = namespace
        self.target = target
        self.address = address
        self.requested_port = port
        self.on_event = on_event or (lambda text: None)
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        self.connections = 0

    @property
    def port(self) -> int:
        assert self._listener is not None, "not started"
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def start(self) -> Forwarder:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.address, self.requested_port))
        except OSError as exc:
            listener.close()
            raise errors.PluginError(
                f"cannot listen on {self.address}:{self.requested_port}: {exc.strerror or exc} "
                "(pick another --port or --address)"
            ) from None
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept_loop, name="port-forward accept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            open_now = list(self._open)
        for item in open_now:  # wake the connection threads; they release their sockets themselves
            if isinstance(item, socket.socket):
                _shutdown(item)
            else:
                item.abort()

    def __enter__(self) -> Forwarder:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), name="port-forward", daemon=True).start()

    def _track(self, item: Any, add: bool) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(item)

    def _open_stream(self) -> PodStream | None:
        for _ in range(self.OPEN_ATTEMPTS):
            chosen = self.target.pick()
            if chosen is None:
                self.on_event("no pod to forward to right now; connection refused")
                return None
            pod, port = chosen
            try:
                return self.connector.open(self.namespace, pod, port)
            except PodGone as exc:
                self.target.failed(pod, exc.message)
            except errors.PluginError as exc:
                self.on_event(exc.message)
                return None
        return None

    def _serve(self, client: socket.socket) -> None:
        """Pod -> client in this thread, client -> pod in another; whichever side ends first shuts
        both down, and only this thread, after the other one has finished, releases the sockets."""
        self._track(client, True)
        stream = None if self._stopping.is_set() else self._open_stream()
        if stream is None:
            self._track(client, False)
            _close_socket(client)
            return
        self._track(stream, True)
        upstream = threading.Thread(target=self._client_to_pod, args=(client, stream), daemon=True)
        upstream.start()
        try:
            while True:
                data = stream.recv()
                if not data:
                    break
                client.sendall(data)
        except StreamError as exc:
            if not self._stopping.is_set():
                self.target.failed(stream.pod, exc.message)
                self.on_event(exc.message)
        except OSError:
            pass
        finally:
            stream.abort()
            _shutdown(client)
            upstream.join(10)
            if not upstream.is_alive():
                stream.close()
                client.close()
            self._track(stream, False)
            self._track(client, False)

    def _client_to_pod(self, client: socket.socket, stream: PodStream) -> None:
        try:
            while True:
                data = client.recv(CHUNK)
                if not data:
                    break
                stream.send(data)
        except (OSError, StreamError):
            pass
        finally:
            stream.abort()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
