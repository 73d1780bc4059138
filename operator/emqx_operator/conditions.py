"""metav1.Condition lists: set a condition keeping lastTransitionTime unless its status flips."""

from __future__ import annotations

import datetime
from typing import Any


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def set_condition(
    conditions: list[dict[str, Any]], kind: str, status: bool, reason: str, message: str, generation: int,
) -> list[dict[str, Any]]:
    """Return a new list with `kind` set; the transition time moves only when the status changes."""
    value = "True" if status else "False"
    old = find(conditions, kind)
    changed = old is None or old.get("status") != value
    new = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": (
            now_rfc3339() if changed or old is None else old.get("lastTransitionTime", now_rfc3339())
        ),
    }
    return [c for c in conditions if c.get("type") != kind] + [new]


def without_times(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions),
                  key=lambda c: str(c.get("type")))
