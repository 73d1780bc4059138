"""client.py without a network: the `kubernetes` client configured from the resolved kubeconfig
(KUBECONFIG lists, contexts, flag overrides, credential plugins), and the translation of API
statuses into one-line errors (errors.py, shared with rest.py). The resolver's own rules are
tabled in test_kubeconfig.py; requests are exercised against a real API server by the
integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_emqx.kube import client as kube
from kubectl_emqx.kube import errors
from kubectl_emqx.kube.kubeconfig import KubeFlags


def _kubeconfig(path: Path, *, current: str | None, contexts: dict[str, dict[str, str]],
                clusters: dict[str, dict[str, Any]], users: dict[str, dict[str, Any]]) -> Path:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "contexts": [{"name": name, "context": context} for name, context in contexts.items()],
        "clusters": [{"name": name, "cluster": cluster} for name, cluster in clusters.items()],
        "users": [{"name": name, "user": user} for name, user in users.items()],
    }
    if current:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture()
def two_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    first = _kubeconfig(
        tmp_path / "a.yaml",
        current="dev",
        contexts={"dev": {"cluster": "c-dev", "user": "u-dev", "namespace": "team-a"}},
        clusters={"c-dev": {"server": "https://dev.example:6443", "insecure-skip-tls-verify": True}},
        users={"u-dev": {"token": "dev-token"}},
    )
    second = _kubeconfig(
        tmp_path / "b.yaml",
        current="prod",  # as with kubectl, the first file that sets current-context wins
        contexts={"prod": {"cluster": "c-prod", "user": "u-prod"}},
        clusters={"c-prod": {"server": "https://prod.example:6443", "insecure-skip-tls-verify": True}},
        users={"u-prod": {"token": "prod-token"}},
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing.yaml'}:{second}")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return first, second


def _session(**flags: Any) -> kube.KubernetesClusterApi:
    api = kube.connect(KubeFlags(**flags))
    assert isinstance(api, kube.KubernetesClusterApi)
    return api


def _configuration(api: kube.KubernetesClusterApi) -> Any:
    return api._custom.api_client.configuration


def test_kubeconfig_path_list_and_context_namespace(two_files: tuple[Path, Path]) -> None:
    api = _session(context="dev")
    assert (api.context_name, api.namespace, api.server) == ("dev", "team-a", "https://dev.example:6443")
    assert _configuration(api).api_key["BearerToken"] == "Bearer dev-token"


def test_current_context_comes_from_the_first_file_that_sets_it(two_files: tuple[Path, Path]) -> None:
    assert _session().context_name == "dev"


def test_context_from_the_second_file_and_default_namespace(two_files: tuple[Path, Path]) -> None:
    api = _session(context="prod")
    assert (api.namespace, api.server) == ("default", "https://prod.example:6443")


def test_namespace_flag_wins_over_the_context(two_files: tuple[Path, Path]) -> None:
    assert _session(context="dev", namespace="other").namespace == "other"


def test_cluster_and_user_overrides(two_files: tuple[Path, Path]) -> None:
    api = _session(context="dev", cluster="c-prod", user="u-prod")
    assert api.server == "https://prod.example:6443"
    assert _configuration(api).api_key["BearerToken"] == "Bearer prod-token"
    assert api.namespace == "team-a"  # still the context's namespace


def test_server_token_and_tls_flags(two_files: tuple[Path, Path], tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not really a certificate")
    api = _session(context="dev", server="https://override:6443", token="flag-token",
                   certificate_authority=str(ca))
    configuration = _configuration(api)
    assert (api.server, configuration.api_key["BearerToken"]) == ("https://override:6443", "Bearer flag-token")
    assert configuration.ssl_ca_cert == str(ca)
    # The client's credential refresh copies the kubeconfig's cluster back: it must hold the flags too.
    configuration.refresh_api_key_hook(configuration)
    assert configuration.host == "https://override:6443"


def test_explicit_kubeconfig_file_and_missing_file(two_files: tuple[Path, Path], tmp_path: Path) -> None:
    _, second = two_files
    assert _session(kubeconfig=str(second)).context_name == "prod"
    with pytest.raises(errors.KubeconfigError, match="no such file"):
        _session(kubeconfig=str(tmp_path / "nope.yaml"))


def test_unknown_context_cluster_user(two_files: tuple[Path, Path]) -> None:
    listing = r'context "nope" not found in the kubeconfig \(contexts: dev, prod\)'
    with pytest.raises(errors.KubeconfigError, match=listing):
        _session(context="nope")
    with pytest.raises(errors.KubeconfigError, match='cluster "nope" not found'):
        _session(cluster="nope")
    with pytest.raises(errors.KubeconfigError, match='user "nope" not found'):
        _session(user="nope")


def test_no_kubeconfig_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none.yaml"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(errors.KubeconfigError, match="no kubeconfig found"):
        _session()
    api = _session(server="https://only-flags:6443", token="t", insecure_skip_tls_verify=True)
    assert (api.server, api.namespace) == ("https://only-flags:6443", "default")
    assert _configuration(api).verify_ssl is False


def test_impersonation_headers(two_files: tuple[Path, Path]) -> None:
    client = _session(as_user="bob", as_groups=("g1", "g2"))._custom.api_client
    assert client.default_headers["User-Agent"].startswith("kubectl-emqx/")
    assert client.rest_client.request.__name__ == "request_with_headers"
    impersonation = [("Impersonate-User", "bob"), ("Impersonate-Group", "g1"), ("Impersonate-Group", "g2")]
    headers = kube.headers_with({"Accept": "application/json"}, impersonation)
    assert list(headers.items()) == [
        ("Accept", "application/json"), ("Impersonate-User", "bob"),
        ("Impersonate-Group", "g1"), ("Impersonate-Group", "g2"),
    ]


def test_impersonated_requests_carry_every_header(two_files: tuple[Path, Path]) -> None:
    """The wrapper sits in front of urllib3: what reaches the pool carries one header per group."""
    api = _session(as_user="bob", as_groups=("g1", "g2"))
    rest_client = api._custom.api_client.rest_client
    sent: list[Any] = []

    class Pool:
        def request(self, method: str, url: str, **kwargs: Any) -> Any:
            sent.append(kwargs["headers"])
            raise OSError("stop here")

    rest_client.pool_manager = Pool()
    with pytest.raises(errors.ClusterUnreachable, match="stop here"):
        api.list_emqx("default")
    assert sent[0].getlist("Impersonate-Group") == ["g1", "g2"]
    assert sent[0]["Impersonate-User"] == "bob"


def test_request_timeout_defaults() -> None:
    assert KubeFlags().effective_request_timeout == kube.DEFAULT_REQUEST_TIMEOUT
    assert KubeFlags(request_timeout=5).effective_request_timeout == 5
    assert KubeFlags(request_timeout=0).effective_request_timeout is None


@pytest.mark.parametrize(
    ("status", "verb", "name", "expected"),
    [
        (
            {"code": 404, "reason": "NotFound", "message": 'emqxes.apps.emqx.io "x" not found',
             "details": {"name": "x", "group": "apps.emqx.io", "kind": "emqxes"}},
            "get", "x", errors.NotFound,
        ),
        ({"code": 404, "reason": "NotFound", "message": "the server could not find the requested resource",
          "details": {}}, "get", "x", errors.OperatorNotInstalled),
        ({"code": 404, "message": "404 page not found"}, "list", "", errors.OperatorNotInstalled),
        ({"code": 409, "reason": "AlreadyExists", "message": "exists"}, "create", "x", errors.AlreadyExists),
        ({"code": 409, "reason": "Conflict", "message": "modified"}, "patch", "x", errors.Conflict),
        ({"code": 410, "reason": "Expired", "message": "too old resource version"}, "watch", "x", errors.WatchExpired),
        ({"code": 401, "message": "Unauthorized"}, "get", "x", errors.Unauthorized),
        ({"code": 500, "message": "etcd timeout"}, "get", "x", errors.ApiServerError),
    ],
)
def test_status_translation(status: dict[str, Any], verb: str, name: str, expected: type) -> None:
    assert isinstance(errors.from_status(status, verb, "default", name), expected)


def test_forbidden_names_verb_resource_namespace_and_subject() -> None:
    error = errors.from_status(
        {"code": 403, "reason": "Forbidden",
         "message": 'emqxes.apps.emqx.io "x" is forbidden: User "bob" cannot patch resource "emqxes" in API group '
                    '"apps.emqx.io" in the namespace "prod"'},
        "patch", "prod", "x",
    )
    assert error.message == (
        'forbidden: you may not patch emqxes.apps.emqx.io in namespace prod (as User "bob"); '
        "ask your cluster admin for RBAC access"
    )


def test_invalid_lists_the_causes() -> None:
    error = errors.from_status(
        {"code": 422, "reason": "Invalid", "message": "EMQX.apps.emqx.io \"x\" is invalid",
         "details": {"causes": [{"field": "spec.coreTemplate.spec.replicas", "message": "must be >= 1"}]}},
        "create", "default", "x",
    )
    assert error.message == "the API server refused the EMQX resource: spec.coreTemplate.spec.replicas: must be >= 1"


def _verify_failure() -> Exception:
    import ssl

    failure = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate is not "
           "valid for 'wrong.example'. (_ssl.c:1006)")
    failure.verify_message = "Hostname mismatch, certificate is not valid for 'wrong.example'."
    return failure


def _urllib3(reason: Exception) -> Exception:
    from urllib3.exceptions import MaxRetryError, SSLError

    return MaxRetryError(None, "/apis", reason=SSLError(reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        ("HTTPSConnection(host='127.0.0.1', port=1): Failed to establish a new connection: [Errno 111] "
         "Connection refused", "Connection refused"),
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),  # as rest.py meets it
        (_verify_failure(), "TLS certificate verify failed: Hostname mismatch, certificate is not valid for "
                            "'wrong.example'"),
        (_urllib3(_verify_failure()), "TLS certificate verify failed: Hostname mismatch, certificate is not valid "
                                      "for 'wrong.example'"),  # as the client meets it
    ],
    ids=["urllib3 refused", "refused", "tls", "urllib3 tls"],
)
def test_short_connection_reason(cause: object, expected: str) -> None:
    assert errors.short_reason(cause) == expected


def test_relative_paths_in_a_kubeconfig_are_relative_to_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As kubectl; the client alone would read them relative to the working directory."""
    home = tmp_path / "kube"
    (home / "creds").mkdir(parents=True)
    (home / "creds" / "token").write_text("file-token\n")  # as `echo` and ServiceAccount token files end
    (home / "creds" / "ca.crt").write_text("ca")
    config = _kubeconfig(
        home / "config", current="dev",
        contexts={"dev": {"cluster": "c", "user": "u"}},
        clusters={"c": {"server": "https://dev.example:6443", "certificate-authority": "creds/ca.crt"}},
        users={"u": {"tokenFile": "creds/token"}},
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.chdir(tmp_path)
    configuration = _configuration(_session(kubeconfig=str(config)))
    assert configuration.api_key["BearerToken"] == "Bearer file-token"
    assert configuration.ssl_ca_cert == str(home / "creds" / "ca.crt")


def test_an_unreadable_token_file_is_a_kubeconfig_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _kubeconfig(
        tmp_path / "config", current="dev", contexts={"dev": {"cluster": "c", "user": "u"}},
        clusters={"c": {"server": "https://dev.example:6443"}}, users={"u": {"tokenFile": "missing-token"}},
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(errors.KubeconfigError, match=f"tokenFile {tmp_path / 'missing-token'}: No such file"):
        _session(kubeconfig=str(config))


def test_an_exec_credential_plugin_configures_the_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one path the light session leaves to the client: the client's loader runs the plugin."""
    import json
    import sys

    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": "from-the-plugin"}}
    config = _kubeconfig(
        tmp_path / "config", current="dev", contexts={"dev": {"cluster": "c", "user": "u", "namespace": "ns"}},
        clusters={"c": {"server": "https://dev.example:6443", "insecure-skip-tls-verify": True}},
        users={"u": {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                              "args": ["-c", f"print({json.dumps(json.dumps(credential))})"],
                              "interactiveMode": "Never"}}},
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    api = _session(kubeconfig=str(config))
    assert api.endpoint.needs_client and "exec" in api.endpoint.needs_client
    assert (api.server, api.namespace, api.context_name) == ("https://dev.example:6443", "ns", "dev")
    assert _configuration(api).api_key["BearerToken"] == "Bearer from-the-plugin"


def test_the_client_takes_the_proxy_from_the_endpoint_only(
    two_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client reads proxies from the environment by itself (even for loopback servers, which Go
    never proxies); the resolver's answer wins."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert _configuration(_session(context="dev")).proxy == "http://proxy.example:3128"
    monkeypatch.setenv("NO_PROXY", ".example")
    assert _configuration(_session(context="dev")).proxy is None
