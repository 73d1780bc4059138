"""The operator's Kubernetes client: independent requests of a pass go out together."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from emqx_operator.cluster_api import ApiError, ClusterApi
from emqx_operator.kubeconn import Connection

from kubectl_emqx.emqx.api import Reply


class SlowHttp:
    """Answers every request after all `expected` requests are in flight at once (a barrier): a
    client that sends them one after the other never gets an answer."""

    def __init__(self, expected: int) -> None:
        self.barrier = threading.Barrier(expected, timeout=5)
        self.seen: list[str] = []

    def request(self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float,
                tls: Any = None) -> Reply:
        self.seen.append(f"{method} {url}")
        self.barrier.wait()
        if url.endswith("/bad"):
            return Reply(422, "Unprocessable Entity", '{"message": "bad", "reason": "Invalid"}')
        return Reply(200, "OK", '{"kind": "ConfigMap", "metadata": {"name": "x"}}')


def _api(http: SlowHttp) -> ClusterApi:
    return ClusterApi(Connection("https://127.0.0.1:1", None), http)  # type: ignore[arg-type]


def test_independent_requests_are_in_flight_together_and_answers_keep_their_order() -> None:
    http = SlowHttp(3)
    api = _api(http)
    answers = api.each([lambda name=name: api.get("ConfigMap", "ns", name) for name in ("a", "b", "c")])
    assert len(answers) == 3 and len(http.seen) == 3
    assert api.reads_snapshot() == {"GET ConfigMap": 3}


def test_the_first_failure_is_raised_once_every_request_has_ended() -> None:
    http = SlowHttp(3)
    api = _api(http)
    with pytest.raises(ApiError) as raised:
        api.each([lambda name=name: api.get("ConfigMap", "ns", name) for name in ("a", "bad", "c")])
    assert raised.value.status == 422 and len(http.seen) == 3, "the other requests were still made"


def test_a_single_request_needs_no_thread() -> None:
    api = _api(SlowHttp(1))
    assert api.each([lambda: 7]) == [7] and api._fanout is None


def test_the_first_request_runs_in_the_calling_thread_and_a_failure_there_waits_for_the_others() -> None:
    """The pool is shared by every worker: the first request of a group does not queue for it."""
    http = SlowHttp(3)
    api = _api(http)
    threads: list[str] = []

    def get(name: str) -> Any:
        threads.append(threading.current_thread().name)
        return api.get("ConfigMap", "ns", name)

    answers = api.each([lambda name=name: get(name) for name in ("a", "b", "c")])
    assert len(answers) == 3 and threads.count(threading.current_thread().name) == 1
    with pytest.raises(ApiError) as raised:
        api.each([lambda name=name: api.get("ConfigMap", "ns", name) for name in ("bad", "b", "c")])
    assert raised.value.status == 422 and len(http.seen) == 6
