"""A small client for EMQX 5's REST API (`/api/v5` on the dashboard listener).

Every call has a timeout; failures become `EmqxApiError` with the HTTP status, EMQX's error code
and message, so callers can report EMQX's own words in conditions and Events.
"""

from __future__ import annotations

import json
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


class EmqxApi:
    def __init__(
        self, base_url: str, api_key: str, api_secret: str, timeout: float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = httpx.BasicAuth(api_key, api_secret)
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

    def cluster(self) -> dict[str, Any]:
        return dict(self._request("GET", "/api/v5/cluster").json())

    def get_config_hocon(self) -> str:
        return self._request("GET", "/api/v5/configs", headers={"Accept": "text/plain"}).text

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
