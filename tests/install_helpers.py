"""Helpers for tests that install the operator and run it on its own ServiceAccount's permissions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import metric_key, parse_metrics, wait_for

PLUGIN = str(Path(sys.executable).parent / "kubectl-emqx")


def plugin(kubeconfig: str, *args: str, stdin: str | None = None,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed `kubectl-emqx` console script (the real facade, a real API server)."""
    result = subprocess.run([PLUGIN, "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True,
                            text=True, timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl emqx {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def service_account_kubeconfig(api_client: Any, admin_kubeconfig: str, namespace: str, name: str,
                               directory: Path) -> str:
    """A kubeconfig authenticating as the ServiceAccount (a TokenRequest token), like a pod's mount."""
    from kubernetes import client

    request = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}})
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": request.status.token}}],
        "contexts": [{"name": name, "context": {"cluster": "sandbox", "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    path = directory / f"kubeconfig-{namespace}-{name}"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return str(path)


def deployment_container(api_client: Any, namespace: str, name: str = "emqx-operator") -> dict[str, Any]:
    from kubernetes import client

    deployment = client.AppsV1Api(api_client).read_namespaced_deployment(name, namespace, _preload_content=False)
    (container,) = json.loads(deployment.data)["spec"]["template"]["spec"]["containers"]
    return dict(container)


class InstalledOperator:
    """The operator run as its Deployment would run it: the image's entry point (the `emqx-operator`
    console script), the Deployment's args and downward-API env, and the ServiceAccount's token.
    Only what the sandbox needs differs: addresses bind 127.0.0.1, and `extra_args` may narrow scope."""

    def __init__(self, sandbox: Any, kubeconfig: str, container: dict[str, Any], pod_namespace: str,
                 extra_args: list[str] | None = None, pod_name: str | None = None,
                 executable: str | None = None, env: dict[str, str] | None = None) -> None:
        from sandbox import operator_process

        self.pod_name = pod_name or f"emqx-operator-{uuid.uuid4().hex[:6]}"
        env = {**(env or {}), "POD_NAMESPACE": pod_namespace, "POD_NAME": self.pod_name}
        for item in container.get("env") or []:
            # Bind addresses come from the command line here (127.0.0.1 only), not from 0.0.0.0 env.
            if "value" in item and item["name"] not in ("EMQX_OPERATOR_LIVENESS", "EMQX_OPERATOR_METRICS"):
                env[item["name"]] = item["value"]
        self.proc, self.component, live_port = operator_process.spawn(
            sandbox, name=f"installed-{self.pod_name}", kubeconfig=kubeconfig, console_script=True,
            extra_args=[*container.get("args", []), *(extra_args or [])], env=env, executable=executable,
        )
        self.log = self.component.log
        self.metrics_url = f"http://127.0.0.1:{self.component.port}/metrics"
        self.liveness_url = f"http://127.0.0.1:{live_port}/healthz"
        operator_process.wait_live(self.component, live_port)

    def metrics(self) -> dict[str, float]:
        import urllib.request

        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return parse_metrics(response.read().decode())

    def reconciles(self, namespace: str, name: str) -> int:
        values = self.metrics()
        return int(sum(values.get(metric_key("emqx_operator_reconcile_total", namespace=namespace, name=name,
                                             result=result), 0) for result in ("ok", "error")))

    def log_text(self) -> str:
        return Path(self.log).read_text(errors="replace")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def lease_holder(api_client: Any, namespace: str, name: str) -> str | None:
    from kubernetes import client

    try:
        lease = client.CoordinationV1Api(api_client).read_namespaced_lease(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


def other_namespaces(api_client: Any, *mine: str) -> list[str]:
    """Every namespace but `mine`, for --exclude-namespace: a cluster-wide operator under test then
    leaves the rest of the shared sandbox (other tests' clusters) alone."""
    from kubernetes import client

    names = [ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items]
    return [name for name in names if name not in mine]


def wait_namespace_gone(api_client: Any, name: str, timeout: float = 90) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout, f"namespace {name} to be deleted")


def finalizers_in(api_client: Any, namespace: str, instance: str) -> dict[str, list[str]]:
    """kind/name -> finalizers for the EMQX resource and everything labelled as its instance."""
    from kubernetes import client

    found: dict[str, list[str]] = {}

    def record(kind: str, items: list[Any]) -> None:
        for item in items:
            body = item if isinstance(item, dict) else api_client.sanitize_for_serialization(item)
            meta = body.get("metadata") or {}
            if meta.get("finalizers"):
                found[f"{kind}/{meta['name']}"] = list(meta["finalizers"])

    selector = f"apps.emqx.io/instance={instance}"
    core, apps, policy = client.CoreV1Api(api_client), client.AppsV1Api(api_client), client.PolicyV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    emqx = custom.get_namespaced_custom_object("apps.emqx.io", "v2beta1", namespace, "emqxes", instance)
    record("EMQX", [emqx])
    record("StatefulSet", apps.list_namespaced_stateful_set(namespace, label_selector=selector).items)
    record("Deployment", apps.list_namespaced_deployment(namespace, label_selector=selector).items)
    record("Service", core.list_namespaced_service(namespace, label_selector=selector).items)
    record("ConfigMap", core.list_namespaced_config_map(namespace, label_selector=selector).items)
    record("Secret", core.list_namespaced_secret(namespace, label_selector=selector).items)
    record("PodDisruptionBudget",
           policy.list_namespaced_pod_disruption_budget(namespace, label_selector=selector).items)
    record("Pod", core.list_namespaced_pod(namespace, label_selector=selector).items)
    return found
