"""The kopf wiring: events become scheduler triggers through the OperatorState kopf hands every
handler in its memo (no process-wide runtime state), and kopf is told nothing that would make it
write to the resources."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
import pytest
from emqx_operator import handlers, runtime


class RecordingScheduler:
    def __init__(self) -> None:
        self.triggers: list[tuple[str, str, float]] = []
        self.last_loop = time.monotonic()

    def trigger(self, namespace: str, name: str, delay: float = 0.0) -> None:
        self.triggers.append((namespace, name, delay))

    def bind(self) -> None:
        self.bound = True

    async def run(self) -> None:
        await asyncio.sleep(3600)


def _memo(excluded: tuple[str, ...] = ()) -> tuple[kopf.Memo, RecordingScheduler]:
    scheduler = RecordingScheduler()
    state = runtime.OperatorState(api=Any, scheduler=scheduler,  # type: ignore[arg-type]
                                  options=runtime.Options(excluded_namespaces=excluded))
    return kopf.Memo(state=state), scheduler


def test_events_trigger_the_scheduler_from_the_memo() -> None:
    memo, scheduler = _memo(excluded=("solo-*",))

    async def events() -> None:
        await handlers.emqx_changed(body=kopf.Body({"metadata": {"namespace": "prod", "name": "a"}}), memo=memo)
        pod = {"metadata": {"namespace": "prod", "name": "a-core-0", "labels": {handlers.INSTANCE_LABEL: "a"}}}
        await handlers.owned_changed(body=kopf.Body(pod), memo=memo)
        await handlers.emqx_changed(body=kopf.Body({"metadata": {"namespace": "solo-x", "name": "b"}}), memo=memo)

    asyncio.run(events())
    assert scheduler.triggers == [("prod", "a", 0.0), ("prod", "a", 0.2)]
    assert 0 <= handlers.scheduler_alive(memo=memo) < 60


def test_only_a_change_beyond_the_status_of_a_resource_makes_a_pass() -> None:
    """Each status write of the operator came back as an event and made a pass of its own."""
    from emqx_operator.cache import ObjectCache

    memo, scheduler = _memo()
    runtime.state_of(memo).cache = ObjectCache()

    def resource(generation: int, annotations: dict[str, str] | None = None, status: str = "",
                 deleting: bool = False) -> kopf.Body:
        meta: dict[str, Any] = {"namespace": "prod", "name": "a", "generation": generation,
                                "annotations": annotations or {}}
        if deleting:
            meta["deletionTimestamp"] = "2026-12-02T00:00:00Z"
        return kopf.Body({"metadata": meta, "status": {"phase": status}})

    async def events() -> list[int]:
        counts = []
        for body, event in [(resource(1), None), (resource(1, status="Creating"), {"type": "MODIFIED"}),
                            (resource(1, status="Ready"), {"type": "MODIFIED"}),
                            (resource(2, status="Ready"), {"type": "MODIFIED"}),
                            (resource(2, {"note": "x"}, "Ready"), {"type": "MODIFIED"}),
                            (resource(2, {"note": "x"}, "Ready", deleting=True), {"type": "MODIFIED"}),
                            (resource(2, {"note": "x"}, "Ready"), {"type": "DELETED"})]:
            await handlers.emqx_changed(body=body, memo=memo, event=event)
            counts.append(len(scheduler.triggers))
        return counts

    assert asyncio.run(events()) == [1, 1, 1, 2, 3, 4, 5]


def test_each_event_of_the_resource_keeps_its_body_for_the_next_pass() -> None:
    from emqx_operator.cache import ObjectCache

    memo, _ = _memo()
    cache = runtime.state_of(memo).cache = ObjectCache()
    raw = {"metadata": {"namespace": "prod", "name": "a", "resourceVersion": "7", "generation": 1},
           "status": {"phase": "Ready"}}

    async def events() -> None:
        await handlers.emqx_changed(body=kopf.Body(raw), memo=memo, event={"type": "MODIFIED", "object": raw})
        assert cache.resource("prod", "a") == raw
        gone = {**raw, "metadata": {**raw["metadata"], "resourceVersion": "8"}}
        await handlers.emqx_changed(body=kopf.Body(gone), memo=memo, event={"type": "DELETED", "object": gone})
        assert cache.resource("prod", "a") is None

    asyncio.run(events())


def test_event_handlers_are_coroutines_run_on_the_loop() -> None:
    """kopf runs a sync handler on its thread pool (a hop there and back per event)."""
    assert asyncio.iscoroutinefunction(handlers.emqx_changed)
    assert asyncio.iscoroutinefunction(handlers.owned_changed)


def test_a_memo_without_the_state_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no OperatorState"):
        asyncio.run(handlers.emqx_changed(body=kopf.Body({"metadata": {"namespace": "n", "name": "a"}}),
                                          memo=kopf.Memo()))


def test_no_module_level_runtime_state() -> None:
    assert not {"_state", "install", "current"} & set(vars(runtime))


def test_startup_sets_no_finalizer_and_no_progress_storage() -> None:
    """Only kopf.on.event handlers exist: kopf adds finalizers and progress/diff-base annotations
    only for change-detecting and deletion handlers; the operator keeps kopf's finalizer and progress
    storage untouched, and its diff-base (never read without such handlers) is empty."""
    asyncio.run(_startup_and_cleanup())


async def _startup_and_cleanup() -> None:
    settings = kopf.OperatorSettings()
    defaults = (settings.persistence.finalizer, type(settings.persistence.progress_storage))
    memo, _ = _memo()
    await handlers.configure(settings=settings, memo=memo)
    try:
        assert (settings.persistence.finalizer, type(settings.persistence.progress_storage)) == defaults
        storage = settings.persistence.diffbase_storage
        assert isinstance(storage, handlers.NoDiffBase)
        body = kopf.Body({"metadata": {"name": "a", "annotations": {"x": "y"}}, "spec": {"image": "i"}})
        assert storage.build(body=body) == {} and storage.fetch(body=body) is None
        assert settings.posting.enabled is False
        registry = kopf.get_default_registry()
        assert not registry._changing.has_handlers(resource=_emqx_resource()), "no change-detecting handlers"
        assert not registry._spawning.has_handlers(resource=_emqx_resource()), "no daemons or timers"
    finally:
        await handlers.stop(memo=memo)


def _emqx_resource() -> Any:
    from kopf._cogs.structs.references import Resource

    return Resource(handlers.GROUP, handlers.VERSION, handlers.PLURAL)
