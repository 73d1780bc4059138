"""What `kubectl emqx rebalance` reads and previews (pure): the request from flags or from the official
operator's `Rebalance` manifest, EMQX's own split into donors and recipients as the operator would
ask for it, and the state of `status.rebalance`.

The preview applies EMQX's rule (emqx_node_rebalance.erl enable_rebalance/need_rebalance) to the
connection counts `status.emqxNodes` last reported: donors have at least the average, the rest are
recipients; there is nothing to balance when either side is empty, or when both the connection and
the session averages of the donors are within the thresholds of the recipients' (`donor <=
recipient + abs` or `donor <= recipient x rel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubectl_emqx.domain.spec import REBALANCE_FIELDS, REBALANCE_RELATIVE
from kubectl_emqx.domain.vocabulary import pod_ordinal

# EMQX's defaults (apps/emqx_node_rebalance/include/emqx_node_rebalance.hrl)
DEFAULTS: dict[str, Any] = {
    "connEvictRate": 500, "sessEvictRate": 500, "waitHealthCheck": 60, "waitTakeover": 60,
    "absConnThreshold": 1000, "relConnThreshold": "1.1", "absSessThreshold": 1000, "relSessThreshold": "1.1",
}
FINAL_PHASES = ("Completed", "Stopped", "Failed", "Refused")
MANIFEST_KINDS = ("Rebalance",)


class ManifestError(ValueError):
    """An official Rebalance manifest this plugin cannot take: one line naming the field."""


def from_manifest(document: Any) -> tuple[str, dict[str, Any]]:
    """(instanceName, strategy) of the official operator's `Rebalance` (apps.emqx.io/v2beta1)."""
    if not isinstance(document, dict) or document.get("kind") not in MANIFEST_KINDS:
        kind = document.get("kind") if isinstance(document, dict) else type(document).__name__
        raise ManifestError(f"expected a Rebalance manifest (apps.emqx.io/v2beta1), got kind {kind!r}")
    spec = document.get("spec") or {}
    name = spec.get("instanceName")
    if not name:
        raise ManifestError("spec.instanceName is missing: it names the EMQX cluster to rebalance")
    kind = spec.get("instanceKind") or "EMQX"
    if kind != "EMQX":
        raise ManifestError(f"spec.instanceKind {kind!r}: only EMQX (5.x) clusters are served here")
    strategy = spec.get("rebalanceStrategy") or {}
    if not isinstance(strategy, dict):
        raise ManifestError("spec.rebalanceStrategy must be an object")
    unknown = sorted(set(strategy) - set(REBALANCE_FIELDS))
    if unknown:
        raise ManifestError(f"spec.rebalanceStrategy.{unknown[0]} is not a rebalance option "
                            f"(known: {', '.join(REBALANCE_FIELDS)})")
    return str(name), {key: strategy[key] for key in REBALANCE_FIELDS if strategy.get(key) is not None}


def check_strategy(strategy: dict[str, Any]) -> None:
    """EMQX's body schema: rates and absolute thresholds positive integers, durations whole seconds
    (>= 0), relative thresholds numbers above 1.0. Raises ManifestError naming the field."""
    for key, value in strategy.items():
        if key in REBALANCE_RELATIVE:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ManifestError(f"{key} {value!r} is not a number (e.g. \"1.1\")") from None
            if number <= 1.0:
                raise ManifestError(f"{key} {value!r} must be greater than 1.0 (EMQX refuses it)")
        else:
            minimum = 0 if key in ("waitTakeover", "waitHealthCheck") else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ManifestError(f"{key} {value!r} must be a whole number >= {minimum}")


@dataclass(frozen=True)
class Preview:
    coordinator: str
    nodes: tuple[str, ...]
    donors: tuple[str, ...]
    recipients: tuple[str, ...]
    counts: dict[str, int]
    nothing_to_balance: str | None  # why EMQX would answer nothing_to_balance, as far as status shows
    observed_at: str = ""  # when the operator last read the counts (status.emqxNodesObservedAt)

    def lines(self, strategy: dict[str, Any], counts: bool = True) -> list[str]:
        shown = {**DEFAULTS, **strategy}
        options = ", ".join(f"{key} {shown[key]}" + ("" if key in strategy else " (EMQX's default)")
                            for key in REBALANCE_FIELDS)
        lines = [f"coordinator: {self.coordinator}", f"nodes: {', '.join(self.nodes)}",
                 f"options: {options}"]
        if not counts:
            return lines
        spread = ", ".join(f"{node} {self.counts.get(node, 0)}" for node in self.nodes)
        when = f", as of {self.observed_at}" if self.observed_at else ""
        lines.append(f"connections (status.emqxNodes{when}; EMQX counts again at the start): {spread}")
        if self.nothing_to_balance:
            lines.append(f"with these counts EMQX would answer nothing_to_balance: {self.nothing_to_balance}")
        else:
            lines.append(f"with these counts: donors {', '.join(self.donors)}; "
                         f"recipients {', '.join(self.recipients)}")
        return lines


def preview(body: dict[str, Any], strategy: dict[str, Any]) -> Preview | None:
    """The operator's start request and EMQX's split, from status.emqxNodes (None when no node runs)."""
    nodes = [n for n in (body.get("status") or {}).get("emqxNodes") or [] if n.get("node_status") == "running"]
    cores = [n for n in nodes if n.get("role") in ("core", None)]
    replicants = [n for n in nodes if n.get("role") == "replicant"]
    if not cores:
        return None
    cores.sort(key=lambda n: (pod_ordinal(str(n.get("podName") or "")) is None,
                              pod_ordinal(str(n.get("podName") or "")) or 0, str(n.get("node"))))
    chosen = sorted(replicants or cores, key=lambda n: str(n.get("node")))
    counts = {str(n["node"]): int(n.get("live_connections", n.get("connections")) or 0) for n in chosen}
    sessions = {str(n["node"]): int(n.get("connections") or 0) for n in chosen}
    average = sum(counts.values()) / len(counts)
    donors = tuple(node for node in counts if counts[node] >= average)
    recipients = tuple(node for node in counts if counts[node] < average)
    shown = {**DEFAULTS, **strategy}
    why = None
    if not donors or not recipients:
        why = "every node has the same number of connections" if counts else "no node"
    else:
        conn = _within(counts, donors, recipients, shown["absConnThreshold"], float(shown["relConnThreshold"]))
        sess = _within(sessions, donors, recipients, shown["absSessThreshold"], float(shown["relSessThreshold"]))
        if conn and sess:
            why = (f"the donors' averages are within the thresholds (connections {_avg(counts, donors):.0f} vs "
                   f"{_avg(counts, recipients):.0f}, abs {shown['absConnThreshold']}, rel {shown['relConnThreshold']})")
    observed = str((body.get("status") or {}).get("emqxNodesObservedAt") or "")
    return Preview(str(cores[0]["node"]), tuple(counts), donors, recipients, counts, why, observed)


def _avg(counts: dict[str, int], nodes: tuple[str, ...]) -> float:
    return sum(counts[node] for node in nodes) / len(nodes)


def _within(counts: dict[str, int], donors: tuple[str, ...], recipients: tuple[str, ...], absolute: int,
            relative: float) -> bool:
    donor, recipient = _avg(counts, donors), _avg(counts, recipients)
    return donor <= recipient + absolute or donor <= recipient * relative


def state(body: dict[str, Any], at: str | None = None) -> dict[str, Any]:
    """status.rebalance (for the request `at`, when given; {} when the operator has not seen it)."""
    record = dict((body.get("status") or {}).get("rebalance") or {})
    if at is not None and record.get("at") != at:
        return {}
    return record


def running(body: dict[str, Any]) -> dict[str, Any] | None:
    """The rebalance asked for and not finished (status.rebalance), else None."""
    request = (body.get("spec") or {}).get("rebalance") or {}
    if not request.get("at") or request.get("stop"):
        return None
    record = state(body, request["at"])
    if record.get("phase") in FINAL_PHASES:
        return None
    return {"at": request["at"], **record}


def progress_line(record: dict[str, Any]) -> str:
    phase = record.get("phase") or "waiting for the operator"
    message = record.get("message")
    return f"{phase}: {message}" if message else str(phase)
