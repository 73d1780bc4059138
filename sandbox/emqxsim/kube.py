"""The Kubernetes side of the simulator: watch EMQX pods, read their ConfigMaps/Secrets, own Ready.

Only this module imports the `kubernetes` client.
"""

from __future__ import annotations

import base64
import copy
import datetime
import http.client
import json
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .api import PROBE_HEADER
from .podspec import EMQX_CONTAINER_NAME, ContainerConfigError
from .world import INSTANCE_LABEL, World

log = logging.getLogger("emqxsim")

CONTAINER_NOT_READY = "containers with unready status: [emqx]"


def _raw(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.data)
    return data


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
        from kubernetes import watch

        watcher = watch.Watch()
        for event in watcher.stream(
            self.core.list_pod_for_all_namespaces,
            label_selector=INSTANCE_LABEL,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=60,
            _request_timeout=90,
        ):
            if self._stop.is_set():
                watcher.stop()
                return
            kind = event["type"]
            raw = event.get("raw_object") or {}
            if kind == "ERROR":
                log.info("pod watch ended: %s", raw.get("message", raw))
                return
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                World.stop_servers(self.world.forget_pod(raw["metadata"]["uid"]))
            else:
                self._apply(raw)


def probe_status(ip: str, port: int, timeout: float = 1.0) -> bool:
    """An HTTP readiness probe on /status (200 = ready), like the pod's httpGet probe."""
    connection = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        connection.request("GET", "/status", headers={PROBE_HEADER: "1"})
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class ReadinessKeeper:
    """Keeps each EMQX pod's Ready/ContainersReady conditions true to its node's GET /status."""

    def __init__(self, core: Any, world: World, period: float = 0.5):
        self.core = core
        self.world = world
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emqxsim-readiness", daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="emqxsim-probe")
        self._last_patch: dict[str, tuple[bool, float]] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except Exception:
                log.exception("readiness round failed")
            self._stop.wait(self.period)

    def _round(self) -> None:
        targets = []
        with self.world.lock:
            for record in self.world.pods.values():
                node = record.node
                port = node.spec.dashboard_port if node is not None and node.alive else 0
                statuses = copy.deepcopy((record.pod.get("status") or {}).get("containerStatuses") or [])
                targets.append(
                    (record.uid, record.namespace, record.name, record.ip, port, record.observed_ready, statuses)
                )
        futures = {
            uid: self._pool.submit(probe_status, ip, port) if port else None for uid, _, _, ip, port, _, _ in targets
        }
        for uid, namespace, name, _, _, observed, statuses in targets:
            future = futures[uid]
            containers_ready = bool(future.result()) if future is not None else False
            # Like the kubelet: a pod is Ready when its containers are and every readiness gate is True.
            ready = containers_ready and self._gates_open(uid)
            if ready == observed:
                continue
            last = self._last_patch.get(uid)
            # The watch reports our own patch a moment later; don't patch the same value again meanwhile.
            if last is not None and last[0] == ready and time.monotonic() - last[1] < 3.0:
                continue
            self._patch(namespace, name, ready, statuses)
            self._last_patch[uid] = (ready, time.monotonic())
        live = {target[0] for target in targets}
        for uid in list(self._last_patch):
            if uid not in live:
                del self._last_patch[uid]

    def _gates_open(self, uid: str) -> bool:
        with self.world.lock:
            record = next((r for r in self.world.pods.values() if r.uid == uid), None)
            pod = copy.deepcopy(record.pod) if record is not None else {}
        gates = [g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []]
        conditions = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
        return all(conditions.get(gate) == "True" for gate in gates)

    def _patch(self, namespace: str, name: str, ready: bool, container_statuses: list[dict[str, Any]]) -> None:
        from kubernetes.client.exceptions import ApiException

        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = "True" if ready else "False"
        reason = None if ready else "ContainersNotReady"
        message = None if ready else CONTAINER_NOT_READY
        conditions = [
            {"type": kind, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}
            for kind in ("Ready", "ContainersReady")
        ]
        body: dict[str, Any] = {"status": {"conditions": conditions}}
        if container_statuses:
            # containerStatuses has no merge key: the list is replaced whole, so send all of it.
            for container in container_statuses:
                if container.get("name") == EMQX_CONTAINER_NAME:
                    container["ready"] = ready
            body["status"]["containerStatuses"] = container_statuses
        try:
            self.core.patch_namespaced_pod_status(
                name,
                namespace,
                body,
                _content_type="application/strategic-merge-patch+json",
                _request_timeout=10,
            )
            log.info("pod %s/%s Ready=%s", namespace, name, status)
        except ApiException as error:
            if error.status != 404:
                log.warning("failed to patch Ready of %s/%s: %s %s", namespace, name, error.status, error.reason)
