"""Helpers the verbs share: reading a cluster (with "did you mean"), confirming, writing a patch
guarded against concurrent changes, and the stderr chatter."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from kubectl_emqx.kube import errors
from kubectl_emqx.kube.api import ClusterApi, ClusterReader

CONFLICT_ATTEMPTS = 5


def info(message: str) -> None:
    click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(click.style("warning: ", fg="yellow") + message, err=True, color=_stderr_color())


def _stderr_color() -> bool | None:
    return None if sys.stderr.isatty() else False


def load_cluster(api: ClusterReader, name: str, namespace: str) -> dict[str, Any]:
    """The EMQX resource, or NotFound naming close names (here, or the same name elsewhere)."""
    try:
        return api.get_emqx(name, namespace)
    except errors.NotFound:
        raise errors.NotFound(name, namespace, _suggestions(api, name, namespace)) from None


def _suggestions(api: ClusterReader, name: str, namespace: str) -> list[str]:
    try:
        nearby = [_name(item) for item in api.list_emqx(namespace)]
    except errors.PluginError:
        nearby = []
    import difflib

    suggestions = [f'"{close}"' for close in difflib.get_close_matches(name, nearby, n=3, cutoff=0.6)]
    if suggestions:
        return suggestions
    try:
        elsewhere = [item for item in api.list_emqx(None) if _name(item) == name]
    except errors.PluginError:
        return []
    return [f'"{name}" in namespace {_namespace(item)} (-n {_namespace(item)})' for item in elsewhere]


def _name(item: dict[str, Any]) -> str:
    return str((item.get("metadata") or {}).get("name", ""))


def _namespace(item: dict[str, Any]) -> str:
    return str((item.get("metadata") or {}).get("namespace", ""))


def confirm(question: str, yes: bool) -> None:
    """Ask on the terminal unless --yes; anything but yes (or end of input) changes nothing."""
    if yes:
        return
    try:
        accepted = click.confirm(question, default=False, err=True)
    except click.Abort:
        accepted = False
    if not accepted:
        raise errors.NotConfirmed()


def patch_guarded(
    api: ClusterApi,
    body: dict[str, Any],
    build_patch: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Merge-patch the resource, conditional on the resourceVersion the change was computed from.

    On a conflict (typically the operator writing status meanwhile) the resource is read again and
    `build_patch` recomputes the change from it; `build_patch` raises a PluginError when what the
    user confirmed no longer holds (e.g. the config was edited by someone else).
    """
    metadata = body.get("metadata") or {}
    name, namespace = metadata["name"], metadata["namespace"]
    for _ in range(CONFLICT_ATTEMPTS):
        patch = build_patch(body)
        patch.setdefault("metadata", {})["resourceVersion"] = body["metadata"]["resourceVersion"]
        try:
            return api.patch_emqx(name, namespace, patch)
        except errors.Conflict:
            body = api.get_emqx(name, namespace)
    raise errors.Conflict(
        f"{namespace}/{name} kept changing while it was being written ({CONFLICT_ATTEMPTS} attempts); try again"
    )


def unchanged(field: str, read: Callable[[dict[str, Any]], Any], expected: Any) -> Callable[[dict[str, Any]], None]:
    """A guard for patch_guarded: the re-read resource must still have `expected` at `field`."""

    def check(body: dict[str, Any]) -> None:
        if read(body) != expected:
            metadata = body.get("metadata") or {}
            raise errors.Conflict(
                f"{field} of {metadata.get('namespace')}/{metadata.get('name')} was changed by someone "
                "else meanwhile; nothing was written, run the command again"
            )

    return check


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: what the API server makes of `target` after the JSON merge patch `patch`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def refuse_new_problems(before: dict[str, Any] | None, after: dict[str, Any]) -> None:
    """Raise SpecInvalid when `after` breaks a domain rule `before` did not already break (a change
    should not be blocked by an unrelated, older problem; the operator reports those itself)."""
    from kubectl_emqx.domain import spec, validation

    old_spec = spec.normalize(before) if before else None
    new_spec = spec.normalize(after)
    known = {str(problem) for problem in validation.validate(old_spec)} if old_spec else set()
    problems = validation.validate(new_spec) + validation.changed_cookie(old_spec, new_spec)
    new = [str(problem) for problem in problems if str(problem) not in known]
    if new:
        raise errors.SpecInvalid(["the change is invalid; nothing was written:", *(f"- {text}" for text in new)])


def core_volume_retention(body: dict[str, Any]) -> dict[str, str] | None:
    """The PVC retention policy the operator gives the core StatefulSet, from the same builder it
    uses; None when cores have no volumes (data in emptyDir)."""
    from kubectl_emqx.domain import builders, spec

    statefulset = builders.build_statefulset(spec.normalize(body))["spec"]
    if not statefulset.get("volumeClaimTemplates"):
        return None
    kubernetes_default = {"whenDeleted": "Retain", "whenScaled": "Retain"}
    return dict(statefulset.get("persistentVolumeClaimRetentionPolicy") or kubernetes_default)


def core_claim_name(name: str, ordinal: int) -> str:
    from kubectl_emqx.domain import builders, vocabulary

    return f"{builders.DATA_VOLUME}-{vocabulary.object_names(name).core_statefulset}-{ordinal}"


def apply_settings(text: str, assignments: Sequence[str], param_hint: str) -> str:
    """HOCON text with each KEY=VALUE set (typed as hocon.parse_value reads it); bad input is a
    usage error naming the assignment."""
    from kubectl_emqx.domain import hocon

    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{assignment!r} is not KEY=VALUE", param_hint=param_hint)
        try:
            text = str(hocon.set_path(text, key.strip(), value))
        except ValueError as exc:  # HoconError is a ValueError too
            raise click.BadParameter(f"{assignment!r}: {exc}", param_hint=param_hint) from None
    return text


def emit(text: str) -> None:
    """Data for stdout (chatter goes through info/warn to stderr). Colour codes in `text` were put
    there by --color, so they are kept even when stdout is not a terminal."""
    click.echo(text, nl=not text.endswith("\n"), color=True)
