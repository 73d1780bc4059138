"""emqx-operator: run the EMQX operator (cluster-wide or in given namespaces)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from emqx_operator import __version__


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="emqx-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    scope.add_argument("-n", "--namespace", action="append", default=[],
                       help="watch only this namespace (repeatable)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                        help="out-of-cluster credentials (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--liveness", default=os.environ.get("EMQX_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
                        help="liveness endpoint URL, or '' to disable")
    parser.add_argument("--emqx-address", choices=["pod-ip", "service"], default="pod-ip",
                        help="how to reach EMQX's API: a ready core pod's IP, or the dashboard Service DNS name")
    parser.add_argument("--resync-seconds", type=float, default=30.0,
                        help="how often a settled cluster is observed again")
    parser.add_argument("--workers", type=int, default=4, help="EMQX resources reconciled in parallel")
    parser.add_argument("--metrics-addr", default=os.environ.get("EMQX_OPERATOR_METRICS", "0.0.0.0:9090"),
                        help="host:port of the Prometheus /metrics endpoint, or '' to disable")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"emqx-operator {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.kubeconfig:
        # The kubernetes client reads $KUBECONFIG when it is imported (kopf imports it): set it first.
        os.environ["KUBECONFIG"] = args.kubeconfig
    import kopf

    from emqx_operator import handlers, runtime  # noqa: F401 - registers the kopf handlers
    from emqx_operator.cluster_api import ClusterApi
    from emqx_operator.reconcile import Reconciler
    from emqx_operator.scheduler import Scheduler

    kopf.configure(verbose=args.verbose)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not args.verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    api = ClusterApi.from_kubeconfig(args.kubeconfig)
    options = runtime.Options(emqx_address=args.emqx_address, resync_seconds=args.resync_seconds)
    reconciler = Reconciler(api, options)
    scheduler = Scheduler(reconciler.reconcile, workers=args.workers)
    runtime.install(runtime.OperatorState(api, scheduler, options))
    if args.metrics_addr:
        from emqx_operator import metrics

        host, _, port = args.metrics_addr.rpartition(":")
        metrics.METRICS.writes_source = api
        metrics.serve(host or "0.0.0.0", int(port))
    try:
        asyncio.run(kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=True,
            liveness_endpoint=args.liveness or None,
        ))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
