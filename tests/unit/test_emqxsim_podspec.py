"""Kubelet semantics of the simulator: env resolution, $(VAR) expansion, mounted files."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.emqxsim.podspec import (
    ContainerConfigError,
    StaticObjectSource,
    expand,
    resolve_container,
)
from sandbox.emqxsim.testing import emqx_objects, emqx_pod


def _pod(env=None, env_from=None, mounts=None, volumes=None):
    return {
        "metadata": {
            "name": "p-0",
            "namespace": "ns",
            "uid": "u1",
            "labels": {"app": "x"},
            "annotations": {"a.b/c": "anno"},
        },
        "spec": {
            "nodeName": "kwok-node-0",
            "containers": [
                {
                    "name": "emqx",
                    "image": "emqx/emqx:5.8.9",
                    "env": env or [],
                    "envFrom": env_from or [],
                    "volumeMounts": mounts or [],
                }
            ],
            "volumes": volumes or [],
        },
        "status": {"phase": "Running", "podIP": "127.16.0.7", "hostIP": "10.0.0.1"},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A).$(B)", "a.b"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("x$", "x$"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("pre-$(A)-post", "pre-a-post"),
    ],
)
def test_expansion_follows_kubernetes_rules(text, expected):
    assert expand(text, {"A": "a", "B": "b"}) == expected


def test_env_resolves_field_refs_secrets_configmaps_in_order():
    pod = _pod(
        env=[
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "EARLY", "value": "$(LATER)"},
            {"name": "LATER", "value": "x"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "ANNO", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['a.b/c']"}}},
            {"name": "COOKIE", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "CONF", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "HOST", "value": "$(POD_NAME).$(NS)"},
        ]
    )
    source = StaticObjectSource(
        config_maps={("ns", "c"): {"k": "from-cm"}}, secrets={("ns", "s"): {"k": "from-secret"}}
    )
    env = resolve_container(pod, source).env
    assert env["POD_NAME"] == "p-0"
    assert env["EARLY"] == "$(LATER)"  # only variables defined earlier expand
    assert env["IP"] == "127.16.0.7"
    assert env["LABEL"] == "x"
    assert env["ANNO"] == "anno"
    assert env["COOKIE"] == "from-secret"
    assert env["CONF"] == "from-cm"
    assert env["HOST"] == "p-0.ns"


def test_env_from_with_prefix_and_explicit_env_wins():
    pod = _pod(
        env_from=[{"configMapRef": {"name": "c"}, "prefix": "P_"}, {"secretRef": {"name": "s"}}],
        env=[{"name": "K", "value": "explicit"}],
    )
    source = StaticObjectSource(
        config_maps={("ns", "c"): {"A": "1", "bad key": "x"}}, secrets={("ns", "s"): {"K": "s"}}
    )
    env = resolve_container(pod, source).env
    assert env["P_A"] == "1"
    assert "P_bad key" not in env
    assert env["K"] == "explicit"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}], 'secret "nope" not found'),
        (
            [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "nokey"}}}],
            "couldn't find key nokey in ConfigMap ns/c",
        ),
    ],
)
def test_missing_referenced_object_is_a_container_config_error(env, message):
    source = StaticObjectSource(config_maps={("ns", "c"): {"k": "v"}})
    with pytest.raises(ContainerConfigError, match=message):
        resolve_container(_pod(env=env), source)


def test_optional_references_are_skipped():
    pod = _pod(
        env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}],
        env_from=[{"secretRef": {"name": "nope", "optional": True}}],
    )
    assert "X" not in resolve_container(pod, StaticObjectSource()).env


def test_volumes_items_subpath_projected_and_storage_keys():
    volumes = [
        {"name": "conf", "configMap": {"name": "c"}},
        {"name": "picked", "configMap": {"name": "c", "items": [{"key": "emqx.conf", "path": "sub/renamed.conf"}]}},
        {"name": "keys", "secret": {"secretName": "s"}},
        {"name": "proj", "projected": {"sources": [{"configMap": {"name": "c"}}, {"secret": {"name": "s"}}]}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-emqx-core-0"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    mounts = [
        {"name": "conf", "mountPath": "/opt/emqx/etc/emqx.conf", "subPath": "emqx.conf"},
        {"name": "conf", "mountPath": "/etc/all"},
        {"name": "picked", "mountPath": "/etc/picked"},
        {"name": "keys", "mountPath": "/opt/emqx/data/bootstrap_api_key", "subPath": "bootstrap_api_key"},
        {"name": "proj", "mountPath": "/etc/proj"},
        {"name": "conf", "mountPath": "/etc/missing.conf", "subPath": "not-there"},
        {"name": "data", "mountPath": "/opt/emqx/data"},
        {"name": "scratch", "mountPath": "/opt/emqx/log"},
    ]
    source = StaticObjectSource(
        config_maps={("ns", "c"): {"emqx.conf": "a = 1", "other": "o"}},
        secrets={("ns", "s"): {"bootstrap_api_key": "k:s"}},
    )
    runtime = resolve_container(_pod(mounts=mounts, volumes=volumes), source)
    assert runtime.files["/opt/emqx/etc/emqx.conf"] == "a = 1"
    assert runtime.files["/etc/all/other"] == "o"
    assert runtime.files["/etc/picked/sub/renamed.conf"] == "a = 1"
    assert "/etc/picked/other" not in runtime.files
    assert runtime.files["/opt/emqx/data/bootstrap_api_key"] == "k:s"
    assert runtime.files["/etc/proj/bootstrap_api_key"] == "k:s"
    assert "/etc/missing.conf" in runtime.directories
    assert runtime.storage_key_for("/opt/emqx/data") == "pvc:ns/data-emqx-core-0"
    assert runtime.storage_key_for("/opt/emqx/data/mnesia") == "pvc:ns/data-emqx-core-0"
    assert runtime.storage_key_for("/opt/emqx/log").startswith("emptydir:u1/")
    assert runtime.storage_key_for("/tmp") is None


def test_missing_volume_object_fails_the_mount():
    pod = emqx_pod("emqx-core-0")
    with pytest.raises(ContainerConfigError, match='FailedMount.*secret "emqx-bootstrap-api-key" not found'):
        resolve_container(pod, emqx_objects(api_keys=None))
    missing_item = _pod(
        volumes=[{"name": "v", "configMap": {"name": "c", "items": [{"key": "x", "path": "x"}]}}],
        mounts=[{"name": "v", "mountPath": "/m"}],
    )
    with pytest.raises(ContainerConfigError, match="non-existent configmap key: x"):
        resolve_container(missing_item, StaticObjectSource(config_maps={("ns", "c"): {}}))


def test_one_container_start_reads_each_object_once() -> None:
    from sandbox.emqxsim.podspec import ReadOnce, StaticObjectSource

    reads: list[tuple[str, str]] = []

    class Counting(StaticObjectSource):
        def secret(self, namespace: str, name: str) -> Any:
            reads.append(("Secret", name))
            return super().secret(namespace, name)

        def config_map(self, namespace: str, name: str) -> Any:
            reads.append(("ConfigMap", name))
            return super().config_map(namespace, name)

    source = ReadOnce(Counting(secrets={("ns", "s"): {"a": "1", "b": "2"}}))
    assert source.secret("ns", "s") == {"a": "1", "b": "2"} and source.secret("ns", "s") == {"a": "1", "b": "2"}
    assert source.config_map("ns", "missing") is None and source.config_map("ns", "missing") is None
    assert reads == [("Secret", "s"), ("ConfigMap", "missing")]
