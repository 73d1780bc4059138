"""`kubectl emqx config get|set|edit|apply`: read or change the HOCON the EMQX resource carries
(spec.config.data, or spec.bootstrapConfig on v2alpha1-style resources).

Every change is parsed before anything is written (invalid HOCON is reported with line and
column), shown as a per-setting diff split into settings EMQX applies live and settings that need
a rolling restart, and confirmed unless --yes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

import click

from kubectl_emqx.cli.common import (
    apply_merge_patch,
    apply_settings,
    confirm,
    emit,
    info,
    load_cluster,
    patch_guarded,
    refuse_new_problems,
    unchanged,
    warn,
)
from kubectl_emqx.cli.options import (
    EmqxCommand,
    EmqxGroup,
    kube_options,
    name_argument,
    output_options,
    state,
    wait_options,
    yes_option,
)
from kubectl_emqx.kube import errors

EDITOR_ERROR_MARKER = "# kubectl-emqx:"


@click.group("config", cls=EmqxGroup)
@kube_options
def config() -> None:
    """Show or change a cluster's EMQX configuration (HOCON, as in emqx.conf)."""


@config.command("get", cls=EmqxCommand)
@name_argument
@click.option("--live", is_flag=True, help="Show what EMQX runs (as the operator last read it) and the drift.")
@output_options
@kube_options
def get(name: str, live: bool, output: str | None, no_headers: bool, color: str) -> None:
    """Print the configuration of cluster NAME as the resource holds it.

    With --live, print the configuration EMQX reports (status.config.live) followed by the drift:
    settings of the resource that EMQX does not run as written (as HOCON comments).
    """
    from kubectl_emqx.view import render, status_model

    api = state().api()
    body = load_cluster(api, name, api.namespace)
    view = status_model.config_view(body, include_live=live)
    if output:
        emit(render.structured(view, output))
    else:
        emit(config_text(view))
        if not view.text.strip() and not live:
            info(f"{view.namespace}/{view.name} sets no configuration in {view.config_field}: EMQX runs its defaults")
    for problem in view.errors:
        warn(problem)


def config_text(view: Any) -> str:
    if view.live is None:
        return view.text
    lines = [view.live.rstrip("\n")]
    if view.drift:
        from kubectl_emqx.domain.hocon import render_value

        lines.append(f"# Drift: settings in {view.config_field} that EMQX does not run as written:")
        for item in view.drift:
            running = "absent" if item.live is None else render_value(item.live)
            lines.append(f"#   {item.path}: resource {render_value(item.resource)}, live {running}")
    elif view.drift is not None:
        lines.append(f"# No drift: EMQX runs every setting of {view.config_field} as written.")
    return "\n".join(lines) + "\n"


@config.command("set", cls=EmqxCommand)
@name_argument
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@yes_option
@wait_options
@kube_options
def set_(name: str, assignments: Sequence[str], yes: bool, wait: bool, timeout: float) -> None:
    """Set one or more settings: `config set NAME mqtt.max_packet_size=2MB log.console.level=debug`.

    Values are typed: numbers and true/false stay numbers and booleans, "quoted" text, [lists]
    and {objects} are read as HOCON, anything else (durations, sizes, addresses) is a string.
    """
    # Check the assignments before reading the cluster: bad input is a usage error.
    apply_settings("", assignments, "KEY=VALUE")

    def edit(text: str) -> str:
        return apply_settings(text, assignments, "KEY=VALUE")

    change_config(name, edit, yes=yes, wait=wait, timeout=timeout)


@config.command("apply", cls=EmqxCommand)
@name_argument
@click.option(
    "-f", "--filename", "file", type=click.File("r"), required=True, help="HOCON file to apply ('-' for stdin)."
)
@click.option(
    "--mode",
    type=click.Choice(["merge", "replace"]),
    default="merge",
    show_default=True,
    help="merge: the file's settings override the resource's, the rest stays; replace: the file becomes "
    "the whole configuration.",
)
@yes_option
@wait_options
@kube_options
def apply(name: str, file: IO[str], mode: str, yes: bool, wait: bool, timeout: float) -> None:
    """Apply a HOCON file to cluster NAME's configuration (merged over it, or replacing it)."""
    from kubectl_emqx.domain import hocon

    incoming = file.read()
    try:
        incoming_settings = hocon.parse(incoming)
    except hocon.HoconError as exc:
        raise errors.PluginError(
            f"{file.name}: invalid HOCON at line {exc.line}, column {exc.column}: {exc.message}; nothing was written"
        ) from None

    def combine(text: str) -> str:
        if mode == "replace" or not text.strip():
            return incoming
        return hocon.dump(hocon.merge(hocon.parse(text), incoming_settings))

    change_config(name, combine, yes=yes, wait=wait, timeout=timeout)


@config.command("edit", cls=EmqxCommand)
@name_argument
@yes_option
@wait_options
@kube_options
def edit(name: str, yes: bool, wait: bool, timeout: float) -> None:
    """Edit cluster NAME's configuration in $EDITOR (re-opened while the HOCON does not parse)."""
    change_config(name, edit_in_editor, yes=yes, wait=wait, timeout=timeout)


def edit_in_editor(text: str) -> str:
    """The text after the user edited it; re-opens the editor with the error appended as comments
    (so line numbers stay right) until it parses. Leaving the file unchanged gives up."""
    from kubectl_emqx.domain import hocon

    shown = text
    while True:
        edited = click.edit(shown, extension=".conf", require_save=False)
        if edited is None or edited == shown:
            if shown == text:
                return text  # left as it was: the caller reports "unchanged"
            raise errors.PluginError("the configuration still does not parse; nothing was written")
        edited = strip_editor_errors(edited)
        try:
            hocon.parse(edited)
        except hocon.HoconError as exc:
            warn(f"invalid HOCON at line {exc.line}, column {exc.column}: {exc.message}; re-opening the editor")
            shown = (
                edited.rstrip("\n")
                + f"\n{EDITOR_ERROR_MARKER} invalid HOCON at line {exc.line}, column {exc.column}: {exc.message}\n"
                + f"{EDITOR_ERROR_MARKER} fix it and save (these lines are dropped); quit without saving to give up\n"
            )
            continue
        return edited


def strip_editor_errors(text: str) -> str:
    kept = [line for line in text.splitlines(keepends=True) if not line.startswith(EDITOR_ERROR_MARKER)]
    return "".join(kept)


def change_config(name: str, transform: Any, *, yes: bool, wait: bool, timeout: float) -> None:
    """Read the resource, compute the new HOCON text with `transform(old_text)`, validate it, show
    the diff, confirm, and write it guarded against concurrent changes."""
    from kubectl_emqx.domain import hocon, spec

    api = state().api()
    body = load_cluster(api, name, api.namespace)
    namespace = body["metadata"]["namespace"]
    path = spec.config_field_path(body)
    old_text = str(spec.get_field(body, path) or "")
    try:
        new_text = transform(old_text)
        new_settings = hocon.parse(new_text)
    except hocon.HoconError as exc:
        raise errors.PluginError(
            f"invalid HOCON at line {exc.line}, column {exc.column}: {exc.message}; nothing was written"
        ) from None
    if new_text == old_text:
        info(f"{namespace}/{name}: the configuration is unchanged; nothing to write")
        return
    try:
        old_settings = hocon.parse(old_text)
    except hocon.HoconError:
        warn(f"the current {spec.dotted(path)} does not parse; showing every setting as new")
        old_settings = {}

    patch = spec.merge_patch(path, new_text)
    refuse_new_problems(body, apply_merge_patch(body, patch))
    info(f"Changes to {spec.dotted(path)} of {namespace}/{name}:")
    info(describe_changes(hocon.diff(old_settings, new_settings)))
    confirm(f"Write this configuration to {namespace}/{name}?", yes)

    still_same_text = unchanged(spec.dotted(path), lambda current: str(spec.get_field(current, path) or ""), old_text)

    def build(current: dict[str, Any]) -> dict[str, Any]:
        still_same_text(current)
        return spec.merge_patch(path, new_text)

    result = patch_guarded(api, body, build)
    info(f"{namespace}/{name}: configuration written")
    if wait:
        from kubectl_emqx.cli.wait import wait_until_ready

        wait_until_ready(api, result, timeout)


def describe_changes(changes: Sequence[Any]) -> str:
    """One line per changed setting, marked live or restart, then what that means."""
    from kubectl_emqx.domain import hocon

    if not changes:
        return "  (only comments or layout change; no setting changes)"
    lines = []
    for change in changes:
        kind = "rolling restart" if hocon.needs_restart(change.path) else "live"
        if change.old is None:
            text = f"+ {change.path} = {hocon.render_value(change.new)}"
        elif change.new is None:
            text = f"- {change.path} (was {hocon.render_value(change.old)})"
        else:
            text = f"~ {change.path}: {hocon.render_value(change.old)} -> {hocon.render_value(change.new)}"
        lines.append((text, kind))
    width = max(len(text) for text, _ in lines)
    out = [f"  {text.ljust(width)}  [{kind}]" for text, kind in lines]
    restart = [change.path for change in changes if hocon.needs_restart(change.path)]
    live = len(changes) - len(restart)
    if live:
        out.append(f"{live} setting(s) apply live: the operator loads them into the running nodes.")
    if restart:
        out.append(
            f"{len(restart)} setting(s) need a rolling restart ({', '.join(restart)}): "
            "the operator restarts the nodes one at a time."
        )
    return "\n".join(out)
