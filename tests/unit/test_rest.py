"""rest.py, the light session of the read verbs: it serves the same resolved kubeconfig as the
client session (client.py), declines only what the resolver says needs the client, and speaks HTTP
like the client: same paths, headers, errors. Requests go to a local HTTP server here; the
integration tests run it against the real API server through kubectl."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_emqx.kube import client as kube
from kubectl_emqx.kube import errors, kubeconfig, rest
from kubectl_emqx.kube.kubeconfig import KubeFlags

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


def _write(path: Path, *, current: str | None = "dev", clusters: dict[str, dict[str, Any]] | None = None,
           users: dict[str, dict[str, Any]] | None = None,
           contexts: dict[str, dict[str, Any]] | None = None, as_json: bool = False) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current:
        document["current-context"] = current
    path.write_text(json.dumps(document) if as_json else yaml.safe_dump(document))
    return path


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def two_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    (tmp_path / "certs").mkdir()
    for name in ("ca.crt", "client.crt", "client.key", "token"):
        (tmp_path / "certs" / name).write_text(f"{name}\n")
    first = _write(
        tmp_path / "a.yaml", current="dev",
        contexts={"dev": {"cluster": "c-dev", "user": "u-dev", "namespace": "team-a"},
                  "files": {"cluster": "c-files", "user": "u-files"}},
        clusters={"c-dev": {"server": "https://dev.example:6443/", "insecure-skip-tls-verify": True},
                  "c-files": {"server": "https://files.example", "certificate-authority": "certs/ca.crt"}},
        users={"u-dev": {"token": "dev-token"},
               "u-files": {"client-certificate": "certs/client.crt", "client-key": "certs/client.key"}},
    )
    second = _write(
        tmp_path / "b.json", current="prod", as_json=True,
        contexts={"prod": {"cluster": "c-prod", "user": "u-prod"}, "dev": {"cluster": "c-prod", "user": "u-prod"}},
        clusters={"c-prod": {"server": "https://prod.example:6443", "tls-server-name": "api.prod",
                             "certificate-authority-data": base64.b64encode(b"PEM DATA").decode()}},
        users={"u-prod": {"tokenFile": "certs/token"}},
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing.yaml'}:{second}")
    return first, second


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"context": "prod"},
        {"context": "files"},
        {"context": "dev", "namespace": "other"},
        {"context": "dev", "cluster": "c-prod", "user": "u-prod"},
        {"context": "files", "server": "https://override:6443", "token": "flag-token"},
        {"context": "prod", "insecure_skip_tls_verify": True},
    ],
    ids=repr,
)
def test_resolves_as_the_client_does(two_files: tuple[Path, Path], flags: dict[str, Any]) -> None:
    client = kube.connect(KubeFlags(**flags))
    assert isinstance(client, kube.KubernetesClusterApi)
    configuration = client._custom.api_client.configuration
    endpoint = kubeconfig.resolve(KubeFlags(**flags))
    assert client.endpoint == endpoint  # one resolution, both sessions
    assert (endpoint.server, endpoint.namespace, endpoint.context_name) == (
        client.server, client.namespace, client.context_name)
    token = configuration.api_key.get("BearerToken")
    assert (f"Bearer {endpoint.token}" if endpoint.token else None) == token
    assert (not endpoint.insecure) == configuration.verify_ssl
    assert endpoint.tls_server_name == configuration.tls_server_name
    if endpoint.ca is not None:
        assert configuration.ssl_ca_cert
        expected = Path(configuration.ssl_ca_cert).read_bytes()
        assert (Path(endpoint.ca.file).read_bytes() if endpoint.ca.file else endpoint.ca.data) == expected
    else:
        assert configuration.ssl_ca_cert is None
    if endpoint.client_certificate:
        assert endpoint.client_certificate.file == configuration.cert_file
        assert endpoint.client_key is not None and endpoint.client_key.file == configuration.key_file
    else:
        assert configuration.cert_file is None


def test_token_file_and_certificates_resolve_against_their_kubeconfig(two_files: tuple[Path, Path]) -> None:
    first, _ = two_files
    assert kubeconfig.resolve(KubeFlags(context="prod")).token == "token"  # trimmed, as kubectl does
    files = kubeconfig.resolve(KubeFlags(context="files"))
    assert files.ca == kubeconfig.Pem(file=str(first.parent / "certs" / "ca.crt"))
    assert files.client_certificate == kubeconfig.Pem(file=str(first.parent / "certs" / "client.crt"))


@pytest.mark.parametrize(
    ("user", "served"),
    [
        ({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "get-token"}}, False),
        ({"auth-provider": {"name": "oidc", "config": {}}}, False),
        ({"username": "u", "password": "p"}, True),
        ({"token": "t", "as": "someone", "as-groups": ["g"]}, True),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else str(value),
)
def test_declines_only_credential_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          user: dict[str, Any], served: bool) -> None:
    config = _write(tmp_path / "c.yaml", contexts={"dev": {"cluster": "c", "user": "u"}},
                    clusters={"c": {"server": "https://x.example"}}, users={"u": user})
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert (rest.connect(KubeFlags()) is not None) == served
    assert rest.connect(KubeFlags(token="t")) is not None  # --token replaces the user's credentials


def test_declines_a_proxy_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _write(tmp_path / "ok.yaml", contexts={"dev": {"cluster": "c", "user": "u"}},
                   clusters={"c": {"server": "https://x.example", "insecure-skip-tls-verify": True}},
                   users={"u": {"token": "t"}})
    proxied = _write(tmp_path / "p.yaml", contexts={"dev": {"cluster": "c", "user": "u"}},
                     clusters={"c": {"server": "https://x.example", "proxy-url": "http://proxy:3128"}},
                     users={"u": {"token": "t"}})
    assert rest.connect(KubeFlags(kubeconfig=str(proxied))) is None
    assert rest.connect(KubeFlags(kubeconfig=str(plain))) is not None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert rest.connect(KubeFlags(kubeconfig=str(plain))) is None
    assert rest.connect(KubeFlags(kubeconfig=str(plain), server="https://127.0.0.1:6443")) is not None  # loopback


def test_kubeconfig_problems_are_raised_never_declined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What used to send the read verbs to the client (which then reported it) is reported at once."""
    config = _write(tmp_path / "c.yaml", contexts={"dev": {"cluster": "c", "user": "u"}},
                    clusters={"c": {"server": "https://x.example", "certificate-authority": "missing.crt"}},
                    users={"u": {"token": "t"}})
    monkeypatch.setenv("KUBECONFIG", str(config))
    with pytest.raises(errors.KubeconfigError, match="cannot read the kubeconfig's certificate-authority .*/missing"):
        rest.connect(KubeFlags())
    with pytest.raises(errors.KubeconfigError, match='context "nope" not found'):
        rest.connect(KubeFlags(context="nope"))
    with pytest.raises(errors.KubeconfigError, match="no such file"):
        rest.connect(KubeFlags(kubeconfig=str(tmp_path / "none.yaml")))
    (tmp_path / "bad.yaml").write_text("clusters: [\n")
    with pytest.raises(errors.KubeconfigError, match="cannot parse kubeconfig"):
        rest.connect(KubeFlags(kubeconfig=str(tmp_path / "bad.yaml")))
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(errors.KubeconfigError, match="unusable TLS certificate or key"):
        rest.connect(KubeFlags(kubeconfig=str(config), certificate_authority=str(tmp_path / "bad.pem")))


def test_serves_the_in_cluster_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token\n")
    (account / "namespace").write_text("ops")
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT_DIR", str(account))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    api = rest.connect(KubeFlags())
    assert api is not None
    assert (api.server, api.namespace, api.context_name) == ("https://10.0.0.1:443", "ops", "in-cluster")
    assert ("Authorization", "Bearer pod-token") in api._headers


# --- requests against a local server ----------------------------------------------------------


class FakeApiServer:
    """Answers GETs from a table {path?query: (status, body)}; records requests and headers."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Any]] = {}
        self.watch_lines: list[dict[str, Any]] = []
        self.requests: list[tuple[str, list[tuple[str, str]]]] = []
        self.connections = 0
        self.drop_after_response = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append((self.path, list(self.headers.items())))
                if server.drop_after_response:
                    self.close_connection = True  # without saying so: the client finds out on reuse
                if "watch=true" in self.path:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for line in server.watch_lines:
                        data = (json.dumps(line) + "\n").encode()
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                status, body = server.routes.get(self.path, (404, {"kind": "Status", "code": 404,
                                                                   "reason": "NotFound", "details": {}}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


@pytest.fixture()
def server() -> Iterator[FakeApiServer]:
    fake = FakeApiServer()
    thread = threading.Thread(target=fake.http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    fake.http.shutdown()
    fake.http.server_close()


def _session(server: FakeApiServer, tmp_path: Path, **flags: Any) -> rest.RestClusterApi:
    config = _write(tmp_path / "c.yaml", contexts={"dev": {"cluster": "c", "user": "u", "namespace": "ns"}},
                    clusters={"c": {"server": server.url + "/prefix"}}, users={"u": {"token": "secret"}})
    api = rest.connect(KubeFlags(kubeconfig=str(config), **flags))
    assert api is not None
    return api


EMQX = "/prefix/apis/apps.emqx.io/v2beta1"


def test_reads_with_the_clients_paths_and_headers(server: FakeApiServer, tmp_path: Path) -> None:
    body = {"metadata": {"name": "demo", "namespace": "ns", "resourceVersion": "7"}}
    server.routes[f"{EMQX}/namespaces/ns/emqxes/demo"] = (200, body)
    server.routes[f"{EMQX}/emqxes"] = (200, {"items": [body]})
    server.routes["/prefix/api/v1/namespaces/ns/events?fieldSelector=involvedObject.kind%3DEMQX%2C"
                  "involvedObject.name%3Ddemo"] = (200, {"items": [{"reason": "Created"}]})
    api = _session(server, tmp_path, as_user="bob", as_groups=("g1", "g2"))
    assert api.namespace == "ns" and api.server == server.url + "/prefix"
    assert api.get_emqx("demo", "ns") == body
    assert api.list_emqx(None) == [body]
    assert api.list_events("demo", "ns") == [{"reason": "Created"}]
    assert server.connections == 1  # one kept-alive connection for every request
    headers = server.requests[0][1]
    assert ("Authorization", "Bearer secret") in headers and ("Impersonate-User", "bob") in headers
    assert [value for key, value in headers if key == "Impersonate-Group"] == ["g1", "g2"]
    assert ("Accept", "application/json") in headers
    assert any(key == "User-Agent" and value.startswith("kubectl-emqx/") for key, value in headers)


def test_statuses_become_the_same_errors(server: FakeApiServer, tmp_path: Path) -> None:
    api = _session(server, tmp_path)
    server.routes[f"{EMQX}/namespaces/ns/emqxes/gone"] = (404, {
        "code": 404, "reason": "NotFound", "details": {"name": "gone", "group": "apps.emqx.io", "kind": "emqxes"}})
    with pytest.raises(errors.NotFound):
        api.get_emqx("gone", "ns")
    with pytest.raises(errors.OperatorNotInstalled):
        api.list_emqx("ns")  # no route: a 404 naming nothing, as for an API group nobody serves
    server.routes[f"{EMQX}/namespaces/ns/emqxes"] = (403, {
        "code": 403, "reason": "Forbidden",
        "message": 'emqxes.apps.emqx.io is forbidden: User "bob" cannot list resource "emqxes"'})
    forbidden = 'you may not list emqxes.apps.emqx.io in namespace ns \\(as User "bob"\\)'
    with pytest.raises(errors.Forbidden, match=forbidden):
        api.list_emqx("ns")
    server.routes[f"{EMQX}/namespaces/ns/emqxes/boom"] = (500, "not a status")
    with pytest.raises(errors.ApiServerError, match="HTTP 500"):
        api.get_emqx("boom", "ns")


def test_watch_streams_events_and_reports_expiry(server: FakeApiServer, tmp_path: Path) -> None:
    api = _session(server, tmp_path)
    server.watch_lines = [
        {"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "8"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
    ]
    events = list(api.watch_emqx("demo", "ns", resource_version="7", timeout_seconds=5))
    assert [(event.type, event.object["metadata"]["resourceVersion"]) for event in events] == [
        ("MODIFIED", "8"), ("BOOKMARK", "9")]
    path = server.requests[-1][0]
    assert path.startswith(f"{EMQX}/namespaces/ns/emqxes?")
    for part in ("watch=true", "resourceVersion=7", "allowWatchBookmarks=true", "timeoutSeconds=5",
                 "fieldSelector=metadata.name%3Ddemo"):
        assert part in path
    server.watch_lines = [{"type": "ERROR", "object": {"code": 410, "reason": "Expired", "message": "too old"}}]
    with pytest.raises(errors.WatchExpired):
        list(api.watch_emqx("demo", "ns", resource_version="1", timeout_seconds=5))
    server.routes[f"{EMQX}/namespaces/ns/emqxes/demo"] = (200, {"metadata": {"name": "demo"}})
    assert api.get_emqx("demo", "ns") == {"metadata": {"name": "demo"}}  # the session goes on after a watch


def test_a_closed_keep_alive_connection_is_replaced(server: FakeApiServer, tmp_path: Path) -> None:
    server.routes[f"{EMQX}/namespaces/ns/emqxes"] = (200, {"items": []})
    api = _session(server, tmp_path)
    server.drop_after_response = True  # as a server does with an idle kept-alive connection
    assert api.list_emqx("ns") == []
    server.drop_after_response = False
    assert api.list_emqx("ns") == []
    assert api.list_emqx("ns") == []
    assert server.connections == 2


def test_unreachable_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _write(tmp_path / "c.yaml", contexts={"dev": {"cluster": "c", "user": "u"}},
                    clusters={"c": {"server": f"http://127.0.0.1:{port}"}}, users={"u": {}})
    api = rest.connect(KubeFlags(kubeconfig=str(config)))
    assert api is not None
    with pytest.raises(errors.ClusterUnreachable, match=(
            f"cannot reach the Kubernetes API at http://127.0.0.1:{port} \\(context dev\\): Connection refused; "
            "check --context/--kubeconfig and your network")):
        api.get_emqx("demo", "default")
