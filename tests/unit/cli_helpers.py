"""Shared pieces for the CLI unit tests: sample EMQX resources and a CliRunner wired to FakeCluster."""

from __future__ import annotations

import copy
from typing import Any

from click.testing import CliRunner, Result

from kubectl_emqx.cli.main import cli
from kubectl_emqx.cli.options import AppState
from tests.unit.fake_cluster import FakeCluster

CORE_HOST = "{name}-core-{index}.{name}-headless.{namespace}.svc.cluster.local"


def node(
    name: str, role: str, index: int, *, version: str = "5.7.2", status: str = "running", namespace: str = "default"
) -> dict[str, Any]:
    host = CORE_HOST.format(name=name, index=index, namespace=namespace) if role == "core" else f"127.16.0.{index + 10}"
    return {
        "node": f"emqx@{host}",
        "node_status": status,
        "role": role,
        "version": version,
        "edition": "Opensource",
        "otp_release": "26.2.5-3/14.2.5",
        "uptime": 11_520_000 + index * 1000,  # 3h12m
        "connections": 10 * index,
        "podName": f"{name}-core-{index}" if role == "core" else f"{name}-replicant-abc{index}",
    }


def emqx(
    name: str = "demo",
    namespace: str = "default",
    *,
    image: str = "emqx/emqx:5.7.2",
    cores: int = 3,
    replicants: int = 3,
    config: str | None = None,
    ready: bool = True,
    generation: int = 1,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": image,
        "coreTemplate": {"spec": {"replicas": cores}},
        "replicantTemplate": {"spec": {"replicas": replicants}},
    }
    if config is not None:
        spec["config"] = {"mode": "Merge", "data": config}
    body: dict[str, Any] = {
        "apiVersion": "apps.emqx.io/v2beta1",
        "kind": "EMQX",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": generation,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": spec,
    }
    if ready:
        body["status"] = ready_status(name, namespace, image=image, cores=cores, replicants=replicants,
                                      generation=generation)
    return body


def ready_status(
    name: str = "demo",
    namespace: str = "default",
    *,
    image: str = "emqx/emqx:5.7.2",
    cores: int = 3,
    replicants: int = 3,
    generation: int = 1,
) -> dict[str, Any]:
    version = image.rsplit(":", 1)[1]
    return {
        "observedGeneration": generation,
        "phase": "Ready",
        "message": "all nodes running",
        "currentImage": image,
        "targetImage": image,
        "coreNodesStatus": {"replicas": cores, "readyReplicas": cores, "updatedReplicas": cores},
        "replicantNodesStatus": {"replicas": replicants, "readyReplicas": replicants, "updatedReplicas": replicants},
        "emqxNodes": [node(name, "core", i, version=version, namespace=namespace) for i in range(cores)]
        + [node(name, "replicant", i, version=version, namespace=namespace) for i in range(replicants)],
        "conditions": [
            condition("Ready", "True", "AllNodesReady", generation=generation),
            condition("Progressing", "False", "Settled", generation=generation),
        ],
    }


def condition(type_: str, status: str, reason: str, message: str = "", generation: int = 1) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message or reason,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": generation,
    }


def event(reason: str, message: str, *, type_: str = "Normal", when: str = "2026-01-01T00:00:00Z", count: int = 1
          ) -> dict[str, Any]:
    return {"type": type_, "reason": reason, "message": message, "lastTimestamp": when, "count": count}


def fake_with(*bodies: dict[str, Any], namespace: str = "default") -> FakeCluster:
    fake = FakeCluster(namespace)
    for body in bodies:
        fake.add(copy.deepcopy(body))
    return fake


def run(fake: FakeCluster, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """`kubectl emqx ARGS` against `fake`, with --wait and status -w on the fake's clock."""
    with fake.patched_wait():
        return CliRunner().invoke(
            cli, list(args), obj=AppState(connect=fake.connect), input=input, env=env, prog_name="kubectl emqx"
        )
