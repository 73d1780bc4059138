"""What the kubelet would hand the EMQX container: resolved env and mounted files (pure).

Mirrors kubelet semantics closely enough for an EMQX pod: `envFrom` then `env` in order, `valueFrom`
(fieldRef, configMapKeyRef, secretKeyRef, resourceFieldRef), `$(VAR)` expansion against the variables
defined so far (`$$` escapes, unknown references stay literal), and configMap/secret/projected volumes
with `items` and `subPath`. A missing non-optional object or key is a `ContainerConfigError`, the
condition under which the kubelet would never start the container.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

EMQX_CONTAINER_NAME = "emqx"


class ObjectSource(Protocol):
    """Reads ConfigMaps and Secrets (Secret values already base64-decoded). None = does not exist."""

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


@dataclass
class StaticObjectSource:
    """An ObjectSource over fixed dicts keyed by (namespace, name); for tests."""

    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.secrets.get((namespace, name))


class ReadOnce:
    """An ObjectSource that reads each ConfigMap and Secret once: one container start's view (the
    kubelet resolves a container's env and volumes from one read of each object it names; an object
    named by six env vars is not fetched six times)."""

    def __init__(self, source: ObjectSource) -> None:
        self._source = source
        self._read: dict[tuple[str, str, str], Mapping[str, str] | None] = {}

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        key = ("ConfigMap", namespace, name)
        if key not in self._read:
            self._read[key] = self._source.config_map(namespace, name)
        return self._read[key]

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        key = ("Secret", namespace, name)
        if key not in self._read:
            self._read[key] = self._source.secret(namespace, name)
        return self._read[key]


class ContainerConfigError(Exception):
    """The kubelet cannot start the container (CreateContainerConfigError / FailedMount)."""


@dataclass(frozen=True)
class PodIdentity:
    namespace: str
    name: str
    uid: str
    ip: str
    hostname: str
    subdomain: str
    labels: Mapping[str, str]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ContainerRuntime:
    pod: PodIdentity
    image: str
    env: dict[str, str]
    files: dict[str, str]
    # Paths the kubelet created as empty directories (a subPath that is not in the volume).
    directories: set[str]
    # mountPath -> identity of the storage behind it, for volumes whose contents outlive the container.
    volume_keys: dict[str, str]

    def storage_key_for(self, path: str) -> str | None:
        best: str | None = None
        for mount_path in self.volume_keys:
            if (path == mount_path or path.startswith(mount_path.rstrip("/") + "/")) and (
                best is None or len(mount_path) > len(best)
            ):
                best = mount_path
        return self.volume_keys[best] if best is not None else None


def pod_identity(pod: Mapping[str, Any]) -> PodIdentity:
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    name = metadata.get("name", "")
    return PodIdentity(
        namespace=metadata.get("namespace", "default"),
        name=name,
        uid=metadata.get("uid", ""),
        ip=status.get("podIP") or "",
        hostname=spec.get("hostname") or name,
        subdomain=spec.get("subdomain") or "",
        labels=dict(metadata.get("labels") or {}),
    )


def emqx_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        raise ContainerConfigError("pod has no containers")
    for container in containers:
        if container.get("name") == EMQX_CONTAINER_NAME:
            return container
    return containers[0]


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "$" or index + 1 >= len(text):
            out.append(char)
            index += 1
            continue
        following = text[index + 1]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "(":
            closer = text.find(")", index + 2)
            if closer == -1:
                out.append("$(")
                index += 2
            else:
                name = text[index + 2 : closer]
                out.append(variables.get(name, f"$({name})"))
                index = closer + 1
        else:
            out.append("$" + following)
            index += 2
    return "".join(out)


_FIELD_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def _field_value(pod: Mapping[str, Any], field_path: str) -> str:
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(item.get("ip", "") for item in status.get("podIPs") or []),
    }
    if field_path in simple:
        return simple[field_path] or ""
    subscript = _FIELD_SUBSCRIPT.match(field_path)
    if subscript:
        return str((metadata.get(subscript.group(1)) or {}).get(subscript.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {field_path!r}")


def _key_ref_value(source: ObjectSource, namespace: str, selector: Mapping[str, Any], kind: str) -> str | None:
    name = selector.get("name", "")
    key = selector.get("key", "")
    optional = bool(selector.get("optional"))
    data = source.secret(namespace, name) if kind == "Secret" else source.config_map(namespace, name)
    if data is None:
        if optional:
            return None
        lowered = "secret" if kind == "Secret" else "configmap"
        raise ContainerConfigError(f'CreateContainerConfigError: {lowered} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"CreateContainerConfigError: couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def resolve_env(pod: Mapping[str, Any], container: Mapping[str, Any], source: ObjectSource) -> dict[str, str]:
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    env: dict[str, str] = {}
    for env_from in container.get("envFrom") or []:
        prefix = env_from.get("prefix", "")
        if "configMapRef" in env_from:
            ref, kind = env_from["configMapRef"], "configmap"
            data = source.config_map(namespace, ref.get("name", ""))
        elif "secretRef" in env_from:
            ref, kind = env_from["secretRef"], "secret"
            data = source.secret(namespace, ref.get("name", ""))
        else:
            continue
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'CreateContainerConfigError: {kind} "{ref.get("name", "")}" not found')
        for key, value in data.items():
            if _ENV_NAME.match(prefix + key):
                env[prefix + key] = value
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(item.get("value") or "", env)
            continue
        value_from = item["valueFrom"]
        resolved: str | None
        if "fieldRef" in value_from:
            resolved = _field_value(pod, value_from["fieldRef"].get("fieldPath", ""))
        elif "secretKeyRef" in value_from:
            resolved = _key_ref_value(source, namespace, value_from["secretKeyRef"], "Secret")
        elif "configMapKeyRef" in value_from:
            resolved = _key_ref_value(source, namespace, value_from["configMapKeyRef"], "ConfigMap")
        elif "resourceFieldRef" in value_from:
            resolved = "0"
        else:
            raise ContainerConfigError(f"unsupported valueFrom for env {name}")
        if resolved is not None:
            env[name] = resolved
    return env


def _volume_entries(volume: Mapping[str, Any], namespace: str, source: ObjectSource) -> dict[str, str] | None:
    """Relative path -> content for configMap/secret/projected volumes; None for other volume types."""
    volume_name = volume.get("name", "")

    def project(kind: str, spec: Mapping[str, Any], name_key: str = "name") -> dict[str, str]:
        object_name = spec.get(name_key, "")
        data = source.secret(namespace, object_name) if kind == "secret" else source.config_map(namespace, object_name)
        if data is None:
            if spec.get("optional"):
                return {}
            raise ContainerConfigError(
                f'FailedMount: MountVolume.SetUp failed for volume "{volume_name}" : {kind} "{object_name}" not found'
            )
        items = spec.get("items")
        if not items:
            return dict(data)
        entries: dict[str, str] = {}
        for item in items:
            if item["key"] not in data:
                if spec.get("optional"):
                    continue
                raise ContainerConfigError(
                    f'FailedMount: MountVolume.SetUp failed for volume "{volume_name}" : '
                    f"{kind} references non-existent {kind} key: {item['key']}"
                )
            entries[item["path"]] = data[item["key"]]
        return entries

    if "configMap" in volume:
        return project("configmap", volume["configMap"])
    if "secret" in volume:
        return project("secret", volume["secret"], name_key="secretName")
    if "projected" in volume:
        entries: dict[str, str] = {}
        for projected_source in volume["projected"].get("sources") or []:
            if "configMap" in projected_source:
                entries.update(project("configmap", projected_source["configMap"]))
            elif "secret" in projected_source:
                entries.update(project("secret", projected_source["secret"]))
        return entries
    return None


def _storage_key(volume: Mapping[str, Any], pod: PodIdentity) -> str:
    if "persistentVolumeClaim" in volume:
        return f"pvc:{pod.namespace}/{volume['persistentVolumeClaim'].get('claimName', '')}"
    if "ephemeral" in volume:
        # Generic ephemeral volumes get a PVC named <pod>-<volume>, deleted with the pod.
        return f"pvc:{pod.namespace}/{pod.name}-{volume.get('name', '')}@{pod.uid}"
    if "hostPath" in volume:
        return f"hostpath:{volume['hostPath'].get('path', '')}"
    return f"emptydir:{pod.uid}/{volume.get('name', '')}"


def resolve_container(pod: Mapping[str, Any], source: ObjectSource) -> ContainerRuntime:
    identity = pod_identity(pod)
    container = emqx_container(pod)
    env = resolve_env(pod, container, source)
    volumes = {volume.get("name"): volume for volume in (pod.get("spec") or {}).get("volumes") or []}
    files: dict[str, str] = {}
    directories: set[str] = set()
    volume_keys: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        if volume is None:
            raise ContainerConfigError(f"volumeMount {mount.get('name')!r} refers to a missing volume")
        mount_path = posixpath.normpath(mount["mountPath"])
        sub_path = mount.get("subPath") or ""
        if mount.get("subPathExpr"):
            sub_path = expand(mount["subPathExpr"], env)
        sub_path = sub_path.strip("/")
        entries = _volume_entries(volume, identity.namespace, source)
        if entries is None:
            volume_keys[mount_path] = _storage_key(volume, identity) + (f"/{sub_path}" if sub_path else "")
            continue
        if not sub_path:
            for relative, content in entries.items():
                files[posixpath.join(mount_path, relative)] = content
            continue
        if sub_path in entries:
            files[mount_path] = entries[sub_path]
            continue
        nested = {
            rel[len(sub_path) + 1 :]: content for rel, content in entries.items() if rel.startswith(sub_path + "/")
        }
        if nested:
            for relative, content in nested.items():
                files[posixpath.join(mount_path, relative)] = content
        else:
            # The kubelet creates a missing subPath as an empty directory.
            directories.add(mount_path)
    return ContainerRuntime(
        pod=identity,
        image=container.get("image", ""),
        env=env,
        files=files,
        directories=directories,
        volume_keys=volume_keys,
    )
