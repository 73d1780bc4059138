"""Day-2 verbs on the sandbox (issue 15): how soon `kubectl emqx dashboard` answers, what a request
through its forward costs, and how many log lines per second `kubectl emqx logs` merges from a
3 cores + 3 replicants cluster, beside `kubectl port-forward` and `kubectl logs -l ... --prefix`.

Run from the repository root:

    .venv/bin/python bench/day2_observe.py [--runs 5] [--lines 50000] [--json FILE]

The sandbox in EMQX_SANDBOX_DIR when set, else a private one. Log volume: `--lines` lines per pod,
in EMQX's text format, are appended to each pod's container log file (the simulated kubelet's CRI
files under <sandbox>/podlogs/, what kwok serves for `pods/log`), timestamps interleaved across pods.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from plugin_commands import CLUSTER, environment, ready_cluster  # noqa: E402

from sandbox import cluster  # noqa: E402


def first_answer(argv: list[str], env: dict[str, str], url_of: Any) -> tuple[float, float, str, subprocess.Popen[str]]:
    """Start a forwarding command; (seconds to its URL line, seconds to the first answered GET /status)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    url = None
    while url is None:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench: `{' '.join(argv)}` printed no URL")
        url = url_of(line)
    printed = time.perf_counter() - start
    with urllib.request.urlopen(f"{url}/status", timeout=30) as response:
        response.read()
    return printed, time.perf_counter() - start, url, proc


def emqx_url(line: str) -> str | None:
    return line.split(": ", 1)[1].split()[0] if line.startswith("Dashboard of") else None


def kubectl_url(line: str) -> str | None:
    # "Forwarding from 127.0.0.1:40123 -> 18083"
    if line.startswith("Forwarding from 127.0.0.1:"):
        return "http://" + line.split()[2]
    return None


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def request_latency(url: str, count: int = 30) -> float:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        with urllib.request.urlopen(f"{url}/status", timeout=30) as response:
            response.read()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_dashboard(namespace: str, env: dict[str, str], runs: int) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    commands = {
        "kubectl emqx dashboard": (["kubectl", "emqx", "dashboard", CLUSTER, "-n", namespace, "--port", "0",
                                    "--no-browser"], emqx_url),
        "kubectl port-forward (reference)": (["kubectl", "port-forward", "-n", namespace, f"pod/{CLUSTER}-core-0",
                                              ":18083"], kubectl_url),
    }
    for label, (argv, url_of) in commands.items():
        printed, answered, per_request = [], [], []
        for _ in range(runs):
            shown, first, url, proc = first_answer(argv, env, url_of)
            try:
                printed.append(shown)
                answered.append(first)
                per_request.append(request_latency(url))
            finally:
                stop(proc)
        rows[label] = {"url_printed_s": statistics.median(printed), "first_answer_s": statistics.median(answered),
                       "first_answer_min_s": min(answered), "request_median_s": statistics.median(per_request)}
    return rows


def pod_log_files(state: cluster.SandboxState, namespace: str, env: dict[str, str]) -> dict[str, Path]:
    listed = subprocess.run(["kubectl", "get", "pods", "-n", namespace, "-l", f"apps.emqx.io/instance={CLUSTER}",
                             "-o", "json"], env=env, check=True, capture_output=True, text=True)
    files = {}
    for pod in json.loads(listed.stdout)["items"]:
        meta = pod["metadata"]
        restarts = pod["status"]["containerStatuses"][0]["restartCount"]
        files[meta["name"]] = (Path(state.directory) / "podlogs" / f"{namespace}_{meta['name']}_{meta['uid']}"
                               / "emqx" / f"{restarts}.log")
    return files


def append_lines(files: dict[str, Path], per_pod: int, start: float) -> None:
    """per_pod lines per file, one line every 10 µs of simulated time, pods interleaved."""
    import datetime

    for index, (pod, path) in enumerate(sorted(files.items())):
        with open(path, "a", encoding="utf-8") as handle:
            for n in range(per_pod):
                ts = start + (n * len(files) + index) * 1e-5
                moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
                stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}"
                handle.write(f"{stamp}000Z stdout F {stamp}+00:00 [warning] msg: bench_line, n: {n}, pod: {pod}, "
                             f"clientid: client-{n % 977}, reason: keepalive_timeout\n")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"bench: `{' '.join(argv)}` failed: {result.stderr.strip()}")
    return elapsed, result.stdout.count("\n")


def bench_logs(state: cluster.SandboxState, namespace: str, env: dict[str, str], per_pod: int,
               runs: int) -> dict[str, Any]:
    files = pod_log_files(state, namespace, env)
    append_lines(files, per_pod, time.time() - 3600)
    commands = {
        "kubectl emqx logs": ["kubectl", "emqx", "logs", CLUSTER, "-n", namespace],
        "kubectl emqx logs -o json": ["kubectl", "emqx", "logs", CLUSTER, "-n", namespace, "-o", "json"],
        "kubectl logs -l --prefix (reference)": ["kubectl", "logs", "-n", namespace, "-l",
                                                 f"apps.emqx.io/instance={CLUSTER}", "--tail=-1", "--prefix",
                                                 "--max-log-requests=6"],
    }
    rows: dict[str, Any] = {}
    for label, argv in commands.items():
        samples, lines = [], 0
        for _ in range(runs):
            elapsed, lines = timed(argv, env)
            samples.append(elapsed)
        best = statistics.median(samples)
        rows[label] = {"seconds": best, "lines": lines, "lines_per_s": lines / best}
    rows["kubectl emqx logs -f (follow)"] = bench_follow(files, namespace, env, per_pod)
    return rows


def bench_follow(files: dict[str, Path], namespace: str, env: dict[str, str], per_pod: int) -> dict[str, Any]:
    """Lines appended to every pod while `logs -f --tail 0` follows: seconds until all are printed."""
    proc = subprocess.Popen(["kubectl", "emqx", "logs", CLUSTER, "-n", namespace, "-f", "--tail", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    expected = per_pod * len(files)
    seen = 0
    done = threading.Event()

    def count() -> None:
        nonlocal seen
        assert proc.stdout is not None
        for _ in proc.stdout:
            seen += 1
            if seen >= expected:
                done.set()

    threading.Thread(target=count, daemon=True).start()
    time.sleep(3)  # streams attached
    start = time.perf_counter()
    append_lines(files, per_pod, time.time())
    written = time.perf_counter() - start
    finished = done.wait(300)
    elapsed = time.perf_counter() - start
    stop(proc)
    return {"seconds": elapsed, "lines": seen, "lines_per_s": seen / elapsed, "complete": finished,
            "writing_s": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=50_000, help="log lines appended per pod")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with cluster.reused_or_private("emqx-bench-day2-") as state:
        env = environment(state, REPO_ROOT / ".venv" / "bin")
        with ready_cluster(state, env) as namespace:
            results = {"dashboard": bench_dashboard(namespace, env, args.runs),
                       "logs": bench_logs(state, namespace, env, args.lines, max(1, args.runs // 2))}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
