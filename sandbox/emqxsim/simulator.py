"""Wires the World to Kubernetes (pod watch, the simulated kubelet) and to the control API, and runs them."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from . import kubelet
from .api import NodeHttpServer
from .control import ControlServer
from .kube import Kubelet, KubeObjectSource, PodWatcher
from .world import World

log = logging.getLogger("emqxsim")
# The nodes' data directories (what their volumes keep) are written to the state file this often and
# on stop, so a restarted simulator boots every node on the data it had (a reboot, not a new disk).
SAVE_SECONDS = 5.0


class Simulator:
    def __init__(
        self,
        kubeconfig: str,
        control_host: str = "127.0.0.1",
        control_port: int = 0,
        retry_interval: float = 1.0,
        timing: kubelet.Timing = kubelet.TIMINGS["honest"],
        log_root: Path | None = None,
        join_delay: tuple[float, float] = (0.1, 3.0),
        join_restart: float = 0.5,
        state_file: Path | None = None,
        boot_seconds: float = 0.0,
    ):
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=kubeconfig)
        self.core: Any = client.CoreV1Api(api_client)
        self.world = World(
            retry_interval=retry_interval,
            server_factory=NodeHttpServer,
            join_delay=join_delay,
            join_restart=join_restart,
            boot_seconds=boot_seconds,
        )
        self.source = KubeObjectSource(self.core)
        self.watcher = PodWatcher(self.core, self.world)
        self.kubelet = Kubelet(api_client, self.core, self.world, self.source, timing, log_root)
        self.control = ControlServer(self.world, control_host, control_port, self.kubelet)
        self.state_file = state_file
        self._stop = threading.Event()
        self._booter = threading.Thread(target=self._boot_loop, name="emqxsim-boot", daemon=True)

    @property
    def control_url(self) -> str:
        return self.control.url

    def start(self) -> None:
        if self.state_file is not None:
            found = self.world.load_data(self.state_file)
            if found:
                log.info("emqxsim: %d data directories from %s (a restart: every node reboots)", found,
                         self.state_file)
        self.control.start()
        self.watcher.start()
        self._booter.start()
        self.kubelet.start()
        log.info("emqxsim control API on %s", self.control_url)

    def _boot_loop(self) -> None:
        saved = time.monotonic()
        while not self._stop.is_set():
            try:
                self.world.boot_due(self.kubelet.container_source)
                if self.state_file is not None and time.monotonic() - saved > SAVE_SECONDS:
                    self.world.save_data(self.state_file)
                    saved = time.monotonic()
            except Exception:
                log.exception("boot loop failed")
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self.watcher.stop()
        self.kubelet.stop()
        self.world.stop_all()
        if self.state_file is not None:
            self.world.save_data(self.state_file)
        self.control.stop()

    def wait(self) -> None:
        self._stop.wait()

    def request_stop(self) -> None:
        self._stop.set()
