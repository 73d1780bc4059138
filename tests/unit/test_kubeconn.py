"""kubeconn.Connection.from_info: the TLS context trusts what the credentials say, and no more."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import kopf
import pytest
from emqx_operator.kubeconn import Connection


@pytest.fixture(scope="module")
def ca_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=test-ca",
                    "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.pem")],
                   check=True, capture_output=True)
    return directory / "ca.pem"


def _ca_count(connection: Connection) -> int:
    assert connection.ssl_context is not None
    return int(connection.ssl_context.cert_store_stats()["x509_ca"])


def test_a_named_ca_file_is_the_only_trusted_ca(ca_pem: Path) -> None:
    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", ca_path=str(ca_pem), token="t")
    assert _ca_count(Connection.from_info(info)) == 1


def test_ca_data_is_the_only_trusted_ca(ca_pem: Path) -> None:
    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", ca_data=base64.b64encode(ca_pem.read_bytes()),
                               token="t")
    assert _ca_count(Connection.from_info(info)) == 1


def test_without_a_ca_the_system_trust_is_used(ca_pem: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))  # the "system" bundle, for this test
    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="t")
    connection = Connection.from_info(info)
    assert _ca_count(connection) == 1 and connection.ssl_context is not None
    assert connection.ssl_context.verify_mode.name == "CERT_REQUIRED"


def test_plain_http_has_no_tls_context() -> None:
    assert Connection.from_info(kopf.ConnectionInfo(server="http://127.0.0.1:8080")).ssl_context is None
