"""Operator benchmark (issue 4): creation latency, seed-to-Ready time, idle writes, RSS and CPU.

Run from the repository root:

    .venv/bin/python bench/operator_bench.py [--runs 20] [--crs 100] [--idle-seconds 60] [--json out.json]

It starts its own private sandbox (a temporary directory, `sandbox.cluster.up(directory=...)`, always torn
down, even on Ctrl-C), installs the CRD, starts the operator from the working tree with a production-like
resync period (30 s by default) and measures, one phase after another:

  create   create -> every owned child object present, p50/p95 over --runs runs (each run in its own
           namespace, created beforehand with its default ServiceAccount): Secrets x2, ConfigMap, the
           headless/dashboard/listeners Services, the core StatefulSet and both PDBs. The replicant
           Deployment only appears once the cores run, so create -> Deployment present is its own row.
           One extra warm-up run (--warmup) is made first and not counted.
  seed     the seed manifest (apps.emqx.io/v2alpha1, `spec.emqxTemplate.image: emqx/emqx:5.0.6`:
           3 cores + 3 replicants) -> condition Ready=True at the current generation, --seed-runs runs,
           with the operator's writes and reconciles it took.
  idle1    the last seed cluster, settled: operator API writes per minute (delta of
           emqx_operator_api_writes_total over the window, by verb and kind), reconciles per minute,
           RSS (/proc/<pid>/status VmRSS, sampled every second) and CPU time (utime+stime).
  idle100  the same with --crs small clusters (1 core + 0 replicants of emqx/emqx:5.7.2 by default), in
           one namespace; the seed cluster is deleted first, so exactly --crs CRs exist.

"Present" and "Ready" are taken from watches (one per kind, all namespaces) opened before the phase, so
times are when the API server reported the object, with no polling load. Percentiles interpolate
linearly between the two nearest samples. Before an idle window starts, every CR is Ready and the
operator has made no write for --quiet-seconds. Once settled the operator should make no writes at all
except one status refresh (PATCH EMQX/status) per CR at most every 300 s for the volatile node fields;
anything else is listed as an unexpected write. A 60 s window cannot show that refresh: run with
`--phases idle100 --idle-seconds 360` to see it (one PATCH EMQX/status per CR is expected).

Also recorded: the Events the operator posts (per run and per idle window), the ERROR/WARNING lines of
its log, a hash of the operator's source (another session may be editing it), and the machine's load
average at the start and after each phase (other work on a shared machine skews every latency). Each
run's CRs are deleted, and gone, before their namespace: deleting a namespace under a live CR makes the
operator log RBAC errors that are not (see clean_up()).

Options:
  --runs N              measured create runs (default 20)
  --warmup N            unmeasured create runs made first (default 1)
  --create-cores N      cores of the create-phase CRs (default 3)
  --create-replicants N replicants of the create-phase CRs (default 3)
  --seed-runs N         seed -> Ready runs (default 3)
  --crs N               CRs for the large idle measurement (default 100)
  --idle-seconds S      length of each idle window (default 60)
  --quiet-seconds S     no operator write for this long before an idle window starts (default 10)
  --resync-seconds S    the operator's --resync-seconds (default 30, the operator's own default)
  --workers N           the operator's --workers (default 4, the operator's own default)
  --ready-timeout S     deadline for clusters to become Ready (default 300)
  --phases LIST         comma-separated subset of create,seed,idle1,idle100 (default: all)
  --json PATH           also write every number (and the raw samples) as JSON to PATH
  --keep-logs DIR       copy the operator's and the simulator's logs to DIR before the teardown

If the operator process dies during a phase (other sessions on a shared machine have been seen to
SIGTERM it), the bench records how (exit code, the log's last lines), starts a new operator and redoes
that phase in fresh namespaces, at most twice; the table says so. The exit status is 0 when every phase
completed, 1 otherwise (the table and JSON still report what was measured).

Everything runs on 127.0.0.1; a pod-IP /16 of 127/8 that no other sandbox on this machine uses is picked
unless EMQX_SANDBOX_POD_CIDR is set.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
GROUP, PLURAL = "apps.emqx.io", "emqxes"
SEED_IMAGE = "emqx/emqx:5.0.6"
SMALL_IMAGE = "emqx/emqx:5.7.2"
STATUS_REFRESH_SECONDS = 300.0  # reconcile.STATUS_REFRESH_SECONDS: the one write allowed when settled
PHASES = ("create", "seed", "idle1", "idle100")
NS_PREFIX = "bench-"
MAX_ATTEMPTS = 3  # a phase is redone at most twice after the operator died
LOG_LEVEL = re.compile(r"\[(ERROR|CRITICAL|WARNING)\s*\]")


class BenchError(Exception):
    """A phase could not complete (a deadline passed, an object never appeared...)."""


class OperatorDied(BenchError):
    """The operator process under test exited; the phase is redone with a new one."""


# ---------------------------------------------------------------------------------------------- helpers


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
        "mean": sum(values) / len(values) if values else float("nan"),
    }


def pick_pod_cidr() -> str:
    """A 127.X.0.0/16 that no other sandbox (kwok --cidr) nor any socket on this machine uses."""
    used = {0, 15}  # 127.0/16 is the host's own; 127.15.0.1 is the sandbox's node IP
    for table in ("/proc/net/tcp", "/proc/net/udp"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            address = line.split()[1].split(":")[0]  # little-endian hex, e.g. 0100007F
            if len(address) == 8 and address[6:8].upper() == "7F":
                used.add(int(address[4:6], 16))
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in args:
            match = re.match(rb"--cidr=127\.(\d+)\.", arg)
            if match:
                used.add(int(match.group(1)))
    free = [octet for octet in range(16, 251) if octet not in used]
    if not free:
        raise BenchError("no free 127.X.0.0/16 for pod IPs")
    return f"127.{random.choice(free)}.0.0/16"


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition -> {metric: [(labels, value), ...]}."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        out.setdefault(name, []).append((labels, float(value)))
    return out


def scan_log(path: Path, start: int = 0) -> dict[str, Any]:
    """ERROR/WARNING lines and tracebacks in a log from byte offset `start`."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            text = handle.read().decode(errors="replace")
    except OSError:
        return {"errors": 0, "warnings": 0, "tracebacks": 0, "samples": []}
    errors = warnings = 0
    samples: dict[str, int] = {}
    for line in text.splitlines():
        match = LOG_LEVEL.search(line)
        if not match:
            continue
        if match.group(1) == "WARNING":
            warnings += 1
        else:
            errors += 1
        message = re.sub(r"[0-9a-f]{10,}|\d+", "#", line[match.end():].strip())[:200]
        key = f"{match.group(1)}: {message}"
        samples[key] = samples.get(key, 0) + 1
    return {
        "errors": errors, "warnings": warnings, "tracebacks": text.count("Traceback (most recent call last)"),
        "samples": [f"{count}x {key}" for key, count in sorted(samples.items(), key=lambda kv: -kv[1])[:12]],
    }


def _listening(port: int) -> bool:
    """Whether anything listens on TCP `port` (state 0A in /proc/net/tcp)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(f"{port:04X}" == line.split()[1].split(":")[1] and line.split()[3] == "0A" for line in lines)


def loadavg() -> list[float]:
    """The machine's 1/5/15-minute load averages: other work on a shared machine skews every number."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------- watches


class Tracker:
    """First-seen times of objects and the Ready state of EMQX resources, fed by the watches."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.first_seen: dict[tuple[str, str, str], float] = {}
        self.ready: dict[tuple[str, str], bool] = {}
        self.first_ready: dict[tuple[str, str], float] = {}
        self.events: list[dict[str, Any]] = []  # Events the operator posted, in arrival order

    def on_event(self, kind: str, event_type: str, obj: dict[str, Any], at: float) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if not namespace.startswith(NS_PREFIX):
            return
        if kind == "Event":
            if event_type == "ADDED" and (obj.get("source") or {}).get("component") == "emqx-operator":
                involved = obj.get("involvedObject") or {}
                with self.cond:
                    self.events.append({"at": at, "namespace": namespace, "name": involved.get("name"),
                                        "type": obj.get("type"), "reason": obj.get("reason"),
                                        "message": obj.get("message")})
            return
        with self.cond:
            if event_type == "DELETED":
                if kind == "EMQX":
                    self.ready.pop((namespace, name), None)
            else:
                self.first_seen.setdefault((kind, namespace, name), at)
                if kind == "EMQX":
                    ready = _emqx_ready(obj)
                    self.ready[(namespace, name)] = ready
                    if ready:
                        self.first_ready.setdefault((namespace, name), at)
            self.cond.notify_all()

    def wait_seen(self, keys: Iterable[tuple[str, str, str]], timeout: float,
                  check: Callable[[], None] = lambda: None) -> dict[tuple[str, str, str], float]:
        """Wait until every key was seen; `check()` runs at least every second and may raise to abort."""
        wanted = list(keys)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                check()
                missing = [k for k in wanted if k not in self.first_seen]
                if not missing:
                    return {k: self.first_seen[k] for k in wanted}
                left = deadline - time.monotonic()
                if left <= 0:
                    names = ", ".join("/".join(k) for k in missing)
                    raise BenchError(f"timed out after {timeout:.0f}s; never saw {names}")
                self.cond.wait(min(left, 1.0))

    def wait_ready(self, keys: Iterable[tuple[str, str]], timeout: float,
                   check: Callable[[], None] = lambda: None) -> dict[tuple[str, str], float]:
        wanted = list(keys)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                check()
                missing = [k for k in wanted if k not in self.first_ready]
                if not missing:
                    return {k: self.first_ready[k] for k in wanted}
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {timeout:.0f}s: {len(missing)}/{len(wanted)} EMQX not Ready "
                                     f"(e.g. {'/'.join(missing[0])})")
                self.cond.wait(min(left, 1.0))

    def events_since(self, since: float, namespaces: Iterable[str] | None = None) -> list[dict[str, Any]]:
        wanted = set(namespaces) if namespaces is not None else None
        with self.cond:
            return [{k: v for k, v in e.items() if k != "at"} for e in self.events
                    if e["at"] >= since and (wanted is None or e["namespace"] in wanted)]

    def ready_count(self, keys: Iterable[tuple[str, str]]) -> int:
        with self.cond:
            return sum(1 for k in keys if self.ready.get(k))


def _emqx_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != (obj.get("metadata") or {}).get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class Watcher(threading.Thread):
    """List + watch one kind in all namespaces (raw JSON, no model deserialisation) into the Tracker."""

    def __init__(self, kind: str, list_func: Callable[..., Any], tracker: Tracker, list_args: tuple[Any, ...] = ()):
        super().__init__(name=f"watch-{kind}", daemon=True)
        self.kind = kind
        self.list_func = list_func
        self.list_args = list_args
        self.tracker = tracker
        self.synced = threading.Event()
        self.stopping = threading.Event()
        self.failures = 0
        self._watch: Any = None

    def stop(self) -> None:
        self.stopping.set()
        if self._watch is not None:
            self._watch.stop()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._list_and_watch()
            except Exception:  # noqa: BLE001 - relist after any failure (410 Gone, a dropped connection)
                self.failures += 1
                self.stopping.wait(0.5)

    def _list_and_watch(self) -> None:
        from kubernetes import watch

        response = self.list_func(*self.list_args, _preload_content=False, _request_timeout=30)
        listing = json.loads(response.data)
        now = time.monotonic()
        for item in listing.get("items") or []:
            self.tracker.on_event(self.kind, "ADDED", item, now)
        resource_version = listing["metadata"]["resourceVersion"]
        self.synced.set()
        while not self.stopping.is_set():
            self._watch = watch.Watch()
            for event in self._watch.stream(
                self.list_func, *self.list_args, resource_version=resource_version, allow_watch_bookmarks=True,
                timeout_seconds=50, _request_timeout=(10, 80), deserialize=False,
            ):
                at = time.monotonic()
                obj = event.get("object") or {}
                resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self.tracker.on_event(self.kind, event["type"], obj, at)


# ---------------------------------------------------------------------------------------------- operator


class Operator:
    def __init__(self, proc: subprocess.Popen[bytes], log: str, metrics_url: str) -> None:
        self.proc = proc
        self.log = Path(log)
        self.metrics_url = metrics_url
        self.clock_ticks = os.sysconf("SC_CLK_TCK")
        self.scrape_failures: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.code = ""
        self.rss_start_kib = 0
        self.died_noticed: float | None = None

    def mark_live(self) -> None:
        self.rss_start_kib = self.proc_status().get("VmRSS", 0)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def require_alive(self) -> None:
        if not self.alive():
            if self.died_noticed is None:
                self.died_noticed = time.monotonic()
            raise OperatorDied(f"the operator (pid {self.proc.pid}) exited with {self.proc.returncode}: "
                               f"{self.death_evidence()}")

    def require_alive_quietly(self) -> None:
        try:
            self.require_alive()
        except OperatorDied:
            pass

    def death_evidence(self) -> str:
        """The log's reason for stopping (kopf logs received signals), else its last line."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        for line in reversed(lines[-200:]):
            if "Signal" in line and "received" in line:
                return line.strip()
        return lines[-1].strip() if lines else "empty log"

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Scrape /metrics; a failed scrape is retried (and recorded in `scrape_failures`) for up to 5 s."""
        deadline = time.monotonic() + 5
        while True:
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:
                    return parse_metrics(resp.read().decode())
            except OSError as exc:
                port = int(self.metrics_url.rsplit(":", 1)[1].split("/")[0])
                self.scrape_failures.append({
                    "at": time.monotonic(), "error": str(exc), "operator_alive": self.alive(),
                    "port_listening": _listening(port),
                })
                self.require_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"cannot scrape {self.metrics_url}: {exc} "
                                     f"(failures so far: {self.scrape_failures[-3:]})") from exc
                time.sleep(0.5)

    def proc_status(self) -> dict[str, int]:
        """VmRSS / VmHWM in KiB and Threads from /proc/<pid>/status."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
        return out

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.clock_ticks  # utime + stime

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Snapshot:
    """The operator's counters at one moment."""

    def __init__(self, op: Operator) -> None:
        metrics = op.metrics()
        self.at = time.monotonic()
        self.cpu = op.cpu_seconds()
        self.status = op.proc_status()
        self.writes = {(labels.get("verb", ""), labels.get("kind", "")): value
                       for labels, value in metrics.get("emqx_operator_api_writes_total", [])}
        self.reconciles: dict[tuple[str, str, str], float] = {
            (labels.get("namespace", ""), labels.get("name", ""), labels.get("result", "")): value
            for labels, value in metrics.get("emqx_operator_reconcile_total", [])
        }
        self.reconcile_seconds: dict[tuple[str, str], float] = {
            (labels.get("namespace", ""), labels.get("name", "")): value
            for labels, value in metrics.get("emqx_operator_reconcile_duration_seconds_sum", [])
        }

    def total_writes(self) -> float:
        return sum(self.writes.values())


def delta_writes(before: Snapshot, after: Snapshot) -> dict[str, int]:
    keys = set(before.writes) | set(after.writes)
    out = {f"{verb} {kind}": int(after.writes.get((verb, kind), 0) - before.writes.get((verb, kind), 0))
           for verb, kind in keys}
    return {k: v for k, v in sorted(out.items()) if v}


def delta_reconciles(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    by_result: dict[str, int] = {}
    for key in set(before.reconciles) | set(after.reconciles):
        diff = int(after.reconciles.get(key, 0) - before.reconciles.get(key, 0))
        if diff:
            by_result[key[2]] = by_result.get(key[2], 0) + diff
    count = sum(by_result.values())
    seconds = sum(after.reconcile_seconds.values()) - sum(before.reconcile_seconds.values())
    return {"count": count, "by_result": by_result, "seconds": seconds,
            "mean_ms": (seconds / count * 1000) if count else None}


# ---------------------------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace, state: Any, op: Operator, tracker: Tracker) -> None:
        from kubernetes import client, config

        self.args = args
        self.state = state
        self.op = op
        self.tracker = tracker
        self.api_client = config.new_client_from_config(config_file=state.kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.results: dict[str, Any] = {}
        self.attempt = 1  # part of every namespace name, so a redone phase never meets its old objects
        self.leftovers: dict[str, list[str]] = {}  # namespace -> EMQX names still to clean up

    def check(self) -> None:
        """Raise OperatorDied as soon as the operator under test is gone (called while waiting)."""
        self.op.require_alive()

    def ns(self, name: str) -> str:
        return f"{NS_PREFIX}a{self.attempt}-{name}"

    # -- namespaces -----------------------------------------------------------------------------

    def make_namespaces(self, names: list[str]) -> None:
        """Create namespaces and wait for their default ServiceAccount (pods are refused before it)."""
        from kubernetes.client.rest import ApiException

        for name in names:
            try:
                self.core.create_namespace({"metadata": {"name": name, "labels": {"sandbox.local/bench": "true"}}},
                                           _request_timeout=15)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        for name in names:
            wait_until(functools.partial(self._has_default_sa, name), 60, f"the default ServiceAccount in {name}")

    def _has_default_sa(self, namespace: str) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            self.core.read_namespaced_service_account("default", namespace, _request_timeout=10)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def delete_namespace(self, name: str, wait: float = 0) -> float | None:
        """Delete; with `wait`, return how long until it was gone (None if still there at the deadline)."""
        from kubernetes.client.rest import ApiException

        started = time.monotonic()
        try:
            self.core.delete_namespace(name, propagation_policy="Background", _request_timeout=15)
        except ApiException as exc:
            if exc.status != 404:
                raise
        if not wait:
            return None
        deadline = started + wait
        while time.monotonic() < deadline:
            try:
                self.core.read_namespace(name, _request_timeout=10)
            except ApiException as exc:
                if exc.status == 404:
                    return time.monotonic() - started
                raise
            time.sleep(0.2)
        return None

    def clean_up(self, namespace: str, names: list[str], wait: float = 60) -> float | None:
        """Delete the EMQX resources (and wait until they are gone), then their namespace.

        The CRs go first: deleting a namespace under a live CR makes the operator try to re-create its
        children in a terminating namespace, which the API refuses (403) and the operator reports as an
        RBAC error; that noise would hide real errors in the log scan.
        """
        from kubernetes.client.rest import ApiException

        started = time.monotonic()
        for name in names:
            try:
                self.custom.delete_namespaced_custom_object(GROUP, "v2beta1", namespace, PLURAL, name,
                                                            _request_timeout=15)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for name in names:
            wait_until(functools.partial(self._emqx_gone, namespace, name), 30, f"EMQX {namespace}/{name} to go")
        gone = self.delete_namespace(namespace, wait=wait)
        self.leftovers.pop(namespace, None)
        return None if gone is None else time.monotonic() - started

    def clean_leftovers(self, keep: str | None = None) -> None:
        """After an aborted phase: remove what it created (best effort), except namespace `keep`."""
        for namespace, names in list(self.leftovers.items()):
            if namespace == keep:
                continue
            try:
                self.clean_up(namespace, names, wait=0)
            except Exception as exc:  # noqa: BLE001 - best effort; the namespace is left behind
                print(f"  could not clean up {namespace}: {exc}", flush=True)

    def _emqx_gone(self, namespace: str, name: str) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            self.custom.get_namespaced_custom_object(GROUP, "v2beta1", namespace, PLURAL, name, _request_timeout=10)
            return False
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise

    def create_emqx(self, namespace: str, body: dict[str, Any], exist_ok: bool = False) -> None:
        from kubernetes.client.rest import ApiException

        self.leftovers.setdefault(namespace, []).append(body["metadata"]["name"])
        version = body["apiVersion"].split("/")[1]
        try:
            self.custom.create_namespaced_custom_object(GROUP, version, namespace, PLURAL, body, _request_timeout=15)
        except ApiException as exc:
            if not (exist_ok and exc.status == 409):
                raise

    # -- phase 1: create -> children --------------------------------------------------------------

    def phase_create(self) -> None:
        args = self.args
        total = args.warmup + args.runs
        names = [self.ns(f"create-{i:02d}") for i in range(total)]
        self.make_namespaces(names)
        cr_name = "bench"
        children = [("Secret", f"{cr_name}-node-cookie"), ("Secret", f"{cr_name}-bootstrap-api-key"),
                    ("ConfigMap", f"{cr_name}-configs"), ("Service", f"{cr_name}-headless"),
                    ("Service", f"{cr_name}-dashboard"), ("Service", f"{cr_name}-listeners"),
                    ("StatefulSet", f"{cr_name}-core"), ("PodDisruptionBudget", f"{cr_name}-core"),
                    ("PodDisruptionBudget", f"{cr_name}-replicant")]
        deployment = ("Deployment", f"{cr_name}-replicant")
        runs: list[dict[str, Any]] = []
        from tests.emqx_helpers import cr

        for index, namespace in enumerate(names):
            self.op.require_alive()
            body = cr(cr_name, image=SMALL_IMAGE, cores=args.create_cores, replicants=args.create_replicants)
            before = Snapshot(self.op)
            started = time.monotonic()
            self.create_emqx(namespace, body)
            seen = self.tracker.wait_seen([(k, namespace, n) for k, n in children], 60, self.check)
            children_at = max(seen.values())
            deploy_at = self.tracker.wait_seen([(deployment[0], namespace, deployment[1])], 180, self.check)
            after = Snapshot(self.op)
            run: dict[str, Any] = {
                "namespace": namespace,
                "warmup": index < args.warmup,
                "children_s": children_at - started,
                "deployment_s": next(iter(deploy_at.values())) - started,
                "per_object_s": {f"{k}/{n}": seen[(k, namespace, n)] - started for k, n in children},
                "last_child": "{}/{}".format(*max(children, key=lambda c: seen[(c[0], namespace, c[1])])),
                "writes": delta_writes(before, after),
                "reconciles": delta_reconciles(before, after)["count"],
                "events": self.tracker.events_since(started, [namespace]),
            }
            runs.append(run)
            run["cleanup_s"] = self.clean_up(namespace, [cr_name])
            print(f"  create run {index + 1}/{total}{' (warm-up)' if run['warmup'] else ''}: children "
                  f"{run['children_s']:.3f}s, Deployment {run['deployment_s']:.3f}s, {sum(run['writes'].values())} "
                  f"writes, {run['reconciles']} reconciles", flush=True)
        measured = [r for r in runs if not r["warmup"]]
        per_object = {f"{k}/{n}": summary([r["per_object_s"][f"{k}/{n}"] for r in measured]) for k, n in children}
        last: dict[str, int] = {}
        for r in measured:
            last[r["last_child"]] = last.get(r["last_child"], 0) + 1
        self.results["create"] = {
            "shape": f"{args.create_cores} cores + {args.create_replicants} replicants of {SMALL_IMAGE} (v2beta1)",
            "children": summary([r["children_s"] for r in measured]),
            "deployment": summary([r["deployment_s"] for r in measured]),
            "per_object": per_object,
            "last_child_counts": last,
            "warmup_runs": [r for r in runs if r["warmup"]],
            "runs": measured,
        }

    # -- phase 2: seed -> Ready --------------------------------------------------------------------

    def phase_seed(self, keep_last: bool) -> tuple[str, str] | None:
        args = self.args
        names = [self.ns(f"seed-{i}") for i in range(args.seed_runs)]
        self.make_namespaces(names)
        runs: list[dict[str, Any]] = []
        kept: tuple[str, str] | None = None
        for index, namespace in enumerate(names):
            self.op.require_alive()
            before = Snapshot(self.op)
            started = time.monotonic()
            self.create_emqx(namespace, seed_cr())
            ready_at = self.tracker.wait_ready([(namespace, "emqx")], args.ready_timeout, self.check)[
                (namespace, "emqx")]
            after = Snapshot(self.op)
            run: dict[str, Any] = {"namespace": namespace, "ready_s": ready_at - started,
                                   "writes": delta_writes(before, after), "reconciles": delta_reconciles(before, after),
                                   "events": self.tracker.events_since(started, [namespace])}
            runs.append(run)
            print(f"  seed run {index + 1}/{len(names)}: Ready after {run['ready_s']:.2f}s, "
                  f"{sum(run['writes'].values())} writes, {run['reconciles']['count']} reconciles", flush=True)
            if keep_last and index == len(names) - 1:
                kept = (namespace, "emqx")
            else:
                run["cleanup_s"] = self.clean_up(namespace, ["emqx"])
        self.results["seed"] = {
            "shape": f"seed manifest: v2alpha1, {SEED_IMAGE}, 3 cores + 3 replicants (defaults)",
            "ready": summary([r["ready_s"] for r in runs]),
            "runs": runs,
        }
        return kept

    # -- phase 3: idle ---------------------------------------------------------------------------------

    def settle(self, keys: list[tuple[str, str]]) -> dict[str, Any]:
        """Every CR Ready, then no operator write for --quiet-seconds."""
        started = time.monotonic()
        self.tracker.wait_ready(keys, self.args.ready_timeout, self.check)
        ready_s = time.monotonic() - started
        first = Snapshot(self.op)
        last_total, last_change = first.total_writes(), time.monotonic()
        deadline = time.monotonic() + max(120.0, self.args.resync_seconds * 3)
        while time.monotonic() - last_change < self.args.quiet_seconds:
            self.op.require_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"the operator kept writing for {deadline - started:.0f}s after all CRs were Ready")
            time.sleep(0.5)
            total = Snapshot(self.op).total_writes()
            if total != last_total:
                last_total, last_change = total, time.monotonic()
        return {"ready_wait_s": ready_s, "settle_s": time.monotonic() - started,
                "writes_while_settling": delta_writes(first, Snapshot(self.op))}

    def idle_window(self, label: str, keys: list[tuple[str, str]], shape: str) -> dict[str, Any]:
        settled = self.settle(keys)
        log_start = log_size(self.op.log)
        before = Snapshot(self.op)
        rss_samples = [before.status.get("VmRSS", 0)]
        end = before.at + self.args.idle_seconds
        while time.monotonic() < end:
            self.op.require_alive()
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            rss_samples.append(self.op.proc_status().get("VmRSS", 0))
        after = Snapshot(self.op)
        window = after.at - before.at
        writes = delta_writes(before, after)
        total = sum(writes.values())
        reconciles = delta_reconciles(before, after)
        allowed_status = len(keys) * window / STATUS_REFRESH_SECONDS
        status_writes = writes.get("PATCH EMQX/status", 0)
        result = {
            "label": label,
            "crs": len(keys),
            "shape": shape,
            "operator_pid": self.op.proc.pid,
            "operator_age_s": before.at - self.op.started,
            **settled,
            "window_s": window,
            "writes": writes,
            "writes_total": total,
            "writes_per_min": total * 60 / window,
            "status_refresh_budget": allowed_status,
            "unexpected_writes": {k: v for k, v in writes.items() if k != "PATCH EMQX/status"},
            "status_writes_over_budget": max(0.0, status_writes - allowed_status),
            "reconciles_per_min": reconciles["count"] * 60 / window,
            "reconciles": reconciles,
            "rss_mib": {"start": rss_samples[0] / 1024, "end": rss_samples[-1] / 1024,
                        "max": max(rss_samples) / 1024, "peak_hwm": after.status.get("VmHWM", 0) / 1024},
            "rss_series_mib_every_10s": [round(kib / 1024, 1) for kib in rss_samples[::10]],
            "threads": after.status.get("Threads"),
            "cpu_s": after.cpu - before.cpu,
            "cpu_pct": (after.cpu - before.cpu) / window * 100,
            "still_ready": self.tracker.ready_count(keys),
            "events": self.tracker.events_since(before.at),
            "log": scan_log(self.op.log, log_start),
        }
        print(f"  {label}: {len(keys)} CRs, {total} writes in {window:.0f}s {writes or ''}, "
              f"{reconciles['count']} reconciles, RSS {result['rss_mib']['end']:.1f} MiB, "
              f"CPU {result['cpu_s']:.2f}s", flush=True)
        return result

    def phase_idle_one(self, kept: tuple[str, str] | None) -> tuple[str, str]:
        if kept is None:  # the seed phase was skipped or failed: make one seed cluster here
            namespace = self.ns("seed-idle")
            self.make_namespaces([namespace])
            self.create_emqx(namespace, seed_cr(), exist_ok=True)
            kept = (namespace, "emqx")
        shape = f"1 seed cluster ({SEED_IMAGE}, 3 cores + 3 replicants)"
        self.results["idle1"] = self.idle_window("idle with 1 CR", [kept], shape)
        return kept

    def phase_idle_many(self) -> None:
        args = self.args
        namespace = self.ns(f"idle-{args.crs}")
        self.make_namespaces([namespace])
        keys = [(namespace, f"s{i:03d}") for i in range(args.crs)]
        started = time.monotonic()
        from tests.emqx_helpers import cr

        for _, name in keys:
            self.create_emqx(namespace, cr(name, image=SMALL_IMAGE, cores=1, replicants=0))
        created_s = time.monotonic() - started
        ready = self.tracker.wait_ready(keys, args.ready_timeout, self.check)
        all_ready_s = max(ready.values()) - started
        print(f"  {args.crs} CRs created in {created_s:.1f}s, all Ready after {all_ready_s:.1f}s", flush=True)
        result = self.idle_window(f"idle with {args.crs} CRs", keys,
                                  f"{args.crs} x (1 core + 0 replicants of {SMALL_IMAGE})")
        result["create_all_s"] = created_s
        result["all_ready_s"] = all_ready_s
        result["ready_spread"] = summary([t - started for t in ready.values()])
        self.results["idle100"] = result


def seed_cr() -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v2alpha1", "kind": "EMQX", "metadata": {"name": "emqx"},
            "spec": {"emqxTemplate": {"image": SEED_IMAGE}}}


# ---------------------------------------------------------------------------------------------- output


def render(results: dict[str, Any]) -> str:
    from tabulate import tabulate

    meta = results["meta"]
    out = [f"Operator benchmark, {meta['started_at']} ({meta['cpus']} CPUs, resync {meta['resync_seconds']:g}s, "
           f"{meta['workers']} workers, total {meta.get('duration_s', 0):.0f}s), code {meta['git']}",
           f"machine load average (1 min) at start {(meta.get('loadavg_at_start') or ['?'])[0]}, after each phase: "
           + ", ".join(f"{k} {v[0] if v else '?'}" for k, v in results.get("loadavg_after_phase", {}).items()), ""]
    rows = []

    def row(what: str, s: dict[str, Any]) -> None:
        rows.append([what, s["n"], f"{s['p50']:.3f}", f"{s['p95']:.3f}", f"{s['min']:.3f}", f"{s['max']:.3f}"])

    if "create" in results:
        row("create -> 9 child objects present", results["create"]["children"])
        row("create -> replicant Deployment present", results["create"]["deployment"])
    if "seed" in results:
        row("seed CR -> Ready=True", results["seed"]["ready"])
    if "idle100" in results and "ready_spread" in results["idle100"]:
        idle = results["idle100"]
        rows.append([f"{idle['crs']} small CRs -> all Ready", 1, f"{idle['all_ready_s']:.3f}", "", "", ""])
    if rows:
        out.append(tabulate(rows, headers=["latency (s)", "n", "p50", "p95", "min", "max"], tablefmt="github"))
        out.append("")
    if "create" in results:
        out.append(f"create shape: {results['create']['shape']}; per object (p50 / p95 s):")
        per = results["create"]["per_object"]
        out.append(tabulate([[k, f"{v['p50']:.3f}", f"{v['p95']:.3f}"] for k, v in per.items()],
                            headers=["object", "p50", "p95"], tablefmt="github"))
        out.append("")
    if "seed" in results:
        for run in results["seed"]["runs"]:
            out.append(f"seed run {run['namespace']}: Ready {run['ready_s']:.2f}s, "
                       f"{run['reconciles']['count']} reconciles, writes {run['writes']}")
            out.extend(f"  event {e['type']} {e['reason']}: {e['message']}" for e in run.get("events", []))
        out.append("")
    idle_rows = []
    for key in ("idle1", "idle100"):
        idle = results.get(key)
        if not idle or "writes_per_min" not in idle:
            continue
        writes = ", ".join(f"{k}: {v}" for k, v in idle["writes"].items()) or "none"
        idle_rows.append([
            idle["crs"], f"{idle['window_s']:.0f}", f"{idle['writes_per_min']:.2f}", writes,
            f"{idle['reconciles_per_min']:.0f}",
            f"{idle['reconciles']['mean_ms']:.0f}" if idle["reconciles"]["mean_ms"] is not None else "-",
            f"{idle['rss_mib']['start']:.1f} / {idle['rss_mib']['end']:.1f} / {idle['rss_mib']['max']:.1f}",
            f"{idle['cpu_s']:.2f} ({idle['cpu_pct']:.1f}%)",
            f"{idle['still_ready']}/{idle['crs']}",
        ])
    if idle_rows:
        out.append(tabulate(idle_rows, headers=["idle CRs", "window s", "writes/min", "writes (verb kind: n)",
                                                "reconciles/min", "mean reconcile ms", "RSS MiB start/end/max",
                                                "CPU s (%)", "Ready at end"], tablefmt="github"))
        for key in ("idle1", "idle100"):
            idle = results.get(key)
            if idle and "shape" in idle:
                verdict = "no unexpected writes" if not idle["unexpected_writes"] and not \
                    idle["status_writes_over_budget"] else f"UNEXPECTED writes: {idle['unexpected_writes']}"
                out.append(f"  {idle['crs']} CR(s): {idle['shape']}; settled {idle['settle_s']:.1f}s after start "
                           f"(writes while settling: {idle['writes_while_settling'] or 'none'}); {verdict}")
        out.append("")
    for op in results.get("operators", []):
        head = f"operator pid {op['pid']} ({op['started_because']}, code {op['code']}): "
        if "died" in op:
            died = op["died"]
            out.append(head + f"DIED (noticed {died['uptime_s']:.0f}s after its start), exit code "
                       f"{died['exit_code']}: {died['evidence']}")
        else:
            out.append(head + f"RSS at start {op.get('rss_start_mib', 0):.1f} MiB, end {op.get('rss_end_mib', 0):.1f} "
                       f"MiB, peak (VmHWM) {op.get('rss_peak_mib', 0):.1f} MiB, CPU {op.get('cpu_total_s', 0):.1f}s "
                       f"in {op.get('uptime_s', 0):.0f}s, {op.get('reconciles_total', 0)} reconciles "
                       f"({op.get('reconcile_errors', 0)} errors), {op.get('writes_total', 0)} writes")
        logs = op.get("log_scan") or {}
        out.append(f"  log {op['log']}: {logs.get('errors', 0)} ERROR, {logs.get('warnings', 0)} WARNING, "
                   f"{logs.get('tracebacks', 0)} tracebacks")
        out.extend(f"    {sample}" for sample in logs.get("samples", []))
        if op.get("scrape_failures"):
            out.append(f"  {len(op['scrape_failures'])} failed /metrics scrapes: {op['scrape_failures'][:2]}")
    if "simulator_log" in results:
        sim = results["simulator_log"]
        out.append(f"simulator log: {sim.get('errors', 0)} ERROR, {sim.get('warnings', 0)} WARNING")
        out.extend(f"  {sample}" for sample in sim.get("samples", [])[:5])
    for restart in results.get("operator_restarts", []):
        out.append(f"OPERATOR RESTARTED during {restart['phase']} (attempt {restart['attempt']}, "
                   f"{restart['at_s']:.0f}s into the run): {restart['why']}")
    for phase, error in results.get("errors", {}).items():
        out.append(f"PHASE {phase} FAILED: {error}")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="measured create runs")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured create runs made first")
    parser.add_argument("--create-cores", type=int, default=3)
    parser.add_argument("--create-replicants", type=int, default=3)
    parser.add_argument("--seed-runs", type=int, default=3)
    parser.add_argument("--crs", type=int, default=100, help="CRs for the large idle measurement")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--quiet-seconds", type=float, default=10.0)
    parser.add_argument("--resync-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--keep-logs", type=Path, help="copy the operator and simulator logs here")
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    if args.runs < 1 or args.seed_runs < 1 or args.crs < 1:
        parser.error("--runs, --seed-runs and --crs must be at least 1")
    return args


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def _on_sigterm(*_: Any) -> None:
    raise KeyboardInterrupt


def source_hash() -> str:
    """Hash of the code the operator runs (operator/ and the shared kubectl_emqx/), to tie numbers to code."""
    digest = hashlib.sha256()
    for path in sorted([*REPO_ROOT.glob("operator/emqx_operator/*.py"), *REPO_ROOT.glob("kubectl_emqx/**/*.py")]):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def start_operator(state: Any, args: argparse.Namespace, number: int) -> Operator:
    from sandbox import operator_process

    code = source_hash()
    proc, comp, live_port = operator_process.spawn(
        state, name=f"operator-bench-{number}",
        extra_args=["--resync-seconds", f"{args.resync_seconds:g}", "--workers", str(args.workers)])
    op = Operator(proc, comp.log, f"http://127.0.0.1:{comp.port}/metrics")
    op.code = code
    try:
        operator_process.wait_live(comp, live_port)
        wait_until(functools.partial(_metrics_up, op), 30, "the operator's metrics endpoint")
        op.mark_live()
    except BaseException:
        op.stop()
        raise
    return op


def _metrics_up(op: Operator) -> bool:
    try:
        op.metrics()
        return True
    except (OSError, BenchError):
        return False


def operator_summary(op: Operator, reason: str) -> dict[str, Any]:
    """What one operator process did, read just before it is stopped (or after it died)."""
    out: dict[str, Any] = {"pid": op.proc.pid, "started_because": reason, "code": op.code,
                           "log": str(op.log.name), "rss_start_mib": op.rss_start_kib / 1024}
    if op.alive():
        try:
            final = Snapshot(op)
            out.update({
                "rss_end_mib": final.status.get("VmRSS", 0) / 1024,
                "rss_peak_mib": final.status.get("VmHWM", 0) / 1024,
                "threads": final.status.get("Threads"),
                "cpu_total_s": final.cpu,
                "uptime_s": final.at - op.started,
                "writes_total": int(final.total_writes()),
                "writes_by_kind": {f"{v} {k}": int(n) for (v, k), n in sorted(final.writes.items())},
                "reconciles_total": int(sum(final.reconciles.values())),
                "reconcile_errors": int(sum(n for (_, _, r), n in final.reconciles.items() if r != "ok")),
            })
        except BenchError as exc:
            out["final_scrape_error"] = str(exc)
    else:
        op.require_alive_quietly()
        noticed = op.died_noticed or time.monotonic()
        out["died"] = {"exit_code": op.proc.returncode, "evidence": op.death_evidence(),
                       "uptime_s": noticed - op.started}
    out["scrape_failures"] = op.scrape_failures
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    from kubernetes import client, config

    from sandbox import cluster, operator_process

    signal.signal(signal.SIGTERM, _on_sigterm)
    wall_start = time.monotonic()
    results: dict[str, Any] = {"meta": {
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git": _git_revision(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "resync_seconds": args.resync_seconds,
        "workers": args.workers,
        "loadavg_at_start": loadavg(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }, "errors": {}, "operators": []}
    os.environ.setdefault(cluster.POD_CIDR_ENV, pick_pod_cidr())
    directory = Path(tempfile.mkdtemp(prefix="emqx-bench-"))
    operators: list[tuple[Operator, str]] = []  # every operator process started, with why
    watchers: list[Watcher] = []
    sim_log: Path | None = None
    try:
        print(f"starting a private sandbox in {directory} (pod CIDR {os.environ[cluster.POD_CIDR_ENV]})", flush=True)
        step = time.monotonic()
        state = cluster.up(directory=directory)
        results["meta"]["sandbox_up_s"] = time.monotonic() - step
        sim_log = next((Path(c.log) for c in state.components if c.name == "emqx-simulator"), None)
        operator_process.install_crd(state)
        op = start_operator(state, args, 1)
        operators.append((op, "start"))
        print(f"sandbox up in {results['meta']['sandbox_up_s']:.1f}s; operator pid {op.proc.pid}, "
              f"RSS {op.rss_start_kib / 1024:.1f} MiB, code {op.code}", flush=True)

        tracker = Tracker()
        clients = [config.new_client_from_config(config_file=state.kubeconfig) for _ in range(8)]
        watchers = [
            Watcher("Secret", client.CoreV1Api(clients[0]).list_secret_for_all_namespaces, tracker),
            Watcher("ConfigMap", client.CoreV1Api(clients[1]).list_config_map_for_all_namespaces, tracker),
            Watcher("Service", client.CoreV1Api(clients[2]).list_service_for_all_namespaces, tracker),
            Watcher("StatefulSet", client.AppsV1Api(clients[3]).list_stateful_set_for_all_namespaces, tracker),
            Watcher("Deployment", client.AppsV1Api(clients[4]).list_deployment_for_all_namespaces, tracker),
            Watcher("PodDisruptionBudget",
                    client.PolicyV1Api(clients[5]).list_pod_disruption_budget_for_all_namespaces, tracker),
            Watcher("EMQX", client.CustomObjectsApi(clients[6]).list_cluster_custom_object, tracker,
                    list_args=(GROUP, "v2beta1", PLURAL)),
            Watcher("Event", client.CoreV1Api(clients[7]).list_event_for_all_namespaces, tracker),
        ]
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            if not watcher.synced.wait(30):
                raise BenchError(f"the {watcher.kind} watch did not sync")
        bench = Bench(args, state, op, tracker)
        kept: tuple[str, str] | None = None
        for phase in PHASES:
            if phase not in args.phases:
                continue
            step = time.monotonic()
            for attempt in range(1, MAX_ATTEMPTS + 1):
                print(f"phase {phase}" + (f" (attempt {attempt})" if attempt > 1 else ""), flush=True)
                try:
                    if phase == "create":
                        bench.phase_create()
                    elif phase == "seed":
                        kept = bench.phase_seed(keep_last="idle1" in args.phases)
                    elif phase == "idle1":
                        kept = bench.phase_idle_one(kept)
                    elif phase == "idle100":
                        if kept is not None:
                            bench.clean_up(kept[0], [kept[1]])
                            kept = None
                        bench.phase_idle_many()
                    results["errors"].pop(phase, None)
                    break
                except OperatorDied as exc:
                    results["errors"][phase] = f"OperatorDied: {exc}"
                    restart = {"phase": phase, "attempt": attempt, "why": str(exc),
                               "at_s": time.monotonic() - wall_start}
                    results.setdefault("operator_restarts", []).append(restart)
                    print(f"  the operator died during {phase}: {exc}", flush=True)
                    if attempt == MAX_ATTEMPTS:
                        break
                    bench.attempt += 1
                    bench.clean_leftovers(keep=kept[0] if kept and phase == "idle1" else None)
                    if kept and phase != "idle1":
                        kept = None
                    op = start_operator(state, args, len(operators) + 1)
                    operators.append((op, f"the previous one died during {phase}"))
                    bench.op = op
                    print(f"  restarted the operator: pid {op.proc.pid}, code {op.code}", flush=True)
                except Exception as exc:  # noqa: BLE001 - report the phase, go on with the next one
                    results["errors"][phase] = f"{type(exc).__name__}: {exc}"
                    if not isinstance(exc, BenchError):
                        results.setdefault("tracebacks", {})[phase] = traceback.format_exc()
                    print(f"phase {phase} FAILED: {type(exc).__name__}: {exc}", flush=True)
                    break
            results.update(bench.results)
            results.setdefault("phase_seconds", {})[phase] = time.monotonic() - step
            results.setdefault("loadavg_after_phase", {})[phase] = loadavg()
    except KeyboardInterrupt:
        results["errors"]["interrupted"] = "interrupted"
        print("interrupted; tearing down", flush=True)
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - always tear down, then report
        results["errors"]["setup"] = f"{type(exc).__name__}: {exc}"
        results.setdefault("tracebacks", {})["setup"] = traceback.format_exc()
        print(f"FAILED: {type(exc).__name__}: {exc}", flush=True)
    finally:
        for watcher in watchers:
            watcher.stop()
        for op, reason in operators:
            summary_ = operator_summary(op, reason)
            op.stop()
            summary_["log_scan"] = scan_log(op.log)
            results["operators"].append(summary_)
        if sim_log is not None:
            results["simulator_log"] = scan_log(sim_log)
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in (directory / "logs").glob("*.log"):
                shutil.copy2(log, args.keep_logs / log.name)
        step = time.monotonic()
        cluster.down(directory)
        results["meta"]["teardown_s"] = time.monotonic() - step
    results["meta"]["duration_s"] = time.monotonic() - wall_start
    if not results["errors"]:
        del results["errors"]
    print()
    print(render(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
        print(f"\nresults written to {args.json}")
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
