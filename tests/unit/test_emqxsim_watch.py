"""The pod watch reads the API server's watch stream as raw JSON lines (no client models): events split
across chunks, bookmarks skipped, deletions forgotten, an ERROR event (410 Gone) ends it with the error the
client's Watch raised; the response is always closed. The real stream is exercised by the integration tests."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from sandbox.emqxsim.kube import PodWatcher
from sandbox.emqxsim.testing import emqx_pod
from sandbox.emqxsim.world import World


class StreamResponse:
    """What the client returns with _preload_content=False: a urllib3 response read by chunks."""

    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks
        self.closed = self.released = False

    def stream(self, amt=None, decode_content=None):
        yield from self.chunks

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        self.released = True


class Core:
    def __init__(self, response: StreamResponse):
        self.response = response
        self.calls: list[dict] = []

    def list_pod_for_all_namespaces(self, **kwargs):
        self.calls.append(kwargs)
        return self.response


def _line(kind: str, obj: dict) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


def test_events_are_applied_from_raw_lines_split_anywhere():
    world = World()
    pod, other = emqx_pod("emqx-core-0"), emqx_pod("emqx-core-1")
    changed = json.loads(json.dumps(pod))
    changed["metadata"]["labels"]["x"] = "y"
    bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}}
    stream = b"".join([_line("ADDED", pod), _line("ADDED", other), b"\n", _line("BOOKMARK", bookmark),
                       _line("MODIFIED", changed), _line("DELETED", other)])
    response = StreamResponse([stream[i:i + 7] for i in range(0, len(stream), 7)])
    core = Core(response)
    PodWatcher(core, world)._watch("10")
    assert [record.name for record in world.records()] == ["emqx-core-0"]
    assert world.records()[0].pod["metadata"]["labels"]["x"] == "y"
    assert core.calls == [{
        "label_selector": "apps.emqx.io/instance", "resource_version": "10", "allow_watch_bookmarks": True,
        "timeout_seconds": 60, "watch": True, "_preload_content": False, "_request_timeout": 90,
    }]
    assert response.closed and response.released


def test_an_error_event_raises_as_the_clients_watch_did():
    world = World()
    gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410, "reason": "Expired",
            "message": "too old resource version: 10 (20)"}
    response = StreamResponse([_line("ERROR", gone), _line("ADDED", emqx_pod("emqx-core-0"))])
    with pytest.raises(ApiException) as error:
        PodWatcher(Core(response), world)._watch("10")
    assert error.value.status == 410
    assert error.value.reason == "Expired: too old resource version: 10 (20)"
    assert world.records() == []
    assert response.closed and response.released


def test_a_stopped_watcher_returns_at_the_next_event():
    world = World()
    response = StreamResponse([_line("ADDED", emqx_pod("emqx-core-0"))])
    watcher = PodWatcher(Core(response), world)
    watcher.stop()
    watcher._watch("10")
    assert world.records() == []
    assert response.closed and response.released
