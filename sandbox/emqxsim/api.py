"""EMQX's dashboard listener for one simulated node: `/status` and the `/api/v5` management API.

`NodeApi.handle` maps a `Request` to a `Response` without sockets (unit-testable); `NodeHttpServer`
serves it on `<podIP>:<dashboard port>` and applies injected faults. Shapes and status codes follow
emqx-api.md §1-§4.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import configmodel, schema, versions
from .erlterm import Atom, Binary, Charlist, best_effort_json, format_deep_0p, format_p
from .node import SimNode
from .world import World

log = logging.getLogger("emqxsim")

PROBE_HEADER = "X-Emqxsim-Probe"
BASE = "/api/v5"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Run once the response is on the wire (e.g. move the listener to a new port).
    after: list[Callable[[], None]] = field(default_factory=list)


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode(), "application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response(status, {"code": code, "message": message})


def unauthorized(code: str, message: str) -> Response:
    response = error_response(401, code, message)
    response.headers["WWW-Authenticate"] = 'Basic Realm="emqx-dashboard"'
    return response


def not_found_page(accept: str) -> Response:
    if "application/json" in accept:
        return error_response(404, "NOT_FOUND", "Request Path Not Found")
    if "text/plain" in accept:
        return Response(404, b"404 - NOT FOUND", "text/plain")
    page = "<html><head><title>404 - NOT FOUND</title></head><body><h1>404 - NOT FOUND</h1></body></html>"
    return Response(404, page.encode(), "text/html")


_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)?$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if value >= 0 else None
    match = _DURATION.match(str(value))
    if not match:
        return None
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


@dataclass
class Route:
    pattern: re.Pattern[str]
    handlers: dict[str, Callable[[Request, dict[str, str]], Response]]
    auth: bool = True
    available: Callable[[dict[str, str]], bool] = lambda params: True


class NodeApi:
    def __init__(self, node: SimNode, world: World):
        self.node = node
        self.world = world
        image = node.spec.image
        rebalance = node.has_rebalance_api
        plain_status, api_status = versions.status_routes(image)
        self.routes: list[Route] = []

        def add(
            path: str,
            handlers: dict[str, Any],
            auth: bool = True,
            available: Callable[[dict[str, str]], bool] | None = None,
        ) -> None:
            regex = (
                re.escape(path)
                .replace(re.escape("{node}"), "(?P<node>[^/]+)")
                .replace(re.escape("{root}"), "(?P<root>[^/]+)")
            )
            self.routes.append(Route(re.compile(f"^{regex}$"), handlers, auth, available or (lambda params: True)))

        per_root_endpoints = configmodel.json_roots(image)

        add("/status", {"GET": self.get_status}, auth=False, available=lambda params: plain_status)
        add(f"{BASE}/status", {"GET": self.get_status}, auth=False, available=lambda params: api_status)
        add(f"{BASE}/login", {"POST": self.post_login}, auth=False)
        add(f"{BASE}/logout", {"POST": self.post_logout})
        add(f"{BASE}/nodes", {"GET": self.get_nodes})
        add(f"{BASE}/nodes/{{node}}", {"GET": self.get_node})
        add(f"{BASE}/cluster", {"GET": self.get_cluster})
        add(
            f"{BASE}/cluster/topology",
            {"GET": self.get_topology},
            available=lambda params: image.at_least(versions.TOPOLOGY),
        )
        add(f"{BASE}/cluster/{{node}}/force_leave", {"DELETE": self.force_leave})
        config_handlers: dict[str, Any] = {"GET": self.get_configs}
        if image.at_least(versions.CONFIG_PUT):
            config_handlers["PUT"] = self.put_configs
        add(f"{BASE}/configs", config_handlers)
        add(
            f"{BASE}/configs/{{root}}",
            {"GET": self.get_config_root, "PUT": self.put_config_root},
            available=lambda params: params["root"] in per_root_endpoints,
        )
        add(f"{BASE}/api_key", {"GET": self.get_api_keys})
        add(f"{BASE}/listeners", {"GET": self.get_listeners})
        add(
            f"{BASE}/load_rebalance/availability_check",
            {"GET": self.availability_check},
            auth=False,
            available=lambda params: rebalance,
        )
        add(
            f"{BASE}/load_rebalance/global_status",
            {"GET": self.global_status},
            available=lambda params: rebalance,
        )
        add(f"{BASE}/load_rebalance/status", {"GET": self.local_status}, available=lambda params: rebalance)
        add(
            f"{BASE}/load_rebalance/{{node}}/evacuation/start",
            {"POST": self.evacuation_start},
            available=lambda params: rebalance,
        )
        add(
            f"{BASE}/load_rebalance/{{node}}/evacuation/stop",
            {"POST": self.evacuation_stop},
            available=lambda params: rebalance,
        )

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Response:
        accept = request.header("accept")
        for route in self.routes:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            params = {key: unquote(value) for key, value in match.groupdict().items()}
            if not route.available(params):
                continue
            handler = route.handlers.get(request.method)
            if handler is None:
                return Response(405, b"", None, {"allow": ", ".join(sorted(route.handlers))})
            if route.auth:
                denied = self._authorize(request)
                if denied is not None:
                    return denied
            with self.world.lock:
                return handler(request, params)
        return not_found_page(accept)

    def _unauthorized(self, code: str, message: str) -> Response:
        response = unauthorized(code, message)
        if not self.node.spec.image.at_least(versions.REALM_EMQX_DASHBOARD):
            response.headers["WWW-Authenticate"] = 'Basic Realm="minirest-server"'
        return response

    def _authorize(self, request: Request) -> Response | None:
        cluster = self.node.cluster
        image = self.node.spec.image
        authorization = request.header("authorization")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            api_key, _, secret = decoded.partition(":")
            if not image.at_least(versions.DASHBOARD_USER_BASIC_AUTH_REMOVED):
                # up to 5.0.14 a dashboard user's name and password work too (emqx_dashboard:authorize/1)
                with self.world.lock:
                    admin_password = cluster.admins.get(api_key)
                if admin_password is not None:
                    if admin_password == secret:
                        return None
                    return self._unauthorized("WRONG_USERNAME_OR_PWD", "Check username/password")
            if re.match(rf"^{BASE}/(api_key|users|logout)", request.path):
                which = request.path[len(BASE) + 1 :].split("/")[0]
                if not image.at_least(versions.DASHBOARD_USER_BASIC_AUTH_REMOVED):
                    return self._unauthorized("WRONG_USERNAME_OR_PWD", "Check username/password")
                return self._unauthorized(
                    "API_KEY_NOT_ALLOW",
                    f"Please use bearer Token instead, using API key/secret in {which} path is not permitted",
                )
            with self.world.lock:
                record = cluster.api_keys.get(api_key)
            if record is None or not record["enable"] or record["api_secret"] != secret:
                if not image.at_least(versions.DASHBOARD_USER_BASIC_AUTH_REMOVED):
                    return self._unauthorized(
                        "WRONG_USERNAME_OR_PWD_OR_API_KEY_OR_API_SECRET",
                        "Check username/password or api_key/api_secret",
                    )
                return self._unauthorized("BAD_API_KEY_OR_SECRET", "Check api_key/api_secret")
            if versions.has_rbac(image):
                role = record["role"]
                allowed = (
                    role == "administrator"
                    or (role == "viewer" and request.method == "GET")
                    or (
                        role == "publisher"
                        and request.method == "POST"
                        and request.path in (f"{BASE}/publish", f"{BASE}/publish/bulk")
                    )
                )
                if not allowed:
                    return error_response(
                        403, "UNAUTHORIZED_ROLE", "This API Key don't have permission to access this resource"
                    )
            return None
        if scheme.lower() == "bearer":
            with self.world.lock:
                token = cluster.tokens.get(credentials.strip())
            if token is None:
                return self._unauthorized("BAD_TOKEN", "Get a token by POST /login")
            if token[1] < time.time():
                return self._unauthorized("TOKEN_TIME_OUT", "Token expired, get new token by POST /login")
            return None
        return self._unauthorized("AUTHORIZATION_HEADER_ERROR", "Support authorization: basic/bearer ")

    # ------------------------------------------------------------------ status, login

    def get_status(self, request: Request, params: dict[str, str]) -> Response:
        node = self.node
        image = node.spec.image
        # 503 + retry-after exist from 5.0.10; the node answering here runs the emqx app: 200.
        headers = {"retry-after": "15"} if image.at_least(versions.STATUS_503) else {}
        if request.query.get("format") == "json" and image.at_least(versions.STATUS_JSON):
            payload = {
                "node_name": node.name,
                "rel_vsn": versions.rel_vsn(node.edition, node.version),
                "broker_status": "started",
                "app_status": "running",
            }
            return Response(200, json.dumps(payload).encode(), "application/json", headers)
        text = f"Node {node.name} is started\nemqx is running"
        return Response(200, text.encode(), "text/plain", headers)

    def post_login(self, request: Request, params: dict[str, str]) -> Response:
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error_response(400, "BAD_REQUEST", "invalid JSON body")
        username, password = str(body.get("username", "")), str(body.get("password", ""))
        cluster = self.node.cluster
        if cluster.admins.get(username) != password:
            return error_response(401, "BAD_USERNAME_OR_PWD", "Auth failed")
        token = secrets.token_urlsafe(24)
        cluster.tokens[token] = (username, time.time() + 3600)
        enterprise = self.node.edition is versions.Edition.ENTERPRISE
        payload: dict[str, Any] = {
            "token": token,
            "version": versions.format_version(self.node.version),
            "license": {"edition": "ee" if enterprise else "opensource"},
        }
        if enterprise:
            payload["role"] = "administrator"
        return json_response(200, payload)

    def post_logout(self, request: Request, params: dict[str, str]) -> Response:
        token = request.header("authorization").partition(" ")[2].strip()
        self.node.cluster.tokens.pop(token, None)
        return Response(204)

    # ------------------------------------------------------------------ nodes and cluster

    def get_nodes(self, request: Request, params: dict[str, str]) -> Response:
        cluster = self.node.cluster
        image = self.node.spec.image
        items: list[dict[str, Any]] = [node.node_info() for node in cluster.running()]
        if image.at_least(versions.STOPPED_CORES_LISTED):
            # up to 5.0.17 stopped nodes were built as maps the API's {Node, Info} filter dropped
            for name in cluster.stopped_cores():
                item: dict[str, Any] = {"node": name, "node_status": "stopped"}
                if image.at_least(versions.STOPPED_CORE_ROLE):
                    item["role"] = "core"
                items.append(item)
        return json_response(200, items)

    def get_node(self, request: Request, params: dict[str, str]) -> Response:
        node = self.node.cluster.nodes.get(params["node"])
        if node is None:
            return error_response(404, "NOT_FOUND", f"Node not found: {params['node']}")
        return json_response(200, node.node_info())

    def get_cluster(self, request: Request, params: dict[str, str]) -> Response:
        cluster = self.node.cluster
        return json_response(
            200,
            {
                "name": cluster.name,
                "nodes": [node.name for node in cluster.running()],
                "self": self.node.name,
            },
        )

    def get_topology(self, request: Request, params: dict[str, str]) -> Response:
        cluster = self.node.cluster
        cores = cluster.cores()
        replicants = [node for node in cluster.running() if node.role == "replicant"]
        topology: list[dict[str, Any]] = [{"core_node": core.name, "replicant_nodes": []} for core in cores]
        for index, replicant in enumerate(replicants):
            if topology:
                topology[index % len(topology)]["replicant_nodes"].append({"node": replicant.name, "streams": 10})
        return json_response(200, topology)

    def force_leave(self, request: Request, params: dict[str, str]) -> Response:
        target = params["node"]
        cluster = self.node.cluster
        if target == self.node.name:
            return error_response(400, "BAD_REQUEST", "Can't leave self")
        if target in cluster.nodes:
            return error_response(
                400, "BAD_REQUEST", "emqxsim: force_leave of a running node is not simulated; stop it first"
            )
        if target not in cluster.members:
            return error_response(400, "BAD_REQUEST", "node_not_in_cluster")
        self.world.force_leave(cluster, target)
        return Response(204)

    # ------------------------------------------------------------------ configs

    def get_configs(self, request: Request, params: dict[str, str]) -> Response:
        node = self.node
        image = node.spec.image
        key = request.query.get("key")
        if key is not None and (key not in node.running_config or key in configmodel.HIDDEN_ROOTS):
            return error_response(400, "BAD_REQUEST", f"key: unable_to_convert_to_enum_symbol: {key}")
        accept = request.header("accept") or "*/*"
        wants_json = "application/json" in accept
        if not image.at_least(versions.CONFIG_HOCON_GET) or wants_json:
            return json_response(200, configmodel.render_json(image, node.running_config, key))
        if not any(kind in accept for kind in ("text/plain", "*/*")):
            return error_response(400, "INVALID_ACCEPT", f"Accept header {accept!r} is not supported")
        return Response(200, configmodel.render_hocon(node.running_config, key).encode(), "text/plain")

    def put_configs(self, request: Request, params: dict[str, str]) -> Response:
        node = self.node
        mode = request.query.get("mode", "merge")
        if mode not in ("merge", "replace"):
            return error_response(400, "BAD_REQUEST", f"mode: unable_to_convert_to_enum_symbol: {mode}")
        ignore_readonly = request.query.get("ignore_readonly", "false") == "true"
        outcome = configmodel.put_configs(
            node.spec.image, request.body if request.body else None, mode, ignore_readonly, node.running_config
        )
        response = Response(outcome.status, outcome.body.encode(), outcome.content_type)
        if outcome.apply:
            rebind = self.world.apply_config(node.cluster, outcome.apply, mode)
            response.after.append(self._rebinder(rebind))
        return response

    def get_config_root(self, request: Request, params: dict[str, str]) -> Response:
        root = params["root"]
        image = self.node.spec.image
        return json_response(200, configmodel.render_json(image, self.node.running_config, root).get(root, {}))

    def put_config_root(self, request: Request, params: dict[str, str]) -> Response:
        root = params["root"]
        image = self.node.spec.image
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error_response(400, "BAD_REQUEST", "Invalid json message received")
        if not isinstance(body, dict):
            return error_response(400, "BAD_REQUEST", "expected a JSON object")
        problem = configmodel.check_root_update(image, root, body)
        if problem is not None:
            return error_response(400, "UPDATE_FAILED", problem)
        rebind = self.world.apply_config(self.node.cluster, {root: body}, "replace")
        payload = configmodel.render_json(image, self.node.running_config, root).get(root, {})
        response = json_response(200, payload)
        response.after.append(self._rebinder(rebind))
        return response

    def get_listeners(self, request: Request, params: dict[str, str]) -> Response:
        """GET /api/v5/listeners: every listener of every running node, by id (emqx_mgmt_api_listeners)."""
        wanted = request.query.get("type")
        if wanted is not None and wanted not in ("tcp", "ssl", "ws", "wss", "quic"):
            return error_response(400, "BAD_REQUEST", f"type: unable_to_convert_to_enum_symbol: {wanted}")
        grouped: dict[str, dict[str, Any]] = {}
        for member in self.node.cluster.running():
            for item in member.listeners():
                if wanted is not None and item["type"] != wanted:
                    continue
                status = {
                    "running": item["running"],
                    "max_connections": item["max_connections"],
                    "current_connections": item["current_connections"],
                }
                entry = grouped.get(item["id"])
                if entry is None:
                    grouped[item["id"]] = {
                        "acceptors": item["acceptors"],
                        "bind": item["bind"],
                        "enable": item["enable"],
                        "id": item["id"],
                        "name": item["name"],
                        "node_status": [{"node": member.name, "status": dict(status)}],
                        "number": 1,
                        "status": dict(status),
                        "type": item["type"],
                    }
                    continue
                total = entry["status"]
                if total["running"] != item["running"]:
                    total["running"] = "inconsistent"
                if "infinity" in (total["max_connections"], item["max_connections"]):
                    total["max_connections"] = "infinity"
                else:
                    total["max_connections"] += item["max_connections"]
                total["current_connections"] += item["current_connections"]
                entry["node_status"].insert(0, {"node": member.name, "status": dict(status)})
                entry["number"] += 1
        return json_response(200, [grouped[key] for key in sorted(grouped)])

    def _rebinder(self, nodes: list[SimNode]) -> Callable[[], None]:
        def rebind() -> None:
            for node in nodes:
                old = node.server
                if old is None or not node.alive:
                    continue
                old.stop()
                try:
                    node.server = NodeHttpServer(node, self.world)
                except OSError as error:
                    node.server = None
                    log.error(
                        "%s: dashboard listener failed to move to port %s: %s",
                        node.name,
                        node.spec.dashboard_port,
                        error,
                    )

        return rebind

    def get_api_keys(self, request: Request, params: dict[str, str]) -> Response:
        keys = [
            {key: value for key, value in record.items() if key != "api_secret"}
            for record in self.node.cluster.api_keys.values()
        ]
        return json_response(200, keys)

    # ------------------------------------------------------------------ load_rebalance

    def availability_check(self, request: Request, params: dict[str, str]) -> Response:
        if self.node.evacuation is not None:
            return error_response(503, "NODE_EVACUATING", "Node Evacuating")
        return json_response(200, {})

    def global_status(self, request: Request, params: dict[str, str]) -> Response:
        evacuations = [node.evacuation_item() for node in self.node.cluster.running() if node.evacuation is not None]
        return json_response(200, {"evacuations": evacuations, "purges": [], "rebalances": []})

    def local_status(self, request: Request, params: dict[str, str]) -> Response:
        if self.node.evacuation is None:
            return json_response(200, {"status": "disabled"})
        item = self.node.evacuation_item()
        item.pop("node")
        return json_response(200, {"status": "enabled", "process": "evacuation", **item})

    def _rebalance_message(self, template: str, *args: Any) -> str:
        """A message built with io_lib:format: binfmt'd from e5.1.0; before, emqx_utils printed the
        deep char list with ~0p (e5.0.x)."""
        image = self.node.spec.image
        parts = re.split(r"(~p)", template)
        values = iter(args)
        if image.at_least(versions.REBALANCE_MESSAGES_FLAT):
            text, col = "", 1
            for part in parts:
                rendered = format_p(next(values), col) if part == "~p" else part
                text += rendered
                col = len(text.rsplit("\n", 1)[-1]) + 1
            return text
        pieces: list[Any] = []
        for part in parts:
            if part == "~p":
                pieces.append(next(values))
            elif part:
                pieces.append(part)
        return format_deep_0p(pieces)

    def _body_error(self, error: dict[Any, Any]) -> Response:
        """A request body the API schema refuses: 400 BAD_REQUEST with hocon's first error as JSON."""
        return error_response(400, "BAD_REQUEST", best_effort_json(error))

    def _check_evacuation_body(self, body: dict[str, Any]) -> Response | None:
        image = self.node.spec.image
        render = schema.Rendering(image.hocon_version)
        fields = ["conn_evict_rate", "sess_evict_rate", "redirect_to", "wait_takeover", "migrate_to"]
        if image.at_least(versions.WAIT_HEALTH_CHECK):
            fields.insert(0, "wait_health_check")
        unknown = sorted(set(body) - set(fields))
        if unknown:
            return self._body_error(schema.unknown_fields("root", unknown, fields, list(body), image.hocon_version))
        for name in fields:
            if name not in body:
                continue
            value = body[name]
            path = f"root.{name}"
            if name in ("conn_evict_rate", "sess_evict_rate") or (
                name == "wait_takeover" and not image.at_least(versions.WAIT_TAKEOVER_DURATION)
            ):
                if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                    if isinstance(value, str) and render.hocon >= (0, 44, 0):
                        return self._body_error(
                            schema.validation_error(path, Charlist("Unable to parse Erlang term"), Binary(value))
                        )
                    return self._body_error(render.type_mismatch(path, "pos_integer()", value, None))
            elif name in ("wait_health_check", "wait_takeover"):
                if parse_duration(value) is None:
                    return self._body_error(
                        render.type_mismatch(path, "emqx_schema:timeout_duration_s()", value, "Not a valid duration")
                    )
            elif name == "migrate_to":
                if not (isinstance(value, list) and value and all(isinstance(item, str) for item in value)):
                    shown = [] if value == [] else value
                    return self._body_error(render.type_mismatch(path, "[binary(),...]", shown, None))
            elif name == "redirect_to" and not isinstance(value, str):
                return self._body_error(render.type_mismatch(path, "binary()", value, None))
        return None

    def evacuation_start(self, request: Request, params: dict[str, str]) -> Response:
        cluster = self.node.cluster
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error_response(400, "BAD_REQUEST", "Invalid json message received")
        if not isinstance(body, dict):
            return error_response(400, "BAD_REQUEST", "expected a JSON object")
        refused = self._check_evacuation_body(body)
        if refused is not None:
            return refused
        target = cluster.nodes.get(params["node"])
        if target is None:
            return error_response(404, "NOT_FOUND", f"Node not found: {params['node']}")
        options: dict[str, Any] = {}
        for rate in ("conn_evict_rate", "sess_evict_rate"):
            if rate in body:
                options[rate] = body[rate]
        for wait in ("wait_health_check", "wait_takeover"):
            if wait in body:
                options[wait] = parse_duration(body[wait])
        if "migrate_to" in body:
            migrate_to = body["migrate_to"]
            # validate_nodes/2 folds the list: both error lists come out in reverse order
            invalid = [name for name in reversed(migrate_to) if name not in self.world.known_node_names]
            if invalid:
                message = self._rebalance_message("Invalid nodes: ~p", [Binary(name) for name in invalid])
                return error_response(400, "BAD_REQUEST", message)
            unavailable = [
                name
                for name in reversed(migrate_to)
                if name not in cluster.nodes or cluster.nodes[name].evacuation is not None
            ]
            if unavailable:
                message = self._rebalance_message("Nodes unavailable: ~p", [Atom(name) for name in unavailable])
                return error_response(400, "NOT_FOUND", message)
            options["migrate_to"] = migrate_to
        if target.evacuation is not None:
            message = self._rebalance_message("error on node ~p: ~p", Atom(target.name), Atom("already_started"))
            return error_response(400, "BAD_REQUEST", message)
        target.start_evacuation(options)
        assert target.evacuation is not None
        self.world.data_dirs[target.data_dir_key].evacuation = target.evacuation.persisted_options()
        return json_response(200, {})

    def evacuation_stop(self, request: Request, params: dict[str, str]) -> Response:
        target = self.node.cluster.nodes.get(params["node"])
        if target is None:
            return error_response(404, "NOT_FOUND", f"Node not found: {params['node']}")
        if target.evacuation is None:
            message = self._rebalance_message("error on node ~p: ~p", Atom(target.name), Atom("not_started"))
            return error_response(400, "BAD_REQUEST", message)
        target.stop_evacuation()
        self.world.data_dirs[target.data_dir_key].evacuation = None
        return json_response(200, {})


# ---------------------------------------------------------------------- HTTP


def fault_response(node: SimNode, path: str, status: int) -> Response:
    if status == 401:
        return unauthorized("BAD_API_KEY_OR_SECRET", "Check api_key/api_secret")
    if path in ("/status", f"{BASE}/status"):
        body = f"Node {node.name} is started\nemqx is not_running"
        return Response(status, body.encode(), "text/plain", {"retry-after": "15"})
    codes = {500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}
    return error_response(status, codes.get(status, "SIMULATED_FAULT"), "fault injected by emqxsim")


class QuietHTTPServer(ThreadingHTTPServer):
    """Clients that hang up mid-request (probes timing out, tests closing) are routine here."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


class _TrackingServer(QuietHTTPServer):
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            self.open_sockets.clear()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class NodeHttpServer:
    """Binds `<podIP>:<dashboard port>` at construction (OSError if it cannot)."""

    def __init__(self, node: SimNode, world: World):
        self.node = node
        self.world = world
        self.api = NodeApi(node, world)
        self.address = (node.spec.pod.ip, node.spec.dashboard_port)
        self._server = _TrackingServer(self.address, self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"emqxsim-node-{node.name}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "Cowboy"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", owner.node.name, format % args)

            def _serve(self) -> None:
                owner.serve(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve

        return Handler

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        node = self.node
        if not node.alive:
            handler.close_connection = True
            return
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(
            method=handler.command,
            path=split.path,
            query=dict(parse_qsl(split.query)),
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
        )
        if not request.header(PROBE_HEADER):
            self.world.count_request(node.name, request.method, request.path, node.spec.pod.namespace)
        fault = self.world.take_fault(node, request.path)
        if fault is not None:
            deadline = time.monotonic() + fault.delay
            while node.alive and time.monotonic() < deadline:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if not node.alive or fault.drop:
                handler.close_connection = True
                return
        response = fault_response(node, request.path, fault.status) if fault and fault.status else None
        if response is None:
            try:
                response = self.api.handle(request)
            except Exception:
                log.exception("%s: error serving %s %s", node.name, request.method, request.path)
                response = error_response(500, "INTERNAL_ERROR", "emqxsim internal error")
        if not node.alive:
            handler.close_connection = True
            return
        self._write(handler, response, head_only=request.method == "HEAD")
        for callback in response.after:
            threading.Thread(target=callback, daemon=True).start()

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, response: Response, head_only: bool) -> None:
        handler.send_response(response.status)
        if response.content_type:
            handler.send_header("content-type", response.content_type)
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(response.body)))
        handler.end_headers()
        if not head_only and response.body:
            handler.wfile.write(response.body)
