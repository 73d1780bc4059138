"""`kubectl emqx logs NAME [-f]`: the logs of every node of a cluster, merged in time order, each line
prefixed by its node; with -f it follows pods as they come and go (a rollout, a scale), like stern.

Lines are prefixed by the **pod name** (`demo-core-0`, `demo-replicant-7d9f-x2x7k`), not the EMQX
node name: it is what `status` shows in its NODE column, what `--node` and kubectl take, and it
is short; the EMQX node name (`emqx@demo-core-0.demo-headless.ns.svc.cluster.local`, or
`emqx@<pod IP>` for a replicant, which changes with every pod) is in the `node` field of `-o json`.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from kubectl_emqx.cli.common import info, load_cluster, warn
from kubectl_emqx.cli.options import Duration, EmqxCommand, kube_options, name_argument, state
from kubectl_emqx.domain.vocabulary import CONTAINER_NAME, ROLES, label_selector
from kubectl_emqx.kube import errors

if TYPE_CHECKING:
    from kubectl_emqx.kube.pods import PodApi
    from kubectl_emqx.view.logs import Formatter, LogRecord

REORDER_WINDOW = 0.3  # seconds a followed line may wait for earlier lines from other nodes
FINISHED = object()
OPEN_RETRY_SECONDS = 4.0  # how long a followed container's log may be refused before giving up on it


def complete_pod_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Pods of the cluster named on the command line (for --node); nothing when the API cannot be asked."""
    from click.shell_completion import CompletionItem

    from kubectl_emqx.cli.completion import COMPLETION_TIMEOUT_SECONDS

    # While completing an option's value click leaves the positional NAME in ctx.args.
    cluster = ctx.params.get("name") or next((arg for arg in ctx.args if not arg.startswith("-")), None)
    if not cluster:
        return []
    app = state(ctx)
    app.flags.setdefault("request_timeout", COMPLETION_TIMEOUT_SECONDS)
    try:
        from kubectl_emqx.kube.pods import PodApi

        api = app.api()
        pods, _ = PodApi(api).list_pods(api.namespace, label_selector(cluster))  # type: ignore[arg-type]
    except Exception:
        return []
    names = sorted(str(pod["metadata"]["name"]) for pod in pods)
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


@click.command("logs", cls=EmqxCommand)
@name_argument
@click.option("-f", "--follow", is_flag=True, help="Keep following, also pods that appear later (Ctrl-C stops).")
@click.option("--role", type=click.Choice(ROLES), help="Only core or only replicant nodes.")
@click.option("--node", "nodes", metavar="POD", multiple=True, shell_complete=complete_pod_names,
              help="Only this node: a pod name or an EMQX node name (repeatable).")
@click.option("--since", type=Duration(), help="Only lines newer than this (5s, 10m, 2h).")
@click.option("--tail", type=int, default=-1, show_default=True,
              help="Lines from the end of each node's log (-1: all).")
@click.option("-p", "--previous", is_flag=True, help="The log of the previous container (before a restart).")
@click.option("--timestamps", is_flag=True, help="Show the time each line was received.")
@click.option("-o", "--output", type=click.Choice(["json"]), help="One JSON object per line.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the node names.")
@kube_options
def logs(name: str, follow: bool, role: str | None, nodes: tuple[str, ...], since: float | None, tail: int,
         previous: bool, timestamps: bool, output: str | None, color: str) -> None:
    """Print the logs of cluster NAME's nodes, merged in time order, each line prefixed by its pod.

    \b
    Examples:
      kubectl emqx logs demo --since 10m
      kubectl emqx logs demo -f --role replicant
      kubectl emqx logs demo --node demo-core-0 --previous
      kubectl emqx logs demo -o json | jq 'select(.level == "error")'
    """
    if follow and previous:
        raise click.BadParameter("cannot be combined with -f (a previous container has ended)",
                                 param_hint="--previous")
    if tail < -1:
        raise click.BadParameter("must be -1 (all) or more", param_hint="--tail")
    from kubectl_emqx.kube.pods import PodApi
    from kubectl_emqx.view import render
    from kubectl_emqx.view.logs import Formatter

    api = state().api()
    namespace = api.namespace
    body = load_cluster(api, name, namespace)
    pod_api = PodApi(api, streams=32 if follow else 8)  # type: ignore[arg-type]
    selection = Selection(name, namespace, body, role, nodes)
    formatter = Formatter(color=render.use_color(color, sys.stdout.isatty()), timestamps=timestamps,
                          output=output)
    options = LogOptions(since_seconds=int(since) if since else None, tail_lines=tail if tail >= 0 else None,
                         previous=previous)
    pods, _ = pod_api.list_pods(namespace, label_selector(name, role))
    selection.check(pods)
    if follow:
        Follower(pod_api, selection, options, formatter).run(pods)
    else:
        print_finished(pod_api, selection, options, formatter, pods)


@dataclass(frozen=True)
class LogOptions:
    since_seconds: int | None = None
    tail_lines: int | None = None
    previous: bool = False


@dataclass
class Selection:
    """Which pods of the cluster the user asked for, and how their lines are labelled."""

    cluster: str
    namespace: str
    body: dict[str, Any]
    role: str | None
    nodes: tuple[str, ...] = ()
    _domain: str = field(init=False, default="")

    def __post_init__(self) -> None:
        from kubectl_emqx.view import pods as pod_view

        self._domain = pod_view.cluster_domain(self.body)

    def node_name(self, pod: dict[str, Any]) -> str | None:
        from kubectl_emqx.view import pods as pod_view

        return pod_view.node_name(pod, self.cluster, self.namespace, self._domain)

    def wanted(self, pod: dict[str, Any]) -> bool:
        from kubectl_emqx.view import pods as pod_view

        if self.role and pod_view.role(pod) != self.role:
            return False
        if not self.nodes:
            return True
        return pod_view.name(pod) in self.nodes or (self.node_name(pod) or "") in self.nodes

    def check(self, pods: list[dict[str, Any]]) -> None:
        """--node must name a pod of the cluster (or its EMQX node name); for -f a name that is not
        there yet is fine only if it is a pod name (a pod may come)."""
        from kubectl_emqx.view import pods as pod_view

        known = {pod_view.name(pod) for pod in pods} | {self.node_name(pod) or "" for pod in pods}
        missing = [node for node in self.nodes if node not in known]
        if missing:
            names = ", ".join(sorted(pod_view.name(pod) for pod in pods)) or "none"
            raise errors.PluginError(
                f"--node {missing[0]}: no such node in {self.namespace}/{self.cluster} (pods: {names})"
            )

    def label(self, pod: dict[str, Any]) -> tuple[str, str | None, str]:
        """(pod name, EMQX node name, role): what every line of the pod carries."""
        from kubectl_emqx.view import pods as pod_view

        return pod_view.name(pod), self.node_name(pod), pod_view.role(pod)

    def reader(self, pod: dict[str, Any]) -> Callable[[str], LogRecord]:
        """raw line -> record, for one pod (the labels computed once)."""
        from kubectl_emqx.view.logs import record

        name, node, role = self.label(pod)
        return lambda raw: record(raw, name, node, role)


def _write(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
    except BrokenPipeError:
        _quiet_exit()


def _flush() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_exit()


def _quiet_exit() -> None:
    """The reader went away (`| head`): stop without a traceback, as kubectl does."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


def print_finished(pod_api: PodApi, selection: Selection, options: LogOptions, formatter: Formatter,
                   pods: list[dict[str, Any]]) -> None:
    """Read every selected pod's log to the end (in parallel), then print them merged by time."""
    from concurrent.futures import ThreadPoolExecutor

    from kubectl_emqx.view import logs as log_view
    from kubectl_emqx.view import pods as pod_view

    chosen = [pod for pod in pod_view.by_ordinal(pods) if selection.wanted(pod)]
    readable = [pod for pod in chosen if pod_view.container_started(pod)]
    if options.previous:
        readable = [pod for pod in readable if pod_view.has_previous(pod)]
        for pod in chosen:
            if pod not in readable:
                warn(f"{pod_view.name(pod)}: no previous container (restarts: {pod_view.restart_count(pod)})")
    else:
        for pod in chosen:
            if pod not in readable:
                warn(f"{pod_view.name(pod)}: container not started yet; no log")
    if not chosen:
        role = f" {selection.role}" if selection.role else ""
        info(f"No{role} pods of {selection.namespace}/{selection.cluster} found.")
    if not readable:
        return
    formatter.know(pod_view.name(pod) for pod in readable)

    def read(pod: dict[str, Any]) -> list[LogRecord]:
        stream = pod_api.log(selection.namespace, pod_view.name(pod), container=CONTAINER_NAME,
                             since_seconds=options.since_seconds, tail_lines=options.tail_lines,
                             previous=options.previous)
        to_record = selection.reader(pod)
        return [to_record(line) for line in stream]

    records: list[LogRecord] = []
    failures: list[errors.PluginError] = []
    with ThreadPoolExecutor(max_workers=min(8, len(readable))) as pool:
        for pod, future in [(pod, pool.submit(read, pod)) for pod in readable]:
            try:
                records.extend(future.result())
            except errors.Forbidden:
                raise
            except errors.PluginError as exc:
                failures.append(exc)
                warn(f"{pod_view.name(pod)}: {exc.message}")
    if failures and len(failures) == len(readable):
        raise failures[0]
    ordered = log_view.merged(records)
    line = formatter.line
    for start in range(0, len(ordered), 4096):
        _write("\n".join(line(item) for item in ordered[start:start + 4096]))
    _flush()


class Follower:
    """Follows the selected pods: one log stream per running container, attached as pods appear
    or restart and detached as they go; lines are merged through a short reorder window."""

    def __init__(self, pod_api: PodApi, selection: Selection, options: LogOptions, formatter: Formatter,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pod_api = pod_api
        self.selection = selection
        self.options = options
        self.formatter = formatter
        self.clock = clock
        self.stop = threading.Event()
        self.lines: queue.Queue[Any] = queue.Queue()
        self._attached: set[tuple[str, int]] = set()  # (pod uid, restartCount) with a stream
        self._streams: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()
        self.problem: errors.PluginError | None = None

    def run(self, pods: list[dict[str, Any]]) -> None:
        from kubectl_emqx.view import logs as log_view
        from kubectl_emqx.view import pods as pod_view

        initial = [pod for pod in pod_view.by_ordinal(pods) if self.selection.wanted(pod)]
        self.formatter.know(pod_view.name(pod) for pod in initial)
        for pod in initial:
            self.attach(pod, initial=True)
        watcher = threading.Thread(target=self._watch, name="pod watch", daemon=True)
        watcher.start()
        reorder = log_view.Reorder(REORDER_WINDOW)
        try:
            while not self.stop.is_set():
                try:
                    item = self.lines.get(timeout=REORDER_WINDOW / 3)
                    while True:
                        if item is FINISHED:
                            self.stop.set()
                            break
                        reorder.push(item, self.clock())
                        item = self.lines.get_nowait()
                except queue.Empty:
                    pass
                due = reorder.due(self.clock())
                for record in due:
                    _write(self.formatter.line(record))
                if due:
                    _flush()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop.set()
            for record in reorder.drain():
                _write(self.formatter.line(record))
            _flush()
            with self._lock:
                streams = list(self._streams.values())
            for stream in streams:
                stream.close()
        if self.problem is not None:
            raise self.problem

    def _watch(self) -> None:
        from kubectl_emqx.view import pods as pod_view

        try:
            for event in self.pod_api.follow_pods(self.selection.namespace,
                                                  label_selector(self.selection.cluster, self.selection.role),
                                                  self.stop):
                pod = event.object
                if not self.selection.wanted(pod):
                    continue
                if event.type == "DELETED":
                    self.note("-", pod_view.name(pod), "gone")
                    continue
                self.attach(pod, initial=False)
        except errors.PluginError as exc:
            self.problem = exc
            self.lines.put(FINISHED)
        except Exception as exc:  # noqa: BLE001 - reported as one line by the caller
            self.problem = errors.PluginError(f"watching the pods failed: {type(exc).__name__}: {exc}")
            self.lines.put(FINISHED)

    def note(self, sign: str, pod: str, what: str) -> None:
        if self.formatter.output == "json":
            return
        color = {"+": "green", "-": "red"}.get(sign)
        text = f"{sign} {pod} {what}"
        click.echo(click.style(text, fg=color) if self.formatter.color else text, err=True)

    def attach(self, pod: dict[str, Any], *, initial: bool) -> None:
        """Start a stream for the pod's current container unless one ran for it already. Containers
        that start after the command began are read from their first line."""
        from kubectl_emqx.view import pods as pod_view

        if pod_view.terminating(pod) and not pod_view.container_running(pod):
            return
        if not pod_view.container_running(pod):
            return
        key = (pod_view.uid(pod), pod_view.restart_count(pod))
        with self._lock:
            if key in self._attached:
                return
            self._attached.add(key)
        options = self.options if initial else LogOptions()
        self.formatter.know([pod_view.name(pod)])
        if not initial:
            self.note("+", pod_view.name(pod), f"restarted ({key[1]})" if key[1] else "started")
        threading.Thread(target=self._stream, args=(pod, key, options), name=f"log {pod_view.name(pod)}",
                         daemon=True).start()

    def _stream(self, pod: dict[str, Any], key: tuple[str, int], options: LogOptions) -> None:
        from kubectl_emqx.view import pods as pod_view

        name = pod_view.name(pod)
        delay = 0.25
        while True:
            try:
                stream = self.pod_api.log(self.selection.namespace, name, container=CONTAINER_NAME, follow=True,
                                          since_seconds=options.since_seconds, tail_lines=options.tail_lines)
                break
            except errors.Forbidden as exc:
                self.problem = exc
                self.lines.put(FINISHED)
                return
            except errors.PluginError as exc:
                # A container reported running can still be refused a moment (its log not open yet).
                if delay > OPEN_RETRY_SECONDS or self.stop.wait(delay):
                    if not self.stop.is_set():
                        warn(f"{name}: {exc.message}")
                    return
                delay *= 2
        with self._lock:
            self._streams[key] = stream
        to_record = self.selection.reader(pod)
        put = self.lines.put
        try:
            for line in stream:
                put(to_record(line))
        except Exception as exc:  # noqa: BLE001 - one node's stream failing does not end the others
            if not self.stop.is_set():
                warn(f"{name}: log stream failed: {exc}")
        finally:
            with self._lock:
                self._streams.pop(key, None)
