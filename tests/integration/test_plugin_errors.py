"""Every way the plugin fails, through the real kubectl against real API servers: one actionable
`error: ...` line on stderr, a non-zero exit, and the traceback only with -v.

Each case runs a read verb (status/list: the light REST session, kubectl_emqx/kube/rest.py) and a
writing verb (scale/create: the `kubernetes` client, kubectl_emqx/kube/client.py), so that both
sessions are held to the same messages.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import cluster
from tests.emqx_helpers import custom_api, get_emqx, patch_emqx
from tests.plugin_helpers import PluginRunner, assert_one_line_error, closed_port

pytestmark = pytest.mark.integration

NOT_INSTALLED = "the EMQX operator is not installed: run `kubectl emqx install`"


@pytest.fixture(scope="module")
def plugin(bin_dir: Path, kubeconfig: str) -> PluginRunner:
    return PluginRunner(bin_dir / "kubectl", kubeconfig)


@pytest.fixture(scope="module")
def crd(sandbox: cluster.SandboxState) -> None:
    """The EMQX CRD, for tests that make EMQX resources without needing the operator."""
    from sandbox import operator_process

    operator_process.install_crd(sandbox)


def _create(api_client: Any, namespace: str, name: str, replicants: int = 3) -> dict[str, Any]:
    body = {"apiVersion": "apps.emqx.io/v2beta1", "kind": "EMQX", "metadata": {"name": name},
            "spec": {"image": "emqx/emqx:5.7.2", "replicantTemplate": {"spec": {"replicas": replicants}}}}
    return dict(custom_api(api_client).create_namespaced_custom_object(
        "apps.emqx.io", "v2beta1", namespace, "emqxes", body))


def _kubeconfig_with_server(source: str, server: str, directory: Path) -> str:
    import yaml

    config = yaml.safe_load(Path(source).read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = server
    path = directory / f"kubeconfig-{uuid.uuid4().hex[:6]}"
    path.write_text(json.dumps(config))
    return str(path)


# --- the cluster cannot be reached ------------------------------------------------------------


def test_unreachable_cluster(plugin: PluginRunner, kubeconfig: str, tmp_path: Path) -> None:
    port = closed_port()
    server = f"https://127.0.0.1:{port}"
    where = f"cannot reach the Kubernetes API at {server} (context sandbox): Connection refused"
    assert_one_line_error(plugin("status", "demo", "--server", server), where)
    assert_one_line_error(plugin("scale", "replicants", "demo", "2", "--server", server), where)

    # The same from a kubeconfig whose cluster has gone away, with the traceback only on request.
    env = {"KUBECONFIG": _kubeconfig_with_server(kubeconfig, server, tmp_path)}
    assert_one_line_error(plugin("list", env=env), where, "check --context/--kubeconfig")
    verbose = plugin("list", "-v", env=env)
    assert verbose.code == 1 and verbose.stdout == ""
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.error_lines[-1].startswith("error: ") and where in verbose.error_lines[-1]


def test_tls_flags_reach_both_sessions(plugin: PluginRunner, sandbox: cluster.SandboxState, namespace: str,
                                      crd: None) -> None:
    """--server, --tls-server-name and --insecure-skip-tls-verify are resolved once (kube/kubeconfig.py)
    and both sessions honour them; a certificate check that fails reads the same from both."""
    server = f"https://127.0.0.1:{sandbox.api_port}"
    right = ("--server", server, "--tls-server-name", "kubernetes.default")  # a name the certificate holds
    listed = plugin("list", "-n", namespace, *right)  # the light session
    assert listed.code == 0, listed.describe()
    shown = plugin("version", *right)  # the client session
    assert shown.code == 0, shown.describe()

    wrong = ("--server", server, "--tls-server-name", "wrong.example")
    mismatch = (f"cannot reach the Kubernetes API at {server} (context sandbox): TLS certificate verify failed: "
                "Hostname mismatch, certificate is not valid for 'wrong.example'; check --context/--kubeconfig")
    assert_one_line_error(plugin("list", "-n", namespace, *wrong), mismatch)
    assert_one_line_error(plugin("scale", "replicants", "demo", "2", "-n", namespace, *wrong), mismatch)
    insecure = plugin("list", "-n", namespace, *wrong, "--insecure-skip-tls-verify")
    assert insecure.code == 0, insecure.describe()


def test_unreadable_kubeconfig(plugin: PluginRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert_one_line_error(plugin("status", "demo", "--kubeconfig", str(missing)),
                          f"--kubeconfig {missing}: no such file")
    assert_one_line_error(plugin("list", "--context", "nope"), 'context "nope" not found in the kubeconfig')


# --- the CRD is not installed -----------------------------------------------------------------


@pytest.fixture(scope="module")
def crdless_kubeconfig(sandbox: cluster.SandboxState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kubeconfig for a second kube-apiserver that has never had the EMQX CRD.

    The session's CRD must stay (other tests need it, and deleting it would delete every EMQX
    resource), so this starts another kube-apiserver from the sandbox's binary with the sandbox's
    own flags (read from its process), on another port and under another etcd prefix: a real API
    server with an empty registry -- no apps.emqx.io group -- that the sandbox's admin credentials
    reach. Starting it takes ~2 s."""
    apiserver = next(c for c in sandbox.components if c.name == "kube-apiserver")
    argv = Path(f"/proc/{apiserver.pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    directory = tmp_path_factory.mktemp("crdless")
    port = closed_port()
    replaced = {"--secure-port": str(port), "--cert-dir": str(directory / "certs")}
    argv = [arg if arg.split("=", 1)[0] not in replaced else f"{arg.split('=', 1)[0]}={replaced[arg.split('=', 1)[0]]}"
            for arg in argv]
    argv.append("--etcd-prefix=/registry-without-emqx-crd")
    log = open(directory / "kube-apiserver.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        config = _kubeconfig_with_server(sandbox.kubeconfig, f"https://127.0.0.1:{port}", directory)
        ca = ssl.create_default_context(cafile=str(Path(sandbox.directory) / "pki" / "ca.crt"))
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the CRD-less kube-apiserver exited; see {directory}/kube-apiserver.log"
            try:
                connection = http.client.HTTPSConnection("127.0.0.1", port, context=ca, timeout=2)
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the CRD-less kube-apiserver did not become ready"
            time.sleep(0.1)
        yield config
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_crd_not_installed(plugin: PluginRunner, crdless_kubeconfig: str) -> None:
    env = {"KUBECONFIG": crdless_kubeconfig}
    assert plugin.run("get", "--raw", "/apis/apps.emqx.io", env=env).code != 0  # the group is not served there
    for args in (("status", "demo"), ("list",), ("list", "-A"), ("create", "demo"), ("scale", "cores", "demo", "3"),
                 ("config", "get", "demo")):
        assert_one_line_error(plugin(*args, env=env), NOT_INSTALLED)
    shown = plugin("version", env=env)
    assert shown.code == 0, shown.describe()
    assert "Operator: not installed (run `kubectl emqx install`)" in shown.stdout


# --- RBAC -------------------------------------------------------------------------------------


def test_forbidden_names_the_verb_and_the_resource(
    plugin: PluginRunner, api_client: Any, namespace: str, crd: None
) -> None:
    from kubernetes import client

    _create(api_client, namespace, "demo")
    nobody = ("--as", "nobody")
    where = f"in namespace {namespace} (as User \"nobody\"); ask your cluster admin for RBAC access"
    for args, verb in ((("status", "demo"), "get"), (("list",), "list"), (("create", "other"), "create"),
                       (("scale", "replicants", "demo", "2"), "get"), (("delete", "demo", "--yes"), "get")):
        assert_one_line_error(plugin(*args, "-n", namespace, *nobody),
                              f"forbidden: you may not {verb} emqxes.apps.emqx.io {where}")
    assert_one_line_error(plugin("list", "-A", *nobody),
                          "forbidden: you may not list emqxes.apps.emqx.io cluster-wide (as User \"nobody\")")

    # A user who may read but not write: the write is refused naming `patch`, nothing changes.
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "emqx-viewer"},
        "rules": [{"apiGroups": ["apps.emqx.io"], "resources": ["emqxes"], "verbs": ["get", "list", "watch"]}],
    })
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "emqx-viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "emqx-viewer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}],
    })
    viewer = ("-n", namespace, "--as", "viewer")
    assert plugin("status", "demo", *viewer).code == 0  # reading is allowed (events are noted, not fatal)
    assert_one_line_error(plugin("scale", "replicants", "demo", "2", *viewer),
                          f"forbidden: you may not patch emqxes.apps.emqx.io in namespace {namespace} "
                          "(as User \"viewer\")")
    assert get_emqx(api_client, namespace, "demo")["spec"]["replicantTemplate"]["spec"]["replicas"] == 3


# --- not found --------------------------------------------------------------------------------


def test_not_found_suggests_close_names(plugin: PluginRunner, api_client: Any, namespace: str, crd: None) -> None:
    unique = uuid.uuid4().hex[:6]
    name, typo = f"orders-{unique}-eu", f"orders-{unique}-ue"
    _create(api_client, namespace, name)
    for args in (("status", typo), ("scale", "replicants", typo, "2"), ("config", "get", typo)):
        assert_one_line_error(plugin(*args, "-n", namespace),
                              f'EMQX cluster "{typo}" not found in namespace {namespace}; did you mean "{name}"?')
    assert_one_line_error(plugin("status", name, "-n", "default"),
                          f'EMQX cluster "{name}" not found in namespace default; '
                          f'did you mean "{name}" in namespace {namespace} (-n {namespace})?')
    unrelated = f"zz{uuid.uuid4().hex}"
    line = assert_one_line_error(plugin("status", unrelated, "-n", namespace))
    assert line == f'error: EMQX cluster "{unrelated}" not found in namespace {namespace}'


# --- conflicts --------------------------------------------------------------------------------


class InterferingProxy:
    """A plain-HTTP front for the sandbox API (admin credentials behind it) that, just before it
    forwards the first PATCH of one EMQX resource, changes that resource itself: the plugin's
    write, made against the resourceVersion it read, meets a real 409 from the real API server."""

    def __init__(self, sandbox: cluster.SandboxState, interfere: Callable[[], None]) -> None:
        self.interfere = interfere
        self.patches: list[int] = []  # the API server's answer to each PATCH it forwarded
        self._interfered = False
        config = json.loads(Path(sandbox.kubeconfig).read_text())
        user = config["users"][0]["user"]
        self._directory = tempfile.mkdtemp(prefix="proxy-")
        cert, key = Path(self._directory, "cert"), Path(self._directory, "key")
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        self._context = ssl.create_default_context(cafile=str(Path(sandbox.directory) / "pki" / "ca.crt"))
        self._context.load_cert_chain(str(cert), str(key))
        self._api_port = sandbox.api_port
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PATCH" and "/emqxes/" in self.path and not proxy._interfered:
                    proxy._interfered = True
                    proxy.interfere()
                upstream = http.client.HTTPSConnection("127.0.0.1", proxy._api_port, context=proxy._context,
                                                       timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                if self.command == "PATCH":
                    proxy.patches.append(response.status)
                self.send_response(response.status)
                self.send_header("Content-Type", response.getheader("Content-Type") or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _forward  # noqa: N815

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> InterferingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        for name in ("cert", "key"):
            os.unlink(os.path.join(self._directory, name))
        os.rmdir(self._directory)

    def kubeconfig(self, directory: Path) -> str:
        path = directory / "proxy-kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "anyone", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "anyone"}}],
        }))
        return str(path)


def test_conflicts_are_retried(
    plugin: PluginRunner, sandbox: cluster.SandboxState, api_client: Any, solo_namespace: str, tmp_path: Path,
    crd: None,
) -> None:
    """No operator runs in a solo- namespace: the only other writer is the proxy's interference."""
    namespace = solo_namespace
    _create(api_client, namespace, "busy")

    def annotate() -> None:
        patch_emqx(api_client, namespace, "busy", {"metadata": {"annotations": {"example.com/touched": "yes"}}})

    with InterferingProxy(sandbox, annotate) as proxy:
        outcome = plugin("scale", "replicants", "busy", "2", "-n", namespace,
                         env={"KUBECONFIG": proxy.kubeconfig(tmp_path)})
    assert outcome.code == 0, outcome.describe()
    assert f"{namespace}/busy: replicants 3 -> 2" in outcome.stderr
    assert proxy.patches == [409, 200]  # refused as stale, then re-read and written
    body = get_emqx(api_client, namespace, "busy")
    assert body["spec"]["replicantTemplate"]["spec"]["replicas"] == 2
    assert body["metadata"]["annotations"]["example.com/touched"] == "yes"  # the other write is kept


def test_a_conflicting_change_of_the_same_field_is_not_overwritten(
    plugin: PluginRunner, sandbox: cluster.SandboxState, api_client: Any, solo_namespace: str, tmp_path: Path,
    crd: None,
) -> None:
    namespace = solo_namespace
    _create(api_client, namespace, "busy")

    def rescale() -> None:
        patch_emqx(api_client, namespace, "busy", {"spec": {"replicantTemplate": {"spec": {"replicas": 4}}}})

    with InterferingProxy(sandbox, rescale) as proxy:
        outcome = plugin("scale", "replicants", "busy", "2", "-n", namespace,
                         env={"KUBECONFIG": proxy.kubeconfig(tmp_path)})
    assert_one_line_error(outcome, f"the replicants count of {namespace}/busy was changed by someone else meanwhile; "
                                   "nothing was written, run the command again")
    assert proxy.patches == [409]
    assert get_emqx(api_client, namespace, "busy")["spec"]["replicantTemplate"]["spec"]["replicas"] == 4


# --- bad flag values --------------------------------------------------------------------------


BAD_FLAGS = [
    (("scale", "cores", "demo", "0"), ("a cluster needs at least 1 core", "kubectl emqx scale --help")),
    (("scale", "replicants", "demo", "many"), ("'many' is not a valid integer",)),
    (("create", "demo", "--cores", "abc"), ("'--cores'", "'abc' is not a valid integer")),
    (("create", "Bad_Name"), ("'Bad_Name'", "lower-case letters, digits and '-'")),
    (("create", "demo", "--storage-size", "lots"), ("'lots' is not a size",)),
    (("status", "demo", "-o", "xml"), ("'xml' is not one of 'json', 'yaml'",)),
    (("list", "--request-timeout", "soon"), ("'soon' is not a duration",)),
    (("status",), ("Missing argument 'NAME'", "kubectl emqx status --help")),
    (("stauts", "demo"), ("unknown command 'stauts'. Did you mean status",)),
    (("upgrade", "demo"), ("give either --image IMAGE or --rollback",)),
]


@pytest.mark.parametrize(("args", "fragments"), BAD_FLAGS, ids=[" ".join(args) for args, _ in BAD_FLAGS])
def test_bad_flag_values(plugin: PluginRunner, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    """Refused before any request (the sandbox is not needed, but kubectl is): exit code 2."""
    assert_one_line_error(plugin(*args), *fragments, code=2)
