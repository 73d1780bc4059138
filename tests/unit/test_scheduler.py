"""The operator's work queue: coalescing, one reconcile at a time per key, requeue and forget."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from emqx_operator.scheduler import FORGET, Scheduler


def run_until(scheduler: Scheduler, done: threading.Event, timeout: float = 5.0) -> None:
    async def main() -> None:
        task = asyncio.create_task(scheduler.run())
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(main())
    assert done.is_set(), "the scheduler did not finish in time"


def test_triggers_while_running_coalesce_into_one_rerun() -> None:
    calls: list[tuple[str, str]] = []
    active = 0
    overlap = False
    done = threading.Event()
    scheduler: Scheduler

    def reconcile(namespace: str, name: str) -> float:
        nonlocal active, overlap
        active += 1
        overlap = overlap or active > 1
        calls.append((namespace, name))
        if len(calls) == 1:
            for _ in range(5):
                loop.call_soon_threadsafe(scheduler.trigger, namespace, name)
            time.sleep(0.1)
        active -= 1
        if len(calls) == 2:
            done.set()
        return FORGET

    async def main() -> None:
        nonlocal loop, scheduler
        loop = asyncio.get_running_loop()
        scheduler = Scheduler(reconcile)
        scheduler.trigger("ns", "a")
        task = asyncio.create_task(scheduler.run())
        deadline = time.monotonic() + 5
        while not done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        task.cancel()

    loop: asyncio.AbstractEventLoop
    asyncio.run(main())
    assert calls == [("ns", "a"), ("ns", "a")]
    assert not overlap


def test_requeue_delay_and_error_backoff() -> None:
    calls: list[float] = []
    done = threading.Event()

    def reconcile(namespace: str, name: str) -> float:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("boom")
        if len(calls) == 2:
            return 0.05
        done.set()
        return FORGET

    scheduler = Scheduler(reconcile, error_backoff=0.05)
    scheduler.trigger("ns", "b")
    run_until(scheduler, done)
    assert len(calls) == 3
    assert scheduler.errors == 1
    assert calls[1] - calls[0] >= 0.04
    assert calls[2] - calls[1] >= 0.04


def test_an_api_server_away_is_one_warning_line_not_a_traceback(caplog: Any) -> None:
    """An outage of the API server failed every pass with a traceback each (the fault matrix counted
    72 in one API server restart); transient failures are now one line each, bugs keep theirs."""
    from emqx_operator.cluster_api import ApiError

    done = threading.Event()
    calls = 0

    def reconcile(namespace: str, name: str) -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ApiError(0, "Unreachable", "Cannot connect to host 127.0.0.1:6443", "GET", "/apis/x")
        if calls == 2:
            raise ValueError("a bug")
        done.set()
        return FORGET

    scheduler = Scheduler(reconcile, error_backoff=0.01)
    scheduler.trigger("ns", "demo")
    with caplog.at_level("WARNING", logger="emqx_operator.scheduler"):
        run_until(scheduler, done)
    outage, bug = [r for r in caplog.records if r.name == "emqx_operator.scheduler"]
    assert outage.levelname == "WARNING" and outage.exc_info is None and "Unreachable" in outage.getMessage()
    assert bug.levelname == "ERROR" and bug.exc_info is not None


def test_on_idle_runs_once_after_a_quiet_spell_and_again_only_after_more_passes() -> None:
    idles: list[float] = []
    passes: list[str] = []

    def reconcile(namespace: str, name: str) -> float:
        passes.append(name)
        return FORGET

    async def wait_until(predicate: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.01)

    async def main() -> None:
        scheduler = Scheduler(reconcile, on_idle=lambda: idles.append(time.monotonic()), idle_after=0.3)
        assert not scheduler.idle_due(time.monotonic())  # nothing ran yet
        task = asyncio.create_task(scheduler.run())
        scheduler.trigger("ns", "a")
        scheduler.trigger("ns", "b")
        await wait_until(lambda: len(idles) == 1, 30)
        finished = scheduler._last_finished
        assert len(passes) == 2 and idles[0] - finished >= 0.3
        await asyncio.sleep(0.6)
        assert len(idles) == 1  # quiet without passes: not again
        scheduler.trigger("ns", "a")
        await wait_until(lambda: len(idles) == 2, 30)
        task.cancel()

    asyncio.run(main())


def test_idle_is_not_due_while_a_pass_runs() -> None:
    scheduler = Scheduler(lambda namespace, name: FORGET, on_idle=lambda: None, idle_after=0.0)
    scheduler._passes_since_idle = 1
    scheduler._running.add(("ns", "a"))
    assert not scheduler.idle_due(time.monotonic() + 100)
    scheduler._running.clear()
    assert scheduler.idle_due(time.monotonic() + 100)


def test_release_freed_memory_is_safe_to_call_repeatedly() -> None:
    from emqx_operator import memory

    memory.release_freed_memory()
    memory.release_freed_memory()


def test_triggers_from_handler_threads_never_break_the_loop() -> None:
    """kopf runs the sync handlers on its executor's threads: triggers arrive from many threads while
    the loop scans its queue (a trigger adding a key under the scan ended the loop, silently, when
    500 clusters were resumed at once)."""
    import sys

    seen: set[str] = set()
    lock = threading.Lock()

    def reconcile(namespace: str, name: str) -> float:
        with lock:
            seen.add(name)
        return 0.01  # look again soon: the loop keeps scanning its queue

    async def main() -> None:
        scheduler = Scheduler(reconcile, workers=4)
        scheduler.bind()
        task = asyncio.create_task(scheduler.run())
        for i in range(20):
            scheduler.trigger("ns", f"near{i}")

        def storm(offset: int) -> None:  # keys due in an hour: the queue grows while it is scanned
            for i in range(6000):
                scheduler.trigger("ns", f"far{offset}-{i}", delay=3600)

        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, storm, offset) for offset in range(6)))
        await asyncio.sleep(0.2)
        assert not task.done(), task.exception()
        assert len(scheduler.known()) == 20 + 6 * 6000
        task.cancel()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch inside the loop's scan, as on a busy machine
    try:
        asyncio.run(main())
    finally:
        sys.setswitchinterval(interval)
    assert len(seen) == 20


def test_a_failing_idle_hook_is_logged_and_the_loop_goes_on() -> None:
    passes: list[str] = []

    def hook() -> None:
        raise OSError("no such function")

    async def main() -> None:
        scheduler = Scheduler(lambda namespace, name: passes.append(name) or FORGET, on_idle=hook, idle_after=0.05)
        task = asyncio.create_task(scheduler.run())
        scheduler.trigger("ns", "a")
        await asyncio.sleep(0.5)
        scheduler.trigger("ns", "b")
        await asyncio.sleep(0.3)
        assert not task.done() and passes == ["a", "b"]
        task.cancel()

    asyncio.run(main())


def test_a_busy_resource_is_looked_at_less_often_while_its_passes_change_nothing() -> None:
    from emqx_operator.reconcile import busy_requeue

    delays = [busy_requeue(2.0, quiet, 75.0) for quiet in range(8)]
    assert delays == [2.0, 2.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0]
    assert busy_requeue(2.0, 7, 10.0) == 10.0, "never later than the resync period"
    assert busy_requeue(30.0, 0, 75.0) == 30.0, "a longer base is kept"
