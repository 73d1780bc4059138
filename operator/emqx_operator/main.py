"""emqx-operator: run the EMQX operator (cluster-wide or in given namespaces)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import uuid
from typing import Any

from emqx_operator import __version__
from emqx_operator.leader import DEFAULT_LEASE_NAME, DEFAULT_LEASE_SECONDS

LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="emqx-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    scope.add_argument("-n", "--namespace", action="append", default=[],
                       help="watch only this namespace (repeatable)")
    parser.add_argument("--exclude-namespace", action="append", default=[], metavar="GLOB",
                        help="leave EMQX resources in matching namespaces alone (repeatable)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                        help="out-of-cluster credentials (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--liveness", default=os.environ.get("EMQX_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
                        help="liveness endpoint URL, or '' to disable")
    parser.add_argument("--emqx-address", choices=["pod-ip", "service"], default="pod-ip",
                        help="how to reach EMQX's API: a ready core pod's IP, or the dashboard Service DNS name")
    parser.add_argument("--resync-seconds", type=float, default=None,
                        help="how often a settled cluster is observed again (default 75; pod and owned-object changes "
                             "trigger a pass at once; this catches what only EMQX sees)")
    # A pass mostly waits on the API server: with 4, 500 clusters created at once took 134 s to be
    # Ready on the 2-core sandbox, with 8 116 s (bench/scale_bench.py). Idle, unused ones cost nothing.
    parser.add_argument("--workers", type=int, default=8, help="EMQX resources reconciled in parallel")
    parser.add_argument("--metrics-addr", default=os.environ.get("EMQX_OPERATOR_METRICS", "0.0.0.0:9090"),
                        help="host:port of the Prometheus /metrics endpoint, or '' to disable")
    election = parser.add_argument_group("leader election (one active operator among replicas)")
    election.add_argument("--leader-elect", nargs="?", const=True, default=True, type=_boolean, metavar="BOOL",
                          help="reconcile only while holding a coordination.k8s.io Lease (default true; "
                          "--leader-elect=false for a single instance)")
    election.add_argument("--lease-name", default=DEFAULT_LEASE_NAME, help="name of the Lease")
    election.add_argument("--lease-namespace", default=None,
                          help="namespace of the Lease (default: $POD_NAMESPACE, else the kubeconfig context's "
                          "namespace, else default)")
    election.add_argument("--lease-duration", type=_positive_int, default=DEFAULT_LEASE_SECONDS, metavar="SECONDS",
                          help="how long a Lease not renewed stays held; renewals every duration/7.5 seconds")
    election.add_argument("--identity", default=None,
                          help="this instance's holder identity (default: $POD_NAME, else the host name "
                          "and a random suffix)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                        help="log threshold (default info; debug also logs kopf's per-object messages)")
    parser.add_argument("-v", "--verbose", action="store_true", help="same as --log-level=debug")
    parser.add_argument("--version", action="version", version=f"emqx-operator {__version__}")
    return parser.parse_args(argv)


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (true or false)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def lease_namespace(args: argparse.Namespace, default_namespace: str | None = None) -> str:
    if args.lease_namespace:
        return str(args.lease_namespace)
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    if default_namespace:
        return default_namespace
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
            return handle.read().strip() or "default"
    except OSError:
        return "default"


def identity(args: argparse.Namespace) -> str:
    if args.identity:
        return str(args.identity)
    if os.environ.get("POD_NAME"):
        return os.environ["POD_NAME"]
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _memory_report_on_signal() -> None:
    """With PYTHONTRACEMALLOC set (tracemalloc on from the start), SIGUSR2 logs where the memory is,
    by source file: the figures in docs/internals.md ("Memory") come from it. Tracing costs memory and
    time: a diagnosis tool, off unless asked for."""
    import signal
    import tracemalloc

    def report(*_: Any) -> None:
        snapshot = tracemalloc.take_snapshot()
        stats = snapshot.statistics("filename")
        total = sum(s.size for s in stats)
        lines = [f"traced {total / 2**20:.1f} MiB in {len(stats)} files; largest:"]
        lines += [f"  {s.size / 2**20:7.2f} MiB {s.count:8d} blocks  {s.traceback[0].filename}" for s in stats[:40]]
        logging.getLogger("emqx_operator.memory").warning("\n".join(lines))

    signal.signal(signal.SIGUSR2, report)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    if os.environ.get("PYTHONTRACEMALLOC"):
        _memory_report_on_signal()
    # kopf uses the kubernetes client library when it can import it, and it costs ~40 MiB of RSS; the
    # operator talks to the API itself (kubeconn.py, cluster_api.py), so kopf gets the same
    # credentials through its login handler and never loads the library.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    import kopf

    from emqx_operator import handlers, memory, runtime  # noqa: F401 - handlers registers kopf's handlers
    from emqx_operator.cache import ObjectCache
    from emqx_operator.cluster_api import ClusterApi
    from emqx_operator.kubeconn import Connection, login_info
    from emqx_operator.reconcile import Reconciler
    from emqx_operator.scheduler import Scheduler

    debug = args.verbose or args.log_level == "debug"
    kopf.configure(verbose=debug)
    logging.getLogger().setLevel("DEBUG" if debug else args.log_level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not debug:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    info = login_info(args.kubeconfig)
    api = ClusterApi(Connection.from_info(info))
    options = runtime.Options(emqx_address=args.emqx_address,
                              resync_seconds=args.resync_seconds or runtime.RESYNC_SECONDS,
                              excluded_namespaces=tuple(args.exclude_namespace))
    cache = ObjectCache()
    reconciler = Reconciler(api, options, cache=cache)
    scheduler = Scheduler(reconciler.reconcile, workers=args.workers, on_idle=memory.release_freed_memory)
    memo = kopf.Memo(state=runtime.OperatorState(api, scheduler, options, login=info, cache=cache))
    from emqx_operator import metrics

    if args.metrics_addr:
        host, _, port = args.metrics_addr.rpartition(":")
        metrics.METRICS.writes_source = api
        metrics.serve(host or "0.0.0.0", int(port))
    elector = None
    if args.leader_elect:
        from emqx_operator.leader import LeaderElector, Leadership, Timing

        scheduler.enabled = False
        leadership = Leadership(api, scheduler, args.namespace, manages=options.manages)
        elector = LeaderElector(
            api, lease_namespace(args, info.default_namespace), args.lease_name, identity(args),
            Timing(args.lease_duration),
            on_started_leading=leadership.started, on_stopped_leading=leadership.stopped,
        )
        metrics.METRICS.set_leader(False)
    try:
        asyncio.run(_run(kopf, args, elector, memo))
    except KeyboardInterrupt:
        return 0
    return 0


async def _run(kopf: Any, args: argparse.Namespace, elector: Any, memo: Any) -> None:
    election = None
    if elector is not None:
        logging.getLogger("emqx_operator.leader").info(
            "waiting for Lease %s/%s as %r", elector.namespace, elector.name, elector.identity)
        election = asyncio.create_task(elector.run())
    try:
        await kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=True,
            liveness_endpoint=args.liveness or None,
            memo=memo,
        )
    finally:
        if election is not None:
            election.cancel()
            try:
                await election
            except asyncio.CancelledError:
                pass
            await asyncio.to_thread(elector.release)


if __name__ == "__main__":
    sys.exit(main())
