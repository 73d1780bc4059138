"""The simulator's connection rebalance (POST /load_rebalance/{node}/start|stop, rebalances[] of
global_status) against the facts of emqx_node_rebalance.erl / _api.erl / _status.erl."""

from __future__ import annotations

import json
from typing import Any

from sandbox.emqxsim.testing import Harness, emqx_pod

CORE = "emqx@emqx-core-{}.emqx-headless.ns.svc.cluster.local"


def cluster(image: str, cores: int = 3) -> Harness:
    harness = Harness(None)
    licence = [{"name": "EMQX_LICENSE__KEY", "value": "evaluation"}]  # 5.9+: a cluster needs more than "default"
    harness.add(*[emqx_pod(f"emqx-core-{index}", image=image, extra_env=licence) for index in range(cores)])
    return harness


def body(response: Any) -> Any:
    return json.loads(response.body)


def start(sim: Harness, coordinator: int = 0, **request: Any) -> Any:
    return sim.call(f"ns/emqx-core-{coordinator}", "POST", f"/api/v5/load_rebalance/{CORE.format(coordinator)}/start",
                    body=json.dumps(request))


def counts(sim: Harness, index: int) -> tuple[int, int]:
    return sim.record(f"ns/emqx-core-{index}").node.current_counts()


def test_donors_evict_connections_to_the_recipients_until_within_the_thresholds() -> None:
    with cluster("emqx/emqx-enterprise:5.8.0") as sim:
        sim.world.set_connections("ns/emqx-core-0", 1200, 1200)
        answer = start(sim, conn_evict_rate=100, sess_evict_rate=100, wait_health_check=2, wait_takeover="3s",
                       abs_conn_threshold=10, abs_sess_threshold=10, rel_conn_threshold=1.1,
                       nodes=[CORE.format(i) for i in range(3)])
        assert (answer.status, body(answer)) == (200, {})
        rebalance = sim.record("ns/emqx-core-0").node.rebalance
        assert rebalance.donors == [CORE.format(0)] and rebalance.recipients == [CORE.format(1), CORE.format(2)]
        t0 = rebalance.next_at - 2
        entry = body(sim.call("ns/emqx-core-1", "GET", "/api/v5/load_rebalance/global_status"))["rebalances"][0]
        assert entry == {"state": "wait_health_check", "coordinator_node": CORE.format(0), "node": CORE.format(0),
                         "connection_eviction_rate": 100, "session_eviction_rate": 100,
                         "donors": [CORE.format(0)], "recipients": [CORE.format(1), CORE.format(2)]}
        donor_check = sim.call("ns/emqx-core-0", "GET", "/api/v5/load_rebalance/availability_check", auth=None)
        assert (donor_check.status, body(donor_check)["code"]) == (503, "NODE_EVACUATING")
        assert sim.call("ns/emqx-core-1", "GET", "/api/v5/load_rebalance/availability_check", auth=None).status == 200
        local = body(sim.call("ns/emqx-core-0", "GET", "/api/v5/load_rebalance/status"))
        assert local["process"] == "rebalance" and local["stats"]["initial_connected"] == 1200
        assert body(sim.call("ns/emqx-core-1", "GET", "/api/v5/load_rebalance/status")) == {"status": "disabled"}

        assert rebalance.advance(t0 + 3.5) and rebalance.state == "evicting_conns"
        assert counts(sim, 0) == (1000, 1000)  # at +2 and +3: 100 each
        assert counts(sim, 1)[1] + counts(sim, 2)[1] == 200
        assert rebalance.stats["donor_conn_avg"] == 1100.0 and rebalance.stats["recipient_conn_avg"] == 50.0
        assert rebalance.advance(t0 + 10.5)  # round 9 (at +10) finds 400 vs 400: within
        assert rebalance.state == "wait_takeover" and counts(sim, 0) == (400, 400)
        assert counts(sim, 1) == (400, 400) and counts(sim, 2) == (400, 400)
        assert rebalance.advance(t0 + 12.9) and rebalance.state == "wait_takeover"
        assert not rebalance.advance(t0 + 13.0)  # no disconnected session to move: done


def test_disconnected_sessions_follow_after_the_takeover_wait() -> None:
    with cluster("emqx/emqx-enterprise:5.8.0", cores=2) as sim:
        # 400 sessions, 100 of them connected: the connections are within the default thresholds, the
        # sessions are not (the donors are still chosen by connections).
        sim.world.set_connections("ns/emqx-core-0", 400, 100)
        answer = start(sim, wait_health_check=0, wait_takeover=0, abs_sess_threshold=1, sess_evict_rate=50)
        assert answer.status == 200, answer.body
        rebalance = sim.record("ns/emqx-core-0").node.rebalance
        t0 = rebalance.next_at
        assert rebalance.advance(t0 + 0.1) and rebalance.state == "evicting_sessions"
        assert counts(sim, 0) == (350, 100) and counts(sim, 1) == (50, 0)
        assert not rebalance.advance(t0 + 10)
        assert counts(sim, 0) == (250, 100) and counts(sim, 1) == (150, 0)


def test_nothing_to_balance_already_started_not_started_and_unavailable_nodes() -> None:
    with cluster("emqx/emqx-enterprise:5.8.0") as sim:
        balanced = start(sim)
        assert (balanced.status, body(balanced)) == (
            400, {"code": "BAD_REQUEST", "message": f"error on node '{CORE.format(0)}': nothing_to_balance"})
        sim.world.set_connections("ns/emqx-core-0", 5000, 5000)
        assert start(sim).status == 200
        again = start(sim)
        assert body(again)["message"] == f"error on node '{CORE.format(0)}': already_started"
        busy = start(sim, coordinator=1, nodes=[CORE.format(0), CORE.format(1)])  # core-0 is a donor
        assert (busy.status, body(busy)) == (
            400, {"code": "NOT_FOUND", "message": f"Nodes unavailable: ['{CORE.format(0)}']"})
        evacuate = sim.call("ns/emqx-core-1", "POST", f"/api/v5/load_rebalance/{CORE.format(0)}/evacuation/start",
                            body=json.dumps({"migrate_to": [CORE.format(1)]}))
        assert body(evacuate)["message"] == f"error on node '{CORE.format(0)}': eviction_agent_busy"
        unknown = start(sim, coordinator=1, nodes=["emqx@nowhere"])
        assert (unknown.status, body(unknown)["code"]) == (400, "BAD_REQUEST")
        assert "Invalid nodes" in body(unknown)["message"]
        stop = sim.call("ns/emqx-core-2", "POST", f"/api/v5/load_rebalance/{CORE.format(0)}/stop")
        assert (stop.status, body(stop)) == (200, {})
        assert body(sim.call("ns/emqx-core-0", "GET", "/api/v5/load_rebalance/global_status"))["rebalances"] == []
        stopped = sim.call("ns/emqx-core-0", "POST", f"/api/v5/load_rebalance/{CORE.format(0)}/stop")
        assert body(stopped)["message"] == f"error on node '{CORE.format(0)}': not_started"


def test_start_body_checks() -> None:
    with cluster("emqx/emqx-enterprise:5.8.0", cores=2) as sim:
        low = start(sim, rel_conn_threshold=1.0)
        assert low.status == 400 and "returned_false" in body(low)["message"]
        assert "rel_conn_threshold" in body(low)["message"]
        rate = start(sim, conn_evict_rate=0)
        assert rate.status == 400 and "pos_integer()" in body(rate)["message"]
        empty = start(sim, nodes=[])
        assert empty.status == 400
        unknown = start(sim, conn_evict_rpc_timeout="10s")  # e5.9.0+ only
        assert unknown.status == 400 and "unknown_fields" in body(unknown)["message"]
    with cluster("emqx/emqx-enterprise:5.9.0", cores=2) as sim:
        sim.world.set_connections("ns/emqx-core-0", 5000, 5000)
        ok = start(sim, conn_evict_rpc_timeout="10s", wait_health_check=1)
        assert ok.status == 200, ok.body
        entry = body(sim.call("ns/emqx-core-0", "GET", "/api/v5/load_rebalance/global_status"))["rebalances"][0]
        assert entry["connection_eviction_rpc_timeout"] == 10000
        assert entry["session_eviction_rpc_timeout"] == 15000


def test_opensource_has_no_rebalance_and_a_coordinator_restart_loses_it() -> None:
    with cluster("emqx/emqx:5.7.2", cores=2) as sim:
        assert start(sim).status == 404
    with cluster("emqx/emqx-enterprise:5.8.0", cores=2) as sim:
        sim.world.set_connections("ns/emqx-core-1", 5000, 5000)
        assert start(sim).status == 200
        sim.world.stop_node("ns/emqx-core-0")
        assert body(sim.call("ns/emqx-core-1", "GET", "/api/v5/load_rebalance/global_status"))["rebalances"] == []
        assert sim.call("ns/emqx-core-1", "GET", "/api/v5/load_rebalance/availability_check", auth=None).status == 200
