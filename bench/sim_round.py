"""The simulator's own cost per node, without a control plane: N one-core clusters in a World whose nodes
listen on their pod IPs, driven by the simulated kubelet (fast timing, the operator's probes: startup every
1 s, readiness every 2 s, liveness every 30 s on /status) and the boot loop, as `python -m sandbox.emqxsim`
runs them.

    .venv/bin/python bench/sim_round.py [--pods 500] [--seconds 20]

The API server is replaced by a stand-in that applies each status patch to the pod and hands it back
to the World, as the watch would (no HTTP). Prints the CPU the process used (% of one core) while the
nodes boot and become Ready, then once all are Ready, and the kubelet's mean round time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent.parent)]

from sandbox.emqxsim import kubelet  # noqa: E402
from sandbox.emqxsim.api import NodeHttpServer  # noqa: E402
from sandbox.emqxsim.kube import Kubelet  # noqa: E402
from sandbox.emqxsim.testing import StaticObjectSource, StatusPatchApplier, emqx_objects, emqx_pod  # noqa: E402
from sandbox.emqxsim.world import World  # noqa: E402

PROBES = {
    "startupProbe": {"httpGet": {"path": "/status", "port": "dashboard"}, "periodSeconds": 1, "failureThreshold": 300},
    "readinessProbe": {"httpGet": {"path": "/status", "port": "dashboard"}, "periodSeconds": 2, "failureThreshold": 3},
    "livenessProbe": {"httpGet": {"path": "/status", "port": "dashboard"}, "periodSeconds": 30, "failureThreshold": 3},
}


def cpu() -> float:
    return time.process_time()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured once every pod is Ready")
    args = parser.parse_args()

    source = StaticObjectSource()
    pods = []
    for index in range(args.pods):
        instance = f"c{index:03d}"
        objects = emqx_objects(instance=instance)
        source.secrets.update(objects.secrets)
        source.config_maps.update(objects.config_maps)
        pod = emqx_pod(f"{instance}-core-0", instance=instance)
        pod["spec"]["containers"][0].update(PROBES)
        pod["status"] = {"phase": "Pending", "podIP": pod["status"]["podIP"]}
        pods.append(pod)
    world = World(server_factory=NodeHttpServer, boot_seconds=5.0)
    core = StatusPatchApplier(world)
    timing = kubelet.TIMINGS["fast"]
    with tempfile.TemporaryDirectory(prefix="sim-round-") as logs:
        kl = Kubelet(None, core, world, source, timing, Path(logs))  # type: ignore[arg-type]
        kl.kwok = None
        rounds: list[float] = []
        original = kl._round

        def timed_round() -> None:
            started = time.perf_counter()
            original()
            rounds.append(time.perf_counter() - started)

        kl._round = timed_round  # type: ignore[method-assign]
        stop = threading.Event()

        def boot_loop() -> None:
            while not stop.is_set():
                world.boot_due(lambda record: source)
                stop.wait(0.1)

        booter = threading.Thread(target=boot_loop, daemon=True)
        started, cpu_started = time.monotonic(), cpu()
        for pod in pods:
            world.observe_pod(pod)
        booter.start()
        kl.start()

        def ready() -> int:
            with world.lock:
                return sum(1 for r in world.pods.values() if r.observed_ready)

        while ready() < args.pods:
            if time.monotonic() - started > 600:
                print(f"only {ready()}/{args.pods} Ready after 600 s", file=sys.stderr)
                return 1
            time.sleep(0.2)
        boot_s, boot_cpu = time.monotonic() - started, cpu() - cpu_started
        rounds.clear()
        idle_started, idle_cpu = time.monotonic(), cpu()
        time.sleep(args.seconds)
        idle_s, idle_used = time.monotonic() - idle_started, cpu() - idle_cpu
        mean_round = sum(rounds) / len(rounds) if rounds else 0.0
        kl._stop.set()
        kl._thread.join()
        kl.stop()
        stop.set()
        world.stop_all()
    print(f"{args.pods} pods: all Ready after {boot_s:.1f} s using {boot_cpu:.1f} CPU s "
          f"({boot_cpu / boot_s * 100:.0f}% of a core); then {idle_used / idle_s * 100:.1f}% of a core over "
          f"{idle_s:.0f} s, kubelet round {mean_round * 1000:.1f} ms (every {kl.period:g} s); "
          f"{len(core.patches)} status patches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
