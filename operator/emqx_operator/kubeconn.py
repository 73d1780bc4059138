"""Where the Kubernetes API is and who the operator is there: one answer for kopf and for ClusterApi.

kopf's own login functions read the in-cluster service account (token, CA, namespace) or, out of
the cluster, the current context of $KUBECONFIG (certificates, tokens, basic auth; no exec plugins:
the operator is meant to run in the cluster). The operator hands the same ConnectionInfo to kopf's
login handler and builds its own HTTP client from it, so there is one interpretation of the
credentials and the kubernetes client library is never imported (it costs ~40 MiB of RSS).
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
TOKEN_REREAD_SECONDS = 60.0  # the kubelet rotates bound service-account tokens in place


class ConnectionError_(Exception):  # noqa: N801 - not the builtin
    pass


def login_info(kubeconfig: str | None = None) -> Any:
    """kopf.ConnectionInfo for this process: in-cluster first (unless a kubeconfig is given), then
    $KUBECONFIG's current context."""
    import kopf

    settings = kopf.OperatorSettings()
    info = None
    if kubeconfig is None:
        info = kopf.login_with_service_account(settings=settings)
    if info is None:
        info = kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise ConnectionError_("no Kubernetes credentials: not in a cluster and no kubeconfig ($KUBECONFIG)")
    return info


@dataclass
class Connection:
    """An API server endpoint with TLS settings and credentials (from kopf's ConnectionInfo)."""

    server: str
    ssl_context: ssl.SSLContext | None
    token: str | None = None
    basic: tuple[str, str] | None = None
    default_namespace: str | None = None
    token_file: str | None = None  # re-read now and then (in-cluster, rotated tokens)
    _read_at: float = 0.0
    _lock: threading.Lock | None = None

    @classmethod
    def from_info(cls, info: Any) -> Connection:
        server = str(info.server).rstrip("/")
        context = None
        if server.startswith("https"):
            # The cluster's CA alone when the credentials name one (as kubectl trusts it), the
            # system's CAs only when they do not: each context loading the system bundle holds its
            # own parsed copy (~1 MiB, docs/internals.md "Memory").
            ca_file = info.ca_path or None
            ca_text = _text(info.ca_data) if info.ca_data and not ca_file else None
            context = ssl.create_default_context(cafile=ca_file, cadata=ca_text)
            if info.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            cert = info.certificate_path or info.certificate_data
            if cert:
                with _files(info.certificate_path, info.certificate_data, info.private_key_path,
                            info.private_key_data) as (certfile, keyfile):
                    context.load_cert_chain(certfile, keyfile)
        basic = (str(info.username), str(info.password or "")) if info.username else None
        in_cluster = info.token and os.path.exists(TOKEN_FILE) and server == "https://kubernetes.default.svc"
        return cls(server, context, token=info.token, basic=basic, default_namespace=info.default_namespace,
                   token_file=TOKEN_FILE if in_cluster else None, _read_at=time.monotonic(), _lock=threading.Lock())

    def headers(self) -> dict[str, str]:
        if self.token_file and time.monotonic() - self._read_at > TOKEN_REREAD_SECONDS:
            assert self._lock is not None
            with self._lock:
                try:
                    with open(self.token_file, encoding="utf-8") as handle:
                        self.token = handle.read().strip() or self.token
                except OSError:
                    pass
                self._read_at = time.monotonic()
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.basic:
            pair = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        return {}


def _text(data: str | bytes) -> str:
    """kubeconfig *-data fields are base64 of PEM text."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        return base64.b64decode(raw, validate=True).decode()
    except ValueError:
        return raw.decode()


@contextlib.contextmanager
def _files(cert_path: str | None, cert_data: str | None, key_path: str | None, key_data: str | None
           ) -> Iterator[tuple[str, str | None]]:
    """ssl wants files: data fields go to private temporary files, removed once loaded."""
    made: list[str] = []
    try:
        def file_of(path: str | None, data: str | None) -> str | None:
            if path:
                return path
            if not data:
                return None
            handle, name = tempfile.mkstemp(prefix="emqx-operator-")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(_text(data))
            made.append(name)
            return name

        cert = file_of(cert_path, cert_data)
        assert cert is not None
        yield cert, file_of(key_path, key_data)
    finally:
        for name in made:
            with contextlib.suppress(OSError):
                os.unlink(name)
