"""A small client for EMQX 5's REST API (`/api/v5` on the dashboard listener).

Every call has a timeout; failures become `EmqxApiError` with the HTTP status, EMQX's error code
and message, so callers can report EMQX's own words in conditions and Events.

The HTTP layer is a `Transport`: the plugin uses httpx (imported only when a client is made); the
operator hands in its own, on the aiohttp stack kopf already loads, so the operator process carries
one HTTP library.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

DEFAULT_TIMEOUT = 5.0


@dataclass
class EmqxApiError(Exception):
    status: int | None
    code: str
    message: str
    url: str

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"EMQX API {self.url}: {where} {self.code}: {self.message}".strip()

    @property
    def unauthorized(self) -> bool:
        return self.status == 401

    @property
    def unreachable(self) -> bool:
        return self.status is None


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    text: str
    content: bytes = b""  # the raw body, where the transport keeps it (a backup download needs it)
    headers: dict[str, str] | None = None


class TransportError(Exception):
    """No answer (connection refused, reset, timeout): `kind` names it, e.g. ConnectError."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Transport(Protocol):
    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                 timeout: float) -> Reply: ...


def httpx_transport(client: Any = None) -> tuple[Transport, Callable[[], None]]:
    """A transport over httpx (one client, closed by the returned function when it is ours)."""
    import httpx

    owned = client is None
    session = client or httpx.Client()

    def send(method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float) -> Reply:
        try:
            response = session.request(method, url, headers=headers, content=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise TransportError(type(exc).__name__, str(exc) or "request failed") from exc
        return Reply(response.status_code, response.reason_phrase, response.text, response.content,
                     {k.lower(): v for k, v in response.headers.items()})

    def close() -> None:
        if owned:
            session.close()

    return send, close


class EmqxApi:
    def __init__(
        self, base_url: str, api_key: str, api_secret: str, timeout: float = DEFAULT_TIMEOUT,
        client: Any = None, login: bool = False, transport: Transport | None = None,
    ) -> None:
        """Authenticate with an API key (Basic), or with `login=True` as a dashboard user (Bearer, for
        EMQX before 5.0.14, which has no bootstrap API keys: POST /api/v5/login gives a JWT, reused
        until EMQX answers 401, then renewed once)."""
        self.base_url = base_url.rstrip("/")
        self._user, self._secret, self._login = api_key, api_secret, login
        self._token: str | None = None
        self._timeout = timeout
        if transport is None:
            self._send, self._close = httpx_transport(client)
        else:
            self._send, self._close = transport, (lambda: None)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> EmqxApi:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------------------------

    def _raw(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Reply:
        try:
            return self._send(method, url, headers, body, self._timeout)
        except TransportError as exc:
            raise EmqxApiError(None, exc.kind, str(exc), url) from exc

    def _authorization(self, renew: bool = False) -> str:
        if not self._login:
            return "Basic " + base64.b64encode(f"{self._user}:{self._secret}".encode()).decode()
        if self._token is None or renew:
            body = json.dumps({"username": self._user, "password": self._secret}).encode()
            reply = self._raw("POST", f"{self.base_url}/api/v5/login", {"Content-Type": "application/json"}, body)
            self._token = str(json.loads(reply.text).get("token", "")) if reply.status == 200 else "invalid"
        return f"Bearer {self._token}"

    def _request(
        self, method: str, path: str, *, auth: bool = True, headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None, content: str | None = None, json_body: Any = None,
        content_bytes: bytes | None = None,
    ) -> Reply:
        url = f"{self.base_url}{path}" + (f"?{urlencode(params)}" if params else "")
        sent = dict(headers or {})
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        elif content is not None:
            body = content.encode()
        elif content_bytes is not None:
            body = content_bytes
        if auth:
            sent["Authorization"] = self._authorization()
        reply = self._raw(method, url, sent, body)
        if reply.status == 401 and auth and self._login:
            sent["Authorization"] = self._authorization(renew=True)
            reply = self._raw(method, url, sent, body)
        if reply.status >= 400:
            raise _error_from(reply, url)
        return reply

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return json.loads(self._request(method, path, **kwargs).text)

    # --- endpoints --------------------------------------------------------------------------------------

    def status(self) -> tuple[int, str]:
        """GET /status (no auth): (HTTP status, body text). 503 is returned, not raised."""
        url = f"{self.base_url}/status"
        reply = self._raw("GET", url, {}, None)
        return reply.status, reply.text

    def nodes(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v5/nodes"))

    def node(self, node: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/api/v5/nodes/{quote(node, safe='@')}"))

    def listeners(self) -> list[dict[str, Any]]:
        """GET /api/v5/listeners: every listener of the cluster, with each node's status."""
        return list(self._json("GET", "/api/v5/listeners"))

    def cluster(self) -> dict[str, Any]:
        return dict(self._json("GET", "/api/v5/cluster"))

    def get_config_hocon(self) -> str:
        return self._request("GET", "/api/v5/configs", headers={"Accept": "text/plain"}).text

    def get_config_json(self) -> str:
        """GET /api/v5/configs as JSON (EMQX before 5.1.1 answers only this, for a few roots)."""
        return self._request("GET", "/api/v5/configs", headers={"Accept": "application/json"}).text

    def put_config_hocon(self, hocon: str, mode: str = "merge", ignore_readonly: bool | None = None) -> None:
        params = {"mode": mode}
        if ignore_readonly is not None:
            params["ignore_readonly"] = "true" if ignore_readonly else "false"
        self._request("PUT", "/api/v5/configs", params=params, content=hocon, headers={"Content-Type": "text/plain"})

    def force_leave(self, node: str) -> None:
        self._request("DELETE", f"/api/v5/cluster/{quote(node, safe='@')}/force_leave")

    def evacuation_start(self, node: str, body: dict[str, Any]) -> None:
        try:
            self._request("POST", f"/api/v5/load_rebalance/{quote(node, safe='@')}/evacuation/start",
                          json_body=body)
        except EmqxApiError as exc:
            if exc.status == 400 and "already_started" in exc.message:
                return
            raise

    def evacuation_stop(self, node: str) -> None:
        try:
            self._request("POST", f"/api/v5/load_rebalance/{quote(node, safe='@')}/evacuation/stop")
        except EmqxApiError as exc:
            if exc.status == 400 and "not_started" in exc.message:
                return
            raise

    def rebalance_start(self, coordinator: str, body: dict[str, Any]) -> None:
        """POST /load_rebalance/{coordinator}/start. EMQX's refusals (nothing_to_balance,
        already_started, Nodes unavailable, a bad body) are raised with its words."""
        self._request("POST", f"/api/v5/load_rebalance/{quote(coordinator, safe='@')}/start", json_body=body)

    def rebalance_stop(self, coordinator: str) -> None:
        """POST /load_rebalance/{coordinator}/stop; a rebalance that already ended (not_started) is fine."""
        try:
            self._request("POST", f"/api/v5/load_rebalance/{quote(coordinator, safe='@')}/stop")
        except EmqxApiError as exc:
            if exc.status == 400 and "not_started" in exc.message:
                return
            raise

    def rebalance_global_status(self) -> dict[str, Any]:
        return dict(self._json("GET", "/api/v5/load_rebalance/global_status"))

    # --- data backup (5.4.0+: emqx_mgmt_api_data_backup.erl) -------------------------------------------

    def data_export(self, body: dict[str, Any] | None) -> dict[str, Any]:
        """POST /data/export (a body only from 5.8.2): {filename, size, created_at, node} of the new
        archive, written on the serving node."""
        if body is None:
            return dict(json.loads(self._request("POST", "/api/v5/data/export").text))
        return dict(self._json("POST", "/api/v5/data/export", json_body=body))

    def data_download(self, filename: str, node: str | None = None) -> bytes:
        params = {"node": node} if node else None
        reply = self._request("GET", f"/api/v5/data/files/{quote(filename, safe='')}", params=params)
        return reply.content or reply.text.encode("latin-1")

    def data_upload(self, filename: str, data: bytes) -> None:
        """POST /data/files, multipart with the file in the part named `filename`; stored on the serving node."""
        boundary = "kubectl-emqx-" + base64.b32encode(filename.encode()[:15]).decode().rstrip("=").lower()
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="filename"; filename="{filename}"\r\n'
                "Content-Type: application/gzip\r\n\r\n").encode()
        payload = head + data + f"\r\n--{boundary}--\r\n".encode()
        self._request("POST", "/api/v5/data/files", content_bytes=payload,
                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def data_import(self, filename: str, node: str | None = None) -> None:
        """POST /data/import: synchronous; 204, or 400 naming what failed (what succeeded stays applied)."""
        body: dict[str, Any] = {"filename": filename}
        if node:
            body["node"] = node
        self._request("POST", "/api/v5/data/import", json_body=body)

    def data_delete(self, filename: str, node: str | None = None) -> None:
        params = {"node": node} if node else None
        self._request("DELETE", f"/api/v5/data/files/{quote(filename, safe='')}", params=params)


def _error_from(reply: Reply, url: str) -> EmqxApiError:
    text = reply.text
    code, message = "", text.strip()
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {}
    if isinstance(body, dict):
        if "code" in body:
            code = str(body.get("code", ""))
            message = str(body.get("message", ""))
        elif "errors" in body:
            code = "BAD_CONFIG"
            errors = body["errors"]
            message = errors if isinstance(errors, str) else json.dumps(errors, sort_keys=True)
    return EmqxApiError(reply.status, code, message or reply.reason, url)
