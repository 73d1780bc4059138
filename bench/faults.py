"""Fault matrix (issue 17): every operation under every fault, on a private sandbox; prints one table.

    .venv/bin/python bench/faults.py [--runs 3] [--seed N] [--quick] [--operations a,b] [--faults x,y]
                                     [--json out.json] [--keep-logs DIR]

Operations (each on an EMQX Enterprise 5.8.5 cluster of 2 cores with a 1 GiB volume each and 1
replicant, unless said otherwise; waitTakeover 0):

  create             the resource is created (the cluster does not exist yet)
  scale-cores-up     2 -> 3 cores
  scale-cores-down   3 -> 2 cores (the departed core is force-left; its volume goes, as whenScaled says)
  scale-replicants   1 -> 3 replicants
  live-config        log.console.level = debug (one PUT /api/v5/configs, no restart)
  restart-config     log.console.level = info plus node.process_limit (PUT, then a rolling restart)
  patch-upgrade      5.8.5 -> 5.8.6 (cores one at a time, then replicants)
  rollback           from a stalled upgrade to 5.8.99 (a tag that cannot be pulled) back to 5.8.5

Faults (each injected once per run, at a random moment of the operation, see below):

  operator-kill      the operator gets SIGKILL and is started again at once (as its Deployment would)
  operator-term      the operator gets SIGTERM (it finishes the pass in flight), then a new one starts
  apiserver-restart  kube-apiserver stops and starts again (restart_component: ~10-20 s away)
  etcd-restart       etcd stops and starts again, data kept (the API server answers errors meanwhile)
  simulator-restart  the EMQX simulator restarts: every simulated node reboots in its pod (restartCount
                     + 1) on the data its volume kept
  emqx-api           EMQX's API misbehaves, the variant chosen per run: 5xx (503 on every API call of
                     the cluster for 20 s), timeout (answers after 8 s, past the operator's 5 s, for
                     20 s), 401 (the operator's key refused for 20 s), slow (one node answers after 3 s
                     until the run ends)
  pod-deleted        one of the cluster's pods, chosen at random, is deleted mid-step (its node
                     disappears); the controllers make a new one
  watch-cut          every connection of the operator to the API server is cut (its watch streams and
                     any request in flight end; a TCP proxy in front of the API server, for the
                     operator only; sandbox/faultproxy.py)

How a run works. A round is one fault: for every operation, --runs clusters are created (each in a
namespace of its own) and settled first (the rollback's clusters are also driven into the stall).
The fault happens once at a moment T (for the local faults, emqx-api and pod-deleted, once per
cluster at T). Each operation starts before T by a seeded random fraction of its expected duration
(EXPECTED_SECONDS, measured without faults, honest kubelet timing), so the fault lands at a random
point of each run: early, mid-step, or near the end (a run that finished before T then shows how a
settled cluster takes the fault). The N runs of a cell share the round's one fault event (a restart
of the API server, say) but each meets it at its own moment of its operation.

Per cell: converged/N (at the end: Ready for the operation's generation, EMQX reports exactly the
desired nodes running the desired version with nothing stopped left over, and the operation's own
check: image, live configuration as EMQX returns it, every node restarted...); the median and worst
time from the operation's write to the Ready that lasted; pods replaced more than once in the
rollout (a core ordinal with more than one new pod, or more new replicant pods than the operation
needs; the bench's own pod deletion is not counted); PVCs lost (a desired core's claim gone or
re-created); EMQX API requests (the simulator's per-namespace count, from the operation's write to
the end of the window); the operator's API writes in the namespace after it settled (the audit log,
from 1 s after the Ready was seen for --window seconds; the operator runs with --resync-seconds 10,
so every window holds a settled pass); unexplained: runs in which the resource waited longer than a
minute without a condition that explains it (Ready missing or judging an older generation, or the
catch-all reason "Progressing"); mid-op: runs in which the fault landed before the operation was
Ready.

Also printed: the seed, the operator's RSS and CPU seconds before and after the matrix (VmRSS from
/proc, the operator restarted by the kill rounds, which run first), the ERROR lines and tracebacks in
its log per round, and the load average. The bench starts a private sandbox (honest kubelet timing,
the API server's audit log on) and always tears it down. Everything stays on 127.0.0.1.

Defaults: --runs 3, every operation and fault: 8 rounds of 24 clusters, about 20 minutes on the
2-core machine. --quick: one run per cell, faults operator-kill and simulator-restart only (a smoke
pass of a few minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from sandbox import cluster, operator_process  # noqa: E402
from sandbox.emqxsim.client import SimClient  # noqa: E402
from sandbox.faultproxy import TcpProxy  # noqa: E402

GROUP, VERSION, PLURAL = "apps.emqx.io", "v2beta1", "emqxes"
NAME = "emqx"
NS_PREFIX = "fm-"
REPO_IMAGE = "emqx/emqx-enterprise"
BASE, NEXT, BAD = "5.8.5", "5.8.6", "5.8.99"
OPERATOR_USER = "emqx-operator-bench"
RESYNC_SECONDS = 10
SETTLE_TIMEOUT = 300.0  # creating and settling a round's clusters
RUN_TIMEOUT = 360.0  # an operation under a fault, from its write
EMQX_FAULT_SECONDS = 20.0
LIVE_LEVEL = "debug"

# Seconds each operation takes without faults (honest kubelet timing, measured on the sandbox):
# the fault lands at a random fraction of this.
EXPECTED_SECONDS = {
    "create": 22.0, "scale-cores-up": 11.0, "scale-cores-down": 1.0, "scale-replicants": 11.0,
    "live-config": 1.0, "restart-config": 33.0, "patch-upgrade": 33.0, "rollback": 11.0,
}
OPERATIONS = tuple(EXPECTED_SECONDS)
FAULTS = ("operator-kill", "operator-term", "apiserver-restart", "etcd-restart", "simulator-restart", "emqx-api",
          "pod-deleted", "watch-cut")
LOCAL_FAULTS = ("emqx-api", "pod-deleted")
EMQX_VARIANTS = ("5xx", "timeout", "401", "slow")
QUICK_FAULTS = ("operator-kill", "simulator-restart")


def image(version: str) -> str:
    return f"{REPO_IMAGE}:{version}"


# ---------------------------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Shape:
    cores: int
    replicants: int
    version: str


def before_shape(op: str) -> Shape:
    return Shape(3 if op == "scale-cores-down" else 2, 1, BASE)


def after_shape(op: str) -> Shape:
    cores = {"scale-cores-up": 3, "scale-cores-down": 2}.get(op, 2)
    replicants = 3 if op == "scale-replicants" else 1
    return Shape(cores, replicants, NEXT if op == "patch-upgrade" else BASE)


def resource(op: str) -> dict[str, Any]:
    shape = before_shape(op)
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "EMQX", "metadata": {"name": NAME},
        "spec": {
            "image": image(shape.version),
            "coreTemplate": {"spec": {"replicas": shape.cores, "volumeClaimTemplates": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}},
            "replicantTemplate": {"spec": {"replicas": shape.replicants}},
            "updateStrategy": {"evacuationStrategy": {"waitTakeover": 0}},
        },
    }


def operation_patch(op: str) -> dict[str, Any]:
    return {
        "scale-cores-up": {"spec": {"coreTemplate": {"spec": {"replicas": 3}}}},
        "scale-cores-down": {"spec": {"coreTemplate": {"spec": {"replicas": 2}}}},
        "scale-replicants": {"spec": {"replicantTemplate": {"spec": {"replicas": 3}}}},
        "live-config": {"spec": {"config": {"data": f"log.console.level = {LIVE_LEVEL}\n"}}},
        "restart-config": {"spec": {"config": {"data": "log.console.level = info\nnode.process_limit = 1048576\n"}}},
        "patch-upgrade": {"spec": {"image": image(NEXT)}},
        "rollback": {"spec": {"image": image(BASE)}},
    }[op]


def rollout(op: str) -> bool:
    """Every node is replaced (cores in place, replicants by new pods)."""
    return op in ("restart-config", "patch-upgrade")


# ---------------------------------------------------------------------------------------------- records


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


@dataclass
class CrSample:
    at: float  # monotonic
    wall: float
    generation: int
    observed: int | None
    ready: str | None
    ready_generation: int | None
    reason: str
    message: str


@dataclass
class PodSeen:
    name: str
    role: str
    first: float
    gone: float | None = None
    ran: bool = False  # its container started (an EMQX node booted in it)


class Recorder:
    """Follows every EMQX resource and pod of the bench's namespaces through watches (relisting after
    any failure, e.g. while the API server restarts): CR status history and pod lifetimes."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self.lock = threading.Lock()
        self.crs: dict[str, list[CrSample]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, list[tuple[float, dict[str, Any]]]] = {}  # the last 200 versions
        self.pods: dict[str, dict[str, PodSeen]] = {}  # namespace -> uid -> seen
        self.stop = threading.Event()
        self.errors = 0

    def start(self) -> None:
        from kubernetes import client

        custom = client.CustomObjectsApi(self.api_client)
        core = client.CoreV1Api(self.api_client)
        for target, args, on in (
            (custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL), self._on_cr),
            (core.list_pod_for_all_namespaces, (), self._on_pod),
        ):
            threading.Thread(target=self._follow, args=(target, args, on), daemon=True).start()

    def _follow(self, list_func: Callable[..., Any], args: tuple[Any, ...], on: Callable[[str, dict[str, Any]], None]
                ) -> None:
        from kubernetes import watch

        kwargs: dict[str, Any] = {}
        if list_func.__name__ == "list_pod_for_all_namespaces":
            kwargs["label_selector"] = "apps.emqx.io/instance"
        while not self.stop.is_set():
            try:
                listing = list_func(*args, _request_timeout=20, **kwargs)
                items = listing["items"] if isinstance(listing, dict) else [
                    self.api_client.sanitize_for_serialization(i) for i in listing.items]
                version = (listing["metadata"]["resourceVersion"] if isinstance(listing, dict)
                           else listing.metadata.resource_version)
                for item in items:
                    on("SYNC", item)
                if list_func.__name__ == "list_pod_for_all_namespaces":
                    self._sync_pods(items)
                for event in watch.Watch().stream(list_func, *args, resource_version=version, timeout_seconds=50,
                                                  _request_timeout=60, **kwargs):
                    if self.stop.is_set():
                        return
                    if event["type"] == "ERROR":
                        break
                    raw = event.get("raw_object") or event["object"]
                    on(event["type"], raw if isinstance(raw, dict) else self.api_client.sanitize_for_serialization(raw))
            except Exception:  # noqa: BLE001 - the API server may be away: relist
                self.errors += 1
                self.stop.wait(0.5)

    def _on_cr(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if not namespace.startswith(NS_PREFIX) or kind == "DELETED":
            return
        status = obj.get("status") or {}
        ready = condition(obj, "Ready")
        sample = CrSample(time.monotonic(), time.time(), int(meta.get("generation") or 0),
                          status.get("observedGeneration"), ready.get("status"), ready.get("observedGeneration"),
                          str(ready.get("reason") or ""), str(ready.get("message") or ""))
        with self.lock:
            self.objects[namespace] = obj
            statuses = self.statuses.setdefault(namespace, [])
            if not statuses or statuses[-1][1] != status:
                statuses.append((sample.wall, status))
                del statuses[:-200]
            history = self.crs.setdefault(namespace, [])
            last = history[-1] if history else None
            if last is None or (last.generation, last.observed, last.ready, last.ready_generation, last.reason) != (
                    sample.generation, sample.observed, sample.ready, sample.ready_generation, sample.reason):
                history.append(sample)

    def _on_pod(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "")
        if not namespace.startswith(NS_PREFIX):
            return
        uid = meta.get("uid", "")
        now = time.monotonic()
        with self.lock:
            pods = self.pods.setdefault(namespace, {})
            seen = pods.get(uid)
            if seen is None:
                role = (meta.get("labels") or {}).get("apps.emqx.io/db-role", "")
                seen = pods[uid] = PodSeen(meta.get("name", ""), role, now)
            statuses = (obj.get("status") or {}).get("containerStatuses") or []
            seen.ran = seen.ran or any((c.get("state") or {}).get("running") or (c.get("state") or {}).get(
                "terminated") or c.get("restartCount") for c in statuses)
            if kind == "DELETED" or meta.get("deletionTimestamp"):
                seen.gone = seen.gone or now

    def _sync_pods(self, items: list[dict[str, Any]]) -> None:
        present = {(i.get("metadata") or {}).get("uid") for i in items}
        now = time.monotonic()
        with self.lock:
            for pods in self.pods.values():
                for uid, seen in pods.items():
                    if uid not in present and seen.gone is None:
                        seen.gone = now

    def status_changes(self, namespace: str, since: float) -> list[str]:
        """What changed in the status after wall-clock time `since` (keys, nested one level)."""
        with self.lock:
            statuses = list(self.statuses.get(namespace, []))
        before = next((status for at, status in reversed(statuses) if at <= since), None)
        changes = []
        for at, status in statuses:
            if at <= since or before is None:
                continue
            for key in sorted(set(status) | set(before)):
                old, new = before.get(key), status.get(key)
                if old == new or key == "emqxNodesObservedAt":
                    continue
                if key in ("conditions", "emqxNodes") and isinstance(old, list) and isinstance(new, list):
                    id_key = "type" if key == "conditions" else "node"
                    olds = {str(i.get(id_key)): i for i in old}
                    for item in new:
                        was = olds.get(str(item.get(id_key))) or {}
                        fields = sorted(k for k in set(item) | set(was) if item.get(k) != was.get(k)
                                        and k not in ("lastTransitionTime", "uptime", "load1", "load5", "load15",
                                                      "memory_used", "process_used"))
                        if fields:
                            changes.append(f"{key}[{item.get(id_key)}].{{{','.join(fields)}}}: "
                                           f"{json.dumps({k: item.get(k) for k in fields})[:160]}")
                    continue
                if isinstance(old, dict) and isinstance(new, dict):
                    inner = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                    changes.append(f"{key}.{{{','.join(inner)}}}: {json.dumps({k: new.get(k) for k in inner})[:160]}")
                else:
                    changes.append(f"{key}: {json.dumps(new)[:160]}")
            before = status
        return changes

    def history(self, namespace: str) -> list[CrSample]:
        with self.lock:
            return list(self.crs.get(namespace, []))

    def pods_of(self, namespace: str) -> dict[str, PodSeen]:
        with self.lock:
            return dict(self.pods.get(namespace, {}))


class AuditLog:
    """The API server's audit log: the operator's writes per namespace, with their times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.writes: dict[str, list[tuple[float, str]]] = {}

    def read(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if (event.get("user") or {}).get("username") != OPERATOR_USER:
                continue
            ref = event.get("objectRef") or {}
            namespace = ref.get("namespace") or ""
            if not namespace.startswith(NS_PREFIX):
                continue
            stamp = datetime.datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            what = f"{event.get('verb')} {ref.get('resource')}{sub} {ref.get('name') or ''}".strip()
            self.writes.setdefault(namespace, []).append((stamp.timestamp(), what))

    def between(self, namespace: str, start: float, end: float) -> list[str]:
        return [what for at, what in self.writes.get(namespace, []) if start <= at <= end]


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    op: str
    fault: str
    index: int
    namespace: str
    fraction: float
    variant: str = ""
    generation: int = 0
    start: float = 0.0  # monotonic, the operation's write
    fault_at: float = 0.0
    before_pods: dict[str, str] = field(default_factory=dict)  # name -> uid
    before_pvcs: dict[str, str] = field(default_factory=dict)
    requests_at_start: int = 0
    requests_carried: int = 0  # counted by a simulator that restarted since
    deleted: tuple[str, str] | None = None  # (role, uid) the bench deleted
    # results
    converged: bool = False
    why_not: str = ""
    ready_after: float | None = None
    replaced_twice: int = 0
    pvcs_lost: int = 0
    emqx_requests: int = 0
    writes_after: int | None = None
    writes_detail: list[str] = field(default_factory=list)
    unexplained: float = 0.0
    mid_op: bool = False
    ready_wall: float | None = None
    ready_mono: float | None = None


class Operator:
    """The operator process under test (from the working tree), through the cutting proxy."""

    def __init__(self, state: cluster.SandboxState, kubeconfig: Path) -> None:
        self.state = state
        self.kubeconfig = kubeconfig
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.logs: list[Path] = []

    def start(self) -> None:
        self.starts += 1
        proc, comp, port = operator_process.spawn(
            self.state, name=f"operator-faults-{self.starts}", kubeconfig=str(self.kubeconfig),
            extra_args=["--resync-seconds", str(RESYNC_SECONDS)])
        self.proc = proc
        self.logs.append(Path(comp.log))
        operator_process.wait_live(comp, port, timeout=120)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGTERM)

    def usage(self) -> tuple[float, float]:
        """(RSS MiB, CPU seconds) of the running process."""
        assert self.proc is not None
        pid = self.proc.pid
        rss = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, cpu


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.state: cluster.SandboxState | None = None
        self.rounds: list[dict[str, Any]] = []
        self.runs: list[Run] = []
        self.usage: list[tuple[str, float, float]] = []
        self.deleting: list[threading.Thread] = []

    # --- setup ----------------------------------------------------------------------------------

    def open(self, directory: Path) -> None:
        from kubernetes import config

        self.state = cluster.up(directory=directory, probe_timing="honest", audit=True)
        operator_process.install_crd(self.state)
        self.api = config.new_client_from_config(config_file=self.state.kubeconfig)
        self.sim = SimClient(self.state.sim_control_url)
        self.proxy = TcpProxy(("127.0.0.1", self.state.api_port)).start()
        kubeconfig = cluster.client_kubeconfig(self.state, OPERATOR_USER, directory / "operator-kubeconfig",
                                               server=f"https://{self.proxy.address}")
        self.operator = Operator(self.state, kubeconfig)
        self.operator.start()
        self.recorder = Recorder(self.api)
        self.recorder.start()
        self.audit = AuditLog(directory / "logs" / cluster.AUDIT_LOG)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.recorder.stop.set()
        with contextlib.suppress(Exception):
            self.operator.stop()
        with contextlib.suppress(Exception):
            self.proxy.close()

    # --- kubernetes helpers -----------------------------------------------------------------------

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def retry(self, what: str, func: Callable[[], Any], timeout: float = 120) -> Any:
        """The API server may be restarting: retry a call until it answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return func()
            except Exception as exc:  # noqa: BLE001
                if getattr(exc, "status", None) in (400, 404, 409, 422) or time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: {exc}") from exc
                time.sleep(0.5)

    def cr(self, namespace: str) -> dict[str, Any]:
        return dict(self.retry("get EMQX", lambda: self.custom().get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, NAME, _request_timeout=10)))

    def patch(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.retry("patch EMQX", lambda: self.custom().patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, NAME, body, _request_timeout=10)))

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.retry("create EMQX", lambda: self.custom().create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, _request_timeout=10)))

    def pods(self, namespace: str) -> list[Any]:
        items = self.retry("list pods", lambda: self.core().list_namespaced_pod(
            namespace, label_selector=f"apps.emqx.io/instance={NAME}", _request_timeout=10).items)
        return [p for p in items if p.metadata.deletion_timestamp is None]

    def pvcs(self, namespace: str) -> dict[str, str]:
        items = self.retry("list PVCs", lambda: self.core().list_namespaced_persistent_volume_claim(
            namespace, _request_timeout=10).items)
        return {p.metadata.name: p.metadata.uid for p in items if p.metadata.deletion_timestamp is None}

    def requests(self, namespace: str) -> int:
        try:
            return int(self.sim.request_counts(namespace=namespace)["total"])
        except Exception:  # noqa: BLE001 - the simulator may be restarting
            return 0

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except Exception:  # noqa: BLE001 - checked again
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    # --- a round ------------------------------------------------------------------------------------

    def settled(self, namespace: str, shape: Shape | None = None) -> bool:
        obj = self.recorder.objects.get(namespace)
        if obj is None:
            return False
        status = obj.get("status") or {}
        ready = condition(obj, "Ready")
        generation = obj["metadata"]["generation"]
        return bool(ready.get("status") == "True" and ready.get("observedGeneration") == generation
                    and status.get("observedGeneration") == generation)

    def prepare(self, fault: str, round_index: int) -> list[Run]:
        runs: list[Run] = []
        for op in self.args.operations:
            for index in range(self.args.runs):
                namespace = f"{NS_PREFIX}{round_index}-{op}-{index}"[:63]
                run = Run(op, fault, index, namespace, self.rng.random())
                if fault == "emqx-api":
                    run.variant = EMQX_VARIANTS[(index + self.args.operations.index(op)) % len(EMQX_VARIANTS)]
                runs.append(run)
        for run in runs:
            self.retry("create namespace", lambda run=run: self.core().create_namespace(
                {"metadata": {"name": run.namespace, "labels": {"sandbox.local/bench": "faults"}}}))
        for run in runs:
            self.wait(lambda run=run: self.core().read_namespaced_service_account("default", run.namespace), 60,
                      f"the default ServiceAccount of {run.namespace}")
        for run in runs:
            if run.op != "create":
                self.create(run.namespace, resource(run.op))
        pending = [r for r in runs if r.op != "create"]
        self.wait(lambda: all(self.settled(r.namespace) for r in pending), SETTLE_TIMEOUT,
                  "the round's clusters to settle")
        stalls = [r for r in runs if r.op == "rollback"]
        for run in stalls:
            self.patch(run.namespace, {"spec": {"image": image(BAD)}})
        self.wait(lambda: all(condition(self.recorder.objects.get(r.namespace) or {}, "UpgradeStalled").get(
            "status") == "True" for r in stalls), 120, "the rollbacks' upgrades to stall")
        return runs

    def begin(self, run: Run) -> None:
        if run.op != "create":
            run.before_pods = {p.metadata.name: p.metadata.uid for p in self.pods(run.namespace)}
            run.before_pvcs = self.pvcs(run.namespace)
        run.requests_at_start = self.requests(run.namespace)
        run.start = time.monotonic()
        body = self.create(run.namespace, resource("create")) if run.op == "create" else self.patch(
            run.namespace, operation_patch(run.op))
        run.generation = int(body["metadata"]["generation"])

    def inject(self, fault: str, runs: list[Run]) -> None:
        assert self.state is not None
        if fault == "operator-kill":
            self.operator.signal(signal.SIGKILL)
            self.operator.start()
        elif fault == "operator-term":
            self.operator.signal(signal.SIGTERM)
            self.operator.start()
        elif fault == "apiserver-restart":
            cluster.restart_component(self.state, "kube-apiserver")
        elif fault == "etcd-restart":
            cluster.restart_component(self.state, "etcd")
        elif fault == "simulator-restart":
            for run in runs:
                run.requests_carried = self.requests(run.namespace) - run.requests_at_start
                run.requests_at_start = 0
            cluster.restart_component(self.state, "emqx-simulator")
        elif fault == "watch-cut":
            self.proxy.cut()
        elif fault == "emqx-api":
            for run in runs:
                self.emqx_fault(run)
        elif fault == "pod-deleted":
            for run in runs:
                candidates = sorted(self.pods(run.namespace), key=lambda p: p.metadata.name)
                if candidates:
                    victim = self.rng.choice(candidates)
                    role = victim.metadata.labels.get("apps.emqx.io/db-role", "")
                    run.deleted = (role, victim.metadata.uid)
                    self.retry("delete pod", lambda victim=victim: self.core().delete_namespaced_pod(
                        victim.metadata.name, victim.metadata.namespace, _request_timeout=10))

    def emqx_fault(self, run: Run) -> None:
        if run.variant == "slow":
            candidates = sorted(p.metadata.name for p in self.pods(run.namespace))
            if candidates:
                self.sim.fail_api(f"{run.namespace}/{self.rng.choice(candidates)}", status=None, delay=3.0)
            return
        if run.variant == "5xx":
            self.sim.fail_api(namespace=run.namespace, status=503)
        elif run.variant == "timeout":
            self.sim.fail_api(namespace=run.namespace, status=None, delay=8.0)
        else:
            self.sim.fail_api(namespace=run.namespace, status=401)
        timer = threading.Timer(EMQX_FAULT_SECONDS, lambda: self.sim.clear_faults(namespace=run.namespace))
        timer.daemon = True
        timer.start()

    def round(self, fault: str, round_index: int) -> None:
        started = time.monotonic()
        marks = {p: p.stat().st_size for p in self.operator.logs if p.exists()}
        print(f"[{time.strftime('%H:%M:%S')}] round {round_index + 1}: {fault} (load {os.getloadavg()[0]:.1f})",
              file=sys.stderr, flush=True)
        runs = self.prepare(fault, round_index)
        prepared = time.monotonic()
        leads = {id(r): r.fraction * EXPECTED_SECONDS[r.op] for r in runs}
        fault_at = time.monotonic() + max(leads.values()) + 1.0
        for run in sorted(runs, key=lambda r: -leads[id(r)]):
            delay = fault_at - leads[id(run)] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.begin(run)
        delay = fault_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for run in runs:
            run.fault_at = time.monotonic()
        self.inject(fault, runs)
        injected = time.monotonic()
        self.finish(runs)
        with contextlib.suppress(Exception):
            self.sim.clear_faults()
        self.audit.read()
        for run in runs:
            self.judge(run)
        self.runs.extend(runs)
        errors, tracebacks = 0, 0
        for path in self.operator.logs:
            with open(path, "rb") as handle:
                handle.seek(marks.get(path, 0))
                text = handle.read().decode(errors="replace")
            errors += len(re.findall(r"\[ERROR\s*\]", text))
            tracebacks += text.count("Traceback (most recent call last)")
        rss, cpu = self.operator.usage()
        self.usage.append((fault, rss, cpu))
        summary = {"fault": fault, "seconds": round(time.monotonic() - started, 1),
                   "settle_seconds": round(prepared - started, 1), "inject_seconds": round(injected - fault_at, 1),
                   "operator_errors": errors, "operator_tracebacks": tracebacks, "rss_mib": round(rss, 1),
                   "cpu_seconds": round(cpu, 1), "load": round(os.getloadavg()[0], 2)}
        self.rounds.append(summary)
        converged = sum(r.converged for r in runs)
        print(f"[{time.strftime('%H:%M:%S')}]   {converged}/{len(runs)} converged in {summary['seconds']}s "
              f"(settle {summary['settle_seconds']}s, fault {summary['inject_seconds']}s); operator log: {errors} "
              f"ERROR, {tracebacks} tracebacks; RSS {rss:.0f} MiB, CPU {cpu:.0f}s", file=sys.stderr, flush=True)
        for run in runs:
            if not run.converged or run.replaced_twice or run.pvcs_lost or run.unexplained > 60 or run.writes_after:
                print(f"    {run.namespace} ({run.variant or fault}, fraction {run.fraction:.2f}): converged="
                      f"{run.converged} {run.why_not} replaced>1={run.replaced_twice} pvcs_lost={run.pvcs_lost} "
                      f"unexplained={run.unexplained:.0f}s writes_after={run.writes_after} {run.writes_detail[:8]}",
                      file=sys.stderr, flush=True)
        for run in runs:
            thread = threading.Thread(target=self.delete_namespace, args=(run.namespace,), daemon=True)
            thread.start()
            self.deleting.append(thread)

    def delete_namespace(self, namespace: str) -> None:
        # The resource first: deleting a namespace under a live resource makes the operator race it.
        with contextlib.suppress(Exception):
            self.custom().delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME, _request_timeout=10)
        with contextlib.suppress(Exception):
            self.core().delete_namespace(namespace, _request_timeout=10)

    # --- waiting and judging -------------------------------------------------------------------------

    def finish(self, runs: list[Run]) -> None:
        """Wait until every run is done: Ready for its generation with the target state reached and the
        writes window over, or past its deadline."""
        window = self.args.window
        pending = list(runs)
        while pending:
            now = time.monotonic()
            for run in list(pending):
                ready_at = self.lasting_ready(run)
                done = ready_at is not None and now - ready_at[0] >= window + 1.5 and self.reached(run)
                if done or now - run.start > RUN_TIMEOUT:
                    pending.remove(run)
            time.sleep(1.0)

    def lasting_ready(self, run: Run) -> tuple[float, float] | None:
        """(monotonic, wall) of the Ready for the run's generation that still holds."""
        found: tuple[float, float] | None = None
        for sample in self.recorder.history(run.namespace):
            if sample.at < run.start:
                continue
            good = (sample.ready == "True" and sample.ready_generation == run.generation
                    and sample.observed == run.generation and sample.generation == run.generation)
            if good and found is None:
                found = (sample.at, sample.wall)
            elif not good:
                found = None
        return found

    def reached(self, run: Run) -> bool:
        try:
            return not self.shortfall(run)
        except Exception:  # noqa: BLE001
            return False

    def shortfall(self, run: Run) -> str:
        """What the cluster lacks of the operation's target ('' when reached)."""
        obj = self.recorder.objects.get(run.namespace) or self.cr(run.namespace)
        want = after_shape(run.op)
        status = obj.get("status") or {}
        nodes = status.get("emqxNodes") or []
        running = [n for n in nodes if n.get("node_status") == "running"]
        roles = [str(n.get("role")) for n in running]
        if roles.count("core") != want.cores or roles.count("replicant") != want.replicants:
            return f"EMQX runs {roles.count('core')} cores and {roles.count('replicant')} replicants"
        if len(running) != len(nodes):
            return f"EMQX lists stopped nodes: {[n.get('node') for n in nodes if n not in running]}"
        if {n.get("version") for n in running} != {want.version}:
            return f"EMQX versions {sorted({str(n.get('version')) for n in running})}"
        if status.get("currentImage") != image(want.version):
            return f"currentImage {status.get('currentImage')}"
        pods = self.pods(run.namespace)
        ready = [p for p in pods if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        if len(ready) != want.cores + want.replicants or len(pods) != len(ready):
            return f"{len(ready)}/{len(pods)} pods Ready"
        if run.op == "restart-config":
            kept = [name for name, uid in run.before_pods.items()
                    if any(p.metadata.name == name and p.metadata.uid == uid for p in pods)]
            if kept:
                return f"not restarted: {kept}"
        return ""

    def judge(self, run: Run) -> None:
        ready = self.lasting_ready(run)
        try:
            lack = self.shortfall(run)
        except Exception as exc:  # noqa: BLE001
            lack = f"could not read the cluster: {exc}"
        if ready is None:
            history = self.recorder.history(run.namespace)
            last = history[-1] if history else None
            lack = lack or "not Ready"
            if last is not None:
                lack += f" (last: {last.reason}: {last.message[:160]})"
        if not lack and run.op == "live-config":
            lack = self.live_level_missing(run)
        run.converged = ready is not None and not lack
        run.why_not = lack
        if ready is not None:
            run.ready_mono, run.ready_wall = ready
            run.ready_after = ready[0] - run.start
            first_ready = self.first_ready(run)
            run.mid_op = first_ready is None or run.fault_at < first_ready
            start = ready[1] + 1.0
            run.writes_detail = self.audit.between(run.namespace, start, start + self.args.window)
            run.writes_after = len(run.writes_detail)
            if run.writes_after:
                run.writes_detail += self.recorder.status_changes(run.namespace, ready[1] + 0.5)
        else:
            run.mid_op = True
        run.unexplained = self.unexplained(run)
        run.replaced_twice = self.replaced_twice(run)
        run.pvcs_lost = self.pvcs_lost(run)
        run.emqx_requests = self.requests(run.namespace) - run.requests_at_start + run.requests_carried

    def first_ready(self, run: Run) -> float | None:
        for sample in self.recorder.history(run.namespace):
            if sample.at >= run.start and sample.ready == "True" and sample.ready_generation == run.generation:
                return sample.at
        return None

    def live_level_missing(self, run: Run) -> str:
        from tests.emqx_helpers import live_config

        pod = next((p for p in self.pods(run.namespace) if p.metadata.labels.get("apps.emqx.io/db-role") == "core"),
                   None)
        if pod is None:
            return "no core pod"
        level = (((live_config(self.api, run.namespace, NAME, pod).get("log") or {}).get("console") or {})
                 .get("level"))
        return "" if level == LIVE_LEVEL else f"EMQX runs log.console.level = {level}"

    def unexplained(self, run: Run) -> float:
        """The longest time the resource was not Ready without a condition that explains why."""
        longest, since = 0.0, None
        end = (run.ready_mono or time.monotonic())
        for sample in self.recorder.history(run.namespace):
            if sample.at < run.start:
                continue
            explained = (sample.ready == "True" or (
                sample.ready == "False" and sample.ready_generation == sample.generation == sample.observed
                and sample.reason not in ("", "Progressing") and bool(sample.message)))
            if explained:
                if since is not None:
                    longest = max(longest, sample.at - since)
                since = None
            elif since is None:
                since = max(sample.at, run.start)
        if since is not None:
            longest = max(longest, end - since)
        return longest

    def replaced_twice(self, run: Run) -> int:
        """Core ordinals that ran more than one new pod, and new replicant pods beyond what the
        operation needs. A pod whose container never started booted no node and does not count: the
        sandbox's kwok deletes a terminating pod by name, without a UID precondition, and now and
        then removes the StatefulSet's replacement of the same name within milliseconds of its
        creation (the controller makes another at once); only the operator's deletions and pods
        that ran a node matter to the promise "no node restarted twice"."""
        seen = {uid: pod for uid, pod in self.recorder.pods_of(run.namespace).items() if pod.ran}
        deleted_uid = run.deleted[1] if run.deleted else None
        count = 0
        new_cores: dict[str, int] = {}
        for uid, pod in seen.items():
            if pod.role == "core" and pod.first >= run.start - 0.5 and uid not in run.before_pods.values():
                new_cores[pod.name] = new_cores.get(pod.name, 0) + 1
        bench_deleted_core = next((p.name for u, p in seen.items() if u == deleted_uid and p.role == "core"), None)
        for name, created in new_cores.items():
            allowed = 1 + (1 if name == bench_deleted_core else 0)
            if created > allowed:
                count += 1
        new_replicants = sum(1 for uid, pod in seen.items() if pod.role == "replicant" and pod.first >= run.start - 0.5
                             and uid not in run.before_pods.values())
        want = after_shape(run.op).replicants
        expected = {"create": want, "scale-replicants": want - before_shape(run.op).replicants}.get(
            run.op, want if rollout(run.op) else 0)
        if run.deleted and run.deleted[0] == "replicant":
            expected += 1
        return count + max(0, new_replicants - expected)

    def pvcs_lost(self, run: Run) -> int:
        want = after_shape(run.op).cores
        now = self.pvcs(run.namespace)
        lost = 0
        for ordinal in range(want):
            matches = [name for name in (set(now) | set(run.before_pvcs)) if name.endswith(f"-{NAME}-core-{ordinal}")]
            if run.op == "create" or ordinal >= before_shape(run.op).cores:
                lost += 0 if any(name in now for name in matches) else 1
                continue
            before = {name: uid for name, uid in run.before_pvcs.items() if name in matches}
            lost += sum(1 for name, uid in before.items() if now.get(name) != uid)
        return lost

    # --- the matrix --------------------------------------------------------------------------------------

    def run(self) -> None:
        rss, cpu = self.operator.usage()
        self.usage.append(("start", rss, cpu))
        for index, fault in enumerate(self.args.faults):
            try:
                self.round(fault, index)
            except Exception:  # noqa: BLE001 - a round that could not even set up is reported, the next runs
                traceback.print_exc()
                self.rounds.append({"fault": fault, "error": traceback.format_exc(limit=3)})
        for thread in self.deleting:
            thread.join(30)

    def table(self) -> str:
        lines = [f"seed {self.args.seed}; {self.args.runs} run(s) per cell; writes window {self.args.window:.0f}s; "
                 f"honest kubelet timing"]
        header = (f"{'operation':<17}{'fault':<18}{'converged':>10}{'median':>8}{'worst':>8}{'>1x':>5}{'PVC lost':>9}"
                  f"{'EMQX req':>9}{'writes':>7}{'unexpl.':>8}{'mid-op':>7}")
        lines += [header, "-" * len(header)]
        for op in self.args.operations:
            for fault in self.args.faults:
                cell = [r for r in self.runs if r.op == op and r.fault == fault]
                if not cell:
                    continue
                times = [r.ready_after for r in cell if r.converged and r.ready_after is not None]
                median = f"{statistics.median(times):.1f}" if times else "-"
                worst = f"{max(times):.1f}" if times else "-"
                writes = [r.writes_after for r in cell if r.writes_after is not None]
                requests = statistics.median([r.emqx_requests for r in cell])
                lines.append(
                    f"{op:<17}{fault:<18}{sum(r.converged for r in cell):>6}/{len(cell):<3}{median:>8}{worst:>8}"
                    f"{sum(r.replaced_twice for r in cell):>5}{sum(r.pvcs_lost for r in cell):>9}{requests:>9.0f}"
                    f"{sum(writes) if writes else '-':>7}{sum(r.unexplained > 60 for r in cell):>8}"
                    f"{sum(r.mid_op for r in cell):>7}")
        lines.append("median/worst: seconds from the operation's write to the lasting Ready; >1x: pods replaced more "
                      "than once; EMQX req: median per run; writes: the operator's writes after settling, summed; "
                      "unexpl.: runs with an unexplained wait > 60 s; mid-op: runs the fault hit before Ready")
        usage = self.usage
        if usage:
            first, last = usage[0], usage[-1]
            lines.append(f"operator RSS: {first[1]:.0f} MiB before the matrix, {last[1]:.0f} MiB after "
                         f"(max {max(u[1] for u in usage):.0f} MiB; per round: "
                         + ", ".join(f"{f} {r:.0f}" for f, r, _ in usage[1:]) + f"); {self.operator.starts} operator "
                         f"process(es); CPU seconds of the last one: {last[2]:.0f}")
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs (clusters) per cell (default 3)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--quick", action="store_true", help="a smoke pass: 1 run, operator-kill and simulator-restart")
    parser.add_argument("--operations", default=",".join(OPERATIONS))
    parser.add_argument("--faults", default=None, help=f"comma-separated subset of {','.join(FAULTS)}")
    parser.add_argument("--window", type=float, default=15.0, help="seconds after settling in which writes count")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-logs", type=Path, help="copy the operator's and the sandbox's logs here")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if args.quick:
        args.runs = 1
    args.operations = [op for op in args.operations.split(",") if op]
    args.faults = [f for f in (args.faults.split(",") if args.faults else QUICK_FAULTS if args.quick else FAULTS) if f]
    unknown = [x for x in args.operations if x not in OPERATIONS] + [x for x in args.faults if x not in FAULTS]
    if unknown:
        parser.error(f"unknown operation or fault: {', '.join(unknown)}")
    print(f"fault matrix: seed {args.seed}, {args.runs} run(s) per cell, {len(args.operations)} operations x "
          f"{len(args.faults)} faults", file=sys.stderr, flush=True)
    directory = Path(tempfile.mkdtemp(prefix="emqx-bench-faults-"))
    bench = Bench(args)
    started = time.monotonic()
    try:
        bench.open(directory)
        bench.run()
    finally:
        bench.close()
        if args.keep_logs:
            shutil.copytree(directory / "logs", args.keep_logs, dirs_exist_ok=True)
        cluster.down(directory)
    table = bench.table()
    print(table)
    print(f"total {time.monotonic() - started:.0f}s")
    if args.json:
        args.json.write_text(json.dumps({
            "seed": args.seed, "runs": [r.__dict__ for r in bench.runs], "rounds": bench.rounds,
            "usage": bench.usage, "table": table}, indent=2, default=str))
    return 0 if all(r.converged for r in bench.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
