"""`kubectl emqx create NAME`: build the EMQX resource with the operator's own builder, validate it
with the operator's own rules, and create it (or print it for --dry-run)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import IO

import click

from kubectl_emqx.cli.common import apply_settings, emit, info, refuse_new_problems
from kubectl_emqx.cli.options import EmqxCommand, kube_options, state, wait_options
from kubectl_emqx.kube import errors

# Opensource 5.7 still runs replicants (from 5.8 only Enterprise does) and needs no licence for a
# cluster (from 5.9 every build does), so the default 3 cores + 3 replicants works out of the box.
DEFAULT_IMAGE = "emqx/emqx:5.7.2"
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def _storage_size(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _QUANTITY.match(value):
        raise click.BadParameter(f"{value!r} is not a size (examples: 10Gi, 500Mi)")
    return value


@click.command("create", cls=EmqxCommand)
@click.argument("name")
@click.option(
    "--image", default=DEFAULT_IMAGE, show_default=True, help="EMQX image; its edition and version decide the defaults."
)
@click.option("--cores", type=click.IntRange(min=1), default=3, show_default=True, help="Core nodes (hold the data).")
@click.option(
    "--replicants",
    type=click.IntRange(min=0),
    default=None,
    help="Replicant nodes (serve clients)  [default: 3, or 0 for images without replicants]",
)
@click.option("--config-file", type=click.File("r"), help="HOCON configuration (like emqx.conf); '-' for stdin.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="One configuration setting (repeatable).")
@click.option("--storage-class", metavar="CLASS", help="Give cores a persistent volume of this StorageClass.")
@click.option("--storage-size", metavar="SIZE", callback=_storage_size, help="Core volume size (default 1Gi).")
@click.option("--service-type", type=click.Choice(SERVICE_TYPES), help="Type of the MQTT listeners Service.")
@click.option(
    "--dry-run",
    type=click.Choice(["none", "client", "server"]),
    default="none",
    is_flag=False,
    flag_value="client",
    help="client: print the resource; server: have the API server validate it too. Nothing is created.",
)
@click.option(
    "-o", "--output", type=click.Choice(["json", "yaml"]), help="Print the resource (default yaml for --dry-run)."
)
@wait_options
@kube_options
def create(
    name: str,
    image: str,
    cores: int,
    replicants: int | None,
    config_file: IO[str] | None,
    settings: Sequence[str],
    storage_class: str | None,
    storage_size: str | None,
    service_type: str | None,
    dry_run: str,
    output: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Create EMQX cluster NAME (3 cores + 3 replicants of emqx/emqx:5.7.2 unless told otherwise).

    \b
    Examples:
      kubectl emqx create my-emqx --wait
      kubectl emqx create my-emqx --image emqx/emqx-enterprise:5.8.9 --set license.key=...
      kubectl emqx create my-emqx --storage-class standard --storage-size 10Gi --dry-run -o yaml
    """
    from kubectl_emqx.domain.validation import name_errors

    for problem in name_errors(name):
        raise click.BadParameter(f"{name!r}: {problem.message}; {problem.fix}", param_hint="NAME")
    if config_file is not None and settings:
        raise click.UsageError("use either --config-file or --set, not both")
    from kubectl_emqx.domain import builders
    from kubectl_emqx.view import render

    config_text = read_config(config_file, settings)
    app = state()
    # A client dry run only prints: without -n it leaves the namespace to whoever applies it.
    namespace = None if dry_run == "client" and app.explicit_namespace is None else app.api().namespace
    body = builders.build_emqx_resource(
        name,
        namespace,
        image=image,
        cores=cores,
        replicants=replicants,
        config_text=config_text,
        storage_class=storage_class,
        storage_size=storage_size,
        service_type=service_type,
    )
    refuse_new_problems(None, body)
    if dry_run == "client":
        emit(render.structured(body, output or "yaml"))
        return

    api = app.api()
    created = api.create_emqx(body, api.namespace, dry_run=dry_run == "server")
    if dry_run == "server" or output:
        emit(render.structured(created, output or "yaml"))
    suffix = " (server dry run)" if dry_run == "server" else ""
    info(f"{api.namespace}/{name} created{suffix}")
    if wait and dry_run == "none":
        from kubectl_emqx.cli.wait import wait_until_ready

        wait_until_ready(api, created, timeout)


def read_config(config_file: IO[str] | None, settings: Sequence[str]) -> str | None:
    """The HOCON text for spec.config.data from --config-file or --set (validated), or None."""
    from kubectl_emqx.domain import hocon

    if config_file is not None:
        text = config_file.read()
        try:
            hocon.parse(text)
        except hocon.HoconError as exc:
            raise errors.PluginError(
                f"{config_file.name}: invalid HOCON at line {exc.line}, column {exc.column}: {exc.message}"
            ) from None
        return text
    text = apply_settings("", settings, "--set")
    return text or None
