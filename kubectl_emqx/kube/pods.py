"""Pods and their logs through the full client session, for the day-2 verbs (`dashboard`, `logs`,
`report`): list and watch pods by label, follow the pod set across relists, stream a container's log.

Built on kube.client.KubernetesClusterApi (its ApiClient, flags and error translation: one
`session_parts` reaches into it), so credentials, impersonation and errors are the same as every
other verb's. Requests go through the client's urllib3 pool; streaming verbs hold one connection per
followed pod, so `PodApi(api, streams=N)` widens the pool first (a full pool would drop connections
with a logged warning).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kubectl_emqx.domain.vocabulary import kind_path
from kubectl_emqx.kube import errors
from kubectl_emqx.kube.client import DEFAULT_REQUEST_TIMEOUT, WatchEvent, watch_event

if TYPE_CHECKING:
    from kubectl_emqx.kube.client import KubernetesClusterApi

WATCH_SECONDS = 300


def session_parts(api: KubernetesClusterApi) -> tuple[Any, float | None]:
    """The session's kubernetes ApiClient and request timeout."""
    return api.api_client, api.request_timeout


class LogStream:
    """Lines of one container's log (text, without the newline). `close()` may be called from any
    thread: it shuts the socket down (which wakes a reader blocked in recv, where closing the
    response would wait for the reader's buffer lock), and the reading thread releases the rest."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = False
        self._released = False
        self._finished = False

    def __iter__(self) -> Iterator[str]:
        pending = b""
        try:
            for chunk in self._response.stream(64 * 1024, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            self._finished = True
        except Exception:  # noqa: BLE001 - a cut or closed stream ends like a finished one
            if not self._closed:
                raise
            return
        finally:
            self._release()
        if pending:
            yield pending.decode("utf-8", "replace")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is None:
            self._release()
            return
        import socket

        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            if self._finished and not self._closed:
                self._response.release_conn()  # read to the end: the connection may carry another request
            else:
                self._response.close()
        except Exception:  # noqa: BLE001 - best effort
            pass


class PodApi:
    def __init__(self, api: KubernetesClusterApi, streams: int = 0) -> None:
        self.api = api
        self.namespace = api.namespace
        self._client, self._timeout = session_parts(api)
        if streams:
            _widen_pool(self._client, streams)

    def _get(self, path: str, query: dict[str, Any], verb: str, namespace: str | None, name: str,
             resource: str, read_timeout: float | None | tuple[float, float | None] = None,
             stream: bool = False) -> Any:
        from urllib.parse import urlencode

        url = path + ("?" + urlencode(query) if query else "")
        timeout = read_timeout if read_timeout is not None else self._timeout
        with self.api.translated(verb, namespace, name, resource):
            response = self._client.call_api(
                url, "GET", header_params={"Accept": "application/json" if not stream else "*/*"},
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout,
            )
        return response[0] if isinstance(response, tuple) else response

    def _json(self, path: str, query: dict[str, Any], verb: str, namespace: str | None, name: str,
              resource: str) -> dict[str, Any]:
        import json

        raw = self._get(path, query, verb, namespace, name, resource)
        data = raw.data
        return dict(json.loads(data)) if data else {}

    # --- pods ----------------------------------------------------------------------------------

    def list_pods(self, namespace: str, selector: str) -> tuple[list[dict[str, Any]], str]:
        """(pods, the list's resourceVersion)."""
        result = self._json(kind_path("Pod", namespace), {"labelSelector": selector}, "list", namespace, "", "pods")
        return list(result.get("items") or []), str((result.get("metadata") or {}).get("resourceVersion", ""))

    def watch_pods(self, namespace: str, selector: str, resource_version: str,
                   timeout_seconds: int = WATCH_SECONDS) -> Iterator[WatchEvent]:
        """Pod changes after resource_version until the server ends the watch; WatchExpired when
        the version is too old."""
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        query = {"labelSelector": selector, "watch": "true", "resourceVersion": resource_version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": timeout_seconds}
        connect = self._timeout or DEFAULT_REQUEST_TIMEOUT
        response = self._get(kind_path("Pod", namespace), query, "watch", namespace, "", "pods",
                             read_timeout=(connect, timeout_seconds + connect), stream=True)
        pending = b""
        try:
            for chunk in response.stream(64 * 1024, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    event = watch_event(line, namespace, "")
                    if event is not None:
                        yield event
        except (ReadTimeoutError, ProtocolError, OSError):
            return
        finally:
            response.close()
            response.release_conn()

    def follow_pods(self, namespace: str, selector: str, stop: threading.Event) -> Iterator[WatchEvent]:
        """Every pod matching `selector` as ADDED, then every change, until `stop` is set; a relist
        (expired watch) yields what changed meanwhile, DELETED included. BOOKMARKs are not passed on."""
        known: dict[str, dict[str, Any]] = {}
        while not stop.is_set():
            pods, version = self.list_pods(namespace, selector)
            current = {pod["metadata"]["name"]: pod for pod in pods}
            for name, pod in known.items():
                if name not in current:
                    yield WatchEvent("DELETED", pod)
            for name, pod in current.items():
                if name not in known:
                    yield WatchEvent("ADDED", pod)
                elif _version(known[name]) != _version(pod):
                    yield WatchEvent("MODIFIED", pod)
            known = current
            while not stop.is_set():
                try:
                    for event in self.watch_pods(namespace, selector, version):
                        if stop.is_set():
                            return
                        if event.type == "BOOKMARK":
                            version = _version(event.object) or version
                            continue
                        name = event.object["metadata"]["name"]
                        version = _version(event.object) or version
                        if event.type == "DELETED":
                            known.pop(name, None)
                        else:
                            known[name] = event.object
                        yield event
                except errors.WatchExpired:
                    break  # relist

    # --- logs ----------------------------------------------------------------------------------

    def log(self, namespace: str, pod: str, *, container: str, follow: bool = False,
            since_seconds: int | None = None, tail_lines: int | None = None, previous: bool = False,
            timestamps: bool = True) -> LogStream:
        query: dict[str, Any] = {"container": container}
        if follow:
            query["follow"] = "true"
        if since_seconds is not None:
            query["sinceSeconds"] = max(1, int(since_seconds))
        if tail_lines is not None and tail_lines >= 0:
            query["tailLines"] = tail_lines
        if previous:
            query["previous"] = "true"
        if timestamps:
            query["timestamps"] = "true"
        connect = self._timeout or DEFAULT_REQUEST_TIMEOUT
        # Following waits for lines as long as it takes; a finished log must come within the timeout.
        read_timeout: tuple[float, float | None] = (connect, None if follow else self._timeout)
        path = f"{kind_path('Pod', namespace, pod)}/log"
        response = self._get(path, query, "get", namespace, pod, "pods/log", read_timeout=read_timeout, stream=True)
        return LogStream(response)


def _version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _widen_pool(api_client: Any, streams: int) -> None:
    """Let the client's urllib3 pool keep `streams` concurrent connections (plus headroom)."""
    manager = api_client.rest_client.pool_manager
    size = max(int(manager.connection_pool_kw.get("maxsize") or 1), streams + 4)
    manager.connection_pool_kw["maxsize"] = size
    manager.clear()  # pools made before this keep their size; drop them (idle connections only)
