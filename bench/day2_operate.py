"""Day-2 operations benchmark: a rolling restart and a backup/restore round trip, as users run them.

On a sandbox with the operator (working tree) and the simulated kubelet at honest timing (the
kubelet's probe delays and periods), a cluster made with `kubectl emqx create demo --wait` (3 cores +
3 replicants of emqx/emqx:5.7.2, the default update strategy: initialDelaySeconds 0, waitTakeover 0):

    kubectl emqx restart demo --wait            -> every node once, cores first, one at a time
    kubectl emqx backup demo -f FILE            -> EMQX's export, through a port-forward
    kubectl emqx restore demo -f FILE --yes     -> EMQX's import

Reported per run: seconds for the restart (until Ready with status.restart Done), and for the
backup and the restore.

    .venv/bin/python bench/day2_operate.py [--runs 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from sandbox import cluster, operator_process  # noqa: E402
from tests.emqx_helpers import get_emqx, pod_uids  # noqa: E402
from tests.plugin_helpers import PluginRunner  # noqa: E402


def run_one(plugin: PluginRunner, api_client: Any, index: int) -> dict[str, Any]:
    from kubernetes import client

    namespace = f"bench-day2-{index}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
    try:
        created = plugin("create", "demo", "-n", namespace, "--wait", timeout=900)
        assert created.code == 0, created.describe()
        before = pod_uids(api_client, namespace, "demo")
        started = time.monotonic()
        restarted = plugin("restart", "demo", "-n", namespace, "--wait", timeout=1800)
        restart_seconds = time.monotonic() - started
        assert restarted.code == 0, restarted.describe()
        after = pod_uids(api_client, namespace, "demo")
        assert not set(before.values()) & set(after.values())
        assert get_emqx(api_client, namespace, "demo")["status"]["restart"]["phase"] == "Done"
        with tempfile.TemporaryDirectory() as scratch:
            archive = str(Path(scratch) / "demo.tar.gz")
            started = time.monotonic()
            made = plugin("backup", "demo", "-n", namespace, "-f", archive, timeout=600)
            backup_seconds = time.monotonic() - started
            assert made.code == 0, made.describe()
            started = time.monotonic()
            restored = plugin("restore", "demo", "-n", namespace, "-f", archive, "--yes", timeout=600)
            restore_seconds = time.monotonic() - started
            assert restored.code == 0, restored.describe()
        return {"restart_seconds": round(restart_seconds, 1), "backup_seconds": round(backup_seconds, 2),
                "restore_seconds": round(restore_seconds, 2), "pods_replaced": len(before)}
    finally:
        client.CoreV1Api(api_client).delete_namespace(namespace)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from kubernetes import config

    with cluster.reused_or_private("emqx-bench-day2-", probe_timing="honest") as state:
        operator_process.install_crd(state)
        proc, comp, port = operator_process.spawn(state, name="operator-bench-day2")
        try:
            operator_process.wait_live(comp, port)
            api_client = config.new_client_from_config(config_file=state.kubeconfig)
            plugin = PluginRunner(Path(state.bin_dir) / "kubectl", state.kubeconfig)
            results = [run_one(plugin, api_client, i) for i in range(args.runs)]
        finally:
            proc.terminate()
            proc.wait(15)
    print(f"3 cores + 3 replicants of emqx/emqx:5.7.2, honest kubelet timing, {args.runs} run(s)")
    print(f"{'run':>4} {'restart':>9} {'backup':>8} {'restore':>8}")
    for number, r in enumerate(results, 1):
        print(f"{number:>4} {r['restart_seconds']:>8.1f}s {r['backup_seconds']:>7.2f}s {r['restore_seconds']:>7.2f}s")
    print(f"median: restart {statistics.median(r['restart_seconds'] for r in results):.1f} s, backup "
          f"{statistics.median(r['backup_seconds'] for r in results):.2f} s, restore "
          f"{statistics.median(r['restore_seconds'] for r in results):.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
