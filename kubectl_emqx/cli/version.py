"""`kubectl emqx version`: the plugin's version and the operator's, with a warning on skew."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from kubectl_emqx import __version__
from kubectl_emqx.cli.common import emit, warn
from kubectl_emqx.cli.options import EmqxCommand, kube_options, output_options, state
from kubectl_emqx.kube import errors

NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class OperatorVersion:
    namespace: str
    deployment: str
    version: str | None


@dataclass(frozen=True)
class Versions:
    plugin: str
    operators: list[OperatorVersion] = field(default_factory=list)
    error: str | None = None  # why the operator could not be looked up


@click.command("version", cls=EmqxCommand)
@output_options
@kube_options
def version(output: str | None, no_headers: bool, color: str) -> None:
    """Print the plugin's version and the version of the EMQX operator running in the cluster
    (its Deployment labelled app.kubernetes.io/name=emqx-operator), warning when they differ."""
    from kubectl_emqx.view import render

    failure: errors.PluginError | None = None
    try:
        found = state().api().operator_deployments()
        versions = Versions(
            __version__, [OperatorVersion(item.namespace, item.name, item.version) for item in found]
        )
    except errors.PluginError as exc:
        failure = exc
        versions = Versions(__version__, error=exc.message)

    if output:
        emit(render.structured(versions, output))
    else:
        emit(version_text(versions, no_headers))
    if failure is not None:
        raise failure
    for problem in skew_warnings(versions):
        warn(problem)


def version_text(versions: Versions, no_headers: bool = False) -> str:
    lines = [("Plugin", versions.plugin)]
    if versions.error:
        lines.append(("Operator", "unknown"))
    elif not versions.operators:
        lines.append(("Operator", NOT_INSTALLED + " (run `kubectl emqx install`)"))
    for operator in versions.operators:
        lines.append(
            ("Operator", f"{operator.version or 'unknown (no version label)'} "
             f"({operator.namespace}/{operator.deployment})")
        )
    if no_headers:
        return "\n".join(value for _, value in lines) + "\n"
    return "\n".join(f"{key + ':':<9} {value}" for key, value in lines) + "\n"


def skew_warnings(versions: Versions) -> list[str]:
    problems = []
    if len(versions.operators) > 1:
        places = ", ".join(f"{item.namespace}/{item.deployment}" for item in versions.operators)
        problems.append(f"more than one EMQX operator runs in the cluster ({places}); they will fight")
    for operator in versions.operators:
        if not operator.version:
            continue
        plugin, running = _minor(versions.plugin), _minor(operator.version)
        if plugin is None or running is None or plugin == running:
            continue
        if plugin > running:
            advice = "upgrade the operator with `kubectl emqx install`"
        else:
            advice = "upgrade the plugin (`kubectl krew upgrade emqx` or `pipx upgrade kubectl-emqx`)"
        problems.append(
            f"plugin {versions.plugin} and operator {operator.version} differ in minor version; {advice}"
        )
    return problems


def _minor(text: str) -> tuple[int, int] | None:
    parts = text.lstrip("v").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
