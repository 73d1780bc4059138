"""`kubectl emqx upgrade NAME --image IMG | --rollback`: change the image field of the resource
after the version policy check; the operator rolls the nodes (cores first, then replicants).

A target more than one minor release away is reached hop by hop (versions.upgrade_path): the
plugin writes one hop's image, waits until the operator reports that generation Ready and EMQX
reports every node on the hop's version, then writes the next. The plan is not stored anywhere:
it is recomputed from what the cluster runs, so re-running the same command after an interruption
continues from there.
"""

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
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (every hop, and why) and the policy check; change nothing."
)
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
    timeout: float | None,
) -> None:
    """Move cluster NAME to another EMQX image, node by node (cores first, then replicants).

    The version policy (patch releases freely, one minor at a time, no major jumps, downgrades only
    with --allow-downgrade, licence and edition rules) is checked first. A target several minor
    releases away is reached through the newest known patch of every minor in between, one hop at a
    time (needs --wait): each hop must be Ready, with EMQX reporting every node on its version,
    before the next is written. Re-running the same command continues from what the cluster runs.

    \b
    Examples:
      kubectl emqx upgrade my-emqx --image emqx/emqx:5.8.9 --dry-run
      kubectl emqx upgrade my-emqx --image emqx/emqx:5.8.9 --yes --wait
      kubectl emqx upgrade my-emqx --rollback --yes --wait
    """
    if bool(image) == rollback:
        raise click.UsageError("give either --image IMAGE or --rollback")
    from kubectl_emqx.domain import spec, validation, versions
    from kubectl_emqx.view import status_model

    api = state().api()
    body = load_cluster(api, name, api.namespace)
    namespace = body["metadata"]["namespace"]
    image_path = spec.image_field_path(body)
    field = spec.dotted(image_path)
    spec_image = str(spec.get_field(body, image_path) or "")
    status = body.get("status") or {}
    running = running_image(body, spec_image)
    if rollback:
        image = status.get("previousImage")
        if not image:
            raise errors.PluginError(
                f"{namespace}/{name} has no previous image to roll back to (status.previousImage is empty)"
            )
    assert image is not None
    if image == spec_image:
        judged = status_model.progress(body, None)
        if wait and judged.state != "done":
            info(f"{namespace}/{name} already asks for {image}; following its rollout")
            _wait_hop(api, body, image, timeout, "")
            return
        info(f"{namespace}/{name} already asks for {image}; nothing to change")
        return

    normalized = spec.normalize(apply_merge_patch(body, upgrade_patch(image_path, image, False)))
    checks: dict[str, Any] = {
        "replicants": normalized.replicant.replicas,
        "cores": normalized.core.replicas,
        "license_configured": validation.license_configured(normalized),
    }
    if running is None:
        path = versions.UpgradePath((versions.Hop(spec_image, image, "the target"),))
    else:
        path = versions.upgrade_path(running, image, allow_downgrade=allow_downgrade, **checks)
        if rollback and path.violations and all(v.rule == "downgrade" for _, v in path.violations):
            # Rolling back a completed upgrade is a downgrade the user asked for by name.
            allow_downgrade = True
            path = versions.upgrade_path(running, image, allow_downgrade=True, **checks)
    hops = path.hops
    multi = len(hops) > 1
    # The first hop may already be written (an interrupted run of the same command): it is followed.
    resumed = multi and spec_image == hops[0].image

    info(plan_text(body, field, spec_image, running, path, allow_downgrade, resumed))
    in_flight_elsewhere = bool(
        status.get("currentImage") and status.get("targetImage") not in (None, status["currentImage"])
    )
    if in_flight_elsewhere and not resumed:
        stalled = status_model.condition(body, "UpgradeStalled") or {}
        what = "stalled" if stalled.get("status") == "True" else "is still in progress"
        rollout = (f"the rollout to {status['targetImage']} {what} (the cluster ran {status.get('currentImage')} "
                   "when last Ready)")
        if rollback:
            info(f"{rollout}; rolling back replaces the nodes it already changed")
        else:
            warn(f"{rollout}; changing the image now redirects it: nodes already on {status['targetImage']} "
                 "are replaced too")
    for index, violation in path.violations:
        where = f"hop {index + 1}/{len(hops)} ({hops[index].from_image} -> {hops[index].image}): " if multi else ""
        warn(f"version policy ({violation.rule}): {where}{violation.message}")
    if not path.violations:
        info("Version policy: ok at every hop" if multi else "Version policy: ok")
    if running is None:
        info(f"(no node of {namespace}/{name} has run yet: there is no version to protect)")
    if multi and path.violations:
        # Done hop by hop, a path that breaks the policy somewhere would stop half way: refuse it whole.
        index, violation = path.violations[0]
        hop = hops[index]
        raise errors.PluginError(
            f"the path to {image} cannot work: hop {index + 1}/{len(hops)} ({hop.from_image} -> {hop.image}) "
            f"breaks {violation.rule}; nothing was changed"
        )
    refuse_new_problems(body, apply_merge_patch(body, upgrade_patch(image_path, image, allow_downgrade)))
    if any(violation.rule == "downgrade" for _, violation in path.violations):
        # The one rule with an explicit opt-in: the operator refuses a downgrade without it.
        raise errors.PluginError("refusing a downgrade without --allow-downgrade; nothing was changed")
    if dry_run:
        info("Dry run: nothing was changed.")
        return
    if multi and not wait:
        raise errors.PluginError(
            f"{image} is {len(hops)} hops away ({', '.join(path.images)}) and each must be Ready "
            f"before the next: add --wait (or upgrade to {hops[0].image} first); nothing was changed"
        )
    if path.violations:
        question = "Upgrade despite the policy warnings?"
    elif multi:
        question = f"Upgrade {namespace}/{name} to {image} in {len(hops)} hops?"
    else:
        question = f"Upgrade {namespace}/{name} to {image}?"
    confirm(question, yes)

    current = body
    index = 0
    try:
        for index, hop in enumerate(hops):
            title = f"hop {index + 1}/{len(hops)}: {hop.from_image} -> {hop.image}" if multi else ""
            before = str(spec.get_field(current, image_path) or "")
            if before != hop.image:
                current = _write_hop(api, current, image_path, hop.image, allow_downgrade and not multi)
                prefix = f"hop {index + 1}/{len(hops)}: " if multi else ""
                info(f"{prefix}{namespace}/{name}: image {before} -> {hop.image}; the operator rolls the nodes now")
            else:
                info(f"hop {index + 1}/{len(hops)}: {namespace}/{name} already asks for {hop.image}; following it")
            if not wait:
                return
            current = _wait_hop(api, current, hop.image, timeout, title)
            if multi and index + 1 < len(hops):
                info(f"hop {index + 1}/{len(hops)} done: every node runs {hop.image}, as EMQX reports")
    except errors.WaitFailed as exc:
        if not multi:
            raise
        raise errors.WaitFailed(_hop_state(hops, index, "failed", exc.message, name, namespace, image)) from None
    except (errors.WaitInterrupted, KeyboardInterrupt) as exc:
        if not multi:
            raise
        detail = exc.message if isinstance(exc, errors.WaitInterrupted) else "interrupted"
        raise errors.WaitInterrupted(_hop_state(hops, index, "interrupted", detail, name, namespace, image)) from None
    except errors.WaitTimedOut as exc:
        if not multi:
            raise
        raise errors.WaitTimedOut(_hop_state(hops, index, "timed out", exc.message, name, namespace, image)) from None


def running_image(body: dict[str, Any], spec_image: str) -> str | None:
    """What the cluster runs, as the operator judges the policy from: the image every node ran when
    last Ready; before that, the spec's image if some node runs; None when nothing ever ran (a
    cluster created with an image that cannot start has no version to protect)."""
    status = body.get("status") or {}
    if status.get("currentImage"):
        return str(status["currentImage"])
    if any(node.get("node_status") == "running" for node in status.get("emqxNodes") or []):
        return spec_image
    return None


def _write_hop(
    api: Any, body: dict[str, Any], image_path: tuple[str, ...], image: str, allow_downgrade: bool
) -> dict[str, Any]:
    from kubectl_emqx.domain import spec

    before = spec.get_field(body, image_path)
    still_same_image = unchanged(spec.dotted(image_path), lambda current: spec.get_field(current, image_path), before)

    def build(current: dict[str, Any]) -> dict[str, Any]:
        still_same_image(current)
        return upgrade_patch(image_path, image, allow_downgrade)

    return patch_guarded(api, body, build)


def _wait_hop(api: Any, body: dict[str, Any], image: str, timeout: float | None, title: str) -> dict[str, Any]:
    from kubectl_emqx.cli.wait import wait_until_ready
    from kubectl_emqx.view import status_model

    return wait_until_ready(
        api, body, timeout, verify=lambda current: status_model.not_yet_on(current, image), title=title
    )


def _hop_state(
    hops: tuple[Any, ...], index: int, what: str, detail: str, name: str, namespace: str, target: str
) -> str:
    """Where a multi-step upgrade stopped: the hop, what is done, and how to go on or back."""
    hop = hops[index]
    done = (f"hops 1-{index}/{len(hops)} are done" if index > 1 else "hop 1 is done") if index else "no hop is done"
    ran = f"; the cluster ran {hop.from_image} when last Ready" if index else ""
    again = f"kubectl emqx upgrade {name} -n {namespace} --image {target} --yes --wait"
    head, _, rest = detail.partition("\n")
    lines = [f"hop {index + 1}/{len(hops)} ({hop.from_image} -> {hop.image}) {what}: {head}", f"{done}{ran}"]
    if rest:
        lines.append(rest)
    lines.append(f"to continue from what runs then, re-run: {again}")
    return "\n".join(lines)


def upgrade_patch(image_path: tuple[str, ...], image: str, allow_downgrade: bool) -> dict[str, Any]:
    from kubectl_emqx.domain.spec import merge_patch

    patch = merge_patch(image_path, image)
    if allow_downgrade:
        patch["spec"]["updateStrategy"] = {"allowDowngrade": True}
    return patch


def plan_text(
    body: dict[str, Any],
    image_field: str,
    spec_image: str,
    running: str | None,
    path: Any,
    allow_downgrade: bool,
    resumed: bool = False,
) -> str:
    from kubectl_emqx.view.status_model import desired_replicas

    metadata = body["metadata"]
    cores, replicants = desired_replicas(body)
    hops = path.hops
    steps = [f"Plan for {metadata['namespace']}/{metadata['name']}:"]
    rollout = f"the operator replaces the {cores} core node(s) one at a time, then the {replicants} replicant(s)"
    if len(hops) == 1:
        steps.append(f"  set {image_field}: {spec_image} -> {hops[0].image}")
        if running is not None and running != spec_image:
            steps.append(f"  (the nodes run {running}; the policy is checked from there)")
        if allow_downgrade:
            steps.append("  set spec.updateStrategy.allowDowngrade: true")
        steps.append(f"  {rollout}")
        return "\n".join(steps)
    steps.append(
        f"  the nodes run {running}; {hops[-1].image} is {len(hops)} hops away, each Ready and verified "
        "through EMQX before the next:"
    )
    for index, hop in enumerate(hops):
        note = " (already requested: followed)" if resumed and index == 0 else ""
        steps.append(f"  hop {index + 1}/{len(hops)}: set {image_field}: {hop.from_image} -> {hop.image}{note}")
        steps.append(f"      {hop.why}")
    steps.append(f"  at each hop {rollout}")
    return "\n".join(steps)
