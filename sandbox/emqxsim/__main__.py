"""python -m sandbox.emqxsim --kubeconfig PATH --control-addr 127.0.0.1:PORT [--log-file F] [--pod-logs DIR]

Runs the pod watcher, the simulated nodes, their kubelet and the control API until SIGTERM/SIGINT. Prints
`emqxsim control API on http://HOST:PORT` on stdout once serving (useful with port 0), and writes
that URL to --ready-file if given. Probe and back-off timing: --probe-timing, else $EMQX_SIM_PROBE_TIMING,
else honest. Boot duration (container start to the node answering, honest seconds, scaled like the
probes): --boot-seconds, else $EMQX_SIM_BOOT_SECONDS, else 5.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from . import kubelet
from .simulator import Simulator


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host.startswith("127.") or not port.isdigit():
        raise argparse.ArgumentTypeError("expected 127.x.y.z:PORT (loopback only)")
    return host, int(port)


BOOT_SECONDS_ENV = "EMQX_SIM_BOOT_SECONDS"
# An assumption (docs/fidelity.md, "Boot: how long it takes"): a few seconds from container start
# until EMQX's dashboard listener answers.
DEFAULT_BOOT_SECONDS = 5.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds >= 0 for --boot-seconds / ${BOOT_SECONDS_ENV} (e.g. 5 or 0.5)"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.emqxsim", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the sandbox cluster")
    parser.add_argument("--control-addr", type=_address, default=("127.0.0.1", 0), help="HOST:PORT of the control API")
    parser.add_argument("--log-file", help="log here instead of stderr")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--retry-interval", type=float, default=1.0, help="seconds between boot retries of a pod")
    parser.add_argument(
        "--probe-timing",
        choices=sorted(kubelet.TIMINGS),
        default=os.environ.get(kubelet.TIMING_ENV) or "honest",
        help="kubelet probe and back-off timing: honest (a kubelet's) or fast (one tenth)",
    )
    parser.add_argument(
        "--boot-seconds",
        type=_seconds,
        default=os.environ.get(BOOT_SECONDS_ENV) or DEFAULT_BOOT_SECONDS,
        help=f"seconds from a container's start until its node answers (honest; fast timing: a tenth); "
        f"default ${BOOT_SECONDS_ENV}, else {DEFAULT_BOOT_SECONDS:g}",
    )
    parser.add_argument("--pod-logs", help="write container logs (CRI format) under this directory")
    parser.add_argument("--ready-file", help="write the control API URL here once serving")
    parser.add_argument("--state-file", help="keep the nodes' data directories here across restarts of the simulator")
    parser.add_argument(
        "--join-delay",
        type=float,
        default=3.0,
        help="a fresh core runs alone up to this many seconds (random) before joining its cluster, as ekka's "
        "autocluster sleeps up to 3 s before discovering (0: join at once)",
    )
    parser.add_argument(
        "--join-restart", type=float, default=0.5, help="seconds the API is down while the apps restart for a join"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    handler: logging.Handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("emqxsim")
    logger.addHandler(handler)
    logger.setLevel(args.log_level)

    host, port = args.control_addr
    timing = kubelet.timing_named(args.probe_timing)
    log_root = Path(args.pod_logs) if args.pod_logs else None
    simulator = Simulator(
        args.kubeconfig, host, port, args.retry_interval, timing, log_root,
        join_delay=(min(0.1, args.join_delay), args.join_delay),
        join_restart=args.join_restart,
        state_file=Path(args.state_file) if args.state_file else None,
        boot_seconds=args.boot_seconds,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: simulator.request_stop())
    simulator.start()
    print(f"emqxsim control API on {simulator.control_url}", flush=True)
    if args.ready_file:
        Path(args.ready_file).write_text(simulator.control_url + "\n")
    simulator.wait()
    simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
