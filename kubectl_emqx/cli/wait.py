"""`--wait` and `status --watch`: follow one EMQX resource through a watch, never by sleeping.

`observe()` yields the resource as it changes: one read, then the watch's events; when a watch
window ends (or its resourceVersion expired) it reads once more and watches again. The callers
judge each version with status_model.progress() and draw it with render.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from time import monotonic
from typing import Any

import click

from kubectl_emqx.kube import errors
from kubectl_emqx.kube.api import ClusterApi, ClusterReader
from kubectl_emqx.view import render, status_model

WATCH_WINDOW_SECONDS = 300


def observe(
    api: ClusterReader,
    name: str,
    namespace: str,
    deadline: float | None,
) -> Iterator[dict[str, Any] | None]:
    """The resource now and after every change; None once it is gone. Ends at the deadline."""

    def window() -> int:
        if deadline is None:
            return WATCH_WINDOW_SECONDS
        return max(1, min(WATCH_WINDOW_SECONDS, int(deadline - monotonic()) + 1))

    try:
        body = api.get_emqx(name, namespace)
    except errors.NotFound:
        yield None
        return
    yield body
    resource_version = body["metadata"]["resourceVersion"]
    while deadline is None or monotonic() < deadline:
        try:
            for event in api.watch_emqx(
                name, namespace, resource_version=resource_version, timeout_seconds=window()
            ):
                if event.type == "DELETED":
                    yield None
                    return
                resource_version = event.object["metadata"]["resourceVersion"]
                if event.type != "BOOKMARK":
                    yield event.object
                if deadline is not None and monotonic() >= deadline:
                    return
        except errors.WatchExpired:
            pass
        # The window closed: read once to resynchronise, then watch from there.
        try:
            body = api.get_emqx(name, namespace)
        except errors.NotFound:
            yield None
            return
        resource_version = body["metadata"]["resourceVersion"]
        yield body


class ProgressReporter:
    """Draws progress on stderr: a redrawn live view on a terminal, timestamped lines otherwise."""

    def __init__(self, name: str, live: bool, style: render.Style):
        self._name = name
        self._live = live
        self._style = style
        self._started = monotonic()
        self._drawn_lines = 0
        self._last: tuple[Any, ...] | None = None

    def show(self, body: dict[str, Any], progress: status_model.Progress) -> None:
        status = status_model.cluster_status(body)
        key = (progress, status.phase, status.nodes, status.cores, status.replicants)
        if key == self._last:
            return
        self._last = key
        if not self._live:
            click.echo(render.progress_line(self._name, progress), err=True)
            return
        view = render.progress_view(status, progress, self._style, monotonic() - self._started)
        if self._drawn_lines:
            # Move to the start of the previous view and clear it, then draw the new one.
            click.echo(f"\x1b[{self._drawn_lines}F\x1b[J", err=True, nl=False, color=True)
        click.echo(view, err=True, nl=False, color=True)
        self._drawn_lines = view.count("\n")


def wait_until_ready(
    api: ClusterApi,
    body: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """Follow the resource until the operator reports the generation in `body` Ready.

    Raises WaitFailed with the operator's reason, WaitTimedOut, or WaitInterrupted on Ctrl-C (the
    change stays applied in every case)."""
    metadata = body["metadata"]
    name, namespace, generation = metadata["name"], metadata["namespace"], metadata.get("generation")
    reporter = _reporter(name)
    deadline = monotonic() + timeout
    last: status_model.Progress | None = None
    follow_hint = f"follow it with `kubectl emqx status {name} -n {namespace} -w`"
    try:
        for current in observe(api, name, namespace, deadline):
            if current is None:
                raise errors.WaitFailed(f"{namespace}/{name} was deleted while waiting for it")
            last = status_model.progress(current, generation)
            reporter.show(current, last)
            if last.state == "done":
                info_ready(current)
                return current
            if last.state == "failed":
                raise errors.WaitFailed(f"{namespace}/{name} failed: {last.reason}")
    except KeyboardInterrupt:
        raise errors.WaitInterrupted(f"interrupted: the change stays applied; {follow_hint}") from None
    reason = f"; last state: {last.reason}" if last else ""
    raise errors.WaitTimedOut(
        f"timed out after {render.format_duration(timeout)} waiting for {namespace}/{name} to become Ready"
        f"{reason}; the change stays applied, {follow_hint}"
    )


def wait_until_deleted(api: ClusterApi, name: str, namespace: str, timeout: float) -> None:
    deadline = monotonic() + timeout
    try:
        for current in observe(api, name, namespace, deadline):
            if current is None:
                click.echo(f"{namespace}/{name} deleted", err=True)
                return
    except KeyboardInterrupt:
        raise errors.WaitInterrupted("interrupted: the deletion continues in the background") from None
    raise errors.WaitTimedOut(
        f"timed out after {render.format_duration(timeout)} waiting for {namespace}/{name} to disappear "
        "(is the operator running? its finalizer holds the resource until it has cleaned up)"
    )


def info_ready(body: dict[str, Any]) -> None:
    status = status_model.cluster_status(body)
    cores, replicants = status.cores, status.replicants
    click.echo(
        f"{status.namespace}/{status.name} is Ready: cores {cores.ready}/{cores.desired}, "
        f"replicants {replicants.ready}/{replicants.desired}, image {status.current_image or status.image}",
        err=True,
    )


def _reporter(name: str) -> ProgressReporter:
    stderr_is_terminal = sys.stderr.isatty()
    return ProgressReporter(name, stderr_is_terminal, render.Style(color=stderr_is_terminal))
