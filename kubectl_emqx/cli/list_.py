"""`kubectl emqx list [-A]`: NAME, NAMESPACE, IMAGE, CORES, REPLICANTS, STATUS, AGE."""

from __future__ import annotations

import sys

import click

from kubectl_emqx.cli.common import emit
from kubectl_emqx.cli.options import EmqxCommand, kube_options, output_options, state


@click.command("list", cls=EmqxCommand)
@click.option("-A", "--all-namespaces", is_flag=True, help="List clusters in every namespace.")
@output_options
@kube_options
def list_clusters(all_namespaces: bool, output: str | None, no_headers: bool, color: str) -> None:
    """List EMQX clusters in the namespace (or all namespaces with -A).

    CORES and REPLICANTS show ready/desired nodes; STATUS is the operator's phase.
    """
    from kubectl_emqx.view import render, status_model

    api = state().reader()
    namespace = None if all_namespaces else api.namespace
    items = api.list_emqx(namespace)
    rows = sorted(
        (status_model.summarize(item) for item in items), key=lambda row: (row.namespace, row.name)
    )
    if output:
        emit(render.structured(rows, output))
        return
    if not rows:
        where = "any namespace" if all_namespaces else f"namespace {api.namespace}"
        click.echo(f"No EMQX clusters found in {where}.", err=True)
        return
    style = render.Style(render.use_color(color, sys.stdout.isatty()))
    emit(render.list_text(rows, style, no_headers))
