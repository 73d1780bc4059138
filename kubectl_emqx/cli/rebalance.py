"""`kubectl emqx rebalance NAME [--stop]`: EMQX's connection rebalance across the nodes that serve
clients, done by the operator: the plugin writes spec.rebalance {at, stop, strategy} and follows
status.rebalance (EMQX's own progress, from GET /load_rebalance/global_status)."""

from __future__ import annotations

from time import monotonic
from typing import Any

import click

from kubectl_emqx.cli.common import info, load_cluster, patch_guarded
from kubectl_emqx.cli.completion import complete_cluster_names
from kubectl_emqx.cli.options import Duration, EmqxCommand, kube_options, state
from kubectl_emqx.kube import errors

STRATEGY_FLAGS = (
    ("conn_evict_rate", "connEvictRate", "Connections each donor evicts per second (EMQX: 500)."),
    ("sess_evict_rate", "sessEvictRate", "Disconnected sessions each donor evicts per second (EMQX: 500)."),
    ("wait_health_check", "waitHealthCheck",
     "Seconds for load balancers to see the donors as unavailable before eviction (EMQX: 60)."),
    ("wait_takeover", "waitTakeover", "Seconds between connection and session eviction (EMQX: 60)."),
    ("abs_conn_threshold", "absConnThreshold",
     "Balanced once the donors' average is within this many connections of the recipients' (EMQX: 1000)."),
    ("rel_conn_threshold", "relConnThreshold", "... or within this factor (> 1.0; EMQX: 1.1)."),
    ("abs_sess_threshold", "absSessThreshold", "As --abs-conn-threshold, for sessions (EMQX: 1000)."),
    ("rel_sess_threshold", "relSessThreshold", "As --rel-conn-threshold, for sessions (EMQX: 1.1)."),
)


def _strategy_options(func: Any) -> Any:
    for flag, key, text in reversed(STRATEGY_FLAGS):
        kind: Any = float if key.startswith("rel") else int
        func = click.option(f"--{flag.replace('_', '-')}", flag, type=kind, default=None, help=text)(func)
    return func


@click.command("rebalance", cls=EmqxCommand)
@click.argument("name", required=False, shell_complete=complete_cluster_names)
@click.option("--stop", is_flag=True, help="End the running rebalance.")
@click.option("-f", "--filename", type=click.Path(dir_okay=False, allow_dash=True),
              help="Take the options from the official operator's Rebalance manifest (YAML or JSON; - for stdin).")
@_strategy_options
@click.option("--dry-run", is_flag=True, help="Print what would be asked of EMQX, and its split into donors and "
              "recipients as status shows the connections now; change nothing.")
@click.option("--wait", is_flag=True, help="Follow the rebalance until EMQX has finished it.")
@click.option("--timeout", type=Duration(), default=None, help="How long --wait waits (default 30m).")
@kube_options
def rebalance(name: str | None, stop: bool, filename: str | None, dry_run: bool, wait: bool, timeout: float | None,
              **flags: Any) -> None:
    """Move client connections from the busiest nodes of cluster NAME to the others, with EMQX's
    node rebalance (Enterprise, and every build from 5.9): the nodes with at least the average
    number of connections (donors) refuse new ones and evict some, at the given rate, until their
    average is within the thresholds of the others' (recipients); then disconnected sessions follow.
    Clients reconnect through the load balancer to the recipients. The nodes are the replicants,
    or the cores when there are none (where the listeners Service sends clients).

    \b
    Examples:
      kubectl emqx rebalance demo --dry-run
      kubectl emqx rebalance demo --conn-evict-rate 50 --abs-conn-threshold 100 --wait
      kubectl emqx rebalance -f rebalance.yaml --wait      # the official operator's Rebalance
      kubectl emqx rebalance demo --stop
    """
    from kubectl_emqx.view import rebalance as view

    strategy = {key: flags[flag] for flag, key, _ in STRATEGY_FLAGS if flags.get(flag) is not None}
    for key in ("relConnThreshold", "relSessThreshold"):
        if key in strategy:
            strategy[key] = f"{strategy[key]:g}"
    if filename:
        if strategy:
            raise click.UsageError("give the options either in the manifest (-f) or as flags, not both")
        manifest_name, strategy = _read_manifest(filename)
        if name and name != manifest_name:
            raise click.BadParameter(f"the manifest's spec.instanceName is {manifest_name!r}, not {name!r}",
                                     param_hint="NAME")
        name = manifest_name
    if not name:
        raise click.UsageError("missing the cluster NAME (or -f with a Rebalance manifest)")
    try:
        view.check_strategy(strategy)
    except view.ManifestError as exc:
        raise click.BadParameter(str(exc), param_hint="-f" if filename else "the rebalance options") from None
    if stop and strategy:
        raise click.UsageError("--stop takes no rebalance options")

    api = state().api()
    body = load_cluster(api, name, api.namespace)
    namespace = body["metadata"]["namespace"]
    where = f"{namespace}/{name}"
    if stop:
        _stop(api, body, where, wait, timeout)
        return
    from kubectl_emqx.view.release import running_release

    edition, version = running_release(body)
    from kubectl_emqx.domain import versions

    refusal = versions.rebalance_refusal(edition, version)
    if refusal:
        raise errors.PluginError(f"{where}: {refusal}; nothing was written")
    preview = view.preview(body, strategy)
    if dry_run:
        click.echo(f"{where}: rebalance (dry run, nothing written)")
        for line in preview.lines(strategy) if preview else ["no running node reported yet"]:
            click.echo(f"  {line}")
        return
    current = view.running(body)
    if current is not None and wait and not strategy and not filename:
        info(f"{where}: following the rebalance asked at {current['at']}")
        follow(api, name, namespace, current["at"], timeout)
        return
    if current is not None:
        raise errors.PluginError(f"{where}: a rebalance asked at {current['at']} is still {view.progress_line(current)}"
                                 f"; follow it with `kubectl emqx rebalance {name} -n {namespace} --wait`, or stop "
                                 f"it with `kubectl emqx rebalance {name} -n {namespace} --stop`")
    from kubectl_emqx.domain.vocabulary import format_time, parse_time, utc_now

    now = utc_now().replace(microsecond=0)
    previous = parse_time(((body.get("spec") or {}).get("rebalance") or {}).get("at"))
    if previous is not None and now <= previous:
        import datetime

        now = previous + datetime.timedelta(seconds=1)
    at = format_time(now)
    patch_guarded(api, body, lambda current: {"spec": {"rebalance": _request(current, at, strategy)}})
    info(f"{where}: rebalance asked for at {at}")
    if preview is not None:
        for line in preview.lines(strategy, counts=False):  # EMQX counts the connections itself
            info(f"  {line}")
    if wait:
        follow(api, name, namespace, at, timeout)
    else:
        info(f"follow it with `kubectl emqx rebalance {name} -n {namespace} --wait` or `kubectl emqx status {name}`")


def _request(current: dict[str, Any], at: str, strategy: dict[str, Any]) -> dict[str, Any]:
    """The merge patch of spec.rebalance for a new request: options of the last request that are
    not given now are removed (null), not kept."""
    old = ((current.get("spec") or {}).get("rebalance") or {}).get("strategy") or {}
    merged: dict[str, Any] = {key: None for key in old}
    merged.update(strategy)
    return {"at": at, "stop": None, "strategy": merged or None}


def _stop(api: Any, body: dict[str, Any], where: str, wait: bool, timeout: float | None) -> None:
    from kubectl_emqx.view import rebalance as view

    current = view.running(body)
    if current is None:
        last = view.state(body)
        said = f" (the last one: {view.progress_line(last)})" if last else ""
        raise errors.PluginError(f"{where}: no rebalance is running{said}")
    at = current["at"]
    patch_guarded(api, body, lambda now: {"spec": {"rebalance": {"stop": True}}})
    info(f"{where}: asked the operator to stop the rebalance asked at {at}")
    if wait:
        metadata = body["metadata"]
        follow(api, metadata["name"], metadata["namespace"], at, timeout)


def _read_manifest(filename: str) -> tuple[str, dict[str, Any]]:
    import yaml

    from kubectl_emqx.view import rebalance as view

    try:
        text = click.open_file(filename, "r", encoding="utf-8").read()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {filename}: {exc.strerror}", param_hint="-f") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{filename} is not YAML or JSON: {str(exc).splitlines()[0]}",
                                 param_hint="-f") from None
    try:
        return view.from_manifest(document)
    except view.ManifestError as exc:
        raise click.BadParameter(f"{filename}: {exc}", param_hint="-f") from None


def follow(api: Any, name: str, namespace: str, at: str, timeout: float | None) -> dict[str, Any]:
    """Print status.rebalance for the request `at` as it changes, until a final phase. Completed
    and Stopped end well; Failed and Refused end with exit 3."""
    from kubectl_emqx.cli import wait as waiting
    from kubectl_emqx.view import rebalance as view
    from kubectl_emqx.view import render

    deadline = monotonic() + (timeout if timeout is not None else waiting.DEFAULT_TIMEOUT_SECONDS)
    where = f"{namespace}/{name}"
    shown = ""
    try:
        with waiting.Follower(api, name, namespace) as follower:
            for current in follower:
                if current is None:
                    raise errors.WaitFailed(f"{where} was deleted while following its rebalance")
                if current is not waiting.TICK:
                    record = view.state(current, at)
                    line = view.progress_line(record) if record else "waiting for the operator to take the request"
                    if line != shown:
                        shown = line
                        click.echo(render.stamped(f"{name}: rebalance {line}", waiting.wall_now()), err=True)
                    phase = record.get("phase")
                    if phase in ("Completed", "Stopped"):
                        return record
                    if phase in ("Failed", "Refused"):
                        raise errors.WaitFailed(f"{where}: rebalance {phase.lower()}: {record.get('message')}")
                if monotonic() >= deadline:
                    break
    except KeyboardInterrupt:
        raise errors.WaitInterrupted(
            f"interrupted: the rebalance goes on; stop it with `kubectl emqx rebalance {name} -n {namespace} --stop`"
        ) from None
    raise errors.WaitTimedOut(f"timed out waiting for the rebalance of {where}; last: {shown}; it goes on")
