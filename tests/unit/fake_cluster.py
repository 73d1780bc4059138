"""An in-memory stand-in for kubectl_emqx.kube.client.ClusterApi (the plugin's own facade), for unit tests.

It keeps EMQX resources like the API server would for the facade's few calls: resourceVersion on
every write, generation bumped on spec changes, JSON merge patches, resourceVersion preconditions
(409), dry runs. Watches replay scripted changes (`script_watch`), so --wait can be followed
without sleeping.

Time is the fake clock's: `patched_wait()` gives cli/wait.py this clock (monotonic and wall time)
and a tick seam that advances it by the tick instead of sleeping, whenever the watch thread has
nothing to hand over. An empty script is a quiet watch: its window passes as the ticks move the
clock on. `Hold(seconds)` keeps the watch quiet for that long; `Until(predicate)` until the stored
resource satisfies it (e.g. a patch of the next hop arrived).
Integration tests run the real facade against a real API server instead.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubectl_emqx.cli.common import apply_merge_patch
from kubectl_emqx.kube import errors
from kubectl_emqx.kube.api import OperatorDeployment, WatchEvent
from kubectl_emqx.kube.kubeconfig import KubeFlags

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
REAL_SECONDS_CAP = 10.0  # a Hold or Until that never ends fails the test instead of hanging it
TICK_REAL_SECONDS = 0.002


@dataclass(frozen=True)
class Hold:
    """Nothing happens for `seconds` of fake time (the waiting side's ticks move the clock on)."""

    seconds: float


@dataclass(frozen=True)
class Until:
    """Nothing happens until the stored resource satisfies `predicate` (a write from the CLI)."""

    predicate: Callable[[dict[str, Any]], bool]
    what: str = "the resource to change"


def generation_reached(generation: int) -> Until:
    return Until(lambda body: int(body["metadata"].get("generation") or 0) >= generation,
                 f"generation {generation}")


Change = Callable[[dict[str, Any]], None] | dict[str, Any] | str | Hold | Until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        """The wall clock matching `now` (EPOCH + now seconds)."""
        return EPOCH + datetime.timedelta(seconds=self.now)

    def stamp(self, seconds_ago: float = 0) -> str:
        """An RFC 3339 timestamp `seconds_ago` before the fake now."""
        return (self.wall() - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self.ticks = 0  # how often the waiting side found nothing new and ticked
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

    @contextlib.contextmanager
    def patched_wait(self) -> Iterator[None]:
        """cli/wait.py on this fake's clock: monotonic and wall time, and ticks that advance it."""
        from kubectl_emqx.cli import wait

        def next_item(source: queue.Queue[Any], timeout: float) -> Any:
            try:
                return source.get(timeout=TICK_REAL_SECONDS)
            except queue.Empty:
                self.ticks += 1
                self.clock.now += timeout
                raise

        saved = (wait.monotonic, wait.next_item, wait.wall_now)
        wait.monotonic, wait.next_item, wait.wall_now = self.clock, next_item, self.clock.wall  # type: ignore[assignment]
        try:
            yield
        finally:
            wait.monotonic, wait.next_item, wait.wall_now = saved  # type: ignore[assignment]

    def _quiet_until(self, done: Callable[[], bool], what: str) -> None:
        started = time.monotonic()
        while not done():
            if time.monotonic() - started > REAL_SECONDS_CAP:
                raise AssertionError(f"the fake watch waited {REAL_SECONDS_CAP}s (real) for {what}")
            time.sleep(TICK_REAL_SECONDS / 2)

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
            # A quiet window: it ends when the clock has moved on by it (or, if nobody moves the
            # clock any more, after the real-time cap, ending quietly: the test is over).
            end = self.clock.now + timeout_seconds
            started = time.monotonic()
            while self.clock.now < end and time.monotonic() - started < REAL_SECONDS_CAP:
                time.sleep(TICK_REAL_SECONDS / 2)
            return
        while self._script:
            change = self._script.pop(0)
            if isinstance(change, Hold):
                end = self.clock.now + change.seconds
                self._quiet_until(lambda: self.clock.now >= end, f"{change.seconds}s of fake time")  # noqa: B023
                continue
            if isinstance(change, Until):
                key = (namespace, name)
                self._quiet_until(lambda: change.predicate(self.objects[key]), change.what)  # noqa: B023
                continue
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
