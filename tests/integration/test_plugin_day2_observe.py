"""Day-2 verbs as users run them (the real kubectl with the plugin on PATH, the operator and the EMQX
simulator behind the real API server): `dashboard` through a port-forward, `logs` merged and
followed across a scale, `report` of a stalled upgrade without a single secret value, and what a
namespace user needs for them."""

from __future__ import annotations

import base64
import json
import queue
import signal
import subprocess
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_emqx.domain import install, redact
from tests.emqx_helpers import cr, create_emqx, get_emqx, patch_emqx, pods, wait_condition, wait_ready
from tests.helpers import wait_for
from tests.install_helpers import service_account_kubeconfig
from tests.plugin_helpers import PluginRunner, as_from_a_terminal, assert_one_line_error

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plugin(bin_dir: Path, kubeconfig: str) -> PluginRunner:
    return PluginRunner(bin_dir / "kubectl", kubeconfig)


class Running:
    """A long-running `kubectl emqx ...` (dashboard, logs -f): its output lines as they come."""

    def __init__(self, plugin: PluginRunner, *args: str, env: dict[str, str] | None = None) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(plugin.kubectl), "emqx", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**plugin.env, **(env or {})},
                                     preexec_fn=as_from_a_terminal)
        self.stdout: queue.Queue[str] = queue.Queue()
        self.lines: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True).start()
        threading.Thread(target=self._collect, daemon=True).start()

    @staticmethod
    def _pump(stream: Any, target: queue.Queue[str]) -> None:
        for line in stream:
            target.put(line.rstrip("\n"))

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def wait_line(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if predicate(line):
                return line
        while time.monotonic() < deadline:
            try:
                line = self.stdout.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None and self.stdout.empty():
                    break
                continue
            self.lines.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no line with {what} within {timeout:.0f}s; stdout: {self.lines!r}; "
                             f"stderr: {self.stderr!r}; exit: {self.proc.poll()}")

    def interrupt(self, timeout: float = 20) -> int:
        """Ctrl-C, as a terminal sends it; the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        time.sleep(0.2)  # let the readers take the last lines
        while not self.stdout.empty():
            self.lines.append(self.stdout.get())
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=15) as response:
        return int(response.status), bytes(response.read())


def _secret(api_client: Any, namespace: str, name: str, key: str) -> str:
    from kubernetes import client

    secret = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return base64.b64decode(secret.data[key]).decode()


# --- dashboard ---------------------------------------------------------------------------------


def test_dashboard_forwards_to_a_ready_core_and_moves_when_it_goes(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any
) -> None:
    create_emqx(api_client, namespace, cr("dash", cores=2, replicants=1))
    wait_ready(api_client, namespace, "dash")
    dashboard = Running(plugin, "dashboard", "dash", "-n", namespace, "--port", "0", "--no-browser")
    try:
        line = dashboard.wait_line(lambda text: text.startswith("Dashboard of"), 60, "the URL")
        url = line.split(": ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        status, body = _http(f"{url}/status")
        first_answer = time.monotonic() - dashboard.started
        assert status == 200 and b"is running" in body
        assert b"dash-core-0.dash-headless" in body  # the lowest ready ordinal
        # How to log in: the user and the command, never the password itself.
        password = _secret(api_client, namespace, "dash-bootstrap-api-key", "dashboard_password")
        dashboard.wait_line(lambda text: text == "Press Ctrl-C to stop.", 10, "the end of the instructions")
        assert "Log in as admin." in dashboard.lines
        assert (f"  kubectl get secret dash-bootstrap-api-key -n {namespace} -o "
                "jsonpath='{.data.dashboard_password}' | base64 -d") in dashboard.lines
        assert all(password not in text for text in dashboard.lines + dashboard.stderr)
        # The REST API answers through the forward: log in as the dashboard user, list the nodes.
        _, token_body = _http(f"{url}/api/v5/login", data=json.dumps({"username": "admin", "password": password})
                              .encode(), headers={"Content-Type": "application/json"})
        token = json.loads(token_body)["token"]
        _, nodes = _http(f"{url}/api/v5/nodes", headers={"Authorization": f"Bearer {token}"})
        assert len(json.loads(nodes)) == 3

        # The core goes away: new connections go to the other ready core.
        from kubernetes import client

        client.CoreV1Api(api_client).delete_namespaced_pod("dash-core-0", namespace, grace_period_seconds=0)

        def answered_by_the_other_core() -> bool:
            try:
                return b"dash-core-1.dash-headless" in _http(f"{url}/status")[1]
            except OSError:
                return False

        wait_for(answered_by_the_other_core, 60, "the forward to move to dash-core-1")
        code = dashboard.interrupt()
        assert code == 0, dashboard.stderr
        assert not any("Traceback" in text for text in dashboard.stderr), dashboard.stderr
        assert dashboard.stderr[-1] == "stopped", dashboard.stderr
    finally:
        dashboard.close()
    print(f"\ndashboard: first answered request {first_answer:.2f}s after `kubectl emqx dashboard` started")


def test_dashboard_show_password(plugin: PluginRunner, api_client: Any, namespace: str, operator: Any) -> None:
    create_emqx(api_client, namespace, cr("pw", cores=1, replicants=0))
    wait_ready(api_client, namespace, "pw")
    dashboard = Running(plugin, "dashboard", "pw", "-n", namespace, "--port", "0", "--no-browser",
                        "--show-password")
    try:
        password = _secret(api_client, namespace, "pw-bootstrap-api-key", "dashboard_password")
        dashboard.wait_line(lambda text: text == f"  {password}", 60, "the password")
        assert dashboard.interrupt() == 0
    finally:
        dashboard.close()


# --- logs --------------------------------------------------------------------------------------


def test_logs_merged_in_time_order_as_text_and_json(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any
) -> None:
    create_emqx(api_client, namespace, cr("lg", cores=2, replicants=2))
    wait_ready(api_client, namespace, "lg")
    names = sorted(pod.metadata.name for pod in pods(api_client, namespace, "lg"))

    def every_node_logged() -> list[dict[str, Any]] | None:
        out = plugin.ok("logs", "lg", "-n", namespace, "-o", "json").stdout
        records = [json.loads(line) for line in out.splitlines()]
        return records if {record["pod"] for record in records} == set(names) else None

    records = wait_for(every_node_logged, 60, "a log line from every node")
    times = [record["time"] for record in records]
    assert times == sorted(times)  # merged by the kubelet's timestamps
    by_pod = {record["pod"]: record for record in records}
    assert by_pod["lg-core-1"]["node"] == f"emqx@lg-core-1.lg-headless.{namespace}.svc.cluster.local"
    assert by_pod["lg-core-1"]["role"] == "core"
    replicant = next(pod for pod in pods(api_client, namespace, "lg", "replicant"))
    assert by_pod[replicant.metadata.name]["node"] == f"emqx@{replicant.status.pod_ip}"

    text = plugin.ok("logs", "lg", "-n", namespace, "--role", "core").stdout.splitlines()
    assert text and {line.split()[0] for line in text} == {"lg-core-0", "lg-core-1"}
    width = max(len(name) for name in ("lg-core-0", "lg-core-1"))
    assert all(line[width] == " " for line in text)
    tail = plugin.ok("logs", "lg", "-n", namespace, "--node", "lg-core-0", "--tail", "1").stdout.splitlines()
    assert len(tail) == 1 and tail[0].startswith("lg-core-0 ")
    missing = plugin("logs", "lg", "-n", namespace, "--node", "lg-core-7")
    assert_one_line_error(missing, "--node lg-core-7: no such node", "lg-core-0")
    # kubectl's completion offers the cluster's pods for --node
    assert sorted(plugin.complete("emqx", "logs", "-n", namespace, "lg", "--node", "")) == names
    assert plugin.complete("emqx", "logs", "-n", namespace, "lg", "--role", "") == ["core", "replicant"]


def test_logs_follow_shows_a_node_that_boots_during_a_scale(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any
) -> None:
    create_emqx(api_client, namespace, cr("fol", cores=1, replicants=1))
    wait_ready(api_client, namespace, "fol")
    before = {pod.metadata.name for pod in pods(api_client, namespace, "fol")}
    follow = Running(plugin, "logs", "fol", "-n", namespace, "-f")
    try:
        follow.wait_line(lambda text: text.startswith("fol-core-0 "), 60, "a line of the running core")
        patch_emqx(api_client, namespace, "fol", {"spec": {"replicantTemplate": {"spec": {"replicas": 2}}}})
        new = wait_for(lambda: {pod.metadata.name for pod in pods(api_client, namespace, "fol")} - before, 60,
                       "the new replicant pod")
        (new_pod,) = new
        line = follow.wait_line(lambda text: text.startswith(new_pod + " "), 90, f"a line of {new_pod}")
        assert line.split(" ", 1)[1].strip()
        assert any(text == f"+ {new_pod} started" for text in follow.stderr), follow.stderr
        assert follow.interrupt() == 0, follow.stderr
        assert not any("Traceback" in text for text in follow.stderr), follow.stderr
    finally:
        follow.close()


# --- report ------------------------------------------------------------------------------------

LEAKY_ENV = [
    {"name": "MY_API_TOKEN", "value": "literal-token-5b1e2f9a"},
    {"name": "BACKEND_PASSWORD", "value": "literal-password-77c3d1"},
]


def _every_secret_value(api_client: Any, namespace: str) -> set[str]:
    """Every Secret value in the namespace (decoded, also line by line and the halves of key:secret
    lines) and every secret-looking literal env value of the pods."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    values: set[str] = set()
    for secret in core.list_namespaced_secret(namespace).items:
        for encoded in (secret.data or {}).values():
            value = base64.b64decode(encoded).decode()
            values.add(value)
            for line in value.splitlines():
                values.add(line)
                if ":" in line:
                    values.add(line.split(":", 1)[1])
    for pod in json.loads(core.list_namespaced_pod(namespace, _preload_content=False).data)["items"]:
        values.update(redact.literal_secret_env_values([pod]))
    return {value for value in values if len(value.strip()) >= redact.MIN_SCRUB_LENGTH}


def test_report_of_a_stalled_upgrade_has_the_reason_and_no_secret_value(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any, emqx_sim: Any, tmp_path: Path
) -> None:
    body = cr("rep", image="emqx/emqx:5.0.6", cores=3, replicants=1)
    body["spec"]["updateStrategy"] = {"evacuationStrategy": {"waitTakeover": 0}, "nodeReadyTimeoutSeconds": 3}
    body["spec"]["coreTemplate"]["spec"]["env"] = LEAKY_ENV
    create_emqx(api_client, namespace, body)
    wait_ready(api_client, namespace, "rep")
    emqx_sim.never_boot("emqx/emqx:5.0.8")
    patch_emqx(api_client, namespace, "rep", {"spec": {"image": "emqx/emqx:5.0.8"}})
    stalled = wait_condition(api_client, namespace, "rep", "UpgradeStalled", "True", timeout=90)

    archive_path = tmp_path / "rep.zip"
    outcome = plugin.ok("report", "rep", "-n", namespace, "--logs", "-o", str(archive_path))
    assert outcome.stdout.strip() == str(archive_path)
    assert "wrote " in outcome.stderr
    with zipfile.ZipFile(archive_path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    names = set(files)
    assert {"README.txt", "summary.txt", "emqx.yaml", "events.txt", "config/emqx.conf",
            "objects/StatefulSet/rep-core.yaml", "objects/Deployment/rep-replicant.yaml",
            "objects/Secret/rep-node-cookie.yaml", "objects/Secret/rep-bootstrap-api-key.yaml",
            "objects/ConfigMap/rep-configs.yaml", "pods/rep-core-0.yaml", "logs/rep-core-0.log"} <= names, names
    # The stall reason, where a reader looks first.
    assert stalled["message"] in files["summary.txt"].decode()
    assert "Phase: Stalled" in files["README.txt"].decode()
    conditions = {c["type"]: c for c in yaml.safe_load(files["emqx.yaml"])["status"]["conditions"]}
    assert conditions["UpgradeStalled"]["message"] == stalled["message"]
    assert "node_cookie" in files["objects/Secret/rep-node-cookie.yaml"].decode()
    # Not one secret value, in any file, in clear or base64.
    secrets = _every_secret_value(api_client, namespace)
    assert {"literal-token-5b1e2f9a", "literal-password-77c3d1"} <= secrets
    assert len(secrets) >= 5
    for name, content in files.items():
        text = content.decode("utf-8", "replace")
        for value in secrets:
            assert value not in text, f"a secret value is in {name}"
            encoded = base64.b64encode(value.encode()).decode()
            assert encoded not in text and encoded.rstrip("=") not in text, f"a base64 secret value is in {name}"
    assert get_emqx(api_client, namespace, "rep")["status"]["phase"] == "Stalled"


# --- a namespace user ----------------------------------------------------------------------------


def test_a_namespace_user_reads_and_forwards_with_the_documented_rules(
    plugin: PluginRunner, api_client: Any, kubeconfig: str, namespace: str, operator: Any, tmp_path: Path
) -> None:
    from kubernetes import client

    create_emqx(api_client, namespace, cr("usr", cores=1, replicants=1))
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "alice"}})
    rbac.create_namespaced_role(namespace, install.user_role(namespace, "reader", dashboard=False))
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "alice-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": namespace}]})
    alice = service_account_kubeconfig(api_client, kubeconfig, namespace, "alice", tmp_path)
    wait_ready(api_client, namespace, "usr")

    as_alice = ["--kubeconfig", alice]
    wait_for(lambda: plugin("status", "usr", *as_alice).code == 0, 30, "alice's Role to take effect")
    assert plugin("logs", "usr", *as_alice).code == 0
    report = plugin("report", "usr", *as_alice, "-o", str(tmp_path / "alice.zip"))
    assert report.code == 0, report.describe()
    with zipfile.ZipFile(tmp_path / "alice.zip") as archive:
        errors_txt = archive.read("errors.txt").decode()
    assert "secrets" in errors_txt and "forbidden" in errors_txt  # noted, not fatal
    forbidden = plugin("dashboard", "usr", *as_alice, "--port", "0", "--no-browser")
    assert_one_line_error(forbidden, "forbidden: you may not get pods/portforward in namespace " + namespace,
                          f'as User "system:serviceaccount:{namespace}:alice"',
                          "port-forwarding needs get and create on it")

    rbac.patch_namespaced_role("reader", namespace, install.user_role(namespace, "reader", dashboard=True))
    for verb in ("get", "create"):
        wait_for(lambda verb=verb: plugin.run("auth", "can-i", verb, "pods", "--subresource=portforward",
                                              *as_alice).stdout.strip() == "yes", 30, "alice's new Role to apply")
    dashboard = Running(plugin, "dashboard", "usr", *as_alice, "--port", "0", "--no-browser")
    try:
        line = dashboard.wait_line(lambda text: text.startswith("Dashboard of"), 60, "the URL")
        url = line.split(": ", 1)[1].split()[0]
        assert _http(f"{url}/status")[0] == 200
        assert dashboard.interrupt() == 0
    finally:
        dashboard.close()
