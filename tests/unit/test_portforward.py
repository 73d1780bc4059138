"""kube/portforward.py without an API server: the v4.channel.k8s.io framing of one stream, one HTTP
request through a stream, and the local Forwarder re-picking a pod that went away. (The real thing,
through kube-apiserver and kwok, is tests/integration/test_plugin_day2_observe.py.)"""

from __future__ import annotations

import queue
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pytest
import websocket

from kubectl_emqx.kube import errors, portforward


@dataclass
class Frame:
    data: bytes


class FakeWebSocket:
    """Server frames from a queue; what the client sends is recorded."""

    def __init__(self, frames: list[bytes]) -> None:
        self.incoming: queue.Queue[bytes | None] = queue.Queue()
        for frame in frames:
            self.incoming.put(frame)
        self.sent: list[bytes] = []
        self.connected = True
        self.timeout: float | None = None

    def send_binary(self, payload: bytes) -> None:
        self.sent.append(payload)

    def recv_data_frame(self, control: bool) -> tuple[int, Frame]:
        item = self.incoming.get(timeout=5)
        if item is None:
            return websocket.ABNF.OPCODE_CLOSE, Frame(b"")
        return websocket.ABNF.OPCODE_BINARY, Frame(item)

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def send_close(self) -> None:
        self.connected = False

    def abort(self) -> None:
        self.incoming.put(None)

    def shutdown(self) -> None:
        self.connected = False


PORT_FRAMES = [b"\x00\x93\x46", b"\x01\x93\x46"]  # port 18067 on the data and error channels


def test_stream_skips_the_port_frames_and_returns_data() -> None:
    ws = FakeWebSocket([*PORT_FRAMES, b"\x00hello", b"\x00", b"\x00world", None])
    stream = portforward.PodStream(ws, "p", 18067)
    assert stream.recv() == b"hello"
    assert stream.recv() == b"world"
    assert stream.recv() == b""
    stream.send(b"ping")
    assert ws.sent == [b"\x00ping"]


def test_stream_reports_the_error_channel() -> None:
    ws = FakeWebSocket([*PORT_FRAMES, b"\x01error forwarding port 18083: connection refused"])
    stream = portforward.PodStream(ws, "demo-core-0", 18083)
    with pytest.raises(portforward.StreamError, match="demo-core-0:18083 failed: error forwarding port 18083"):
        stream.recv()


class HttpPod:
    """A fake stream that answers each HTTP request with its pod's name (Content-Length delimited)."""

    def __init__(self, pod: str, port: int) -> None:
        self.pod, self.port = pod, port
        self.requests: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self._buffer += data
        while b"\r\n\r\n" in self._buffer:
            head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            self.requests.put(head)

    def recv(self) -> bytes:
        head = self.requests.get(timeout=5)
        if head is None or self.closed.is_set():
            return b""
        path = head.split(b" ")[1].decode()
        body = f"{self.pod} {path}".encode()
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def settimeout(self, timeout: float | None) -> None:
        pass

    def abort(self) -> None:
        self.closed.set()
        self.requests.put(None)

    def close(self) -> None:
        self.abort()

    def __enter__(self) -> HttpPod:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class FakeConnector:
    gone: set[str] = field(default_factory=set)
    forbidden: bool = False
    opened: list[str] = field(default_factory=list)

    def open(self, namespace: str, pod: str, port: int) -> Any:
        if self.forbidden:
            raise errors.Forbidden("create", "pods/portforward", namespace)
        if pod in self.gone:
            raise portforward.PodGone(f'pod "{pod}" not found')
        self.opened.append(pod)
        return HttpPod(pod, port)


def test_request_through_a_stream() -> None:
    response = portforward.request(FakeConnector(), "ns", "demo-core-0", 18083, "GET", "/status")  # type: ignore[arg-type]
    assert response.status == 200 and response.body == b"demo-core-0 /status"


@dataclass
class ListTarget:
    pods: list[str]
    failures: list[str] = field(default_factory=list)

    def pick(self) -> tuple[str, int] | None:
        alive = [pod for pod in self.pods if pod not in self.failures]
        return (alive[0], 18083) if alive else None

    def failed(self, pod: str, reason: str) -> None:
        self.failures.append(pod)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_forwarder_serves_each_connection_and_moves_on_when_the_pod_is_gone() -> None:
    connector = FakeConnector()
    target = ListTarget(["demo-core-0", "demo-core-1"])
    with portforward.Forwarder(connector, "ns", target, port=0) as forwarder:  # type: ignore[arg-type]
        assert _get(forwarder.url + "/status") == "demo-core-0 /status"
        connector.gone.add("demo-core-0")
        assert _get(forwarder.url + "/api/v5/nodes") == "demo-core-1 /api/v5/nodes"
        assert target.failures == ["demo-core-0"]
        assert forwarder.connections == 2


def test_forwarder_refuses_connections_when_there_is_no_pod() -> None:
    events: list[str] = []
    forwarder = portforward.Forwarder(FakeConnector(), "ns", ListTarget([]), port=0,  # type: ignore[arg-type]
                                      on_event=events.append)
    with forwarder, pytest.raises(Exception):  # noqa: B017 - the connection is closed without an answer
        _get(forwarder.url + "/status")
    assert events == ["no pod to forward to right now; connection refused"]


def test_forwarder_reports_a_taken_port_as_one_line() -> None:
    first = portforward.Forwarder(FakeConnector(), "ns", ListTarget(["p"]), port=0).start()  # type: ignore[arg-type]
    try:
        with pytest.raises(errors.PluginError, match=f"cannot listen on 127.0.0.1:{first.port}: .*--port"):
            portforward.Forwarder(FakeConnector(), "ns", ListTarget(["p"]), port=first.port).start()  # type: ignore[arg-type]
    finally:
        first.stop()


def test_connector_url_and_headers() -> None:
    class Configuration:
        def auth_settings(self) -> dict[str, Any]:
            return {"BearerToken": {"value": "Bearer abc"}}

    connector = portforward.Connector("https://127.0.0.1:6443/prefix", Configuration(),
                                      ["Impersonate-User: bob", "Impersonate-Group: g1", "Impersonate-Group: g2"])
    assert connector.url("ns", "demo-core-0", 18083) == \
        "wss://127.0.0.1:6443/prefix/api/v1/namespaces/ns/pods/demo-core-0/portforward?ports=18083"
    assert connector._headers() == ["Impersonate-User: bob", "Impersonate-Group: g1", "Impersonate-Group: g2",
                                    "Authorization: Bearer abc"]


def test_a_refused_forward_names_the_verb_and_what_forwarding_needs() -> None:
    get = portforward.forbidden('pods "p" is forbidden: User "system:serviceaccount:ns:alice" cannot get resource '
                                '"pods/portforward" in API group "" in the namespace "ns"', "ns")
    assert get.message == ('forbidden: you may not get pods/portforward in namespace ns (as User '
                           '"system:serviceaccount:ns:alice"; port-forwarding needs get and create on it); '
                           'ask your cluster admin for RBAC access')
    create = portforward.forbidden('pods "p" is forbidden: ', "ns")  # the upgrade's create check says no more
    assert create.message.startswith("forbidden: you may not create pods/portforward in namespace ns "
                                     "(port-forwarding needs get and create on it)")


def test_a_fixed_target_forwards_every_connection_to_one_pod() -> None:
    """The shape a later verb (backup/restore through EMQX's API) uses: one pod, a local port, any client."""
    connector = FakeConnector()
    with portforward.Forwarder(connector, "ns", portforward.FixedTarget("demo-core-2", 18083),  # type: ignore[arg-type]
                               port=0) as forwarder:
        assert _get(forwarder.url + "/api/v5/data/files") == "demo-core-2 /api/v5/data/files"
    assert connector.opened == ["demo-core-2"]
