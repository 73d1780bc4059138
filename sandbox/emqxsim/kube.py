"""The Kubernetes side of the simulator: watch EMQX pods, read their ConfigMaps/Secrets, and act as
their kubelet (container lifecycle, probes, pod status, logs, port-forward targets).

Only this module imports the `kubernetes` client. The kubelet's rules live in kubelet.py (pure); the
console lines in scribe.py and the log files in podlogs.py.
"""

from __future__ import annotations

import base64
import copy
import functools
import http.client
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from . import kubelet, scribe, versions
from .api import PROBE_HEADER, NodeHttpServer, Request
from .podlogs import ContainerLogs, flog
from .podspec import ContainerConfigError, ObjectSource, ReadOnce, emqx_container, resolve_container
from .scribe import NodeLook
from .world import INSTANCE_LABEL, Fault, PodRecord, World

log = logging.getLogger("emqxsim")

PROBE_USER_AGENT = "kube-probe/1.37"


def _raw(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


def _release(response: Any) -> None:
    """Give the connection of a `_preload_content=False` response back to the pool, its body unread."""
    response.drain_conn()
    response.release_conn()


class KubeObjectSource:
    """Reads ConfigMaps and Secrets the way the kubelet does when it starts a container."""

    def __init__(self, core: Any):
        self.core = core

    def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        reader = self.core.read_namespaced_secret if kind == "secret" else self.core.read_namespaced_config_map
        try:
            return _raw(reader(name, namespace, _preload_content=False, _request_timeout=10))
        except ApiException as error:
            if error.status == 404:
                return None
            raise ContainerConfigError(
                f"failed to read {kind} {namespace}/{name}: {error.status} {error.reason}"
            ) from None
        except Exception as error:  # urllib3 connection errors and the like: retried on the next attempt
            raise ContainerConfigError(f"failed to read {kind} {namespace}/{name}: {error}") from None

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        body = self._read("configmap", namespace, name)
        if body is None:
            return None
        return dict(body.get("data") or {})

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        body = self._read("secret", namespace, name)
        if body is None:
            return None
        return {
            key: base64.b64decode(value).decode("utf-8", "replace") for key, value in (body.get("data") or {}).items()
        }


class PodWatcher:
    """List + watch of pods labelled apps.emqx.io/instance in all namespaces, fed into the World."""

    def __init__(self, core: Any, world: World):
        self.core = core
        self.world = world
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emqxsim-watch", daemon=True)
        self.synced = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                resource_version = self._relist()
                self._watch(resource_version)
            except Exception as error:
                log.warning("pod watch failed (%s); relisting", error)
                self._stop.wait(1.0)

    def _apply(self, pod: dict[str, Any]) -> None:
        World.stop_servers(self.world.observe_pod(pod))

    def _relist(self) -> str:
        listing = _raw(
            self.core.list_pod_for_all_namespaces(
                label_selector=INSTANCE_LABEL, _preload_content=False, _request_timeout=30
            )
        )
        seen = set()
        for pod in listing.get("items") or []:
            seen.add(pod["metadata"]["uid"])
            self._apply(pod)
        for uid in self.world.known_pod_uids() - seen:
            World.stop_servers(self.world.forget_pod(uid))
        self.synced.set()
        resource_version: str = listing["metadata"]["resourceVersion"]
        return resource_version

    def _watch(self, resource_version: str) -> None:
        """The watch read as raw JSON lines (the client's Watch would build a V1Pod model per event, which
        cost a quarter of the simulator's CPU at 500 pods). An ERROR event (410 Gone: the resource version
        is too old) raises, as the client's Watch does when given timeout_seconds: the loop relists after 1 s.
        The server ends the watch after timeout_seconds: relist."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch.watch import iter_resp_lines

        response = self.core.list_pod_for_all_namespaces(
            label_selector=INSTANCE_LABEL,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=60,
            watch=True,
            _preload_content=False,
            _request_timeout=90,
        )
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    return
                if not line or line.isspace():
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                kind = event.get("type")
                raw = event.get("object") or {}
                if kind == "ERROR":
                    raise ApiException(status=raw.get("code"), reason=f"{raw.get('reason')}: {raw.get('message')}")
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    World.stop_servers(self.world.forget_pod(raw["metadata"]["uid"]))
                else:
                    self._apply(raw)
        finally:
            response.close()
            response.release_conn()


# ---------------------------------------------------------------------------------------------- probes


def probe_headers(spec: kubelet.ProbeSpec) -> dict[str, str]:
    """The headers an HTTP probe sends (the pod's httpHeaders replace ours of the same spelling)."""
    headers = {"User-Agent": PROBE_USER_AGENT, "Accept": "*/*", PROBE_HEADER: "1"}
    headers.update(dict(spec.headers))
    return headers


def run_probe(spec: kubelet.ProbeSpec, pod_ip: str) -> bool:
    """One probe as the kubelet's prober runs it (HTTP: 200-399 is success; TCP: connect), over the
    network. exec and gRPC probes are not simulated and succeed."""
    host = spec.host or pod_ip
    if spec.handler == "tcp":
        try:
            with socket.create_connection((host, spec.port), timeout=spec.timeout):
                return True
        except OSError:
            return False
    if spec.handler != "http":
        return True
    if spec.scheme.upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, spec.port, timeout=spec.timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(host, spec.port, timeout=spec.timeout)
    try:
        connection.request("GET", spec.path, headers=probe_headers(spec))
        return 200 <= connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


# What http.client sends and BaseHTTPRequestHandler reads back unchanged: an RFC 9110 token as a header
# name, printable ASCII without surrounding blanks as a value, printable ASCII as the path.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PLAIN_VALUE = re.compile(r"(?:[!-~](?:[ -~]*[!-~])?)?")
_PLAIN_PATH = re.compile(r"/[!-~]*")
# Headers that change how the server reads the request (a body to wait for, a 100-continue exchange).
_WIRE_ONLY_HEADERS = frozenset({"content-length", "transfer-encoding", "expect"})


def direct_request(spec: kubelet.ProbeSpec, pod_ip: str) -> Request | None:
    """The request a node's listener reads when this HTTP probe is sent to `pod_ip` (as run_probe sends
    it: http.client adds Host and Accept-Encoding), or None when only the network can tell (an unusual
    path or header: it is sent for real)."""
    if ":" in pod_ip or len(spec.path) > 2048 or not _PLAIN_PATH.fullmatch(spec.path):
        return None
    headers = probe_headers(spec)
    names = {name.lower() for name in headers}
    if len(headers) > 32 or names & _WIRE_ONLY_HEADERS:
        return None
    wire: list[tuple[str, str]] = []
    if "host" not in names:
        wire.append(("Host", pod_ip if spec.port == 80 else f"{pod_ip}:{spec.port}"))
    if "accept-encoding" not in names:
        wire.append(("Accept-Encoding", "identity"))
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or len(value) > 4096 or not _PLAIN_VALUE.fullmatch(value):
            return None
        wire.append((name, value))
    path = spec.path
    if path.startswith("//"):  # BaseHTTPRequestHandler.parse_request reduces a leading // to /
        path = "/" + path.lstrip("/")
    split = urlsplit(path)
    return Request("GET", split.path, dict(parse_qsl(split.query)), {name.lower(): value for name, value in wire})


# The same probe of the same pod asks the same request every period: built once (requests are not changed
# by the API, which only reads them).
_direct_request = functools.lru_cache(maxsize=8192)(direct_request)


class ProbeOutcome(Protocol):
    """A probe in flight or done: a Future from the pool, or `Answered`."""

    def done(self) -> bool: ...

    def cancelled(self) -> bool: ...

    def cancel(self) -> bool: ...

    def result(self, timeout: float | None = None) -> bool: ...


class Answered:
    """A probe answered on the spot (a finished Future without its locks and condition)."""

    __slots__ = ("outcome",)

    def __init__(self, outcome: bool):
        self.outcome = outcome

    def done(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def cancel(self) -> bool:
        return False

    def result(self, timeout: float | None = None) -> bool:
        return self.outcome


def _answer(server: NodeHttpServer, request: Request, fault: Fault | None, timeout: float, started: float) -> bool:
    """The rest of the request on the node's listener (fault delay, the API); False where the prober's
    client gets no response within `timeout` seconds."""
    response = server.respond(request, fault, patience=timeout)
    if response is None or time.monotonic() - started >= timeout:
        return False
    for callback in response.after:
        threading.Thread(target=callback, daemon=True).start()
    return 200 <= response.status < 400


class Prober:
    """Runs the kubelet's probes. An HTTP probe of a pod's own node on its dashboard listener (podIP, the
    listener's port, scheme HTTP, no host set) is answered in-process, through the listener's own
    request path (`NodeHttpServer.receive` and `respond`: node alive, injected faults with their delay,
    drop and status, the API; probe requests not counted), with the outcome the network would give; at
    500 pods the network round trips (a server thread each) cost more than the nodes. Every other probe,
    and one whose listener is not open (the port then refuses connections, or something else answers
    there), goes over the network from the pool."""

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool

    @staticmethod
    def direct_server(spec: kubelet.ProbeSpec, pod_ip: str, node: Any) -> NodeHttpServer | None:
        """The node's listener when the probe would reach it over the network, else None."""
        if spec.handler != "http" or spec.host or spec.scheme.upper() != "HTTP" or node is None:
            return None
        server = node.server
        if not isinstance(server, NodeHttpServer) or not server.listening_on(pod_ip, spec.port):
            return None
        return server

    def submit(self, spec: kubelet.ProbeSpec, pod_ip: str, node: Any) -> ProbeOutcome:
        """The outcome of one probe of the pod whose node (None: none running) is `node`."""
        if spec.handler not in ("http", "tcp"):
            return Answered(True)  # exec and gRPC: not simulated
        server = self.direct_server(spec, pod_ip, node)
        request = _direct_request(spec, pod_ip) if server is not None else None
        if server is None or request is None:
            return self.pool.submit(run_probe, spec, pod_ip)
        started = time.monotonic()
        if not server.node.alive:
            return Answered(False)  # the listener closes the connection without a response
        fault = server.receive(request)
        if fault is not None and fault.delay > 0:
            return self.pool.submit(_answer, server, request, fault, spec.timeout, started)
        return Answered(_answer(server, request, fault, spec.timeout, started))


# ---------------------------------------------------------------------------------------------- kwok resources

KWOK_GROUP, KWOK_VERSION = "kwok.x-k8s.io", "v1alpha1"
# MQTT listeners and the dashboard of an EMQX node, forwarded even when the pod spec does not list them.
EMQX_PORTS = (1883, 8083, 8084, 8883, 18083, 18084)


def forward_ports(pod: Mapping[str, Any]) -> list[int]:
    ports = set(EMQX_PORTS)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for item in container.get("ports") or []:
            if item.get("protocol", "TCP") == "TCP" and item.get("containerPort"):
                ports.add(int(item["containerPort"]))
    return sorted(ports)


def owner_reference(pod: Mapping[str, Any]) -> dict[str, Any]:
    metadata = pod.get("metadata") or {}
    return {"apiVersion": "v1", "kind": "Pod", "name": metadata.get("name"), "uid": metadata.get("uid")}


def port_forward_body(pod: Mapping[str, Any]) -> dict[str, Any]:
    """kwok PortForward named like the pod: every port to <podIP>:<same port> (kwok cannot template
    the target, so each pod has its own)."""
    metadata = pod.get("metadata") or {}
    ip = (pod.get("status") or {}).get("podIP") or ""
    return {
        "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}",
        "kind": "PortForward",
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace"),
                     "ownerReferences": [owner_reference(pod)]},
        "spec": {"forwards": [{"ports": [port], "target": {"address": ip, "port": port}}
                              for port in forward_ports(pod)]},
    }


def logs_spec(current: str, previous: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"containers": [kubelet.EMQX_CONTAINER], "logsFile": current, "follow": True}
    if previous:
        entry["previousLogsFile"] = previous
    return {"logs": [entry]}


class KwokResources:
    """Creates each EMQX pod's PortForward and Logs objects (owned by the pod) and keeps Logs pointing
    at the current and previous container's files."""

    def __init__(self, api_client: Any):
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)

    def _create(self, plural: str, body: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        metadata = body["metadata"]
        try:
            response = self.custom.create_namespaced_custom_object(
                KWOK_GROUP, KWOK_VERSION, metadata["namespace"], plural, body, _request_timeout=10,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status != 409:
                raise
            response = self.custom.patch_namespaced_custom_object(
                KWOK_GROUP, KWOK_VERSION, metadata["namespace"], plural, metadata["name"],
                {"metadata": {"ownerReferences": metadata["ownerReferences"]}, "spec": body["spec"]},
                _request_timeout=10, _preload_content=False,
            )
        _release(response)

    def ensure_forward(self, pod: Mapping[str, Any]) -> None:
        self._create("portforwards", port_forward_body(pod))

    def ensure_logs(self, pod: Mapping[str, Any], current: str, previous: str | None) -> None:
        metadata = pod.get("metadata") or {}
        self._create("logs", {
            "apiVersion": f"{KWOK_GROUP}/{KWOK_VERSION}",
            "kind": "Logs",
            "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace"),
                         "ownerReferences": [owner_reference(pod)]},
            "spec": logs_spec(current, previous),
        })


# ---------------------------------------------------------------------------------------------- the kubelet


def container_failure(record: PodRecord) -> tuple[int, str] | None:
    """The one place that reads "this container failed to start": (exit code, what it printed) of a
    record whose node refused to boot or crashed, else None. When the World recorded how the EMQX
    process ended (`termination`: bin/emqx's exit code and last lines), that is what the container
    shows; else exit code 1 and the World's reason."""
    if record.state not in ("failed", "crashed"):
        return None
    termination = record.termination
    if termination is not None:
        return termination.exit_code, "\n".join(termination.log_tail) or termination.message
    return 1, record.reason


def _config_verdict(error: ContainerConfigError) -> tuple[str, str]:
    """(kubelet reason, message) for podspec's errors: missing env sources stop the container from being
    created; missing volume sources keep the pod in ContainerCreating (FailedMount events)."""
    text = str(error)
    reason, _, message = text.partition(": ")
    if reason in ("CreateContainerConfigError", "FailedMount"):
        return reason, message
    return "CreateContainerConfigError", text


@dataclass
class PodView:
    """A consistent snapshot of one World record, taken under the World's lock."""

    uid: str
    namespace: str
    name: str
    pod: dict[str, Any]
    image: str
    state: str
    reason: str
    booting: bool
    node: Any
    failure: tuple[int, str] | None
    # The kubelet's container when the snapshot was taken: the World's state describes this one only.
    container: kubelet.Running | None


class Kubelet:
    """Acts as the kubelet of every simulated EMQX pod: starts containers (through the World's gate),
    runs probes, restarts on liveness failure, writes pod status, logs and kwok's debugging objects."""

    def __init__(
        self,
        api_client: Any,
        core: Any,
        world: World,
        source: KubeObjectSource,
        timing: kubelet.Timing,
        log_root: Path | None,
        period: float = 0.1,
    ):
        self.core = core
        self.world = world
        self.source = source
        self.timing = timing
        self.log_root = log_root
        self.period = period
        self.kwok = KwokResources(api_client) if log_root is not None else None
        self.pods: dict[str, kubelet.PodKubelet] = {}
        self.logs: dict[str, ContainerLogs] = {}
        self.looks: dict[str, tuple[int, NodeLook]] = {}
        self.versions: dict[str, versions.Version] = {}  # the release each pod's node last booted
        self.waits_logged: dict[str, str] = {}
        self.debug_ready: set[str] = set()
        self.logs_pointed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emqxsim-kubelet", daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="emqxsim-probe")
        # Status patches go out from threads of their own, one at a time per pod (the kubelet's status
        # manager does not hold its pod workers up either): sent inline, 500 starting pods waited on
        # each other's round trips to a busy API server.
        self._status_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="emqxsim-status")
        self._status_sending: dict[str, Future[None]] = {}
        self._prober = Prober(self._pool)
        self._probes: dict[str, dict[str, ProbeOutcome]] = {}  # pod uid -> probe kind -> the probe running
        self._start_reads: dict[str, ReadOnce] = {}  # pod uid -> what its container was created with
        self._last_patch: dict[str, tuple[str, float]] = {}
        # What the last round computed, reused while its inputs are the same objects (see _write_status,
        # _scribe): pod uid -> (pod, kubelet inputs, wanted status, differs, digest); uid -> (config, digest).
        self._status_memo: dict[str, tuple[dict[str, Any], tuple[Any, ...], dict[str, Any], bool, str]] = {}
        self._config_digests: dict[str, tuple[Any, str]] = {}
        world.container_gate = self._gate
        world.boot_scale = self._boot_scale

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._status_pool.shutdown(wait=False, cancel_futures=True)

    def set_timing(self, timing: kubelet.Timing) -> None:
        """Applies to pods the kubelet sees from now on."""
        self.timing = timing

    # ------------------------------------------------------------------ world gate (under the World lock)

    def _gate(self, record: PodRecord) -> bool:
        with self._lock:
            pk = self.pods.get(record.uid)
            if pk is None or not pk.start_pending:
                return False
            container = emqx_container(record.pod)
            pk.container_started(time.monotonic(), time.time(), container)
            logs = self.logs.get(record.uid)
            if logs is not None:
                logs.start(pk.restart_count)
            self.waits_logged.pop(record.uid, None)
            self.looks.pop(record.uid, None)
            return True

    def _boot_scale(self, record: PodRecord) -> float:
        """The boot duration follows the timing of the pod's kubelet (fast: a tenth), like its probes."""
        with self._lock:
            pk = self.pods.get(record.uid)
            return (pk.timing if pk is not None else self.timing).scale

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except Exception:
                log.exception("kubelet round failed")
            self._stop.wait(self.period)

    def _views(self) -> list[PodView]:
        # Same lock order as the gate (World, then ours): a container the gate starts after this snapshot
        # is not judged by the World state of the snapshot.
        with self.world.lock, self._lock:
            return [
                # record.pod is replaced, never changed in place, by observe_pod: no copy needed.
                PodView(r.uid, r.namespace, r.name, r.pod, r.image, r.state, r.reason, r.booting, r.node,
                        container_failure(r), pk.running if (pk := self.pods.get(r.uid)) is not None else None)
                for r in self.world.pods.values()
            ]

    def _round(self) -> None:
        views = self._views()
        live = {view.uid for view in views}
        for uid in list(self.pods):
            if uid not in live:
                self._forget(uid)
        for view in views:
            try:
                self._sync(view)
            except Exception:
                log.exception("kubelet sync of %s/%s failed", view.namespace, view.name)

    def _forget(self, uid: str) -> None:
        self._start_reads.pop(uid, None)
        self._status_sending.pop(uid, None)
        with self._lock:
            pk = self.pods.pop(uid, None)
            logs = self.logs.pop(uid, None)
        self._probes.pop(uid, None)
        version = self.versions.pop(uid, None)
        for table in (self.looks, self.waits_logged, self._last_patch, self.logs_pointed, self._status_memo,
                      self._config_digests):
            table.pop(uid, None)
        self.debug_ready.discard(uid)
        if pk is not None and pk.running is not None and logs is not None:
            wall = time.time()
            logs.write(scribe.shutdown_lines(version, wall), wall)

    def _sync(self, view: PodView) -> None:
        now, wall = time.monotonic(), time.time()
        with self._lock:
            pk = self.pods.get(view.uid)
            if pk is None:
                pk = self.pods[view.uid] = kubelet.PodKubelet(view.uid, view.namespace, view.name, self.timing)
                pk.adopt(next((c for c in (view.pod.get("status") or {}).get("containerStatuses") or []
                               if c.get("name") == kubelet.EMQX_CONTAINER), None), view.image)
                if self.log_root is not None:
                    self.logs[view.uid] = ContainerLogs(self.log_root, view.namespace, view.name, view.uid)
            logs = self.logs.get(view.uid)
        self._ensure_debug(view, pk, logs)
        self._scribe(view, pk, logs, wall)
        self._lifecycle(view, pk, logs, now, wall)
        self._collect_probes(view, pk, logs, now, wall)
        self._run_probes(view, pk, now)
        self._write_status(view, pk, wall)

    def _ensure_debug(self, view: PodView, pk: kubelet.PodKubelet, logs: ContainerLogs | None) -> None:
        """The pod's PortForward at once; its Logs once a container has started (before that `kubectl logs`
        fails, as it does while a container waits to start), pointed at each new container's file."""
        if self.kwok is None or logs is None:
            return
        if view.uid not in self.debug_ready:
            self.debug_ready.add(view.uid)
            try:
                self.kwok.ensure_forward(view.pod)
            except Exception as error:  # noqa: BLE001 - logs/port-forward are extras; the pod still runs
                log.warning("no PortForward for %s/%s: %s", view.namespace, view.name, error)
        restarts = logs.restart_count
        if restarts is not None and self.logs_pointed.get(view.uid) != restarts:
            self.logs_pointed[view.uid] = restarts
            previous = logs.previous
            try:
                self.kwok.ensure_logs(view.pod, str(logs.path(restarts)), str(previous) if previous else None)
            except Exception as error:  # noqa: BLE001
                log.warning("no Logs for %s/%s: %s", view.namespace, view.name, error)

    def _scribe(self, view: PodView, pk: kubelet.PodKubelet, logs: ContainerLogs | None, wall: float) -> None:
        if logs is None or pk.running is None or pk.running is not view.container or view.booting:
            return
        node = view.node
        if view.state == "running" and node is not None:
            config = node.running_config
            level = scribe.console_level(config)
            look = NodeLook(node.evacuation_state(), self._config_digest(view.uid, config))
            seen = self.looks.get(view.uid)
            if seen is None or seen[0] != id(node):
                with self.world.lock:
                    peers = [other.name for other in node.cluster.running() if other is not node]
                spec = node.spec
                self.versions[view.uid] = spec.version
                logs.write(scribe.boot_lines(spec.image.reported_edition.value, versions.format_version(spec.version),
                                             config, spec.dashboard_port, peers, list(spec.warnings)), wall, level)
            else:
                lines = scribe.diff_lines(seen[1], look)
                if lines:
                    logs.write(lines, wall, level)
            self.looks[view.uid] = (id(node), look)
        elif view.state == "waiting" and self.waits_logged.get(view.uid) != view.reason:
            logs.write([flog("warning", view.reason)], wall)
            self.waits_logged[view.uid] = view.reason

    def _config_digest(self, uid: str, config: Any) -> str:
        """scribe.config_digest of a node's running config, computed again only when the config is another
        object: the World replaces a node's running config on every change, never edits it in place."""
        known = self._config_digests.get(uid)
        if known is not None and known[0] is config:
            return known[1]
        digest = scribe.config_digest(config)
        self._config_digests[uid] = (config, digest)
        return digest

    def _lifecycle(
        self, view: PodView, pk: kubelet.PodKubelet, logs: ContainerLogs | None, now: float, wall: float
    ) -> None:
        if pk.running is not None and pk.running is view.container and not view.booting:
            exit_code, message = None, ""
            if view.failure is not None:
                exit_code, reason = view.failure
                if logs is not None and view.state == "failed":
                    logs.write(scribe.failure_lines(reason), wall)
                message = self._termination_message(view, logs, exit_code)
            elif view.state == "pending":
                # The World stopped the node for a new container (image changed in place, control API start).
                if logs is not None:
                    logs.write(scribe.shutdown_lines(self.versions.get(view.uid), wall), wall)
                exit_code = 0
            if exit_code is not None:
                with self._lock:
                    pk.container_exited(now, wall, exit_code, message)
                self._drop_probes(view.uid)
        if (
            pk.running is None
            and view.container is None
            and not view.booting
            and view.state in ("running", "waiting", "hung")
        ):
            # A node up without a container of ours (not expected): adopt it rather than show it dead.
            log.warning("pod %s/%s: node %s without a container; adopting it", view.namespace, view.name, view.state)
            with self._lock:
                pk.container_started(now, wall, emqx_container(view.pod))
                if logs is not None:
                    logs.start(pk.restart_count)
            return
        if pk.running is None and not pk.start_pending and now >= pk.next_sync:
            decision = self._decide(view, pk, now)
            with self._lock:
                if decision.start:
                    pk.start_pending = True
                else:
                    pk.wait(decision)

    def _termination_message(self, view: PodView, logs: ContainerLogs | None, exit_code: int) -> str:
        container = emqx_container(view.pod)
        if container.get("terminationMessagePolicy") != "FallbackToLogsOnError" or exit_code == 0:
            return ""
        return logs.tail_message() if logs is not None else ""

    def _decide(self, view: PodView, pk: kubelet.PodKubelet, now: float) -> kubelet.StartDecision:
        wait = pk.crash_backoff_wait(now)
        if wait is not None:
            return wait
        image = view.image
        invalid = kubelet.reference_error(image)
        registry_error = None
        if invalid is None and image not in pk.pulled_images:
            try:
                versions.parse_image(image)
            except versions.ImageError as error:
                registry_error = str(error)
        wait = pk.pull(image, now, registry_error, invalid)
        if wait is not None:
            return wait
        reads = ReadOnce(self.source)
        try:
            resolve_container(view.pod, reads)
        except ContainerConfigError as error:
            reason, message = _config_verdict(error)
            return pk.config_error(now, reason, message)
        self._start_reads[view.uid] = reads
        return kubelet.StartDecision(True)

    def container_source(self, record: PodRecord) -> ObjectSource:
        """What the pod's container was created with: the ConfigMaps and Secrets as read when the
        kubelet created it (its environment is fixed then; bin/emqx reads the same at boot)."""
        return self._start_reads.get(record.uid) or ReadOnce(self.source)

    # ------------------------------------------------------------------ probes

    def _drop_probes(self, uid: str) -> None:
        for future in self._probes.pop(uid, {}).values():
            future.cancel()

    def _run_probes(self, view: PodView, pk: kubelet.PodKubelet, now: float) -> None:
        ip = (view.pod.get("status") or {}).get("podIP") or ""
        for spec in pk.due_probes(now):
            running = self._probes.setdefault(view.uid, {})
            if spec.kind in running:
                continue  # a probe worker runs one probe at a time
            record = self.world.pods.get(view.uid)  # the node as the probe finds it now, not at the snapshot
            running[spec.kind] = self._prober.submit(spec, ip, record.node if record is not None else None)

    def _collect_probes(
        self, view: PodView, pk: kubelet.PodKubelet, logs: ContainerLogs | None, now: float, wall: float
    ) -> None:
        running = self._probes.get(view.uid)
        if not running:
            return
        for kind in [kind for kind, future in running.items() if future.done()]:
            future = running.pop(kind)
            if future.cancelled() or pk.running is None:
                continue
            outcome = bool(future.result())
            with self._lock:
                kill = pk.probe_result(kind, outcome)
            if kill:
                self._kill(view, pk, logs, kind, now, wall)
                return

    def _kill(
        self, view: PodView, pk: kubelet.PodKubelet, logs: ContainerLogs | None, kind: str, now: float, wall: float
    ) -> None:
        """A failed liveness (or startup) probe: the kubelet kills the container; it restarts per back-off."""
        probe = "Liveness" if kind == "livenessProbe" else "Startup"
        log.info("pod %s/%s: %s probe failed, killing container emqx", view.namespace, view.name, probe)
        if logs is not None:
            logs.write(scribe.shutdown_lines(self.versions.get(view.uid), wall), wall)
        with self._lock:
            pk.container_exited(now, wall, 137, "")
        self._drop_probes(view.uid)
        try:
            World.stop_servers(self._crash(view.uid))
        except KeyError:
            pass

    def _crash(self, uid: str) -> list[Any]:
        with self.world.lock:
            record = self.world.pods.get(uid)
            if record is None:
                return []
            servers = self.world._stop_record(record, "crashed", "killed by the kubelet: liveness probe failed")
            record.state, record.reason = "crashed", "killed by the kubelet: liveness probe failed"
            record.restart_at = self.world.monotonic()
            return servers

    # ------------------------------------------------------------------ status

    def _write_status(self, view: PodView, pk: kubelet.PodKubelet, wall: float) -> None:
        with self._lock:
            # pod_status reads only these of the kubelet's state, and the pod (replaced, never changed in
            # place, by observe_pod): the same pod object and inputs give the same status as last round.
            inputs = (pk.running, pk.terminated, pk.restart_count, pk.waiting_reason, pk.waiting_message,
                      pk.ever_started, pk.started(), pk.ready(), view.image in pk.pulled_images)
            memo = self._status_memo.get(view.uid)
            if memo is not None and memo[0] is view.pod and memo[1] == inputs:
                _, _, wanted, differs, digest = memo
            else:
                wanted = kubelet.pod_status(pk, view.pod)
                differs = kubelet.status_differs(wanted, view.pod)
                digest = json.dumps(wanted, sort_keys=True) if differs else ""
                self._status_memo[view.uid] = (view.pod, inputs, wanted, differs, digest)
        if not differs:
            return

        last = self._last_patch.get(view.uid)
        # The watch reports our own patch a moment later; don't send the same status again meanwhile.
        if last is not None and last[0] == digest and time.monotonic() - last[1] < 3.0:
            return
        sending = self._status_sending.get(view.uid)
        if sending is not None and not sending.done():
            return  # the next round looks again, with what this one would have sent or newer
        body = {"status": kubelet.with_transition_times(copy.deepcopy(wanted), view.pod, wall)}
        self._status_sending[view.uid] = self._status_pool.submit(
            self._send_status, view, body, digest, wanted, pk.restart_count)

    def _send_status(self, view: PodView, body: dict[str, Any], digest: str, wanted: dict[str, Any],
                     restarts: int) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self.core.patch_namespaced_pod_status(
                view.name, view.namespace, body,
                _content_type="application/strategic-merge-patch+json", _request_timeout=10,
                _preload_content=False,  # the updated pod is not needed: no V1Pod model built
            )
            _release(response)
            self._last_patch[view.uid] = (digest, time.monotonic())
            ready = next(c["status"] for c in wanted["conditions"] if c["type"] == "Ready")
            state = next(iter((wanted["containerStatuses"] or [{}])[0].get("state") or {"?": 0}))
            log.info("pod %s/%s phase=%s Ready=%s emqx=%s restarts=%d", view.namespace, view.name,
                     wanted["phase"], ready, state, restarts)
        except ApiException as error:
            if error.status != 404:
                log.warning("failed to patch status of %s/%s: %s %s", view.namespace, view.name,
                            error.status, error.reason)
        except Exception as error:  # noqa: BLE001 - the API server away: the next round sends it again
            log.warning("failed to patch status of %s/%s: %s", view.namespace, view.name, error)
