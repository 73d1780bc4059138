"""The simulator's control API (JSON over HTTP on 127.0.0.1): fault injection and observation.

Nodes are named by Erlang node name (`emqx@host`), `namespace/pod` or pod uid. See client.py for
the documented Python side; the routes are:

    GET    /healthz                      {"ok": true}
    GET    /nodes                        one summary per observed EMQX pod
    GET    /clusters                     running nodes, stopped cores, API key ids per cluster
    GET    /boot-log?since=SEQ           boot/stop/crash/failure events with timestamps
    DELETE /boot-log
    GET    /containers?node=N            the EMQX container of a pod as the kubelet would see it: phase,
                                         reason, restart_count, last_termination (exit_code, message,
                                         log_tail, times), log (what EMQX printed)
    GET    /requests[?node=N|namespace=NS]  per-node request counts ("METHOD /path" -> n, plus "total"), or
                                         one node's, or those of every pod of a namespace
    DELETE /requests
    GET    /faults
    POST   /faults                       {"node", "namespace", "status", "delay", "path_prefix", "count", "drop"}
    DELETE /faults[?node=N|namespace=NS]
    POST   /nodes/stop                   {"node"}
    POST   /nodes/crash                  {"node", "restart_after"}
    POST   /nodes/start                  {"node"}
    POST   /nodes/connections            {"node", "connections", "live_connections"}
    GET    /never-boot
    POST   /never-boot                   {"image"}
    DELETE /never-boot[?image=I]
    POST   /clock                        {"speed"}
    GET    /timing                       the kubelet's probe/back-off timing {"mode": "honest"|"fast"}
    POST   /timing                       {"mode"}: for pods the kubelet sees from then on
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .api import QuietHTTPServer
from .world import World

log = logging.getLogger("emqxsim")


class ControlError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ControlApi:
    def __init__(self, world: World, kubelet: Any = None):
        self.world = world
        self.kubelet = kubelet
        self.routes: dict[tuple[str, str], Callable[[dict[str, str], dict[str, Any]], Any]] = {
            ("GET", "/healthz"): lambda query, body: {"ok": True},
            ("GET", "/nodes"): lambda query, body: world.node_status(),
            ("GET", "/clusters"): lambda query, body: world.cluster_status(),
            ("GET", "/boot-log"): self.boot_log,
            ("GET", "/containers"): self.container,
            ("DELETE", "/boot-log"): self.clear_boot_log,
            ("GET", "/requests"): self.request_counts,
            ("DELETE", "/requests"): self.reset_requests,
            ("GET", "/faults"): lambda query, body: world.fault_list(),
            ("POST", "/faults"): self.add_fault,
            ("DELETE", "/faults"): self.clear_faults,
            ("POST", "/nodes/stop"): lambda query, body: world.stop_node(self._node(body)),
            ("POST", "/nodes/crash"): lambda query, body: world.stop_node(
                self._node(body), crash=True, restart_after=body.get("restart_after")
            ),
            ("POST", "/nodes/start"): lambda query, body: world.start_node(self._node(body)),
            ("POST", "/nodes/connections"): self.set_connections,
            ("GET", "/never-boot"): lambda query, body: sorted(world.never_boot_images),
            ("POST", "/never-boot"): self.never_boot,
            ("DELETE", "/never-boot"): self.allow_boot,
            ("POST", "/clock"): self.set_clock,
            ("GET", "/timing"): self.get_timing,
            ("POST", "/timing"): self.set_timing,
        }

    @staticmethod
    def _node(body: dict[str, Any]) -> str:
        node = body.get("node")
        if not isinstance(node, str) or not node:
            raise ControlError(400, 'body needs "node": a node name, namespace/pod or pod uid')
        return node

    def handle(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        route = self.routes.get((method, path))
        if route is None:
            return 404, {"error": f"no control route {method} {path}"}
        try:
            return 200, route(query, body)
        except ControlError as error:
            return error.status, {"error": str(error)}
        except KeyError as error:
            return 404, {"error": str(error.args[0]) if error.args else "not found"}
        except (TypeError, ValueError) as error:
            return 400, {"error": str(error)}

    def boot_log(self, query: dict[str, str], body: dict[str, Any]) -> list[dict[str, Any]]:
        since = int(query.get("since", "0"))
        with self.world.lock:
            return [event for event in self.world.events if event["seq"] > since]

    def clear_boot_log(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        with self.world.lock:
            # Sequence numbers keep growing so `since` stays meaningful across a clear.
            last = self.world.events[-1]["seq"] if self.world.events else 0
            self.world.events = [event for event in self.world.events if event["seq"] > last]
            return {"cleared_through": last}

    def container(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        node = query.get("node")
        if not node:
            raise ControlError(400, "query needs node=<node name, namespace/pod or pod uid>")
        return self.world.container_view(node)

    def request_counts(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        namespace = query.get("namespace")
        if namespace is not None:
            with self.world.lock:
                counter: Mapping[str, int] = self.world.namespace_requests.get(namespace) or {}
                return {"total": sum(counter.values()), "by_endpoint": dict(counter)}
        with self.world.lock:
            counts = {
                name: {"total": sum(counter.values()), "by_endpoint": dict(counter)}
                for name, counter in self.world.request_counts.items()
            }
        node = query.get("node")
        if node is None:
            return counts
        record = self.world.find_record(node)
        name = record.node_name if record and record.node_name else node
        return counts.get(name, {"total": 0, "by_endpoint": {}})

    def reset_requests(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        with self.world.lock:
            self.world.request_counts.clear()
            self.world.namespace_requests.clear()
        return {}

    def add_fault(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        status = body.get("status")
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise ControlError(400, "status must be an HTTP error code (4xx/5xx) or null")
        delay = float(body.get("delay") or 0.0)
        if status is None and not delay and not body.get("drop"):
            raise ControlError(400, "a fault needs a status, a delay or drop")
        fault = self.world.add_fault(
            node=body.get("node"),
            status=status,
            delay=delay,
            path_prefix=str(body.get("path_prefix") or "/api/v5/"),
            count=body.get("count"),
            drop=bool(body.get("drop")),
            namespace=body.get("namespace"),
        )
        return fault.as_dict()

    def clear_faults(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self.world.clear_faults(query.get("node"), query.get("namespace"))
        return {}

    def set_connections(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        connections = body.get("connections")
        if not isinstance(connections, int) or connections < 0:
            raise ControlError(400, "connections must be a non-negative integer")
        return self.world.set_connections(self._node(body), connections, body.get("live_connections"))

    def never_boot(self, query: dict[str, str], body: dict[str, Any]) -> list[str]:
        image = body.get("image")
        if not isinstance(image, str) or not image:
            raise ControlError(400, 'body needs "image"')
        with self.world.lock:
            self.world.never_boot_images.add(image)
            return sorted(self.world.never_boot_images)

    def allow_boot(self, query: dict[str, str], body: dict[str, Any]) -> list[str]:
        with self.world.lock:
            if "image" in query:
                self.world.never_boot_images.discard(query["image"])
            else:
                self.world.never_boot_images.clear()
            return sorted(self.world.never_boot_images)

    def set_clock(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self.world.clock.set_speed(float(body.get("speed", 1.0)))
        return {"speed": self.world.clock.speed}


    def get_timing(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if self.kubelet is None:
            raise ControlError(404, "no kubelet in this simulator")
        return {"mode": self.kubelet.timing.name}

    def set_timing(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        from .kubelet import timing_named

        if self.kubelet is None:
            raise ControlError(404, "no kubelet in this simulator")
        self.kubelet.set_timing(timing_named(str(body.get("mode", ""))))
        return {"mode": self.kubelet.timing.name}


class ControlServer:
    def __init__(self, world: World, host: str, port: int, kubelet: Any = None):
        if not host.startswith("127."):
            raise ValueError("the control API binds loopback addresses only")
        self.api = ControlApi(world, kubelet)
        self._host = host
        api = self.api

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("control %s", format % args)

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except json.JSONDecodeError:
                    status, payload = 400, {"error": "body must be JSON"}
                else:
                    if not isinstance(body, dict):
                        status, payload = 400, {"error": "body must be a JSON object"}
                    else:
                        status, payload = api.handle(self.command, split.path, dict(parse_qsl(split.query)), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self._server = QuietHTTPServer((host, port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="emqxsim-control",
            daemon=True,
        )

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
