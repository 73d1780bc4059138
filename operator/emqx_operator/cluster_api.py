"""The operator's only door to the Kubernetes API, and the owner of idempotency.

`apply()` writes an object only when the desired state differs from what was last applied: the
hash of the desired object is kept in an annotation, so a reconcile with nothing changed reads but
never writes. Writes are server-side apply with one field manager. Every request has a timeout and
every write is counted (metrics, the no-churn tests and the benchmarks read the counters).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from emqx_operator.http import Http
from emqx_operator.kubeconn import Connection, login_info
from kubectl_emqx.domain.vocabulary import ANNOTATION_APPLIED_HASH, KIND, OPERATOR_FIELD_MANAGER, kind_path, now_rfc3339
from kubectl_emqx.emqx.api import TransportError

FIELD_MANAGER = OPERATOR_FIELD_MANAGER
HASH_ANNOTATION = ANNOTATION_APPLIED_HASH
REQUEST_TIMEOUT = 15
FANOUT_THREADS = 8  # requests of one pass sent at once (all passes share them; started on demand)
T = TypeVar("T")


@dataclass
class ApiError(Exception):
    status: int
    reason: str
    message: str
    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.status} {self.reason}: {self.message}"

    @property
    def forbidden(self) -> bool:
        return self.status == 403

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def transient(self) -> bool:
        """The API server did not answer, or is overloaded or starting: worth a retry, not a traceback."""
        return self.status == 0 or self.status == 429 or self.status >= 500


def object_hash(obj: dict[str, Any]) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def resource_path(kind: str, namespace: str | None, name: str | None = None, subresource: str = "") -> str:
    return kind_path(kind, namespace, name, subresource)


class ClusterApi:
    def __init__(self, connection: Connection, http: Http | None = None, timeout: float = REQUEST_TIMEOUT) -> None:
        self.connection = connection
        self.http = http or Http()
        self._timeout = timeout
        self._lock = threading.Lock()
        self.writes: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()
        self.dry_runs: Counter[str] = Counter()  # validated by the API server, nothing written
        self._fanout: ThreadPoolExecutor | None = None

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None, http: Http | None = None) -> ClusterApi:
        """In-cluster credentials, else $KUBECONFIG's (or `kubeconfig`'s) current context."""
        if kubeconfig:
            os.environ["KUBECONFIG"] = kubeconfig
        return cls(Connection.from_info(login_info(kubeconfig)), http)

    def request(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
        content_type: str = "application/json", kind: str = "", verb: str = "",
    ) -> Any:
        url = self.connection.server + path + ("?" + urlencode(query) if query else "")
        counter = self.reads if method == "GET" else self.dry_runs if (query or {}).get("dryRun") else self.writes
        with self._lock:
            counter[f"{verb or method} {kind or path.rsplit('/', 2)[-2]}"] += 1
        headers = {"Accept": "application/json", **self.connection.headers()}
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        try:
            reply = self.http.request(method, url, headers, content, self._timeout, self.connection.ssl_context)
        except TransportError as exc:
            raise ApiError(0, "Unreachable", str(exc), method, path) from None
        if reply.status >= 400:
            raise _api_error(reply.status, reply.reason, reply.text, method, path)
        return json.loads(reply.text) if reply.text else None

    def each(self, calls: Sequence[Callable[[], T]]) -> builtins.list[T]:
        """Run independent requests (each a call on this client) at once: a pass waits for one round
        trip instead of one per object. The first runs in the calling thread, the others in a pool
        shared by every worker. Their results in order; once all have ended, the first failure in
        order is raised."""
        if len(calls) <= 1:
            return [call() for call in calls]
        with self._lock:
            if self._fanout is None:
                self._fanout = ThreadPoolExecutor(max_workers=FANOUT_THREADS, thread_name_prefix="api-fanout")
            pool = self._fanout
        futures = [pool.submit(call) for call in calls[1:]]
        results: builtins.list[T] = []
        failure: BaseException | None = None
        try:
            results.append(calls[0]())
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the others have ended
            failure = exc
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the others have ended
                failure = failure or exc
        if failure is not None:
            raise failure
        return results

    # reads -----------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.request("GET", resource_path(kind, namespace, name), kind=kind))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        return self.list_at(kind, namespace, label_selector)[0]

    def list_at(self, kind: str, namespace: str | None,
                label_selector: str | None = None) -> tuple[builtins.list[dict[str, Any]], int | None]:
        """The items (each with its kind) and the list's resourceVersion (None if not a number)."""
        query = {"labelSelector": label_selector} if label_selector else None
        result = self.request("GET", resource_path(kind, namespace), query=query, kind=kind, verb="LIST")
        items = [dict(item, kind=item.get("kind") or kind) for item in result.get("items", [])]
        try:
            version: int | None = int((result.get("metadata") or {})["resourceVersion"])
        except (KeyError, TypeError, ValueError):
            version = None
        return items, version

    def list_pages(self, kind: str, namespace: str | None, label_selector: str,
                   limit: int) -> Iterator[tuple[builtins.list[dict[str, Any]], int | None]]:
        """A LIST `limit` objects per request, page by page: (items, the snapshot's resourceVersion).
        Continue tokens keep one consistent snapshot; an expired token (410) starts over."""
        token = ""
        while True:
            query: dict[str, Any] = {"labelSelector": label_selector, "limit": limit}
            if token:
                query["continue"] = token
            try:
                result = self.request("GET", resource_path(kind, namespace), query=query, kind=kind, verb="LIST")
            except ApiError as exc:
                if exc.status == 410 and token:
                    token = ""
                    continue
                raise
            metadata = result.get("metadata") or {}
            try:
                version: int | None = int(metadata["resourceVersion"])
            except (KeyError, TypeError, ValueError):
                version = None
            yield [dict(item, kind=item.get("kind") or kind) for item in result.get("items", [])], version
            token = metadata.get("continue") or ""
            if not token:
                return

    # writes ----------------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any], existing: dict[str, Any] | None = None,
              dry_run: bool = False) -> dict[str, Any] | None:
        """Server-side apply `obj` unless `existing` (the live object as observed) already carries its
        hash. The object the API server returned if written, else None (`dry_run`: validated by the
        API server, all admission included, not written, and None). Nothing is read first: an object
        observed absent is created by the apply itself, and re-applying what is there changes nothing."""
        meta = obj["metadata"]
        desired_hash = object_hash(obj)
        if existing is not None:
            live_hash = (existing.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
            if live_hash == desired_hash:
                return None
        body = json.loads(json.dumps(obj))
        body["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = desired_hash
        query = {"fieldManager": FIELD_MANAGER, "force": "true", **({"dryRun": "All"} if dry_run else {})}
        written = self.request(
            "PATCH", resource_path(obj["kind"], meta.get("namespace"), meta["name"]), body=body, query=query,
            content_type="application/apply-patch+yaml", kind=obj["kind"],
        )
        return None if dry_run else dict(written or body)

    def create(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        meta = obj["metadata"]
        return dict(self.request("POST", resource_path(obj["kind"], meta.get("namespace")), body=obj,
                                 query={"dryRun": "All"} if dry_run else None, kind=obj["kind"]))

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
                    subresource: str = "") -> dict[str, Any]:
        return dict(self.request(
            "PATCH", resource_path(kind, namespace, name, subresource), body=patch,
            content_type="application/merge-patch+json", kind=kind + (f"/{subresource}" if subresource else ""),
        ))

    def strategic_patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
                        subresource: str = "") -> dict[str, Any]:
        """Strategic merge patch (lists with merge keys, e.g. pod conditions by type, are merged)."""
        return dict(self.request(
            "PATCH", resource_path(kind, namespace, name, subresource), body=patch,
            content_type="application/strategic-merge-patch+json",
            kind=kind + (f"/{subresource}" if subresource else ""),
        ))

    def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> dict[str, Any] | None:
        """Delete an object (if `uid` is given, only that incarnation of it). What the API server
        returned (the object, now with a deletionTimestamp, or a Status) when it was deleted, None
        when it was gone already."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            answer = self.request("DELETE", resource_path(kind, namespace, name), body=body, kind=kind)
        except ApiError as exc:
            if exc.not_found or exc.conflict:
                return None
            raise
        return dict(answer or {"kind": "Status"})

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.merge_patch(KIND, namespace, name, {"status": status}, subresource="status")

    def post_event(
        self, owner: dict[str, Any], reason: str, message: str, event_type: str = "Normal"
    ) -> None:
        meta = owner["metadata"]
        now = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta["uid"],
            },
            "reason": reason,
            "message": message[:1024],
            "type": event_type,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
        }
        self.request("POST", resource_path("Event", meta["namespace"]), body=event, kind="Event")

    def writes_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.writes)

    def reads_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.reads)

    def total_writes(self) -> int:
        with self._lock:
            return sum(self.writes.values())


def _api_error(status: int, reason: str, text: str, method: str, path: str) -> ApiError:
    message = ""
    try:
        body = json.loads(text or "{}")
        message = body.get("message", "")
        reason = body.get("reason", reason)
    except (ValueError, AttributeError):
        message = text
    return ApiError(status, reason, message, method, path)
