"""`kubectl emqx install|uninstall`: reserved names; the operator installer comes later."""

from __future__ import annotations

import click

from kubectl_emqx import errors
from kubectl_emqx.cli.options import EmqxCommand, kube_options


def _not_yet(verb: str) -> None:
    raise errors.NotYetAvailable(
        f"`kubectl emqx {verb}` is not yet available in this build; "
        "apply the operator manifests with kubectl for now"
    )


@click.command("install", cls=EmqxCommand)
@kube_options
def install() -> None:
    """Install the EMQX operator and its CRD (not yet available)."""
    _not_yet("install")


@click.command("uninstall", cls=EmqxCommand)
@kube_options
def uninstall() -> None:
    """Remove the EMQX operator (not yet available)."""
    _not_yet("uninstall")
