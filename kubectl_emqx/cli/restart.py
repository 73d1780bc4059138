"""`kubectl emqx restart NAME [--role cores|replicants] [--node POD]...`: a rolling restart done by
the operator, asked for in `spec.restart {at, role, nodes}` (like `kubectl rollout restart`'s
annotation), so it survives operator restarts and shows in `status.restart`."""

from __future__ import annotations

import datetime
from typing import Any

import click

from kubectl_emqx.cli.common import info, load_cluster, patch_guarded, warn
from kubectl_emqx.cli.logs import complete_pod_names
from kubectl_emqx.cli.options import EmqxCommand, kube_options, name_argument, state, wait_options, yes_option
from kubectl_emqx.kube import errors


@click.command("restart", cls=EmqxCommand)
@name_argument
@click.option("--role", type=click.Choice(["all", "cores", "replicants"]), default="all", show_default=True,
              help="Which nodes: every node, only cores, or only replicants.")
@click.option("--node", "nodes", metavar="POD", multiple=True, shell_complete=complete_pod_names,
              help="Only this node: a pod name or an EMQX node name (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print which nodes would restart, in which order; change nothing.")
@click.option("--force", is_flag=True,
              help="Ask for a new restart while the last one is still under way (its nodes restart again).")
@yes_option
@wait_options
@kube_options
def restart(name: str, role: str, nodes: tuple[str, ...], dry_run: bool, force: bool, yes: bool, wait: bool,
            timeout: float | None) -> None:
    """Restart the nodes of cluster NAME one at a time: cores first (each back and running per EMQX
    before the next), then replicants; busy nodes are evacuated first where the edition can
    (Enterprise, and every build from 5.9). The operator does the work: the request is
    spec.restart, so it survives an operator restart, and status.restart says how far it got.

    \b
    Examples:
      kubectl emqx restart demo --dry-run
      kubectl emqx restart demo --role cores --wait
      kubectl emqx restart demo --node demo-core-1 --wait
    """
    from kubectl_emqx.kube.pods import PodApi
    from kubectl_emqx.view import restart as restart_view

    api = state().api()
    body = load_cluster(api, name, api.namespace)
    namespace = body["metadata"]["namespace"]
    pods, _ = PodApi(api).list_pods(namespace, _selector(name))  # type: ignore[arg-type]
    try:
        the_plan = restart_view.plan(body, pods, role, nodes)
    except restart_view.RestartError as exc:
        raise errors.PluginError(str(exc)) from None
    if not the_plan.pods:
        raise errors.PluginError(f"{namespace}/{name} has no {'' if role == 'all' else role[:-1] + ' '}"
                                 "nodes to restart")
    header = f"{namespace}/{name}: restart {len(the_plan.pods)} node(s)"
    if dry_run:
        click.echo(f"{header} (dry run, nothing written)")
        for line in the_plan.lines():
            click.echo(f"  {line}")
        return
    from kubectl_emqx.view import rebalance as rebalance_view

    balancing = rebalance_view.running(body)
    if balancing is not None:
        raise errors.PluginError(
            f"{namespace}/{name}: a rebalance is under way ({rebalance_view.progress_line(balancing)}); it uses "
            f"the nodes' eviction agents that a restart drains nodes with: stop it first with "
            f"`kubectl emqx rebalance {name} -n {namespace} --stop`, or wait for it")
    running = restart_view.in_progress(body)
    if running and not force:
        raise errors.PluginError(f"{namespace}/{name}: {running}; follow it with `kubectl emqx status {name} -n "
                                 f"{namespace} -w`, or add --force to ask for a new one")
    if running:
        warn(f"{running}; asking for a new one: nodes restarted for it restart again")
    request: dict[str, Any] = {"role": role, "nodes": list(the_plan.pods) if nodes else None}
    at = server_now(api, body, request)

    def build(current: dict[str, Any]) -> dict[str, Any]:
        return {"spec": {"restart": {"at": at, **request}}}

    result = patch_guarded(api, body, build)
    info(header)
    for line in the_plan.lines():
        info(f"  {line}")
    if wait:
        from kubectl_emqx.cli.wait import wait_until_ready

        wait_until_ready(api, result, timeout, verify=lambda current: restart_view.done(current, at),
                         title=f"restart of {namespace}/{name}")
    else:
        info(f"follow it with `kubectl emqx status {name} -n {namespace} -w`")


def _selector(name: str) -> str:
    from kubectl_emqx.domain.vocabulary import label_selector

    return label_selector(name)


def server_now(api: Any, body: dict[str, Any], request: dict[str, Any]) -> str:
    """The API server's clock, to the second, read from a dry-run write of the request.

    The operator restarts a named pod when it was created before `at`: with the plugin's clock ahead
    of the cluster's, a node replaced by this very restart would look older than the request and be
    restarted again. The server stamps every write (managedFields[].time); a dry run writes nothing."""
    from kubectl_emqx.domain.vocabulary import format_time, parse_time, utc_now

    client_now = utc_now().replace(microsecond=0)
    previous = parse_time(((body.get("spec") or {}).get("restart") or {}).get("at"))
    probe = client_now if previous is None or client_now > previous else previous + datetime.timedelta(seconds=1)
    metadata = body["metadata"]
    echoed = api.patch_emqx(metadata["name"], metadata["namespace"],
                            {"spec": {"restart": {"at": format_time(probe), **request}}}, dry_run=True)
    stamps = [parse_time(entry.get("time")) for entry in (echoed.get("metadata") or {}).get("managedFields") or []]
    server = max((stamp for stamp in stamps if stamp is not None), default=None)
    moment = server or client_now
    if previous is not None and moment <= previous:
        moment = previous + datetime.timedelta(seconds=1)  # a new value is a new request
    return format_time(moment)
