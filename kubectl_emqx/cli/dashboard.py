"""`kubectl emqx dashboard NAME`: a local port forwarded through the API server to a ready core's
dashboard (and REST API), moving to another ready core when that pod goes away; prints the URL and
how to log in, opens a browser when there is one, and ends cleanly on Ctrl-C."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from kubectl_emqx.cli.common import info, load_cluster, warn
from kubectl_emqx.cli.options import EmqxCommand, kube_options, name_argument, state
from kubectl_emqx.domain.vocabulary import (
    CONTAINER_NAME,
    CORE,
    DASHBOARD_USERNAME,
    label_selector,
)
from kubectl_emqx.kube import errors

if TYPE_CHECKING:
    from kubectl_emqx.kube.pods import PodApi
    from kubectl_emqx.kube.portforward import Connector

DEFAULT_LOCAL_PORT = 18083
PASSWORD_ENV = "EMQX_DASHBOARD__DEFAULT_PASSWORD"
EMQX_DEFAULT_PASSWORD = "public"  # emqx_dashboard_schema default_password
FAILED_PENALTY_SECONDS = 10.0  # a core whose stream failed is picked again only after this, if others are ready


class CoreTarget:
    """The ready core the next connection goes to: the current one while it stays ready, else the
    ready core with the lowest ordinal that has not just failed. Kept current by a pod watch."""

    def __init__(self, pod_api: PodApi, namespace: str, cluster: str,
                 on_switch: Callable[[str, str | None], None] = lambda new, old: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pod_api = pod_api
        self.namespace = namespace
        self.selector = label_selector(cluster, CORE)
        self.on_switch = on_switch
        self.clock = clock
        self._pods: dict[str, dict[str, Any]] = {}
        self._failed: dict[str, float] = {}
        self._current: str | None = None
        self._lock = threading.Lock()
        self._watching = False

    def refresh(self) -> None:
        pods, _ = self.pod_api.list_pods(self.namespace, self.selector)
        with self._lock:
            self._pods = {pod["metadata"]["name"]: pod for pod in pods}

    def watch(self, stop: threading.Event) -> None:
        """Follow the cores until `stop` (run in a thread); on failure pick() lists instead."""
        self._watching = True
        try:
            for event in self.pod_api.follow_pods(self.namespace, self.selector, stop):
                name = event.object["metadata"]["name"]
                with self._lock:
                    if event.type == "DELETED":
                        self._pods.pop(name, None)
                    else:
                        self._pods[name] = event.object
        except Exception:  # noqa: BLE001 - pick() falls back to listing
            pass
        finally:
            self._watching = False

    def candidates(self) -> list[str]:
        from kubectl_emqx.view import pods as pod_view

        with self._lock:
            ready = [pod for pod in pod_view.by_ordinal(list(self._pods.values())) if pod_view.ready(pod)]
        return [pod_view.name(pod) for pod in ready]

    def pick(self) -> tuple[str, int] | None:
        from kubectl_emqx.view import pods as pod_view

        if not self._watching:
            try:
                self.refresh()
            except errors.PluginError:
                pass
        ready = self.candidates()
        now = self.clock()
        with self._lock:
            current = self._current
            healthy = [name for name in ready if now - self._failed.get(name, -1e9) >= FAILED_PENALTY_SECONDS]
            if current in healthy:
                chosen: str | None = current
            else:
                chosen = (healthy or ready)[0] if (healthy or ready) else None
            self._current = chosen
            pod = self._pods.get(chosen) if chosen else None
        if chosen != current and chosen is not None:
            self.on_switch(chosen, current)
        if chosen is None or pod is None:
            return None
        return chosen, pod_view.dashboard_port(pod)

    def failed(self, pod: str, reason: str) -> None:
        with self._lock:
            self._failed[pod] = self.clock()

    def pod(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._pods.get(name)


def _free(address: str, port: int) -> bool:
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


@click.command("dashboard", cls=EmqxCommand)
@name_argument
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help=f"Local port (default {DEFAULT_LOCAL_PORT}, or a free one when that is taken; 0 = any).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Local address to listen on.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--show-password", is_flag=True, help="Print the dashboard password (read from its Secret).")
@kube_options
def dashboard(name: str, port: int | None, address: str, no_browser: bool, show_password: bool) -> None:
    """Open EMQX's dashboard (and REST API) of cluster NAME on a local port, forwarded through the
    Kubernetes API server to a ready core (like `kubectl port-forward`: no network path to the pods
    is needed). When that core goes away, new connections go to another ready core. Ctrl-C stops.

    \b
    Examples:
      kubectl emqx dashboard demo
      kubectl emqx dashboard demo --port 8080 --no-browser
    """
    from kubectl_emqx.kube import portforward
    from kubectl_emqx.kube.pods import PodApi

    api = state().api()
    namespace = api.namespace
    body = load_cluster(api, name, namespace)
    pod_api = PodApi(api, streams=16)  # type: ignore[arg-type]
    connector = portforward.Connector.for_api(api)  # type: ignore[arg-type]

    def switched(new: str, old: str | None) -> None:
        if old is not None:
            info(f"now forwarding to {new} ({old} is not ready or went away)")

    target = CoreTarget(pod_api, namespace, name, on_switch=switched)
    target.refresh()
    pod, remote_port = first_answer(connector, namespace, name, body, target)

    local_port = port if port is not None else (DEFAULT_LOCAL_PORT if _free(address, DEFAULT_LOCAL_PORT) else 0)
    stop = threading.Event()
    forwarder = portforward.Forwarder(connector, namespace, target, address=address, port=local_port,
                                      on_event=lambda text: warn(text))
    forwarder.start()
    threading.Thread(target=target.watch, args=(stop,), name="core watch", daemon=True).start()
    try:
        click.echo(f"Dashboard of {namespace}/{name}: {forwarder.url}  (forwarding to {pod}, port {remote_port})")
        click.echo(f"REST API: {forwarder.url}/api/v5")
        for line in login_lines(api, namespace, target.pod(pod) or {}, show_password):
            click.echo(line)
        click.echo("Press Ctrl-C to stop.")
        sys.stdout.flush()
        if not no_browser and sys.stdout.isatty():
            open_browser(forwarder.url)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        forwarder.stop()
    info("stopped")


def first_answer(connector: Connector, namespace: str, name: str, body: dict[str, Any],
                 target: CoreTarget) -> tuple[str, int]:
    """Check that a ready core answers GET /status through a forward before saying where to go:
    a missing permission or an unreachable dashboard is reported now, as one line."""
    from kubectl_emqx.kube import portforward

    candidates = target.candidates()
    if not candidates:
        from kubectl_emqx.view import status_model

        summary = status_model.summarize(body)
        raise errors.PluginError(
            f"{namespace}/{name} has no ready core to forward to (cores ready: {summary.cores.ready}/"
            f"{summary.cores.desired}); see `kubectl emqx status {name}`"
        )
    last: errors.PluginError | None = None
    for _ in candidates:
        chosen = target.pick()
        if chosen is None:
            break
        pod, port = chosen
        try:
            portforward.request(connector, namespace, pod, port, "GET", "/status", timeout=15)
            return pod, port
        except (portforward.StreamError, portforward.PodGone) as exc:
            target.failed(pod, exc.message)
            last = exc
    raise errors.PluginError(f"cannot reach the dashboard of {namespace}/{name} through a port-forward: "
                             f"{last.message if last else 'no ready core'}")


def login_lines(api: Any, namespace: str, pod: dict[str, Any], show_password: bool) -> list[str]:
    """How to log in: the username, and where the password comes from (the command that reveals
    it; the password itself only with --show-password)."""
    source = password_source(pod)
    lines = [f"Log in as {DASHBOARD_USERNAME}."]
    if source[0] == "secret":
        secret, key = source[1], source[2]
        lines.append("Password (generated by the operator; used until someone changes it in the dashboard):")
        lines.append(f"  kubectl get secret {secret} -n {namespace} -o jsonpath='{{.data.{key}}}' | base64 -d")
        if show_password:
            lines.append(f"  {_read_secret(api, namespace, secret, key)}")
    elif source[0] == "literal":
        lines.append(f"Password: set in the resource's env {PASSWORD_ENV}"
                     + (f": {source[1]}" if show_password else " (--show-password prints it)"))
    else:
        lines.append(f"Password: EMQX's default ({EMQX_DEFAULT_PASSWORD}) unless changed in the dashboard")
    return lines


def password_source(pod: dict[str, Any]) -> tuple[str, str, str]:
    """("secret", name, key) | ("literal", value, "") | ("default", "", "") from the emqx container's env."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") != CONTAINER_NAME:
            continue
        for env in container.get("env") or []:
            if env.get("name") != PASSWORD_ENV:
                continue
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                return "secret", str(ref.get("name", "")), str(ref.get("key", ""))
            if "value" in env:
                return "literal", str(env["value"]), ""
    return "default", "", ""


def _read_secret(api: Any, namespace: str, secret: str, key: str) -> str:
    import base64

    try:
        found = api.get_object("Secret", secret, namespace)
    except errors.PluginError as exc:
        return f"(cannot read it: {exc.message})"
    value = ((found or {}).get("data") or {}).get(key)
    if value is None:
        return f"(secret {secret} has no key {key})"
    return base64.b64decode(value).decode("utf-8", "replace")


def open_browser(url: str) -> bool:
    """Open `url` in a graphical browser when there is one; never a console browser (it would take
    over this terminal)."""
    import os
    import webbrowser

    if sys.platform != "darwin" and not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")):
        return False
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    if type(browser) is webbrowser.GenericBrowser:  # lynx, w3m, links: they run in the foreground
        return False
    try:
        return bool(browser.open(url, new=2))
    except Exception:  # noqa: BLE001 - a browser that cannot start is no reason to stop forwarding
        return False
