"""What the CLI needs from Kubernetes, independent of the transport serving it: the session
protocols (ClusterReader for the read verbs, ClusterApi for every verb, ManifestApi for install),
the plain records they return, and the parser of a watch stream's lines that both transports share.

client.py (the `kubernetes` client) implements all three; rest.py (http.client) implements
ClusterReader; unit tests provide in-memory implementations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from kubectl_emqx.kube import errors


class WatchEvent(NamedTuple):
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]


@dataclass(frozen=True)
class OperatorDeployment:
    namespace: str
    name: str
    version: str | None  # the app.kubernetes.io/version label, None when unlabelled


class ClusterReader(Protocol):
    """The reads `status`, `list` and name completion need: what rest.RestClusterApi serves without
    importing the client. Every ClusterApi is one."""

    namespace: str

    def get_emqx(self, name: str, namespace: str) -> dict[str, Any]: ...

    def list_emqx(self, namespace: str | None) -> list[dict[str, Any]]: ...

    def watch_emqx(
        self, name: str, namespace: str, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]: ...

    def list_events(self, name: str, namespace: str) -> list[dict[str, Any]]: ...


class ClusterApi(Protocol):
    """What the CLI needs from Kubernetes. Unit tests provide an in-memory implementation."""

    namespace: str  # --namespace, else the context's namespace, else "default"

    def get_emqx(self, name: str, namespace: str) -> dict[str, Any]: ...

    def list_emqx(self, namespace: str | None) -> list[dict[str, Any]]:
        """namespace None lists every namespace."""
        ...

    def create_emqx(self, body: dict[str, Any], namespace: str, *, dry_run: bool = False) -> dict[str, Any]: ...

    def patch_emqx(
        self, name: str, namespace: str, patch: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """JSON merge patch. With metadata.resourceVersion in the patch a stale write raises Conflict."""
        ...

    def delete_emqx(self, name: str, namespace: str) -> None: ...

    def watch_emqx(
        self, name: str, namespace: str, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]:
        """Changes to one EMQX resource after resource_version, until the server ends the watch.

        Raises WatchExpired when resource_version is too old (re-read, then watch again)."""
        ...

    def list_events(self, name: str, namespace: str) -> list[dict[str, Any]]: ...

    def operator_deployments(self) -> list[OperatorDeployment]: ...


class ManifestApi(Protocol):
    """Generic objects for `install`/`uninstall` (the kinds in vocabulary.KIND_PATHS), by server-side apply."""

    def apply_object(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list_objects(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """namespace None lists a namespaced kind in every namespace."""
        ...

    def delete_object(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """False when it was already gone."""
        ...


def watch_event(line: str | bytes, namespace: str, name: str) -> WatchEvent | None:
    """One line of a watch stream: an event, None for a keep-alive blank, or the server's error raised."""
    if not line.strip():
        return None
    event = json.loads(line)
    if event.get("type") == "ERROR":
        raise errors.from_status(event.get("object") or {}, "watch", namespace, name)
    return WatchEvent(event["type"], event["object"])
