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
    from datetime import datetime

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
    stdout_is_terminal = _stdout_is_terminal()
    style = render.Style(render.use_color(color, stdout_is_terminal))

    def show(read: Read, now: datetime | None = None) -> str:
        from kubectl_emqx.view import status_model

        model = status_model.cluster_status(*read)  # built per draw: extrapolated uptimes move on too
        if output:
            return render.structured(model, output)
        return render.status_text(model, style, no_headers, now=now)

    read = read_around(api, body)
    drawn = show(read)
    emit(drawn)
    if not watch:
        return
    from kubectl_emqx.cli.wait import TICK, Follower, wall_now

    # On a terminal the view is redrawn in place on every change and, as its ages and countdowns
    # move, at least once a second; otherwise (or with -o) each change is printed once.
    redraw = stdout_is_terminal and not output
    separator = {"yaml": "---\n", "json": ""}.get(output or "", "\n")
    seen = body["metadata"]["resourceVersion"]
    at_top = False  # the first redraw clears the screen; later ones repaint from the top
    try:
        # Events are read in the watch thread too: the light session carries one request at a time.
        with Follower(api, name, namespace, enrich=lambda current: read_around(api, current)) as follower:
            for item in follower:
                if item is None:
                    click.echo(f"{namespace}/{name} was deleted", err=True)
                    return
                if item is not TICK:
                    if item[0]["metadata"]["resourceVersion"] == seen:
                        continue
                    seen = item[0]["metadata"]["resourceVersion"]
                    read = item
                    if not redraw:
                        emit(separator + show(read, wall_now()))
                        continue
                if redraw:
                    text = show(read, wall_now())
                    if text != drawn:
                        if at_top:
                            click.echo(repaint(text), nl=False, color=True)
                        else:
                            emit(CLEAR_SCREEN + text)
                        drawn, at_top = text, True
    except KeyboardInterrupt:
        return


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def repaint(text: str) -> str:
    """Redraw from the top left without clearing first (no flicker): each line erases what is
    left of the old one, and everything below the new text is erased."""
    lines = text.rstrip("\n").split("\n")
    return "\x1b[H" + "".join(f"{line}\x1b[K\n" for line in lines) + "\x1b[J"


Read = tuple[dict[str, Any], list[dict[str, Any]], list[str]]  # the resource, its Events, what failed


def read_around(api: ClusterReader, body: dict[str, Any]) -> Read:
    """The resource with its Events when they can be read (otherwise noted as a problem)."""
    metadata = body["metadata"]
    problems: list[str] = []
    events: list[dict[str, Any]] = []
    try:
        events = api.list_events(metadata["name"], metadata["namespace"])
    except errors.PluginError as exc:
        problems.append(f"events: {exc.message}")
    return body, events, problems


def build_status(api: ClusterReader, body: dict[str, Any]) -> ClusterStatus:
    """The status model, with Events when they can be read (otherwise noted under errors)."""
    from kubectl_emqx.view import status_model

    return status_model.cluster_status(*read_around(api, body))
