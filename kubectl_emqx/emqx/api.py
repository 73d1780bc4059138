"""A small client for EMQX 5's REST API (`/api/v5` on the dashboard listener).

Every call has a timeout; failures become `EmqxApiError` with the HTTP status, EMQX's error code
and message, so callers can report EMQX's own words in conditions and Events.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

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


class _BearerLogin(httpx.Auth):
    """Dashboard-user login for EMQX before 5.0.14, which has no bootstrap API keys.

    POST /api/v5/login gives a JWT; it is reused until EMQX answers 401, then renewed once.
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self._login_url = f"{base_url}/api/v5/login"
        self._username = username
        self._password = password
        self._token: str | None = None

    def _login_request(self) -> httpx.Request:
        return httpx.Request("POST", self._login_url, json={"username": self._username, "password": self._password})

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None:
            login = yield self._login_request()
            if login.status_code != 200:
                login.read()
                request.headers["Authorization"] = "Bearer invalid"
                yield request
                return
            login.read()
            self._token = str(login.json().get("token", ""))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            login = yield self._login_request()
            login.read()
            if login.status_code == 200:
                self._token = str(login.json().get("token", ""))
                request.headers["Authorization"] = f"Bearer {self._token}"
                yield request


class EmqxApi:
    def __init__(
        self, base_url: str, api_key: str, api_secret: str, timeout: float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None, login: bool = False,
    ) -> None:
        """Authenticate with an API key (Basic), or with `login=True` as a dashboard user (Bearer)."""
        self.base_url = base_url.rstrip("/")
        self._auth: httpx.Auth = (
            _BearerLogin(self.base_url, api_key, api_secret) if login else httpx.BasicAuth(api_key, api_secret)
        )
        self._timeout = timeout
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> EmqxApi:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(
        self, method: str, path: str, *, auth: bool = True, headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None, content: str | None = None, json_body: Any = None,
    ) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._client.request(
                method, url, auth=self._auth if auth else None, headers=headers, params=params,
                content=content, json=json_body, timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise EmqxApiError(None, type(exc).__name__, str(exc) or "request failed", url) from exc
        if response.status_code >= 400:
            raise _error_from(response, url)
        return response

    def status(self) -> tuple[int, str]:
        """GET /status (no auth): (HTTP status, body text). 503 is returned, not raised."""
        try:
            response = self._client.get(f"{self.base_url}/status", timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise EmqxApiError(None, type(exc).__name__, str(exc) or "request failed",
                               f"{self.base_url}/status") from exc
        return response.status_code, response.text

    def nodes(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/api/v5/nodes").json())

    def node(self, node: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/api/v5/nodes/{quote(node, safe='@')}").json())

    def listeners(self) -> list[dict[str, Any]]:
        """GET /api/v5/listeners: every listener of the cluster, with each node's status."""
        return list(self._request("GET", "/api/v5/listeners").json())

    def cluster(self) -> dict[str, Any]:
        return dict(self._request("GET", "/api/v5/cluster").json())

    def get_config_hocon(self) -> str:
        return self._request("GET", "/api/v5/configs", headers={"Accept": "text/plain"}).text

    def get_config_json(self) -> str:
        """GET /api/v5/configs as JSON (EMQX before 5.1.1 answers only this, for a few roots)."""
        return self._request("GET", "/api/v5/configs", headers={"Accept": "application/json"}).text

    def put_config_hocon(self, hocon: str, mode: str = "merge", ignore_readonly: bool | None = None) -> None:
        params = {"mode": mode}
        if ignore_readonly is not None:
            params["ignore_readonly"] = "true" if ignore_readonly else "false"
        self._request(
            "PUT", "/api/v5/configs", params=params, content=hocon, headers={"Content-Type": "text/plain"}
        )

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

    def rebalance_global_status(self) -> dict[str, Any]:
        return dict(self._request("GET", "/api/v5/load_rebalance/global_status").json())


def _error_from(response: httpx.Response, url: str) -> EmqxApiError:
    text = response.text
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
    return EmqxApiError(response.status_code, code, message or response.reason_phrase, url)
