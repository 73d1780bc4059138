"""Level-based work queue: one reconcile at a time per EMQX resource, coalescing triggers.

Watch events (the EMQX resource, its pods) only say "look again at namespace/name". A reconcile
returns how long until it wants to look again (a rollout in progress asks for seconds, a settled
cluster for the resync period) or `FORGET` when the resource is gone. Nothing here writes to the
API or keeps progress: all of that lives in the resource's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

Key = tuple[str, str]
FORGET: Final = -1.0

log = logging.getLogger("emqx_operator.scheduler")


class Scheduler:
    """`workers` passes run at once, each on a thread of the scheduler's own pool (a pass blocks on
    the API server and EMQX). `on_idle` runs once the queue has been quiet for `idle_after` seconds
    after some passes (the operator gives freed memory back then), never twice without a pass between."""

    def __init__(
        self, reconcile: Callable[[str, str], float], workers: int = 8, error_backoff: float = 5.0,
        max_backoff: float = 120.0, on_idle: Callable[[], None] | None = None, idle_after: float = 10.0,
    ) -> None:
        self._reconcile = reconcile
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._on_idle = on_idle
        self._idle_after = idle_after
        self._passes_since_idle = 0
        self._last_finished = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop run() runs on, and its thread
        self._loop_thread = 0
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
        """Look at namespace/name again in `delay` seconds. Safe from any thread: kopf runs the
        operator's sync handlers on its executor's threads, while the queue belongs to the loop that
        runs `run()` (a trigger from elsewhere is handed to that loop)."""
        if self._off_loop():
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop closed: the operator is stopping
                self._loop.call_soon_threadsafe(self._trigger_at, namespace, name, time.monotonic() + delay)
            return
        self._trigger_at(namespace, name, time.monotonic() + delay)

    def _off_loop(self) -> bool:
        return self._loop is not None and threading.get_ident() != self._loop_thread

    def _trigger_at(self, namespace: str, name: str, due: float) -> None:
        key = (namespace, name)
        if key in self._running:
            self._retrigger.add(key)
            return
        if key not in self._due or due < self._due[key]:
            self._due[key] = due
            self._wake.set()

    def set_enabled(self, enabled: bool) -> None:
        """Start or stop taking work (leader election); triggers queued meanwhile are kept."""
        self.enabled = enabled
        if self._off_loop():
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)
        else:
            self._wake.set()

    def known(self) -> list[Key]:
        return sorted(set(self._due) | self._running)

    def bind(self) -> None:
        """Make the running loop the queue's owner: from now on triggers from other threads are
        handed to it. run() binds too; call this first when handler threads may trigger before
        run() has taken its first step."""
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()

    async def run(self) -> None:
        self.bind()
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
            if self.idle_due(now):
                self._passes_since_idle = 0
                assert self._on_idle is not None
                try:
                    await asyncio.get_running_loop().run_in_executor(self._executor, self._on_idle)
                except Exception:  # housekeeping must never end the loop
                    log.exception("the idle hook failed")
            waits = [due - now for due in self._due.values() if due > now]
            timeout = min(waits) if waits and self.enabled else 5.0
            if self._on_idle is not None and self._passes_since_idle and not self._running:
                timeout = min(timeout, self._last_finished + self._idle_after - now)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, min(timeout, 5.0)))
            except TimeoutError:
                pass

    def idle_due(self, now: float) -> bool:
        """Passes have run since the last idle call, none runs now, the last ended `idle_after` ago."""
        return (self._on_idle is not None and self._passes_since_idle > 0 and not self._running
                and now - self._last_finished >= self._idle_after)

    async def _work(self, key: Key) -> None:
        namespace, name = key
        delay: float
        try:
            delay = await asyncio.get_running_loop().run_in_executor(self._executor, self._reconcile, namespace, name)
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
            self._passes_since_idle += 1
            self._last_finished = time.monotonic()
            self._running.discard(key)
            self._slots.release()
        if key in self._retrigger:
            self._retrigger.discard(key)
            delay = 0.0
        if delay != FORGET:
            self.trigger(namespace, name, delay)
        self._wake.set()
