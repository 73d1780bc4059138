"""Observation: the owned objects and pods as they are, and EMQX's own view of its cluster."""

from __future__ import annotations

import base64
import logging
import secrets as secrets_mod
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from emqx_operator.cluster_api import ApiError, ClusterApi
from emqx_operator.runtime import Options
from kubectl_emqx.domain import builders, hocon, versions, vocabulary
from kubectl_emqx.domain import spec as spec_mod
from kubectl_emqx.emqx.api import EmqxApi, EmqxApiError

log = logging.getLogger("emqx_operator.observe")

INSTANCE = "apps.emqx.io/instance"
ROLE = "apps.emqx.io/db-role"
OWNED_KINDS = ("ConfigMap", "Service", "StatefulSet", "Deployment", "PodDisruptionBudget")


@dataclass
class Credentials:
    cookie: str
    api_key: str
    api_secret: str
    dashboard_username: str
    dashboard_password: str


@dataclass
class World:
    objects: dict[tuple[str, str], dict[str, Any]]
    core_pods: list[dict[str, Any]]
    replicant_pods: list[dict[str, Any]]

    def live(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    @property
    def statefulset(self) -> dict[str, Any] | None:
        return next((o for (k, _), o in self.objects.items() if k == "StatefulSet"), None)

    @property
    def deployment(self) -> dict[str, Any] | None:
        return next((o for (k, _), o in self.objects.items() if k == "Deployment"), None)


@dataclass
class EmqxView:
    nodes: list[dict[str, Any]] | None = None
    error: str | None = None
    error_reason: str = ""
    address: str = ""
    client: EmqxApi | None = field(default=None, repr=False)
    evacuations: dict[str, str] = field(default_factory=dict)  # node -> evacuation state
    evacuations_known: bool = False


def container_image(workload: dict[str, Any] | None) -> str | None:
    """The emqx container's image in a StatefulSet/Deployment/Pod (None when absent)."""
    if not workload:
        return None
    spec = workload.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or spec
    for container in pod_spec.get("containers") or []:
        if container.get("name") == vocabulary.CONTAINER_NAME:
            return str(container.get("image"))
    return None


def _pod_dashboard_port(pod: dict[str, Any], default: int) -> int:
    """The port a pod's own template declares: during a rolling restart old pods keep the old one."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == builders.DASHBOARD_PORT_NAME:
                return int(port.get("containerPort") or default)
    return default


def pod_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _decode(secret: dict[str, Any], key: str) -> str | None:
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else None


def ensure_secrets(api: ClusterApi, owner: dict[str, Any], spec: spec_mod.EmqxSpec) -> Credentials:
    """Create the cookie and API-key Secrets once (random, from `secrets`); never rotate them."""
    live: dict[str, dict[str, Any]] = {}
    for secret in builders.build_secrets(spec, builders.new_secret_values(spec)):
        name = secret["metadata"]["name"]
        current = api.get("Secret", spec.namespace, name)
        if current is None:
            try:
                current = api.create(builders.with_owner(secret, owner))
            except ApiError as exc:
                if not exc.conflict:
                    raise
                current = api.get("Secret", spec.namespace, name) or secret
        live[name] = current
    names = vocabulary.object_names(spec.name)
    cookie = _decode(live[names.cookie_secret], vocabulary.COOKIE_SECRET_KEY) or ""
    key_file = _decode(live[names.api_key_secret], vocabulary.API_KEY_SECRET_KEY) or ":"
    api_key, _, api_secret = key_file.splitlines()[0].partition(":")
    password = _decode(live[names.api_key_secret], vocabulary.DASHBOARD_PASSWORD_KEY) or "public"
    return Credentials(cookie, api_key, api_secret, vocabulary.DASHBOARD_USERNAME, password)


def observe(api: ClusterApi, spec: spec_mod.EmqxSpec) -> World:
    selector = f"{INSTANCE}={spec.name}"
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in OWNED_KINDS:
        for obj in api.list(kind, spec.namespace, selector):
            objects[(kind, obj["metadata"]["name"])] = obj
    pods = [p for p in api.list("Pod", spec.namespace, selector)]
    core = sorted((p for p in pods if p["metadata"].get("labels", {}).get(ROLE) == "core"),
                  key=lambda p: _ordinal(p["metadata"]["name"]))
    replicant = sorted((p for p in pods if p["metadata"].get("labels", {}).get(ROLE) == "replicant"),
                       key=lambda p: p["metadata"]["name"])
    return World(objects, core, replicant)


def _ordinal(pod_name: str) -> int:
    tail = pod_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 1 << 30


def emqx_view(spec: spec_mod.EmqxSpec, world: World, creds: Credentials, options: Options) -> EmqxView:
    port = hocon.dashboard_port(builders.effective_config(spec)) or hocon.DEFAULT_DASHBOARD_PORT
    ready = [p for p in world.core_pods if pod_ready(p) and (p.get("status") or {}).get("podIP")]
    if options.emqx_address == "service":
        host = f"{spec.name}-dashboard.{spec.namespace}.svc.{spec.cluster_domain}"
        addresses = [(container_image(ready[0]) or spec.image, host, port)] if ready else []
    else:
        addresses = [(container_image(p) or spec.image, p["status"]["podIP"], _pod_dashboard_port(p, port))
                     for p in ready]
    if not addresses:
        return EmqxView()
    last_error: EmqxApiError | None = None
    for pod_image, address, address_port in addresses[:2]:
        base = f"http://{address}:{address_port}"
        # Before 5.0.14 there are no bootstrap API keys: log in as the dashboard admin instead.
        if versions.supports_bootstrap_api_keys(versions.parse_image(pod_image).version):
            client = _client(spec, base, creds.api_key, creds.api_secret, False, options.emqx_timeout)
        else:
            client = _client(spec, base, creds.dashboard_username, creds.dashboard_password, True,
                             options.emqx_timeout)
        try:
            nodes = client.nodes()
            return EmqxView(nodes=sorted(nodes, key=lambda n: str(n.get("node"))), address=base, client=client)
        except EmqxApiError as exc:
            last_error = exc
            _forget_client(client)
    assert last_error is not None
    return EmqxView(error=_describe(last_error), error_reason=_reason(last_error), address=last_error.url)


# EMQX API clients are kept across passes (connections, and for dashboard logins the token), one
# per resource and address, all on one shared HTTP connection pool: a pool per client would cost
# an SSL context each. forget_clients() drops a resource's entries when it is gone.
_HTTP: httpx.Client | None = None
_CLIENTS: dict[tuple[str, str, str, str, str, bool], EmqxApi] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(spec: spec_mod.EmqxSpec, base: str, user: str, secret: str, login: bool, timeout: float) -> EmqxApi:
    global _HTTP
    key = (spec.namespace, spec.name, base, user, secret, login)
    with _CLIENTS_LOCK:
        if _HTTP is None:
            _HTTP = httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=64))
        client = _CLIENTS.get(key)
        if client is None:
            for stale in [k for k in _CLIENTS if k[:2] == key[:2] and k[2] == base]:
                del _CLIENTS[stale]  # same address, other credentials
            client = _CLIENTS[key] = EmqxApi(base, user, secret, timeout=timeout, login=login, client=_HTTP)
        return client


def _forget_client(client: EmqxApi) -> None:
    with _CLIENTS_LOCK:
        for key, cached in list(_CLIENTS.items()):
            if cached is client:
                del _CLIENTS[key]


def forget_clients(namespace: str, name: str) -> None:
    with _CLIENTS_LOCK:
        for key in [k for k in _CLIENTS if k[:2] == (namespace, name)]:
            del _CLIENTS[key]


def observe_evacuations(view: EmqxView) -> None:
    """Fill view.evacuations from GET /load_rebalance/global_status (404 on editions without it)."""
    if view.client is None:
        return
    try:
        status = view.client.rebalance_global_status()
    except EmqxApiError as exc:
        if exc.status != 404:
            log.warning("evacuation status unavailable: %s", exc)
        return
    view.evacuations = {str(e.get("node")): str(e.get("state")) for e in status.get("evacuations") or []}
    view.evacuations_known = True


def _reason(exc: EmqxApiError) -> str:
    if exc.unreachable:
        return "EMQXUnreachable"
    if exc.unauthorized:
        return "EMQXUnauthorized"
    return "EMQXAPIError"


def _describe(exc: EmqxApiError) -> str:
    if exc.unauthorized:
        return (f"EMQX rejected the operator's credentials ({exc.code}: {exc.message}) at {exc.url}; the API key "
                "comes from the bootstrap Secret, which EMQX loads at boot: restart the core pods if it was changed")
    if exc.unreachable:
        return f"EMQX's API did not answer at {exc.url}: {exc.message}"
    return f"EMQX's API failed at {exc.url}: HTTP {exc.status} {exc.code}: {exc.message}"


def force_leave(view: EmqxView, node: str) -> None:
    if view.client is None:
        return
    try:
        view.client.force_leave(node)
    except EmqxApiError as exc:
        log.warning("force_leave %s failed: %s", node, exc)


def random_token(nbytes: int = 24) -> str:
    return secrets_mod.token_urlsafe(nbytes).replace("-", "x").replace("_", "y")
