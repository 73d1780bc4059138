"""Two operator processes against one namespace: only the Lease holder reconciles; when it dies the
standby takes over within the lease duration, and a stopping leader hands over at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.emqx_helpers import cr, custom_api, wait_ready
from tests.helpers import parse_metrics, wait_for
from tests.install_helpers import lease_holder

pytestmark = pytest.mark.integration

LEASE = "leader-test"
LEASE_SECONDS = 3
RETRY_SECONDS = LEASE_SECONDS / 7.5 * 1.2  # the longest pause between a candidate's attempts


def _candidates(solo_operator: Any, namespace: str, lease_seconds: int = LEASE_SECONDS) -> dict[str, Any]:
    args = ["--leader-elect=true", f"--lease-name={LEASE}", f"--lease-namespace={namespace}",
            f"--lease-duration={lease_seconds}"]
    return {identity: solo_operator([*args, f"--identity={identity}"]) for identity in ("op-a", "op-b")}


def _leader_gauge(candidate: Any) -> float:
    return parse_metrics(candidate.handle.metrics())["emqx_operator_leader"]


def _one_leader(api_client: Any, namespace: str, candidates: dict[str, Any]) -> str:
    def settled() -> str | None:
        holder = lease_holder(api_client, namespace, LEASE)
        if holder not in candidates:
            return None
        gauges = {identity: _leader_gauge(c) for identity, c in candidates.items()}
        expected = {identity: float(identity == holder) for identity in candidates}
        return holder if gauges == expected else None

    return wait_for(settled, 15, "exactly one candidate to hold the Lease and say so")


def _create(api_client: Any, namespace: str, name: str) -> None:
    custom_api(api_client).create_namespaced_custom_object(
        "apps.emqx.io", "v2beta1", namespace, "emqxes", cr(name, cores=1, replicants=1))


def test_only_the_holder_reconciles_and_a_standby_takes_over_after_a_kill(
    api_client: Any, solo_namespace: str, solo_operator: Any,
) -> None:
    candidates = _candidates(solo_operator, solo_namespace)
    leader = _one_leader(api_client, solo_namespace, candidates)
    standby = next(identity for identity in candidates if identity != leader)

    _create(api_client, solo_namespace, "before")
    wait_ready(api_client, solo_namespace, "before")
    candidates[leader].handle.wait_reconciles(solo_namespace, "before", count=2)  # resyncs every 2 s
    assert candidates[standby].handle.reconcile_count(solo_namespace, "before") == 0
    assert parse_metrics(candidates[standby].handle.metrics())["emqx_operator_managed_clusters"] == 0

    candidates[leader].kill()  # SIGKILL: no release, the Lease must expire
    killed_at = time.monotonic()
    wait_for(lambda: lease_holder(api_client, solo_namespace, LEASE) == standby, LEASE_SECONDS + 5,
             f"{standby} to take the Lease over")
    takeover = time.monotonic() - killed_at
    assert takeover <= LEASE_SECONDS + RETRY_SECONDS + 1.0, f"takeover took {takeover:.1f}s"
    wait_for(lambda: _leader_gauge(candidates[standby]) == 1, 5, f"{standby} to lead")

    _create(api_client, solo_namespace, "after")
    wait_ready(api_client, solo_namespace, "after")
    assert candidates[standby].handle.reconcile_count(solo_namespace, "after") > 0
    assert candidates[standby].handle.reconcile_count(solo_namespace, "before") > 0, "leading starts with a resync"


def test_a_stopping_leader_releases_the_lease_and_the_standby_takes_over_at_once(
    api_client: Any, solo_namespace: str, solo_operator: Any,
) -> None:
    lease_seconds = 30  # long: a handover faster than this can only come from the release
    candidates = _candidates(solo_operator, solo_namespace, lease_seconds)
    leader = _one_leader(api_client, solo_namespace, candidates)
    standby = next(identity for identity in candidates if identity != leader)

    candidates[leader].stop()  # SIGTERM: the operator releases its Lease on the way out
    stopped_at = time.monotonic()
    wait_for(lambda: lease_holder(api_client, solo_namespace, LEASE) == standby, 10,
             f"{standby} to take the released Lease")
    assert time.monotonic() - stopped_at < 10 < lease_seconds

    _create(api_client, solo_namespace, "handed-over")
    wait_ready(api_client, solo_namespace, "handed-over")
    assert candidates[standby].handle.reconcile_count(solo_namespace, "handed-over") > 0
