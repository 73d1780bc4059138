"""Observation: reads only. The owned objects, pods and Secrets as Kubernetes has them (World), and
EMQX's own view of its cluster as data (EmqxView), read through a ready core.

What EMQX is asked depends on what the pass needs: `GET /nodes` always; the evacuation status
while a rollout may move, the rebalance status while spec.rebalance is pending or running; the
live configuration when the applied one changed, and otherwise at most every few minutes
(decide/config.py says when).
"""

from __future__ import annotations

import base64
import datetime
import logging
from typing import Any

from emqx_operator.cache import ObjectCache
from emqx_operator.cluster_api import ClusterApi
from emqx_operator.decide import config as config_rules
from emqx_operator.decide import pods
from emqx_operator.decide import rebalance as rebalance_rules
from emqx_operator.decide import secrets as secret_rules
from emqx_operator.emqx_clients import Access, ClientPool
from emqx_operator.model import EmqxError, EmqxView, World
from emqx_operator.runtime import Options
from kubectl_emqx.domain import builders, hocon, versions
from kubectl_emqx.domain.podtemplate import DASHBOARD_PORT_NAME
from kubectl_emqx.domain.spec import EmqxSpec
from kubectl_emqx.domain.vocabulary import (
    API_KEY_SECRET_KEY,
    CORE,
    DASHBOARD_PASSWORD_KEY,
    DASHBOARD_USERNAME,
    LABEL_DB_ROLE,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    OPERATOR_API_KEY_NAME,
    REPLICANT,
    ConditionType,
    core_node_name,
    label_selector,
    object_names,
    pod_ordinal,
)
from kubectl_emqx.emqx.api import EmqxApiError

log = logging.getLogger("emqx_operator.observe")

OWNED_KINDS = ("ConfigMap", "Service", "StatefulSet", "Deployment", "PodDisruptionBudget")
# What the operator's watches select (handlers.py): its managed objects that belong to a cluster.
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_INSTANCE}"
NAMESPACE_PAGE = 500  # objects per page of a namespace-wide LIST: bounds what one answer holds in memory


def world(api: ClusterApi, spec: EmqxSpec, resource: dict[str, Any], secrets: dict[str, dict[str, str]],
          cache: ObjectCache | None = None) -> World:
    """`secrets`: the managed Secrets found, as `managed_secret` read them (the reconciler reads them
    beside the resource)."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in OWNED_KINDS:
        for obj in _owned(api, cache, kind, spec):
            objects[(kind, obj["metadata"]["name"])] = obj
    all_pods = _owned(api, cache, "Pod", spec)
    core = sorted((p for p in all_pods if (p["metadata"].get("labels") or {}).get(LABEL_DB_ROLE) == CORE),
                  key=_by_ordinal)
    replicant = sorted((p for p in all_pods if (p["metadata"].get("labels") or {}).get(LABEL_DB_ROLE) == REPLICANT),
                       key=lambda p: p["metadata"]["name"])
    referenced: dict[tuple[str, str], str | None] = {}
    read: dict[str, dict[str, str] | None] = {}
    for secret_name, key in sorted(secret_rules.referenced_names(spec)):
        if secret_name not in read:
            found = api.get("Secret", spec.namespace, secret_name)
            read[secret_name] = decoded(found) if found is not None else None
        referenced[(secret_name, key)] = (read[secret_name] or {}).get(key)
    return World(resource, objects, tuple(core), tuple(replicant), secrets, referenced)


def managed_secret_names(instance: str) -> tuple[str, str]:
    names = object_names(instance)
    return names.cookie_secret, names.api_key_secret


def managed_secret(api: ClusterApi, cache: ObjectCache | None, namespace: str, instance: str,
                   secret_name: str) -> dict[str, str] | None:
    """One of the operator's Secrets (decoded), from the cache's short-lived copy or a GET; None when
    it does not exist."""
    data = cache.secret(namespace, secret_name) if cache is not None else None
    if data is None:
        found = api.get("Secret", namespace, secret_name)
        if found is not None:
            data = decoded(found)
            if cache is not None:
                cache.put_secret(namespace, secret_name, instance, data)
    return data


def _owned(api: ClusterApi, cache: ObjectCache | None, kind: str, spec: EmqxSpec) -> list[dict[str, Any]]:
    """The cluster's objects of `kind`: from the watch cache when it can serve them; else, once per
    kind and namespace, a paged LIST of the namespace's managed objects that seeds the cache for
    every cluster there; else (the resource changed since, or the kind's watch is not live yet) a
    LIST of the cluster's own objects, which seeds the cache for it."""
    cached = cache.of_instance(kind, spec.namespace, spec.name) if cache is not None else None
    if cached is not None:
        return cached
    if cache is not None and cache.namespace_seed_due(kind, spec.namespace):
        with cache.seeding(kind, spec.namespace):  # one pass lists; the others wait and use its answer
            if cache.namespace_seed_due(kind, spec.namespace):
                started = cache.now()
                pages = api.list_pages(kind, spec.namespace, MANAGED_SELECTOR, NAMESPACE_PAGE)
                cache.seed_namespace(kind, spec.namespace, pages, started)
        cached = cache.of_instance(kind, spec.namespace, spec.name)
        if cached is not None:
            return cached
    items, version = api.list_at(kind, spec.namespace, label_selector(spec.name))
    if cache is not None:
        cache.seed(kind, spec.namespace, spec.name, items, version)
    return items


def _by_ordinal(pod: dict[str, Any]) -> int:
    ordinal = pod_ordinal(pod["metadata"]["name"])
    return ordinal if ordinal is not None else 1 << 30


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    values = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            values[key] = ""
    return values


def emqx(spec: EmqxSpec, world_: World, old_status: dict[str, Any], now: datetime.datetime, options: Options,
         pool: ClientPool) -> EmqxView:
    """EMQX's view through up to two ready cores (the first that answers)."""
    addresses = _addresses(spec, world_, options)
    if not addresses:
        return EmqxView()
    last: tuple[Access, EmqxApiError] | None = None
    best: tuple[int, EmqxView, Any, str] | None = None
    expected = {core_node_name(spec.name, spec.namespace, spec.cluster_domain, p["metadata"]["name"])
                for p in world_.core_pods if pods.ready(p)}
    for access, image in addresses[:3]:
        client = pool.client(access)
        try:
            nodes = tuple(sorted(client.nodes(), key=lambda n: str(n.get("node"))))
        except EmqxApiError as exc:
            pool.drop(access)
            last = (access, exc)
            continue
        listed = {str(n.get("node")) for n in nodes}
        coverage = len(expected & listed)
        if best is None or coverage > best[0]:
            best = (coverage, EmqxView(nodes=nodes, address=access.base_url), client, image)
        if expected <= listed:
            break
        # A core that has not joined yet (a fresh node runs alone for a moment) knows only itself:
        # ask another one, and go by the view that knows the most of the ready cores.
    if best is not None:
        _, view, client, image = best
        return _extras(spec, view, client, image, old_status, now, world_.generation)
    assert last is not None
    access, error = last
    return EmqxView(error=EmqxError(_reason(error), _describe(error), error.status), address=access.base_url)


def access_for(spec: EmqxSpec, world_: World, base_url: str) -> Access:
    """The credentials to use at `base_url` (API key from 5.0.14, a dashboard login before)."""
    names = object_names(spec.name)
    keys = world_.secrets.get(names.api_key_secret) or {}
    image = next((pods.container_image(p) for p in world_.core_pods
                  if f"{pods.ip(p)}:" in base_url), None) or spec.image
    if versions.supports_bootstrap_api_keys(versions.parse_image(image).version):
        secret = secret_rules.operator_secret(keys.get(API_KEY_SECRET_KEY)) or ""
        return Access(spec.namespace, spec.name, base_url, OPERATOR_API_KEY_NAME, secret, False)
    return Access(spec.namespace, spec.name, base_url, DASHBOARD_USERNAME, keys.get(DASHBOARD_PASSWORD_KEY) or "",
                  True)


def _addresses(spec: EmqxSpec, world_: World, options: Options) -> list[tuple[Access, str]]:
    port = hocon.dashboard_port(builders.effective_config(spec)) or hocon.DEFAULT_DASHBOARD_PORT
    ready = [p for p in world_.core_pods if pods.ready(p) and pods.ip(p)]
    if options.emqx_address == "service":
        host = f"{object_names(spec.name).dashboard_service}.{spec.namespace}.svc.{spec.cluster_domain}"
        targets = [(pods.container_image(ready[0]) or spec.image, f"http://{host}:{port}")] if ready else []
    else:
        targets = [(pods.container_image(p) or spec.image,
                    f"http://{pods.ip(p)}:{pods.dashboard_port(p, port, DASHBOARD_PORT_NAME)}") for p in ready]
    return [(access_for(spec, world_, base), image) for image, base in targets]


def _extras(spec: EmqxSpec, view: EmqxView, client: Any, image: str, old_status: dict[str, Any],
            now: datetime.datetime, generation: int) -> EmqxView:
    evacuations, rebalances = None, None
    want_evacuations = _rollout_may_move(view, old_status, generation)
    want_rebalances = rebalance_rules.status_due(spec.rebalance, old_status) and any(
        _has_evacuation(n) for n in view.nodes or ())
    if want_evacuations or want_rebalances:
        try:
            status = client.rebalance_global_status()
            if want_evacuations:
                evacuations = {str(e.get("node")): str(e.get("state")) for e in status.get("evacuations") or []}
            if want_rebalances:
                rebalances = tuple(dict(e) for e in status.get("rebalances") or [])
        except EmqxApiError as exc:
            if exc.status != 404:
                log.warning("%s/%s: rebalance status unavailable: %s", spec.namespace, spec.name, exc)
    live, live_format = None, "hocon"
    if config_rules.live_read_due(old_status, now):
        version = versions.parse_image(image).version
        live_format = "hocon" if versions.supports_config_put(version) else "json"
        try:
            live = client.get_config_hocon() if live_format == "hocon" else client.get_config_json()
        except EmqxApiError as exc:
            log.warning("%s/%s: could not read the live configuration: %s", spec.namespace, spec.name, exc)
    return EmqxView(nodes=view.nodes, address=view.address, evacuations=evacuations, rebalances=rebalances,
                    live_config=live, live_config_format=live_format)


def _rollout_may_move(view: EmqxView, old_status: dict[str, Any], generation: int) -> bool:
    """Evacuation status is only worth a request while something may be drained or resumed: the
    cluster is not Ready for this generation, and some node has the load_rebalance API."""
    if not any(_has_evacuation(n) for n in view.nodes or ()):
        return False
    ready: dict[str, Any] = next(
        (c for c in old_status.get("conditions") or [] if c.get("type") == ConditionType.READY), {})
    return ready.get("status") != "True" or ready.get("observedGeneration") != generation


def _has_evacuation(node: Any) -> bool:
    try:
        version = versions.parse_version(str(node.get("version", "0.0.0")))
    except ValueError:
        return False
    return versions.supports_evacuation(str(node.get("edition", "")), version)


def _reason(exc: EmqxApiError) -> str:
    if exc.unreachable:
        return "EMQXUnreachable"
    if exc.unauthorized:
        return "EMQXUnauthorized"
    return "EMQXAPIError"


def _describe(exc: EmqxApiError) -> str:
    if exc.unauthorized:
        return (f"EMQX rejected the operator's credentials ({exc.code}: {exc.message}) at {exc.url}; the API key "
                "comes from the bootstrap Secret, which the cores load at boot: they are restarted one at a time "
                "when it changes")
    if exc.unreachable:
        return f"EMQX's API did not answer at {exc.url}: {exc.message}"
    return f"EMQX's API failed at {exc.url}: HTTP {exc.status} {exc.code}: {exc.message}"
