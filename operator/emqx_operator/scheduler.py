"""Level-based work queue: one reconcile at a time per EMQX resource, coalescing triggers.

Watch events (the EMQX resource, its pods) only say "look again at namespace/name". A reconcile
returns how long until it wants to look again (a rollout in progress asks for seconds, a settled
cluster for the resync period) or `FORGET` when the resource is gone. Nothing here writes to the
API or keeps progress: all of that lives in the resource's status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

Key = tuple[str, str]
FORGET: Final = -1.0

log = logging.getLogger("emqx_operator.scheduler")


class Scheduler:
    def __init__(
        self, reconcile: Callable[[str, str], float], workers: int = 4, error_backoff: float = 5.0,
        max_backoff: float = 120.0,
    ) -> None:
        self._reconcile = reconcile
        self._due: dict[Key, float] = {}
        self._running: set[Key] = set()
        self._retrigger: set[Key] = set()
        self._failures: dict[Key, int] = {}
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(workers)
        self._error_backoff = error_backoff
        self._max_backoff = max_backoff
        self._tasks: set[asyncio.Task[None]] = set()
        self.enabled = True
        self.last_loop = time.monotonic()
        self.reconciles = 0
        self.errors = 0

    def trigger(self, namespace: str, name: str, delay: float = 0.0) -> None:
        key = (namespace, name)
        if key in self._running:
            self._retrigger.add(key)
            return
        due = time.monotonic() + delay
        if key not in self._due or due < self._due[key]:
            self._due[key] = due
            self._wake.set()

    def set_enabled(self, enabled: bool) -> None:
        """Start or stop taking work (leader election); triggers queued meanwhile are kept."""
        self.enabled = enabled
        self._wake.set()

    def known(self) -> list[Key]:
        return sorted(set(self._due) | self._running)

    async def run(self) -> None:
        while True:
            self.last_loop = time.monotonic()
            now = time.monotonic()
            ready = [k for k, due in self._due.items() if due <= now] if self.enabled else []
            for key in ready:
                del self._due[key]
                self._running.add(key)
                await self._slots.acquire()
                task = asyncio.create_task(self._work(key))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            waits = [due - now for due in self._due.values() if due > now]
            timeout = min(waits) if waits and self.enabled else 5.0
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, min(timeout, 5.0)))
            except TimeoutError:
                pass

    async def _work(self, key: Key) -> None:
        namespace, name = key
        delay: float
        try:
            delay = await asyncio.to_thread(self._reconcile, namespace, name)
            self._failures.pop(key, None)
        except Exception as exc:  # a bug or an unexpected API failure must not stop the queue
            self.errors += 1
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(self._error_backoff * 2 ** (failures - 1), self._max_backoff)
            if getattr(exc, "transient", False):  # the API server away or overloaded: one line, no traceback
                log.warning("reconcile of %s/%s failed: %s; retrying in %.0fs", namespace, name, exc, delay)
            else:
                log.exception("reconcile of %s/%s failed; retrying in %.0fs", namespace, name, delay)
        finally:
            self.reconciles += 1
            self._running.discard(key)
            self._slots.release()
        if key in self._retrigger:
            self._retrigger.discard(key)
            delay = 0.0
        if delay != FORGET:
            self.trigger(namespace, name, delay)
        self._wake.set()
