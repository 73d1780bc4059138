"""python -m sandbox build | up | down | status | env"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from sandbox import build, cluster


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0 (e.g. 5 or 0.5)")
    return value


def _cmd_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    links = build.build_all(args.only or None)
    print(f"sandbox: binaries ready in {links} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if not args.no_build:
        build.build_all(sandbox_only=True)
    ready_at = time.monotonic()
    state = cluster.up(
        with_simulator=not args.no_simulator, probe_timing=args.probe_timing, boot_seconds=args.boot_seconds
    )
    print(
        f"sandbox: cluster ready in {time.monotonic() - ready_at:.1f}s "
        f"(total {time.monotonic() - started:.1f}s); kubeconfig {state.kubeconfig}",
        file=sys.stderr,
    )
    if args.operator:
        from sandbox import operator_process

        already = operator_process.running(state)
        comp = operator_process.start(state)
        what = "already running" if already else "started from the working tree"
        print(f"sandbox: operator {what} (pid {comp.pid}, log {comp.log})", file=sys.stderr)
    print("sandbox: point your shell at it with: eval \"$(python -m sandbox env)\"", file=sys.stderr)
    return 0


def _cmd_down(_: argparse.Namespace) -> int:
    if cluster.down():
        print("sandbox: stopped every component and removed the state", file=sys.stderr)
    else:
        print("sandbox: nothing running", file=sys.stderr)
    return 0


def _cmd_status(_: argparse.Namespace) -> int:
    rows = cluster.status()
    if not rows:
        print("sandbox: not running", file=sys.stderr)
        return 1
    width = max(len(name) for name, _, _ in rows)
    for name, state, log in rows:
        print(f"{name:<{width}}  {state:<8}  {log}")
    return 0 if all(state == "running" for _, state, _ in rows) else 1


def _cmd_env(_: argparse.Namespace) -> int:
    state = cluster.SandboxState.load()
    if state is None:
        print("sandbox: not running (python -m sandbox up)", file=sys.stderr)
        return 1
    venv_bin = cluster.REPO_ROOT / ".venv" / "bin"
    path = f"{shlex.quote(state.bin_dir)}:{shlex.quote(str(venv_bin))}:$PATH"
    print(f"export KUBECONFIG={shlex.quote(state.kubeconfig)} PATH={path}")
    if state.sim_control_url:
        print(f"export EMQX_SIM_URL={shlex.quote(state.sim_control_url)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the control-plane binaries from Go modules (cached)")
    p_build.add_argument("--only", nargs="*", choices=[g.name for g in build.GROUPS])
    p_build.set_defaults(func=_cmd_build)
    p_up = sub.add_parser("up", help="start the local cluster (and the EMQX simulator)")
    p_up.add_argument("--no-build", action="store_true", help="fail instead of building missing binaries")
    p_up.add_argument("--no-simulator", action="store_true")
    p_up.add_argument("--operator", action="store_true", help="also run the operator from the working tree")
    p_up.add_argument(
        "--probe-timing", choices=["honest", "fast"], default=None,
        help="the simulated kubelet's probe and back-off timing (default: $EMQX_SIM_PROBE_TIMING, else honest)",
    )
    p_up.add_argument(
        "--boot-seconds", type=_seconds, default=None, metavar="S",
        help="seconds a simulated EMQX node takes from its container's start to answering, honest (fast timing: "
        "a tenth; default: $EMQX_SIM_BOOT_SECONDS, else 5)",
    )
    p_up.set_defaults(func=_cmd_up)
    sub.add_parser("down", help="stop everything and remove the state").set_defaults(func=_cmd_down)
    sub.add_parser("status", help="list the components and their logs").set_defaults(func=_cmd_status)
    sub.add_parser("env", help="print shell exports for KUBECONFIG and PATH").set_defaults(func=_cmd_env)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
