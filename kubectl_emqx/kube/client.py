"""The plugin's full Kubernetes session: the only module importing the `kubernetes` client.

It serves every verb: get/list/create/patch/delete the EMQX resource, watch it, list its Events and
find the operator's version; and for `install`/`uninstall`, apply, read and delete the operator's
own objects (ManifestApi). Everything comes back as plain dicts in API (camelCase) form, every
request carries a timeout, and every client failure leaves through errors.from_response /
errors.unreachable as one actionable line.

The kubeconfig is interpreted once, by kubeconfig.resolve(); the client is configured from the
resolved Endpoint (a one-context document the client's loader turns into its Configuration, which
is also how it runs exec and auth-provider credential plugins). Importing this module is cheap: the
client is imported when a session is built, so `--help` and argument errors never pay for it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from typing import Any, Literal

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
from kubectl_emqx.kube import errors, kubeconfig
from kubectl_emqx.kube.api import (  # noqa: F401 - the facade's names, re-exported for the verbs
    ClusterApi,
    ClusterReader,
    ManifestApi,
    OperatorDeployment,
    WatchEvent,
    watch_event,
)
from kubectl_emqx.kube.kubeconfig import DEFAULT_REQUEST_TIMEOUT, Endpoint, KubeFlags, Pem

FIELD_MANAGER = PLUGIN_FIELD_MANAGER


def connect(flags: KubeFlags, endpoint: Endpoint | None = None) -> KubernetesClusterApi:
    """A session for `flags` (resolved here unless the caller resolved them already)."""
    return KubernetesClusterApi(endpoint or kubeconfig.resolve(flags), flags)


class KubernetesClusterApi:
    def __init__(self, endpoint: Endpoint, flags: KubeFlags) -> None:
        from kubernetes import client

        self.endpoint = endpoint
        self.namespace = endpoint.namespace
        self.context_name = endpoint.context_name
        self.server = endpoint.server
        self._timeout = flags.effective_request_timeout
        configuration = client_configuration(endpoint)
        configuration.retries = 1
        api_client = client.ApiClient(configuration)
        api_client.user_agent = f"kubectl-emqx/{__version__}"
        self.api_client = api_client  # for the pod and port-forward sessions (kube/pods.py, portforward.py)
        self.request_timeout = self._timeout
        if endpoint.impersonation is not None:
            _send_headers(api_client, endpoint.impersonation.headers())
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

    def translated(
        self, verb: str, namespace: str | None, name: str = "", resource: str = RESOURCE
    ) -> _Translator:
        """A context manager turning the client's exceptions into errors.PluginError."""
        return _Translator(self, verb, namespace, name, resource)

    _translated = translated


class _Translator:
    """Context manager turning client and urllib3 exceptions into errors.PluginError (errors.from_response,
    errors.unreachable: the translator rest.py uses too)."""

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
            raise errors.from_response(
                exc.status, exc.reason, exc.body, self._verb, self._namespace, self._name, self._resource
            ) from exc
        api = self._api
        if isinstance(exc, ReadTimeoutError) or (
            isinstance(exc, HTTPError) and isinstance(getattr(exc, "reason", None), ReadTimeoutError)
        ):
            raise errors.unreachable(
                api.server, api.context_name, exc, timed_out_after=api._timeout or DEFAULT_REQUEST_TIMEOUT
            ) from exc
        if isinstance(exc, HTTPError | OSError):
            raise errors.unreachable(api.server, api.context_name, getattr(exc, "reason", None) or exc) from exc
        return False


def _dry_run(enabled: bool) -> dict[str, str]:
    return {"dry_run": "All"} if enabled else {}


# --- the client's configuration, from the resolved endpoint ----------------------------------

_RESOLVED = "kubectl-emqx"


def client_configuration(endpoint: Endpoint) -> Any:
    """The client's Configuration for `endpoint`: its kubeconfig loader reads a one-context
    document holding exactly the endpoint (and runs a credential plugin when there is one); the
    proxy is the endpoint's, not the one the client would take from the environment itself."""
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigLoader

    configuration = client.Configuration()
    try:
        KubeConfigLoader(config_dict=client_document(endpoint), active_context=_RESOLVED).load_and_set(configuration)
    except ConfigException as exc:
        raise errors.KubeconfigError(f"context {endpoint.context_name}: {exc}") from exc
    configuration.proxy = endpoint.proxy
    configuration.no_proxy = None
    return configuration


def client_document(endpoint: Endpoint) -> dict[str, Any]:
    """`endpoint` as a kubeconfig with one context (data fields base64, as kubeconfigs hold them)."""
    cluster: dict[str, Any] = {"server": endpoint.server}
    _put_pem(cluster, "certificate-authority", endpoint.ca)
    if endpoint.insecure:
        cluster["insecure-skip-tls-verify"] = True
    if endpoint.tls_server_name:
        cluster["tls-server-name"] = endpoint.tls_server_name
    user: dict[str, Any] = dict(endpoint.credential_plugin or {})
    if endpoint.token:
        user["token"] = endpoint.token
    if endpoint.basic_auth:
        user["username"], user["password"] = endpoint.basic_auth
    _put_pem(user, "client-certificate", endpoint.client_certificate)
    _put_pem(user, "client-key", endpoint.client_key)
    return {
        "current-context": _RESOLVED,
        "contexts": [{"name": _RESOLVED, "context": {"cluster": _RESOLVED, "user": _RESOLVED}}],
        "clusters": [{"name": _RESOLVED, "cluster": cluster}],
        "users": [{"name": _RESOLVED, "user": user}],
    }


def _put_pem(entry: dict[str, Any], key: str, pem: Pem | None) -> None:
    if pem is not None and pem.data is not None:
        entry[f"{key}-data"] = base64.b64encode(pem.data).decode("ascii")
    elif pem is not None and pem.file:
        entry[key] = pem.file


def _send_headers(api_client: Any, headers: Sequence[tuple[str, str]]) -> None:
    """Impersonate-Group (and -Extra-*) must be sent once per value; the generated client keeps
    headers in a plain dict, so add them at the urllib3 layer."""
    rest_client = api_client.rest_client
    send = rest_client.request
    extra = tuple(headers)

    def request_with_headers(method: str, url: str, *args: Any, headers: Any = None, **kwargs: Any) -> Any:
        return send(method, url, *args, headers=headers_with(headers, extra), **kwargs)

    rest_client.request = request_with_headers


def headers_with(headers: dict[str, str] | None, extra: Sequence[tuple[str, str]]) -> Any:
    from urllib3 import HTTPHeaderDict

    combined = HTTPHeaderDict(headers or {})
    for name, value in extra:
        combined.add(name, value)
    return combined
