"""Run the operator from the working tree against the sandbox (for `up --operator` and tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from emqx_operator.process_env import PROCESS_ENV

from sandbox.cluster import REPO_ROOT, Component, SandboxError, SandboxState, _pid_alive, _tail, free_port

CRD_PATH = REPO_ROOT / "crds" / "emqx.yaml"


def install_crd(state: SandboxState) -> None:
    kubectl = str(Path(state.bin_dir) / "kubectl")
    base = [kubectl, f"--kubeconfig={state.kubeconfig}"]
    applied = subprocess.run([*base, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH)],
                             capture_output=True, text=True, timeout=120)
    if applied.returncode != 0:
        raise SandboxError(f"applying the CRD failed: {applied.stderr.strip()}")
    # Polled with a deadline: on a busy machine `kubectl wait` can give up early (e.g. while the
    # API server's discovery catches up), and a test session should not fail on that.
    deadline = time.monotonic() + 120
    last = ""
    while time.monotonic() < deadline:
        got = subprocess.run([*base, "get", "crd/emqxes.apps.emqx.io", "-o",
                              "jsonpath={.status.conditions[?(@.type=='Established')].status}"],
                             capture_output=True, text=True, timeout=60)
        if got.returncode == 0 and got.stdout.strip() == "True":
            return
        last = (got.stderr or got.stdout).strip()
        time.sleep(0.5)
    raise SandboxError(f"the CRD is not Established after 120s: {last}")


def spawn(state: SandboxState, name: str = "operator", extra_args: list[str] | None = None,
          env: dict[str, str] | None = None, kubeconfig: str | None = None,
          console_script: bool = False, executable: str | None = None,
          ) -> tuple[subprocess.Popen[bytes], Component, int]:
    """Start an operator process. `kubeconfig` replaces the sandbox admin's (e.g. a ServiceAccount
    token's); `console_script` runs the installed `emqx-operator` entry point, as the image does;
    `executable` runs that entry point from elsewhere (a venv built as the image is), seeing nothing
    of the working tree. Leader election is off unless extra_args turn it on: each process here is
    meant to reconcile."""
    port, metrics_port = free_port(), free_port()
    log_path = Path(state.directory) / "logs" / f"{name}.log"
    child_env = dict(os.environ)
    child_env.update(PROCESS_ENV)  # as the image runs it
    child_env.update(env or {})
    if executable:
        for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            child_env.pop(key, None)
        command = [executable]
    else:
        child_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), str(REPO_ROOT / "operator"), child_env.get("PYTHONPATH")])
        )
        command = [str(Path(sys.executable).parent / "emqx-operator")] if console_script else \
            [sys.executable, "-m", "emqx_operator.main"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*command, "--kubeconfig", kubeconfig or state.kubeconfig,
             "--liveness", f"http://127.0.0.1:{port}/healthz",
             "--metrics-addr", f"127.0.0.1:{metrics_port}", "--leader-elect=false", *(extra_args or [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=child_env, cwd=state.directory if executable else None,
        )
    return proc, Component(name, proc.pid, str(log_path), metrics_port), port


def wait_live(comp: Component, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(comp.pid):
            raise SandboxError(f"{comp.name} exited during start-up; see {comp.log}{_tail(Path(comp.log))}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise SandboxError(f"{comp.name} did not become live within {timeout:.0f}s; see {comp.log}")


def running(state: SandboxState) -> Component | None:
    """The operator `start` gave this sandbox, if it is alive."""
    return next((c for c in state.components if c.name == "operator" and _pid_alive(c.pid)), None)


def start(state: SandboxState) -> Component:
    """Install (or update) the CRD and start the operator, unless it already runs: a second one
    would fight it (`up --operator` on a running sandbox)."""
    install_crd(state)
    existing = running(state)
    if existing is not None:
        return existing
    _, comp, port = spawn(state)
    state.components.append(comp)
    state.save()
    wait_live(comp, port)
    return comp
