"""Probes answered in-process (the kubelet's common probe: HTTP on the node's own dashboard listener) give
what the same probe over the network gives, in every state of the node; and the listeners' shared acceptor."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.emqxsim.api import NodeHttpServer, Request
from sandbox.emqxsim.kube import Prober, direct_request, run_probe
from sandbox.emqxsim.kubelet import ProbeSpec, parse_probe
from sandbox.emqxsim.testing import Harness, emqx_pod

CORE0 = "ns/emqx-core-0"
AUTH_HEADER = {"name": "Authorization", "value": "Basic b3BlcmF0b3Ita2V5Om9wZXJhdG9yLXNlY3JldA=="}  # operator-key


def _spec(path: str = "/status", port: int = 18083, timeout: int = 1, **http_get) -> ProbeSpec:
    action = {"path": path, "port": port, **http_get}
    spec = parse_probe("readinessProbe", {"name": "emqx", "readinessProbe": {"httpGet": action,
                                                                             "timeoutSeconds": timeout}})
    assert spec is not None
    return spec


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pool():
    executor = ThreadPoolExecutor(max_workers=4)
    yield executor
    executor.shutdown(wait=True)


@contextlib.contextmanager
def _one_core() -> Iterator[tuple[Harness, str]]:
    """A listening simulator with one core pod added: (the harness, the pod's IP)."""
    with Harness(listen=True) as harness:
        pod = emqx_pod("emqx-core-0")
        harness.add(pod)
        yield harness, pod["status"]["podIP"]


def _node(harness: Harness, ident: str = CORE0):
    record = harness.world.find_record(ident)
    return record.node if record is not None else None


def _both(prober: Prober, harness: Harness, spec: ProbeSpec, ip: str) -> tuple[bool, bool, bool]:
    """(in-process outcome, network outcome, whether the first was in-process at all)."""
    node = _node(harness)
    direct = prober.direct_server(spec, ip, node) is not None and direct_request(spec, ip) is not None
    in_process = prober.submit(spec, ip, node).result(timeout=10)
    network = run_probe(spec, ip)
    return in_process, network, direct


def test_in_process_answer_equals_the_network_answer_while_booting_running_stopped_and_crashed(pool):
    prober = Prober(pool)
    harness = Harness(listen=True, boot_seconds=5.0)
    clock = ManualClock()
    harness.world.monotonic = clock
    with harness:
        pod = emqx_pod("emqx-core-0")
        ip = pod["status"]["podIP"]
        harness.add(pod)
        assert harness.state(CORE0) == "starting"  # the dashboard listener is not up yet
        assert _both(prober, harness, _spec(), ip) == (False, False, False)
        clock.now += 5.0
        harness.boot()
        clock.now += 5.0
        harness.boot()
        assert harness.state(CORE0) == "running"
        assert _both(prober, harness, _spec(), ip) == (True, True, True)
        assert _both(prober, harness, _spec("/status?format=json"), ip) == (True, True, True)
        assert _both(prober, harness, _spec("/nope"), ip) == (False, False, True)  # 404
        assert _both(prober, harness, _spec("/api/v5/nodes"), ip) == (False, False, True)  # 401
        authorized = _spec("/api/v5/nodes", httpHeaders=[AUTH_HEADER])
        assert _both(prober, harness, authorized, ip) == (True, True, True)
        assert _both(prober, harness, _spec(port=18084), ip) == (False, False, False)  # nothing listens there
        stale = _node(harness)
        harness.world.stop_node(CORE0)
        assert _both(prober, harness, _spec(), ip) == (False, False, False)
        assert prober.submit(_spec(), ip, stale).result() is False  # the node as seen before it stopped
        harness.world.start_node(CORE0)
        harness.boot()
        clock.now += 5.0
        harness.boot()
        clock.now += 5.0
        harness.boot()
        assert _both(prober, harness, _spec(), ip) == (True, True, True)
        harness.world.stop_node(CORE0, crash=True)
        assert _both(prober, harness, _spec(), ip) == (False, False, False)


def test_in_process_answer_equals_the_network_answer_under_faults(pool):
    prober = Prober(pool)
    with _one_core() as (harness, ip):
        world = harness.world
        for status, expected in ((503, False), (500, False), (401, False), (302, True)):
            world.add_fault(CORE0, status, 0.0, "/status", None, False)
            assert _both(prober, harness, _spec(), ip) == (expected, expected, True), status
            world.clear_faults()
        world.add_fault(CORE0, None, 0.0, "/status", None, True)  # dropped
        assert _both(prober, harness, _spec(), ip) == (False, False, True)
        world.clear_faults()
        world.add_fault(None, 503, 0.0, "/api/v5", None, False)  # another path: the probe is not affected
        assert _both(prober, harness, _spec(), ip) == (True, True, True)
        world.clear_faults()
        # a count-limited fault: each probe takes one, whichever way it goes
        fault = world.add_fault(CORE0, 503, 0.0, "/status", 3, False)
        assert _both(prober, harness, _spec(), ip) == (False, False, True)
        assert fault.remaining == 1
        assert _both(prober, harness, _spec(), ip) == (False, True, True)
        assert world.fault_list() == []


def test_a_fault_delay_is_waited_for_and_fails_the_probe_past_its_timeout(pool):
    prober = Prober(pool)
    with _one_core() as (harness, ip):
        world = harness.world
        world.add_fault(CORE0, None, 0.3, "/status", None, False)
        for probe in (lambda: prober.submit(_spec(), ip, _node(harness)).result(timeout=10),
                      lambda: run_probe(_spec(), ip)):
            started = time.monotonic()
            assert probe() is True
            assert 0.3 <= time.monotonic() - started < 1.0
        world.clear_faults()
        world.add_fault(CORE0, None, 1.5, "/status", None, False)
        for probe in (lambda: prober.submit(_spec(), ip, _node(harness)).result(timeout=10),
                      lambda: run_probe(_spec(), ip)):
            started = time.monotonic()
            assert probe() is False
            assert 1.0 <= time.monotonic() - started < 1.5  # the prober gave up at timeoutSeconds
        # the delayed probe runs in the pool: submitting it does not wait
        started = time.monotonic()
        future = prober.submit(_spec(), ip, _node(harness))
        assert time.monotonic() - started < 0.2 and not future.done()
        # the node stops during the delay: the connection ends without a response
        world.clear_faults()
        world.add_fault(CORE0, None, 0.8, "/status", None, False)
        future = prober.submit(_spec(timeout=5), ip, _node(harness))
        time.sleep(0.2)
        world.stop_node(CORE0)
        started = time.monotonic()
        assert future.result(timeout=10) is False
        assert time.monotonic() - started < 0.5


def test_probe_requests_are_not_counted_unless_the_probe_header_is_overridden(pool):
    prober = Prober(pool)
    with _one_core() as (harness, ip):
        node_name = _node(harness).name
        counts = harness.world.request_counts
        assert _both(prober, harness, _spec(), ip) == (True, True, True)
        assert sum(counts.get(node_name, {}).values()) == 0
        unmarked = _spec(httpHeaders=[{"name": "X-Emqxsim-Probe", "value": ""}])
        assert _both(prober, harness, unmarked, ip) == (True, True, True)
        assert counts[node_name] == {"GET /status": 2}


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [{"name": "Accept", "value": "application/json"}],
        [{"name": "user-agent", "value": "mine/1.0"}, {"name": "X-Extra", "value": "a b"}],
        [{"name": "Host", "value": "emqx.example"}, {"name": "Accept-Encoding", "value": "gzip"}],
        [{"name": "X-Empty", "value": ""}],
    ],
)
def test_the_in_process_request_is_the_one_the_listener_reads(pool, headers):
    """Same method, path, query and headers as BaseHTTPRequestHandler parses from run_probe's request."""
    with _one_core() as (harness, ip):
        server = _node(harness).server
        seen: list[Request] = []
        handle = server.api.handle
        server.api.handle = lambda request: seen.append(request) or handle(request)
        spec = _spec("//status?format=json&x=1", httpHeaders=headers)
        assert run_probe(spec, ip) is True
        assert direct_request(spec, ip) == seen[0]
        assert Prober(pool).submit(spec, ip, _node(harness)).result() is True
        assert seen[1] == seen[0]


@pytest.mark.parametrize(
    "spec",
    [
        _spec(httpHeaders=[{"name": "Content-Length", "value": "5"}]),
        _spec(httpHeaders=[{"name": "Expect", "value": "100-continue"}]),
        _spec(httpHeaders=[{"name": "X-Odd", "value": " padded "}]),
        _spec(httpHeaders=[{"name": "X-Odd", "value": "caf\u00e9"}]),
        _spec(httpHeaders=[{"name": "Bad Name", "value": "x"}]),
        _spec("/with space"),
        _spec("/" + "a" * 3000),
    ],
)
def test_unusual_requests_go_over_the_network(spec):
    assert direct_request(spec, "10.0.0.1") is None


def test_only_http_probes_on_the_nodes_own_listener_are_answered_in_process(pool):
    with _one_core() as (harness, ip):
        node = _node(harness)
        assert Prober.direct_server(_spec(), ip, node) is node.server
        assert Prober.direct_server(_spec(host=ip), ip, node) is None  # a host set in the probe
        assert Prober.direct_server(_spec(scheme="HTTPS"), ip, node) is None
        assert Prober.direct_server(_spec(port=18084), ip, node) is None
        assert Prober.direct_server(_spec(), "127.0.0.1", node) is None  # another address
        tcp = parse_probe("livenessProbe", {"name": "emqx", "livenessProbe": {"tcpSocket": {"port": 18083}}})
        assert tcp is not None and Prober.direct_server(tcp, ip, node) is None
        assert Prober(pool).submit(tcp, ip, node).result() is True  # over the network
        node.server.stop()
        assert Prober.direct_server(_spec(), ip, node) is None
        assert Prober(pool).submit(_spec(), ip, node).result() is False  # refused


# ---------------------------------------------------------------------------------------------- listeners


def _threads(prefix: str) -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_every_listener_is_served_by_one_acceptor_thread():
    with Harness(listen=True) as harness:
        pods = [emqx_pod(f"emqx-core-{i}") for i in range(12)]
        harness.add(*pods)
        assert all(run_probe(_spec(), pod["status"]["podIP"]) for pod in pods)
        assert _threads("emqxsim-acceptor") == ["emqxsim-acceptor"]
        assert _threads("emqxsim-node") == []


def test_a_stopped_listener_refuses_at_once_and_its_address_can_be_bound_again():
    with _one_core() as (harness, ip):
        node = _node(harness)
        with pytest.raises(OSError):
            NodeHttpServer(node, harness.world)  # the address is taken
        with socket.create_connection((ip, 18083), timeout=2) as idle:
            node.server.stop()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((ip, 18083), timeout=2)
            idle.settimeout(2)
            try:  # the open connection was dropped (closed if accepted already, else reset)
                assert idle.recv(1) == b""
            except ConnectionResetError:
                pass
        node.server = NodeHttpServer(node, harness.world)
        assert run_probe(_spec(), ip) is True


def test_many_connections_at_once_are_all_served():
    with _one_core() as (harness, ip):
        with ThreadPoolExecutor(max_workers=16) as executor:
            outcomes = list(executor.map(lambda _: run_probe(_spec(timeout=5), ip), range(200)))
        assert all(outcomes)
