"""Session fixtures: one real local control plane (sandbox) per test session, a namespace per test.

Set EMQX_SANDBOX_DIR to the directory of a running `python -m sandbox up` to reuse it; otherwise
the first integration test starts a private sandbox and the session stops it at the end.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import cluster

# The simulated kubelet's probe and back-off timing for the test session: "fast" (one tenth of a
# kubelet's delays) keeps the suite inside CI's budget; tests that measure timing switch the simulator
# to "honest" with the `honest_kubelet` fixture. Override with EMQX_SIM_PROBE_TIMING=honest.
SIM_PROBE_TIMING = os.environ.get("EMQX_SIM_PROBE_TIMING") or "fast"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[cluster.SandboxState]:
    with cluster.reused_or_private("emqx-sandbox-", probe_timing=SIM_PROBE_TIMING) as state:
        yield state


@pytest.fixture(scope="session")
def kubeconfig(sandbox: cluster.SandboxState) -> str:
    return sandbox.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


@pytest.fixture(scope="session")
def bin_dir(sandbox: cluster.SandboxState) -> Path:
    return Path(sandbox.bin_dir)


@pytest.fixture(scope="session")
def kubectl(sandbox: cluster.SandboxState) -> Any:
    """Run the real kubectl against the sandbox: kubectl("get", "pods", "-n", ns) -> CompletedProcess."""

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(Path(sandbox.bin_dir) / "kubectl"), f"--kubeconfig={sandbox.kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    return run


def _namespace(api_client: Any, prefix: str) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"sandbox.local/test": "true"}}})
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background", _request_timeout=10)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


@pytest.fixture
def namespace(api_client: Any) -> Iterator[str]:
    yield from _namespace(api_client, "t-")


@pytest.fixture
def solo_namespace(api_client: Any) -> Iterator[str]:
    """A namespace the session operator ignores: for tests that run (and kill) operators of their own."""
    yield from _namespace(api_client, SOLO_PREFIX)


@pytest.fixture(scope="session")
def emqx_sim(sandbox: cluster.SandboxState) -> Any:
    from sandbox.emqxsim.client import SimClient

    if not sandbox.sim_control_url:
        pytest.fail("the sandbox was started without the EMQX simulator")
    return SimClient(sandbox.sim_control_url)


@pytest.fixture
def honest_kubelet(emqx_sim: Any) -> Iterator[Any]:
    """Kubelet timing as a real kubelet's for pods created in this test (restored afterwards)."""
    emqx_sim.set_timing("honest")
    try:
        yield emqx_sim
    finally:
        emqx_sim.set_timing(SIM_PROBE_TIMING)


# Namespaces whose tests run an operator of their own (restarts, RBAC, leader election): the
# session operator leaves them alone.
SOLO_PREFIX = "solo-"


class OperatorHandle:
    """A running operator process (from the working tree) and its metrics endpoint."""

    def __init__(self, log: str, metrics_url: str, pid: int = 0) -> None:
        self.log = log
        self.metrics_url = metrics_url
        self.pid = pid

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return str(resp.read().decode())

    def reconcile_count(self, namespace: str, name: str) -> int:
        from tests.helpers import metric_key, parse_metrics

        values = parse_metrics(self.metrics())
        return int(sum(values.get(metric_key("emqx_operator_reconcile_total", namespace=namespace, name=name,
                                             result=result), 0) for result in ("ok", "error")))

    def wait_reconciles(self, namespace: str, name: str, count: int = 2, timeout: float = 60) -> None:
        """Wait until the operator has completed `count` more reconciles of the resource."""
        from tests.helpers import wait_for

        start = self.reconcile_count(namespace, name)
        wait_for(lambda: self.reconcile_count(namespace, name) >= start + count, timeout,
                 f"{count} more reconciles of {namespace}/{name}")


@pytest.fixture(scope="session")
def operator(sandbox: cluster.SandboxState) -> Iterator[OperatorHandle]:
    import signal

    from sandbox import operator_process

    operator_process.install_crd(sandbox)
    proc, comp, live_port = operator_process.spawn(
        sandbox, name=f"operator-test-{os.getpid()}", extra_args=["--resync-seconds", "3",
                                                   "--exclude-namespace", f"{SOLO_PREFIX}*"]
    )
    try:
        operator_process.wait_live(comp, live_port)
        yield OperatorHandle(comp.log, f"http://127.0.0.1:{comp.port}/metrics", proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


class SoloOperator:
    """An operator process of a test's own, watching one namespace; kill() and start() at will."""

    def __init__(self, sandbox: cluster.SandboxState, namespace: str, extra_args: list[str]) -> None:
        self.sandbox, self.namespace, self.extra_args = sandbox, namespace, extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.handle: OperatorHandle | None = None
        self.live_port = 0  # its liveness endpoint: http://127.0.0.1:<live_port>/healthz
        self.starts = 0

    def start(self) -> OperatorHandle:
        from sandbox import operator_process

        self.starts += 1
        proc, comp, live_port = operator_process.spawn(
            self.sandbox, name=f"operator-{self.namespace}-{self.starts}",
            extra_args=["-n", self.namespace, "--resync-seconds", "2", *self.extra_args],
        )
        self.proc = proc
        self.live_port = live_port
        operator_process.wait_live(comp, live_port)
        self.handle = OperatorHandle(comp.log, f"http://127.0.0.1:{comp.port}/metrics", proc.pid)
        return self.handle

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def solo_operator(sandbox: cluster.SandboxState, solo_namespace: str) -> Iterator[Any]:
    """Factory: solo_operator(extra_args=[]) -> a started SoloOperator for the solo namespace."""
    from sandbox import operator_process

    operator_process.install_crd(sandbox)
    made: list[SoloOperator] = []

    def make(extra_args: list[str] | None = None) -> SoloOperator:
        solo = SoloOperator(sandbox, solo_namespace, list(extra_args or []))
        solo.start()
        made.append(solo)
        return solo

    yield make
    for solo in made:
        solo.stop()
