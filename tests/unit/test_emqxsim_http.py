"""The simulator over real sockets: nodes on <podIP>:<port>, fault injection and the control client."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox.emqxsim.client import SimClient, SimError
from sandbox.emqxsim.control import ControlServer
from sandbox.emqxsim.kube import run_probe
from sandbox.emqxsim.kubelet import parse_probe
from sandbox.emqxsim.testing import Harness, emqx_pod


def probe_status(ip: str, port: int) -> bool:
    """The kubelet's readiness probe: GET /status on the port, 200-399 is success."""
    container = {"name": "emqx", "readinessProbe": {"httpGet": {"path": "/status", "port": port}}}
    spec = parse_probe("readinessProbe", container)
    assert spec is not None
    return run_probe(spec, ip)

AUTH = ("operator-key", "operator-secret")


@pytest.fixture
def sim():
    harness = Harness(listen=True)
    control = ControlServer(harness.world, "127.0.0.1", 0)
    control.start()
    client = SimClient(control.url)
    harness.client = client  # type: ignore[attr-defined]
    try:
        yield harness
    finally:
        client.close()
        control.stop()
        harness.close()


def _url(pod, path):
    return f"http://{pod['status']['podIP']}:18083{path}"


def test_node_listens_on_pod_ip_and_stops_with_the_pod(sim):
    pod = emqx_pod("emqx-core-0")
    sim.add(pod)
    response = httpx.get(_url(pod, "/api/v5/nodes"), auth=AUTH)
    assert response.status_code == 200
    assert response.json()[0]["node"] == "emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local"
    text = httpx.get(_url(pod, "/status"))
    assert text.headers["content-type"] == "text/plain"
    assert not text.text.endswith("\n")
    assert probe_status(pod["status"]["podIP"], 18083)
    sim.delete(pod)
    with pytest.raises(httpx.ConnectError):
        httpx.get(_url(pod, "/status"), timeout=2)
    assert not probe_status(pod["status"]["podIP"], 18083)


def test_dashboard_port_from_env_and_config_put_moves_the_listener(sim):
    pod = emqx_pod("emqx-core-0", extra_env=[{"name": "EMQX_DASHBOARD__LISTENERS__HTTP__BIND", "value": "18090"}])
    sim.add(pod)
    ip = pod["status"]["podIP"]
    assert probe_status(ip, 18090) and not probe_status(ip, 18083)
    put = httpx.put(f"http://{ip}:18090/api/v5/configs", auth=AUTH, content="dashboard.listeners.http.bind = 18091")
    assert put.status_code == 200
    deadline = time.monotonic() + 5
    while not probe_status(ip, 18091) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert probe_status(ip, 18091)


def test_keep_alive_connection_dies_with_the_node(sim):
    pod = emqx_pod("emqx-core-0")
    sim.add(pod)
    with httpx.Client(auth=AUTH, timeout=2) as client:
        assert client.get(_url(pod, "/api/v5/nodes")).status_code == 200
        sim.client.crash("ns/emqx-core-0")
        with pytest.raises(httpx.TransportError):
            client.get(_url(pod, "/api/v5/nodes"))


def test_faults_status_delay_drop_count_and_clear(sim):
    pod = emqx_pod("emqx-core-0")
    sim.add(pod)
    client = sim.client
    client.fail_api("ns/emqx-core-0", status=503, count=2)
    assert [httpx.get(_url(pod, "/api/v5/nodes"), auth=AUTH).status_code for _ in range(3)] == [503, 503, 200]
    assert httpx.get(_url(pod, "/status")).status_code == 200  # default prefix spares the probe path
    fault = client.fail_api("emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local", status=401)
    unauthorized = httpx.get(_url(pod, "/api/v5/cluster"), auth=AUTH)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["code"] == "BAD_API_KEY_OR_SECRET"
    assert [f["id"] for f in client.faults()] == [fault["id"]]
    client.clear_faults()
    client.slow_api("ns/emqx-core-0", delay=0.5)
    started = time.monotonic()
    assert httpx.get(_url(pod, "/api/v5/nodes"), auth=AUTH).status_code == 200
    assert time.monotonic() - started >= 0.5
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(_url(pod, "/api/v5/nodes"), auth=AUTH, timeout=0.2)
    client.clear_faults()
    client.fail_api("ns/emqx-core-0", status=None, drop=True, path_prefix="/status")
    assert not probe_status(pod["status"]["podIP"], 18083)
    client.clear_faults()
    assert probe_status(pod["status"]["podIP"], 18083)


def test_request_counts_exclude_probes(sim):
    pod = emqx_pod("emqx-core-0")
    sim.add(pod)
    client = sim.client
    client.reset_request_counts()
    for _ in range(3):
        httpx.get(_url(pod, "/api/v5/nodes"), auth=AUTH)
    httpx.get(_url(pod, "/api/v5/nodes/emqx@x"), auth=AUTH)
    probe_status(pod["status"]["podIP"], 18083)
    counts = client.request_counts("ns/emqx-core-0")
    assert counts == {"total": 4, "by_endpoint": {"GET /api/v5/nodes": 3, "GET /api/v5/nodes/emqx@x": 1}}
    assert client.request_counts()["emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local"]["total"] == 4
    client.reset_request_counts()
    assert client.request_counts("ns/emqx-core-0")["total"] == 0


def test_stop_start_crash_restart_and_boot_log(sim):
    pod = emqx_pod("emqx-core-0")
    sim.add(pod, emqx_pod("emqx-core-1"))
    client = sim.client
    since = client.last_seq()
    client.stop("ns/emqx-core-1")
    nodes = httpx.get(_url(pod, "/api/v5/nodes"), auth=AUTH).json()
    assert nodes[1] == {
        "node": "emqx@emqx-core-1.emqx-headless.ns.svc.cluster.local",
        "node_status": "stopped",
        "role": "core",
    }
    assert client.node("ns/emqx-core-1")["state"] == "stopped"
    client.start("ns/emqx-core-1")
    sim.boot()
    assert client.node("ns/emqx-core-1")["state"] == "running"
    client.crash("ns/emqx-core-1", restart_after=0.0)
    sim.boot()
    events = client.boot_log(since=since)
    assert [(e["event"], e["pod"]) for e in events] == [
        ("stopped", "ns/emqx-core-1"),
        ("booted", "ns/emqx-core-1"),
        ("crashed", "ns/emqx-core-1"),
        ("booted", "ns/emqx-core-1"),
    ]
    assert all(isinstance(e["time"], float) for e in events)
    with pytest.raises(SimError) as error:
        client.stop("ns/nope")
    assert error.value.status == 404


def test_never_boot_and_connections_and_clock(sim):
    client = sim.client
    client.never_boot("emqx/emqx-enterprise:5.8.9")
    pod = emqx_pod("emqx-core-0", image="emqx/emqx-enterprise:5.8.9")
    sim.add(pod)
    assert client.node("ns/emqx-core-0")["state"] == "hung"
    assert client.boot_log()[-1]["event"] == "boot_hung"
    client.allow_boot("emqx/emqx-enterprise:5.8.9")
    sim.boot()
    assert client.wait_for_node("ns/emqx-core-0", "running", timeout=5)["version"] == "5.8.9"
    client.set_connections("ns/emqx-core-0", 100, 80)
    info = httpx.get(_url(pod, "/api/v5/nodes"), auth=AUTH).json()[0]
    assert (info["connections"], info["live_connections"]) == (100, 80)
    client.set_clock_speed(1000)
    start = httpx.post(
        _url(pod, "/api/v5/load_rebalance/emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local/evacuation/start"),
        auth=AUTH,
        json={},
    )
    assert start.status_code == 200
    deadline = time.monotonic() + 5
    state = ""
    while time.monotonic() < deadline and state != "evicting_sessions":
        state = httpx.get(_url(pod, "/api/v5/load_rebalance/status"), auth=AUTH).json()["state"]
        time.sleep(0.05)
    assert state == "evicting_sessions"  # single node: no session recipients
    assert client.node("ns/emqx-core-0")["evacuation"] == "evicting_sessions"


def test_control_api_rejects_bad_requests(sim):
    with pytest.raises(SimError):
        sim.client.fail_api(status=200)
    with pytest.raises(SimError):
        sim.client.fail_api(status=None)
    raw = httpx.post(sim.client.base_url + "/faults", content=b"[1]")
    assert raw.status_code == 400 and "error" in raw.json()
    assert httpx.get(sim.client.base_url + "/nope").status_code == 404
    assert sim.client.healthy()


def test_control_server_binds_loopback_only():
    with pytest.raises(ValueError):
        ControlServer(Harness().world, "0.0.0.0", 0)


def test_cli_rejects_non_loopback_control_address(capsys):
    from sandbox.emqxsim.__main__ import main

    with pytest.raises(SystemExit):
        main(["--kubeconfig", "x", "--control-addr", "10.0.0.1:80"])
    assert "loopback" in capsys.readouterr().err
