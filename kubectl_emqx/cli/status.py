"""`kubectl emqx status NAME [-w]`: summary, node table, recent Events, and errors last."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from kubectl_emqx.cli.common import emit, load_cluster
from kubectl_emqx.cli.options import EmqxCommand, kube_options, name_argument, output_options, state
from kubectl_emqx.kube import errors
from kubectl_emqx.kube.api import ClusterReader

if TYPE_CHECKING:
    from kubectl_emqx.view.status_model import ClusterStatus

CLEAR_SCREEN = "\x1b[H\x1b[2J"


@click.command("status", cls=EmqxCommand)
@name_argument
@click.option("-w", "--watch", is_flag=True, help="Keep watching and redraw on every change (Ctrl-C stops).")
@output_options
@kube_options
def status(name: str, watch: bool, output: str | None, no_headers: bool, color: str) -> None:
    """Show an EMQX cluster: image, phase, ready nodes, conditions, the node table as EMQX reports
    it, recent Events, and at the end any part that could not be read."""
    from kubectl_emqx.view import render

    api = state().reader()
    namespace = api.namespace
    body = load_cluster(api, name, namespace)
    stdout_is_terminal = sys.stdout.isatty()
    style = render.Style(render.use_color(color, stdout_is_terminal))

    def show(current: dict[str, Any]) -> str:
        model = build_status(api, current)
        if output:
            return render.structured(model, output)
        return render.status_text(model, style, no_headers)

    emit(show(body))
    if not watch:
        return
    from kubectl_emqx.cli.wait import observe

    redraw = stdout_is_terminal and not output
    separator = {"yaml": "---\n", "json": ""}.get(output or "", "\n")
    try:
        for current in observe(api, name, namespace, deadline=None):
            if current is None:
                click.echo(f"{namespace}/{name} was deleted", err=True)
                return
            if current["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]:
                continue
            body = current
            emit((CLEAR_SCREEN if redraw else separator) + show(current))
    except KeyboardInterrupt:
        return


def build_status(api: ClusterReader, body: dict[str, Any]) -> ClusterStatus:
    """The status model, with Events when they can be read (otherwise noted under errors)."""
    from kubectl_emqx.view import status_model

    metadata = body["metadata"]
    problems: list[str] = []
    events: list[dict[str, Any]] = []
    try:
        events = api.list_events(metadata["name"], metadata["namespace"])
    except errors.PluginError as exc:
        problems.append(f"events: {exc.message}")
    return status_model.cluster_status(body, events, problems)
