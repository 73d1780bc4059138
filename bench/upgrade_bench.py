"""Upgrade benchmark: a 3-core + 3-replicant cluster, emqx/emqx:5.0.6 -> 5.0.7, on a private sandbox.

For each takeover delay given (seconds between node replacements; the default strategy waits 10 s),
reports the upgrade's wall time (image patched -> Ready on the new image everywhere), how many pods
were replaced (it must be exactly 6), the order in which nodes booted, and how many EMQX API
requests the operator made during the upgrade.

    .venv/bin/python bench/upgrade_bench.py [--takeover 0 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from sandbox import cluster, operator_process  # noqa: E402
from sandbox.emqxsim.client import SimClient  # noqa: E402
from tests.emqx_helpers import cr, custom_api, get_emqx, patch_emqx, pod_uids, wait_ready  # noqa: E402
from tests.helpers import wait_for  # noqa: E402


def run_one(api_client: Any, sim: SimClient, takeover: int, index: int) -> dict[str, Any]:
    from kubernetes import client

    namespace = f"bench-upgrade-{index}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
    body = cr("up", image="emqx/emqx:5.0.6", cores=3, replicants=3)
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": takeover}}
    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", body)
    wait_ready(api_client, namespace, "up", timeout=180)
    before = pod_uids(api_client, namespace, "up")
    mark = sim.last_seq()
    sim.reset_request_counts()
    started = time.monotonic()
    patch_emqx(api_client, namespace, "up", {"spec": {"image": "emqx/emqx:5.0.7"}})

    def upgraded() -> bool:
        obj = get_emqx(api_client, namespace, "up")
        ready = next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
        return bool(obj["status"].get("currentImage") == "emqx/emqx:5.0.7" and ready.get("status") == "True")

    wait_for(upgraded, 600, "the upgrade", interval=0.05)
    seconds = time.monotonic() - started
    after = pod_uids(api_client, namespace, "up")
    boots = [e for e in sim.boot_log(since=mark)
             if e["event"] == "booted" and str(e.get("pod", "")).startswith(f"{namespace}/")]
    counts = sim.request_counts()
    api_requests = sum(c["total"] for node, c in counts.items() if namespace in node or node.startswith("emqx@127."))
    client.CoreV1Api(api_client).delete_namespace(namespace)
    return {
        "takeover_seconds": takeover,
        "upgrade_seconds": round(seconds, 1),
        "pods_replaced": len(set(before.values()) - set(after.values())),
        "pods_total": len(before),
        "boot_order": [str(e["pod"]).split("/", 1)[1] for e in boots],
        "emqx_api_requests": api_requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takeover", type=int, nargs="+", default=[0, 10])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from kubernetes import config

    directory = Path(tempfile.mkdtemp(prefix="emqx-bench-upgrade-"))
    state = cluster.up(directory=directory)
    try:
        operator_process.install_crd(state)
        proc, comp, port = operator_process.spawn(state, name="operator-bench")
        operator_process.wait_live(comp, port)
        api_client = config.new_client_from_config(config_file=state.kubeconfig)
        sim = SimClient(state.sim_control_url)
        results = [run_one(api_client, sim, takeover, i) for i, takeover in enumerate(args.takeover)]
        proc.terminate()
    finally:
        cluster.down(directory)
    print(f"{'takeover':>9} {'upgrade':>9} {'replaced':>9} {'API reqs':>9}  boot order")
    for r in results:
        print(f"{r['takeover_seconds']:>8}s {r['upgrade_seconds']:>8}s {r['pods_replaced']:>4}/{r['pods_total']:<4}"
              f" {r['emqx_api_requests']:>9}  {' '.join(r['boot_order'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
