"""Long operations through the real kubectl: `--wait` fails fast with Kubernetes' words and the one
command that recovers, that command works, the live view keeps time on a terminal, and a
multi-step upgrade goes hop by hop. The operator (working tree) and the simulated kubelet behind it
report what the pods do; nothing here is mocked."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.emqx_helpers import condition, emqx_nodes, get_emqx, patch_emqx, wait_events
from tests.plugin_helpers import Outcome, PluginRunner

pytestmark = pytest.mark.integration

# "Within a few seconds": the simulated kubelet reports the pull error at once and the operator
# stalls on it in its next pass; the deadline is generous for a busy 2-core machine.
FAIL_FAST_SECONDS = 30


@pytest.fixture(scope="module")
def plugin(bin_dir: Path, kubeconfig: str) -> PluginRunner:
    return PluginRunner(bin_dir / "kubectl", kubeconfig)


def _recovery(outcome: Outcome) -> str:
    """The command after `to recover:` in the error."""
    match = re.search(r"to recover: (kubectl emqx .+)$", outcome.stderr, re.MULTILINE)
    assert match, outcome.describe()
    return match.group(1)


def _run_line(plugin: PluginRunner, command: str, timeout: float = 300) -> Outcome:
    """A `kubectl emqx ...` line as the plugin printed it, run as the user would paste it."""
    words = command.split()
    assert words[:2] == ["kubectl", "emqx"], command
    return plugin(*words[2:], timeout=timeout)


def _fast_rollouts(api_client: Any, namespace: str, name: str, **strategy: Any) -> None:
    """No pauses between replacements (the defaults wait 10 s for clients to reconnect)."""
    patch_emqx(api_client, namespace, name, {"spec": {"updateStrategy": {
        "initialDelaySeconds": 0, "evacuationStrategy": {"waitTakeover": 0}, **strategy}}})


def test_bad_tag_upgrade_fails_fast_naming_the_pull_error_and_the_rollback_one_liner_recovers(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any
) -> None:
    plugin.ok("create", "demo", "-n", namespace, "--cores", "2", "--replicants", "1", "--wait")
    _fast_rollouts(api_client, namespace, "demo")

    started = time.monotonic()
    failed = plugin("upgrade", "demo", "-n", namespace, "--image", "emqx/emqx:5.7.3", "--yes", "--wait")
    took = time.monotonic() - started
    assert failed.code == 3, failed.describe()
    assert took < FAIL_FAST_SECONDS, failed.describe()
    error = failed.stderr.split("\nerror: ", 1)[1]
    assert error.startswith(f"{namespace}/demo stalled: NodeNotRunning: demo-core-1: "), failed.describe()
    assert re.search(r"(ErrImagePull|ImagePullBackOff): .*emqx/emqx:5\.7\.3", error), failed.describe()
    assert "not found" in error or "manifest unknown" in error, failed.describe()
    recover = _recovery(failed)
    assert recover == f"kubectl emqx upgrade demo -n {namespace} --rollback --yes --wait"
    assert "Traceback" not in failed.stderr

    # The one command the error names brings the cluster back, and exits 0 once it is Ready there.
    recovered = _run_line(plugin, recover)
    assert recovered.code == 0, recovered.describe()
    assert f"{namespace}/demo is Ready: cores 2/2, replicants 1/1, image emqx/emqx:5.7.2" in recovered.stderr
    body = get_emqx(api_client, namespace, "demo")
    assert body["spec"]["image"] == "emqx/emqx:5.7.2"
    assert "allowDowngrade" not in body["spec"]["updateStrategy"]  # nothing ever ran 5.7.3
    assert (condition(body, "Ready") or {}).get("observedGeneration") == body["metadata"]["generation"]
    assert sorted(n["version"] for n in emqx_nodes(api_client, namespace, "demo")) == ["5.7.2"] * 3


def test_create_wait_with_a_bad_tag_fails_fast_and_its_fix_works(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any
) -> None:
    started = time.monotonic()
    failed = plugin("create", "typo", "-n", namespace, "--image", "emqx/emqx:5.7.3", "--cores", "1",
                    "--replicants", "0", "--wait")
    took = time.monotonic() - started
    assert failed.code == 3, failed.describe()
    assert took < FAIL_FAST_SECONDS, failed.describe()
    assert re.search(rf"error: {namespace}/typo failed: (ErrImagePull|ImagePullBackOff): typo-core-0: ",
                     failed.stderr), failed.describe()
    recover = _recovery(failed)
    assert recover == f"kubectl emqx upgrade typo -n {namespace} --image emqx/emqx:5.7.2 --yes --wait"
    fixed = _run_line(plugin, recover)
    assert fixed.code == 0, fixed.describe()
    assert f"{namespace}/typo is Ready: cores 1/1, replicants 0/0, image emqx/emqx:5.7.2" in fixed.stderr


def _on_a_terminal(plugin: PluginRunner, *args: str, timeout: float = 300) -> tuple[int, str]:
    """`kubectl emqx ARGS` with stderr on a pseudo-terminal (the live view); -> (exit code, what it drew)."""
    controller, terminal = pty.openpty()
    env = {**plugin.env, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    process = subprocess.Popen([str(plugin.kubectl), "emqx", *args], stdout=subprocess.PIPE, stderr=terminal,
                               stdin=subprocess.DEVNULL, env=env)
    os.close(terminal)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO once the process closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(10)
    os.close(controller)
    return code, b"".join(chunks).decode(errors="replace")


def test_a_slow_node_ticks_on_the_terminal_shows_the_operators_deadline_and_stalls_on_it(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any, emqx_sim: Any
) -> None:
    plugin.ok("create", "slow", "-n", namespace, "--cores", "2", "--replicants", "0", "--wait")
    _fast_rollouts(api_client, namespace, "slow", nodeReadyTimeoutSeconds=8)
    emqx_sim.never_boot("emqx/emqx:5.8.0")  # the container runs, EMQX never comes up
    code, drawn = _on_a_terminal(plugin, "upgrade", "slow", "-n", namespace, "--image", "emqx/emqx:5.8.0",
                                 "--yes", "--wait")
    assert code == 3, drawn
    frames = [frame for frame in re.split(r"\x1b\[\d+F\x1b\[J", drawn) if "Waiting for" in frame]
    countdown = [int(m.group(1)) for frame in frames
                 for m in [re.search(r"gives up on slow-core-1 in (\d+)s unless it is replaced", frame)] if m]
    # Redrawn between watch events: the countdown moves second by second (the machine is busy:
    # allow a skipped second, but not a frozen view).
    assert len(set(countdown)) >= 3, drawn
    assert all(a >= b for a, b in zip(countdown, countdown[1:], strict=False)), countdown
    assert "slow-core-1" in frames[-1]
    assert re.search(r"stalled: NodeNotRunning: slow-core-1 is not running 5\.8\.0 after 8s", drawn), drawn
    assert f"to recover: kubectl emqx upgrade slow -n {namespace} --rollback --yes --wait" in drawn


def test_a_multi_step_upgrade_goes_hop_by_hop(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any
) -> None:
    plugin.ok("create", "hops", "-n", namespace, "--image", "emqx/emqx:5.6.1", "--cores", "2",
              "--replicants", "0", "--wait")
    _fast_rollouts(api_client, namespace, "hops")
    planned = plugin.ok("upgrade", "hops", "-n", namespace, "--image", "emqx/emqx:5.8.9", "--dry-run")
    assert "hop 1/2: set spec.image: emqx/emqx:5.6.1 -> emqx/emqx:5.7.2" in planned.stderr
    assert "hop 2/2: set spec.image: emqx/emqx:5.7.2 -> emqx/emqx:5.8.9" in planned.stderr
    assert get_emqx(api_client, namespace, "hops")["spec"]["image"] == "emqx/emqx:5.6.1"

    done = plugin("upgrade", "hops", "-n", namespace, "--image", "emqx/emqx:5.8.9", "--yes", "--wait", timeout=600)
    assert done.code == 0, done.describe()
    assert "hop 1/2 done: every node runs emqx/emqx:5.7.2, as EMQX reports" in done.stderr
    assert f"{namespace}/hops is Ready: cores 2/2, replicants 0/0, image emqx/emqx:5.8.9" in done.stderr
    # Each hop completed on its own (the operator's record of every finished rollout).
    completed = [e.message for e in wait_events(api_client, namespace, "hops", "UpgradeCompleted", count=2)]
    assert any("every node runs emqx/emqx:5.7.2 (was emqx/emqx:5.6.1)" in m for m in completed), completed
    assert any("every node runs emqx/emqx:5.8.9 (was emqx/emqx:5.7.2)" in m for m in completed), completed
    assert sorted(n["version"] for n in emqx_nodes(api_client, namespace, "hops")) == ["5.8.9", "5.8.9"]
