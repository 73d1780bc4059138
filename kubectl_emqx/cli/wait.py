"""`--wait` and `status --watch`: follow one EMQX resource through a watch, never by sleeping.

`observe()` yields the resource as it changes: one read, then the watch's events; when a watch
window ends (or its resourceVersion expired) it reads once more and watches again. `Follower` runs
it in a background thread and hands the caller each version as it arrives, plus a TICK at least
every TICK_SECONDS, so a live view keeps its clocks moving while the resource is quiet.
`wait_until_ready()` judges each version with status_model.progress() and draws it with render.
"""

from __future__ import annotations

import dataclasses
import queue
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import monotonic
from typing import Any

import click

from kubectl_emqx.domain.vocabulary import ConditionType, parse_time
from kubectl_emqx.kube import errors
from kubectl_emqx.kube.api import ClusterApi, ClusterReader
from kubectl_emqx.view import render, status_model

WATCH_WINDOW_SECONDS = 300
TICK_SECONDS = 0.5  # the live view is redrawn at least this often (when its text changed)
DEFAULT_TIMEOUT_SECONDS = 30 * 60
# With the default timeout, a wait never ends before the operator has judged the node in flight:
# its give-up time (step.since + nodeReadyTimeoutSeconds) plus this margin.
VERDICT_MARGIN_SECONDS = 60
# An operator that has not looked at a write for this long is probably not running: say so.
OPERATOR_SILENT_SECONDS = 30


def wall_now() -> datetime:
    return datetime.now(UTC)


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


class _Tick:
    def __repr__(self) -> str:
        return "TICK"


TICK = _Tick()
_END = object()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def next_item(source: queue.Queue[Any], timeout: float) -> Any:
    """The next item the watch thread produced, or queue.Empty after `timeout` seconds (a seam for
    tests, which advance a fake clock here)."""
    return source.get(timeout=timeout)


class Follower:
    """observe() in a daemon thread: iterate for each version of the resource (None once deleted)
    and a TICK whenever TICK_SECONDS pass without one. `enrich(body)` runs in the thread too (all
    I/O stays on one thread, as the light REST session needs), and its result is what is yielded.
    Errors of the thread (and a KeyboardInterrupt there) are raised in the caller."""

    def __init__(
        self,
        api: ClusterReader,
        name: str,
        namespace: str,
        enrich: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(api, name, namespace, enrich), name=f"watch {namespace}/{name}", daemon=True
        )
        self._started = False

    def _produce(
        self, api: ClusterReader, name: str, namespace: str, enrich: Callable[[dict[str, Any]], Any] | None
    ) -> None:
        try:
            for body in observe(api, name, namespace, deadline=None):
                if self._stop.is_set():
                    return
                self._queue.put(enrich(body) if enrich is not None and body is not None else body)
                if body is None:
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._queue.put(_Failure(exc))
        self._queue.put(_END)

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """The thread ends after the event it is waiting for (it is a daemon: exiting never waits)."""
        self._stop.set()

    def __iter__(self) -> Iterator[Any]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            try:
                item = next_item(self._queue, TICK_SECONDS)
            except queue.Empty:
                yield TICK
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
            if item is None:
                return


# --- drawing ----------------------------------------------------------------------------------


class ProgressReporter:
    """Draws progress on stderr: a live view redrawn in place on a terminal (also between watch
    events, so its clocks move), timestamped lines on every change otherwise."""

    def __init__(self, name: str, live: bool, style: render.Style, title: str = ""):
        self._name = name
        self._live = live
        self._style = style
        self._title = title
        self._started = monotonic()
        self._started_wall = wall_now()
        self._drawn_lines = 0
        self._drawn = ""
        self._last_line = ""
        self._waits: dict[str, str] = {}
        self._latest: tuple[dict[str, Any], status_model.Progress] | None = None

    def now(self) -> datetime:
        """Wall time as this reporter's clock sees it (monotonic since start, so tests can drive it)."""
        return self._started_wall + timedelta(seconds=monotonic() - self._started)

    def show(self, body: dict[str, Any], progress: status_model.Progress) -> None:
        self._latest = (body, progress)
        if self._live:
            self._draw()
        else:
            self._lines(body, progress)

    def tick(self) -> None:
        """Redraw the live view with the clocks moved on (nothing is printed in line mode)."""
        if self._live and self._latest is not None:
            self._draw()

    def _lines(self, body: dict[str, Any], progress: status_model.Progress) -> None:
        line = render.progress_line(self._name, progress, stamp=False)
        if line != self._last_line:
            self._last_line = line
            click.echo(render.stamped(line, self.now()), err=True)
        status = status_model.cluster_status(body)
        waits = {item.pod: f"{item.pod} ({item.role}): {item.waiting_for}" for item in status.pending}
        for pod, text in waits.items():
            if self._waits.get(pod) != text:
                click.echo(render.stamped(f"{self._name}:   {text}", self.now()), err=True)
        self._waits = waits

    def _draw(self) -> None:
        assert self._latest is not None
        body, progress = self._latest
        status = status_model.cluster_status(body)
        width = shutil.get_terminal_size((120, 24)).columns
        view = render.progress_view(
            status, progress, self._style, monotonic() - self._started, now=self.now(), width=width,
            title=self._title,
        )
        if view == self._drawn:
            return
        if self._drawn_lines:
            # Move to the start of the previous view and clear it, then draw the new one.
            click.echo(f"\x1b[{self._drawn_lines}F\x1b[J", err=True, nl=False, color=True)
        click.echo(view, err=True, nl=False, color=True)
        self._drawn = view
        self._drawn_lines = view.count("\n")


def _reporter(name: str, title: str = "") -> ProgressReporter:
    stderr_is_terminal = sys.stderr.isatty()
    return ProgressReporter(name, stderr_is_terminal, render.Style(color=stderr_is_terminal), title)


# --- judging ----------------------------------------------------------------------------------


class Deadline:
    """--timeout, or by default DEFAULT_TIMEOUT_SECONDS stretched so that the wait outlasts the
    operator's own give-up time for the node in flight (it then has a verdict to report)."""

    def __init__(self, timeout: float | None, reporter_now: Callable[[], datetime]) -> None:
        self.explicit = timeout is not None
        self.seconds = timeout if timeout is not None else DEFAULT_TIMEOUT_SECONDS
        self.at = monotonic() + self.seconds
        self._now = reporter_now

    def stretch_for(self, body: dict[str, Any]) -> None:
        if self.explicit:
            return
        flight = status_model.in_flight(body)
        gives_up = parse_time(flight.gives_up_at) if flight else None
        if gives_up is None:
            return
        left = (gives_up - self._now()).total_seconds() + VERDICT_MARGIN_SECONDS
        self.at = max(self.at, monotonic() + left)

    def passed(self) -> bool:
        return monotonic() >= self.at


def wait_until_ready(
    api: ClusterApi,
    body: dict[str, Any],
    timeout: float | None,
    *,
    verify: Callable[[dict[str, Any]], str | None] | None = None,
    title: str = "",
) -> dict[str, Any]:
    """Follow the resource until the operator reports the generation in `body` Ready (and
    `verify(body)`, when given, returns None instead of what it still waits for).

    Raises WaitFailed with the operator's reason and the command that recovers, WaitTimedOut, or
    WaitInterrupted on Ctrl-C (the change stays applied in every case)."""
    metadata = body["metadata"]
    name, namespace, generation = metadata["name"], metadata["namespace"], metadata.get("generation")
    reporter = _reporter(name, title)
    deadline = Deadline(timeout, reporter.now)
    last: status_model.Progress | None = None
    latest: dict[str, Any] | None = None
    follow_hint = f"follow it with `kubectl emqx status {name} -n {namespace} -w`"
    started = monotonic()
    try:
        with Follower(api, name, namespace) as follower:
            for current in follower:
                if current is TICK:
                    hinted = _silent(last, monotonic() - started) if last is not None else None
                    if latest is not None and hinted is not None:
                        last = hinted
                        reporter.show(latest, last)
                    else:
                        reporter.tick()
                elif current is None:
                    raise errors.WaitFailed(f"{namespace}/{name} was deleted while waiting for it")
                else:
                    latest = current
                    last = status_model.progress(current, generation)
                    if last.state == "done" and verify is not None:
                        missing = verify(current)
                        if missing:
                            last = status_model.Progress(
                                "progressing", missing, last.nodes_on_target, last.nodes_desired
                            )
                    last = _silent(last, monotonic() - started) or last
                    reporter.show(current, last)
                    deadline.stretch_for(current)
                    if last.state == "done":
                        info_ready(current)
                        return current
                    if last.state == "failed":
                        raise errors.WaitFailed(failure_message(current, last))
                if deadline.passed():
                    break
    except KeyboardInterrupt:
        raise errors.WaitInterrupted(f"interrupted: the change stays applied; {follow_hint}") from None
    reason = f"; last state: {last.reason}" if last else ""
    gives_up = ""
    flight = status_model.in_flight(latest) if latest else None
    if flight and flight.gives_up_at:
        gives_up = f"; the operator gives up on {flight.pod} at {flight.gives_up_at} unless it is {flight.action}"
    raise errors.WaitTimedOut(
        f"timed out after {render.format_duration(deadline.seconds)} waiting for {namespace}/{name} to become Ready"
        f"{reason}{gives_up}; the change stays applied, {follow_hint}"
    )


def _silent(progress: status_model.Progress, waited: float) -> status_model.Progress | None:
    """`progress` with a hint when the operator has not observed the write for a while."""
    if (progress.state != "progressing" or waited < OPERATOR_SILENT_SECONDS
            or not progress.reason.startswith(status_model.WAITING_FOR_OPERATOR) or "no answer" in progress.reason):
        return None
    hint = (f" (no answer for {render.format_duration(OPERATOR_SILENT_SECONDS)}: is the operator running? "
            "`kubectl emqx version` shows it)")
    return dataclasses.replace(progress, reason=progress.reason + hint)


def failure_message(body: dict[str, Any], progress: status_model.Progress) -> str:
    """`ns/name stalled|failed: <the operator's reason>`, then the one command that recovers."""
    metadata = body["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    word = "stalled" if progress.verdict == ConditionType.UPGRADE_STALLED else "failed"
    message = f"{namespace}/{name} {word}: {progress.reason}"
    command = status_model.recovery_command(body, progress)
    return f"{message}\nto recover: {command}" if command else message


def wait_until_deleted(api: ClusterApi, name: str, namespace: str, timeout: float | None) -> None:
    seconds = timeout if timeout is not None else DEFAULT_TIMEOUT_SECONDS
    deadline = monotonic() + seconds
    try:
        for current in observe(api, name, namespace, deadline):
            if current is None:
                click.echo(f"{namespace}/{name} deleted", err=True)
                return
    except KeyboardInterrupt:
        raise errors.WaitInterrupted("interrupted: the deletion continues in the background") from None
    raise errors.WaitTimedOut(
        f"timed out after {render.format_duration(seconds)} waiting for {namespace}/{name} to disappear "
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
