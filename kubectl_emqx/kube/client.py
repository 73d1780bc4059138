"""The plugin's only door to the Kubernetes API (the only module importing the `kubernetes` client).

The facade is deliberately narrow: get/list/create/patch/delete the EMQX resource, watch it, list
its Events and find the operator's version; and for `install`/`uninstall`, apply, read and delete the
operator's own objects (ManifestApi). Everything comes back as plain dicts in API (camelCase)
form, every request carries a timeout, and every client failure leaves as a `kubectl_emqx.kube.errors`
exception with one actionable line.

Importing this module is cheap: the client is imported when `connect()` builds a session, so
`--help` and argument errors never pay for it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from kubectl_emqx import __version__
from kubectl_emqx.domain.vocabulary import (
    APP_VERSION_LABEL,
    GROUP,
    KIND,
    OPERATOR_SELECTOR,
    PLUGIN_FIELD_MANAGER,
    PLURAL,
    RESOURCE,
    VERSION,
    kind_path,
    resource_name,
)
from kubectl_emqx.kube import errors

DEFAULT_REQUEST_TIMEOUT = 30.0

_OVERRIDE_CONTEXT = "kubectl-emqx-flags"


@dataclass(frozen=True)
class KubeFlags:
    """kubectl's global flags, which a plugin must parse itself (kubectl passes them through)."""

    kubeconfig: str | None = None
    context: str | None = None
    cluster: str | None = None
    user: str | None = None
    namespace: str | None = None
    as_user: str | None = None
    as_groups: tuple[str, ...] = ()
    request_timeout: float | None = None  # seconds; 0 = no limit (as kubectl); None = default
    server: str | None = None
    token: str | None = None
    certificate_authority: str | None = None
    insecure_skip_tls_verify: bool = False

    @property
    def effective_request_timeout(self) -> float | None:
        if self.request_timeout is None:
            return DEFAULT_REQUEST_TIMEOUT
        return self.request_timeout or None


class WatchEvent(NamedTuple):
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]


@dataclass(frozen=True)
class OperatorDeployment:
    namespace: str
    name: str
    version: str | None  # the app.kubernetes.io/version label, None when unlabelled


class ClusterReader(Protocol):
    """The reads `status`, `list` and name completion need: what rest.RestClusterApi serves without
    importing the client. Every ClusterApi is one."""

    namespace: str

    def get_emqx(self, name: str, namespace: str) -> dict[str, Any]: ...

    def list_emqx(self, namespace: str | None) -> list[dict[str, Any]]: ...

    def watch_emqx(
        self, name: str, namespace: str, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]: ...

    def list_events(self, name: str, namespace: str) -> list[dict[str, Any]]: ...


class ClusterApi(Protocol):
    """What the CLI needs from Kubernetes. Unit tests provide an in-memory implementation."""

    namespace: str  # --namespace, else the context's namespace, else "default"

    def get_emqx(self, name: str, namespace: str) -> dict[str, Any]: ...

    def list_emqx(self, namespace: str | None) -> list[dict[str, Any]]:
        """namespace None lists every namespace."""
        ...

    def create_emqx(self, body: dict[str, Any], namespace: str, *, dry_run: bool = False) -> dict[str, Any]: ...

    def patch_emqx(
        self, name: str, namespace: str, patch: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """JSON merge patch. With metadata.resourceVersion in the patch a stale write raises Conflict."""
        ...

    def delete_emqx(self, name: str, namespace: str) -> None: ...

    def watch_emqx(
        self, name: str, namespace: str, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]:
        """Changes to one EMQX resource after resource_version, until the server ends the watch.

        Raises WatchExpired when resource_version is too old (re-read, then watch again)."""
        ...

    def list_events(self, name: str, namespace: str) -> list[dict[str, Any]]: ...

    def operator_deployments(self) -> list[OperatorDeployment]: ...


class ManifestApi(Protocol):
    """Generic objects for `install`/`uninstall` (the kinds in vocabulary.KIND_PATHS), by server-side apply."""

    def apply_object(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]: ...

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list_objects(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """namespace None lists a namespaced kind in every namespace."""
        ...

    def delete_object(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """False when it was already gone."""
        ...


FIELD_MANAGER = PLUGIN_FIELD_MANAGER


def connect(flags: KubeFlags) -> ClusterApi:
    return KubernetesClusterApi(flags)


class KubernetesClusterApi:
    def __init__(self, flags: KubeFlags) -> None:
        from kubernetes import client

        self._flags = flags
        self._timeout = flags.effective_request_timeout
        configuration, self.namespace, self.context_name = _load_configuration(flags)
        configuration.retries = 1
        api_client = client.ApiClient(configuration)
        api_client.user_agent = f"kubectl-emqx/{__version__}"
        if flags.as_user:
            api_client.set_default_header("Impersonate-User", flags.as_user)
        if flags.as_groups:
            _send_impersonated_groups(api_client, flags.as_groups)
        self.server = configuration.host
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)

    # --- the EMQX resource -------------------------------------------------------------------

    def get_emqx(self, name: str, namespace: str) -> dict[str, Any]:
        with self._translated("get", namespace, name):
            return dict(
                self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self._timeout
                )
            )

    def list_emqx(self, namespace: str | None) -> list[dict[str, Any]]:
        with self._translated("list", namespace):
            if namespace is None:
                result = self._custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _request_timeout=self._timeout
                )
            else:
                result = self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, _request_timeout=self._timeout
                )
        return list(result.get("items", []))

    def create_emqx(self, body: dict[str, Any], namespace: str, *, dry_run: bool = False) -> dict[str, Any]:
        name = body.get("metadata", {}).get("name", "")
        with self._translated("create", namespace, name):
            return dict(
                self._custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, body, **_dry_run(dry_run),
                    _request_timeout=self._timeout,
                )
            )

    def patch_emqx(
        self, name: str, namespace: str, patch: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        with self._translated("patch", namespace, name):
            return dict(
                self._custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, patch, **_dry_run(dry_run),
                    _content_type="application/merge-patch+json", _request_timeout=self._timeout,
                )
            )

    def delete_emqx(self, name: str, namespace: str) -> None:
        with self._translated("delete", namespace, name):
            self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self._timeout
            )

    def watch_emqx(
        self, name: str, namespace: str, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[WatchEvent]:
        from kubernetes.watch.watch import iter_resp_lines

        connect_timeout = self._timeout or DEFAULT_REQUEST_TIMEOUT
        with self._translated("watch", namespace, name):
            response = self._custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL,
                field_selector=f"metadata.name={name}",
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                watch=True,
                _preload_content=False,
                # The read timeout spans the quiet gaps between events: the server closes the
                # watch after timeout_seconds, so allow that plus a margin.
                _request_timeout=(connect_timeout, timeout_seconds + connect_timeout),
            )
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        try:
            for line in iter_resp_lines(response):
                event = watch_event(line, namespace, name)
                if event is not None:
                    yield event
        except (ReadTimeoutError, ProtocolError):
            # A watch that goes quiet or is cut ends like one the server closed: the caller
            # re-reads the object and watches again.
            return
        finally:
            response.close()
            response.release_conn()

    # --- around the resource -----------------------------------------------------------------

    def list_events(self, name: str, namespace: str) -> list[dict[str, Any]]:
        with self._translated("list", namespace, resource="events"):
            response = self._core.list_namespaced_event(
                namespace,
                field_selector=f"involvedObject.kind={KIND},involvedObject.name={name}",
                _preload_content=False,
                _request_timeout=self._timeout,
            )
        return list(json.loads(response.data).get("items", []))

    def operator_deployments(self) -> list[OperatorDeployment]:
        with self._translated("list", None, resource="deployments.apps"):
            response = self._apps.list_deployment_for_all_namespaces(
                label_selector=OPERATOR_SELECTOR, _preload_content=False, _request_timeout=self._timeout
            )
        found = []
        for item in json.loads(response.data).get("items", []):
            metadata = item.get("metadata", {})
            found.append(
                OperatorDeployment(
                    namespace=metadata.get("namespace", ""),
                    name=metadata.get("name", ""),
                    version=(metadata.get("labels") or {}).get(APP_VERSION_LABEL),
                )
            )
        return found

    # --- generic objects (install / uninstall) ----------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
              content_type: str = "application/json") -> Any:
        from urllib.parse import urlencode

        url = path + ("?" + urlencode(query) if query else "")
        response = self._core.api_client.call_api(
            url, method, header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"], _preload_content=False, _request_timeout=self._timeout,
        )
        raw = response[0] if isinstance(response, tuple) else response
        return json.loads(raw.data) if raw.data else {}

    def apply_object(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        query = {"fieldManager": FIELD_MANAGER, "force": "true", **({"dryRun": "All"} if dry_run else {})}
        with self._translated("apply", meta.get("namespace"), meta.get("name", ""), resource_name(obj["kind"])):
            return dict(self._call("PATCH", kind_path(obj["kind"], meta.get("namespace"), meta["name"]),
                                   body=obj, query=query, content_type="application/apply-patch+yaml"))

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        with self._translated("get", namespace, name, resource_name(kind)):
            try:
                return dict(self._call("GET", kind_path(kind, namespace, name)))
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def list_objects(
        self, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException

        query = {"labelSelector": label_selector} if label_selector else None
        with self._translated("list", namespace, resource=resource_name(kind)):
            try:
                result = self._call("GET", kind_path(kind, namespace), query=query)
            except ApiException as exc:
                if exc.status == 404:  # the kind is not served here (e.g. no ServiceMonitor CRD): none exist
                    return []
                raise
        return list(result.get("items") or [])

    def delete_object(self, kind: str, name: str, namespace: str | None = None) -> bool:
        from kubernetes.client.exceptions import ApiException

        with self._translated("delete", namespace, name, resource_name(kind)):
            try:
                self._call("DELETE", kind_path(kind, namespace, name), body={"propagationPolicy": "Background"})
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    # --- error translation -------------------------------------------------------------------

    def _translated(
        self, verb: str, namespace: str | None, name: str = "", resource: str = RESOURCE
    ) -> _Translator:
        return _Translator(self, verb, namespace, name, resource)


class _Translator:
    """Context manager turning client, urllib3 and config exceptions into errors.PluginError."""

    def __init__(
        self, api: KubernetesClusterApi, verb: str, namespace: str | None, name: str, resource: str
    ) -> None:
        self._api = api
        self._verb = verb
        self._namespace = namespace
        self._name = name
        self._resource = resource

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
        if exc is None or isinstance(exc, errors.PluginError):
            return False
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError, ReadTimeoutError

        if isinstance(exc, ApiException):
            raise _api_exception_error(exc, self._verb, self._namespace, self._name, self._resource) from exc
        server = self._api.server
        if isinstance(exc, ReadTimeoutError) or (
            isinstance(exc, HTTPError) and isinstance(getattr(exc, "reason", None), ReadTimeoutError)
        ):
            raise errors.ClusterUnreachable(
                f"the Kubernetes API at {server} did not answer within {self._api._timeout:g}s "
                "(raise --request-timeout, or check the cluster)"
            ) from exc
        if isinstance(exc, HTTPError | OSError):
            reason = getattr(exc, "reason", None) or exc
            raise errors.ClusterUnreachable(
                f"cannot reach the Kubernetes API at {server} (context {self._api.context_name}): "
                f"{_short_reason(reason)}; check --context/--kubeconfig and your network"
            ) from exc
        return False


def _api_exception_error(
    exc: Any, verb: str, namespace: str | None, name: str, resource: str
) -> errors.PluginError:
    status: dict[str, Any]
    try:
        status = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    status.setdefault("code", exc.status)
    status.setdefault("message", exc.reason or "")
    return _status_error(status, verb, namespace, name, resource)


def watch_event(line: str | bytes, namespace: str, name: str) -> WatchEvent | None:
    """One line of a watch stream: an event, None for a keep-alive blank, or the server's error raised."""
    if not line.strip():
        return None
    event = json.loads(line)
    if event.get("type") == "ERROR":
        raise _status_error(event.get("object") or {}, "watch", namespace, name)
    return WatchEvent(event["type"], event["object"])


def _status_error(
    status: dict[str, Any], verb: str, namespace: str | None, name: str, resource: str = RESOURCE
) -> errors.PluginError:
    code = status.get("code")
    reason = status.get("reason", "")
    message = status.get("message", "") or reason or f"HTTP {code}"
    details = status.get("details") or {}
    if code == 401:
        return errors.Unauthorized(
            "unauthorized: the API server rejected your credentials; log in again or check --user/--token"
        )
    if code == 403:
        return errors.Forbidden(verb, resource, namespace, _forbidden_subject(message))
    if code == 404 and resource == RESOURCE:
        # The resource's own NotFound names it in details; anything else means the API group
        # (the CRD) is not served at all.
        if name and details.get("name") == name:
            return errors.NotFound(name, namespace or "")
        return errors.OperatorNotInstalled()
    if code == 409 and reason == "AlreadyExists":
        return errors.AlreadyExists(name, namespace or "")
    if code == 409:
        return errors.Conflict(f"conflict: {message}")
    if code == 410:
        return errors.WatchExpired(message)
    if code == 422:
        causes = [
            f"{cause.get('field', '')}: {cause.get('message', '')}".strip(": ")
            for cause in details.get("causes") or []
        ]
        return errors.Invalid("the API server refused the EMQX resource: " + ("; ".join(causes) or message))
    return errors.ApiServerError(f"the API server failed to {verb} {resource}: {message} (HTTP {code})")


def _forbidden_subject(message: str) -> str:
    # 'emqxes.apps.emqx.io "x" is forbidden: User "bob" cannot patch resource ...' -> 'User "bob"'
    _, _, tail = message.partition("forbidden: ")
    subject, _, _ = tail.partition(" cannot ")
    return f"as {subject}" if subject else ""


def _short_reason(reason: object) -> str:
    # urllib3 buries the cause: "HTTPSConnection(host=..., port=1): Failed to establish a new
    # connection: [Errno 111] Connection refused" -> "Connection refused"
    text = str(reason)
    for marker in ("Failed to establish a new connection: ", ">: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return re.sub(r"\[Errno -?\d+\] ", "", text).rstrip(")'\"")


def _dry_run(enabled: bool) -> dict[str, str]:
    return {"dry_run": "All"} if enabled else {}


def _send_impersonated_groups(api_client: Any, groups: tuple[str, ...]) -> None:
    """Impersonate-Group must be sent once per group; the generated client keeps headers in a
    plain dict, so repeat the header at the urllib3 layer."""
    rest_client = api_client.rest_client
    send = rest_client.request

    def request_with_groups(method: str, url: str, *args: Any, headers: Any = None, **kwargs: Any) -> Any:
        return send(method, url, *args, headers=headers_with_groups(headers, groups), **kwargs)

    rest_client.request = request_with_groups


def headers_with_groups(headers: dict[str, str] | None, groups: tuple[str, ...]) -> Any:
    from urllib3 import HTTPHeaderDict

    combined = HTTPHeaderDict(headers or {})
    for group in groups:
        combined.add("Impersonate-Group", group)
    return combined


# --- kubeconfig ------------------------------------------------------------------------------


def kubeconfig_paths(flags: KubeFlags) -> str:
    """--kubeconfig (one file, as kubectl), else $KUBECONFIG (a path list), else ~/.kube/config."""
    return flags.kubeconfig or os.environ.get("KUBECONFIG") or os.path.join("~", ".kube", "config")


def _load_configuration(flags: KubeFlags) -> tuple[Any, str, str]:
    """(client Configuration, default namespace, context name) for the flags.

    The flags are folded into the kubeconfig as one extra context (with its own cluster and user
    entries) rather than set on the Configuration afterwards: the client's credential refresh hook
    copies the kubeconfig's cluster settings back onto the Configuration before requests."""
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import ConfigNode, KubeConfigLoader, KubeConfigMerger

    configuration = client.Configuration()
    paths = kubeconfig_paths(flags)
    if flags.kubeconfig and not os.path.exists(os.path.expanduser(flags.kubeconfig)):
        raise errors.KubeconfigError(f"--kubeconfig {flags.kubeconfig}: no such file")
    try:
        merger = KubeConfigMerger(paths)
        merged = merger.config
    except (OSError, ValueError, ConfigException) as exc:
        raise errors.KubeconfigError(f"cannot read kubeconfig {paths}: {exc}") from exc
    except Exception as exc:  # yaml errors come from PyYAML, which only the client imports
        raise errors.KubeconfigError(f"cannot parse kubeconfig {paths}: {exc}") from exc

    if merged is None and not flags.server:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            from kubernetes.config.incluster_config import load_incluster_config

            load_incluster_config(client_configuration=configuration)
            return configuration, flags.namespace or _in_cluster_namespace() or "default", "in-cluster"
        raise errors.KubeconfigError(f"no kubeconfig found at {paths}; set KUBECONFIG or pass --kubeconfig")
    if merged is None:
        merged = ConfigNode("flags", {"clusters": [], "users": [], "contexts": []})
    else:
        # kubectl takes current-context from the first file that sets it; the client's merger
        # lets later files override it.
        firsts = [config["current-context"] for config in merger.config_files.values() if config.get("current-context")]
        merged.value["current-context"] = firsts[0] if firsts else None

    context_name, context = _select_context(merged, flags)
    cluster = _entry_node(merged, "clusters", context.get("cluster"))
    cluster_settings = dict(cluster.value.get("cluster") or {}) if cluster else {}
    # As kubectl: a relative path in a kubeconfig is relative to that kubeconfig's directory (the
    # client would take it relative to the working directory); paths given as flags are not.
    _absolute_paths(cluster_settings, ("certificate-authority",), cluster and cluster.path)
    override_cluster(cluster_settings, flags)
    user = _entry_node(merged, "users", context.get("user"))
    user_settings = dict(user.value.get("user") or {}) if user else {}
    _absolute_paths(user_settings, KUBECONFIG_USER_FILES, user and user.path)
    if "token" not in user_settings and user_settings.get("tokenFile"):
        user_settings["token"] = read_token_file(str(user_settings.pop("tokenFile")))
    if flags.token:
        user_settings = {"token": flags.token}
    # Keep each entry's file of origin: relative certificate paths resolve against it.
    merged.value["clusters"].append(
        ConfigNode("flags", {"name": _OVERRIDE_CONTEXT, "cluster": cluster_settings}, cluster and cluster.path)
    )
    merged.value["users"].append(
        ConfigNode("flags", {"name": _OVERRIDE_CONTEXT, "user": user_settings}, user and user.path)
    )
    merged.value["contexts"].append(
        {"name": _OVERRIDE_CONTEXT, "context": {"cluster": _OVERRIDE_CONTEXT, "user": _OVERRIDE_CONTEXT}}
    )
    try:
        KubeConfigLoader(config_dict=merged, active_context=_OVERRIDE_CONTEXT).load_and_set(configuration)
    except ConfigException as exc:
        raise errors.KubeconfigError(f"kubeconfig context {context_name}: {exc}") from exc
    return configuration, flags.namespace or context.get("namespace") or "default", context_name


KUBECONFIG_USER_FILES = ("client-certificate", "client-key", "tokenFile")


def read_token_file(path: str) -> str:
    """A kubeconfig tokenFile's token without the surrounding whitespace, as kubectl reads it (the
    client would send the file's trailing newline and fail every request with a ValueError)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise errors.KubeconfigError(f"cannot read the kubeconfig's tokenFile {path}: {exc.strerror or exc}") from exc


def override_cluster(settings: dict[str, Any], flags: Any) -> None:
    """Apply --server, --certificate-authority and --insecure-skip-tls-verify to a kubeconfig cluster."""
    if flags.server:
        settings["server"] = flags.server
    if flags.certificate_authority:
        settings["certificate-authority"] = flags.certificate_authority
        settings.pop("certificate-authority-data", None)
    if flags.insecure_skip_tls_verify:
        settings["insecure-skip-tls-verify"] = True


def _absolute_paths(settings: dict[str, Any], keys: tuple[str, ...], origin: str | None) -> None:
    """Make the file paths at `keys` absolute against the directory of the kubeconfig `origin`."""
    if not origin:
        return
    base = os.path.dirname(os.path.abspath(os.path.expanduser(origin)))
    for key in keys:
        value = settings.get(key)
        if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
            settings[key] = os.path.join(base, value)


def _select_context(merged: Any, flags: KubeFlags) -> tuple[str, dict[str, Any]]:
    """The context to use, with --cluster/--user applied on top (kubectl's override order)."""
    contexts = {entry["name"]: entry for entry in _entries(merged, "contexts")}
    listing = ", ".join(sorted(contexts)) or "none"
    name = flags.context or merged.value.get("current-context")
    if not name:
        if not (flags.server or (flags.cluster and flags.user)):
            raise errors.KubeconfigError(
                f"the kubeconfig has no current context; pass --context (contexts: {listing})"
            )
        return "(flags)", {"cluster": flags.cluster, "user": flags.user}
    if name not in contexts:
        raise errors.KubeconfigError(f'context "{name}" not found in the kubeconfig (contexts: {listing})')
    context = dict(contexts[name].get("context") or {})
    if flags.cluster:
        context["cluster"] = flags.cluster
    if flags.user:
        context["user"] = flags.user
    for kind, wanted in (("cluster", context.get("cluster")), ("user", context.get("user"))):
        known = {entry["name"] for entry in _entries(merged, kind + "s")}
        if wanted and wanted not in known:
            raise errors.KubeconfigError(f'{kind} "{wanted}" not found in the kubeconfig')
    if not context.get("cluster") and not flags.server:
        raise errors.KubeconfigError(f'context "{name}" names no cluster; pass --cluster or --server')
    return name, context


def _entries(merged: Any, kind: str) -> list[dict[str, Any]]:
    # KubeConfigMerger keeps each entry wrapped in a ConfigNode that remembers its file.
    return [getattr(entry, "value", entry) for entry in merged.value.get(kind) or []]


def _entry_node(merged: Any, kind: str, name: str | None) -> Any:
    if not name:
        return None
    return merged[kind].get_with_name(name, safe=True)


def _in_cluster_namespace() -> str | None:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as handle:
            return handle.read().strip() or None
    except OSError:
        return None
