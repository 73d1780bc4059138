"""The operator's one HTTP stack: aiohttp (which kopf loads anyway), behind a synchronous call.

Reconcile passes run in worker threads; they reach the Kubernetes API (cluster_api.py) and EMQX
(emqx_clients.py) through `Http.request()`, which runs the request on an event loop of its own in
one daemon thread, with a pooled session per TLS setting. No second HTTP library (httpx, urllib3,
the kubernetes client) is loaded into the operator process.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

import aiohttp

from kubectl_emqx.emqx.api import Reply, TransportError


class Http:
    def __init__(self, connections: int = 64) -> None:
        self._connections = connections
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emqx-operator-http", daemon=True)
        self._thread.start()
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float,
                tls: ssl.SSLContext | None = None) -> Reply:
        future = asyncio.run_coroutine_threadsafe(self._request(method, url, headers, body, timeout, tls), self._loop)
        return future.result(timeout + 10)

    def transport(self, tls: ssl.SSLContext | None = None) -> Any:
        """A kubectl_emqx.emqx.api.Transport on this stack."""

        def send(method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float) -> Reply:
            return self.request(method, url, headers, body, timeout, tls)

        return send

    async def _request(self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float,
                       tls: ssl.SSLContext | None) -> Reply:
        session = self._session(tls)
        try:
            async with session.request(method, url, headers=headers, data=body, ssl=tls if tls is not None else False,
                                       timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                text = await response.text(errors="replace")
                return Reply(response.status, response.reason or "", text)
        except TimeoutError as exc:
            raise TransportError("Timeout", f"no answer within {timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(type(exc).__name__, str(exc) or type(exc).__name__) from exc

    def _session(self, tls: ssl.SSLContext | None) -> aiohttp.ClientSession:
        key = id(tls)
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ssl=tls if tls is not None else False)
            session = self._sessions[key] = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return session

    def close(self) -> None:
        async def close_all() -> None:
            for session in self._sessions.values():
                await session.close()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
