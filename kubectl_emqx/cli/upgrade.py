"""`kubectl emqx upgrade NAME --image IMG | --rollback`: change the image field of the resource
after the version policy check; the operator rolls the nodes (cores first, then replicants)."""

from __future__ import annotations

from typing import Any

import click

from kubectl_emqx.cli.common import (
    apply_merge_patch,
    confirm,
    info,
    load_cluster,
    patch_guarded,
    refuse_new_problems,
    unchanged,
    warn,
)
from kubectl_emqx.cli.options import EmqxCommand, kube_options, name_argument, state, wait_options, yes_option
from kubectl_emqx.kube import errors


@click.command("upgrade", cls=EmqxCommand)
@name_argument
@click.option("--image", metavar="IMAGE", help="The EMQX image to run, e.g. emqx/emqx-enterprise:5.8.9.")
@click.option("--rollback", is_flag=True, help="Go back to the image before the last upgrade (status.previousImage).")
@click.option(
    "--allow-downgrade",
    is_flag=True,
    help="Permit a lower version (sets spec.updateStrategy.allowDowngrade).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and the policy check; change nothing.")
@yes_option
@wait_options
@kube_options
def upgrade(
    name: str,
    image: str | None,
    rollback: bool,
    allow_downgrade: bool,
    dry_run: bool,
    yes: bool,
    wait: bool,
    timeout: float,
) -> None:
    """Move cluster NAME to another EMQX image, node by node (cores first, then replicants).

    The version policy (patch releases freely, one minor at a time, no major jumps, downgrades only
    with --allow-downgrade, licence and edition rules) is checked first; a violation is shown and
    asked about unless --yes.
    """
    if bool(image) == rollback:
        raise click.UsageError("give either --image IMAGE or --rollback")
    from kubectl_emqx.domain import spec, validation, versions

    api = state().api()
    body = load_cluster(api, name, api.namespace)
    namespace = body["metadata"]["namespace"]
    image_path = spec.image_field_path(body)
    spec_image = str(spec.get_field(body, image_path) or "")
    status = body.get("status") or {}
    running = status.get("currentImage") or spec_image
    if rollback:
        image = status.get("previousImage")
        if not image:
            raise errors.PluginError(
                f"{namespace}/{name} has no previous image to roll back to (status.previousImage is empty)"
            )
        allow_downgrade = True
    assert image is not None
    if image == spec_image:
        info(f"{namespace}/{name} already asks for {image}; nothing to change")
        return

    patch = upgrade_patch(image_path, image, allow_downgrade)
    after = apply_merge_patch(body, patch)
    normalized = spec.normalize(after)
    violations = versions.check_upgrade(
        running,
        image,
        allow_downgrade=allow_downgrade,
        cores=normalized.core.replicas,
        replicants=normalized.replicant.replicas,
        license_configured=validation.license_configured(normalized),
    )
    info(plan_text(body, spec.dotted(image_path), spec_image, running, image, allow_downgrade))
    if status.get("currentImage") and status.get("targetImage") not in (None, status["currentImage"]):
        warn(
            f"a rollout to {status['targetImage']} is still in progress (nodes run {status.get('currentImage')}); "
            "changing the image now redirects it"
        )
    for violation in violations:
        warn(f"version policy ({violation.rule}): {violation.message}")
    if not violations:
        info("Version policy: ok")
    refuse_new_problems(body, after)
    if any(violation.rule == "downgrade" for violation in violations):
        # The one rule with an explicit opt-in: the operator refuses a downgrade without it.
        raise errors.PluginError("refusing a downgrade without --allow-downgrade; nothing was changed")
    if dry_run:
        info("Dry run: nothing was changed.")
        return
    question = "Upgrade despite the policy warnings?" if violations else f"Upgrade {namespace}/{name} to {image}?"
    confirm(question, yes)

    still_same_image = unchanged(
        spec.dotted(image_path), lambda current: spec.get_field(current, image_path), spec_image
    )

    def build(current: dict[str, Any]) -> dict[str, Any]:
        still_same_image(current)
        return upgrade_patch(image_path, image, allow_downgrade)

    result = patch_guarded(api, body, build)
    info(f"{namespace}/{name}: image {spec_image} -> {image}; the operator rolls the nodes now")
    if wait:
        from kubectl_emqx.cli.wait import wait_until_ready

        wait_until_ready(api, result, timeout)


def upgrade_patch(image_path: tuple[str, ...], image: str, allow_downgrade: bool) -> dict[str, Any]:
    from kubectl_emqx.domain.spec import merge_patch

    patch = merge_patch(image_path, image)
    if allow_downgrade:
        patch["spec"]["updateStrategy"] = {"allowDowngrade": True}
    return patch


def plan_text(
    body: dict[str, Any], image_field: str, spec_image: str, running: str, target: str, allow_downgrade: bool
) -> str:
    from kubectl_emqx.view.status_model import desired_replicas

    metadata = body["metadata"]
    cores, replicants = desired_replicas(body)
    steps = [f"Plan for {metadata['namespace']}/{metadata['name']}:"]
    steps.append(f"  set {image_field}: {spec_image} -> {target}")
    if running != spec_image:
        steps.append(f"  (the nodes run {running}; the policy is checked from there)")
    if allow_downgrade:
        steps.append("  set spec.updateStrategy.allowDowngrade: true")
    steps.append(f"  the operator replaces the {cores} core node(s) one at a time, then the {replicants} replicant(s)")
    return "\n".join(steps)
