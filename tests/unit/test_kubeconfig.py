"""kubeconfig.resolve(): kubectl's rules for the kubeconfig and the global flags, table by table --
files and merging, each flag, each precedence rule, relative paths, in-cluster, proxies, what only
the client can serve, and every problem as one line. Both sessions are built from its answer
(test_rest.py, test_cli_kube.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_emqx.kube import errors, kubeconfig
from kubectl_emqx.kube.kubeconfig import Impersonation, KubeFlags, Pem

CA_DATA = b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"


def _document(*, current: str | None = None, clusters: dict[str, Any] | None = None,
              users: dict[str, Any] | None = None, contexts: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current:
        document["current-context"] = current
    return document


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
                 "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kube/config
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT_DIR", str(tmp_path / "no-service-account"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two kubeconfigs in different directories, each with credentials beside it, on $KUBECONFIG
    (with a missing file between them): a.yaml (YAML) then b/config.json (JSON)."""
    for directory in (tmp_path / "a-creds", tmp_path / "b" / "creds"):
        directory.mkdir(parents=True)
        for name in ("ca.crt", "client.crt", "client.key"):
            (directory / name).write_text(f"{directory.name} {name}\n")
        (directory / "token").write_text(f"{directory.parent.name}-file-token\n")
    first = _document(
        current="dev",
        contexts={"dev": {"cluster": "c-dev", "user": "u-dev", "namespace": "team-a"},
                  "certs": {"cluster": "c-files", "user": "u-files"},
                  "shared": {"cluster": "c-dev", "user": "u-dev", "namespace": "from-a"}},
        clusters={"c-dev": {"server": "https://dev.example:6443/", "tls-server-name": "api.dev",
                            "certificate-authority-data": base64.b64encode(CA_DATA).decode()},
                  "c-files": {"server": "https://files.example", "certificate-authority": "a-creds/ca.crt"}},
        users={"u-dev": {"token": "dev-token", "as": "deployer", "as-groups": ["ops"], "as-uid": "42",
                         "as-user-extra": {"reason": ["audit", "oncall"]}},
               "u-files": {"client-certificate": "a-creds/client.crt", "client-key": "a-creds/client.key"}},
    )
    second = _document(
        current="prod",  # the first file that sets current-context wins: dev
        contexts={"prod": {"cluster": "c-prod", "user": "u-prod"},
                  "shared": {"cluster": "c-prod", "user": "u-prod", "namespace": "from-b"}},
        clusters={"c-prod": {"server": "https://prod.example:6443", "certificate-authority": "creds/ca.crt"},
                  "c-dev": {"server": "https://shadowed.example"}},
        users={"u-prod": {"tokenFile": "creds/token", "client-certificate": "creds/client.crt",
                          "client-key": "creds/client.key"},
               "u-both": {"token": "inline", "tokenFile": "creds/token"},
               "u-basic": {"username": "admin", "password": "secret"}},
    )
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(first))
    (tmp_path / "b" / "config.json").write_text(json.dumps(second))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a.yaml'}:{tmp_path / 'missing.yaml'}:{tmp_path / 'b/config.json'}")
    return tmp_path


def _summary(endpoint: kubeconfig.Endpoint, root: Path) -> dict[str, Any]:
    """The endpoint with paths relative to the test directory, for compact tables."""

    def pem(value: Pem | None) -> str | None:
        if value is None:
            return None
        if value.file:
            return str(Path(value.file).relative_to(root)) if Path(value.file).is_absolute() else value.file
        return f"data:{len(value.data or b'')}"

    return {
        "server": endpoint.server, "context": endpoint.context_name, "namespace": endpoint.namespace,
        "ca": pem(endpoint.ca), "insecure": endpoint.insecure, "tls_server_name": endpoint.tls_server_name,
        "cert": pem(endpoint.client_certificate), "key": pem(endpoint.client_key), "token": endpoint.token,
    }


DEV = {"server": "https://dev.example:6443", "context": "dev", "namespace": "team-a", "ca": f"data:{len(CA_DATA)}",
       "insecure": False, "tls_server_name": "api.dev", "cert": None, "key": None, "token": "dev-token"}
PROD = {"server": "https://prod.example:6443", "context": "prod", "namespace": "default", "ca": "b/creds/ca.crt",
        "insecure": False, "tls_server_name": None, "cert": "b/creds/client.crt", "key": "b/creds/client.key",
        "token": "b-file-token"}

RESOLUTIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("current-context from the first file that sets it", {}, DEV),
    ("--context from a later file; relative paths against that file", {"context": "prod"}, PROD),
    ("the first context of a name wins", {"context": "shared"}, {**DEV, "context": "shared", "namespace": "from-a"}),
    ("the first cluster of a name wins", {"context": "shared", "user": "u-prod"},
     {**PROD, "context": "shared", "namespace": "from-a", "server": "https://dev.example:6443",
      "ca": f"data:{len(CA_DATA)}", "tls_server_name": "api.dev"}),
    ("relative paths of the first file", {"context": "certs"},
     {**DEV, "context": "certs", "server": "https://files.example", "namespace": "default", "ca": "a-creds/ca.crt",
      "tls_server_name": None, "cert": "a-creds/client.crt", "key": "a-creds/client.key", "token": None}),
    ("-n wins over the context's namespace", {"namespace": "other"}, {**DEV, "namespace": "other"}),
    ("--cluster and --user replace the context's", {"cluster": "c-prod", "user": "u-prod"},
     {**PROD, "context": "dev", "namespace": "team-a"}),
    ("token wins over tokenFile", {"user": "u-both"}, {**DEV, "token": "inline"}),
    ("--server replaces the server and drops the file's tls-server-name", {"server": "https://other:6443"},
     {**DEV, "server": "https://other:6443", "tls_server_name": None}),
    ("--server with --tls-server-name", {"server": "https://other:6443", "tls_server_name": "api.other"},
     {**DEV, "server": "https://other:6443", "tls_server_name": "api.other"}),
    ("--tls-server-name alone", {"tls_server_name": "api.x"}, {**DEV, "tls_server_name": "api.x"}),
    ("--certificate-authority replaces CA data", {"certificate_authority": "a-creds/ca.crt"},
     {**DEV, "ca": "a-creds/ca.crt"}),
    ("--insecure-skip-tls-verify drops the CA", {"insecure_skip_tls_verify": True},
     {**DEV, "ca": None, "insecure": True}),
    ("both TLS flags: the flags' values",
     {"insecure_skip_tls_verify": True, "certificate_authority": "a-creds/ca.crt"},
     {**DEV, "ca": "a-creds/ca.crt", "insecure": True}),
    ("--token replaces the user's credentials, client certificates too", {"context": "prod", "token": "flag"},
     {**PROD, "token": "flag", "cert": None, "key": None}),
    ("--kubeconfig reads that file only", {"kubeconfig": "b/config.json"}, PROD),
]


@pytest.mark.parametrize(("flags", "expected"), [(f, e) for _, f, e in RESOLUTIONS], ids=[i for i, _, _ in RESOLUTIONS])
def test_resolution(home: Path, flags: dict[str, Any], expected: dict[str, Any]) -> None:
    endpoint = kubeconfig.resolve(KubeFlags(**flags))
    assert _summary(endpoint, home) == expected
    assert endpoint.needs_client is None


def test_certificate_authority_flag_clears_insecure(home: Path) -> None:
    """clientcmd: --certificate-authority takes the flag's insecure value (false), not the file's."""
    config = _document(current="x", contexts={"x": {"cluster": "c"}},
                       clusters={"c": {"server": "https://x.example", "insecure-skip-tls-verify": True}})
    (home / "insecure.yaml").write_text(yaml.safe_dump(config))
    endpoint = kubeconfig.resolve(KubeFlags(kubeconfig="insecure.yaml", certificate_authority="a-creds/ca.crt"))
    assert (endpoint.insecure, endpoint.ca) == (False, Pem(file="a-creds/ca.crt"))
    assert kubeconfig.resolve(KubeFlags(kubeconfig="insecure.yaml")).insecure is True


def test_basic_auth(home: Path) -> None:
    assert kubeconfig.resolve(KubeFlags(user="u-basic")).basic_auth == ("admin", "secret")


IMPERSONATIONS = [
    ("the kubeconfig's as, as-groups, as-uid, as-user-extra", {},
     Impersonation("deployer", "42", ("ops",), (("reason", "audit"), ("reason", "oncall")))),
    ("--as replaces as, keeps the rest", {"as_user": "bob"},
     Impersonation("bob", "42", ("ops",), (("reason", "audit"), ("reason", "oncall")))),
    ("--as-group replaces as-groups", {"as_user": "bob", "as_groups": ("g1", "g2")},
     Impersonation("bob", "42", ("g1", "g2"), (("reason", "audit"), ("reason", "oncall")))),
    ("a user without impersonation", {"context": "prod"}, None),
    ("--as on any user", {"context": "prod", "as_user": "bob", "as_groups": ("g",)},
     Impersonation("bob", None, ("g",))),
]


@pytest.mark.parametrize(("flags", "expected"), [(f, e) for _, f, e in IMPERSONATIONS],
                         ids=[i for i, _, _ in IMPERSONATIONS])
def test_impersonation(home: Path, flags: dict[str, Any], expected: Impersonation | None) -> None:
    assert kubeconfig.resolve(KubeFlags(**flags)).impersonation == expected


def test_impersonation_headers() -> None:
    headers = Impersonation("bob", "42", ("g1", "g2"), (("reason/why", "a"), ("reason/why", "b"))).headers()
    assert headers == [("Impersonate-User", "bob"), ("Impersonate-Uid", "42"), ("Impersonate-Group", "g1"),
                       ("Impersonate-Group", "g2"), ("Impersonate-Extra-reason%2Fwhy", "a"),
                       ("Impersonate-Extra-reason%2Fwhy", "b")]


def test_default_kubeconfig_and_plain_http(tmp_path: Path) -> None:
    """~/.kube/config without $KUBECONFIG; an http server needs no TLS material (a stale CA path is
    not even looked at)."""
    (tmp_path / "home" / ".kube").mkdir(parents=True)
    (tmp_path / "home" / ".kube" / "config").write_text(yaml.safe_dump(_document(
        current="local", contexts={"local": {"cluster": "c", "user": "u"}},
        clusters={"c": {"server": "http://127.0.0.1:8080", "certificate-authority": "gone.crt"}},
        users={"u": {"token": "t"}})))
    endpoint = kubeconfig.resolve(KubeFlags())
    assert (endpoint.server, endpoint.ca, endpoint.token, endpoint.secure) == (
        "http://127.0.0.1:8080", None, "t", False)


def test_server_flag_without_any_kubeconfig() -> None:
    endpoint = kubeconfig.resolve(KubeFlags(server="https://only-flags:6443", token="t", insecure_skip_tls_verify=True))
    assert (endpoint.server, endpoint.context_name, endpoint.namespace, endpoint.token, endpoint.insecure) == (
        "https://only-flags:6443", "(flags)", "default", "t", True)


def test_an_empty_file_merges_as_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "empty.yaml").write_text("")
    monkeypatch.setenv("KUBECONFIG", f"{home / 'empty.yaml'}:{home / 'b/config.json'}")
    assert kubeconfig.resolve(KubeFlags()).context_name == "prod"


# --- credential plugins, proxies: what only the client serves ---------------------------------


def test_exec_command_paths(home: Path) -> None:
    """An exec command with a slash is relative to its kubeconfig; a bare name is looked up on PATH."""
    config = _document(current="x", contexts={"x": {"cluster": "c", "user": "u"}},
                       clusters={"c": {"server": "https://x.example"}},
                       users={"u": {"exec": {"command": "bin/get-token", "apiVersion": "v1"}},
                              "path": {"exec": {"command": "get-token", "apiVersion": "v1"}}})
    (home / "sub").mkdir()
    (home / "sub" / "config").write_text(yaml.safe_dump(config))
    endpoint = kubeconfig.resolve(KubeFlags(kubeconfig="sub/config"))
    command = str(home / "sub" / "bin" / "get-token")
    assert endpoint.credential_plugin == {"exec": {"command": command, "apiVersion": "v1"}}
    assert endpoint.needs_client is not None and "exec plugin" in endpoint.needs_client
    on_path = kubeconfig.resolve(KubeFlags(kubeconfig="sub/config", user="path"))
    assert on_path.credential_plugin == {"exec": {"command": "get-token", "apiVersion": "v1"}}
    assert kubeconfig.resolve(KubeFlags(kubeconfig="sub/config", token="t")).needs_client is None


def test_auth_provider_needs_the_client(home: Path) -> None:
    config = _document(current="x", contexts={"x": {"cluster": "c", "user": "u"}},
                       clusters={"c": {"server": "https://x.example"}},
                       users={"u": {"auth-provider": {"name": "oidc", "config": {}}}})
    (home / "oidc.yaml").write_text(yaml.safe_dump(config))
    reason = kubeconfig.resolve(KubeFlags(kubeconfig="oidc.yaml")).needs_client
    assert reason is not None and "auth-provider" in reason


PROXIES = [
    ("none", "https://api.example", {}, None),
    ("HTTPS_PROXY for https", "https://api.example", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
    ("lower case, no scheme", "https://api.example", {"https_proxy": "p:3128"}, "http://p:3128"),
    ("HTTP_PROXY is not for https", "https://api.example", {"HTTP_PROXY": "http://p:3128"}, None),
    ("HTTP_PROXY for http", "http://api.example", {"HTTP_PROXY": "http://p:3128"}, "http://p:3128"),
    ("never loopback", "https://127.0.0.1:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
    ("never localhost", "https://localhost:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
    ("NO_PROXY domain and subdomains", "https://api.example", {"HTTPS_PROXY": "p:1", "NO_PROXY": "example"}, None),
    ("NO_PROXY leading dot: subdomains only", "https://example", {"HTTPS_PROXY": "p:1", "NO_PROXY": ".example"},
     "http://p:1"),
    ("NO_PROXY *", "https://api.example", {"HTTPS_PROXY": "p:1", "NO_PROXY": "*"}, None),
    ("NO_PROXY CIDR", "https://10.1.2.3", {"HTTPS_PROXY": "p:1", "NO_PROXY": "10.0.0.0/8"}, None),
    ("NO_PROXY port must match", "https://api.example:6443", {"HTTPS_PROXY": "p:1", "NO_PROXY": "api.example:443"},
     "http://p:1"),
    ("NO_PROXY host:port", "https://api.example:6443", {"HTTPS_PROXY": "p:1", "no_proxy": "x, api.example:6443"}, None),
]


@pytest.mark.parametrize(("server", "environment", "expected"), [(s, env, e) for _, s, env, e in PROXIES],
                         ids=[i for i, _, _, _ in PROXIES])
def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch, server: str, environment: dict[str, str],
                                    expected: str | None) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    endpoint = kubeconfig.resolve(KubeFlags(server=server))
    assert endpoint.proxy == expected
    assert (endpoint.needs_client is not None) == (expected is not None)


def test_proxy_url_of_the_cluster_wins(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _document(current="x", contexts={"x": {"cluster": "c"}},
                       clusters={"c": {"server": "https://127.0.0.1:6443", "proxy-url": "socks5://p:1080"}})
    (home / "proxied.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("HTTPS_PROXY", "http://ignored:3128")
    assert kubeconfig.resolve(KubeFlags(kubeconfig="proxied.yaml")).proxy == "socks5://p:1080"


# --- in-cluster -------------------------------------------------------------------------------


@pytest.fixture()
def in_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token\n")
    (account / "ca.crt").write_text("ca")
    (account / "namespace").write_text("ops\n")
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT_DIR", str(account))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    return account


IN_CLUSTER = [
    ("the ServiceAccount", {}, {}, ("https://[fd00::1]:443", "ops", "pod-token", "ca.crt")),
    ("-n", {"namespace": "x"}, {}, ("https://[fd00::1]:443", "x", "pod-token", "ca.crt")),
    ("$POD_NAMESPACE", {}, {"POD_NAMESPACE": "p"}, ("https://[fd00::1]:443", "p", "pod-token", "ca.crt")),
    ("--token", {"token": "t"}, {}, ("https://[fd00::1]:443", "ops", "t", "ca.crt")),
]


@pytest.mark.parametrize(("flags", "environment", "expected"), [(f, e, x) for _, f, e, x in IN_CLUSTER],
                         ids=[i for i, _, _, _ in IN_CLUSTER])
def test_in_cluster(in_pod: Path, monkeypatch: pytest.MonkeyPatch, flags: dict[str, Any],
                    environment: dict[str, str], expected: tuple[str, str, str, str]) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    endpoint = kubeconfig.resolve(KubeFlags(**flags))
    assert endpoint.context_name == "in-cluster"
    assert endpoint.ca is not None and endpoint.ca.file is not None
    assert (endpoint.server, endpoint.namespace, endpoint.token, Path(endpoint.ca.file).name) == expected


def test_in_cluster_only_without_a_kubeconfig_or_selecting_flags(in_pod: Path, home: Path) -> None:
    assert kubeconfig.resolve(KubeFlags()).context_name == "dev"  # a kubeconfig wins
    assert kubeconfig.resolve(KubeFlags(kubeconfig="b/config.json")).context_name == "prod"


def test_not_in_cluster_without_the_token(in_pod: Path) -> None:
    (in_pod / "token").unlink()
    with pytest.raises(errors.KubeconfigError, match="no kubeconfig found"):
        kubeconfig.resolve(KubeFlags())


# --- problems: one line each, naming the fix ---------------------------------------------------

BAD_DOCUMENTS: list[tuple[str, str, dict[str, Any], str]] = [
    ("no current context", "x.yaml", {"contexts": [{"name": "a", "context": {"cluster": "c"}}]},
     r"the kubeconfig has no current context; pass --context \(contexts: a\)"),
    ("a context without a cluster", "x.yaml", _document(current="a", contexts={"a": {"user": "u"}}, users={"u": {}}),
     'context "a" names no cluster; pass --cluster or --server'),
    ("a cluster without a server", "x.yaml", _document(current="a", contexts={"a": {"cluster": "c"}},
                                                       clusters={"c": {}}),
     'cluster "c" has no server; pass --server'),
    ("a server that is no URL", "x.yaml", _document(current="a", contexts={"a": {"cluster": "c"}},
                                                    clusters={"c": {"server": "api.example:6443"}}),
     r"server 'api.example:6443' is not an http\(s\) URL"),
    ("a port that is no number", "x.yaml", _document(current="a", contexts={"a": {"cluster": "c"}},
                                                     clusters={"c": {"server": "https://x:api"}}),
     r"server 'https://x:api' is not an http\(s\) URL"),
    ("a missing CA file", "x.yaml",
     _document(current="a", contexts={"a": {"cluster": "c"}},
               clusters={"c": {"server": "https://x", "certificate-authority": "ca.crt"}}),
     "cannot read the kubeconfig's certificate-authority {root}/ca.crt: No such file or directory"),
    ("a missing client key", "x.yaml", _document(current="a", contexts={"a": {"cluster": "c", "user": "u"}},
                                                 clusters={"c": {"server": "https://x"}},
                                                 users={"u": {"client-certificate-data": "Y2VydA=="}}),
     'user "u" has a client-certificate but no client-key \\(or client-key-data\\); give both'),
    ("a missing tokenFile", "x.yaml", _document(current="a", contexts={"a": {"cluster": "c", "user": "u"}},
                                                clusters={"c": {"server": "https://x"}},
                                                users={"u": {"tokenFile": "creds/token"}}),
     "cannot read the kubeconfig's tokenFile {root}/creds/token: No such file or directory"),
    ("bad base64", "x.yaml", _document(current="a", contexts={"a": {"cluster": "c"}},
                                       clusters={"c": {"server": "https://x", "certificate-authority-data": "%%"}}),
     'certificate-authority-data of cluster "c" is not valid base64'),
    ("a bad boolean", "x.yaml", _document(current="a", contexts={"a": {"cluster": "c"}},
                                          clusters={"c": {"server": "https://x", "insecure-skip-tls-verify": "yes"}}),
     "insecure-skip-tls-verify: 'yes' is not true or false"),
    ("as-groups without as", "x.yaml", _document(current="a", contexts={"a": {"cluster": "c", "user": "u"}},
                                                 clusters={"c": {"server": "https://x"}},
                                                 users={"u": {"as-groups": ["g"]}}),
     "the kubeconfig's as-groups/as-uid/as-user-extra impersonates no user: pass --as USER too"),
    ("an entry without a name", "x.yaml", {"clusters": [{"cluster": {"server": "https://x"}}]},
     r"kubeconfig {root}/x.yaml: clusters\[0\] has no name"),
    ("not a mapping", "x.yaml", ["a", "list"], r"kubeconfig {root}/x.yaml is not a kubeconfig"),
]


@pytest.mark.parametrize(("name", "document", "message"), [(n, d, m) for _, n, d, m in BAD_DOCUMENTS],
                         ids=[i for i, _, _, _ in BAD_DOCUMENTS])
def test_bad_kubeconfigs(tmp_path: Path, name: str, document: Any, message: str) -> None:
    (tmp_path / name).write_text(yaml.safe_dump(document))
    with pytest.raises(errors.KubeconfigError) as raised:
        kubeconfig.resolve(KubeFlags(kubeconfig=str(tmp_path / name)))
    text = str(raised.value)
    assert "\n" not in text
    import re

    assert re.search(message.replace("{root}", re.escape(str(tmp_path))), text), text


BAD_FLAGS: list[tuple[str, dict[str, Any], str]] = [
    ("--kubeconfig missing", {"kubeconfig": "nope.yaml"}, "--kubeconfig nope.yaml: no such file"),
    ("unknown --context", {"context": "nope"},
     r'context "nope" not found in the kubeconfig \(contexts: certs, dev, prod, shared\)'),
    ("unknown --cluster", {"cluster": "nope"}, 'cluster "nope" not found in the kubeconfig'),
    ("unknown --user", {"user": "nope"}, 'user "nope" not found in the kubeconfig'),
    ("missing --certificate-authority", {"certificate_authority": "nope.crt"},
     "cannot read --certificate-authority nope.crt: No such file or directory"),
    ("--as-group without --as", {"context": "prod", "as_groups": ("g",)}, "--as-group impersonates no user: pass --as"),
]


@pytest.mark.parametrize(("flags", "message"), [(f, m) for _, f, m in BAD_FLAGS], ids=[i for i, _, _ in BAD_FLAGS])
def test_bad_flags(home: Path, flags: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.KubeconfigError, match=message) as raised:
        kubeconfig.resolve(KubeFlags(**flags))
    assert "\n" not in str(raised.value)


def test_no_kubeconfig_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.KubeconfigError, match=r"no kubeconfig found at ~/.kube/config; set KUBECONFIG"):
        kubeconfig.resolve(KubeFlags())
    (tmp_path / "empty.yaml").write_text("\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "empty.yaml"))
    with pytest.raises(errors.KubeconfigError, match=r"the kubeconfig .*empty.yaml is empty"):
        kubeconfig.resolve(KubeFlags())
    with pytest.raises(errors.KubeconfigError, match='context "x" not found in the kubeconfig \\(contexts: none\\)'):
        kubeconfig.resolve(KubeFlags(context="x"))


def test_unparsable_yaml_is_one_line_with_the_position(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("clusters:\n  - name: [\n")
    with pytest.raises(errors.KubeconfigError) as raised:
        kubeconfig.resolve(KubeFlags(kubeconfig=str(tmp_path / "bad.yaml")))
    text = str(raised.value)
    assert text.startswith(f"cannot parse kubeconfig {tmp_path / 'bad.yaml'}: ") and "\n" not in text
    assert "line 3, column 1" in text


def test_json_kubeconfigs_do_not_import_yaml(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "c.json").write_text(json.dumps(_document(current="a", contexts={"a": {"cluster": "c"}},
                                                          clusters={"c": {"server": "https://x"}})))
    probe = ("import sys; from kubectl_emqx.kube import kubeconfig as k; "
             f"print(k.resolve(k.KubeFlags(kubeconfig={str(tmp_path / 'c.json')!r})).server, 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["https://x", "False"]
