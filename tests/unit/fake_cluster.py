"""An in-memory stand-in for kubectl_emqx.kube.client.ClusterApi (the plugin's own facade), for unit tests.

It keeps EMQX resources like the API server would for the facade's few calls: resourceVersion on
every write, generation bumped on spec changes, JSON merge patches, resourceVersion preconditions
(409), dry runs. Watches replay scripted changes (`script_watch`), so --wait can be followed
without sleeping; an empty script ends the watch window and advances the fake clock by it.
Integration tests run the real facade against a real API server instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from kubectl_emqx.cli.common import apply_merge_patch
from kubectl_emqx.kube import errors
from kubectl_emqx.kube.api import OperatorDeployment, WatchEvent
from kubectl_emqx.kube.kubeconfig import KubeFlags

Change = Callable[[dict[str, Any]], None] | dict[str, Any] | str


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCluster:
    def __init__(self, namespace: str = "default") -> None:
        self.namespace = namespace
        self.context_namespace = namespace
        self.flags: KubeFlags | None = None
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.operators: list[OperatorDeployment] = []
        self.writes: list[tuple[str, str, Any]] = []  # (verb, name, body or patch)
        self.failures: dict[str, errors.PluginError] = {}  # method name -> error to raise
        self.conflicts_before_patch = 0
        self.clock = FakeClock()
        self._script: list[Change] = []
        self._resource_version = 100

    # --- test set-up ------------------------------------------------------------------------

    def connect(self, flags: KubeFlags) -> FakeCluster:
        """kube.connect for AppState: the namespace follows -n, as with a real session."""
        self.flags = flags
        self.namespace = flags.namespace or self.context_namespace
        return self

    def add(self, body: dict[str, Any], events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        stored = copy.deepcopy(body)
        metadata = stored.setdefault("metadata", {})
        metadata.setdefault("namespace", self.namespace)
        metadata.setdefault("generation", 1)
        metadata.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        metadata["resourceVersion"] = self._next_version()
        self.objects[(metadata["namespace"], metadata["name"])] = stored
        if events is not None:
            self.events[(metadata["namespace"], metadata["name"])] = events
        return copy.deepcopy(stored)

    def script_watch(self, *changes: Change) -> None:
        """Changes the next watches deliver, in order: a status dict (merged into .status), a
        function editing the stored body, or "DELETE"."""
        self._script.extend(changes)

    def stored(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.objects[(namespace or self.namespace, name)]

    # --- the ClusterApi facade --------------------------------------------------------------

    def _maybe_fail(self, method: str) -> None:
        if method in self.failures:
            raise self.failures[method]

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def get_emqx(self, name: str, namespace: str) -> dict[str, Any]:
        self._maybe_fail("get_emqx")
        try:
            return copy.deepcopy(self.objects[(namespace, name)])
        except KeyError:
            raise errors.NotFound(name, namespace) from None

    def list_emqx(self, namespace: str | None) -> list[dict[str, Any]]:
        self._maybe_fail("list_emqx")
        return [
            copy.deepcopy(body)
            for (item_namespace, _), body in sorted(self.objects.items())
            if namespace is None or item_namespace == namespace
        ]

    def create_emqx(self, body: dict[str, Any], namespace: str, *, dry_run: bool = False) -> dict[str, Any]:
        self._maybe_fail("create_emqx")
        name = body["metadata"]["name"]
        if (namespace, name) in self.objects:
            raise errors.AlreadyExists(name, namespace)
        created = copy.deepcopy(body)
        created["metadata"]["namespace"] = namespace
        if dry_run:
            return created
        self.writes.append(("create", name, copy.deepcopy(body)))
        return self.add(created)

    def patch_emqx(
        self, name: str, namespace: str, patch: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        self._maybe_fail("patch_emqx")
        current = self.get_emqx(name, namespace)
        wanted_version = (patch.get("metadata") or {}).get("resourceVersion")
        if self.conflicts_before_patch:
            self.conflicts_before_patch -= 1
            self._touch(name, namespace)  # someone else wrote meanwhile
            raise errors.Conflict("conflict: the object has been modified")
        if wanted_version is not None and wanted_version != current["metadata"]["resourceVersion"]:
            raise errors.Conflict("conflict: the object has been modified")
        updated = apply_merge_patch(current, patch)
        if dry_run:
            return updated
        if updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = current["metadata"]["generation"] + 1
        updated["metadata"]["resourceVersion"] = self._next_version()
        self.objects[(namespace, name)] = updated
        self.writes.append(("patch", name, copy.deepcopy(patch)))
        return copy.deepcopy(updated)

    def delete_emqx(self, name: str, namespace: str) -> None:
        self._maybe_fail("delete_emqx")
        self.get_emqx(name, namespace)
        self.writes.append(("delete", name, None))

    def watch_emqx(
        self, name: str, namespace: str, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]:
        self._maybe_fail("watch_emqx")
        if not self._script:
            self.clock.now += timeout_seconds  # nothing happened during the whole window
            return
        while self._script:
            change = self._script.pop(0)
            if change == "DELETE":
                body = self.objects.pop((namespace, name))
                yield WatchEvent("DELETED", copy.deepcopy(body))
                return
            body = self.objects[(namespace, name)]
            if callable(change):
                change(body)
            elif isinstance(change, dict):
                body["status"] = apply_merge_patch(body.get("status") or {}, change)
            body["metadata"]["resourceVersion"] = self._next_version()
            self.clock.now += 1
            yield WatchEvent("MODIFIED", copy.deepcopy(body))

    def list_events(self, name: str, namespace: str) -> list[dict[str, Any]]:
        self._maybe_fail("list_events")
        return copy.deepcopy(self.events.get((namespace, name), []))

    def operator_deployments(self) -> list[OperatorDeployment]:
        self._maybe_fail("operator_deployments")
        return list(self.operators)

    def _touch(self, name: str, namespace: str) -> None:
        self.objects[(namespace, name)]["metadata"]["resourceVersion"] = self._next_version()
