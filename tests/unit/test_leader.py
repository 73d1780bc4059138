"""Lease-based leader election against an in-memory Lease store with resourceVersion checks."""

from __future__ import annotations

import asyncio
import copy
import datetime
from typing import Any

import pytest
from emqx_operator import main as operator_main
from emqx_operator.cluster_api import ApiError
from emqx_operator.leader import Attempt, LeaderElector, Leadership, Timing
from emqx_operator.metrics import METRICS
from emqx_operator.scheduler import Scheduler

LEASES = "/apis/coordination.k8s.io/v1/namespaces/ops/leases"


class FakeLeases:
    """The API server's Lease endpoints: GET, POST (409 if present), PUT (409 on a stale resourceVersion)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.calls: list[tuple[str, str]] = []
        self.fail_with: ApiError | None = None

    def _bump(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        return body

    def request(self, method: str, path: str, body: Any = None, query: Any = None,
                content_type: str = "application/json", kind: str = "") -> Any:
        self.calls.append((method, kind))
        if self.fail_with is not None:
            raise self.fail_with
        if method == "GET":
            if path not in self.objects:
                raise ApiError(404, "NotFound", "not found", method, path)
            return copy.deepcopy(self.objects[path])
        if method == "POST":
            target = f"{path}/{body['metadata']['name']}"
            if target in self.objects:
                raise ApiError(409, "AlreadyExists", "exists", method, path)
            self.objects[target] = self._bump(body)
            return copy.deepcopy(self.objects[target])
        if method == "PUT":
            current = self.objects[path]
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified", method, path)
            self.objects[path] = self._bump(body)
            return copy.deepcopy(self.objects[path])
        raise AssertionError(method)

    def spec(self, name: str = "lease") -> dict[str, Any]:
        return dict(self.objects[f"{LEASES}/{name}"]["spec"])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def elector(api: FakeLeases, identity: str, clock: Clock, events: list[str] | None = None,
            lease_seconds: int = 15) -> LeaderElector:
    log = events if events is not None else []
    return LeaderElector(
        api, "ops", "lease", identity, Timing(lease_seconds),  # type: ignore[arg-type]
        on_started_leading=lambda: log.append(f"{identity} started"),
        on_stopped_leading=lambda: log.append(f"{identity} stopped"),
        monotonic=clock,
        wall_clock=lambda: datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=clock.now),
    )


def attempt(candidate: LeaderElector) -> Attempt:
    outcome = candidate.try_acquire_or_renew()
    candidate.step(outcome)
    return outcome


def test_timing_follows_client_go_proportions() -> None:
    timing = Timing(15)
    assert (timing.renew_deadline, timing.retry_period) == (10.0, 2.0)
    assert Timing(3).retry_period == pytest.approx(0.4)


def test_first_candidate_creates_the_lease_and_leads() -> None:
    api, clock, events = FakeLeases(), Clock(), []
    a = elector(api, "a", clock, events)
    assert attempt(a) is Attempt.LEADING
    assert a.leading and events == ["a started"]
    spec = api.spec()
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0 and spec["renewTime"].endswith("Z") and "." in spec["renewTime"]
    clock.now += 2
    renew_before = spec["renewTime"]
    assert attempt(a) is Attempt.LEADING
    assert api.spec()["renewTime"] != renew_before
    assert api.spec()["acquireTime"] == spec["acquireTime"]
    assert events == ["a started"], "renewing does not restart leading"


def test_a_candidate_waits_while_the_holder_renews_and_takes_over_when_it_stops() -> None:
    api, clock, events = FakeLeases(), Clock(), []
    a, b = elector(api, "a", clock, events), elector(api, "b", clock, events)
    attempt(a)
    for _ in range(20):  # 40 s of renewals every 2 s: b never gets it
        clock.now += 2
        attempt(a)
        assert attempt(b) is Attempt.FOLLOWING
    assert not b.leading and b.holder == "a"
    # a dies: its record stops changing; b takes over once it has seen no change for 15 s.
    clock.now += 14
    assert attempt(b) is Attempt.FOLLOWING
    clock.now += 1
    assert attempt(b) is Attempt.LEADING
    assert b.leading and api.spec()["holderIdentity"] == "b" and api.spec()["leaseTransitions"] == 1
    assert events == ["a started", "b started"]


def test_expiry_is_measured_on_the_candidates_clock_not_the_renew_time() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, "a", clock)
    attempt(a)
    clock.now += 3600  # the record is an hour old by the wall clock, but b has only just seen it
    b = elector(api, "b", clock)
    assert attempt(b) is Attempt.FOLLOWING
    clock.now += 15
    assert attempt(b) is Attempt.LEADING


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win() -> None:
    api, clock = FakeLeases(), Clock()
    attempt(elector(api, "a", clock))
    b, c = elector(api, "b", clock), elector(api, "c", clock)
    attempt(b), attempt(c)
    clock.now += 16
    original = api.request

    def c_writes_first(method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        if method == "PUT" and body["spec"]["holderIdentity"] == "b":
            api.request = original  # type: ignore[method-assign]
            assert attempt(c) is Attempt.LEADING
        return original(method, path, body, **kwargs)

    api.request = c_writes_first  # type: ignore[method-assign]
    assert attempt(b) is Attempt.FAILED
    assert c.leading and not b.leading and api.spec()["holderIdentity"] == "c"


def test_leader_steps_down_when_someone_else_holds_the_lease() -> None:
    api, clock, events = FakeLeases(), Clock(), []
    a = elector(api, "a", clock, events)
    attempt(a)
    lease = api.objects[f"{LEASES}/lease"]
    lease["spec"]["holderIdentity"] = "intruder"
    api.version += 1
    lease["metadata"]["resourceVersion"] = str(api.version)
    assert attempt(a) is Attempt.FOLLOWING
    assert not a.leading and events == ["a started", "a stopped"]


def test_leader_that_cannot_renew_stops_before_the_lease_expires() -> None:
    api, clock, events = FakeLeases(), Clock(), []
    a = elector(api, "a", clock, events)
    attempt(a)
    api.fail_with = ApiError(503, "ServiceUnavailable", "etcd is down", "GET", LEASES)
    clock.now += 9
    a.step(Attempt.FAILED)
    assert a.leading, "still within the renew deadline"
    clock.now += 1
    a.step(Attempt.FAILED)
    assert not a.leading and events == ["a started", "a stopped"]


def test_release_hands_the_lease_over_at_once() -> None:
    api, clock, events = FakeLeases(), Clock(), []
    a, b = elector(api, "a", clock, events), elector(api, "b", clock, events)
    attempt(a)
    attempt(b)
    assert a.release() is True
    assert api.spec()["holderIdentity"] == "" and not a.leading
    assert attempt(b) is Attempt.LEADING, "no need to wait for expiry"
    assert events == ["a started", "a stopped", "b started"]
    assert a.release() is False, "a non-leader has nothing to release"


def test_forbidden_lease_access_is_an_error_the_loop_survives() -> None:
    api, clock = FakeLeases(), Clock()
    api.fail_with = ApiError(403, "Forbidden", 'leases.coordination.k8s.io "lease" is forbidden', "GET", LEASES)
    a = elector(api, "a", clock)

    async def one_round() -> None:
        task = asyncio.create_task(a.run())
        while not api.calls:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(one_round())
    assert not a.leading


def test_leadership_enables_the_scheduler_and_resyncs_every_managed_resource() -> None:
    class Listing:
        def list(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
            assert (kind, namespace) == ("EMQX", None)
            return [{"metadata": {"namespace": ns, "name": name}}
                    for ns, name in (("a", "one"), ("b", "two"), ("skip-me", "three"))]

    scheduler = Scheduler(lambda namespace, name: 1.0)
    scheduler.enabled = False
    leadership = Leadership(Listing(), scheduler, [],  # type: ignore[arg-type]
                            manages=lambda namespace: not namespace.startswith("skip"))
    METRICS.set_phase("a", "one", "Ready")

    async def lead_then_lose() -> None:
        leadership.started()
        assert scheduler.enabled
        assert leadership._resync is not None
        await leadership._resync
        assert scheduler.known() == [("a", "one"), ("b", "two")]
        leadership.stopped()
        assert not scheduler.enabled

    asyncio.run(lead_then_lose())
    assert "emqx_operator_managed_clusters 0" in METRICS.render()


def test_operator_flags_for_leader_election(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    args = operator_main.parse_args([])
    assert args.leader_elect is True and args.lease_name == "emqx-operator" and args.lease_duration == 15
    assert operator_main.parse_args(["--leader-elect=false"]).leader_elect is False
    assert operator_main.parse_args(["--leader-elect"]).leader_elect is True
    with pytest.raises(SystemExit):
        operator_main.parse_args(["--leader-elect=maybe"])
    with pytest.raises(SystemExit):
        operator_main.parse_args(["--lease-duration=0"])

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: from-context}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    from emqx_operator.kubeconn import login_info

    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    context_namespace = login_info(str(kubeconfig)).default_namespace  # what main() hands in
    with_kubeconfig = operator_main.parse_args(["--kubeconfig", str(kubeconfig)])
    assert operator_main.lease_namespace(with_kubeconfig, context_namespace) == "from-context"
    monkeypatch.setenv("POD_NAMESPACE", "from-env")
    assert operator_main.lease_namespace(with_kubeconfig, context_namespace) == "from-env"
    assert operator_main.lease_namespace(operator_main.parse_args(["--lease-namespace", "flag"])) == "flag"
    first, second = operator_main.identity(args), operator_main.identity(args)
    assert first != second, "out of a pod, every process gets its own identity"
    monkeypatch.setenv("POD_NAME", "op-1")
    assert operator_main.identity(args) == "op-1"
