"""`kubectl emqx backup NAME -f FILE` and `kubectl emqx restore NAME -f FILE`: EMQX's data export and
import (HTTP API from 5.4.0), reached through a port-forward to a ready core (as `dashboard`), with
the operator's API key or the dashboard login, both read from the Secret NAME-bootstrap-api-key.

An export holds the cluster-level configuration (cluster.hocon: what was changed through the
dashboard or the API; emqx.conf, i.e. spec.config, is not in it) and the built-in data (API keys,
dashboard users, banned clients, built-in authentication and ACL, ...). EMQX writes the archive on
the node that served the request; the plugin downloads it and deletes it there. A restore uploads
the archive to one core and imports it there: configuration roots are replaced, built-in data is
merged (records of the archive win, others stay), cluster-wide.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from kubectl_emqx.cli.common import confirm, info, load_cluster, warn
from kubectl_emqx.cli.options import Duration, EmqxCommand, kube_options, name_argument, state, yes_option
from kubectl_emqx.kube import errors

if TYPE_CHECKING:
    from kubectl_emqx.emqx.api import EmqxApi

AUTH_CHOICES = ("auto", "api-key", "dashboard")
DEFAULT_TIMEOUT = 300.0


def _auth_option(func: Any) -> Any:
    return click.option(
        "--auth", type=click.Choice(AUTH_CHOICES), default="auto", show_default=True,
        help="How to log in to EMQX: the operator's API key, or the dashboard user admin with the password "
        "the operator generated. auto: the dashboard login on the releases where EMQX leaves API keys and "
        "dashboard users out for API-key callers (e5.8.11, e5.9.3, e5.10.4 and later), the API key elsewhere.",
    )(func)


def _timeout_option(func: Any) -> Any:
    return click.option("--timeout", type=Duration(), default=None,
                        help="How long EMQX may take to answer (default 5m; an import answers when it is done).")(func)


@click.command("backup", cls=EmqxCommand)
@name_argument
@click.option("-f", "--filename", "target", required=True, metavar="FILE",
              help="Where to write the archive (a directory: EMQX's file name inside it; - for stdout).")
@click.option("--keep-on-node", is_flag=True, help="Leave EMQX's copy in the node's data/backup directory.")
@_auth_option
@_timeout_option
@kube_options
def backup(name: str, target: str, keep_on_node: bool, auth: str, timeout: float | None) -> None:
    """Export cluster NAME's configuration and built-in data with EMQX's data backup (5.4.0 and
    later): cluster.hocon (what was changed through the dashboard or the API; spec.config is in the
    resource already) and the built-in database (API keys, dashboard users, banned clients, built-in
    authentication and ACL, PSK, retained messages). Restore it with `kubectl emqx restore`.

    \b
    Examples:
      kubectl emqx backup demo -f demo-backup.tar.gz
      kubectl emqx backup demo -f ./backups/
    """
    from kubectl_emqx.domain import versions
    from kubectl_emqx.view import backup as archive_view

    session = open_session(name, auth, timeout)
    client = session.client
    export_body: dict[str, Any] | None = {} if session.version >= versions.DATA_EXPORT_BODY_SINCE else None
    try:
        exported = client.data_export(export_body)
        filename, node = str(exported["filename"]), str(exported.get("node") or "")
        data = client.data_download(filename, node or None)
        if not keep_on_node:
            client.data_delete(filename, node or None)
    except _emqx_errors() as exc:
        raise session.failure("export", exc) from None
    try:
        summary = archive_view.read(data)
    except archive_view.ArchiveError as exc:
        raise errors.PluginError(f"EMQX answered the download of {filename} with something else: {exc}") from None
    written = _write(target, filename, data)
    info(f"{session.where}: exported from {session.pod} ({'kept' if keep_on_node else 'removed'} on the node)")
    for line in summary.lines():
        info(f"  {line}")
    if session.restricted_key:
        warn("EMQX leaves API keys and dashboard users out of an export made with an API key on this release; "
             "use --auth dashboard for them")
    if written:
        info(f"wrote {written}")


@click.command("restore", cls=EmqxCommand)
@name_argument
@click.option("-f", "--filename", "source", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="An archive written by `kubectl emqx backup` (or EMQX's own export; - for stdin).")
@click.option("--dry-run", is_flag=True, help="Print what the archive holds and what would change; change nothing.")
@yes_option
@_auth_option
@_timeout_option
@kube_options
def restore(name: str, source: str, dry_run: bool, yes: bool, auth: str, timeout: float | None) -> None:
    """Import a backup into cluster NAME with EMQX's data import (5.4.0 and later): the configuration
    roots in the archive replace the cluster's (on every node at once, and in their cluster.hocon),
    built-in data is merged (records in the archive win, others stay). Asks before it overwrites.

    EMQX's rules apply, and are checked here first: an archive from a newer minor release than the
    cluster runs is refused, and an Enterprise archive never goes into Opensource. Keys that
    spec.config also sets take spec.config's value again when a node restarts.

    \b
    Examples:
      kubectl emqx restore demo -f demo-backup.tar.gz --dry-run
      kubectl emqx restore demo -f demo-backup.tar.gz --yes
    """
    from kubectl_emqx.domain import versions
    from kubectl_emqx.view import backup as archive_view

    data = _read(source)
    try:
        summary = archive_view.read(data)
    except archive_view.ArchiveError as exc:
        raise errors.PluginError(f"{source}: {exc}") from None
    api = state().api()
    body = load_cluster(api, name, api.namespace)
    edition, version = cluster_release(body)
    where = f"{body['metadata']['namespace']}/{name}"
    refusal = versions.data_backup_refusal(edition, version) or versions.backup_importable(
        summary.edition, summary.version, edition, version)
    if refusal:
        raise errors.PluginError(f"{where} runs EMQX {edition} {versions.format_version(version)}: {refusal}; "
                                 "nothing was changed")
    overlap = _spec_overlap(body, summary)
    header = f"restore {where} from {source}"
    if dry_run:
        click.echo(f"{header} (dry run, nothing changed)")
        for line in summary.lines() + overlap:
            click.echo(f"  {line}")
        return
    info(header)
    for line in summary.lines():
        info(f"  {line}")
    for line in overlap:
        warn(line)
    confirm(f"Overwrite the configuration of {where} with the archive's, and merge its built-in data?", yes)
    session = open_session(name, auth, timeout, api=api, body=body)
    client = session.client
    if session.restricted_key and any(t in summary.tables for t in ("emqx_app", "emqx_admin")):
        raise errors.PluginError(
            f"{where}: EMQX {session.release} refuses an archive holding API keys or dashboard users from an "
            "API-key caller; run again with --auth dashboard")
    try:
        try:
            client.data_upload(summary.name, data)
        except _emqx_errors() as exc:
            if getattr(exc, "status", None) != 400 or "already exists" not in getattr(exc, "message", ""):
                raise
            client.data_delete(summary.name)  # a copy of this very export (EMQX names files to the ms)
            client.data_upload(summary.name, data)
        try:
            client.data_import(summary.name)
        finally:
            try:
                client.data_delete(summary.name)
            except _emqx_errors():
                pass
    except _emqx_errors() as exc:
        raise session.failure("import", exc) from None
    info(f"{where}: restored through {session.pod}; EMQX applied it to every node")


# --- the session: a ready core through a port-forward, logged in -------------------------------------


@dataclass
class Session:
    client: EmqxApi
    where: str
    pod: str
    release: str
    version: tuple[int, int, int]
    restricted_key: bool  # logged in with an API key where EMQX restricts API-key callers
    dashboard: bool  # logged in as the dashboard user (else the operator's API key)

    def failure(self, what: str, exc: Any) -> errors.PluginError:
        status = getattr(exc, "status", None)
        said = f"HTTP {status} {exc.code}: {exc.message}" if status else f"no answer: {exc.message}"
        hint = ""
        if status == 403 and "restricted" in str(exc.message):
            hint = "; run again with --auth dashboard"
        elif status == 401 and self.dashboard:
            hint = ("; the password in the Secret is the one the operator generated: if it was changed in the "
                    "dashboard, use --auth api-key")
        elif status == 401:
            hint = "; the operator's API key was refused: is the operator running? (`kubectl emqx version`)"
        return errors.PluginError(f"{self.where}: EMQX's data {what} through {self.pod} failed: {said}{hint}")


def _emqx_errors() -> tuple[type[BaseException], ...]:
    from kubectl_emqx.emqx.api import EmqxApiError

    return (EmqxApiError,)


def cluster_release(body: dict[str, Any]) -> tuple[str, tuple[int, int, int]]:
    from kubectl_emqx.view.release import running_release

    return running_release(body)


def open_session(name: str, auth: str, timeout: float | None, api: Any = None, body: Any = None) -> Session:
    from kubectl_emqx.cli.dashboard import CoreTarget
    from kubectl_emqx.domain import versions
    from kubectl_emqx.emqx.api import EmqxApi
    from kubectl_emqx.kube import portforward
    from kubectl_emqx.kube.pods import PodApi

    api = api or state().api()
    body = body or load_cluster(api, name, api.namespace)
    namespace = body["metadata"]["namespace"]
    where = f"{namespace}/{name}"
    edition, version = cluster_release(body)
    refusal = versions.data_backup_refusal(edition, version)
    if refusal:
        raise errors.PluginError(f"{where}: {refusal}")
    target = CoreTarget(PodApi(api), namespace, name)
    target.refresh()
    chosen = target.pick()
    if chosen is None:
        raise errors.PluginError(f"{where} has no ready core to talk to; see `kubectl emqx status {name}`")
    pod, port = chosen
    connector = portforward.Connector.for_api(api)
    restricted = versions.api_key_backup_restricted(edition, version)
    use_dashboard = auth == "dashboard" or (auth == "auto" and restricted)
    user, secret = _credentials(api, namespace, name, target.pod(pod) or {}, use_dashboard)
    client = EmqxApi(f"http://{pod}:{port}", user, secret, timeout=timeout or DEFAULT_TIMEOUT, login=use_dashboard,
                     transport=_forward_transport(connector, namespace, pod, port))
    release = f"{edition} {versions.format_version(version)}"
    return Session(client, where, pod, release, version, restricted and not use_dashboard, use_dashboard)


def _credentials(api: Any, namespace: str, name: str, pod: dict[str, Any], dashboard: bool) -> tuple[str, str]:
    from kubectl_emqx.cli.dashboard import password_source
    from kubectl_emqx.domain.vocabulary import (
        API_KEY_SECRET_KEY,
        DASHBOARD_USERNAME,
        OPERATOR_API_KEY_NAME,
        object_names,
    )

    secret_name = object_names(name).api_key_secret
    if dashboard:
        kind, where, key = password_source(pod)
        if kind == "literal":
            return DASHBOARD_USERNAME, where
        if kind == "default":
            return DASHBOARD_USERNAME, "public"
        return DASHBOARD_USERNAME, _secret_value(api, namespace, where, key, "the dashboard password")
    text = _secret_value(api, namespace, secret_name, API_KEY_SECRET_KEY, "the operator's API key")
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == OPERATOR_API_KEY_NAME and rest:
            return key, rest.split(":", 1)[0]
    raise errors.PluginError(f"Secret {secret_name} in {namespace} holds no key {OPERATOR_API_KEY_NAME} in "
                             f"{API_KEY_SECRET_KEY}; is the operator running? (`kubectl emqx version`)")


def _secret_value(api: Any, namespace: str, secret: str, key: str, what: str) -> str:
    import base64

    try:
        found = api.get_object("Secret", secret, namespace)
    except errors.Forbidden:
        raise errors.Forbidden(
            "get", f"secrets/{secret}", namespace,
            f"backup and restore read {what} from it; `kubectl emqx install --help` lists what users need") from None
    value = ((found or {}).get("data") or {}).get(key)
    if value is None:
        raise errors.PluginError(f"Secret {secret} in {namespace} has no key {key} ({what}); "
                                 "is the operator running? (`kubectl emqx version`)")
    return base64.b64decode(value).decode("utf-8", "replace")


def _forward_transport(connector: Any, namespace: str, pod: str, port: int) -> Any:
    """An EmqxApi transport: each request through its own port-forward stream to pod:port."""
    from urllib.parse import urlsplit

    from kubectl_emqx.emqx.api import Reply, TransportError
    from kubectl_emqx.kube import portforward

    def send(method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float) -> Reply:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            answer = portforward.request(connector, namespace, pod, port, method, path, headers=headers,
                                         body=body or b"", timeout=timeout)
        except (portforward.StreamError, portforward.PodGone) as exc:
            raise TransportError(type(exc).__name__, exc.message) from exc
        text = answer.body.decode("utf-8", "replace")
        return Reply(answer.status, answer.reason, text, answer.body, dict(answer.headers))

    return send


def _write(target: str, filename: str, data: bytes) -> str:
    """Write atomically; returns the path written ('' for stdout)."""
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return ""
    path = os.path.join(target, filename) if os.path.isdir(target) else target
    temporary = f"{path}.part"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise errors.PluginError(f"cannot write {path}: {exc.strerror}") from None
    return path


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise errors.PluginError(f"cannot read {source}: {exc.strerror}") from None


def _spec_overlap(body: dict[str, Any], summary: Any) -> list[str]:
    """Roots the archive restores that spec.config (emqx.conf, above cluster.hocon at boot) also sets."""
    from kubectl_emqx.domain import spec

    config = spec.normalize(body).config
    shared = sorted(set(config) & set(summary.roots) - {"node", "rpc", "dashboard", "api_key", "cluster"})
    if not shared:
        return []
    return [f"spec.config also sets {', '.join(shared)}: EMQX runs the archive's values after the restore, "
            "spec.config's again when a node restarts (emqx.conf is read above cluster.hocon)"]
