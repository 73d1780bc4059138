"""Wait helpers for tests: short polls or watches, always with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(
    predicate: Callable[[], T | None | bool],
    timeout: float = 30.0,
    message: str = "condition",
    interval: float = 0.1,
) -> T:
    """Poll `predicate` until it returns something truthy; return it, or fail after `timeout` seconds.

    Exceptions raised by the predicate count as "not yet" until the deadline, then are re-raised.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value  # type: ignore[return-value]
        except Exception as exc:  # noqa: BLE001 - reported at the deadline
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {message}{detail}")
        time.sleep(interval)
        interval = min(interval * 1.5, 1.0)


def parse_metrics(text: str) -> dict[str, float]:
    """A Prometheus text exposition (parsed by prometheus_client's own parser) as
    {metric_key(sample, **labels): value}: label order does not matter to the lookups."""
    from prometheus_client.parser import text_string_to_metric_families

    return {metric_key(sample.name, **sample.labels): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric_key(metric: str, /, **labels: str) -> str:
    """`metric{label="value",...}` with the labels sorted (what parse_metrics keys samples by)."""
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{metric}{{{inner}}}" if labels else metric
