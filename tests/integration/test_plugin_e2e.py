"""The plugin end to end, as users run it: the real `kubectl` finds `kubectl-emqx` on PATH and runs it
against the sandbox, with the operator (from the working tree) and the EMQX simulator behind it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_emqx.view import render, status_model
from sandbox import cluster
from tests.emqx_helpers import custom_api, emqx_nodes, get_emqx, patch_emqx, ready_pods, wait_ready
from tests.helpers import wait_for
from tests.plugin_helpers import PluginRunner, as_from_a_terminal

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plugin(bin_dir: Path, kubeconfig: str) -> PluginRunner:
    return PluginRunner(bin_dir / "kubectl", kubeconfig)


@pytest.fixture(scope="module")
def crd(sandbox: cluster.SandboxState) -> None:
    """The EMQX CRD, for tests that make EMQX resources without needing the operator."""
    from sandbox import operator_process

    operator_process.install_crd(sandbox)


def _events(api_client: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    from kubernetes import client

    response = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=EMQX,involvedObject.name={name}", _preload_content=False)
    return list(json.loads(response.data)["items"])


def _status_json_matches_model(plugin: PluginRunner, api_client: Any, namespace: str, name: str) -> bool:
    """`status -o json` is the status model built from the resource and its Events, read around the
    command; when anything changed meanwhile (a status write, a new Event), say so and try again."""
    before = (get_emqx(api_client, namespace, name), _events(api_client, namespace, name))
    printed = json.loads(plugin.ok("status", name, "-n", namespace, "-o", "json").stdout)
    after = (get_emqx(api_client, namespace, name), _events(api_client, namespace, name))
    if before[0]["metadata"]["resourceVersion"] != after[0]["metadata"]["resourceVersion"] or before[1] != after[1]:
        return False
    expected = status_model.to_data(status_model.cluster_status(after[0], after[1]))
    assert printed == expected
    return True


def test_create_wait_scale_list_status(plugin: PluginRunner, api_client: Any, namespace: str, operator: Any) -> None:
    created = plugin.ok("create", "demo", "-n", namespace, "--wait")
    assert f"{namespace}/demo created" in created.stderr
    assert f"{namespace}/demo is Ready: cores 3/3, replicants 3/3, image emqx/emqx:5.7.2" in created.stderr
    body = wait_ready(api_client, namespace, "demo", timeout=5)  # --wait returned only once it was Ready
    assert body["spec"]["image"] == "emqx/emqx:5.7.2"

    scaled = plugin.ok("scale", "replicants", "demo", "5", "-n", namespace, "--wait")
    assert f"{namespace}/demo: replicants 3 -> 5" in scaled.stderr
    assert f"{namespace}/demo is Ready: cores 3/3, replicants 5/5" in scaled.stderr
    assert len(ready_pods(api_client, namespace, "demo", "replicant")) == 5

    listed = plugin.ok("list", "-n", namespace)
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "NAMESPACE", "IMAGE", "CORES", "REPLICANTS", "STATUS", "AGE"]
    assert [row.split()[:6] for row in rows] == [["demo", namespace, "emqx/emqx:5.7.2", "3/3", "5/5", "Ready"]]
    everywhere = plugin.ok("list", "-A", "-o", "json")
    mine = [row for row in json.loads(everywhere.stdout) if row["namespace"] == namespace]
    assert [(row["name"], row["phase"], row["cores"]["ready"], row["replicants"]["ready"]) for row in mine] == [
        ("demo", "Ready", 3, 5)]

    # The node table shows every node EMQX reports (3 cores + 5 replicants), and nothing else.
    shown = plugin.ok("status", "demo", "-n", namespace).stdout
    assert f"Name:       {namespace}/demo" in shown and "Phase:      Ready" in shown
    table = shown.split("\nNodes\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table[0].split() == ["NODE", "ROLE", "STATUS", "VERSION", "OTP", "UPTIME", "CONNECTIONS"]
    nodes = emqx_nodes(api_client, namespace, "demo")
    assert len(nodes) == 8
    expected_rows = sorted(
        (n.get("podName") or render.short_node_name(n["node"]), n["role"], "running", "5.7.2") for n in nodes)
    assert sorted(tuple(line.split()[:4]) for line in table[1:]) == expected_rows

    wait_for(lambda: _status_json_matches_model(plugin, api_client, namespace, "demo"), 60,
             "`status -o json` to equal the status model of a resource that did not change meanwhile")


def test_dry_run_client_output_applies_with_kubectl(
    plugin: PluginRunner, api_client: Any, namespace: str, operator: Any
) -> None:
    printed = plugin.ok("create", "piped", "--replicants", "1", "--dry-run=client", "-o", "yaml")
    manifest = yaml.safe_load(printed.stdout)
    assert manifest["kind"] == "EMQX" and manifest["metadata"]["name"] == "piped"
    assert "namespace" not in manifest["metadata"]  # whoever applies it picks the namespace
    assert custom_api(api_client).list_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes")[
        "items"] == []

    import subprocess

    pipeline = (f"kubectl emqx create piped --replicants 1 --dry-run=client -o yaml | "
                f"kubectl apply -n {namespace} -f -")
    applied = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True,
                             timeout=120, env=plugin.env)
    assert applied.returncode == 0, applied.stderr
    assert "emqx.apps.emqx.io/piped created" in applied.stdout
    wait_ready(api_client, namespace, "piped")
    listed = json.loads(plugin.ok("list", "-n", namespace, "-o", "json").stdout)
    assert [(row["name"], row["phase"], row["replicants"]["desired"]) for row in listed] == [("piped", "Ready", 1)]


def test_completion_through_kubectl(plugin: PluginRunner, api_client: Any, namespace: str, crd: None) -> None:
    """kubectl (>= 1.26) completes `kubectl emqx ...` by running kubectl_complete-emqx from PATH."""
    verbs = [line.split("\t")[0] for line in plugin.complete("emqx", "")]
    assert verbs == ["create", "list", "status", "dashboard", "logs", "report", "scale", "config", "upgrade",
                     "restart", "rebalance", "backup", "restore", "delete", "install", "uninstall", "version",
                     "completion"]
    assert plugin.complete("emqx", "sc") == ["scale\tChange the number of core or replicant nodes"]

    names = ["orders", "ops", "telemetry"]
    for name in names:
        body = {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": {"name": name},
                "spec": {"image": "emqx/emqx:5.7.2"}}
        custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", body)
    assert plugin.complete("emqx", "status", "-n", namespace, "") == sorted(names)
    assert plugin.complete("emqx", "scale", "replicants", "-n", namespace, "o") == ["ops", "orders"]
    assert plugin.complete("emqx", "config", "get", "--namespace", namespace, "t") == ["telemetry"]
    # An unreachable cluster completes nothing, quickly, rather than failing the shell.
    assert plugin.complete("emqx", "status", "--server", "https://127.0.0.1:1", "") == []


def test_version_warns_when_the_operator_minor_differs(plugin: PluginRunner, api_client: Any, namespace: str) -> None:
    from kubernetes import client

    from kubectl_emqx import __version__

    major, minor, *_ = __version__.split(".")
    skewed = f"{major}.{int(minor) + 1}.0"
    name = f"emqx-operator-{uuid.uuid4().hex[:6]}"
    client.AppsV1Api(api_client).create_namespaced_deployment(namespace, {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "emqx-operator",
                                              "app.kubernetes.io/version": skewed}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "operator", "image": "emqx-operator:test"}]}}},
    })
    shown = plugin.ok("version")
    assert f"Plugin:   {__version__}" in shown.stdout
    assert f"Operator: {skewed} ({namespace}/{name})" in shown.stdout
    assert (f"warning: plugin {__version__} and operator {skewed} differ in minor version; "
            "upgrade the plugin") in shown.stderr
    data = json.loads(plugin.ok("version", "-o", "json").stdout)
    assert {"namespace": namespace, "deployment": name, "version": skewed} in data["operators"]


def test_read_verbs_do_not_load_the_kubernetes_client(
    plugin: PluginRunner, api_client: Any, namespace: str, crd: None
) -> None:
    """`status`, `list` and name completion use the light REST session (kubectl_emqx/kube/rest.py) with
    the sandbox's kubeconfig: importing the `kubernetes` client would cost them ~0.3 s."""
    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", {
        "apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": {"name": "light"},
        "spec": {"image": "emqx/emqx:5.7.2"}})
    trace = {"PYTHONPROFILEIMPORTTIME": "1"}

    def imported(outcome: Any) -> set[str]:
        assert outcome.code == 0, outcome.describe()
        lines = outcome.stderr.splitlines()
        return {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}

    for args in (("status", "light", "-n", namespace), ("list", "-A"), ("list", "-n", namespace, "-o", "yaml")):
        modules = imported(plugin(*args, env=trace))
        assert "kubectl_emqx.kube.rest" in modules
        assert not {name for name in modules if name.split(".")[0] in ("kubernetes", "tabulate", "pyhocon")}, args
    completed = plugin.run("__complete", "emqx", "status", "-n", namespace, "", env=trace)
    assert completed.stdout.splitlines()[0] == "light"
    assert "kubernetes" not in imported(completed)
    # A verb that writes still goes through the client.
    assert "kubernetes" in imported(plugin("scale", "replicants", "light", "1", "-n", namespace, env=trace))


def test_status_watch_follows_changes(plugin: PluginRunner, api_client: Any, namespace: str, crd: None) -> None:
    """`status -w -o json` prints the model again on every change, through the light session's watch."""
    import queue
    import signal
    import subprocess
    import threading

    custom_api(api_client).create_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", {
        "apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": {"name": "watched"},
        "spec": {"image": "emqx/emqx:5.7.2"}})
    process = subprocess.Popen([str(plugin.kubectl), "emqx", "status", "watched", "-n", namespace, "-w", "-o", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=plugin.env,
                               preexec_fn=as_from_a_terminal)
    chunks: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None
    threading.Thread(target=lambda: [chunks.put(line) for line in stdout], daemon=True).start()
    printed = ""

    def documents() -> list[dict[str, Any]]:
        nonlocal printed
        while not chunks.empty():
            printed += chunks.get()
        decoder, found, index = json.JSONDecoder(), [], 0
        while index < len(printed.rstrip()):
            try:
                document, index = decoder.raw_decode(printed, index)
            except ValueError:
                break
            found.append(document)
            while index < len(printed) and printed[index].isspace():
                index += 1
        return found

    try:
        wait_for(lambda: len(documents()) >= 1, 30, "the first status document")
        patch_emqx(api_client, namespace, "watched", {"spec": {"replicantTemplate": {"spec": {"replicas": 7}}}})
        shown = wait_for(lambda: [d for d in documents() if d["replicants"]["desired"] == 7], 30,
                         "a status document with 7 replicants desired")
        assert shown[0]["generation"] == 2
        assert process.poll() is None  # still watching
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
