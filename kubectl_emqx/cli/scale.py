"""`kubectl emqx scale cores|replicants NAME N`: patch the replica count of one node template."""

from __future__ import annotations

from typing import Any

import click

from kubectl_emqx.cli.common import (
    apply_merge_patch,
    confirm,
    core_claim_name,
    core_volume_retention,
    info,
    load_cluster,
    patch_guarded,
    refuse_new_problems,
    unchanged,
    warn,
)
from kubectl_emqx.cli.options import EmqxCommand, kube_options, name_argument, state, wait_options, yes_option

TEMPLATES = {"cores": "coreTemplate", "replicants": "replicantTemplate"}


@click.command("scale", cls=EmqxCommand)
@click.argument("role", metavar="cores|replicants", type=click.Choice(list(TEMPLATES)))
@name_argument
@click.argument("count", metavar="N", type=int)
@yes_option
@wait_options
@kube_options
def scale(role: str, name: str, count: int, yes: bool, wait: bool, timeout: float) -> None:
    """Set the number of core or replicant nodes of cluster NAME to N.

    Cores hold the cluster's data (sessions, retained messages, routes) on their volumes: removing
    cores asks for confirmation first. At least one core is required; replicants may be 0.

    \b
    Examples:
      kubectl emqx scale replicants my-emqx 5
      kubectl emqx scale cores my-emqx 5 --wait
    """
    if role == "cores" and count < 1:
        raise click.BadParameter("a cluster needs at least 1 core", param_hint="N")
    if count < 0:
        raise click.BadParameter("cannot be negative", param_hint="N")
    from kubectl_emqx.view.status_model import desired_replicas

    api = state().api()
    body = load_cluster(api, name, api.namespace)
    namespace = body["metadata"]["namespace"]
    cores, replicants = desired_replicas(body)
    current = cores if role == "cores" else replicants
    if count == current:
        info(f"{namespace}/{name} already has {count} {role}; nothing to change")
        return

    patch = replicas_patch(role, count)
    refuse_new_problems(body, apply_merge_patch(body, patch))
    if role == "cores" and count < current:
        warn(core_removal_warning(body, current, count))
        confirm(f"Remove {current - count} core node(s) from {namespace}/{name}?", yes)

    def read_count(current_body: dict[str, Any]) -> int:
        return desired_replicas(current_body)[0 if role == "cores" else 1]

    still_current = unchanged(f"the {role} count", read_count, current)

    def build(current_body: dict[str, Any]) -> dict[str, Any]:
        still_current(current_body)
        return replicas_patch(role, count)

    result = patch_guarded(api, body, build)
    info(f"{namespace}/{name}: {role} {current} -> {count}")
    if wait:
        from kubectl_emqx.cli.wait import wait_until_ready

        wait_until_ready(api, result, timeout)


def core_removal_warning(body: dict[str, Any], current: int, count: int) -> str:
    name = body["metadata"]["name"]
    removed = range(current - 1, count - 1, -1)
    nodes = ", ".join(f"{name}-core-{ordinal}" for ordinal in removed)
    claims = ", ".join(core_claim_name(name, ordinal) for ordinal in removed)
    retention = core_volume_retention(body)
    if retention is None:
        volumes = "Their data lives in emptyDir volumes and is lost."
    elif retention.get("whenScaled") == "Delete":
        volumes = f"Their data volumes ({claims}) are deleted (PVC retention policy whenScaled=Delete)."
    else:
        volumes = f"Their data volumes ({claims}) are kept (PVC retention policy whenScaled=Retain)."
    return (
        f"scaling cores {current} -> {count} removes {nodes}: their clients are disconnected and the "
        f"cluster's database is kept on {count} core(s) instead of {current}. {volumes}"
    )


def replicas_patch(role: str, count: int) -> dict[str, Any]:
    from kubectl_emqx.domain.spec import merge_patch

    return merge_patch(("spec", TEMPLATES[role], "spec", "replicas"), count)
