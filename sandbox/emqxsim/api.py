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
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import backup, configmodel, schema, versions
from .erlterm import Atom, Binary, Charlist, best_effort_json, format_deep_0p, format_p
from .node import SimNode
from .world import Fault, World

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
                .replace(re.escape("{filename}"), "(?P<filename>[^/]+)")
                .replace(re.escape("{name}"), "(?P<name>[^/]+)")
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
        add(f"{BASE}/api_key", {"GET": self.get_api_keys, "POST": self.create_api_key})
        add(f"{BASE}/api_key/{{name}}", {"DELETE": self.delete_api_key})
        add(f"{BASE}/listeners", {"GET": self.get_listeners})
        backups = backup.DATA_BACKUP_API.open(image)
        add(f"{BASE}/data/export", {"POST": self.data_export}, available=lambda params: backups)
        add(f"{BASE}/data/import", {"POST": self.data_import}, available=lambda params: backups)
        add(f"{BASE}/data/files", {"GET": self.data_files_list, "POST": self.data_upload},
            available=lambda params: backups)
        add(f"{BASE}/data/files/{{filename}}", {"GET": self.data_download, "DELETE": self.data_delete},
            available=lambda params: backups)
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
            f"{BASE}/load_rebalance/{{node}}/start",
            {"POST": self.rebalance_start},
            available=lambda params: rebalance,
        )
        add(
            f"{BASE}/load_rebalance/{{node}}/stop",
            {"POST": self.rebalance_stop},
            available=lambda params: rebalance,
        )
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
                self._advance_rebalances()
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

    def create_api_key(self, request: Request, params: dict[str, str]) -> Response:
        """POST /api_key (emqx_mgmt_api_api_keys.erl@v5.8.9): the secret is shown once, in this answer."""
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error_response(400, "BAD_REQUEST", "Invalid json message received")
        name = str((body or {}).get("name") or "")
        cluster = self.node.cluster
        if not name or any(record["name"] == name for record in cluster.api_keys.values()):
            return error_response(400, "BAD_REQUEST", "Name Already Exists" if name else "name is required")
        api_key, secret = secrets.token_hex(8), secrets.token_urlsafe(24)
        record = {"name": name, "api_key": api_key, "api_secret": secret, "enable": bool(body.get("enable", True)),
                  "role": str(body.get("role") or "administrator"), "desc": str(body.get("desc") or ""),
                  "expired_at": "infinity", "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
        cluster.api_keys[api_key] = record
        self.world.persist_cluster(cluster)
        return json_response(200, dict(record))

    def delete_api_key(self, request: Request, params: dict[str, str]) -> Response:
        cluster = self.node.cluster
        found = next((key for key, record in cluster.api_keys.items() if record["name"] == params["name"]), None)
        if found is None:
            return error_response(404, "NOT_FOUND", "Name NOT FOUND")
        del cluster.api_keys[found]
        self.world.persist_cluster(cluster)
        return Response(204)

    # ------------------------------------------------------------------ data backup (5.4.0+)

    @staticmethod
    def _api_key_caller(request: Request) -> bool:
        return request.header("authorization").lower().startswith("basic ")

    def data_export(self, request: Request, params: dict[str, str]) -> Response:
        node, image = self.node, self.node.spec.image
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error_response(400, "BAD_REQUEST", "Invalid json message received")
        body = body if isinstance(body, dict) and image.at_least(backup.EXPORT_BODY) else {}
        known_sets = sorted([*backup.TABLE_SETS, *backup.OTHER_TABLE_SETS])
        sets = body.get("table_sets")
        if self._api_key_caller(request) and backup.api_key_restricted(image):
            sets = [name for name in (sets if sets is not None else known_sets)
                    if name not in backup.SENSITIVE_TABLE_SETS]
        root_keys = body.get("root_keys")
        if root_keys is not None and image.at_least(backup.EXPORT_ROOT_KEYS_CHECKED):
            unknown = sorted(set(root_keys) - set(node.running_config))
            if unknown:
                return error_response(400, "BAD_REQUEST", "Invalid root keys: " + ", ".join(unknown))
        if sets is not None:
            invalid = sorted(set(sets) - set(known_sets))
            if invalid:
                return error_response(400, "BAD_REQUEST", "Invalid table sets: " + ", ".join(invalid))
        data_dir = self.world.backup_dir(node)
        config = dict(data_dir.cluster_hocon)
        if root_keys is not None:
            config = {key: value for key, value in config.items() if key in set(root_keys)}
        cluster = node.cluster
        tables = {"emqx_app": {name: dict(record) for name, record in cluster.api_keys.items()},
                  "emqx_admin": dict(cluster.admins)}
        wanted = {backup.TABLE_SETS[name] for name in (sets if sets is not None else backup.TABLE_SETS)
                  if name in backup.TABLE_SETS}
        name = backup.file_name()
        content = backup.build_archive(name, image, config, {t: v for t, v in tables.items() if t in wanted})
        now = time.time()
        data_dir.backups[name] = (content, now)
        return json_response(200, self._file_info(name, len(content), now, node.name))

    @staticmethod
    def _file_info(name: str, size: int, ctime: float, node: str) -> dict[str, Any]:
        return {"filename": name, "size": size, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                                             time.gmtime(ctime)),
                "created_at_sec": int(ctime), "node": node}

    def _file_node(self, query_or_body: dict[str, Any]) -> SimNode | Response:
        """safe_parse_node/1: `node` must be a running node (else 400), default the serving node."""
        wanted = query_or_body.get("node")
        if wanted is None:
            return self.node
        found = self.node.cluster.nodes.get(str(wanted))
        if found is None:
            return error_response(400, "BAD_REQUEST", f"Unknown node: {wanted}")
        return found

    def data_files_list(self, request: Request, params: dict[str, str]) -> Response:
        try:
            page, limit = int(request.query.get("page", 1)), int(request.query.get("limit", 100))
        except ValueError:
            return error_response(400, "BAD_REQUEST", "page_limit_invalid")
        files = []
        for node in self.node.cluster.running():
            for name, (content, ctime) in self.world.backup_dir(node).backups.items():
                files.append(self._file_info(name, len(content), ctime, node.name))
        files.sort(key=lambda item: (item["created_at_sec"], item["filename"]), reverse=True)
        start = (page - 1) * limit
        return json_response(200, {"data": files[start:start + limit],
                                   "meta": {"page": page, "limit": limit, "count": len(files),
                                            "hasnext": start + limit < len(files)}})

    def data_download(self, request: Request, params: dict[str, str]) -> Response:
        holder = self._file_node(request.query)
        if isinstance(holder, Response):
            return holder
        found = self.world.backup_dir(holder).backups.get(params["filename"])
        if found is None:
            return error_response(404, "NOT_FOUND", "backup file not found")
        octet = backup.DOWNLOAD_OCTET_STREAM.open(self.node.spec.image)
        return Response(200, found[0], "application/octet-stream" if octet else "application/json")

    def data_delete(self, request: Request, params: dict[str, str]) -> Response:
        holder = self._file_node(request.query)
        if isinstance(holder, Response):
            return holder
        if self.world.backup_dir(holder).backups.pop(params["filename"], None) is None:
            return error_response(404, "NOT_FOUND", "backup file not found")
        return Response(204)

    def data_upload(self, request: Request, params: dict[str, str]) -> Response:
        part = _multipart_file(request, "filename")
        if part is None:
            return error_response(400, "BAD_REQUEST", "Missing required parameter: filename")
        name, content = part
        backups = self.world.backup_dir(self.node).backups
        if name in backups:
            return error_response(400, "BAD_REQUEST", f'Backup file "{name}" already exists')
        backups[name] = (content, time.time())
        try:
            backup.read_archive(name, content, self.node.spec.image)
        except backup.BackupError as exc:
            if backup.INVALID_UPLOAD_DELETED.open(self.node.spec.image):
                backups.pop(name, None)
            return error_response(400, "BAD_REQUEST", str(exc))
        return Response(204)

    def data_import(self, request: Request, params: dict[str, str]) -> Response:
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error_response(400, "BAD_REQUEST", "Invalid json message received")
        if not isinstance(body, dict) or not body.get("filename"):
            return error_response(400, "BAD_REQUEST", "filename: required_field")
        holder = self._file_node(body)
        if isinstance(holder, Response):
            return holder
        name = str(body["filename"])
        image = self.node.spec.image
        if self._api_key_caller(request) and backup.api_key_restricted(image):
            local = self.world.backup_dir(self.node).backups.get(name)
            if local is None:
                return error_response(400, "BAD_REQUEST", "backup file not found")
            try:
                restricted = backup.sensitive_sets(backup.read_archive(name, local[0], image))
            except backup.BackupError as exc:
                return error_response(400, "BAD_REQUEST", str(exc))
            if restricted:
                return error_response(403, "FORBIDDEN", "API key import refused: backup contains restricted "
                                                        "tables: " + ", ".join(restricted))
        cluster = self.node.cluster
        core = holder if holder.role == "core" else (self.node if self.node.role == "core" else
                                                      next(iter(cluster.cores()), None))
        if core is None:
            return error_response(500, "SERVICE_UNAVAILABLE(no core)", "no core node")
        found = self.world.backup_dir(holder).backups.get(name)
        if found is None:
            return error_response(400, "BAD_REQUEST", "backup file not found")
        self.world.backup_dir(core).backups.setdefault(name, found)  # maybe_copy
        try:
            archive = backup.read_archive(name, found[0], core.spec.image)
        except backup.BackupError as exc:
            return error_response(400, "BAD_REQUEST", str(exc))
        roots = backup.merged_roots(core.spec.image, core.running_config, archive.cluster_hocon or {})
        errors = []
        for root, value in list(roots.items()):
            problem = configmodel.check_root_update(core.spec.image, root, value)
            if problem is not None:
                errors.append(f"Failed to import the following config path: \"{root}\", reason: {problem}\n")
                del roots[root]
        rebind = self.world.import_backup(cluster, roots, archive.tables)
        response = Response(204) if not errors else error_response(400, "BAD_REQUEST", "".join(errors))
        response.after.append(self._rebinder(rebind))
        return response

    # ------------------------------------------------------------------ load_rebalance

    def _advance_rebalances(self) -> None:
        """Run the rebalance timers due by now (each coordinator's gen_statem, lazily)."""
        now = self.node.clock.now()
        for node in self.node.cluster.running():
            if node.rebalance is not None and not node.rebalance.advance(now):
                node.rebalance = None
                log.warning("%s: node_rebalance_finished", node.name)

    def availability_check(self, request: Request, params: dict[str, str]) -> Response:
        if self.node.agent_busy():
            return error_response(503, "NODE_EVACUATING", "Node Evacuating")
        return json_response(200, {})

    def global_status(self, request: Request, params: dict[str, str]) -> Response:
        running = self.node.cluster.running()
        evacuations = [node.evacuation_item() for node in running if node.evacuation is not None]
        rebalances = [node.rebalance.status_entry() for node in running if node.rebalance is not None]
        return json_response(200, {"evacuations": evacuations, "purges": [], "rebalances": rebalances})

    def local_status(self, request: Request, params: dict[str, str]) -> Response:
        coordinator = self.node.rebalance_coordinator()
        if self.node.evacuation is None and coordinator is not None and coordinator.rebalance is not None:
            return json_response(200, {"status": "enabled", "process": "rebalance",
                                       **coordinator.rebalance.donor_entry(self.node)})
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
                if name not in cluster.nodes or cluster.nodes[name].agent_busy()
            ]
            if unavailable:
                message = self._rebalance_message("Nodes unavailable: ~p", [Atom(name) for name in unavailable])
                return error_response(400, "NOT_FOUND", message)
            options["migrate_to"] = migrate_to
        if target.evacuation is not None:
            message = self._rebalance_message("error on node ~p: ~p", Atom(target.name), Atom("already_started"))
            return error_response(400, "BAD_REQUEST", message)
        if target.agent_busy():  # a rebalance donor: its eviction agent is taken
            message = self._rebalance_message("error on node ~p: ~p", Atom(target.name), Atom("eviction_agent_busy"))
            return error_response(400, "BAD_REQUEST", message)
        target.start_evacuation(options)
        assert target.evacuation is not None
        self.world.data_dirs[target.data_dir_key].evacuation = target.evacuation.persisted_options()
        return json_response(200, {})

    def _check_rebalance_body(self, body: dict[str, Any]) -> Response | None:
        """fields(rebalance_start): the same checks as the evacuation body, plus the thresholds
        (positive integers; relative ones numbers > 1.0) and `nodes` (a non-empty list)."""
        image = self.node.spec.image
        render = schema.Rendering(image.hocon_version)
        fields = ["wait_health_check", "conn_evict_rate", "sess_evict_rate", "abs_conn_threshold",
                  "rel_conn_threshold", "abs_sess_threshold", "rel_sess_threshold", "wait_takeover", "nodes"]
        if image.at_least(versions.REBALANCE_RPC_TIMEOUTS):
            fields.insert(fields.index("sess_evict_rate"), "conn_evict_rpc_timeout")
            fields.insert(fields.index("abs_conn_threshold"), "sess_evict_rpc_timeout")
        unknown = sorted(set(body) - set(fields))
        if unknown:
            return self._body_error(schema.unknown_fields("root", unknown, fields, list(body), image.hocon_version))
        for name in fields:
            if name not in body:
                continue
            value, path = body[name], f"root.{name}"
            if name in ("conn_evict_rate", "sess_evict_rate", "abs_conn_threshold", "abs_sess_threshold"):
                if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                    return self._body_error(render.type_mismatch(path, "pos_integer()", value, None))
            elif name in ("rel_conn_threshold", "rel_sess_threshold"):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    return self._body_error(render.type_mismatch(path, "number()", value, None))
                if value <= 1.0:
                    return self._body_error(schema.validation_error(path, Atom("returned_false"), value))
            elif name in ("wait_health_check", "wait_takeover", "conn_evict_rpc_timeout", "sess_evict_rpc_timeout"):
                if parse_duration(value) is None:
                    kind = "timeout_duration_ms" if name.endswith("rpc_timeout") else "timeout_duration_s"
                    return self._body_error(
                        render.type_mismatch(path, f"emqx_schema:{kind}()", value, "Not a valid duration"))
            elif name == "nodes":
                if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
                    return self._body_error(render.type_mismatch(path, "[binary()]", value, None))
                if not value:
                    return self._body_error(schema.validation_error(path, Atom("returned_false"), []))
        return None

    def rebalance_start(self, request: Request, params: dict[str, str]) -> Response:
        from .rebalance import DEFAULTS, Rebalance, split

        cluster = self.node.cluster
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error_response(400, "BAD_REQUEST", "Invalid json message received")
        if not isinstance(body, dict):
            return error_response(400, "BAD_REQUEST", "expected a JSON object")
        refused = self._check_rebalance_body(body)
        if refused is not None:
            return refused
        coordinator = cluster.nodes.get(params["node"])
        if coordinator is None:
            return error_response(404, "NOT_FOUND", f"Node not found: {params['node']}")
        opts = dict(DEFAULTS)
        for key, value in body.items():
            if key in ("wait_health_check", "wait_takeover"):
                opts[key] = parse_duration(value)
            elif key.endswith("rpc_timeout"):
                opts[key] = int((parse_duration(value) or 0) * 1000) if isinstance(value, str) else value
            elif key != "nodes":
                opts[key] = value
        names = list(body.get("nodes") or [node.name for node in cluster.running()])
        if "nodes" in body:
            invalid = [name for name in reversed(names) if name not in self.world.known_node_names]
            if invalid:
                message = self._rebalance_message("Invalid nodes: ~p", [Binary(name) for name in invalid])
                return error_response(400, "BAD_REQUEST", message)
            unavailable = [name for name in reversed(names)
                           if name not in cluster.nodes or cluster.nodes[name].agent_busy()]
            if unavailable:
                message = self._rebalance_message("Nodes unavailable: ~p", [Atom(name) for name in unavailable])
                return error_response(400, "NOT_FOUND", message)
        if coordinator.rebalance is not None:
            message = self._rebalance_message("error on node ~p: ~p", Atom(coordinator.name), Atom("already_started"))
            return error_response(400, "BAD_REQUEST", message)
        nodes = [cluster.nodes[name] for name in dict.fromkeys(names) if name in cluster.nodes]
        parts = split(nodes, opts)
        if parts is None:
            message = self._rebalance_message("error on node ~p: ~p", Atom(coordinator.name),
                                              Atom("nothing_to_balance"))
            return error_response(400, "BAD_REQUEST", message)
        donors, recipients = parts
        now = self.node.clock.now()
        coordinator.rebalance = Rebalance(
            coordinator, opts, donors, recipients, "wait_health_check", now + float(opts["wait_health_check"]),
            rpc_timeouts=coordinator.spec.image.at_least(versions.REBALANCE_RPC_TIMEOUTS),
            initial={node.name: node.current_counts() for node in nodes},
        )
        log.warning("%s: node_rebalance_enabled, donors %s, recipients %s", coordinator.name, donors, recipients)
        return json_response(200, {})

    def rebalance_stop(self, request: Request, params: dict[str, str]) -> Response:
        target = self.node.cluster.nodes.get(params["node"])
        if target is None:
            return error_response(404, "NOT_FOUND", f"Node not found: {params['node']}")
        if target.rebalance is None:
            message = self._rebalance_message("error on node ~p: ~p", Atom(target.name), Atom("not_started"))
            return error_response(400, "BAD_REQUEST", message)
        target.rebalance = None
        log.warning("%s: node_rebalance_stopped", target.name)
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


def _multipart_file(request: Request, field: str) -> tuple[str, bytes] | None:
    """(client file name, content) of the multipart/form-data part named `field`."""
    from email.parser import BytesParser
    from email.policy import HTTP

    content_type = request.header("content-type")
    if not content_type.startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
                                                  + request.body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == field and part.get_filename():
            return str(part.get_filename()), bytes(part.get_payload(decode=True) or b"")
    return None


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
    """One node's listening socket and its open connections. It never runs `serve_forever`: the shared
    `_Acceptor` accepts its connections, each then served by a thread of its own (ThreadingMixIn)."""

    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # listen() backlog (socketserver's default is 5; ranch's is 1024)

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves socket.getfqdn(host) (a reverse lookup per listener) for
        # server_name, which nothing here reads.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = self.socket.accept()  # the listening socket is non-blocking; its connections block
        conn.setblocking(True)
        return conn, address

    def accept_pending(self) -> None:
        """Accept what the listener has queued (called when it is readable); each connection gets a thread."""
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                request, client_address = self.get_request()
            except OSError:  # nothing (more) queued, or the listener was closed meanwhile
                return
            try:
                self.process_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)

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


_ACCEPTS_PER_WAKEUP = 16


class _Acceptor:
    """One thread accepting the connections of every node listener of the process: a selector over their
    listening sockets (a thread per listener polling 20 times a second cost more than the nodes did)."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wakeup_recv, self._wakeup_send = socket.socketpair()
        self._wakeup_recv.setblocking(False)
        self._wakeup_send.setblocking(False)
        self._selector.register(self._wakeup_recv, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None

    def add(self, server: _TrackingServer) -> None:
        server.socket.setblocking(False)
        with self._lock:
            self._selector.register(server.socket, selectors.EVENT_READ, server)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="emqxsim-acceptor", daemon=True)
                self._thread.start()
        self._wake()

    def remove(self, server: _TrackingServer) -> None:
        """After this returns nothing more is accepted from `server`'s listener (the caller closes it)."""
        with self._lock:
            try:
                self._selector.unregister(server.socket)
            except (KeyError, ValueError):
                pass

    def _wake(self) -> None:
        try:
            self._wakeup_send.send(b"\0")
        except OSError:  # the buffer is full: a wake-up is pending anyway
            pass

    def _run(self) -> None:
        while True:
            try:
                events = self._selector.select()
            except OSError:  # e.g. a listener closed while being polled: poll again
                time.sleep(0.01)
                continue
            for key, _ in events:
                server = key.data
                if server is None:
                    try:
                        while self._wakeup_recv.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                with self._lock:
                    # unregistered since select() returned (stopped): its listener is closed or closing
                    if self._selector.get_map().get(key.fd) is not key:
                        continue
                    server.accept_pending()


_ACCEPTOR = _Acceptor()


class NodeHttpServer:
    """Binds `<podIP>:<dashboard port>` at construction (OSError if it cannot)."""

    def __init__(self, node: SimNode, world: World):
        self.node = node
        self.world = world
        self.api = NodeApi(node, world)
        self.address = (node.spec.pod.ip, node.spec.dashboard_port)
        self._server = _TrackingServer(self.address, self._handler_class())
        self.closed = False
        _ACCEPTOR.add(self._server)

    def stop(self) -> None:
        """Close the listener at once (new connections are refused) and drop the open connections."""
        self.closed = True
        _ACCEPTOR.remove(self._server)
        self._server.server_close()
        self._server.drop_connections()

    def listening_on(self, host: str, port: int) -> bool:
        """This listener is open on host:port (a connection there reaches it)."""
        return not self.closed and self.address == (host, port)

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
        if not self.node.alive:
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
        fault = self.receive(request)
        response = self.respond(request, fault)
        if response is None:
            handler.close_connection = True
            return
        self._write(handler, response, head_only=request.method == "HEAD")
        for callback in response.after:
            threading.Thread(target=callback, daemon=True).start()

    # A request, once read (the network path above, or a probe answered in-process by the kubelet: kube.py),
    # goes through `receive` then `respond`.

    def receive(self, request: Request) -> Fault | None:
        """Count the request (probes are not counted) and take the fault injected on its path, if any."""
        node = self.node
        if not request.header(PROBE_HEADER):
            self.world.count_request(node.name, request.method, request.path, node.spec.pod.namespace)
        return self.world.take_fault(node, request.path)

    def respond(self, request: Request, fault: Fault | None, patience: float | None = None) -> Response | None:
        """The response, or None when the connection ends without one: the node stopped meanwhile, the
        fault drops it, or (`patience`: the client's timeout, seconds) the fault's delay outlasts the client.
        Blocks for the fault's delay."""
        node = self.node
        if fault is not None:
            delay = fault.delay if patience is None else min(fault.delay, patience)
            deadline = time.monotonic() + delay
            while node.alive and time.monotonic() < deadline:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if not node.alive or fault.drop or (patience is not None and fault.delay >= patience):
                return None
        response = fault_response(node, request.path, fault.status) if fault and fault.status else None
        if response is None:
            try:
                response = self.api.handle(request)
            except Exception:
                log.exception("%s: error serving %s %s", node.name, request.method, request.path)
                response = error_response(500, "INTERNAL_ERROR", "emqxsim internal error")
        if not node.alive:
            return None
        return response

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
