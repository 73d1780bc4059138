"""Small helpers for tests that drive EMQX resources against the sandbox."""

from __future__ import annotations

from typing import Any

from tests.helpers import WaitTimeout, wait_for

GROUP, VERSION, PLURAL = "apps.emqx.io", "v2beta1", "emqxes"


def custom_api(api_client: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api_client)


def cr(name: str, image: str = "emqx/emqx:5.7.2", cores: int = 3, replicants: int = 3,
       config: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EMQX",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "coreTemplate": {"spec": {"replicas": cores}},
            "replicantTemplate": {"spec": {"replicas": replicants}},
        },
    }
    if config is not None:
        body["spec"]["config"] = {"data": config}
    return body


def get_emqx(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(custom_api(api_client).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def patch_emqx(api_client: Any, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    return dict(custom_api(api_client).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def create_emqx(api_client: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return dict(custom_api(api_client).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))


def _wait_settled(api_client: Any, namespace: str, name: str, image: str | None, timeout: float,
                  what: str) -> dict[str, Any]:
    """Wait for Ready=True at the current generation (and `image` everywhere, when given); on a
    timeout the error carries the operator's own account (phase, message, rollout)."""

    def settled() -> dict[str, Any] | None:
        obj = get_emqx(api_client, namespace, name)
        cond = condition(obj, "Ready")
        status = obj.get("status") or {}
        if not (cond and cond["status"] == "True"
                and status.get("observedGeneration") == obj["metadata"]["generation"]):
            return None
        return obj if image is None or status.get("currentImage") == image else None

    try:
        return wait_for(settled, timeout, what)
    except WaitTimeout as exc:
        status = get_emqx(api_client, namespace, name).get("status") or {}
        summary = {k: status.get(k) for k in ("phase", "message", "observedGeneration", "currentImage", "upgrade")}
        raise WaitTimeout(f"{exc}; status: {summary}") from None


def wait_ready(api_client: Any, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
    return _wait_settled(api_client, namespace, name, None, timeout, f"EMQX {namespace}/{name} to be Ready")


def wait_image(api_client: Any, namespace: str, name: str, image: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until every node runs `image` and the resource is Ready."""
    return _wait_settled(api_client, namespace, name, image, timeout, f"{namespace}/{name} Ready on {image}")


def wait_condition(api_client: Any, namespace: str, name: str, kind: str, status: str,
                   timeout: float = 60) -> dict[str, Any]:
    return wait_for(
        lambda: (c := condition(get_emqx(api_client, namespace, name), kind)) and c["status"] == status and c,
        timeout, f"condition {kind}={status} on {namespace}/{name}",
    )


def pods(api_client: Any, namespace: str, instance: str, role: str | None = None) -> list[Any]:
    from kubernetes import client

    selector = f"apps.emqx.io/instance={instance}"
    if role:
        selector += f",apps.emqx.io/db-role={role}"
    items = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in items if p.metadata.deletion_timestamp is None]


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def ready_pods(api_client: Any, namespace: str, instance: str, role: str | None = None) -> list[Any]:
    return [p for p in pods(api_client, namespace, instance, role) if is_ready(p)]


def emqx_nodes(api_client: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    return list((get_emqx(api_client, namespace, name).get("status") or {}).get("emqxNodes") or [])


def selector_matches(selector: dict[str, str] | None, candidates: list[Any]) -> list[str]:
    selector = selector or {}
    return sorted(
        p.metadata.name for p in candidates
        if all((p.metadata.labels or {}).get(k) == v for k, v in selector.items())
    )


def events_for(api_client: Any, namespace: str, name: str) -> list[Any]:
    from kubernetes import client

    items = client.CoreV1Api(api_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=EMQX").items
    return list(items)


def wait_events(api_client: Any, namespace: str, name: str, reason: str, count: int = 1,
                timeout: float = 30.0) -> list[Any]:
    """At least `count` Events of `reason` on the resource: the operator posts Events after it wrote
    the status a test may already have seen, so tests wait for them with a deadline."""
    return wait_for(
        lambda: (found := [e for e in events_for(api_client, namespace, name) if e.reason == reason])
        and len(found) >= count and found, timeout, f"{count} {reason} Event(s) on {name}")


def patient_transport(patience: float = 30.0) -> Any:
    """An httpx transport that tries again while a node refuses connections, up to `patience`
    seconds: a node that has just joined its cluster restarts its apps, and its dashboard listener
    is closed for a moment (EMQX does so too), even when the resource is already Ready. Only a
    refused connection is retried: the request never reached EMQX."""
    import time

    from kubectl_emqx.emqx.api import TransportError, httpx_transport

    send, _ = httpx_transport()

    def patient(method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float) -> Any:
        deadline = time.monotonic() + patience
        while True:
            try:
                return send(method, url, headers, body, timeout)
            except TransportError as error:
                if error.kind != "ConnectError" or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    return patient


def emqx_api(api_client: Any, namespace: str, name: str, pod: Any) -> Any:
    """An EMQX API client for one pod, with the operator's own credentials (read from its Secret),
    patient with a node that closes its listener for a moment (patient_transport)."""
    import base64

    from kubernetes import client

    from kubectl_emqx.domain import versions
    from kubectl_emqx.emqx.api import EmqxApi

    secret = client.CoreV1Api(api_client).read_namespaced_secret(f"{name}-bootstrap-api-key", namespace)
    key, _, api_secret = base64.b64decode(secret.data["bootstrap_api_key"]).decode().splitlines()[0].partition(":")
    image = pod.spec.containers[0].image
    base = f"http://{pod.status.pod_ip}:18083"
    if versions.supports_bootstrap_api_keys(versions.parse_image(image).version):
        return EmqxApi(base, key, api_secret, transport=patient_transport())
    password = base64.b64decode(secret.data["dashboard_password"]).decode()
    return EmqxApi(base, "admin", password, login=True, transport=patient_transport())


def live_config(api_client: Any, namespace: str, name: str, pod: Any) -> dict[str, Any]:
    from kubectl_emqx.domain import hocon

    with emqx_api(api_client, namespace, name, pod) as api:
        return dict(hocon.parse(api.get_config_hocon()))


def pod_uids(api_client: Any, namespace: str, instance: str) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in pods(api_client, namespace, instance)}
