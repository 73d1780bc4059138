"""Durations under honest kubelet timing, memory and API traffic at scale, in one table (issue 19).

    .venv/bin/python bench/scale_bench.py [--phases honest,many] [--rounds 3] [--sizes 50,100,200,500]
                                          [--idle-seconds 120] [--json out.json]

honest  A private sandbox whose simulated kubelet honours probe timing (no probe before
        initialDelaySeconds, then one every periodSeconds; back-offs as a kubelet's). The operator
        runs with its defaults. Each round, in a fresh namespace: a 3 core + 3 replicant cluster of
        emqx/emqx:5.7.1 created -> Ready; replicants 3 -> 5 -> Ready; upgrade 5.7.1 -> 5.7.2 -> Ready;
        then a cluster of 5.0.6 (3 + 3) upgraded to 5.0.7 (before 5.6 replicants wait for every core).
        "Ready" is condition Ready=True at the resource's current generation (seen through a watch).
        During each upgrade the pods are sampled every 0.25 s: the fewest Ready cores and the most
        replicant pods alive at once are reported (they must stay >= a majority of the cores and
        <= replicas + maxSurge).
many    A private sandbox with fast probe timing (what the tests use; --many-timing honest for the
        kubelet's). For each size N: N clusters of
        1 core + 0 replicants (emqx/emqx:5.7.2) created at once in one namespace -> all Ready (the time
        of the last), with the CPU seconds each sandbox process used meanwhile (simulator, operator,
        kube-apiserver, etcd, KCM, scheduler, kwok); then an idle window (--idle-seconds) once the
        operator made no write for 10 s: operator RSS (start/end/max), CPU % per process, API writes,
        API reads by verb and kind, EMQX API requests (from the simulator's counters), each per cluster
        per minute. Then the operator is restarted with the N settled clusters: its writes until every
        cluster had a pass and --idle-seconds more (the goal is zero). One 3 + 3 cluster gives the
        one-cluster RSS first. Namespaces are deleted between sizes.

Figures for the official operator (2.2.29) are the ones measured beside ours on this sandbox and
simulator in issue 19 (they are printed next to ours; this script does not run it).
Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "bench")]

from operator_bench import (  # noqa: E402
    BenchError,
    Operator,
    Watcher,
    loadavg,
    pick_pod_cidr,
    source_hash,
    summary,
)

GROUP, VERSION, PLURAL = "apps.emqx.io", "v2beta1", "emqxes"
OFFICIAL = {  # issue 19: official operator 2.2.29, honest probe timing, medians
    "create": 27.6, "scale": 12.9, "upgrade": 113.9, "rss_one_mib": 55.7, "idle_writes_per_min": 32,
    "idle_emqx_per_min": 6,
}


# Per-process CPU: the sandbox's processes (command line naming the bench's sandbox directory), grouped.
CPU_GROUPS = ("simulator", "operator", "kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")


def _cpu_group(argv: list[str]) -> str:
    if "sandbox.emqxsim" in argv:
        return "simulator"
    if "emqx_operator.main" in argv or any(Path(arg).name == "emqx-operator" for arg in argv[:1]):
        return "operator"
    name = Path(argv[0]).name if argv else ""
    return name if name in CPU_GROUPS else "other"


def cpu_snapshot(directory: Path) -> dict[int, tuple[str, float]]:
    """pid -> (group, utime + stime seconds) of every process whose command line names `directory`."""
    ticks = os.sysconf("SC_CLK_TCK")
    mark = str(directory).encode()
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            if mark not in raw:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        out[int(entry.name)] = (_cpu_group(argv), (int(fields[11]) + int(fields[12])) / ticks)
    return out


def cpu_by_group(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each group used between two snapshots (a process started meanwhile counts from 0;
    one that ended meanwhile is lost)."""
    used: dict[str, float] = {}
    for pid, (group, seconds) in after.items():
        used[group] = used.get(group, 0.0) + seconds - before.get(pid, (group, 0.0))[1]
    return {group: round(used[group], 1) for group in (*CPU_GROUPS, "other") if group in used}


def cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{group} {seconds:g}" for group, seconds in cpu.items())


class ReadyTracker:
    """When each EMQX resource was first seen Ready=True at each of its generations (from a watch)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.ready_at: dict[tuple[str, str, int], float] = {}
        self.invalid: dict[tuple[str, str, int], str] = {}

    def on_event(self, kind: str, event_type: str, obj: dict[str, Any], at: float) -> None:
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        generation = int(meta.get("generation") or 0)
        ready = status.get("observedGeneration") == generation and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        key = (meta.get("namespace") or "", meta.get("name") or "", generation)
        if status.get("observedGeneration") == generation and any(
                c.get("type") == "Valid" and c.get("status") == "False" for c in status.get("conditions") or []):
            with self.cond:
                self.invalid[key] = str(status.get("message"))
                self.cond.notify_all()
        if event_type != "DELETED" and ready:
            with self.cond:
                self.ready_at.setdefault((meta.get("namespace") or "", meta.get("name") or "", generation), at)
                self.cond.notify_all()

    def wait(self, keys: list[tuple[str, str, int]], timeout: float, check: Any) -> dict[tuple[str, str, int], float]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                check()
                missing = [k for k in keys if k not in self.ready_at]
                refused = [k for k in missing if k in self.invalid]
                if refused:
                    raise BenchError(f"{refused[0]} is invalid: {self.invalid[refused[0]]}")
                if not missing:
                    return {k: self.ready_at[k] for k in keys}
                if time.monotonic() > deadline:
                    raise BenchError(f"{len(missing)}/{len(keys)} not Ready after {timeout:.0f}s, e.g. {missing[0]}")
                self.cond.wait(1.0)


# --trace-memory: the operator runs with tracemalloc on (PYTHONTRACEMALLOC) and logs where its memory is
# (by source file) on SIGUSR2 at the end of each idle window. Tracing inflates RSS: such a run's RSS
# figures are not the budget's.
TRACE_MEMORY = {"on": False}
OPERATOR_ARGS: list[str] = []  # --operator-arg: e.g. --workers=8, to compare a setting with the defaults


def start_operator(state: Any, name: str, extra: list[str] | None = None) -> Operator:
    from sandbox import operator_process

    env = {"PYTHONTRACEMALLOC": "1"} if TRACE_MEMORY["on"] else None
    proc, comp, live_port = operator_process.spawn(state, name=name, extra_args=[*OPERATOR_ARGS, *(extra or [])],
                                                   env=env)
    op = Operator(proc, comp.log, f"http://127.0.0.1:{comp.port}/metrics")
    op.code = source_hash()
    try:
        operator_process.wait_live(comp, live_port)
        deadline = time.monotonic() + 30
        while True:
            try:
                op.metrics()
                break
            except (OSError, BenchError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        op.mark_live()
    except BaseException:
        op.stop()
        raise
    return op


def counters(op: Operator) -> dict[str, float]:
    """'write PATCH StatefulSet', 'read LIST Pod', 'reconciles' -> value."""
    metrics = op.metrics()
    out: dict[str, float] = {}
    for family, prefix in (("emqx_operator_api_writes_total", "write"), ("emqx_operator_api_reads_total", "read")):
        for labels, value in metrics.get(family, []):
            out[f"{prefix} {labels.get('verb')} {labels.get('kind')}"] = value
    out["reconciles"] = sum(v for _, v in metrics.get("emqx_operator_reconcile_total", []))
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))
            if after.get(k, 0) - before.get(k, 0)}


class Env:
    """A private sandbox with the operator, the watches the bench reads, and API clients."""

    def __init__(self, timing: str) -> None:
        from kubernetes import client, config

        from sandbox import cluster, operator_process

        os.environ.setdefault(cluster.POD_CIDR_ENV, pick_pod_cidr())
        self.directory = Path(tempfile.mkdtemp(prefix=f"emqx-bench-{timing}-"))
        self.cluster = cluster
        started = time.monotonic()
        self.state = cluster.up(directory=self.directory, probe_timing=timing)
        self.up_s = time.monotonic() - started
        operator_process.install_crd(self.state)
        self.api_client = config.new_client_from_config(config_file=self.state.kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.tracker = ReadyTracker()
        watch_client = config.new_client_from_config(config_file=self.state.kubeconfig)
        self.watcher = Watcher("EMQX", client.CustomObjectsApi(watch_client).list_cluster_custom_object,
                               self.tracker, list_args=(GROUP, VERSION, PLURAL))  # type: ignore[arg-type]
        self.watcher.start()
        if not self.watcher.synced.wait(30):
            raise BenchError("the EMQX watch did not sync")
        self.op = start_operator(self.state, f"operator-{timing}")
        from sandbox.emqxsim.client import SimClient

        self.sim = SimClient(self.state.sim_control_url)

    def add_nodes(self, pods: int) -> None:
        """kwok nodes for `pods` more pods (the sandbox has 3 nodes of 110 pods, as a kubelet's default)."""
        from sandbox.cluster import NODE_TEMPLATE

        count = -(-pods // 100)
        if count == 0:
            return
        nodes = "".join(NODE_TEMPLATE.format(name=f"kwok-node-bench-{i}", zone=i % 3) for i in range(count))
        self.cluster._kubectl(self.state, "apply", "-f", "-", stdin=nodes)
        self.cluster._kubectl(self.state, "wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")

    def close(self) -> None:
        self.watcher.stop()
        self.op.stop()
        self.cluster.down(self.directory)

    def namespace(self, name: str) -> str:
        self.core.create_namespace({"metadata": {"name": name}})
        deadline = time.monotonic() + 30  # pods need the default ServiceAccount
        while time.monotonic() < deadline:
            if self.core.list_namespaced_service_account(name).items:
                return name
            time.sleep(0.2)
        raise BenchError(f"no default ServiceAccount in {name}")

    def create(self, namespace: str, body: dict[str, Any]) -> tuple[str, str, int]:
        made = self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        return namespace, body["metadata"]["name"], int(made["metadata"]["generation"])

    def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> tuple[str, str, int]:
        made = self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)
        return namespace, name, int(made["metadata"]["generation"])

    def ready(self, keys: list[tuple[str, str, int]], timeout: float) -> dict[tuple[str, str, int], float]:
        """When each resource was first Ready at that generation."""
        return self.tracker.wait(keys, timeout, self.op.require_alive)

    def sim_requests(self) -> int:
        return sum(int(c.get("total", 0)) for c in self.sim.request_counts().values())

    def pods(self, namespace: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(namespace).items)

    def delete_namespace(self, namespace: str, timeout: float = 600) -> None:
        self.core.delete_namespace(namespace)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not [n for n in self.core.list_namespace().items if n.metadata.name == namespace]:
                return
            time.sleep(1)


class PodSampler(threading.Thread):
    """Fewest Ready cores and most replicant pods alive, sampled every 0.25 s."""

    def __init__(self, env: Env, namespace: str) -> None:
        super().__init__(daemon=True)
        self.env, self.namespace = env, namespace
        self.min_ready_cores: int | None = None
        self.max_replicants = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                pods = self.env.pods(self.namespace)
            except Exception:  # noqa: BLE001 - a missed sample is not a measurement
                time.sleep(0.25)
                continue
            role = lambda p: (p.metadata.labels or {}).get("apps.emqx.io/db-role")  # noqa: E731
            ready_cores = sum(1 for p in pods if role(p) == "core" and not p.metadata.deletion_timestamp
                              and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []))
            replicants = sum(1 for p in pods if role(p) == "replicant" and not p.metadata.deletion_timestamp)
            self.min_ready_cores = ready_cores if self.min_ready_cores is None else min(self.min_ready_cores,
                                                                                          ready_cores)
            self.max_replicants = max(self.max_replicants, replicants)
            self.samples += 1
            self._done.wait(0.25)

    def stop(self) -> None:
        self._done.set()
        self.join(10)


def cr(name: str, image: str, cores: int, replicants: int) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EMQX", "metadata": {"name": name},
            "spec": {"image": image, "coreTemplate": {"spec": {"replicas": cores}},
                     "replicantTemplate": {"spec": {"replicas": replicants}}}}


def timed_change(env: Env, namespace: str, name: str, patch: dict[str, Any] | None, body: dict[str, Any] | None,
                 sample: bool = False, timeout: float = 900) -> dict[str, Any]:
    sampler = PodSampler(env, namespace) if sample else None
    if sampler is not None:
        sampler.start()
    mark = env.sim_requests()
    started = time.monotonic()
    key = env.create(namespace, body) if body is not None else env.patch(namespace, name, patch or {})
    at = env.ready([key], timeout)[key]
    result: dict[str, Any] = {"seconds": round(at - started, 2), "emqx_requests": env.sim_requests() - mark}
    if sampler is not None:
        sampler.stop()
        result.update(min_ready_cores=sampler.min_ready_cores, max_replicant_pods=sampler.max_replicants)
    return result


def phase_honest(rounds: int) -> dict[str, Any]:
    env = Env("honest")
    out: dict[str, list[dict[str, Any]]] = {"create": [], "scale": [], "upgrade_5.7": [], "upgrade_5.0": []}
    try:
        print(f"honest timing: sandbox up in {env.up_s:.1f}s", flush=True)
        for index in range(rounds):
            ns = env.namespace(f"honest-{index}")
            out["create"].append(timed_change(env, ns, "a", None, cr("a", "emqx/emqx:5.7.1", 3, 3)))
            out["scale"].append(timed_change(env, ns, "a", {"spec": {"replicantTemplate": {"spec": {"replicas": 5}}}},
                                             None))
            out["upgrade_5.7"].append(timed_change(env, ns, "a", {"spec": {"image": "emqx/emqx:5.7.2"}}, None,
                                                   sample=True))
            old = env.namespace(f"honest-old-{index}")
            timed_change(env, old, "b", None, cr("b", "emqx/emqx:5.0.6", 3, 3))
            out["upgrade_5.0"].append(timed_change(env, old, "b", {"spec": {"image": "emqx/emqx:5.0.7"}}, None,
                                                   sample=True))
            print(f"  round {index + 1}: " + ", ".join(f"{k} {v[-1]['seconds']}s" for k, v in out.items()), flush=True)
            env.core.delete_namespace(ns)
            env.core.delete_namespace(old)
        return {"runs": out, "median": {k: summary([r["seconds"] for r in v])["p50"] for k, v in out.items()},
                "load_after": loadavg()}
    finally:
        env.close()


def settle(env: Env, quiet: float = 10.0, timeout: float = 300.0) -> None:
    """No operator write for `quiet` seconds."""
    last = sum(v for k, v in counters(env.op).items() if k.startswith("write"))
    changed = time.monotonic()
    deadline = changed + timeout
    while time.monotonic() - changed < quiet:
        if time.monotonic() > deadline:
            raise BenchError("the operator kept writing")
        time.sleep(0.5)
        total = sum(v for k, v in counters(env.op).items() if k.startswith("write"))
        if total != last:
            last, changed = total, time.monotonic()


def idle_window(env: Env, clusters: int, seconds: float) -> dict[str, Any]:
    settle(env)
    before, emqx_before, started = counters(env.op), env.sim_requests(), time.monotonic()
    cpu_start = cpu_snapshot(env.directory)
    rss = [env.op.proc_status().get("VmRSS", 0) / 1024]
    cpu_before = env.op.cpu_seconds()
    while time.monotonic() - started < seconds:
        time.sleep(1)
        rss.append(env.op.proc_status().get("VmRSS", 0) / 1024)
    window = time.monotonic() - started
    cpu = cpu_by_group(cpu_start, cpu_snapshot(env.directory))
    changes = delta(before, counters(env.op))
    per_min = 60.0 / window / max(clusters, 1)
    traced = memory_report(env.op) if TRACE_MEMORY["on"] else None
    writes = {k[6:]: v for k, v in changes.items() if k.startswith("write")}
    reads = {k[5:]: v for k, v in changes.items() if k.startswith("read")}
    return {
        "clusters": clusters, "window_s": round(window, 1),
        "rss_mib": {"start": round(rss[0], 1), "end": round(rss[-1], 1), "max": round(max(rss), 1)},
        "cpu_pct": round((env.op.cpu_seconds() - cpu_before) / window * 100, 2),
        "cpu_pct_by_process": {group: round(seconds / window * 100, 1) for group, seconds in cpu.items()},
        "writes": writes, "reads": reads,
        "writes_per_cluster_min": round(sum(writes.values()) * per_min, 3),
        "gets_per_cluster_min": round(sum(v for k, v in reads.items() if k.startswith("GET")) * per_min, 3),
        "lists_per_cluster_min": round(sum(v for k, v in reads.items() if k.startswith("LIST")) * per_min, 3),
        "emqx_per_cluster_min": round((env.sim_requests() - emqx_before) * per_min, 3),
        "reconciles_per_cluster_min": round(changes.get("reconciles", 0) * per_min, 3),
        **({"traced": traced} if traced is not None else {}),
    }


def memory_report(op: Operator, timeout: float = 60) -> list[str]:
    """SIGUSR2 to the operator; the lines of the memory report it logs (main._memory_report_on_signal)."""
    import signal

    offset = op.log.stat().st_size
    op.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(op.log, encoding="utf-8", errors="replace") as log:
            log.seek(offset)
            text = log.read()
        if "traced " in text and "largest:" in text:
            lines = text[text.index("traced "):].splitlines()
            body = [line for line in lines[1:41] if "MiB" in line]
            if len(body) >= 5:
                return [lines[0], *body]
        time.sleep(0.5)
    raise BenchError(f"no memory report in {op.log} within {timeout:.0f}s of SIGUSR2")


def phase_many(sizes: list[int], idle_seconds: float, timing: str = "fast") -> dict[str, Any]:
    env = Env(timing)
    results: dict[str, Any] = {"sizes": {}}
    try:
        print(f"{timing} timing: sandbox up in {env.up_s:.1f}s", flush=True)
        results["timing"] = timing
        ns = env.namespace("one")
        timed_change(env, ns, "a", None, cr("a", "emqx/emqx:5.7.1", 3, 3))
        results["one"] = idle_window(env, 1, idle_seconds)
        print(f"  1 cluster (3+3): {results['one']}", flush=True)
        env.delete_namespace(ns)
        env.add_nodes(max(sizes, default=0))
        for size in sizes:
            ns = env.namespace(f"many-{size}")
            cpu_start = cpu_snapshot(env.directory)
            started = time.monotonic()
            keys = [env.create(ns, cr(f"c{i:03d}", "emqx/emqx:5.7.2", 1, 0)) for i in range(size)]
            created = time.monotonic() - started
            at = env.ready(keys, 1800)
            cpu = cpu_by_group(cpu_start, cpu_snapshot(env.directory))
            row: dict[str, Any] = {"created_s": round(created, 1),
                                   "all_ready_s": round(max(at.values()) - started, 1),
                                   "ready": summary([t - started for t in at.values()]),
                                   "cpu_s": cpu}
            print(f"  {size} clusters created in {created:.1f}s, all Ready after {row['all_ready_s']}s", flush=True)
            print(f"  CPU seconds until all Ready: {cpu_text(cpu)}", flush=True)
            row["idle"] = idle_window(env, size, idle_seconds)
            print(f"  idle: {row['idle']}", flush=True)
            env.op.stop()
            env.op = start_operator(env.state, f"operator-restart-{size}")
            mark = time.monotonic()
            deadline = mark + 600
            while counters(env.op)["reconciles"] < size and time.monotonic() < deadline:
                time.sleep(1)
            first_pass_s = time.monotonic() - mark
            time.sleep(idle_seconds)
            after = counters(env.op)
            row["restart"] = {"first_pass_all_s": round(first_pass_s, 1),
                              "writes": {k[6:]: v for k, v in after.items() if k.startswith("write") and v},
                              "reads": {k[5:]: v for k, v in after.items() if k.startswith("read") and v},
                              "window_s": round(time.monotonic() - mark, 1)}
            print(f"  restart: {row['restart']}", flush=True)
            results["sizes"][size] = row
            env.delete_namespace(ns)
        results["load_after"] = loadavg()
        return results
    finally:
        env.close()


def render_traced(results: dict[str, Any]) -> list[str]:
    """The --trace-memory reports: traced total and the 15 largest files per idle window."""
    many = results.get("many") or {}
    windows = [("one 3+3 cluster", many.get("one") or {})]
    windows += [(f"{size} clusters", row.get("idle") or {}) for size, row in (many.get("sizes") or {}).items()]
    lines: list[str] = []
    for label, idle in windows:
        if idle.get("traced"):
            lines += ["", f"tracemalloc, {label} (RSS inflated by tracing: {idle['rss_mib']['end']} MiB):",
                      *idle["traced"][:16]]
    return lines


def render(results: dict[str, Any]) -> str:
    lines = [f"bench/scale_bench.py, {results['meta']['at']}, code {results['meta']['code']}, "
             f"{results['meta']['cpus']} CPUs, load at start {results['meta']['load'][0]}", "",
             "| figure | ours | official 2.2.29 (issue 19) |", "|---|---|---|"]
    honest = results.get("honest")
    if honest:
        m = honest["median"]
        n = len(honest["runs"]["create"])
        lines += [
            f"| 3+3 created → Ready, honest timing (median of {n}) | {m['create']:.1f} s | {OFFICIAL['create']} s |",
            f"| replicants 3 → 5 → Ready, honest timing | {m['scale']:.1f} s | {OFFICIAL['scale']} s |",
            f"| upgrade 5.7.1 → 5.7.2 → Ready, honest timing | {m['upgrade_5.7']:.1f} s | {OFFICIAL['upgrade']} s |",
            f"| upgrade 5.0.6 → 5.0.7 → Ready, honest timing | {m['upgrade_5.0']:.1f} s | |",
        ]
        ups = honest["runs"]["upgrade_5.7"] + honest["runs"]["upgrade_5.0"]
        lines.append(f"| during upgrades: fewest Ready cores / most replicant pods | "
                     f"{min(u['min_ready_cores'] for u in ups)} of 3 / {max(u['max_replicant_pods'] for u in ups)} "
                     f"(5 replicas when 5.7 upgrades, after the scale; 3 for 5.0; maxSurge 1) | |")
    many = results.get("many")
    if many:
        one = many["one"]
        lines.append(f"| operator RSS at idle, one 3+3 cluster | {one['rss_mib']['end']} MiB | "
                     f"{OFFICIAL['rss_one_mib']} MiB |")
        lines.append(f"| idle minute, one cluster: writes / EMQX requests / GETs / LISTs | "
                     f"{one['writes_per_cluster_min']:g} / {one['emqx_per_cluster_min']:g} / "
                     f"{one['gets_per_cluster_min']:g} / {one['lists_per_cluster_min']:g} | "
                     f"{OFFICIAL['idle_writes_per_min']} / {OFFICIAL['idle_emqx_per_min']} / – / – |")
        timing = many.get("timing", "fast")
        for size, row in many["sizes"].items():
            idle = row["idle"]
            lines.append(f"| {size} clusters (1 core each) created at once → all Ready, {timing} timing | "
                         f"{row['all_ready_s']} s (median {row['ready']['p50']:.1f} s) | |")
            if row.get("cpu_s"):
                lines.append(f"| CPU seconds from the create to all Ready, {size} clusters | "
                             f"{cpu_text(row['cpu_s'])} | |")
            if idle.get("cpu_pct_by_process"):
                lines.append(f"| CPU at idle, {size} clusters | "
                             + ", ".join(f"{g} {p:g}%" for g, p in idle["cpu_pct_by_process"].items()) + " | |")
            lines.append(f"| operator RSS at idle, {size} clusters (max over {idle['window_s']:.0f} s) | "
                         f"{idle['rss_mib']['end']} MiB ({idle['rss_mib']['max']}) | |")
            lines.append(f"| per cluster per idle minute, {size} clusters: writes / EMQX requests / GETs / LISTs "
                         f"| {idle['writes_per_cluster_min']:g} / {idle['emqx_per_cluster_min']:g} / "
                         f"{idle['gets_per_cluster_min']:g} / {idle['lists_per_cluster_min']:g} | |")
            restart = row["restart"]
            lines.append(f"| operator restarted with {size} settled clusters: writes in {restart['window_s']:.0f} s "
                         f"(every cluster passed after {restart['first_pass_all_s']} s) | "
                         f"{sum(restart['writes'].values()):g} | |")
    return "\n".join(lines + render_traced(results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default="honest,many")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="50,100,200,500")
    parser.add_argument("--idle-seconds", type=float, default=120)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--trace-memory", action="store_true",
                        help="operator under tracemalloc; its memory by source file after each idle window "
                             "(RSS inflated by tracing)")
    parser.add_argument("--many-timing", choices=["fast", "honest"], default="fast",
                        help="the simulated kubelet's probe timing in the many phase (default fast)")
    parser.add_argument("--operator-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument for every operator (repeatable), e.g. --operator-arg=--workers=8")
    args = parser.parse_args()
    TRACE_MEMORY["on"] = args.trace_memory
    OPERATOR_ARGS[:] = args.operator_arg
    phases = args.phases.split(",")
    results: dict[str, Any] = {"meta": {
        "at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "code": source_hash(),
        "cpus": os.cpu_count(), "load": loadavg(), "operator_args": args.operator_arg}}
    if "honest" in phases:
        results["honest"] = phase_honest(args.rounds)
    if "many" in phases:
        results["many"] = phase_many([int(s) for s in args.sizes.split(",") if s], args.idle_seconds,
                                     args.many_timing)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
