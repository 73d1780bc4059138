"""EMQX API clients, kept across passes on the operator's one HTTP stack (http.py).

One client per resource, address and credentials (for dashboard logins, the token lives in it);
`forget()` drops a resource's clients when it is gone. observe.py reads through them and act.py
writes through them; nothing else talks to EMQX.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from emqx_operator.http import Http
from kubectl_emqx.emqx.api import EmqxApi


@dataclass(frozen=True)
class Access:
    """How to reach one cluster's EMQX: where, and as whom."""

    namespace: str
    name: str
    base_url: str
    user: str
    secret: str
    login: bool  # dashboard login (Bearer) instead of an API key (Basic), for EMQX before 5.0.14


class ClientPool:
    def __init__(self, timeout: float, http: Http | None = None) -> None:
        self._timeout = timeout
        self._http = http
        self._clients: dict[Access, EmqxApi] = {}
        self._lock = threading.Lock()

    def client(self, access: Access) -> EmqxApi:
        with self._lock:
            if self._http is None:
                self._http = Http()
            client = self._clients.get(access)
            if client is None:
                for stale in [a for a in self._clients
                              if (a.namespace, a.name, a.base_url) == (access.namespace, access.name, access.base_url)]:
                    del self._clients[stale]  # same address, other credentials
                client = self._clients[access] = EmqxApi(access.base_url, access.user, access.secret,
                                                         timeout=self._timeout, login=access.login,
                                                         transport=self._http.transport())
            return client

    def drop(self, access: Access) -> None:
        with self._lock:
            self._clients.pop(access, None)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            for access in [a for a in self._clients if (a.namespace, a.name) == (namespace, name)]:
                del self._clients[access]

    def __len__(self) -> int:
        return len(self._clients)
