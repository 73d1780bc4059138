"""Python client for the simulator's control API (what tests use to inject faults and observe).

A node can be named by its Erlang node name (`emqx@emqx-core-0.emqx-headless.ns.svc.cluster.local`),
by `namespace/pod-name` or by pod uid.

    sim = SimClient("http://127.0.0.1:18999")
    sim.wait_for_node("ns/emqx-core-0", state="running")
    sim.fail_api("ns/emqx-core-0", status=503, count=3)     # next 3 /api/v5 calls fail
    sim.fail_api("ns/emqx-core-0", status=None, delay=2.0)  # slow API
    sim.request_counts("ns/emqx-core-0")["by_endpoint"]     # {"GET /api/v5/nodes": 4, ...}
    [e["event"] for e in sim.boot_log()]                    # ["booted", "stopped", ...]
"""

from __future__ import annotations

import time
from typing import Any

import httpx


class SimError(Exception):
    """The control API refused a request (unknown node, bad arguments)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


class SimClient:
    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        payload = response.json()
        if response.status_code != 200:
            raise SimError(response.status_code, payload.get("error", response.text))
        return payload

    # ------------------------------------------------------------------ observation

    def healthy(self) -> bool:
        """True when the simulator's control API answers."""
        try:
            return bool(self._call("GET", "/healthz").get("ok"))
        except httpx.HTTPError:
            return False

    def nodes(self) -> list[dict[str, Any]]:
        """One summary per EMQX pod the simulator tracks: pod, ip, image, state (pending|waiting|failed|
        hung|running|stopped|crashed), reason (why it is not running), node, role, version, edition,
        port, cluster, evacuation state, sessions and live_connections (after any evacuation or rebalance
        progress), the pod's Ready condition as last observed, joining (a fresh
        core still alone), degraded (a replicant without upstream), exit_code of the last EMQX exit
        and restart_count."""
        result: list[dict[str, Any]] = self._call("GET", "/nodes")
        return result

    def node(self, ident: str) -> dict[str, Any]:
        """The summary of one node by node name, `namespace/pod` or uid; SimError(404) if unknown."""
        for item in self.nodes():
            if ident in (item["node"], item["pod"], item["uid"]):
                return item
        raise SimError(404, f"no simulated node or pod {ident!r}")

    def clusters(self) -> list[dict[str, Any]]:
        """Per simulated cluster: name, discovery, running node names, stopped cores, API key ids."""
        result: list[dict[str, Any]] = self._call("GET", "/clusters")
        return result

    def container(self, node: str) -> dict[str, Any]:
        """The EMQX container of a pod: phase (running | waiting | terminated), reason, message,
        restart_count, ready, last_termination (exit_code, reason, message, log_tail, started_at,
        finished_at; set once the EMQX process exited, e.g. refusing its config) and log (the lines
        EMQX printed, earlier runs included)."""
        result: dict[str, Any] = self._call("GET", "/containers", params={"node": node})
        return result

    def boot_log(self, since: int = 0) -> list[dict[str, Any]]:
        """Events after sequence number `since`: dicts with seq, time (unix seconds), event (booting |
        booted | stopped | crashed | boot_failed | boot_waiting | boot_hung | boot_aborted | joined |
        replicant_degraded | replicant_recovered), pod, node, image, and version, role, reason, exit_code,
        seconds (booting: the boot duration), stage (boot_aborted: starting | waiting | hung) where they apply."""
        result: list[dict[str, Any]] = self._call("GET", "/boot-log", params={"since": since})
        return result

    def last_seq(self) -> int:
        """The newest boot-log sequence number (0 when empty); pass it to boot_log(since=...) later."""
        events = self.boot_log()
        return events[-1]["seq"] if events else 0

    def clear_boot_log(self) -> None:
        self._call("DELETE", "/boot-log")

    def request_counts(self, node: str | None = None, namespace: str | None = None) -> dict[str, Any]:
        """Management API requests received (readiness probes excluded). With `node`:
        {"total": n, "by_endpoint": {"GET /api/v5/nodes": n, ...}}; with `namespace`: the same summed
        over every pod of that namespace (replaced ones included); without: per node name."""
        params = {"node": node} if node is not None else {"namespace": namespace} if namespace is not None else None
        result: dict[str, Any] = self._call("GET", "/requests", params=params)
        return result

    def reset_request_counts(self) -> None:
        self._call("DELETE", "/requests")

    # ------------------------------------------------------------------ faults

    def fail_api(
        self,
        node: str | None = None,
        status: int | None = 500,
        delay: float = 0.0,
        path_prefix: str = "/api/v5/",
        count: int | None = None,
        drop: bool = False,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Make matching requests to `node` (all nodes if None) wait `delay` seconds, then answer
        `status` (401 with EMQX's BAD_API_KEY_OR_SECRET body, 5xx with an error body; None = answer
        normally after the delay) or close the connection unanswered (`drop`). Applies to paths
        starting with `path_prefix` (use "/status" to fail readiness) for `count` requests or until
        cleared. `namespace`: only pods of that namespace (those that appear later too); with node None,
        every one of them. Returns the fault with its id."""
        body = {
            "node": node,
            "namespace": namespace,
            "status": status,
            "delay": delay,
            "path_prefix": path_prefix,
            "count": count,
            "drop": drop,
        }
        result: dict[str, Any] = self._call("POST", "/faults", body)
        return result

    def slow_api(self, node: str | None, delay: float, path_prefix: str = "/api/v5/") -> dict[str, Any]:
        """Answer normally but only after `delay` seconds."""
        return self.fail_api(node, status=None, delay=delay, path_prefix=path_prefix)

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")
        return result

    def clear_faults(self, node: str | None = None, namespace: str | None = None) -> None:
        """Remove all faults, those targeted at `node` (as it was named in fail_api), or those scoped
        to `namespace`."""
        params = {"node": node} if node is not None else {"namespace": namespace} if namespace is not None else None
        self._call("DELETE", "/faults", params=params)

    def stop(self, node: str) -> dict[str, Any]:
        """Stop the node gracefully; it stays down (pod Running, not Ready) until start() or the pod is
        recreated. A stopped core is still listed by GET /nodes as stopped."""
        result: dict[str, Any] = self._call("POST", "/nodes/stop", {"node": node})
        return result

    def crash(self, node: str, restart_after: float | None = None) -> dict[str, Any]:
        """Kill the node (connections reset). With `restart_after` it boots again after that many
        seconds, like a container restart; otherwise it stays down until start()."""
        result: dict[str, Any] = self._call("POST", "/nodes/crash", {"node": node, "restart_after": restart_after})
        return result

    def start(self, node: str) -> dict[str, Any]:
        """Boot a stopped or crashed node again (same pod, same data directory)."""
        result: dict[str, Any] = self._call("POST", "/nodes/start", {"node": node})
        return result

    def set_connections(self, node: str, connections: int, live_connections: int | None = None) -> dict[str, Any]:
        """Set the node's sessions (`connections` in GET /nodes) and connected clients (`live_connections`,
        defaults to `connections`); evacuation drains these."""
        body = {"node": node, "connections": connections, "live_connections": live_connections}
        result: dict[str, Any] = self._call("POST", "/nodes/connections", body)
        return result

    def never_boot(self, image: str) -> list[str]:
        """Pods running exactly this image string stay Running and never become Ready (boot hangs)."""
        result: list[str] = self._call("POST", "/never-boot", {"image": image})
        return result

    def allow_boot(self, image: str | None = None) -> list[str]:
        """Undo never_boot for one image, or for all; hung pods then boot."""
        result: list[str] = self._call("DELETE", "/never-boot", params={"image": image} if image else None)
        return result

    def timing(self) -> str:
        """The kubelet's probe/back-off timing: "honest" or "fast"."""
        return str(self._call("GET", "/timing")["mode"])

    def set_timing(self, mode: str) -> str:
        """Probe/back-off timing for pods the simulator sees from now on ("honest" or "fast")."""
        return str(self._call("POST", "/timing", {"mode": mode})["mode"])

    def set_clock_speed(self, speed: float) -> None:
        """Run the simulated clock (evacuation timers, uptime) `speed` times faster than real time."""
        self._call("POST", "/clock", {"speed": speed})

    # ------------------------------------------------------------------ waiting

    def wait_for_node(
        self, ident: str, state: str = "running", timeout: float = 30.0, interval: float = 0.1
    ) -> dict[str, Any]:
        """Poll until the node/pod `ident` is in `state`; returns its summary. TimeoutError with the
        last summary otherwise."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while True:
            try:
                last = self.node(ident)
                if last["state"] == state:
                    return last
            except SimError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{ident} not {state} after {timeout}s; last seen: {last}")
            time.sleep(interval)
